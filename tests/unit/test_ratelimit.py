"""Token buckets: bursts pass, floods are refused with an honest retry time."""

from __future__ import annotations

import pytest

from bot.core.ratelimit import KeyedLimiter, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refuses_until_refilled() -> None:
    clock = FakeClock()
    bucket = TokenBucket(capacity=3, rate=0.5, clock=clock)
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after() == pytest.approx(2.0)
    clock.now += 1.9
    assert not bucket.try_acquire()
    clock.now += 0.1
    assert bucket.try_acquire()


def test_bucket_never_holds_more_than_its_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(capacity=2, rate=10, clock=clock)
    clock.now += 3600
    assert [bucket.try_acquire() for _ in range(3)] == [True, True, False]
    assert not bucket.full


def test_bucket_rejects_nonsense_parameters() -> None:
    with pytest.raises(ValueError):
        TokenBucket(capacity=0, rate=1)


def test_keyed_limiter_is_per_key_and_bounded() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(capacity=1, rate=0.1, max_keys=2, clock=clock)
    assert limiter.try_acquire("1.1.1.1")
    assert not limiter.try_acquire("1.1.1.1")
    assert limiter.retry_after("1.1.1.1") == pytest.approx(10.0)
    assert limiter.try_acquire("2.2.2.2")
    assert limiter.try_acquire("3.3.3.3")  # evicts the least recently used key
    assert len(limiter) == 2
