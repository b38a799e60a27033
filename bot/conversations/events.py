"""Fan-out of conversation events to the sockets that care.

Topics: ``conversation:<id>`` (the customer's socket and any agent watching it) and ``agents``
(queue changes for every agent console). Payloads are JSON-ready dicts, normally a frame from
``bot.conversations.frames`` dumped with ``model_dump(mode="json")``.

Events are a notification channel, not the record: the database is. A subscriber that misses
an event (slow consumer, reconnect) recovers by reading the store, which is why a full queue
drops the oldest event instead of blocking the publisher.

:func:`bot.conversations.redis_events.make_event_bus` picks the implementation: this
in-process bus, or ``RedisEventBus`` there (same interface) when several service processes share
Redis, so a customer on one process and an agent on another hear each other.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

AGENTS_TOPIC = "agents"


def conversation_topic(conversation_id: str) -> str:
    return f"conversation:{conversation_id}"


class Subscription:
    """One subscriber's inbox."""

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=maxsize)

    def _deliver(self, payload: dict[str, Any]) -> None:
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(payload)

    async def get(self) -> dict[str, Any]:
        return await self.queue.get()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self.queue.get()


class EventBus:
    """In-process pub/sub. ``publish`` may be called from any thread (e.g. a sync route)."""

    def __init__(self, maxsize: int = 1000) -> None:
        self._maxsize = maxsize
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)
        self._lock = threading.Lock()

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        with self._lock:
            subscribers = list(self._subscribers.get(topic, ()))
        if not subscribers:
            return
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # a plain thread (a sync route, a store worker)
            here = None
        for subscription in subscribers:
            if subscription.loop is here:
                # On the subscriber's own loop (every chat frame): queued directly, without
                # the thread-safe path's wake-up write to the loop's self-pipe per frame.
                subscription.loop.call_soon(subscription._deliver, payload)
            else:
                subscription.loop.call_soon_threadsafe(subscription._deliver, payload)

    @asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[Subscription]:
        """Receive every payload published to ``topics`` while the context is open."""
        subscription = Subscription(asyncio.get_running_loop(), self._maxsize)
        with self._lock:
            for topic in topics:
                self._subscribers[topic].add(subscription)
        try:
            yield subscription
        finally:
            with self._lock:
                for topic in topics:
                    self._subscribers[topic].discard(subscription)
                    if not self._subscribers[topic]:
                        del self._subscribers[topic]

    def subscriber_count(self, topic: str) -> int:
        """Subscribers of ``topic`` in this process."""
        with self._lock:
            return len(self._subscribers.get(topic, ()))

    def close(self) -> None:
        """Release what the bus holds (nothing in process memory)."""
