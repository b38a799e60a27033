"""The agent API (``/api/agent/...``), the live socket ``/ws/agent`` and the console page.

Routes are thin: they authenticate (``AgentUser``), call :mod:`bot.handoff.machine`, and publish the
returned frames to the conversation once the request's transaction commits, so the customer's
socket gets the agent's reply live and finds it again on resume (it is a stored message).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, WebSocket
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from bot.conversations.agent_frames import MAX_REPLY_CHARS
from bot.conversations.events import EventBus
from bot.core.clock import utcnow
from bot.handoff import machine as handoff
from bot.handoff.hours import business_hours
from bot.handoff.views import ConversationOut, QueueOut, conversation_detail, queue_entries
from bot.live.agent import AgentSession
from bot.live.transport import StarletteTransport
from bot.web.deps import ContextDep, SessionDep
from bot.web.guards import AgentPage, AgentSocketUser, AgentUser
from bot.web.routes.auth import templates

router = APIRouter(tags=["agents"])
PACKAGE_DIR = Path(__file__).resolve().parent.parent


class ReplyIn(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_REPLY_CHARS)


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


def _detail(session: Session, conversation_id: str) -> ConversationOut:
    try:
        return conversation_detail(session, conversation_id)
    except handoff.HandoffError as exc:
        raise HTTPException(exc.status, exc.detail) from None


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
    return _detail(session, conversation_id)


@router.post("/api/agent/conversations/{conversation_id}/claim")
def claim_conversation(
    conversation_id: str, user: AgentUser, session: SessionDep, ctx: ContextDep
) -> ConversationOut:
    """Take the conversation (``awaiting_human -> human``); the customer is told who joined."""
    _act(
        session, ctx.events, conversation_id, lambda: handoff.claim(session, conversation_id, user)
    )
    return _detail(session, conversation_id)


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


class ResolveIn(BaseModel):
    article_id: str | None = Field(
        None,
        max_length=200,
        description="The article that answers the customer's question: the question becomes a "
        "candidate learned question of it, for an admin to approve.",
    )


@router.post("/api/agent/conversations/{conversation_id}/resolve")
def resolve_conversation(
    conversation_id: str,
    user: AgentUser,
    session: SessionDep,
    ctx: ContextDep,
    body: ResolveIn | None = None,
) -> ConversationOut:
    """Mark it resolved: the queue item closes and the ledger records the resolution time.
    With ``article_id``, that article is recorded as the one that answers the question."""
    article_id = body.article_id if body else None
    if article_id and article_id not in ctx.retriever.article_titles():
        raise HTTPException(422, f"no published article {article_id!r}")
    _act(
        session,
        ctx.events,
        conversation_id,
        lambda: handoff.resolve(session, conversation_id, user, article_id=article_id),
    )
    return _detail(session, conversation_id)


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
    return _detail(session, conversation_id)


# --- the console page -------------------------------------------------------------------------


@router.get("/agent", response_class=HTMLResponse, include_in_schema=False)
def agent_console(request: Request, user: AgentPage) -> HTMLResponse:
    """The agent console (server-rendered shell; bot/web/static/agent.js fills it live)."""
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
async def agent_socket(websocket: WebSocket, user: AgentSocketUser, ctx: ContextDep) -> None:
    """Pushes queue changes and the events of watched conversations; relays agent typing.

    Every frame, both ways, is a model of :mod:`bot.conversations.agent_frames` (documented in
    docs/agents.md). A malformed frame gets an ``error`` frame; the socket stays open.
    """
    await websocket.accept()
    await AgentSession(ctx.database, ctx.events, StarletteTransport(websocket), user).run()
