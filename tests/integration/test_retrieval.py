"""Hybrid retrieval and escalation over a small KB in a temp-dir Chroma, real embedder."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.settings import Settings
from bot.knowledge.answerability import decide
from bot.knowledge.retrieval import Retriever
from ingest.embedder import Embedder
from tests.helpers.kb import ARTICLES, KBArticle, delete_article, open_kb, write_kb


@pytest.fixture(scope="module")
def kb_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("kb") / "data", _env_file=None)  # type: ignore[call-arg]
    write_kb(settings, embedder)
    return settings


@pytest.fixture(scope="module")
def retriever(kb_settings: Settings, embedder: Embedder) -> Retriever:
    return Retriever(open_kb(kb_settings, embedder), embedder, kb_settings)


@pytest.mark.parametrize(
    ("question", "article_id"),
    [
        ("How long do I have to drop off my return?", "returns/return-policy"),
        ("how much does next day delivery cost", "shipping/delivery-times"),
        ("I can't remember my password", "account/reset-password"),
        ("Do gift cards expire?", "billing/gift-cards"),
        ("money back timing", "returns/return-policy"),
    ],
)
def test_right_article_first(retriever: Retriever, question: str, article_id: str) -> None:
    hits = retriever.search(question)
    assert hits[0].article_id == article_id
    assert len({h.article_id for h in hits}) == len(hits), "one entry per article"
    assert hits[0].title and hits[0].chunks


def test_every_mode_returns_articles(retriever: Retriever) -> None:
    for mode in ("hybrid", "bm25", "dense"):
        assert retriever.search("express delivery price", mode=mode)[0].article_id == (
            "shipping/delivery-times"
        )


def test_internal_articles_are_never_retrieved(retriever: Retriever) -> None:
    hits = retriever.search("refund override code for agents")
    assert "internal/agent-macros" not in {h.article_id for h in hits}
    assert retriever.article_chunks("internal/agent-macros") == []


def test_answerable_question_is_answered_and_off_topic_escalated(
    retriever: Retriever, kb_settings: Settings
) -> None:
    threshold = kb_settings.answer_threshold
    answered = decide(
        "How long do refunds take?", retriever.search("How long do refunds take?"), threshold
    )
    assert not answered.escalate
    assert answered.confidence >= threshold
    off_topic = "What is the boiling point of mercury?"
    verdict = decide(off_topic, retriever.search(off_topic), threshold)
    assert verdict.escalate and verdict.reason in ("no_knowledge", "low_confidence")
    assert verdict.confidence < threshold


def test_bm25_follows_edits_without_a_restart(tmp_path: Path, embedder: Embedder) -> None:
    """An edited or deleted article must not linger in the lexical index (stale BM25)."""
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    write_kb(settings, embedder, ARTICLES[:2])
    retriever = Retriever(open_kb(settings, embedder), embedder, settings)
    assert retriever.search("zorbonium kettles", mode="bm25") == []

    edited = KBArticle(
        "shipping/delivery-times",
        "Delivery times and shipping costs",
        "Standard delivery takes 3 to 5 business days. Zorbonium kettles ship separately.",
    )
    write_kb(settings, embedder, [ARTICLES[0], edited])
    hits = retriever.search("zorbonium kettles", mode="bm25")
    assert [h.article_id for h in hits] == ["shipping/delivery-times"]

    delete_article(settings, embedder, "shipping/delivery-times")
    assert retriever.search("zorbonium kettles", mode="bm25") == []
    assert retriever.article_chunks("shipping/delivery-times") == []


def test_invalidate_rebuilds_from_chroma(tmp_path: Path, embedder: Embedder) -> None:
    """Writes that bypass the generation counter are picked up after ``invalidate()``."""
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    write_kb(settings, embedder, ARTICLES[:1])
    collection = open_kb(settings, embedder)
    retriever = Retriever(collection, embedder, settings, generation=lambda: 7)
    assert retriever.search("quux widget", mode="bm25") == []
    first = collection.get(limit=1, include=["documents", "metadatas", "embeddings"])
    text = "Return policy\n\nThe quux widget cannot be returned."
    collection.update(
        ids=[first["ids"][0]],
        documents=[text],
        embeddings=[embedder.embed_query(text)],
    )
    retriever.invalidate()
    assert retriever.search("quux widget", mode="bm25")[0].article_id == "returns/return-policy"


def test_empty_knowledge_base(tmp_path: Path, embedder: Embedder) -> None:
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    retriever = Retriever(open_kb(settings, embedder), embedder, settings)
    assert retriever.search("anything at all") == []
    assert decide("anything at all", [], 0.5).reason == "no_knowledge"
