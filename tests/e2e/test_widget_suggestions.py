"""The widget's "which of these?" in a real Chromium, against a real server and a tiny KB.

A question split between two near-identical articles gets buttons under the bot's message (one
per article, plus "None of these"); a click sends ``choose`` and the answer from the picked article
follows, cited; the buttons are then disabled, also after a reload. "None of these" hands the
conversation to a person.
"""

# ruff: noqa: E501  (article bodies read better as whole lines)
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.core.settings import Settings
from ingest.embedder import Embedder
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS, RECORD_FRAMES

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

sync_api = pytest.importorskip("playwright.sync_api")

WOODEN_URL = "https://help.parcelly.example/care/wooden-boards"
ARTICLES = {
    "care/wooden-boards.md": f"""---
id: care/wooden-boards
title: Caring for wooden chopping boards
url: {WOODEN_URL}
---
# Caring for wooden chopping boards

Oil a wooden chopping board once a month with food-safe mineral oil.

## Cleaning
Wash the board by hand with warm soapy water and dry it standing upright. Never put it in the dishwasher.
""",
    "care/bamboo-boards.md": """---
id: care/bamboo-boards
title: Caring for bamboo chopping boards
url: https://help.parcelly.example/care/bamboo-boards
---
# Caring for bamboo chopping boards

Oil a bamboo chopping board every two months with food-safe mineral oil.

## Cleaning
Wash the board by hand with warm water and a mild soap and let it dry flat. Bamboo boards are not dishwasher safe.
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
}
SPLIT = "Can my chopping board go in the dishwasher?"


@dataclass(frozen=True)
class Site:
    server: Any
    base_url: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Site]:
    from ingest.pipeline import index_paths
    from tests.helpers.live_server import LiveServer

    root = tmp_path_factory.mktemp("widget-suggestions")
    kb = root / "kb"
    for name, text in ARTICLES.items():
        (kb / name).parent.mkdir(parents=True, exist_ok=True)
        (kb / name).write_text(text, encoding="utf-8")
    settings = Settings(data_dir=root / "data", kb_path=kb, _env_file=None)  # type: ignore[call-arg]
    report = index_paths([kb], settings, embedder)
    assert not report.failed, report.failed
    server = LiveServer(settings)
    base_url = f"http://127.0.0.1:{server.port}"
    settings.allowed_origins = [base_url]
    with server:
        yield Site(server, base_url)


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
    page.add_init_script(RECORD_FRAMES)
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def widget(page: Any) -> Any:
    return page.locator("supportbot-widget")


def open_and_ask(page: Any, site: Site, text: str) -> Any:
    """Open the demo page's widget, wait for the conversation, ask ``text``; the bot's reply."""
    page.goto(site.base_url + "/")
    widget(page).locator(".launcher").click()
    page.wait_for_function("() => window.__frames.some(f => f.type === 'welcome')")
    box = widget(page).locator("textarea")
    box.fill(text)
    box.press("Enter")
    last = widget(page).locator(".msg.bot").last
    sync_api.expect(last.locator(".suggestions")).to_be_visible(timeout=60_000)
    # Pinned by its seq: ``.last`` would move on to the answer that follows a pick.
    return widget(page).locator(f'.msg.bot[data-seq="{last.get_attribute("data-seq")}"]')


def test_suggestions_are_buttons_and_a_click_answers_from_that_article(
    live: Site, page: Any
) -> None:
    reply = open_and_ask(page, live, SPLIT)
    group = reply.get_by_role(
        "group", name="Suggested articles: pick the one closest to your question"
    )
    buttons = group.get_by_role("button")
    sync_api.expect(buttons).to_have_count(3)
    names = sorted(buttons.all_inner_texts())
    assert names == [
        "Caring for bamboo chopping boards",
        "Caring for wooden chopping boards",
        "None of these",
    ]
    # The buttons replace the list of links the text carries for clients without them.
    sync_api.expect(reply.locator(".bubble")).to_contain_text("Which one is closest")
    sync_api.expect(reply.locator(".bubble a")).to_have_count(0)
    sync_api.expect(reply.locator(".feedback")).to_have_count(0)

    # Keyboard users reach the choices like any button.
    wooden = group.get_by_role("button", name="Caring for wooden chopping boards")
    wooden.focus()
    page.keyboard.press("Enter")

    answer = widget(page).locator(".msg.bot").last
    sync_api.expect(answer.locator(f'.sources a[href="{WOODEN_URL}"]')).to_be_visible(
        timeout=60_000
    )
    sync_api.expect(answer.locator(".bubble")).to_contain_text("dishwasher")
    offer_seq = int(reply.get_attribute("data-seq"))
    sent = page.evaluate("() => window.__sent.filter(f => f.type === 'choose')")
    assert sent == [{"type": "choose", "seq": offer_seq, "article_id": "care/wooden-boards"}]
    for button in buttons.all():
        sync_api.expect(button).to_be_disabled()
    sync_api.expect(wooden).to_have_attribute("aria-pressed", "true")

    # After a reload the pick is remembered: the choices stay used.
    page.reload()
    offer = widget(page).locator(f'.msg.bot[data-seq="{offer_seq}"]')
    sync_api.expect(offer.locator(".suggestions button")).to_have_count(3, timeout=20_000)
    for button in offer.locator(".suggestions button").all():
        sync_api.expect(button).to_be_disabled()


def test_none_of_these_hands_over_to_a_person(live: Site, page: Any) -> None:
    reply = open_and_ask(page, live, SPLIT)
    reply.get_by_role("button", name="None of these").click()
    page.wait_for_function(
        "() => window.__frames.some(f => f.type === 'state' && f.reason === 'no_match')"
    )
    sync_api.expect(widget(page).locator(".msg.system").last).to_contain_text("person")
    sent = page.evaluate("() => window.__sent.filter(f => f.type === 'choose')")
    assert [f["article_id"] for f in sent] == [None]
    for button in reply.locator(".suggestions button").all():
        sync_api.expect(button).to_be_disabled()
