"""Database engine and sessions (SQLAlchemy 2).

SQLite in the data directory by default, PostgreSQL when ``SUPPORTBOT_DATABASE_URL`` is set. The
schema is owned by Alembic (``bot/core/migrations``); :func:`bot.core.migrate.upgrade_database`
runs at start-up, so a fresh data directory and an old one both end on the current schema.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

T = TypeVar("T")


class Base(DeclarativeBase):
    """Declarative base of every table."""


def make_engine(url: str) -> Engine:
    """An engine with the pragmas SQLite needs to be a good citizen under concurrent writers."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        # A server connection can go stale (restart, idle timeout): test it on checkout. A
        # SQLite connection is a file handle that cannot; pinging it cost every store round
        # trip a statement of its own (7% of the store's CPU in bench/chat_latency.py).
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any error."""
    with factory() as session, session.begin():
        yield session


class DatabaseWorkers:
    """Runs blocking database work off the event loop, each call in one committed transaction.

    The service's sockets share one pool of their own: the answerer runs seconds-long retrieval
    jobs in the default executor, and an ack must not queue behind them (measured: ack p50 went
    from 8 ms at 1 chat to 4 s at 20 chats when both shared the default pool).
    """

    def __init__(self, sessions: sessionmaker[Session], max_workers: int = 8) -> None:
        self.sessions = sessions
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="db")

    async def run(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` in a transaction committed on success, on a worker thread."""

        def in_transaction() -> T:
            with transaction(self.sessions) as session:
                return work(session)

        return await asyncio.get_running_loop().run_in_executor(self._pool, in_transaction)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
