"""Sign-in throttling: growing waits, then a lockout, and a bounded pool for password checks.

Without it, 200 wrong passwords got 200 quick 401s (guessing is only limited by the network),
and each attempt ran argon2 with 64 MiB of memory with no bound on how many ran at once: 32
simultaneous bogus sign-ins took the server from 791 to 1,687 MB. So:

* **Every refused sign-in is audited** (``login_attempts``: the address typed, the client IP,
  the outcome, the time); a success or ``supportbot user unlock EMAIL`` starts the count again.
* **Growing waits, per account and per IP**: the first ``login_free_attempts`` wrong passwords
  for an address (``login_ip_free_attempts`` from one IP, any addresses) cost nothing; after
  that each try must wait ``login_delay_base_s`` seconds after the last miss, doubling with every
  miss up to ``login_delay_max_s``; ``login_lockout_after`` misses (``login_ip_lockout_after``)
  within ``login_window_minutes`` lock it for ``login_lockout_minutes``. A refused try is answered
  at once (429 and ``Retry-After``) without checking the password, so it costs no argon2 work
  and tells the guesser nothing; the wait applies to unknown addresses alike, so it does not
  reveal which addresses exist either.
* **A bounded pool of password checks** (:class:`HashPool`): ``login_hash_concurrency`` argon2
  checks at once, ``login_hash_queue`` waiting; a sign-in that finds the queue full gets a 503
  at once, one that waits longer than ``login_hash_wait_s`` a 503 too.

Counts are read from the audit table, so they hold across restarts and across processes that
share the database.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from sqlalchemy import func, select

from bot.core.clock import utcnow
from bot.core.models import LoginAttempt

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.core.settings import Settings

Outcome = Literal["failed", "throttled", "locked", "busy", "success", "unlock"]
RESETS: tuple[Outcome, ...] = ("success", "unlock")
"""Outcomes after which an account's misses count from zero again."""
MAX_EMAIL_CHARS = 320
MAX_IP_CHARS = 64


@dataclass(frozen=True)
class LoginPolicy:
    """The throttling settings in one value (see the module docstring)."""

    free_attempts: int = 5
    lockout_after: int = 10
    ip_free_attempts: int = 20
    ip_lockout_after: int = 100
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)
    delay_base_s: float = 1.0
    delay_max_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginPolicy:
        return cls(
            free_attempts=settings.login_free_attempts,
            lockout_after=settings.login_lockout_after,
            ip_free_attempts=settings.login_ip_free_attempts,
            ip_lockout_after=settings.login_ip_lockout_after,
            window=timedelta(minutes=settings.login_window_minutes),
            lockout=timedelta(minutes=settings.login_lockout_minutes),
            delay_base_s=settings.login_delay_base_s,
            delay_max_s=settings.login_delay_max_s,
        )

    def delay_after(self, misses: int, free: int) -> float:
        """Seconds a try must wait after the last of ``misses`` wrong passwords."""
        if misses < free:
            return 0.0
        return float(min(self.delay_max_s, self.delay_base_s * 2 ** (misses - free)))


@dataclass(frozen=True)
class Verdict:
    """May this sign-in be tried now? If not: for how long not, and whether it is a lockout."""

    allowed: bool
    retry_after_s: float = 0.0
    locked: bool = False
    scope: str = ""  # "account" | "ip"


def normalise_address(email: str) -> str:
    """The typed address as counted: trimmed, lower case, bounded (it may not be a user)."""
    return email.strip().lower()[:MAX_EMAIL_CHARS]


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _misses(
    session: Session, *, email: str | None, ip: str | None, since: datetime
) -> list[datetime]:
    query = select(LoginAttempt.created_at).where(
        LoginAttempt.outcome == "failed", LoginAttempt.created_at > since
    )
    if email is not None:
        query = query.where(LoginAttempt.email == email)
    if ip is not None:
        query = query.where(LoginAttempt.ip == ip)
    return sorted(_aware(t) for t in session.scalars(query))


def _last_reset(session: Session, email: str) -> datetime | None:
    last = session.scalar(
        select(func.max(LoginAttempt.created_at)).where(
            LoginAttempt.email == email, LoginAttempt.outcome.in_(RESETS)
        )
    )
    return _aware(last) if last is not None else None


def _judge(
    misses: list[datetime], free: int, lockout_after: int, policy: LoginPolicy, now: datetime
) -> tuple[float, bool]:
    """``(seconds to wait, locked)`` for one account's or one IP's recent misses."""
    if not misses:
        return 0.0, False
    last = misses[-1]
    if len(misses) >= lockout_after:
        until = last + policy.lockout
        return max(0.0, (until - now).total_seconds()), until > now
    until = last + timedelta(seconds=policy.delay_after(len(misses), free))
    return max(0.0, (until - now).total_seconds()), False


def check(
    session: Session, email: str, ip: str, policy: LoginPolicy, *, now: datetime | None = None
) -> Verdict:
    """Whether a sign-in for ``email`` from ``ip`` may be tried now (reads the audit table)."""
    now = now or utcnow()
    email = normalise_address(email)
    since = now - max(policy.window, policy.lockout)
    reset = _last_reset(session, email)
    account_since = max(since, reset) if reset is not None else since
    verdicts = []
    account = _misses(session, email=email, ip=None, since=account_since)
    wait, locked = _judge(account, policy.free_attempts, policy.lockout_after, policy, now)
    verdicts.append(Verdict(wait <= 0, wait, locked, "account"))
    by_ip = _misses(session, email=None, ip=ip[:MAX_IP_CHARS], since=since)
    wait, locked = _judge(by_ip, policy.ip_free_attempts, policy.ip_lockout_after, policy, now)
    verdicts.append(Verdict(wait <= 0, wait, locked, "ip"))
    refused = [v for v in verdicts if not v.allowed]
    if not refused:
        return Verdict(True)
    return max(refused, key=lambda v: v.retry_after_s)


def record(
    session: Session, email: str, ip: str, outcome: Outcome, *, now: datetime | None = None
) -> None:
    """Audit one sign-in outcome (every refusal, and successes: they reset the count)."""
    session.add(
        LoginAttempt(
            email=normalise_address(email),
            ip=ip[:MAX_IP_CHARS],
            outcome=outcome,
            created_at=now or utcnow(),
        )
    )
    session.flush()


def unlock(session: Session, email: str, *, now: datetime | None = None) -> int:
    """Forgive an account's misses (``supportbot user unlock``); returns how many were
    forgiven. The unlock is audited like any other outcome."""
    now = now or utcnow()
    email = normalise_address(email)
    since = now - timedelta(days=1)
    reset = _last_reset(session, email)
    forgiven = len(_misses(session, email=email, ip=None, since=max(since, reset or since)))
    record(session, email, "cli", "unlock", now=now)
    return forgiven


def attempts(session: Session, email: str) -> list[LoginAttempt]:
    """The audited outcomes for one address, oldest first."""
    return list(
        session.scalars(
            select(LoginAttempt)
            .where(LoginAttempt.email == normalise_address(email))
            .order_by(LoginAttempt.created_at, LoginAttempt.id)
        )
    )


# --- the pool of password checks ------------------------------------------------------------------


class HashBusy(Exception):
    """No password check could start: the queue was full, or the wait ran out."""


class HashPool:
    """At most ``concurrency`` password checks at once and ``queue`` waiting for one.

    argon2 as configured takes 64 MiB for each check: this is what bounds the memory sign-in
    can take, whatever arrives. Blocking (the sign-in route runs in a worker thread).
    """

    def __init__(self, concurrency: int, queue: int, wait_s: float) -> None:
        self.concurrency = concurrency
        self.queue = queue
        self.wait_s = wait_s
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self.waiting = 0
        self.running = 0
        self.peak_running = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(blocking=False):
            with self._lock:
                if self.waiting >= self.queue:
                    raise HashBusy("the password-check queue is full")
                self.waiting += 1
            try:
                acquired = self._slots.acquire(timeout=self.wait_s)
            finally:
                with self._lock:
                    self.waiting -= 1
            if not acquired:
                raise HashBusy("no password check freed in time")
        with self._lock:
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1
            self._slots.release()


_pools: dict[tuple[int, int, float], HashPool] = {}
_pools_lock = threading.Lock()


def hash_pool(settings: Settings) -> HashPool:
    """The process's pool for these settings (argon2's memory is the process's to bound)."""
    key = (settings.login_hash_concurrency, settings.login_hash_queue, settings.login_hash_wait_s)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = HashPool(*key)
        return pool
