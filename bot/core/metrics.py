"""Prometheus metrics of the service: defined once here, recorded where things happen.

Why this module sits in ``bot.core``: answers are counted in ``bot.live``, escalations in
``bot.handoff`` and the scrape is served by ``bot.web``; the layering lets all three import
``bot.core`` and none of them import each other upwards.

Several processes (``N`` workers behind a proxy) each keep their own counters; a scrape of one
of them would report one share of the traffic. prometheus-client's multiprocess mode fixes that:
when ``PROMETHEUS_MULTIPROC_DIR`` names a directory (set by the start-up script *before* the
processes start, and emptied before each start), every process writes its values to files there
and :func:`exposition` aggregates all of them, whichever process answers ``/metrics``. The
gauges say how they combine across processes (``multiprocess_mode``): open sockets and answers
in flight add up over the live processes, the hand-off queue is one number read from the shared
database, so the most recent reading wins.

No metric carries a conversation id or any customer text as a label: labels are small, fixed
sets (reasons, outcomes, socket kinds), so the number of time series stays bounded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

ANSWERS = Counter(
    "supportbot_answers",
    "Bot answers stored, by outcome: answered (the customer got an answer) or escalated "
    "(the answer handed the conversation to a person).",
    ["outcome"],
)
ESCALATIONS = Counter(
    "supportbot_escalations",
    "Conversations handed to a person, by reason (low_confidence, customer_request, "
    "sensitive_topic, ...).",
    ["reason"],
)
ANSWER_LATENCY = Histogram(
    "supportbot_answer_latency_seconds",
    "From the start of answering a stored question to its answer being stored (chat socket).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0),
)
OPEN_SOCKETS = Gauge(
    "supportbot_open_sockets",
    "WebSocket connections open now, by socket (chat, agent).",
    ["socket"],
    multiprocess_mode="livesum",
)
ANSWER_QUEUE = Gauge(
    "supportbot_answer_queue",
    "Answers waiting for an answer slot or being computed now (answer_concurrency caps the "
    "running ones).",
    multiprocess_mode="livesum",
)
CHAT_ANSWERS_COMPUTED = Counter(
    "supportbot_chat_answers_computed",
    "Chat answers by where they were computed, with answer workers configured: worker, or "
    "service (no worker was ready and up to date with the knowledge base).",
    ["where"],
)
ANSWER_WORKERS = Gauge(
    "supportbot_answer_workers",
    "Answer worker processes by state, read at scrape time: ready (answering from the latest "
    "knowledge base), behind (switching to a newer copy of it), down (starting or restarting).",
    ["state"],
    multiprocess_mode="livesum",
)
HANDOFF_QUEUE = Gauge(
    "supportbot_handoff_queue",
    "Conversations waiting for a person (open, unclaimed queue items), read at scrape time.",
    multiprocess_mode="mostrecent",
)


def read_answer_workers(states: Mapping[str, int]) -> None:
    """Set the answer-worker gauge from the workers' states (at scrape time)."""
    for state, count in states.items():
        ANSWER_WORKERS.labels(state=state).set(count)


def multiprocess_dir() -> str | None:
    """The shared metrics directory when multiprocess mode is on."""
    path = os.environ.get(MULTIPROC_ENV)
    return path or None


def exposition() -> bytes:
    """The text exposition of every metric: all processes' when multiprocess mode is on."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY)
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def reset_multiprocess_dir() -> None:
    """Empty the shared metrics directory before the processes that write it start (the
    ``--workers`` supervisor calls it): files of a previous run would add its counts to this
    one's. Never call it while other processes write there."""
    path = multiprocess_dir()
    if path is None:
        return
    from pathlib import Path

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


def process_exit() -> None:
    """A stopping process hands back its live gauges (open sockets, answers in flight), so
    the aggregate no longer counts them. A no-op outside multiprocess mode."""
    if multiprocess_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


@contextmanager
def timed_answer() -> Iterator[None]:
    """Time one answer into :data:`ANSWER_LATENCY` and count it in the answer queue while it
    waits and runs."""
    ANSWER_QUEUE.inc()
    started = time.perf_counter()
    try:
        yield
    finally:
        ANSWER_QUEUE.dec()
        ANSWER_LATENCY.observe(time.perf_counter() - started)


@contextmanager
def open_socket(kind: str) -> Iterator[None]:
    """Count a WebSocket as open for as long as the block runs."""
    gauge = OPEN_SOCKETS.labels(socket=kind)
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def on_commit(session: Session, record: Callable[[], None]) -> None:
    """Run ``record`` once ``session`` commits, never for a transaction that rolled back: a
    counter then says what the database holds (an escalation that was rolled back did not
    happen)."""
    from sqlalchemy import event

    done = False

    def _commit(_session: Session) -> None:
        nonlocal done
        if not done:
            done = True
            record()

    def _rollback(_session: Session) -> None:
        nonlocal done
        done = True

    event.listen(session, "after_commit", _commit, once=True)
    event.listen(session, "after_rollback", _rollback, once=True)


def count_escalation(session: Session, reason: str) -> None:
    """Count an escalation to a person once its transaction commits."""
    on_commit(session, lambda: ESCALATIONS.labels(reason=reason).inc())


def read_handoff_queue(session: Session) -> int:
    """Conversations waiting for a person now (open, unclaimed queue items); sets the gauge."""
    from sqlalchemy import func, select

    from bot.core.models import QueueItem

    count = session.scalar(
        select(func.count())
        .select_from(QueueItem)
        .where(QueueItem.open_key.is_not(None), QueueItem.claimed_by.is_(None))
    )
    value = int(count or 0)
    HANDOFF_QUEUE.set(value)
    return value
