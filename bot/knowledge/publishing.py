"""The knowledge base's one writer inside the service, and the ingest hand-off it serves.

Embedded Chroma supports one process per store: a second process writing it leaves the serving
process with a stale index (``Error finding id`` on every question until a restart). So while a
service runs on a data directory it is the only process that writes its store
(``ingest.locking.service_lock``), and inside it every write goes through one
:class:`KnowledgeWriter`: an admin's edit or upload, and a ``supportbot ingest`` that the CLI
handed over. The writer does one write at a time (a lock); each change to the store runs inside
the retriever's publishing gate, so when it returns, dense and lexical retrieval both answer from
the new generation, and no question ever saw one side changed and the other not. Questions wait
only while the store itself changes, not while files are read or written.

The hand-off is a streamed request (``POST /api/admin/ingest``): the same incremental pipeline
as a local run (``ingest.pipeline.index_paths``) runs in a worker thread under the writer, and its
progress and summary go back as events, one JSON object per line.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.core.settings import Settings
    from bot.knowledge.retrieval import Retriever
    from ingest.embedder import Embedder
    from ingest.loaders import Article
    from ingest.pipeline import IngestReport, ProgressCallback

log = logging.getLogger(__name__)


class WriterBusyError(RuntimeError):
    """Another knowledge-base write held the writer for longer than we were willing to wait."""


class IngestRequestError(ValueError):
    """A hand-off asked for paths the service will not read."""


class KnowledgeBatch:
    """What the holder of the writer may do to the knowledge base (only inside
    :meth:`KnowledgeWriter.writing`). Each call is one publish: questions wait while it
    changes the store, then see its result on both retrieval sides."""

    def __init__(self, writer: KnowledgeWriter) -> None:
        self._writer = writer

    def index(self, articles: Sequence[Article]) -> IngestReport:
        """Index exactly these articles (unchanged ones cost nothing); deletes nothing else."""
        from ingest.pipeline import index_articles

        w = self._writer
        return index_articles(
            articles,
            w.settings,
            w.embedder,
            lock_timeout_s=w.wait_s,
            write_gate=w.retriever.publishing,
        )

    def delete(self, article_id: str) -> bool:
        """Remove one article's chunks; False when it was not indexed."""
        from ingest.pipeline import delete_article

        w = self._writer
        return delete_article(
            article_id,
            w.settings,
            w.embedder,
            lock_timeout_s=w.wait_s,
            write_gate=w.retriever.publishing,
        )

    def index_paths(
        self, paths: Sequence[Path], progress: ProgressCallback | None = None
    ) -> IngestReport:
        """What ``supportbot ingest PATH ...`` does locally, in this process."""
        from ingest.pipeline import index_paths

        w = self._writer
        return index_paths(
            paths,
            w.settings,
            w.embedder,
            progress,
            lock_timeout_s=w.wait_s,
            write_gate=w.retriever.publishing,
        )


class KnowledgeWriter:
    """The process's one writer of Chroma, the ingest ledger and the generation counter."""

    def __init__(self, settings: Settings, embedder: Embedder, retriever: Retriever) -> None:
        self.settings = settings
        self.embedder = embedder
        self.retriever = retriever
        self.wait_s = settings.ingest_wait_s
        self._lock = threading.Lock()

    @contextmanager
    def writing(self) -> Iterator[KnowledgeBatch]:
        """Hold the knowledge base: other writes wait (up to ``ingest_wait_s``, then
        :class:`WriterBusyError`), so what the block reads (files, the ledger) stays true until
        its writes are done. Blocking: call it from a worker thread."""
        if not self._lock.acquire(timeout=self.wait_s):
            raise WriterBusyError(
                f"another knowledge-base write has been running for over {self.wait_s:g} s; "
                "try again when it has finished"
            )
        try:
            yield KnowledgeBatch(self)
        finally:
            self._lock.release()

    def ingest_paths(
        self, paths: Sequence[Path], progress: ProgressCallback | None = None
    ) -> IngestReport:
        """A handed-over ``supportbot ingest``: the local pipeline, under this writer."""
        with self.writing() as kb:
            return kb.index_paths(paths, progress)

    def warm(self, article_ids: Iterable[str]) -> None:
        """Embed the sentences of just-published articles now, so their first question does not
        wait for it. Only speed depends on it: failures are logged."""
        for article_id in article_ids:
            try:
                self.retriever.warm_up(article_id)
            except Exception:
                log.warning("warming %s failed", article_id, exc_info=True)


def accept_ingest_paths(raw: Sequence[str], settings: Settings) -> list[Path]:
    """The paths of a hand-off, checked: absolute (the caller's working directory means
    nothing here), and inside the configured articles folder or present on this machine.

    The endpoint is for admins and for the local CLI holding ``service.json``'s token (readable
    only by the service's user), so reading a file the service's user can read is within the
    trust that already lets them run ``supportbot ingest`` on it.
    """
    kb_root = settings.kb_path.resolve()
    accepted: list[Path] = []
    for text in raw:
        if not text or "\x00" in text:
            raise IngestRequestError("empty path or NUL character in a path")
        path = Path(text)
        if not path.is_absolute():
            raise IngestRequestError(
                f"{text}: send absolute paths (the service does not know your working directory)"
            )
        resolved = path.resolve()
        if not (resolved == kb_root or kb_root in resolved.parents or resolved.exists()):
            raise IngestRequestError(
                f"{text}: not found on the service's machine and not inside its articles "
                f"folder ({kb_root})"
            )
        accepted.append(resolved)
    return accepted


async def stream_ingest(
    writer: KnowledgeWriter, paths: Sequence[Path]
) -> AsyncIterator[dict[str, Any]]:
    """Run a handed-over ingest in a worker thread and yield its events as they happen:
    ``started``, ``progress`` (``stage``, ``done``, ``total``), then ``summary`` (``report``: the
    ``IngestReport`` as a dict) or ``error`` (``detail``). The ingest finishes even when the
    caller stops listening: a write is never abandoned half-way."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def emit(event: dict[str, Any] | None) -> None:
        with suppress(RuntimeError):  # the loop is gone (shutting down): nobody is listening
            loop.call_soon_threadsafe(events.put_nowait, event)

    def progress(stage: str, done: int, total: int) -> None:
        emit({"type": "progress", "stage": stage, "done": done, "total": total})

    def work() -> None:
        try:
            report = writer.ingest_paths(paths, progress)
            emit({"type": "summary", "report": report.as_dict()})
        except Exception as exc:
            log.exception("handed-over ingest failed")
            emit({"type": "error", "detail": str(exc) or exc.__class__.__name__})
        finally:
            emit(None)

    yield {"type": "started", "paths": [str(path) for path in paths]}
    job = loop.run_in_executor(None, work)
    while (event := await events.get()) is not None:
        yield event
    await job
