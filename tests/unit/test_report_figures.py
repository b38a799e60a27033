"""Report figures (bot/reports/figures.py): scripted conversations with a frozen clock, checked
against numbers worked out by hand, on SQLite and PostgreSQL; the ledger's report equals the
one recomputed from history; percentiles, periods and the CSV writer on their own.

The script (times UTC; the report is in Europe/Amsterdam, UTC+1 in November, for the local days
2026-11-23 and 2026-11-24, judged at NOW = 2026-11-25 06:00 UTC):

=====  ==============  ======================================================================
conv   starts (UTC)    what happens
=====  ==============  ======================================================================
X      11-22 22:00     asks for a person; ana claims at 11-23 09:00, resolves; *before* the
                       period (11-22 23:00 local), only its queue wait counts (backlog)
H      11-23 10:00     the widget opened, the customer never wrote: not a conversation
A      11-23 10:00     bot answers (2 s), "helpful": deflected_confirmed; CSAT 5, then 5 + CES 7
B      11-23 10:10     bot answers after 32 s; no vote: deflected_assumed when the window closes
C      11-23 10:20     bot answers (2 s), "talk to a human" at 1 min; ana claims at 15, replies
                       at 16, resolves at 30; CSAT 3, then 4 + CES 5 (the latest counts)
D      11-23 10:30     the bot's answer (2 s) escalates (low_confidence); bob replies at 10 min,
                       resolves at 40; the customer writes again at 50 (reopened); CSAT 2
E      11-23 10:40     "hello?", never answered: abandoned
F      11-23 23:30     sensitive topic: escalated, still waiting (11-24 00:30 local: day 2)
K      11-24 01:00     bot answers after 62 s: deflected_assumed
G      11-24 12:00     bot answers, "not helpful": still undecided at NOW (window open)
J      11-24 14:00     asks for a person; ana replies at 5 min (claims), not resolved yet
=====  ==============  ======================================================================
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.conversations.store import record_csat
from bot.core.db import transaction
from bot.core.settings import Settings
from bot.handoff.ledger import close_idle_conversations, recompute_outcomes
from bot.reports.csv_export import conversations_csv, safe_cell
from bot.reports.figures import (
    MAX_DAYS,
    ConversationRow,
    Period,
    ReportError,
    conversation_rows,
    make_period,
    percentile,
    summarize,
    summary_from_history,
    summary_from_ledger,
)
from tests.unit.test_handoff import T0, Sim

ANA = "ana@example.com"
BOB = "bob@example.com"
NOW = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
AMSTERDAM = make_period(date(2026, 11, 23), date(2026, 11, 24), "Europe/Amsterdam")
KNOWN = {
    "returns/return-policy": "Return policy",
    "shipping/shipping-options": "Shipping options",
    "shipping/tracking": "Tracking a parcel",
    "shipping/prohibited-items": "Prohibited items",
    "account/reset-password": "Resetting your password",
}


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def rate(sim: Sim, score: int, minutes: float, ces: int | None = None) -> None:
    with transaction(sim.sessions) as session:
        record_csat(
            session,
            sim.conversation_id,
            score,
            ces=ces,
            now=sim.start + timedelta(minutes=minutes),
        )


def script(sessions: sessionmaker[Session], settings: Settings) -> dict[str, Sim]:
    def sim(start: datetime) -> Sim:
        return Sim(sessions, settings, start=start)

    x = sim(utc(22, 22))
    x.customer("talk to a human please")
    x.at(660).agent("claim", ANA)
    x.at(661).agent("resolve", ANA)

    sim(T0)  # H: opened, never written in

    a = sim(T0)
    a.customer("How do I return a parcel?")
    a.at(1).feedback(True)
    rate(a, 5, 2)
    rate(a, 5, 3, ces=7)

    b = sim(T0 + timedelta(minutes=10))
    b.customer("How much does shipping cost?", answer=None)
    b.at(0.5).bot("Standard delivery is 4.95.", article="shipping/shipping-options")

    c = sim(T0 + timedelta(minutes=20))
    c.customer("Where is my parcel?", article="shipping/tracking")
    c.at(1).customer("talk to a human please")
    c.at(15).agent("claim", ANA)
    c.at(16).agent("reply", ANA, "Let me look.")
    c.at(30).agent("resolve", ANA)
    rate(c, 3, 31)
    rate(c, 4, 32, ces=5)

    d = sim(T0 + timedelta(minutes=30))
    d.customer(
        "Can I ship a live lobster?",
        escalate=True,
        reason="low_confidence",
        article="shipping/prohibited-items",
    )
    d.at(10).agent("reply", BOB, "No live animals, sorry.")
    d.at(40).agent("resolve", BOB)
    rate(d, 2, 41)
    d.at(50).customer("Thanks. Where can I download my invoices?", answer=None)

    e = sim(T0 + timedelta(minutes=40))
    e.customer("hello?", answer=None)

    f = sim(utc(23, 23, 30))
    f.customer("My account was hacked")

    k = sim(utc(24, 1))
    k.customer("Do you deliver on Sundays?", answer=None)
    k.at(1).bot("Yes, on Sundays too.", article="shipping/shipping-options")

    g = sim(utc(24, 12))
    g.customer("How do I return a parcel?")
    g.at(1).feedback(False)

    j = sim(utc(24, 14))
    j.customer("talk to a human please")
    j.at(5).agent("reply", ANA, "Hi, I'm here.")

    with transaction(sessions) as session:
        close_idle_conversations(session, now=NOW, window_hours=settings.deflection_window_hours)
    return {"X": x, "A": a, "B": b, "C": c, "D": d, "E": e, "F": f, "K": k, "G": g, "J": j}


def spread(count: int, p50: int | None, p90: int | None) -> dict[str, int | None]:
    return {"count": count, "p50": p50, "p90": p90}


def scores(scale: int, **counts: int) -> dict[int, int]:
    """The distribution over 1..scale; ``s4=1`` means one 4."""
    return {n: counts.get(f"s{n}", 0) for n in range(1, scale + 1)}


TOTAL: dict[str, Any] = {
    "conversations": 9,  # A B C D E (11-23 local) + F K G J (11-24); not X (before), not H
    "decided": 8,
    "undecided": 1,  # G
    "deflected_confirmed": 1,  # A
    "deflected_assumed": 2,  # B K
    "escalated": 4,  # C D F J
    "abandoned": 1,  # E
    "deflection_rate_confirmed": 0.125,  # 1 / 8
    "deflection_rate_assumed": 0.25,  # 2 / 8
    "deflection_rate": 0.375,  # 3 / 8
    "escalation_rate": 0.5,  # 4 / 8
    "abandonment_rate": 0.125,  # 1 / 8
    "escalations_by_reason": {"customer_request": 2, "low_confidence": 1, "sensitive_topic": 1},
    # A 2 s, B 32 s, C 2 s, D 2 s, K 62 s -> [2, 2, 2, 32, 62] s; p50 rank ceil(2.5) = 3 -> 2 s;
    # p90 rank ceil(4.5) = 5 -> 62 s
    "first_bot_response_ms": spread(5, 2_000, 62_000),
    # C 16 - 1 = 15 min, D 10 min - 2 s = 598 s, J 5 min -> [300, 598, 900] s; ranks 2 and 3
    "first_human_response_ms": spread(3, 598_000, 900_000),
    # A 2 s, B 32 s, K 62 s, C 30 min, D 40 min -> ranks 3 (62 s) and 5 (40 min)
    "resolution_ms": spread(5, 62_000, 2_400_000),
    # A B C K; not D (reopened), E (abandoned), F J (not resolved): 4 / 8
    "first_contact_resolution": {"eligible": 8, "resolved": 4, "rate": 0.5},
    # latest scores A 5, C 4, D 2: (5 + 4 + 2) / 3; 3 of 9 conversations rated
    "csat": {
        "responses": 3,
        "average": 11 / 3,
        "distribution": scores(5, s2=1, s4=1, s5=1),
        "response_rate": 3 / 9,
    },
    # A 7, C 5: (7 + 5) / 2 = 6; 2 of 9
    "ces": {
        "responses": 2,
        "average": 6.0,
        "distribution": scores(7, s5=1, s7=1),
        "response_rate": 2 / 9,
    },
}

DAY_1: dict[str, Any] = {
    "day": date(2026, 11, 23),
    "conversations": 5,  # A B C D E
    "decided": 5,
    "undecided": 0,
    "deflected_confirmed": 1,
    "deflected_assumed": 1,
    "escalated": 2,
    "abandoned": 1,
    "deflection_rate_confirmed": 0.2,  # 1 / 5
    "deflection_rate_assumed": 0.2,  # 1 / 5
    "deflection_rate": 0.4,  # 2 / 5
    "escalation_rate": 0.4,  # 2 / 5
    "abandonment_rate": 0.2,  # 1 / 5
    "escalations_by_reason": {"customer_request": 1, "low_confidence": 1},
    # [2, 2, 2, 32] s: p50 rank ceil(2.0) = 2 -> 2 s; p90 rank ceil(3.6) = 4 -> 32 s
    "first_bot_response_ms": spread(4, 2_000, 32_000),
    # [598, 900] s: p50 rank 1, p90 rank ceil(1.8) = 2
    "first_human_response_ms": spread(2, 598_000, 900_000),
    # [2 s, 32 s, 30 min, 40 min]: p50 rank 2 -> 32 s, p90 rank 4 -> 40 min
    "resolution_ms": spread(4, 32_000, 2_400_000),
    "first_contact_resolution": {"eligible": 5, "resolved": 3, "rate": 0.6},  # A B C
    "csat": {
        "responses": 3,
        "average": 11 / 3,
        "distribution": scores(5, s2=1, s4=1, s5=1),
        "response_rate": 0.6,  # 3 / 5
    },
    "ces": {
        "responses": 2,
        "average": 6.0,
        "distribution": scores(7, s5=1, s7=1),
        "response_rate": 0.4,  # 2 / 5
    },
    # Waiting items over 11-22 23:00 .. 11-23 23:00 UTC: X from the start until 09:00 (1), none,
    # C 10:21 (1), D 10:30:02 (2), C claimed 10:35 (1), D claimed 10:40 (0); F comes at 23:30.
    "queue_waiting_end_of_day": 0,
    "queue_waiting_peak": 2,
}

DAY_2: dict[str, Any] = {
    "day": date(2026, 11, 24),
    "conversations": 4,  # F K G J
    "decided": 3,  # F K J
    "undecided": 1,  # G
    "deflected_confirmed": 0,
    "deflected_assumed": 1,  # K
    "escalated": 2,  # F J
    "abandoned": 0,
    "deflection_rate_confirmed": 0.0,
    "deflection_rate_assumed": 1 / 3,
    "deflection_rate": 1 / 3,
    "escalation_rate": 2 / 3,
    "abandonment_rate": 0.0,
    "escalations_by_reason": {"customer_request": 1, "sensitive_topic": 1},
    "first_bot_response_ms": spread(1, 62_000, 62_000),  # K
    "first_human_response_ms": spread(1, 300_000, 300_000),  # J
    "resolution_ms": spread(1, 62_000, 62_000),  # K
    "first_contact_resolution": {"eligible": 3, "resolved": 1, "rate": 1 / 3},  # K
    "csat": {
        "responses": 0,
        "average": None,
        "distribution": scores(5),
        "response_rate": 0.0,
    },
    "ces": {
        "responses": 0,
        "average": None,
        "distribution": scores(7),
        "response_rate": 0.0,
    },
    # 11-23 23:00 .. 11-24 23:00 UTC: none at the start, F 23:30 (1), J 14:00 (2), J claimed
    # 14:05 (1); F still waits at the end.
    "queue_waiting_end_of_day": 1,
    "queue_waiting_peak": 2,
}

ARTICLES: list[dict[str, Any]] = [
    {
        "article_id": "returns/return-policy",
        "title": "Return policy",
        "retrieved": 2,  # A G
        "cited": 2,
        "helpful": 1,  # A
        "not_helpful": 1,  # G
        "conversations": 2,
        "decided": 1,  # A (G undecided)
        "deflected": 1,
        "deflection_rate": 1.0,
    },
    {
        "article_id": "shipping/shipping-options",
        "title": "Shipping options",
        "retrieved": 2,  # B K
        "cited": 2,
        "helpful": 0,
        "not_helpful": 0,
        "conversations": 2,
        "decided": 2,
        "deflected": 2,
        "deflection_rate": 1.0,
    },
    {
        "article_id": "shipping/tracking",
        "title": "Tracking a parcel",
        "retrieved": 1,  # C
        "cited": 1,
        "helpful": 0,
        "not_helpful": 0,
        "conversations": 1,
        "decided": 1,
        "deflected": 0,  # C escalated
        "deflection_rate": 0.0,
    },
    {
        "article_id": "shipping/prohibited-items",
        "title": "Prohibited items",
        "retrieved": 1,  # D's answer listed it but escalated: not a citation
        "cited": 0,
        "helpful": 0,
        "not_helpful": 0,
        "conversations": 0,
        "decided": 0,
        "deflected": 0,
        "deflection_rate": None,
    },
    {
        "article_id": "account/reset-password",
        "title": "Resetting your password",
        "retrieved": 0,
        "cited": 0,
        "helpful": 0,
        "not_helpful": 0,
        "conversations": 0,
        "decided": 0,
        "deflected": 0,
        "deflection_rate": None,
    },
]

AGENTS: list[dict[str, Any]] = [
    {
        "agent": ANA,
        "conversations_handled": 2,  # C J (X is before the period; there she only claimed)
        "first_response_ms": spread(2, 300_000, 900_000),  # J 5 min, C 15 min
        "resolution_ms": spread(1, 1_800_000, 1_800_000),  # C 30 min
        "csat": {
            "responses": 1,
            "average": 4.0,
            "distribution": scores(5, s4=1),
            "response_rate": 0.5,  # C rated, J not
        },
    },
    {
        "agent": BOB,
        "conversations_handled": 1,  # D
        "first_response_ms": spread(1, 598_000, 598_000),
        "resolution_ms": spread(1, 2_400_000, 2_400_000),
        "csat": {
            "responses": 1,
            "average": 2.0,
            "distribution": scores(5, s2=1),
            "response_rate": 1.0,
        },
    },
]


def test_scripted_period_figures(sessions: sessionmaker[Session], hsettings: Settings) -> None:
    script(sessions, hsettings)
    with sessions() as session:
        summary = summary_from_ledger(session, AMSTERDAM, articles=KNOWN, now=NOW)
    assert (summary.since, summary.until, summary.tz) == (
        date(2026, 11, 23),
        date(2026, 11, 24),
        "Europe/Amsterdam",
    )
    assert (summary.start, summary.end) == (utc(22, 23), utc(24, 23))  # local midnights
    assert summary.total.model_dump() == TOTAL
    assert [d.model_dump() for d in summary.days] == [DAY_1, DAY_2]
    assert summary.backlog.model_dump() == {
        "waiting_now": 1,  # F
        "in_progress_now": 1,  # J (claimed by ana, not resolved)
        "oldest_waiting_since": utc(23, 23, 30),
        "oldest_waiting_s": 109_800,  # 11-23 23:30 -> 11-25 06:00 = 30.5 h
    }
    assert [a.model_dump() for a in summary.articles] == ARTICLES
    assert summary.articles_never_cited == ["account/reset-password", "shipping/prohibited-items"]
    assert [a.model_dump() for a in summary.agents] == AGENTS


def test_the_ledger_and_the_history_give_the_same_report(
    sessions: sessionmaker[Session], hsettings: Settings
) -> None:
    sims = script(sessions, hsettings)
    window = hsettings.deflection_window_hours
    with sessions() as session:
        from_ledger = summary_from_ledger(session, AMSTERDAM, articles=KNOWN, now=NOW)
        everything = recompute_outcomes(session, now=NOW, window_hours=window)
        recomputed = summarize(session, AMSTERDAM, everything, articles=KNOWN, now=NOW)
        from_history = summary_from_history(
            session, AMSTERDAM, now=NOW, window_hours=window, articles=KNOWN
        )
        rows = conversation_rows(session, AMSTERDAM)
        rows_recomputed = conversation_rows(session, AMSTERDAM, everything)
    assert from_ledger == recomputed == from_history
    assert rows == rows_recomputed
    # One row per conversation of the period, oldest first, local start times.
    assert [r.conversation_id for r in rows] == [
        sims[name].conversation_id for name in ("A", "B", "C", "D", "E", "F", "K", "G", "J")
    ]
    c = next(r for r in rows if r.conversation_id == sims["C"].conversation_id)
    assert c.model_dump() == {
        "conversation_id": sims["C"].conversation_id,
        "started_at": datetime(2026, 11, 23, 10, 20, tzinfo=UTC).astimezone(AMSTERDAM.tz),
        "outcome": "escalated",
        "reason": "customer_request",
        "first_bot_response_ms": 2_000,
        "first_human_response_ms": 900_000,
        "resolution_ms": 1_800_000,
        "csat": 4,
        "ces": 5,
        "agent": ANA,
        "first_question": "Where is my parcel?",
    }
    assert c.started_at.utcoffset() == timedelta(hours=1)
    g = next(r for r in rows if r.conversation_id == sims["G"].conversation_id)
    assert (g.outcome, g.agent, g.csat) == (None, None, None)  # undecided


def test_days_follow_the_time_zone(sessions: sessionmaker[Session], hsettings: Settings) -> None:
    """F starts 11-23 23:30 UTC: day 2 in Amsterdam, day 1 in UTC."""
    script(sessions, hsettings)
    in_utc = make_period(date(2026, 11, 23), date(2026, 11, 24), "UTC")
    with sessions() as session:
        summary = summary_from_ledger(session, in_utc, now=NOW)
    assert [(d.day, d.conversations) for d in summary.days] == [
        (date(2026, 11, 23), 6),  # A B C D E F
        (date(2026, 11, 24), 3),  # K G J
    ]
    assert summary.total.conversations == 9
    assert summary.articles_never_cited is None  # no list of known articles given
    # The queue by UTC days: 11-23 00:00..24:00 starts with X waiting; F arrives at 23:30.
    assert (summary.days[0].queue_waiting_end_of_day, summary.days[0].queue_waiting_peak) == (1, 2)


def test_a_day_that_has_not_started_has_no_queue_figures(
    sessions: sessionmaker[Session], hsettings: Settings
) -> None:
    period = make_period(date(2026, 11, 23), date(2026, 11, 24), "UTC")
    with sessions() as session:
        summary = summary_from_ledger(session, period, now=utc(23, 12))
    assert summary.days[1].queue_waiting_end_of_day is None
    assert summary.days[0].queue_waiting_end_of_day == 0
    assert summary.total.conversations == 0
    assert summary.total.deflection_rate is None  # nothing decided: no rate, not 0


# --- percentiles ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        # The textbook example: 5 values; rank = ceil(p * 5 / 100).
        ([15, 20, 35, 40, 50], 5, 15),  # rank ceil(0.25) = 1
        ([15, 20, 35, 40, 50], 30, 20),  # rank ceil(1.5) = 2
        ([15, 20, 35, 40, 50], 40, 20),  # rank ceil(2.0) = 2
        ([15, 20, 35, 40, 50], 50, 35),  # rank ceil(2.5) = 3
        ([15, 20, 35, 40, 50], 90, 50),  # rank ceil(4.5) = 5
        ([15, 20, 35, 40, 50], 100, 50),
        ([50, 15, 40, 20, 35], 50, 35),  # order does not matter
        (list(range(1, 11)), 90, 9),  # rank 9 exactly (0.9 * 10 in floats is 9.000000000000002)
        (list(range(1, 11)), 50, 5),  # rank 5: nearest rank, no interpolation (not 5.5)
        ([7], 50, 7),
        ([7], 90, 7),
        ([], 50, None),
    ],
)
def test_percentile_is_nearest_rank(values: list[int], p: int, expected: int | None) -> None:
    assert percentile(values, p) == expected


def test_percentile_refuses_a_p_outside_1_to_100() -> None:
    with pytest.raises(ValueError):
        percentile([1, 2], 0)
    with pytest.raises(ValueError):
        percentile([1, 2], 101)


# --- periods ----------------------------------------------------------------------------------


def test_the_default_period_is_the_last_30_local_days() -> None:
    # 11-25 06:00 UTC is already 11-25 in Amsterdam and still 11-24 in Los Angeles.
    period = make_period(tz="Europe/Amsterdam", now=NOW)
    assert (period.since, period.until) == (date(2026, 10, 27), date(2026, 11, 25))
    assert len(period.days()) == 30
    assert make_period(tz="America/Los_Angeles", now=NOW).until == date(2026, 11, 24)


def test_local_days_have_23_to_25_hours() -> None:
    period = make_period(date(2026, 10, 25), date(2026, 10, 25), "Europe/Amsterdam")
    assert period.end - period.start == timedelta(hours=25)  # clocks went back that night


@pytest.mark.parametrize(
    ("since", "until", "tz", "message"),
    [
        (date(2026, 11, 24), date(2026, 11, 23), "UTC", "after"),
        (None, None, "Mars/Olympus_Mons", "time zone"),
        (None, None, "../../etc/passwd", "time zone"),
        (None, None, "", "time zone"),
        (date(2024, 1, 1), date(2026, 1, 1), "UTC", f"{MAX_DAYS} days"),
    ],
)
def test_bad_periods_are_refused_with_a_reason(
    since: date | None, until: date | None, tz: str, message: str
) -> None:
    with pytest.raises(ReportError, match=message):
        make_period(since, until, tz, now=NOW)


def test_period_is_a_value() -> None:
    assert isinstance(AMSTERDAM, Period) and AMSTERDAM.tz.key == "Europe/Amsterdam"


# --- CSV --------------------------------------------------------------------------------------


def row(question: str, agent: str | None = None) -> ConversationRow:
    return ConversationRow(
        conversation_id="c1",
        started_at=utc(23, 10),
        outcome="escalated",
        reason="customer_request",
        first_bot_response_ms=2_000,
        first_human_response_ms=None,
        resolution_ms=None,
        csat=4,
        ces=None,
        agent=agent,
        first_question=question,
    )


def test_a_question_with_commas_quotes_and_newlines_round_trips() -> None:
    question = 'My parcel, "the big one",\nnever arrived;\r\nwhat now?'
    parsed = list(csv.reader(io.StringIO(conversations_csv([row(question)]), newline="")))
    assert parsed[0][-1] == "first_question"
    assert parsed[1][-1] == question
    assert parsed[1][:4] == ["c1", "2026-11-23T10:00:00+00:00", "escalated", "customer_request"]
    assert parsed[1][4:10] == ["2000", "", "", "4", "", ""]  # None -> empty


@pytest.mark.parametrize(
    "question",
    [
        '=HYPERLINK("http://evil.example","click")',
        "+1+1",
        "-2+3",
        "@SUM(A1:A2)",
        "\t=1+1",
        "\r=1+1",
    ],
)
def test_formula_like_cells_are_neutralised(question: str) -> None:
    text = conversations_csv([row(question, agent="=cmd|' /C calc'!A0")])
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed[1][-1] == "'" + question
    assert parsed[1][-2] == "'=cmd|' /C calc'!A0"


def test_safe_cell_leaves_plain_text_and_numbers_alone() -> None:
    assert safe_cell("How do I return a parcel?") == "How do I return a parcel?"
    assert safe_cell("a=b") == "a=b"
    assert safe_cell(-5) == -5
    assert safe_cell(None) == ""


# --- CES on the wire --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ces", "ok"), [(None, True), (1, True), (7, True), (0, False), (8, False)]
)
def test_the_csat_frame_takes_an_optional_effort_answer_from_1_to_7(
    ces: int | None, ok: bool
) -> None:
    from bot.conversations.frames import CsatFrame, ProtocolError, parse_client_frame

    raw = json.dumps({"type": "csat", "score": 4, **({} if ces is None else {"ces": ces})})
    if ok:
        frame = parse_client_frame(raw)
        assert isinstance(frame, CsatFrame) and frame.ces == ces
    else:
        with pytest.raises(ProtocolError) as refused:
            parse_client_frame(raw)
        assert refused.value.code == "invalid_frame" and "ces" in refused.value.detail
