"""The extractive answerer (the default, no LLM) on a small KB: real Chroma, real embedder."""

from __future__ import annotations

import pytest

from bot.core.schemas import AnswerResult, Turn
from bot.core.settings import Settings
from bot.knowledge.answerers import ExtractiveAnswerer, build_answerer, pieces
from ingest.embedder import Embedder
from tests.helpers.kb import open_kb, write_kb


@pytest.fixture(scope="module")
def answerer(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> ExtractiveAnswerer:
    settings = Settings(data_dir=tmp_path_factory.mktemp("kb") / "data", _env_file=None)  # type: ignore[call-arg]
    write_kb(settings, embedder)
    built = build_answerer(settings, open_kb(settings, embedder), embedder)
    assert isinstance(built, ExtractiveAnswerer)
    return built


async def collect(
    answerer: ExtractiveAnswerer, question: str, history: list[Turn] | None = None
) -> tuple[str, AnswerResult]:
    streamed: list[str] = []
    result: AnswerResult | None = None
    async for item in answerer.stream(question, history or []):
        if isinstance(item, AnswerResult):
            result = item
        else:
            assert result is None, "text pieces come before the result"
            streamed.append(item)
    assert result is not None
    return "".join(streamed), result


@pytest.mark.parametrize(
    ("question", "article_id", "answering_sentence"),
    [
        (
            "How long do I have to drop off my return parcel?",
            "returns/return-policy",
            "After starting the return, you have 14 days to drop the parcel off at a post office.",
        ),
        (
            "How much does express delivery cost?",
            "shipping/delivery-times",
            "It costs 9.95 for every order.",
        ),
        (
            "When will I get my refund?",
            "returns/return-policy",
            "Refunds are paid to the original payment method within 5 business days",
        ),
        (
            "How do I redeem a gift card?",
            "billing/gift-cards",
            "Enter the 16-digit code at checkout in the Gift card field.",
        ),
    ],
)
async def test_answer_quotes_the_answering_sentence_and_cites_its_article(
    answerer: ExtractiveAnswerer, question: str, article_id: str, answering_sentence: str
) -> None:
    streamed, result = await collect(answerer, question)
    assert streamed == result.answer
    assert not result.escalate and result.reason is None
    assert answering_sentence in result.answer
    assert result.sources[0].article_id == article_id
    # Cited once: by the answer's sources (the chips under the message), not in its text too.
    assert "Source:" not in result.answer
    assert result.sources[0].url is None or result.sources[0].url not in result.answer
    # Trimmed to the question: not the whole article.
    assert len(result.answer) < 600


async def test_steps_come_as_the_whole_numbered_list(answerer: ExtractiveAnswerer) -> None:
    _, result = await collect(answerer, "How do I reset my password?")
    assert result.sources[0].article_id == "account/reset-password"
    for step in ("1. Open the sign-in page", "2. Enter the email", "4. Choose a new password"):
        assert step in result.answer
    assert "spam folder" not in result.answer  # another section, another question


async def test_follow_up_uses_the_conversation(answerer: ExtractiveAnswerer) -> None:
    history = [
        Turn(role="user", content="How do I reset my password?"),
        Turn(role="assistant", content="Open the sign-in page and select Forgot password."),
    ]
    _, result = await collect(answerer, "what if the email never arrives?", history)
    assert result.sources[0].article_id == "account/reset-password"
    assert "spam folder" in result.answer


async def test_off_topic_question_is_escalated_without_an_invented_answer(
    answerer: ExtractiveAnswerer,
) -> None:
    streamed, result = await collect(answerer, "What is the boiling point of mercury?")
    assert result.escalate and result.reason in ("no_knowledge", "low_confidence")
    assert streamed == result.answer
    assert "support team" in result.answer
    assert result.confidence < answerer.retriever.settings.answer_threshold


async def test_asking_for_a_person_escalates(answerer: ExtractiveAnswerer) -> None:
    _, result = await collect(answerer, "Can I speak to a human agent?")
    assert (result.escalate, result.reason) == (True, "customer_request")


def test_stream_pieces_rebuild_the_text() -> None:
    text = "Line one.\n\n- item  two\n3. three "
    assert "".join(pieces(text, size=5)) == text


def test_steps_are_found_through_their_parent_heading(embedder: Embedder) -> None:
    """Regression: "how do I turn on 2fa" was answered with the "Turning 2FA off" section,
    because steps under "On the website" were scored without their parent heading
    "How to turn on 2FA"."""
    from bot.knowledge.answerers import (
        UnitVectors,
        render_units,
        score_units,
        select_units,
        split_units,
    )
    from bot.knowledge.retrieval import ChunkHit

    def chunk(index: int, heading: str, body: str) -> ChunkHit:
        text = f"Two-factor authentication\n{heading}\n\n{body}"
        return ChunkHit(
            chunk_id=f"a#{index}",
            text=text,
            metadata={"heading": heading, "body_start": len(text) - len(body)},
        )

    chunks = [
        chunk(
            0,
            "How to turn on 2FA > On the website",
            "1. Go to Account > Security.\n2. Select Turn on.\n3. Scan the QR code with your app.",
        ),
        chunk(
            1,
            "Turning 2FA off",
            "You can switch it off in the same place. We don't "
            "recommend turning it off unless you are switching to a new phone.",
        ),
    ]
    units = split_units(chunks, "Two-factor authentication")
    answer = render_units(
        select_units(units, score_units("how do I turn on 2fa", units, UnitVectors(embedder)))
    )
    assert "Select Turn on." in answer
    assert "switch it off" not in answer


def test_after_warm_up_a_question_embeds_only_itself(
    answerer: ExtractiveAnswerer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start-up warm-up embeds every sentence once; answering then costs one query
    embedding instead of embedding the article's sentences while the customer waits."""
    fresh = build_answerer(
        answerer.retriever.settings, answerer.retriever.collection, answerer.embedder
    )
    assert isinstance(fresh, ExtractiveAnswerer)
    fresh.warm_up()
    batches: list[int] = []
    real_encode = answerer.embedder.encode

    def counting_encode(texts: list[str]) -> list[list[float]]:
        batches.append(len(texts))
        return real_encode(texts)

    monkeypatch.setattr(answerer.embedder, "encode", counting_encode)
    result = fresh.answer_sync("What do I pay for express shipping?")
    assert not result.escalate
    assert batches == [1], "only the question itself is embedded, once"
