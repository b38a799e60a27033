"""How the widget reaches browsers: the minified build, its size, compression and caching.

``widget/supportbot.min.js`` is built from the readable ``widget/supportbot.js`` by
``scripts/build_widget.sh`` and committed; its banner records the SHA-256 of the source it was
built from, so a source edit without a rebuild fails here (not in a customer's browser). The
build must stay within 15 KB gzipped. The service sends it gzip-compressed, cached for a year
at the versioned URL and for five minutes at the unversioned ones.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot.core.settings import Settings
from bot.web.app import create_app

WIDGET = Path(__file__).resolve().parents[2] / "widget"
BUDGET_GZIP_BYTES = 15 * 1024
REBUILD = "run scripts/build_widget.sh and commit widget/supportbot.min.js"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("delivery") / "data", _env_file=None)
    with TestClient(create_app(settings), base_url="http://localhost:8000") as test_client:
        yield test_client


def test_the_committed_minified_build_matches_the_source() -> None:
    minified = (WIDGET / "supportbot.min.js").read_text(encoding="utf-8")
    banner = re.match(r"/\*! Supportbot widget, [^ ]+ from sha256:([0-9a-f]{32}) \*/", minified)
    assert banner, "widget/supportbot.min.js has no build banner: " + REBUILD
    source = hashlib.sha256((WIDGET / "supportbot.js").read_bytes()).hexdigest()[:32]
    assert banner.group(1) == source, "widget/supportbot.min.js is stale: " + REBUILD


def test_the_minified_build_is_within_budget_and_smaller_than_the_source() -> None:
    minified = (WIDGET / "supportbot.min.js").read_bytes()
    size = len(gzip.compress(minified, 9))
    assert size <= BUDGET_GZIP_BYTES, f"{size} bytes gzipped, budget {BUDGET_GZIP_BYTES}"
    assert len(minified) < 0.8 * len((WIDGET / "supportbot.js").read_bytes())


def test_every_widget_file_ships_in_the_wheel() -> None:
    pyproject = tomllib.loads((WIDGET.parent / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["bot.web.widget_assets"]
    for name in ["supportbot.js", "supportbot.min.js", "extras.js", "demo.html", *LOCALE_FILES]:
        assert any(fnmatch(name, pattern) for pattern in patterns), name


LOCALE_FILES = ["locale.de.js", "locale.fr.js", "locale.es.js"]


def catalogue_keys(text: str) -> set[str]:
    """The keys of a catalogue written as ``key: "text"`` pairs."""
    return set(re.findall(r"(?:^|[{,])\s*(\w+): \"", text, re.M))


def test_every_language_has_every_widget_text() -> None:
    source = (WIDGET / "supportbot.js").read_text(encoding="utf-8")
    english = source[source.index("var CATALOGUES = {") : source.index("var LOCALES")]
    keys = catalogue_keys(english)
    assert len(keys) > 60
    for name in LOCALE_FILES:
        text = (WIDGET / name).read_text(encoding="utf-8")
        assert catalogue_keys(text) == keys, name
        # Placeholders are the same as in English (a translation must not drop {name}).
        for key in keys:
            mine = re.search(rf"\b{key}: \"([^\"]*)\"", text)
            theirs = re.search(rf"\b{key}: \"([^\"]*)\"", english)
            assert mine and theirs
            holes = set(re.findall(r"\{\w+\}", mine.group(1)))
            assert holes == set(re.findall(r"\{\w+\}", theirs.group(1))), (name, key)


def test_versioned_url_is_immutable_and_gzipped(client: TestClient) -> None:
    info = client.get("/widget/version.json").json()
    minified = (WIDGET / "supportbot.min.js").read_bytes()
    version = hashlib.sha256(minified).hexdigest()[:12]
    assert info == {"version": version, "script": f"/widget/supportbot.{version}.js"}

    response = client.get(info["script"], headers={"Accept-Encoding": "gzip, br"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    assert int(response.headers["content-length"]) <= BUDGET_GZIP_BYTES
    assert response.content == minified  # httpx decoded it: the same bytes

    # Without gzip in Accept-Encoding: the plain bytes, and another ETag.
    plain = client.get(info["script"], headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == minified
    assert plain.headers["etag"] != response.headers["etag"]
    again = client.get(info["script"], headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_an_old_version_redirects_to_the_current_one(client: TestClient) -> None:
    current = client.get("/widget/version.json").json()["script"]
    old = client.get("/widget/supportbot.0123456789ab.js", follow_redirects=False)
    assert old.status_code == 302
    assert old.headers["location"] == current.rsplit("/", 1)[1]  # relative: prefixes work
    assert "immutable" not in old.headers["cache-control"]
    assert client.get("/widget/supportbot.0123456789ab.js").status_code == 200


def test_unversioned_urls_keep_working_with_a_short_cache(client: TestClient) -> None:
    for path, file in [
        ("/widget/supportbot.js", "supportbot.js"),
        ("/widget/supportbot.min.js", "supportbot.min.js"),
        ("/widget/locale.de.js", "locale.de.js"),
    ]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["cache-control"].startswith("public, max-age=300"), path
        assert response.headers["content-encoding"] == "gzip", path
        assert response.content == (WIDGET / file).read_bytes(), path
    assert client.get("/widget/locale.ja.js").status_code == 404
    assert client.get("/widget/locale.en.js").status_code == 404  # English is in the script
