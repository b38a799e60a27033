"""The deflection dashboard ``/reports`` in a real Chromium, on demo data written through the real
conversation code (``bot.reports.demo_data``) into the test server's database.

A lead signs in and sees every chart drawn with data, the headline tiles with their change against
the previous period, the content gaps and the per-article table, which sorts; an empty period
draws every chart empty with a "no data" note; the page is served with a strict
Content-Security-Policy and Chart.js (vendored) runs under it without a single console error. An
admin's "Draft an article" link opens the admin editor pre-filled with the drafted article.

The browser runs in the Europe/Amsterdam time zone: the page asks for the report in the
browser's zone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from bot.core.db import transaction
from bot.core.settings import Settings
from bot.people.users import create_user
from bot.reports.demo_data import fill_demo_data
from bot.reports.gaps import read_draft_link
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS
from tests.helpers.live_server import ORIGIN, LiveServer

PASSWORD = "lead-password-1"
CHARTS = ("chart-daily", "chart-reasons", "chart-backlog", "chart-csat", "chart-frt")
TIMEZONE = "Europe/Amsterdam"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("reports") / "data"
    settings = Settings(data_dir=data, allowed_origins=[ORIGIN], _env_file=None)
    with LiveServer(settings) as live:
        fill_demo_data(live.ctx.sessions, settings, days=21)
        with transaction(live.ctx.sessions) as session:
            create_user(session, "lee.lead@example.com", "lead", password=PASSWORD)
            create_user(session, "ada.admin@example.com", "admin", password=PASSWORD)
        yield live


class Browser:
    """One signed-in page, collecting console errors, failed requests and page errors."""

    def __init__(self, playwright: Any, base: str) -> None:
        self.base = base
        self.browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        self.context = self.browser.new_context(
            viewport={"width": 1280, "height": 900}, timezone_id=TIMEZONE
        )
        # Chromium asks every page for /favicon.ico; the service has none (not this page's issue).
        self.context.route("**/favicon.ico", lambda route: route.fulfill(status=204))
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.problems: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on(
            "response",
            lambda r: self.problems.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None,
        )

    def sign_in(self, email: str, path: str = "/reports") -> None:
        page = self.page
        page.goto(self.base + path)
        sync_api.expect(page).to_have_url(self.base + "/login?next=" + path)
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        sync_api.expect(page).to_have_url(self.base + path)

    def wait_loaded(self) -> None:
        self.page.wait_for_selector("#reports[data-loaded=all]", timeout=120_000)

    def close(self) -> None:
        self.context.close()
        self.browser.close()


@pytest.fixture
def playwright() -> Iterator[Any]:
    with sync_api.sync_playwright() as running:
        yield running


@pytest.fixture
def browser(server: LiveServer, playwright: Any) -> Iterator[Browser]:
    opened = Browser(playwright, f"http://127.0.0.1:{server.port}")
    yield opened
    opened.close()


def chart_points(page: Any, chart_id: str) -> int:
    """Non-empty data points the Chart.js instance on ``chart_id`` holds (-1: no chart)."""
    count: int = page.evaluate(
        """(id) => {
            const chart = window.Chart && window.Chart.getChart(id);
            if (!chart) return -1;
            return chart.data.datasets
                .flatMap((d) => d.data)
                .filter((v) => v !== null && v !== undefined && v !== 0).length;
        }""",
        chart_id,
    )
    return count


def column(page: Any, index: int) -> list[str]:
    texts: list[str] = page.locator(f"#articles-body tr td:nth-child({index})").all_inner_texts()
    return texts


def test_a_lead_sees_the_dashboard_with_data_and_an_empty_period(
    server: LiveServer, browser: Browser
) -> None:
    page = browser.page
    expect = sync_api.expect
    browser.sign_in("lee.lead@example.com")
    browser.wait_loaded()

    # A strict CSP on the page itself (the sign-in redirect's target).
    response = page.goto(browser.base + "/reports")
    assert response is not None and response.ok
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    browser.wait_loaded()

    # The browser's time zone is used for the days.
    expect(page.locator("#tz-label")).to_have_text(TIMEZONE)
    expect(page.locator("[data-days='30']")).to_have_attribute("aria-pressed", "true")

    # Every chart is drawn, with data; no "no data" note.
    for chart_id in CHARTS:
        assert chart_points(page, chart_id) > 0, chart_id
        assert page.locator(f"#{chart_id} ~ .no-data").is_hidden(), chart_id

    # Tiles: figures and a change against the previous 30 days (the demo has 21 days: the
    # previous period is empty) -- then 7 days, whose previous week has data.
    expect(page.locator("#tile-deflection .value")).to_have_text(re.compile(r"^\d+\.\d%$"))
    expect(page.locator("#tile-csat .value")).to_have_text(re.compile(r"^\d\.\d\d / 5$"))
    expect(page.locator("#tile-frt .value")).to_have_text(re.compile(r"\d"))
    expect(page.locator("#tile-backlog .value")).to_have_text(re.compile(r"^\d+$"))
    page.click("[data-days='7']")
    browser.wait_loaded()
    expect(page.locator("#tile-deflection .delta")).to_have_text(re.compile(r"pts vs previous"))
    expect(page.locator("#tile-deflection .delta")).to_have_class(re.compile(r"better|worse|flat"))
    expect(page.locator("#tile-escalation .delta")).to_have_text(re.compile(r"pts vs previous"))
    page.click("[data-days='30']")
    browser.wait_loaded()

    # Content gaps: largest group first, with counts; a lead gets no editor link.
    gaps = page.locator("#gaps-list > li")
    expect(gaps.first).to_be_visible()
    counts = [int(c) for c in page.locator("#gaps-list .gap-count").all_inner_texts()]
    assert counts and counts == sorted(counts, reverse=True) and counts[0] >= 2
    expect(page.locator("#gaps-list .draft-link")).to_have_count(0)
    gaps.first.locator("summary").click()
    expect(gaps.first.locator(".replies li").first).to_be_visible()

    # The article table sorts: by citations (the default, most first), then fewest first,
    # then by name.
    def cited() -> list[int]:
        return [int(x) for x in column(page, 2)]

    assert len(cited()) > 5
    assert cited() == sorted(cited(), reverse=True)
    cited_header = page.locator("th[data-key='cited']")
    expect(cited_header).to_have_attribute("aria-sort", "descending")
    cited_header.locator("button").click()
    expect(cited_header).to_have_attribute("aria-sort", "ascending")
    assert cited() == sorted(cited())
    page.locator("th[data-key='title'] button").click()
    names = [n.splitlines()[0].lower() for n in column(page, 1)]
    assert names == sorted(names)
    page.locator("th[data-key='deflection_rate'] button").click()
    expect(page.locator("th[data-key='deflection_rate']")).to_have_attribute(
        "aria-sort", "descending"
    )

    # An empty period: every chart is still there, empty, with its note.
    page.fill("#since", "2001-01-01")
    page.fill("#until", "2001-01-31")
    page.click("#apply-btn")
    browser.wait_loaded()
    expect(page.locator("#period-label")).to_contain_text("2001")
    for chart_id in CHARTS:
        assert chart_points(page, chart_id) == 0, chart_id
        expect(page.locator(f"#{chart_id} ~ .no-data")).to_be_visible()
    expect(page.locator("#tile-deflection .value")).to_have_text("–")
    expect(page.locator("#gaps-status")).to_have_text("No failed questions in this period.")
    assert all(c == "0" for c in column(page, 2))  # articles the index knows, never cited

    assert browser.problems == []


def test_the_draft_link_opens_the_admin_editor_prefilled(
    server: LiveServer, browser: Browser
) -> None:
    page = browser.page
    if page.request.get(browser.base + "/admin", max_redirects=0).status == 404:
        pytest.skip("the admin page is not part of this build")
    expect = sync_api.expect
    browser.sign_in("ada.admin@example.com")
    browser.wait_loaded()
    link = page.locator("#gaps-list .draft-link").first
    expect(link).to_be_visible()
    href = link.get_attribute("href")
    assert href is not None and href.startswith("/admin#draft=")
    draft = read_draft_link(href)
    title = page.locator("#gaps-list .gap-title strong").first.inner_text()
    assert draft.title == title[:1].upper() + title[1:]

    page.goto(browser.base + href)
    expect(page.locator("#f-title")).to_have_value(draft.title)
    expect(page.locator("#f-body")).to_have_value(draft.body)
    expect(page.locator("#editor-notice")).to_contain_text("Drafted from questions")
    assert "#draft=" not in page.url  # a reload does not fill it again
    assert browser.problems == []
