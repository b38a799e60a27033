"""Business hours: when people answer the queue, and when they will next be there.

The setting is a short human-readable spec (``"Mon-Fri 09:00-17:00; Sat 10:00-14:00"``, or
``"24/7"``) in one IANA time zone. Out of hours an escalation still creates its queue item (it
waits for the morning), but the customer is told honestly when someone will reply instead of
"someone will be with you shortly".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from bot.core.clock import aware
from bot.core.i18n import translate, weekday_name

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ALWAYS = {"24/7", "always", ""}
_RANGE = re.compile(
    r"^\s*(?P<days>[a-z]{3}(?:\s*-\s*[a-z]{3})?(?:\s*,\s*[a-z]{3}(?:\s*-\s*[a-z]{3})?)*)\s+"
    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)


class HoursError(ValueError):
    """The business-hours setting cannot be parsed."""


@dataclass(frozen=True)
class Window:
    """Open on ``weekday`` (0 = Monday) from ``start`` to ``end`` local time."""

    weekday: int
    start: time
    end: time


@dataclass(frozen=True)
class BusinessHours:
    windows: tuple[Window, ...]
    tz: ZoneInfo
    always_open: bool = False

    def is_open(self, now: datetime) -> bool:
        if self.always_open:
            return True
        local = aware(now).astimezone(self.tz)
        return any(
            w.weekday == local.weekday() and w.start <= local.time() < w.end for w in self.windows
        )

    def next_opening(self, now: datetime) -> datetime | None:
        """The next moment someone is there (``now`` itself when open); ``None`` if never."""
        if self.is_open(now):
            return aware(now)
        if not self.windows:
            return None
        local = aware(now).astimezone(self.tz)
        for offset in range(8):
            day = local.date() + timedelta(days=offset)
            starts = sorted(w.start for w in self.windows if w.weekday == day.weekday())
            for start in starts:
                candidate = datetime.combine(day, start, tzinfo=self.tz)
                if candidate > local:
                    return candidate
        return None

    def describe_next(self, now: datetime, locale: str | None = None) -> str:
        """'today at 09:00', 'tomorrow at 09:00' or 'on Monday at 09:00' (plus the zone), in
        the customer's language (``locale``; English by default)."""
        opening = self.next_opening(now)
        if opening is None:
            return translate("asap", locale)
        local_now = aware(now).astimezone(self.tz)
        days = (opening.date() - local_now.date()).days
        when = opening.strftime("%H:%M")
        if days in (0, 1):
            key = "today_at" if days == 0 else "tomorrow_at"
            return translate(key, locale, time=when, zone=self.tz.key)
        weekday = weekday_name(opening.weekday(), locale)
        return translate("weekday_at", locale, weekday=weekday, time=when, zone=self.tz.key)


def parse_hours(spec: str, timezone: str = "UTC") -> BusinessHours:
    """Parse ``"Mon-Fri 09:00-17:00; Sat 10:00-14:00"``; raise :class:`HoursError` if wrong."""
    try:
        tz = ZoneInfo(timezone)
    except Exception as exc:
        raise HoursError(f"unknown time zone {timezone!r}") from exc
    if spec.strip().lower() in _ALWAYS:
        return BusinessHours((), tz, always_open=True)
    windows: list[Window] = []
    for part in re.split(r"[;\n]", spec):
        if not part.strip():
            continue
        match = _RANGE.match(part.lower())
        if not match:
            raise HoursError(f"cannot read business hours {part.strip()!r}")
        start, end = _time(match["start"]), _time(match["end"])
        if end <= start:
            raise HoursError(f"closing time must follow opening time in {part.strip()!r}")
        for day in _days(match["days"]):
            windows.append(Window(day, start, end))
    return BusinessHours(tuple(windows), tz)


@lru_cache(maxsize=32)
def business_hours(spec: str, timezone: str) -> BusinessHours:
    """Parsed and cached: the settings do not change while the process runs."""
    return parse_hours(spec, timezone)


def _days(text: str) -> list[int]:
    result: list[int] = []
    for chunk in text.split(","):
        ends = [d.strip() for d in chunk.split("-")]
        for name in ends:
            if name not in DAYS:
                raise HoursError(f"unknown day {name!r}")
        first, last = DAYS.index(ends[0]), DAYS.index(ends[-1])
        span = range(first, last + 1) if first <= last else [*range(first, 7), *range(last + 1)]
        result.extend(span)
    return result


def _time(text: str) -> time:
    hours, minutes = (int(x) for x in text.split(":"))
    if hours == 24 and minutes == 0:
        return time(23, 59, 59, 999999)
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise HoursError(f"bad time {text!r}")
    return time(hours, minutes)
