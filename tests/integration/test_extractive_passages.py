"""The extractive answer on the real demo KB (``kb_articles/``): the right passage, whole.

Each test is named after what a new user saw go wrong: fragments ending on a colon, a
password answer without its steps, a table as raw pipes, the wrong part of the returns
article, a citation given twice, "This article explains...", an answer that appeared all at
once, and ``supportbot ask`` paying for the service's warm-up.

The composition is checked on the article retrieval puts first (what the answer is written
from), so these tests do not move when the answer-or-escalate threshold is calibrated.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.core.schemas import AnswerResult
from bot.core.settings import Settings, get_settings
from bot.knowledge import answerers
from bot.knowledge.answerers import (
    ExtractiveAnswerer,
    compose_extractive,
    gather_evidence,
    split_units,
)
from ingest.embedder import Embedder


@pytest.fixture(scope="module")
def answerer(demo_answerer: ExtractiveAnswerer) -> ExtractiveAnswerer:
    return demo_answerer


def answer_from_best_article(answerer: ExtractiveAnswerer, question: str) -> tuple[str, str]:
    """(the answer composed from the article retrieval ranks first, that article's id)."""
    top = gather_evidence(answerer.retriever, question, []).hits[0]
    chunks = answerer.retriever.article_chunks(top.article_id)
    return compose_extractive(question, top, chunks, answerer.unit_vectors), top.article_id


def dangling_colons(text: str) -> list[str]:
    """Lines ending on ":" that are not followed by what they introduce (a list or table)."""
    lines = [line for line in text.split("\n") if line.strip()]
    dangling = []
    for i, line in enumerate(lines):
        if line.rstrip().endswith(":"):
            following = lines[i + 1].lstrip() if i + 1 < len(lines) else ""
            if not re.match(r"([-*+]|\d+[.)])\s|\|", following):
                dangling.append(line)
    return dangling


async def collect(
    answerer: ExtractiveAnswerer, question: str
) -> tuple[list[tuple[float, str]], AnswerResult]:
    """The deltas with the time each arrived, and the result."""
    deltas: list[tuple[float, str]] = []
    result: AnswerResult | None = None
    async for item in answerer.stream(question, []):
        if isinstance(item, AnswerResult):
            result = item
        else:
            assert result is None, "text pieces come before the result"
            deltas.append((time.perf_counter(), item))
    assert result is not None
    return deltas, result


def test_changed_mind_return_gets_the_30_days_part(answerer: ExtractiveAnswerer) -> None:
    text, article = answer_from_best_article(
        answerer, "What is your return policy if I change my mind?"
    )
    assert article == "returns/return-policy"
    assert "You can return most items within 30 days of delivery" in text
    assert "comes back used, damaged or incomplete" not in text  # the part about conditions


def test_parcel_never_arrived_does_not_end_on_a_colon(answerer: ExtractiveAnswerer) -> None:
    text, article = answer_from_best_article(answerer, "my parcel never arrived")
    assert article == "orders-shipping/missing-or-damaged-package"
    assert not text.rstrip().endswith(":")
    assert dangling_colons(text) == []
    # The part for a parcel that did not come, not the one for a damaged parcel.
    assert "Delivered" in text and "damaged" not in text


def test_payment_methods_question_gets_the_accepted_list_not_the_exclusions(
    answerer: ExtractiveAnswerer,
) -> None:
    """The "Not accepted" items look most like payment methods to the embedding; a question
    that only restates the article's title asks for the article's gist, its opening."""
    text, article = answer_from_best_article(answerer, "Which payment methods do you accept?")
    assert article == "billing/payment-methods"
    for method in ("Visa, Mastercard", "PayPal", "Apple Pay", "Klarna"):
        assert method in text, text
    assert "Cash on delivery" not in text


@pytest.mark.parametrize(
    ("question", "article", "expected"),
    [
        ("payment methods", "billing/payment-methods", "PayPal"),
        ("How can I track my order?", "orders-shipping/track-order", "select Track next to"),
        ("How do I reset my password?", "account/reset-password", "1. Go to the sign-in page"),
    ],
)
def test_a_question_that_restates_the_title_gets_the_opening(
    answerer: ExtractiveAnswerer, question: str, article: str, expected: str
) -> None:
    text, found = answer_from_best_article(answerer, question)
    assert found == article
    assert expected in text, text
    assert dangling_colons(text) == []


@pytest.mark.parametrize(
    "question",
    [
        "my parcel never arrived",
        "My package arrived damaged",
        "Which items can't be returned?",
        "Can I change my delivery address after ordering?",
        "How long do refunds take?",
        "Why was my promo code not accepted?",
    ],
)
def test_a_lead_in_always_brings_what_it_introduces(
    answerer: ExtractiveAnswerer, question: str
) -> None:
    text, _ = answer_from_best_article(answerer, question)
    assert dangling_colons(text) == []


def test_password_answer_has_its_steps(answerer: ExtractiveAnswerer) -> None:
    text, article = answer_from_best_article(answerer, "How do I reset my password?")
    assert article == "account/reset-password"
    steps = [
        "1. Go to the sign-in page",
        "2. Select Forgot password?",
        "3. Enter the email address linked to your account",
        "4. Open the email from no-reply@parcelly.example",
        "5. Choose a new password",
    ]
    positions = [text.find(step) for step in steps]
    assert -1 not in positions, text
    assert positions == sorted(positions), "the steps come whole and in order"


@pytest.mark.parametrize(
    ("question", "article", "header", "rows"),
    [
        (
            "How long do refunds take for each payment method?",
            "billing/refunds",
            "| Payment method | Time after we issue the refund |",
            ["| PayPal | Within 24 hours |", "| iDEAL / Bancontact |", "| Klarna |"],
        ),
        (
            "How much does it cost to return an item?",
            "returns/return-policy",
            "| Situation | Return shipping cost |",
            ["| Parcelly Plus member | Free |", "| Bulky item collection |"],
        ),
    ],
)
def test_refund_table_arrives_as_a_table(
    answerer: ExtractiveAnswerer, question: str, article: str, header: str, rows: list[str]
) -> None:
    text, found = answer_from_best_article(answerer, question)
    assert found == article
    lines = text.split("\n")
    start = lines.index(header)
    assert re.fullmatch(r"\|(-+\|)+", lines[start + 1]), "the header rule a table needs"
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    for row in rows:  # every row, in the one table (header + rows, nothing cut)
        assert any(line.startswith(row) for line in table), (row, text)


async def test_answer_is_cited_once(answerer: ExtractiveAnswerer) -> None:
    deltas, result = await collect(answerer, "How do I reset my password?")
    assert not result.escalate
    assert [s.article_id for s in result.sources] == ["account/reset-password"]
    # The chips under the message (``sources``) are the citation; the text does not repeat it.
    assert "Source" not in result.answer
    assert "help.parcelly.example/account/reset-password" not in result.answer
    assert "Resetting your password" not in result.answer
    assert "".join(text for _, text in deltas) == result.answer


@pytest.mark.parametrize(
    ("question", "article", "meta"),
    [
        ("How long do refunds take?", "billing/refunds", "This article explains"),
        (
            "What is your return policy if I change my mind?",
            "returns/return-policy",
            "This article covers",
        ),
        (
            "What happens if my parcel is late?",
            "orders-shipping/missing-or-damaged-package",
            "Find your situation below",
        ),
    ],
)
def test_answer_does_not_describe_the_article(
    answerer: ExtractiveAnswerer, question: str, article: str, meta: str
) -> None:
    text, found = answer_from_best_article(answerer, question)
    assert found == article
    assert meta not in text
    assert not re.search(r"\bthis (article|page|guide)\b", text, re.I)


def test_sentences_about_the_article_are_never_answer_units(
    answerer: ExtractiveAnswerer,
) -> None:
    for article in ("billing/refunds", "returns/return-policy", "getting-started/first-order"):
        chunks = answerer.retriever.article_chunks(article)
        units = split_units(chunks, "title")
        meta = [u.text for u in units if u.meta]
        assert meta, f"{article} opens with a sentence about itself"
        assert all(re.match(r"this (article|guide)", m, re.I) for m in meta), meta


async def test_first_delta_leaves_before_the_answer_is_composed(
    answerer: ExtractiveAnswerer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each unit takes 50 ms to render here: the first delta must reach the consumer while
    later units are still being rendered, not after the whole answer was composed."""
    rendered: list[float] = []
    real_piece = answerers._Renderer.piece

    def slow_piece(self: answerers._Renderer, unit: answerers._Unit) -> str:
        time.sleep(0.05)
        rendered.append(time.perf_counter())
        return real_piece(self, unit)

    monkeypatch.setattr(answerers._Renderer, "piece", slow_piece)
    deltas, result = await collect(answerer, "How do I reset my password?")
    assert not result.escalate and "5. Choose a new password" in result.answer
    assert len(rendered) >= 5
    first_delta = deltas[0][0]
    assert first_delta < rendered[-1], "the first delta left before the last unit was rendered"
    assert len(deltas) > 1
    assert "".join(text for _, text in deltas) == result.answer


async def test_a_consumer_that_stops_early_stops_the_composer(
    answerer: ExtractiveAnswerer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that leaves (the chat task was cancelled) stops the composition in its
    worker thread after the unit in hand, instead of composing for nobody."""
    rendered: list[str] = []
    real_piece = answerers._Renderer.piece

    def slow_piece(self: answerers._Renderer, unit: answerers._Unit) -> str:
        time.sleep(0.3)
        rendered.append(unit.text)
        return real_piece(self, unit)

    monkeypatch.setattr(answerers._Renderer, "piece", slow_piece)
    stream = answerer.stream("How do I reset my password?", [])
    first = await anext(stream)
    assert isinstance(first, str) and first.startswith("Forgot your password?")
    await stream.aclose()
    await asyncio.sleep(1.5)  # 6 of the answer's 7 units (lead and 5 steps) would be rendered
    assert len(rendered) <= 3, rendered


@pytest.fixture
def ask_env(demo_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SUPPORTBOT_DATA_DIR", str(demo_settings.data_dir))
    get_settings.cache_clear()
    yield demo_settings.data_dir
    get_settings.cache_clear()


def test_ask_does_not_warm_up_the_whole_kb(
    ask_env: Path,
    answerer: ExtractiveAnswerer,
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A one-shot question pays for itself: the service's start-up warm-up (every sentence of
    every article) is not run, and the answer embeds only its own article's units."""
    from bot.cli import app
    from bot.knowledge.answerers import UnitVectors
    from bot.knowledge.retrieval import Retriever

    def no_warm_up(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("supportbot ask warmed up the knowledge base")

    monkeypatch.setattr(ExtractiveAnswerer, "warm_up", no_warm_up)
    monkeypatch.setattr(Retriever, "warm_up", no_warm_up)
    embedded: list[str] = []
    real_get = UnitVectors.get

    def counting_get(self: UnitVectors, texts: list[str]) -> list[object]:
        embedded.extend(texts)
        return real_get(self, texts)

    monkeypatch.setattr(UnitVectors, "get", counting_get)
    result = CliRunner().invoke(app, ["ask", "How do I reset my password?"])
    assert result.exit_code == 0, result.output
    assert "Choose a new password" in result.output
    everything = sum(
        len(split_units(answerer.retriever.article_chunks(article_id), title))
        for article_id, title in answerer.retriever.article_titles().items()
    )
    assert 0 < len(embedded) < everything / 10, (len(embedded), everything)
