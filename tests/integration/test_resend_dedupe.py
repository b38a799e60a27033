"""Defect 5 (issue #12): rapid same-id resends over three sockets got one question two bot
answers. The resend path restarted an answer whenever the question looked unanswered, and the
only dedupe was against tasks still running, so a resend that read "unanswered" just before the
answer was stored started a second answer just after the first task ended.

The fix is a durable claim on the question row (``messages.answer_owner``): set with the
question, taken over only from a stopped process, under the conversation's lock, and cleared by
the one transaction that stores the answer. These tests hold it on the store (SQLite and
PostgreSQL) and over real sockets against a real server process.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from websockets.asyncio.client import connect

from bot.conversations import store
from bot.core.db import make_engine, make_session_factory, transaction
from bot.core.migrate import upgrade_database
from bot.core.models import Conversation, Message
from tests.helpers.child_server import ChildServer
from tests.helpers.live_server import hello, postgres_schema, recv, send

ME, OTHER = "a" * 32, "b" * 32


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        sqlite = make_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
        upgrade_database(sqlite)
        yield sqlite
        sqlite.dispose()
    else:
        with postgres_schema() as url:
            pg = make_engine(url)
            upgrade_database(pg)
            yield pg
            pg.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


def question(sessions: sessionmaker[Session], owner: str | None = ME) -> str:
    """A conversation with one customer question (seq 1), marked for ``owner``."""
    with transaction(sessions) as session:
        conversation, _ = store.create_conversation(session)
        message, _ = store.append_message(
            session, conversation.id, role="customer", text="Where is my parcel?", client_msg_id="m"
        )
        if owner is not None:
            store.mark_answer_owed(session, message, owner)
        return conversation.id


def answer(sessions: sessionmaker[Session], conversation_id: str, owner: str) -> bool:
    """What an answer task does when it stores: settle the claim, then store (or not)."""
    with transaction(sessions) as session:
        if not store.settle_answer(session, conversation_id, 1, owner):
            return False
        store.append_message(session, conversation_id, role="bot", text="Here.", reply_to=1)
        return True


def test_resend_dedupe_a_question_is_stored_with_one_answer(
    sessions: sessionmaker[Session],
) -> None:
    conversation_id = question(sessions)
    with transaction(sessions) as session:
        assert store.is_unanswered(session, conversation_id, 1)
        # This process is on it: a resend does not start it again.
        assert not store.take_over_answer(session, conversation_id, 1, ME)
    assert answer(sessions, conversation_id, ME)
    assert not answer(sessions, conversation_id, ME)  # a second task stores nothing
    with transaction(sessions) as session:
        assert not store.is_unanswered(session, conversation_id, 1)
        assert not store.take_over_answer(session, conversation_id, 1, ME)
        assert not store.take_over_answer(session, conversation_id, 1, OTHER)
        bots = session.scalars(select(Message).where(Message.role == "bot")).all()
        assert len(bots) == 1


def test_resend_dedupe_a_stopped_process_question_is_taken_over_once(
    sessions: sessionmaker[Session],
) -> None:
    conversation_id = question(sessions, owner=OTHER)  # the process that stopped
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def race() -> None:
        barrier.wait()
        with transaction(sessions) as session:
            results.append(store.take_over_answer(session, conversation_id, 1, ME))

    threads = [threading.Thread(target=race) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    assert not answer(sessions, conversation_id, OTHER)  # the old owner may not store
    assert answer(sessions, conversation_id, ME)


def test_resend_dedupe_concurrent_answer_tasks_store_one_answer(
    sessions: sessionmaker[Session],
) -> None:
    conversation_id = question(sessions)
    stored: list[bool] = []
    barrier = threading.Barrier(4)

    def race() -> None:
        barrier.wait()
        stored.append(answer(sessions, conversation_id, ME))

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(stored) == [False, False, False, True]


def test_resend_dedupe_unmarked_questions_and_what_the_bot_no_longer_owes(
    sessions: sessionmaker[Session],
) -> None:
    """A question stored before the mark existed is owed while nothing answered or overtook
    it; a question in a conversation a person holds is not owed, and start-up clears its mark."""
    legacy = question(sessions, owner=None)
    overtaken = question(sessions, owner=None)
    handed_over = question(sessions, owner=OTHER)
    with transaction(sessions) as session:
        store.append_message(session, overtaken, role="system", text="Connecting you...")
        conversation = session.get(Conversation, handed_over)
        assert conversation is not None
        conversation.state = "awaiting_human"
    with transaction(sessions) as session:
        assert store.is_unanswered(session, legacy, 1)
        assert not store.is_unanswered(session, overtaken, 1)
        assert not store.is_unanswered(session, handed_over, 1)
        assert store.release_unowed_answers(session) == 1
        taken = store.take_over_unanswered(session, ME)
        assert [(m.conversation_id, m.seq) for m in taken] == [(legacy, 1)]
        assert store.take_over_unanswered(session, ME) == []


async def resend_round(url: str, index: int, resends_each: int) -> None:
    """One question, then ``resends_each`` resends of it on each of three sockets, 4 ms apart,
    while the answer is computed and stored."""
    first = await connect(url, open_timeout=10)
    welcome = await hello(first)
    others = []
    for _ in range(2):
        ws = await connect(url, open_timeout=10)
        await hello(
            ws,
            conversation_id=welcome["conversation_id"],
            resume_token=welcome["resume_token"],
            last_seq=0,
        )
        others.append(ws)
    sockets = [first, *others]
    frame = {"type": "message", "client_msg_id": f"m{index}", "text": f"Parcel {index} late?"}

    async def drain(ws: Any) -> None:
        try:
            while True:
                await recv(ws, 2.0)
        except (TimeoutError, Exception):
            return

    readers = [asyncio.create_task(drain(ws)) for ws in sockets]
    await send(first, frame)
    for _ in range(resends_each):
        for ws in sockets:
            await send(ws, frame)
        await asyncio.sleep(0.004)
    await asyncio.gather(*readers)
    for ws in sockets:
        await ws.close()


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_resend_dedupe_rapid_resends_over_three_sockets_get_one_answer(
    tmp_path: Path,
) -> None:
    server = ChildServer(tmp_path / "data", delay_s=0.03, pieces=3)
    with server:
        for index in range(8):
            await resend_round(server.url, index, resends_each=60)
        assert "Traceback" not in server.log_text()
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'supportbot.sqlite'}")
    try:
        with Session(engine) as session:
            messages = session.scalars(select(Message)).all()
    finally:
        engine.dispose()
    questions = [(m.conversation_id, m.seq) for m in messages if m.role == "customer"]
    answers = Counter((m.conversation_id, m.reply_to) for m in messages if m.role == "bot")
    assert len(questions) == 8
    assert {key: answers[key] for key in questions} == dict.fromkeys(questions, 1)
