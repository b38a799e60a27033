"""/docs works on a machine without internet: Swagger UI's files come from this service.

A real Chromium opens the page with every request to another host blocked; the reference must
still render the API's operations, and no request may have tried to leave the machine.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from bot.core.settings import Settings
from ingest.embedder import Embedder
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS
from tests.helpers.live_server import LiveServer, ScriptedAnswerer

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]

LOCAL_HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[str]:
    """A live server (the session's embedder is already loaded, so it starts quickly)."""
    data_dir: Path = tmp_path_factory.mktemp("docs") / "data"
    settings = Settings(data_dir=data_dir, _env_file=None)
    with LiveServer(settings, ScriptedAnswerer()) as server:
        yield f"http://{LOCAL_HOST}:{server.port}"


def fetch(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("content-type", ""), response.read()


def test_the_docs_page_names_only_its_own_assets(base_url: str) -> None:
    status, content_type, body = fetch(f"{base_url}/docs")
    assert status == 200 and content_type.startswith("text/html")
    page = body.decode()
    assert not re.search(r"https?://", page), "the page points at another host"
    for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"):
        assert asset in page
        status, _, content = fetch(base_url + asset)
        assert status == 200 and len(content) > 10_000


def test_only_the_pages_assets_are_published(base_url: str) -> None:
    for name in ("swagger-ui-bundle.js.map", "index.html", "..%2Fswagger_ui_bundle%2F__init__.py"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            fetch(f"{base_url}/docs-assets/{name}")
        assert caught.value.code == 404


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed")
def test_swagger_ui_renders_with_every_other_host_blocked(base_url: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    requested: list[str] = []
    blocked: list[str] = []

    def local_only(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname == LOCAL_HOST:
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.route("**/*", local_only)
            page = context.new_page()
            page.on("request", lambda request: requested.append(request.url))
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{base_url}/docs")
            operation = page.locator(".opblock-summary-path", has_text=re.compile(r"^/api/ask$"))
            sync_api.expect(operation).to_be_visible(timeout=20_000)
            sync_api.expect(page.locator(".info .title")).to_contain_text("Supportbot")
        finally:
            browser.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert blocked == [], f"requests tried to leave the machine: {blocked}"
    web_requests = [url for url in requested if url.startswith(("http:", "https:"))]
    assert web_requests and all(urlsplit(url).hostname == LOCAL_HOST for url in web_requests)
    assert f"{base_url}/openapi.json" in web_requests
