"""The ingest ledger: one row per indexed article, the record of what Chroma should hold.

Chroma holds vectors; the ledger holds *why* they are there: which article, from which file,
with which content fingerprint, and how many chunks (ids ``{article_id}#0..n-1``). A re-run
compares fingerprints instead of re-embedding, and a deleted file is found because its row
has no file any more.

Crash safety rests on a write-ahead mark: before an article's chunks are written to or deleted
from Chroma, its row is flagged ``pending`` (committed); after the Chroma write, the row is
recorded with the new fingerprint and ``pending`` cleared (committed). A process killed in
between leaves ``pending`` rows behind, and the next run purges those articles' chunks and
forgets the rows, so they are indexed afresh: the store always converges to the ledger.

SQLite through SQLAlchemy Core: the settings give a URL, and a small table needs no ORM. When
the service shares a database between processes (``SUPPORTBOT_DATABASE_URL``), the ledger and
the knowledge-base generation counter (``kb_generation``, one row) live there instead, so every
process sees one ledger and one generation (migration 0009 creates both tables there).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine

_metadata = MetaData()

articles_table = Table(
    "ingest_articles",
    _metadata,
    Column("article_id", String, primary_key=True),
    Column("source_path", String, nullable=True),
    Column("fingerprint", String, nullable=True),
    Column("chunk_count", Integer, nullable=False, default=0),
    Column("pending", Boolean, nullable=False, default=False),
    Column("updated_at", Float, nullable=False),
)

generation_table = Table(
    "kb_generation",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("generation", Integer, nullable=False, default=0),
)
"""The knowledge base's change counter in a shared database (one row, ``id`` 1)."""

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def shared_engine(url: str) -> Engine:
    """One engine per URL for the process (the generation is read on every query)."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create_engine(url, pool_pre_ping=True)
            _metadata.create_all(engine)
            _engines[url] = engine
        return engine


def read_shared_generation(url: str) -> int:
    """The shared counter; 0 before the first change."""
    with shared_engine(url).connect() as connection:
        value = connection.scalar(
            select(generation_table.c.generation).where(generation_table.c.id == 1)
        )
    return int(value or 0)


def bump_shared_generation(url: str) -> int:
    """Increment the shared counter in one statement (atomic across processes)."""
    with shared_engine(url).begin() as connection:
        value = connection.scalar(
            update(generation_table)
            .where(generation_table.c.id == 1)
            .values(generation=generation_table.c.generation + 1)
            .returning(generation_table.c.generation)
        )
        if value is None:
            connection.execute(insert(generation_table).values(id=1, generation=1))
            value = 1
    return int(value)


@dataclass(frozen=True)
class LedgerRow:
    """What the ledger says about one article."""

    article_id: str
    source_path: str | None
    fingerprint: str | None
    chunk_count: int
    pending: bool


class Ledger:
    """The ledger table behind one SQLAlchemy engine; every method is one transaction."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        _metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def rows(self) -> dict[str, LedgerRow]:
        with self.engine.connect() as connection:
            result = connection.execute(select(articles_table))
            return {
                row.article_id: LedgerRow(
                    article_id=row.article_id,
                    source_path=row.source_path,
                    fingerprint=row.fingerprint,
                    chunk_count=int(row.chunk_count),
                    pending=bool(row.pending),
                )
                for row in result
            }

    def mark_pending(self, article_ids: Iterable[str], source_paths: dict[str, str | None]) -> None:
        """Flag articles whose chunks are about to change (new articles get a pending row)."""
        ids = list(article_ids)
        if not ids:
            return
        now = time.time()
        with self.engine.begin() as connection:
            existing: set[str] = set()
            for batch in _batches(ids):
                existing.update(
                    connection.scalars(
                        select(articles_table.c.article_id).where(
                            articles_table.c.article_id.in_(batch)
                        )
                    )
                )
            for batch in _batches(sorted(existing)):
                connection.execute(
                    update(articles_table)
                    .where(articles_table.c.article_id.in_(batch))
                    .values(pending=True, updated_at=now)
                )
            fresh = [article_id for article_id in ids if article_id not in existing]
            if fresh:
                connection.execute(
                    insert(articles_table),
                    [
                        {
                            "article_id": article_id,
                            "source_path": source_paths.get(article_id),
                            "fingerprint": None,
                            "chunk_count": 0,
                            "pending": True,
                            "updated_at": now,
                        }
                        for article_id in fresh
                    ],
                )

    def record(self, rows: Iterable[LedgerRow]) -> None:
        """Write rows as the settled truth (``pending`` cleared)."""
        values = [
            {
                "article_id": row.article_id,
                "source_path": row.source_path,
                "fingerprint": row.fingerprint,
                "chunk_count": row.chunk_count,
                "pending": False,
                "updated_at": time.time(),
            }
            for row in rows
        ]
        if not values:
            return
        with self.engine.begin() as connection:
            for batch in _batches([str(v["article_id"]) for v in values]):
                connection.execute(
                    delete(articles_table).where(articles_table.c.article_id.in_(batch))
                )
            connection.execute(insert(articles_table), values)

    def forget(self, article_ids: Iterable[str]) -> None:
        ids = list(article_ids)
        if not ids:
            return
        with self.engine.begin() as connection:
            for batch in _batches(ids):
                connection.execute(
                    delete(articles_table).where(articles_table.c.article_id.in_(batch))
                )


def _batches(items: list[str], size: int = 500) -> Iterable[list[str]]:
    """SQLite caps the variables of one statement; long IN lists go in slices."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    """Wait for a reader instead of failing at once, and fsync commits fully."""
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA busy_timeout = 10000")
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.close()
