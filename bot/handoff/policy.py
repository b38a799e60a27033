"""The escalation policy: where "does a person take over?" is decided, and why.

Two kinds of evidence reach it:

- the verdict on the bot's answer: an :class:`~bot.core.schemas.AnswerResult` that says
  ``escalate`` with a reason (from :func:`bot.knowledge.answerability.decide`, the LLM's ESCALATE
  refusal, or an answerer that broke off part-way), :data:`ANSWER_FAILED` when the answerer
  produced nothing at all, or :data:`NO_MATCH` when the customer answered "none of these" to
  the articles the bot offered;
- the conversation's :class:`~bot.handoff.triggers.Signals`: an explicit request for a person,
  a sensitive topic, frustration, and the bot's failed answers in a row.

:func:`decide` turns them into one :class:`Decision`. The state machine asks it and only
performs the transition; the knowledge layer cannot import this module, which is why the
answerers hand over a verdict rather than a decision.

Precedence: what the customer says (a request for a person, a sensitive topic, strong
frustration, the same question again) comes before the verdict on an answer, in that order.

Who answers in each state is decided here too (:func:`bot_turn`): the bot in ``bot``; nobody
but a person once one has claimed the conversation (``human``); and while the conversation waits
in the queue (``awaiting_human``, often overnight) the bot still answers what it can answer with
high confidence (:func:`answers_while_waiting`, a stricter threshold than the usual one), marked
as the bot's and without taking the conversation out of the queue: a customer who escalated at
22:00 should not get silence for eleven hours on "how long does a refund take?".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from bot.core.i18n import translate
from bot.core.schemas import AnswerResult, EscalationReason
from bot.handoff.hours import business_hours
from bot.handoff.triggers import QUIET, Signals
from bot.knowledge.answerers import escalation_text

if TYPE_CHECKING:
    from bot.core.settings import Settings

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
class NoMatch:
    """The customer answered "none of these" to the articles the bot offered as choices: the
    knowledge base, as far as the bot can tell, has no answer, and the customer said so."""


NO_MATCH = NoMatch()


@dataclass(frozen=True)
class Decision:
    """Let the bot answer (``escalate`` false), or hand over for ``reason``; ``detail`` is
    what the agent's queue shows about why."""

    escalate: bool
    reason: EscalationReason | None = None
    detail: str | None = None


ANSWER = Decision(escalate=False)


def decide(
    signals: Signals = QUIET, verdict: AnswerResult | AnswerFailure | NoMatch | None = None
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
    if isinstance(verdict, NoMatch):
        return Decision(True, "no_match", "none of the suggested articles matched")
    if verdict is not None and verdict.escalate:
        reason = verdict.reason or "low_confidence"
        return Decision(True, reason, f"confidence {verdict.confidence:.2f}")
    return ANSWER


def failed_answer(streamed: str = "", locale: str | None = None) -> AnswerResult:
    """The reply when the answerer fails: what had already streamed, then an honest "something
    went wrong" and the handover, in the customer's ``locale`` (``streamed`` stays a prefix, so
    the deltas the customer saw still add up to the stored text)."""
    decision = decide(verdict=ANSWER_FAILED)
    assert decision.reason is not None
    text = escalation_text(decision.reason, locale)
    return AnswerResult(
        answer=f"{streamed}\n\n{text}" if streamed else text,
        escalate=True,
        reason=decision.reason,
        confidence=0.0,
    )


# --- who answers in each state ----------------------------------------------------------------

BotTurn = Literal["answer", "answer_if_confident", "silent"]
"""What the bot does with a customer message: answer it (its own conversation), answer only a
question it is sure about (the conversation waits for a person), or stay silent (a person holds
it)."""


def bot_turn(state: str, signals: Signals = QUIET) -> BotTurn:
    """Whether the bot may answer a customer message written in ``state``.

    In ``awaiting_human`` the customer's own words still come first: asking for a person again,
    a sensitive topic or strong frustration is the person's to answer, so the bot keeps quiet.
    """
    if state == "bot":
        return "answer"
    if state == "awaiting_human" and not decide(signals).escalate:
        return "answer_if_confident"
    return "silent"


def answers_while_waiting(result: AnswerResult, threshold: float) -> bool:
    """Store the bot's answer while the conversation waits for a person? Only a confident, plain
    answer (no escalation, no "which of these?" choice) whose score reaches ``threshold``
    (``waiting_answer_threshold``, stricter than ``answer_threshold``: a wrong answer now
    would stand unchallenged until a person arrives). Anything less is left to the person; the
    customer already read when that will be."""
    return not result.escalate and not result.suggestions and result.confidence >= threshold


@dataclass(frozen=True)
class Availability:
    """Whether people answer the queue now and, if not, when they next will."""

    available: bool
    next_opening: datetime | None = None


def availability(settings: Settings, now: datetime) -> Availability:
    """People available now (business hours), else the next opening: what the widget's header
    shows, so it never says "Online" while the notice says a person replies tomorrow."""
    hours = business_hours(settings.business_hours, settings.business_timezone)
    if hours.is_open(now):
        return Availability(True)
    return Availability(False, hours.next_opening(now))


def waiting_note(settings: Settings, now: datetime, locale: str | None = None) -> str:
    """Added under an answer given while the conversation waits: it is the bot speaking, and the
    person still comes (and when), in the customer's language."""
    hours = business_hours(settings.business_hours, settings.business_timezone)
    when = translate("shortly", locale) if hours.is_open(now) else hours.describe_next(now, locale)
    return translate("waiting_note", locale, when=when)
