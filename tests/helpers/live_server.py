"""A real Supportbot server on a free port, and a small ``websockets`` client, for chat tests.

The server is uvicorn in a background thread with the same WebSocket options as
``supportbot serve`` (``bot.live.transport.uvicorn_ws_options``); its socket is bound before uvicorn
starts, so there is no race for the port. Tests that must not depend on retrieval quality swap
in a :class:`ScriptedAnswerer`: everything else (sockets, store, bus) is the real thing.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn
from sqlalchemy import create_engine, text
from websockets.asyncio.client import ClientConnection, connect

from bot.core.schemas import Answerer, AnswerResult, Source, Turn
from bot.core.settings import Settings
from bot.live.transport import uvicorn_ws_options
from bot.web.app import AppContext, create_app

ORIGIN = "http://localhost:8000"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def postgres_schema(url: str = PG_URL) -> Iterator[str]:
    """A database URL whose ``search_path`` is a fresh schema, dropped afterwards.

    Skips the test (does not fail it) when the PostgreSQL server is not reachable.
    """
    admin = create_engine(url)
    try:
        with admin.connect() as connection:
            connection.execute(text("select 1"))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {url}: {exc.__class__.__name__}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


class ScriptedAnswerer:
    """Streams fixed pieces with a delay between them; counts the questions it was asked."""

    def __init__(
        self,
        pieces: Sequence[str] = ("Returns are ", "free within ", "30 days."),
        *,
        delay_s: float = 0.0,
        escalate: bool = False,
    ) -> None:
        self.pieces = list(pieces)
        self.delay_s = delay_s
        self.escalate = escalate
        self.questions: list[str] = []
        self.histories: list[list[Turn]] = []

    async def stream(
        self, question: str, history: Sequence[Turn] = ()
    ) -> AsyncIterator[str | AnswerResult]:
        self.questions.append(question)
        self.histories.append(list(history))
        await asyncio.sleep(self.delay_s)  # "retrieval"
        for piece in self.pieces:
            yield piece
            await asyncio.sleep(self.delay_s)
        yield AnswerResult(
            answer="".join(self.pieces),
            escalate=self.escalate,
            reason="low_confidence" if self.escalate else None,
            confidence=0.2 if self.escalate else 0.9,
            sources=[
                Source(
                    article_id="returns/return-policy",
                    title="Return policy",
                    url="https://help.example.com/returns/return-policy",
                    score=0.9,
                )
            ],
        )


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    return sock


class LiveServer:
    """``with LiveServer(settings) as server:`` a started server; ``server.url`` is /ws/chat."""

    def __init__(self, settings: Settings, answerer: Answerer | None = None) -> None:
        self.settings = settings
        self.answerer = answerer
        self.app = create_app(settings)
        self._sock = _bound_socket()
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="on", **uvicorn_ws_options(settings)
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat"

    @property
    def ctx(self) -> AppContext:
        ctx: AppContext = self.app.state.ctx
        return ctx

    def start(self, timeout: float = 120.0) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        if self.answerer is not None:
            self.ctx.answerer = self.answerer
            self.ctx.chat.answerer = self.answerer
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answers_in_flight(self) -> int:
        return len(self.ctx.chat.answer_tasks)

    def wait_idle(self, timeout: float = 20.0) -> None:
        """Block until no answer task is running in the server."""
        deadline = time.monotonic() + timeout
        while self.answers_in_flight():
            if time.monotonic() > deadline:
                raise TimeoutError("answers still running")
            time.sleep(0.02)


def chat_connect(url: str, origin: str | None = ORIGIN, **kwargs: Any) -> Any:
    """``async with chat_connect(url) as ws``: a websockets client with the demo page's origin."""
    return connect(url, origin=origin, open_timeout=10, **kwargs)  # type: ignore[arg-type]


async def send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


async def recv(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return data


async def recv_until(
    ws: ClientConnection,
    stop: Callable[[dict[str, Any]], bool],
    timeout: float = 15.0,
) -> list[dict[str, Any]]:
    """Frames up to and including the first for which ``stop`` is true."""
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        frame = await recv(ws, max(0.01, deadline - time.monotonic()))
        frames.append(frame)
        if stop(frame):
            return frames


async def quiet(ws: ClientConnection, seconds: float = 0.3) -> list[dict[str, Any]]:
    """Whatever arrives within ``seconds`` (used to prove that nothing more comes)."""
    frames: list[dict[str, Any]] = []
    try:
        while True:
            frames.append(await recv(ws, seconds))
    except TimeoutError:
        return frames


async def hello(ws: ClientConnection, **fields: Any) -> dict[str, Any]:
    await send(ws, {"type": "hello", **fields})
    return await recv(ws)


def is_bot_message(frame: dict[str, Any]) -> bool:
    return frame["type"] == "message" and frame["role"] == "bot"
