"""Readiness checks: can this process serve a customer right now?

``/healthz`` says the process is alive; a load balancer that sends chats to a process whose
database, vector store or Redis is unreachable would still hand customers an error, so
``/readyz`` runs these checks and names the failing part. Each check is bounded by a timeout
(a hung dependency must not hang the probe) and returns an error string, or ``None`` when the
part answered.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from sqlalchemy import Engine

CHECK_TIMEOUT_S = 2.0


def bounded(check: Callable[[], None], timeout_s: float = CHECK_TIMEOUT_S) -> str | None:
    """Run ``check`` in a daemon thread; its exception text, ``"timed out"``, or ``None``.

    A thread, not the caller's: a driver stuck in a TCP connect ignores our timeout, and a
    stuck daemon thread costs nothing but itself."""
    outcome: list[str | None] = []

    def run() -> None:
        try:
            check()
        except Exception as error:  # the probe reports any failure, it never raises
            outcome.append(f"{type(error).__name__}: {error}".splitlines()[0][:300])
        else:
            outcome.append(None)

    worker = threading.Thread(target=run, name="readiness-check", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        return f"timed out after {timeout_s:g} s"
    return outcome[0]


def check_database(engine: Engine) -> str | None:
    """``SELECT 1`` over a pooled connection."""
    from sqlalchemy import text

    def run() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    return bounded(run)


def check_chroma(collection: Any) -> str | None:
    """A count of the collection: the embedded store's files or the Chroma server answer."""
    return bounded(lambda: collection.count())


def check_redis(url: str) -> str | None:
    """A Redis ``PING`` over a plain socket (``AUTH`` first when the URL has a password), so
    the probe needs no Redis client library. ``redis://`` only (TLS is not probed)."""
    parts = urlsplit(url)

    def run() -> None:
        host, port = parts.hostname or "127.0.0.1", parts.port or 6379
        with socket.create_connection((host, port), timeout=CHECK_TIMEOUT_S) as sock:
            sock.settimeout(CHECK_TIMEOUT_S)
            if parts.password:
                words = [unquote(parts.username or "default"), unquote(parts.password)]
                command = [b"AUTH", *(word.encode() for word in words)]
                sock.sendall(_resp(command))
                reply = sock.recv(512)
                if not reply.startswith(b"+OK"):
                    raise ConnectionError(f"AUTH refused: {reply[:80]!r}")
            sock.sendall(_resp([b"PING"]))
            reply = sock.recv(512)
            if not reply.startswith(b"+PONG"):
                raise ConnectionError(f"unexpected reply to PING: {reply[:80]!r}")

    return bounded(run)


def _resp(words: list[bytes]) -> bytes:
    out = [b"*%d\r\n" % len(words)]
    for word in words:
        out.append(b"$%d\r\n%s\r\n" % (len(word), word))
    return b"".join(out)


def redis_urls(settings: Any) -> list[str]:
    """The Redis servers this process depends on: ``redis_url`` (cross-process events, when
    that setting exists and is set) and a ``redis://`` rate-limit storage."""
    urls: list[str] = []
    configured = getattr(settings, "redis_url", None)
    if configured:
        urls.append(str(configured))
    storage = str(getattr(settings, "rate_limit_storage", "") or "")
    if storage.startswith(("redis://", "rediss://")) and storage not in urls:
        urls.append(storage)
    return urls
