"""The conversation state machine: ``bot -> awaiting_human -> human -> resolved``, in one place.

Each public function is the one call for one step of a conversation (a customer message, a bot
answer, a vote, an agent's claim, reply or resolve): it writes the store, keeps the deflection
ledger in step (every history event goes through ``_record``, which hands it to
:func:`bot.handoff.ledger.record`) and returns the frames to publish. Whether a step hands the
conversation to a person is asked of :func:`bot.handoff.policy.decide`; the machine gathers the
facts (the message's signals, failed answers in a row) and performs the transition.

Every change of a conversation's state goes through :func:`transition`, which

* locks the conversation row first (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite a no-op
  ``UPDATE`` takes the database write lock before we read), so one writer decides at a time;
* refuses a transition that is not in :data:`ALLOWED`;
* stores a ``state`` event (the history reports are recomputed from), a customer-facing
  ``system`` message (stored with ``append_message``, so it is replayed on resume and therefore
  always delivered), and returns the ``state`` and ``message`` frames.

The functions take the caller's ``Session`` and never commit: the caller commits, then publishes
the returned frames to ``conversation_topic(id)`` (or calls :func:`publish_on_commit` first).
Queue changes for the agent consoles (``queue`` and ``conversation`` frames of
:mod:`bot.conversations.agent_frames`) are collected on the session and published to
``AGENTS_TOPIC`` right after its commit, through the bus the app attached to the engine
(:func:`attach_event_bus`); a rolled-back escalation is never announced.

Why a human never talks over the bot (or the bot over a human): :func:`customer_wrote` answers
``bot_should_answer=False`` whenever the conversation is ``awaiting_human`` or ``human``, and
:func:`bot_answered` stores an answer only while the conversation is still in the state the
question was asked in; both decide under the row lock, so an agent's claim and a customer message
cannot interleave. The one exception is the policy's (:func:`bot.handoff.policy.bot_turn`): while
a conversation *waits* for a person, a question gets ``answer_while_waiting`` and the bot's answer
is stored (marked as the bot's, no state change, the queue item stays open) only if the policy
finds it confident enough and nobody has claimed the conversation meanwhile.
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, bindparam, event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.conversations.agent_frames import ConversationFrame, QueueFrame, QueueItemView
from bot.conversations.events import AGENTS_TOPIC, conversation_topic
from bot.conversations.frames import MessageFrame, StateFrame
from bot.conversations.store import (
    append_message,
    conversation_state,
    is_unanswered,
    lock_conversation_row,
    mark_answer_owed,
    note_locked,
    record_event,
    record_feedback,
)
from bot.core import metrics
from bot.core.clock import aware, utcnow
from bot.core.i18n import translate
from bot.core.models import Conversation, ConversationEvent, Message, QueueItem, User
from bot.core.schemas import Source
from bot.handoff import ledger, policy, triggers
from bot.handoff.hours import business_hours
from bot.handoff.policy import Decision
from bot.knowledge import learned

if TYPE_CHECKING:
    from bot.conversations.events import EventBus
    from bot.core.schemas import AnswerResult
    from bot.core.settings import Settings

log = logging.getLogger(__name__)

ALLOWED: dict[str, frozenset[str]] = {
    "bot": frozenset({"awaiting_human"}),
    "awaiting_human": frozenset({"human", "bot", "resolved"}),
    "human": frozenset({"bot", "resolved"}),
    "resolved": frozenset({"bot", "human"}),
}
_AGENT_EVENTS_KEY = "supportbot.agent_events"
_LISTENING_KEY = "supportbot.agent_events_listening"
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


class HandoffError(Exception):
    """A request the state machine refuses; ``status`` is the HTTP status an API should use."""

    def __init__(self, detail: str, status: int = 409) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


class NotOffered(HandoffError):
    """A pick of an article the bot message did not offer as a choice."""


@dataclass
class CustomerTurn:
    """A stored customer message and what follows: the bot answers it or not, frames to send."""

    message: Message
    created: bool  # False: a resend of a message already stored
    bot_should_answer: bool
    frames: list[dict[str, Any]] = field(default_factory=list)
    answer_while_waiting: bool = False  # the bot may answer, if confident, while in the queue


# --- the customer side (called by the chat socket) --------------------------------------------


def customer_wrote(
    session: Session,
    conversation_id: str,
    text: str,
    *,
    client_msg_id: str | None = None,
    settings: Settings,
    now: datetime | None = None,
    answer_owner: str | None = None,
) -> CustomerTurn:
    """Store the customer's message and decide whether the bot answers it.

    ``answer_owner``: the process that answers a new question the bot should answer. The
    question is stored with its mark (:func:`bot.conversations.store.settle_answer`) in its
    INSERT, as most questions are the bot's to answer; a decision otherwise clears it again,
    in the same transaction.

    A resend (same ``client_msg_id``) is stored once and not answered again, unless the process
    stopped between storing and answering it. ``human``: the bot never answers (the person
    does). ``awaiting_human``: the bot may answer a question it is sure of
    (``answer_while_waiting``, see :func:`bot.handoff.policy.bot_turn`); an e-mail address left
    out of hours is kept as the contact and not answered.
    ``resolved``: a new bot turn, or back to the agent when ``reopen_resolved='agent'``; either
    way not back into the queue. ``bot``: the policy weighs the message's signals (a request for
    a person, a sensitive topic, frustration, the same question again after a failed answer).
    """
    now = now or utcnow()
    turn = _customer_turn(
        session,
        conversation_id,
        text,
        client_msg_id=client_msg_id,
        settings=settings,
        now=now,
        answer_owner=answer_owner,
    )
    if turn.created and not turn.bot_should_answer and answer_owner is not None:
        mark_answer_owed(session, turn.message, None)  # a person (or nobody) answers it
    return turn


def _customer_turn(
    session: Session,
    conversation_id: str,
    text: str,
    *,
    client_msg_id: str | None,
    settings: Settings,
    now: datetime,
    answer_owner: str | None,
) -> CustomerTurn:
    message, created = append_message(
        session,
        conversation_id,
        role="customer",
        text=text,
        client_msg_id=client_msg_id,
        answer_owner=answer_owner,
        now=now,
    )
    if not created:
        unanswered = is_unanswered(session, conversation_id, message.seq)
        return CustomerTurn(message, created=False, bot_should_answer=unanswered)
    # The numbering UPDATE holds the conversation's lock: its state is read as a value, and
    # the ORM object is loaded only for a step that changes it (most questions change nothing).
    conv: Conversation | None = None
    state = conversation_state(session, conversation_id)
    if state is None:
        raise HandoffError(f"no conversation {conversation_id}", 404)

    def locked() -> Conversation:
        nonlocal conv
        if conv is None:
            conv = lock_conversation(session, conversation_id)
        return conv

    frames: list[dict[str, Any]] = []
    if state != "bot":
        return _customer_turn_outside_bot(
            session, locked(), message, text, frames, settings=settings, now=now
        )
    return _bot_customer_turn(session, message, text, frames, locked, settings=settings, now=now)


def _customer_turn_outside_bot(
    session: Session,
    conv: Conversation,
    message: Message,
    text: str,
    frames: list[dict[str, Any]],
    *,
    settings: Settings,
    now: datetime,
) -> CustomerTurn:
    if conv.state in ("awaiting_human", "human"):
        frames += _maybe_store_contact(session, conv, text, now=now)
        signals = triggers.read(text, list(settings.sensitive_topics))
        waiting = not frames and policy.bot_turn(conv.state, signals) == "answer_if_confident"
        return CustomerTurn(message, True, False, frames, answer_while_waiting=waiting)
    if conv.state == "resolved":
        if settings.reopen_resolved == "agent" and conv.assigned_agent_id is not None:
            frames += _reopen_to_agent(session, conv, now=now)
            return CustomerTurn(message, True, False, frames)
        frames += transition(
            session,
            conv,
            "bot",
            reason="reopened",
            actor="customer",
            text=translate("bot_again", conv.locale),
            now=now,
        )
    return _bot_customer_turn(
        session, message, text, frames, lambda: conv, settings=settings, now=now
    )


def _bot_customer_turn(
    session: Session,
    message: Message,
    text: str,
    frames: list[dict[str, Any]],
    locked: Callable[[], Conversation],
    *,
    settings: Settings,
    now: datetime,
) -> CustomerTurn:
    """A question in a conversation the bot holds: the policy weighs its signals."""
    conversation_id = message.conversation_id
    signals = triggers.read(text, list(settings.sensitive_topics))
    # A rephrase needs a question and an answer before this message.
    if message.seq > 2 and _rephrases_after_an_answer(
        session, conversation_id, locked, text, now=now
    ):
        failures = _consecutive_failures(session, conversation_id)
        signals = replace(signals, failed_answer="rephrase", failures_in_a_row=failures)
    decision = policy.decide(signals)
    if decision.escalate:
        frames += _escalate(session, locked(), decision, settings=settings, now=now)
        return CustomerTurn(message, True, False, frames)
    return CustomerTurn(message, True, True, frames)


def bot_answered(
    session: Session,
    conversation_id: str,
    result: AnswerResult,
    *,
    reply_to: int,
    settings: Settings,
    now: datetime | None = None,
    while_waiting: bool = False,
) -> list[dict[str, Any]] | None:
    """Store the bot's answer to message ``reply_to``, then hand over if the policy says so.

    ``None`` (nothing stored) when the conversation left the bot while the answer was computed
    (it streams for seconds, outside any lock; meanwhile the customer may have asked for a
    person or an agent may have claimed the conversation). Deciding under the row lock, which
    the caller holds until it commits, is what keeps the bot from talking over a human.

    ``while_waiting``: the question was asked while the conversation waited for a person
    (:attr:`CustomerTurn.answer_while_waiting`). The answer is stored only if the conversation
    still waits (not claimed meanwhile) and the policy finds it confident enough, with a note
    that a person still follows up; the state and the queue item stay as they are.
    """
    now = now or utcnow()
    if while_waiting:
        conv = lock_conversation(session, conversation_id)
        return _answer_while_waiting(session, conv, result, reply_to, settings=settings, now=now)
    # Under the lock (usually held already: the answer's mark was settled in this transaction),
    # the state as a value; the ORM object only for a hand-over.
    lock_conversation_row(session, conversation_id)
    state = conversation_state(session, conversation_id)
    if state is None:
        raise HandoffError(f"no conversation {conversation_id}", 404)
    if state != "bot":
        return None
    sources = [source.model_dump(mode="json") for source in result.sources]
    message, _ = append_message(
        session,
        conversation_id,
        role="bot",
        text=result.answer,
        reply_to=reply_to,
        sources=sources,
        confidence=result.confidence,
        escalate=result.escalate,
        # "which of these?": the choices the customer's pick is checked against
        suggestions=[source.model_dump(mode="json") for source in result.suggestions] or None,
        now=now,
    )
    frames = [message_frame(message)]
    decision = policy.decide(verdict=result)
    if decision.escalate:
        where = replace(decision, detail=f"bot answer #{message.seq} ({decision.detail})")
        conv = lock_conversation(session, conversation_id)
        frames += _escalate(session, conv, where, sources=sources, settings=settings, now=now)
    return frames


def _answer_while_waiting(
    session: Session,
    conv: Conversation,
    result: AnswerResult,
    reply_to: int,
    *,
    settings: Settings,
    now: datetime,
) -> list[dict[str, Any]] | None:
    if conv.state != "awaiting_human":  # claimed (or handed back, resolved) meanwhile
        return None
    if not policy.answers_while_waiting(result, settings.waiting_answer_threshold):
        return None
    message, _ = append_message(
        session,
        conv.id,
        role="bot",
        text=f"{result.answer}\n\n{policy.waiting_note(settings, now, conv.locale)}",
        reply_to=reply_to,
        sources=[source.model_dump(mode="json") for source in result.sources],
        confidence=result.confidence,
        escalate=False,
        now=now,
    )
    return [message_frame(message)]


@dataclass
class Choice:
    """The customer's pick among the articles a bot message offered, and what follows."""

    question: str  # the customer message the choices were offered for
    reply_to: int  # its seq: the answer from the picked article replies to it
    article: Source | None  # None: "none of these"
    bot_should_answer: bool  # answer ``question`` from ``article`` now
    frames: list[dict[str, Any]] = field(default_factory=list)


def customer_chose(
    session: Session,
    conversation_id: str,
    seq: int,
    article_id: str | None,
    *,
    settings: Settings,
    now: datetime | None = None,
) -> Choice:
    """The customer picked ``article_id`` (``None``: "none of these") among the suggestions of
    bot message ``seq``. A pick answers from that article while the conversation is the bot's;
    "none of these" hands over for ``no_match`` (the policy's decision). Only the first pick per
    message counts: a resend or a second click changes nothing.

    Raises :class:`HandoffError` (404) when ``seq`` is not a bot message with suggestions, and
    :class:`NotOffered` (422) when ``article_id`` is not among them.
    """
    now = now or utcnow()
    conv = lock_conversation(session, conversation_id)
    offer = session.scalar(
        select(Message).where(Message.conversation_id == conv.id, Message.seq == seq)
    )
    if offer is None or offer.role != "bot" or not offer.suggestions:
        raise HandoffError(f"message {seq} is not a bot message with suggestions", 404)
    article = None
    if article_id is not None:
        offered = [Source.model_validate(source) for source in offer.suggestions]
        article = next((source for source in offered if source.article_id == article_id), None)
        if article is None:
            raise NotOffered(f"message {seq} did not offer the article {article_id!r}", 422)
    reply_to = offer.reply_to or seq
    question = session.scalar(
        select(Message.text).where(Message.conversation_id == conv.id, Message.seq == reply_to)
    )
    choice = Choice(question or "", reply_to, article, bot_should_answer=False)
    if _chosen_before(session, conv.id, seq):
        return choice
    _record(session, conv, "choice", {"seq": seq, "article_id": article_id}, now=now)
    if article is not None:
        choice.bot_should_answer = conv.state == "bot"
        return choice
    decision = policy.decide(verdict=policy.NO_MATCH)
    where = replace(decision, detail=f"bot message #{seq}: {decision.detail}")
    choice.frames = _escalate(
        session, conv, where, sources=offer.suggestions, settings=settings, now=now
    )
    return choice


def _chosen_before(session: Session, conversation_id: str, seq: int) -> bool:
    events = session.scalars(
        select(ConversationEvent.data).where(
            ConversationEvent.conversation_id == conversation_id,
            ConversationEvent.kind == "choice",
        )
    )
    return any((data or {}).get("seq") == seq for data in events)


def request_handoff(
    session: Session,
    conversation_id: str,
    *,
    settings: Settings,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The customer pressed "talk to a person" (a ``handoff_request`` frame). Idempotent."""
    now = now or utcnow()
    conv = lock_conversation(session, conversation_id)
    decision = policy.decide(triggers.Signals(person_request="button"))
    return _escalate(session, conv, decision, settings=settings, now=now)


def on_feedback(
    session: Session,
    conversation_id: str,
    seq: int,
    helpful: bool,
    *,
    settings: Settings,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Store "was this helpful?" on bot message ``seq``; the policy may hand over after it.

    Raises :class:`HandoffError` (404) when ``seq`` is not a bot message of the conversation.
    """
    now = now or utcnow()
    conv = lock_conversation(session, conversation_id)
    data = {"seq": seq, "helpful": helpful}
    if record_feedback(session, conv.id, seq, helpful, now=now) is None:
        raise HandoffError(f"message {seq} is not a bot message of this conversation", 404)
    # The store wrote the vote and its history event; the ledger hears of it like of any other.
    ledger.record(
        session, conv, "feedback", data, now=now, window_hours=settings.deflection_window_hours
    )
    if helpful:  # the question is evidence for the article that answered it (an admin decides)
        learned.on_helpful(session, conv.id, seq, settings)
    if conv.state != "bot":  # a person holds it already, or it has ended
        return []
    signals = triggers.QUIET
    if not helpful:
        failures = _consecutive_failures(session, conv.id)
        signals = triggers.Signals(failed_answer="feedback", failures_in_a_row=failures)
    decision = policy.decide(signals)
    if not decision.escalate:
        return []
    return _escalate(session, conv, decision, settings=settings, now=now)


# --- the agent side (called by bot/web/routes/agents.py and bot/live/agent.py) ----------------


def claim(
    session: Session, conversation_id: str, agent: User, *, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The agent takes the conversation: ``awaiting_human -> human``. Idempotent for its holder;
    another agent's conversation can be taken over only by a lead or admin."""
    now = now or utcnow()
    conv = lock_conversation(session, conversation_id)
    if conv.state == "human":
        if conv.assigned_agent_id == agent.id:
            return []
        if agent.role == "agent":
            raise HandoffError("another agent holds this conversation")
        conv.assigned_agent_id = agent.id
        _set_claim(session, conv, agent, now)
        _record(session, conv, "reassigned", {"agent": agent.email}, now=now)
        return []
    if conv.state != "awaiting_human":
        raise HandoffError(f"conversation is {conv.state}, not waiting for a person")
    conv.assigned_agent_id = agent.id
    _set_claim(session, conv, agent, now)
    return transition(
        session,
        conv,
        "human",
        reason="claimed",
        actor=agent.email,
        text=translate("agent_joined", conv.locale, agent=display_name(agent)),
        now=now,
    )


def agent_reply(
    session: Session,
    conversation_id: str,
    agent: User,
    text: str,
    *,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Store the agent's reply in the same conversation (claiming it first if it waits)."""
    now = now or utcnow()
    text = text.strip()
    if not text:
        raise HandoffError("empty reply", 422)
    conv = lock_conversation(session, conversation_id)
    frames: list[dict[str, Any]] = []
    if conv.state == "awaiting_human":
        frames += claim(session, conv.id, agent, now=now)
    elif conv.state != "human":
        raise HandoffError(f"conversation is {conv.state}; claim it before replying")
    elif conv.assigned_agent_id != agent.id and agent.role == "agent":
        raise HandoffError("another agent holds this conversation")
    message, _ = append_message(
        session, conv.id, role="agent", text=text, author=display_name(agent), now=now
    )
    _record(session, conv, "agent_reply", {"agent": agent.email, "seq": message.seq}, now=now)
    return [*frames, message_frame(message)]


def resolve(
    session: Session,
    conversation_id: str,
    agent: User,
    *,
    article_id: str | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The person is done: ``-> resolved`` (the ledger gets its time), the queue item closes.

    ``article_id``: the article that answers the customer's question, as the agent saw it; the
    question becomes a candidate learned question of it (``bot.knowledge.learned``).
    """
    now = now or utcnow()
    conv = lock_conversation(session, conversation_id)
    if conv.state == "resolved":
        return []
    _check_holder(conv, agent)
    if article_id:
        record_event(session, conv.id, "answered_by_article", {"article_id": article_id}, now=now)
        learned.on_resolved(session, conv.id, article_id)
    frames = transition(
        session,
        conv,
        "resolved",
        reason="resolved",
        actor=agent.email,
        text=translate("resolved", conv.locale),
        now=now,
    )
    conv.closed_at = now
    _close_queue_item(session, conv, now, "resolved")
    return frames


def handback(
    session: Session, conversation_id: str, agent: User, *, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Give the conversation back to the bot (``-> bot``); the queue item closes."""
    now = now or utcnow()
    conv = lock_conversation(session, conversation_id)
    if conv.state == "bot":
        return []
    _check_holder(conv, agent)
    frames = transition(
        session,
        conv,
        "bot",
        reason="handed_back",
        actor=agent.email,
        text=translate("bot_again", conv.locale),
        now=now,
    )
    conv.assigned_agent_id = None
    _close_queue_item(session, conv, now, "handed_back")
    return frames


# --- the machine ------------------------------------------------------------------------------


_LOCKED_CONVERSATION = (  # built once: every step that changes a conversation loads it so
    select(Conversation)
    .where(Conversation.id == bindparam("cid"))
    .with_for_update()
    .execution_options(populate_existing=True)
)


def lock_conversation(session: Session, conversation_id: str) -> Conversation:
    """Load the conversation for writing, holding its lock until the caller commits.

    On SQLite the lock is the database's write lock, taken by a write before the read (none
    when this transaction wrote already); elsewhere the ``SELECT ... FOR UPDATE`` itself."""
    if session.get_bind().dialect.name == "sqlite":
        lock_conversation_row(session, conversation_id)
    conv = session.scalar(_LOCKED_CONVERSATION, {"cid": conversation_id})
    if conv is None:
        raise HandoffError(f"no conversation {conversation_id}", 404)
    note_locked(session, conversation_id)
    return conv


def transition(
    session: Session,
    conv: Conversation,
    to: str,
    *,
    reason: str | None,
    actor: str,
    text: str | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """The one place a state changes. ``conv`` must come from :func:`lock_conversation`."""
    if to not in ALLOWED.get(conv.state, frozenset()):
        raise HandoffError(f"cannot go from {conv.state} to {to}")
    data = {"from": conv.state, "to": to, "reason": reason, "actor": actor}
    _record(session, conv, "state", data, now=now)
    conv.state = to
    conv.state_reason = reason
    conv.updated_at = now
    if to != "resolved":
        conv.closed_at = None
    frames: list[dict[str, Any]] = [StateFrame(state=to, reason=reason).dump()]
    if text:
        message, _ = append_message(session, conv.id, role="system", text=text, now=now)
        frames.append(message_frame(message))
    session.flush()
    _queue_agent_event(session, ConversationFrame(conversation_id=conv.id, state=to))
    return frames


def _record(
    session: Session,
    conv: Conversation,
    kind: str,
    data: dict[str, Any],
    *,
    now: datetime,
    window_hours: float = 24.0,
) -> None:
    """Append to the conversation's history and bring the ledger in step, in one call."""
    record_event(session, conv.id, kind, data, now=now)
    ledger.record(session, conv, kind, data, now=now, window_hours=window_hours)


def _escalate(
    session: Session,
    conv: Conversation,
    decision: Decision,
    *,
    settings: Settings,
    now: datetime,
    sources: Sequence[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Carry out the policy's hand-over: ``bot -> awaiting_human`` with one queue item;
    escalating again changes nothing."""
    assert decision.escalate and decision.reason is not None
    reason, detail = decision.reason, decision.detail
    if conv.state in ("awaiting_human", "human"):
        _record(session, conv, "escalation_repeat", {"reason": reason}, now=now)
        return []
    frames: list[dict[str, Any]] = []
    if conv.state == "resolved":  # a new request after the end: a new turn, then the queue
        frames += transition(
            session, conv, "bot", reason="reopened", actor="customer", text=None, now=now
        )
    hours = business_hours(settings.business_hours, settings.business_timezone)
    is_open = hours.is_open(now)
    if is_open:
        text = translate("handoff_open", conv.locale)
    else:
        when = hours.describe_next(now, conv.locale)
        # The invitation to leave an e-mail address only where replies by e-mail exist.
        key = "handoff_closed" if _email_replies(settings) else "handoff_closed_no_email"
        text = translate(key, conv.locale, when=when)
    item = _open_queue_item(session, conv, reason, detail, sources, now)
    frames += transition(
        session, conv, "awaiting_human", reason=reason, actor="system", text=text, now=now
    )
    data = {"reason": reason, "detail": detail, "queue_item": item.id, "in_hours": is_open}
    _record(session, conv, "escalated", data, now=now)
    metrics.count_escalation(session, reason)  # once committed
    log.info("escalated to a person", extra={"conversation_id": conv.id, "reason": reason})
    _queue_agent_event(session, QueueFrame(action="added", item=_queue_item(item)))
    return frames


def _email_replies(settings: Settings) -> bool:
    """Agents' replies can reach the customer by e-mail: an SMTP server is configured (the
    settings read an empty ``smtp_url`` as none)."""
    return settings.smtp_url is not None


def _open_queue_item(
    session: Session,
    conv: Conversation,
    reason: str,
    detail: str | None,
    sources: Sequence[dict[str, Any]] | None,
    now: datetime,
) -> QueueItem:
    existing = session.scalar(select(QueueItem).where(QueueItem.open_key == conv.id))
    if existing is not None:
        return existing
    item = QueueItem(
        conversation_id=conv.id,
        reason=reason,
        detail=_queue_detail(session, conv.id, detail),
        sources=list(sources) if sources else bot_sources(session, conv.id),
        open_key=conv.id,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(item)
    except IntegrityError:  # a concurrent escalation won; use its item
        found = session.scalar(select(QueueItem).where(QueueItem.open_key == conv.id))
        assert found is not None
        return found
    return item


def _close_queue_item(session: Session, conv: Conversation, now: datetime, why: str) -> None:
    item = session.scalar(select(QueueItem).where(QueueItem.open_key == conv.id))
    if item is None:
        return
    item.open_key = None
    item.closed_at = now
    session.flush()
    _queue_agent_event(session, QueueFrame(action="closed", item=_queue_item(item), why=why))


def _set_claim(session: Session, conv: Conversation, agent: User, now: datetime) -> None:
    item = session.scalar(select(QueueItem).where(QueueItem.open_key == conv.id))
    if item is None:
        item = _open_queue_item(
            session, conv, conv.state_reason or "customer_request", None, None, now
        )
    item.claimed_by = agent.id
    item.claimed_at = now
    session.flush()
    _record(session, conv, "claimed", {"agent": agent.email}, now=now)
    _queue_agent_event(
        session, QueueFrame(action="claimed", item=_queue_item(item), agent=agent.email)
    )


def _reopen_to_agent(
    session: Session, conv: Conversation, *, now: datetime
) -> list[dict[str, Any]]:
    agent = session.get(User, conv.assigned_agent_id)
    assert agent is not None
    item = QueueItem(
        conversation_id=conv.id,
        reason="reopened",
        detail="the customer wrote again after the conversation was resolved",
        sources=bot_sources(session, conv.id),
        open_key=conv.id,
        claimed_by=agent.id,
        claimed_at=now,
        created_at=now,
    )
    session.add(item)
    frames = transition(
        session,
        conv,
        "human",
        reason="reopened",
        actor="customer",
        text=translate("agent_back", conv.locale, agent=display_name(agent)),
        now=now,
    )
    _queue_agent_event(session, QueueFrame(action="added", item=_queue_item(item)))
    return frames


def _check_holder(conv: Conversation, agent: User) -> None:
    if (
        conv.state == "human"
        and conv.assigned_agent_id not in (None, agent.id)
        and agent.role == "agent"
    ):
        raise HandoffError("another agent holds this conversation")


def _maybe_store_contact(
    session: Session, conv: Conversation, text: str, *, now: datetime
) -> list[dict[str, Any]]:
    """Out of hours the customer is invited to leave an e-mail address; keep the one they give."""
    match = _EMAIL.search(text)
    if match is None or conv.state != "awaiting_human" or conv.contact_email == match.group(0):
        return []
    conv.contact_email = match.group(0)
    _record(session, conv, "contact_email", {"email": conv.contact_email}, now=now)
    message, _ = append_message(
        session,
        conv.id,
        role="system",
        text=translate("contact_saved", conv.locale, email=conv.contact_email),
        now=now,
    )
    return [message_frame(message)]


# --- failure counting -------------------------------------------------------------------------


def _bot_turn_start(session: Session, conversation_id: str) -> int:
    """Id of the last state change: failures before a handback or reopen do not count."""
    last = session.scalar(
        select(ConversationEvent.id)
        .where(
            ConversationEvent.conversation_id == conversation_id,
            ConversationEvent.kind == "state",
        )
        .order_by(ConversationEvent.id.desc())
        .limit(1)
    )
    return int(last or 0)


def _failure_signals(session: Session, conversation_id: str) -> list[tuple[str, int, bool]]:
    """(kind, bot seq, helpful) for every feedback and rephrase of the current bot turn."""
    query = select(ConversationEvent).where(
        ConversationEvent.conversation_id == conversation_id,
        ConversationEvent.kind.in_(("feedback", "rephrase")),
        ConversationEvent.id > _bot_turn_start(session, conversation_id),
    )
    signals = []
    for ev in session.scalars(query.order_by(ConversationEvent.id)):
        data = ev.data or {}
        signals.append((ev.kind, int(data.get("seq", 0)), bool(data.get("helpful", False))))
    return signals


def _consecutive_failures(session: Session, conversation_id: str) -> int:
    """Distinct bot answers judged failed since the last helpful one."""
    failed: list[int] = []
    for _kind, seq, helpful in _failure_signals(session, conversation_id):
        if helpful:
            failed = [s for s in failed if s > seq]
        elif seq not in failed:
            failed.append(seq)
    return len(failed)


def _rephrases_after_an_answer(
    session: Session,
    conversation_id: str,
    locked: Callable[[], Conversation],
    text: str,
    *,
    now: datetime,
) -> bool:
    """A customer asking the same thing again after a bot answer marks that answer failed
    (recorded as a ``rephrase`` event, which :func:`_consecutive_failures` counts).
    ``locked`` gives the locked conversation, loaded only when there is a rephrase to record."""
    recent = list(
        session.execute(
            select(Message.seq, Message.role, Message.text)
            .where(
                Message.conversation_id == conversation_id,
                Message.role.in_(("customer", "bot")),
            )
            .order_by(Message.seq.desc())
            .limit(4)
        )
    )
    # The current message is normally stored already (the caller acks before deciding).
    if recent and recent[0].role == "customer" and recent[0].text == text:
        recent = recent[1:]
    if len(recent) < 2 or recent[0].role != "bot" or recent[1].role != "customer":
        return False
    if not triggers.is_rephrase(recent[1].text, text):
        return False
    _record(session, locked(), "rephrase", {"seq": recent[0].seq, "helpful": False}, now=now)
    return True


# --- views and frames -------------------------------------------------------------------------


def message_frame(message: Message) -> dict[str, Any]:
    frame = MessageFrame.from_message(message).dump()
    frame.setdefault("sources", [])
    return frame


def display_name(user: User) -> str:
    """What the customer sees: the part of the e-mail before the @, capitalised."""
    return user.email.split("@", 1)[0].replace(".", " ").title()


def bot_sources(session: Session, conversation_id: str) -> list[dict[str, Any]]:
    """Every article the bot cited in the conversation, most recent answer first, once each."""
    seen: dict[str, dict[str, Any]] = {}
    for message in session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.role == "bot")
        .order_by(Message.seq.desc())
    ):
        for source in message.sources or []:
            seen.setdefault(str(source.get("article_id")), dict(source, seq=message.seq))
    return list(seen.values())


def _queue_item(item: QueueItem) -> QueueItemView:
    """The item as ``queue`` frames carry it (bot.conversations.agent_frames)."""
    return QueueItemView(
        id=item.id,
        conversation_id=item.conversation_id,
        reason=item.reason,
        detail=item.detail,
        claimed_by=item.claimed_by,
        created_at=aware(item.created_at).isoformat(),
        claimed_at=aware(item.claimed_at).isoformat() if item.claimed_at else None,
        closed_at=aware(item.closed_at).isoformat() if item.closed_at else None,
    )


def _queue_detail(session: Session, conversation_id: str, detail: str | None) -> str:
    last = session.scalar(
        select(Message.text)
        .where(Message.conversation_id == conversation_id, Message.role == "customer")
        .order_by(Message.seq.desc())
        .limit(1)
    )
    parts = [p for p in (detail, f"last customer message: {last[:300]}" if last else None) if p]
    return "; ".join(parts)


# --- publishing -------------------------------------------------------------------------------


_buses: weakref.WeakKeyDictionary[Engine, EventBus] = weakref.WeakKeyDictionary()


def attach_event_bus(engine: Engine, bus: EventBus) -> None:
    """Publish queue notices of sessions on ``engine`` to ``bus`` once they commit.

    Called from the app lifespan. Queue notices then reach the agent consoles whichever code path
    escalated (chat socket, agent API, a job), and never for a transaction that rolled back.
    """
    _buses[engine] = bus


def _queue_agent_event(session: Session, frame: QueueFrame | ConversationFrame) -> None:
    pending: list[dict[str, Any]] = session.info.setdefault(_AGENT_EVENTS_KEY, [])
    pending.append(frame.dump())
    if not session.info.get(_LISTENING_KEY):
        session.info[_LISTENING_KEY] = True
        event.listen(session, "after_commit", _publish_agent_events)
        event.listen(session, "after_rollback", _forget_agent_events)


def _publish_agent_events(session: Session) -> None:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    bus = _buses.get(engine)
    if bus is None:  # no app attached (unit tests): leave them for drain_agent_events
        return
    for payload in session.info.pop(_AGENT_EVENTS_KEY, []):
        bus.publish(AGENTS_TOPIC, payload)


def _forget_agent_events(session: Session) -> None:
    session.info.pop(_AGENT_EVENTS_KEY, None)


def drain_agent_events(session: Session) -> list[dict[str, Any]]:
    """Queue notices not yet published (only when no bus is attached to the engine)."""
    events: list[dict[str, Any]] = session.info.pop(_AGENT_EVENTS_KEY, [])
    return events


def publish_on_commit(
    session: Session, bus: EventBus, conversation_id: str, frames: Sequence[dict[str, Any]]
) -> None:
    """Publish ``frames`` to the conversation topic once the session commits.

    Call it before committing; nothing is published if the transaction rolls back, so no client
    ever sees a state the database does not hold. (Queue notices go out by themselves, see
    :func:`attach_event_bus`.)
    """
    frames = list(frames)
    cancelled = False

    def _publish(_session: Session) -> None:
        if cancelled:
            return
        for frame in frames:
            bus.publish(conversation_topic(conversation_id), frame)

    def _cancel(_session: Session) -> None:
        nonlocal cancelled
        cancelled = True

    event.listen(session, "after_commit", _publish, once=True)
    event.listen(session, "after_rollback", _cancel, once=True)
