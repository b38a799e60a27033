"""Two service processes sharing PostgreSQL and Redis: live conversations across them.

Each process is a real server in a child process (``tests.helpers.child_server``: what
``supportbot serve`` runs, with a slow scripted answerer so a test can act mid-answer), each with
its own data directory; they share only ``SUPPORTBOT_DATABASE_URL`` (a fresh PostgreSQL database)
and ``SUPPORTBOT_REDIS_URL`` (a Redis db number). One pair serves the whole module; the test that
stops a process runs last.

Skipped, with the reason, when PostgreSQL or Redis is not reachable.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.orm import Session
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bot.core.db import make_session_factory, transaction
from bot.core.leases import try_job_lock
from bot.core.models import Message
from bot.people.users import create_user
from tests.helpers.child_server import REPO, ChildServer
from tests.helpers.live_server import hello, recv, recv_until, send
from tests.helpers.servers import fresh_database, redis_db, require_shared_engines

pytestmark = [pytest.mark.scale, pytest.mark.slow, pytest.mark.timeout(300)]

HELLO_BURST = 3  # conversations per client IP at once, counted across both processes


@dataclass
class Cluster:
    a: ChildServer
    b: ChildServer
    database_url: str
    redis_url: str
    engine: Engine
    agent_token: str


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_shared_engines()
    root = tmp_path_factory.mktemp("cluster")
    with fresh_database() as database_url, redis_db() as redis_url:
        env = {
            "SUPPORTBOT_DATABASE_URL": database_url,
            "SUPPORTBOT_REDIS_URL": redis_url,
            "SUPPORTBOT_SECRET_KEY": "scale-test-secret-key-shared-by-both-processes",
            # Clients name their IP in X-Forwarded-For, so each test counts on its own.
            "SUPPORTBOT_TRUSTED_PROXIES": "127.0.0.1/32",
            "SUPPORTBOT_SHUTDOWN_GRACE_S": "1",
        }
        limits = {
            "SUPPORTBOT_CHAT_RATE_CONVERSATIONS_IP_BURST": str(HELLO_BURST),
            "SUPPORTBOT_CHAT_RATE_CONVERSATIONS_IP_PER_MINUTE": "1",
        }
        a = ChildServer(root / "a", delay_s=0.4, pieces=6, env={**env, **limits})
        b = ChildServer(root / "b", delay_s=0.4, pieces=6, env={**env, **limits})
        engine = create_engine(database_url)
        try:
            a.start()
            b.start()
            with transaction(make_session_factory(engine)) as session:
                _, token = create_user(session, "ana@example.com", "agent")
            yield Cluster(a, b, database_url, redis_url, engine, token)
        finally:
            for server in (a, b):
                if server.alive():
                    server.stop()
            engine.dispose()
        for server in (a, b):
            assert "Traceback" not in server.log_text(), server.log_text()[-3000:]


def client_ip() -> dict[str, str]:
    """A fresh client address, so each test counts against the per-IP limits on its own."""
    number = uuid.uuid4().int
    return {"X-Forwarded-For": f"10.{number % 250}.{(number >> 8) % 250}.{(number >> 16) % 250}"}


def chat(server: ChildServer, headers: dict[str, str]) -> Any:
    return connect(server.url, additional_headers=headers, open_timeout=10)


async def until(
    ws: ClientConnection, stop: Callable[[dict[str, Any]], bool], timeout: float = 20
) -> list[dict[str, Any]]:
    return await recv_until(ws, stop, timeout=timeout)


def is_bot(frame: dict[str, Any]) -> bool:
    return frame["type"] == "message" and frame["role"] == "bot"


def answers_per_question(engine: Engine, conversation_id: str) -> dict[int, int]:
    with Session(engine) as session:
        messages = list(
            session.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.seq)
            )
        )
    answers = Counter(m.reply_to for m in messages if m.role == "bot" and m.reply_to)
    return {m.seq: answers[m.seq] for m in messages if m.role == "customer"}


async def wait_answered(engine: Engine, conversation_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        counts = answers_per_question(engine, conversation_id)
        if (counts and all(counts.values())) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.2)


async def test_customer_on_a_and_agent_on_b_talk_live(cluster: Cluster) -> None:
    api = httpx.AsyncClient(
        base_url=cluster.b.base,
        headers={"Authorization": f"Bearer {cluster.agent_token}"},
        timeout=10,
    )
    agent_ws = connect(
        f"ws://127.0.0.1:{cluster.b.port}/ws/agent",
        additional_headers={"Authorization": f"Bearer {cluster.agent_token}"},
        open_timeout=10,
    )
    async with agent_ws as agent, chat(cluster.a, client_ip()) as customer, api:
        assert (await recv(agent))["type"] == "hello"
        welcome = await hello(customer)
        conversation_id = welcome["conversation_id"]

        # Escalated on A: the queue notice reaches the agent console on B.
        await send(customer, {"type": "message", "client_msg_id": "c1", "text": "A real person"})
        await until(customer, lambda f: f["type"] == "state" and f["state"] == "awaiting_human")
        queued = await until(agent, lambda f: f["type"] == "queue" and f["action"] == "added")
        assert queued[-1]["item"]["conversation_id"] == conversation_id

        # Claimed on B: the customer on A sees the state change.
        await send(agent, {"type": "watch", "conversation_id": conversation_id})
        await until(agent, lambda f: f["type"] == "watching")
        claimed = await api.post(f"/api/agent/conversations/{conversation_id}/claim")
        assert claimed.status_code == 200, claimed.text
        await until(customer, lambda f: f["type"] == "state" and f["state"] == "human")

        # Typing both ways, replies both ways.
        await send(agent, {"type": "typing", "conversation_id": conversation_id})
        await until(customer, lambda f: f["type"] == "typing" and f["role"] == "agent")
        reply = await api.post(
            f"/api/agent/conversations/{conversation_id}/messages", json={"text": "Hi from B"}
        )
        assert reply.status_code == 201, reply.text
        got = await until(customer, lambda f: f["type"] == "message" and f["role"] == "agent")
        assert got[-1]["text"] == "Hi from B"
        await send(customer, {"type": "typing"})
        await until(agent, lambda f: f["type"] == "typing" and f["role"] == "customer")
        await send(customer, {"type": "message", "client_msg_id": "c2", "text": "Hi from A"})
        seen = await until(agent, lambda f: f["type"] == "message" and f["role"] == "customer")
        assert seen[-1]["text"] == "Hi from A"


async def test_resume_on_the_other_process_loses_and_doubles_nothing(cluster: Cluster) -> None:
    headers = client_ip()
    async with chat(cluster.a, headers) as first:
        welcome = await hello(first)
        conversation_id = welcome["conversation_id"]
        await send(first, {"type": "message", "client_msg_id": "q1", "text": "First question"})
        await until(first, is_bot)
        # The second question: the socket drops after its answer started streaming on A.
        await send(first, {"type": "message", "client_msg_id": "q2", "text": "Second question"})
        await until(first, lambda f: f["type"] == "delta")

    async with chat(cluster.b, headers) as again:
        resumed = await hello(
            again,
            conversation_id=conversation_id,
            resume_token=welcome["resume_token"],
            last_seq=2,  # it saw the first answer (seq 2)
        )
        assert resumed["type"] == "welcome" and resumed["resumed"] is True, resumed
        frames = await until(again, lambda f: is_bot(f) and f["reply_to"] == 3, timeout=30)
        replayed = [f for f in frames if f["type"] == "message"]
        seqs = [f["seq"] for f in replayed]
        assert len(seqs) == len(set(seqs)) and min(seqs) > 2, replayed
        await send(again, {"type": "message", "client_msg_id": "q3", "text": "Third question"})
        await until(again, lambda f: is_bot(f) and f["reply_to"] == 5, timeout=30)
        # Resending q2 on B (the client never saw its ack) stores nothing new.
        await send(again, {"type": "message", "client_msg_id": "q2", "text": "Second question"})
        await until(again, lambda f: f["type"] == "ack" and f["client_msg_id"] == "q2")
        later = [f for f in await _quiet(again, 2.0) if is_bot(f)]
        assert later == []

    assert await wait_answered(cluster.engine, conversation_id) == {1: 1, 3: 1, 5: 1}


async def test_rate_limits_are_counted_across_processes(cluster: Cluster) -> None:
    headers = client_ip()
    opened: list[ClientConnection] = []
    try:
        for server in (cluster.a, cluster.b, cluster.a):
            ws = await chat(server, headers)
            opened.append(ws)
            assert (await hello(ws))["type"] == "welcome"
        ws = await chat(cluster.b, headers)  # the fourth from this IP: two on each process
        opened.append(ws)
        refused = await hello(ws)
        assert refused["type"] == "error" and refused["code"] == "rate_limited", refused
    finally:
        for ws in opened:
            await ws.close()


JOB_HOLDER = textwrap.dedent(
    """
    import sys, time
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session
    from bot.core.leases import try_job_lock

    engine = create_engine(sys.argv[1])
    with Session(engine) as session, session.begin():
        assert try_job_lock(session, "outcome-job")
        # Half the job's work, not committed yet.
        session.execute(text("UPDATE conversations SET state = 'resolved'"))
        print("holding", flush=True)
        time.sleep(120)
    """
)


async def test_a_job_runs_once_and_a_killed_run_leaves_nothing_half_done(
    cluster: Cluster,
) -> None:
    with Session(cluster.engine) as session:
        before: dict[str, str] = dict(
            session.execute(text("SELECT id, state FROM conversations")).tuples().all()
        )
    assert before, "the earlier tests opened conversations"
    holder = subprocess.Popen(
        [sys.executable, "-c", JOB_HOLDER, cluster.database_url],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"holding"
        # While it runs, no other process (this one, or the two servers) may run the job.
        with Session(cluster.engine) as session, session.begin():
            assert try_job_lock(session, "outcome-job") is False
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(30)
    # Killed mid-job: its work rolled back with its connection, and the lock went with it.
    deadline = time.monotonic() + 10
    while True:
        with Session(cluster.engine) as session, session.begin():
            if try_job_lock(session, "outcome-job"):
                break
        assert time.monotonic() < deadline, "the killed process's lock was not released"
        await asyncio.sleep(0.2)
    with Session(cluster.engine) as session:
        after: dict[str, str] = dict(
            session.execute(text("SELECT id, state FROM conversations")).tuples().all()
        )
    assert {k: after[k] for k in before} == before


async def test_sigterm_mid_answer_on_a_resumes_on_b_with_nothing_lost(cluster: Cluster) -> None:
    headers = client_ip()
    ws = await chat(cluster.a, headers)
    welcome = await hello(ws)
    conversation_id = welcome["conversation_id"]
    await send(ws, {"type": "message", "client_msg_id": "t1", "text": "Cut short on A"})
    await until(ws, lambda f: f["type"] == "delta")
    cluster.a.terminate()  # grace 1 s: the answer (about 3 s) does not finish on A
    seen: list[dict[str, Any]] = []
    try:
        while True:
            seen.append(await recv(ws, 30))
    except ConnectionClosed:
        pass
    assert cluster.a.wait(60) is not None
    seen_seqs = {f["seq"] for f in seen if f["type"] == "message"}

    async with chat(cluster.b, headers) as again:
        resumed = await hello(
            again,
            conversation_id=conversation_id,
            resume_token=welcome["resume_token"],
            last_seq=max(seen_seqs, default=0),
        )
        assert resumed["type"] == "welcome" and resumed["resumed"] is True, resumed
        if not any(is_bot(f) for f in seen):
            frames = await until(again, is_bot, timeout=30)
            assert [f["reply_to"] for f in frames if is_bot(f)] == [1]
    assert await wait_answered(cluster.engine, conversation_id) == {1: 1}


async def _quiet(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    try:
        while True:
            frames.append(await recv(ws, seconds))
    except TimeoutError:
        return frames
