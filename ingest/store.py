"""The Chroma collection that holds article chunks.

The collection's metadata records which embedder wrote it. Vectors from two different models are
not comparable, so opening a collection with another embedder is refused instead of silently
returning nonsense: a new model means a new collection and a full re-index.

Chunk metadata (the contract between ingestion and retrieval):

=============  ===========================================================================
``source``     the article id; the ledger and deletions work per source
``article_id`` the article id (front matter ``id``, or the path under the KB root)
``title``      the article title
``url``        the article URL, ``""`` when none
``heading``    the heading path of the chunk, ``"Returns > Exceptions"``; ``""`` at the top
``chunk_index``position of the chunk inside its article, from 0
``tags``       comma-separated tags
``visibility`` ``public`` (default) or another value; only public articles are answered from
=============  ===========================================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from pathlib import Path

    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

    from bot.core.settings import Settings
    from ingest.embedder import Embedder


class EmbedderMismatchError(RuntimeError):
    """The collection was written by a different embedding model."""


def _chroma_settings() -> Any:
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


def open_client(settings: Settings) -> ClientAPI:
    """An embedded persistent Chroma in the data directory, or a Chroma server when configured."""
    import chromadb

    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        return chromadb.HttpClient(
            host=url.hostname or "localhost",
            port=url.port or (443 if url.scheme == "https" else 8000),
            ssl=url.scheme == "https",
            settings=_chroma_settings(),
        )
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return open_persistent(settings.chroma_dir)


def open_persistent(path: Path) -> ClientAPI:
    """An embedded persistent Chroma at ``path`` (the data directory's store, or an answer
    worker's copy of it)."""
    import chromadb

    return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())


class _RefuseToEmbed:
    """Stands in for Chroma's default embedding function, which would download a model.

    We always pass vectors ourselves; if Chroma ever tries to embed, fail loudly.
    """

    def __call__(self, input: Any) -> Any:
        raise RuntimeError("Chroma must not embed by itself: pass embeddings explicitly")

    @staticmethod
    def name() -> str:
        return "supportbot-external"

    def is_legacy(self) -> bool:
        return True


def open_collection(client: ClientAPI, name: str, embedder: Embedder) -> Collection:
    """Get or create the chunk collection, refusing one written by another embedder."""
    expected = {"embedder": embedder.name, "dimension": embedder.dimension}
    collection = client.get_or_create_collection(
        name=name,
        metadata={**expected, "hnsw:space": "cosine"},
        embedding_function=None,
    )
    found = collection.metadata or {}
    if (
        found.get("embedder") != expected["embedder"]
        or found.get("dimension") != expected["dimension"]
    ):
        raise EmbedderMismatchError(
            f"Collection {name!r} was built with embedder {found.get('embedder')!r} "
            f"(dimension {found.get('dimension')}), but the configured embedder is "
            f"{embedder.name!r} (dimension {embedder.dimension}). Use another collection "
            "name (SUPPORTBOT_COLLECTION) and re-ingest, or switch the embedder back."
        )
    return collection
