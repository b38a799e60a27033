"""Ingestion into a real temp-dir Chroma: incremental, scoped, crash-safe, one writer at a time.

Every test writes its own small knowledge base into ``tmp_path``; the real embedder is the
session fixture. Two checks need a second process: a fresh process must find what we indexed,
and a process killed with SIGKILL mid-ingest must leave a store the next run repairs. One child
process does both (it searches, then starts an ingest and is killed), so the model loads once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chromadb.api.models.Collection import Collection
from typer.testing import CliRunner

from bot.core.settings import Settings, get_settings
from ingest.chunking import chunk_article, chunk_id
from ingest.embedder import Embedder
from ingest.ledger import Ledger
from ingest.loaders import Article, load_folder
from ingest.locking import IngestLockedError, writer_lock
from ingest.pipeline import (
    delete_article,
    effective_max_tokens,
    index_articles,
    index_paths,
    read_generation,
)
from ingest.store import EmbedderMismatchError, open_client, open_collection
from tests.conftest import REPO_ROOT

CANARY = "The purple walrus delivers parcels to lighthouse keepers every second Tuesday."

ARTICLES: dict[str, str] = {
    "account/reset-password.md": """---
id: account/reset-password
title: Resetting your password
url: https://help.example/reset
tags: [account, password]
---
# Resetting your password

Forgot your password? You can set a new one from the sign-in page.

## Send yourself a reset link

Select "Forgot password", enter your email address and open the link we send. The link works
for one hour. Check your spam folder if it does not arrive within five minutes.

## The link has expired

Request a new link. Only the newest link works; older ones stop working at once.
""",
    "billing/refunds.md": """---
title: How refunds work
tags: billing, refunds
---
## When we issue the refund

We refund within three business days of your return reaching our warehouse. Cancelled orders
are refunded at once. Damaged items are refunded within two business days of your report.

## How long it takes to reach you

Card refunds take up to five business days. PayPal refunds appear within a day. Bank transfers
take up to seven business days. Gift card payments come back as a new gift card.
""",
    "shipping/express.md": f"""---
title: Express delivery
---
Express delivery arrives the next business day when you order before 2 pm.

## Special couriers

{CANARY} Other couriers keep to the normal schedule.
""",
    "faq/gift-cards.html": """<html><head><title>Gift cards</title></head><body>
<nav>Home | FAQ</nav><main><h1>Gift cards</h1><p>Gift cards never expire and work online
and in the app.</p><h2>Balance</h2><p>See your balance under Account, Wallet.</p></main>
</body></html>""",
    "contact.txt": "Write to help@example.com. We answer within one business day.\n",
}


def write_kb(root: Path, files: dict[str, str] = ARTICLES) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def small_chunk_settings(root: Path, kb: Path) -> Settings:
    """Small chunks, so that these short articles have several and stay quick to embed."""
    return Settings(  # type: ignore[call-arg]
        data_dir=root / "data",
        kb_path=kb,
        chunk_max_tokens=64,
        chunk_overlap_tokens=12,
        _env_file=None,
    )


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    return write_kb(tmp_path / "kb")


@pytest.fixture
def kb_settings(tmp_path: Path, kb: Path) -> Settings:
    return small_chunk_settings(tmp_path, kb)


def stored(settings: Settings, embedder: Embedder) -> dict[str, tuple[str, dict[str, Any]]]:
    """Everything in the collection: id -> (document, metadata)."""
    collection = open_collection(open_client(settings), settings.collection, embedder)
    got = collection.get(include=["documents", "metadatas"])  # type: ignore[list-item]
    return {
        chunk: (document, dict(metadata))
        for chunk, document, metadata in zip(
            got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True
        )
    }


def assert_store_is_exactly_the_ledger(settings: Settings, embedder: Embedder) -> None:
    """Chroma holds the ledger's chunk ids and nothing else, with the current files' text."""
    ledger = Ledger(settings.ledger_url)
    rows = ledger.rows()
    ledger.close()
    assert not any(row.pending for row in rows.values())
    expected = {chunk_id(r.article_id, i) for r in rows.values() for i in range(r.chunk_count)}
    chunks = stored(settings, embedder)
    assert set(chunks) == expected
    positions = [(meta["article_id"], meta["chunk_index"]) for _, meta in chunks.values()]
    assert len(positions) == len(set(positions)), "duplicate chunks"
    max_tokens = effective_max_tokens(settings, embedder)
    overlap = settings.chunk_overlap_tokens
    for article in load_folder(settings.kb_path).articles:
        want = chunk_article(article, embedder.count_tokens, max_tokens, overlap)
        assert rows[article.id].chunk_count == len(want)
        assert [chunks[c.id][0] for c in want] == [c.text for c in want], article.id


@pytest.fixture
def chroma_writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every write call made to any Chroma collection during the test."""
    calls: list[str] = []
    for name in ("add", "upsert", "update", "delete"):
        original = getattr(Collection, name)

        def spy(self: Collection, *args: Any, _n: str = name, _f: Any = original, **kw: Any) -> Any:
            calls.append(_n)
            return _f(self, *args, **kw)

        monkeypatch.setattr(Collection, name, spy)
    return calls


# --- the basic cycle ---------------------------------------------------------------------------


def test_first_ingest_indexes_every_format_with_the_metadata_contract(
    kb_settings: Settings, embedder: Embedder
) -> None:
    report = index_paths(None, kb_settings, embedder)
    assert report.ok and not report.skipped
    assert sorted(report.added) == [
        "account/reset-password",
        "billing/refunds",
        "contact",
        "faq/gift-cards",
        "shipping/express",
    ]
    chunks = stored(kb_settings, embedder)
    assert report.chunks_written == report.chunks_total == len(chunks)
    reset = [meta for _, meta in chunks.values() if meta["article_id"] == "account/reset-password"]
    assert {meta["url"] for meta in reset} == {"https://help.example/reset"}
    assert {meta["tags"] for meta in reset} == {"account,password"}
    for key in ("source", "title", "heading", "chunk_index", "visibility"):
        assert all(key in meta for _, meta in chunks.values())
    assert read_generation(kb_settings) == report.generation == 1
    assert_store_is_exactly_the_ledger(kb_settings, embedder)


def test_a_rerun_on_unchanged_articles_writes_nothing(
    kb_settings: Settings, embedder: Embedder, chroma_writes: list[str]
) -> None:
    index_paths(None, kb_settings, embedder)
    chroma_writes.clear()
    report = index_paths(None, kb_settings, embedder)
    assert chroma_writes == []
    assert len(report.unchanged) == 5
    assert report.added == report.updated == report.deleted == []
    assert report.chunks_written == report.chunks_deleted == 0
    assert read_generation(kb_settings) == 1  # nothing changed, nothing to reload


def test_embedding_runs_outside_the_write_gate_and_every_write_inside_it(
    kb_settings: Settings, kb: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service holds its questions off inside the gate: an ingest must make them wait for its
    writes only, never for the model (seconds to minutes on a large ingest)."""
    from contextlib import contextmanager

    from chromadb.api.models.Collection import Collection as ChromaCollection

    inside = False
    log: list[tuple[str, bool]] = []

    @contextmanager
    def gate() -> Iterator[None]:
        nonlocal inside
        inside = True
        try:
            yield
        finally:
            inside = False

    real_encode = Embedder.encode
    real_upsert, real_delete = ChromaCollection.upsert, ChromaCollection.delete

    def encode(self: Embedder, texts: Any) -> Any:
        log.append(("encode", inside))
        return real_encode(self, texts)

    def upsert(self: ChromaCollection, *args: Any, **kwargs: Any) -> None:
        log.append(("upsert", inside))
        real_upsert(self, *args, **kwargs)

    def delete(self: ChromaCollection, *args: Any, **kwargs: Any) -> None:
        log.append(("delete", inside))
        real_delete(self, *args, **kwargs)

    monkeypatch.setattr(Embedder, "encode", encode)
    monkeypatch.setattr(ChromaCollection, "upsert", upsert)
    monkeypatch.setattr(ChromaCollection, "delete", delete)
    index_paths(None, kb_settings, embedder, write_gate=gate)
    (kb / "billing" / "refunds.md").write_text("---\ntitle: Refunds\n---\nOne business day.\n")
    (kb / "account" / "reset-password.md").unlink()
    report = index_paths(None, kb_settings, embedder, write_gate=gate)
    assert report.updated == ["billing/refunds"] and report.deleted == ["account/reset-password"]
    kinds = {kind for kind, _ in log}
    assert {"encode", "upsert", "delete"} <= kinds
    assert all(not gated for kind, gated in log if kind == "encode")
    assert all(gated for kind, gated in log if kind != "encode")


def test_an_edit_replaces_exactly_that_articles_chunks(
    kb_settings: Settings, kb: Path, embedder: Embedder
) -> None:
    index_paths(None, kb_settings, embedder)
    before = stored(kb_settings, embedder)
    (kb / "billing" / "refunds.md").write_text(
        "---\ntitle: How refunds work\n---\nRefunds now take one business day, whatever you paid "
        "with.\n"
    )
    report = index_paths(None, kb_settings, embedder)
    assert report.updated == ["billing/refunds"] and len(report.unchanged) == 4
    after = stored(kb_settings, embedder)
    refunds_before = {k for k, (_, m) in before.items() if m["article_id"] == "billing/refunds"}
    assert len(refunds_before) > 1  # the edit shrinks it to one chunk: the rest must go
    assert [(k, d) for k, (d, m) in after.items() if m["article_id"] == "billing/refunds"] == [
        (
            "billing/refunds#0",
            "How refunds work\n\nRefunds now take one business day, whatever you paid with.",
        )
    ]
    others_before = {k: v for k, v in before.items() if k not in refunds_before}
    others_after = {k: v for k, v in after.items() if not k.startswith("billing/refunds#")}
    assert others_after == others_before
    assert report.chunks_deleted == len(refunds_before) - 1
    assert read_generation(kb_settings) == 2
    assert_store_is_exactly_the_ledger(kb_settings, embedder)


def test_a_deleted_file_disappears_but_only_from_its_own_folder(
    tmp_path: Path, kb_settings: Settings, kb: Path, embedder: Embedder
) -> None:
    other = write_kb(tmp_path / "other", {"returns.md": "# Returns\n\nReturns are free."})
    index_paths(None, kb_settings, embedder)
    index_paths([other], kb_settings, embedder)
    (kb / "contact.txt").unlink()

    report = index_paths([other], kb_settings, embedder)  # another folder: nothing to delete
    assert report.deleted == [] and report.unchanged == ["returns"]
    assert "contact#0" in stored(kb_settings, embedder)

    report = index_paths(None, kb_settings, embedder)
    assert report.deleted == ["contact"]
    chunks = stored(kb_settings, embedder)
    assert not any(meta["article_id"] == "contact" for _, meta in chunks.values())
    assert "returns#0" in chunks


def test_a_bad_file_is_reported_and_its_indexed_version_kept(
    kb_settings: Settings, kb: Path, embedder: Embedder
) -> None:
    index_paths(None, kb_settings, embedder)
    (kb / "contact.txt").write_bytes(b"\xff\xfe broken")
    (kb / "new.md").write_text("---\ntitle: [broken\n---\ntext")
    (kb / "later.md").write_text("# Later\n\nA good new article.")
    report = index_paths(None, kb_settings, embedder)
    reasons = {Path(p.path).name: p.reason for p in report.failed}
    assert set(reasons) == {"contact.txt", "new.md"}
    assert "UTF-8" in reasons["contact.txt"] and "YAML" in reasons["new.md"]
    assert report.added == ["later"] and report.deleted == []
    assert "contact#0" in stored(kb_settings, embedder)


def test_a_subfolder_of_the_kb_keeps_the_kbs_ids(
    kb_settings: Settings, kb: Path, embedder: Embedder
) -> None:
    index_paths(None, kb_settings, embedder)
    report = index_paths([kb / "billing"], kb_settings, embedder)
    assert report.unchanged == ["billing/refunds"] and report.added == []


def test_published_articles_can_be_indexed_and_deleted_through_the_api(
    kb_settings: Settings, embedder: Embedder
) -> None:
    index_paths(None, kb_settings, embedder)
    article = Article(id="news/holidays", title="Holiday hours", body="Closed on 25 December.")
    assert index_articles([article], kb_settings, embedder).added == ["news/holidays"]
    assert index_articles([article], kb_settings, embedder).unchanged == ["news/holidays"]
    # a folder ingest does not delete what was published through the API
    assert index_paths(None, kb_settings, embedder).deleted == []
    assert "news/holidays#0" in stored(kb_settings, embedder)
    generation = read_generation(kb_settings)
    assert delete_article("news/holidays", kb_settings, embedder) is True
    assert "news/holidays#0" not in stored(kb_settings, embedder)
    assert read_generation(kb_settings) == generation + 1
    assert delete_article("news/holidays", kb_settings, embedder) is False
    assert_store_is_exactly_the_ledger(kb_settings, embedder)


# --- a fresh process, and a process killed mid-ingest --------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import chromadb.api.models.Collection as chroma_collection
    import ingest.pipeline as pipeline
    from bot.core.settings import Settings
    from ingest.embedder import get_embedder
    from ingest.store import open_client, open_collection

    settings = Settings(data_dir=Path(sys.argv[1]), kb_path=Path(sys.argv[2]), _env_file=None,
                        chunk_max_tokens=64, chunk_overlap_tokens=12)
    embedder = get_embedder(settings.embedding_model)

    # 1. A fresh process finds the canary by similarity.
    collection = open_collection(open_client(settings), settings.collection, embedder)
    found = collection.query(
        query_embeddings=[embedder.embed_query(sys.argv[3])], n_results=1,
        include=["documents", "metadatas"],
    )
    print(json.dumps({"document": found["documents"][0][0],
                      "article_id": found["metadatas"][0][0]["article_id"]}), flush=True)

    # 2. Start an ingest of the edited KB and die after the second Chroma write, with that
    #    write's ledger record not yet made.
    pipeline.EMBED_GROUP_CHUNKS = 2
    real_upsert = chroma_collection.Collection.upsert
    calls = 0
    def upsert(self, *args, **kwargs):
        global calls
        real_upsert(self, *args, **kwargs)
        calls += 1
        if calls == 2:
            print("KILL ME", flush=True)
            time.sleep(600)
    chroma_collection.Collection.upsert = upsert
    pipeline.index_paths(None, settings, embedder)
    print("NOT KILLED", flush=True)
    """
)


def edit_kb_for_the_crash(kb: Path) -> None:
    """Changes of every kind, so the killed run has adds, updates and deletes in flight."""
    (kb / "billing" / "refunds.md").write_text("# How refunds work\n\nRefunds take one day.\n")
    (kb / "contact.txt").unlink()
    write_kb(
        kb,
        {
            f"new/article-{n}.md": f"# New article {n}\n\n"
            + " ".join(f"Fact {n}.{i} about parcels and depots." for i in range(40))
            for n in range(3)
        },
    )
    (kb / "account" / "reset-password.md").write_text(
        ARTICLES["account/reset-password.md"].replace("one hour", "two hours")
    )


@pytest.fixture(scope="module")
def killed_mid_ingest(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> dict[str, Any]:
    """Index, edit, then let a child process search and die mid-ingest (once per module)."""
    root = tmp_path_factory.mktemp("killed")
    kb = write_kb(root / "kb")
    settings = small_chunk_settings(root, kb)
    index_paths(None, settings, embedder)
    edit_kb_for_the_crash(kb)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(settings.data_dir), str(kb), "walrus lighthouse"],
        cwd=REPO_ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    try:
        canary = json.loads(child.stdout.readline())
        assert child.stdout.readline().strip() == "KILL ME"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return {"canary": canary, "settings": settings}


def test_a_fresh_process_finds_a_canary_sentence_by_similarity(
    killed_mid_ingest: dict[str, Any],
) -> None:
    canary = killed_mid_ingest["canary"]
    assert canary["article_id"] == "shipping/express"
    assert CANARY in canary["document"]


def test_after_sigkill_mid_ingest_the_next_run_restores_exactly_the_ledger_state(
    killed_mid_ingest: dict[str, Any], embedder: Embedder
) -> None:
    kb_settings: Settings = killed_mid_ingest["settings"]
    ledger = Ledger(kb_settings.ledger_url)
    assert any(row.pending for row in ledger.rows().values()), "the kill left no write in flight"
    ledger.close()

    report = index_paths(None, kb_settings, embedder)
    assert report.ok
    assert report.recovered, "the interrupted articles were not repaired"
    assert "contact" not in {m["article_id"] for _, m in stored(kb_settings, embedder).values()}
    assert_store_is_exactly_the_ledger(kb_settings, embedder)
    again = index_paths(None, kb_settings, embedder)
    assert again.chunks_written == again.chunks_deleted == 0 and not again.recovered


def test_chunks_the_ledger_does_not_know_are_removed(
    kb_settings: Settings, embedder: Embedder
) -> None:
    """Drift from outside (a restored backup, a lost ledger) is repaired, not duplicated."""
    index_paths(None, kb_settings, embedder)
    collection = open_collection(open_client(kb_settings), kb_settings.collection, embedder)
    collection.upsert(
        ids=["ghost#0"],
        documents=["ghost"],
        embeddings=[[0.0] * (embedder.dimension - 1) + [1.0]],
        metadatas=[{"source": "ghost", "article_id": "ghost"}],
    )
    collection.delete(ids=["contact#0"])
    report = index_paths(None, kb_settings, embedder)
    assert report.recovered == ["contact"] and report.added == ["contact"]
    assert_store_is_exactly_the_ledger(kb_settings, embedder)


# --- one writer at a time ----------------------------------------------------------------------


def test_a_second_writer_is_refused_with_a_clear_message(
    kb_settings: Settings, embedder: Embedder
) -> None:
    with writer_lock(kb_settings.data_dir), pytest.raises(IngestLockedError) as caught:
        index_paths(None, kb_settings, embedder, lock_timeout_s=0.3)
    assert f"pid {os.getpid()}" in str(caught.value)
    assert "Another ingest" in str(caught.value)
    assert not (kb_settings.chroma_dir / "chroma.sqlite3").exists()  # it never started writing


def test_a_second_writer_waits_for_the_first(kb_settings: Settings, embedder: Embedder) -> None:
    held = threading.Event()

    def hold_for_a_moment() -> None:
        with writer_lock(kb_settings.data_dir):
            held.set()
            time.sleep(0.5)

    holder = threading.Thread(target=hold_for_a_moment)
    holder.start()
    held.wait(5)
    started = time.monotonic()
    report = index_paths(None, kb_settings, embedder, lock_timeout_s=30)
    holder.join()
    assert report.ok and len(report.added) == 5
    assert time.monotonic() - started >= 0.4


def test_another_embedders_collection_is_a_clear_error(
    kb_settings: Settings, embedder: Embedder
) -> None:
    open_client(kb_settings).create_collection(
        kb_settings.collection,
        metadata={"embedder": "some-other-model", "dimension": 768},
        embedding_function=None,
    )
    with pytest.raises(EmbedderMismatchError, match="some-other-model"):
        index_paths(None, kb_settings, embedder)


# --- the command line --------------------------------------------------------------------------


@pytest.fixture
def run_cli(
    kb_settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Any]]:
    from bot.cli import app

    monkeypatch.setenv("SUPPORTBOT_DATA_DIR", str(kb_settings.data_dir))
    monkeypatch.setenv("SUPPORTBOT_KB_PATH", str(kb_settings.kb_path))
    monkeypatch.setenv("SUPPORTBOT_CHUNK_MAX_TOKENS", str(kb_settings.chunk_max_tokens))
    monkeypatch.setenv("SUPPORTBOT_CHUNK_OVERLAP_TOKENS", str(kb_settings.chunk_overlap_tokens))
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, ["ingest", *args])
    get_settings.cache_clear()


def test_cli_prints_a_summary_and_exits_0(run_cli: Callable[..., Any]) -> None:
    result = run_cli()
    assert result.exit_code == 0, result.output
    assert "Ingest summary" in result.output
    for column in ("added", "updated", "unchanged", "deleted", "failed", "chunks", "seconds"):
        assert column in result.output
    assert "\r" not in result.output  # not a terminal: plain lines, no progress bar redraws
    assert "embedding chunks:" in result.output


def test_cli_names_each_failed_file_and_exits_1(
    run_cli: Callable[..., Any], kb: Path, kb_settings: Settings
) -> None:
    (kb / "empty.md").write_text("")
    (kb / "latin1.txt").write_bytes("Caf\xe9".encode("latin-1"))
    result = run_cli(str(kb))
    assert result.exit_code == 1
    assert f"{kb / 'empty.md'}: empty file" in result.output
    assert f"{kb / 'latin1.txt'}: not valid UTF-8" in result.output
    assert "2 file(s) failed" in result.output
    assert read_generation(kb_settings) == 1  # the good articles were still indexed


def test_cli_reports_a_busy_lock_and_exits_1(
    run_cli: Callable[..., Any], kb_settings: Settings
) -> None:
    with writer_lock(kb_settings.data_dir):
        result = run_cli("--wait", "0.2")
    assert result.exit_code == 1
    assert "Another ingest" in result.output
