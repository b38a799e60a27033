"""Live knowledge: one writer per data directory, and retrieval that moves with it.

The regression this guards: with ``supportbot serve`` running, a ``supportbot ingest`` from
another process opened the same embedded Chroma store, and every question afterwards failed
(``Error finding id``) until a restart. Now the service owns its data directory: the CLI hands
the ingest to it, and the service's dense and lexical retrieval move to the new generation
together. The CLI runs here as a real child process against a real uvicorn server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import bot.knowledge.retrieval as retrieval
from bot.core.settings import Settings, get_settings
from bot.knowledge.publishing import KnowledgeWriter
from bot.knowledge.retrieval import Retriever
from ingest.embedder import Embedder
from ingest.locking import (
    IngestLockedError,
    ServiceRunningError,
    offline_claim,
    read_service_info,
    service_lock,
)
from ingest.pipeline import index_paths
from tests.conftest import REPO_ROOT
from tests.helpers.kb import ARTICLES, KBArticle, open_kb, to_markdown, write_kb
from tests.helpers.live_server import LiveServer

pytestmark = [pytest.mark.timeout(300)]

NEW_ARTICLE = KBArticle(
    "care/zorbonium-kettle",
    "Descaling the Zorbonium kettle",
    """Descale the Zorbonium kettle every three weeks with white vinegar.

## Warranty
The Zorbonium kettle's warranty lasts seven years from the date of purchase.""",
    "https://help.example.com/care/zorbonium-kettle",
)
NEW_QUESTION = "How often should I descale my Zorbonium kettle?"
QUESTIONS = [
    "How long do I have to return an item?",
    "How much does express delivery cost?",
    "I forgot my password",
    "Do gift cards expire?",
    NEW_QUESTION,
]


def write_files(kb: Path, articles: list[KBArticle]) -> None:
    for article in articles:
        path = kb / f"{article.article_id}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_markdown(article))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cli_env(settings: Settings) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SUPPORTBOT_")}
    env.update(
        SUPPORTBOT_DATA_DIR=str(settings.data_dir),
        SUPPORTBOT_KB_PATH=str(settings.kb_path),
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(REPO_ROOT),
    )
    return env


@pytest.fixture
def served(tmp_path: Path, embedder: Embedder) -> Iterator[LiveServer]:
    """A service on a small knowledge base of files; ``settings.port`` is its real port, so
    ``service.json`` says where it listens."""
    kb = tmp_path / "kb"
    write_files(kb, ARTICLES)
    # Twenty askers from one address for as long as an ingest takes: the rate limits (per IP
    # and in all) are not what this file tests.
    settings = Settings(
        data_dir=tmp_path / "data",
        kb_path=kb,
        ask_rate_ip_burst=10_000,
        ask_rate_ip_per_minute=100_000,
        ask_rate_global_burst=10_000,
        ask_rate_global_per_minute=100_000,
        answer_queue_per_ip=64,
        _env_file=None,
    )  # type: ignore[call-arg]
    index_paths([kb], settings, embedder)
    server = LiveServer(settings)
    settings.port = server.port
    with server:
        yield server


def cites(body: dict[str, Any], article_id: str) -> bool:
    return any(source["article_id"] == article_id for source in body["sources"])


@pytest.mark.slow
def test_an_ingest_from_another_process_while_serving_breaks_nothing(served: LiveServer) -> None:
    settings = served.settings
    base = f"http://127.0.0.1:{served.port}"
    info = read_service_info(settings.data_dir)
    assert info is not None and info.url == base and info.pid == os.getpid()
    assert (settings.data_dir / "service.json").stat().st_mode & 0o777 == 0o600
    write_files(settings.kb_path, [NEW_ARTICLE])

    statuses: list[int] = []
    stop = threading.Event()

    def keep_asking(worker: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            n = worker
            while True:  # at least one question each, then until the ingest is done
                response = client.post("/api/ask", json={"question": QUESTIONS[n % len(QUESTIONS)]})
                statuses.append(response.status_code)
                n += 1
                if stop.is_set():
                    return

    with ThreadPoolExecutor(max_workers=20) as pool:
        askers = [pool.submit(keep_asking, worker) for worker in range(20)]
        child = subprocess.run(
            [sys.executable, "-m", "bot.cli", "ingest", str(settings.kb_path)],
            env=cli_env(settings),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=240,
        )
        finished = time.monotonic()
        stop.set()
        for asker in askers:
            asker.result()

    assert child.returncode == 0, child.stdout + child.stderr
    assert "it runs the ingest" in child.stdout, child.stdout
    assert "Ingest summary" in child.stdout and "Loaded 6 article(s)" in child.stdout
    assert "Loading embedder" not in child.stdout  # the service embedded, not the CLI
    assert len(statuses) >= 20
    assert [s for s in statuses if s >= 500] == [], statuses
    assert set(statuses) == {200}

    # Answers after the ingest finished cite the new article (a deadline, but the hand-off
    # returns only after the service moved to the new generation: it should be at once).
    with httpx.Client(base_url=base, timeout=60) as client:
        deadline = finished + 10
        body = client.post("/api/ask", json={"question": NEW_QUESTION}).json()
        while not cites(body, NEW_ARTICLE.article_id) and time.monotonic() < deadline:
            time.sleep(0.2)
            body = client.post("/api/ask", json={"question": NEW_QUESTION}).json()
        latency = time.monotonic() - finished
        assert cites(body, NEW_ARTICLE.article_id), body
        print(f"\nhand-off ingest -> answerable: {latency:.2f} s after the CLI exited")
        with ThreadPoolExecutor(max_workers=20) as pool:
            again = list(
                pool.map(
                    lambda _: client.post("/api/ask", json={"question": NEW_QUESTION}), range(20)
                )
            )
    assert all(r.status_code == 200 and cites(r.json(), NEW_ARTICLE.article_id) for r in again)
    assert "three weeks" in again[0].json()["answer"]


@pytest.mark.slow
def test_a_second_service_on_the_same_data_directory_refuses(served: LiveServer) -> None:
    settings = served.settings
    child = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve", "--port", str(free_port())],
        env=cli_env(settings),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 1, child.stdout + child.stderr
    assert "already serving the data directory" in child.stderr
    assert f"pid {os.getpid()}, http://127.0.0.1:{served.port}" in child.stderr
    # In-process too (the lifespan's own check, for a race past the CLI's).
    with (
        pytest.raises(ServiceRunningError, match="already serving"),
        service_lock(settings.data_dir, "http://127.0.0.1:1", wait_s=0),
    ):
        pass


def test_an_ingest_refuses_when_the_service_cannot_be_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli import app as cli

    data_dir = tmp_path / "data"
    kb = tmp_path / "kb"
    write_files(kb, ARTICLES[:1])
    monkeypatch.setenv("SUPPORTBOT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("SUPPORTBOT_KB_PATH", str(kb))
    get_settings.cache_clear()
    try:
        with service_lock(data_dir, f"http://127.0.0.1:{free_port()}", wait_s=0):
            started = time.monotonic()
            result = CliRunner().invoke(cli, ["ingest", "--wait", "1"])
            elapsed = time.monotonic() - started
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert "ingest refused" in output and "does not answer" in output
    assert "stop it and run the ingest again" in output
    assert elapsed < 10
    assert not (data_dir / "chroma").exists(), "the CLI must not open the store itself"


def test_a_starting_service_waits_for_a_running_local_ingest(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    claimed = threading.Event()
    release = threading.Event()

    def local_ingest() -> None:
        with offline_claim(data_dir):
            claimed.set()
            release.wait(10)

    worker = threading.Thread(target=local_ingest)
    worker.start()
    assert claimed.wait(10)
    with (
        pytest.raises(IngestLockedError, match="still writing"),
        service_lock(data_dir, "http://127.0.0.1:1", wait_s=0.3),
    ):
        pass
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    with service_lock(data_dir, "http://127.0.0.1:1", wait_s=10) as info:
        assert time.monotonic() - started >= 0.2
        assert read_service_info(data_dir) == info
        with pytest.raises(ServiceRunningError), offline_claim(data_dir):
            pass
    worker.join()
    assert read_service_info(data_dir) is None  # removed when the service stops
    with offline_claim(data_dir):
        pass


# --- retrieval in step ------------------------------------------------------------------------


def test_internal_near_duplicates_do_not_crowd_out_the_public_article(
    tmp_path: Path, embedder: Embedder
) -> None:
    settings = Settings(data_dir=tmp_path / "data", retrieval_dense_k=5, _env_file=None)  # type: ignore[call-arg]
    public = KBArticle(
        "care/descaling",
        "Descaling a kettle",
        "Descale a kettle every month with citric acid to remove limescale.",
    )
    internal = [
        KBArticle(
            f"internal/descaling-{i}",
            "Descaling a kettle (agents)",
            f"Descale a kettle every month with citric acid to remove limescale. Case {i}.",
            visibility="internal",
        )
        for i in range(30)
    ]
    write_kb(settings, embedder, [public, *internal])
    retriever = Retriever(open_kb(settings, embedder), embedder, settings)
    hits = retriever.search("how do I descale my kettle with citric acid", mode="dense")
    assert [hit.article_id for hit in hits] == ["care/descaling"]
    hybrid = retriever.search("how do I descale my kettle with citric acid")
    assert hybrid[0].article_id == "care/descaling"
    assert all(hit.article_id == "care/descaling" for hit in hybrid)


def test_the_lexical_index_is_read_in_pages(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    write_kb(settings, embedder)
    collection = open_kb(settings, embedder)
    pages: list[tuple[int | None, int | None]] = []
    original = collection.get

    def recording_get(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("where") is not None:
            pages.append((kwargs.get("limit"), kwargs.get("offset")))
        return original(*args, **kwargs)

    monkeypatch.setattr(retrieval, "INDEX_PAGE", 2)
    monkeypatch.setattr(collection, "get", recording_get)
    retriever = Retriever(collection, embedder, settings)
    titles = retriever.article_titles()
    assert set(titles) == {a.article_id for a in ARTICLES if a.visibility == "public"}
    assert pages[:3] == [(2, 0), (2, 2), (2, 4)]
    assert "internal/agent-macros" not in titles


def test_a_failing_vector_store_raises_instead_of_finding_nothing(
    tmp_path: Path, embedder: Embedder
) -> None:
    """An error must reach the caller (the chat reports it as an error), never look like
    "the knowledge base has nothing on that"."""
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    write_kb(settings, embedder)

    class Broken:
        def __init__(self, real: Any) -> None:
            self.real = real

        def count(self) -> int:
            return int(self.real.count())

        def get(self, *args: Any, **kwargs: Any) -> Any:
            return self.real.get(*args, **kwargs)

        def query(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("Error finding id")

    retriever = Retriever(Broken(open_kb(settings, embedder)), embedder, settings)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="Error finding id"):
        retriever.search("How long do refunds take?")


def test_queries_wait_for_a_write_and_then_see_both_sides_at_once(
    tmp_path: Path, embedder: Embedder
) -> None:
    from ingest.loaders import parse_markdown
    from ingest.pipeline import index_articles

    settings = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    write_kb(settings, embedder)
    retriever = Retriever(open_kb(settings, embedder), embedder, settings)
    question = "how often to descale the zorbonium kettle"
    assert all(hit.article_id != NEW_ARTICLE.article_id for hit in retriever.search(question))
    before = retriever.generation
    article = parse_markdown(to_markdown(NEW_ARTICLE), default_id=NEW_ARTICLE.article_id)
    results: list[list[Any]] = []
    inside = threading.Event()
    proceed = threading.Event()

    def publish() -> None:
        with retriever.publishing():
            index_articles([article], settings, embedder)
            inside.set()
            proceed.wait(10)  # Chroma holds the new chunks; the lexical side has not moved yet

    writing = threading.Thread(target=publish)
    writing.start()
    assert inside.wait(60)
    asking = threading.Thread(target=lambda: results.append(retriever.search(question)))
    asking.start()
    time.sleep(0.5)
    assert asking.is_alive(), "a query ran between the Chroma write and the lexical swap"
    proceed.set()
    writing.join(10)
    asking.join(30)
    hits = results[0]
    assert hits[0].article_id == NEW_ARTICLE.article_id
    assert hits[0].bm25 > 0 and hits[0].dense_similarity > 0.5, "both sides saw the new article"
    assert retriever.generation == before + 1

    # The service's writer publishes through the same gate, one generation per change.
    writer = KnowledgeWriter(settings, embedder, retriever)
    with writer.writing() as kb:
        assert kb.delete(NEW_ARTICLE.article_id)
    assert retriever.generation == before + 2
    assert all(hit.article_id != NEW_ARTICLE.article_id for hit in retriever.search(question))
