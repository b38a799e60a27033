"""The chat's answers computed in a worker process (``answer_processes``), over real sockets.

The worker is a real spawned process with its own embedder and its own copy of the temp-dir
Chroma store; the service is a real uvicorn server. What must hold: the worker's answer is the
service's answer, streamed the same way; a publish is never answered from the knowledge base
before it (the worker is skipped until it has switched to the new copy); a killed worker loses
no answer and is replaced; stopping the service stops its workers and drops their copies.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.core.settings import Settings
from bot.knowledge.answer_process import AnswerWorkers
from bot.knowledge.library import ArticleIn
from ingest.embedder import Embedder
from tests.helpers.kb import write_kb
from tests.helpers.live_server import (
    ORIGIN,
    LiveServer,
    chat_connect,
    hello,
    is_bot_message,
    recv_until,
    send,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

WORKER_START_S = 180.0  # a spawned interpreter, torch, the model and a warm-up on 2 busy cores


def worker_settings(root: Path) -> Settings:
    (root / "kb").mkdir(parents=True, exist_ok=True)
    return Settings(  # type: ignore[call-arg]
        data_dir=root / "data",
        kb_path=root / "kb",
        allowed_origins=[ORIGIN],
        answer_processes=1,
        _env_file=None,
    )


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def workers_of(server: LiveServer) -> AnswerWorkers:
    workers = server.ctx.answer_workers
    assert workers is not None
    return workers


def worker(server: LiveServer) -> dict[str, Any]:
    return workers_of(server).status()[0]


def current(server: LiveServer) -> bool:
    """The worker is up and answers from the latest copy of the knowledge base."""
    line = worker(server)
    return bool(line["ready"]) and line["replica_generation"] == workers_of(server).generation


async def _ask(url: str, question: str) -> tuple[list[str], dict[str, Any]]:
    async with chat_connect(url) as ws:
        await hello(ws)
        await send(ws, {"type": "message", "client_msg_id": "q1", "text": question})
        frames = await recv_until(ws, is_bot_message, timeout=60)
    deltas = [f["text"] for f in frames if f["type"] == "delta"]
    return deltas, frames[-1]


def ask(server: LiveServer, question: str) -> tuple[list[str], dict[str, Any]]:
    return asyncio.run(_ask(server.url, question))


def scraped(server: LiveServer) -> dict[str, float]:
    """The answer-worker series of ``/metrics``, by series name with labels."""
    text = httpx.get(f"http://127.0.0.1:{server.port}/metrics").text
    return {
        name: float(value)
        for name, value in (line.rsplit(" ", 1) for line in text.splitlines())
        if name.startswith(("supportbot_answer_workers{", "supportbot_chat_answers_computed_total"))
    }


IN_WORKER = 'supportbot_chat_answers_computed_total{where="worker"}'
IN_SERVICE = 'supportbot_chat_answers_computed_total{where="service"}'


def cited(final: dict[str, Any]) -> list[str]:
    return [source["article_id"] for source in final["sources"]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[LiveServer]:
    settings = worker_settings(tmp_path_factory.mktemp("answer-process"))
    write_kb(settings, embedder)
    with LiveServer(settings) as live:
        wait_until(lambda: current(live), WORKER_START_S, "the answer worker did not start")
        yield live


def test_the_worker_computes_the_chat_answer_the_service_would_give(server: LiveServer) -> None:
    line = worker(server)
    assert line["pid"] not in (None, os.getpid())
    question = "How long do I have to return an item?"
    before = scraped(server)
    assert before['supportbot_answer_workers{state="ready"}'] == 1

    deltas, final = ask(server, question)

    expected = server.ctx.answerer.answer_sync(question)  # the service's own answerer
    assert not expected.escalate
    assert final["text"] == expected.answer == "".join(deltas)
    assert cited(final) == [s.article_id for s in expected.sources] == ["returns/return-policy"]
    assert worker(server)["answered"] == line["answered"] + 1
    after = scraped(server)
    assert after[IN_WORKER] == before.get(IN_WORKER, 0) + 1
    assert after.get(IN_SERVICE, 0) == before.get(IN_SERVICE, 0)


def test_a_publish_is_never_answered_from_the_copy_before_it(server: LiveServer) -> None:
    ctx = server.ctx
    article = ArticleIn(
        id="care/zorbonium-kettle",
        title="Descaling the Zorbonium kettle",
        body="Descale the Zorbonium kettle every three weeks with white vinegar.\n\n"
        "## Warranty\nThe Zorbonium kettle's warranty lasts seven years.",
    )
    generation = workers_of(server).generation
    paused = worker(server)["pid"]
    os.kill(paused, signal.SIGSTOP)  # the worker cannot switch to the new copy yet
    try:
        ctx.library.create(article, actor="admin@example.com")

        # A copy was handed out inside the publish; until the worker has switched to it, the
        # question is answered in the service, from the new knowledge base.
        assert workers_of(server).generation == generation + 1
        before = scraped(server)
        assert before['supportbot_answer_workers{state="behind"}'] == 1
        _, final = ask(server, "How often should I descale my Zorbonium kettle?")
        assert cited(final) == ["care/zorbonium-kettle"]
        assert "three weeks" in final["text"]
        assert scraped(server)[IN_SERVICE] == before.get(IN_SERVICE, 0) + 1
    finally:
        os.kill(paused, signal.SIGCONT)

    wait_until(lambda: current(server), 60, "the worker did not switch to the new copy")
    answered = worker(server)["answered"]
    _, final = ask(server, "How long is the warranty on the Zorbonium kettle?")
    assert cited(final) == ["care/zorbonium-kettle"]
    assert "seven years" in final["text"]
    assert worker(server)["answered"] == answered + 1
    # The worker dropped the copy it no longer reads: one copy per worker remains.
    assert len(list(workers_of(server).root.iterdir())) == 1


def test_a_killed_worker_loses_no_answer_and_is_replaced(server: LiveServer) -> None:
    killed = worker(server)["pid"]
    os.kill(killed, signal.SIGKILL)
    wait_until(lambda: not worker(server)["ready"], 30, "the service did not notice the exit")

    _, final = ask(server, "I forgot my password")  # answered in the service meanwhile
    assert cited(final) == ["account/reset-password"]

    wait_until(
        lambda: current(server) and worker(server)["pid"] != killed,
        WORKER_START_S,
        "no new worker",
    )
    answered = worker(server)["answered"]
    _, final = ask(server, "Do gift cards expire?")
    assert cited(final) == ["billing/gift-cards"]
    assert worker(server)["answered"] == answered + 1
    # The killed worker's copy went with it: one copy per worker remains.
    assert len(list(workers_of(server).root.iterdir())) == 1


def test_stopping_the_service_stops_its_workers_and_drops_their_copies(
    tmp_path: Path, embedder: Embedder
) -> None:
    settings = worker_settings(tmp_path)
    write_kb(settings, embedder)
    live = LiveServer(settings).start()
    try:
        wait_until(lambda: current(live), WORKER_START_S, "the answer worker did not start")
        workers = workers_of(live)
        processes = [w.process for w in workers.workers]
        assert workers.root.is_dir()
    finally:
        live.stop()
    assert all(p is not None and not p.is_alive() for p in processes)
    assert not workers.root.exists()


def test_workers_that_cannot_start_leave_the_answers_to_the_service(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_room(self: AnswerWorkers, worker: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(AnswerWorkers, "_copy_store", no_room)
    settings = worker_settings(tmp_path)
    write_kb(settings, embedder)
    with LiveServer(settings) as live:
        assert live.ctx.answer_workers is None  # given up, logged
        health = httpx.get(f"http://127.0.0.1:{live.port}/healthz").json()
        _, final = ask(live, "I forgot my password")
    assert cited(final) == ["account/reset-password"]
    assert health["status"] == "ok"
