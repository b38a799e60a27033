"""The deflection ledger: scripted conversations (frozen clock) -> outcome, reason, timings; and
the incremental ledger agrees with a recomputation from messages and events alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.core.db import transaction
from bot.core.settings import Settings
from bot.handoff.ledger import OutcomeRecord, ledger, recompute_outcomes
from tests.unit.test_handoff import BOT_DELAY, T0, Sim

ANA = "ana@example.com"


H = 60  # minutes per hour
S2 = int(BOT_DELAY.total_seconds() * 1000)  # the scripted bot answers 2 s after the question


@dataclass(frozen=True)
class Case:
    name: str
    script: Callable[[Sim], None]
    outcome: str | None
    reason: str | None = None
    first_bot_ms: int | None = None
    first_human_ms: int | None = None
    resolution_ms: int | None = None
    judged_at_minutes: float = 25 * H


def confirmed(s: Sim) -> None:
    s.customer("How do I return a parcel?")
    s.at(1).feedback(True)


def assumed(s: Sim) -> None:
    s.customer("How do I return a parcel?")


def confirmed_then_unhelpful(s: Sim) -> None:
    s.customer("How do I return a parcel?")
    s.at(1).feedback(True)
    s.at(2).customer("And what does it cost to Spain?")
    s.at(3).feedback(False)


def escalated_by_request(s: Sim) -> None:
    s.customer("Where is my parcel?")
    s.at(1).customer("talk to a human please")
    s.at(5).agent("claim", ANA)
    s.at(6).agent("reply", ANA, "Hi, let me look.")
    s.at(20).agent("resolve", ANA)


def escalated_low_confidence(s: Sim) -> None:
    s.customer("Can I ship a live lobster?", escalate=True, reason="low_confidence")


def escalated_then_handed_back(s: Sim) -> None:
    s.customer("I was charged twice for one label")
    s.at(3).agent("claim", ANA)
    s.at(4).agent("handback", ANA)
    s.at(5).customer("How do I return a parcel?")
    s.at(6).feedback(True)


def repeated_failure(s: Sim) -> None:
    s.customer("How long does a refund take?")
    s.at(1).feedback(False)
    s.at(2).customer("What is the fee for parcels to Spain?")
    s.at(3).feedback(False)


def never_answered(s: Sim) -> None:
    s.customer("hello?", answer=None)


def unhelpful_and_gone(s: Sim) -> None:
    s.customer("How do I return a parcel?")
    s.at(1).feedback(False)


def came_back_later_same_conversation(s: Sim) -> None:
    s.customer("How do I return a parcel?")
    s.at(20 * H).customer("Thanks, and do you deliver on Sundays?")


def no_customer_message(s: Sim) -> None:
    pass


def escalated_out_of_hours_still_waiting(s: Sim) -> None:
    s.customer("My account was hacked")


CASES = [
    Case("confirmed", confirmed, "deflected_confirmed", None, S2, None, S2),
    Case("assumed after the window", assumed, "deflected_assumed", None, S2, None, S2),
    Case("not yet: window still open", assumed, None, judged_at_minutes=23 * H),
    Case("confirmed, then unhelpful", confirmed_then_unhelpful, "abandoned", None, S2),
    Case(
        "escalated on request",
        escalated_by_request,
        "escalated",
        "customer_request",
        S2,
        5 * 60_000,  # escalated at 1 min, first agent reply at 6 min
        20 * 60_000,
    ),
    Case("escalated, low confidence", escalated_low_confidence, "escalated", "low_confidence", S2),
    Case("escalated, handed back", escalated_then_handed_back, "escalated", "sensitive_topic"),
    Case("repeated failure", repeated_failure, "escalated", "repeated_failure", S2),
    Case("never answered", never_answered, "abandoned"),
    Case("unhelpful and gone", unhelpful_and_gone, "abandoned", None, S2),
    Case(
        "returned within the window: window restarts",
        came_back_later_same_conversation,
        None,
        judged_at_minutes=25 * H,
    ),
    Case(
        "returned within the window: then assumed",
        came_back_later_same_conversation,
        "deflected_assumed",
        None,
        S2,
        None,
        20 * H * 60_000 + S2,
        judged_at_minutes=45 * H,
    ),
    Case("no customer message", no_customer_message, None),
    Case(
        "escalated, waiting", escalated_out_of_hours_still_waiting, "escalated", "sensitive_topic"
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_scripted_outcomes(
    case: Case, sessions: sessionmaker[Session], hsettings: Settings
) -> None:
    sim = Sim(sessions, hsettings)
    case.script(sim)
    sim.close_idle(case.judged_at_minutes)
    with sessions() as session:
        rows = ledger(session)
        recomputed = recompute_outcomes(
            session,
            now=T0 + timedelta(minutes=case.judged_at_minutes),
            window_hours=hsettings.deflection_window_hours,
        )
    row = rows.get(sim.conversation_id)
    if case.outcome is None:
        assert row is None
    else:
        assert row is not None
        got = (row.outcome, row.reason, row.first_bot_response_ms)
        assert got == (case.outcome, case.reason, case.first_bot_ms)
        assert row.first_human_response_ms == case.first_human_ms
        assert row.resolution_ms == case.resolution_ms
    # The incremental ledger and the recomputation from history agree, field for field.
    assert rows == recomputed


def test_assumed_deflection_is_decided_at_last_activity_plus_window(
    sessions: sessionmaker[Session], hsettings: Settings
) -> None:
    sim = Sim(sessions, hsettings)
    assumed(sim)
    sim.close_idle(30 * H)
    with sessions() as session:
        row = ledger(session)[sim.conversation_id]
    assert row.decided_at == T0 + BOT_DELAY + timedelta(hours=24)


def test_returning_visitor_with_the_same_problem_revokes_the_assumed_deflection(
    sessions: sessionmaker[Session], hsettings: Settings
) -> None:
    first = Sim(sessions, hsettings, visitor={"id": "v-42"})
    first.customer("How do I change my delivery address?", article="delivery/change-address")
    later = Sim(sessions, hsettings, start=T0 + timedelta(hours=3), visitor={"id": "v-42"})
    later.customer("how can I change the delivery address?", article="delivery/change-address")
    other = Sim(sessions, hsettings, visitor={"id": "v-7"})
    other.customer("How do I change my delivery address?", article="delivery/change-address")
    first.close_idle(30 * H)
    with sessions() as session:
        rows = ledger(session)
        assert rows == recompute_outcomes(session, now=T0 + timedelta(hours=30))
    assert (rows[first.conversation_id].outcome, rows[first.conversation_id].reason) == (
        "abandoned",
        "returned",
    )
    assert rows[later.conversation_id].outcome == "deflected_assumed"
    assert rows[other.conversation_id].outcome == "deflected_assumed"


def test_a_different_problem_does_not_revoke(
    sessions: sessionmaker[Session], hsettings: Settings
) -> None:
    first = Sim(sessions, hsettings, visitor={"id": "v-42"})
    first.customer("How do I change my delivery address?", article="delivery/change-address")
    later = Sim(sessions, hsettings, start=T0 + timedelta(hours=3), visitor={"id": "v-42"})
    later.customer("What are the opening hours of the depot?", article="depots/hours")
    first.close_idle(30 * H)
    with sessions() as session:
        assert ledger(session)[first.conversation_id].outcome == "deflected_assumed"


def test_many_conversations_ledger_equals_recompute_and_recompute_can_repair(
    sessions: sessionmaker[Session], hsettings: Settings
) -> None:
    for index, case in enumerate(CASES):
        sim = Sim(sessions, hsettings, start=T0 + timedelta(minutes=index))
        case.script(sim)
    Sim(sessions, hsettings).close_idle(50 * H)
    now = T0 + timedelta(hours=50)
    with transaction(sessions) as session:
        before = ledger(session)
        assert before == recompute_outcomes(session, now=now)
        assert len(before) >= 9
        # Repair: wipe and rebuild from history gives the same ledger.
        recompute_outcomes(session, now=now, write=True)
    with sessions() as session:
        after: dict[str, OutcomeRecord] = ledger(session)
    assert after == before


def test_job_does_not_close_a_conversation_twice(
    sessions: sessionmaker[Session], hsettings: Settings
) -> None:
    sim = Sim(sessions, hsettings)
    assumed(sim)
    sim.close_idle(25 * H)
    sim.close_idle(26 * H)
    assert sim.event_kinds().count("closed") == 1


async def test_the_lifespan_job_closes_idle_conversations(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """run_outcome_job (started by the app lifespan) applies the same rules on a timer."""
    import asyncio

    from bot.core.clock import utcnow
    from bot.core.db import DatabaseWorkers
    from bot.handoff.ledger import run_outcome_job

    settings = Settings(data_dir=tmp_path, outcome_job_interval_s=0.05, _env_file=None)
    sim = Sim(sessions, settings, start=utcnow() - timedelta(hours=30))
    assumed(sim)
    database = DatabaseWorkers(sessions, max_workers=1)
    job = asyncio.create_task(run_outcome_job(database, settings))
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            with sessions() as session:
                if sim.conversation_id in ledger(session):
                    break
    finally:
        job.cancel()
    with sessions() as session:
        assert ledger(session)[sim.conversation_id].outcome == "deflected_assumed"
