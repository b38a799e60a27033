"""Time in one convention: timezone-aware UTC.

Everything is stored as UTC, but SQLite hands datetimes back without their offset; every
comparison or subtraction of stored times goes through :func:`aware` so naive and aware values
never meet.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """``moment`` as an aware datetime: a naive one (from SQLite) is UTC, as everything stored."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
