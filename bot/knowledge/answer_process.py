"""The chat's extractive answers, computed in worker processes beside the service.

Why: in one process every part of a chat turn takes turns at one interpreter lock: the answer
(retrieval, the embedder, composing), the store, the sockets and the frames. Measured at 20
concurrent chats, the service answered 0.61-0.77 of what the same answerer does alone in one
process (``bench/chat_latency.py``; a profile put the answer at 58% of the lock's time, the
store at 21%, sockets at 16%). Tuning inside the process moved nothing the bench could resolve
(``docs/performance.md``): the rest of the turn needs a lock of its own. So the answers move
out; with two workers the service answered 1.02-1.05 of the in-process figure.

How:

- The service starts ``answer_processes`` workers (``spawn``: no inherited threads or locks).
  Each loads the embedder and builds the same :class:`~bot.knowledge.answerers.ExtractiveAnswerer`
  over its own store, and streams each answer back over a pipe piece by piece, so the first
  delta still leaves once the best passage is chosen.
- Embedded Chroma supports one process per store, so a worker never opens the service's store:
  it answers from a *replica*, a copy of the store's directory. The service copies it at start
  and after every publish, inside the retriever's publishing gate (nothing reads or writes the
  store then; a copy of a quiet store opens like one after a crash, which Chroma recovers from
  its log). The worker switches to the new copy and says so; until it has, questions are not
  sent to it, so no answer ever comes from a knowledge base older than the last publish. With a
  Chroma server (``chroma_url``) the workers read the server and follow its generation counter
  like any other process.
- A worker that is still starting (model load, warm-up), behind the last publish, or gone
  (restarted in the background) is simply not used: the answer is computed in the service's
  process, as with ``answer_processes=0``. A worker that dies before its answer's first piece
  costs nothing but the time; one that dies part-way fails that answer like any answerer
  failure (the policy hands over).

Learned questions are read from the database by each worker (``LearnedIndex`` polls it about
once a second), so an approval reaches the workers within a second or so.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import multiprocessing
import os
import shutil
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core import metrics
from bot.core.i18n import answer_locale
from bot.core.schemas import AnswerResult, Source, Turn

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from chromadb.api import ClientAPI

    from bot.core.settings import Settings
    from bot.knowledge.answerers import ExtractiveAnswerer
    from bot.knowledge.retrieval import Retriever

log = logging.getLogger(__name__)

REPLICAS_DIR = "answer-replicas"
"""Under the data directory: one store copy per worker (removed at start and stop)."""

RESTART_AFTER_S = (1.0, 5.0, 30.0)
"""A worker that exits is started again after these pauses (the last one repeats)."""

STOP_WAIT_S = 10.0


class WorkerGone(RuntimeError):
    """The worker computing an answer exited before it was done."""


# --- the service's side ---------------------------------------------------------------------


@dataclass
class _Request:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)


class _Worker:
    """One worker process and the service's end of its pipe."""

    def __init__(self, index: int, pool: AnswerWorkers) -> None:
        self.index = index
        self.pool = pool
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.ready = False
        self.replica_generation = -1  # the replica the worker answers from
        self.pid: int | None = None
        self.answered = 0
        self.failures = 0
        self.requests: dict[int, _Request] = {}
        self._send_lock = threading.Lock()

    def state(self, generation: int) -> str:
        """``ready`` (up, answering from ``generation``), ``behind`` or ``down``."""
        if not self.ready or self.conn is None:
            return "down"
        return "ready" if self.replica_generation >= generation else "behind"

    # Sends happen from the event loop (questions) and the writer's thread (replicas).
    def send(self, message: tuple[Any, ...]) -> None:
        conn = self.conn
        if conn is None:
            raise WorkerGone(f"answer worker {self.index} is not running")
        with self._send_lock:
            try:
                conn.send(message)
            except (OSError, ValueError) as exc:
                raise WorkerGone(f"answer worker {self.index} is not reachable") from exc

    def start(self, replica: Path | None, generation: int) -> None:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=serve_answers,
            args=(theirs, self.pool.settings, replica, generation),
            name=f"supportbot-answers-{self.index}",
            daemon=True,
        )
        process.start()
        theirs.close()
        self.process, self.conn = process, ours
        self.ready = False
        self.replica_generation = -1  # until the worker reports the one it opened
        threading.Thread(
            target=self._read,
            args=(ours, process),
            name=f"answers-{self.index}-reader",
            daemon=True,
        ).start()

    def _read(self, conn: Connection, process: BaseProcess) -> None:
        """The pipe's reader: hands each message to its answer, until the worker exits."""
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "ready":
                self.pid = message[1]
                self.replica_generation = max(self.replica_generation, message[2])
                self.ready = True
                self.failures = 0
                log.info("answer worker %d ready (pid %d)", self.index, self.pid)
            elif kind == "switched":
                self.replica_generation = max(self.replica_generation, message[1])
            else:  # piece / result / error for one request
                request = self.requests.get(message[1])
                if request is not None:
                    request.loop.call_soon_threadsafe(request.queue.put_nowait, (kind, message[2]))
        self._exited(process)

    def _exited(self, process: BaseProcess) -> None:
        self.ready = False
        if self.process is process:
            self.conn = None
        for request in list(self.requests.values()):
            with suppress(RuntimeError):  # that answer's loop has closed
                request.loop.call_soon_threadsafe(request.queue.put_nowait, ("gone", None))
        process.join(timeout=1)
        if self.pool.closing:
            return
        log.warning(
            "answer worker %d exited (code %s); restarting it", self.index, process.exitcode
        )
        pause = RESTART_AFTER_S[min(self.failures, len(RESTART_AFTER_S) - 1)]
        self.failures += 1
        timer = threading.Timer(pause, self.pool.restart, args=(self,))
        timer.daemon = True
        timer.start()

    async def stream(self, message: tuple[Any, ...]) -> AsyncIterator[str | AnswerResult]:
        """Send one question and yield its pieces as they come, then its result. Pieces that
        arrived together leave as one (fewer frames under load, as in-process)."""
        request_id = next(self.pool.ids)
        request = _Request(asyncio.get_running_loop())
        self.requests[request_id] = request
        finished = False
        try:
            self.send((message[0], request_id, *message[1:]))
            while True:
                entries = [await request.queue.get()]
                while not request.queue.empty():
                    entries.append(request.queue.get_nowait())
                text = "".join(value for kind, value in entries if kind == "piece")
                if text:
                    yield text
                for kind, value in entries:
                    if kind == "result":
                        finished = True
                        self.answered += 1
                        yield value
                        return
                    if kind == "error":
                        finished = True
                        raise RuntimeError(f"answer worker {self.index}: {value}")
                    if kind == "gone":
                        raise WorkerGone(f"answer worker {self.index} exited mid-answer")
        finally:
            self.requests.pop(request_id, None)
            if not finished and self.conn is not None:
                with suppress(WorkerGone):
                    self.send(("cancel", request_id))


class AnswerWorkers:
    """The service's answer workers: started with the app, fed a replica after every publish."""

    def __init__(self, settings: Settings, retriever: Retriever) -> None:
        self.settings = settings
        self.retriever = retriever
        self.embedded = not settings.chroma_url
        self.workers = [_Worker(i, self) for i in range(settings.answer_processes)]
        self.ids = itertools.count(1)
        self.generation = 0  # the latest replica handed out
        self.closing = False
        self._turn = itertools.count()
        self._replica_lock = threading.Lock()

    @property
    def root(self) -> Path:
        return self.settings.data_dir / REPLICAS_DIR

    def start(self) -> None:
        """Start every worker (non-blocking: they answer once they report ready)."""
        shutil.rmtree(self.root, ignore_errors=True)  # a previous run's copies
        if not self.embedded:
            for worker in self.workers:
                worker.start(None, 0)
            return
        # The hook joins before the gate opens: no publish can fall between copy and hook.
        with self.retriever.quiet(), self._replica_lock:
            self.generation += 1
            for worker in self.workers:
                worker.start(self._copy_store(worker), self.generation)
            self.retriever.after_publish.append(self.replicate)

    def restart(self, worker: _Worker) -> None:
        if self.closing:
            return
        try:
            if not self.embedded:
                worker.start(None, 0)
                return
            with self.retriever.quiet(), self._replica_lock:
                # The exited process's copies: nothing reads them now, and it cannot drop them.
                for stale in self.root.glob(f"{_copy_prefix(worker)}*"):
                    shutil.rmtree(stale, ignore_errors=True)
                worker.start(self._copy_store(worker), self.generation)
        except Exception:
            log.exception("answer worker %d could not be started", worker.index)

    def replicate(self) -> None:
        """After a publish, inside the gate: one fresh copy per worker. The worker switches to
        it in its own time; until it has, questions go elsewhere."""
        with self._replica_lock:
            self.generation += 1
            for worker in self.workers:
                if worker.conn is None:
                    continue  # a restart copies the store anew
                replica = self._copy_store(worker)
                try:
                    worker.send(("replica", self.generation, replica))
                except WorkerGone:
                    shutil.rmtree(replica, ignore_errors=True)

    def _copy_store(self, worker: _Worker) -> Path:
        target = self.root / f"{_copy_prefix(worker)}{self.generation}-{os.urandom(4).hex()}"
        started = time.perf_counter()
        shutil.copytree(self.settings.chroma_dir, target)
        log.debug(
            "store copied for answer worker %d in %.1f ms",
            worker.index,
            (time.perf_counter() - started) * 1000,
        )
        return target

    def pick(self) -> _Worker | None:
        """A worker that is ready and answers from the latest knowledge base, taking turns
        among the least busy; ``None`` when there is none (answer in this process)."""
        usable = [w for w in self.workers if w.state(self.generation) == "ready"]
        if not usable:
            return None
        least = min(len(w.requests) for w in usable)
        candidates = [w for w in usable if len(w.requests) == least]
        return candidates[next(self._turn) % len(candidates)]

    def states(self) -> dict[str, int]:
        """How many workers are ready (and up to date), behind the last publish, or down."""
        counts = {"ready": 0, "behind": 0, "down": 0}
        for worker in self.workers:
            counts[worker.state(self.generation)] += 1
        return counts

    @property
    def settled(self) -> bool:
        """Every worker has started (or failed to): answers are as fast as they will get."""
        return all(w.ready or w.failures for w in self.workers)

    def status(self) -> list[dict[str, Any]]:
        """One line per worker (tests, diagnostics)."""
        return [
            {
                "index": w.index,
                "pid": w.pid,
                "ready": w.ready,
                "replica_generation": w.replica_generation,
                "answered": w.answered,
            }
            for w in self.workers
        ]

    def close(self) -> None:
        """Stop the workers (answers in flight were drained before) and drop their copies."""
        self.closing = True
        for worker in self.workers:
            with suppress(WorkerGone):
                worker.send(("stop",))
        for worker in self.workers:
            process = worker.process
            if process is None:
                continue
            process.join(timeout=STOP_WAIT_S)
            if process.is_alive():
                process.kill()
                process.join(timeout=STOP_WAIT_S)
        shutil.rmtree(self.root, ignore_errors=True)


class ProcessAnswerer:
    """The chat's answerer: the workers when one is usable, else the one in this process."""

    def __init__(self, local: ExtractiveAnswerer, workers: AnswerWorkers) -> None:
        self.local = local
        self.workers = workers

    async def stream(
        self, question: str, history: Sequence[Turn] = ()
    ) -> AsyncIterator[str | AnswerResult]:
        message = ("answer", question, [t.model_dump() for t in history], answer_locale.get())
        async for item in self._stream(message, lambda: self.local.stream(question, history)):
            yield item

    async def stream_article(
        self, article: Source, question: str, history: Sequence[Turn] = ()
    ) -> AsyncIterator[str | AnswerResult]:
        message = ("article", question, article.model_dump(), answer_locale.get())
        async for item in self._stream(
            message, lambda: self.local.stream_article(article, question, history)
        ):
            yield item

    async def _stream(
        self, message: tuple[Any, ...], local: Callable[[], AsyncIterator[str | AnswerResult]]
    ) -> AsyncIterator[str | AnswerResult]:
        worker = self.workers.pick()
        if worker is not None:
            started = False
            try:
                async for item in worker.stream(message):
                    started = True
                    yield item
                metrics.CHAT_ANSWERS_COMPUTED.labels(where="worker").inc()
                return
            except WorkerGone:
                if started:
                    raise
                log.warning("answer worker %d exited; answering in the service", worker.index)
        async for item in local():
            yield item
        metrics.CHAT_ANSWERS_COMPUTED.labels(where="service").inc()


def _copy_prefix(worker: _Worker) -> str:
    """The names of one worker's store copies start with this."""
    return f"worker{worker.index}-"


# --- the worker's side ----------------------------------------------------------------------


def serve_answers(
    conn: Connection, settings: Settings, replica: Path | None, generation: int
) -> None:
    """A worker process's main: build the answerer, say ready, then answer until told to stop
    (or until the service's end of the pipe closes: the service is gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service decides when its workers stop
    from bot.core.logs import configure_logging

    configure_logging(settings)
    try:
        worker = _AnswerProcess(conn, settings, replica, generation)
    except Exception:
        log.exception("answer worker could not start")
        raise
    worker.run()


class _AnswerProcess:
    def __init__(
        self, conn: Connection, settings: Settings, replica: Path | None, generation: int
    ) -> None:
        from bot.core.db import make_engine, make_session_factory
        from bot.knowledge.answerers import ExtractiveAnswerer
        from bot.knowledge.learned import LearnedIndex
        from bot.knowledge.retrieval import Retriever
        from ingest.embedder import get_embedder
        from ingest.store import open_client, open_collection, open_persistent

        self.conn = conn
        self.settings = settings
        self.send_lock = threading.Lock()
        self.stops: dict[int, threading.Event] = {}
        self.embedder = get_embedder(settings.embedding_model, settings.embedding_batch_size)
        # The cores are shared with the service and the other workers: a worker's batches (its
        # warm-up) on every core would have each process spin threads on the others' cores.
        self.embedder.batch_threads = 1
        self.replica = replica
        self.client = open_persistent(replica) if replica else open_client(settings)
        retriever = Retriever(
            open_collection(self.client, settings.collection, self.embedder),
            self.embedder,
            settings,
            # A copy is one generation for its life; a Chroma server's moves with its counter.
            generation=(lambda: generation) if replica is not None else None,
            client=self.client,
        )
        self.generation = generation
        sessions = make_session_factory(make_engine(settings.effective_database_url))
        retriever.learned = LearnedIndex(sessions, self.embedder)
        self.answerer = ExtractiveAnswerer(retriever, self.embedder)
        self.answerer.warm_up()
        self.pool = ThreadPoolExecutor(
            max_workers=settings.answer_concurrency, thread_name_prefix="answer"
        )

    def send(self, message: tuple[Any, ...]) -> None:
        with self.send_lock:
            self.conn.send(message)

    def run(self) -> None:
        self.send(("ready", os.getpid(), self.generation))
        try:
            while True:
                try:
                    message = self.conn.recv()
                except (EOFError, OSError):
                    return  # the service is gone
                kind = message[0]
                if kind == "stop":
                    return
                if kind == "cancel":
                    if (stop := self.stops.get(message[1])) is not None:
                        stop.set()
                elif kind == "replica":
                    self._switch(message[1], message[2])
                elif kind in ("answer", "article"):
                    stop = self.stops[message[1]] = threading.Event()
                    context = contextvars.Context()  # a fresh locale per answer
                    self.pool.submit(context.run, self._answer, message, stop)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _switch(self, generation: int, path: Path) -> None:
        """Answer from the new copy of the store; close and drop the old one, which nothing
        reads any more once the retriever has moved (it waits for the answers in flight)."""
        from ingest.store import open_collection, open_persistent

        old_client, old_path = self.client, self.replica
        try:
            client = open_persistent(path)
            collection = open_collection(client, self.settings.collection, self.embedder)
            self.answerer.retriever.switch_store(client, collection, generation)
        except Exception:
            log.exception("answer worker could not open its new store copy; stopping")
            os._exit(3)  # the service starts a fresh worker on a fresh copy
        self.client, self.replica, self.generation = client, path, generation
        _close(old_client)
        if old_path is not None:
            shutil.rmtree(old_path, ignore_errors=True)
        self.send(("switched", generation))

    def _answer(self, message: tuple[Any, ...], stop: threading.Event) -> None:
        kind, request_id, question, payload, locale = message
        answer_locale.set(locale)
        try:
            if kind == "article":
                result = self.answerer.answer_article_sync(Source.model_validate(payload), question)
                items: Iterable[str | AnswerResult] = [*_pieces(result.answer), result]
            else:
                history = [Turn.model_validate(t) for t in payload]
                items = self.answerer.iter_answer(question, history)
            for item in items:
                if stop.is_set():
                    return
                if isinstance(item, AnswerResult):
                    self.send(("result", request_id, item))
                else:
                    self.send(("piece", request_id, item))
        except Exception as exc:
            log.exception("answer failed in the worker")
            self.send(("error", request_id, f"{type(exc).__name__}: {exc}"))
        finally:
            self.stops.pop(request_id, None)


def _pieces(text: str) -> list[str]:
    from bot.knowledge.answerers import pieces

    return list(pieces(text))


def _close(client: ClientAPI) -> None:
    """Release a Chroma client's system (open files, threads) once nothing reads it."""
    close = getattr(client, "close", None)
    if close is not None:
        close()
