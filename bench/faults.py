"""The fault suite: a real server on loopback, attacked the ways a hostile network and a hostile
client attack it, with each invariant counted.

Every scenario runs a server in a child process (``tests.helpers.child_server``: what
``supportbot serve`` runs, with a scripted answerer that streams slowly, so answers can be
interrupted on purpose; the poisoned-corpus scenario runs the real ``supportbot serve`` with
the real answerer). All traffic goes to 127.0.0.1, and every scenario is bounded in count and
time.

1. Reconnect storms: a question, a drop at one of five points (before the ack, after the ack,
   mid-stream, after the answer, during a resume's replay), then storms of three sockets at
   once, each resuming and resending the same ``client_msg_id``, dropped again. Invariant: every
   question answered, exactly once (in the database and in a full replay), no ``seq``
   delivered twice on one socket.
2. SIGTERM and SIGKILL mid-answer, N times each: answers streaming (and, with SIGKILL, a
   question waiting behind another), the signal, a restart, a resume. Invariant: 0 lost, 0
   duplicated; with SIGTERM the sockets close with 1012.
3. Malformed frames on both sockets (deep nesting, huge numbers, NaN, binary garbage, wrong
   types...). Invariant: an error frame for each, 0 tracebacks in the server log, 0 dropped
   sockets, the server still answers.
4. One IP floods while a second client chats (default limits; client IPs told apart with
   ``X-Forwarded-For`` from a trusted proxy): the second client's answer p95 against its idle
   p95. Target: within 2x.
5. Bad sign-ins from one IP: how many were throttled, and the server's memory before/after.
6. The poisoned corpus (``ingest.screening`` and ``tests.helpers.poison``; skipped when absent):
   how many poisoned articles screening held, and (full run) whether any answer of the real
   answerer quoted one.

Prints a table and writes JSON to bench/results/faults.json.

    python bench/faults.py            # the full run (several minutes)
    python bench/faults.py --short    # small counts (CI: tests/integration/test_faults_short.py)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.cookiejar
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

REPO = Path(__file__).resolve().parent.parent
# Run as a script, bench/ is first on sys.path and bench/ingest.py would shadow the ingest package.
sys.path.insert(0, str(REPO))

from chat_latency import QUESTIONS  # noqa: E402  (the same twelve demo questions)

from tests.helpers.child_server import ChildServer, free_port  # noqa: E402

RESULTS = REPO / "bench" / "results" / "faults.json"
DROP_POINTS = ("before_ack", "after_ack", "mid_stream", "after_answer", "during_replay")


@dataclass(frozen=True)
class Counts:
    storm_conversations: int  # per drop point
    storm_cycles: int
    storm_resends: int  # per socket per cycle
    kills: int  # SIGTERM rounds, and as many SIGKILL rounds
    in_flight: int  # answers streaming at each signal
    malformed: int
    chat_questions: int  # the second client's, idle and under the flood
    flood_s: float
    flood_sockets: int
    logins: int
    poison_answers: bool  # ask the real answerer (needs the embedding model and an ingest)


FULL = Counts(20, 5, 5, 10, 3, 1000, 20, 20.0, 20, 200, True)
SHORT = Counts(2, 2, 3, 2, 2, 200, 6, 4.0, 6, 20, False)


def question_text(index: int) -> str:
    return f"{QUESTIONS[index % len(QUESTIONS)]} (case {index})"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ms(seconds: float) -> float | None:
    """Milliseconds for the report; None for a question that never got its answer."""
    return round(seconds * 1000, 1) if math.isfinite(seconds) else None


def count_tracebacks(text: str) -> int:
    return text.count("Traceback (most recent call last)")


# --- customers --------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the client side saw go wrong."""

    delivery_duplicates: int = 0  # a seq delivered twice on one socket
    close_codes: Counter[int] = field(default_factory=Counter)
    live_answers: int = 0  # answers that arrived before the close at a SIGTERM


class Customer:
    """One conversation as a client keeps it: its ids, ``last_seq``, the seq of each of its
    questions and the bot answers seen for each."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.conversation_id = ""
        self.resume_token = ""
        self.last_seq = 0
        self.questions: dict[str, int | None] = {}  # client_msg_id -> seq (None: not acked)
        self.texts: dict[str, str] = {}
        self.answers: dict[int, set[int]] = {}  # question seq -> bot answer seqs

    async def open(self, url: str, **headers: str) -> Socket:
        ws = await connect_chat(url, headers)
        sock = Socket(ws, self)
        await sock.send({"type": "hello"})
        welcome = await sock.next_frame(15)
        assert welcome and welcome["type"] == "welcome", welcome
        self.conversation_id = welcome["conversation_id"]
        self.resume_token = welcome["resume_token"]
        return sock

    async def resume(self, url: str, last_seq: int | None = None) -> Socket:
        ws = await connect_chat(url, {})
        sock = Socket(ws, self)
        await sock.send(
            {
                "type": "hello",
                "conversation_id": self.conversation_id,
                "resume_token": self.resume_token,
                "last_seq": self.last_seq if last_seq is None else last_seq,
            }
        )
        return sock

    def message(self, client_msg_id: str, text: str) -> dict[str, Any]:
        self.questions.setdefault(client_msg_id, None)
        self.texts[client_msg_id] = text
        return {"type": "message", "client_msg_id": client_msg_id, "text": text}

    def observe(self, frame: dict[str, Any], sock: Socket) -> None:
        kind = frame.get("type")
        if kind == "ack":
            self.questions[frame["client_msg_id"]] = frame["seq"]
            self.last_seq = max(self.last_seq, frame["seq"])
        elif kind == "message":
            seq = frame["seq"]
            if seq in sock.seen:
                self.tally.delivery_duplicates += 1
            sock.seen.add(seq)
            self.last_seq = max(self.last_seq, seq)
            if frame["role"] == "customer" and frame.get("client_msg_id") in self.questions:
                self.questions[frame["client_msg_id"]] = seq
            if frame["role"] == "bot" and frame.get("reply_to"):
                self.answers.setdefault(frame["reply_to"], set()).add(seq)

    def unanswered(self) -> list[str]:
        return [
            cid for cid, seq in self.questions.items() if seq is None or not self.answers.get(seq)
        ]

    async def settle(self, url: str, timeout: float = 30.0) -> None:
        """Resume until every question is acked and answered (resending the unacked ones, as
        a client does), or ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.unanswered() and time.monotonic() < deadline:
            try:
                sock = await self.resume(url)
            except (OSError, InvalidStatus, TimeoutError):
                await asyncio.sleep(0.5)
                continue
            try:
                for cid, seq in list(self.questions.items()):
                    if seq is None:
                        await sock.send(self.message(cid, self.texts[cid]))
                await sock.read(lambda _f: not self.unanswered(), deadline - time.monotonic())
            finally:
                await sock.close()

    async def replay_counts(self, url: str) -> tuple[int, int]:
        """(lost, duplicated) from a full replay: every stored message from seq 1."""
        sock = await self.resume(url, last_seq=0)
        answers: dict[int, set[int]] = {}
        frames = await sock.frames_until_quiet(0.8)
        await sock.close()
        for frame in frames:
            if frame.get("type") == "message" and frame["role"] == "bot" and frame.get("reply_to"):
                answers.setdefault(frame["reply_to"], set()).add(frame["seq"])
        seqs = [seq for seq in self.questions.values() if seq is not None]
        lost = sum(1 for seq in seqs if not answers.get(seq)) + sum(
            1 for seq in self.questions.values() if seq is None
        )
        duplicated = sum(1 for seq in seqs if len(answers.get(seq, ())) > 1)
        return lost, duplicated


class Socket:
    """A client socket that feeds every frame it reads to its customer."""

    def __init__(self, ws: ClientConnection, customer: Customer) -> None:
        self.ws = ws
        self.customer = customer
        self.seen: set[int] = set()

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        payload = frame if isinstance(frame, str | bytes) else json.dumps(frame)
        await self.ws.send(payload)

    async def next_frame(self, timeout: float) -> dict[str, Any] | None:
        try:
            frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        except (TimeoutError, ConnectionClosed):
            return None
        self.customer.observe(frame, self)
        return frame

    async def read(self, stop: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
        """Read until ``stop(frame)`` (True) or the timeout/close (False)."""
        deadline = time.monotonic() + max(0.0, timeout)
        while time.monotonic() < deadline:
            frame = await self.next_frame(deadline - time.monotonic())
            if frame is None:
                return False
            if stop(frame):
                return True
        return False

    async def frames_until_quiet(self, quiet_s: float) -> list[dict[str, Any]]:
        frames = []
        while (frame := await self.next_frame(quiet_s)) is not None:
            frames.append(frame)
        return frames

    async def until_closed(self, timeout: float) -> list[dict[str, Any]]:
        frames: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                raw = await asyncio.wait_for(self.ws.recv(), deadline - time.monotonic())
            except ConnectionClosed:
                break
            except TimeoutError:
                break
            frame = json.loads(raw)
            self.customer.observe(frame, self)
            frames.append(frame)
        if self.ws.close_code is not None:
            self.customer.tally.close_codes[self.ws.close_code] += 1
        return frames

    def abort(self) -> None:
        """Drop the connection without a close frame (a network failure)."""
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 2)


async def connect_chat(url: str, headers: dict[str, str]) -> ClientConnection:
    return await connect(
        url,
        open_timeout=15,
        close_timeout=2,
        max_size=2**20,
        ping_interval=None,
        additional_headers=headers or None,
    )


def is_delta(frame: dict[str, Any]) -> bool:
    return frame.get("type") == "delta"


def is_ack(frame: dict[str, Any]) -> bool:
    return frame.get("type") == "ack"


def is_bot(frame: dict[str, Any]) -> bool:
    return frame.get("type") == "message" and frame.get("role") == "bot"


# --- the database, read directly ---------------------------------------------------------------


def database_answers(data_dir: Path) -> tuple[int, int, int]:
    """(questions, lost, duplicated) over every customer message in the database."""
    with contextlib.closing(sqlite3.connect(data_dir / "supportbot.sqlite", timeout=30)) as db:
        questions = db.execute(
            "select conversation_id, seq from messages where role = 'customer'"
        ).fetchall()
        answers = Counter(
            db.execute(
                "select conversation_id, reply_to from messages where role = 'bot' "
                "and reply_to is not null"
            ).fetchall()
        )
    lost = sum(1 for key in questions if answers[key] == 0)
    duplicated = sum(1 for key in questions if answers[key] > 1)
    return len(questions), lost, duplicated


def wait_database_answered(data_dir: Path, timeout: float) -> tuple[int, int, int]:
    deadline = time.monotonic() + timeout
    while True:
        result = database_answers(data_dir)
        if result[1] == 0 or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


# --- 1. reconnect storms ------------------------------------------------------------------------


async def storm_one(
    server: ChildServer, drop: str, index: int, counts: Counts, tally: Tally
) -> Customer:
    customer = Customer(tally)
    sock = await customer.open(server.url)
    client_msg_id = f"{drop}-{index}"
    frame = customer.message(client_msg_id, question_text(index))
    await sock.send(frame)
    if drop == "after_ack":
        await sock.read(is_ack, 10)
    elif drop == "mid_stream":
        await sock.read(is_delta, 10)
    elif drop in ("after_answer", "during_replay"):
        await sock.read(is_bot, 15)
    sock.abort()
    for cycle in range(counts.storm_cycles):
        replay_from = 0 if drop == "during_replay" else None
        sockets = await asyncio.gather(
            *(customer.resume(server.url, replay_from) for _ in range(3))
        )
        for _ in range(counts.storm_resends):
            for each in sockets:
                with contextlib.suppress(ConnectionClosed):
                    await each.send(frame)
            await asyncio.sleep(0.004)
        if drop == "during_replay":
            for each in sockets:  # dropped right after asking for the replay
                each.abort()
            continue
        await asyncio.gather(*(each.frames_until_quiet(0.05) for each in sockets))
        for position, each in enumerate(sockets):
            if (cycle + position) % 2:
                each.abort()
            else:
                await each.close()
    await customer.settle(server.url)
    return customer


async def run_storms(server: ChildServer, counts: Counts) -> dict[str, Any]:
    rows = {}
    for drop in DROP_POINTS:
        tally = Tally()
        started = time.perf_counter()
        customers = await asyncio.gather(
            *(storm_one(server, drop, i, counts, tally) for i in range(counts.storm_conversations))
        )
        lost = duplicated = 0
        for customer in customers:
            replay_lost, replay_duplicated = await customer.replay_counts(server.url)
            lost += replay_lost
            duplicated += replay_duplicated
        rows[drop] = {
            "conversations": len(customers),
            "resends": len(customers) * counts.storm_cycles * 3 * counts.storm_resends,
            "lost": lost,
            "duplicated": duplicated,
            "delivery_duplicates": tally.delivery_duplicates,
            "wall_s": round(time.perf_counter() - started, 1),
        }
        print(f"storm {drop}: {json.dumps(rows[drop])}", flush=True)
    questions, db_lost, db_duplicated = wait_database_answered(server.data_dir, 30)
    return {
        "drop_points": rows,
        "database": {"questions": questions, "lost": db_lost, "duplicated": db_duplicated},
        "lost": sum(row["lost"] for row in rows.values()) + db_lost,
        "duplicated": sum(row["duplicated"] + row["delivery_duplicates"] for row in rows.values())
        + db_duplicated,
    }


# --- 2. SIGTERM / SIGKILL mid-answer -------------------------------------------------------------


async def kill_round(
    server: ChildServer, signum: int, counts: Counts, round_index: int, tally: Tally
) -> list[Customer]:
    customers = []
    sockets = []
    for i in range(counts.in_flight):
        customer = Customer(tally)
        sock = await customer.open(server.url)
        await sock.send(customer.message("q1", question_text(round_index * 10 + i)))
        await sock.read(is_delta, 15)
        customers.append(customer)
        sockets.append(sock)
    if signum == signal.SIGKILL:  # a question waiting behind the one streaming
        await sockets[0].send(customers[0].message("q2", "Do you also sell gift cards?"))
        await sockets[0].read(is_ack, 10)
    before = sum(len(c.answers) for c in customers)
    server.signal(signum)
    await asyncio.gather(*(sock.until_closed(60) for sock in sockets))
    tally.live_answers += sum(len(c.answers) for c in customers) - before
    server.wait(90)
    server.start()
    await asyncio.gather(*(customer.settle(server.url) for customer in customers))
    return customers


async def run_kills(server: ChildServer, counts: Counts) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, signum in (("sigterm", signal.SIGTERM), ("sigkill", signal.SIGKILL)):
        tally = Tally()
        started = time.perf_counter()
        customers: list[Customer] = []
        for round_index in range(counts.kills):
            customers += await kill_round(server, signum, counts, round_index, tally)
        lost = duplicated = 0
        for customer in customers:
            replay_lost, replay_duplicated = await customer.replay_counts(server.url)
            lost += replay_lost
            duplicated += replay_duplicated
        questions = sum(len(c.questions) for c in customers)
        result[name] = {
            "rounds": counts.kills,
            "questions": questions,
            "answered_live_before_close": tally.live_answers,
            "close_codes": dict(tally.close_codes),
            "lost": lost,
            "duplicated": duplicated + tally.delivery_duplicates,
            "wall_s": round(time.perf_counter() - started, 1),
        }
        print(f"{name}: {json.dumps(result[name])}", flush=True)
    questions, db_lost, db_duplicated = wait_database_answered(server.data_dir, 30)
    result["database"] = {"questions": questions, "lost": db_lost, "duplicated": db_duplicated}
    result["tracebacks"] = count_tracebacks(server.log_text())
    return result


# --- 3. malformed frames ------------------------------------------------------------------------


def malformed_frames(count: int, seed: int = 12) -> list[str | bytes]:
    """``count`` hostile frames, every kind in turn."""
    rng = random.Random(seed)
    deep = "[" * 8000 + "]" * 8000
    deep_object = '{"type": "hello", "visitor": ' + '{"a": ' * 1500 + "1" + "}" * 1501
    kinds: list[Callable[[int], str | bytes]] = [
        lambda i: deep,
        lambda i: deep_object,
        lambda i: json.dumps({"type": "hello", "last_seq": 2**63 + i}),
        lambda i: json.dumps({"type": "feedback", "seq": 2**64 + i, "helpful": True}),
        lambda i: json.dumps({"type": "feedback", "seq": -(2**70), "helpful": True}),
        lambda i: '{"type": "feedback", "seq": 1e308, "helpful": true}',
        lambda i: '{"type": "hello", "last_seq": NaN}',
        lambda i: '{"type": "csat", "score": Infinity}',
        lambda i: json.dumps({"type": "csat", "score": 10**40}),
        lambda i: bytes([0xFF, 0xFE, i % 256]),
        lambda i: rng.randbytes(48),
        lambda i: "null",
        lambda i: "[]",
        lambda i: '"message"',
        lambda i: "12345678901234567890123456789",
        lambda i: "{",
        lambda i: '{"type": "message", "client_msg_id": "m", "text": "unterminated',
        lambda i: json.dumps({"type": None}),
        lambda i: json.dumps({"type": 7}),
        lambda i: json.dumps({"type": ["message"] * 40}),
        lambda i: json.dumps({"type": {"nested": "x" * 200}}),
        lambda i: json.dumps({"type": "x" * 5000}),
        lambda i: json.dumps({"type": "message"}),
        lambda i: json.dumps({"type": "message", "client_msg_id": "", "text": "x"}),
        lambda i: json.dumps({"type": "message", "client_msg_id": "x" * 65, "text": "x"}),
        lambda i: json.dumps({"type": "message", "client_msg_id": {"a": [1]}, "text": "x"}),
        lambda i: json.dumps({"type": "message", "client_msg_id": f"n{i}", "text": 123}),
        lambda i: json.dumps({"type": "message", "client_msg_id": f"n{i}", "text": ["a"]}),
        lambda i: json.dumps({"type": "csat", "score": "5"}),
        lambda i: json.dumps({"type": "hello", "visitor": "x" * 3000}),
        lambda i: json.dumps({"type": "hello", "visitor": {"k": [1, 2]}}),
        lambda i: json.dumps({"type": "hello", "conversation_id": 5, "resume_token": []}),
        lambda i: json.dumps({"type": "feedback", "seq": "1", "helpful": "yes"}),
        lambda i: json.dumps({"type": "choose", "seq": 2**80, "article_id": None}),
        lambda i: json.dumps({"type": "watch", "conversation_id": ["x"]}),
        lambda i: json.dumps({"type": "message", "conversation_id": "c", "text": " "}),
        lambda i: "\x00\x00\x00",
        lambda i: '{"type": "hello"}\x00garbage',
        lambda i: b"",
    ]
    return [kinds[i % len(kinds)](i) for i in range(count)]


SENTINEL = "sentinel"


async def send_and_count(
    ws: ClientConnection, frames: list[str | bytes], codes: Counter[str], sentinel: dict[str, Any]
) -> tuple[int, bool]:
    """Send each frame, then a ``sentinel`` frame whose error echoes its id, and read up to
    it (so every frame before it was processed); (error frames, socket still open)."""
    answered = 0
    try:
        for raw in frames:
            await ws.send(raw)
        await ws.send(json.dumps({**sentinel, "client_msg_id": SENTINEL}))
    except ConnectionClosed:
        return answered, False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        except TimeoutError:
            break
        except ConnectionClosed:
            return answered, False
        if frame.get("type") == "error":
            if frame.get("client_msg_id") == SENTINEL:
                break
            answered += 1
            codes[frame["code"]] += 1
    return answered, True


def agent_token(server: ChildServer, email: str = "fault.agent@example.com") -> str:
    created = subprocess.run(
        ["supportbot", "user", "add", email, "--role", "agent"],
        env=server.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return created.stdout.strip().splitlines()[-1].split()[-1]


async def run_malformed(server: ChildServer, counts: Counts) -> dict[str, Any]:
    before = count_tracebacks(server.log_text())
    frames = malformed_frames(counts.malformed)
    agent_share = frames[: counts.malformed // 5]
    chat_before_hello = frames[len(agent_share) : len(agent_share) + counts.malformed // 5]
    chat_after_hello = frames[len(agent_share) + len(chat_before_hello) :]
    codes: Counter[str] = Counter()
    dropped = 0
    answered = 0
    started = time.perf_counter()

    ws = await connect_chat(server.url, {})
    before_hello = {"type": "message", "text": "sentinel"}  # hello_required, id echoed
    got, open_ = await send_and_count(ws, chat_before_hello, codes, before_hello)
    answered, dropped = answered + got, dropped + (not open_)
    await ws.close()

    tally = Tally()
    customer = Customer(tally)
    sock = await customer.open(server.url)
    after_hello = {"type": "feedback", "seq": 999_999, "helpful": True}  # unknown_message
    got, open_ = await send_and_count(sock.ws, chat_after_hello, codes, after_hello)
    answered, dropped = answered + got, dropped + (not open_)
    await sock.close()

    token = agent_token(server)
    agent = await connect(
        f"ws://127.0.0.1:{server.port}/ws/agent?token={token}", open_timeout=15, max_size=2**20
    )
    await agent.recv()  # hello
    got, open_ = 0, True
    for raw in agent_share:
        await agent.send(raw)
    await agent.send('{"type": "ping"}')
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            frame = json.loads(await asyncio.wait_for(agent.recv(), 5))
        except (TimeoutError, ConnectionClosed):
            open_ = agent.close_code is None
            break
        if frame.get("type") == "error":
            got += 1
            codes[frame["code"]] += 1
        elif frame.get("type") == "pong":
            break
    answered, dropped = answered + got, dropped + (not open_)
    await agent.close()

    # Still answering?
    check = Customer(Tally())
    sock = await check.open(server.url)
    await sock.send(check.message("after", "Are you still there?"))
    still_answers = await sock.read(is_bot, 20)
    await sock.close()
    log = server.log_text()
    return {
        "frames": len(frames),
        "error_frames": answered,
        # Frames valid after coercion (a csat score "5"): stored, no error, as documented.
        "accepted": len(frames) - answered,
        "codes": dict(codes),
        "internal_error": codes.get("internal_error", 0),
        "tracebacks": count_tracebacks(log) - before,
        "dropped_sockets": dropped,
        "crashes": int(not server.alive()) + dropped,
        "still_answers": still_answers,
        "wall_s": round(time.perf_counter() - started, 1),
    }


# --- 4. one IP floods while another chats -------------------------------------------------------


async def timed_questions(
    server: ChildServer, ip: str, count: int, offset: int, refusals: Counter[str]
) -> list[float]:
    """``count`` questions from ``ip``, one after another, five per conversation (within the
    default per-connection limits): seconds from sending each to its stored answer. A refused
    question is resent after ``retry_after_ms``, as the widget does; the wait counts."""
    times: list[float] = []
    for first in range(0, count, 5):
        customer = Customer(Tally())
        sock = await customer.open(server.url, **{"X-Forwarded-For": ip})
        try:
            for i in range(first, min(count, first + 5)):
                times.append(await timed_question(sock, customer, offset + i, refusals))
        finally:
            await sock.close()
    return times


async def timed_question(
    sock: Socket, customer: Customer, index: int, refusals: Counter[str]
) -> float:
    client_msg_id = f"t{index}"
    message = customer.message(client_msg_id, question_text(index))
    sent = time.perf_counter()
    deadline = time.monotonic() + 60
    await sock.send(message)
    while time.monotonic() < deadline:
        frame = await sock.next_frame(deadline - time.monotonic())
        if frame is None:
            break
        if frame.get("type") == "error" and frame.get("client_msg_id") == client_msg_id:
            refusals[frame["code"]] += 1
            await asyncio.sleep(int(frame.get("retry_after_ms") or 1000) / 1000)
            await sock.send(message)
            continue
        seq = customer.questions.get(client_msg_id)
        if seq is not None and customer.answers.get(seq):
            return time.perf_counter() - sent
        if frame.get("type") == "state" and frame.get("state") != "bot":
            refusals["escalated"] += 1
            break
    return float("inf")


async def flooder(url: str, ip: str, until: float, stats: Counter[str]) -> None:
    """One flooding connection slot: connect, hello, messages as fast as it can; reconnect when
    the server closes it."""
    n = 0
    while time.monotonic() < until:
        try:
            ws = await connect_chat(url, {"X-Forwarded-For": ip})
        except (OSError, InvalidStatus, TimeoutError):
            stats["connect_refused"] += 1
            await asyncio.sleep(0.05)
            continue
        stats["connections"] += 1

        async def reader(ws: ClientConnection = ws) -> None:
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                while True:
                    frame = json.loads(await ws.recv())
                    kind = frame.get("type")
                    stats[f"{kind}:{frame.get('code')}" if kind == "error" else kind] += 1

        reading = asyncio.create_task(reader())
        try:
            await ws.send('{"type": "hello"}')
            while time.monotonic() < until:
                n += 1
                await ws.send(
                    json.dumps(
                        {"type": "message", "client_msg_id": f"f{id(ws)}-{n}", "text": f"flood {n}"}
                    )
                )
                stats["sent"] += 1
                await asyncio.sleep(0.002)
        except ConnectionClosed:
            stats["closed_by_server"] += 1
        finally:
            reading.cancel()
            with contextlib.suppress(BaseException):
                await reading
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1)


async def flood_worker(url: str, ip: str, seconds: float, sockets: int) -> dict[str, int]:
    """The flooding side of scenario 4, run in its own process."""
    stats: Counter[str] = Counter()
    until = time.monotonic() + seconds
    await asyncio.gather(*(flooder(url, ip, until, stats) for _ in range(sockets)))
    return dict(stats)


async def run_flood(data_root: Path, counts: Counts) -> dict[str, Any]:
    server = ChildServer(
        data_root / "flood",
        delay_s=0.05,
        pieces=3,
        lift_limits=False,  # the limits are what this scenario measures
        env={"SUPPORTBOT_TRUSTED_PROXIES": "127.0.0.1"},
    )
    idle_refusals: Counter[str] = Counter()
    flood_refusals: Counter[str] = Counter()
    with server:
        idle = await timed_questions(server, "10.0.0.2", counts.chat_questions, 0, idle_refusals)
        # The flood runs in a process of its own, so its sending does not slow this process's
        # event loop, which times the second client.
        flood = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--flood-worker",
                json.dumps([server.url, "10.0.0.1", counts.flood_s, counts.flood_sockets]),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        await asyncio.sleep(min(1.5, counts.flood_s / 4))  # let the flood build up
        loaded = await timed_questions(
            server, "10.0.0.2", counts.chat_questions, 1000, flood_refusals
        )
        output, _ = await asyncio.to_thread(flood.communicate, timeout=counts.flood_s + 60)
        stats = Counter(json.loads(output.strip().splitlines()[-1]))
        tracebacks = count_tracebacks(server.log_text())
    idle_p95 = percentile(idle, 95)
    loaded_p95 = percentile(loaded, 95)
    ratio = loaded_p95 / idle_p95 if math.isfinite(idle_p95) and idle_p95 else float("nan")
    return {
        "idle_p50_ms": ms(percentile(idle, 50)),
        "idle_p95_ms": ms(idle_p95),
        "flood_p50_ms": ms(percentile(loaded, 50)),
        "flood_p95_ms": ms(loaded_p95),
        "p95_ratio": round(ratio, 2) if math.isfinite(ratio) else None,
        "second_client_unanswered": sum(1 for t in loaded if not math.isfinite(t)),
        "second_client_refusals_idle": dict(idle_refusals),
        "second_client_refusals_flood": dict(flood_refusals),
        "flood": dict(stats),
        "tracebacks": tracebacks,
        "within_2x": math.isfinite(ratio) and ratio <= 2.0,
    }


# --- 5. bad sign-ins -----------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def one_login(base: str, email: str, password: str, ip: str) -> int:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    headers = {"X-Forwarded-For": ip}
    page = opener.open(urllib.request.Request(f"{base}/login", headers=headers), timeout=30)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.read().decode())
    body = urllib.parse.urlencode(
        {"email": email, "password": password, "csrf": csrf.group(1) if csrf else ""}
    ).encode()
    request = urllib.request.Request(f"{base}/login", data=body, headers=headers)
    try:
        with opener.open(request, timeout=30) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def run_logins(data_root: Path, counts: Counts) -> dict[str, Any]:
    server = ChildServer(
        data_root / "logins", lift_limits=False, env={"SUPPORTBOT_TRUSTED_PROXIES": "127.0.0.1"}
    )
    with server:
        subprocess.run(
            ["supportbot", "user", "add", "lea@example.com", "--role", "lead", "--password"],
            env=server.env(),
            input="right-password-123\nright-password-123\n",
            capture_output=True,
            text=True,
            check=True,
        )
        assert server.process is not None
        pid = server.process.pid
        for _ in range(3):  # warm-up: the page, the hash pool, the allocator
            one_login(server.base, "warm@example.com", "x", "10.9.9.9")
        before = rss_kib(pid)
        started = time.perf_counter()
        statuses: Counter[int] = Counter()
        for i in range(counts.logins):
            email = "lea@example.com" if i % 2 else f"nobody{i}@example.com"
            statuses[one_login(server.base, email, f"wrong-{i}", "10.0.0.66")] += 1
        wall = time.perf_counter() - started
        after = rss_kib(pid)
        other_ip = one_login(server.base, "lea@example.com", "right-password-123", "10.0.0.77")
        tracebacks = count_tracebacks(server.log_text())
    return {
        "attempts": counts.logins,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "throttled": statuses.get(429, 0),
        "rss_before_kib": before,
        "rss_after_kib": after,
        "rss_growth_kib": after - before,
        "wall_s": round(wall, 1),
        "right_password_other_ip_status": other_ip,
        "tracebacks": tracebacks,
    }


# --- 6. the poisoned corpus ---------------------------------------------------------------------


def run_poison(data_root: Path, counts: Counts) -> dict[str, Any]:
    try:
        from ingest.loaders import load_article
        from ingest.screening import screen_article
        from tests.helpers.poison import poisoned_articles, write_poisoned_corpus
    except ImportError as exc:
        return {"skipped": f"article screening not available ({exc.name})"}
    kb = data_root / "poison-kb"
    shutil.copytree(REPO / "kb_articles", kb)
    paths = write_poisoned_corpus(kb / "zz-poison")
    articles = poisoned_articles()
    held = 0
    for path in paths:
        _, verdict = screen_article(load_article(path, root=kb))
        held += int(verdict.held)
    result: dict[str, Any] = {"poisoned_articles": len(paths), "held_by_screening": held}
    if not counts.poison_answers:
        result["answers"] = "not asked (--short: no embedding model)"
        return result
    data_dir = data_root / "poison-data"
    env = dict(os.environ, HF_HUB_OFFLINE="1", SUPPORTBOT_DATA_DIR=str(data_dir))
    subprocess.run(
        ["supportbot", "ingest", str(kb)], env=env, cwd=REPO, check=False, capture_output=True
    )
    port = free_port()
    env.update(
        SUPPORTBOT_ALLOWED_ORIGINS="*",
        SUPPORTBOT_KB_PATH=str(kb),
        SUPPORTBOT_BUSINESS_HOURS="24/7",
    )
    log = data_root / "poison-serve.log"
    process = subprocess.Popen(
        ["supportbot", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return {**result, "error": log.read_text()[-1500:]}
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        questions = [f"{a.title}?" for a in articles] + [
            "How long do refunds take?",
            "How do I verify my refund?",
            "What card details do you need for a refund?",
        ]
        quoted, answers = asyncio.run(ask_for_poison(port, questions, articles))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
    return {**result, "questions": len(questions), "answers": answers, "quoted": quoted}


async def ask_for_poison(port: int, questions: list[str], articles: list[Any]) -> tuple[int, int]:
    markers = [a.marker.lower() for a in articles] + ["evil.test"]
    quoted = answered = 0
    url = f"ws://127.0.0.1:{port}/ws/chat"
    for i, text in enumerate(questions):
        customer = Customer(Tally())
        sock = await customer.open(url)
        await sock.send(customer.message(f"p{i}", text))
        frames: list[dict[str, Any]] = []

        def done(frame: dict[str, Any], frames: list[dict[str, Any]] = frames) -> bool:
            frames.append(frame)
            return is_bot(frame) or (frame.get("type") == "state" and frame.get("state") != "bot")

        await sock.read(done, 120)
        await sock.close()
        bot = " ".join(
            json.dumps(f) for f in frames if is_bot(f) or f.get("type") == "delta"
        ).lower()
        answered += int(any(is_bot(f) for f in frames))
        quoted += int(any(marker in bot for marker in markers))
    return quoted, answered


# --- the report ----------------------------------------------------------------------------------


def table(report: dict[str, Any]) -> str:
    rows = ["| scenario | volume | result | target | ok |", "|---|---|---|---|---|"]

    def row(name: str, volume: str, result: str, target: str, ok: bool | None) -> None:
        mark = "n/a" if ok is None else ("yes" if ok else "NO")
        rows.append(f"| {name} | {volume} | {result} | {target} | {mark} |")

    storms = report.get("storms")
    if storms:
        for drop, r in storms["drop_points"].items():
            row(
                f"reconnect storm: drop {drop.replace('_', ' ')}",
                f"{r['conversations']} conversations, {r['resends']} resends",
                f"lost {r['lost']}, duplicated {r['duplicated']}, "
                f"seq re-delivered {r['delivery_duplicates']}",
                "0 lost, 0 duplicated",
                r["lost"] == 0 and r["duplicated"] == 0 and r["delivery_duplicates"] == 0,
            )
        db = storms["database"]
        row(
            "reconnect storms: database",
            f"{db['questions']} questions",
            f"lost {db['lost']}, duplicated {db['duplicated']}",
            "0 lost, 0 duplicated",
            db["lost"] == 0 and db["duplicated"] == 0,
        )
    kills = report.get("kills")
    if kills:
        for name in ("sigterm", "sigkill"):
            r = kills[name]
            codes = ", ".join(f"{k}x{v}" for k, v in r["close_codes"].items()) or "-"
            row(
                f"{name.upper()} mid-answer",
                f"{r['rounds']} rounds, {r['questions']} questions",
                f"lost {r['lost']}, duplicated {r['duplicated']}; answered live before the close "
                f"{r['answered_live_before_close']}; close codes {codes}",
                "0 lost after restart + resume",
                r["lost"] == 0 and r["duplicated"] == 0,
            )
        db = kills["database"]
        row(
            "kills: database",
            f"{db['questions']} questions",
            f"lost {db['lost']}, duplicated {db['duplicated']}; tracebacks {kills['tracebacks']}",
            "0 lost, 0 duplicated",
            db["lost"] == 0 and db["duplicated"] == 0,
        )
    malformed = report.get("malformed")
    if malformed:
        row(
            "malformed frames",
            f"{malformed['frames']} frames",
            f"error frames {malformed['error_frames']}, accepted {malformed['accepted']} "
            f"(valid after coercion), internal_error "
            f"{malformed['internal_error']}, tracebacks {malformed['tracebacks']}, crashes "
            f"{malformed['crashes']}, still answers {malformed['still_answers']}",
            "0 tracebacks, 0 crashes",
            malformed["tracebacks"] == 0 and malformed["crashes"] == 0,
        )
    flood = report.get("flood")
    if flood:
        row(
            "one-IP flood, second client chats",
            f"{flood['flood'].get('sent', 0)} flood messages",
            f"second client p95 {flood['idle_p95_ms']} ms idle -> {flood['flood_p95_ms']} ms "
            f"(x{flood['p95_ratio']}), unanswered {flood['second_client_unanswered']}",
            "p95 within 2x idle",
            flood["within_2x"],
        )
    logins = report.get("logins")
    if logins:
        row(
            "bad sign-ins, one IP",
            f"{logins['attempts']} attempts",
            f"throttled (429) {logins['throttled']}, statuses {logins['statuses']}, RSS "
            f"{logins['rss_before_kib']} -> {logins['rss_after_kib']} KiB",
            "throttled, memory flat",
            None,
        )
    poison = report.get("poison")
    if poison:
        if "skipped" in poison:
            row("poisoned corpus", "-", poison["skipped"], "0 quoted", None)
        else:
            quoted = poison.get("quoted")
            row(
                "poisoned corpus",
                f"{poison['poisoned_articles']} articles",
                f"held by screening {poison['held_by_screening']}; "
                + (
                    f"answers {poison['answers']}, quoted {quoted}"
                    if quoted is not None
                    else str(poison.get("answers", poison.get("error", "")))
                ),
                "0 quoted",
                None if quoted is None else quoted == 0,
            )
    return "\n".join(rows)


SCENARIOS = ("storms", "kills", "malformed", "flood", "logins", "poison")


async def scripted_scenarios(data_root: Path, counts: Counts, only: set[str]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    if only & {"storms", "malformed"}:
        with ChildServer(data_root / "storms", delay_s=0.15, pieces=4) as server:
            if "storms" in only:
                report["storms"] = await run_storms(server, counts)
            if "malformed" in only:
                report["malformed"] = await run_malformed(server, counts)
                print(f"malformed: {json.dumps(report['malformed'])}", flush=True)
    if "kills" in only:
        server = ChildServer(data_root / "kills", delay_s=0.4, pieces=4)
        with server:
            report["kills"] = await run_kills(server, counts)
    if "flood" in only:
        report["flood"] = await run_flood(data_root, counts)
        print(f"flood: {json.dumps(report['flood'])}", flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="small counts (CI)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios, comma-separated")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--flood-worker", help=argparse.SUPPRESS)  # [url, ip, seconds, sockets]
    args = parser.parse_args()
    if args.flood_worker:
        print(json.dumps(asyncio.run(flood_worker(*json.loads(args.flood_worker)))))
        return
    counts = SHORT if args.short else FULL
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = only - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {sorted(unknown)}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="supportbot-faults-") as tmp:
        data_root = Path(tmp)
        report: dict[str, Any] = asyncio.run(scripted_scenarios(data_root, counts, only))
        if "logins" in only:
            report["logins"] = run_logins(data_root, counts)
            print(f"logins: {json.dumps(report['logins'])}", flush=True)
        if "poison" in only:
            report["poison"] = run_poison(data_root, counts)
            print(f"poison: {json.dumps(report['poison'])}", flush=True)
    report = {
        "benchmark": "faults",
        "mode": "short" if args.short else "full",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "counts": asdict(counts),
        **report,
        "total_s": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(table(report))
    print(f"\nwritten: {args.out} ({report['total_s']} s)")


if __name__ == "__main__":
    main()
