"""The bot's own sentences in the customer's language, over the real socket (bot.core.i18n).

A German customer (``hello`` with ``locale: "de"``) reads the answerer's hand-over sentence and
the "which of these?" question in German, while the article titles under it stay as written; an
English customer reads exactly what they read before. ``POST /api/ask`` takes the language from
``Accept-Language``. Out of hours, the hand-over notice invites the customer to leave an e-mail
address only when replies by e-mail are on (``smtp_url``).

Everything is the product's own: ingest, retrieval, the extractive answerer, the socket, the
store and the state machine; only the out-of-hours tests skip retrieval (the customer presses
"talk to a person").
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.core.i18n import locale_from_accept_language, translate
from bot.core.settings import Settings
from bot.handoff.hours import DAYS
from bot.knowledge.answerers import ESCALATION_TEXT, SUGGESTION_TEXT
from ingest.embedder import Embedder
from tests.helpers.kb import ARTICLES, write_kb
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
from tests.integration.test_suggestions import BAMBOO, CARE, SPLIT, WOODEN

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

OFF_TOPIC = "What is the boiling point of mercury?"
"""Nothing in the test knowledge base is about it: the answerer hands over (``no_knowledge``)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("texts")
    settings = Settings(  # type: ignore[call-arg]
        data_dir=root / "data", allowed_origins=[ORIGIN], business_hours="24/7", _env_file=None
    )
    write_kb(settings, embedder, [*ARTICLES, *CARE])
    with LiveServer(settings) as live:  # the app's own (extractive) answerer
        yield live


def is_system(frame: dict[str, Any]) -> bool:
    return frame["type"] == "message" and frame["role"] == "system"


async def first_reply(server: LiveServer, question: str, **fields: Any) -> dict[str, Any]:
    """The bot's message answering ``question`` in a new conversation opened with ``fields``."""
    async with chat_connect(server.url) as ws:
        welcome = await hello(ws, **fields)
        assert welcome["type"] == "welcome", welcome
        await send(ws, {"type": "message", "client_msg_id": "q1", "text": question})
        frames = await recv_until(ws, is_bot_message, timeout=60)
    reply = frames[-1]
    deltas = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert deltas == reply["text"], "the streamed pieces add up to the stored text"
    return reply


def api_ask(server: LiveServer, question: str, headers: dict[str, str]) -> dict[str, Any]:
    response = httpx.post(
        f"http://127.0.0.1:{server.port}/api/ask",
        json={"question": question},
        headers=headers,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- the answerer's hand-over sentence ------------------------------------------------------


async def test_a_german_customer_is_handed_over_in_german(server: LiveServer) -> None:
    reply = await first_reply(server, OFF_TOPIC, locale="de")
    german = translate("escalate_no_knowledge", "de")
    assert reply["text"] == german
    assert german.startswith("Dazu habe ich in unseren Hilfeartikeln nichts gefunden")
    assert "support team" not in reply["text"]


async def test_the_notice_after_the_hand_over_is_german_too(server: LiveServer) -> None:
    async with chat_connect(server.url) as ws:
        await hello(ws, locale="de-AT")
        await send(ws, {"type": "message", "client_msg_id": "q1", "text": OFF_TOPIC})
        frames = await recv_until(ws, is_system, timeout=60)
    bot = next(f for f in frames if is_bot_message(f))
    assert bot["text"] == translate("escalate_no_knowledge", "de")
    assert frames[-1]["text"] == translate("handoff_open", "de")


async def test_an_english_customer_reads_what_they_read_before(server: LiveServer) -> None:
    for fields in ({}, {"locale": "en-GB"}, {"locale": "pt-BR"}):
        reply = await first_reply(server, OFF_TOPIC, **fields)
        assert reply["text"] == ESCALATION_TEXT["no_knowledge"], fields
        assert reply["text"] == (
            "I couldn't find anything about that in our help articles, so I'm passing your "
            "question to a member of our support team."
        )


# --- "which of these?" ----------------------------------------------------------------------


async def test_a_german_customer_is_asked_which_of_these_in_german(server: LiveServer) -> None:
    reply = await first_reply(server, SPLIT, locale="de")
    assert {s["article_id"] for s in reply["suggestions"]} == {WOODEN, BAMBOO}
    question, _, listed = reply["text"].partition("\n\n")
    assert question == translate("which_of_these", "de")
    assert question == (
        "Ich habe einige Artikel gefunden, die passen könnten. Welcher kommt Ihrer Frage am "
        "nächsten?"
    )
    # The articles are offered as they are written: titles are never translated.
    assert "Caring for wooden chopping boards" in listed
    assert "Caring for bamboo chopping boards" in listed


async def test_an_english_customer_is_asked_which_of_these_as_before(server: LiveServer) -> None:
    reply = await first_reply(server, SPLIT)
    assert reply["suggestions"]
    assert reply["text"].startswith(f"{SUGGESTION_TEXT}\n\n")
    assert SUGGESTION_TEXT == (
        "I found a few articles that might match. Which one is closest to your question?"
    )


def test_api_ask_speaks_the_accept_language_of_the_caller(server: LiveServer) -> None:
    german = api_ask(server, SPLIT, {"Accept-Language": "de-DE,de;q=0.9,en;q=0.8"})
    assert german["suggestions"]
    assert german["answer"].startswith(translate("which_of_these", "de") + "\n\n")
    spanish = api_ask(server, OFF_TOPIC, {"Accept-Language": "pt-BR, es;q=0.7, en;q=0.5"})
    assert spanish["escalate"] is True and spanish["reason"] == "no_knowledge"
    assert spanish["answer"] == translate("escalate_no_knowledge", "es")
    plain = api_ask(server, OFF_TOPIC, {})
    assert plain["answer"] == ESCALATION_TEXT["no_knowledge"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("de-DE,de;q=0.9,en;q=0.8", "de-DE"),
        ("en-US;q=0.5, fr-CA;q=0.8, en;q=0.6", "fr-CA"),
        ("en-US,de", "en-US"),
        ("pt-BR, es;q=0.7", "es"),
        ("*", None),
        ("pt-BR", None),
        ("de;q=0, fr;q=abc", None),
        ("", None),
        (None, None),
    ],
)
def test_the_accept_language_header_names_the_supported_language_ranked_highest(
    header: str | None, expected: str | None
) -> None:
    assert locale_from_accept_language(header) == expected


# --- out of hours: the e-mail invitation only with e-mail replies ---------------------------


def closed_today() -> str:
    """Business hours on a weekday other than today (UTC): people are not available now."""
    today = datetime.now(UTC).weekday()
    return f"{DAYS[(today + 2) % 7].title()} 09:00-17:00"


def out_of_hours_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        allowed_origins=[ORIGIN],
        business_hours=closed_today(),
        _env_file=None,
        **overrides,
    )


async def out_of_hours_notice(server: LiveServer, locale: str | None) -> str:
    """The notice a customer who presses "talk to a person" out of hours reads."""
    async with chat_connect(server.url) as ws:
        welcome = await hello(ws, **({"locale": locale} if locale else {}))
        assert welcome["state"] == "bot"
        await send(ws, {"type": "handoff_request"})
        frames = await recv_until(ws, is_system, timeout=30)
    text: str = frames[-1]["text"]
    return text


@pytest.mark.parametrize("smtp_url", [None, ""])
async def test_without_smtp_the_out_of_hours_notice_does_not_ask_for_an_email(
    tmp_path: Path, smtp_url: str | None
) -> None:
    settings = out_of_hours_settings(tmp_path, smtp_url=smtp_url)
    with LiveServer(settings, ScriptedAnswerer()) as server:
        english = await out_of_hours_notice(server, None)
        german = await out_of_hours_notice(server, "de")
    assert english.startswith("Connecting you with a person. Our team is offline right now;")
    assert "email" not in english.lower()
    assert german.startswith("Wir verbinden Sie mit einem Menschen.")
    assert "E-Mail" not in german
    when = english.split("someone will reply here ", 1)[1].rstrip(".")
    assert english == translate("handoff_closed_no_email", "en", when=when)


async def test_with_smtp_the_out_of_hours_notice_still_offers_email(tmp_path: Path) -> None:
    settings = out_of_hours_settings(tmp_path, smtp_url="smtp://127.0.0.1:9")
    with LiveServer(settings, ScriptedAnswerer()) as server:
        english = await out_of_hours_notice(server, None)
        german = await out_of_hours_notice(server, "de")
    assert "leave your email address" in english
    assert "hinterlassen Sie Ihre E-Mail-Adresse" in german
