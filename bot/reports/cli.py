"""``supportbot report``: the report's figures as tables on the terminal, or one CSV export.

The same functions as ``/api/reports/...`` (:mod:`bot.reports.figures`) on the configured
database. Imports stay light (no torch, Chroma or the embedder): the command never opens the
search index, so it cannot list the articles the period never cited (the API can).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from enum import StrEnum

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from bot.reports.csv_export import articles_csv, conversations_csv
from bot.reports.figures import (
    Figures,
    Percentiles,
    Rating,
    ReportError,
    ReportSummary,
    article_rows,
    conversation_rows,
    make_period,
    summary_from_ledger,
)


class CsvKind(StrEnum):
    conversations = "conversations"
    articles = "articles"


def report_command(
    since: str | None = typer.Option(
        None, "--since", help="First local day, YYYY-MM-DD (default: 29 days before --until)."
    ),
    until: str | None = typer.Option(
        None, "--until", help="Last local day, YYYY-MM-DD, included (default: today)."
    ),
    tz: str = typer.Option("UTC", "--tz", help="IANA time zone of the days, e.g. Europe/Paris."),
    csv: CsvKind | None = typer.Option(
        None, "--csv", help="Print this CSV export instead of the tables."
    ),
) -> None:
    """Deflection, escalation, backlog, response times, CSAT/CES, articles and agents."""
    try:
        period = make_period(_day(since, "--since"), _day(until, "--until"), tz)
    except ReportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    with _session() as session:
        if csv is CsvKind.conversations:
            typer.echo(conversations_csv(conversation_rows(session, period)), nl=False)
        elif csv is CsvKind.articles:
            typer.echo(articles_csv(article_rows(session, period)), nl=False)
        else:
            print_summary(summary_from_ledger(session, period), Console())


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        typer.echo(f"error: {option} {value!r} is not a date (YYYY-MM-DD)", err=True)
        raise typer.Exit(2) from None


@contextmanager
def _session() -> Iterator[Session]:
    """A read-only session on the configured database (schema upgraded first, like `serve`)."""
    from bot.core.db import make_engine, make_session_factory
    from bot.core.migrate import upgrade_database
    from bot.core.settings import get_settings

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    try:
        upgrade_database(engine)
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


# --- rendering --------------------------------------------------------------------------------


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    if ms < 3_600_000:
        return f"{ms / 60_000:.1f} min"
    return f"{ms / 3_600_000:.1f} h"


def _ms(seconds: int | None) -> int | None:
    return None if seconds is None else seconds * 1000


def spread(p: Percentiles) -> str:
    return f"{duration(p.p50)} / {duration(p.p90)} (n={p.count})"


def score(r: Rating) -> str:
    if r.average is None:
        return "-"
    return f"{r.average:.2f} (n={r.responses}, response rate {pct(r.response_rate)})"


def totals_table(f: Figures, summary: ReportSummary) -> Table:
    table = Table("figure", "value", title="Total")
    rows = [
        ("conversations", f"{f.conversations} ({f.decided} decided, {f.undecided} undecided)"),
        ("deflection rate", pct(f.deflection_rate)),
        ("  confirmed", f"{pct(f.deflection_rate_confirmed)} ({f.deflected_confirmed})"),
        ("  assumed", f"{pct(f.deflection_rate_assumed)} ({f.deflected_assumed})"),
        ("escalation rate", f"{pct(f.escalation_rate)} ({f.escalated})"),
        *((f"  {reason}", str(n)) for reason, n in f.escalations_by_reason.items()),
        ("abandoned", f"{pct(f.abandonment_rate)} ({f.abandoned})"),
        ("first bot response p50 / p90", spread(f.first_bot_response_ms)),
        ("first human response p50 / p90", spread(f.first_human_response_ms)),
        ("resolution p50 / p90", spread(f.resolution_ms)),
        (
            "first contact resolution",
            f"{pct(f.first_contact_resolution.rate)} ({f.first_contact_resolution.resolved})",
        ),
        ("CSAT (1-5)", score(f.csat)),
        ("CES (1-7)", score(f.ces)),
        ("waiting now", str(summary.backlog.waiting_now)),
        ("oldest waiting", duration(_ms(summary.backlog.oldest_waiting_s))),
        ("in progress now", str(summary.backlog.in_progress_now)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def days_table(summary: ReportSummary) -> Table:
    table = Table(
        "day",
        "conv.",
        "deflected",
        "escalated",
        "abandoned",
        "queue end/peak",
        "CSAT",
        title=f"By day ({summary.tz})",
    )
    for d in summary.days:
        queue = (
            "-"
            if d.queue_waiting_end_of_day is None
            else f"{d.queue_waiting_end_of_day}/{d.queue_waiting_peak}"
        )
        csat = "-" if d.csat.average is None else f"{d.csat.average:.2f}"
        table.add_row(
            d.day.isoformat(),
            str(d.conversations),
            pct(d.deflection_rate),
            pct(d.escalation_rate),
            pct(d.abandonment_rate),
            queue,
            csat,
        )
    return table


def articles_table(summary: ReportSummary) -> Table:
    table = Table(
        "article", "retrieved", "cited", "helpful", "not helpful", "deflection", title="Articles"
    )
    for a in summary.articles:
        table.add_row(
            a.article_id,
            str(a.retrieved),
            str(a.cited),
            str(a.helpful),
            str(a.not_helpful),
            pct(a.deflection_rate),
        )
    return table


def agents_table(summary: ReportSummary) -> Table:
    table = Table(
        "agent", "handled", "first response p50/p90", "resolution p50/p90", "CSAT", title="Agents"
    )
    for a in summary.agents:
        csat = "-" if a.csat.average is None else f"{a.csat.average:.2f}"
        table.add_row(
            a.agent,
            str(a.conversations_handled),
            spread(a.first_response_ms),
            spread(a.resolution_ms),
            csat,
        )
    return table


def print_summary(summary: ReportSummary, console: Console) -> None:
    console.print(
        f"[bold]Report {summary.since} .. {summary.until}[/bold] ({summary.tz}; conversations "
        "by start time)"
    )
    console.print(totals_table(summary.total, summary))
    console.print(days_table(summary))
    if summary.articles:
        console.print(articles_table(summary))
    if summary.agents:
        console.print(agents_table(summary))
