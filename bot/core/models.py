"""The relational schema: conversations, their messages and events, the human queue, outcomes,
feedback, people.

Times are timezone-aware UTC. Conversation state lives on the conversation row, but every change
of state is also an ``events`` row, so outcomes and reports can be recomputed from history alone.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.core.clock import utcnow
from bot.core.db import Base


def new_id() -> str:
    return uuid.uuid4().hex


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    resume_token_hash: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(20), default="bot", index=True)
    state_reason: Mapped[str | None] = mapped_column(String(40))
    visitor: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    origin: Mapped[str | None] = mapped_column(String(255))
    assigned_agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    contact_email: Mapped[str | None] = mapped_column(String(320))
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    last_customer_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.seq", cascade="all, delete-orphan"
    )


class Message(Base):
    """Every message of a conversation, numbered by ``seq`` (1, 2, ...) within it."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_seq"),
        UniqueConstraint(
            "conversation_id", "client_msg_id", name="uq_messages_conversation_client_msg"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))  # customer | bot | agent | system
    text: Mapped[str] = mapped_column(Text)
    client_msg_id: Mapped[str | None] = mapped_column(String(64))
    reply_to: Mapped[int | None] = mapped_column(Integer)
    author: Mapped[str | None] = mapped_column(String(320))
    sources: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    confidence: Mapped[float | None] = mapped_column(Float)
    escalate: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # "Which of these?": the articles a bot message offered as choices (``Source`` dicts, best
    # first); the customer's ``choose`` frame is checked against them. None for other messages.
    suggestions: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # On a customer message the bot owes an answer: the service process computing it (set with
    # the question, or taken over from a stopped process, under the conversation's lock) until
    # the answer is stored, then None again. Only the holder may store the answer, so a question
    # is answered once however often it is resent, and one a stopped process left is found again.
    answer_owner: Mapped[str | None] = mapped_column(String(32), index=True)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class ConversationEvent(Base):
    """Append-only history: state changes, handoff requests, claims, feedback, closes."""

    __tablename__ = "conversation_events"
    __table_args__ = (Index("ix_events_conversation_time", "conversation_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QueueItem(Base):
    """A conversation waiting for (or held by) a person. At most one open item per conversation."""

    __tablename__ = "queue_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)
    sources: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # Non-null while the item is open; a unique index on it gives "one open item per
    # conversation" on both SQLite and PostgreSQL.
    open_key: Mapped[str | None] = mapped_column(String(32), unique=True)
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Outcome(Base):
    """The deflection ledger: one row per ended conversation."""

    __tablename__ = "outcomes"

    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    outcome: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str | None] = mapped_column(String(40))
    first_bot_response_ms: Mapped[int | None] = mapped_column(Integer)
    first_human_response_ms: Mapped[int | None] = mapped_column(Integer)
    resolution_ms: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Feedback(Base):
    """ "Was this helpful?" on one bot message."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("conversation_id", "message_seq", name="uq_feedback_msg"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    message_seq: Mapped[int] = mapped_column(Integer)
    helpful: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CsatRating(Base):
    __tablename__ = "csat"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Customer effort, 1 (very hard) to 7 (very easy): "how easy was it to get help?" Optional:
    # the survey asks it after the score, and older clients never send it.
    ces: Mapped[int | None] = mapped_column(Integer)


class User(Base):
    """An agent, lead or admin. Passwords and API tokens are stored only as hashes."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # agent | lead | admin
    password_hash: Mapped[str | None] = mapped_column(String(255))
    token_hash: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ArticleVersion(Base):
    """One change to a knowledge-base article made through the admin API: the audit trail and
    the version store in one.

    ``content`` is the whole article file after the change (front matter and Markdown), so any
    version can be shown or restored; a deletion keeps none (the version before it has it).
    When a file was changed on disk since the last API change (an editor plus ``supportbot
    ingest``), a ``file`` row keeps that content first, so the previous version is never lost.
    """

    __tablename__ = "article_versions"
    __table_args__ = (
        UniqueConstraint("article_id", "version", name="uq_article_versions_article_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    article_id: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per article
    action: Mapped[str] = mapped_column(String(16))  # create|update|upload|delete|restore|file
    title: Mapped[str | None] = mapped_column(String(300))
    path: Mapped[str | None] = mapped_column(String(400))  # under kb_path, e.g. billing/refunds.md
    content: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(String(64))  # sha256 of content
    previous_hash: Mapped[str | None] = mapped_column(String(64))  # of the file it replaced
    actor: Mapped[str | None] = mapped_column(String(320))  # the admin's email; None for files
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LoginAttempt(Base):
    """The sign-in audit trail: every refused sign-in (wrong password, throttled, locked, the
    password-check queue full), every success and every ``supportbot user unlock``.

    ``email`` is the address as typed (normalised), which may belong to nobody: throttling
    counts per typed address and per IP (``bot.people.throttle``), so guessing at unknown
    addresses is slowed too and the answers do not reveal which addresses exist.
    """

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email_created", "email", "created_at"),
        Index("ix_login_attempts_ip_created", "ip", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320))
    ip: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))  # failed|throttled|locked|busy|success|unlock
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
