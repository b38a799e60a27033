"""Accessibility and phones, in a real Chromium against a real server and a small real KB.

axe-core (vendored by ``scripts/build_widget.sh`` into ``tests/e2e/vendor/axe.min.js``, so this
runs offline) checks the open widget, with every kind of content on screen, and the agent
console: no serious or critical violation. A keyboard-only customer goes the whole way (open,
type, send, pick a suggested article, ask for a person, rate, close) and focus comes back to the
launcher; new messages are announced through a polite live region; reduced motion switches the
animations off; on a phone the panel is full screen and keeps its input above the on-screen
keyboard (the visual viewport shrinks; the widget follows it).
"""

# ruff: noqa: E501  (article bodies read better as whole lines)
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.settings import Settings
from ingest.embedder import Embedder
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

sync_api = pytest.importorskip("playwright.sync_api")

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
PASSWORD = "agent-password-1"
ARTICLES = {
    "care/wooden-boards.md": """---
id: care/wooden-boards
title: Caring for wooden chopping boards
url: https://help.parcelly.example/care/wooden-boards
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
# Which element has focus, looking into the widget's shadow root.
FOCUSED = """() => {
  let el = document.activeElement;
  while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
  return el ? [el.tagName, el.className || '', el.getAttribute('aria-label') || el.textContent.trim()] : null;
}"""
# A stand-in visual viewport: Playwright has no on-screen keyboard, so the test shrinks the
# visual viewport the way a phone's keyboard does (window.__keyboard(height)).
FAKE_VISUAL_VIEWPORT = """(() => {
  const vv = new EventTarget();
  let height = null;  // null: no keyboard, the whole window
  for (const [name, get] of Object.entries({
    height: () => height === null ? window.innerHeight : height, width: () => window.innerWidth, offsetTop: () => 0,
    offsetLeft: () => 0, pageTop: () => 0, pageLeft: () => 0, scale: () => 1,
  })) Object.defineProperty(vv, name, {get});
  Object.defineProperty(window, 'visualViewport', {get: () => vv, configurable: true});
  window.__keyboard = (h) => { height = h; vv.dispatchEvent(new Event('resize')); };
})();"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Any]:
    from bot.core.db import transaction
    from bot.people.users import create_user
    from ingest.pipeline import index_paths
    from tests.helpers.live_server import LiveServer

    root = tmp_path_factory.mktemp("a11y")
    kb = root / "kb"
    for name, text in ARTICLES.items():
        (kb / name).parent.mkdir(parents=True, exist_ok=True)
        (kb / name).write_text(text, encoding="utf-8")
    settings = Settings(data_dir=root / "data", kb_path=kb, business_hours="24/7", _env_file=None)
    report = index_paths([kb], settings, embedder)
    assert not report.failed, report.failed
    with LiveServer(settings) as live:
        with transaction(live.ctx.sessions) as session:
            create_user(session, "ana.smith@example.com", "agent", password=PASSWORD)
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    context.set_default_timeout(20_000)
    yield context
    context.close()


def base(server: Any) -> str:
    return f"http://127.0.0.1:{server.port}"


def axe_violations(page: Any) -> list[str]:
    """Serious and critical axe-core violations on the page, shadow DOM included."""
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def tab_to(page: Any, want: Any, *, shift: bool = False, limit: int = 80) -> list[str]:
    """Press Tab (or Shift+Tab) until ``want(focused)`` holds; fail after ``limit`` presses."""
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if shift else "Tab")
        focused = page.evaluate(FOCUSED)
        if focused and want(focused):
            return list(focused)
    raise AssertionError(f"focus never reached the element; last: {page.evaluate(FOCUSED)}")


def test_keyboard_only_customer_from_open_to_rating_and_close(server: Any, context: Any) -> None:
    import httpx

    from bot.core.db import transaction
    from bot.people.users import create_user

    page = context.new_page()
    page.goto(base(server) + "/")
    w = page.locator("supportbot-widget")
    # Open: Tab to the launcher, Enter; the cursor lands in the message box.
    tab_to(page, lambda f: "launcher" in f[1])
    page.keyboard.press("Enter")
    sync_api.expect(w.locator(".panel")).to_be_visible()
    sync_api.expect(w.locator('.subtitle[data-connection="online"]')).to_be_visible()
    assert page.evaluate(FOCUSED)[0] == "TEXTAREA"
    # Type and send with Enter.
    page.keyboard.type(SPLIT)
    page.keyboard.press("Enter")
    choices = w.locator(".suggestions .choice")
    sync_api.expect(choices).to_have_count(3, timeout=60_000)
    # The live region announced the bot's question (once it arrived, not fragment by fragment).
    live = w.locator("[aria-live=polite]")
    sync_api.expect(live).to_contain_text("Which one is closest", timeout=5_000)
    # Choose a suggestion: Shift+Tab back from the message box to the first article, Enter.
    picked = tab_to(page, lambda f: "choice" in f[1] and "none" not in f[1], shift=True)
    page.keyboard.press("Enter")
    sync_api.expect(w.locator(".suggestions .choice.chosen")).to_have_text(picked[2])
    sync_api.expect(w.locator(".msg.bot")).to_have_count(2, timeout=60_000)
    sync_api.expect(live).to_contain_text("dishwasher", timeout=5_000)
    # axe, with a conversation on screen: messages, sources, suggestions, feedback.
    assert axe_violations(page) == []
    # Ask for a person with the keyboard.
    tab_to(page, lambda f: "handoff" in f[1])
    page.keyboard.press("Enter")
    sync_api.expect(w.locator(".banner")).to_contain_text("Waiting for a person")
    sync_api.expect(live).to_contain_text("Connecting you with a person")
    # A person resolves it (the real agent API); rate with the keyboard.
    conversation_id = page.evaluate(
        "() => JSON.parse(Object.entries(localStorage).find(([k]) => "
        "k.startsWith('supportbot:v1:'))[1]).conversation_id"
    )
    with transaction(server.ctx.sessions) as session:
        _, token = create_user(session, "keyboard.agent@example.com", "agent")
    api = httpx.Client(base_url=base(server), headers={"Authorization": f"Bearer {token}"})
    assert api.post(f"/api/agent/conversations/{conversation_id}/claim").status_code == 200
    assert api.post(f"/api/agent/conversations/{conversation_id}/resolve").status_code == 200
    sync_api.expect(w.locator(".csat")).to_be_visible()
    assert axe_violations(page) == []  # the rating prompt and the resolved banner too
    tab_to(page, lambda f: f[2] == "5 out of 5", shift=True)
    page.keyboard.press("Enter")
    assert page.evaluate(FOCUSED)[2] == "1 out of 7"  # the effort question, focused
    tab_to(page, lambda f: f[2] == "6 out of 7")
    page.keyboard.press("Enter")
    sync_api.expect(w.locator(".csat")).to_have_text("Thank you for your feedback!")
    # Close with Escape: focus returns to the launcher.
    tab_to(page, lambda f: f[0] == "TEXTAREA")
    page.keyboard.press("Escape")
    sync_api.expect(w.locator(".panel")).to_be_hidden()
    assert "launcher" in page.evaluate(FOCUSED)[1]


def test_the_agent_console_has_no_serious_violations(server: Any, context: Any) -> None:
    page = context.new_page()
    page.goto(base(server) + "/agent")
    assert axe_violations(page) == []  # the sign-in form
    page.fill("input[name=email]", "ana.smith@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    sync_api.expect(page).to_have_url(base(server) + "/agent")
    sync_api.expect(page.locator("#connection")).to_have_text("Live")
    assert axe_violations(page) == []


def test_reduced_motion_switches_the_animations_off(server: Any, context: Any) -> None:
    page = context.new_page()
    page.goto(base(server) + "/")
    w = page.locator("supportbot-widget")
    w.locator(".launcher").click()
    panel = w.locator(".panel")
    assert panel.evaluate("p => getComputedStyle(p).animationName") == "sb-in"
    page.emulate_media(reduced_motion="reduce")
    assert panel.evaluate("p => getComputedStyle(p).animationName") == "none"
    launcher = w.locator(".launcher")
    assert launcher.evaluate("b => getComputedStyle(b).transitionDuration") == "0s"


def test_phone_full_screen_and_input_above_the_keyboard(server: Any, browser: Any) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        has_touch=True,
        locale="en-US",
        reduced_motion="reduce",  # no opening animation: the geometry is final at once
    )
    try:
        page = context.new_page()
        page.add_init_script(FAKE_VISUAL_VIEWPORT)
        page.goto(base(server) + "/")
        w = page.locator("supportbot-widget")
        w.locator(".launcher").click()
        panel = w.locator(".panel")
        sync_api.expect(panel).to_be_visible()
        box = panel.bounding_box()
        assert box == {"x": 0, "y": 0, "width": 390, "height": 844}
        sync_api.expect(w.locator(".launcher")).to_be_hidden()  # covered: not in the tab order
        w.locator("textarea").focus()
        page.evaluate("() => window.__keyboard(500)")  # the keyboard takes the lower part
        page.wait_for_function(
            "() => document.querySelector('supportbot-widget').shadowRoot"
            ".querySelector('.panel').getBoundingClientRect().height === 500"
        )
        input_box = w.locator("textarea").bounding_box()
        assert input_box["y"] + input_box["height"] <= 500
        assert w.locator(".send").bounding_box()["y"] < 500
        page.evaluate("() => window.__keyboard(844)")  # keyboard closed: full height again
        page.wait_for_function(
            "() => document.querySelector('supportbot-widget').shadowRoot"
            ".querySelector('.panel').getBoundingClientRect().height === 844"
        )
        assert axe_violations(page) == []
    finally:
        context.close()
