"""Two real ``supportbot serve`` processes sharing PostgreSQL, a Chroma server and Redis: the
knowledge base across processes, and ``supportbot serve --workers``.

The knowledge base is indexed once by a local ``supportbot ingest`` straight into the shared
engines (Chroma over HTTP, the ledger and the generation in PostgreSQL); an article published
through the admin API of process A is then answered by B within 10 s (B's lexical side follows
the shared generation). B is ``supportbot serve --workers 2``: two processes on one port. A
computes its chat answers in an answer worker process that reads the Chroma server, and an
article published on B reaches a chat on A through it. A and B have their own data directories
and articles folders, as on two hosts.

Skipped, with the reason, when PostgreSQL or Redis is not reachable.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from bot.core.db import make_session_factory, transaction
from bot.people.users import create_user
from tests.helpers.child_server import REPO, free_port
from tests.helpers.kb import ARTICLES, to_markdown
from tests.helpers.live_server import chat_connect, hello, is_bot_message, recv_until, send
from tests.helpers.servers import chroma_server, fresh_database, redis_db, require_shared_engines

pytestmark = [pytest.mark.scale, pytest.mark.slow, pytest.mark.timeout(600)]

ANSWERED_WITHIN_S = 10.0


def supportbot() -> list[str]:
    return [sys.executable, "-m", "bot.cli"]


def base_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            "SUPPORTBOT_ALLOWED_ORIGINS": "*",
            "SUPPORTBOT_SHUTDOWN_GRACE_S": "2",
            "SUPPORTBOT_SECRET_KEY": "scale-test-secret-key-shared-by-every-process",
        }
    )
    env.update(extra)
    return env


class Serve:
    """``supportbot serve`` in a child process."""

    def __init__(self, root: Path, env: dict[str, str], *args: str) -> None:
        self.root = root
        self.port = free_port()
        self.kb = root / "kb"
        if not self.kb.exists():
            write_articles(self.kb)
        self.env = base_env(
            {
                **env,
                "SUPPORTBOT_DATA_DIR": str(root / "data"),
                "SUPPORTBOT_KB_PATH": str(self.kb),
                "SUPPORTBOT_HOST": "127.0.0.1",
                "SUPPORTBOT_PORT": str(self.port),
            }
        )
        self.log = root / "serve.log"
        self.process = subprocess.Popen(
            [*supportbot(), "serve", *args],
            env=self.env,
            cwd=REPO,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 240.0) -> Serve:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"serve did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


def write_articles(kb: Path) -> None:
    for article in ARTICLES[:4]:
        path = kb / f"{article.article_id}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_markdown(article))


@dataclass
class Cluster:
    a: Serve
    b: Serve
    env: dict[str, str]
    admin_token: str


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_shared_engines()
    root = tmp_path_factory.mktemp("knowledge")
    with (
        fresh_database() as database_url,
        redis_db() as redis_url,
        chroma_server(root / "chroma") as chroma_url,
    ):
        env = {
            "SUPPORTBOT_DATABASE_URL": database_url,
            "SUPPORTBOT_REDIS_URL": redis_url,
            "SUPPORTBOT_CHROMA_URL": chroma_url,
        }
        # A local ingest writes straight into the shared engines (no service owns them).
        kb = root / "a" / "kb"
        write_articles(kb)
        ingest = subprocess.run(
            [*supportbot(), "ingest", str(kb)],
            env=base_env({**env, "SUPPORTBOT_DATA_DIR": str(root / "ingest-data")}),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert ingest.returncode == 0, ingest.stdout + ingest.stderr
        engine = create_engine(database_url)
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT count(*) FROM ingest_articles")) == 4
            assert connection.scalar(text("SELECT generation FROM kb_generation")) == 1
        # A computes its chat answers in an answer worker reading the Chroma server; B's two
        # processes answer in-process (nine model loads on two cores would only slow the test).
        a = Serve(root / "a", {**env, "SUPPORTBOT_ANSWER_PROCESSES": "1"})
        b = Serve(root / "b", {**env, "SUPPORTBOT_ANSWER_PROCESSES": "0"}, "--workers", "2")
        try:
            a.wait_ready()
            b.wait_ready()
            with transaction(make_session_factory(engine)) as session:
                _, token = create_user(session, "admin@example.com", "admin")
            yield Cluster(a, b, env, token)
        finally:
            a.stop()
            b.stop()
            engine.dispose()
        for server in (a, b):
            assert "Traceback" not in server.log.read_text(), server.log.read_text()[-3000:]


def ask(server: Serve, question: str) -> dict[str, Any]:
    response = httpx.post(f"{server.base}/api/ask", json={"question": question}, timeout=60)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def publish(cluster: Cluster, server: Serve, **article: str) -> str:
    """Create an article through ``server``'s admin API; its id."""
    response = httpx.post(
        f"{server.base}/api/admin/articles",
        headers={"Authorization": f"Bearer {cluster.admin_token}"},
        json=article,
        timeout=120,
    )
    assert response.status_code == 201, response.text
    article_id: str = response.json()["id"]
    return article_id


def cites(body: dict[str, Any], article_id: str) -> bool:
    return bool(body.get("sources")) and body["sources"][0]["article_id"] == article_id


def test_both_processes_answer_from_the_shared_index(cluster: Cluster) -> None:
    article = ARTICLES[0]
    question = f"{article.title}?"
    for server in (cluster.a, cluster.b):
        assert cites(ask(server, question), article.article_id)


def test_published_on_a_is_answered_by_b_within_10_s(cluster: Cluster) -> None:
    word = f"Quibblex{uuid.uuid4().hex[:6]}"
    fact = f"The {word} blender must be descaled every nine days with lemon juice."
    article_id = publish(
        cluster,
        cluster.a,
        title=f"Descaling the {word} blender",
        body=f"{fact}\n\n## Care\nRinse the jug with warm water after every use.",
        url="https://help.example.com/blender",
    )
    started = time.monotonic()
    question = f"How often should I descale the {word} blender?"
    while True:
        body = ask(cluster.b, question)
        if cites(body, article_id):
            break
        assert time.monotonic() - started < ANSWERED_WITHIN_S, body
        time.sleep(0.3)


def chat(server: Serve, question: str) -> dict[str, Any]:
    """The bot's final message to ``question`` over ``/ws/chat``."""

    async def run() -> dict[str, Any]:
        async with chat_connect(f"ws://127.0.0.1:{server.port}/ws/chat") as ws:
            await hello(ws)
            await send(ws, {"type": "message", "client_msg_id": "q", "text": question})
            frames = await recv_until(ws, is_bot_message, timeout=60)
        return frames[-1]

    return asyncio.run(run())


def computed(server: Serve) -> dict[str, float]:
    """``supportbot_chat_answers_computed_total`` by where (worker, service)."""
    text = httpx.get(f"{server.base}/metrics", timeout=10).text
    prefix = 'supportbot_chat_answers_computed_total{where="'
    return {
        line[len(prefix) :].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


def test_published_on_b_is_answered_in_a_chat_on_a_by_its_answer_worker(
    cluster: Cluster,
) -> None:
    a = cluster.a
    deadline = time.monotonic() + 300
    while not httpx.get(f"{a.base}/healthz", timeout=5).json()["warm"]:  # the worker is up
        assert time.monotonic() < deadline, a.log.read_text()[-3000:]
        time.sleep(0.5)
    word = f"Zantrix{uuid.uuid4().hex[:6]}"
    article_id = publish(
        cluster,
        cluster.b,
        title=f"Charging the {word} scale",
        body=f"Charge the {word} kitchen scale for two hours before its first use.",
    )
    before = computed(a)
    asked, started = 0, time.monotonic()
    while True:  # A's worker follows the shared generation at its next question
        final = chat(a, f"How long should I charge the {word} kitchen scale?")
        asked += 1
        if cites(final, article_id):
            break
        assert time.monotonic() - started < ANSWERED_WITHIN_S, final
        time.sleep(0.3)
    after = computed(a)
    assert after["worker"] == before.get("worker", 0) + asked
    assert after.get("service", 0) == before.get("service", 0)


def test_workers_over_one_need_the_shared_engines(tmp_path: Path) -> None:
    result = subprocess.run(
        [*supportbot(), "serve", "--workers", "2"],
        env=base_env({"SUPPORTBOT_DATA_DIR": str(tmp_path / "data")}),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--workers 2 needs the shared engines" in result.stderr
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_serve_workers_runs_the_processes_on_one_port(cluster: Cluster) -> None:
    log = cluster.b.log.read_text()
    pids = {
        line.split("[")[1].split("]")[0]
        for line in log.splitlines()
        if "Started server process" in line
    }
    assert len(pids) == 2, log[-3000:]
    article = ARTICLES[1]
    for _ in range(4):  # whichever worker takes the request answers from the shared index
        assert cites(ask(cluster.b, f"{article.title}?"), article.article_id)
