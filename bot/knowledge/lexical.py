"""The lexical (BM25) engines behind hybrid retrieval, one interface for both.

``bot.knowledge.retrieval`` needs two things of a lexical index: the BM25 score of every chunk
that shares a term with the question (:meth:`scores`, chunk row -> score), and each term's idf
(:attr:`idf`, for the answerability's term coverage). Tokenizing and stemming stay in
``bot.core.text``: both engines take the same token lists, so switching engines changes
speed, not which words match.

:class:`PostingsBM25` is the original hand-written index: a dict of postings lists, scored in
pure Python term by term. :class:`SparseBM25` uses ``bm25s``, which computes every (term, chunk)
score once at build time into a sparse matrix, so a query is a sum of a few matrix columns in
numpy. Same formula, same numbers (to float32 precision): Okapi BM25 with Lucene's
always-positive idf, ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))``, k1 = 1.2, b = 0.75.
``bench/scale.py`` measured both on synthetic knowledge bases of 1k to 50k chunks
(docs/performance.md, issue 15) and :data:`BM25` names the engine it chose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

K1 = 1.2
B = 0.75


class LexicalIndex(Protocol):
    """What hybrid retrieval asks of a BM25 index."""

    @property
    def idf(self) -> Mapping[str, float]:
        """Each indexed term's idf."""
        ...

    def scores(self, query: Sequence[str]) -> dict[int, float]:
        """Scores of the chunks (by row) that contain at least one query term."""
        ...

    def top(self, query: Sequence[str], k: int) -> list[tuple[int, float]]:
        """The ``k`` best (row, score) pairs, best first (ties: lower row first)."""
        ...


class PostingsBM25:
    """Okapi BM25 with Lucene's always-positive idf, postings lists in Python dicts.

    ``rank_bm25``'s Okapi idf turns negative for a term in more than half the chunks, so on a
    knowledge base of one or two articles every match scored below zero; this one stays sane
    from the first article on. Query cost grows with the postings of the query's terms: 66 ms
    p50 at 50k synthetic chunks in ``bench/scale.py`` (bm25s: 0.9 ms).
    """

    def __init__(self, corpus: Sequence[Sequence[str]], k1: float = K1, b: float = B) -> None:
        self.k1, self.b = k1, b
        self.size = len(corpus)
        self.lengths = [len(doc) for doc in corpus]
        self.avgdl = (sum(self.lengths) / self.size) if self.size else 0.0
        self.postings: dict[str, list[tuple[int, int]]] = {}
        for i, doc in enumerate(corpus):
            counts: dict[str, int] = {}
            for term in doc:
                counts[term] = counts.get(term, 0) + 1
            for term, tf in counts.items():
                self.postings.setdefault(term, []).append((i, tf))
        self.idf = {
            term: math.log(1 + (self.size - len(p) + 0.5) / (len(p) + 0.5))
            for term, p in self.postings.items()
        }

    def scores(self, query: Sequence[str]) -> dict[int, float]:
        result: dict[int, float] = {}
        for term in set(query):
            idf = self.idf.get(term)
            if idf is None:
                continue
            for i, tf in self.postings[term]:
                norm = self.k1 * (1 - self.b + self.b * self.lengths[i] / (self.avgdl or 1.0))
                result[i] = result.get(i, 0.0) + idf * tf * (self.k1 + 1) / (tf + norm)
        return result

    def top(self, query: Sequence[str], k: int) -> list[tuple[int, float]]:
        import heapq

        found = self.scores(query)
        return heapq.nsmallest(k, ((i, s) for i, s in found.items()), key=lambda p: (-p[1], p[0]))


class SparseBM25:
    """The same BM25, precomputed by ``bm25s`` into a sparse (term x chunk) score matrix.

    bm25s's "lucene" variant leaves out the constant ``(k1 + 1)`` of the tf part; it is put
    back here so scores equal :class:`PostingsBM25`'s and anything that reads raw BM25 scores
    sees the same values whichever engine runs.
    """

    def __init__(self, corpus: Sequence[Sequence[str]], k1: float = K1, b: float = B) -> None:
        import bm25s

        self.k1, self.b = k1, b
        self.size = len(corpus)
        self._engine: Any = None
        self._vocab: dict[str, int] = {}
        self.idf: dict[str, float] = {}
        if not self.size or not any(corpus):
            return
        engine = bm25s.BM25(k1=k1, b=b, method="lucene", idf_method="lucene")
        # bm25s builds its own vocabulary from the token lists; an empty chunk stays a row.
        engine.index([list(doc) for doc in corpus], show_progress=False)
        self._engine = engine
        self._vocab = {str(term): int(tid) for term, tid in engine.vocab_dict.items()}
        df: dict[str, int] = {}
        for doc in corpus:
            for term in set(doc):
                df[term] = df.get(term, 0) + 1
        self.idf = {term: math.log(1 + (self.size - n + 0.5) / (n + 0.5)) for term, n in df.items()}

    def scores(self, query: Sequence[str]) -> dict[int, float]:
        import numpy as np

        if self._engine is None:
            return {}
        ids = sorted({self._vocab[term] for term in query if term in self.idf})
        if not ids:
            return {}
        dense = self._engine.get_scores_from_ids(ids)
        rows = np.flatnonzero(dense)
        scale = self.k1 + 1
        return {int(i): float(dense[i]) * scale for i in rows}

    def top(self, query: Sequence[str], k: int) -> list[tuple[int, float]]:
        """Only the best ``k`` leave numpy: a common query word matches most chunks, and
        turning all of their scores into Python objects cost more than scoring them."""
        import numpy as np

        if self._engine is None or k <= 0:
            return []
        ids = sorted({self._vocab[term] for term in query if term in self.idf})
        if not ids:
            return []
        dense = self._engine.get_scores_from_ids(ids)
        matched = int(np.count_nonzero(dense))
        if not matched:
            return []
        take = min(k, matched)
        best = (
            np.argpartition(-dense, take - 1)[:take] if take < len(dense) else np.arange(len(dense))
        )
        scale = self.k1 + 1
        pairs = [(int(i), float(dense[i]) * scale) for i in best if dense[i] > 0]
        pairs.sort(key=lambda p: (-p[1], p[0]))
        return pairs


BM25: type[PostingsBM25] | type[SparseBM25] = SparseBM25
"""The engine retrieval builds (chosen from bench/scale.py's figures)."""
