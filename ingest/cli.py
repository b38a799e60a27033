"""``supportbot ingest [PATH ...]``: index articles and say what happened.

A progress bar on a terminal, plain lines otherwise (CI logs and pipes should not fill with
carriage returns), then a summary table. Every file that failed is named with its reason, and the
exit status is 1 when any did, so a script or CI step notices a broken article. Articles held by
screening (they ask for credentials or talk to an AI assistant; see ``ingest.screening``) are
listed with the reason too; they are not indexed, but they do not fail the run.

While ``supportbot serve`` runs on the same data directory, the service is the one writer of its
store: the ingest is handed to it (:func:`hand_off_ingest`) and shows the same progress and
summary; exit status 2 means a service holds the directory but cannot be reached.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from bot.core.settings import Settings
    from ingest.pipeline import IngestReport, ProgressCallback


def ingest_command(
    paths: list[Path] | None = typer.Argument(
        None, help="Folders or files to index (default: the configured kb_path)."
    ),
    wait: float = typer.Option(
        120.0, "--wait", help="Seconds to wait for another ingest to finish before giving up."
    ),
) -> None:
    """Index articles: new ones added, changed ones replaced, removed ones deleted."""
    from bot.core.settings import get_settings
    from ingest.locking import IngestLockedError, ServiceRunningError, offline_claim
    from ingest.store import EmbedderMismatchError

    settings = get_settings()
    console = Console()
    err = Console(stderr=True)
    targets = list(paths) if paths else [settings.kb_path]
    console.print(
        f"Indexing {', '.join(str(p) for p in targets)} into {settings.data_dir}",
        soft_wrap=True,
        highlight=False,
    )
    try:
        with offline_claim(settings.data_dir):  # no service owns the data directory: write here
            report = run_local_ingest(targets, settings, console, lock_timeout_s=wait)
    except ServiceRunningError:  # a service does: it is the one writer, so it runs the ingest
        report = hand_off_ingest(targets, settings, console, wait_s=wait)
    except (IngestLockedError, EmbedderMismatchError) as exc:
        err.print(f"[bold red]ingest failed:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
    _print_summary(console, report)
    if report.failed:
        err.print(f"[bold red]{len(report.failed)} file(s) failed:[/]")
        for problem in report.failed:
            err.print(
                f"  {problem.path}: {problem.reason}", markup=False, highlight=False, soft_wrap=True
            )
        raise typer.Exit(1)


def run_local_ingest(
    targets: list[Path], settings: Settings, console: Console, *, lock_timeout_s: float
) -> IngestReport:
    """Run the pipeline in this process, showing its progress on ``console``.

    The embedder loads only if an article must be chunked or embedded: a re-run over an
    unchanged knowledge base answers in about a second instead of loading torch and the model.
    """
    from ingest.embedder import LazyEmbedder
    from ingest.pipeline import index_paths

    def announce_load(model_name: str) -> None:
        # transformers' own weight-loading bar would interleave with ours.
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        console.print(f"Loading embedder {model_name} ...")

    embedder = LazyEmbedder(
        settings.embedding_model, settings.embedding_batch_size, on_load=announce_load
    )
    with _ProgressDisplay(console) as progress:
        return index_paths(targets, settings, embedder, progress, lock_timeout_s=lock_timeout_s)


# --- handing the ingest to a running service ------------------------------------------------------

HAND_OFF_CONNECT_WAIT_S = 30.0
"""At most this long (and never past ``--wait``) for a service that holds the data directory to
answer: long enough for one that is still starting (loading the embedder), short enough that a
hung one is reported quickly."""


class _HandOffError(RuntimeError):
    """The service took the request but the ingest did not complete; exit with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def hand_off_ingest(
    targets: list[Path], settings: Settings, console: Console, *, wait_s: float
) -> IngestReport:
    """Give the ingest to the service that owns the data directory and show its progress.

    Embedded Chroma supports one process per store, so while a service runs it is the one
    writer: it runs the same incremental pipeline in its own process (``POST
    /api/admin/ingest``, authorised by the token in ``service.json``) and streams progress and
    the summary back. Paths go absolute: the service does not share our working directory.
    Exits 2 when the service cannot be reached, 1 when it refused or the ingest failed.
    """
    import httpx

    from ingest.locking import read_service_info

    err = Console(stderr=True)
    paths = [str(Path(target).resolve()) for target in targets]
    deadline = time.monotonic() + min(max(wait_s, 0.0), HAND_OFF_CONNECT_WAIT_S)
    problem = "it has not said where it listens yet (no service.json)"
    announced = ""
    while True:
        info = read_service_info(settings.data_dir)
        if info is not None:
            if announced != info.url:
                console.print(
                    f"A service (pid {info.pid}, {info.url}) is serving this data directory; "
                    "it runs the ingest.",
                    soft_wrap=True,
                    highlight=False,
                )
                announced = info.url
            try:
                return _stream_ingest(info.url, info.token, paths, console)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                problem = f"{info.url} does not answer ({exc.__class__.__name__})"
            except _HandOffError as exc:
                err.print(f"[bold red]ingest failed:[/] {exc}", soft_wrap=True)
                raise typer.Exit(exc.code) from exc
            except httpx.HTTPError as exc:
                err.print(
                    f"[bold red]ingest failed:[/] lost the connection to the service "
                    f"({exc.__class__.__name__}). Its ingest finishes or is repaired by the next "
                    "one: run the ingest again to see where things stand.",
                    soft_wrap=True,
                )
                raise typer.Exit(1) from exc
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    holder = f" (pid {info.pid})" if info is not None else ""
    err.print(
        f"[bold red]ingest refused:[/] a service{holder} holds the data directory "
        f"{settings.data_dir}, but {problem}. While it runs it is the only process that may "
        "write the knowledge base. If it is starting, run the ingest again in a moment; if it "
        "is stuck, stop it and run the ingest again (it then runs here).",
        soft_wrap=True,
    )
    raise typer.Exit(2)


def _stream_ingest(url: str, token: str, paths: list[str], console: Console) -> IngestReport:
    """POST the paths and follow the service's events (one JSON object a line)."""
    import json

    import httpx

    from ingest.locking import LOCAL_TOKEN_HEADER

    timeout = httpx.Timeout(10.0, read=None)  # an ingest may embed for minutes
    with (
        httpx.Client(timeout=timeout) as client,
        client.stream(
            "POST",
            f"{url}/api/admin/ingest",
            json={"paths": paths},
            headers={LOCAL_TOKEN_HEADER: token},
        ) as response,
    ):
        if response.status_code != 200:
            response.read()
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            code = 2 if response.status_code in (401, 403) else 1
            hint = " (service.json does not match the running service)" if code == 2 else ""
            raise _HandOffError(f"the service refused: {detail}{hint}", code)
        with _ProgressDisplay(console) as progress:
            for line in response.iter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "progress":
                    progress(str(event["stage"]), int(event["done"]), int(event["total"]))
                elif event.get("type") == "summary":
                    return _report_from(event["report"])
                elif event.get("type") == "error":
                    raise _HandOffError(f"the service's ingest failed: {event.get('detail')}")
    raise _HandOffError("the service closed the connection before the ingest finished")


def _report_from(data: dict[str, Any]) -> IngestReport:
    """The service's ``IngestReport.as_dict()`` back as a report, for the same summary."""
    from ingest.pipeline import FileProblem, IngestReport
    from ingest.screening import HeldArticle

    def problems(key: str) -> list[FileProblem]:
        return [FileProblem(str(p["path"]), str(p["reason"])) for p in data.get(key, [])]

    held = [
        HeldArticle(
            str(h["id"]),
            str(h["path"]) if h.get("path") else None,
            str(h.get("title") or h["id"]),
            str(h["reason"]),
        )
        for h in data.get("held", [])
    ]

    return IngestReport(
        added=list(data.get("added", [])),
        updated=list(data.get("updated", [])),
        unchanged=list(data.get("unchanged", [])),
        deleted=list(data.get("deleted", [])),
        recovered=list(data.get("recovered", [])),
        failed=problems("failed"),
        skipped=problems("skipped"),
        held=held,
        chunks_written=int(data.get("chunks_written", 0)),
        chunks_embedded=int(data.get("chunks_embedded", 0)),
        chunks_deleted=int(data.get("chunks_deleted", 0)),
        chunks_total=int(data.get("chunks_total", 0)),
        seconds=float(data.get("seconds", 0.0)),
        generation=int(data.get("generation", 0)),
    )


class _ProgressDisplay:
    """A ``ProgressCallback`` that drives a rich bar on a terminal, or prints plain lines."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: object | None = None
        self.task: object | None = None
        self.last_line = 0.0

    def __enter__(self) -> ProgressCallback:
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            bar = Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            bar.start()
            self.bar = bar
        return self.update

    def __exit__(self, *exc: object) -> None:
        from rich.progress import Progress

        if isinstance(self.bar, Progress):
            self.bar.stop()

    def update(self, stage: str, done: int, total: int) -> None:
        from rich.progress import Progress, TaskID

        if stage == "load":
            self.console.print(f"Loaded {total} article(s)")
            return
        if isinstance(self.bar, Progress):
            if total == 0:
                return
            if self.task is None:
                self.task = self.bar.add_task("Embedding chunks", total=total)
            assert isinstance(self.task, int)
            self.bar.update(TaskID(self.task), completed=done, total=total)
            return
        now = time.monotonic()
        if total and (done in (0, total) or now - self.last_line >= 2.0):
            self.console.print(f"embedding chunks: {done}/{total}")
            self.last_line = now


def _print_summary(console: Console, report: IngestReport) -> None:
    table = Table(title="Ingest summary", show_header=True)
    columns = ("added", "updated", "unchanged", "deleted", "held", "failed", "chunks", "seconds")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_row(
        str(len(report.added)),
        str(len(report.updated)),
        str(len(report.unchanged)),
        str(len(report.deleted)),
        str(len(report.held)),
        str(len(report.failed)),
        str(report.chunks_written),
        f"{report.seconds:.1f}",
    )
    console.print(table)
    console.print(
        f"{report.chunks_written} chunk(s) written, {report.chunks_deleted} removed; the "
        f"collection holds {report.chunks_total}. Knowledge-base generation {report.generation}."
    )
    if report.recovered:
        console.print(
            f"Repaired {len(report.recovered)} article(s) left half-written by an interrupted "
            "ingest: " + ", ".join(report.recovered),
            soft_wrap=True,
        )
    if report.held:
        console.print(
            f"Held {len(report.held)} article(s) for review (not indexed; fix them and ingest "
            "again):"
        )
        for item in report.held:
            console.print(
                f"  {item.path or item.id}: {item.reason}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    if report.skipped:
        console.print(f"Skipped {len(report.skipped)} file(s) that are not articles:")
        for problem in report.skipped:
            console.print(
                f"  {problem.path}: {problem.reason}", markup=False, highlight=False, soft_wrap=True
            )
