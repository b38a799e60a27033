"""The deflection ledger: one ``Outcome`` row per ended conversation.

The rules, which :func:`derive_outcome` applies to a conversation's stored messages and events
and which :func:`record` (fed every event the state machine writes, as it writes it) and the
periodic job (:func:`close_idle_conversations`) maintain as things happen:

* ``escalated`` (+ the first escalation's reason) as soon as the conversation is handed to the
  queue; a human was needed whatever happens after. ``first_human_response_ms`` is the first
  agent reply after the escalation; ``resolution_ms`` runs from the first customer message to
  the first ``resolved``.
* ``deflected_confirmed`` when the customer's latest feedback says an answer helped (decided at
  that feedback; a later "not helpful" takes it back).
* after ``deflection_window_hours`` with no new message (decided at last activity + window):
  ``deflected_assumed`` if the bot answered and the latest feedback is not "not helpful", unless
  the same visitor came back within the window with the same problem in another conversation
  (that revokes it: ``abandoned``, reason ``returned``); ``abandoned`` when the bot never
  answered or the last feedback said it did not help.
* A conversation in which the customer never wrote has no outcome.

``first_bot_response_ms`` is from the first customer message to the first bot message after it
(for an escalated conversation, only a bot message before the handoff counts). Because the same
rules are written twice (incrementally and from history), :func:`recompute_outcomes` and a test
check that they agree.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.core.clock import aware, utcnow
from bot.core.models import Conversation, ConversationEvent, Message, Outcome
from bot.core.text import content_similarity
from bot.handoff.triggers import REPHRASE_THRESHOLD

if TYPE_CHECKING:
    from bot.core.db import DatabaseWorkers
    from bot.core.settings import Settings

log = logging.getLogger(__name__)

WINDOW_CLOSED = ("deflected_assumed", "abandoned")


@dataclass(frozen=True)
class OutcomeRecord:
    """What the ledger holds for one conversation (``Outcome`` without the ORM)."""

    conversation_id: str
    outcome: str
    reason: str | None
    first_bot_response_ms: int | None
    first_human_response_ms: int | None
    resolution_ms: int | None
    started_at: datetime
    decided_at: datetime

    @classmethod
    def of(cls, row: Outcome) -> OutcomeRecord:
        return cls(
            row.conversation_id,
            row.outcome,
            row.reason,
            row.first_bot_response_ms,
            row.first_human_response_ms,
            row.resolution_ms,
            aware(row.started_at),
            aware(row.decided_at),
        )


# --- from history -----------------------------------------------------------------------------


def derive_outcome(
    session: Session, conv: Conversation, *, now: datetime, window: timedelta
) -> OutcomeRecord | None:
    """The outcome the stored history implies at ``now`` (``None``: not ended yet)."""
    messages = list(
        session.scalars(
            select(Message).where(Message.conversation_id == conv.id).order_by(Message.seq)
        )
    )
    events = list(
        session.scalars(
            select(ConversationEvent)
            .where(ConversationEvent.conversation_id == conv.id)
            .order_by(ConversationEvent.id)
        )
    )
    customer = [m for m in messages if m.role == "customer"]
    if not customer:
        return None
    first_customer = customer[0]
    t0 = aware(first_customer.created_at)
    first_bot = next((m for m in messages if m.role == "bot" and m.seq > first_customer.seq), None)
    first_bot_ms = _ms(t0, first_bot.created_at) if first_bot else None

    def record(
        outcome: str, reason: str | None, decided: datetime, **times: int | None
    ) -> OutcomeRecord:
        return OutcomeRecord(
            conv.id,
            outcome,
            reason,
            first_bot_ms,
            times.get("human"),
            times.get("resolution"),
            aware(conv.created_at),
            aware(decided),
        )

    escalation = next((e for e in events if e.kind == "escalated"), None)
    if escalation is not None:
        t_esc = aware(escalation.created_at)
        if first_bot is not None and aware(first_bot.created_at) > t_esc:
            first_bot_ms = None  # the bot had not answered before the handoff
        first_agent = next(
            (m for m in messages if m.role == "agent" and aware(m.created_at) >= t_esc), None
        )
        resolved = next(
            (
                e
                for e in events
                if e.kind == "state"
                and (e.data or {}).get("to") == "resolved"
                and e.id > escalation.id
            ),
            None,
        )
        return record(
            "escalated",
            (escalation.data or {}).get("reason"),
            t_esc,
            human=_ms(t_esc, first_agent.created_at) if first_agent else None,
            resolution=_ms(t0, resolved.created_at) if resolved else None,
        )

    feedback = [e for e in events if e.kind == "feedback"]
    latest = feedback[-1] if feedback else None
    if latest is not None and (latest.data or {}).get("helpful"):
        rated = next((m for m in messages if m.seq == (latest.data or {}).get("seq")), None)
        return record(
            "deflected_confirmed",
            None,
            aware(latest.created_at),
            resolution=_ms(t0, rated.created_at) if rated else None,
        )

    last_activity = max(aware(m.created_at) for m in messages)
    closes_at = last_activity + window
    if now < closes_at:
        return None
    bot_answers = [m for m in messages if m.role == "bot"]
    if not bot_answers or latest is not None:  # latest feedback here is "not helpful"
        return record("abandoned", None, closes_at)
    if _returned_with_same_problem(session, conv, customer, bot_answers[-1], closes_at):
        return record("abandoned", "returned", closes_at)
    return record(
        "deflected_assumed",
        None,
        closes_at,
        resolution=_ms(t0, bot_answers[-1].created_at),
    )


def _returned_with_same_problem(
    session: Session,
    conv: Conversation,
    customer: list[Message],
    last_bot: Message,
    closes_at: datetime,
) -> bool:
    """Did the same visitor open another conversation within the window about the same thing?

    "Same" means a customer message about as similar as a rephrase, or a bot answer there whose
    best source is the article this conversation's last answer cited first.
    """
    visitor_id = (conv.visitor or {}).get("id") if isinstance(conv.visitor, dict) else None
    if not visitor_id:
        return False
    since = aware(last_bot.created_at)
    others = session.scalars(
        select(Conversation).where(
            Conversation.id != conv.id,
            Conversation.visitor["id"].as_string() == str(visitor_id),
        )
    )
    top = (last_bot.sources or [{}])[0].get("article_id") if last_bot.sources else None
    for other in others:
        if not since <= aware(other.created_at) <= closes_at:
            continue
        for message in session.scalars(
            select(Message).where(Message.conversation_id == other.id).order_by(Message.seq)
        ):
            if aware(message.created_at) > closes_at:
                break
            if message.role == "customer" and any(
                content_similarity(old.text, message.text) >= REPHRASE_THRESHOLD for old in customer
            ):
                return True
            if (
                message.role == "bot"
                and top
                and message.sources
                and message.sources[0].get("article_id") == top
            ):
                return True
    return False


def recompute_outcomes(
    session: Session,
    *,
    now: datetime | None = None,
    window_hours: float = 24.0,
    write: bool = False,
) -> dict[str, OutcomeRecord]:
    """Every conversation's outcome derived from messages and events alone.

    With ``write=True`` the ledger is replaced by the result (repair after a bug or a rule
    change); by default it only reports, so it can be compared with the ledger.
    """
    now = now or utcnow()
    window = timedelta(hours=window_hours)
    result: dict[str, OutcomeRecord] = {}
    for conv in session.scalars(select(Conversation).order_by(Conversation.created_at)):
        derived = derive_outcome(session, conv, now=now, window=window)
        if derived is not None:
            result[conv.id] = derived
    if write:
        session.execute(delete(Outcome))
        for rec in result.values():
            session.add(_row(rec))
        session.flush()
    return result


def ledger(session: Session) -> dict[str, OutcomeRecord]:
    """The stored outcome rows, keyed by conversation."""
    return {row.conversation_id: OutcomeRecord.of(row) for row in session.scalars(select(Outcome))}


# --- incremental ------------------------------------------------------------------------------


def record(
    session: Session,
    conv: Conversation,
    kind: str,
    data: dict[str, Any] | None,
    *,
    now: datetime,
    window_hours: float = 24.0,
) -> None:
    """Bring the ledger up to date with one event of the conversation's history.

    The state machine passes every event it writes, so the ledger follows the same history
    :func:`derive_outcome` reads; events that decide nothing are ignored.
    """
    data = data or {}
    if kind == "escalated":
        _escalated(session, conv, str(data.get("reason")), now=now)
    elif kind == "agent_reply":
        _human_replied(session, conv, now=now)
    elif kind == "state" and data.get("to") == "resolved":
        _resolved(session, conv, now=now)
    elif kind == "feedback":
        helpful = bool(data.get("helpful"))
        _feedback(session, conv, int(data["seq"]), helpful, now=now, window_hours=window_hours)


def _escalated(session: Session, conv: Conversation, reason: str, *, now: datetime) -> None:
    """The first escalation decides the outcome; later ones keep the first reason."""
    row = session.get(Outcome, conv.id)
    if row is not None and row.outcome == "escalated":
        return
    first_customer, first_bot = _first_turn(session, conv.id)
    started = aware(first_customer.created_at) if first_customer else aware(now)
    values = {
        "outcome": "escalated",
        "reason": reason,
        "first_bot_response_ms": _ms(started, first_bot.created_at) if first_bot else None,
        "first_human_response_ms": None,
        "resolution_ms": None,
        "started_at": aware(conv.created_at),
        "decided_at": now,
    }
    _upsert(session, conv.id, row, values)


def _human_replied(session: Session, conv: Conversation, *, now: datetime) -> None:
    row = session.get(Outcome, conv.id)
    if row is not None and row.outcome == "escalated" and row.first_human_response_ms is None:
        row.first_human_response_ms = _ms(row.decided_at, now)


def _resolved(session: Session, conv: Conversation, *, now: datetime) -> None:
    row = session.get(Outcome, conv.id)
    if row is not None and row.outcome == "escalated" and row.resolution_ms is None:
        first_customer, _ = _first_turn(session, conv.id)
        if first_customer is not None:
            row.resolution_ms = _ms(first_customer.created_at, now)


def _feedback(
    session: Session,
    conv: Conversation,
    seq: int,
    helpful: bool,
    *,
    now: datetime,
    window_hours: float = 24.0,
) -> None:
    """Helpful confirms the deflection at once; not helpful takes a confirmation back."""
    row = session.get(Outcome, conv.id)
    if row is not None and row.outcome == "escalated":
        return
    first_customer, first_bot = _first_turn(session, conv.id)
    if first_customer is None:
        return
    t0 = aware(first_customer.created_at)
    if helpful:
        rated = session.scalar(
            select(Message).where(Message.conversation_id == conv.id, Message.seq == seq)
        )
        values = {
            "outcome": "deflected_confirmed",
            "reason": None,
            "first_bot_response_ms": _ms(t0, first_bot.created_at) if first_bot else None,
            "first_human_response_ms": None,
            "resolution_ms": _ms(t0, rated.created_at) if rated else None,
            "started_at": aware(conv.created_at),
            "decided_at": now,
        }
        _upsert(session, conv.id, row, values)
    elif row is not None:
        # Back to "not decided": the window (or a late close) decides again from history.
        session.delete(row)
        session.flush()
        if row.outcome in WINDOW_CLOSED:
            _close_one(session, conv, now=now, window=timedelta(hours=window_hours))


def close_idle_conversations(
    session: Session, *, now: datetime | None = None, window_hours: float = 24.0
) -> list[OutcomeRecord]:
    """The periodic job: conversations idle for the whole window get their outcome.

    Runs from the app lifespan every ``outcome_job_interval_s`` and from tests with a frozen
    ``now``. Only conversations without an outcome that are not with the queue are considered.
    """
    now = now or utcnow()
    window = timedelta(hours=window_hours)
    decided = []
    candidates = session.scalars(
        select(Conversation)
        .outerjoin(Outcome, Outcome.conversation_id == Conversation.id)
        .where(Outcome.conversation_id.is_(None), Conversation.state.in_(("bot", "resolved")))
    )
    for conv in list(candidates):
        rec = _close_one(session, conv, now=now, window=window)
        if rec is not None:
            decided.append(rec)
    return decided


def _close_one(
    session: Session, conv: Conversation, *, now: datetime, window: timedelta
) -> OutcomeRecord | None:
    from bot.conversations.store import record_event

    rec = derive_outcome(session, conv, now=now, window=window)
    if rec is None or rec.outcome not in WINDOW_CLOSED:
        return None
    session.add(_row(rec))
    conv.closed_at = rec.decided_at
    record_event(session, conv.id, "closed", {"outcome": rec.outcome}, now=now)
    session.flush()
    return rec


async def run_outcome_job(database: DatabaseWorkers, settings: Settings) -> None:
    """Forever: close idle conversations every ``outcome_job_interval_s`` (lifespan task).

    Each run is one transaction holding the job's advisory lock (``bot.core.leases``): with
    several processes on one PostgreSQL database one of them runs it at a time, and a process
    that dies mid-run leaves nothing half-done (its transaction rolls back, its lock goes)."""
    from bot.core.leases import try_job_lock

    def run_once(session: Session) -> int:
        if not try_job_lock(session, "outcome-job"):
            return 0  # another process is running it now
        return len(close_idle_conversations(session, window_hours=settings.deflection_window_hours))

    while True:
        await asyncio.sleep(settings.outcome_job_interval_s)
        try:
            closed = await database.run(run_once)
            if closed:
                log.info("outcome job: %d conversations closed", closed)
        except Exception:  # the job must survive a bad row or a busy database
            log.exception("outcome job failed; retrying at the next interval")


# --- helpers ----------------------------------------------------------------------------------


def _first_turn(session: Session, conversation_id: str) -> tuple[Message | None, Message | None]:
    first_customer = session.scalar(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.role == "customer")
        .order_by(Message.seq)
        .limit(1)
    )
    if first_customer is None:
        return None, None
    first_bot = session.scalar(
        select(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.role == "bot",
            Message.seq > first_customer.seq,
        )
        .order_by(Message.seq)
        .limit(1)
    )
    return first_customer, first_bot


def _upsert(
    session: Session, conversation_id: str, row: Outcome | None, values: dict[str, Any]
) -> None:
    if row is None:
        session.add(Outcome(conversation_id=conversation_id, **values))
    else:
        for key, value in values.items():
            setattr(row, key, value)
    session.flush()


def _row(rec: OutcomeRecord) -> Outcome:
    return Outcome(
        conversation_id=rec.conversation_id,
        outcome=rec.outcome,
        reason=rec.reason,
        first_bot_response_ms=rec.first_bot_response_ms,
        first_human_response_ms=rec.first_human_response_ms,
        resolution_ms=rec.resolution_ms,
        started_at=rec.started_at,
        decided_at=rec.decided_at,
    )


def _ms(start: datetime, end: datetime) -> int:
    return int((aware(end) - aware(start)).total_seconds() * 1000)
