"""The widget's header says whether people are available now, in a real Chromium.

Reported: out of hours, after the hand-over notice said a person would reply tomorrow at 09:00,
the header still showed a green "Online". The header now follows the server's business hours
(``available``/``next_opening`` on ``welcome`` and ``state`` frames): "People available" in
hours, "Bot only — a person replies <when>" out of hours, before and after a hand-over.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.core.settings import Settings
from bot.handoff.hours import DAYS
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def serve(tmp_path: Path, business_hours: str) -> Any:
    """A real server (its own demo page embeds the widget) with a scripted answerer."""
    from tests.helpers.live_server import LiveServer, ScriptedAnswerer

    settings = Settings(
        data_dir=tmp_path / "data",
        business_hours=business_hours,
        business_timezone="UTC",
        _env_file=None,
    )
    return LiveServer(settings, ScriptedAnswerer())


def open_widget(browser: Any, base_url: str) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="UTC")
    page = context.new_page()
    page.goto(base_url + "/")
    widget = page.locator("supportbot-widget")
    widget.locator(".launcher").click()
    sync_api.expect(widget.locator('.subtitle[data-connection="online"]')).to_be_visible(
        timeout=20_000
    )
    return context, widget


def test_out_of_hours_the_header_says_bot_only_and_when_a_person_replies(
    browser: Any, tmp_path: Path
) -> None:
    # Open two days from now only: whenever this runs, "now" is out of hours.
    opens = DAYS[(datetime.now(UTC).weekday() + 2) % 7]
    with serve(tmp_path, f"{opens.title()} 09:00-17:00") as server:
        context, widget = open_widget(browser, f"http://127.0.0.1:{server.port}")
        try:
            subtitle = widget.locator(".subtitle")
            sync_api.expect(subtitle).to_contain_text("Bot only — a person replies on ")
            sync_api.expect(subtitle).to_contain_text(" at 09:00")
            sync_api.expect(subtitle).not_to_contain_text("Online")
            sync_api.expect(widget.locator(".dot")).to_have_class("dot away")
            # After the hand-over the header still tells the truth.
            widget.get_by_role("button", name="Talk to a person").click()
            sync_api.expect(widget.locator(".msg.system").last).to_contain_text("offline")
            sync_api.expect(subtitle).to_contain_text("Bot only — a person replies on ")
        finally:
            context.close()


def test_in_hours_the_header_says_people_are_available(browser: Any, tmp_path: Path) -> None:
    with serve(tmp_path, "24/7") as server:
        context, widget = open_widget(browser, f"http://127.0.0.1:{server.port}")
        try:
            sync_api.expect(widget.locator(".subtitle")).to_have_text("People available")
            sync_api.expect(widget.locator(".dot")).to_have_class("dot online")
        finally:
            context.close()
