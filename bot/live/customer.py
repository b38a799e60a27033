"""The customer chat socket as plain code: one :class:`ChatConnection` per socket, one
:class:`ChatService` per process.

Exactly-once, in three rules:

1. A customer message is committed (``append_message``, idempotent on ``client_msg_id``) before
   its ``ack`` is sent; a resend gets the same ``seq`` and is not answered again.
2. Everything the customer sees after the ack travels over the event bus (``conversation:<id>``):
   bot deltas, stored messages, state changes, agent replies. A resuming socket subscribes
   *before* it reads the store, replays every message after ``last_seq``, and then drops live
   ``message`` frames whose ``seq`` it already sent. Message numbers are allocated under the
   conversation row's write lock, so they commit in order and "seq <= highest replayed" means
   "was replayed".
3. The bot answer is produced by a task owned by the service, not by the socket: a client that
   drops mid-answer loses nothing, the answer is stored and the next resume replays it.

Database work runs in the service's own worker threads so one slow commit never stalls the event
loop that carries every other conversation, and never waits behind the answerer's retrieval jobs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from bot.conversations import store
from bot.conversations.events import Subscription, conversation_topic
from bot.conversations.frames import (
    CLOSE_MESSAGE_TOO_BIG,
    AckFrame,
    ClientMessageFrame,
    ClientTypingFrame,
    CsatFrame,
    DeltaFrame,
    ErrorFrame,
    FeedbackFrame,
    Frame,
    HandoffRequestFrame,
    HelloFrame,
    MessageFrame,
    ProtocolError,
    TypingFrame,
    WelcomeFrame,
    parse_client_frame,
)
from bot.core.ratelimit import KeyedLimiter, TokenBucket
from bot.core.schemas import AnswerResult, Turn
from bot.handoff import machine as handoff
from bot.handoff import policy
from bot.live.transport import Disconnected, Transport

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.conversations.events import EventBus
    from bot.core.db import DatabaseWorkers
    from bot.core.schemas import Answerer
    from bot.core.settings import Settings

log = logging.getLogger(__name__)

TYPING_RELAY_INTERVAL_S = 2.0


# --- the process-wide service -----------------------------------------------------------------


class ChatService:
    """State shared by every chat socket of the process: per-IP limits and the answer tasks."""

    def __init__(
        self,
        settings: Settings,
        database: DatabaseWorkers,
        events: EventBus,
        answerer: Answerer | None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.events = events
        self.answerer = answerer
        self.ip_limiter = KeyedLimiter(
            settings.chat_rate_ip_burst, settings.chat_rate_ip_per_minute / 60.0
        )
        self.answer_tasks: set[asyncio.Task[None]] = set()
        # Per-conversation answer locks with a count of the tasks using each, so the dict holds
        # only conversations with an answer in flight.
        self._answer_locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def publish(self, conversation_id: str, frames: Iterable[dict[str, Any] | Frame]) -> None:
        topic = conversation_topic(conversation_id)
        for frame in frames:
            self.events.publish(topic, frame.dump() if isinstance(frame, Frame) else frame)

    # -- answering --------------------------------------------------------------------------

    def start_answer(self, conversation_id: str, question_seq: int, question: str) -> None:
        """Answer in a task that outlives the socket that asked (once per question)."""
        if any(
            task.get_name() == f"answer:{conversation_id}:{question_seq}"
            for task in self.answer_tasks
        ):
            return
        task = asyncio.create_task(
            self._answer(conversation_id, question_seq, question),
            name=f"answer:{conversation_id}:{question_seq}",
        )
        self.answer_tasks.add(task)
        task.add_done_callback(self.answer_tasks.discard)

    async def _answer(self, conversation_id: str, question_seq: int, question: str) -> None:
        # One answer at a time per conversation, so answers arrive in question order.
        lock, users = self._answer_locks.get(conversation_id, (asyncio.Lock(), 0))
        self._answer_locks[conversation_id] = (lock, users + 1)
        try:
            async with lock:
                await self._answer_locked(conversation_id, question_seq, question)
        except Exception:
            log.exception("answering %s/%s failed", conversation_id, question_seq)
        finally:
            lock, users = self._answer_locks[conversation_id]
            if users <= 1:
                del self._answer_locks[conversation_id]
            else:
                self._answer_locks[conversation_id] = (lock, users - 1)

    async def _answer_locked(self, conversation_id: str, question_seq: int, question: str) -> None:
        self.publish(conversation_id, [TypingFrame(role="bot")])
        limit = self.settings.chat_history_turns
        history = await self.database.run(
            lambda s: [
                Turn(role="user" if m.role == "customer" else "assistant", content=m.text)
                for m in store.recent_messages(
                    s, conversation_id, before_seq=question_seq, limit=limit
                )
            ]
        )
        result: AnswerResult | None = None
        streamed: list[str] = []
        answerer = self.answerer
        try:
            if answerer is not None:
                async for item in answerer.stream(question, history):
                    if isinstance(item, AnswerResult):
                        result = item
                        continue
                    streamed.append(item)
                    self.publish(conversation_id, [DeltaFrame(reply_to=question_seq, text=item)])
        except Exception:
            log.exception("answerer failed on %s/%s", conversation_id, question_seq)
            result = None
        if result is None:
            # No answerer, or it failed (part-way): the policy hands over, and what the customer
            # saw streaming stays the start of the stored text, so the deltas still add up.
            shown = "".join(streamed)
            result = policy.failed_answer(shown)
            if streamed:
                tail = result.answer[len(shown) :]
                self.publish(conversation_id, [DeltaFrame(reply_to=question_seq, text=tail)])
        settings = self.settings
        final = result

        def store_answer(session: Session) -> list[dict[str, Any]]:
            frames = handoff.bot_answered(
                session, conversation_id, final, reply_to=question_seq, settings=settings
            )
            if frames is None:
                # A person took over while this answer was computed: the bot stays silent.
                log.info(
                    "dropped bot answer to %s/%s: human holds it", conversation_id, question_seq
                )
                return []
            return frames

        self.publish(conversation_id, await self.database.run(store_answer))

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for answers in flight (tests, graceful shutdown)."""
        if self.answer_tasks:
            await asyncio.wait(list(self.answer_tasks), timeout=timeout)


# --- one socket -------------------------------------------------------------------------------


@dataclass
class _Opened:
    conversation_id: str
    resume_token: str
    state: str
    last_seq: int
    replay: list[MessageFrame]


class ChatConnection:
    """The protocol state machine of one customer socket."""

    def __init__(
        self,
        service: ChatService,
        transport: Transport,
        *,
        client_ip: str = "unknown",
        origin: str | None = None,
    ) -> None:
        self.service = service
        self.settings = service.settings
        self.transport = transport
        self.client_ip = client_ip
        self.origin = origin
        settings = self.settings
        self.frame_bucket = TokenBucket(
            settings.chat_rate_frames_burst, settings.chat_rate_frames_per_second
        )
        self.message_bucket = TokenBucket(
            settings.chat_rate_messages_burst, settings.chat_rate_messages_per_minute / 60.0
        )
        self.conversation_id: str | None = None
        self.delivered: set[int] = set()
        self.replayed_through = 0
        self._send_lock = asyncio.Lock()
        self._stack = AsyncExitStack()
        self._forwarder: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None
        self._last_typing_relay = 0.0

    async def run(self) -> None:
        """Serve the socket until the peer leaves or a fatal error closes it."""
        try:
            async with self._stack:
                while True:
                    raw = await self.transport.receive()
                    if not await self.handle_raw(raw):
                        return
        except Disconnected:
            return
        finally:
            if self._forwarder is not None:
                self._forwarder.cancel()

    async def send(self, frame: Frame | dict[str, Any]) -> None:
        payload = frame.dump() if isinstance(frame, Frame) else frame
        async with self._send_lock:
            await self.transport.send(payload)

    async def handle_raw(self, raw: str | bytes) -> bool:
        """Process one frame; ``False`` when the socket was closed."""
        limit = self.settings.chat_max_frame_bytes
        size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8"))
        if size > limit:
            await self.send(
                ErrorFrame(code="frame_too_large", detail=f"frames are limited to {limit} bytes")
            )
            await self.transport.close(CLOSE_MESSAGE_TOO_BIG, "frame too large")
            return False
        if not self.frame_bucket.try_acquire():
            await self.send(self._rate_limited(self.frame_bucket.retry_after(), None))
            return True
        frame: Frame | None = None
        try:
            frame = parse_client_frame(raw)
            await self.dispatch(frame)
        except ProtocolError as exc:
            await self.send(exc.frame())
        except Disconnected:
            raise
        except Exception:
            log.exception("chat frame failed")
            ref = getattr(frame, "client_msg_id", None)
            await self.send(
                ErrorFrame(
                    code="internal_error",
                    detail="the server could not process this frame; send it again",
                    client_msg_id=ref,
                )
            )
        return True

    async def dispatch(self, frame: Frame) -> None:
        if isinstance(frame, HelloFrame):
            await self.on_hello(frame)
            return
        if self.conversation_id is None:
            if isinstance(frame, ClientTypingFrame):
                return
            raise ProtocolError(
                "hello_required",
                "send a hello frame first",
                client_msg_id=getattr(frame, "client_msg_id", None),
            )
        if isinstance(frame, ClientMessageFrame):
            await self.on_message(frame)
        elif isinstance(frame, HandoffRequestFrame):
            await self.on_handoff_request(frame)
        elif isinstance(frame, FeedbackFrame):
            await self.on_feedback(frame)
        elif isinstance(frame, CsatFrame):
            await self.on_csat(frame)
        elif isinstance(frame, ClientTypingFrame):
            self.on_typing()

    # -- hello / resume ---------------------------------------------------------------------

    async def on_hello(self, frame: HelloFrame) -> None:
        if self.conversation_id is not None:
            raise ProtocolError("already_open", "this socket already has a conversation")
        if frame.conversation_id is not None:
            opened = await self._resume(frame)
        else:
            opened = await self._create(frame)
        if opened is None:
            return
        self.conversation_id = opened.conversation_id
        await self.send(
            WelcomeFrame(
                conversation_id=opened.conversation_id,
                resume_token=opened.resume_token,
                state=opened.state,
                last_seq=opened.last_seq,
                resumed=frame.conversation_id is not None,
            )
        )
        self.replayed_through = frame.last_seq
        for message in opened.replay:
            await self.send(message)
            self.delivered.add(message.seq)
            self.replayed_through = max(self.replayed_through, message.seq)
        assert self._subscription is not None
        self._forwarder = asyncio.create_task(self._forward(self._subscription))

    async def _subscribe(self, conversation_id: str) -> None:
        self._subscription = await self._stack.enter_async_context(
            self.service.events.subscribe(conversation_topic(conversation_id))
        )

    async def _resume(self, frame: HelloFrame) -> _Opened | None:
        conversation_id = frame.conversation_id
        assert conversation_id is not None
        token = frame.resume_token or ""
        window = timedelta(hours=self.settings.chat_resume_window_hours)
        # Subscribe before reading the store: an event published in between is then seen live.
        inner = AsyncExitStack()
        self._subscription = await inner.enter_async_context(
            self.service.events.subscribe(conversation_topic(conversation_id))
        )

        def load(session: Session) -> _Opened | None:
            conversation = store.verify_resume(session, conversation_id, token, max_age=window)
            if conversation is None:
                return None
            replay = [
                MessageFrame.from_message(message)
                for message in store.messages_after(session, conversation_id, frame.last_seq)
            ]
            return _Opened(
                conversation_id, token, conversation.state, conversation.last_seq, replay
            )

        opened = None if not token else await self.service.database.run(load)
        if opened is None:
            await inner.aclose()
            self._subscription = None
            raise ProtocolError(
                "resume_failed",
                "unknown conversation, wrong resume token, or the resume window has passed; "
                "send hello without conversation_id to start a new conversation",
            )
        self._stack.push_async_exit(inner)
        return opened

    async def _create(self, frame: HelloFrame) -> _Opened:
        visitor = dict(frame.visitor) if frame.visitor else None
        origin = self.origin

        def create(session: Session) -> tuple[str, str]:
            conversation, token = store.create_conversation(session, visitor=visitor, origin=origin)
            return conversation.id, token

        conversation_id, token = await self.service.database.run(create)
        await self._subscribe(conversation_id)
        return _Opened(conversation_id, token, "bot", 0, [])

    async def _forward(self, subscription: Subscription) -> None:
        """Relay conversation events to this socket, each stored message once."""
        try:
            while True:
                payload = await subscription.get()
                kind = payload.get("type")
                if kind == "message":
                    seq = payload.get("seq")
                    if not isinstance(seq, int):
                        continue
                    if seq <= self.replayed_through or seq in self.delivered:
                        continue
                    self.delivered.add(seq)
                elif kind == "typing" and payload.get("role") == "customer":
                    continue
                await self.send(payload)
        except (Disconnected, asyncio.CancelledError):
            return
        except Exception:
            log.exception("relaying events to a chat socket failed")

    # -- customer frames --------------------------------------------------------------------

    def _rate_limited(self, retry_after_s: float, client_msg_id: str | None) -> ErrorFrame:
        return ErrorFrame(
            code="rate_limited",
            detail="too many messages; wait a moment and send it again",
            client_msg_id=client_msg_id,
            retry_after_ms=max(1, int(retry_after_s * 1000) + 1),
        )

    def _take_message_token(self, client_msg_id: str | None) -> ErrorFrame | None:
        if not self.message_bucket.try_acquire():
            return self._rate_limited(self.message_bucket.retry_after(), client_msg_id)
        limiter = self.service.ip_limiter
        if not limiter.try_acquire(self.client_ip):
            return self._rate_limited(limiter.retry_after(self.client_ip), client_msg_id)
        return None

    async def on_message(self, frame: ClientMessageFrame) -> None:
        conversation_id = self.conversation_id
        assert conversation_id is not None
        text = frame.text.strip()
        if len(text) > self.settings.chat_max_message_chars:
            raise ProtocolError(
                "message_too_long",
                f"messages are limited to {self.settings.chat_max_message_chars} characters",
                client_msg_id=frame.client_msg_id,
            )
        if not text:
            raise ProtocolError("invalid_frame", "text is empty", client_msg_id=frame.client_msg_id)
        refused = self._take_message_token(frame.client_msg_id)
        if refused is not None:
            await self.send(refused)
            return
        settings = self.settings

        def save(session: Session) -> tuple[MessageFrame, handoff.CustomerTurn]:
            turn = handoff.customer_wrote(
                session, conversation_id, text, client_msg_id=frame.client_msg_id, settings=settings
            )
            return MessageFrame.from_message(turn.message), turn

        try:
            stored, turn = await self.service.database.run(save)
        except IntegrityError:
            # The same client_msg_id raced in from another socket; the other write won.
            stored, turn = await self.service.database.run(save)
        self.delivered.add(stored.seq)
        try:
            await self.send(
                AckFrame(
                    client_msg_id=frame.client_msg_id, seq=stored.seq, duplicate=not turn.created
                )
            )
        finally:
            # The message is committed: it is answered even when the socket died before the
            # ack went out (the customer's resend is then acked as a duplicate, not re-answered).
            if turn.created:
                self.service.publish(conversation_id, [stored, *turn.frames])
            if turn.bot_should_answer:
                self.service.start_answer(conversation_id, stored.seq, text)

    async def on_handoff_request(self, frame: HandoffRequestFrame) -> None:
        conversation_id = self.conversation_id
        assert conversation_id is not None
        refused = self._take_message_token(frame.client_msg_id)
        if refused is not None:
            await self.send(refused)
            return
        settings = self.settings
        frames = await self.service.database.run(
            lambda s: handoff.request_handoff(s, conversation_id, settings=settings)
        )
        self.service.publish(conversation_id, frames)

    async def on_feedback(self, frame: FeedbackFrame) -> None:
        """Stored (and judged: two unhelpful answers in a row escalate) by the handoff module."""
        conversation_id = self.conversation_id
        assert conversation_id is not None
        settings = self.settings

        def save(session: Session) -> list[dict[str, Any]]:
            return list(
                handoff.on_feedback(
                    session, conversation_id, frame.seq, frame.helpful, settings=settings
                )
            )

        try:
            frames = await self.service.database.run(save)
        except handoff.HandoffError as exc:
            raise ProtocolError(
                "unknown_message", exc.detail, client_msg_id=frame.client_msg_id
            ) from None
        self.service.publish(conversation_id, frames)

    async def on_csat(self, frame: CsatFrame) -> None:
        conversation_id = self.conversation_id
        assert conversation_id is not None
        comment = frame.comment.strip() if frame.comment else None
        await self.service.database.run(
            lambda s: store.record_csat(
                s, conversation_id, frame.score, comment or None, ces=frame.ces
            )
        )

    def on_typing(self) -> None:
        """Relay "customer is typing" to agents, at most once per interval."""
        now = time.monotonic()
        if now - self._last_typing_relay < TYPING_RELAY_INTERVAL_S:
            return
        self._last_typing_relay = now
        assert self.conversation_id is not None
        self.service.publish(self.conversation_id, [TypingFrame(role="customer")])


async def serve_chat(
    service: ChatService, transport: Transport, *, client_ip: str, origin: str | None
) -> None:
    """Run the chat protocol on an accepted socket until it ends."""
    connection = ChatConnection(service, transport, client_ip=client_ip, origin=origin)
    await connection.run()
