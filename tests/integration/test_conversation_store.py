"""The conversation store on SQLite and on PostgreSQL: numbering, idempotence, resume, feedback.

PostgreSQL runs in a throw-away schema per test (``search_path``), so parallel runs and other
suites sharing the ``test`` database never see each other's rows.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.conversations import store
from bot.core.clock import utcnow
from bot.core.db import make_engine, make_session_factory, transaction
from bot.core.migrate import upgrade_database
from bot.core.models import CsatRating, Feedback, Message
from tests.helpers.live_server import postgres_schema


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


def new_conversation(sessions: sessionmaker[Session]) -> tuple[str, str]:
    with transaction(sessions) as session:
        conversation, token = store.create_conversation(session, origin="https://shop.example")
        return conversation.id, token


def test_messages_are_numbered_and_resends_are_idempotent(sessions: sessionmaker[Session]) -> None:
    conversation_id, _ = new_conversation(sessions)
    with transaction(sessions) as session:
        first, created = store.append_message(
            session, conversation_id, role="customer", text="hi", client_msg_id="c1"
        )
        assert (first.seq, created) == (1, True)
    with transaction(sessions) as session:
        again, created = store.append_message(
            session, conversation_id, role="customer", text="hi (resent)", client_msg_id="c1"
        )
        assert (again.seq, again.text, created) == (1, "hi", False)
        bot, _ = store.append_message(
            session, conversation_id, role="bot", text="hello", reply_to=1, sources=[]
        )
        assert bot.seq == 2
    with sessions() as session:
        replay = store.messages_after(session, conversation_id, 0)
        assert [(m.seq, m.role) for m in replay] == [(1, "customer"), (2, "bot")]
        assert [m.seq for m in store.messages_after(session, conversation_id, 1)] == [2]
        conversation = store.get_conversation(session, conversation_id)
        assert conversation is not None and conversation.last_seq == 2


def test_same_client_msg_id_in_two_conversations_is_two_messages(
    sessions: sessionmaker[Session],
) -> None:
    a, _ = new_conversation(sessions)
    b, _ = new_conversation(sessions)
    with transaction(sessions) as session:
        assert store.append_message(session, a, role="customer", text="x", client_msg_id="1")[1]
        assert store.append_message(session, b, role="customer", text="x", client_msg_id="1")[1]


def test_concurrent_writers_never_share_a_seq(sessions: sessionmaker[Session]) -> None:
    conversation_id, _ = new_conversation(sessions)
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for i in range(10):
                with transaction(sessions) as session:
                    store.append_message(
                        session,
                        conversation_id,
                        role="customer",
                        text=f"{worker}-{i}",
                        client_msg_id=f"{worker}-{i}",
                    )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with sessions() as session:
        seqs = session.scalars(
            select(Message.seq).where(Message.conversation_id == conversation_id)
        ).all()
    assert sorted(seqs) == list(range(1, 41))


def test_resume_needs_the_right_token_within_the_window(sessions: sessionmaker[Session]) -> None:
    conversation_id, token = new_conversation(sessions)
    other_id, other_token = new_conversation(sessions)
    window = timedelta(hours=24)
    with sessions() as session:
        assert store.verify_resume(session, conversation_id, token, max_age=window) is not None
        assert store.verify_resume(session, conversation_id, other_token, max_age=window) is None
        assert store.verify_resume(session, "no-such-id", token, max_age=window) is None
        later = utcnow() + timedelta(hours=23, minutes=59)
        assert store.verify_resume(session, conversation_id, token, max_age=window, now=later)
        too_late = utcnow() + timedelta(hours=24, minutes=1)
        assert (
            store.verify_resume(session, conversation_id, token, max_age=window, now=too_late)
            is None
        )
    # Activity moves the window: a message now keeps it resumable for another 24 hours.
    with transaction(sessions) as session:
        store.append_message(session, other_id, role="customer", text="still here")
    with sessions() as session:
        assert store.verify_resume(session, other_id, other_token, max_age=window)


def test_recent_messages_give_the_answerer_its_context(sessions: sessionmaker[Session]) -> None:
    conversation_id, _ = new_conversation(sessions)
    with transaction(sessions) as session:
        for i in range(6):
            store.append_message(session, conversation_id, role="customer", text=f"m{i + 1}")
    with sessions() as session:
        recent = store.recent_messages(session, conversation_id, before_seq=6, limit=3)
        assert [m.text for m in recent] == ["m3", "m4", "m5"]
        assert store.recent_messages(session, conversation_id, before_seq=6, limit=0) == []


def test_feedback_only_on_bot_messages_and_last_vote_counts(
    sessions: sessionmaker[Session],
) -> None:
    conversation_id, _ = new_conversation(sessions)
    with transaction(sessions) as session:
        store.append_message(session, conversation_id, role="customer", text="q")
        store.append_message(session, conversation_id, role="bot", text="a", reply_to=1)
    with transaction(sessions) as session:
        assert store.record_feedback(session, conversation_id, 1, True) is None  # customer msg
        assert store.record_feedback(session, conversation_id, 9, True) is None  # no such msg
        assert store.record_feedback(session, conversation_id, 2, False) is not None
    with transaction(sessions) as session:
        assert store.record_feedback(session, conversation_id, 2, True) is not None
        store.record_csat(session, conversation_id, 5, "great")
        with pytest.raises(ValueError):
            store.record_csat(session, conversation_id, 0)
    with sessions() as session:
        votes = session.scalars(select(Feedback.helpful)).all()
        assert votes == [True]
        assert session.scalar(select(func.count()).select_from(CsatRating)) == 1
        kinds = [event.kind for event in store.events_of(session, conversation_id)]
        assert kinds == ["created", "feedback", "feedback", "csat"]
