"""Content gaps: what customers asked that the knowledge base could not answer, grouped by meaning.

A lead cannot read hundreds of failed questions one by one; grouped, "twelve people asked whether
we ship to the Canary Islands" is one article to write. Three steps, kept apart so each can be
tested on its own:

1. :func:`gap_questions` (database): the customer questions of a period that ended in a
   ``no_knowledge`` or ``low_confidence`` escalation, or whose bot answer got a "not helpful"
   vote. Membership follows the report's rule (:mod:`bot.reports.figures`): a conversation
   belongs to the period by its start.
2. :func:`group_questions` (pure): agglomerative clustering of their sentence vectors, average
   linkage on cosine distance with a fixed threshold, so the number of groups is not fixed in
   advance (nobody knows how many gaps there are). Average linkage keeps the grouping about as
   fine whether a topic has five questions or fifty (complete or Ward linkage split big topics
   into many groups); the threshold trades a few extra small groups for groups that do not mix
   topics (a mixed group would draft a confusing article). ``bench/gaps.py`` measures it.
3. :func:`content_gaps`: each group, largest first, named by its most central question, with
   example questions, the replies agents gave in those conversations, and a link that opens the
   admin editor with a drafted FAQ article (:func:`draft_link`).
"""

from __future__ import annotations

import base64
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.clock import aware
from bot.core.models import Conversation, ConversationEvent, Feedback, Message
from bot.reports.figures import Period

GAP_REASONS = ("no_knowledge", "low_confidence")
"""Escalation reasons that mean "the knowledge base had no good answer" (not a customer's wish
for a person, a sensitive topic or frustration, which no article would have prevented)."""
NOT_HELPFUL = "not_helpful"
AGENT_ANSWERED = "agent_answered"
"""An escalation for another reason (the customer asked for a person, ...) that an agent resolved
with replies and without attaching an article: an answer the knowledge base does not hold."""
DISTANCE_THRESHOLD = 0.5
"""Average cosine distance (1 - similarity) below which two groups merge. Chosen on
paraphrase sets of BANKING77 (validation split): see bench/gaps.py for the figures."""
MAX_QUESTIONS = 2000
"""The most recent gap questions grouped at most (the clustering is quadratic in memory)."""
EXAMPLES = 8
REPLIES = 5
DRAFT_QUESTIONS = 12
DRAFT_TEXT_CHARS = 600
DRAFT_PAGE = "/admin"

Encode = Callable[[list[str]], list[list[float]]]
"""``embedder.encode``: texts -> L2-normalised vectors (MiniLM in the service)."""


# --- 2. grouping (pure) -----------------------------------------------------------------------


@dataclass(frozen=True)
class QuestionGroup:
    """Indices into the clustered questions, the most central one first (it names the group)."""

    members: tuple[int, ...]

    @property
    def central(self) -> int:
        return self.members[0]

    def __len__(self) -> int:
        return len(self.members)


def group_questions(
    questions: Sequence[str],
    vectors: Sequence[Sequence[float]],
    *,
    distance_threshold: float = DISTANCE_THRESHOLD,
) -> list[QuestionGroup]:
    """Group ``questions`` (with their sentence ``vectors``, same order) by meaning.

    Groups come largest first (ties: the group whose first question came first); inside a group
    the members are ordered by centrality, the mean cosine similarity to the other members, so
    the first one is the question most like the rest and names the group.
    """
    if len(questions) != len(vectors):
        raise ValueError(f"{len(questions)} questions but {len(vectors)} vectors")
    if not questions:
        return []
    matrix = _unit_rows(np.asarray(vectors, dtype=np.float64))
    if len(questions) == 1:
        labels = np.zeros(1, dtype=int)
    else:
        from sklearn.cluster import AgglomerativeClustering  # imported on use: sklearn is slow

        labels = AgglomerativeClustering(
            n_clusters=None,
            metric="cosine",
            linkage="average",
            distance_threshold=distance_threshold,
        ).fit_predict(matrix)
    members: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        members[int(label)].append(index)
    groups = [QuestionGroup(_by_centrality(matrix, indices)) for indices in members.values()]
    groups.sort(key=lambda group: (-len(group), min(group.members)))
    return groups


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (the embedder's already are; a zero row stays zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    result: np.ndarray = matrix / np.where(norms == 0, 1.0, norms)
    return result


def _by_centrality(matrix: np.ndarray, indices: list[int]) -> tuple[int, ...]:
    if len(indices) <= 2:
        return tuple(indices)
    block = matrix[indices]
    similarity = (block @ block.T).sum(axis=1) - 1.0  # minus each one's similarity to itself
    order = sorted(range(len(indices)), key=lambda k: (-similarity[k], indices[k]))
    return tuple(indices[k] for k in order)


# --- 1. the questions (database) --------------------------------------------------------------


@dataclass
class GapQuestion:
    """One customer question the knowledge base failed, and why we think so."""

    conversation_id: str
    seq: int
    text: str
    asked_at: datetime
    why: list[str] = field(default_factory=list)  # GAP_REASONS and/or NOT_HELPFUL


def gap_questions(session: Session, period: Period) -> list[GapQuestion]:
    """The failed questions of the conversations that started in ``period``, oldest first.

    A question counts once even when its answer was both escalated and voted down.
    """
    ids = select(Conversation.id).where(
        Conversation.created_at >= period.start, Conversation.created_at < period.end
    )
    failed: dict[tuple[str, int], GapQuestion] = {}
    messages: dict[str, list[Message]] = defaultdict(list)

    def conversation(conversation_id: str) -> list[Message]:
        if conversation_id not in messages:
            messages[conversation_id] = list(
                session.scalars(
                    select(Message)
                    .where(Message.conversation_id == conversation_id)
                    .order_by(Message.seq)
                )
            )
        return messages[conversation_id]

    def note(conversation_id: str, question: Message | None, why: str) -> None:
        if question is None:
            return
        key = (conversation_id, question.seq)
        entry = failed.setdefault(
            key,
            GapQuestion(conversation_id, question.seq, question.text, aware(question.created_at)),
        )
        if why not in entry.why:
            entry.why.append(why)

    for event in session.scalars(
        select(ConversationEvent)
        .where(ConversationEvent.conversation_id.in_(ids), ConversationEvent.kind == "escalated")
        .order_by(ConversationEvent.id)
    ):
        reason = (event.data or {}).get("reason")
        if reason in GAP_REASONS:
            history = conversation(event.conversation_id)
            note(event.conversation_id, _question_before(history, event.created_at), str(reason))
    for vote in session.scalars(
        select(Feedback)
        .where(Feedback.conversation_id.in_(ids), Feedback.helpful.is_(False))
        .order_by(Feedback.id)
    ):
        history = conversation(vote.conversation_id)
        answer = next((m for m in history if m.seq == vote.message_seq), None)
        note(vote.conversation_id, _question_of(history, answer), NOT_HELPFUL)
    # Resolved by a person who attached no article but replied: the reply is the missing article.
    for event in session.scalars(
        select(ConversationEvent)
        .where(ConversationEvent.conversation_id.in_(ids), ConversationEvent.kind == "state")
        .order_by(ConversationEvent.id)
    ):
        data = event.data or {}
        if data.get("to") != "resolved" or data.get("reason") != "resolved":
            continue
        history = conversation(event.conversation_id)
        if any(m.role == "agent" for m in history):
            note(event.conversation_id, _question_before(history, event.created_at), AGENT_ANSWERED)
    # An agent named the article that answers it: a question retrieval missed, not a content gap
    # (it becomes a learned question of that article instead, bot.knowledge.learned).
    covered = set(
        session.scalars(
            select(ConversationEvent.conversation_id).where(
                ConversationEvent.conversation_id.in_(ids),
                ConversationEvent.kind == "answered_by_article",
            )
        )
    )
    return sorted(
        (q for q in failed.values() if q.conversation_id not in covered),
        key=lambda q: (q.asked_at, q.conversation_id, q.seq),
    )


def _question_of(history: Sequence[Message], answer: Message | None) -> Message | None:
    """The customer message a bot answer replied to (else the last one before it)."""
    if answer is None:
        return None
    if answer.reply_to is not None:
        asked = next((m for m in history if m.seq == answer.reply_to), None)
        if asked is not None and asked.role == "customer":
            return asked
    return next((m for m in reversed(history) if m.role == "customer" and m.seq < answer.seq), None)


def _question_before(history: Sequence[Message], moment: datetime) -> Message | None:
    """The question behind an escalation at ``moment``: the one the last bot answer before it
    replied to, or the last customer message before it."""
    moment = aware(moment)
    before = [m for m in history if aware(m.created_at) <= moment]
    answer = next((m for m in reversed(before) if m.role == "bot"), None)
    asked = _question_of(history, answer) if answer is not None else None
    return asked or next((m for m in reversed(before) if m.role == "customer"), None)


def agent_replies(session: Session, conversation_ids: Iterable[str]) -> dict[str, list[str]]:
    """What agents wrote in each conversation, in order (the answers an article should give)."""
    ids = list(dict.fromkeys(conversation_ids))
    replies: dict[str, list[str]] = defaultdict(list)
    if not ids:
        return replies
    for message in session.scalars(
        select(Message)
        .where(Message.conversation_id.in_(ids), Message.role == "agent")
        .order_by(Message.conversation_id, Message.seq)
    ):
        replies[message.conversation_id].append(message.text)
    return replies


# --- 3. the report ----------------------------------------------------------------------------


class Draft(BaseModel):
    """What the admin editor is pre-filled with (see :func:`draft_link`). ``questions``: the
    group's customer questions, attached to the article as learned questions when it is
    published (``POST /api/admin/learned``), so it answers them from the first day."""

    title: str
    body: str
    questions: list[str] = Field(default_factory=list)


class GapGroup(BaseModel):
    title: str = Field(description="The group's most central question.")
    count: int = Field(description="Failed questions in the group.")
    conversations: int
    reasons: dict[str, int] = Field(
        description="How the questions failed: no_knowledge, low_confidence, not_helpful, "
        "agent_answered."
    )
    questions: list[str] = Field(description="Distinct examples, most central first.")
    replies: list[str] = Field(description="Agent replies in those conversations, longest first.")
    first_asked: datetime
    last_asked: datetime
    draft: Draft
    draft_url: str = Field(description="Opens the admin editor pre-filled with the draft.")


class ContentGaps(BaseModel):
    """``GET /api/reports/gaps``: the period's failed questions, grouped."""

    since: date
    until: date
    tz: str
    questions: int = Field(description="Failed questions in the period (grouped at most 2000).")
    groups: list[GapGroup]


def content_gaps(
    session: Session,
    period: Period,
    encode: Encode,
    *,
    distance_threshold: float = DISTANCE_THRESHOLD,
) -> ContentGaps:
    """The period's content gaps, largest group first (``encode``: the service's embedder)."""
    found = gap_questions(session, period)
    recent = found[-MAX_QUESTIONS:]
    texts = [q.text for q in recent]
    vectors = encode(texts) if texts else []
    groups = group_questions(texts, vectors, distance_threshold=distance_threshold)
    replies = agent_replies(session, (q.conversation_id for q in recent))
    return ContentGaps(
        since=period.since,
        until=period.until,
        tz=period.tz.key,
        questions=len(found),
        groups=[_gap_group([recent[i] for i in group.members], replies) for group in groups],
    )


def _gap_group(members: Sequence[GapQuestion], replies: dict[str, list[str]]) -> GapGroup:
    questions = _distinct(q.text for q in members)
    conversations = list(dict.fromkeys(q.conversation_id for q in members))
    answers = sorted(
        _distinct(text for cid in conversations for text in replies.get(cid, [])),
        key=lambda text: -len(text),
    )
    reasons = Counter(why for q in members for why in q.why)
    draft = draft_article(questions, answers)
    times = [q.asked_at for q in members]
    return GapGroup(
        title=questions[0],
        count=len(members),
        conversations=len(conversations),
        reasons=dict(sorted(reasons.items())),
        questions=questions[:EXAMPLES],
        replies=answers[:REPLIES],
        first_asked=min(times),
        last_asked=max(times),
        draft=draft,
        draft_url=draft_link(draft),
    )


def _distinct(texts: Iterable[str]) -> list[str]:
    """Texts in order, each once (case and surrounding spaces ignored)."""
    seen: dict[str, str] = {}
    for text in texts:
        seen.setdefault(" ".join(text.split()).casefold(), text.strip())
    return list(seen.values())


def _clip(text: str, limit: int = DRAFT_TEXT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def draft_title(question: str) -> str:
    """A title from a customer's question: tidy spacing, a capital first letter."""
    title = _clip(question, 120)
    return title[:1].upper() + title[1:]


def draft_article(questions: Sequence[str], replies: Sequence[str]) -> Draft:
    """An FAQ draft: the questions customers asked, then how agents answered them.

    Only raw material for a person to edit: customers' and agents' words are quoted as they
    were, in Markdown lists (clipped), never as headings or HTML.
    """
    lines = [
        f"_Drafted from {len(questions)} customer questions the bot could not answer: write "
        "the answer, remove what does not belong, then save._",
        "",
        "## Questions customers asked",
        "",
        *(f"- {_clip(q)}" for q in questions[:DRAFT_QUESTIONS]),
        "",
        "## How our agents answered",
        "",
    ]
    if replies:
        lines += [f"- {_clip(r)}" for r in replies[:REPLIES]]
    else:
        lines.append("- (no agent reply yet)")
    title = draft_title(questions[0]) if questions else "New article"
    learned = [_clip(q, 300) for q in questions[:DRAFT_QUESTIONS]]
    return Draft(title=title, body="\n".join(lines) + "\n", questions=learned)


def draft_link(draft: Draft, page: str = DRAFT_PAGE) -> str:
    """``/admin#draft=<payload>``: the admin page opens its editor pre-filled with ``draft``.

    ``payload`` is the UTF-8 JSON object ``{"title": ..., "body": ..., "questions": [...]}`` in
    base64url without padding (RFC 4648, section 5). It travels in the fragment, so it never
    reaches a server log, and nothing is saved until an admin presses Save.
    """
    raw = json.dumps(draft.model_dump(), ensure_ascii=False, separators=(",", ":"))
    payload = base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")
    return f"{page}#draft={payload}"


def read_draft_link(link: str) -> Draft:
    """The draft a :func:`draft_link` carries (the inverse; tests and other tools use it)."""
    payload = link.partition("#draft=")[2]
    padded = payload + "=" * (-len(payload) % 4)
    return Draft.model_validate_json(base64.urlsafe_b64decode(padded.encode("ascii")))
