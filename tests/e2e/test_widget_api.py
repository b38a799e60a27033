"""``window.Supportbot``, the page's JavaScript API, in a real Chromium against a real server.

The page embeds the shipped build (the versioned, minified ``/widget/supportbot.<v>.js``), with
the documented stub before it, so calls made before the script arrives are queued. The page is
another website (its own origin, on the allow-list); the server is the real app on a real port
with a scripted answerer (the API, not retrieval, is under test).
Each public call and event has a test: ``open``/``close``/``on("open"|"close"|"ready")``,
``ask`` with ``message`` events, ``handoff`` and ``resolved`` events, ``setLocale``,
``identify``/``logout``, and a long paste that is refused with a visible count, never cut.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bot.core.settings import Settings
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS, RECORD_FRAMES, OtherOrigin

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

sync_api = pytest.importorskip("playwright.sync_api")

# The stub from docs/widget.md, verbatim: calls before the script loads go to Supportbot.q.
STUB = """
(function (w, names) {
  var s = (w.Supportbot = w.Supportbot || { q: [] });
  names.forEach(function (n) {
    s[n] = s[n] || function () { s.q.push([n, [].slice.call(arguments)]); };
  });
})(window, ["open", "close", "toggle", "ask", "identify", "logout", "setLocale", "on", "off"]);
"""
# Every event the API emits, recorded in order as [name, detail].
RECORD_EVENTS = """
window.__events = [];
["ready", "open", "close", "message", "handoff", "resolved"].forEach(function (name) {
  Supportbot.on(name, function (detail) { window.__events.push([name, detail]); });
});
"""


@pytest.fixture(scope="module")
def site() -> Iterator[OtherOrigin]:
    with OtherOrigin() as shop_site:
        yield shop_site


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, site: OtherOrigin) -> Iterator[Any]:
    from tests.helpers.live_server import LiveServer, ScriptedAnswerer

    root = tmp_path_factory.mktemp("widget-api")
    settings = Settings(
        data_dir=root / "data",
        business_hours="24/7",
        allowed_origins=[site.url],
        _env_file=None,
    )
    with LiveServer(settings, ScriptedAnswerer()) as live:
        live.site = site
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def base(server: Any) -> str:
    return f"http://127.0.0.1:{server.port}"


def shop(page: Any, server: Any, *, before: str = "", attrs: str = "", lang: str = "en") -> None:
    """Open a page on the server's origin that embeds the versioned build after the stub and
    ``before`` (a page's own early calls)."""
    import httpx

    version = httpx.get(base(server) + "/widget/version.json").json()
    server.site.html = (
        f'<!doctype html><html lang="{lang}"><head><title>Shop</title></head><body>'
        '<h1>Shop</h1><button id="help" type="button">Help</button>'
        f"<script>{STUB}{RECORD_EVENTS}{before}</script>"
        f'<script src="{base(server)}{version["script"]}" data-server="{base(server)}" '
        f'data-title="Shop Help" {attrs} defer></script>'
        "</body></html>"
    ).encode()
    page.add_init_script(RECORD_FRAMES)
    page.goto(server.site.url + "/shop")


def events(page: Any, name: str | None = None) -> list[Any]:
    found: list[Any] = page.evaluate("() => window.__events")
    return [detail for event, detail in found if event == name] if name else found


def w(page: Any) -> Any:
    return page.locator("supportbot-widget")


def online(page: Any) -> None:
    connected = w(page).locator('.subtitle[data-connection="online"]')
    sync_api.expect(connected).to_be_visible(timeout=20_000)


def test_calls_made_before_the_script_loads_are_queued_and_run(server: Any, page: Any) -> None:
    shop(page, server, before="Supportbot.open();")
    # The call went to the stub's queue (the script had not run yet) and then ran: open.
    sync_api.expect(w(page).locator(".panel")).to_be_visible()
    page.wait_for_function("() => window.__events.some(e => e[0] === 'open')")
    names = [event for event, _ in events(page)]
    assert names.index("ready") < names.index("open")
    assert events(page, "ready") == [{"locale": "en"}]
    # The stub object became the API: a reference taken before the load still works.
    assert page.evaluate(
        "() => typeof Supportbot.q.push === 'function' && !Array.isArray(Supportbot.q)"
    )
    # A late listener for "ready" is called at once.
    assert (
        page.evaluate("() => new Promise(done => Supportbot.on('ready', d => done(d.locale)))")
        == "en"
    )


def test_open_and_close_with_their_events_and_focus(server: Any, page: Any) -> None:
    shop(page, server)
    page.wait_for_function("() => window.__events.some(e => e[0] === 'ready')")
    panel = w(page).locator(".panel")
    sync_api.expect(panel).to_be_hidden()
    page.evaluate("() => Supportbot.open()")
    sync_api.expect(panel).to_be_visible()
    assert (
        page.evaluate(
            "() => document.querySelector('supportbot-widget').shadowRoot.activeElement.tagName"
        )
        == "TEXTAREA"
    )
    page.evaluate("() => Supportbot.open()")  # already open: no second event
    page.evaluate("() => Supportbot.close()")
    sync_api.expect(panel).to_be_hidden()
    assert [e for e, _ in events(page) if e in ("open", "close")] == ["open", "close"]
    # Focus went back to the launcher, as when the customer closes it.
    assert (
        page.evaluate(
            "() => document.querySelector('supportbot-widget').shadowRoot.activeElement.className"
        )
        == "launcher"
    )


def test_ask_sends_the_question_and_message_events_follow(server: Any, page: Any) -> None:
    shop(page, server)
    page.wait_for_function("() => window.__events.some(e => e[0] === 'ready')")
    assert page.evaluate("() => Supportbot.ask('How long do refunds take?')") is True
    sync_api.expect(w(page).locator(".panel")).to_be_visible()
    sync_api.expect(w(page).locator(".msg.customer")).to_have_text("How long do refunds take?")
    sync_api.expect(w(page).locator(".msg.bot .bubble")).to_have_text(
        "Returns are free within 30 days.", timeout=20_000
    )
    page.wait_for_function("() => window.__events.filter(e => e[0] === 'message').length >= 2")
    customer, bot = events(page, "message")[:2]
    assert customer == {"seq": 1, "role": "customer", "text": "How long do refunds take?"}
    assert bot["role"] == "bot" and bot["seq"] == 2 and bot["text"].endswith("30 days.")
    assert bot["sources"][0]["article_id"] == "returns/return-policy"
    sent = page.evaluate("() => window.__sent.filter(f => f.type === 'message')")
    assert [f["text"] for f in sent] == ["How long do refunds take?"]
    # Nothing to send: refused.
    assert page.evaluate("() => Supportbot.ask('   ')") is False


def test_handoff_and_resolved_events(server: Any, page: Any) -> None:
    import httpx

    from bot.core.db import transaction
    from bot.people.users import create_user

    shop(page, server)
    page.wait_for_function("() => window.__events.some(e => e[0] === 'ready')")
    page.evaluate("() => Supportbot.open()")
    online(page)
    w(page).get_by_role("button", name="Talk to a person").click()
    page.wait_for_function("() => window.__events.some(e => e[0] === 'handoff')")
    assert events(page, "handoff") == [{"reason": "customer_request"}]
    raw = page.evaluate(
        "() => Object.entries(localStorage).find(([k]) => k.startsWith('supportbot:v1:'))[1]"
    )
    conversation_id = json.loads(raw)["conversation_id"]
    with transaction(server.ctx.sessions) as session:
        _, token = create_user(session, "resolver@example.com", "agent")
    api = httpx.Client(base_url=base(server), headers={"Authorization": f"Bearer {token}"})
    assert api.post(f"/api/agent/conversations/{conversation_id}/claim").status_code == 200
    assert api.post(f"/api/agent/conversations/{conversation_id}/resolve").status_code == 200
    page.wait_for_function("() => window.__events.some(e => e[0] === 'resolved')")
    assert events(page, "resolved") == [{"reason": "resolved"}]
    # The agent's messages (system notices here) arrived as message events too.
    assert any(m["role"] == "system" for m in events(page, "message"))


def test_set_locale_redraws_the_widget_in_that_language(server: Any, page: Any) -> None:
    shop(page, server)
    page.wait_for_function("() => window.__events.some(e => e[0] === 'ready')")
    page.evaluate("() => Supportbot.ask('Hallo?')")
    sync_api.expect(w(page).locator(".msg.bot")).to_have_count(1, timeout=20_000)
    page.evaluate("() => Supportbot.setLocale('de-AT')")
    sync_api.expect(w(page).locator("textarea")).to_have_attribute("placeholder", "Ihre Frage…")
    sync_api.expect(w(page).locator(".handoff")).to_have_text("Mit einem Menschen sprechen")
    sync_api.expect(w(page).locator(".msg.bot .feedback")).to_contain_text("War das hilfreich?")
    # The transcript survived the redraw, once each.
    sync_api.expect(w(page).locator(".msg.customer")).to_have_count(1)
    sync_api.expect(w(page).locator(".msg.bot")).to_have_count(1)
    page.evaluate("() => Supportbot.setLocale('fr')")
    sync_api.expect(w(page).locator(".launcher")).to_have_attribute(
        "aria-label", "Fermer le chat : Shop Help"
    )


def test_identify_and_logout_reach_the_widget(server: Any, page: Any) -> None:
    shop(page, server)
    page.wait_for_function("() => window.__events.some(e => e[0] === 'ready')")
    has_identity = page.evaluate(
        "() => { try { Supportbot.identify({id: 'u-1', name: 'Ana', email: 'ana@example.com',"
        " hash: 'x'}); Supportbot.logout(); return true; } catch (e) { return String(e); } }"
    )
    assert has_identity is True


def test_a_long_paste_is_refused_with_a_count_never_cut(server: Any, page: Any) -> None:
    shop(page, server)
    page.wait_for_function("() => window.__events.some(e => e[0] === 'ready')")
    page.evaluate("() => Supportbot.open()")
    online(page)
    box = w(page).locator("textarea")
    box.fill("x" * 10_000)
    assert box.evaluate("b => b.value.length") == 10_000  # not cut by the browser
    count = w(page).locator(".count")
    sync_api.expect(count).to_be_visible()
    sync_api.expect(count).to_contain_text("8000 characters over the limit of 2000")
    sync_api.expect(box).to_have_attribute("aria-invalid", "true")
    sync_api.expect(w(page).locator(".send")).to_be_disabled()
    box.press("Enter")
    page.wait_for_timeout(300)
    assert not page.evaluate("() => window.__sent.some(f => f.type === 'message')")
    assert box.evaluate("b => b.value.length") == 10_000  # still there to shorten
    assert page.evaluate("() => Supportbot.ask('y'.repeat(2001))") is False
    # Shortened to the limit: the count says so, and it sends whole.
    box.fill("z" * 2000)
    sync_api.expect(count).to_have_text("2000 of 2000 characters")
    box.press("Enter")
    page.wait_for_function("() => window.__sent.some(f => f.type === 'message')")
    sent = page.evaluate("() => window.__sent.find(f => f.type === 'message').text")
    assert sent == "z" * 2000
    sync_api.expect(count).to_be_hidden()
