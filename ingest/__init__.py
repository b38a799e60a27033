"""Supportbot's ingestion pipeline: load articles -> chunk -> embed -> Chroma, incrementally.

The public API, importable from here (loaded on first use, so ``import ingest.embedder`` and
the CLI's ``--help`` stay light):

- ``index_paths(paths, settings, embedder=None, progress=None)``: folders or files
- ``index_articles(articles, settings, ..., delete_missing=False)``: the admin API's publish
- ``delete_article(article_id, settings)``
- ``read_generation(settings)``: the counter bumped after every change
- ``Article``, ``IngestReport``
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "index_paths": "ingest.pipeline",
    "index_articles": "ingest.pipeline",
    "delete_article": "ingest.pipeline",
    "read_generation": "ingest.pipeline",
    "IngestReport": "ingest.pipeline",
    "Article": "ingest.loaders",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ingest' has no attribute {name!r}")
