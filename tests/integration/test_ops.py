"""Operations: ``/readyz`` names what is not ready, ``/metrics`` moves with real chats, and
``log_format=json`` writes parseable lines with the conversation id and without the customer's
words. Over real sockets: a uvicorn server in-process, and ``supportbot serve``'s own
``run_server`` in a child process for the log format (it configures uvicorn's logging)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.core.db import make_engine
from bot.core.settings import Settings
from tests.helpers.child_server import ChildServer
from tests.helpers.live_server import (
    ORIGIN,
    LiveServer,
    ScriptedAnswerer,
    chat_connect,
    hello,
    is_bot_message,
    recv_until,
    send,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SECRET_WORDS = "zebracorn-parachute-7781"
"""A phrase only the customer typed: it must appear in no log line."""


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=15) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def readyz(server: LiveServer) -> tuple[int, dict[str, Any]]:
    code, body = get(f"http://127.0.0.1:{server.port}/readyz")
    data: dict[str, Any] = json.loads(body)
    return code, data


def samples(server: LiveServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    code, body = get(f"http://127.0.0.1:{server.port}/metrics")
    assert code == 200
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str):
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def answerer() -> ScriptedAnswerer:
    return ScriptedAnswerer(delay_s=0.01)


@pytest.fixture
def server(tmp_path: Path, answerer: ScriptedAnswerer) -> Iterator[LiveServer]:
    settings = Settings(  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        allowed_origins=[ORIGIN],
        business_hours="24/7",
        _env_file=None,
    )
    with LiveServer(settings, answerer) as live:
        warming = live.app.state.warming
        if warming is not None:  # an empty knowledge base warms up at once
            deadline = 60.0
            import time

            stop = time.monotonic() + deadline
            while not warming.done() and time.monotonic() < stop:
                time.sleep(0.05)
        yield live


class _StillWarming:
    def done(self) -> bool:
        return False


class _BrokenCollection:
    def count(self) -> int:
        raise ConnectionError("chroma server refused the connection")


def test_readyz_is_200_when_every_part_answers(server: LiveServer) -> None:
    code, body = readyz(server)
    assert code == 200, body
    assert body["status"] == "ready" and body["failing"] == []
    assert set(body["checks"]) >= {"database", "chroma", "warm_up"}


def test_readyz_names_warm_up_until_it_is_done(server: LiveServer) -> None:
    done = server.app.state.warming
    server.app.state.warming = _StillWarming()
    try:
        code, body = readyz(server)
        assert code == 503 and body["failing"] == ["warm_up"]
        assert body["checks"]["warm_up"] == "still running"
    finally:
        server.app.state.warming = done
    assert readyz(server)[0] == 200


def test_readyz_names_an_unreachable_database_and_recovers(server: LiveServer) -> None:
    ctx = server.ctx
    working = ctx.engine
    nowhere = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    ctx.engine = nowhere
    try:
        code, body = readyz(server)
        assert code == 503
        assert body["failing"] == ["database"]
        assert body["checks"]["database"] != "ok" and body["checks"]["chroma"] == "ok"
    finally:
        ctx.engine = working
        nowhere.dispose()
    code, body = readyz(server)
    assert code == 200, body


def test_readyz_names_a_failing_vector_store(server: LiveServer) -> None:
    ctx = server.ctx
    working = ctx.collection
    ctx.collection = _BrokenCollection()  # type: ignore[assignment]
    try:
        code, body = readyz(server)
        assert code == 503 and body["failing"] == ["chroma"]
        assert "refused" in body["checks"]["chroma"]
    finally:
        ctx.collection = working
    assert readyz(server)[0] == 200


def test_readyz_checks_redis_only_when_configured(server: LiveServer) -> None:
    settings = server.ctx.settings
    assert "redis" not in readyz(server)[1]["checks"]
    saved = settings.rate_limit_storage
    settings.rate_limit_storage = "redis://127.0.0.1:1"  # nothing listens on port 1
    try:
        code, body = readyz(server)
        assert code == 503 and body["failing"] == ["redis"]
        if redis_up():
            settings.rate_limit_storage = "redis://127.0.0.1:6379"
            code, body = readyz(server)
            assert code == 200 and body["checks"]["redis"] == "ok"
    finally:
        settings.rate_limit_storage = saved


async def test_metrics_move_with_a_real_answer_and_an_escalation(
    server: LiveServer, answerer: ScriptedAnswerer
) -> None:
    before = samples(server)
    async with chat_connect(server.url) as ws:
        await hello(ws)
        during = samples(server)
        assert value(during, "supportbot_open_sockets", socket="chat") == (
            value(before, "supportbot_open_sockets", socket="chat") + 1
        )
        await send(ws, {"type": "message", "client_msg_id": "q1", "text": "How do returns work?"})
        await recv_until(ws, is_bot_message)
        server.wait_idle()
        answered = samples(server)
        assert value(answered, "supportbot_answers_total", outcome="answered") == (
            value(before, "supportbot_answers_total", outcome="answered") + 1
        )
        assert value(answered, "supportbot_answer_latency_seconds_count") == (
            value(before, "supportbot_answer_latency_seconds_count") + 1
        )
        assert value(answered, "supportbot_answer_queue") == 0
        # The next answer is not confident: the bot hands over (low_confidence).
        answerer.escalate = True
        await send(ws, {"type": "message", "client_msg_id": "q2", "text": "And my odd case?"})
        await recv_until(ws, lambda f: f["type"] == "state" and f["state"] == "awaiting_human")
        server.wait_idle()
    after = samples(server)
    assert value(after, "supportbot_escalations_total", reason="low_confidence") == (
        value(before, "supportbot_escalations_total", reason="low_confidence") + 1
    )
    assert value(after, "supportbot_answers_total", outcome="escalated") == (
        value(before, "supportbot_answers_total", outcome="escalated") + 1
    )
    assert value(after, "supportbot_handoff_queue") == 1
    assert value(after, "supportbot_open_sockets", socket="chat") == value(
        before, "supportbot_open_sockets", socket="chat"
    )


async def test_a_customer_request_counts_as_an_escalation_by_its_reason(
    server: LiveServer,
) -> None:
    before = samples(server)
    async with chat_connect(server.url) as ws:
        await hello(ws)
        await send(ws, {"type": "handoff_request"})
        await recv_until(ws, lambda f: f["type"] == "state")
    after = samples(server)
    assert value(after, "supportbot_escalations_total", reason="customer_request") == (
        value(before, "supportbot_escalations_total", reason="customer_request") + 1
    )


async def test_json_logs_carry_the_conversation_id_and_never_the_customers_words(
    tmp_path: Path,
) -> None:
    child = ChildServer(
        tmp_path / "data", delay_s=0.01, pieces=2, env={"SUPPORTBOT_LOG_FORMAT": "json"}
    )
    with child:
        async with chat_connect(child.url, origin=None) as ws:
            welcome = await hello(ws)
            conversation_id = welcome["conversation_id"]
            await send(
                ws,
                {
                    "type": "message",
                    "client_msg_id": "q1",
                    "text": f"My parcel {SECRET_WORDS} never came, mail me at jo@example.com",
                },
            )
            await recv_until(ws, is_bot_message)
            await send(ws, {"type": "handoff_request"})
            await recv_until(ws, lambda f: f["type"] == "state")
    text = child.log_text()
    assert SECRET_WORDS not in text and "jo@example.com" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"ts", "level", "logger", "message"} <= set(entry) for entry in entries)
    ours = [entry for entry in entries if entry.get("conversation_id") == conversation_id]
    messages = {entry["message"] for entry in ours}
    assert "bot answer stored" in messages and "escalated to a person" in messages
    escalated = next(entry for entry in ours if entry["message"] == "escalated to a person")
    assert escalated["reason"] == "customer_request" and escalated["level"] == "info"
    assert any(entry["logger"].startswith("uvicorn") for entry in entries)


async def test_metrics_add_up_over_processes_sharing_a_multiprocess_dir(tmp_path: Path) -> None:
    """Two service processes with one PROMETHEUS_MULTIPROC_DIR: an answer given by one is
    counted in a scrape of the other (what a proxy in front of N processes needs)."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    first = ChildServer(tmp_path / "one" / "data", delay_s=0.01, pieces=2, env=env)
    second = ChildServer(tmp_path / "two" / "data", delay_s=0.01, pieces=2, env=env)

    def scrape(child: ChildServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        code, body = get(f"{child.base}/metrics")
        assert code == 200
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
        }

    with first, second:
        assert value(scrape(second), "supportbot_answers_total", outcome="answered") == 0
        async with chat_connect(first.url, origin=None) as ws:
            await hello(ws)
            assert value(scrape(second), "supportbot_open_sockets", socket="chat") == 1
            await send(ws, {"type": "message", "client_msg_id": "q1", "text": "Hi there?"})
            await recv_until(ws, is_bot_message)
        seen = scrape(second)
        assert value(seen, "supportbot_answers_total", outcome="answered") == 1
        assert value(seen, "supportbot_answer_latency_seconds_count") == 1
    assert list(shared.glob("*.db"))  # the processes wrote their values there
