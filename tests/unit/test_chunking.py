"""Chunking: heading context, the model's real token limit, overlap, stable ids, one article each.

Token counts come from the real embedder's tokenizer: the limit that matters is the model's.
"""

from __future__ import annotations

import itertools

import pytest

from ingest.chunking import chunk_article, chunk_articles, chunk_id, split_sections
from ingest.embedder import Embedder
from ingest.loaders import Article

CONTRACT_KEYS = {
    "source",
    "article_id",
    "title",
    "url",
    "heading",
    "chunk_index",
    "tags",
    "visibility",
}

SENTENCES = [
    "Refunds go back to the card you paid with.",
    "Bank transfers take up to five business days to arrive.",
    "PayPal refunds usually appear within a day.",
    "Gift card payments are refunded as a new gift card code.",
    "If a refund is late, check the email we sent when we issued it.",
    "Partial refunds happen when only some items are returned.",
]


def paragraph(n: int, seed: int = 0) -> str:
    return " ".join(SENTENCES[(seed + i) % len(SENTENCES)] for i in range(n))


def long_article() -> Article:
    body = "\n\n".join(
        [
            "# How refunds work",
            paragraph(3),
            "## When we issue the refund",
            paragraph(30, 1),
            "### Exceptions",
            paragraph(4, 2),
            "## How long it takes",
            paragraph(25, 3),
        ]
    )
    return Article(
        id="billing/refunds",
        title="How refunds work",
        body=body,
        url="https://help.example/refunds",
        tags=("billing", "refunds"),
    )


def test_a_tiny_article_is_one_chunk_with_its_title(embedder: Embedder) -> None:
    article = Article(
        id="faq/hours",
        title="Opening hours",
        body="## Weekdays\nWe answer from 9 to 5.\n\n## Weekends\nClosed.",
    )
    chunks = chunk_article(article, embedder.count_tokens, 240, 32)
    assert len(chunks) == 1
    chunk = chunks[0]
    assert chunk.id == "faq/hours#0"
    assert chunk.text == "Opening hours\n\nWeekdays\nWe answer from 9 to 5.\n\nWeekends\nClosed."
    assert chunk.metadata.keys() >= CONTRACT_KEYS
    assert chunk.metadata["source"] == chunk.metadata["article_id"] == "faq/hours"
    assert chunk.metadata["heading"] == ""
    assert chunk.metadata["url"] == ""
    assert chunk.metadata["visibility"] == "public"
    assert chunk.text[chunk.metadata["body_start"] :].startswith("Weekdays")


@pytest.mark.parametrize("max_tokens", [64, 128, 240, 254])
def test_every_chunk_fits_the_limit_prefix_included(embedder: Embedder, max_tokens: int) -> None:
    chunks = chunk_article(long_article(), embedder.count_tokens, max_tokens, 24)
    assert len(chunks) > 2
    for chunk in chunks:
        assert embedder.count_tokens(chunk.text) <= max_tokens, chunk.text


def test_chunks_carry_title_and_heading_path(embedder: Embedder) -> None:
    chunks = chunk_article(long_article(), embedder.count_tokens, 128, 24)
    headings = [chunk.metadata["heading"] for chunk in chunks]
    assert headings[0] == ""  # the intro; the H1 repeating the title is not a heading level
    assert "When we issue the refund" in headings
    assert "When we issue the refund > Exceptions" in headings
    assert "How long it takes" in headings
    assert headings.index("How long it takes") > headings.index("When we issue the refund")
    for chunk in chunks:
        assert chunk.text.startswith("How refunds work\n")
        heading = chunk.metadata["heading"]
        if heading:
            assert chunk.text.startswith(f"How refunds work\n{heading}\n\n")
        assert chunk.metadata["title"] == "How refunds work"
        assert chunk.metadata["tags"] == "billing,refunds"
        assert chunk.metadata["url"] == "https://help.example/refunds"
    assert [c.metadata["chunk_index"] for c in chunks] == list(range(len(chunks)))
    assert [c.id for c in chunks] == [chunk_id("billing/refunds", i) for i in range(len(chunks))]


def numbered_article(sentences: int) -> Article:
    body = " ".join(f"Rule {i} says parcels wait {i} days at the depot." for i in range(sentences))
    return Article(id="depot", title="Depot rules", body=f"## Waiting\n{body}")


def sentences_of(chunk_text: str, body_start: int) -> list[str]:
    return [s.strip(".") for s in chunk_text[body_start:].split(". ")]


def test_long_sections_overlap_a_little(embedder: Embedder) -> None:
    chunks = chunk_article(numbered_article(40), embedder.count_tokens, 96, 24)
    assert len(chunks) >= 3
    for before, after in itertools.pairwise(chunks):
        previous = sentences_of(before.text, before.metadata["body_start"])
        following = sentences_of(after.text, after.metadata["body_start"])
        shared = [s for s in following if s in previous]
        assert shared, (before.text, after.text)
        assert shared == previous[-len(shared) :] == following[: len(shared)]
        assert embedder.count_tokens(". ".join(shared)) <= 24


def test_no_overlap_when_disabled(embedder: Embedder) -> None:
    chunks = chunk_article(numbered_article(40), embedder.count_tokens, 96, 0)
    sentences = [s for c in chunks for s in sentences_of(c.text, c.metadata["body_start"])]
    assert len(sentences) == len(set(sentences)) == 40


def test_text_without_punctuation_or_spaces_is_still_bounded(embedder: Embedder) -> None:
    body = " ".join(f"word{i}" for i in range(600)) + "\n\n" + "x" * 3000
    article = Article(id="odd", title="Odd", body=body)
    chunks = chunk_article(article, embedder.count_tokens, 64, 8)
    assert all(embedder.count_tokens(c.text) <= 64 for c in chunks)
    joined = " ".join(c.text for c in chunks)
    assert "word0 " in joined and "word599" in joined


def test_chunk_ids_and_texts_are_stable(embedder: Embedder) -> None:
    first = chunk_article(long_article(), embedder.count_tokens, 128, 24)
    second = chunk_article(long_article(), embedder.count_tokens, 128, 24)
    assert [(c.id, c.text) for c in first] == [(c.id, c.text) for c in second]


def test_chunks_never_cross_articles(embedder: Embedder) -> None:
    one = Article(id="one", title="Alpha", body="Alpha only text. " * 5)
    two = Article(id="two", title="Beta", body="Beta only text. " * 5)
    by_article = chunk_articles([one, two], embedder.count_tokens, 64, 16)
    assert all("Beta" not in c.text for c in by_article["one"])
    assert all("Alpha" not in c.text for c in by_article["two"])
    assert {c.metadata["source"] for c in by_article["two"]} == {"two"}


def test_headings_without_text_only_give_context() -> None:
    article = Article(id="a", title="T", body="## Parent\n\n### Child\nSome text.")
    assert split_sections(article) == [(["Parent", "Child"], "Some text.")]


def test_a_level_one_heading_other_than_the_title_is_kept() -> None:
    article = Article(id="a", title="Refunds", body="# Background\nOld policy.")
    assert split_sections(article) == [(["Background"], "Old policy.")]
