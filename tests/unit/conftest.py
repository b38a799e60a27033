"""Fixtures of the unit tests that run the conversation scripts against a real database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.core.db import make_engine, make_session_factory
from bot.core.migrate import upgrade_database
from bot.core.settings import Settings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """The same scripts on SQLite and on PostgreSQL (skipped when no server is reachable)."""
    with ExitStack() as stack:
        if request.param == "postgres":
            from tests.helpers.live_server import postgres_schema

            url = stack.enter_context(postgres_schema())
        else:
            url = f"sqlite:///{tmp_path / 'scripts.sqlite'}"
        engine = make_engine(url)
        upgrade_database(engine)
        yield make_session_factory(engine)
        engine.dispose()


@pytest.fixture
def hsettings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", _env_file=None)
