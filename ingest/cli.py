"""``supportbot ingest [PATH ...]``: index articles and say what happened.

A progress bar on a terminal, plain lines otherwise (CI logs and pipes should not fill with
carriage returns), then a summary table. Every file that failed is named with its reason, and the
exit status is 1 when any did, so a script or CI step notices a broken article.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from bot.core.settings import Settings
    from ingest.embedder import Embedder
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
    from ingest.locking import IngestLockedError
    from ingest.pipeline import index_paths
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
        with _ProgressDisplay(console) as progress:
            embedder = _load_embedder(settings, console)
            report = index_paths(targets, settings, embedder, progress, lock_timeout_s=wait)
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


def _load_embedder(settings: Settings, console: Console) -> Embedder:
    """Load the model with transformers' own progress bar off: ours is the one that matters."""
    from transformers.utils import logging as transformers_logging

    from ingest.embedder import get_embedder

    transformers_logging.disable_progress_bar()
    console.print(f"Loading embedder {settings.embedding_model} ...")
    return get_embedder(settings.embedding_model, settings.embedding_batch_size)


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
    for column in ("added", "updated", "unchanged", "deleted", "failed", "chunks", "seconds"):
        table.add_column(column, justify="right")
    table.add_row(
        str(len(report.added)),
        str(len(report.updated)),
        str(len(report.unchanged)),
        str(len(report.deleted)),
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
    if report.skipped:
        console.print(f"Skipped {len(report.skipped)} file(s) that are not articles:")
        for problem in report.skipped:
            console.print(
                f"  {problem.path}: {problem.reason}", markup=False, highlight=False, soft_wrap=True
            )
