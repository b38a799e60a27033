"""Which of these? End to end: a question split between two near-identical articles gets the
articles as choices (``POST /api/ask`` and the chat), and the customer's ``choose`` frame gets the
answer from the picked article, or ("none of these") a person, over the real socket.

The knowledge base is the small test KB plus two care articles that differ in a word or two, so
retrieval cannot tell them apart for a dishwasher question, while a plain question (express
delivery) still gets a plain answer. Everything is the product's own: ingest, retrieval, the
suggestion rule with its default settings, the extractive answerer, the socket and the store.
"""

# ruff: noqa: E501  (article bodies read better as whole lines)
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app
from bot.core.models import Message, QueueItem
from bot.core.settings import Settings, get_settings
from bot.knowledge.answerers import SUGGESTION_TEXT
from ingest.embedder import Embedder
from tests.helpers.kb import ARTICLES, KBArticle, to_markdown, write_kb
from tests.helpers.live_server import (
    ORIGIN,
    LiveServer,
    chat_connect,
    hello,
    is_bot_message,
    quiet,
    recv,
    recv_until,
    send,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

WOODEN, BAMBOO = "care/wooden-boards", "care/bamboo-boards"
CARE = [
    KBArticle(
        WOODEN,
        "Caring for wooden chopping boards",
        """Oil a wooden chopping board once a month with food-safe mineral oil.

## Cleaning
Wash the board by hand with warm soapy water and dry it standing upright. Never put it in the dishwasher.""",
        "https://help.example.com/care/wooden-boards",
    ),
    KBArticle(
        BAMBOO,
        "Caring for bamboo chopping boards",
        """Oil a bamboo chopping board every two months with food-safe mineral oil.

## Cleaning
Wash the board by hand with warm water and a mild soap and let it dry flat. Bamboo boards are not dishwasher safe.""",
        "https://help.example.com/care/bamboo-boards",
    ),
]
SPLIT = "Can my chopping board go in the dishwasher?"
PLAIN = "How much does express delivery cost?"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("suggestions")
    settings = Settings(  # type: ignore[call-arg]
        data_dir=root / "data", allowed_origins=[ORIGIN], _env_file=None
    )
    write_kb(settings, embedder, [*ARTICLES, *CARE])
    with LiveServer(settings) as live:  # the app's own (extractive) answerer
        yield live


def api_ask(server: LiveServer, question: str) -> dict[str, Any]:
    response = httpx.post(
        f"http://127.0.0.1:{server.port}/api/ask", json={"question": question}, timeout=60
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def offers(frame: dict[str, Any]) -> bool:
    return is_bot_message(frame) and bool(frame.get("suggestions"))


async def open_with_offer(ws: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new conversation whose first question got choices: (welcome, the offering message)."""
    welcome = await hello(ws)
    await send(ws, {"type": "message", "client_msg_id": "q1", "text": SPLIT})
    frames = await recv_until(ws, is_bot_message, timeout=60)
    assert offers(frames[-1]), frames[-1]
    return welcome, frames[-1]


def test_ask_offers_the_close_articles_instead_of_guessing(server: LiveServer) -> None:
    body = api_ask(server, SPLIT)
    assert body["escalate"] is False and body["reason"] is None
    assert body["sources"] == []
    assert {s["article_id"] for s in body["suggestions"]} == {WOODEN, BAMBOO}
    for suggestion in body["suggestions"]:
        assert set(suggestion) == {"article_id", "title", "url", "score"}
        assert 0.0 <= suggestion["score"] <= 1.0
    assert body["answer"].startswith(SUGGESTION_TEXT)
    # The text lists the same articles, for clients that show only the text.
    assert "Caring for wooden chopping boards" in body["answer"]
    assert "Caring for bamboo chopping boards" in body["answer"]


def test_a_clear_question_gets_an_answer_and_no_suggestions(server: LiveServer) -> None:
    body = api_ask(server, PLAIN)
    assert body["escalate"] is False and body["suggestions"] == []
    assert body["sources"][0]["article_id"] == "shipping/delivery-times"


async def test_picking_an_article_answers_from_it_streamed_and_cited(server: LiveServer) -> None:
    async with chat_connect(server.url) as ws:
        welcome, offer = await open_with_offer(ws)
        assert offer["reply_to"] == 1 and offer["sources"] == []
        assert {s["article_id"] for s in offer["suggestions"]} == {WOODEN, BAMBOO}
        await send(ws, {"type": "choose", "seq": offer["seq"], "article_id": WOODEN})
        frames = await recv_until(ws, is_bot_message, timeout=60)
    answer = frames[-1]
    assert answer["reply_to"] == 1  # the answer to the customer's question, from the pick
    assert [s["article_id"] for s in answer["sources"]] == [WOODEN]
    assert "dishwasher" in answer["text"] and "Never put it" in answer["text"]
    assert "suggestions" not in answer
    deltas = [f for f in frames if f["type"] == "delta"]
    assert deltas and all(d["reply_to"] == 1 for d in deltas)
    assert "".join(d["text"] for d in deltas) == answer["text"]
    with server.ctx.sessions() as session:
        stored = session.scalar(
            select(Message).where(
                Message.conversation_id == welcome["conversation_id"], Message.seq == offer["seq"]
            )
        )
        assert stored is not None and stored.suggestions is not None
        assert {s["article_id"] for s in stored.suggestions} == {WOODEN, BAMBOO}


async def test_none_of_these_hands_over_with_reason_no_match(server: LiveServer) -> None:
    async with chat_connect(server.url) as ws:
        welcome, offer = await open_with_offer(ws)
        await send(ws, {"type": "choose", "seq": offer["seq"], "article_id": None})
        frames = await recv_until(ws, lambda f: f["type"] == "state")
        frames += await recv_until(ws, lambda f: f["type"] == "message")
    state = next(f for f in frames if f["type"] == "state")
    assert (state["state"], state["reason"]) == ("awaiting_human", "no_match")
    assert frames[-1]["role"] == "system" and "person" in frames[-1]["text"]
    with server.ctx.sessions() as session:
        item = session.scalar(
            select(QueueItem).where(QueueItem.conversation_id == welcome["conversation_id"])
        )
        assert item is not None and item.reason == "no_match"
        # The agent sees which articles the customer turned down.
        assert {s["article_id"] for s in item.sources or []} == {WOODEN, BAMBOO}


async def test_bad_choose_frames_get_error_frames_and_the_socket_stays_open(
    server: LiveServer,
) -> None:
    async with chat_connect(server.url) as ws:
        await hello(ws)
        await send(ws, {"type": "message", "client_msg_id": "q1", "text": PLAIN})
        plain = (await recv_until(ws, is_bot_message, timeout=60))[-1]
        assert "suggestions" not in plain
        await send(ws, {"type": "choose", "seq": plain["seq"], "article_id": WOODEN})
        error = await recv(ws)  # an answer that offered no choices
        assert (error["type"], error.get("code")) == ("error", "unknown_message"), error
    async with chat_connect(server.url) as ws:
        _, offer = await open_with_offer(ws)
        refused = [
            # the customer's own message, a seq that does not exist
            ({"seq": 1, "article_id": WOODEN}, "unknown_message"),
            ({"seq": 999, "article_id": None}, "unknown_message"),
            # an article the message did not offer
            ({"seq": offer["seq"], "article_id": "billing/gift-cards"}, "unknown_choice"),
        ]
        for fields, code in refused:
            await send(ws, {"type": "choose", "client_msg_id": "c-1", **fields})
            error = await recv(ws)
            assert (error["type"], error.get("code")) == ("error", code), (fields, error)
            assert error["client_msg_id"] == "c-1"
        await send(ws, {"type": "choose", "seq": offer["seq"]})  # article_id is required
        assert (await recv(ws))["code"] == "invalid_frame"
        assert await quiet(ws, 0.3) == []  # nothing was answered or handed over
        # Still open and usable: a valid pick is answered.
        await send(ws, {"type": "choose", "seq": offer["seq"], "article_id": BAMBOO})
        answer = (await recv_until(ws, is_bot_message, timeout=60))[-1]
    assert [s["article_id"] for s in answer["sources"]] == [BAMBOO]


async def test_only_the_first_pick_counts_and_a_resume_replays_the_choices(
    server: LiveServer,
) -> None:
    async with chat_connect(server.url) as ws:
        welcome, offer = await open_with_offer(ws)
        await send(ws, {"type": "choose", "seq": offer["seq"], "article_id": WOODEN})
        await recv_until(ws, is_bot_message, timeout=60)
        for article_id in (BAMBOO, None, WOODEN):  # a second click, "none", a resend
            await send(ws, {"type": "choose", "seq": offer["seq"], "article_id": article_id})
        assert await quiet(ws, 0.8) == []
    server.wait_idle()
    async with chat_connect(server.url) as ws:
        await hello(
            ws,
            conversation_id=welcome["conversation_id"],
            resume_token=welcome["resume_token"],
            last_seq=0,
        )
        replay = await recv_until(ws, lambda f: f["type"] == "message" and f["seq"] == 3)
    messages = {f["seq"]: f for f in replay if f["type"] == "message"}
    assert {s["article_id"] for s in messages[offer["seq"]]["suggestions"]} == {WOODEN, BAMBOO}
    assert [s["article_id"] for s in messages[3]["sources"]] == [WOODEN]
    assert "suggestions" not in messages[1] and "suggestions" not in messages[3]


@pytest.fixture
def split_kb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    kb = tmp_path / "kb"
    kb.mkdir()
    for article in [*ARTICLES, *CARE]:
        (kb / f"{article.article_id.replace('/', '-')}.md").write_text(to_markdown(article))
    monkeypatch.setenv("SUPPORTBOT_DATA_DIR", str(tmp_path / "unused-data"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_eval_counts_a_question_resolved_with_one_choice(
    split_kb: Path, embedder: Embedder
) -> None:
    questions = split_kb / "questions.jsonl"
    lines = [
        {"question": SPLIT, "expected_article_ids": [WOODEN], "answerable": True},
        {"question": PLAIN, "expected_article_ids": ["shipping/delivery-times"]},
    ]
    questions.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out = split_kb / "report.json"
    args = ["eval", str(questions), "--kb", str(split_kb / "kb"), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    counts = report["at_threshold"]["counts"]
    assert (counts["correct"], counts["one_choice"], counts["wrong"]) == (1, 1, 0)
    assert counts["escalated"] == 0 and counts["choices_none_right"] == 0
    assert report["at_threshold"]["one_choice_rate"] == 0.5
    assert report["at_threshold"]["answerable_resolved"] == 1.0
    # Without the rule the split question is a coin toss: answered from one of the two.
    assert report["without_choices"]["counts"]["one_choice"] == 0
    assert "one choice" in result.output
    off = CliRunner().invoke(app, [*args, "--max-choices", "0"])
    assert off.exit_code == 0, off.output
    assert json.loads(out.read_text())["at_threshold"]["counts"]["one_choice"] == 0
