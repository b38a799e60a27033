"""Business hours: parsing the setting, open/closed, and the "someone will reply ..." promise."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.handoff.hours import HoursError, parse_hours

BERLIN_WEEKDAYS = parse_hours("Mon-Fri 09:00-17:00; Sat 10:00-14:00", "Europe/Berlin")


@pytest.mark.parametrize(
    ("utc", "is_open", "next_text"),
    [
        # Monday 2026-11-23; Berlin is UTC+1 in November.
        (datetime(2026, 11, 23, 8, 0, tzinfo=UTC), True, None),  # 09:00 Berlin: opens
        (datetime(2026, 11, 23, 7, 59, tzinfo=UTC), False, "today at 09:00 (Europe/Berlin)"),
        (datetime(2026, 11, 23, 15, 59, tzinfo=UTC), True, None),
        (datetime(2026, 11, 23, 16, 0, tzinfo=UTC), False, "tomorrow at 09:00 (Europe/Berlin)"),
        # Friday evening -> Saturday 10:00
        (datetime(2026, 11, 27, 18, 0, tzinfo=UTC), False, "tomorrow at 10:00 (Europe/Berlin)"),
        # Saturday after 14:00 -> Monday 09:00
        (datetime(2026, 11, 28, 13, 30, tzinfo=UTC), False, "on Monday at 09:00 (Europe/Berlin)"),
        (datetime(2026, 11, 29, 12, 0, tzinfo=UTC), False, "tomorrow at 09:00 (Europe/Berlin)"),
    ],
)
def test_open_and_next_opening(utc: datetime, is_open: bool, next_text: str | None) -> None:
    assert BERLIN_WEEKDAYS.is_open(utc) is is_open
    if next_text is not None:
        assert BERLIN_WEEKDAYS.describe_next(utc) == next_text


def test_summer_time_is_respected() -> None:
    # July: Berlin is UTC+2, so 07:00 UTC is 09:00 local.
    assert BERLIN_WEEKDAYS.is_open(datetime(2026, 7, 6, 7, 0, tzinfo=UTC))
    assert not BERLIN_WEEKDAYS.is_open(datetime(2026, 7, 6, 6, 59, tzinfo=UTC))


def test_always_open_and_wrapping_days() -> None:
    always = parse_hours("24/7", "UTC")
    assert always.is_open(datetime(2026, 11, 29, 3, 0, tzinfo=UTC))
    wrapping = parse_hours("Fri-Mon 10:00-12:00")
    assert {w.weekday for w in wrapping.windows} == {4, 5, 6, 0}


@pytest.mark.parametrize(
    ("spec", "tz"),
    [
        ("Mon-Fri 9-17", "UTC"),
        ("Mon-Fri 17:00-09:00", "UTC"),
        ("Xyz 09:00-10:00", "UTC"),
        ("Mon 09:00-10:00", "Mars/Olympus"),
    ],
)
def test_bad_settings_are_refused(spec: str, tz: str) -> None:
    with pytest.raises(HoursError):
        parse_hours(spec, tz)
