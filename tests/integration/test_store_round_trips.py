"""A chat turn's store work, trimmed without losing a promise (bench/chat_latency.py).

Profiling the service at 20 concurrent chats (docs/performance.md, throughput) showed the store
holding the GIL for about a third of the server's Python time. These pin what was cut: no ping
per SQLite checkout, one UPDATE of the conversation per customer message, a new conversation
inserted whole, one presence trip for the sockets that close together, and an answer slot
that is free again before the answer's store trip, while every answer is still stored once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from bot.conversations import store
from bot.conversations.events import EventBus
from bot.core.clock import aware, utcnow
from bot.core.db import DatabaseWorkers, make_engine, make_session_factory, transaction
from bot.core.migrate import upgrade_database
from bot.core.models import Conversation, Message
from bot.core.settings import Settings
from bot.handoff import machine as handoff
from bot.live.customer import ChatService
from tests.helpers.live_server import ScriptedAnswerer

T = TypeVar("T")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    sqlite = make_engine(f"sqlite:///{tmp_path / 'trips.sqlite'}")
    upgrade_database(sqlite)
    yield sqlite
    sqlite.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


def statements(engine: Engine) -> list[str]:
    """Every SQL statement the engine runs from now on (upper-cased, one line each)."""
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _note(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        seen.append(" ".join(sql.split()).upper())

    return seen


def test_sqlite_connections_are_not_pinged_on_checkout(engine: Engine) -> None:
    assert engine.pool._pre_ping is False  # a file handle cannot go stale
    assert make_engine("postgresql+psycopg://u@localhost/db").pool._pre_ping is True


def test_a_customer_message_updates_its_conversation_once(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    with transaction(sessions) as session:
        conversation, _ = store.create_conversation(session)
        cid = conversation.id
    seen = statements(engine)
    with transaction(sessions) as session:
        message, created = store.append_message(
            session, cid, role="customer", text="hi", client_msg_id="m1"
        )
        seq, at = message.seq, message.created_at
    assert created and seq == 1
    updates = [s for s in seen if s.startswith("UPDATE CONVERSATIONS")]
    assert len(updates) == 1, updates  # the number and the customer's time, together
    with transaction(sessions) as session:
        row = session.get(Conversation, cid)
        assert row is not None
        assert (row.last_seq, aware(row.last_customer_at or utcnow())) == (1, aware(at))
        # A bot message numbers the conversation without touching the customer's time.
        store.append_message(session, cid, role="bot", text="hello", reply_to=1)
    with transaction(sessions) as session:
        row = session.get(Conversation, cid)
        assert row is not None
        assert (row.last_seq, aware(row.last_customer_at or utcnow())) == (2, aware(at))


def test_a_new_conversation_is_inserted_whole(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    seen = statements(engine)

    def fill(conversation: Conversation) -> None:
        conversation.locale = "de"

    with transaction(sessions) as session:
        conversation, _ = store.create_conversation(session, before_insert=fill)
        cid = conversation.id
    assert not [s for s in seen if s.startswith("UPDATE CONVERSATIONS")], seen
    with transaction(sessions) as session:
        row = session.get(Conversation, cid)
        assert row is not None and row.locale == "de"
        assert [e.kind for e in store.events_of(session, cid)] == ["created"]


class CountingWorkers(DatabaseWorkers):
    """Notes each store trip's work (by name) and the answers running when it started."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        super().__init__(sessions)
        self.trips: list[tuple[str, int]] = []
        self.service: ChatService | None = None
        self.gate: asyncio.Event | None = None

    async def run(self, work: Callable[[Session], T]) -> T:
        running = self.service.answer_slots.running if self.service is not None else -1
        self.trips.append((getattr(work, "__name__", "?"), running))
        if self.gate is not None:
            await self.gate.wait()
        return await super().run(work)


def make_service(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> tuple[ChatService, CountingWorkers]:
    workers = CountingWorkers(sessions)
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)
    answerer = ScriptedAnswerer()
    service = ChatService(settings, workers, EventBus(), answerer)  # type: ignore[arg-type]
    workers.service = service
    return service, workers


async def test_sockets_closing_together_are_recorded_in_one_trip(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    service, workers = make_service(tmp_path, sessions)
    with transaction(sessions) as session:
        ids = [store.create_conversation(session)[0].id for _ in range(5)]
    workers.gate = asyncio.Event()
    for cid in ids:
        service.customer_arrived(cid)
    service.customer_left(ids[0])  # starts a trip, held at the gate
    await asyncio.sleep(0)
    for cid in ids[1:]:
        service.customer_left(cid)  # these wait for the next trip
    workers.gate.set()
    while service._presence_tasks:
        await asyncio.sleep(0.01)
    assert len(workers.trips) == 2, workers.trips
    with transaction(sessions) as session:
        query = select(Conversation.customer_seen_at).where(Conversation.id.in_(ids))
        seen = session.scalars(query).all()
        assert len(seen) == 5
        assert all(at is not None for at in seen)
    workers.close()


async def test_the_answer_slot_is_free_before_the_answer_is_stored(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    service, workers = make_service(tmp_path, sessions)
    with transaction(sessions) as session:
        cid = store.create_conversation(session)[0].id
        question, _ = store.append_message(
            session, cid, role="customer", text="Can I return it?", client_msg_id="q1"
        )
        store.mark_answer_owed(session, question, service.owner)
    service.start_answer(cid, 1, "Can I return it?")
    service.start_answer(cid, 1, "Can I return it?")  # a resend's task: skipped
    await service.drain()
    trips = dict(workers.trips)
    assert trips["prepare"] == 1  # decided and computed under a slot
    assert trips["store_answer"] == 0  # stored after the slot went back
    assert service.answer_slots.pending() == 0
    with transaction(sessions) as session:
        rows = session.scalars(select(Message).where(Message.conversation_id == cid)).all()
        answers = [m for m in rows if m.role == "bot"]
        assert [(m.reply_to, m.text) for m in answers] == [(1, "Returns are free within 30 days.")]
        assert rows[0].answer_owner is None  # nothing left owed
        assert not store.is_unanswered(session, cid, 1)
    workers.close()


def ask(
    sessions: sessionmaker[Session], tmp_path: Path, cid: str, text: str
) -> handoff.CustomerTurn:
    """One customer question through the state machine, as the chat socket stores it (with
    this process's answer mark), in a transaction of its own."""
    with transaction(sessions) as session:
        return handoff.customer_wrote(
            session,
            cid,
            text,
            client_msg_id="q1",
            settings=Settings(data_dir=tmp_path / "data", _env_file=None),
            answer_owner="process-a",
        )


def test_a_question_is_stored_with_its_answer_mark_in_one_insert(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    """The common turn: a question the bot answers. Its number, its row with this process's
    mark, the conversation read under the lock the numbering already took: no UPDATE of the
    message for the mark, no lock statement of its own (the numbering UPDATE holds it)."""
    with transaction(sessions) as session:
        cid = store.create_conversation(session)[0].id
    seen = statements(engine)
    turn = ask(sessions, tmp_path, cid, "Can I return a pan?")
    assert turn.created and turn.bot_should_answer
    writes = [s.split(" SET")[0].split(" (")[0] for s in seen if not s.startswith("SELECT")]
    assert writes == ["UPDATE CONVERSATIONS", "INSERT INTO MESSAGES"], seen
    with transaction(sessions) as session:
        assert store.owed_question(session, cid, 1, "process-a") == (True, None)
        assert store.owed_question(session, cid, 1, "process-b")[0] is False


def test_a_question_for_a_person_keeps_no_answer_mark(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    with transaction(sessions) as session:
        cid = store.create_conversation(session)[0].id
    turn = ask(sessions, tmp_path, cid, "I want to talk to a real person")
    assert turn.created and not turn.bot_should_answer
    with transaction(sessions) as session:
        row = session.scalars(select(Message).where(Message.conversation_id == cid)).first()
        assert row is not None and row.answer_owner is None
        assert not store.is_unanswered(session, cid, 1)


def test_a_held_lock_ends_with_its_transaction(sessions: sessionmaker[Session]) -> None:
    """What lets a turn skip a lock statement is tied to the transaction that took the lock:
    a session that commits and goes on must lock again."""
    with transaction(sessions) as session:
        cid = store.create_conversation(session)[0].id
    with sessions() as session:
        with session.begin():
            assert not store.holds_lock(session, cid)
            store.next_seq(session, cid)
            assert store.holds_lock(session, cid)
            assert not store.holds_lock(session, "another-conversation")
        with session.begin():
            assert not store.holds_lock(session, cid)


def test_the_state_read_as_a_value_sees_changes_pending_in_the_session(
    sessions: sessionmaker[Session],
) -> None:
    """A statement on the table does not autoflush: the state read writes what the session
    still holds first, so a caller that changed the conversation decides on its own change."""
    with transaction(sessions) as session:
        cid = store.create_conversation(session)[0].id
    with transaction(sessions) as session:
        conversation = session.get(Conversation, cid)
        assert conversation is not None
        conversation.state = "awaiting_human"
        assert store.conversation_state(session, cid) == "awaiting_human"
        assert store.conversation_state(session, "no-such-conversation") is None
