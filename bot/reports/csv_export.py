"""The report's CSV exports: one row per conversation, one row per article.

Leads open these in a spreadsheet, and the first customer question is text a stranger typed. So
every text cell that a spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) gets a leading single quote, and quoting (commas, quotes,
newlines) is left to :mod:`csv`, which round-trips any text through ``csv.reader``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from bot.reports.figures import ArticleFigures, ConversationRow

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

CONVERSATION_COLUMNS = (
    "conversation_id",
    "started_at",
    "outcome",
    "reason",
    "first_bot_response_ms",
    "first_human_response_ms",
    "resolution_ms",
    "csat",
    "ces",
    "agent",
    "first_question",
)
ARTICLE_COLUMNS = (
    "article_id",
    "title",
    "retrieved",
    "cited",
    "helpful",
    "not_helpful",
    "conversations",
    "decided",
    "deflected",
    "deflection_rate",
)

Cell = str | int | float | None


def safe_cell(value: Cell) -> str | int | float:
    """A cell a spreadsheet shows as text, never runs: formula-like text gets a ``'`` first.

    Numbers are written as they are (they are ours, not typed by anyone); ``None`` is empty.
    """
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue()


def conversations_csv(rows: Iterable[ConversationRow]) -> str:
    return write_csv(
        CONVERSATION_COLUMNS,
        (
            (
                row.conversation_id,
                row.started_at.isoformat(),
                row.outcome,
                row.reason,
                row.first_bot_response_ms,
                row.first_human_response_ms,
                row.resolution_ms,
                row.csat,
                row.ces,
                row.agent,
                row.first_question,
            )
            for row in rows
        ),
    )


def articles_csv(rows: Iterable[ArticleFigures]) -> str:
    return write_csv(
        ARTICLE_COLUMNS,
        (
            (
                row.article_id,
                row.title,
                row.retrieved,
                row.cited,
                row.helpful,
                row.not_helpful,
                row.conversations,
                row.decided,
                row.deflected,
                row.deflection_rate,
            )
            for row in rows
        ),
    )
