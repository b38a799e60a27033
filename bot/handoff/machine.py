"""The conversation state machine: ``bot -> awaiting_human -> human -> resolved``, in one place.

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

Why a human never talks over the bot (or the bot over a human): :func:`on_customer_message`
answers ``bot_should_answer=False`` whenever the conversation is ``awaiting_human`` or
``human``, and it decides under the row lock, so an agent's claim and a customer message cannot
interleave.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.conversations.agent_frames import ConversationFrame, QueueFrame, QueueItemView
from bot.conversations.events import AGENTS_TOPIC, conversation_topic
from bot.conversations.frames import MessageFrame, StateFrame
from bot.conversations.store import append_message, record_event, record_feedback
from bot.core.models import (
    Conversation,
    ConversationEvent,
    Message,
    QueueItem,
    User,
    utcnow,
)
from bot.handoff import ledger as deflection
from bot.handoff import triggers
from bot.handoff.hours import business_hours

if TYPE_CHECKING:
    from bot.conversations.events import EventBus
    from bot.core.schemas import AnswerResult
    from bot.core.settings import Settings

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


@dataclass
class TurnDecision:
    """What to do with a customer message: answer it with the bot or not, and what to send."""

    bot_should_answer: bool
    frames: list[dict[str, Any]] = field(default_factory=list)


# --- the customer side (called by the chat socket) --------------------------------------------


def on_customer_message(
    session: Session,
    conversation_id: str,
    text: str,
    *,
    settings: Settings,
    now: datetime | None = None,
) -> TurnDecision:
    """Decide whether the bot answers this (already stored) customer message.

    ``awaiting_human``/``human``: never (the person answers; an e-mail address left out of hours
    is kept as the contact). ``resolved``: a new bot turn, or back to the agent when
    ``reopen_resolved='agent'``; either way not back into the queue. ``bot``: escalate when the
    message asks for a person, touches a sensitive topic, is strongly frustrated, or is the
    second failed answer in a row (a rephrase counts as one); otherwise the bot answers.
    """
    now = now or utcnow()
    conv = lock_conversation(session, conversation_id)
    frames: list[dict[str, Any]] = []
    if conv.state in ("awaiting_human", "human"):
        frames += _maybe_store_contact(session, conv, text, now=now)
        return TurnDecision(False, frames)
    if conv.state == "resolved":
        if settings.reopen_resolved == "agent" and conv.assigned_agent_id is not None:
            frames += _reopen_to_agent(session, conv, now=now)
            return TurnDecision(False, frames)
        frames += transition(
            session,
            conv,
            "bot",
            reason="reopened",
            actor="customer",
            text="You're chatting with our virtual assistant again. Ask for a person any time.",
            now=now,
        )
    trigger = triggers.detect(text, list(settings.sensitive_topics))
    if trigger is None and _is_second_failure_by_rephrase(session, conv, text, now=now):
        trigger = triggers.Trigger("repeated_failure", "asked the same question again")
    if trigger is not None:
        frames += _escalate(
            session, conv, trigger.reason, detail=trigger.detail, settings=settings, now=now
        )
        return TurnDecision(False, frames)
    return TurnDecision(True, frames)


def bot_may_reply(session: Session, conversation_id: str) -> bool:
    """Call under the caller's transaction right before storing a bot answer.

    An answer is computed outside any lock (it streams for seconds); meanwhile the customer may
    have asked for a person or an agent may have claimed the conversation. Storing the answer
    only when this returns True (the row is locked until the caller commits) is what keeps the
    bot from talking over a human.
    """
    return lock_conversation(session, conversation_id).state == "bot"


def after_bot_answer(
    session: Session,
    conversation_id: str,
    result: AnswerResult,
    bot_seq: int,
    *,
    settings: Settings,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Escalate when the answerer says so (no knowledge, low confidence...); else nothing."""
    if not result.escalate:
        return []
    conv = lock_conversation(session, conversation_id)
    sources = [source.model_dump(mode="json") for source in result.sources]
    return _escalate(
        session,
        conv,
        result.reason or "low_confidence",
        detail=f"bot answer #{bot_seq} (confidence {result.confidence:.2f})",
        sources=sources,
        settings=settings,
        now=now or utcnow(),
    )


def request_handoff(
    session: Session,
    conversation_id: str,
    *,
    reason: str = "customer_request",
    settings: Settings,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The customer pressed "talk to a person" (a ``handoff_request`` frame). Idempotent."""
    now = now or utcnow()
    conv = lock_conversation(session, conversation_id)
    return _escalate(
        session, conv, reason, detail="pressed talk to a person", settings=settings, now=now
    )


def on_feedback(
    session: Session,
    conversation_id: str,
    seq: int,
    helpful: bool,
    *,
    settings: Settings,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Store "was this helpful?" on bot message ``seq``; two failures in a row escalate.

    Raises :class:`HandoffError` (404) when ``seq`` is not a bot message of the conversation.
    """
    now = now or utcnow()
    conv = lock_conversation(session, conversation_id)
    if record_feedback(session, conv.id, seq, helpful, now=now) is None:
        raise HandoffError(f"message {seq} is not a bot message of this conversation", 404)
    deflection.note_feedback(
        session, conv, seq, helpful, now=now, window_hours=settings.deflection_window_hours
    )
    if not helpful and conv.state == "bot" and _consecutive_failures(session, conv.id) >= 2:
        return _escalate(
            session,
            conv,
            "repeated_failure",
            detail="two unhelpful answers in a row",
            settings=settings,
            now=now,
        )
    return []


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
        record_event(session, conv.id, "reassigned", {"agent": agent.email}, now=now)
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
        text=f"{display_name(agent)} from our team has joined the conversation.",
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
    record_event(
        session, conv.id, "agent_reply", {"agent": agent.email, "seq": message.seq}, now=now
    )
    deflection.note_human_reply(session, conv, now=now)
    return [*frames, message_frame(message)]


def resolve(
    session: Session, conversation_id: str, agent: User, *, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The person is done: ``-> resolved``, the queue item closes, the ledger gets its time."""
    now = now or utcnow()
    conv = lock_conversation(session, conversation_id)
    if conv.state == "resolved":
        return []
    _check_holder(conv, agent)
    frames = transition(
        session,
        conv,
        "resolved",
        reason="resolved",
        actor=agent.email,
        text="This conversation has been marked as resolved. Write again here any time if you "
        "need more help.",
        now=now,
    )
    conv.closed_at = now
    _close_queue_item(session, conv, now, "resolved")
    deflection.note_resolved(session, conv, now=now)
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
        text="You're chatting with our virtual assistant again. Ask for a person any time.",
        now=now,
    )
    conv.assigned_agent_id = None
    _close_queue_item(session, conv, now, "handed_back")
    return frames


# --- the machine ------------------------------------------------------------------------------


def lock_conversation(session: Session, conversation_id: str) -> Conversation:
    """Load the conversation for writing, holding its lock until the caller commits."""
    if session.get_bind().dialect.name == "sqlite":
        # SQLite has no row locks; a write takes the (database) write lock before we read, so
        # no other writer can decide on a stale state.
        session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(state=Conversation.state)
        )
    conv = session.scalar(
        select(Conversation)
        .where(Conversation.id == conversation_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if conv is None:
        raise HandoffError(f"no conversation {conversation_id}", 404)
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
    record_event(
        session,
        conv.id,
        "state",
        {"from": conv.state, "to": to, "reason": reason, "actor": actor},
        now=now,
    )
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


def _escalate(
    session: Session,
    conv: Conversation,
    reason: str,
    *,
    detail: str | None,
    settings: Settings,
    now: datetime,
    sources: Sequence[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """``bot -> awaiting_human`` with one queue item; escalating again changes nothing."""
    if conv.state in ("awaiting_human", "human"):
        record_event(session, conv.id, "escalation_repeat", {"reason": reason}, now=now)
        return []
    frames: list[dict[str, Any]] = []
    if conv.state == "resolved":  # a new request after the end: a new turn, then the queue
        frames += transition(
            session, conv, "bot", reason="reopened", actor="customer", text=None, now=now
        )
    hours = business_hours(settings.business_hours, settings.business_timezone)
    is_open = hours.is_open(now)
    if is_open:
        text = "Connecting you with a person. Someone from our team will reply here shortly."
    else:
        text = (
            "Connecting you with a person. Our team is offline right now; someone will reply "
            f"here {hours.describe_next(now)}. If you like, leave your email address and we "
            "will follow up there too."
        )
    item = _open_queue_item(session, conv, reason, detail, sources, now)
    frames += transition(
        session, conv, "awaiting_human", reason=reason, actor="system", text=text, now=now
    )
    record_event(
        session,
        conv.id,
        "escalated",
        {"reason": reason, "detail": detail, "queue_item": item.id, "in_hours": is_open},
        now=now,
    )
    deflection.note_escalated(session, conv, reason, now=now)
    _queue_agent_event(session, QueueFrame(action="added", item=_queue_item(item)))
    return frames


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
    record_event(session, conv.id, "claimed", {"agent": agent.email}, now=now)
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
        text=f"{display_name(agent)} will pick this up again here.",
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
    record_event(session, conv.id, "contact_email", {"email": conv.contact_email}, now=now)
    message, _ = append_message(
        session,
        conv.id,
        role="system",
        text=f"Thanks, we'll also follow up at {conv.contact_email}.",
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


def _is_second_failure_by_rephrase(
    session: Session, conv: Conversation, text: str, *, now: datetime
) -> bool:
    """A customer asking the same thing again after a bot answer marks that answer failed."""
    recent = list(
        session.scalars(
            select(Message)
            .where(Message.conversation_id == conv.id, Message.role.in_(("customer", "bot")))
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
    record_event(session, conv.id, "rephrase", {"seq": recent[0].seq, "helpful": False}, now=now)
    return _consecutive_failures(session, conv.id) >= 2


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


def queue_item_view(item: QueueItem) -> dict[str, Any]:
    return _queue_item(item).model_dump(mode="json")


def _queue_item(item: QueueItem) -> QueueItemView:
    """The item as ``queue`` frames carry it (bot.conversations.agent_frames)."""
    return QueueItemView(
        id=item.id,
        conversation_id=item.conversation_id,
        reason=item.reason,
        detail=item.detail,
        claimed_by=item.claimed_by,
        created_at=deflection.aware(item.created_at).isoformat(),
        claimed_at=deflection.aware(item.claimed_at).isoformat() if item.claimed_at else None,
        closed_at=deflection.aware(item.closed_at).isoformat() if item.closed_at else None,
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


def publish_now(
    bus: EventBus,
    conversation_id: str,
    frames: Sequence[dict[str, Any]],
    agent_events: Sequence[dict[str, Any]] = (),
) -> None:
    """Publish after the caller has committed (the explicit alternative to publish_on_commit)."""
    for frame in frames:
        bus.publish(conversation_topic(conversation_id), frame)
    for payload in agent_events:
        bus.publish(AGENTS_TOPIC, payload)
