"""The command line starts without the heavy libraries: they load only in the commands that use
them (``serve``, ``ask``, ``eval``, an ``ingest`` with something to embed).

Each check runs in a fresh interpreter, since this test process has long imported them all.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO_ROOT

HEAVY = (
    "torch",
    "sentence_transformers",
    "transformers",
    "chromadb",
    "langchain",
    "langchain_core",
)

REPORT_HEAVY = f"""
import json, sys
print(json.dumps(sorted(name for name in {HEAVY!r} if name in sys.modules)))
"""


def heavy_modules_after(code: str) -> list[str]:
    """The heavy top-level modules a fresh interpreter holds after running ``code``."""
    script = textwrap.dedent(code) + REPORT_HEAVY
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize("module", ["bot.cli", "ingest.pipeline", "bot.web.app"])
def test_importing_loads_no_heavy_library(module: str) -> None:
    assert heavy_modules_after(f"import {module}") == []


@pytest.mark.parametrize("argv", [["--help"], ["user", "--help"], ["ingest", "--help"]])
def test_help_loads_no_heavy_library(argv: list[str]) -> None:
    code = f"""
    import contextlib, io
    from bot.cli import app
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            app({argv!r}, prog_name="supportbot")
        except SystemExit as exit:
            assert exit.code == 0, exit.code
    """
    assert heavy_modules_after(code) == []
