"""A real Supportbot server in a child process, for tests and the fault suite that must signal
it (SIGTERM, SIGKILL) and start it again on the same data directory.

The child runs what ``supportbot serve`` runs (:func:`bot.cli.run_server`: uvicorn, the graceful
drain, the log filter, the real app, store, bus and sockets) with one difference: the knowledge
side is a scripted answerer that streams a fixed answer slowly, so a test can hit an answer in
the middle, and the child starts in seconds (no embedding model, no vector store).

    python -m tests.helpers.child_server --delay 0.4      # reads SUPPORTBOT_* like serve

This module imports neither pytest nor the test fixtures: ``bench/faults.py`` uses it too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parents[2]


# --- the child ----------------------------------------------------------------------------------


class SlowAnswerer:
    """Streams ``Answer to: <question>`` in ``pieces`` pieces, ``delay_s`` apart."""

    def __init__(self, delay_s: float, pieces: int) -> None:
        self.delay_s = delay_s
        self.pieces = max(1, pieces)

    async def stream(self, question: str, history: Sequence[Any] = ()) -> AsyncIterator[Any]:
        from bot.core.schemas import AnswerResult, Source

        text = f"Answer to: {question}"
        size = max(1, -(-len(text) // self.pieces))
        await asyncio.sleep(self.delay_s)  # "retrieval"
        for start in range(0, len(text), size):
            yield text[start : start + size]
            await asyncio.sleep(self.delay_s)
        yield AnswerResult(
            answer=text,
            escalate=False,
            confidence=0.9,
            sources=[
                Source(
                    article_id="faq/scripted",
                    title="Scripted",
                    url="https://help.example.com/faq/scripted",
                    score=0.9,
                )
            ],
        )


class _NoLibrary:
    def close(self) -> None:
        pass


def scripted_context(settings: Any, answerer: SlowAnswerer) -> Any:
    """``bot.web.app.build_context`` without the knowledge side: the real database, bus and
    chat service, the scripted answerer."""
    from bot.conversations.redis_events import make_event_bus
    from bot.core.db import DatabaseWorkers, make_engine, make_session_factory
    from bot.core.migrate import upgrade_database
    from bot.live.customer import ChatService
    from bot.web.context import AppContext

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.ensure_secret_key()
    engine = make_engine(settings.effective_database_url)
    upgrade_database(engine)
    sessions = make_session_factory(engine)
    database = DatabaseWorkers(sessions)
    events = make_event_bus(settings)  # Redis pub/sub when SUPPORTBOT_REDIS_URL is set
    none = cast(Any, None)
    return AppContext(
        settings=settings,
        embedder=none,
        collection=none,
        engine=engine,
        sessions=sessions,
        database=database,
        events=events,
        retriever=none,
        answerer=cast(Any, answerer),
        chat=ChatService(settings, database, events, cast(Any, answerer)),
        writer=none,
        library=cast(Any, _NoLibrary()),
    )


def child_main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Supportbot with a scripted slow answerer")
    parser.add_argument("--delay", type=float, default=0.4, help="seconds between pieces")
    parser.add_argument("--pieces", type=int, default=4, help="pieces per answer")
    args = parser.parse_args(argv)

    import bot.web.app as web_app
    from bot.cli import run_server
    from bot.core.settings import Settings

    settings = Settings()
    answerer = SlowAnswerer(args.delay, args.pieces)
    web_app.build_context = lambda s: scripted_context(s, answerer)  # type: ignore[assignment]
    run_server(web_app.create_app(settings), settings)


# --- the parent ---------------------------------------------------------------------------------


# Settings that limit one client: every test client comes from 127.0.0.1, so they are lifted
# unless a scenario measures them (``lift_limits=False``).
LIMIT_PREFIXES = ("chat_rate_", "ask_rate_", "answer_queue", "answer_concurrency")
LIMIT_NAMES = ("chat_close_after_refusals",)


def lifted_limits() -> dict[str, str]:
    """``SUPPORTBOT_*`` values that lift every rate limit and answer queue, read off
    ``Settings`` (so a limit added later is lifted too), each within its own upper bound."""
    from annotated_types import Le, Lt

    from bot.core.settings import Settings

    env: dict[str, str] = {}
    for name, info in Settings.model_fields.items():
        if not (name.startswith(LIMIT_PREFIXES) or name in LIMIT_NAMES):
            continue
        if info.annotation not in (int, float):
            continue
        value = 1_000_000
        for bound in info.metadata:
            if isinstance(bound, Le):
                value = min(value, int(bound.le))  # type: ignore[call-overload]
            elif isinstance(bound, Lt):
                value = min(value, int(bound.lt) - 1)  # type: ignore[call-overload]
        env[f"SUPPORTBOT_{name.upper()}"] = str(value)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChildServer:
    """One server process on ``data_dir``; ``start()`` again after it stopped for a restart
    (a new port each time: a killed server's port may linger)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        delay_s: float = 0.4,
        pieces: int = 4,
        env: dict[str, str] | None = None,
        lift_limits: bool = True,
    ) -> None:
        self.lift_limits = lift_limits
        self.data_dir = data_dir
        self.delay_s = delay_s
        self.pieces = pieces
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0
        self.logs: list[Path] = []

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "HF_HUB_OFFLINE": "1",
                "PYTHONUNBUFFERED": "1",
                "SUPPORTBOT_DATA_DIR": str(self.data_dir),
                "SUPPORTBOT_HOST": "127.0.0.1",
                "SUPPORTBOT_PORT": str(self.port),
                "SUPPORTBOT_ALLOWED_ORIGINS": "*",
                "SUPPORTBOT_SHUTDOWN_GRACE_S": "10",
                "SUPPORTBOT_BUSINESS_HOURS": "24/7",
            }
        )
        if self.lift_limits:
            env.update(lifted_limits())
        env.update(self.extra_env)
        return env

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat"

    def start(self, timeout: float = 120.0) -> ChildServer:
        self.port = free_port()
        self.starts += 1
        log = self.data_dir.parent / f"serve-{self.starts}.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs.append(log)
        command = [
            sys.executable,
            "-m",
            "tests.helpers.child_server",
            "--delay",
            str(self.delay_s),
            "--pieces",
            str(self.pieces),
        ]
        self.process = subprocess.Popen(
            command, env=self.env(), cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=1) as reply:
                    if reply.status == 200 and json.load(reply)["status"] == "ok":
                        return self
            except OSError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError("the server did not start")

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait(30)

    def wait(self, timeout: float = 60.0) -> int | None:
        """The exit status once it stopped (SIGKILL after ``timeout``)."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=30)

    def stop(self) -> None:
        self.terminate()
        self.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return "".join(path.read_text(errors="replace") for path in self.logs if path.exists())

    def __enter__(self) -> ChildServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.alive():
            self.stop()


if __name__ == "__main__":
    child_main()
