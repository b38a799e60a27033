"""The first delta waits for as few store round trips as possible.

Profiling ``bench/chat_latency.py`` (issue 11) showed the chat service spending about as much
CPU per turn on its own store work as the extractive answer costs, and each round trip through
the store's worker threads queues behind every other chat's commits before the answer can even
start. Between the customer's message and the answerer's first call there is the transaction
that stores the message (the ack) and one that reads what the answer needs (history, locale):
a third one, as the locale lookup once was, delays every first delta.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.core.schemas import AnswerResult, Turn
from bot.core.settings import Settings
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

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

T = TypeVar("T")


class CountingAnswerer(ScriptedAnswerer):
    """Notes how many store transactions had started when the answer began."""

    def __init__(self) -> None:
        super().__init__()
        self.trips: list[str] = []
        self.trips_at_start: list[list[str]] = []

    async def stream(
        self, question: str, history: Sequence[Turn] = ()
    ) -> AsyncIterator[str | AnswerResult]:
        self.trips_at_start.append(list(self.trips))
        async for item in super().stream(question, history):
            yield item


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[LiveServer, CountingAnswerer]]:
    answerer = CountingAnswerer()
    settings = Settings(  # type: ignore[call-arg]
        data_dir=tmp_path / "data", allowed_origins=[ORIGIN], _env_file=None
    )
    with LiveServer(settings, answerer) as live:
        database = live.ctx.chat.database
        real_run = database.run

        async def counting_run(work: Callable[[Any], T]) -> T:
            answerer.trips.append(getattr(work, "__name__", "?"))
            return await real_run(work)

        database.run = counting_run  # type: ignore[method-assign]
        yield live, answerer


async def test_an_answer_starts_after_two_store_trips(
    counted: tuple[LiveServer, CountingAnswerer],
) -> None:
    server, answerer = counted
    async with chat_connect(server.url) as ws:
        await hello(ws)
        answerer.trips.clear()  # from here: the customer's question
        await send(ws, {"type": "message", "client_msg_id": "q1", "text": "Can I return it?"})
        frames = await recv_until(ws, is_bot_message)
        await send(ws, {"type": "message", "client_msg_id": "q2", "text": "And the costs?"})
        await recv_until(ws, is_bot_message)
    assert frames[0]["type"] == "ack"
    assert answerer.questions == ["Can I return it?", "And the costs?"]
    # Store the question (the ack), then one read of what the answer needs.
    first = answerer.trips_at_start[0]
    assert len(first) == 2, first
    # The follow-up still gets its conversation from that one read.
    assert [t.content for t in answerer.histories[1]][:2] == [
        "Can I return it?",
        "Returns are free within 30 days.",
    ]
