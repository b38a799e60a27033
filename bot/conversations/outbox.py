"""Replies by e-mail: an agent's reply reaches a customer who has left, with a link back.

When an agent replies and the customer has had no chat open for
``email_reply_after_minutes``, the reply goes to their address (the verified customer's e-mail,
or the one they left out of hours: ``Conversation.contact_email``) with a link that reopens the
conversation in the widget (``/resume?token=...``, a signed conversation token that expires).

Nothing here runs inside a request. :func:`run_outbox_job` is one background task per process:

1. **Presence.** Conversations with a customer socket open in this process get
   ``customer_seen_at = now`` (a heartbeat; the socket's close writes it once more), so "away for
   N minutes" holds across processes and after a crash.
2. **Queue.** Agent replies the customer has not seen (newer than ``customer_seen_at``) of
   conversations whose customer is away become one ``email_outbox`` row each, in the same
   transaction that moves ``emailed_through_seq`` past them: each reply is e-mailed once.
3. **Send.** Due rows are claimed (their next attempt pushed out, so a crash mid-send only
   delays a retry), sent with the stdlib ``smtplib`` on a worker thread, then marked sent, or
   retried with doubling backoff until ``email_retry_max_attempts``, then marked failed.

Steps 2 and 3 take a job lock (PostgreSQL advisory lock; always granted on SQLite), so several
processes sharing a database never send one e-mail twice.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

from sqlalchemy import func, or_, select

from bot.conversations.customers import mark_seen
from bot.core.clock import aware, utcnow
from bot.core.leases import try_job_lock
from bot.core.models import Conversation, Message, OutboxEmail
from bot.people.identity import conversation_token

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.core.db import DatabaseWorkers
    from bot.core.settings import Settings

log = logging.getLogger(__name__)

MAX_REPLY_AGE = timedelta(hours=24)
"""Replies older than this are never e-mailed (say, once SMTP is configured after a while)."""
BACKOFF_BASE_S = 30.0
BACKOFF_MAX_S = 3600.0
CLAIM_S = 300.0
"""A claimed e-mail is retried after this long if its sender never reported back (a crash)."""
BATCH = 20


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    tls: bool  # smtps:// (TLS from the first byte); smtp:// uses STARTTLS when offered
    username: str | None
    password: str | None


def parse_smtp_url(url: str) -> SmtpTarget:
    """``smtp://user:pass@host:port`` or ``smtps://...``; user and password may be %-encoded."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("the SMTP URL must look like smtp://user:pass@host:port (or smtps://)")
    tls = parts.scheme == "smtps"
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or (465 if tls else 25),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def email_enabled(settings: Settings) -> bool:
    """Replies by e-mail are on: an SMTP server is configured (``welcome.email_replies``)."""
    return settings.smtp_url is not None


def public_base(settings: Settings) -> str:
    """Where customers reach the service, for links in e-mails."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return f"http://{settings.host}:{settings.port}"


def resume_link(settings: Settings, conversation_id: str) -> str:
    """A link that opens the conversation in the widget until ``email_link_hours`` pass."""
    token = conversation_token(settings, conversation_id, valid_s=settings.email_link_hours * 3600)
    return f"{public_base(settings)}/resume?token={quote(token)}"


# --- queueing -------------------------------------------------------------------------------


def queue_email(
    session: Session,
    *,
    to: str,
    subject: str,
    body: str,
    conversation_id: str | None = None,
    now: datetime | None = None,
) -> OutboxEmail:
    """Add an e-mail to the outbox in the caller's transaction; the job sends it."""
    now = now or utcnow()
    item = OutboxEmail(
        conversation_id=conversation_id,
        to_address=to,
        subject=subject[:300],
        body=body,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(item)
    session.flush()
    return item


def reply_address(conversation: Conversation) -> str | None:
    """Where the customer gets replies: their verified e-mail, or the one they left."""
    if conversation.customer_verified and conversation.customer_email:
        return conversation.customer_email
    return conversation.contact_email


def _reply_body(settings: Settings, conversation: Conversation, replies: list[Message]) -> str:
    greeting = f"Hello {conversation.customer_name}," if conversation.customer_name else "Hello,"
    lines = [greeting, ""]
    for reply in replies:
        who = reply.author or "Our team"
        lines.append(f"{who} replied to your conversation:")
        lines.append("")
        lines.extend(f"> {line}" if line else ">" for line in reply.text.splitlines())
        lines.append("")
    lines += [
        "Continue the conversation (you can answer there):",
        resume_link(settings, conversation.id),
        "",
        f"The link works for {settings.email_link_hours:g} hours. You get this e-mail because "
        "you were not in the chat when the reply came.",
    ]
    return "\n".join(lines)


def queue_agent_replies(
    session: Session,
    settings: Settings,
    *,
    now: datetime | None = None,
    present: Sequence[str] = (),
) -> int:
    """Queue one e-mail per conversation whose customer is away and has unseen agent replies;
    returns how many. Replies the customer saw live are passed over (and never e-mailed).
    ``present``: conversations with a customer socket open in this process now, never away
    (their replies stay for a later round, judged against the time the socket closed)."""
    now = now or utcnow()
    away_since = now - timedelta(minutes=settings.email_reply_after_minutes)
    newest_agent = (
        select(func.max(Message.seq))
        .where(Message.conversation_id == Conversation.id, Message.role == "agent")
        .scalar_subquery()
    )
    query = select(Conversation).where(
        newest_agent > Conversation.emailed_through_seq,
        or_(Conversation.customer_seen_at.is_(None), Conversation.customer_seen_at <= away_since),
    )
    if present:
        query = query.where(Conversation.id.not_in(list(present)))
    candidates = session.scalars(query).all()
    queued = 0
    for conversation in candidates:
        replies = list(
            session.scalars(
                select(Message)
                .where(
                    Message.conversation_id == conversation.id,
                    Message.role == "agent",
                    Message.seq > conversation.emailed_through_seq,
                )
                .order_by(Message.seq)
            )
        )
        if not replies:
            continue
        seen = aware(conversation.customer_seen_at) if conversation.customer_seen_at else None
        unseen = [
            m
            for m in replies
            if (seen is None or aware(m.created_at) > seen)
            and now - aware(m.created_at) <= MAX_REPLY_AGE
        ]
        conversation.emailed_through_seq = replies[-1].seq
        address = reply_address(conversation)
        if not unseen or address is None:
            continue
        queue_email(
            session,
            to=address,
            subject="New reply to your conversation",
            body=_reply_body(settings, conversation, unseen),
            conversation_id=conversation.id,
            now=now,
        )
        queued += 1
    session.flush()
    return queued


# --- sending --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    id: int
    to: str
    subject: str
    body: str
    attempts: int


def claim_due(
    session: Session, *, now: datetime | None = None, limit: int = BATCH
) -> list[Outgoing]:
    """Due e-mails, claimed: their next attempt moves ``CLAIM_S`` out and the try is counted."""
    now = now or utcnow()
    rows = session.scalars(
        select(OutboxEmail)
        .where(OutboxEmail.status == "pending", OutboxEmail.next_attempt_at <= now)
        .order_by(OutboxEmail.next_attempt_at, OutboxEmail.id)
        .limit(limit)
    ).all()
    claimed = []
    for row in rows:
        row.attempts += 1
        row.next_attempt_at = now + timedelta(seconds=CLAIM_S)
        claimed.append(Outgoing(row.id, row.to_address, row.subject, row.body, row.attempts))
    session.flush()
    return claimed


def backoff_s(attempts: int) -> float:
    """Wait before try ``attempts + 1``: 30 s, 60 s, 120 s ... at most an hour."""
    return float(min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1)))


def record_result(
    session: Session,
    settings: Settings,
    email_id: int,
    error: str | None,
    *,
    now: datetime | None = None,
) -> None:
    """Sent, or failed this time: retried after a backoff, or given up after the last try."""
    now = now or utcnow()
    row = session.get(OutboxEmail, email_id)
    if row is None:
        return
    if error is None:
        row.status = "sent"
        row.sent_at = now
        row.last_error = None
    else:
        row.last_error = error[:2000]
        if row.attempts >= settings.email_retry_max_attempts:
            row.status = "failed"
        else:
            row.next_attempt_at = now + timedelta(seconds=backoff_s(row.attempts))
    session.flush()


def build_message(settings: Settings, item: Outgoing) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = item.to
    message["Subject"] = item.subject
    message["Date"] = formatdate(localtime=False)
    domain = parseaddr(settings.smtp_from)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(item.body)
    return message


def send_now(settings: Settings, item: Outgoing) -> None:
    """One SMTP delivery (blocking: call it on a worker thread). Raises on failure."""
    assert settings.smtp_url is not None
    target = parse_smtp_url(settings.smtp_url.get_secret_value())
    timeout = settings.smtp_timeout_s
    client: smtplib.SMTP
    if target.tls:
        client = smtplib.SMTP_SSL(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(target.host, target.port, timeout=timeout)
    with client:
        client.ehlo()
        if not target.tls and client.has_extn("starttls"):
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        if target.username:
            client.login(target.username, target.password or "")
        client.send_message(build_message(settings, item))


# --- the job --------------------------------------------------------------------------------


async def outbox_round(
    database: DatabaseWorkers, settings: Settings, present: Callable[[], list[str]]
) -> int:
    """One pass: heartbeat, queue, send. Returns how many e-mails were sent."""
    here = present()
    if not email_enabled(settings):
        if here:
            await database.run(lambda s: mark_seen(s, here))
        return 0

    def queue_and_claim(session: Session) -> list[Outgoing]:
        # The heartbeat and the queue in one transaction, and the conversations open here
        # passed over: an agent reply committed between a heartbeat and a queue step of their
        # own would otherwise look unseen to a customer who has the chat open right now.
        mark_seen(session, here)
        if not try_job_lock(session, "email-outbox"):
            return []
        queue_agent_replies(session, settings, present=here)
        return claim_due(session)

    sent = 0
    for item in await database.run(queue_and_claim):
        try:
            await asyncio.to_thread(send_now, settings, item)
            error = None
            sent += 1
        except Exception as exc:  # any failure is retried; the reason is kept on the row
            error = f"{exc.__class__.__name__}: {exc}"
            log.warning(
                "e-mail %s to the customer failed (try %s): %s", item.id, item.attempts, error
            )
        await database.run(_recorder(settings, item.id, error))
    return sent


def _recorder(settings: Settings, email_id: int, error: str | None) -> Callable[[Session], None]:
    return lambda session: record_result(session, settings, email_id, error)


async def run_outbox_job(
    database: DatabaseWorkers, settings: Settings, present: Callable[[], list[str]]
) -> None:
    """Forever, every ``email_poll_interval_s``: :func:`outbox_round`. A failed round is
    logged and the next one tries again."""
    while True:
        try:
            await outbox_round(database, settings, present)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the e-mail outbox round failed")
        await asyncio.sleep(settings.email_poll_interval_s)
