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
    LargeBinary,
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
    __table_args__ = (Index("ix_conversations_site_customer", "site_id", "customer_id"),)

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
    # The customer's language (BCP 47, from hello), for bot texts in their language.
    locale: Mapped[str | None] = mapped_column(String(35))
    # Known customers (bot.people.sites): the site the chat came from and the customer its page
    # named. ``customer_verified`` is true only when the page's hash proved the id (HMAC with
    # the site's secret); only then does the conversation join the customer's history.
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="SET NULL"))
    customer_id: Mapped[str | None] = mapped_column(String(255))
    customer_name: Mapped[str | None] = mapped_column(String(200))
    customer_email: Mapped[str | None] = mapped_column(String(320))
    customer_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    # Replies by e-mail (bot.conversations.outbox): when a customer socket was last open on
    # this conversation (kept fresh while one is), and the last agent reply already e-mailed.
    customer_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    emailed_through_seq: Mapped[int] = mapped_column(Integer, default=0)

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


class Site(Base):
    """A website that embeds the widget (``supportbot site add``): its origin joins the chat
    socket's allowed origins, and its secret signs the ids of the customers its pages name.

    The secret is kept as is (not hashed): the server must recompute each page's HMAC with it.
    It never leaves the server except through ``supportbot site secret``.
    """

    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    origin: Mapped[str] = mapped_column(String(255), unique=True)
    secret: Mapped[str] = mapped_column(String(128))
    require_verification: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OutboxEmail(Base):
    """An e-mail waiting to be sent (or sent): queued in the request's transaction, sent by the
    outbox job with retries, so no request ever waits on an SMTP server."""

    __tablename__ = "email_outbox"
    __table_args__ = (Index("ix_email_outbox_status_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LearnedQuestion(Base):
    """A customer question learned as a unit of an article (``bot.knowledge.learned``).

    A candidate until an admin approves it (or the auto-approve setting does); approved ones are
    embedded (``vector``, float32 bytes from ``embedder``) and retrieved as evidence for their
    article, never quoted. ``key`` is the normalised text: a question is learned once per article
    and a rejected one is not proposed again.
    """

    __tablename__ = "learned_questions"
    __table_args__ = (UniqueConstraint("article_id", "key", name="uq_learned_article_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    article_id: Mapped[str] = mapped_column(String(200), index=True)
    text: Mapped[str] = mapped_column(Text)  # personal data masked before it is stored
    key: Mapped[str] = mapped_column(String(64))  # sha256 of the normalised text
    status: Mapped[str] = mapped_column(String(16), index=True)  # candidate|approved|rejected|...
    source: Mapped[str] = mapped_column(String(16))  # helpful|agent|draft|import|admin
    confirmations: Mapped[int] = mapped_column(Integer, default=1)
    conversations: Mapped[list[str] | None] = mapped_column(JSON)  # distinct, for independence
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)
    embedder: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(320))


class LearnedQuestionAudit(Base):
    """Who did what to a learned question: proposed, approved, re-assigned, rejected, removed,
    imported. Append-only, like ``article_versions`` for articles."""

    __tablename__ = "learned_question_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    learned_id: Mapped[int] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(320))  # an admin's email; None = the system
    article_id: Mapped[str] = mapped_column(String(200))
    previous_article_id: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
