"""``POST /api/ask``: one stateless answer, the same one the chat would give.

The route only validates and delegates; answering lives in ``bot.knowledge.answerers``. When the
answerer fails the caller gets the chat's reply to a failure (reason ``error``, an honest "something
went wrong", escalate), from :func:`bot.handoff.policy.failed_answer`, not a 500.
An optional ``Accept-Language`` header names the customer's language: the answerer's own
sentences (a hand-over, "which of these?") come in it (English, German, French, Spanish; English
otherwise) and articles written in it are preferred; article text is never translated.
Questions are capped (``max_question_chars``): a 10,000-character paste is not a question, and it
would cost an embedding pass and an LLM prompt for nothing.

Fair limits (``bot.core.ratelimit``): calls are rate-limited per client IP and in all (429 with
``Retry-After``), and the answer itself takes a place in the answer capacity the chat uses too, so
a client flooding this route waits behind its own questions: a full per-client queue is a 429, a
place that does not free within ``ask_queue_wait_s`` a 503, both with ``Retry-After``.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field, field_validator

from bot.core.i18n import answer_locale, locale_from_accept_language
from bot.core.ratelimit import CapacityFull
from bot.core.schemas import AnswerResult, Turn
from bot.handoff.policy import failed_answer
from bot.web.deps import ContextDep
from bot.web.proxies import client_ip

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["answers"])

MAX_HISTORY_TURNS = 50
QUEUE_FULL_RETRY_S = 2
"""Retry-After for a full answer queue: about one answer's time."""


class AskRequest(BaseModel):
    """A question, optionally with the conversation so far (oldest first)."""

    question: str = Field(description="The customer's question.", examples=["How do I return?"])
    history: list[Turn] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS)

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("question must not be empty")
        return value


@router.post(
    "/ask",
    response_model=AnswerResult,
    summary="Answer one question from the help-center articles",
    responses={
        422: {"description": "Empty, too long or malformed question"},
        429: {"description": "Too many questions from this client (or in all); see Retry-After"},
        503: {"description": "No answer capacity freed in time; see Retry-After"},
    },
)
async def ask(body: AskRequest, request: Request, ctx: ContextDep) -> AnswerResult:
    """The answer with its sources, or ``escalate: true`` and the reason a person should take
    it. ``confidence`` is the answerability score the escalation threshold applies to."""
    limit = ctx.settings.max_question_chars
    if len(body.question) > limit:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=[
                {
                    "loc": ["body", "question"],
                    "msg": f"question is too long: {len(body.question)} characters, the limit "
                    f"is {limit}",
                    "type": "string_too_long",
                }
            ],
        )
    if ctx.answerer is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the answerer is not ready")
    client = client_ip(request, ctx.settings.trusted_proxies)
    refused = ctx.chat.gate.ask(client)
    if refused is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many questions; retry after {refused.retry_after_header} s",
            headers={"Retry-After": refused.retry_after_header},
        )
    # The customer's language (Accept-Language, optional): the answerer's own sentences are
    # said in it and articles in it are preferred, as the chat does with its locale.
    locale = locale_from_accept_language(request.headers.get("accept-language"))
    answer_locale.set(locale)  # this request's own context
    result: AnswerResult | None = None
    try:
        async with ctx.chat.answer_slots.slot(client, timeout=ctx.settings.ask_queue_wait_s):
            try:
                async for item in ctx.answerer.stream(body.question, body.history):
                    if isinstance(item, AnswerResult):
                        result = item
            except Exception:
                log.exception("the answerer failed on /api/ask")
                result = None
    except CapacityFull:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "your earlier questions are still being answered; retry in a moment",
            headers={"Retry-After": str(QUEUE_FULL_RETRY_S)},
        ) from None
    except TimeoutError:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "every answer slot is busy; retry in a moment",
            headers={"Retry-After": str(QUEUE_FULL_RETRY_S)},
        ) from None
    return result if result is not None else failed_answer(locale=locale)
