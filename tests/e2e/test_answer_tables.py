"""A table in an answer renders as a table, in the widget and in the agent console, with its
cells escaped like any other text (a real Chromium against a real server).

The answer comes from a :class:`ScriptedAnswerer` so the test is about rendering, not retrieval:
a refund table whose cells carry HTML and a ``javascript:`` link that must stay inert text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.db import transaction
from bot.core.settings import Settings
from bot.people.users import create_user
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS
from tests.helpers.live_server import LiveServer, ScriptedAnswerer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

sync_api = pytest.importorskip("playwright.sync_api")
ws_sync = pytest.importorskip("websockets.sync.client")

PASSWORD = "agent-password-1"
XSS = '<img src=x onerror="window.__pwned=1">'
TABLE_ANSWER = (
    "Refunds go back to the original payment method.\n\n",
    "**How long it takes to reach you:**\n"
    "| Payment method | Time after we issue the refund |\n"
    "|---|---|\n"
    "| PayPal | **Within 24 hours** |\n"
    f"| {XSS} | [card](javascript:window.__pwned=2) |\n"
    "| iDEAL / Bancontact | 5–7 business days |",
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = Settings(data_dir=tmp_path / "data", business_hours="24/7", _env_file=None)
    live = LiveServer(settings, ScriptedAnswerer(TABLE_ANSWER))
    settings.allowed_origins = [f"http://127.0.0.1:{live.port}"]
    with live:
        with transaction(live.ctx.sessions) as session:
            create_user(session, "ana.smith@example.com", "agent", password=PASSWORD)
        yield live


@pytest.fixture
def page(server: LiveServer) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(20_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
        context.close()
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def check_table(table: Any, page: Any) -> None:
    """The refund table: header, three rows, the hostile cell shown as text and inert."""
    expect = sync_api.expect
    expect(table.locator("thead th")).to_have_text(
        ["Payment method", "Time after we issue the refund"]
    )
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(table.locator("tbody tr").nth(0).locator("td")).to_have_text(
        ["PayPal", "Within 24 hours"]
    )
    assert table.locator("tbody tr").nth(0).locator("td strong").count() == 1
    hostile = table.locator("tbody tr").nth(1).locator("td")
    expect(hostile.nth(0)).to_have_text(XSS)  # the markup, as text
    expect(hostile.nth(1)).to_have_text("[card](javascript:window.__pwned=2)")
    assert table.locator("img, script, a").count() == 0
    assert page.evaluate("() => window.__pwned") is None


def test_widget_renders_an_answer_table_with_escaped_cells(server: LiveServer, page: Any) -> None:
    page.goto(f"http://127.0.0.1:{server.port}/")
    widget = page.locator("supportbot-widget")
    widget.locator(".launcher").click()
    sync_api.expect(widget.locator('.subtitle[data-connection="online"]')).to_be_visible()
    box = widget.locator("textarea")
    box.fill("How long do refunds take?")
    box.press("Enter")
    answer = widget.locator(".msg.bot").last
    sync_api.expect(answer).not_to_contain_class("streaming")
    sync_api.expect(answer.locator(".bubble p").first).to_have_text(
        "Refunds go back to the original payment method."
    )
    check_table(answer.locator(".bubble table"), page)
    # No pipes left as text: the table is a table.
    assert "|" not in answer.locator(".bubble").inner_text().replace(XSS, "")
    # One citation: the chip under the message.
    sync_api.expect(answer.locator(".sources a")).to_have_count(1)
    page.reload()  # restored from storage: still a table
    check_table(widget.locator(".msg.bot").last.locator(".bubble table"), page)


def rendered_by_widget(server: LiveServer, page: Any, cases: dict[str, str]) -> dict[str, str]:
    """Each case's Markdown as the widget's own renderer turns it into HTML, on the demo page."""
    page.goto(f"http://127.0.0.1:{server.port}/")
    page.locator("supportbot-widget").locator(".launcher").wait_for()
    rendered: dict[str, str] = page.evaluate(
        "(cases) => Object.fromEntries(Object.keys(cases).map(k => "
        "[k, customElements.get('supportbot-widget').renderMarkdown(k)]))",
        cases,
    )
    return rendered


def test_widget_renderer_turns_markdown_tables_into_escaped_html(
    server: LiveServer, page: Any
) -> None:
    cases = {
        "| a | b |\n|---|:--:|\n| <b>x</b> | **y** |": (
            '<table><thead><tr><th>a</th><th style="text-align:center">b</th></tr></thead>'
            "<tbody><tr><td>&lt;b&gt;x&lt;/b&gt;</td>"
            '<td style="text-align:center"><strong>y</strong></td></tr></tbody></table>'
        ),
        "| one \\| two |\n|---|\n| 1 |": (
            "<table><thead><tr><th>one | two</th></tr></thead>"
            "<tbody><tr><td>1</td></tr></tbody></table>"
        ),
        # Without its header rule a pipe line is text, as in any Markdown renderer.
        "| a | b |\nnext": "<p>| a | b |<br>next</p>",
    }
    assert rendered_by_widget(server, page, cases) == cases


def test_widget_renderer_nests_sub_items_and_renders_italics(server: LiveServer, page: Any) -> None:
    """An article's nested list ("Klarna" with its two options) and its *italics* used to arrive
    flattened into the parent item with their asterisks showing."""
    cases = {
        "- PayPal\n- Klarna\n    - *Pay in 30 days* – later\n    - *Pay in 3* – in 3\n- Cash": (
            "<ul><li>PayPal</li><li>Klarna<ul><li><em>Pay in 30 days</em> – later</li>"
            "<li><em>Pay in 3</em> – in 3</li></ul></li><li>Cash</li></ul>"
        ),
        "1. Open it\n   1. on the web\n   2. in the app\n2. Save": (
            "<ol><li>Open it<ol><li>on the web</li><li>in the app</li></ol></li><li>Save</li></ol>"
        ),
        # Not emphasis: inside a word, around a space, or markup that must stay escaped.
        "2*3*4 and * spaced * and *<b>x</b>*": (
            "<p>2*3*4 and * spaced * and <em>&lt;b&gt;x&lt;/b&gt;</em></p>"
        ),
        # An indented line without an open list is a paragraph, as before.
        "    - alone": "<p>- alone</p>",
    }
    assert rendered_by_widget(server, page, cases) == cases


def test_agent_console_renders_the_answer_table_as_the_customer_saw_it(
    server: LiveServer, page: Any
) -> None:
    expect = sync_api.expect
    base = f"http://127.0.0.1:{server.port}"
    page.goto(base + "/agent")
    page.fill("input[name=email]", "ana.smith@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#connection")).to_have_text("Live")

    ws = ws_sync.connect(base.replace("http", "ws") + "/ws/chat", origin=base, open_timeout=10)
    try:
        ws.send('{"type": "hello"}')
        conversation_id = re.search(r'"conversation_id":\s*"([^"]+)"', ws.recv(timeout=15))
        assert conversation_id
        ws.send('{"type": "message", "client_msg_id": "m1", "text": "How long do refunds take?"}')
        while '"role":"bot"' not in (frame := ws.recv(timeout=30)).replace(" ", ""):
            assert frame
        ws.send('{"type": "message", "client_msg_id": "m2", "text": "talk to a human pls"}')
        while '"awaiting_human"' not in ws.recv(timeout=30):
            pass
        item = page.locator(f'.queue-item[data-conversation-id="{conversation_id.group(1)}"]')
        item.click()
        bot = page.locator("#transcript .msg.bot").first
        check_table(bot.locator(".text table"), page)
        expect(bot.locator(".text p").first).to_have_text(
            "Refunds go back to the original payment method."
        )
        # The customer's own words stay plain text.
        assert page.locator("#transcript .msg.customer .text p").count() == 0
        # Cited once: the source under the message, not repeated in its text.
        expect(bot.locator(".cites li")).to_have_count(1)
        assert "Source" not in bot.locator(".text").inner_text()
    finally:
        ws.close()
