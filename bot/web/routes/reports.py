"""The report API for support leads: ``/api/reports/summary`` and its CSV exports.

Thin on purpose: parse the period, call :mod:`bot.reports.figures`, serialise. Every route needs
the lead role (``LeadUser``; admins pass too). A bad time zone or ``since`` after ``until`` is a
422 with a sentence saying which, not a stack trace. The retriever's article list names the
articles and tells which were never cited.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from bot.reports.csv_export import articles_csv, conversations_csv
from bot.reports.figures import (
    Period,
    ReportError,
    ReportSummary,
    article_rows,
    conversation_rows,
    make_period,
    summary_from_ledger,
)
from bot.web.deps import ContextDep, SessionDep
from bot.web.guards import LeadUser

router = APIRouter(tags=["reports"])

Since = Annotated[
    date | None,
    Query(description="First local day (YYYY-MM-DD), included. Default: 29 days before until."),
]
Until = Annotated[
    date | None, Query(description="Last local day (YYYY-MM-DD), included. Default: today.")
]
Tz = Annotated[
    str, Query(max_length=64, description="IANA time zone of the days, e.g. Europe/Amsterdam.")
]


def _period(since: date | None, until: date | None, tz: str) -> Period:
    try:
        return make_period(since, until, tz)
    except ReportError as exc:
        raise HTTPException(422, str(exc)) from None


def _csv(text: str, name: str, period: Period) -> Response:
    filename = f"{name}-{period.since}-{period.until}.csv"
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/api/reports/summary")
def get_summary(
    user: LeadUser,
    session: SessionDep,
    ctx: ContextDep,
    since: Since = None,
    until: Until = None,
    tz: Tz = "UTC",
) -> ReportSummary:
    """Deflection, escalation, backlog, response times, CSAT/CES, articles and agents, by local
    day and in total (docs/reports.md defines every figure)."""
    period = _period(since, until, tz)
    return summary_from_ledger(session, period, articles=ctx.retriever.article_titles())


@router.get("/api/reports/conversations.csv", response_class=Response)
def get_conversations_csv(
    user: LeadUser,
    session: SessionDep,
    since: Since = None,
    until: Until = None,
    tz: Tz = "UTC",
) -> Response:
    """One row per conversation of the period (started in it, the customer wrote)."""
    period = _period(since, until, tz)
    return _csv(conversations_csv(conversation_rows(session, period)), "conversations", period)


@router.get("/api/reports/articles.csv", response_class=Response)
def get_articles_csv(
    user: LeadUser,
    session: SessionDep,
    ctx: ContextDep,
    since: Since = None,
    until: Until = None,
    tz: Tz = "UTC",
) -> Response:
    """One row per article: retrieved, cited, votes and deflection in the period."""
    period = _period(since, until, tz)
    rows = article_rows(session, period, articles=ctx.retriever.article_titles())
    return _csv(articles_csv(rows), "articles", period)
