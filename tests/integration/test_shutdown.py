"""Defect 1 (issue #12): SIGTERM mid-answer lost the answer. A real server in a child process
(``tests.helpers.child_server``: what ``supportbot serve`` runs, with a slow scripted answerer)
is stopped in the middle of answers, started again on the same data directory, and every
question must end up answered exactly once.

* SIGTERM within the grace: the answers in flight finish, reach their sockets live and are
  stored before the sockets close with 1012 (the documented code).
* SIGTERM past the grace, and SIGKILL: the answer is produced by the next process (its start-up
  job and the resume), for every question left, not only a conversation's last message.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bot.conversations.frames import CLOSE_SERVICE_RESTART
from bot.core.models import Message
from tests.helpers.child_server import ChildServer
from tests.helpers.live_server import hello, recv, send

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

QUESTIONS = [
    "How do I reset my password?",
    "Which payment methods do you accept?",
    "How can I track my order?",
]


def database_messages(data_dir: Path) -> list[Message]:
    engine = create_engine(f"sqlite:///{data_dir / 'supportbot.sqlite'}")
    try:
        with Session(engine) as session:
            return list(session.scalars(select(Message).order_by(Message.id)))
    finally:
        engine.dispose()


def answers_per_question(data_dir: Path) -> dict[tuple[str, int], int]:
    """For every customer message: how many bot answers reply to it."""
    messages = database_messages(data_dir)
    answers = Counter(
        (m.conversation_id, m.reply_to) for m in messages if m.role == "bot" and m.reply_to
    )
    return {
        (m.conversation_id, m.seq): answers[(m.conversation_id, m.seq)]
        for m in messages
        if m.role == "customer"
    }


def wait_all_answered(data_dir: Path, timeout: float = 30.0) -> dict[tuple[str, int], int]:
    deadline = time.monotonic() + timeout
    while True:
        counts = answers_per_question(data_dir)
        if (counts and all(counts.values())) or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


async def open_and_ask(url: str, question: str, client_msg_id: str = "q1") -> dict[str, Any]:
    """A conversation with one question, returned once its answer started streaming."""
    ws = await connect(url, open_timeout=10)
    welcome = await hello(ws)
    await send(ws, {"type": "message", "client_msg_id": client_msg_id, "text": question})
    while (await recv(ws, 15))["type"] != "delta":
        pass
    return {"ws": ws, "welcome": welcome}


async def until_closed(ws: ClientConnection, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every frame until the server closes the socket."""
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            frames.append(await recv(ws, deadline - time.monotonic()))
    except ConnectionClosed:
        return frames
    raise AssertionError("the socket was not closed")


async def resume(url: str, welcome: dict[str, Any]) -> ClientConnection:
    ws = await connect(url, open_timeout=10)
    answer = await hello(
        ws,
        conversation_id=welcome["conversation_id"],
        resume_token=welcome["resume_token"],
        last_seq=0,
    )
    assert answer["type"] == "welcome" and answer["resumed"] is True, answer
    return ws


async def bot_messages_within(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            frames.append(await recv(ws, deadline - time.monotonic()))
    except TimeoutError:
        pass
    return [f for f in frames if f["type"] == "message" and f["role"] == "bot"]


async def test_sigterm_mid_answer_answers_are_finished_stored_and_sockets_close_1012(
    tmp_path: Path,
) -> None:
    server = ChildServer(tmp_path / "data", delay_s=0.4, env={"SUPPORTBOT_SHUTDOWN_GRACE_S": "20"})
    with server:
        opened = [await open_and_ask(server.url, question) for question in QUESTIONS]
        server.terminate()
        for conversation in opened:
            frames = await until_closed(conversation["ws"])
            bots = [f for f in frames if f["type"] == "message" and f["role"] == "bot"]
            assert len(bots) == 1 and bots[0]["reply_to"] == 1, frames  # delivered live
            assert conversation["ws"].close_code == CLOSE_SERVICE_RESTART
        assert server.wait(60) is not None
        assert "Traceback" not in server.log_text()
    assert set(answers_per_question(tmp_path / "data").values()) == {1}

    with server:  # restart + resume: the stored answer is replayed, nothing is added
        for conversation in opened:
            ws = await resume(server.url, conversation["welcome"])
            bots = await bot_messages_within(ws, 1.5)
            assert [(b["seq"], b["reply_to"]) for b in bots] == [(2, 1)]
            await ws.close()
    assert set(answers_per_question(tmp_path / "data").values()) == {1}


async def test_sigterm_past_the_grace_answers_after_restart_and_resume(tmp_path: Path) -> None:
    server = ChildServer(tmp_path / "data", delay_s=1.5, env={"SUPPORTBOT_SHUTDOWN_GRACE_S": "0"})
    with server:
        opened = [await open_and_ask(server.url, question) for question in QUESTIONS[:2]]
        server.terminate()
        for conversation in opened:
            frames = await until_closed(conversation["ws"])
            assert not [f for f in frames if f["type"] == "message"], frames
            assert conversation["ws"].close_code == CLOSE_SERVICE_RESTART
        server.wait(60)
    assert set(answers_per_question(tmp_path / "data").values()) == {0}  # not finished...

    server.delay_s = 0.05
    with server:  # ...answered by the next process, and seen on resume
        for conversation in opened:
            ws = await resume(server.url, conversation["welcome"])
            bots = await bot_messages_within(ws, 3.0)
            assert [(b["seq"], b["reply_to"]) for b in bots] == [(2, 1)]
            await ws.close()
    assert set(answers_per_question(tmp_path / "data").values()) == {1}
    assert all(m.answer_owner is None for m in database_messages(tmp_path / "data"))


async def test_sigkill_mid_answer_every_question_answered_once_after_restart(
    tmp_path: Path,
) -> None:
    """Not only a conversation's last message: a question waiting behind another one is
    answered too, by the start-up job (no client needed), each exactly once."""
    server = ChildServer(tmp_path / "data", delay_s=1.0)
    with server:
        first = await open_and_ask(server.url, QUESTIONS[0], "a")
        ws = first["ws"]
        await send(ws, {"type": "message", "client_msg_id": "b", "text": QUESTIONS[1]})
        while (frame := await recv(ws))["type"] != "ack":
            pass
        assert frame["seq"] == 2
        other = await open_and_ask(server.url, QUESTIONS[2])
        server.signal(signal.SIGKILL)
        server.wait(30)
    assert set(answers_per_question(tmp_path / "data").values()) == {0}

    server.delay_s = 0.05
    with server:
        counts = wait_all_answered(tmp_path / "data")
        assert len(counts) == 3 and set(counts.values()) == {1}, counts
        ws = await resume(server.url, first["welcome"])
        # A late resend of the first question changes nothing.
        await send(ws, {"type": "message", "client_msg_id": "a", "text": QUESTIONS[0]})
        frames = await bot_messages_within(ws, 1.5)
        assert sorted(f["reply_to"] for f in frames) == [1, 2]
        await ws.close()
        ws = await resume(server.url, other["welcome"])
        assert [f["reply_to"] for f in await bot_messages_within(ws, 1.0)] == [1]
        await ws.close()
    assert set(answers_per_question(tmp_path / "data").values()) == {1}


async def test_sigterm_keeps_messages_sent_during_the_drain(tmp_path: Path) -> None:
    """A message that arrives while answers drain is stored and acked; the next process
    answers it (no new answer starts during a shutdown)."""
    server = ChildServer(tmp_path / "data", delay_s=0.5, env={"SUPPORTBOT_SHUTDOWN_GRACE_S": "20"})
    with server:
        first = await open_and_ask(server.url, QUESTIONS[0])
        second = await open_and_ask(server.url, QUESTIONS[1])
        server.terminate()
        await asyncio.sleep(0.3)
        ws = second["ws"]
        await send(ws, {"type": "message", "client_msg_id": "late", "text": QUESTIONS[2]})
        frames = await until_closed(ws)
        acks = [f for f in frames if f["type"] == "ack"]
        assert acks and acks[0]["seq"] == 2, frames
        await until_closed(first["ws"])
        server.wait(60)
    server.delay_s = 0.05
    with server:
        counts = wait_all_answered(tmp_path / "data")
        assert len(counts) == 3 and set(counts.values()) == {1}, counts
