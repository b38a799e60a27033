"""Schema migrations with Alembic, run from code.

The migration scripts ship inside the package (``bot/core/migrations``) so ``supportbot serve`` on a
fresh or an old data directory upgrades the schema itself; no separate ``alembic.ini`` is needed.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    config.attributes["engine"] = engine
    return config


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent; safe to call at every start-up). On a shared
    PostgreSQL database, processes starting together migrate one at a time."""
    from bot.core.leases import session_lock

    with session_lock(engine, "migrations", timeout_s=300.0):
        command.upgrade(alembic_config(engine), revision)
