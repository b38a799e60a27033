"""The report API (bot/web/routes/reports.py) on the real app: who may call it, the period
parameters and their errors, the summary's shape, and the CSV exports as a spreadsheet reads
them. The figures themselves are checked in tests/unit/test_report_figures.py."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.conversations.store import record_csat
from bot.core.clock import utcnow
from bot.core.db import transaction
from bot.core.settings import Settings
from bot.people.users import create_user
from bot.web.app import create_app
from tests.unit.test_handoff import T0, Sim

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SINCE, UNTIL = "2026-11-23", "2026-11-23"
PERIOD = {"since": SINCE, "until": UNTIL, "tz": "Europe/Amsterdam"}
QUESTION = 'Hi, my order "PA-1", the big one,\nnever came. =1+1?'
FORMULA = '=HYPERLINK("http://evil.example","click me")'


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    # The outcome job stays idle: the ledger holds only what the conversations decided.
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("reports") / "data",
        outcome_job_interval_s=86_400,
        _env_file=None,
    )
    with TestClient(create_app(settings), base_url="http://localhost:8000") as test_client:
        yield test_client


@pytest.fixture(scope="module")
def tokens(client: TestClient) -> dict[str, str]:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    result = {}
    with transaction(ctx.sessions) as session:
        for role in ("agent", "lead", "admin"):
            _, result[role] = create_user(session, f"{role}@example.com", role)
    return result


@pytest.fixture(scope="module")
def conversations(client: TestClient) -> dict[str, str]:
    """Three conversations on 2026-11-23: a deflection, a formula, an escalation."""
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    settings = ctx.settings
    helped = Sim(ctx.sessions, settings, start=T0)
    helped.customer(QUESTION)
    helped.at(1).feedback(True)
    with transaction(ctx.sessions) as session:
        record_csat(session, helped.conversation_id, 5, ces=6, now=T0 + timedelta(minutes=2))
    formula = Sim(ctx.sessions, settings, start=T0 + timedelta(minutes=5))
    formula.customer(FORMULA)
    person = Sim(ctx.sessions, settings, start=T0 + timedelta(minutes=10))
    person.customer("talk to a human please")
    person.at(3).agent("reply", "ana@example.com", "Hi, Ana here.")
    return {
        "helped": helped.conversation_id,
        "formula": formula.conversation_id,
        "person": person.conversation_id,
    }


def get(client: TestClient, path: str, token: str | None, **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(path, params=params, headers=headers)


ROUTES = ["/api/reports/summary", "/api/reports/conversations.csv", "/api/reports/articles.csv"]


@pytest.mark.parametrize("path", ROUTES)
def test_leads_and_admins_only(client: TestClient, tokens: dict[str, str], path: str) -> None:
    anonymous = get(client, path, None)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert get(client, path, tokens["agent"]).status_code == 403
    assert get(client, path, tokens["lead"]).status_code == 200
    assert get(client, path, tokens["admin"]).status_code == 200


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"tz": "Mars/Olympus_Mons"}, "unknown time zone 'Mars/Olympus_Mons'"),
        ({"since": "2026-11-24", "until": "2026-11-23"}, "since (2026-11-24) is after until"),
        ({"since": "2020-01-01", "until": "2026-01-01"}, "longer than 366 days"),
    ],
)
def test_bad_periods_are_422_with_a_reason(
    client: TestClient, tokens: dict[str, str], path: str, params: dict[str, str], says: str
) -> None:
    response = get(client, path, tokens["lead"], **params)
    assert response.status_code == 422
    assert says in response.json()["detail"]


def test_a_malformed_date_is_422(client: TestClient, tokens: dict[str, str]) -> None:
    response = get(client, "/api/reports/summary", tokens["lead"], since="23/11/2026")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "since"]


def test_the_default_period_is_the_last_30_days_in_utc(
    client: TestClient, tokens: dict[str, str]
) -> None:
    body = get(client, "/api/reports/summary", tokens["lead"]).json()
    today = utcnow().date()
    assert body["tz"] == "UTC"
    assert body["until"] == today.isoformat()
    assert body["since"] == (today - timedelta(days=29)).isoformat()
    assert len(body["days"]) == 30


def test_the_summary(
    client: TestClient, tokens: dict[str, str], conversations: dict[str, str]
) -> None:
    body = get(client, "/api/reports/summary", tokens["lead"], **PERIOD).json()
    assert set(body) == {
        "since",
        "until",
        "tz",
        "start",
        "end",
        "generated_at",
        "total",
        "days",
        "backlog",
        "articles",
        "articles_never_cited",
        "agents",
    }
    assert (body["since"], body["until"], body["tz"]) == (SINCE, UNTIL, "Europe/Amsterdam")
    assert [day["day"] for day in body["days"]] == [SINCE]
    total = body["total"]
    assert total["conversations"] == 3
    # helped: confirmed; person: escalated; formula: answered, window still open (undecided).
    assert (total["decided"], total["undecided"]) == (2, 1)
    assert (total["deflection_rate_confirmed"], total["escalation_rate"]) == (0.5, 0.5)
    assert total["escalations_by_reason"] == {"customer_request": 1}
    assert total["first_human_response_ms"] == {"count": 1, "p50": 180_000, "p90": 180_000}
    assert total["csat"]["distribution"] == {"1": 0, "2": 0, "3": 0, "4": 0, "5": 1}
    assert total["ces"]["average"] == 6.0
    assert total["ces"]["distribution"]["6"] == 1
    assert body["days"][0]["queue_waiting_end_of_day"] == 0  # ana claimed it by replying
    assert body["articles"][0]["article_id"] == "returns/return-policy"
    assert body["articles"][0]["helpful"] == 1
    assert body["agents"][0]["agent"] == "ana@example.com"
    assert body["articles_never_cited"] == []  # the search index is empty here


def test_the_conversations_csv(
    client: TestClient, tokens: dict[str, str], conversations: dict[str, str]
) -> None:
    response = get(client, "/api/reports/conversations.csv", tokens["lead"], **PERIOD)
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="conversations-{SINCE}-{UNTIL}.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    by_id = {row["conversation_id"]: row for row in rows}
    assert list(by_id) == [
        conversations["helped"],
        conversations["formula"],
        conversations["person"],
    ]
    helped = by_id[conversations["helped"]]
    assert helped["first_question"] == QUESTION  # commas, quotes, a newline: intact
    assert helped["started_at"] == "2026-11-23T11:00:00+01:00"
    assert (helped["outcome"], helped["csat"], helped["ces"]) == ("deflected_confirmed", "5", "6")
    assert by_id[conversations["formula"]]["first_question"] == "'" + FORMULA  # neutralised
    assert by_id[conversations["formula"]]["outcome"] == ""  # undecided
    person = by_id[conversations["person"]]
    assert (person["outcome"], person["reason"], person["agent"]) == (
        "escalated",
        "customer_request",
        "ana@example.com",
    )
    assert person["first_human_response_ms"] == "180000"


def test_the_articles_csv(
    client: TestClient, tokens: dict[str, str], conversations: dict[str, str]
) -> None:
    response = get(client, "/api/reports/articles.csv", tokens["lead"], **PERIOD)
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    assert rows[0]["article_id"] == "returns/return-policy"
    assert (rows[0]["retrieved"], rows[0]["cited"], rows[0]["helpful"]) == ("2", "2", "1")
    assert rows[0]["deflection_rate"] == "1.0"  # the one decided citing conversation deflected


def test_a_period_with_nothing_in_it(client: TestClient, tokens: dict[str, str]) -> None:
    body = get(
        client, "/api/reports/summary", tokens["lead"], since="2020-01-01", until="2020-01-02"
    ).json()
    assert body["total"]["conversations"] == 0
    assert body["total"]["deflection_rate"] is None
    assert [d["day"] for d in body["days"]] == [date(2020, 1, 1).isoformat(), "2020-01-02"]
