"""What a known customer sees in the widget, in a real Chromium against a real server.

A shop on its own origin (registered like ``supportbot site add``) embeds the widget with
``data-user-*`` and the HMAC its server computed. Checked: a verified customer is greeted by
name and a forged hash is not; the "leave your e-mail" option appears out of hours only when the
server can send e-mail (``welcome.email_replies``), and a verified customer with an e-mail is told
where the reply goes instead; a verified customer's earlier conversations are listed (the
``conversations`` frame, loaded with ``widget/extras.js``) and one resumes from the keyboard.
The server is out of hours throughout (open only two days from now).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.core.db import transaction
from bot.core.settings import Settings
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS, RECORD_FRAMES, OtherOrigin

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

sync_api = pytest.importorskip("playwright.sync_api")

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


class Shop(OtherOrigin):
    """The customer's website on its own origin: one page per path."""

    def page(self, path: str, server_url: str, user: dict[str, str] | None = None) -> None:
        attrs = "".join(f' data-user-{key}="{value}"' for key, value in (user or {}).items())
        self.pages[path] = (
            '<!doctype html><html lang="en"><head><title>Kitchenware Direct</title></head><body>'
            f'<script src="{server_url}/widget/supportbot.min.js" data-server="{server_url}"'
            f"{attrs} defer></script></body></html>"
        ).encode()


@dataclass(frozen=True)
class Live:
    server: Any
    base_url: str
    shop: Shop
    secret: str

    def user(self, user_id: str, name: str, *, forged: bool = False) -> dict[str, str]:
        key = b"not the secret" if forged else self.secret.encode()
        digest = hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()
        return {"id": user_id, "name": name, "email": f"{user_id}@example.com", "hash": digest}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from bot.people.sites import add_site
    from tests.helpers.live_server import LiveServer, ScriptedAnswerer

    root: Path = tmp_path_factory.mktemp("known")
    opens = DAYS[(datetime.now(UTC).weekday() + 2) % 7]  # whenever this runs: out of hours
    settings = Settings(
        data_dir=root / "data",
        business_hours=f"{opens} 09:00-17:00",
        business_timezone="UTC",
        _env_file=None,
    )
    with Shop() as shop, LiveServer(settings, ScriptedAnswerer()) as server:
        base_url = f"http://127.0.0.1:{server.port}"
        with transaction(server.ctx.sessions) as session:
            secret = add_site(session, shop.url).secret
        yield Live(server, base_url, shop, secret)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def smtp(live: Live) -> Iterator[Any]:
    """SMTP configured (nothing listens there: no reply is e-mailed in these tests)."""
    settings = live.server.settings
    settings.smtp_url = SecretStr("smtp://127.0.0.1:9")
    yield settings
    settings.smtp_url = None


def visit(browser: Any, url: str) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="UTC")
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.add_init_script(RECORD_FRAMES)
    page.goto(url)
    widget = page.locator("supportbot-widget")
    widget.locator(".launcher").click()
    sync_api.expect(widget.locator('.subtitle[data-connection="online"]')).to_be_visible(
        timeout=20_000
    )
    return context, page, errors


def axe_violations(page: Any) -> list[str]:
    """Serious and critical axe-core violations on the page, shadow DOM included."""
    if not AXE.exists():  # vendored by scripts/build_widget.sh
        return []
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def welcome_of(page: Any) -> dict[str, Any]:
    frames: list[dict[str, Any]] = page.evaluate("() => window.__frames")
    return [f for f in frames if f["type"] == "welcome"][-1]


def test_a_verified_customer_is_greeted_by_name_and_a_forged_hash_is_not(
    live: Live, browser: Any
) -> None:
    live.shop.page("/ana", live.base_url, live.user("u-ana", "Ana Silva"))
    live.shop.page("/eve", live.base_url, live.user("u-eve", "Ana Silva", forged=True))

    context, page, errors = visit(browser, live.shop.url + "/ana")
    widget = page.locator("supportbot-widget")
    assert welcome_of(page)["customer"] == {"name": "Ana Silva", "verified": True}
    sync_api.expect(widget.locator(".empty strong")).to_have_text("Hi Ana Silva!")
    # German texts come from locale.de.js, the greeting too.
    page.evaluate("() => Supportbot.setLocale('de')")
    sync_api.expect(widget.locator(".empty strong")).to_have_text("Hallo Ana Silva!")
    context.close()

    context, page, more_errors = visit(browser, live.shop.url + "/eve")
    widget = page.locator("supportbot-widget")
    assert welcome_of(page)["customer"] == {"name": "Ana Silva", "verified": False}
    sync_api.expect(widget.locator(".empty strong")).to_have_text("Hi there!")
    assert "Ana" not in (widget.locator(".panel").text_content() or "")
    # Nobody to list conversations for: the widget does not ask.
    sent = page.evaluate("() => window.__sent.map((f) => f.type)")
    assert "conversations" not in sent
    context.close()
    assert not errors and not more_errors, errors + more_errors


def hand_over(page: Any) -> Any:
    widget = page.locator("supportbot-widget")
    widget.get_by_role("button", name="Talk to a person").click()
    sync_api.expect(widget.locator(".msg.system").last).to_contain_text("offline")
    return widget


def test_the_email_option_only_when_the_server_can_send_email(live: Live, browser: Any) -> None:
    live.shop.page("/guest", live.base_url)
    context, page, errors = visit(browser, live.shop.url + "/guest")
    assert welcome_of(page)["email_replies"] is False
    widget = hand_over(page)
    page.wait_for_timeout(500)  # what would be drawn after the state change, is
    assert widget.locator("#supportbot-mail").count() == 0
    assert widget.locator(".mail").count() == 0
    # Nothing needed it: the extras were not even loaded.
    assert page.evaluate("() => !window.SupportbotExtras")
    context.close()
    assert not errors, errors


def test_the_email_option_when_smtp_is_configured(live: Live, browser: Any, smtp: Any) -> None:
    live.shop.page("/guest", live.base_url)
    context, page, errors = visit(browser, live.shop.url + "/guest")
    assert welcome_of(page)["email_replies"] is True
    widget = page.locator("supportbot-widget")
    assert widget.locator("#supportbot-mail").count() == 0  # not before the hand-over
    hand_over(page)
    box = widget.get_by_label("Get the reply by e-mail too:")
    sync_api.expect(box).to_be_visible()
    assert axe_violations(page) == []
    box.fill("guest@example.com")
    box.press("Enter")
    sync_api.expect(widget.locator(".msg.customer").last).to_have_text("guest@example.com")
    sync_api.expect(widget.locator(".msg.system").last).to_contain_text(
        "we'll also follow up at guest@example.com"
    )
    sync_api.expect(widget.locator(".mail")).to_have_count(0)
    context.close()

    # A verified customer with an e-mail is not asked: told where the reply goes.
    live.shop.page("/bo", live.base_url, live.user("u-bo", "Bo Berg"))
    context, page, more_errors = visit(browser, live.shop.url + "/bo")
    widget = hand_over(page)
    sync_api.expect(widget.locator("p.mail")).to_have_text(
        "We'll also e-mail the reply to u-bo@example.com."
    )
    assert widget.locator("#supportbot-mail").count() == 0
    context.close()
    assert not errors and not more_errors, errors + more_errors


def test_earlier_conversations_are_listed_and_resume_from_the_keyboard(
    live: Live, browser: Any
) -> None:
    from websockets.sync.client import connect

    from bot.core.models import Conversation

    cy = live.user("u-cy", "Cy Young")

    def chat(text: str) -> str:
        with connect(live.server.url, origin=live.shop.url, open_timeout=10) as ws:
            ws.send(json.dumps({"type": "hello", "user": cy}))
            welcome = json.loads(ws.recv(timeout=10))
            ws.send(json.dumps({"type": "message", "client_msg_id": "m1", "text": text}))
            while True:  # until the bot's answer is stored
                frame = json.loads(ws.recv(timeout=10))
                if frame["type"] == "message" and frame["role"] == "bot":
                    break
        with transaction(live.server.ctx.sessions) as session:
            session.get(Conversation, welcome["conversation_id"]).state = "resolved"  # type: ignore[union-attr]
        return str(welcome["conversation_id"])

    first = chat("Old question about a kettle")
    second = chat("Another question about a pan")

    live.shop.page("/cy", live.base_url, cy)
    context, page, errors = visit(browser, live.shop.url + "/cy")
    widget = page.locator("supportbot-widget")
    current = welcome_of(page)["conversation_id"]
    assert current not in (first, second)  # both resolved: a new one
    sync_api.expect(widget.locator(".empty strong")).to_have_text("Hi Cy Young!")
    page.wait_for_function("() => window.__sent.some((f) => f.type === 'conversations')")

    summary = widget.locator("details.earlier summary")
    sync_api.expect(summary).to_have_text("Earlier conversations (2)")
    items = widget.get_by_role("list", name="Earlier conversations").get_by_role("button")
    sync_api.expect(items).to_have_count(0)  # collapsed
    summary.focus()
    page.keyboard.press("Enter")
    sync_api.expect(items).to_have_count(2)
    assert axe_violations(page) == []
    # Most recently active first; each names its last message (the bot's answer).
    assert items.nth(0).get_attribute("data-conversation-id") == second
    assert items.nth(1).get_attribute("data-conversation-id") == first
    sync_api.expect(items.nth(1)).to_contain_text(" — Returns are free within 30 days.")

    summary.focus()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert (
        page.evaluate(
            "() => document.querySelector('supportbot-widget').shadowRoot.activeElement"
            ".dataset.conversationId"
        )
        == first
    )
    page.keyboard.press("Enter")  # the older one
    sync_api.expect(widget.locator(".msg.customer").first).to_have_text(
        "Old question about a kettle"
    )
    page.wait_for_function(
        "(id) => window.__frames.some((f) => f.type === 'welcome' && f.conversation_id === id)",
        arg=first,
    )
    resumed = welcome_of(page)
    assert resumed["resumed"] is True and resumed["resume_token"].startswith("ct1.")
    hello = page.evaluate("() => window.__sent.filter((f) => f.type === 'hello').pop()")
    assert hello["conversation_id"] == first and hello["resume_token"].startswith("ct1.")
    sync_api.expect(widget.locator(".banner")).to_contain_text("resolved")
    # The list now offers the others, the one just left among them.
    widget.locator("details.earlier summary").click()
    sync_api.expect(items.first).to_be_visible()
    page.wait_for_timeout(300)
    ids = [items.nth(i).get_attribute("data-conversation-id") for i in range(items.count())]
    assert first not in ids and second in ids
    # The rating prompt of a resolved conversation is drawn by the lazily loaded extras.
    sync_api.expect(widget.locator(".csat button")).to_have_count(5)
    context.close()
    assert not errors, errors
