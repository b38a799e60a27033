"""How Supportbot's cost grows: with the knowledge base, and with the deployment shape.

Part A, the knowledge base (in this process, on synthetic knowledge bases of 1k, 10k and 50k
chunks):

- the knowledge bases are generated procedurally (pseudo-words from syllables, Zipf-distributed,
  grouped into articles of a few chunks with titles and headings): no dataset text;
- **the dense side uses random unit vectors, not the embedding model**: embedding 50k chunks
  (and their ~300k sentences for the answer side) takes hours on two cores. So retrieval
  latency here is everything but model inference (Chroma's HNSW search, BM25, fusion, the
  sentence re-rank over cached vectors); one query embedding (about 10-15 ms, measured below)
  comes on top, whatever the size. The warm-up is measured with the random vectors and
  *projected* with the real model's measured sentences per second;
- both lexical engines in the same run, on the same tokens (``bot.core.text.tokenize``):
  the hand-written postings index (``PostingsBM25``, the baseline) and bm25s's sparse matrix
  (``SparseBM25``): build time and traced memory, query latency alone, and the whole
  ``Retriever.search`` p50/p95 for one client with each.

Part B, the deployment (real ``supportbot serve`` processes over real WebSockets, the load
shape of bench/chat_latency.py and its functions): the embedded default (SQLite + embedded
Chroma, one process), one process on the servers (PostgreSQL + Redis + a Chroma server), and
two processes on the servers, clients spread over both (no stickiness). The servers modes run
when the settings for them exist (``database_url``, ``redis_url``, ``chroma_url``); otherwise
the report says they were skipped.

    python bench/scale.py                        # both parts (about 6 minutes here)
    python bench/scale.py --part kb --sizes 1000,10000
    python bench/scale.py --part deploy --clients 1,20

Prints a table and writes JSON to bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "bench"))
RESULTS = REPO / "bench" / "results" / "scale.json"
DIMENSION = 384  # all-MiniLM-L6-v2's, so Chroma's index is the product's size
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"

# --- synthetic knowledge bases ----------------------------------------------------------------

ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "st", "tr"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
CODAS = ["", "n", "r", "s", "l", "x", "nd"]


def vocabulary(size: int, rng: random.Random) -> list[str]:
    """``size`` distinct pseudo-words of two or three syllables."""
    words: set[str] = set()
    while len(words) < size:
        syllables = rng.choice((2, 2, 3))
        words.add(
            "".join(rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(syllables))
            + rng.choice(CODAS)
        )
    return sorted(words)


class WordSource:
    """Zipf-distributed words (rank r has weight 1/r^1.07, like natural text)."""

    def __init__(self, words: list[str], rng: random.Random) -> None:
        self.words = words
        self.rng = rng
        weights = [1.0 / (rank**1.07) for rank in range(1, len(words) + 1)]
        self.cum: list[float] = []
        total = 0.0
        for weight in weights:
            total += weight
            self.cum.append(total)

    def take(self, count: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self.cum, k=count)


def synthetic_kb(chunks: int, seed: int = 15) -> list[tuple[str, str, dict[str, Any]]]:
    """(chunk id, text, metadata) for ``chunks`` chunks, in articles of 3-8 chunks, each chunk
    a heading line and 5-7 sentences of 8-16 words, with the ingest pipeline's metadata."""
    rng = random.Random(seed)
    source = WordSource(vocabulary(20_000, rng), rng)
    rows: list[tuple[str, str, dict[str, Any]]] = []
    article = 0
    while len(rows) < chunks:
        article += 1
        article_id = f"synthetic/article-{article:06d}"
        title = " ".join(source.take(3)).capitalize()
        for index in range(rng.randint(3, 8)):
            if len(rows) >= chunks:
                break
            heading = " ".join(source.take(2)).capitalize()
            sentences = [
                " ".join(source.take(rng.randint(8, 16))).capitalize() + "."
                for _ in range(rng.randint(5, 7))
            ]
            text = f"{heading}\n\n" + " ".join(sentences)
            metadata = {
                "source": article_id,
                "article_id": article_id,
                "title": title,
                "url": "",
                "heading": heading,
                "chunk_index": index,
                "tags": "",
                "visibility": "public",
                "body_start": len(heading) + 2,
            }
            rows.append((f"{article_id}#{index}", text, metadata))
    return rows


def questions_for(rows: Sequence[tuple[str, str, dict[str, Any]]], count: int) -> list[str]:
    """Questions made of words of random chunks (so BM25 has matches), plus a filler word."""
    rng = random.Random(7)
    out = []
    for _ in range(count):
        _, text, _ = rng.choice(rows)
        words = text.replace(".", " ").split()
        out.append("how do I " + " ".join(rng.sample(words, min(4, len(words)))))
    return out


class RandomEmbedder:
    """Stands in for the embedding model: random unit vectors (see the module docstring)."""

    name = "synthetic-random-unit-vectors"
    dimension = DIMENSION

    def __init__(self, seed: int = 3) -> None:
        import numpy as np

        self._rng = np.random.default_rng(seed)

    def _unit(self, count: int) -> Any:
        import numpy as np

        vectors = self._rng.standard_normal((count, DIMENSION)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors

    def encode(self, texts: Sequence[str]) -> Any:
        return self._unit(len(texts))

    def embed_documents(self, texts: list[str]) -> Any:
        return self.encode(texts)

    def embed_query(self, text: str) -> list[float]:
        vector: list[float] = self._unit(1)[0].tolist()
        return vector

    def count_tokens(self, text: str) -> int:
        return len(text.split())


# --- measuring helpers ----------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    from chat_latency import percentile as nearest_rank

    return nearest_rank(list(values), q)


def latency(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 3),
        "p95_ms": round(percentile(values, 95) * 1000, 3),
        "mean_ms": round(statistics.fmean(values) * 1000, 3) if values else float("nan"),
    }


@contextmanager
def traced() -> Iterator[dict[str, float]]:
    """Seconds and peak traced MiB of the block, and MiB still held after it (the index)."""
    gc.collect()
    tracemalloc.start()
    result: dict[str, float] = {}
    started = time.perf_counter()
    try:
        yield result
    finally:
        result["seconds"] = round(time.perf_counter() - started, 3)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result["held_mib"] = round(current / 2**20, 1)
        result["peak_mib"] = round(peak / 2**20, 1)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(call: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


# --- part A: the knowledge base ---------------------------------------------------------------


def bench_kb_size(
    size: int, workdir: Path, queries: int, model_rate: float | None
) -> dict[str, Any]:
    import bm25s  # noqa: F401  (imported before any timing: its import is not the build)
    import chromadb

    from bot.core.settings import Settings
    from bot.core.text import tokenize
    from bot.knowledge import lexical, retrieval

    rows = synthetic_kb(size)
    print(f"[kb {size}] generated {len(rows)} chunks", flush=True)
    embedder = RandomEmbedder()
    path = workdir / f"kb-{size}"
    client = chromadb.PersistentClient(path=str(path))
    collection = client.get_or_create_collection(
        name="scale",
        metadata={"embedder": embedder.name, "dimension": DIMENSION, "hnsw:space": "cosine"},
        embedding_function=None,
    )
    started = time.perf_counter()
    batch = 4000
    for start in range(0, len(rows), batch):
        part = rows[start : start + batch]
        collection.add(
            ids=[r[0] for r in part],
            documents=[r[1] for r in part],
            metadatas=[r[2] for r in part],
            embeddings=embedder.encode([r[1] for r in part]),
        )
    insert_s = time.perf_counter() - started
    settings = Settings(data_dir=workdir / "data", _env_file=None)  # type: ignore[call-arg]

    # What a rebuild reads: every public chunk from Chroma, in pages, then the tokens.
    reader = retrieval.Retriever(collection, embedder, settings, generation=lambda: 0)  # type: ignore[arg-type]
    with traced() as read:
        got_ids: list[str] = []
        texts: list[str] = []
        metas: list[dict[str, Any]] = []
        while True:
            got = collection.get(
                where={"visibility": "public"},
                include=["documents", "metadatas"],
                limit=retrieval.INDEX_PAGE,
                offset=len(got_ids),
            )
            got_ids += got["ids"]
            texts += [t or "" for t in got["documents"] or []]
            metas += [dict(m or {}) for m in got["metadatas"] or []]
            if len(got["ids"]) < retrieval.INDEX_PAGE:
                break
    started = time.perf_counter()
    tokens = [
        tokenize(retrieval.chunk_search_text(t, m)) for t, m in zip(texts, metas, strict=True)
    ]
    tokenize_s = time.perf_counter() - started
    engines: dict[str, Any] = {}
    builds: dict[str, dict[str, float]] = {}
    for name, engine in (("postings", lexical.PostingsBM25), ("bm25s", lexical.SparseBM25)):
        # Time without tracing (tracemalloc slows every allocation, the dict-heavy postings
        # index most), then build again under tracemalloc for the memory it holds.
        gc.collect()
        started = time.perf_counter()
        engines[name] = engine(tokens)
        seconds = time.perf_counter() - started
        engines[name] = None
        with traced() as build:
            engines[name] = engine(tokens)
        builds[name] = {
            "seconds": round(seconds, 3),
            **{k: build[k] for k in ("held_mib", "peak_mib")},
        }
    del reader

    query_texts = questions_for(rows, queries)
    query_tokens = [tokenize(q) for q in query_texts]
    lexical_latency: dict[str, dict[str, float]] = {}
    for name, index in engines.items():
        index.scores(query_tokens[0])  # first call pays any lazy set-up
        samples = []
        for toks in query_tokens:
            started = time.perf_counter()
            index.scores(toks)
            samples.append(time.perf_counter() - started)
        lexical_latency[name] = latency(samples)
    same = all(
        set(engines["postings"].scores(t)) == set(engines["bm25s"].scores(t))
        for t in query_tokens[:50]
    )

    # The whole retrieval, one client, with each engine; the warm-up first (sentence vectors).
    search: dict[str, dict[str, float]] = {}
    warm_up: dict[str, float] = {}
    sentences = 0
    cache: dict[str, Any] | None = None
    original = retrieval.BM25
    try:
        for name, engine in (("bm25s", lexical.SparseBM25), ("postings", lexical.PostingsBM25)):
            retrieval.BM25 = engine  # type: ignore[misc,assignment]
            retriever = retrieval.Retriever(
                collection,
                embedder,  # type: ignore[arg-type]
                settings,
                generation=lambda: 0,
            )
            if cache is not None:  # the same chunks: reuse the sentence vectors, warm the index
                retriever._sentence_vectors = cache
                retriever.article_titles()
            rss_before = rss_mib()
            started = time.perf_counter()
            retriever.warm_up()
            warm_s = time.perf_counter() - started
            cache = retriever._sentence_vectors
            if name == "bm25s":  # the product's engine, warmed from nothing
                sentences = sum(
                    len(block)
                    for _, block, _ in retriever._sentence_vectors.values()
                    if block is not None
                )
                warm_up = {
                    "measured_s_random_vectors": round(warm_s, 2),
                    "sentence_vectors": sentences,
                    "sentence_cache_rss_mib": round(rss_mib() - rss_before, 1),
                }
            retriever.search(query_texts[0])
            search[name] = latency(timed_iter(retriever.search, query_texts))
            del retriever
            gc.collect()
    finally:
        retrieval.BM25 = original  # type: ignore[misc]
    if model_rate:
        warm_up["projected_model_s"] = round(sentences / model_rate, 1)
    client.clear_system_cache()
    shutil.rmtree(path, ignore_errors=True)
    result = {
        "chunks": len(rows),
        "articles": len({r[2]["article_id"] for r in rows}),
        "tokens_per_chunk": round(statistics.fmean(len(t) for t in tokens), 1),
        "vocabulary": len(engines["postings"].idf),
        "chroma_insert_s": round(insert_s, 2),
        "read_all_chunks": {"seconds": read["seconds"], "peak_mib": read["peak_mib"]},
        "tokenize_s": round(tokenize_s, 2),
        "lexical_build": builds,
        "lexical_query": lexical_latency,
        "same_matches": same,
        "retrieval_one_client": search,
        "warm_up": warm_up,
    }
    print(f"[kb {size}] {json.dumps(result)}", flush=True)
    return result


def bench_lexical(size: int, queries: int) -> dict[str, Any]:
    """The lexical engines alone (no Chroma): build, then what retrieval asks per question,
    the best ``retrieval_bm25_k`` chunks (``top``), and the full score map (``scores``)."""
    import bm25s  # noqa: F401  (imported before any timing: its import is not the build)

    from bot.core.text import tokenize
    from bot.knowledge import lexical, retrieval

    rows = synthetic_kb(size)
    tokens = [tokenize(retrieval.chunk_search_text(text, meta)) for _, text, meta in rows]
    query_tokens = [tokenize(q) for q in questions_for(rows, queries)]
    out: dict[str, Any] = {"chunks": size}
    tops: dict[str, list[list[float]]] = {}
    for name, engine in (("postings", lexical.PostingsBM25), ("bm25s", lexical.SparseBM25)):
        gc.collect()
        started = time.perf_counter()
        index = engine(tokens)
        build_s = time.perf_counter() - started
        index.top(query_tokens[0], 40)
        texts = [" ".join(t) for t in query_tokens]
        top = timed_iter(lambda q, ix=index: ix.top(tokenize(q), 40), texts)
        full = timed_iter(lambda q, ix=index: ix.scores(tokenize(q)), texts)
        tops[name] = [[score for _, score in index.top(t, 40)] for t in query_tokens[:50]]
        out[name] = {"build_s": round(build_s, 3), "top40": latency(top), "scores": latency(full)}
    # The same 40 scores in the same order (to float32 precision): rows may differ only where
    # two chunks tie, which float32 and float64 break differently.
    out["same_top40"] = all(
        len(x) == len(y)
        and all(abs(p - q) <= 1e-5 * max(1.0, p) for p, q in zip(x, y, strict=False))
        for x, y in zip(tops["postings"], tops["bm25s"], strict=True)
    )
    print(f"[lexical {size}] {json.dumps(out)}", flush=True)
    return out


def timed_iter(call: Callable[[str], Any], inputs: Sequence[str]) -> list[float]:
    out = []
    for item in inputs:
        started = time.perf_counter()
        call(item)
        out.append(time.perf_counter() - started)
    return out


def model_sentences_per_s() -> tuple[float, float] | None:
    """The real embedder's sentences per second on synthetic sentences, and one query's ms."""
    try:
        from bot.core.settings import Settings
        from ingest.embedder import get_embedder

        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        embedder = get_embedder(settings.embedding_model, settings.embedding_batch_size)
    except Exception as error:  # no model here: the projection is left out
        print(f"no embedder for the projection: {error}", flush=True)
        return None
    rng = random.Random(5)
    source = WordSource(vocabulary(5000, rng), rng)
    sentences = [" ".join(source.take(rng.randint(8, 16))) + "." for _ in range(96)]
    embedder.encode(sentences[:16])
    started = time.perf_counter()
    embedder.encode(sentences)
    rate = len(sentences) / (time.perf_counter() - started)
    query = timed(lambda: embedder.encode([f"how do I {uuid.uuid4().hex[:6]} my order"]), 20)
    return rate, percentile(query, 50) * 1000


# --- part B: the deployment -------------------------------------------------------------------


def servers_supported() -> tuple[bool, str]:
    from bot.core.settings import Settings

    missing = [
        name
        for name in ("database_url", "redis_url", "chroma_url")
        if name not in Settings.model_fields
    ]
    if missing:
        return False, f"settings missing: {', '.join(missing)} (the engines work is not in yet)"
    for host, port, what in (("127.0.0.1", 5432, "PostgreSQL"), ("127.0.0.1", 6379, "Redis")):
        try:
            socket.create_connection((host, port), timeout=1).close()
        except OSError:
            return False, f"{what} not reachable at {host}:{port}"
    if shutil.which("chroma") is None:
        return False, "the chroma command (Chroma server) is not installed"
    return True, ""


@contextmanager
def postgres_schema() -> Iterator[str]:
    from urllib.parse import quote

    from sqlalchemy import create_engine, text

    admin = create_engine(PG_URL)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def chroma_server(path: Path) -> Iterator[str]:
    from chat_latency import free_port

    port = free_port()
    log = path.parent / "chroma.log"
    process = subprocess.Popen(
        ["chroma", "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"the Chroma server did not start; see {log}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_mode(
    name: str,
    data_dirs: list[Path],
    env: dict[str, str],
    levels: list[int],
    per_level: dict[int, int],
) -> dict[str, Any]:
    """Ingest the demo KB, start one server per data directory, run the load rounds with the
    clients spread over the servers round-robin (what a sticky-free proxy does)."""
    import chat_latency as cl

    saved = dict(os.environ)
    os.environ.update(env)  # cl.bench_env copies os.environ
    servers: list[Any] = []
    try:
        ingest_s = cl.ingest(data_dirs[0])
        for data_dir in data_dirs:
            data_dir.mkdir(parents=True, exist_ok=True)
            servers.append(cl.start_server(data_dir))
        urls = [server.url for server in servers]
        asyncio.run(spread_round(urls, 1, len(cl.QUESTIONS)))  # warm every process
        rows = []
        for clients in levels:
            cpu = [server.cpu_s() for server in servers]
            row = asyncio.run(spread_round(urls, clients, per_level.get(clients, 1)))
            answered = max(row["answered"], 1)
            row["server_cpu_ms_per_message"] = round(
                sum(s.cpu_s() - c for s, c in zip(servers, cpu, strict=True)) * 1000 / answered, 1
            )
            print(f"[{name}] {json.dumps(row)}", flush=True)
            rows.append(row)
        return {
            "mode": name,
            "processes": len(servers),
            "ingest_s": round(ingest_s, 1),
            "load": rows,
        }
    finally:
        for server in servers:
            server.stop()
        os.environ.clear()
        os.environ.update(saved)


async def spread_round(urls: list[str], clients: int, questions_each: int) -> dict[str, Any]:
    """chat_latency.load_round, with client i talking to ``urls[i % len(urls)]``."""
    import chat_latency as cl

    stats = cl.ClientStats()
    offset = 0

    def questions() -> list[str]:
        nonlocal offset
        offset += 1
        return [cl.unique_question(offset + i) for i in range(questions_each)]

    started = time.perf_counter()
    await asyncio.gather(
        *(cl.chat_client(urls[i % len(urls)], questions(), stats) for i in range(clients))
    )
    wall = time.perf_counter() - started
    return {
        "clients": clients,
        "questions_per_client": questions_each,
        "answered": len(stats.final),
        "escalated": stats.escalated,
        "errors": stats.errors,
        "wall_s": round(wall, 2),
        "messages_per_s": round(len(stats.final) / wall, 2),
        "ack": cl.summary_ms(stats.ack),
        "first_delta": cl.summary_ms(stats.first_delta),
        "final_message": cl.summary_ms(stats.final),
    }


def bench_deploy(
    workdir: Path, levels: list[int], per_level: dict[int, int], modes: list[str]
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    if "embedded" in modes:
        results.append(run_mode("embedded", [workdir / "embedded"], {}, levels, per_level))
    server_modes = [m for m in modes if m.startswith("servers")]
    if server_modes:
        ok, why = servers_supported()
        if not ok:
            skipped = {mode: why for mode in server_modes}
        else:
            for mode in server_modes:
                processes = 2 if mode == "servers-2" else 1
                root = workdir / mode
                root.mkdir(parents=True, exist_ok=True)
                with postgres_schema() as database_url, chroma_server(root / "chroma") as chroma:
                    env = {
                        "SUPPORTBOT_DATABASE_URL": database_url,
                        "SUPPORTBOT_REDIS_URL": REDIS_URL,
                        "SUPPORTBOT_CHROMA_URL": chroma,
                        "SUPPORTBOT_COLLECTION": f"bench_{uuid.uuid4().hex[:8]}",
                    }
                    dirs = [root / f"p{i}" for i in range(processes)]
                    results.append(run_mode(mode, dirs, env, levels, per_level))
    return {"modes": results, "skipped": skipped}


# --- report -----------------------------------------------------------------------------------


def table(report: dict[str, Any]) -> str:
    lines: list[str] = []
    kb = report.get("kb") or {}
    if kb.get("sizes"):
        lines += [
            "Part A: knowledge base size (dense side: random unit vectors; one client)",
            "",
            "| chunks | lexical build postings / bm25s (s) | index memory postings / bm25s "
            "(MiB) | BM25 query p50 / p95 postings (ms) | bm25s (ms) | retrieval p50 / p95 "
            "postings (ms) | bm25s (ms) | warm-up measured (s) | "
            "warm-up projected, real model (s) |",
            "|---:|---|---|---|---|---|---|---:|---:|",
        ]
        for row in kb["sizes"]:
            b, q, r = row["lexical_build"], row["lexical_query"], row["retrieval_one_client"]
            lines.append(
                f"| {row['chunks']:,}"
                f" | {b['postings']['seconds']:.2f} / {b['bm25s']['seconds']:.2f}"
                f" | {b['postings']['held_mib']:.0f} / {b['bm25s']['held_mib']:.0f}"
                f" | {q['postings']['p50_ms']:.2f} / {q['postings']['p95_ms']:.2f}"
                f" | {q['bm25s']['p50_ms']:.2f} / {q['bm25s']['p95_ms']:.2f}"
                f" | {r['postings']['p50_ms']:.1f} / {r['postings']['p95_ms']:.1f}"
                f" | {r['bm25s']['p50_ms']:.1f} / {r['bm25s']['p95_ms']:.1f}"
                f" | {row['warm_up'].get('measured_s_random_vectors', float('nan')):.1f}"
                f" | {row['warm_up'].get('projected_model_s', float('nan')):,.0f} |"
            )
        lines.append("")
        lines.append(f"lexical engine chosen: {kb.get('chosen')} ({kb.get('why')})")
        lines.append("")
    if report.get("lexical"):
        lines += [
            "Lexical engines alone (what retrieval asks: the best 40 chunks; and every score)",
            "",
            "| chunks | build postings / bm25s (s) | top-40 p50 / p95 postings (ms) | "
            "bm25s (ms) | all scores p50 / p95 postings (ms) | bm25s (ms) | same top 40 |",
            "|---:|---|---|---|---|---|---|",
        ]
        for row in report["lexical"]:
            p, m = row["postings"], row["bm25s"]
            lines.append(
                f"| {row['chunks']:,} | {p['build_s']:.2f} / {m['build_s']:.2f}"
                f" | {p['top40']['p50_ms']:.2f} / {p['top40']['p95_ms']:.2f}"
                f" | {m['top40']['p50_ms']:.2f} / {m['top40']['p95_ms']:.2f}"
                f" | {p['scores']['p50_ms']:.2f} / {p['scores']['p95_ms']:.2f}"
                f" | {m['scores']['p50_ms']:.2f} / {m['scores']['p95_ms']:.2f}"
                f" | {row['same_top40']} |"
            )
        lines.append("")
    deploy = report.get("deploy") or {}
    if deploy.get("modes"):
        lines += [
            "Part B: deployment (demo KB, extractive answers, real sockets)",
            "",
            "| mode | processes | clients | answered | answers/s | ack p50 / p95 (ms) | "
            "first delta p50 / p95 (ms) | final p50 / p95 (ms) | server CPU ms / answer |",
            "|---|---:|---:|---:|---:|---|---|---|---:|",
        ]
        for mode in deploy["modes"]:
            for row in mode["load"]:
                a, d, f = row["ack"], row["first_delta"], row["final_message"]
                lines.append(
                    f"| {mode['mode']} | {mode['processes']} | {row['clients']} | {row['answered']}"
                    f" | {row['messages_per_s']} | {a['p50_ms']} / {a['p95_ms']}"
                    f" | {d['p50_ms']} / {d['p95_ms']} | {f['p50_ms']} / {f['p95_ms']}"
                    f" | {row['server_cpu_ms_per_message']} |"
                )
    for mode, why in (deploy.get("skipped") or {}).items():
        lines.append(f"skipped {mode}: {why}")
    return "\n".join(lines)


def choose_engine(sizes: list[dict[str, Any]]) -> tuple[str, str]:
    """The engine with the lower BM25 query p95 at the largest size, unless its build costs
    more than the queries it saves over a thousand questions."""
    largest = max(sizes, key=lambda row: row["chunks"])
    q = largest["lexical_query"]
    b = largest["lexical_build"]
    saved_ms = (q["postings"]["p95_ms"] - q["bm25s"]["p95_ms"]) * 1000
    extra_build_ms = (b["bm25s"]["seconds"] - b["postings"]["seconds"]) * 1000
    if q["bm25s"]["p95_ms"] < q["postings"]["p95_ms"] and extra_build_ms < saved_ms:
        return "bm25s", (
            f"at {largest['chunks']:,} chunks BM25 p95 {q['bm25s']['p95_ms']:.2f} ms vs "
            f"{q['postings']['p95_ms']:.2f} ms; build {b['bm25s']['seconds']:.2f} s vs "
            f"{b['postings']['seconds']:.2f} s"
        )
    return "postings", (
        f"at {largest['chunks']:,} chunks bm25s did not pay for itself (query p95 "
        f"{q['bm25s']['p95_ms']:.2f} vs {q['postings']['p95_ms']:.2f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "kb", "lexical", "deploy"), default="all")
    parser.add_argument("--sizes", default="1000,10000,50000", help="chunks, comma-separated")
    parser.add_argument("--queries", type=int, default=200, help="questions per measurement")
    parser.add_argument("--clients", default="1,20", help="concurrency levels for part B")
    parser.add_argument("--questions", default="1:8,20:3", help="level:questions per client")
    parser.add_argument(
        "--modes", default="embedded,servers-1,servers-2", help="part B deployments to run"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    previous: dict[str, Any] = {}
    if args.out.exists():  # a part run alone keeps the other part's last figures
        previous = json.loads(args.out.read_text())
    report: dict[str, Any] = {
        "benchmark": "scale",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "note": "2 CPU cores shared with other work; figures are noisy",
        },
        "kb": previous.get("kb", {}),
        "deploy": previous.get("deploy", {}),
        "lexical": previous.get("lexical", []),
    }
    with tempfile.TemporaryDirectory(prefix="supportbot-scale-") as tmp:
        workdir = Path(tmp)
        if args.part in ("all", "kb"):
            model = model_sentences_per_s()
            rate, query_ms = model if model else (None, None)
            sizes = [
                bench_kb_size(int(n), workdir, args.queries, rate) for n in args.sizes.split(",")
            ]
            chosen, why = choose_engine(sizes)
            report["kb"] = {
                "dense_side": "random unit vectors (384-d); the embedding model is not run",
                "model_sentences_per_s": round(rate, 1) if rate else None,
                "model_query_embed_p50_ms": round(query_ms, 1) if query_ms else None,
                "sizes": sizes,
                "chosen": chosen,
                "why": why,
            }
        if args.part in ("all", "lexical"):
            report["lexical"] = [bench_lexical(int(n), args.queries) for n in args.sizes.split(",")]
        if args.part in ("all", "deploy"):
            levels = [int(n) for n in args.clients.split(",")]
            per_level = {
                int(k): int(v) for k, v in (pair.split(":") for pair in args.questions.split(","))
            }
            report["deploy"] = bench_deploy(workdir, levels, per_level, args.modes.split(","))
    report["total_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(table(report))
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
