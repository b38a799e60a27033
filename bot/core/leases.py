"""Run-once-across-processes: PostgreSQL advisory locks (no-ops on SQLite).

Several service processes share one PostgreSQL database; a periodic job (the outcome job, the
start-up job that answers questions a stopped process owed) must run in one of them at a time,
and a knowledge-base write must be the only one across all of them.

- :func:`try_job_lock` takes a *transaction-scoped* advisory lock inside the job's own
  transaction: the job's work and the lock commit (or roll back) together, and a process that
  dies mid-job loses the lock with its connection while its uncommitted work is rolled back, so
  nothing half-done remains and the next run (any process) starts clean.
- :func:`session_lock` holds a *session-scoped* advisory lock on a dedicated connection for the
  length of a block (a knowledge-base write spanning several transactions and Chroma calls). The
  server releases it when the connection closes, also when the holder is killed.

On SQLite (one process per data directory) both always succeed: there is nobody to exclude.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session


class LeaseTimeoutError(RuntimeError):
    """Another process held the lock for longer than we were willing to wait."""


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (PostgreSQL advisory locks take a bigint)."""
    digest = hashlib.blake2b(f"supportbot:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def is_postgres(session: Session) -> bool:
    return bool(session.get_bind().dialect.name == "postgresql")


def try_job_lock(session: Session, name: str) -> bool:
    """In the job's transaction: True when this process may run job ``name`` now (the lock is
    held until the transaction ends); False when another process is running it."""
    if not is_postgres(session):
        return True
    got = session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": lock_key(name)})
    return bool(got)


@contextmanager
def session_lock(engine: Engine, name: str, timeout_s: float) -> Iterator[None]:
    """Hold the advisory lock ``name`` for the block, waiting up to ``timeout_s`` for it."""
    if engine.dialect.name != "postgresql":
        yield
        return
    key = lock_key(name)
    with engine.connect() as connection:
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            got = connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
            connection.commit()
            if got:
                break
            if time.monotonic() >= deadline:
                raise LeaseTimeoutError(
                    f"another process held the lock {name!r}; gave up after waiting {timeout_s:g} s"
                )
            time.sleep(0.1)
        try:
            yield
        finally:
            try:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
            except Exception:  # the connection died: the server released the lock with it
                connection.invalidate()


# --- which answer owners are alive ----------------------------------------------------------------
#
# A process marks the questions it is answering with its owner id (``answer_owner``); another
# process takes a question over (a resume, a resend, the start-up job) only when that owner has
# stopped. Each process holds the advisory lock of its owner id for its lifetime, on a connection
# of its own, so "alive" is "that lock is held": the server drops it with a killed process.


def _owner_lock(owner: str) -> str:
    return f"answer-owner:{owner}"


@contextmanager
def owner_lease(engine: Engine, owner: str) -> Iterator[None]:
    """Hold ``owner``'s liveness lock while the block runs (no-op on SQLite)."""
    if engine.dialect.name != "postgresql":
        yield
        return
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    own = create_engine(engine.url, poolclass=NullPool)  # not a connection of the shared pool
    try:
        with session_lock(own, _owner_lock(owner), timeout_s=10.0):
            yield
    finally:
        own.dispose()


def owner_alive(session: Session, owner: str) -> bool:
    """Whether the process ``owner`` still runs (holds its lease); False on SQLite, where one
    process serves and any other owner is a stopped one."""
    if not is_postgres(session):
        return False
    key = lock_key(_owner_lock(owner))
    got = session.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
    if got:
        session.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    return not got
