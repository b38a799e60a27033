"""The admin API for learned questions (``/api/admin/learned...``), documented in docs/admin.md.

Thin like the articles API: the admin guard, then :mod:`bot.knowledge.learned`. Every decision
rewrites the sidecar file of the articles it touched (``<article>.learned.jsonl``, what git keeps)
and refreshes the in-memory index at once, so the next question already counts the change.
Embedding a just-approved question blocks, so the routes are plain ``def`` (thread pool).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from bot.core.clock import aware
from bot.core.models import LearnedQuestion, LearnedQuestionAudit
from bot.knowledge import learned
from bot.web.context import AppContext
from bot.web.deps import ContextDep, SessionDep
from bot.web.guards import AdminUser

router = APIRouter(prefix="/api/admin/learned", tags=["admin"])
T = TypeVar("T")
MAX_BULK = 500

StatusName = Literal["candidate", "approved", "rejected", "removed", "merged"]


class LearnedOut(BaseModel):
    id: int
    article_id: str
    article_title: str | None = Field(description="Null when no published article has this id.")
    question: str = Field(description="The customer's question, personal data masked.")
    status: StatusName
    source: str = Field(description="helpful | agent | draft | import | admin")
    confirmations: int = Field(description="Distinct conversations that proposed it.")
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None


class LearnedPage(BaseModel):
    items: list[LearnedOut]
    total: int
    page: int
    per_page: int
    index: dict[str, int] = Field(description="The in-memory index: questions, vector_bytes.")


class DecisionIn(BaseModel):
    article_id: str | None = Field(
        None, max_length=200, description="Approve for this article instead (re-assign)."
    )


class BulkIn(BaseModel):
    ids: list[int] = Field(min_length=1, max_length=MAX_BULK)
    action: Literal["approve", "reject", "remove"]
    article_id: str | None = Field(None, max_length=200)


class AttachIn(BaseModel):
    article_id: str = Field(min_length=1, max_length=200)
    questions: list[str] = Field(min_length=1, max_length=100)
    source: Literal["admin", "draft"] = "admin"


class AuditOut(BaseModel):
    learned_id: int
    action: str = Field(
        description="propose | approve | reassign | reject | remove | merge | import"
    )
    actor: str | None = Field(description="The admin's email; null for the system.")
    article_id: str
    previous_article_id: str | None
    question: str
    at: datetime


def _out(row: LearnedQuestion, titles: dict[str, str]) -> LearnedOut:
    return LearnedOut(
        id=row.id,
        article_id=row.article_id,
        article_title=titles.get(row.article_id),
        question=row.text,
        status=row.status,
        source=row.source,
        confirmations=row.confirmations,
        created_at=aware(row.created_at),
        decided_at=aware(row.decided_at) if row.decided_at else None,
        decided_by=row.decided_by,
    )


def _call(work: Callable[[], T]) -> T:
    try:
        return work()
    except learned.LearnedError as exc:
        raise HTTPException(exc.status, exc.detail) from None


def _check_article(ctx: AppContext, article_id: str | None, titles: dict[str, str]) -> None:
    if article_id and article_id not in titles:
        raise HTTPException(422, f"no published article {article_id!r}")


def _after(
    session: Session, ctx: AppContext, rows: Iterable[LearnedQuestion], *extra: str | None
) -> None:
    """Sidecars of the touched articles rewritten, the decision committed before the reply (the
    caller's next request must see it) and the index refreshed from it."""
    touched = {row.article_id for row in rows} | {a for a in extra if a}
    session.flush()
    learned.write_sidecars(session, ctx.settings.kb_path, touched)
    session.commit()
    if ctx.learned is not None:
        ctx.learned.refresh(force=True)


def _approve(
    session: Session, ctx: AppContext, ids: list[int], actor: str, article_id: str | None
) -> list[LearnedQuestion]:
    previous = [row.article_id for i in ids if (row := session.get(LearnedQuestion, i)) is not None]
    rows = _call(
        lambda: learned.approve(
            session,
            ids,
            actor,
            article_id=article_id,
            embed=ctx.embedder.encode,
            embedder_name=ctx.embedder.name,
        )
    )
    _after(session, ctx, rows, *previous)
    return rows


def _remove(session: Session, learned_id: int, actor: str) -> LearnedQuestion:
    return _call(lambda: learned.remove(session, learned_id, actor))


@router.get("")
def list_learned(
    user: AdminUser,
    session: SessionDep,
    ctx: ContextDep,
    status: StatusName | None = "candidate",
    article_id: Annotated[str | None, Query(max_length=200)] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
) -> LearnedPage:
    """Learned questions: candidates by default (most confirmed first); ``status=approved`` and
    ``article_id`` for an article's page."""
    result = learned.list_learned(
        session, status=status, article_id=article_id, page=page, per_page=per_page
    )
    titles = ctx.retriever.article_titles()
    stats = ctx.learned.stats() if ctx.learned is not None else {}
    return LearnedPage(
        items=[_out(row, titles) for row in result.items],
        total=result.total,
        page=page,
        per_page=per_page,
        index=stats,
    )


@router.post("", status_code=201)
def attach(
    body: AttachIn, user: AdminUser, session: SessionDep, ctx: ContextDep
) -> list[LearnedOut]:
    """Attach questions to an article as approved learned questions at once (a drafted
    article's group questions when it is published)."""
    titles = ctx.retriever.article_titles()
    _check_article(ctx, body.article_id, titles)
    rows = learned.add_approved(
        session, body.article_id, body.questions, user.email, source=body.source
    )
    rows = _approve(session, ctx, [r.id for r in rows], user.email, None)
    return [_out(row, titles) for row in rows]


@router.get("/audit")
def audit(
    user: AdminUser,
    session: SessionDep,
    learned_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AuditOut]:
    """Who did what, newest first."""
    rows: list[LearnedQuestionAudit] = learned.audit_trail(
        session, learned_id=learned_id, limit=limit
    )
    return [
        AuditOut(
            learned_id=row.learned_id,
            action=row.action,
            actor=row.actor,
            article_id=row.article_id,
            previous_article_id=row.previous_article_id,
            question=row.text,
            at=aware(row.created_at),
        )
        for row in rows
    ]


@router.post("/bulk")
def bulk(body: BulkIn, user: AdminUser, session: SessionDep, ctx: ContextDep) -> list[LearnedOut]:
    """Approve (optionally for ``article_id``), reject or remove many at once; all or none."""
    titles = ctx.retriever.article_titles()
    if body.action == "approve":
        _check_article(ctx, body.article_id, titles)
        rows = _approve(session, ctx, body.ids, user.email, body.article_id)
    elif body.action == "reject":
        rows = _call(lambda: learned.reject(session, body.ids, user.email))
        _after(session, ctx, [])
    else:
        rows = [_remove(session, i, user.email) for i in body.ids]
        _after(session, ctx, rows)
    return [_out(row, titles) for row in rows]


@router.post("/{learned_id}/approve")
def approve(
    learned_id: int,
    user: AdminUser,
    session: SessionDep,
    ctx: ContextDep,
    body: DecisionIn | None = None,
) -> LearnedOut:
    """Approve a candidate for its article, or for ``article_id`` (re-assign; also moves an
    approved one). A near-duplicate of an approved question is merged into it (that one is
    returned)."""
    titles = ctx.retriever.article_titles()
    article_id = body.article_id if body else None
    _check_article(ctx, article_id, titles)
    rows = _approve(session, ctx, [learned_id], user.email, article_id)
    return _out(rows[0], titles)


@router.post("/{learned_id}/reject")
def reject(learned_id: int, user: AdminUser, session: SessionDep, ctx: ContextDep) -> LearnedOut:
    """Reject a candidate: never proposed again for that article."""
    rows = _call(lambda: learned.reject(session, [learned_id], user.email))
    _after(session, ctx, [])
    return _out(rows[0], ctx.retriever.article_titles())


@router.delete("/{learned_id}", status_code=204)
def remove(learned_id: int, user: AdminUser, session: SessionDep, ctx: ContextDep) -> None:
    """Take an approved question off its article (not proposed again)."""
    row = _call(lambda: learned.remove(session, learned_id, user.email))
    _after(session, ctx, [row])
