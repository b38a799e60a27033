"""The embeddable widget in a real Chromium, against a real server with a real (small) KB.

The server is ``tests.helpers.live_server.LiveServer`` (uvicorn on a free port, the real chat
socket, store and default extractive answerer); the KB is Markdown written into a temp dir and
indexed by the ingest pipeline. The browser loads the demo page at ``/``, which embeds the widget
with its one script tag, exactly as a customer's site would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.core.settings import Settings
from ingest.embedder import Embedder
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS, RECORD_FRAMES, OtherOrigin

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

sync_api = pytest.importorskip("playwright.sync_api")

RETURNS_URL = "https://help.parcelly.example/returns/return-policy"
ARTICLES = {
    "returns/return-policy.md": f"""---
id: returns/return-policy
title: Parcelly's return policy
url: {RETURNS_URL}
---
# Parcelly's return policy

You can return most items within **30 days of delivery** for a full refund of the item price.

## Return window
You have 30 days from the day your parcel was delivered to start a return. After starting the
return, you have 14 days to drop the parcel off.

## Items that cannot be returned
- Opened food and drink
- Personalised or engraved items
- Gift cards
""",
    "shipping/shipping-options.md": """---
id: shipping/shipping-options
title: Shipping options and costs
url: https://help.parcelly.example/orders-shipping/shipping-options
---
# Shipping options and costs

## Standard delivery
Standard delivery takes 3 to 5 business days and costs €4.95. Orders of €50 or more ship free.

## Express delivery
Express delivery takes 1 to 2 business days and costs €9.95.
""",
    "account/reset-password.md": """---
id: account/reset-password
title: Resetting your password
url: https://help.parcelly.example/account/reset-password
---
# Resetting your password

## How to reset it
1. Open the sign-in page and select Forgot password.
2. Enter the email address of your account.
3. Open the link in the email we send you. The link is valid for 60 minutes.
""",
}

QUESTION = "How many days do I have to return an item?"
# Watches the widget's transcript and remembers any bot answer seen while it still streams.
WATCH_STREAMING = """() => {
  const log = document.querySelector('supportbot-widget').shadowRoot.querySelector('.log');
  window.__streamed = [];
  new MutationObserver(() => {
    const node = log.querySelector('.msg.bot.streaming .bubble');
    if (node && node.textContent) window.__streamed.push(node.textContent);
  }).observe(log, {childList: true, subtree: true, characterData: true, attributes: true});
}"""


@dataclass(frozen=True)
class Site:
    """The running server, the address the browser opens (also its origin), and two other
    websites that embed the widget: one on the allow-list, one not."""

    server: Any
    base_url: str
    customer_site: str
    stranger_site: str


class CustomerSite(OtherOrigin):
    """Someone else's website on its own origin: one page that embeds the widget from the
    Supportbot server, under a strict Content-Security-Policy (no inline styles or scripts)."""

    def embed(self, server_url: str) -> None:
        ws_url = server_url.replace("http://", "ws://")
        self.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src {server_url}; style-src 'self'; connect-src {ws_url}"
        )
        self.html = (
            "<!doctype html><html><head><title>Someone else's shop</title></head><body>"
            "<h1>Kitchenware Direct</h1>"
            f'<script src="{server_url}/widget/supportbot.js" data-server="{server_url}" '
            'data-title="Kitchenware Help" data-color="#b42318" defer></script>'
            "</body></html>"
        ).encode()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Site]:
    """A real server whose allowed origin is its own, serving the demo page, on a tiny KB."""
    from ingest.pipeline import index_paths
    from tests.helpers.live_server import LiveServer

    root = tmp_path_factory.mktemp("widget")
    kb = root / "kb"
    for name, text in ARTICLES.items():
        (kb / name).parent.mkdir(parents=True, exist_ok=True)
        (kb / name).write_text(text, encoding="utf-8")
    settings = Settings(data_dir=root / "data", kb_path=kb, _env_file=None)
    report = index_paths([kb], settings, embedder)
    assert not report.failed, report.failed
    server = LiveServer(settings)
    base_url = f"http://127.0.0.1:{server.port}"
    with CustomerSite() as customer, CustomerSite() as stranger:
        customer.embed(base_url)
        stranger.embed(base_url)
        # The demo page is served by the server itself, so its origin is allowed, and so is the
        # customer's site; the ports are known only now, before the server reads its settings.
        settings.allowed_origins = [base_url, customer.url]
        with server:
            yield Site(server, base_url, customer.url, stranger.url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def widget(page: Any) -> Any:
    return page.locator("supportbot-widget")


def open_widget(page: Any) -> None:
    widget(page).locator(".launcher").click()
    sync_api.expect(widget(page).locator(".panel")).to_be_visible()
    connected = widget(page).locator('.subtitle[data-connection="online"]')
    sync_api.expect(connected).to_be_visible(timeout=20_000)


def ask(page: Any, text: str) -> None:
    box = widget(page).locator("textarea")
    box.fill(text)
    box.press("Enter")


def stored(page: Any) -> dict[str, Any]:
    """The widget's saved conversation (localStorage), as the page sees it."""
    raw = page.evaluate(
        "() => Object.entries(localStorage).find(([k]) => k.startsWith('supportbot:v1:'))[1]"
    )
    data: dict[str, Any] = json.loads(raw)
    return data


def test_script_and_demo_page_are_served_with_cache_headers(live: Site) -> None:
    import httpx

    script = httpx.get(live.base_url + "/widget/supportbot.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "max-age=300" in script.headers["cache-control"]
    assert script.headers["cross-origin-resource-policy"] == "cross-origin"
    etag = script.headers["etag"]
    again = httpx.get(live.base_url + "/widget/supportbot.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""

    demo = httpx.get(live.base_url + "/")
    assert demo.status_code == 200 and demo.headers["content-type"].startswith("text/html")
    assert '<script src="/widget/supportbot.js"' in demo.text


def test_question_streams_then_final_answer_with_source_and_survives_reload(
    live: Site, page: Any
) -> None:
    page.add_init_script(RECORD_FRAMES)
    page.goto(live.base_url + "/")
    w = widget(page)
    open_widget(page)
    # Opening moves focus into the composer.
    assert (
        page.evaluate(
            "() => document.querySelector('supportbot-widget').shadowRoot.activeElement?.tagName"
        )
        == "TEXTAREA"
    )
    page.evaluate(WATCH_STREAMING)

    ask(page, QUESTION)
    customer = w.locator(".msg.customer").last
    sync_api.expect(customer).to_have_text(QUESTION)  # shown at once...
    sync_api.expect(customer).not_to_contain_class("pending", timeout=10_000)  # ...then acked

    answer = w.locator(".msg.bot").last
    link = answer.locator(f'.sources a[href="{RETURNS_URL}"]')
    sync_api.expect(link).to_be_visible(timeout=60_000)
    sync_api.expect(answer).not_to_contain_class("streaming")
    sync_api.expect(answer.locator(".bubble")).to_contain_text("30 days")
    sync_api.expect(answer.locator(".feedback")).to_contain_text("Was this helpful?")
    assert link.get_attribute("target") == "_blank"

    # It streamed: deltas arrived, the page showed a partial answer, and the final message
    # carries the whole text the deltas added up to.
    frames = page.evaluate("() => window.__frames")
    deltas = "".join(f["text"] for f in frames if f["type"] == "delta")
    final = next(f for f in frames if f["type"] == "message" and f["role"] == "bot")
    assert deltas and deltas == final["text"]
    assert page.evaluate("() => window.__streamed.length") > 0
    first_id = page.evaluate("() => window.__sent.find(f => f.type === 'message').client_msg_id")
    first_seq = next(f["seq"] for f in frames if f["type"] == "ack")

    # Feedback goes over the socket and the buttons give way to a thank-you.
    answer.get_by_role("button", name="Yes, this was helpful").click()
    sync_api.expect(answer.locator(".feedback")).to_contain_text("Thanks")
    saved = stored(page)
    assert saved["last_seq"] >= final["seq"]

    # Reload: the panel is open again with the same conversation, nothing doubled.
    page.reload()
    sync_api.expect(w.locator(".panel")).to_be_visible()
    sync_api.expect(w.locator(".msg.customer")).to_have_count(1)
    sync_api.expect(w.locator(".msg.customer")).to_have_text(QUESTION)
    sync_api.expect(w.locator(f'.msg.bot .sources a[href="{RETURNS_URL}"]')).to_have_count(1)
    sync_api.expect(w.locator('.subtitle[data-connection="online"]')).to_be_visible(timeout=20_000)
    hello = page.evaluate("() => window.__frames.find(f => f.type === 'welcome')")
    assert hello["conversation_id"] == saved["conversation_id"] and hello["resumed"] is True

    # Without the local copy of the transcript, the server replays it on resume (last_seq 0).
    page.evaluate(
        """() => {
          const key = Object.keys(localStorage).find(k => k.startsWith('supportbot:v1:'));
          const data = JSON.parse(localStorage.getItem(key));
          data.messages = []; data.last_seq = 0;
          localStorage.setItem(key, JSON.stringify(data));
        }"""
    )
    page.reload()
    sync_api.expect(w.locator(".msg.customer")).to_have_text(QUESTION, timeout=20_000)
    sync_api.expect(w.locator(f'.msg.bot .sources a[href="{RETURNS_URL}"]')).to_have_count(1)
    sync_api.expect(w.locator(".msg.bot .feedback")).to_contain_text("Thanks")

    # An ack that never arrived (the page closed first): the message is still in the outbox on
    # the next load, shown pending, resent with the SAME client_msg_id, acked with the seq it
    # already had, and neither shown twice nor answered twice.
    page.evaluate(
        """(id) => {
          const key = Object.keys(localStorage).find(k => k.startsWith('supportbot:v1:'));
          const data = JSON.parse(localStorage.getItem(key));
          data.outbox = [{client_msg_id: id, text: 'How many days do I have to return an item?'}];
          localStorage.setItem(key, JSON.stringify(data));
        }""",
        first_id,
    )
    page.reload()
    page.wait_for_function("() => window.__frames.some(f => f.type === 'ack')", timeout=20_000)
    acks = page.evaluate("() => window.__frames.filter(f => f.type === 'ack')")
    assert acks == [{"type": "ack", "client_msg_id": first_id, "seq": first_seq, "duplicate": True}]
    sync_api.expect(w.locator(".msg.customer")).to_have_count(1)
    sync_api.expect(w.locator(".msg.customer")).not_to_contain_class("pending")
    page.wait_for_timeout(1500)
    assert not page.evaluate(
        "() => window.__frames.some(f => ['delta', 'message'].includes(f.type))"
    )
    assert stored(page)["outbox"] == []

    # A dropped socket: a message sent meanwhile waits as pending in the outbox, goes out after
    # the reconnect, and is acked and answered.
    pending = page.evaluate(
        """() => {
          const w = document.querySelector('supportbot-widget');
          w._ws.close();
          w.sendMessage('How much does express delivery cost?');
          const mine = w.shadowRoot.querySelectorAll('.msg.customer');
          return mine[mine.length - 1].className;
        }"""
    )
    assert "pending" in pending.split()
    sync_api.expect(w.locator(".msg.customer")).to_have_count(2)
    sync_api.expect(w.locator(".msg.customer").last).not_to_contain_class("pending", timeout=20_000)
    sync_api.expect(w.locator(".msg.bot")).to_have_count(2, timeout=60_000)
    sync_api.expect(w.locator(".msg.bot").last).to_contain_text("9.95")
    assert stored(page)["outbox"] == []


def test_widget_styles_do_not_leak_into_the_page_or_from_it(live: Site, browser: Any) -> None:
    probe = """() => ['body', '#hero-title', '#shop-now', 'p.lead', '.card h3'].map(sel => {
        const s = getComputedStyle(document.querySelector(sel));
        return [sel, s.fontFamily, s.fontSize, s.color, s.backgroundColor, s.lineHeight,
                s.margin, s.padding, s.boxSizing, s.textTransform].join('|');
      })"""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        bare = context.new_page()
        bare.route("**/widget/supportbot.js", lambda route: route.abort())
        bare.goto(live.base_url + "/")
        without_widget = bare.evaluate(probe)
        sheets_without = bare.evaluate("() => document.styleSheets.length")
        bare.close()

        page = context.new_page()
        page.goto(live.base_url + "/")
        open_widget(page)
        assert page.evaluate(probe) == without_widget
        assert page.evaluate("() => document.styleSheets.length") == sheets_without
        assert page.evaluate("() => document.head.querySelectorAll('style').length") == 1

        # The page's own broad rules (button { text-transform: uppercase; font-family: Georgia })
        # do not reach the widget's buttons.
        send = widget(page).locator(".send")
        assert send.evaluate("b => getComputedStyle(b).textTransform") == "none"
        handoff = widget(page).locator(".handoff")
        assert "Georgia" not in handoff.evaluate("b => getComputedStyle(b).fontFamily")
        assert send.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(15, 118, 110)"
    finally:
        context.close()


def test_html_in_a_message_is_shown_as_text_and_never_runs(live: Site, page: Any) -> None:
    payload = (
        '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
        "<b>bold?</b> [x](javascript:window.__pwned=3)"
    )
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(live.base_url + "/")
    open_widget(page)
    ask(page, payload)
    mine = widget(page).locator(".msg.customer").last
    sync_api.expect(mine).not_to_contain_class("pending", timeout=10_000)
    sync_api.expect(widget(page).locator(".msg.bot")).to_have_count(1, timeout=60_000)

    def check() -> None:
        bubble = widget(page).locator(".msg.customer .bubble").last
        assert bubble.text_content() == payload
        assert bubble.evaluate("b => b.children.length") == 0
        assert widget(page).locator(".log img, .log script, .log b").count() == 0
        assert widget(page).locator('.log a[href^="javascript"]').count() == 0
        assert page.evaluate("() => window.__pwned") is None
        assert dialogs == []

    check()
    page.reload()  # restored from storage: still text
    sync_api.expect(widget(page).locator(".msg.customer")).to_have_count(1)
    check()


def test_markdown_renderer_escapes_first_and_allows_only_safe_tags(live: Site, page: Any) -> None:
    page.goto(live.base_url + "/")
    widget(page).locator(".launcher").wait_for()
    cases = {
        "**Bold** <script>x</script>": (
            "<p><strong>Bold</strong> &lt;script&gt;x&lt;/script&gt;</p>"
        ),
        "- one\n- two": "<ul><li>one</li><li>two</li></ul>",
        "1. first\n2. second": "<ol><li>first</li><li>second</li></ol>",
        "[Return policy](https://help.example.com/r?a=1&b=2)": (
            '<p><a href="https://help.example.com/r?a=1&amp;b=2" target="_blank" '
            'rel="noopener noreferrer nofollow">Return policy</a></p>'
        ),
        "[bad](javascript:alert(1))": "<p>[bad](javascript:alert(1))</p>",
        '[q](https://a.example/"onmouseover="x)': (
            '<p>[q](<a href="https://a.example/" target="_blank" '
            'rel="noopener noreferrer nofollow">https://a.example/</a>&quot;onmouseover=&quot;x)</p>'
        ),
        "one\n\ntwo\nthree": "<p>one</p><p>two<br>three</p>",
    }
    rendered = page.evaluate(
        "(cases) => Object.fromEntries(Object.keys(cases).map(k => "
        "[k, customElements.get('supportbot-widget').renderMarkdown(k)]))",
        cases,
    )
    assert rendered == cases


def test_keyboard_focus_and_full_screen_on_a_phone(live: Site, browser: Any) -> None:
    # Reduced motion: no opening animation, so the panel is measured where it comes to rest.
    context = browser.new_context(
        viewport={"width": 375, "height": 740}, has_touch=True, reduced_motion="reduce"
    )
    try:
        page = context.new_page()
        page.goto(live.base_url + "/")
        w = widget(page)
        launcher = w.locator(".launcher")
        sync_api.expect(launcher).to_have_attribute("aria-expanded", "false")
        launcher.focus()
        page.keyboard.press("Enter")
        panel = w.locator(".panel")
        sync_api.expect(panel).to_be_visible()
        sync_api.expect(w.locator("textarea")).to_be_focused()
        box = panel.bounding_box()
        assert box == {"x": 0, "y": 0, "width": 375, "height": 740}
        sync_api.expect(launcher).to_be_hidden()  # the panel covers the page; no stray button

        # Tab stays inside the full-screen panel; Escape closes it and focus returns.
        for _ in range(8):
            page.keyboard.press("Tab")
            inside = page.evaluate(
                "() => document.activeElement === document.querySelector('supportbot-widget')"
            )
            assert inside
        page.keyboard.press("Escape")
        sync_api.expect(panel).to_be_hidden()
        sync_api.expect(launcher).to_be_focused()
        sync_api.expect(launcher).to_have_attribute("aria-expanded", "false")
    finally:
        context.close()


def test_embedded_on_another_origin_under_a_strict_csp(live: Site, page: Any) -> None:
    """The real deployment: a different website, one script tag, a CSP without inline styles."""
    warnings: list[str] = []
    page.on("console", lambda msg: warnings.append(msg.text) if msg.type == "warning" else None)
    page.goto(live.customer_site + "/")
    open_widget(page)
    w = widget(page)
    sync_api.expect(w.locator(".title")).to_have_text("Kitchenware Help")
    assert w.locator(".send").evaluate("b => getComputedStyle(b).backgroundColor") == (
        "rgb(180, 35, 24)"
    )
    assert w.locator(".panel").evaluate("p => getComputedStyle(p).position") == "fixed"
    ask(page, QUESTION)
    sync_api.expect(w.locator(f'.msg.bot .sources a[href="{RETURNS_URL}"]')).to_be_visible(
        timeout=60_000
    )
    assert warnings == []


def test_a_site_missing_from_the_allow_list_cannot_chat(live: Site, page: Any) -> None:
    warnings: list[str] = []
    page.on("console", lambda msg: warnings.append(msg.text) if msg.type == "warning" else None)
    page.goto(live.stranger_site + "/")
    widget(page).locator(".launcher").click()
    sync_api.expect(widget(page).locator(".panel")).to_be_visible()
    page.wait_for_function(
        "() => document.querySelector('supportbot-widget')._warned === true", timeout=20_000
    )
    sync_api.expect(widget(page).locator(".subtitle")).not_to_contain_text("Online")
    assert any("SUPPORTBOT_ALLOWED_ORIGINS" in text for text in warnings), warnings
    assert live.stranger_site in " ".join(warnings)


def test_handoff_agent_reply_resolution_and_rating(live: Site, page: Any) -> None:
    """Talk to a person -> an agent (over the real agent API) replies by name -> resolved ->
    the customer rates the conversation once."""
    import httpx
    from sqlalchemy import select

    from bot.core.db import transaction
    from bot.core.models import CsatRating
    from bot.people.users import create_user

    page.goto(live.base_url + "/")
    open_widget(page)
    w = widget(page)
    w.get_by_role("button", name="Talk to a person").click()
    banner = w.locator(".banner")
    sync_api.expect(banner).to_contain_text("Waiting for a person")
    sync_api.expect(w.locator(".handoff")).to_be_disabled()
    conversation_id = stored(page)["conversation_id"]

    with transaction(live.server.ctx.sessions) as session:
        _, token = create_user(session, "maria.jansen@parcelly.example", "agent")
    api = httpx.Client(base_url=live.base_url, headers={"Authorization": f"Bearer {token}"})
    reply = api.post(
        f"/api/agent/conversations/{conversation_id}/messages",
        json={"text": "Hi, I'm Maria. I can see order **#PA-20931** <script>x</script>."},
    )
    assert reply.status_code == 201, reply.text
    agent = w.locator(".msg.agent")
    sync_api.expect(agent.locator(".author")).to_have_text("Maria Jansen")
    sync_api.expect(agent.locator(".bubble strong")).to_have_text("#PA-20931")
    sync_api.expect(agent.locator(".bubble")).to_contain_text("<script>x</script>")
    sync_api.expect(banner).to_contain_text("Maria Jansen joined the conversation")
    sync_api.expect(w.locator(".msg.system").first).to_have_css("text-align", "center")

    assert api.post(f"/api/agent/conversations/{conversation_id}/resolve").status_code == 200
    sync_api.expect(banner).to_contain_text("resolved")
    csat = w.locator(".csat")
    sync_api.expect(csat).to_contain_text("How would you rate this conversation?")
    csat.get_by_role("button", name="4 out of 5").click()
    # Then the effort question (CES, 1-7), focused for keyboard users; the score is stored now.
    effort = csat.get_by_role("group", name="How easy was it to get help?", exact=False)
    sync_api.expect(csat).to_contain_text("How easy was it to get help?")
    sync_api.expect(effort.get_by_role("button")).to_have_count(7)
    sync_api.expect(effort.get_by_role("button", name="1 out of 7")).to_be_focused()
    effort.get_by_role("button", name="6 out of 7").click()
    sync_api.expect(csat).to_have_text("Thank you for your feedback!")

    page.reload()  # asked once: not again after a reload
    sync_api.expect(w.locator(".msg.agent")).to_have_count(1)
    sync_api.expect(w.locator(".csat")).to_have_count(0)
    with transaction(live.server.ctx.sessions) as session:
        ratings = session.execute(
            select(CsatRating.score, CsatRating.ces)
            .where(CsatRating.conversation_id == conversation_id)
            .order_by(CsatRating.id)
        ).all()
    # The score as soon as it was picked, then again with the effort answer; reports use the
    # latest of each.
    assert [tuple(r) for r in ratings] == [(4, None), (4, 6)]
