"""The widget and the bot speak the customer's language, in a real Chromium and a real server.

The language comes from ``data-locale``, else the page's ``<html lang>``, else the browser's
languages; a regional tag uses its language (``fr-CA`` -> French), an unsupported one falls
through to the next source and finally to English. The widget sends it in ``hello``; the server
keeps it on the conversation and writes its own notices (here: the hand-over) in it.
"""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def site() -> Iterator[OtherOrigin]:
    with OtherOrigin() as site:
        yield site


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, site: OtherOrigin) -> Iterator[Any]:
    from tests.helpers.live_server import LiveServer, ScriptedAnswerer

    settings = Settings(
        data_dir=tmp_path_factory.mktemp("i18n") / "data",
        business_hours="24/7",
        allowed_origins=[site.url],
        _env_file=None,
    )
    with LiveServer(settings, ScriptedAnswerer()) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def visit(
    browser: Any,
    server: Any,
    site: OtherOrigin,
    *,
    lang: str | None,
    attrs: str = "",
    browser_locale: str,
) -> Any:
    base = f"http://127.0.0.1:{server.port}"
    html_lang = f' lang="{lang}"' if lang else ""
    site.html = (
        f"<!doctype html><html{html_lang}><head><title>Shop</title></head><body><h1>Shop</h1>"
        f'<script src="{base}/widget/supportbot.js" data-server="{base}" data-title="Shop" '
        f"{attrs} defer></script></body></html>"
    ).encode()
    context = browser.new_context(locale=browser_locale)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.add_init_script(RECORD_FRAMES)
    page.goto(site.url + "/")
    return page


def launcher_label(page: Any) -> str:
    launcher = page.locator("supportbot-widget").locator(".launcher")
    sync_api.expect(launcher).to_be_visible()
    label: str = launcher.get_attribute("aria-label")
    return label


@pytest.mark.parametrize(
    ("lang", "attrs", "browser_locale", "label"),
    [
        ("de", "", "en-US", "Chat öffnen: Shop"),  # the page's language
        ("de-AT", "", "en-US", "Chat öffnen: Shop"),  # regional: its language
        ("de", 'data-locale="fr-CA"', "en-US", "Ouvrir le chat : Shop"),  # data-locale first
        (None, "", "es-ES", "Abrir chat: Shop"),  # no lang: the browser's
        ("pt-BR", "", "de-DE", "Chat öffnen: Shop"),  # unsupported: the next source
        (None, "", "ja-JP", "Open chat: Shop"),  # nothing supported: English
    ],
)
def test_the_language_is_chosen_from_attribute_page_then_browser(
    browser: Any,
    server: Any,
    site: OtherOrigin,
    lang: str | None,
    attrs: str,
    browser_locale: str,
    label: str,
) -> None:
    page = visit(browser, server, site, lang=lang, attrs=attrs, browser_locale=browser_locale)
    try:
        assert launcher_label(page) == label
    finally:
        page.context.close()


def test_a_german_customer_gets_german_widget_and_bot_texts(
    browser: Any, server: Any, site: OtherOrigin
) -> None:
    from bot.conversations import store
    from bot.core.db import transaction

    page = visit(browser, server, site, lang="de", browser_locale="en-US")
    try:
        w = page.locator("supportbot-widget")
        w.locator(".launcher").click()
        sync_api.expect(w.locator(".subtitle")).to_have_text("Menschen erreichbar")
        sync_api.expect(w.locator("textarea")).to_have_attribute("placeholder", "Ihre Frage…")
        sync_api.expect(w.locator(".empty strong")).to_have_text("Hallo!")
        hello = page.evaluate("() => window.__sent.find(f => f.type === 'hello')")
        assert hello["locale"] == "de"
        # The server's own notice, in German.
        w.get_by_role("button", name="Mit einem Menschen sprechen").click()
        notice = w.locator(".msg.system .bubble").last
        sync_api.expect(notice).to_have_text(
            "Wir verbinden Sie mit einem Menschen. Jemand aus unserem Team antwortet Ihnen hier "
            "in Kürze."
        )
        sync_api.expect(w.locator(".banner")).to_contain_text("Warten auf einen Menschen")
        conversation_id = page.evaluate(
            "() => JSON.parse(Object.entries(localStorage).find(([k]) => "
            "k.startsWith('supportbot:v1:'))[1]).conversation_id"
        )
        with transaction(server.ctx.sessions) as session:
            conversation = store.get_conversation(session, conversation_id)
            assert conversation is not None and conversation.locale == "de"
    finally:
        page.context.close()
