"""The pieces the scale suite's processes rely on, in one process: the Redis event bus, the
advisory locks, the shared generation counter and the settings that choose them. Fast; skipped
with the reason when PostgreSQL or Redis is absent."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from bot.conversations.events import EventBus
from bot.conversations.redis_events import RedisEventBus, make_event_bus
from bot.core.db import make_engine
from bot.core.leases import (
    LeaseTimeoutError,
    owner_alive,
    owner_lease,
    session_lock,
    try_job_lock,
)
from bot.core.migrate import upgrade_database
from bot.core.settings import Settings
from ingest.ledger import Ledger, LedgerRow, bump_shared_generation, read_shared_generation
from tests.helpers.servers import fresh_database, redis_db

pytestmark = [pytest.mark.scale]


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        engine = make_engine(url)
        upgrade_database(engine)
        engine.dispose()
        yield url
        from ingest.ledger import _engines

        engine = _engines.pop(url, None)
        if engine is not None:
            engine.dispose()


@pytest.fixture
def redis_url() -> Iterator[str]:
    with redis_db() as url:
        yield url


def test_settings_choose_the_shared_engines(tmp_path: Path) -> None:
    plain = Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    assert plain.rate_limit_storage == "memory://" and not plain.shared_engines
    assert plain.ledger_url.startswith("sqlite:///") and isinstance(make_event_bus(plain), EventBus)
    shared = Settings(
        data_dir=tmp_path,
        database_url="postgresql+psycopg://u@h/db",
        redis_url="redis://h:6379/3",
        chroma_url="http://h:8000",
        _env_file=None,  # type: ignore[call-arg]
    )
    assert shared.rate_limit_storage == "redis://h:6379/3"  # defaults from redis_url
    assert shared.ledger_url == "postgresql+psycopg://u@h/db" and shared.shared_engines
    own = Settings(redis_url="redis://h", rate_limit_storage="memory://", _env_file=None)  # type: ignore[call-arg]
    assert own.rate_limit_storage == "memory://"


async def test_redis_bus_delivers_across_buses_once_and_in_order(redis_url: str) -> None:
    a, b = RedisEventBus(redis_url), RedisEventBus(redis_url)
    try:
        async with (
            a.subscribe("conversation:1") as on_a,
            b.subscribe("conversation:1", "agents") as on_b,
        ):
            # From another thread, as a database worker publishes after its commit.
            sender = threading.Thread(
                target=lambda: [a.publish("conversation:1", {"n": n}) for n in range(20)]
            )
            sender.start()
            sender.join()
            b.publish("agents", {"queue": "added"})
            got_b = [await asyncio.wait_for(on_b.get(), 5) for _ in range(21)]
            got_a = [await asyncio.wait_for(on_a.get(), 5) for _ in range(20)]
            assert [p["n"] for p in got_b if "n" in p] == list(range(20))
            assert {"queue": "added"} in got_b
            assert [p["n"] for p in got_a] == list(range(20))  # its own events, once each
            await asyncio.sleep(0.3)
            assert on_a.queue.empty() and on_b.queue.empty()
            assert b.subscriber_count("agents") == 1 and a.subscriber_count("agents") == 0
    finally:
        a.close()
        b.close()


def test_advisory_locks_exclude_other_connections(database_url: str) -> None:
    first, second = create_engine(database_url), create_engine(database_url)
    try:
        with (
            session_lock(first, "ingest-writer", 1),
            pytest.raises(LeaseTimeoutError),
            session_lock(second, "ingest-writer", 0.3),
        ):
            pass
        with session_lock(second, "ingest-writer", 1):  # released when the block ended
            pass
        with Session(first) as one, one.begin(), Session(second) as two, two.begin():
            assert try_job_lock(one, "outcome-job") is True
            assert try_job_lock(two, "outcome-job") is False
            assert try_job_lock(two, "another-job") is True
        with Session(second) as two, two.begin():  # the transaction ended: free again
            assert try_job_lock(two, "outcome-job") is True
    finally:
        first.dispose()
        second.dispose()


def test_ledger_and_generation_live_in_the_shared_database(database_url: str) -> None:
    assert read_shared_generation(database_url) == 0  # migration 0009 created the row
    assert [bump_shared_generation(database_url) for _ in range(3)] == [1, 2, 3]
    ledger = Ledger(database_url)
    try:
        ledger.mark_pending(["faq/a"], {"faq/a": "faq/a.md"})
        assert ledger.rows()["faq/a"].pending
        ledger.record([LedgerRow("faq/a", "faq/a.md", "f1", 2, False)])
        other = Ledger(database_url)  # another process's view
        assert other.rows()["faq/a"] == LedgerRow("faq/a", "faq/a.md", "f1", 2, False)
        other.close()
    finally:
        ledger.close()


def test_an_answer_owner_is_alive_while_its_lease_is_held(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with Session(engine) as session, session.begin():
            assert owner_alive(session, "process-a") is False
        with owner_lease(engine, "process-a"), Session(engine) as session, session.begin():
            assert owner_alive(session, "process-a") is True
            assert owner_alive(session, "process-b") is False
        with Session(engine) as session, session.begin():
            assert owner_alive(session, "process-a") is False
    finally:
        engine.dispose()
