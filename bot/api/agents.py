"""The agent API (``/api/agent/...``), the live socket ``/ws/agent`` and the console page.

Routes are thin: they authenticate (``AgentUser``), call :mod:`bot.handoff`, and publish the
returned frames to the conversation once the request's transaction commits, so the customer's
socket gets the agent's reply live and finds it again on resume (it is a stored message).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import handoff
from bot.agent_protocol import (
    MAX_REPLY_CHARS,
    AgentErrorCode,
    AgentErrorFrame,
    AgentHelloFrame,
    AgentMessageFrame,
    AgentTypingFrame,
    PingFrame,
    PongFrame,
    QueueEntry,
    UnwatchFrame,
    WatchedTypingFrame,
    WatchFrame,
    WatchingFrame,
    agent_event_frame,
    parse_agent_frame,
    watched_frame,
)
from bot.api.auth import templates
from bot.deflection import aware
from bot.deps import ContextDep, SessionDep
from bot.events import AGENTS_TOPIC, EventBus, Subscription, conversation_topic
from bot.hours import business_hours
from bot.models import Conversation, ConversationEvent, Message, Outcome, QueueItem, User, utcnow
from bot.protocol import Frame, ProtocolError, TypingFrame
from bot.security import AgentPage, AgentSocketUser, AgentUser

log = logging.getLogger(__name__)
router = APIRouter(tags=["agents"])
PACKAGE_DIR = Path(__file__).resolve().parent.parent
T = TypeVar("T")


class ReplyIn(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_REPLY_CHARS)


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


# --- plain functions (the routes and the socket share them) -----------------------------------


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
        raise HTTPException(404, f"no conversation {conversation_id}")
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
        sources=handoff.bot_sources(session, conv.id),
        messages=[handoff.message_frame(m) for m in messages],
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


def _act(
    session: Session,
    bus: EventBus,
    conversation_id: str,
    action: Callable[[], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Run a state-machine action; refusals become HTTP errors, frames go out after commit."""
    try:
        frames = action()
    except handoff.HandoffError as exc:
        raise HTTPException(exc.status, exc.detail) from None
    handoff.publish_on_commit(session, bus, conversation_id, frames)
    return frames


# --- HTTP API ---------------------------------------------------------------------------------


@router.get("/api/agent/queue")
def get_queue(user: AgentUser, session: SessionDep, ctx: ContextDep) -> QueueOut:
    """Conversations waiting for (or held by) a person, oldest first."""
    settings = ctx.settings
    hours = business_hours(settings.business_hours, settings.business_timezone)
    return QueueOut(items=queue_entries(session), open_now=hours.is_open(utcnow()))


@router.get("/api/agent/conversations/{conversation_id}")
def get_conversation(conversation_id: str, user: AgentUser, session: SessionDep) -> ConversationOut:
    """The transcript, the sources the bot cited, and the escalation reason."""
    return conversation_detail(session, conversation_id)


@router.post("/api/agent/conversations/{conversation_id}/claim")
def claim_conversation(
    conversation_id: str, user: AgentUser, session: SessionDep, ctx: ContextDep
) -> ConversationOut:
    """Take the conversation (``awaiting_human -> human``); the customer is told who joined."""
    _act(
        session, ctx.events, conversation_id, lambda: handoff.claim(session, conversation_id, user)
    )
    return conversation_detail(session, conversation_id)


@router.post("/api/agent/conversations/{conversation_id}/messages", status_code=201)
def post_message(
    conversation_id: str, body: ReplyIn, user: AgentUser, session: SessionDep, ctx: ContextDep
) -> dict[str, Any]:
    """Reply in the customer's conversation (claims it first if it is still waiting)."""
    frames = _act(
        session,
        ctx.events,
        conversation_id,
        lambda: handoff.agent_reply(session, conversation_id, user, body.text),
    )
    message = next(f for f in reversed(frames) if f.get("type") == "message")
    return {"seq": message["seq"], "message": message}


@router.post("/api/agent/conversations/{conversation_id}/resolve")
def resolve_conversation(
    conversation_id: str, user: AgentUser, session: SessionDep, ctx: ContextDep
) -> ConversationOut:
    """Mark it resolved: the queue item closes and the ledger records the resolution time."""
    _act(
        session,
        ctx.events,
        conversation_id,
        lambda: handoff.resolve(session, conversation_id, user),
    )
    return conversation_detail(session, conversation_id)


@router.post("/api/agent/conversations/{conversation_id}/handback")
def handback_conversation(
    conversation_id: str, user: AgentUser, session: SessionDep, ctx: ContextDep
) -> ConversationOut:
    """Give the conversation back to the bot."""
    _act(
        session,
        ctx.events,
        conversation_id,
        lambda: handoff.handback(session, conversation_id, user),
    )
    return conversation_detail(session, conversation_id)


# --- the console page -------------------------------------------------------------------------


@router.get("/agent", response_class=HTMLResponse, include_in_schema=False)
def agent_console(request: Request, user: AgentPage) -> HTMLResponse:
    """The agent console (server-rendered shell; bot/static/agent.js fills it live)."""
    principal = request.state.principal
    csrf = principal.session.csrf if principal.session is not None else ""
    return templates.TemplateResponse(
        request, "agent.html", {"user": user, "csrf": csrf, "title": "Agent console"}
    )


@router.get("/static/agent.js", include_in_schema=False)
def agent_js() -> FileResponse:
    return FileResponse(PACKAGE_DIR / "static" / "agent.js", media_type="text/javascript")


@router.get("/static/agent.css", include_in_schema=False)
def agent_css() -> FileResponse:
    return FileResponse(PACKAGE_DIR / "static" / "agent.css", media_type="text/css")


# --- /ws/agent --------------------------------------------------------------------------------


@router.websocket("/ws/agent")
async def agent_socket(websocket: WebSocket, user: AgentSocketUser) -> None:
    """Pushes queue changes and the events of watched conversations; relays agent typing.

    Every frame, both ways, is a model of :mod:`bot.agent_protocol` (documented in
    docs/agents.md). A malformed frame gets an ``error`` frame; the socket stays open.
    """
    ctx = websocket.app.state.ctx
    await websocket.accept()
    session_agent = AgentSession(ctx, websocket, user)
    await session_agent.run()


class AgentSession:
    """One console connection: an outbox fed by the bus, an inbox of agent frames."""

    def __init__(self, ctx: Any, websocket: WebSocket, user: User) -> None:
        self.ctx = ctx
        self.websocket = websocket
        self.user = user
        self.outbox: asyncio.Queue[Frame] = asyncio.Queue(maxsize=1000)
        self.watchers: dict[str, asyncio.Task[None]] = {}

    async def db(self, work: Callable[[Session], T]) -> T:
        from bot.db import transaction

        def run() -> T:
            with transaction(self.ctx.sessions) as session:
                return work(session)

        return await asyncio.to_thread(run)

    async def run(self) -> None:
        bus: EventBus = self.ctx.events
        async with bus.subscribe(AGENTS_TOPIC) as queue_sub:
            pump = asyncio.create_task(self._pump(queue_sub, None))
            sender = asyncio.create_task(self._send_loop())
            try:
                entries = await self.db(queue_entries)
                await self.outbox.put(AgentHelloFrame(agent=self.user.email, queue=entries))
                await self._receive_loop()
            except WebSocketDisconnect:
                pass
            finally:
                for task in [pump, sender, *self.watchers.values()]:
                    task.cancel()
                for task in [pump, sender, *self.watchers.values()]:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def _pump(self, subscription: Subscription, conversation_id: str | None) -> None:
        async for payload in subscription:
            frame: Frame
            try:
                if conversation_id is None:
                    frame = agent_event_frame(payload)
                else:
                    frame = watched_frame(payload, conversation_id)
            except ValidationError:
                log.warning("not forwarded to the agent console: %r", payload.get("type"))
                continue
            if isinstance(frame, WatchedTypingFrame) and frame.role == "agent":
                continue  # our own (or a colleague's) typing echo
            await self.outbox.put(frame)

    async def _watch(self, conversation_id: str) -> None:
        async with self.ctx.events.subscribe(conversation_topic(conversation_id)) as sub:
            await self._pump(sub, conversation_id)

    async def _send_loop(self) -> None:
        while True:
            frame = await self.outbox.get()
            await self.websocket.send_json(frame.dump())

    async def _receive_loop(self) -> None:
        while True:
            raw = await self.websocket.receive_text()
            try:
                frame = parse_agent_frame(raw)
            except ProtocolError as exc:
                await self.outbox.put(AgentErrorFrame.of(exc))
                continue
            if isinstance(frame, WatchFrame):
                cid = frame.conversation_id
                if cid not in self.watchers and len(self.watchers) < 50:
                    self.watchers[cid] = asyncio.create_task(self._watch(cid))
                await self.outbox.put(WatchingFrame(conversation_id=cid))
            elif isinstance(frame, UnwatchFrame):
                task = self.watchers.pop(frame.conversation_id, None)
                if task:
                    task.cancel()
            elif isinstance(frame, AgentTypingFrame):
                self.ctx.events.publish(
                    conversation_topic(frame.conversation_id), TypingFrame(role="agent").dump()
                )
            elif isinstance(frame, AgentMessageFrame):
                await self._reply(frame)
            elif isinstance(frame, PingFrame):
                await self.outbox.put(PongFrame())

    async def _reply(self, frame: AgentMessageFrame) -> None:
        user_id = self.user.id
        conversation_id = frame.conversation_id

        def work(session: Session) -> list[dict[str, Any]]:
            agent = session.get(User, user_id)
            assert agent is not None
            frames = handoff.agent_reply(session, conversation_id, agent, frame.text)
            handoff.publish_on_commit(session, self.ctx.events, conversation_id, frames)
            return frames

        try:
            await self.db(work)
        except handoff.HandoffError as exc:
            await self._error("refused", exc.detail)

    async def _error(self, code: AgentErrorCode, detail: str) -> None:
        await self.outbox.put(AgentErrorFrame(code=code, detail=detail))
