"""Hybrid retrieval: dense (Chroma) + lexical (BM25) over the same chunks, fused, per article.

Why both: the MiniLM embedder finds paraphrases ("money back" -> refunds) but blurs exact terms
(product names, error codes, "VAT"); BM25 nails exact terms and misses paraphrases.

Fusion is a weighted sum of per-article evidence, not reciprocal rank fusion: MiniLM cosines are
on the same scale for every query, and BM25 divided by the query's best BM25 score is in [0, 1],
so a weighted sum keeps *how much* better one article is, which ranks alone throw away. Each
article is scored by its best chunk (cosine and BM25) and by its best single sentence or list
item (cosine): a question usually matches one sentence, and in FAQ-style entries that are lists
of example questions the best item is the nearest example question.

The BM25 index lives in process memory and is rebuilt from ``collection.get()`` whenever the
knowledge base changes: the ingest pipeline bumps an integer in ``{data_dir}/kb_generation`` (in
the shared database's ``kb_generation`` row when processes share one, so a process follows
another's publish at its next query) after every change, and a per-query check of that number
(the chunk count instead, for stores written without the counter: a counter, once there, moves
with every write and is all that is read) keeps the lexical side in step with Chroma. The index
is read from Chroma in pages, public chunks only. The engine is
``bot.knowledge.lexical.BM25`` (bm25s's sparse matrix since issue 15: the best 40 chunks cost
0.9 ms p50 at 50k chunks, where the old postings index took 66 ms; same formula and scores,
see ``bench/scale.py``).

Dense and lexical move to a new generation together. Inside the service every write goes
through :meth:`Retriever.publishing` (the knowledge writer in ``bot.knowledge.publishing``): it
waits for running queries, keeps new ones waiting while Chroma changes, then swaps in the lexical
index built from the new Chroma state and bumps :attr:`Retriever.generation`, so no query ever
sees an edit on one side and not on the other. Non-public chunks are filtered inside Chroma
(``where``), so they never take the places of public ones among the ``retrieval_dense_k``
nearest chunks. A failing vector store raises: an error is never reported as "no knowledge".

The vectors of each chunk's sentences (its *units*, ``ingest.units.chunk_units``) are
embedded once, by the ingest pipeline, and stored in Chroma beside the chunks
(``ingest.unitvectors``): a process reads the ones its candidates need, batched, the first time
it meets them, and embeds only units it finds missing or stale (a store ingested before they were
stored, an edited unit definition). So a fresh process answers its first question for the cost
of that question, not of embedding every candidate article's sentences.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

from bot.core.text import tokenize
from bot.knowledge.lexical import BM25, LexicalIndex
from ingest.units import chunk_units, example_share
from ingest.unitvectors import ChunkUnits, read_units, split_chunk, units_of

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

    from bot.core.settings import Settings
    from ingest.embedder import Embedder

log = logging.getLogger(__name__)

RERANK_CANDIDATES = 20
"""Articles whose sentences are compared with the question (the rest are cut)."""

# Hybrid article score = SENTENCE_WEIGHT x best-sentence cosine + DENSE_WEIGHT x best-chunk
# cosine + BM25_WEIGHT x (BM25 / the query's best BM25). Chosen on emanual-qa and banking77-oos
# valid together and confirmed on MTRAG, which was not used to choose them (docs/evaluation.md):
# with the title/heading unit, emanual-qa R@5 0.82 -> 0.87, banking77 R@1 0.82 -> 0.83 and MTRAG
# R@5 0.97 -> 0.98 against reciprocal rank fusion. Re-swept for issue #11 over every article's
# evidence (dense 0.25-1.0, BM25 0.0-0.7, the title/heading line as a max or an added term at
# 0.3/0.6, term coverage as a fourth term at 0.1-0.3, sentences re-joined across soft line
# breaks): the best alternatives moved emanual-qa R@5 by +0.007 at the cost of banking77 R@1
# -0.004 to -0.012, so the weights stay.
SENTENCE_WEIGHT = 1.0
DENSE_WEIGHT = 0.5
BM25_WEIGHT = 0.3


@dataclass
class ChunkHit:
    """One chunk with its evidence from each retriever."""

    chunk_id: str
    text: str
    metadata: dict[str, Any]
    fused: float = 0.0
    dense_similarity: float | None = None  # cosine similarity, None when Chroma did not return it
    bm25: float = 0.0
    dense_rank: int | None = None
    bm25_rank: int | None = None


@dataclass
class ArticleHit:
    """An article, scored by its best chunk; its other matching chunks kept for the answer."""

    article_id: str
    title: str
    url: str | None
    fused: float
    dense_similarity: float
    term_coverage: float
    chunks: list[ChunkHit] = field(default_factory=list)
    sentence_similarity: float = 0.0  # best single sentence or list item, 0 when not computed
    bm25: float = 0.0  # best chunk's BM25 score
    heading_similarity: float = 0.0  # best title/heading line; ranks, not in the answer score
    learned_similarity: float = 0.0  # nearest learned question of the article (evidence only)
    example_share: float = 0.0  # body units in the customer's voice: FAQ entry ~1, prose ~0

    @property
    def best_chunk(self) -> ChunkHit:
        return self.chunks[0]


class LearnedUnits(Protocol):
    """Learned questions (``bot.knowledge.learned.LearnedIndex``): for a question vector, the
    cosine of the nearest learned question of each of the closest articles."""

    def similarities(self, vector: Sequence[float]) -> dict[str, float]: ...


@dataclass
class _LexicalIndex:
    ids: list[str]
    texts: list[str]
    metadatas: list[dict[str, Any]]
    bm25: LexicalIndex
    key: tuple[int, int]
    by_article: dict[str, list[int]] = field(default_factory=dict)
    terms: dict[str, frozenset[str]] = field(default_factory=dict)  # chunk id -> its BM25 terms
    examples: dict[str, float] = field(default_factory=dict)  # article id -> example_share

    def example_share(self, article_id: str) -> float:
        """How much of the article is written in the customer's voice (an FAQ entry's example
        questions), computed once per generation."""
        found = self.examples.get(article_id)
        if found is None:
            units = [
                unit
                for i in self.by_article.get(article_id, ())
                for unit in chunk_units(self.texts[i], self.metadatas[i])[1]
            ]
            found = self.examples[article_id] = example_share(units)
        return found


def chunk_search_text(text: str, metadata: dict[str, Any]) -> str:
    """What BM25 indexes: the title and heading path with the chunk, so a question naming the
    topic matches even a chunk whose body never repeats it."""
    return f"{metadata.get('title', '')}\n{metadata.get('heading', '')}\n{text}"


def _read_generation(settings: Settings) -> int:
    try:
        from ingest.pipeline import read_generation
    except ImportError:  # pragma: no cover - the pipeline ships with the package
        return 0
    return int(read_generation(settings))


PUBLIC: dict[str, Any] = {"visibility": "public"}
"""The Chroma ``where`` filter of everything customers may be answered from."""

INDEX_PAGE = 2_000
"""Chunks read per ``collection.get`` while building the lexical index: a big knowledge base is
read in pages instead of one response holding every chunk."""


class _Gate:
    """Many queries at once, or one knowledge-base write alone.

    A waiting write goes first (new queries wait behind it), so a steady stream of questions
    cannot starve a publish. Re-entrant for the thread already inside: a query that calls
    another public method, or the writer that warms up what it published, does not deadlock.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer: int | None = None  # thread id of the writer inside
        self._writers_waiting = 0
        self._local = threading.local()

    @contextmanager
    def reading(self) -> Iterator[None]:
        me = threading.get_ident()
        depth = getattr(self._local, "depth", 0)
        if depth or self._writer == me:
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth = depth
            return
        with self._cond:
            while self._writer is not None or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        self._local.depth = 1
        try:
            yield
        finally:
            self._local.depth = 0
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer is not None or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = threading.get_ident()
        try:
            yield
        finally:
            with self._cond:
                self._writer = None
                self._cond.notify_all()


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _reads(
    method: Callable[Concatenate[Retriever, _P], _R],
) -> Callable[Concatenate[Retriever, _P], _R]:
    """Run a public query method inside the gate: it sees one generation, whole."""

    @functools.wraps(method)
    def gated(self: Retriever, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._gate.reading():
            return method(self, *args, **kwargs)

    return gated


class Retriever:
    """Hybrid search over one Chroma collection, safe to share between requests."""

    def __init__(
        self,
        collection: Collection,
        embedder: Embedder,
        settings: Settings,
        *,
        generation: Callable[[], int] | None = None,
        client: ClientAPI | None = None,
        dense_weight: float = DENSE_WEIGHT,
        bm25_weight: float = BM25_WEIGHT,
        sentence_weight: float = SENTENCE_WEIGHT,
    ) -> None:
        self.collection = collection
        self.embedder = embedder
        self.settings = settings
        self.dense_weight = dense_weight
        self.bm25_weight = bm25_weight
        self._generation = generation or (lambda: _read_generation(settings))
        self.sentence_weight = sentence_weight
        self._index: _LexicalIndex | None = None
        self._lock = threading.Lock()
        self._gate = _Gate()
        self.generation = 0
        """Bumped each time the lexical index is rebuilt: the generation queries now see."""
        # chunk id -> (chunk text, vectors of [title/heading?, *sentences], has title/heading)
        self._sentence_vectors: dict[str, tuple[str, Any, bool]] = {}
        self._units: Collection | None = None  # the stored unit vectors, found at index builds
        self._client = client  # what finds them: the settings' Chroma unless given
        self.after_publish: list[Callable[[], None]] = []
        """Called inside the gate after every publish, while the store is quiet (nothing reads
        or writes it): the answer workers copy it there (``bot.knowledge.answer_process``)."""
        self.learned: LearnedUnits | None = None
        """Approved learned questions, set by the service: evidence for their articles like an
        FAQ's example questions (best-sentence similarity), never text for the answer."""

    # --- keeping BM25 in step with Chroma ------------------------------------------------------
    def invalidate(self) -> None:
        """Forget the lexical index; the next query rebuilds it (writes that bypassed
        :meth:`publishing`)."""
        with self._lock:
            self._index = None

    @contextmanager
    def publishing(self) -> Iterator[None]:
        """Hold queries off while the block writes to Chroma, then move both sides to the new
        generation before any query runs again (also when the write failed part-way: queries
        then see what Chroma really holds)."""
        with self._gate.writing():
            try:
                yield
            finally:
                self.refresh()
                for hook in self.after_publish:
                    try:
                        hook()
                    except Exception:  # a follower of the store must not fail the publish
                        log.exception("after-publish hook failed")

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Hold queries and writes off while the block reads the store's files (a copy)."""
        with self._gate.writing():
            yield

    def switch_store(self, client: ClientAPI, collection: Collection, generation: int) -> None:
        """Answer from another store from now on (an answer worker's copy of the service's),
        which is at ``generation``: queries wait while both sides move; vectors already
        computed for unchanged chunks stay."""
        with self._gate.writing():
            self._client = client
            self.collection = collection
            self._generation = lambda: generation
            self.refresh()

    def refresh(self) -> None:
        """Rebuild the lexical index from Chroma now and make it the current generation."""
        with self._lock:
            self._index = self._build_index(self._current_key())
            self.generation += 1

    def _current_key(self) -> tuple[int, int]:
        generation = self._generation()
        if generation:  # the pipeline bumps it with every write: counting is not needed
            return (generation, -1)
        return (0, self.collection.count())  # a store written without the counter

    def _lexical(self) -> _LexicalIndex:
        key = self._current_key()
        with self._lock:
            if self._index is not None and self._index.key == key:
                return self._index
            self._index = self._build_index(key)
            self.generation += 1
            return self._index

    def _build_index(self, key: tuple[int, int]) -> _LexicalIndex:
        ids: list[str] = []
        texts: list[str] = []
        metadatas: list[dict[str, Any]] = []
        while True:
            got = self.collection.get(
                where=dict(PUBLIC),
                include=["documents", "metadatas"],
                limit=INDEX_PAGE,
                offset=len(ids),
            )
            for chunk_id, text, metadata in zip(
                got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True
            ):
                ids.append(chunk_id)
                texts.append(text or "")
                metadatas.append(dict(metadata or {}))
            if len(got["ids"]) < INDEX_PAGE:
                break
        tokenized = [
            tokenize(chunk_search_text(t, m)) for t, m in zip(texts, metadatas, strict=True)
        ]
        by_article: dict[str, list[int]] = {}
        for i, meta in enumerate(metadatas):
            by_article.setdefault(_article_id(meta), []).append(i)
        # Vectors are checked against the chunk text on use, so only removed chunks go here:
        # an edit re-embeds the edited chunks, not the whole knowledge base.
        live = set(ids)
        for stale in [chunk_id for chunk_id in self._sentence_vectors if chunk_id not in live]:
            self._sentence_vectors.pop(stale, None)
        terms = {chunk_id: frozenset(t) for chunk_id, t in zip(ids, tokenized, strict=True)}
        self._units = self._find_units()  # an ingest may have made it since the last build
        return _LexicalIndex(ids, texts, metadatas, BM25(tokenized), key, by_article, terms)

    # --- search -----------------------------------------------------------------------------
    @_reads
    def article_chunks(self, article_id: str) -> list[ChunkHit]:
        """Every public chunk of one article in reading order (for composing the answer)."""
        index = self._lexical()
        chunks = [
            ChunkHit(index.ids[i], index.texts[i], index.metadatas[i])
            for i in index.by_article.get(article_id, ())
        ]
        chunks.sort(key=lambda c: int(c.metadata.get("chunk_index") or 0))
        return chunks

    @_reads
    def search(
        self, query: str, *, k_articles: int | None = None, mode: str = "hybrid"
    ) -> list[ArticleHit]:
        """Articles best first. ``mode`` is ``hybrid`` (the product), or ``dense``/``bm25`` for
        the baselines the quality bench reports beside it."""
        index = self._lexical()
        if not index.ids or not query.strip():
            return []
        hits: dict[str, ChunkHit] = {}
        vector: list[float] | None = None
        if mode in ("hybrid", "dense"):
            vector = self.embedder.embed_query(query)
            self._dense(vector, hits, public_chunks=len(index.ids))
        if mode in ("hybrid", "bm25"):
            self._bm25(query, index, hits)
        learned = self._learned(vector, index, hits) if mode == "hybrid" else {}
        k = self.settings.retrieval_rrf_k
        for hit in hits.values():  # orders chunks within an article (and the baselines)
            if hit.dense_rank is not None:
                hit.fused += 1.0 / (k + hit.dense_rank)
            if hit.bm25_rank is not None:
                hit.fused += 1.0 / (k + hit.bm25_rank)
        limit = k_articles or self.settings.retrieval_articles
        candidates = self._group(query, list(hits.values()), index)
        if mode != "hybrid":
            candidates = candidates[: max(limit, RERANK_CANDIDATES)]
            if vector is not None:
                self._fill_dense(vector, candidates)
            return candidates[:limit]
        assert vector is not None
        # Weighted fusion of calibrated evidence: cosine similarities are comparable across
        # queries, BM25 is scaled by the query's best article. Stage 1 (chunk cosine + BM25)
        # picks the candidates; stage 2 adds each candidate's best sentence.
        self._fill_dense(vector, candidates)
        best_bm25 = max((a.bm25 for a in candidates), default=0.0) or 1.0
        for article in candidates:
            article.fused = (
                self.dense_weight + self.sentence_weight
            ) * article.dense_similarity + self.bm25_weight * article.bm25 / best_bm25
        candidates.sort(key=lambda a: -a.fused)
        keep = max(limit, RERANK_CANDIDATES)
        candidates = candidates[:keep] + [a for a in candidates[keep:] if a.article_id in learned]
        for article in candidates:
            article.learned_similarity = learned.get(article.article_id, 0.0)
        if self.sentence_weight > 0:
            self._sentence_similarity(vector, candidates, index)
        for article in candidates:
            article.fused = (
                self.sentence_weight * max(article.sentence_similarity, article.heading_similarity)
                + self.dense_weight * article.dense_similarity
                + self.bm25_weight * article.bm25 / best_bm25
            )
        candidates.sort(key=lambda a: -a.fused)
        return candidates[:limit]

    def _dense(self, vector: list[float], hits: dict[str, ChunkHit], public_chunks: int) -> None:
        # The lexical index of this generation holds every public chunk: no count() per query.
        n = min(self.settings.retrieval_dense_k, public_chunks)
        if n <= 0:
            return
        result = self.collection.query(
            query_embeddings=[vector],  # type: ignore[arg-type]
            n_results=n,
            where=dict(PUBLIC),  # in Chroma: internal chunks never take a public chunk's place
            include=["documents", "metadatas", "distances"],
        )
        ids = result["ids"][0]
        docs = (result["documents"] or [[]])[0]
        metas = (result["metadatas"] or [[]])[0]
        dists = (result["distances"] or [[]])[0]
        rows = zip(ids, docs, metas, dists, strict=False)
        for rank, (chunk_id, text, meta, dist) in enumerate(rows, start=1):
            metadata = dict(meta or {})
            hit = hits.setdefault(chunk_id, ChunkHit(chunk_id, text or "", metadata))
            hit.dense_rank = rank
            hit.dense_similarity = 1.0 - float(dist)  # the collection uses cosine distance

    def _learned(
        self, vector: list[float] | None, index: _LexicalIndex, hits: dict[str, ChunkHit]
    ) -> dict[str, float]:
        """The learned-question evidence per article; an article only its learned questions
        found joins the candidates through its first chunk."""
        if self.learned is None or vector is None:
            return {}
        found = self.learned.similarities(vector)
        present = {_article_id(hit.metadata) for hit in hits.values()}
        for article_id in found:
            rows = index.by_article.get(article_id)
            if rows and article_id not in present:
                i = rows[0]
                hits[index.ids[i]] = ChunkHit(index.ids[i], index.texts[i], index.metadatas[i])
        return {a: s for a, s in found.items() if a in index.by_article}

    def _bm25(self, query: str, index: _LexicalIndex, hits: dict[str, ChunkHit]) -> None:
        best = index.bm25.top(tokenize(query), self.settings.retrieval_bm25_k)
        for rank, (i, score) in enumerate(best, start=1):
            hit = hits.setdefault(
                index.ids[i], ChunkHit(index.ids[i], index.texts[i], index.metadatas[i])
            )
            hit.bm25_rank = rank
            hit.bm25 = score

    def _group(
        self,
        query: str,
        chunk_hits: list[ChunkHit],
        index: _LexicalIndex,
    ) -> list[ArticleHit]:
        by_article: dict[str, list[ChunkHit]] = {}
        for hit in chunk_hits:
            article_id = _article_id(hit.metadata)
            by_article.setdefault(article_id, []).append(hit)
        query_terms = set(tokenize(query))
        articles: list[ArticleHit] = []
        for article_id, group in by_article.items():
            group.sort(key=lambda h: -h.fused)
            # The best chunk alone decides: RRF scores of neighbouring ranks differ by little,
            # so any bonus for extra matching chunks would favour long articles over the right one.
            fused = group[0].fused
            meta = group[0].metadata
            articles.append(
                ArticleHit(
                    article_id=article_id,
                    title=str(meta.get("title") or article_id),
                    url=str(meta.get("url")) or None,
                    fused=fused,
                    dense_similarity=max((h.dense_similarity or 0.0) for h in group),
                    term_coverage=_coverage(query_terms, group, index),
                    bm25=max(h.bm25 for h in group),
                    chunks=group,
                    example_share=index.example_share(article_id),
                )
            )
        articles.sort(key=lambda a: -a.fused)
        return articles

    def _fill_dense(self, vector: list[float], articles: Sequence[ArticleHit]) -> None:
        """Cosine similarity for chunks only BM25 found, from the vectors Chroma already stores,
        so every kept article has dense evidence for the answerability score."""
        import numpy as np

        missing = [h for a in articles for h in a.chunks if h.dense_similarity is None]
        if not missing:
            return
        got = self.collection.get(ids=[h.chunk_id for h in missing], include=["embeddings"])
        stored = dict(
            zip(
                got["ids"], got["embeddings"] if got["embeddings"] is not None else [], strict=False
            )
        )
        q = np.asarray(vector, dtype=np.float32)
        for hit in missing:
            emb = stored.get(hit.chunk_id)
            if emb is not None:
                hit.dense_similarity = float(np.asarray(emb, dtype=np.float32) @ q)
        for article in articles:
            article.dense_similarity = max((h.dense_similarity or 0.0) for h in article.chunks)

    def _sentence_similarity(
        self, vector: list[float], candidates: Sequence[ArticleHit], index: _LexicalIndex
    ) -> None:
        """Each candidate's best single sentence or list item against the question.

        A chunk vector averages everything in the chunk; a question usually matches one
        sentence or one listed example. Sentence vectors are computed the first time an
        article is a candidate and kept until the knowledge base changes.
        """
        import numpy as np

        rows = [i for hit in candidates for i in index.by_article.get(hit.article_id, [])]
        self._ensure_sentence_vectors(index, rows)
        q = np.asarray(vector, dtype=np.float32)
        self._score_candidates(q, candidates, index)

    def _ensure_sentence_vectors(self, index: _LexicalIndex, rows: Iterable[int]) -> None:
        """Cache the sentence vectors of the chunks at ``rows`` that are not cached yet: the
        stored ones where Chroma holds them for exactly these units, else embedded here."""
        import numpy as np

        missing: list[ChunkUnits] = []
        texts: dict[str, str] = {}
        for i in dict.fromkeys(rows):
            chunk_id, text = index.ids[i], index.texts[i]
            cached = self._sentence_vectors.get(chunk_id)
            if cached is None or cached[0] != text:
                missing.append(split_chunk(chunk_units, chunk_id, text, index.metadatas[i]))
                texts[chunk_id] = text
        if not missing:
            return
        self._read_stored(missing)
        unread = [c for c in missing if c.texts and c.vectors is None]
        flat = [u for c in unread for u in c.texts]
        if flat:
            vectors = np.asarray(self.embedder.encode(flat), dtype=np.float32)
            start = 0
            for chunk in unread:
                chunk.vectors = vectors[start : start + len(chunk.texts)]
                start += len(chunk.texts)
        for chunk in missing:
            self._sentence_vectors[chunk.chunk_id] = (
                texts[chunk.chunk_id],
                chunk.vectors,
                chunk.heading,
            )

    def _find_units(self) -> Collection | None:
        """The stored unit vectors of this collection (``ingest.unitvectors``), if any."""
        from ingest.store import open_client

        try:
            if self._client is None:
                self._client = open_client(self.settings)
        except Exception:
            log.info("cannot open the Chroma client for stored unit vectors", exc_info=True)
            return None
        return units_of(self._client, self.collection)

    def _read_stored(self, chunks: Sequence[ChunkUnits]) -> None:
        """Fill ``vectors`` of the chunks whose units Chroma stores as they are now. Only speed
        depends on it: a failure leaves them to be embedded."""
        units = self._units
        if units is None or not any(c.texts for c in chunks):
            return
        try:
            read_units(units, [c for c in chunks if c.texts])
        except Exception:
            log.warning("reading stored unit vectors failed; embedding them", exc_info=True)
            for chunk in chunks:
                chunk.vectors = None

    @_reads
    def warm_up(self, article_id: str | None = None) -> None:
        """Embed the sentences of one article (or all) now, so the first customers after a
        start do not wait for it."""
        index = self._lexical()
        rows = range(len(index.ids)) if article_id is None else index.by_article.get(article_id, [])
        self._ensure_sentence_vectors(index, rows)

    @_reads
    def article_titles(self) -> dict[str, str]:
        """Article id -> title, for every public article in the index."""
        index = self._lexical()
        return {
            article_id: str(index.metadatas[rows[0]].get("title") or article_id)
            for article_id, rows in index.by_article.items()
        }

    def _score_candidates(
        self, q: Any, candidates: Sequence[ArticleHit], index: _LexicalIndex
    ) -> None:
        for article in candidates:
            best = article.dense_similarity
            heading_best = 0.0
            for i in index.by_article.get(article.article_id, []):
                cached = self._sentence_vectors.get(index.ids[i])
                if cached is None:  # pruned by a concurrent rebuild after a KB change
                    continue
                _, block, has_heading = cached
                if block is None or not len(block):
                    continue
                sims = block @ q
                if has_heading:
                    heading_best = max(heading_best, float(sims[0]))
                    sims = sims[1:]
                if len(sims):
                    best = max(best, float(sims.max()))
            article.sentence_similarity = max(best, article.learned_similarity)
            article.heading_similarity = heading_best


def _article_id(metadata: dict[str, Any]) -> str:
    return str(metadata.get("article_id") or metadata.get("source") or "")


def _coverage(query_terms: set[str], group: list[ChunkHit], index: _LexicalIndex) -> float:
    """Share of the question's idf weight found in the article's matching chunks and title.

    Out-of-scope questions that land on a near-miss article usually lack the rare terms.
    """
    if not query_terms:
        return 0.0
    present: set[str] = set()
    for hit in group:
        terms = index.terms.get(hit.chunk_id)
        if terms is None:
            terms = frozenset(tokenize(chunk_search_text(hit.text, hit.metadata)))
        present |= terms
    idf = index.bm25.idf
    default_idf = max(idf.values(), default=1.0)
    total = sum(idf.get(t, default_idf) for t in query_terms)
    found = sum(idf.get(t, default_idf) for t in query_terms if t in present)
    return found / total if total else 0.0
