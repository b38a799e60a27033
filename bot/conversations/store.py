"""The conversation store: conversations, their numbered messages, and their event history.

Plain functions over a SQLAlchemy ``Session``; the caller owns the transaction, and a write is
committed before anything is acknowledged to a client. Message numbers (``seq``) are allocated
by one atomic ``UPDATE ... RETURNING`` on the conversation row, so concurrent writers (a
customer socket, an agent, the bot) can never hand out the same number, on SQLite or PostgreSQL.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, exists, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from bot.core.clock import aware, utcnow
from bot.core.leases import owner_alive
from bot.core.models import (
    Conversation,
    ConversationEvent,
    CsatRating,
    Feedback,
    Message,
    new_id,
)

# --- the statements of every chat turn, built once -----------------------------------------
#
# On the tables, not the ORM classes, with bound parameters: a turn runs a dozen of these, and
# building ORM statements and running them through the ORM's execution layer cost about four
# times what the statement itself did (bench/chat_latency.py; docs/performance.md). Nothing here
# loads or changes an object of the session, so nothing in memory goes stale.
_conversations = cast(Table, Conversation.__table__)
_messages = cast(Table, Message.__table__)

_NEXT_SEQ = (
    update(_conversations)
    .where(_conversations.c.id == bindparam("cid"))
    .values(last_seq=_conversations.c.last_seq + 1, updated_at=bindparam("at"))
    .returning(_conversations.c.last_seq)
)
_NEXT_CUSTOMER_SEQ = _NEXT_SEQ.values(last_customer_at=bindparam("at"))
_MESSAGE_ID_BY_CLIENT_ID = select(_messages.c.id).where(
    _messages.c.conversation_id == bindparam("cid"),
    _messages.c.client_msg_id == bindparam("client_id"),
)
_LOCK_ROW_SQLITE = (  # a no-op write: SQLite's write lock, taken before anything is read
    update(_conversations)
    .where(_conversations.c.id == bindparam("cid"))
    .values(state=_conversations.c.state)
)
_LOCK_ROW = (
    select(_conversations.c.id).where(_conversations.c.id == bindparam("cid")).with_for_update()
)
_SETTLE = (
    update(_messages)
    .where(
        _messages.c.conversation_id == bindparam("cid"),
        _messages.c.seq == bindparam("at_seq"),
        _messages.c.answer_owner == bindparam("owner_id"),
    )
    .values(answer_owner=None)
)
_OWED = (
    select(_messages.c.answer_owner, _conversations.c.state, _conversations.c.locale)
    .join(_conversations, _conversations.c.id == _messages.c.conversation_id)
    .where(
        _messages.c.conversation_id == bindparam("cid"),
        _messages.c.seq == bindparam("at_seq"),
    )
)
_STATE = select(_conversations.c.state).where(_conversations.c.id == bindparam("cid"))
_LOCALE = select(_conversations.c.locale).where(_conversations.c.id == bindparam("cid"))

_INSERT_CONVERSATION = insert(_conversations)
_INSERT_MESSAGE = insert(_messages).returning(_messages.c.id)
_INSERT_EVENT = insert(cast(Table, ConversationEvent.__table__))
_MARK_OWED = (
    update(_messages)
    .where(_messages.c.conversation_id == bindparam("cid"), _messages.c.seq == bindparam("at_seq"))
    .values(answer_owner=bindparam("owner_id"))
)

_LOCKED_KEY = "supportbot.locked_conversations"


def note_locked(session: Session, conversation_id: str) -> None:
    """This transaction holds ``conversation_id``'s write lock (it wrote the conversation row,
    or locked it): :func:`holds_lock` lets a later step skip a lock statement of its own."""
    transaction = session.get_transaction()
    held = session.info.get(_LOCKED_KEY)
    if held is None or held[0] is not transaction:
        held = session.info[_LOCKED_KEY] = (transaction, set[str]())
    held[1].add(conversation_id)


def holds_lock(session: Session, conversation_id: str) -> bool:
    """True when the session's current transaction already holds the conversation's lock: on
    PostgreSQL its row was updated or locked, on SQLite anything was written (the database
    write lock, held to the commit). Tied to the transaction: a commit ends it."""
    held = session.info.get(_LOCKED_KEY)
    return held is not None and held[0] is session.get_transaction() and conversation_id in held[1]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_conversation(
    session: Session,
    *,
    visitor: dict[str, Any] | None = None,
    origin: str | None = None,
    now: datetime | None = None,
    before_insert: Callable[[Conversation], None] | None = None,
) -> tuple[Conversation, str]:
    """A new conversation in state ``bot``, and its resume token (only its hash is stored).

    ``before_insert`` fills in more of the new row (who the customer is, their language)
    before it is first written, so the row is inserted whole instead of inserted and then
    updated (a statement less per ``hello``). Written with one INSERT on the table, like
    :func:`append_message`: the returned ``Conversation`` is a record of what was stored, not
    attached to the session (load it to change it)."""
    token = secrets.token_urlsafe(32)
    now = now or utcnow()
    conversation = Conversation(
        id=new_id(),
        resume_token_hash=hash_token(token),
        state="bot",
        visitor=visitor,
        origin=origin,
        created_at=now,
        updated_at=now,
    )
    if before_insert is not None:
        before_insert(conversation)
    # Columns left unset take their defaults from the table.
    values = {column.key: getattr(conversation, column.key) for column in _conversations.columns}
    session.execute(_INSERT_CONVERSATION, {k: v for k, v in values.items() if v is not None})
    record_event(session, conversation.id, "created", {"origin": origin}, now=now)
    return conversation, token


def get_conversation(session: Session, conversation_id: str) -> Conversation | None:
    return session.get(Conversation, conversation_id)


def verify_resume(
    session: Session,
    conversation_id: str,
    resume_token: str,
    *,
    max_age: timedelta,
    now: datetime | None = None,
) -> Conversation | None:
    """The conversation if ``resume_token`` is its token and it was active within ``max_age``.

    Comparison is constant-time; a wrong token and an unknown id are indistinguishable.
    """
    conversation = session.get(Conversation, conversation_id)
    candidate = hash_token(resume_token)
    if conversation is None or not hmac.compare_digest(conversation.resume_token_hash, candidate):
        return None
    last_active = aware(conversation.updated_at)
    if (now or utcnow()) - last_active > max_age:
        return None
    return conversation


def find_by_client_msg_id(
    session: Session, conversation_id: str, client_msg_id: str
) -> Message | None:
    """The message stored with ``client_msg_id``, if any. Asked for every customer message and
    nearly always absent, so the check reads an id (no ORM entity: loading one per message
    showed in the service's profile) and loads the message only when there is one."""
    found = session.scalar(
        _MESSAGE_ID_BY_CLIENT_ID,
        {"cid": conversation_id, "client_id": client_msg_id},
    )
    return None if found is None else session.get(Message, found)


def next_seq(
    session: Session,
    conversation_id: str,
    now: datetime | None = None,
    *,
    from_customer: bool = False,
) -> int:
    """Atomically reserve the conversation's next message number (``from_customer``: and note
    the customer's last message time, in the same statement).

    The in-memory ``Conversation`` of the session, if loaded, is not updated (no ORM
    synchronisation: evaluating it per message showed in the service's CPU profile); nothing
    reads ``last_seq`` back from it after allocating a number.
    """
    statement = _NEXT_CUSTOMER_SEQ if from_customer else _NEXT_SEQ
    seq = session.execute(statement, {"cid": conversation_id, "at": now or utcnow()}).scalar_one()
    note_locked(session, conversation_id)  # the UPDATE holds the row (and, on SQLite, the file)
    return int(seq)


def append_message(
    session: Session,
    conversation_id: str,
    *,
    role: str,
    text: str,
    client_msg_id: str | None = None,
    reply_to: int | None = None,
    author: str | None = None,
    sources: Sequence[dict[str, Any]] | None = None,
    confidence: float | None = None,
    escalate: bool | None = None,
    suggestions: Sequence[dict[str, Any]] | None = None,
    answer_owner: str | None = None,
    now: datetime | None = None,
) -> tuple[Message, bool]:
    """Store a message; returns ``(message, created)``.

    With a ``client_msg_id`` the write is idempotent: a resend returns the stored message and
    ``created=False``, so the caller acks the same ``seq`` and does not answer twice.

    A new message is written with one INSERT on the table, not through the session's unit of
    work (a flush per message cost more than the INSERT itself): the returned ``Message`` is a
    record of what was stored, with its id, and is not attached to the session. Change a stored
    message with a statement (:func:`mark_answer_owed`), not by setting its attributes.
    """
    if client_msg_id is not None:
        existing = find_by_client_msg_id(session, conversation_id, client_msg_id)
        if existing is not None:
            return existing, False
    now = now or utcnow()
    message = Message(
        conversation_id=conversation_id,
        seq=next_seq(session, conversation_id, now, from_customer=role == "customer"),
        role=role,
        text=text,
        client_msg_id=client_msg_id,
        reply_to=reply_to,
        author=author,
        sources=list(sources) if sources is not None else None,
        confidence=confidence,
        escalate=escalate,
        suggestions=list(suggestions) if suggestions is not None else None,
        answer_owner=answer_owner,
        created_at=now,
    )
    values = {column.key: getattr(message, column.key) for column in _messages.columns}
    del values["id"]
    message.id = session.execute(_INSERT_MESSAGE, values).scalar_one()
    return message, True


# --- answers the bot owes ----------------------------------------------------------------------
#
# A customer message the bot must answer carries ``answer_owner``: the id of the service process
# computing its answer, set in the transaction that stores the question. The answer is stored
# only by the transaction that clears the mark (``settle_answer``), so however many tasks try,
# one answer is stored per question. A process that stops mid-answer leaves the mark behind; the
# next process takes it over (``take_over_answer``/``take_over_unanswered``), on a resend, on a
# resume or at start-up, and answers it then.


def lock_conversation_row(session: Session, conversation_id: str) -> None:
    """Hold the conversation's write lock until the caller commits, so what is read next is not
    changed by another writer before this transaction's own writes (the same lock the state
    machine takes to decide)."""
    if holds_lock(session, conversation_id):
        return
    # SQLite has no row locks: an UPDATE takes the database's write lock before anything is read.
    sqlite = session.get_bind().dialect.name == "sqlite"
    session.execute(_LOCK_ROW_SQLITE if sqlite else _LOCK_ROW, {"cid": conversation_id})
    note_locked(session, conversation_id)


@functools.cache
def _owed(question: type[Message]) -> ColumnElement[bool]:
    """SQL: customer message ``question`` still waits for a bot answer in a conversation the bot
    holds. Marked questions wait until answered; an unmarked one (stored before the mark
    existed) waits while no bot answer, agent reply or system notice came after it. Built once:
    the expression is immutable, and building it showed in the service's CPU profile."""
    bot_reply = aliased(Message)
    later = aliased(Message)
    answered = exists().where(
        bot_reply.conversation_id == question.conversation_id,
        bot_reply.role == "bot",
        bot_reply.reply_to == question.seq,
    )
    overtaken = exists().where(
        later.conversation_id == question.conversation_id,
        later.seq > question.seq,
        later.role.in_(("agent", "system")),
    )
    in_bot_hands = exists().where(
        Conversation.id == question.conversation_id, Conversation.state == "bot"
    )
    return (
        (question.role == "customer")
        & in_bot_hands
        & ~answered
        & or_(question.answer_owner.is_not(None), ~overtaken)
    )


def is_unanswered(session: Session, conversation_id: str, seq: int) -> bool:
    """True when customer message ``seq`` still waits for its bot answer: the process that
    owed it stopped first, or the answer is being computed now."""
    found = session.scalar(
        select(Message.id).where(
            Message.conversation_id == conversation_id, Message.seq == seq, _owed(Message)
        )
    )
    return found is not None


def conversation_state(session: Session, conversation_id: str) -> str | None:
    """The conversation's state (``None``: no such conversation), read as a value: the state
    machine loads the ORM object only for a step that changes it. A statement on the table
    does not autoflush, so changes still pending in the session are written first (nothing,
    in a chat turn: the flush is then a check of an empty session)."""
    session.flush()
    return session.scalar(_STATE, {"cid": conversation_id})


def conversation_locale(session: Session, conversation_id: str) -> str | None:
    return session.scalar(_LOCALE, {"cid": conversation_id})


def owed_question(
    session: Session, conversation_id: str, seq: int, owner: str
) -> tuple[bool, str | None]:
    """Whether question ``seq`` still waits for ``owner``'s answer, and the conversation's
    locale: what an answer reads before it starts, in one statement.

    For a question marked for ``owner`` this is what :func:`is_unanswered` decides, read from
    one row: the mark is still ``owner``'s (a take-over moves it; the transaction that stores
    the answer clears it, :func:`settle_answer`) and the bot still holds the conversation."""
    row = session.execute(_OWED, {"cid": conversation_id, "at_seq": seq}).first()
    if row is None:
        return False, None
    return row.answer_owner == owner and row.state == "bot", row.locale


def mark_answer_owed(session: Session, message: Message, owner: str | None) -> None:
    """In the transaction that stores ``message``: the bot owes it an answer, computed by the
    process ``owner`` (``None``: it owes none after all)."""
    session.execute(
        _MARK_OWED, {"cid": message.conversation_id, "at_seq": message.seq, "owner_id": owner}
    )
    message.answer_owner = owner


def take_over_answer(session: Session, conversation_id: str, seq: int, owner: str) -> bool:
    """Claim the answer to question ``seq`` for the process ``owner`` when it is still owed and
    no task of ``owner`` is on it; True when the caller must now answer it.

    Decided under the conversation's lock, so of any number of resends, resumes and start-up
    jobs racing for one question exactly one wins, and none wins once the answer is stored.
    """
    lock_conversation_row(session, conversation_id)
    if not is_unanswered(session, conversation_id, seq):
        return False
    current = session.scalar(
        select(Message.answer_owner).where(
            Message.conversation_id == conversation_id, Message.seq == seq
        )
    )
    if current is not None and current != owner and owner_alive(session, current):
        return False  # another running process is answering it now (bot.core.leases)
    claimed = session.execute(
        update(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.seq == seq,
            or_(Message.answer_owner.is_(None), Message.answer_owner != owner),
        )
        .values(answer_owner=owner)
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


def take_over_unanswered(
    session: Session,
    owner: str,
    *,
    conversation_id: str | None = None,
    active_since: datetime | None = None,
) -> list[Message]:
    """Every question still owed an answer (of one conversation, or of every conversation
    active since ``active_since``) that no task of ``owner`` is on, now claimed for ``owner``,
    oldest first: what a resume or the start-up job answers."""
    query = select(Message).where(
        _owed(Message),
        or_(Message.answer_owner.is_(None), Message.answer_owner != owner),
    )
    if conversation_id is not None:
        query = query.where(Message.conversation_id == conversation_id)
    if active_since is not None:
        recent = select(Conversation.id).where(Conversation.updated_at >= active_since)
        query = query.where(Message.conversation_id.in_(recent))
    candidates = list(session.scalars(query.order_by(Message.conversation_id, Message.seq)))
    return [m for m in candidates if take_over_answer(session, m.conversation_id, m.seq, owner)]


def settle_answer(session: Session, conversation_id: str, seq: int, owner: str) -> bool:
    """Clear the mark of question ``seq`` before its answer is stored in the same transaction;
    False (store nothing) when ``owner`` no longer holds it: another task answered it.

    On SQLite this UPDATE is itself what takes the database's write lock, held to the commit,
    and nothing is read before it: a lock statement of its own first would only cost a round
    trip (the answer's transaction then locks the conversation to decide, as before). Elsewhere
    the conversation row is locked first, so every writer takes the conversation before its
    messages."""
    if session.get_bind().dialect.name != "sqlite":
        lock_conversation_row(session, conversation_id)
    settled = session.execute(_SETTLE, {"cid": conversation_id, "at_seq": seq, "owner_id": owner})
    note_locked(session, conversation_id)  # on SQLite the UPDATE took the write lock
    return bool(settled.rowcount)  # type: ignore[attr-defined]


def release_unowed_answers(session: Session) -> int:
    """Clear the marks of questions whose conversation a person holds or has ended: the bot no
    longer owes them an answer (run at start-up, before any task of the new process exists)."""
    in_bot_hands = select(Conversation.id).where(Conversation.state == "bot")
    released = session.execute(
        update(Message)
        .where(Message.answer_owner.is_not(None), Message.conversation_id.not_in(in_bot_hands))
        .values(answer_owner=None)
    )
    return int(released.rowcount)  # type: ignore[attr-defined]


def messages_after(session: Session, conversation_id: str, last_seq: int = 0) -> list[Message]:
    """Every message after ``last_seq``, in order: what a resuming client missed."""
    return list(
        session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation_id, Message.seq > last_seq)
            .order_by(Message.seq)
        )
    )


def record_event(
    session: Session,
    conversation_id: str,
    kind: str,
    data: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> None:
    """Append to the conversation's history (state changes, handoff requests, feedback...): one
    INSERT on the table, like :func:`append_message`."""
    session.execute(
        _INSERT_EVENT,
        {
            "conversation_id": conversation_id,
            "kind": kind,
            "data": data,
            "created_at": now or utcnow(),
        },
    )


def events_of(session: Session, conversation_id: str) -> list[ConversationEvent]:
    return list(
        session.scalars(
            select(ConversationEvent)
            .where(ConversationEvent.conversation_id == conversation_id)
            .order_by(ConversationEvent.id)
        )
    )


def message_by_seq(session: Session, conversation_id: str, seq: int) -> Message | None:
    return session.scalar(
        select(Message).where(Message.conversation_id == conversation_id, Message.seq == seq)
    )


def recent_messages(
    session: Session, conversation_id: str, *, before_seq: int, limit: int
) -> list[Message]:
    """The ``limit`` messages just before ``before_seq``, oldest first: the answerer's context."""
    if limit <= 0 or before_seq <= 1:
        return []  # nothing comes before a conversation's first message
    rows = session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.seq < before_seq)
        .order_by(Message.seq.desc())
        .limit(limit)
    )
    return list(reversed(list(rows)))


def record_feedback(
    session: Session,
    conversation_id: str,
    seq: int,
    helpful: bool,
    *,
    now: datetime | None = None,
) -> Feedback | None:
    """Store "was this helpful?" for bot message ``seq``; a second vote replaces the first.

    Returns ``None`` when ``seq`` is not a bot message of this conversation (nothing stored).
    """
    target = message_by_seq(session, conversation_id, seq)
    if target is None or target.role != "bot":
        return None
    now = now or utcnow()
    feedback = session.scalar(
        select(Feedback).where(
            Feedback.conversation_id == conversation_id, Feedback.message_seq == seq
        )
    )
    if feedback is None:
        feedback = Feedback(
            conversation_id=conversation_id, message_seq=seq, helpful=helpful, created_at=now
        )
        session.add(feedback)
    else:
        feedback.helpful = helpful
        feedback.created_at = now
    session.flush()
    record_event(session, conversation_id, "feedback", {"seq": seq, "helpful": helpful}, now=now)
    return feedback


def record_csat(
    session: Session,
    conversation_id: str,
    score: int,
    comment: str | None = None,
    *,
    ces: int | None = None,
    now: datetime | None = None,
) -> CsatRating:
    """Store a 1-5 satisfaction score and, optionally, a 1-7 effort score (CES).

    Every rating is kept; reports use the latest score and the latest effort answer. The survey
    sends the score first and the score again with the effort answer, so a customer who leaves
    after the first question still counts for CSAT.
    """
    if not 1 <= score <= 5:
        raise ValueError("CSAT score must be 1-5")
    if ces is not None and not 1 <= ces <= 7:
        raise ValueError("CES score must be 1-7")
    now = now or utcnow()
    rating = CsatRating(
        conversation_id=conversation_id, score=score, comment=comment, ces=ces, created_at=now
    )
    session.add(rating)
    session.flush()
    data: dict[str, Any] = {"score": score} if ces is None else {"score": score, "ces": ces}
    record_event(session, conversation_id, "csat", data, now=now)
    return rating
