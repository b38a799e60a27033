"""The escalation policy (bot/handoff/policy.py): verdict x signals -> one decision."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core.schemas import AnswerResult, EscalationReason, Source
from bot.core.settings import Settings
from bot.handoff.policy import (
    ANSWER,
    ANSWER_FAILED,
    AnswerFailure,
    Availability,
    Decision,
    answers_while_waiting,
    availability,
    bot_turn,
    decide,
    failed_answer,
    waiting_note,
)
from bot.handoff.triggers import QUIET, Signals

ANSWERED = AnswerResult(answer="Refunds take 5 days.", escalate=False, confidence=0.81)
LOW = AnswerResult(answer="...", escalate=True, reason="low_confidence", confidence=0.42)
NONE_FOUND = AnswerResult(answer="...", escalate=True, reason="no_knowledge", confidence=0.05)
ASKED = AnswerResult(answer="...", escalate=True, reason="customer_request", confidence=0.7)
BROKE_OFF = AnswerResult(answer="Refunds ...", escalate=True, reason="error", confidence=0.6)
NO_REASON = AnswerResult(answer="...", escalate=True, confidence=0.3)

WORDS = Signals(person_request="words")
BUTTON = Signals(person_request="button")
LEGAL = Signals(sensitive_topic="legal")
ANGRY = Signals(frustration=3)
MILD = Signals(frustration=1)
REPHRASED_ONCE = Signals(failed_answer="rephrase", failures_in_a_row=1)
REPHRASED_TWICE = Signals(failed_answer="rephrase", failures_in_a_row=2)
UNHELPFUL_TWICE = Signals(failed_answer="feedback", failures_in_a_row=2)
EVERYTHING = Signals(
    person_request="words",
    sensitive_topic="legal",
    frustration=5,
    failed_answer="rephrase",
    failures_in_a_row=3,
)

Verdict = AnswerResult | AnswerFailure | None


def hand_over(reason: EscalationReason, detail: str) -> Decision:
    return Decision(True, reason, detail)


PERSON = hand_over("customer_request", "asked for a person")
AGAIN = hand_over("repeated_failure", "asked the same question again")
FAILED = hand_over("error", "the answerer failed")

CASES: list[tuple[str, Signals, Verdict, Decision]] = [
    # a customer message, before any answer
    ("nothing said", QUIET, None, ANSWER),
    ("asks for a person", WORDS, None, PERSON),
    ("presses the button", BUTTON, None, hand_over("customer_request", "pressed talk to a person")),
    ("sensitive topic", LEGAL, None, hand_over("sensitive_topic", "legal")),
    ("strong frustration", ANGRY, None, hand_over("frustration", "frustration score 3")),
    ("one mild word", MILD, None, ANSWER),
    ("first failed answer: one more try", REPHRASED_ONCE, None, ANSWER),
    ("second failed answer (rephrase)", REPHRASED_TWICE, None, AGAIN),
    ("second failed answer (votes)", UNHELPFUL_TWICE, None,
     hand_over("repeated_failure", "two unhelpful answers in a row")),
    ("the customer's words in order of weight", EVERYTHING, None, PERSON),
    ("topic before frustration", Signals(sensitive_topic="legal", frustration=4), None,
     hand_over("sensitive_topic", "legal")),
    # a bot answer: the verdict decides
    ("answered", QUIET, ANSWERED, ANSWER),
    ("low confidence", QUIET, LOW, hand_over("low_confidence", "confidence 0.42")),
    ("no knowledge", QUIET, NONE_FOUND, hand_over("no_knowledge", "confidence 0.05")),
    ("asked, in /api/ask", QUIET, ASKED, hand_over("customer_request", "confidence 0.70")),
    ("the answerer broke off", QUIET, BROKE_OFF, hand_over("error", "confidence 0.60")),
    ("the answerer failed", QUIET, ANSWER_FAILED, FAILED),
    ("escalate, no reason", QUIET, NO_REASON, hand_over("low_confidence", "confidence 0.30")),
    # both: what the customer says comes first
    ("person over a good answer", WORDS, ANSWERED, PERSON),
    ("topic over a failure", LEGAL, ANSWER_FAILED, hand_over("sensitive_topic", "legal")),
    ("repeat over low confidence", REPHRASED_TWICE, LOW, AGAIN),
    ("mild words do not stop a failure", MILD, ANSWER_FAILED, FAILED),
    ("one failure does not stop a good answer", REPHRASED_ONCE, ANSWERED, ANSWER),
]  # fmt: skip


@pytest.mark.parametrize(
    ("signals", "verdict", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decision(signals: Signals, verdict: Verdict, expected: Decision) -> None:
    assert decide(signals, verdict) == expected


def test_a_failed_answer_is_an_honest_handover_with_reason_error() -> None:
    result = failed_answer()
    assert (result.escalate, result.reason, result.confidence) == (True, "error", 0.0)
    assert "something went wrong" in result.answer and "support team" in result.answer
    assert result.sources == []


def test_a_failed_answer_keeps_what_had_streamed_as_its_start() -> None:
    result = failed_answer("Refunds are paid within ")
    assert result.answer.startswith("Refunds are paid within \n\nSorry, something went wrong")
    assert result.reason == "error"


# --- who answers while the conversation waits for a person ------------------------------------

WAIT_THRESHOLD = 0.85


@pytest.mark.parametrize(
    ("state", "signals", "expected"),
    [
        ("bot", QUIET, "answer"),
        ("awaiting_human", QUIET, "answer_if_confident"),
        ("awaiting_human", MILD, "answer_if_confident"),
        # the customer's own words are the person's to answer
        ("awaiting_human", WORDS, "silent"),
        ("awaiting_human", LEGAL, "silent"),
        ("awaiting_human", ANGRY, "silent"),
        # a person holds it (or it has ended: the machine reopens it to the bot first)
        ("human", QUIET, "silent"),
        ("resolved", QUIET, "silent"),
    ],
)
def test_who_answers_in_each_state(state: str, signals: Signals, expected: str) -> None:
    assert bot_turn(state, signals) == expected


def test_only_a_confident_plain_answer_is_given_while_waiting() -> None:
    sure = AnswerResult(answer="Refunds take 5 days.", escalate=False, confidence=0.86)
    assert answers_while_waiting(sure, WAIT_THRESHOLD)
    # answered in a bot conversation (above answer_threshold), but not sure enough now
    assert not answers_while_waiting(
        ANSWERED.model_copy(update={"confidence": 0.7}), WAIT_THRESHOLD
    )
    assert not answers_while_waiting(LOW, WAIT_THRESHOLD)
    assert not answers_while_waiting(
        BROKE_OFF.model_copy(update={"confidence": 0.9}), WAIT_THRESHOLD
    )
    which = sure.model_copy(
        update={"suggestions": [Source(article_id="a", title="A", score=0.9)] * 2}
    )
    assert not answers_while_waiting(which, WAIT_THRESHOLD)


def test_availability_follows_business_hours(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, business_hours="Mon-Fri 09:00-17:00", _env_file=None)
    monday_10 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    monday_22 = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)
    assert availability(settings, monday_10) == Availability(True)
    closed = availability(settings, monday_22)
    assert closed == Availability(False, datetime(2026, 11, 24, 9, 0, tzinfo=UTC))
    assert "tomorrow at 09:00" in waiting_note(settings, monday_22)
    assert "shortly" in waiting_note(settings, monday_10)
    always = Settings(data_dir=tmp_path, business_hours="24/7", _env_file=None)
    assert availability(always, monday_22).available
