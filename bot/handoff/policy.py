"""The escalation policy: where "does a person take over?" is decided, and why.

Two kinds of evidence reach it:

- the verdict on the bot's answer: an :class:`~bot.core.schemas.AnswerResult` that says
  ``escalate`` with a reason (from :func:`bot.knowledge.answerability.decide`, the LLM's ESCALATE
  refusal, or an answerer that broke off part-way), or :data:`ANSWER_FAILED` when the answerer
  produced nothing at all;
- the conversation's :class:`~bot.handoff.triggers.Signals`: an explicit request for a person,
  a sensitive topic, frustration, and the bot's failed answers in a row.

:func:`decide` turns them into one :class:`Decision`. The state machine asks it and only
performs the transition; the knowledge layer cannot import this module, which is why the
answerers hand over a verdict rather than a decision.

Precedence: what the customer says (a request for a person, a sensitive topic, strong
frustration, the same question again) comes before the verdict on an answer, in that order.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.schemas import AnswerResult, EscalationReason
from bot.handoff.triggers import QUIET, Signals
from bot.knowledge.answerers import ESCALATION_TEXT

FRUSTRATION_THRESHOLD = 2
"""Frustration score from which a person takes over: one mild word scores 1, profanity or
"useless bot" 2."""
FAILED_ANSWERS_IN_A_ROW = 2
"""The bot gets one more try after a failed answer; the second failure hands over."""


@dataclass(frozen=True)
class AnswerFailure:
    """The answerer raised or there is none: no answer and no verdict."""


ANSWER_FAILED = AnswerFailure()


@dataclass(frozen=True)
class Decision:
    """Let the bot answer (``escalate`` false), or hand over for ``reason``; ``detail`` is
    what the agent's queue shows about why."""

    escalate: bool
    reason: EscalationReason | None = None
    detail: str | None = None


ANSWER = Decision(escalate=False)


def decide(
    signals: Signals = QUIET, verdict: AnswerResult | AnswerFailure | None = None
) -> Decision:
    """The one decision for a customer message (``verdict`` ``None``: not answered yet), a
    customer action (feedback, the "talk to a person" button) or a bot answer."""
    if signals.person_request is not None:
        how = "pressed talk to a person" if signals.person_request == "button" else None
        return Decision(True, "customer_request", how or "asked for a person")
    if signals.sensitive_topic is not None:
        return Decision(True, "sensitive_topic", signals.sensitive_topic)
    if signals.frustration >= FRUSTRATION_THRESHOLD:
        return Decision(True, "frustration", f"frustration score {signals.frustration}")
    if signals.failed_answer is not None and signals.failures_in_a_row >= FAILED_ANSWERS_IN_A_ROW:
        if signals.failed_answer == "rephrase":
            return Decision(True, "repeated_failure", "asked the same question again")
        return Decision(True, "repeated_failure", "two unhelpful answers in a row")
    if isinstance(verdict, AnswerFailure):
        return Decision(True, "error", "the answerer failed")
    if verdict is not None and verdict.escalate:
        reason = verdict.reason or "low_confidence"
        return Decision(True, reason, f"confidence {verdict.confidence:.2f}")
    return ANSWER


def failed_answer(streamed: str = "") -> AnswerResult:
    """The reply when the answerer fails: what had already streamed, then an honest "something
    went wrong" and the handover (``streamed`` stays a prefix, so the deltas the customer saw
    still add up to the stored text)."""
    decision = decide(verdict=ANSWER_FAILED)
    assert decision.reason is not None
    text = ESCALATION_TEXT[decision.reason]
    return AnswerResult(
        answer=f"{streamed}\n\n{text}" if streamed else text,
        escalate=True,
        reason=decision.reason,
        confidence=0.0,
    )
