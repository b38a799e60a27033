"""The bot keeps helping while a conversation waits for a person, over the real sockets.

The reported conversation: escalated out of hours, then five more questions (two of them
answerable) got nothing but "Waiting for a person..." until the morning, under a green "Online".
Now, while the conversation is ``awaiting_human``, a question the bot is sure of is answered (as
the bot, saying a person still follows up) and the conversation stays in the queue; a doubtful
one is left to the person; once a person has claimed the chat the bot is silent, also for an
answer that was still being computed when the person arrived. ``welcome`` and ``state`` frames
say whether people are available now.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.core.db import transaction
from bot.core.models import QueueItem
from bot.core.schemas import AnswerResult, Source, Turn
from bot.core.settings import Settings
from bot.handoff.hours import DAYS
from bot.people.users import create_user
from tests.helpers.live_server import (
    ORIGIN,
    LiveServer,
    chat_connect,
    hello,
    is_bot_message,
    quiet,
    recv_until,
    send,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SURE = "How long does a refund take?"  # the answerer is sure of questions about refunds
DOUBTFUL = "Can I pay with a voucher from the shop next door?"


class ConfidenceAnswerer:
    """Answers refund questions with confidence 0.92 and everything else with 0.66: above the
    usual threshold (0.6) but below the one for answering while waiting (0.85)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.questions: list[str] = []

    async def stream(
        self, question: str, history: Sequence[Turn] = ()
    ) -> AsyncIterator[str | AnswerResult]:
        self.questions.append(question)
        await asyncio.sleep(self.delay_s)
        sure = "refund" in question.lower()
        text = "Refunds are paid within 5 business days." if sure else "Vouchers are accepted."
        yield text
        yield AnswerResult(
            answer=text,
            escalate=False,
            confidence=0.92 if sure else 0.66,
            sources=[Source(article_id="billing/refunds", title="Refunds", score=0.9)],
        )


def closed_today() -> str:
    """Business hours on a weekday other than today (UTC): whenever the test runs, people are
    not available now."""
    today = datetime.now(UTC).weekday()
    return f"{DAYS[(today + 2) % 7].title()} 09:00-17:00"


@pytest.fixture
def answerer() -> ConfidenceAnswerer:
    return ConfidenceAnswerer(delay_s=0.01)


@pytest.fixture
def server(tmp_path: Path, answerer: ConfidenceAnswerer) -> Iterator[LiveServer]:
    settings = Settings(
        data_dir=tmp_path / "data",
        allowed_origins=[ORIGIN],
        business_hours=closed_today(),
        _env_file=None,
    )
    with LiveServer(settings, answerer) as live:
        yield live


def agent_api(server: LiveServer) -> httpx.AsyncClient:
    with transaction(server.ctx.sessions) as session:
        _, token = create_user(session, "ana@example.com", "agent")
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def open_items(server: LiveServer, conversation_id: str) -> list[QueueItem]:
    with server.ctx.sessions() as session:
        return list(
            session.scalars(
                select(QueueItem).where(
                    QueueItem.conversation_id == conversation_id, QueueItem.open_key.is_not(None)
                )
            )
        )


async def ask(ws: Any, client_msg_id: str, text: str) -> None:
    await send(ws, {"type": "message", "client_msg_id": client_msg_id, "text": text})
    await recv_until(ws, lambda f: f["type"] == "ack" and f["client_msg_id"] == client_msg_id)


async def test_the_bot_answers_what_it_is_sure_of_while_the_conversation_waits(
    server: LiveServer, answerer: ConfidenceAnswerer
) -> None:
    async with chat_connect(server.url) as customer:
        welcome = await hello(customer)
        conversation_id = welcome["conversation_id"]
        assert welcome["available"] is False
        opening = datetime.fromisoformat(welcome["next_opening"])
        assert opening > datetime.now(UTC) and (opening.hour, opening.minute) == (9, 0)

        await send(customer, {"type": "handoff_request"})
        frames = await recv_until(customer, lambda f: f["type"] == "state")
        assert frames[-1]["state"] == "awaiting_human"
        assert frames[-1]["available"] is False and frames[-1]["next_opening"]
        notice = await recv_until(customer, lambda f: f.get("role") == "system")
        assert "offline right now" in notice[-1]["text"]

        # A question the bot is sure of: answered whole, as the bot, and still in the queue.
        await ask(customer, "c1", SURE)
        frames = await recv_until(customer, is_bot_message)
        assert not [f for f in frames if f["type"] in ("delta", "typing", "state")]
        answer = frames[-1]
        assert answer["text"].startswith("Refunds are paid within 5 business days.")
        assert "virtual assistant" in answer["text"] and "still in the queue" in answer["text"]
        assert answer["sources"][0]["article_id"] == "billing/refunds"
        assert len(open_items(server, conversation_id)) == 1

        # A question it is not sure of gets no bot answer: the person answers it.
        await ask(customer, "c2", DOUBTFUL)
        server.wait_idle()
        assert DOUBTFUL in answerer.questions
        assert not [f for f in await quiet(customer, 0.3) if is_bot_message(f)]

        # Asking for a person again is not the bot's to answer.
        await ask(customer, "c3", "I want to talk to a real person")
        server.wait_idle()
        assert "I want to talk to a real person" not in answerer.questions
        assert len(open_items(server, conversation_id)) == 1

        # Once a person claims the chat, the bot is silent, however sure it would be.
        async with agent_api(server) as api:
            claimed = await api.post(f"/api/agent/conversations/{conversation_id}/claim")
            assert claimed.status_code == 200
        frames = await recv_until(customer, lambda f: f["type"] == "state")
        assert frames[-1]["state"] == "human"
        asked = len(answerer.questions)
        await ask(customer, "c4", "And how long does a refund to a card take?")
        server.wait_idle()
        assert len(answerer.questions) == asked
        assert not [f for f in await quiet(customer, 0.3) if is_bot_message(f)]


async def test_an_answer_still_computing_when_a_person_claims_is_dropped(
    server: LiveServer, answerer: ConfidenceAnswerer
) -> None:
    answerer.delay_s = 0.8
    async with chat_connect(server.url) as customer:
        welcome = await hello(customer)
        conversation_id = welcome["conversation_id"]
        await send(customer, {"type": "handoff_request"})
        await recv_until(customer, lambda f: f["type"] == "state")
        await ask(customer, "c1", SURE)
        async with agent_api(server) as api:  # the person arrives while the bot is still busy
            assert (
                await api.post(f"/api/agent/conversations/{conversation_id}/claim")
            ).status_code == 200
        server.wait_idle()
        assert answerer.questions == [SURE]
        assert not [f for f in await quiet(customer, 0.5) if is_bot_message(f)]


async def test_in_hours_the_frames_say_people_are_available(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        allowed_origins=[ORIGIN],
        business_hours="24/7",
        _env_file=None,
    )
    with LiveServer(settings, ConfidenceAnswerer()) as server:
        async with chat_connect(server.url) as customer:
            welcome = await hello(customer)
            assert welcome["available"] is True and "next_opening" not in welcome
            await send(customer, {"type": "handoff_request"})
            frames = await recv_until(customer, lambda f: f["type"] == "state")
            assert frames[-1]["available"] is True
