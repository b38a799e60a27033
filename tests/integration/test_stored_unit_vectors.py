"""Unit vectors (each chunk's sentences and title/heading line) are embedded once, at ingest, and
stored in Chroma beside the chunks (``ingest.unitvectors``): a fresh process's retriever reads
them and embeds only the question. Real parts: a temp-dir Chroma, the real embedder (wrapped to
count what it is asked to embed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chromadb.api.models.Collection import Collection

from bot.core.settings import Settings
from bot.knowledge.retrieval import Retriever
from ingest.embedder import Embedder
from ingest.pipeline import delete_article, index_paths
from ingest.store import open_client
from ingest.units import chunk_units
from ingest.unitvectors import UNITS_FORMAT, find_units_collection, units_collection_name
from tests.helpers.kb import ARTICLES, open_kb, to_markdown

QUESTION = "How long do I have to drop off my return?"


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, real: Embedder) -> None:
        self.real = real
        self.name = real.name
        self.dimension = real.dimension
        self.batch_size = real.batch_size
        self.max_tokens = real.max_tokens
        self.encoded: list[str] = []
        self.queries: list[str] = []

    def count_tokens(self, text: str) -> int:
        return self.real.count_tokens(text)

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        self.encoded.extend(texts)
        return self.real.encode(texts)

    def embed_query(self, text: str) -> list[float]:
        self.queries.append(text)
        return self.real.embed_query(text)


def write_articles(kb: Path) -> Path:
    for article in ARTICLES:
        path = kb / f"{article.article_id}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_markdown(article), encoding="utf-8")
    return kb


@pytest.fixture
def kb_settings(tmp_path: Path) -> Settings:
    kb = write_articles(tmp_path / "kb")
    return Settings(data_dir=tmp_path / "data", kb_path=kb, _env_file=None)


def units_collection(settings: Settings) -> Collection | None:
    return find_units_collection(open_client(settings), settings.collection)


def stored_units(settings: Settings) -> dict[str, list[tuple[int, str, Any]]]:
    """chunk id -> [(position, unit text, vector)] in position order."""
    units = units_collection(settings)
    assert units is not None
    got = units.get(include=["documents", "metadatas", "embeddings"])
    by_chunk: dict[str, list[tuple[int, str, Any]]] = {}
    for document, meta, vector in zip(
        got["documents"] or [],
        got["metadatas"] or [],
        got["embeddings"] if got["embeddings"] is not None else [],
        strict=True,
    ):
        assert meta["format"] == UNITS_FORMAT
        by_chunk.setdefault(str(meta["chunk_id"]), []).append(
            (int(meta["position"]), document or "", vector)  # type: ignore[arg-type]
        )
    return {chunk: sorted(rows, key=lambda r: r[0]) for chunk, rows in by_chunk.items()}


def expected_units(settings: Settings, embedder: Embedder) -> dict[str, list[str]]:
    """chunk id -> what ``chunk_units`` makes of the stored chunk now (heading line first)."""
    got = open_kb(settings, embedder).get(include=["documents", "metadatas"])
    expected = {}
    for chunk_id, text, meta in zip(
        got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True
    ):
        heading, body = chunk_units(text or "", dict(meta or {}))
        expected[chunk_id] = [u for u in (heading, *body) if u]
    return expected


def assert_units_match_chunks(settings: Settings, embedder: Embedder) -> None:
    stored = stored_units(settings)
    expected = expected_units(settings, embedder)
    assert {c: [text for _, text, _ in rows] for c, rows in stored.items()} == {
        c: texts for c, texts in expected.items() if texts
    }
    for rows in stored.values():
        assert [position for position, _, _ in rows] == list(range(len(rows)))


def test_ingest_stores_the_vector_of_every_unit(kb_settings: Settings, embedder: Embedder) -> None:
    report = index_paths(None, kb_settings, embedder)
    assert report.ok and report.units_embedded > 0
    units = units_collection(kb_settings)
    assert units is not None
    assert units.name == units_collection_name(kb_settings.collection)
    assert (units.metadata or {}).get("units_format") == UNITS_FORMAT
    assert_units_match_chunks(kb_settings, embedder)
    chunk, rows = next(iter(sorted(stored_units(kb_settings).items())))
    fresh = np.asarray(embedder.encode([text for _, text, _ in rows]), dtype=np.float32)
    stored = np.asarray([vector for _, _, vector in rows], dtype=np.float32)
    assert np.allclose(fresh, stored, atol=1e-4), chunk


def test_a_fresh_retriever_embeds_only_the_question(
    kb_settings: Settings, embedder: Embedder
) -> None:
    index_paths(None, kb_settings, embedder)
    counting = CountingEmbedder(embedder)
    retriever = Retriever(open_kb(kb_settings, embedder), counting, kb_settings)  # type: ignore[arg-type]
    hits = retriever.search(QUESTION)
    assert hits[0].article_id == "returns/return-policy"
    assert hits[0].sentence_similarity > hits[0].dense_similarity  # sentence evidence was used
    assert counting.queries == [QUESTION]
    assert counting.encoded == [], "unit vectors were embedded instead of read from Chroma"
    retriever.warm_up()  # the service's start-up warm-up reads them too
    assert counting.encoded == []


def test_stored_units_rank_exactly_as_embedded_ones(
    kb_settings: Settings, embedder: Embedder
) -> None:
    """A store without unit vectors (ingested before they existed) still answers, by embedding
    them, and the same way as from stored ones; its next ingest fills them in."""
    index_paths(None, kb_settings, embedder)
    stored = Retriever(open_kb(kb_settings, embedder), embedder, kb_settings).search(QUESTION)

    open_client(kb_settings).delete_collection(units_collection_name(kb_settings.collection))
    counting = CountingEmbedder(embedder)
    retriever = Retriever(open_kb(kb_settings, embedder), counting, kb_settings)  # type: ignore[arg-type]
    embedded = retriever.search(QUESTION)
    assert counting.encoded, "nothing was stored: the units must have been embedded"
    assert [h.article_id for h in embedded] == [h.article_id for h in stored]
    for mine, theirs in zip(embedded, stored, strict=True):
        assert mine.fused == pytest.approx(theirs.fused, abs=1e-4)
        assert mine.sentence_similarity == pytest.approx(theirs.sentence_similarity, abs=1e-4)

    report = index_paths(None, kb_settings, embedder)  # nothing changed: only the units fill in
    assert report.units_embedded > 0
    assert report.chunks_written == report.chunks_deleted == 0 and not report.changed
    assert_units_match_chunks(kb_settings, embedder)
    again = CountingEmbedder(embedder)
    Retriever(open_kb(kb_settings, embedder), again, kb_settings).search(QUESTION)  # type: ignore[arg-type]
    assert again.encoded == []
    assert index_paths(None, kb_settings, embedder).units_embedded == 0


def test_an_edit_replaces_an_articles_units_and_a_delete_removes_them(
    kb_settings: Settings, embedder: Embedder
) -> None:
    index_paths(None, kb_settings, embedder)
    policy = kb_settings.kb_path / "returns" / "return-policy.md"
    policy.write_text(
        "---\nid: returns/return-policy\ntitle: Return policy\n---\n\n"
        "Returns are accepted for 60 days. The label is free.\n",
        encoding="utf-8",
    )
    report = index_paths(None, kb_settings, embedder)
    assert report.updated == ["returns/return-policy"]
    assert_units_match_chunks(kb_settings, embedder)
    texts = [text for _, text, _ in stored_units(kb_settings)["returns/return-policy#0"]]
    assert texts == ["Return policy", "Returns are accepted for 60 days.", "The label is free."]
    assert not any(c.startswith("returns/return-policy#1") for c in stored_units(kb_settings))

    counting = CountingEmbedder(embedder)
    retriever = Retriever(open_kb(kb_settings, embedder), counting, kb_settings)  # type: ignore[arg-type]
    assert retriever.search("how many days to return")[0].article_id == "returns/return-policy"
    assert counting.encoded == []

    (kb_settings.kb_path / "shipping" / "delivery-times.md").unlink()
    assert index_paths(None, kb_settings, embedder).deleted == ["shipping/delivery-times"]
    assert delete_article("account/reset-password", kb_settings, embedder)
    left = stored_units(kb_settings)
    assert not any(c.startswith(("shipping/delivery-times#", "account/")) for c in left)
    assert_units_match_chunks(kb_settings, embedder)


def test_stale_stored_units_are_embedded_again_never_used(
    kb_settings: Settings, embedder: Embedder
) -> None:
    """Stored units made by another definition of a unit (another engineer changed
    ``chunk_units``) no longer match what the retriever computes: they are not used, and the
    next ingest, seeing another definition, embeds every chunk's units again."""

    def shouting(text: str, metadata: dict[str, Any]) -> tuple[str, list[str]]:
        heading, body = chunk_units(text, metadata)
        return heading.upper(), [unit.upper() for unit in body]

    index_paths(None, kb_settings, embedder, units=shouting)
    counting = CountingEmbedder(embedder)
    retriever = Retriever(open_kb(kb_settings, embedder), counting, kb_settings)  # type: ignore[arg-type]
    assert retriever.search(QUESTION)[0].article_id == "returns/return-policy"
    assert counting.encoded and not any(text.isupper() for text in counting.encoded)

    report = index_paths(None, kb_settings, embedder)  # the articles themselves are unchanged
    assert report.units_embedded > 0 and not report.changed
    assert_units_match_chunks(kb_settings, embedder)
    again = CountingEmbedder(embedder)
    Retriever(open_kb(kb_settings, embedder), again, kb_settings).search(QUESTION)  # type: ignore[arg-type]
    assert again.encoded == []
