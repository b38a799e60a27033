"""The admin API (``/api/admin/...``): articles, their versions, "try a question", and the
local ingest hand-off. Documented in docs/admin.md.

Thin on purpose: each route checks the caller (``AdminUser``: an admin's bearer token, or a
signed-in page that sends its CSRF token), then calls :mod:`bot.knowledge.library` or
:mod:`bot.knowledge.publishing`. The library's writes block (files, embedding, Chroma), so those
routes are plain ``def`` and run in FastAPI's thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, File, HTTPException, Query, Request, UploadFile, status
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field, field_validator

from bot.core.models import User
from bot.core.schemas import AnswerResult
from bot.knowledge.answerers import gather_evidence
from bot.knowledge.library import (
    ArticleIn,
    ArticleOut,
    ArticlePage,
    HeldOut,
    LibraryError,
    UploadReport,
    VersionOut,
    VersionSummary,
)
from bot.knowledge.publishing import (
    IngestRequestError,
    WriterBusyError,
    accept_ingest_paths,
    stream_ingest,
)
from bot.web.deps import ContextDep, SessionDep, get_context
from bot.web.guards import GUARD_ATTR, AdminUser, require_role
from ingest.locking import LOCAL_TOKEN_HEADER

router = APIRouter(prefix="/api/admin", tags=["admin"])
T = TypeVar("T")

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad request (e.g. ingest paths the service will not read)"},
    404: {"description": "No such article or version"},
    409: {"description": "Id taken, or the article changed since the version you edited"},
    413: {"description": "Body larger than kb_max_article_bytes"},
    422: {
        "description": "Invalid id, title, body, url, tags or language, or held by screening "
        "(asks for credentials, or talks to an AI assistant): detail says what was found"
    },
}


def _library_call(work: Callable[[], T]) -> T:
    """Run library work; its refusals become HTTP errors with the library's sentence."""
    try:
        return work()
    except LibraryError as exc:
        raise HTTPException(exc.status, exc.detail) from None
    except WriterBusyError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None


# --- articles -------------------------------------------------------------------------------------


@router.get("/articles", responses=_ERRORS)
def list_articles(
    user: AdminUser,
    ctx: ContextDep,
    q: Annotated[str | None, Query(max_length=200, description="In id, title, body, tags")] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ArticlePage:
    """The articles folder, by id, with whether each article is in the index."""
    return _library_call(lambda: ctx.library.list_articles(q, tag, page, per_page))


@router.post("/articles", status_code=status.HTTP_201_CREATED, responses=_ERRORS)
def create_article(body: ArticleIn, user: AdminUser, ctx: ContextDep) -> ArticleOut:
    """Write ``<kb_path>/<id>.md`` and index it; answerable as soon as this returns."""
    return _library_call(lambda: ctx.library.create(body, user.email))


@router.post("/articles/upload", responses=_ERRORS)
def upload_articles(
    user: AdminUser,
    ctx: ContextDep,
    files: Annotated[list[UploadFile], File(description=".md, .html or .txt files")],
) -> UploadReport:
    """Publish several files at once; each gets its own result, a bad one fails alone."""
    limit = ctx.settings.kb_max_article_bytes
    # One byte over the limit is enough to refuse a file; the rest is never read.
    received = [(upload.filename or "unnamed", upload.file.read(limit + 1)) for upload in files]
    return _library_call(lambda: ctx.library.upload(received, user.email))


@router.get("/articles/held", responses=_ERRORS)
def held_articles(user: AdminUser, ctx: ContextDep) -> list[HeldOut]:
    """Articles an ingest held for review instead of indexing them, with the reason."""
    return _library_call(ctx.library.held)


# The held and versions routes come before ``/articles/{id}``: an id may contain '/', so the article
# routes' path pattern would also match ".../versions".


@router.get("/articles/{article_id:path}/versions", responses=_ERRORS)
def list_versions(article_id: str, user: AdminUser, ctx: ContextDep) -> list[VersionSummary]:
    """Every change made through this API (and ``file`` versions found on disk), newest first."""
    return _library_call(lambda: ctx.library.versions(article_id))


@router.get("/articles/{article_id:path}/versions/{number}", responses=_ERRORS)
def get_version(article_id: str, number: int, user: AdminUser, ctx: ContextDep) -> VersionOut:
    """One version with its Markdown body (null for a deletion)."""
    return _library_call(lambda: ctx.library.version(article_id, number))


@router.post("/articles/{article_id:path}/versions/{number}/restore", responses=_ERRORS)
def restore_version(article_id: str, number: int, user: AdminUser, ctx: ContextDep) -> ArticleOut:
    """Make that version the current article again (a deleted article comes back)."""
    return _library_call(lambda: ctx.library.restore(article_id, number, user.email))


@router.get("/articles/{article_id:path}", responses=_ERRORS)
def get_article(article_id: str, user: AdminUser, ctx: ContextDep) -> ArticleOut:
    return _library_call(lambda: ctx.library.get(article_id))


@router.put("/articles/{article_id:path}", responses=_ERRORS)
def update_article(
    article_id: str, body: ArticleIn, user: AdminUser, ctx: ContextDep
) -> ArticleOut:
    """Replace the article (send ``version`` to be refused instead of overwriting a newer
    edit); re-indexed before this returns."""
    return _library_call(lambda: ctx.library.update(article_id, body, user.email))


@router.delete(
    "/articles/{article_id:path}", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS
)
def delete_article(article_id: str, user: AdminUser, ctx: ContextDep) -> Response:
    """Remove the file and its chunks; its versions stay, so it can be restored."""
    _library_call(lambda: ctx.library.delete(article_id, user.email))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- try a question -------------------------------------------------------------------------------


class TryIn(BaseModel):
    question: str = Field(max_length=20_000)

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("question must not be empty")
        return value


class TryOut(AnswerResult):
    """What a customer would get now, plus the passage retrieval found for it."""

    passage: str | None = Field(
        None, description="The best-matching chunk of the top article; null when none."
    )


@router.post("/try")
async def try_question(body: TryIn, user: AdminUser, ctx: ContextDep) -> TryOut:
    """The answer ``/api/ask`` would give right now, from the same answerer."""
    evidence = await asyncio.to_thread(gather_evidence, ctx.retriever, body.question, [])
    result: AnswerResult | None = None
    async for item in ctx.answerer.stream(body.question, []):
        if isinstance(item, AnswerResult):
            result = item
    if result is None:  # pragma: no cover - every answerer ends with a result
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, "no answer was produced")
    passage = evidence.hits[0].best_chunk.text if evidence.hits else None
    return TryOut(**result.model_dump(), passage=passage)


# --- the local ingest hand-off --------------------------------------------------------------------

_require_admin = require_role("admin")


def admin_or_local_tool(request: Request, session: SessionDep) -> str:
    """Who is calling: ``local`` for the CLI on this machine holding ``service.json``'s token
    (the file is readable by the service's user only), else an admin as for every route here."""
    supplied = request.headers.get(LOCAL_TOKEN_HEADER)
    expected = get_context(request).service_token
    if supplied and expected and hmac.compare_digest(supplied, expected):
        return "local"
    user: User = _require_admin(request, session)
    return user.email


setattr(admin_or_local_tool, GUARD_ATTR, "admin")
AdminOrLocalTool = Annotated[str, Depends(admin_or_local_tool)]


class IngestIn(BaseModel):
    paths: list[str] = Field(
        min_length=1,
        max_length=1000,
        description="Absolute paths of folders or files, inside the articles folder or present "
        "on the service's machine.",
    )


@router.post(
    "/ingest",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/x-ndjson": {}},
            "description": "One JSON object a line: started, progress..., summary or error.",
        },
        400: _ERRORS[400],
    },
)
async def handed_over_ingest(
    body: IngestIn, caller: AdminOrLocalTool, ctx: ContextDep
) -> StreamingResponse:
    """Run ``supportbot ingest`` inside the service (the one writer of its store) and stream
    its progress: what the CLI does when it finds a service on its data directory."""
    try:
        paths = accept_ingest_paths(body.paths, ctx.settings)
    except IngestRequestError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None

    async def lines() -> AsyncIterator[str]:
        async for event in stream_ingest(ctx.writer, paths):
            yield json.dumps(event) + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")
