"""The event bus across processes: Redis pub/sub behind :class:`~bot.conversations.events.EventBus`.

Every process publishes a topic's payload to the Redis channel ``supportbot:events:<topic>`` and
listens to the pattern ``supportbot:events:*`` on one connection, in one daemon thread, handing
each payload to its local subscribers (the in-process bus it extends). Local subscribers thus get
a process's own events through Redis too, in the order Redis delivered them, never twice.

Events stay notifications: a payload published while Redis is unreachable is delivered to this
process's subscribers only, and a socket that missed one recovers by reading the store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from bot.conversations.events import EventBus

if TYPE_CHECKING:
    from bot.core.settings import Settings

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "supportbot:events:"


def make_event_bus(settings: Settings) -> EventBus:
    """In process memory, or across processes over Redis pub/sub when ``redis_url`` is set."""
    if settings.redis_url:
        return RedisEventBus(settings.redis_url)
    return EventBus()


class RedisEventBus(EventBus):
    """Pub/sub through Redis; ``publish`` may be called from any thread."""

    def __init__(self, url: str, maxsize: int = 1000, prefix: str = CHANNEL_PREFIX) -> None:
        import redis

        super().__init__(maxsize)
        self._prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="redis-events", daemon=True)
        self._thread.start()
        if not self._ready.wait(10.0):
            self.close()
            raise RuntimeError(f"could not subscribe to Redis events at {url}")

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        try:
            self._redis.publish(self._prefix + topic, json.dumps(payload, default=str))
        except Exception:
            log.exception("could not publish an event to Redis; delivered in this process only")
            super().publish(topic, payload)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._redis.close()

    # --- the listener thread ------------------------------------------------------------------
    def _listen(self) -> None:
        while not self._stop.is_set():
            pubsub = self._redis.pubsub()  # type: ignore[no-untyped-call]
            try:
                pubsub.psubscribe(self._prefix + "*")
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is None:
                        continue
                    if message["type"] == "psubscribe":
                        self._ready.set()
                    elif message["type"] == "pmessage":
                        self._deliver(message["channel"], message["data"])
            except Exception:
                if self._stop.is_set():
                    break
                log.exception("Redis event listener lost its connection; reconnecting")
                time.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):  # already broken
                    pubsub.close()

    def _deliver(self, channel: bytes | str, data: bytes | str) -> None:
        name = channel.decode() if isinstance(channel, bytes) else channel
        try:
            payload = json.loads(data)
        except ValueError:
            log.warning("ignoring a malformed event on %s", name)
            return
        if isinstance(payload, dict):
            super().publish(name[len(self._prefix) :], payload)
