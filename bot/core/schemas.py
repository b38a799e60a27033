"""Data shapes shared by the answering side and its consumers (HTTP, WebSocket, CLI).

``Answerer`` is the seam between "what to say" and "how it travels": /api/ask, the chat socket
and ``supportbot ask`` all consume the same stream of text pieces ending in one ``AnswerResult``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Literal, Protocol

from pydantic import BaseModel, Field

EscalationReason = Literal[
    "no_knowledge",
    "low_confidence",
    "customer_request",
    "sensitive_topic",
    "repeated_failure",
    "frustration",
    "error",  # the answerer or the vector store failed: something went wrong on our side
    "no_match",  # the customer answered "none of these" to the articles the bot offered
]


class Turn(BaseModel):
    """One earlier turn of the conversation, as the answerer sees it."""

    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)


class Source(BaseModel):
    """An article the answer drew on, best first."""

    article_id: str
    title: str
    url: str | None = None
    score: float = Field(ge=0.0, le=1.0)


class AnswerResult(BaseModel):
    """The complete answer: what /api/ask returns and what the chat stores.

    ``suggestions`` (2-3 articles, best first, with ``escalate`` false) means "which of these?":
    the evidence was split between close articles, so the customer picks one instead of the bot
    guessing. Empty for every other reply.
    """

    answer: str
    escalate: bool
    reason: EscalationReason | None = None
    confidence: float = Field(ge=0.0, le=1.0)
    sources: list[Source] = Field(default_factory=list)
    suggestions: list[Source] = Field(default_factory=list)


class Answerer(Protocol):
    """Streams an answer: text pieces (``str``) as they are produced, then one ``AnswerResult``.

    The text pieces concatenated equal ``AnswerResult.answer``.
    """

    def stream(
        self, question: str, history: Sequence[Turn] = ()
    ) -> AsyncIterator[str | AnswerResult]: ...

    def stream_article(
        self, article: Source, question: str, history: Sequence[Turn] = ()
    ) -> AsyncIterator[str | AnswerResult]:
        """The answer to ``question`` from one article the customer picked among suggestions."""
        ...
