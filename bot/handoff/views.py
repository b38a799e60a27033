"""Read models of the human queue: what the agent API and the console socket show.

Plain functions over a ``Session``; they never change state (that is :mod:`bot.handoff.machine`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.conversations.agent_frames import QueueEntry
from bot.core.clock import aware, utcnow
from bot.core.models import (
    Conversation,
    ConversationEvent,
    Message,
    Outcome,
    QueueItem,
    Site,
    User,
)
from bot.handoff.machine import HandoffError, bot_sources, message_frame
from bot.people.sites import customer_conversations, last_message_text


class QueueOut(BaseModel):
    items: list[QueueEntry]
    open_now: bool


class ConversationOut(BaseModel):
    id: str
    state: str
    state_reason: str | None
    assigned_agent: str | None
    contact_email: str | None
    created_at: datetime
    escalation: dict[str, Any] | None
    sources: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    outcome: dict[str, Any] | None
    customer: CustomerOut | None = None
    earlier_conversations: list[EarlierConversation] = []


class CustomerOut(BaseModel):
    """Who the customer is, as their site's page said: ``verified`` when its hash proved the id
    (only then are the earlier conversations theirs for sure)."""

    id: str
    name: str | None
    email: str | None
    verified: bool
    site: str | None
    locale: str | None


class EarlierConversation(BaseModel):
    id: str
    state: str
    created_at: datetime
    last_message: str | None


def queue_entries(session: Session, *, now: datetime | None = None) -> list[QueueEntry]:
    """Open queue items, oldest first, with how long each has waited."""
    now = now or utcnow()
    rows = session.execute(
        select(QueueItem, Conversation)
        .join(Conversation, Conversation.id == QueueItem.conversation_id)
        .where(QueueItem.open_key.is_not(None))
        .order_by(QueueItem.created_at)
    ).all()
    agents = _emails(session, [item.claimed_by for item, _ in rows])
    entries = []
    for item, conv in rows:
        last = session.scalar(
            select(Message.text)
            .where(Message.conversation_id == conv.id, Message.role == "customer")
            .order_by(Message.seq.desc())
            .limit(1)
        )
        entries.append(
            QueueEntry(
                id=item.id,
                conversation_id=conv.id,
                reason=item.reason,
                detail=item.detail,
                state=conv.state,
                claimed_by=agents.get(item.claimed_by) if item.claimed_by else None,
                contact_email=conv.contact_email,
                created_at=aware(item.created_at),
                waiting_s=max(0, int((now - aware(item.created_at)).total_seconds())),
                last_message=last[:200] if last else None,
            )
        )
    return entries


def conversation_detail(session: Session, conversation_id: str) -> ConversationOut:
    """Everything an agent needs to take over: transcript, cited sources, why it escalated."""
    conv = session.get(Conversation, conversation_id)
    if conv is None:
        raise HandoffError(f"no conversation {conversation_id}", 404)
    messages = list(
        session.scalars(
            select(Message).where(Message.conversation_id == conv.id).order_by(Message.seq)
        )
    )
    escalation = session.scalar(
        select(ConversationEvent)
        .where(ConversationEvent.conversation_id == conv.id, ConversationEvent.kind == "escalated")
        .order_by(ConversationEvent.id.desc())
        .limit(1)
    )
    item = session.scalar(
        select(QueueItem)
        .where(QueueItem.conversation_id == conv.id)
        .order_by(QueueItem.id.desc())
        .limit(1)
    )
    outcome = session.get(Outcome, conv.id)
    agent = session.get(User, conv.assigned_agent_id) if conv.assigned_agent_id else None
    return ConversationOut(
        id=conv.id,
        state=conv.state,
        state_reason=conv.state_reason,
        assigned_agent=agent.email if agent else None,
        contact_email=conv.contact_email,
        created_at=aware(conv.created_at),
        escalation=(
            {
                **(escalation.data or {}),
                "at": aware(escalation.created_at).isoformat(),
                "queue_detail": item.detail if item else None,
                "queue_sources": item.sources if item else [],
            }
            if escalation
            else None
        ),
        sources=bot_sources(session, conv.id),
        messages=[message_frame(m) for m in messages],
        customer=_customer(session, conv),
        earlier_conversations=_earlier(session, conv),
        outcome=(
            {
                "outcome": outcome.outcome,
                "reason": outcome.reason,
                "first_bot_response_ms": outcome.first_bot_response_ms,
                "first_human_response_ms": outcome.first_human_response_ms,
                "resolution_ms": outcome.resolution_ms,
            }
            if outcome
            else None
        ),
    )


def _emails(session: Session, ids: list[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {u.id: u.email for u in session.scalars(select(User).where(User.id.in_(wanted)))}


def _customer(session: Session, conv: Conversation) -> CustomerOut | None:
    if conv.customer_id is None:
        return None
    site = session.get(Site, conv.site_id) if conv.site_id is not None else None
    return CustomerOut(
        id=conv.customer_id,
        name=conv.customer_name,
        email=conv.customer_email,
        verified=conv.customer_verified,
        site=site.origin if site else None,
        locale=conv.locale,
    )


def _earlier(session: Session, conv: Conversation) -> list[EarlierConversation]:
    """The verified customer's other conversations on the same site, most recent first."""
    if not conv.customer_verified or conv.site_id is None or conv.customer_id is None:
        return []
    return [
        EarlierConversation(
            id=other.id,
            state=other.state,
            created_at=aware(other.created_at),
            last_message=last_message_text(session, other.id),
        )
        for other in customer_conversations(session, conv.site_id, conv.customer_id)
        if other.id != conv.id
    ]
