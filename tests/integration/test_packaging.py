"""The wheel is a complete service: installed without the checkout, it serves the widget, the
agent console's assets and the API docs, and it migrates its database.

The wheel is built from a copy of the sources (the build must not litter the checkout), installed
with ``pip install --target`` into a temp folder, and started in a fresh interpreter whose working
directory is elsewhere, so ``bot`` can only come from that folder. Its dependencies come from this
environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SOURCES = ("pyproject.toml", "README.md", "bot", "ingest", "widget")

SERVE_FROM_INSTALL = textwrap.dedent(
    """
    import hashlib, json, sys
    from pathlib import Path

    site, data_dir = Path(sys.argv[1]), Path(sys.argv[2])
    import bot, ingest
    assert Path(bot.__file__).is_relative_to(site), bot.__file__
    assert Path(ingest.__file__).is_relative_to(site), ingest.__file__

    from alembic.script import ScriptDirectory
    from fastapi.testclient import TestClient
    from sqlalchemy import create_engine, text

    from bot.core.migrate import MIGRATIONS_DIR
    from bot.core.settings import Settings
    from bot.web.app import create_app

    settings = Settings(data_dir=data_dir, _env_file=None)
    paths = ["/widget/supportbot.js", "/", "/static/agent.js", "/static/agent.css", "/login",
             "/docs", "/docs-assets/swagger-ui-bundle.js"]
    with TestClient(create_app(settings)) as client:
        responses = {path: client.get(path) for path in paths}
    engine = create_engine(settings.effective_database_url)
    with engine.connect() as connection:
        revision = connection.execute(text("select version_num from alembic_version")).scalar()
    engine.dispose()
    print(json.dumps({
        "status": {path: r.status_code for path, r in responses.items()},
        "widget_sha": hashlib.sha256(responses["/widget/supportbot.js"].content).hexdigest(),
        "migrations_dir": str(MIGRATIONS_DIR),
        "revision": revision,
        "head": ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head(),
    }))
    """
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        origin = REPO_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, source / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("supportbot-*.whl")
    return built


def source_packages() -> set[str]:
    """Every package of the checkout, as a folder path (``bot/web/routes``)."""
    found = set()
    for top in ("bot", "ingest"):
        for init in (REPO_ROOT / top).rglob("__init__.py"):
            found.add(init.parent.relative_to(REPO_ROOT).as_posix())
    return found


def test_the_wheel_holds_every_package_and_every_asset(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {name.rsplit("/", 1)[0] for name in names if name.endswith("/__init__.py")}
    assert source_packages() <= packages, "a package is missing from pyproject's list"
    expected_files = [
        *(f"bot/web/widget_assets/{p.name}" for p in (REPO_ROOT / "widget").iterdir()),
        *(
            f"bot/web/{p.relative_to(REPO_ROOT / 'bot/web').as_posix()}"
            for folder in ("static", "templates")
            for p in (REPO_ROOT / "bot/web" / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        ),
        *(
            f"bot/core/{p.relative_to(REPO_ROOT / 'bot/core').as_posix()}"
            for p in (REPO_ROOT / "bot/core/migrations").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        ),
    ]
    assert [name for name in expected_files if name not in names] == []


def test_an_installed_wheel_serves_its_assets_and_migrates(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    pip_install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    subprocess.run(
        [*pip_install, "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", SERVE_FROM_INSTALL, str(site), str(tmp_path / "data")],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["status"] == {path: 200 for path in served["status"]}
    # The packaged copy of widget/supportbot.js (the checkout's may have been edited since).
    packaged = zipfile.ZipFile(wheel).read("bot/web/widget_assets/supportbot.js")
    assert served["widget_sha"] == hashlib.sha256(packaged).hexdigest()
    assert Path(served["migrations_dir"]).is_relative_to(site)
    assert served["revision"] == served["head"] is not None
