"""Token-bucket rate limits for the public chat door.

A bucket holds up to ``capacity`` tokens and refills at ``rate`` tokens a second; each message
takes one. Bursts (a customer pasting three lines) pass, a sustained flood does not, and the
refusal says how long to wait. Buckets are in process memory: with several service processes
each enforces its own share, which is fine for abuse control (not for billing).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass
class TokenBucket:
    """One bucket. ``clock`` is injectable so tests need not sleep."""

    capacity: float
    rate: float  # tokens per second
    clock: Clock = time.monotonic
    tokens: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.rate <= 0:
            raise ValueError("capacity and rate must be positive")
        self.tokens = float(self.capacity)
        self.updated = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = now

    def try_acquire(self, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if there are enough; never blocks."""
        self._refill()
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def retry_after(self, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens will be available."""
        self._refill()
        missing = cost - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate

    @property
    def full(self) -> bool:
        self._refill()
        return self.tokens >= self.capacity


class KeyedLimiter:
    """A bucket per key (a client IP), shared by every socket of that key.

    Memory stays bounded: beyond ``max_keys`` the least recently used bucket is dropped, which
    at worst forgives an idle client its spent tokens.
    """

    def __init__(
        self,
        capacity: float,
        rate: float,
        *,
        max_keys: int = 100_000,
        clock: Clock = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.rate = rate
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def _bucket(self, key: str) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.capacity, self.rate, self.clock)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def try_acquire(self, key: str, cost: float = 1.0) -> bool:
        with self._lock:
            return self._bucket(key).try_acquire(cost)

    def retry_after(self, key: str, cost: float = 1.0) -> float:
        with self._lock:
            return self._bucket(key).retry_after(cost)

    def __len__(self) -> int:
        return len(self._buckets)
