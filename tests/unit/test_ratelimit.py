"""Moving-window limits (in process memory, or a ``limits`` storage): bursts pass, floods are
refused with an honest retry time, a refused hit costs nothing, idle keys are forgotten; answer
slots keep a per-client share."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Iterator

import pytest

from bot.core.ratelimit import (
    AnswerSlots,
    CapacityFull,
    Check,
    Gatekeeper,
    LocalWindows,
    Rate,
    RateLimiter,
    ServiceLimits,
    open_storage,
)
from bot.core.settings import Settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    """The in-process windows and our retry times read this clock instead of the wall."""
    import bot.core.ratelimit

    fake = FakeClock()
    monkeypatch.setattr(bot.core.ratelimit, "time", types.SimpleNamespace(time=fake.time))
    yield fake


def test_rate_from_a_burst_and_a_sustained_rate() -> None:
    assert Rate.of(3, 0.5) == Rate(3, 6)  # 3 at once, then one every 2 s
    assert Rate.per_minute(10, 30) == Rate(10, 20)
    assert Rate.of(5, 1000) == Rate(5, 1)  # never a window under a second
    with pytest.raises(ValueError):
        Rate.of(0, 1)


def test_a_burst_passes_then_a_flood_is_refused_until_the_window_moves(clock: FakeClock) -> None:
    limiter = RateLimiter()
    check = Check("connection", Rate.of(3, 0.5), "socket-1")
    assert [limiter.hit(check) is None for _ in range(4)] == [True, True, True, False]
    refusal = limiter.hit(check)
    assert refusal is not None and refusal.scope == "connection"
    assert refusal.retry_after_s == pytest.approx(6.0)
    clock.now += 5.9
    assert limiter.hit(check) is not None
    clock.now += 0.2
    assert limiter.hit(check) is None


def test_a_refused_hit_costs_no_other_limit(clock: FakeClock) -> None:
    limiter = RateLimiter()
    tight = Check("connection", Rate(1, 60), "socket-1")
    shared = Check("ip", Rate(2, 60), "1.1.1.1")
    assert limiter.hit(tight, shared) is None
    for _ in range(5):
        refusal = limiter.hit(tight, shared)
        assert refusal is not None and refusal.scope == "connection"
    # The IP's quota was not spent by the refused hits: another socket of it still passes.
    assert limiter.hit(Check("connection", Rate(1, 60), "socket-2"), shared) is None


def test_keys_are_separate_and_retry_headers_round_up(clock: FakeClock) -> None:
    limiter = RateLimiter()
    rate = Rate(1, 10)
    assert limiter.hit(Check("ip", rate, "1.1.1.1")) is None
    refusal = limiter.hit(Check("ip", rate, "1.1.1.1"))
    assert refusal is not None and refusal.retry_after_header == "10"
    assert refusal.retry_after_ms == 10_000
    assert limiter.hit(Check("ip", rate, "2.2.2.2")) is None


def test_gatekeeper_limits_come_from_the_settings(clock: FakeClock) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, chat_rate_conversations_ip_burst=2, chat_close_after_refusals=3
    )
    limits = ServiceLimits.from_settings(settings)
    assert limits.messages_connection == Rate(10, 20)  # the defaults: 10 at once, 30 a minute
    gate = Gatekeeper(limits, RateLimiter(open_storage("memory://")))
    assert gate.hello("9.9.9.9") is None and gate.hello("9.9.9.9") is None
    assert gate.hello("9.9.9.9") is not None
    assert gate.hello("8.8.8.8") is None
    assert [gate.refusal_strike("socket") for _ in range(4)] == [True, True, True, False]


def test_idle_keys_are_forgotten_and_no_thread_is_started(clock: FakeClock) -> None:
    """One key per socket comes and goes all day: a key whose hits have all left its window
    is dropped on a later hit (at most every ``sweep_s``), and counting starts no thread (the
    ``limits`` memory storage started a timer thread every 10 ms that walked every key)."""
    import threading

    windows = LocalWindows(sweep_s=5.0)
    limiter = RateLimiter(windows)
    threads = threading.active_count()
    for socket in range(100):
        assert limiter.hit(Check("connection", Rate(3, 2), f"socket-{socket}")) is None
    assert len(windows) == 100 and threading.active_count() == threads
    clock.now += 6.0  # past every window and the sweep interval
    assert limiter.hit(Check("connection", Rate(3, 2), "socket-new")) is None
    assert len(windows) == 1
    # A key still inside its window is kept, with its count.
    ip = Check("ip", Rate(2, 60), "1.1.1.1")
    assert limiter.hit(ip) is None and limiter.hit(ip) is None
    clock.now += 6.0
    assert limiter.hit(Check("connection", Rate(3, 2), "socket-later")) is None
    assert limiter.hit(ip) is not None


def test_the_retry_time_is_when_the_oldest_counted_hit_leaves(clock: FakeClock) -> None:
    limiter = RateLimiter()
    check = Check("ip", Rate(2, 10), "1.1.1.1")
    assert limiter.hit(check) is None
    clock.now += 4.0
    assert limiter.hit(check) is None
    refusal = limiter.hit(check)
    assert refusal is not None and refusal.retry_after_s == pytest.approx(6.0)
    clock.now += 6.0  # the first hit left: one place
    assert limiter.hit(check) is None
    refusal = limiter.hit(check)
    assert refusal is not None and refusal.retry_after_s == pytest.approx(4.0)


async def test_answer_slots_give_each_client_a_share() -> None:
    slots = AnswerSlots(total=2, per_client=1, queue_per_client=2, queue_total=10)
    release = asyncio.Event()
    order: list[str] = []

    async def answer(client: str, name: str) -> None:
        async with slots.slot(client):
            order.append(name)
            await release.wait()

    flood = [asyncio.create_task(answer("flood", f"f{i}")) for i in range(2)]
    await asyncio.sleep(0)
    assert not slots.room("flood")  # its queue (2) is full: the third is refused at the door
    with pytest.raises(CapacityFull):
        async with slots.slot("flood"):
            pass
    other = asyncio.create_task(answer("other", "o1"))
    await asyncio.sleep(0.01)
    # The flood holds one slot (its share), the other client got the second at once.
    assert order == ["f0", "o1"] and slots.running == 2
    release.set()
    await asyncio.gather(*flood, other)
    assert slots.peak_running == 2 and slots.pending() == 0


async def test_answer_slot_wait_is_bounded() -> None:
    slots = AnswerSlots(total=1, per_client=1, queue_per_client=5, queue_total=5)
    async with slots.slot("a"):
        with pytest.raises(TimeoutError):
            async with slots.slot("b", timeout=0.05):
                pass
    assert slots.pending() == 0
