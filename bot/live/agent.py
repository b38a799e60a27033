"""The agent console socket as plain code: one :class:`AgentSession` per ``/ws/agent`` socket.

It pushes queue changes (``agents`` topic) and the events of the conversations an agent watches,
and relays the agent's typing and replies. Every frame, both ways, is a model of
:mod:`bot.conversations.agent_frames` (documented in docs/agents.md). A malformed frame gets an
``error`` frame; the socket stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from bot.conversations.agent_frames import (
    AgentClientFrame,
    AgentErrorCode,
    AgentErrorFrame,
    AgentHelloFrame,
    AgentMessageFrame,
    AgentTypingFrame,
    PingFrame,
    PongFrame,
    ProtocolError,
    UnwatchFrame,
    WatchedTypingFrame,
    WatchFrame,
    WatchingFrame,
    agent_event_frame,
    parse_agent_frame,
    watched_frame,
)
from bot.conversations.events import AGENTS_TOPIC, EventBus, Subscription, conversation_topic
from bot.conversations.frames import Frame, TypingFrame
from bot.core import metrics
from bot.core.db import DatabaseWorkers
from bot.core.models import User
from bot.handoff import machine as handoff
from bot.handoff.views import queue_entries
from bot.live.transport import Disconnected, Transport

log = logging.getLogger(__name__)
MAX_WATCHED = 50


class AgentSession:
    """One console connection: an outbox fed by the bus, an inbox of agent frames."""

    def __init__(
        self, database: DatabaseWorkers, events: EventBus, transport: Transport, user: User
    ) -> None:
        self.database = database
        self.events = events
        self.transport = transport
        self.user = user
        self.outbox: asyncio.Queue[Frame] = asyncio.Queue(maxsize=1000)
        self.watchers: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        with metrics.open_socket("agent"):
            await self._run()

    async def _run(self) -> None:
        async with self.events.subscribe(AGENTS_TOPIC) as queue_sub:
            pump = asyncio.create_task(self._pump(queue_sub, None))
            sender = asyncio.create_task(self._send_loop())
            try:
                entries = await self.database.run(queue_entries)
                await self.outbox.put(AgentHelloFrame(agent=self.user.email, queue=entries))
                await self._receive_loop()
            except Disconnected:
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
        async with self.events.subscribe(conversation_topic(conversation_id)) as sub:
            await self._pump(sub, conversation_id)

    async def _send_loop(self) -> None:
        while True:
            frame = await self.outbox.get()
            await self.transport.send(frame.dump())

    async def _receive_loop(self) -> None:
        while True:
            raw = await self.transport.receive()
            try:
                frame = parse_agent_frame(raw)
            except ProtocolError as exc:
                await self.outbox.put(AgentErrorFrame.of(exc))
                continue
            try:
                await self._dispatch(frame)
            except Disconnected:
                raise
            except Exception:
                # One bad frame must not take the console's socket (and its watches) down.
                log.exception("agent frame %r failed", frame.type)
                await self._error("invalid_frame", "the server could not process this frame")

    async def _dispatch(self, frame: AgentClientFrame) -> None:
        """Act on one parsed console frame."""
        if isinstance(frame, WatchFrame):
            cid = frame.conversation_id
            if cid not in self.watchers and len(self.watchers) < MAX_WATCHED:
                self.watchers[cid] = asyncio.create_task(self._watch(cid))
            await self.outbox.put(WatchingFrame(conversation_id=cid))
        elif isinstance(frame, UnwatchFrame):
            task = self.watchers.pop(frame.conversation_id, None)
            if task:
                task.cancel()
        elif isinstance(frame, AgentTypingFrame):
            self.events.publish(
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
            handoff.publish_on_commit(session, self.events, conversation_id, frames)
            return frames

        try:
            await self.database.run(work)
        except handoff.HandoffError as exc:
            await self._error("refused", exc.detail)

    async def _error(self, code: AgentErrorCode, detail: str) -> None:
        await self.outbox.put(AgentErrorFrame(code=code, detail=detail))
