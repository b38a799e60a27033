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
4. Who answers a question is durable: the question row carries the answering process's mark
   (``answer_owner``) from the transaction that stores the question to the one that stores the
   answer, and only the holder may store it. So no resend, however fast and over however many
   sockets, gets a second answer, and a question a stopped process left (SIGKILL, or a SIGTERM
   whose grace ran out) is answered by the next process, at start-up and on resume.

Database work runs in the service's own worker threads so one slow commit never stalls the event
loop that carries every other conversation, and never waits behind the answerer's retrieval jobs.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from bot.conversations import customers, store
from bot.conversations.events import Subscription, conversation_topic
from bot.conversations.frames import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_POLICY_VIOLATION,
    AckFrame,
    ChooseFrame,
    ClientMessageFrame,
    ClientTypingFrame,
    ConversationsFrame,
    ConversationsRequestFrame,
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
from bot.core import logs, metrics
from bot.core.clock import utcnow
from bot.core.i18n import answer_locale, translate
from bot.core.leases import try_job_lock
from bot.core.privacy import contains_card_number, install_log_masking
from bot.core.ratelimit import AnswerSlots, Gatekeeper, Refusal
from bot.core.schemas import AnswerResult, Source, Turn
from bot.handoff import machine as handoff
from bot.handoff import policy
from bot.live.transport import Disconnected, Transport
from bot.people.identity import is_conversation_token
from bot.people.sites import ANONYMOUS, Customer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.conversations.events import EventBus
    from bot.core.db import DatabaseWorkers
    from bot.core.models import Conversation
    from bot.core.schemas import Answerer
    from bot.core.settings import Settings

log = logging.getLogger(__name__)

TYPING_RELAY_INTERVAL_S = 2.0
MAX_REMEMBERED_CLIENTS = 100_000
ANSWER_QUEUE_RETRY_S = 2.0
"""What a message refused for a full answer queue is told to wait: about one answer's time."""
CARD_WARNING = translate("card_warning")
"""In English; the customer is told in their own language (bot.core.i18n)."""


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
        if settings.log_mask_personal_data:
            install_log_masking()  # customers' words reach the logs through this service
        # Fair limits (bot.core.ratelimit): frame, message and hello rates per connection, per
        # IP and in all; answers run a few at a time, with a per-IP share and queue.
        self.gate = Gatekeeper.from_settings(settings)
        self.answer_slots = AnswerSlots.from_settings(settings)
        self._clients: OrderedDict[str, str] = OrderedDict()
        self.answer_tasks: set[asyncio.Task[None]] = set()
        # Per-conversation answer locks with a count of the tasks using each, so the dict holds
        # only conversations with an answer in flight.
        self._answer_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        # This process's mark on the questions it owes an answer (store.mark_answer_owed): a
        # new one per process, so the next process knows which answers were left unfinished.
        self.owner = uuid.uuid4().hex
        # Set by close(): shutting down, no new answer starts (the questions keep their mark and
        # the next process answers them).
        self.closing = False
        self._present: dict[str, int] = {}  # conversation id -> customer sockets open on it
        self._presence_tasks: set[asyncio.Task[None]] = set()
        # Conversations whose last socket closed, waiting to be recorded: one store trip takes
        # every one that closed meanwhile (a trip per closed socket showed in the bench).
        self._left: set[str] = set()
        self._recording_left = False

    def note_client(self, conversation_id: str, client_ip: str) -> None:
        """Remember who opened a conversation last: its answers count against that client's
        share of the answer capacity. Bounded: the oldest entries go first."""
        self._clients[conversation_id] = client_ip
        self._clients.move_to_end(conversation_id)
        while len(self._clients) > MAX_REMEMBERED_CLIENTS:
            self._clients.popitem(last=False)

    def client_of(self, conversation_id: str) -> str:
        return self._clients.get(conversation_id, "unknown")

    # -- presence: who has a chat open (replies by e-mail wait while they do) ----------------

    def customer_arrived(self, conversation_id: str) -> None:
        self._present[conversation_id] = self._present.get(conversation_id, 0) + 1

    def customer_left(self, conversation_id: str) -> None:
        """A socket of the conversation closed; with its last one, the time is recorded, so an
        agent's reply from now on may go out by e-mail once they stay away."""
        count = self._present.get(conversation_id, 0) - 1
        if count > 0:
            self._present[conversation_id] = count
            return
        self._present.pop(conversation_id, None)
        if self.closing:
            return
        self._left.add(conversation_id)
        if self._recording_left:
            return  # the running recorder takes it in its next trip
        self._recording_left = True
        task = asyncio.create_task(self._record_left(), name="customer-left")
        self._presence_tasks.add(task)
        task.add_done_callback(self._presence_tasks.discard)

    def present_conversations(self) -> list[str]:
        """Conversations with a customer socket open in this process now."""
        return list(self._present)

    async def _record_left(self) -> None:
        """Record the conversations customers left, in as few trips as the store allows: those
        that close while one trip runs go together in the next."""
        try:
            while self._left:
                batch = sorted(self._left)
                self._left.clear()
                await self._record_seen(batch)
        finally:
            self._recording_left = False

    async def _record_seen(self, conversation_ids: list[str]) -> None:
        try:
            await self.database.run(lambda s: customers.mark_seen(s, conversation_ids))
        except Exception:
            log.exception("recording that a customer left failed")

    def publish(self, conversation_id: str, frames: Iterable[dict[str, Any] | Frame]) -> None:
        topic = conversation_topic(conversation_id)
        for frame in frames:
            self.events.publish(topic, frame.dump() if isinstance(frame, Frame) else frame)

    # -- answering --------------------------------------------------------------------------

    def start_answer(
        self, conversation_id: str, question_seq: int, question: str, *, while_waiting: bool = False
    ) -> None:
        """Answer in a task that outlives the socket that asked (once per question).

        ``while_waiting``: the conversation waits for a person; the answer is computed quietly
        (no typing indicator, no deltas) and stored only if the policy finds it confident enough
        (:func:`bot.handoff.machine.bot_answered`), so a doubtful answer is never half-shown.
        """
        if self.closing or any(
            task.get_name() == f"answer:{conversation_id}:{question_seq}"
            for task in self.answer_tasks
        ):
            return
        task = asyncio.create_task(
            self._answer(conversation_id, question_seq, question, while_waiting),
            name=f"answer:{conversation_id}:{question_seq}",
        )
        self.answer_tasks.add(task)
        task.add_done_callback(self.answer_tasks.discard)

    def start_chosen_answer(
        self, conversation_id: str, question_seq: int, question: str, article: Source
    ) -> None:
        """Answer ``question`` from the ``article`` the customer picked among the bot's
        suggestions, as a normal bot answer (streamed, cited, stored), once per pick."""
        name = f"choice:{conversation_id}:{question_seq}:{article.article_id}"
        if self.closing or any(task.get_name() == name for task in self.answer_tasks):
            return
        task = asyncio.create_task(
            self._answer(conversation_id, question_seq, question, article=article), name=name
        )
        self.answer_tasks.add(task)
        task.add_done_callback(self.answer_tasks.discard)

    async def _answer(
        self,
        conversation_id: str,
        question_seq: int,
        question: str,
        while_waiting: bool = False,
        *,
        article: Source | None = None,
    ) -> None:
        # One answer at a time per conversation, so answers arrive in question order.
        logs.conversation_id.set(conversation_id)  # this task's own context (a copy)
        lock, users = self._answer_locks.get(conversation_id, (asyncio.Lock(), 0))
        self._answer_locks[conversation_id] = (lock, users + 1)
        try:
            with metrics.timed_answer():
                async with lock:
                    await self._answer_locked(
                        conversation_id, question_seq, question, while_waiting, article=article
                    )
        except Exception:
            log.exception("answering %s/%s failed", conversation_id, question_seq)
        finally:
            lock, users = self._answer_locks[conversation_id]
            if users <= 1:
                del self._answer_locks[conversation_id]
            else:
                self._answer_locks[conversation_id] = (lock, users - 1)

    async def _answer_locked(
        self,
        conversation_id: str,
        question_seq: int,
        question: str,
        while_waiting: bool = False,
        *,
        article: Source | None = None,
    ) -> None:
        owed = article is None and not while_waiting  # a question this process claimed
        limit = self.settings.chat_history_turns
        owner = self.owner

        def prepare(s: Session) -> tuple[list[Turn], str | None] | None:
            """The history and the conversation's locale, in one transaction: every round
            trip through the store's threads here delays the first delta (bench: one trip
            less per answer)."""
            if owed:
                still_owed, locale = store.owed_question(s, conversation_id, question_seq, owner)
                if not still_owed:
                    # Answered meanwhile (this task came from a late resend), or a person holds
                    # the conversation now: nothing is owed, so no mark may stay behind either.
                    store.settle_answer(s, conversation_id, question_seq, owner)
                    return None
            else:
                locale = store.conversation_locale(s, conversation_id)
            history = [
                Turn(role="user" if m.role == "customer" else "assistant", content=m.text)
                for m in store.recent_messages(
                    s, conversation_id, before_seq=question_seq, limit=limit
                )
            ]
            return history, locale

        # The answer capacity (an answer slot) is held while the answer is decided and computed,
        # not while it is stored: the store trip queues behind every other chat's commits, and a
        # slot waiting on it computes nothing (bench/chat_latency.py, docs/performance.md). The
        # conversation's answer lock, held by the caller, still orders its answers.
        async with self.answer_slots.slot(self.client_of(conversation_id), admit=False):
            computed = await self._compute_answer(
                conversation_id, question_seq, question, while_waiting, article, prepare
            )
        if computed is None:
            return
        result, streamed, locale = computed
        if result is None and while_waiting:
            return  # already in the queue: the person answers it
        if result is None:
            # No answerer, or it failed (part-way): the policy hands over, and what the customer
            # saw streaming stays the start of the stored text, so the deltas still add up.
            shown = "".join(streamed)
            result = policy.failed_answer(shown, locale)
            if streamed:
                tail = result.answer[len(shown) :]
                self.publish(conversation_id, [DeltaFrame(reply_to=question_seq, text=tail)])
        settings = self.settings
        final = result

        def store_answer(session: Session) -> list[dict[str, Any]]:
            if owed and not store.settle_answer(session, conversation_id, question_seq, owner):
                # Another task stored this question's answer first: store nothing.
                log.info("answer to %s/%s was stored already", conversation_id, question_seq)
                return []
            frames = handoff.bot_answered(
                session,
                conversation_id,
                final,
                reply_to=question_seq,
                settings=settings,
                while_waiting=while_waiting,
            )
            if frames is None:
                # A person took over while this answer was computed, or (while waiting) the
                # answer was not confident enough: the bot stays silent.
                log.info("dropped bot answer to %s/%s", conversation_id, question_seq)
                return []
            outcome = "escalated" if final.escalate else "answered"
            metrics.on_commit(session, lambda: metrics.ANSWERS.labels(outcome=outcome).inc())
            return frames

        stored = await self.database.run(store_answer)
        if stored:
            # Ids, numbers and the outcome only: the customer's words never reach an info line.
            outcome = "escalated" if final.escalate else "answered"
            log.info(
                "bot answer stored",
                extra={"reply_to": question_seq, "outcome": outcome, "reason": final.reason},
            )
        self.publish(conversation_id, stored)

    async def _compute_answer(
        self,
        conversation_id: str,
        question_seq: int,
        question: str,
        while_waiting: bool,
        article: Source | None,
        prepare: Callable[[Session], tuple[list[Turn], str | None] | None],
    ) -> tuple[AnswerResult | None, list[str], str | None] | None:
        """Under an answer slot: what the answer needs (``prepare``, one store trip; ``None``
        when nothing is owed any more), then the answer, streamed as deltas. Returns the
        result (``None`` when the answerer failed), the streamed pieces and the locale."""
        prepared = await self.database.run(prepare)
        if prepared is None:
            return None
        history, locale = prepared
        # Retrieval prefers articles in the customer's language (bot.knowledge.answerers).
        answer_locale.set(locale)
        if not while_waiting:
            self.publish(conversation_id, [TypingFrame(role="bot")])
        result: AnswerResult | None = None
        streamed: list[str] = []
        answerer = self.answerer
        try:
            if answerer is not None:
                if article is not None:
                    stream = answerer.stream_article(article, question, history)
                else:
                    stream = answerer.stream(question, history)
                async for item in stream:
                    if isinstance(item, AnswerResult):
                        result = item
                        continue
                    streamed.append(item)
                    if not while_waiting:
                        delta = DeltaFrame(reply_to=question_seq, text=item)
                        self.publish(conversation_id, [delta])
        except Exception:
            log.exception("answerer failed on %s/%s", conversation_id, question_seq)
            result = None
        return result, streamed, locale

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for answers in flight (tests, graceful shutdown)."""
        if self.answer_tasks:
            await asyncio.wait(list(self.answer_tasks), timeout=timeout)

    async def close(self, grace_s: float) -> None:
        """Shutting down: start no new answer, give those in flight ``grace_s`` to be stored,
        then cancel the rest. A cancelled answer's question keeps this process's mark, so the
        next process answers it (:meth:`answer_unanswered`); nothing is lost either way."""
        self.closing = True
        await self.drain(grace_s)
        unfinished = list(self.answer_tasks)
        for task in unfinished:
            task.cancel()
        if unfinished:
            log.warning(
                "%d answer(s) unfinished at shutdown; answered after restart", len(unfinished)
            )
            await asyncio.wait(unfinished, timeout=5.0)

    async def answer_unanswered(self, conversation_id: str | None = None) -> int:
        """Answer every question a stopped process left unanswered: of one conversation (on a
        resume), or of every conversation still resumable (at start-up). Each is claimed under
        its conversation's lock first, so no question is answered twice. Returns how many."""
        if self.closing:
            return 0
        owner = self.owner
        since = None
        if conversation_id is None:
            since = utcnow() - timedelta(hours=self.settings.chat_resume_window_hours)

        def claim(session: Session) -> list[tuple[str, int, str]]:
            if conversation_id is None:
                # The start-up sweep runs in one process at a time (bot.core.leases).
                if not try_job_lock(session, "answer-unanswered"):
                    return []
                store.release_unowed_answers(session)
            questions = store.take_over_unanswered(
                session, owner, conversation_id=conversation_id, active_since=since
            )
            return [(m.conversation_id, m.seq, m.text) for m in questions]

        claimed = await self.database.run(claim)
        for cid, seq, text in claimed:
            log.info("answering %s/%s, left unanswered by a stopped process", cid, seq)
            self.start_answer(cid, seq, text)
        return len(claimed)


# --- one socket -------------------------------------------------------------------------------


@dataclass
class _Opened:
    conversation_id: str
    resume_token: str
    state: str
    last_seq: int
    replay: list[MessageFrame]
    customer: Customer = ANONYMOUS  # who the hello spoke for (bot.people.sites)
    resumed: bool = False  # an existing conversation: by id, or a verified customer's latest


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
        self.key = uuid.uuid4().hex  # this connection's own rate-limit counters
        self.over_limit = False  # refused too often: closed with 1008 after the current frame
        self.conversation_id: str | None = None
        self.delivered: set[int] = set()
        self.replayed_through = 0
        self._send_lock = asyncio.Lock()
        self._stack = AsyncExitStack()
        self._forwarder: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None
        self._last_typing_relay = 0.0
        self.customer: Customer = ANONYMOUS

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
            if self.conversation_id is not None:
                self.service.customer_left(self.conversation_id)

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
        refused = self.service.gate.frame(self.key, self.client_ip)
        if refused is not None:
            await self.send(self._rate_limited(refused, None))
            return await self._still_open()
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
        return await self._still_open()

    async def _still_open(self) -> bool:
        """Close with 1008 a socket that keeps sending far over its limits (it has been told
        to wait and is not waiting); ``False`` when closed."""
        if not self.over_limit:
            return True
        log.info("closing a chat socket from %s: far over its rate limits", self.client_ip)
        self.service.gate.socket_closed_for_abuse(self.client_ip)
        await self.transport.close(CLOSE_POLICY_VIOLATION, "rate limit exceeded")
        return False

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
        elif isinstance(frame, ChooseFrame):
            await self.on_choose(frame)
        elif isinstance(frame, ClientTypingFrame):
            self.on_typing()
        elif isinstance(frame, ConversationsRequestFrame):
            await self.on_conversations()

    # -- hello / resume ---------------------------------------------------------------------

    async def on_hello(self, frame: HelloFrame) -> None:
        if self.conversation_id is not None:
            raise ProtocolError("already_open", "this socket already has a conversation")
        refused = self.service.gate.hello(self.client_ip)
        if refused is not None:
            await self.send(
                self._rate_limited(refused, None, "too many conversations opened; wait a moment")
            )
            return
        if frame.conversation_id is not None:
            opened = await self._resume(frame)
        else:
            opened = await self._create(frame)
        if opened is None:
            return
        self.conversation_id = opened.conversation_id
        logs.conversation_id.set(opened.conversation_id)  # on this socket's log lines from now
        self.service.note_client(opened.conversation_id, self.client_ip)
        await self.send(
            WelcomeFrame(
                conversation_id=opened.conversation_id,
                resume_token=opened.resume_token,
                state=opened.state,
                last_seq=opened.last_seq,
                resumed=opened.resumed,
                customer=customers.welcome_customer(opened.customer),
                email_replies=self.settings.smtp_url is not None,
                **self._availability(),
            )
        )
        self.customer = opened.customer
        self.service.customer_arrived(opened.conversation_id)
        # A verified customer's latest conversation is replayed whole: the client's last_seq
        # was about another conversation (or none).
        self.replayed_through = frame.last_seq if frame.conversation_id is not None else 0
        for message in opened.replay:
            await self.send(message)
            self.delivered.add(message.seq)
            self.replayed_through = max(self.replayed_through, message.seq)
        assert self._subscription is not None
        self._forwarder = asyncio.create_task(self._forward(self._subscription))
        if opened.resumed:
            # Any question of this conversation a stopped process left unanswered is answered
            # now (the answer arrives live on this socket): not only the last one, and without
            # waiting for the customer to resend it.
            await self.service.answer_unanswered(opened.conversation_id)

    async def _subscribe(self, conversation_id: str) -> None:
        self._subscription = await self._stack.enter_async_context(
            self.service.events.subscribe(conversation_topic(conversation_id))
        )

    async def _resume(self, frame: HelloFrame) -> _Opened | None:
        conversation_id = frame.conversation_id
        assert conversation_id is not None
        token = frame.resume_token or ""
        settings = self.settings
        origin = self.origin
        # Subscribe before reading the store: an event published in between is then seen live.
        inner = AsyncExitStack()
        self._subscription = await inner.enter_async_context(
            self.service.events.subscribe(conversation_topic(conversation_id))
        )

        def load(session: Session) -> _Opened | None:
            conversation = customers.verify_resume(session, settings, conversation_id, token)
            if conversation is None:
                return None
            customer = customers.identify(session, origin, frame.user)
            if not customers.may_resume(conversation, customer):
                return None
            # A signed token (another device, an e-mailed link) is renewed on every resume; the
            # conversation's own token stays what it is.
            given = token
            if is_conversation_token(token):
                given = customers.signed_token(settings, conversation_id)
            return self._opened(session, conversation, customer, frame, given)

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

    def _opened(
        self,
        session: Session,
        conversation: Conversation,
        customer: Customer,
        frame: HelloFrame,
        token: str,
        *,
        after_seq: int | None = None,
    ) -> _Opened:
        """An existing conversation opened on this socket: who is here, and what to replay."""
        customers.attach(session, conversation, customer, locale=frame.locale)
        after = frame.last_seq if after_seq is None else after_seq
        replay = [
            MessageFrame.from_message(message)
            for message in store.messages_after(session, conversation.id, after)
        ]
        return _Opened(
            conversation.id,
            token,
            conversation.state,
            conversation.last_seq,
            replay,
            customer=customer,
            resumed=True,
        )

    async def _create(self, frame: HelloFrame) -> _Opened:
        visitor = dict(frame.visitor) if frame.visitor else None
        origin = self.origin
        settings = self.settings

        def create(session: Session) -> _Opened:
            customer = customers.identify(session, origin, frame.user)
            latest = customers.latest_open(session, settings, customer)
            if latest is not None:
                # A verified customer, back on any device: their conversation goes on. Opened
                # for real below, once subscribed.
                return _Opened(latest.id, "", latest.state, 0, [], customer=customer, resumed=True)
            conversation, token = store.create_conversation(
                session,
                visitor=visitor,
                origin=origin,
                # Attached before the row's first write: one INSERT, no UPDATE after it.
                before_insert=lambda c: customers.attach(session, c, customer, locale=frame.locale),
            )
            return _Opened(conversation.id, token, "bot", 0, [], customer=customer)

        opened = await self.service.database.run(create)
        await self._subscribe(opened.conversation_id)
        if not opened.resumed:
            return opened

        def load(session: Session) -> _Opened:
            conversation = store.get_conversation(session, opened.conversation_id)
            assert conversation is not None
            token = customers.signed_token(settings, conversation.id)
            return self._opened(session, conversation, opened.customer, frame, token, after_seq=0)

        return await self.service.database.run(load)

    async def on_conversations(self) -> None:
        """A verified customer's earlier conversations (an empty list for anyone else)."""
        customer = self.customer
        settings = self.settings
        found = await self.service.database.run(
            lambda s: customers.summaries(s, settings, customer)
        )
        await self.send(ConversationsFrame(conversations=found))

    def _availability(self) -> dict[str, Any]:
        """``available``/``next_opening`` as of now, for ``welcome`` and ``state`` frames: the
        widget's header says whether people answer now, not a constant "Online". Added here,
        at send time, because it is a fact about the clock, not about the stored conversation."""
        now = policy.availability(self.settings, utcnow())
        fields: dict[str, Any] = {"available": now.available}
        if now.next_opening is not None:
            fields["next_opening"] = now.next_opening.isoformat()
        return fields

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
                elif kind == "state":
                    payload = {**payload, **self._availability()}
                await self.send(payload)
        except (Disconnected, asyncio.CancelledError):
            return
        except Exception:
            log.exception("relaying events to a chat socket failed")

    # -- customer frames --------------------------------------------------------------------

    def _rate_limited(
        self,
        refusal: Refusal,
        client_msg_id: str | None,
        detail: str = "too many messages; wait a moment and send it again",
    ) -> ErrorFrame:
        """The refusal to send, counted: a socket refused too often in a window is closed."""
        if not self.service.gate.refusal_strike(self.key):
            self.over_limit = True
        return ErrorFrame(
            code="rate_limited",
            detail=detail,
            client_msg_id=client_msg_id,
            retry_after_ms=refusal.retry_after_ms,
        )

    def _take_message_token(self, client_msg_id: str | None) -> ErrorFrame | None:
        refused = self.service.gate.message(self.key, self.client_ip)
        if refused is not None:
            return self._rate_limited(refused, client_msg_id)
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
        if refused is None and not self.service.answer_slots.room(self.client_ip):
            # Admission: this client already has a full queue of answers to wait for.
            refused = self._rate_limited(
                Refusal("answer_queue", ANSWER_QUEUE_RETRY_S),
                frame.client_msg_id,
                "your earlier questions are still being answered; send this again in a moment",
            )
        if refused is not None:
            await self.send(refused)
            return
        settings = self.settings
        self.service.note_client(conversation_id, self.client_ip)

        owner = self.service.owner

        def save(session: Session) -> tuple[MessageFrame, handoff.CustomerTurn]:
            # A new question the bot answers is stored with this process's mark on it; a
            # resend whose answer a stopped process left owed is taken over. Starting a task
            # for a resend is then harmless: start_answer skips a question with a task on it,
            # and a second task finds it answered and stores nothing (settle_answer).
            turn = handoff.customer_wrote(
                session,
                conversation_id,
                text,
                client_msg_id=frame.client_msg_id,
                settings=settings,
                answer_owner=owner,
            )
            if turn.bot_should_answer and not turn.created:
                store.take_over_answer(session, conversation_id, turn.message.seq, owner)
            if turn.created and contains_card_number(text):
                # Told right after the message, by the system: card numbers do not belong here.
                locale = store.conversation_locale(session, conversation_id)
                warning, _ = store.append_message(
                    session, conversation_id, role="system", text=translate("card_warning", locale)
                )
                turn.frames.append(handoff.message_frame(warning))
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
            if turn.bot_should_answer or turn.answer_while_waiting:
                self.service.start_answer(
                    conversation_id,
                    stored.seq,
                    text,
                    while_waiting=not turn.bot_should_answer,
                )

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

    async def on_choose(self, frame: ChooseFrame) -> None:
        """The customer's pick among a bot message's suggestions: the answer from that article,
        or ("none of these") the hand-over the state machine performs."""
        conversation_id = self.conversation_id
        assert conversation_id is not None
        refused = self._take_message_token(frame.client_msg_id)
        if refused is not None:
            await self.send(refused)
            return
        settings = self.settings

        def save(session: Session) -> handoff.Choice:
            return handoff.customer_chose(
                session, conversation_id, frame.seq, frame.article_id, settings=settings
            )

        try:
            choice = await self.service.database.run(save)
        except handoff.NotOffered as exc:
            raise ProtocolError(
                "unknown_choice", exc.detail, client_msg_id=frame.client_msg_id
            ) from None
        except handoff.HandoffError as exc:
            raise ProtocolError(
                "unknown_message", exc.detail, client_msg_id=frame.client_msg_id
            ) from None
        self.service.publish(conversation_id, choice.frames)
        if choice.bot_should_answer and choice.article is not None:
            self.service.start_chosen_answer(
                conversation_id, choice.reply_to, choice.question, choice.article
            )

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
    with metrics.open_socket("chat"):
        await connection.run()
