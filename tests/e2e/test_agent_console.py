"""The agent console in a real Chromium: sign in, see a customer arrive in the queue live, claim,
answer, see the customer's reply live, resolve.

The customer is a real /ws/chat client (the ``websockets`` sync client) against the same
uvicorn server (``tests.helpers.live_server.LiveServer``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.db import transaction
from bot.core.settings import Settings
from bot.people.users import create_user
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS
from tests.helpers.live_server import ORIGIN, LiveServer, ScriptedAnswerer

PASSWORD = "agent-password-1"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

sync_api = pytest.importorskip("playwright.sync_api")
ws_sync = pytest.importorskip("websockets.sync.client")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = Settings(
        data_dir=tmp_path / "data",
        allowed_origins=[ORIGIN],
        business_hours="24/7",
        _env_file=None,
    )
    with LiveServer(settings, ScriptedAnswerer()) as live:
        with transaction(live.ctx.sessions) as session:
            create_user(session, "ana.smith@example.com", "agent", password=PASSWORD)
        yield live


@pytest.fixture
def page(server: LiveServer) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        browser.close()


class Customer:
    """A customer on /ws/chat (sync client)."""

    def __init__(self, server: LiveServer) -> None:
        self.ws = ws_sync.connect(server.url, origin=ORIGIN, open_timeout=10)
        self.send({"type": "hello"})
        self.welcome = self.recv()
        self.conversation_id: str = self.welcome["conversation_id"]

    def send(self, frame: dict[str, Any]) -> None:
        self.ws.send(json.dumps(frame))

    def recv(self, timeout: float = 15) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.ws.recv(timeout=timeout))
        return data

    def until(self, stop: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while True:
            frame = self.recv()
            if stop(frame):
                return frame

    def close(self) -> None:
        self.ws.close()


def test_agent_signs_in_claims_answers_and_resolves(server: LiveServer, page: Any) -> None:
    expect = sync_api.expect
    base = f"http://127.0.0.1:{server.port}"

    # Signing in is required: the console redirects to the form, then back.
    page.goto(base + "/agent")
    expect(page).to_have_url(base + "/login?next=/agent")
    page.fill("input[name=email]", "ana.smith@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(base + "/agent")
    expect(page.locator("#connection")).to_have_text("Live")
    expect(page.locator("#queue-empty")).to_be_visible()

    # A customer asks for a person: the queue updates live with the reason and waiting time.
    customer = Customer(server)
    try:
        customer.send({"type": "message", "client_msg_id": "m1", "text": "Where is my parcel?"})
        customer.until(lambda f: f["type"] == "message" and f["role"] == "bot")
        customer.send({"type": "message", "client_msg_id": "m2", "text": "talk to a human pls"})
        customer.until(lambda f: f["type"] == "state" and f["state"] == "awaiting_human")

        item = page.locator(f'.queue-item[data-conversation-id="{customer.conversation_id}"]')
        expect(item).to_be_visible()
        expect(item.locator(".reason")).to_have_text("customer request")
        expect(item.locator(".waiting")).to_have_text(re.compile(r"^\d+s$"))
        expect(page.locator("#queue-count")).to_have_text("1")

        # Open it: transcript with the bot's cited source, then claim.
        item.click()
        expect(page.locator("#transcript .msg.customer").first).to_have_text(
            re.compile("Where is my parcel")
        )
        expect(page.locator("#sources-list")).to_contain_text("Return policy")
        expect(page.locator("#conv-state")).to_have_text("awaiting human")
        page.click("#claim-btn")
        expect(page.locator("#conv-state")).to_have_text("human")
        customer.until(lambda f: f["type"] == "state" and f["state"] == "human")

        # Answer: the customer's socket gets it live.
        page.fill("#reply-text", "Hi, I'm Ana. Let me check parcel 42 for you.")
        page.click("#send-btn")
        got = customer.until(lambda f: f["type"] == "message" and f["role"] == "agent")
        assert got["text"] == "Hi, I'm Ana. Let me check parcel 42 for you."
        assert got["author"] == "Ana Smith"
        expect(page.locator("#transcript .msg.agent")).to_have_count(1)

        # The customer's reply shows up in the console without a reload.
        customer.send({"type": "message", "client_msg_id": "m3", "text": "Thanks! It's 42."})
        expect(page.locator("#transcript .msg.customer").last).to_have_text(
            re.compile("Thanks! It's 42.")
        )

        # Resolve: the customer is told, the queue empties.
        page.click("#resolve-btn")
        expect(page.locator("#conv-state")).to_have_text("resolved")
        customer.until(lambda f: f["type"] == "state" and f["state"] == "resolved")
        expect(page.locator("#queue-count")).to_have_text("0")
    finally:
        customer.close()
