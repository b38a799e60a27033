"""The admin page in a real Chromium, against a real server with the real answerer and a small KB.

An admin signs in, writes an article (the live preview is the widget's sanitizer, so HTML in the
body stays text), tries a question before and after saving, sees a customer on the demo page get
an answer citing the new article, edits it, restores the first version from the history, and
deletes it. An agent is refused. With ``SUPPORTBOT_SCREENSHOTS=1`` the test also refreshes
docs/admin.png, the picture the README shows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.core.db import transaction
from bot.core.settings import Settings
from bot.people.users import create_user
from ingest.embedder import Embedder
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

sync_api = pytest.importorskip("playwright.sync_api")

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN = ("ada.admin@example.com", "admin-password-1")
AGENT = ("ana.agent@example.com", "agent-password-1")

SEED = {
    "returns/return-policy.md": """---
id: returns/return-policy
title: Parcelly's return policy
url: https://help.parcelly.example/returns/return-policy
tags: returns
---
# Parcelly's return policy

You can return most items within **30 days of delivery** for a full refund of the item price.

## Items that cannot be returned
- Opened food and drink
- Gift cards
""",
    "shipping/shipping-options.md": """---
id: shipping/shipping-options
title: Shipping options and costs
url: https://help.parcelly.example/orders-shipping/shipping-options
tags: shipping
---
# Shipping options and costs

Standard delivery takes 3 to 5 business days and costs €4.95. Orders of €50 or more ship free.
Express delivery takes 1 to 2 business days and costs €9.95.
""",
}

ARTICLE_ID = "orders/damaged-parcel"
ARTICLE_URL = "https://help.parcelly.example/orders/damaged-parcel"
ARTICLE_TITLE = "What to do when a parcel arrives damaged"
XSS = '<img src=x onerror="window.__xss = 1">'
BODY_V1 = f"""If your parcel arrives damaged, we send a **free replacement** within 2 business days.

## How to report the damage
- Take a photo of the damaged box and item.
- Send it through https://help.parcelly.example/claims within 14 days.

{XSS}
"""
BODY_V2 = """If your parcel arrives damaged, we send a **free replacement** within 1 business day.

## How to report the damage
- Take a photo of the damaged box and item.
- Send it through https://help.parcelly.example/claims within 14 days.
"""
QUESTION = "My parcel arrived damaged. What do you do about a damaged parcel?"


@dataclass(frozen=True)
class Site:
    server: Any
    base_url: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Site]:
    """A real server (real answerer, store and chat) on a small indexed KB, with one admin and
    one agent who can sign in."""
    from ingest.pipeline import index_paths
    from tests.helpers.live_server import LiveServer

    root = tmp_path_factory.mktemp("admin")
    kb = root / "kb"
    for name, text in SEED.items():
        (kb / name).parent.mkdir(parents=True, exist_ok=True)
        (kb / name).write_text(text, encoding="utf-8")
    settings = Settings(data_dir=root / "data", kb_path=kb, _env_file=None)
    report = index_paths([kb], settings, embedder)
    assert not report.failed, report.failed
    server = LiveServer(settings)
    base_url = f"http://127.0.0.1:{server.port}"
    settings.allowed_origins = [base_url]
    with server:
        with transaction(server.ctx.sessions) as session:
            create_user(session, ADMIN[0], "admin", password=ADMIN[1])
            create_user(session, AGENT[0], "agent", password=AGENT[1])
        yield Site(server, base_url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    yield context
    context.close()


def sign_in(page: Any, base_url: str, who: tuple[str, str], next_path: str) -> None:
    page.goto(f"{base_url}/login?next={next_path}")
    page.fill("input[name=email]", who[0])
    page.fill("input[name=password]", who[1])
    page.click("button[type=submit]")


def try_question(page: Any, question: str) -> None:
    page.fill("#try-q", question)
    page.get_by_role("button", name="Ask").click()
    sync_api.expect(page.locator("#try-btn")).to_have_text("Ask")  # the answer is back


def test_admin_writes_tries_publishes_edits_restores_and_deletes(
    live: Site, context: Any, tmp_path: Path
) -> None:
    expect = sync_api.expect
    base = live.base_url
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    writes: list[tuple[str, str, str | None]] = []

    def record_write(request: Any) -> None:
        if request.method in {"POST", "PUT", "DELETE"} and "/api/admin/" in request.url:
            writes.append((request.method, request.url, request.headers.get("x-csrf-token")))

    page.on("request", record_write)

    # Signing in is required: the page redirects to the form, then back.
    page.goto(base + "/admin")
    expect(page).to_have_url(base + "/login?next=/admin")
    sign_in(page, base, ADMIN, "/admin")
    expect(page).to_have_url(base + "/admin")
    expect(page.get_by_role("link", name="Agent console")).to_have_attribute("href", "/agent")
    expect(page.locator("#editor-title")).to_have_text("New article")
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    # The widget script is there for its renderer only: no chat launcher on this page.
    expect(page.locator("supportbot-widget")).to_have_count(0)

    # "Try a question" works before the article exists: the "before" picture.
    try_question(page, QUESTION)
    expect(page.locator("#try-after")).to_be_visible()
    expect(page.locator(f'#try-after .sources li[data-article-id="{ARTICLE_ID}"]')).to_have_count(0)

    # The editor: labelled fields, and a live preview rendered by the widget's sanitizer.
    page.get_by_role("button", name="New article").click()
    page.get_by_label("Id", exact=True).fill(ARTICLE_ID)
    page.get_by_label("Title", exact=True).fill(ARTICLE_TITLE)
    page.get_by_label("URL", exact=True).fill(ARTICLE_URL)
    page.get_by_label("Tags", exact=True).fill("orders, damage")
    page.get_by_label("Body (Markdown)").fill(BODY_V1)
    preview = page.locator("#preview")
    expect(preview.locator("h3")).to_have_text(ARTICLE_TITLE)
    expect(preview.locator("strong").first).to_have_text("free replacement")
    expect(preview.locator("ul li")).to_have_count(2)
    expect(preview.locator('a[href="https://help.parcelly.example/claims"]')).to_have_count(1)
    # The very renderer the widget uses (its sanitizer, exposed by the widget script).
    same = page.evaluate(
        """(body) => {
          const copy = document.getElementById('preview').cloneNode(true);
          copy.querySelector('h3').remove();
          const widget = document.createElement('template');
          widget.innerHTML = customElements.get('supportbot-widget').renderMarkdown(body);
          return copy.innerHTML === widget.innerHTML;
        }""",
        BODY_V1,
    )
    assert same
    expect(preview).to_contain_text(XSS)  # shown as text...
    expect(preview.locator("img")).to_have_count(0)  # ...never as an element
    assert page.evaluate("() => window.__xss") is None

    # A missing title is caught before the API is asked, next to the field.
    page.get_by_label("Title", exact=True).fill("")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#f-title-error")).to_have_text("A title is required.")
    expect(page.get_by_label("Title", exact=True)).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Title", exact=True).fill(ARTICLE_TITLE)

    page.get_by_role("button", name="Save").click()
    expect(page.locator("#editor-notice")).to_contain_text("Created version 1")
    expect(page.locator("#editor-error")).to_be_hidden()
    expect(page.locator("#editor-title")).to_contain_text(ARTICLE_TITLE)
    expect(page.get_by_label("Id", exact=True)).to_have_attribute("readonly", "")
    item = page.locator(f'.article-item[data-article-id="{ARTICLE_ID}"]')
    expect(item).to_be_visible()
    expect(item).to_have_attribute("aria-current", "true")
    expect(item.locator(".status")).to_have_text(re.compile(r"^indexed · \d+ chunks?$"))
    expect(item).to_contain_text(ADMIN[0])
    expect(page.locator(".article-item")).to_have_count(len(SEED) + 1)

    # A save the API refuses (the id is taken) shows the API's reason; the draft can be dropped.
    page.get_by_role("button", name="New article").click()
    page.get_by_label("Id", exact=True).fill(ARTICLE_ID)
    page.get_by_label("Title", exact=True).fill("A second article with the same id")
    page.get_by_label("Body (Markdown)").fill("Some other text.")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#editor-error")).to_contain_text("Not saved: ")
    page.once("dialog", lambda dialog: dialog.accept())  # "Discard your unsaved changes?"
    item.click()
    expect(page.get_by_label("Title", exact=True)).to_have_value(ARTICLE_TITLE)
    expect(page.locator("#editor-error")).to_be_hidden()

    # Search and tag filter narrow the list; clearing them brings everything back.
    page.get_by_label("Search", exact=True).fill("replacement")
    expect(page.locator(".article-item")).to_have_count(1)
    page.get_by_label("Search", exact=True).fill("")
    page.get_by_label("Tag", exact=True).fill("shipping")
    expect(page.locator(".article-item")).to_have_count(1)
    expect(page.locator(".article-item")).to_contain_text("Shipping options")
    page.get_by_label("Tag", exact=True).fill("")
    expect(page.locator(".article-item")).to_have_count(len(SEED) + 1)

    # Tried again after saving: the new article is the source, beside the "before" result.
    try_question(page, QUESTION)
    after = page.locator("#try-after")
    expect(page.locator("#try-before")).to_be_visible()
    expect(after.locator(".note")).to_have_text("1 change saved since “Before”")
    expect(after.locator(f'.sources li[data-article-id="{ARTICLE_ID}"]')).to_be_visible()
    expect(after.locator(".answer")).to_contain_text("2 business days")
    expect(after.locator(".confidence")).to_have_text(re.compile(r"^\d+%$"))

    # A customer on the demo page asks the widget and gets the new article cited.
    shop = context.new_page()
    shop.on("pageerror", lambda error: errors.append(str(error)))
    shop.goto(base + "/")
    widget = shop.locator("supportbot-widget")
    widget.locator(".launcher").click()
    expect(widget.locator('.subtitle[data-connection="online"]')).to_be_visible()
    box = widget.locator("textarea")
    box.fill(QUESTION)
    box.press("Enter")
    answer = widget.locator(".msg.bot").last
    expect(answer.locator(f'.sources a[href="{ARTICLE_URL}"]')).to_be_visible(timeout=60_000)
    expect(answer.locator(".bubble")).to_contain_text("2 business days")
    shop.close()

    # Edit: version 2; the try box shows the answer before and after the change.
    page.get_by_label("Body (Markdown)").fill(BODY_V2)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#editor-notice")).to_contain_text("Saved version 2")
    try_question(page, QUESTION)
    expect(page.locator("#try-before .answer")).to_contain_text("2 business days")
    expect(after.locator(".answer")).to_contain_text("1 business day")
    expect(after.locator(f'.sources li[data-article-id="{ARTICLE_ID}"]')).to_be_visible()

    # The picture for the README: the list, the editor with its preview, a before/after try.
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    shot = tmp_path / "admin.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("SUPPORTBOT_SCREENSHOTS") == "1":
        (REPO_ROOT / "docs" / "admin.png").write_bytes(shot.read_bytes())

    # History: two versions; restoring the first brings its text back as a new version.
    page.get_by_role("button", name="History").click()
    expect(page.get_by_role("button", name="History")).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#history-list > li")).to_have_count(2)
    page.get_by_role("button", name="View version 1").click()
    expect(page.locator("#version-body")).to_contain_text("within 2 business days")
    page.get_by_role("button", name="Restore version 1").click()
    expect(page.locator("#editor-notice")).to_contain_text("Restored version 1")
    expect(page.get_by_label("Body (Markdown)")).to_have_value(re.compile("within 2 business days"))
    expect(page.locator("#history-list > li")).to_have_count(3)

    # Delete asks first; cancelling keeps the article, confirming removes it.
    page.get_by_role("button", name="Delete").click()
    dialog = page.locator("#confirm-delete")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(ARTICLE_ID)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(item).to_be_visible()
    page.get_by_role("button", name="Delete").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator("#editor-notice")).to_contain_text("Deleted")
    expect(item).to_have_count(0)
    expect(page.locator("#editor-title")).to_have_text("New article")
    try_question(page, QUESTION)
    expect(after.locator(f'.sources li[data-article-id="{ARTICLE_ID}"]')).to_have_count(0)

    # Every write carried the page's CSRF token; nothing on the page ran the payload.
    assert writes and all(token == csrf for _, _, token in writes), writes
    assert {m for m, _, _ in writes} >= {"POST", "PUT", "DELETE"}
    assert page.evaluate("() => window.__xss") is None
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_upload_reports_each_file(live: Site, context: Any) -> None:
    page = context.new_page()
    sign_in(page, live.base_url, ADMIN, "/admin")
    sync_api.expect(page).to_have_url(live.base_url + "/admin")
    page.locator("#upload summary").click()
    page.get_by_label("Markdown, HTML or text files").set_input_files(
        [
            {
                "name": "gift-wrap.md",
                "mimeType": "text/markdown",
                "buffer": b"---\nid: orders/gift-wrap\ntitle: Gift wrapping\n---\n"
                b"We wrap any order for 3.50.\n",
            },
            {"name": "empty.txt", "mimeType": "text/plain", "buffer": b""},
        ]
    )
    page.get_by_role("button", name="Upload").click()
    results = page.locator("#upload-results > li")
    sync_api.expect(results).to_have_count(2)
    sync_api.expect(results.filter(has_text="gift-wrap.md")).to_have_class("ok")
    sync_api.expect(results.filter(has_text="empty.txt")).to_have_class("failed")
    sync_api.expect(
        page.locator('.article-item[data-article-id="orders/gift-wrap"]')
    ).to_be_visible()
    page.get_by_role("button", name="Open orders/gift-wrap").click()
    sync_api.expect(page.get_by_label("Title", exact=True)).to_have_value("Gift wrapping")


def test_agent_is_refused(live: Site, context: Any) -> None:
    page = context.new_page()
    sign_in(page, live.base_url, AGENT, "/agent")
    sync_api.expect(page).to_have_url(live.base_url + "/agent")
    response = page.goto(live.base_url + "/admin")
    assert response is not None and response.status == 403
    api = page.request.get(live.base_url + "/api/admin/articles")
    assert api.status == 403
