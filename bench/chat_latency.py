"""Chat latency over real sockets, against its own floor measured in the same run.

What it does, in order:

1. ``supportbot ingest kb_articles`` into a data directory (incremental: a second run is quick);
2. a real ``supportbot serve`` subprocess, warmed up; in this process the same answerer, warmed
   up the same way;
3. ``--rounds`` times (default 3), for each concurrency level N: the floor in this process, no
   sockets (the retrieval compute alone, ``Retriever.search``, and the whole extractive answer,
   ``answer_sync``, with N threads at once: the like-for-like floor for N concurrent chats and
   the in-process throughput the server is held to), then N concurrent clients over real
   WebSockets to the server, each asking questions one after another: time to the first
   ``delta`` and to the final ``message`` (p50/p95/p99) and answered messages per second. Floor
   and server take turns, so a change in the machine's load between rounds moves both; the
   targets are judged on the median of the rounds' ratios;
4. 1,000 idle sockets (each said ``hello``): server RSS per idle connection.

Prints a table and writes JSON to bench/results/chat_latency.json.

    python bench/chat_latency.py                 # the full run (about 5-8 minutes here)
    python bench/chat_latency.py --clients 1,20 --idle 0   # the 20-chat target, no idle sockets
    python bench/chat_latency.py --quick         # a smoke run
    python bench/chat_latency.py --clients 20 --questions 20:3 --idle 0 --profile prof.json
        # the 20-chat round under py-spy: also prints the server's CPU by part of the service
        # (answer, store, frames, sockets, event loop), to see what the floor does not pay
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

REPO = Path(__file__).resolve().parent.parent
# Run as a script, bench/ is first on sys.path and bench/ingest.py would shadow the ingest package.
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "chat_latency.json"

# Questions the demo KB answers (so the conversation stays with the bot).
QUESTIONS = [
    "How do I reset my password?",
    "How long do refunds take?",
    "Which payment methods do you accept?",
    "How can I track my order?",
    "How do I start a return?",
    "Can I change my delivery address after ordering?",
    "What does Plus membership include?",
    "How do I turn on two-factor authentication?",
    "Do you ship internationally?",
    "How do I use a promo code?",
    "My card was declined, what can I do?",
    "How do I get an invoice with VAT?",
]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 1),
        "p95_ms": round(percentile(values, 95) * 1000, 1),
        "p99_ms": round(percentile(values, 99) * 1000, 1),
        "mean_ms": round(statistics.fmean(values) * 1000, 1) if values else float("nan"),
    }


# --- 1. ingest ----------------------------------------------------------------------------------


def bench_env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "SUPPORTBOT_DATA_DIR": str(data_dir),
            "SUPPORTBOT_ALLOWED_ORIGINS": "*",
            # Every bench client comes from 127.0.0.1: lift the per-IP and per-socket limits
            # (and the service-wide hello limits, which the 1,000 idle sockets would hit). The
            # answer capacity (SUPPORTBOT_ANSWER_CONCURRENCY) stays the product's default; only
            # one IP's share of it is lifted to the whole.
            "SUPPORTBOT_CHAT_RATE_IP_BURST": "1000000",
            "SUPPORTBOT_CHAT_RATE_IP_PER_MINUTE": "1000000",
            "SUPPORTBOT_CHAT_RATE_MESSAGES_BURST": "1000",
            "SUPPORTBOT_CHAT_RATE_MESSAGES_PER_MINUTE": "100000",
            "SUPPORTBOT_CHAT_RATE_GLOBAL_BURST": "1000000",
            "SUPPORTBOT_CHAT_RATE_GLOBAL_PER_MINUTE": "1000000",
            "SUPPORTBOT_CHAT_RATE_GLOBAL_FRAMES_BURST": "1000000",
            "SUPPORTBOT_CHAT_RATE_GLOBAL_FRAMES_PER_SECOND": "1000000",
            "SUPPORTBOT_CHAT_RATE_IP_FRAMES_BURST": "1000000",
            "SUPPORTBOT_CHAT_RATE_IP_FRAMES_PER_SECOND": "1000000",
            "SUPPORTBOT_CHAT_RATE_CONVERSATIONS_IP_BURST": "1000000",
            "SUPPORTBOT_CHAT_RATE_CONVERSATIONS_IP_PER_MINUTE": "1000000",
            "SUPPORTBOT_CHAT_RATE_CONVERSATIONS_GLOBAL_BURST": "1000000",
            "SUPPORTBOT_CHAT_RATE_CONVERSATIONS_GLOBAL_PER_MINUTE": "1000000",
            "SUPPORTBOT_ANSWER_CONCURRENCY_PER_IP": "256",
            "SUPPORTBOT_ANSWER_QUEUE_PER_IP": "1000000",
        }
    )
    return env


def ingest(data_dir: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["supportbot", "ingest", str(REPO / "kb_articles")],
        env=bench_env(data_dir),
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


# --- 2. the floor -------------------------------------------------------------------------------


class Floor:
    """The answer the server gives, computed in this process with no sockets: the baseline."""

    def __init__(self, data_dir: Path) -> None:
        os.environ.update(bench_env(data_dir))
        from bot.core.settings import Settings
        from bot.knowledge.answerers import build_answerer
        from ingest.embedder import get_embedder
        from ingest.store import open_client, open_collection

        settings = Settings(_env_file=None, data_dir=data_dir)
        embedder = get_embedder(settings.embedding_model, settings.embedding_batch_size)
        collection = open_collection(open_client(settings), settings.collection, embedder)
        self.answerer: Any = build_answerer(settings, collection, embedder)
        self.retriever = self.answerer.retriever
        self.answerer.warm_up()  # what the server's start-up does
        for question in QUESTIONS:  # and what its warm-up round does: every question once
            self.retriever.search(question)
            self.answerer.answer_sync(question, [])

    def measure(self, concurrency: list[int], questions_each: dict[int, int]) -> dict[str, Any]:
        """Retrieval alone and the whole extractive answer, N threads at once per level."""

        def timed(fn: Any, question: str) -> float:
            started = time.perf_counter()
            fn(question)
            return time.perf_counter() - started

        result: dict[str, Any] = {}
        for name, fn in (
            ("retrieval", self.retriever.search),
            ("answer", lambda q: self.answerer.answer_sync(q, [])),
        ):
            for n in concurrency:
                # As many questions as the server round asks at this level (at least two rounds
                # of the question list), so throughput is measured past the ramp-up.
                asked = n * questions_each.get(n, 3)
                jobs = [unique_question(i) for i in range(max(asked, 2 * len(QUESTIONS)))]
                started, cpu = time.perf_counter(), time.process_time()
                with ThreadPoolExecutor(max_workers=n) as pool:
                    times = list(pool.map(lambda q, fn=fn: timed(fn, q), jobs))
                wall = time.perf_counter() - started
                result[f"{name}_c{n}"] = {
                    **summary_ms(times),
                    "per_s": round(len(jobs) / wall, 2),
                    "cpu_ms_each": round((time.process_time() - cpu) * 1000 / len(jobs), 1),
                }
        return result


# --- 3. the server ------------------------------------------------------------------------------


_asked = 0


def unique_question(i: int) -> str:
    """The i-th question, never worded the same twice: the embedder remembers recent query
    vectors, and a repeated question would measure that cache instead of the work."""
    global _asked
    _asked += 1
    return f"{QUESTIONS[i % len(QUESTIONS)]} (ref {_asked})"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux ``/proc``)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                pending.extend(int(child) for child in task.read_text().split())
            except FileNotFoundError:
                continue
    return found


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat"

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the server has used so far: its process and the answer
        worker processes it started (``answer_processes``), which do the answers' work."""
        total = 0
        for pid in process_tree(self.process.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:  # exited meanwhile
                continue
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_server(data_dir: Path) -> Server:
    port = free_port()
    log = data_dir / "serve.log"
    process = subprocess.Popen(
        ["supportbot", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=bench_env(data_dir),
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 900  # the warm-up takes minutes on a loaded machine
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as reply:
                # Measure a warmed-up server: the start-up warm-up embeds the KB's sentences.
                if reply.status == 200 and json.load(reply).get("warm", True):
                    return Server(process, port, log)
                time.sleep(0.3)
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("server did not start")


def start_profiler(server: Server, out: Path, gil: bool = False) -> subprocess.Popen[bytes]:
    """py-spy (``pip install py-spy``) sampling every thread of the server and of its answer
    workers; with ``gil``, only the thread holding each process's GIL, which shows the Python
    work that the answers queue behind."""
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        [
            "py-spy",
            "record",
            *(["--gil"] if gil else []),
            "--pid",
            str(server.process.pid),
            "--format",
            "speedscope",
            "--output",
            str(out),
            "--rate",
            "200",
            "--threads",
            "--subprocesses",
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # attached before the first question
    return spy


# Where a server sample is counted: the first part (in this order) with a frame on its stack.
# The answer comes first: a pydantic or JSON frame under the answerer is the answer's work.
PROFILE_PARTS: list[tuple[str, tuple[str, ...]]] = [
    (
        "answer (retrieval, embedding, composing)",
        (
            "bot/knowledge/",
            "ingest/embedder",
            "torch/",
            "transformers/",
            "sentence_transformers/",
            "chromadb/",
            "numpy/",
        ),
    ),
    (
        "store (SQLAlchemy, SQLite, handoff)",
        ("sqlalchemy/", "sqlite3/", "bot/conversations/store", "bot/handoff/", "bot/core/db"),
    ),
    (
        "frames (pydantic, JSON, events)",
        (
            "pydantic",
            "bot/conversations/frames",
            "bot/conversations/framekit",
            "json/",
            "bot/conversations/events",
        ),
    ),
    (
        "sockets (uvicorn, websockets, starlette)",
        ("uvicorn/", "websockets/", "starlette/", "bot/live/transport", "h11/", "httptools/"),
    ),
    ("chat session (bot/live)", ("bot/live/",)),
    ("event loop, threads", ("asyncio/", "uvloop/", "concurrent/futures", "threading.py")),
]


def profile_shares(path: Path) -> dict[str, float]:
    """Share of the server's sampled CPU time per part of the service (a py-spy speedscope
    file, every thread): where the server spends what the in-process floor does not."""
    data = json.loads(path.read_text())
    frames = [f"{f.get('file', '')}:{f.get('name', '')}" for f in data["shared"]["frames"]]
    counts: dict[str, float] = {}
    total = 0.0
    for profile in data["profiles"]:
        samples = profile.get("samples", [])
        weights = profile.get("weights", [1] * len(samples))
        for stack, weight in zip(samples, weights, strict=False):
            names = [frames[i] for i in stack]
            part = next(
                (
                    label
                    for label, needles in PROFILE_PARTS
                    if any(needle in name for name in names for needle in needles)
                ),
                "other",
            )
            counts[part] = counts.get(part, 0.0) + weight
            total += weight
    return (
        {
            part: round(count / total, 3)
            for part, count in sorted(counts.items(), key=lambda kv: -kv[1])
        }
        if total
        else {}
    )


@dataclass
class ClientStats:
    ack: list[float] = field(default_factory=list)
    first_delta: list[float] = field(default_factory=list)
    final: list[float] = field(default_factory=list)
    escalated: int = 0
    errors: int = 0


async def recv_json(ws: ClientConnection, timeout: float) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return frame


async def chat_client(
    url: str, questions: list[str], stats: ClientStats, per_conversation: int = 1
) -> None:
    """One customer after another on this connection slot: each opens a conversation (hello)
    and asks ``per_conversation`` questions (default one: every message pays for opening a
    socket and a conversation, the costliest case; the follow-up rule searches an unrelated
    question alone, so several in one conversation are answered as if asked alone)."""
    for start in range(0, len(questions), per_conversation):
        async with connect(url, open_timeout=60, max_size=2**20) as ws:
            await ws.send(json.dumps({"type": "hello"}))
            welcome = await recv_json(ws, 60)
            assert welcome["type"] == "welcome", welcome
            for question in questions[start : start + per_conversation]:
                if not await ask_one(ws, question, stats):
                    # Handed to a person: the bot now answers only what it is sure of, so
                    # this customer's remaining questions go to a new conversation.
                    break


async def ask_one(ws: ClientConnection, question: str, stats: ClientStats) -> bool:
    """Ask one question and wait for the bot's answer; False when the conversation went to a
    person (or failed) instead."""
    client_msg_id = uuid.uuid4().hex
    sent = time.perf_counter()
    await ws.send(json.dumps({"type": "message", "client_msg_id": client_msg_id, "text": question}))
    seq = None
    first: float | None = None
    while True:
        frame = await recv_json(ws, 300)
        kind = frame["type"]
        if kind == "ack" and frame["client_msg_id"] == client_msg_id:
            seq = frame["seq"]
            stats.ack.append(time.perf_counter() - sent)
        elif kind == "delta" and frame["reply_to"] == seq and first is None:
            first = time.perf_counter() - sent
        elif kind == "message" and frame["role"] == "bot" and frame["reply_to"] == seq:
            stats.final.append(time.perf_counter() - sent)
            if first is not None:
                stats.first_delta.append(first)
            return True
        elif kind == "state" and frame["state"] == "awaiting_human":
            stats.escalated += 1  # a trigger handed it to a person: no bot answer comes
            return False
        elif kind == "error":
            stats.errors += 1
            return False


async def load_round(
    url: str, clients: int, questions_each: int, per_conversation: int = 1
) -> dict[str, Any]:
    stats = ClientStats()
    offset = 0

    def questions() -> list[str]:
        nonlocal offset
        offset += 1
        return [unique_question(offset + i) for i in range(questions_each)]

    started = time.perf_counter()
    await asyncio.gather(
        *(chat_client(url, questions(), stats, per_conversation) for _ in range(clients))
    )
    wall = time.perf_counter() - started
    return {
        "clients": clients,
        "questions_per_client": questions_each,
        "questions_per_conversation": per_conversation,
        "answered": len(stats.final),
        "escalated": stats.escalated,
        "errors": stats.errors,
        "wall_s": round(wall, 2),
        "messages_per_s": round(len(stats.final) / wall, 2),
        "ack": summary_ms(stats.ack),
        "first_delta": summary_ms(stats.first_delta),
        "final_message": summary_ms(stats.final),
    }


async def idle_sockets(server: Server, count: int) -> dict[str, Any]:
    """Open ``count`` sockets that each said hello, and measure the server's RSS growth.

    Run on a fresh server (no answers in flight, nothing being freed), after a small warm-up
    batch so the allocator's arenas and the thread pools exist before the baseline is taken.
    """
    gate = asyncio.Semaphore(50)

    async def open_many(n: int) -> list[ClientConnection]:
        sockets: list[ClientConnection] = []

        async def open_one() -> None:
            async with gate:
                ws = await connect(server.url, open_timeout=120, ping_interval=None)
                await ws.send(json.dumps({"type": "hello"}))
                await recv_json(ws, 120)
                sockets.append(ws)

        await asyncio.gather(*(open_one() for _ in range(n)))
        return sockets

    warm = await open_many(50)
    await asyncio.gather(*(ws.close() for ws in warm))
    await asyncio.sleep(2.0)
    before = server.rss_kib()
    started = time.perf_counter()
    sockets = await open_many(count)
    opened_s = time.perf_counter() - started
    await asyncio.sleep(3.0)
    after = server.rss_kib()
    await asyncio.gather(*(ws.close() for ws in sockets))
    return {
        "sockets": count,
        "open_s": round(opened_s, 2),
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_idle_connection": round((after - before) / count, 1),
    }


# --- report -----------------------------------------------------------------------------------


def judged(row: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """A load row with its two ratios against the floor measured in the same round."""
    n = row["clients"]
    answer = floor[f"answer_c{n}"]
    return {
        **row,
        "in_process_per_s": answer["per_s"],
        "throughput_ratio": round(row["messages_per_s"] / answer["per_s"], 3),
        "retrieval_floor_p95_ms": floor[f"retrieval_c{n}"]["p95_ms"],
        "ttfd_over_retrieval_floor": round(
            row["first_delta"]["p95_ms"] / floor[f"retrieval_c{n}"]["p95_ms"], 3
        ),
        "ttfd_over_answer_floor": round(row["first_delta"]["p95_ms"] / answer["p95_ms"], 3),
    }


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per concurrency level: each round's two ratios and their medians (what is judged)."""
    levels: dict[str, Any] = {}
    for round_ in rounds:
        for row in round_["load"]:
            level = levels.setdefault(
                f"c{row['clients']}", {"throughput_ratio": [], "ttfd_over_retrieval_floor": []}
            )
            level["throughput_ratio"].append(row["throughput_ratio"])
            level["ttfd_over_retrieval_floor"].append(row["ttfd_over_retrieval_floor"])
    for level in levels.values():
        for key in ("throughput_ratio", "ttfd_over_retrieval_floor"):
            level[f"{key}_median"] = round(statistics.median(level[key]), 3)
    return levels


def table(report: dict[str, Any]) -> str:
    """The two targets with the baselines measured in the same round: first delta p95 over the
    retrieval floor p95 (<= 1.5 at 20 chats) and answered messages per second over the
    in-process answers per second at the same concurrency (>= 0.8); one row per round and
    level, then the medians."""
    lines = [
        "| round | clients | answered | msg/s | in-process answers/s | msg/s / in-process "
        "| ack p50 / p95 (ms) | first delta p50 / p95 / p99 (ms) "
        "| final message p50 / p95 / p99 (ms) | retrieval floor p95 (ms) "
        "| TTFD p95 / retrieval floor p95 | TTFD p95 / answer floor p95 "
        "| server CPU ms/msg | in-process CPU ms/answer |",
        "|---:|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for number, round_ in enumerate(report["rounds"], start=1):
        for row in round_["load"]:
            n = row["clients"]
            fd, fm, ack = row["first_delta"], row["final_message"], row["ack"]
            lines.append(
                f"| {number} | {n} | {row['answered']} | {row['messages_per_s']} "
                f"| {row['in_process_per_s']} | {row['throughput_ratio']:.2f} "
                f"| {ack['p50_ms']} / {ack['p95_ms']} "
                f"| {fd['p50_ms']} / {fd['p95_ms']} / {fd['p99_ms']} "
                f"| {fm['p50_ms']} / {fm['p95_ms']} / {fm['p99_ms']} "
                f"| {row['retrieval_floor_p95_ms']} | {row['ttfd_over_retrieval_floor']:.2f} "
                f"| {row['ttfd_over_answer_floor']:.2f} | {row['server_cpu_ms_per_message']} "
                f"| {round_['floor'][f'answer_c{n}']['cpu_ms_each']} |"
            )
    lines.append("")
    lines.append(
        "| clients | msg/s / in-process, median (target >= 0.8 at 20) "
        "| TTFD p95 / retrieval floor p95, median (target <= 1.5 at 20) |"
    )
    lines.append("|---:|---:|---:|")
    for level, values in report["medians"].items():
        lines.append(
            f"| {level[1:]} | {values['throughput_ratio_median']:.2f} "
            f"| {values['ttfd_over_retrieval_floor_median']:.2f} |"
        )
    lines.append("")
    lines.append(
        "| floor (in-process, no sockets) | round | concurrency | p50 (ms) | p95 (ms) "
        "| p99 (ms) | per second |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    for number, round_ in enumerate(report["rounds"], start=1):
        for key, value in round_["floor"].items():
            name, _, n = key.rpartition("_c")
            label = (
                "retrieval (embed + Chroma + BM25)" if name == "retrieval" else "extractive answer"
            )
            lines.append(
                f"| {label} | {number} | {n} | {value['p50_ms']} | {value['p95_ms']} "
                f"| {value['p99_ms']} | {value['per_s']} |"
            )
    parts = report.get("server_cpu_by_part") or {}
    if parts:
        lines.append("")
        lines.append("| server CPU during the load rounds (py-spy) | share |")
        lines.append("|---|---:|")
        lines.extend(f"| {part} | {share:.1%} |" for part, share in parts.items())
    idle = report["idle"]
    if idle:
        lines.append("")
        lines.append(
            f"Idle: {idle['sockets']} sockets after hello: server RSS {idle['rss_before_kib']} "
            f"-> {idle['rss_after_kib']} KiB = {idle['kib_per_idle_connection']} KiB per "
            "connection."
        )
    return "\n".join(lines)


def served_round(
    server: Server, clients: int, questions_each: int, per_conversation: int
) -> dict[str, Any]:
    """One load round against the server, with the CPU it and the bench's clients used."""
    server_cpu = server.cpu_s()
    client_cpu = time.process_time()
    row = asyncio.run(load_round(server.url, clients, questions_each, per_conversation))
    # Where the two cores went: the server, and the bench's own clients (the same machine:
    # their sockets and JSON take CPU the server cannot have).
    answered = max(row["answered"], 1)
    row["server_cpu_ms_per_message"] = round((server.cpu_s() - server_cpu) * 1000 / answered, 1)
    row["client_cpu_ms_per_message"] = round(
        (time.process_time() - client_cpu) * 1000 / answered, 1
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,20,100", help="concurrency levels, comma-separated")
    parser.add_argument(
        "--questions",
        default="1:12,20:6,100:2",
        help="questions per client for each concurrency level, as level:count pairs",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="floor-then-server rounds; the targets are judged on the median ratio",
    )
    parser.add_argument(
        "--idle", type=int, default=1000, help="idle sockets for the RSS figure (0: skip it)"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="reuse an ingested data dir")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="record the server with py-spy during the load rounds (speedscope JSON here)",
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile: only samples holding the GIL (what Python work competes for)",
    )
    parser.add_argument(
        "--per-conversation",
        type=int,
        default=1,
        help="questions asked in each conversation (default 1: a new socket and conversation "
        "per message)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--quick", action="store_true", help="1,5 clients, 2 questions, 1 round, 100 idle"
    )
    args = parser.parse_args()
    if args.quick:
        args.clients, args.questions, args.rounds, args.idle = "1,5", "1:2,5:2", 1, 100
    levels = [int(n) for n in args.clients.split(",")]
    per_level = {int(k): int(v) for k, v in (pair.split(":") for pair in args.questions.split(","))}
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    profile: dict[str, float] = {}
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="supportbot-bench-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        ingest_s = ingest(data_dir)
        print(f"ingest: {ingest_s:.1f} s", flush=True)
        server = start_server(data_dir)
        try:
            floor_rig = Floor(data_dir)
            # Warm the server as the floor was warmed: every question once.
            warm = asyncio.run(load_round(server.url, 1, len(QUESTIONS)))
            print("warm-up:", warm["final_message"], flush=True)
            spy = start_profiler(server, args.profile, args.profile_gil) if args.profile else None
            for number in range(1, args.rounds + 1):
                floor = floor_rig.measure(levels, per_level)
                print(f"round {number} floor:", json.dumps(floor), flush=True)
                load = []
                for n in levels:
                    row = served_round(server, n, per_level.get(n, 1), args.per_conversation)
                    row = judged(row, floor)
                    print(f"round {number}:", json.dumps(row), flush=True)
                    load.append(row)
                rounds.append({"floor": floor, "load": load})
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                spy.wait(timeout=120)
                if args.profile.exists():
                    profile = profile_shares(args.profile)
                    print("server CPU by part:", json.dumps(profile), flush=True)
        finally:
            server.stop()
        idle: dict[str, Any] = {}
        if args.idle > 0:
            server = start_server(data_dir)  # a fresh process for the idle-memory figure
            try:
                idle = asyncio.run(idle_sockets(server, args.idle))
                print(json.dumps(idle), flush=True)
            finally:
                server.stop()
        report = {
            "benchmark": "chat_latency",
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "note": "2 CPU cores shared with other work; figures are noisy",
            },
            "kb": "kb_articles/ (demo KB)",
            "answerer": "extractive (SUPPORTBOT_LLM=none)",
            "ingest_s": round(ingest_s, 1),
            "rounds": rounds,
            "medians": medians(rounds),
            "idle": idle,
            "server_cpu_by_part": profile,
            "total_s": round(time.perf_counter() - started, 1),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(table(report))
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
