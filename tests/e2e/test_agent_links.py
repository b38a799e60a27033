"""Defect 7 (issue #12): ``javascript:`` links in the agent console. A bot message's source URL
(article metadata) went into ``a.href`` unchecked, so a ``javascript:`` URL would run in the
agent's signed-in page on click. The console now links only http(s) URLs (``safeUrl``); this
runs that very function, cut from ``agent.js``, in Chromium's own URL parser.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS

AGENT_JS = Path(__file__).resolve().parents[2] / "bot" / "web" / "static" / "agent.js"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

sync_api = pytest.importorskip("playwright.sync_api")


def safe_url_source() -> str:
    source = AGENT_JS.read_text()
    match = re.search(r"\n  function safeUrl\(url\) \{\n.*?\n  \}\n", source, re.S)
    assert match, "agent.js has no safeUrl"
    return match.group(0)


def test_agent_links_every_source_link_goes_through_safe_url() -> None:
    source = AGENT_JS.read_text()
    assert "a.href = s.url" not in source
    assert source.count("safeUrl(s.url)") >= 2  # the transcript's cites and the sources panel


def test_agent_links_only_http_and_https_become_links() -> None:
    cases = {
        "https://help.example.com/returns": "https://help.example.com/returns",
        "http://help.example.com/a?b=c": "http://help.example.com/a?b=c",
        "javascript:alert(document.cookie)": None,
        " JavaScript:alert(1)": None,
        "java\tscript:alert(1)": None,
        "data:text/html,<script>alert(1)</script>": None,
        "vbscript:msgbox(1)": None,
        "": None,
    }
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto("about:blank")
            results = page.evaluate(
                "(cases) => {" + safe_url_source() + " return cases.map(safeUrl); }",
                list(cases),
            )
        finally:
            browser.close()
    assert dict(zip(cases, results, strict=True)) == cases
