"""Fair limits: request rates (on the ``limits`` library) and the answer capacity.

Two different things are limited, because a flood hurts in two different ways:

* **Rates**: frames, messages, new conversations and ``/api/ask`` calls, each per connection, per
  client IP and for the whole service. A limit is a *moving window*: at most ``amount`` hits in
  any ``window_s`` seconds, which is a burst of ``amount`` followed by the sustained rate
  ``amount / window_s`` (the same promise the settings' "burst" and "per minute" make). A
  refusal says how long until the oldest hit leaves the window, which is an honest retry time.
  Counters live in process memory by default (:class:`LocalWindows`), or in a ``limits``
  storage such as Redis (``SUPPORTBOT_RATE_LIMIT_STORAGE=redis://...``) when several processes
  must share them.
* **Answer capacity**: an answer costs a retrieval (embedding, BM25, maybe an LLM call); a few run
  at once and the rest wait (:class:`AnswerSlots`). Each client IP gets at most a share of the
  running answers and a bounded queue, so one client's flood waits behind itself instead of in
  front of every other customer, and is refused at the door once its queue is full.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

if TYPE_CHECKING:
    from bot.core.settings import Settings


@dataclass(frozen=True)
class Rate:
    """At most ``amount`` hits in any ``window_s`` seconds."""

    amount: int
    window_s: int
    item: RateLimitItem = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.amount < 1 or self.window_s < 1:
            raise ValueError("a rate needs a positive amount and window")
        object.__setattr__(self, "item", RateLimitItemPerSecond(self.amount, self.window_s))

    @classmethod
    def of(cls, burst: float, per_second: float) -> Rate:
        """The window that allows a burst of ``burst`` and then ``per_second`` on average."""
        if burst < 1 or per_second <= 0:
            raise ValueError("burst must be at least 1 and the rate positive")
        amount = int(burst)
        return cls(amount, max(1, math.ceil(amount / per_second)))

    @classmethod
    def per_minute(cls, burst: float, per_minute: float) -> Rate:
        return cls.of(burst, per_minute / 60.0)


@dataclass(frozen=True)
class Check:
    """One limit to pass: ``rate`` counted under ``key`` (``scope`` names it in refusals)."""

    scope: str
    rate: Rate
    key: str


@dataclass(frozen=True)
class Refusal:
    """A hit that did not pass: which limit, and the seconds until it would."""

    scope: str
    retry_after_s: float

    @property
    def retry_after_ms(self) -> int:
        return max(1, math.ceil(self.retry_after_s * 1000))

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` is whole seconds, rounded up (never 0: "now" would be a lie)."""
        return str(max(1, math.ceil(self.retry_after_s)))


class LocalWindows:
    """Moving windows in this process's memory: the times of the hits still inside each key's
    window, oldest first.

    ``limits``' own memory storage was the default before: it starts a timer thread every
    10 ms that walks every key it ever saw (one per socket, kept for a minute), and inserts
    each hit at the head of a list, so its cost grew with the sockets and the traffic of the
    last minute (``bench/chat_latency.py``: the service's CPU per message rose round after
    round). Here a hit is an append, expired hits leave from the front when their key is next
    asked, and idle keys are swept at most every ``sweep_s`` seconds, on a hit."""

    def __init__(self, sweep_s: float = 10.0) -> None:
        self._windows: dict[tuple[str, str, str], tuple[int, deque[float]]] = {}
        self._lock = threading.Lock()  # sockets (event loop) and sync routes (threads) share it
        self._sweep_s = sweep_s
        self._next_sweep = 0.0

    def _hits(self, key: tuple[str, str, str], rate: Rate, now: float) -> deque[float]:
        entry = self._windows.get(key)
        if entry is None:
            entry = self._windows[key] = (rate.window_s, deque())
        hits = entry[1]
        cutoff = now - rate.window_s
        while hits and hits[0] <= cutoff:
            hits.popleft()
        return hits

    def test(self, key: tuple[str, str, str], rate: Rate) -> bool:
        with self._lock:
            return len(self._hits(key, rate, time.time())) < rate.amount

    def hit(self, key: tuple[str, str, str], rate: Rate) -> bool:
        now = time.time()
        with self._lock:
            hits = self._hits(key, rate, now)
            if len(hits) >= rate.amount:
                return False
            hits.append(now)
            if now >= self._next_sweep:
                self._sweep(now)
            return True

    def retry_after(self, key: tuple[str, str, str], rate: Rate) -> float:
        now = time.time()
        with self._lock:
            hits = self._hits(key, rate, now)
            if len(hits) < rate.amount:
                return 0.0
            # The hit that must leave the window before one more fits.
            return max(0.0, hits[len(hits) - rate.amount] + rate.window_s - now)

    def clear(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._windows.pop(key, None)

    def __len__(self) -> int:
        return len(self._windows)

    def _sweep(self, now: float) -> None:
        """Forget keys with no hit left in their window (closed sockets, gone clients)."""
        self._next_sweep = now + self._sweep_s
        idle = [
            key
            for key, (window_s, hits) in self._windows.items()
            if not hits or hits[-1] <= now - window_s
        ]
        for key in idle:
            del self._windows[key]


def open_storage(uri: str = "memory://") -> Storage | LocalWindows:
    """Where the counters live: this process (``memory://``, the default) or a ``limits``
    storage shared by several processes, e.g. ``redis://host:6379``."""
    if uri.strip().lower() in ("", "memory://"):
        return LocalWindows()
    storage = storage_from_string(uri)
    if not isinstance(storage, Storage):
        raise ValueError(f"{uri!r} is an asynchronous storage; use the synchronous scheme")
    return storage


class RateLimiter:
    """Moving-window limits over one storage, safe to share between sockets and requests."""

    def __init__(
        self, storage: Storage | LocalWindows | None = None, *, namespace: str = "supportbot"
    ) -> None:
        self.storage = storage if storage is not None else LocalWindows()
        self._local: LocalWindows | None = None
        self.strategy: MovingWindowRateLimiter | None = None
        if isinstance(self.storage, LocalWindows):
            self._local = self.storage
        else:
            self.strategy = MovingWindowRateLimiter(self.storage)
        self.namespace = namespace

    def _key(self, check: Check) -> tuple[str, str, str]:
        return (self.namespace, check.scope, check.key)

    def _test(self, check: Check) -> bool:
        if self._local is not None:
            return self._local.test(self._key(check), check.rate)
        assert self.strategy is not None
        return self.strategy.test(check.rate.item, *self._key(check))

    def _take(self, check: Check) -> bool:
        if self._local is not None:
            return self._local.hit(self._key(check), check.rate)
        assert self.strategy is not None
        return self.strategy.hit(check.rate.item, *self._key(check))

    def hit(self, *checks: Check) -> Refusal | None:
        """Count one hit against every check, or none of them: the first check that would be
        exceeded refuses (with its retry time) and nothing is counted, so a refused request
        does not use up the quota of the limits it did pass."""
        for check in checks:
            if not self._test(check):
                return Refusal(check.scope, self.retry_after(check))
        for check in checks:
            if not self._take(check):
                # Another request took the last place in between: refuse this one.
                return Refusal(check.scope, self.retry_after(check))
        return None

    def exhausted(self, check: Check) -> bool:
        """True when one more hit would exceed ``check`` (nothing is counted)."""
        return not self._test(check)

    def retry_after(self, check: Check) -> float:
        """Seconds until one more hit fits ``check``."""
        if self._local is not None:
            return self._local.retry_after(self._key(check), check.rate)
        assert self.strategy is not None
        stats = self.strategy.get_window_stats(check.rate.item, *self._key(check))
        if stats.remaining > 0:
            return 0.0
        return max(0.0, stats.reset_time - time.time())

    def clear(self, check: Check) -> None:
        if self._local is not None:
            self._local.clear(self._key(check))
            return
        assert self.strategy is not None
        self.strategy.clear(check.rate.item, *self._key(check))


class CapacityFull(Exception):
    """The answer queue (the client's share, or the whole service's) is full."""


class AnswerSlots:
    """Bounded answer capacity with a per-client share.

    ``total`` answers run at once, at most ``per_client`` of them for one client; a client may
    have ``queue_per_client`` answers waiting or running and the service ``queue_total``.
    :meth:`room` is the admission check (a chat message is refused before it is stored when
    there is none); :meth:`slot` waits for a place. Waiting happens on the client's own
    semaphore first, so a flooding client's backlog never stands in the shared queue.
    """

    def __init__(self, total: int, per_client: int, queue_per_client: int, queue_total: int):
        if min(total, per_client, queue_per_client, queue_total) < 1:
            raise ValueError("answer capacity settings must be positive")
        self.total = total
        self.per_client = min(per_client, total)
        self.queue_per_client = max(queue_per_client, self.per_client)
        self.queue_total = max(queue_total, total)
        self._shared: asyncio.Semaphore | None = None
        self._own: dict[str, asyncio.Semaphore] = {}
        self._pending: Counter[str] = Counter()
        self.running = 0
        self.peak_running = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> AnswerSlots:
        return cls(
            settings.answer_concurrency,
            settings.answer_concurrency_per_ip,
            settings.answer_queue_per_ip,
            settings.answer_queue_total,
        )

    def pending(self, client: str | None = None) -> int:
        """Answers waiting or running, for one client or all of them."""
        return self._pending[client] if client is not None else sum(self._pending.values())

    def room(self, client: str) -> bool:
        """May ``client`` queue one more answer now?"""
        return self._pending[client] < self.queue_per_client and self.pending() < self.queue_total

    @asynccontextmanager
    async def slot(
        self, client: str, *, timeout: float | None = None, admit: bool = True
    ) -> AsyncIterator[None]:
        """Hold one answer place for ``client`` while the block runs. Raises
        :class:`CapacityFull` when there is no room (unless ``admit`` is false: the caller
        admitted the work already, e.g. a chat message stored after :meth:`room`), and
        :class:`TimeoutError` when no place freed within ``timeout`` seconds."""
        if admit and not self.room(client):
            raise CapacityFull(client)
        if self._shared is None:
            self._shared = asyncio.Semaphore(self.total)
        shared = self._shared
        own = self._own.get(client)
        if own is None:
            own = self._own[client] = asyncio.Semaphore(self.per_client)
        self._pending[client] += 1
        try:
            async with asyncio.timeout(timeout):
                await own.acquire()
                try:
                    await shared.acquire()
                except BaseException:
                    own.release()
                    raise
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)
            try:
                yield
            finally:
                self.running -= 1
                shared.release()
                own.release()
        finally:
            self._pending[client] -= 1
            if self._pending[client] <= 0:
                del self._pending[client]
                self._own.pop(client, None)


@dataclass(frozen=True)
class ServiceLimits:
    """Every rate of the public doors, from the settings: one place that says what is
    limited, per what, and how much."""

    frames_connection: Rate
    frames_ip: Rate
    frames_global: Rate
    messages_connection: Rate
    messages_ip: Rate
    messages_global: Rate
    hellos_ip: Rate
    hellos_global: Rate
    ask_ip: Rate
    ask_global: Rate
    refusals_connection: Rate
    closures_ip: Rate

    @classmethod
    def from_settings(cls, s: Settings) -> ServiceLimits:
        return cls(
            frames_connection=Rate.of(s.chat_rate_frames_burst, s.chat_rate_frames_per_second),
            frames_ip=Rate.of(s.chat_rate_ip_frames_burst, s.chat_rate_ip_frames_per_second),
            frames_global=Rate.of(
                s.chat_rate_global_frames_burst, s.chat_rate_global_frames_per_second
            ),
            messages_connection=Rate.per_minute(
                s.chat_rate_messages_burst, s.chat_rate_messages_per_minute
            ),
            messages_ip=Rate.per_minute(s.chat_rate_ip_burst, s.chat_rate_ip_per_minute),
            messages_global=Rate.per_minute(
                s.chat_rate_global_burst, s.chat_rate_global_per_minute
            ),
            hellos_ip=Rate.per_minute(
                s.chat_rate_conversations_ip_burst, s.chat_rate_conversations_ip_per_minute
            ),
            hellos_global=Rate.per_minute(
                s.chat_rate_conversations_global_burst, s.chat_rate_conversations_global_per_minute
            ),
            ask_ip=Rate.per_minute(s.ask_rate_ip_burst, s.ask_rate_ip_per_minute),
            ask_global=Rate.per_minute(s.ask_rate_global_burst, s.ask_rate_global_per_minute),
            refusals_connection=Rate(
                s.chat_close_after_refusals, max(1, math.ceil(s.chat_refusal_window_s))
            ),
            closures_ip=Rate(s.chat_ip_closures, max(1, math.ceil(s.chat_refusal_window_s))),
        )


class Gatekeeper:
    """The process's limiter with its limits: what the chat socket and ``/api/ask`` ask
    before doing work. Keys: a connection id, a client IP, or ``*`` for the whole service."""

    def __init__(self, limits: ServiceLimits, limiter: RateLimiter) -> None:
        self.limits = limits
        self.limiter = limiter

    @classmethod
    def from_settings(cls, settings: Settings) -> Gatekeeper:
        storage = open_storage(settings.rate_limit_storage)
        return cls(ServiceLimits.from_settings(settings), RateLimiter(storage))

    def _hit(self, checks: Sequence[Check]) -> Refusal | None:
        return self.limiter.hit(*checks)

    def frame(self, connection: str, ip: str) -> Refusal | None:
        lim = self.limits
        return self._hit(
            [
                Check("connection_frames", lim.frames_connection, connection),
                Check("ip_frames", lim.frames_ip, ip),
                Check("frames", lim.frames_global, "*"),
            ]
        )

    def message(self, connection: str, ip: str) -> Refusal | None:
        lim = self.limits
        return self._hit(
            [
                Check("connection_messages", lim.messages_connection, connection),
                Check("ip_messages", lim.messages_ip, ip),
                Check("messages", lim.messages_global, "*"),
            ]
        )

    def hello(self, ip: str) -> Refusal | None:
        lim = self.limits
        return self._hit(
            [Check("ip_hellos", lim.hellos_ip, ip), Check("hellos", lim.hellos_global, "*")]
        )

    def ask(self, ip: str) -> Refusal | None:
        lim = self.limits
        return self._hit([Check("ip_ask", lim.ask_ip, ip), Check("ask", lim.ask_global, "*")])

    def socket_closed_for_abuse(self, ip: str) -> None:
        """Count a socket of ``ip`` closed with 1008 (see :meth:`sockets_refused`)."""
        self.limiter.hit(Check("ip_closures", self.limits.closures_ip, ip))

    def sockets_refused(self, ip: str) -> bool:
        """True while ``ip`` has had too many sockets closed for abuse recently: its next
        sockets are refused at the handshake, before any session work."""
        return self.limiter.exhausted(Check("ip_closures", self.limits.closures_ip, ip))

    def refusal_strike(self, connection: str) -> bool:
        """Count a refusal against a connection; False when it has had too many recently (the
        socket should be closed)."""
        check = Check("connection_refusals", self.limits.refusals_connection, connection)
        return self.limiter.hit(check) is None
