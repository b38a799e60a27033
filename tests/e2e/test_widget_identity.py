"""Known customers and the e-mailed resume link in a real Chromium.

A shop on its own origin (registered with the same function ``supportbot site add`` uses) embeds
the widget with ``data-user-*`` and the HMAC its server computed. Checked in the browser: the
hello carries the user and the welcome names them verified; the same customer on another device
(a fresh browser context) finds the conversation with its history; another person signing in on
the same browser starts clean; and the ``/resume`` link of a reply e-mail opens the widget on its
conversation.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.core.db import transaction
from bot.core.settings import Settings
from bot.people.users import create_user
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS, RECORD_FRAMES, OtherOrigin

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

sync_api = pytest.importorskip("playwright.sync_api")

PASSWORD = "agent-password-1"
QUESTION = "Where is my parcel?"
ANSWER = "Returns are free within 30 days."


class Shop(OtherOrigin):
    """The customer's website on its own origin: ``/ana`` and ``/bo`` are pages for two
    signed-in customers, each with the hash the shop's server computed."""

    def page_for(self, path: str, server_url: str, secret: str, user_id: str, name: str) -> None:
        digest = hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()
        self.pages[path] = (
            "<!doctype html><html><head><title>Kitchenware Direct</title></head><body>"
            f'<script src="{server_url}/widget/supportbot.js" data-server="{server_url}" '
            f'data-user-id="{user_id}" data-user-name="{name}" '
            f'data-user-email="{user_id}@example.com" data-user-hash="{digest}" defer></script>'
            "</body></html>"
        ).encode()


@dataclass(frozen=True)
class Live:
    server: Any
    base_url: str
    shop: Shop
    secret: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from bot.people.sites import add_site
    from tests.helpers.live_server import LiveServer, ScriptedAnswerer

    root: Path = tmp_path_factory.mktemp("identity")
    settings = Settings(  # type: ignore[call-arg]
        data_dir=root / "data", business_hours="24/7", _env_file=None
    )
    with Shop() as shop, LiveServer(settings, ScriptedAnswerer()) as server:
        base_url = f"http://127.0.0.1:{server.port}"
        with transaction(server.ctx.sessions) as session:
            secret = add_site(session, shop.url).secret  # not in allowed_origins: the site is
        shop.page_for("/ana", base_url, secret, "u-ana", "Ana Silva")
        shop.page_for("/bo", base_url, secret, "u-bo", "Bo Berg")
        with transaction(server.ctx.sessions) as session:
            create_user(session, "agent@example.com", "agent", password=PASSWORD)
        yield Live(server, base_url, shop, secret)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def new_page(browser: Any) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.add_init_script(RECORD_FRAMES)
    return context, page, errors


def open_widget(page: Any) -> Any:
    widget = page.locator("supportbot-widget")
    if not widget.locator(".panel").is_visible():
        widget.locator(".launcher").click()
    sync_api.expect(widget.locator('.subtitle[data-connection="online"]')).to_be_visible(
        timeout=20_000
    )
    return widget


def welcome_of(page: Any) -> dict[str, Any]:
    frames: list[dict[str, Any]] = page.evaluate("() => window.__frames")
    return [f for f in frames if f["type"] == "welcome"][-1]


def test_known_customer_on_two_devices_and_another_person_on_the_same_browser(
    live: Live, browser: Any
) -> None:
    laptop, page, errors = new_page(browser)
    page.goto(live.shop.url + "/ana")
    widget = open_widget(page)
    hello = page.evaluate("() => window.__sent.find((f) => f.type === 'hello')")
    assert hello["user"]["id"] == "u-ana" and hello["user"]["name"] == "Ana Silva"
    assert len(hello["user"]["hash"]) == 64
    first = welcome_of(page)
    assert first["customer"] == {"name": "Ana Silva", "verified": True}
    box = widget.locator("textarea")
    box.fill(QUESTION)
    box.press("Enter")
    sync_api.expect(widget.locator(".msg.bot").last).to_contain_text(ANSWER, timeout=20_000)

    # Her phone: nothing stored there, yet the conversation and its history are hers.
    phone, other_page, other_errors = new_page(browser)
    other_page.goto(live.shop.url + "/ana")
    other_widget = open_widget(other_page)
    sync_api.expect(other_widget.locator(".msg.customer").first).to_contain_text(QUESTION)
    sync_api.expect(other_widget.locator(".msg.bot").first).to_contain_text(ANSWER)
    again = welcome_of(other_page)
    assert again["conversation_id"] == first["conversation_id"] and again["resumed"] is True
    phone.close()

    # Bo signs in on Ana's laptop: her conversation is gone from the page before he sees it.
    page.goto(live.shop.url + "/bo")
    bo_widget = open_widget(page)
    bo = welcome_of(page)
    assert bo["customer"] == {"name": "Bo Berg", "verified": True}
    assert bo["conversation_id"] != first["conversation_id"]
    assert bo_widget.locator(".msg.customer").count() == 0
    assert QUESTION not in (bo_widget.locator(".log").text_content() or "")
    stored = page.evaluate(
        "() => JSON.parse(Object.entries(localStorage)"
        ".find(([k]) => k.startsWith('supportbot:v1:'))[1])"
    )
    assert stored["user_id"] == "u-bo" and stored["conversation_id"] == bo["conversation_id"]
    laptop.close()
    assert not errors and not other_errors, errors + other_errors


def test_the_emailed_link_opens_the_widget_on_its_conversation(live: Live, browser: Any) -> None:
    from bot.conversations.outbox import resume_link
    from bot.conversations.store import append_message, create_conversation

    with transaction(live.server.ctx.sessions) as session:
        conversation, _ = create_conversation(session)
        append_message(session, conversation.id, role="customer", text="My parcel is late")
        append_message(
            session, conversation.id, role="agent", text="It arrives Friday.", author="Ana"
        )
        conversation_id = conversation.id
    settings = live.server.settings
    settings.public_url = live.base_url
    link = resume_link(settings, conversation_id)

    context, page, errors = new_page(browser)
    page.goto(link)
    widget = open_widget(page)  # the page opens it
    sync_api.expect(widget.locator(".msg.agent").last).to_contain_text("It arrives Friday.")
    welcome = welcome_of(page)
    assert welcome["conversation_id"] == conversation_id and welcome["resumed"] is True
    box = widget.locator("textarea")
    box.fill("Thank you!")
    box.press("Enter")
    sync_api.expect(widget.locator(".msg.customer").last).to_contain_text("Thank you!")
    page.wait_for_function("() => window.__frames.some((f) => f.type === 'ack')", timeout=10_000)
    context.close()
    assert not errors, errors


def test_the_agent_console_shows_who_the_customer_is_and_their_earlier_conversations(
    live: Live, browser: Any
) -> None:
    import json

    from websockets.sync.client import connect

    from bot.core.models import Conversation

    digest = hmac.new(live.secret.encode(), b"u-cy", hashlib.sha256).hexdigest()
    cy = {"id": "u-cy", "name": "Cy Young", "email": "cy@example.com", "hash": digest}

    def chat(*frames: dict[str, Any], until: str) -> str:
        with connect(live.server.url, origin=live.shop.url, open_timeout=10) as ws:
            ws.send(json.dumps({"type": "hello", "user": cy}))
            welcome = json.loads(ws.recv(timeout=10))
            for frame in frames:
                ws.send(json.dumps(frame))
            while json.loads(ws.recv(timeout=10))["type"] != until:
                pass
            return str(welcome["conversation_id"])

    earlier = chat({"type": "message", "client_msg_id": "m1", "text": "Old question"}, until="ack")
    with transaction(live.server.ctx.sessions) as session:
        session.get(Conversation, earlier).state = "resolved"  # type: ignore[union-attr]
    current = chat({"type": "handoff_request"}, until="state")
    assert current != earlier

    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(live.base_url + "/agent")
    page.fill("input[name=email]", "agent@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.locator(f'.queue-item[data-conversation-id="{current}"]').click()
    info = page.locator("#customer-info")
    sync_api.expect(info).to_contain_text("Cy Young ✓ verified")
    sync_api.expect(info).to_contain_text("cy@example.com")
    sync_api.expect(info).to_contain_text(live.shop.url)
    button = info.locator(f'button[data-conversation-id="{earlier}"]')
    sync_api.expect(button).to_contain_text("resolved")
    button.click()
    sync_api.expect(page.locator("#conv-title")).to_have_text("Conversation " + earlier[:8])
    sync_api.expect(page.locator("#transcript .msg.customer").first).to_contain_text("Old question")
    context.close()
