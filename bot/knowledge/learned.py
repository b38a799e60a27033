"""Learned questions: the bot learns from its team which article answers which customer question.

Articles are written in the company's words; customers ask in theirs ("my card got eaten by the
machine" for "Card swallowed by an ATM"). Every time a question is shown to be answered by an
article, the question itself is the best evidence we will ever get for that article. So:

- **Candidates.** A customer question becomes a candidate learned question of an article when the
  customer marks the bot's answer from that article helpful (:func:`propose` from
  ``bot.handoff.machine.on_feedback``), or when an agent resolves the escalated conversation and
  attaches the article that answers it (``resolve`` with ``article_id``). Personal data (e-mail
  addresses, phone, card and order numbers) is masked before anything is stored.
- **Approval.** Candidates wait for an admin (approve, re-assign to another article, reject; the
  admin API under ``/api/admin/learned``). ``learned_auto_approve`` approves a helpful-vote
  candidate once that many *different conversations* confirmed it. Every decision is a row of
  ``learned_question_audit`` (who, what, when), like ``article_versions`` for articles.
- **Learned once.** A question is keyed by its normalised text per article: a second proposal
  confirms the first, a rejected or removed one is never proposed again, and at approval a
  near-duplicate (cosine >= :data:`NEAR_DUPLICATE`) of an approved question of the same article is
  merged into it instead of being learned twice.
- **Retrieval.** Approved questions are embedded (the vector is stored on the row, so every
  process sharing the database sees the same units with no second store to keep in step) and held
  in memory as one matrix by :class:`LearnedIndex`; the retriever asks it for each question's
  nearest learned questions and counts a match as evidence for the article, like one of an FAQ's
  example questions (best-sentence similarity). The answer text still comes from the article:
  learned questions are never chunks, so they are never quoted. They live outside Chroma, so a
  re-ingest of the article leaves them alone.
- **Files.** Approved questions are also written beside their article as
  ``<article id>.learned.jsonl`` (one ``{"question", "approved_by", "approved_at"}`` per line),
  so git keeps them with the articles; :func:`import_sidecars` reads them back (at start-up and
  after an ingest), and the article loader ignores them (``.jsonl`` is not an article type).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.core.clock import aware, utcnow
from bot.core.models import ConversationEvent, LearnedQuestion, LearnedQuestionAudit, Message
from bot.core.privacy import mask_personal_data
from bot.knowledge.intents import asks_for_human
from ingest.loaders import LEARNED_SIDECAR_SUFFIX

if TYPE_CHECKING:
    from bot.core.settings import Settings
    from ingest.embedder import Embedder

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = LEARNED_SIDECAR_SUFFIX
NEAR_DUPLICATE = 0.95
"""Cosine similarity at which two questions of one article are the same question (MiniLM:
rephrasings that only change punctuation, case or a filler word sit above 0.95)."""
MIN_CHARS, MAX_CHARS = 3, 300
"""A learned question is a question: a longer message is a story, not evidence for one article."""
TOP_ARTICLES = 10
"""Articles a question's learned neighbours may vouch for (the retriever adds them as
candidates)."""
FLOOR = 0.3
"""Learned similarities below this are noise (unrelated MiniLM cosines sit at 0.0-0.25)."""
CHECK_EVERY_S = 1.0
"""How often a query checks whether the approved set changed (one cheap aggregate query)."""

Status = str  # candidate | approved | rejected | removed | merged
STATUSES = ("candidate", "approved", "rejected", "removed", "merged")
CLOSED = ("rejected", "removed")
"""A question in one of these states for an article is not proposed for it again."""

_ORDER = re.compile(
    r"(?i)\b(order|ord|invoice|ticket|ref(?:erence)?|tracking)(\s*(?:no\.?|number|#|:)?\s*)[A-Z0-9-]*\d[A-Z0-9-]*"
)
_DIGIT_RUN = re.compile(r"(?<![\w+])\+?\d(?:[ .-]?\d){6,}(?![\w])")
_LONG_NUMBER = re.compile(r"(?<![\w])#?[A-Za-z]{0,4}-?\d{5,}[A-Za-z0-9-]*(?![\w])")
ORDER_MASK = "[order number]"
NUMBER_MASK = "[number]"


class LearnedError(ValueError):
    """A refused learned-question operation: ``status`` is the HTTP status the API answers."""

    def __init__(self, detail: str, status: int = 422) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


# --- text ------------------------------------------------------------------------------------


def mask(text: str) -> str:
    """``text`` without personal data: e-mails, phones and cards (``bot.core.privacy``), then
    order numbers and any other long number (a learned question is shown to admins, written to
    git and compared with every future question: none of that needs the customer's numbers)."""
    text = mask_personal_data(" ".join(text.split()))
    text = _ORDER.sub(lambda m: f"{m.group(1)}{m.group(2) or ' '}{ORDER_MASK}", text)
    text = _DIGIT_RUN.sub(NUMBER_MASK, text)
    return _LONG_NUMBER.sub(NUMBER_MASK, text)


def normalise(text: str) -> str:
    """Case, punctuation and spacing do not make another question."""
    return " ".join(re.sub(r"[^\w\[\]]+", " ", text.casefold()).split())


def question_key(text: str) -> str:
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


# --- the store -------------------------------------------------------------------------------


def _audit(
    session: Session,
    row: LearnedQuestion,
    action: str,
    actor: str | None,
    now: datetime,
    previous_article_id: str | None = None,
) -> None:
    session.add(
        LearnedQuestionAudit(
            learned_id=row.id,
            action=action,
            actor=actor,
            article_id=row.article_id,
            previous_article_id=previous_article_id,
            text=row.text,
            created_at=now,
        )
    )


def _row(session: Session, article_id: str, key: str) -> LearnedQuestion | None:
    return session.scalar(
        select(LearnedQuestion).where(
            LearnedQuestion.article_id == article_id, LearnedQuestion.key == key
        )
    )


def propose(
    session: Session,
    article_id: str,
    question: str,
    *,
    source: str,
    conversation_id: str | None = None,
    auto_approve: int = 0,
    now: datetime | None = None,
) -> LearnedQuestion | None:
    """Make ``question`` a candidate learned question of ``article_id`` (masked), or confirm the
    candidate it already is. ``None`` when it is not a usable question or was rejected or
    removed for this article before. A helpful-vote candidate (``source="helpful"``) confirmed
    by ``auto_approve`` different conversations (> 0) is approved by the system."""
    now = now or utcnow()
    text = mask(question)
    if not (MIN_CHARS <= len(text) <= MAX_CHARS) or not article_id:
        return None
    key = question_key(text)
    row = _row(session, article_id, key)
    if row is None:
        row = LearnedQuestion(
            article_id=article_id,
            text=text,
            key=key,
            status="candidate",
            source=source,
            confirmations=1,
            conversations=[conversation_id] if conversation_id else [],
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
        _audit(session, row, "propose", None, now)
    elif row.status in CLOSED or row.status == "merged":
        return None
    else:
        seen = list(row.conversations or [])
        if conversation_id and conversation_id not in seen:
            row.conversations = [*seen, conversation_id]
            row.confirmations = (row.confirmations or 0) + 1
            row.updated_at = now if row.status == "candidate" else row.updated_at
    independent = len(row.conversations or [])
    if (
        row.status == "candidate"
        and source == "helpful"
        and auto_approve > 0
        and independent >= auto_approve
    ):
        row.status = "approved"
        row.decided_at = now
        row.decided_by = None
        row.updated_at = now
        _audit(session, row, "approve", None, now)
    return row


def question_behind_escalation(session: Session, conversation_id: str) -> Message | None:
    """The customer question a person answered: the last customer message before the latest
    escalation that is a question, not a plea for a person ("let me talk to a human")."""
    escalated = session.scalar(
        select(ConversationEvent)
        .where(
            ConversationEvent.conversation_id == conversation_id,
            ConversationEvent.kind == "escalated",
        )
        .order_by(ConversationEvent.id.desc())
        .limit(1)
    )
    messages = list(
        session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation_id, Message.role == "customer")
            .order_by(Message.seq)
        )
    )
    if escalated is not None:
        moment = aware(escalated.created_at)
        before = [m for m in messages if aware(m.created_at) <= moment]
        messages = before or messages
    for message in reversed(messages):
        if not asks_for_human(message.text):
            return message
    return None


def question_of_answer(session: Session, conversation_id: str, seq: int) -> Message | None:
    """The customer message bot message ``seq`` replied to."""
    answer = session.scalar(
        select(Message).where(Message.conversation_id == conversation_id, Message.seq == seq)
    )
    if answer is None:
        return None
    if answer.reply_to is not None:
        asked = session.scalar(
            select(Message).where(
                Message.conversation_id == conversation_id, Message.seq == answer.reply_to
            )
        )
        if asked is not None and asked.role == "customer":
            return asked
    return session.scalar(
        select(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.role == "customer",
            Message.seq < seq,
        )
        .order_by(Message.seq.desc())
        .limit(1)
    )


def on_helpful(
    session: Session, conversation_id: str, seq: int, settings: Settings
) -> LearnedQuestion | None:
    """A customer marked bot message ``seq`` helpful: its question is a candidate of the first
    article it cited."""
    answer = session.scalar(
        select(Message).where(Message.conversation_id == conversation_id, Message.seq == seq)
    )
    sources = (answer.sources or []) if answer is not None else []
    article_id = str(sources[0].get("article_id") or "") if sources else ""
    asked = question_of_answer(session, conversation_id, seq)
    if not article_id or asked is None:
        return None
    return propose(
        session,
        article_id,
        asked.text,
        source="helpful",
        conversation_id=conversation_id,
        auto_approve=settings.learned_auto_approve,
    )


def on_resolved(session: Session, conversation_id: str, article_id: str) -> LearnedQuestion | None:
    """An agent resolved the escalation with ``article_id`` as "the article that answers this"."""
    asked = question_behind_escalation(session, conversation_id)
    if asked is None:
        return None
    return propose(session, article_id, asked.text, source="agent", conversation_id=conversation_id)


def _get(session: Session, learned_id: int) -> LearnedQuestion:
    row = session.get(LearnedQuestion, learned_id)
    if row is None:
        raise LearnedError(f"no learned question {learned_id}", 404)
    return row


Embed = Callable[[list[str]], Sequence[Sequence[float]]]


def approve(
    session: Session,
    ids: Iterable[int],
    actor: str | None,
    *,
    article_id: str | None = None,
    embed: Embed | None = None,
    embedder_name: str | None = None,
    now: datetime | None = None,
) -> list[LearnedQuestion]:
    """Approve candidates (or re-assign approved ones) as learned questions of their article, or
    of ``article_id`` when given (re-assign). With ``embed`` each is embedded now and merged into
    an approved near-duplicate of the same article when there is one. Returns the rows."""
    import numpy as np

    now = now or utcnow()
    rows = [_get(session, i) for i in dict.fromkeys(ids)]
    for row in rows:
        if row.status in ("removed", "merged"):
            raise LearnedError(f"learned question {row.id} is {row.status}", 409)
    done: list[LearnedQuestion] = []
    for row in rows:
        previous = row.article_id
        if article_id and article_id != row.article_id:
            clash = _row(session, article_id, row.key)
            if clash is not None and clash.id != row.id:
                _merge(session, row, clash, actor, now)
                done.append(clash)
                continue
            row.article_id = article_id
        if row.vector is None and embed is not None:
            row.vector = _to_bytes(np.asarray(embed([row.text])[0], dtype=np.float32))
            row.embedder = embedder_name
        twin = _near_duplicate(session, row) if row.vector is not None else None
        if twin is not None:
            _merge(session, row, twin, actor, now)
            done.append(twin)
            continue
        moved = previous if previous != row.article_id else None
        if row.status != "approved" or moved:
            row.status = "approved"
            row.decided_at = now
            row.decided_by = actor
            row.updated_at = now
            _audit(session, row, "reassign" if moved else "approve", actor, now, moved)
        done.append(row)
    session.flush()
    return done


def _merge(
    session: Session, row: LearnedQuestion, into: LearnedQuestion, actor: str | None, now: datetime
) -> None:
    """``row`` is the same question as ``into``: its confirmations join ``into``'s."""
    seen = list(into.conversations or [])
    for conversation_id in row.conversations or []:
        if conversation_id not in seen:
            seen.append(conversation_id)
    into.conversations = seen
    into.confirmations = (into.confirmations or 0) + (row.confirmations or 0)
    if into.status == "candidate":
        into.status = "approved"
        into.decided_at, into.decided_by, into.updated_at = now, actor, now
        _audit(session, into, "approve", actor, now)
    row.status = "merged"
    row.updated_at = now
    row.decided_at, row.decided_by = now, actor
    _audit(session, row, "merge", actor, now)


def _near_duplicate(session: Session, row: LearnedQuestion) -> LearnedQuestion | None:
    import numpy as np

    assert row.vector is not None
    mine = _from_bytes(row.vector)
    others = session.scalars(
        select(LearnedQuestion).where(
            LearnedQuestion.article_id == row.article_id,
            LearnedQuestion.status == "approved",
            LearnedQuestion.id != row.id,
            LearnedQuestion.vector.is_not(None),
        )
    )
    best, twin = NEAR_DUPLICATE, None
    for other in others:
        assert other.vector is not None
        theirs = _from_bytes(other.vector)
        if theirs.shape != mine.shape:
            continue
        similarity = float(np.dot(mine, theirs))
        if similarity >= best:
            best, twin = similarity, other
    return twin


def reject(
    session: Session, ids: Iterable[int], actor: str | None, *, now: datetime | None = None
) -> list[LearnedQuestion]:
    """Reject candidates: they leave the list and are never proposed again for that article."""
    now = now or utcnow()
    rows = [_get(session, i) for i in dict.fromkeys(ids)]
    for row in rows:
        if row.status != "candidate":
            raise LearnedError(
                f"learned question {row.id} is {row.status}; remove approved ones instead", 409
            )
    for row in rows:
        row.status = "rejected"
        row.decided_at, row.decided_by, row.updated_at = now, actor, now
        _audit(session, row, "reject", actor, now)
    session.flush()
    return rows


def remove(
    session: Session, learned_id: int, actor: str | None, *, now: datetime | None = None
) -> LearnedQuestion:
    """Take an approved question off its article (the article's page, or the API)."""
    now = now or utcnow()
    row = _get(session, learned_id)
    if row.status in ("removed", "merged"):
        return row
    row.status = "removed"
    row.decided_at, row.decided_by, row.updated_at = now, actor, now
    _audit(session, row, "remove", actor, now)
    session.flush()
    return row


def add_approved(
    session: Session,
    article_id: str,
    questions: Iterable[str],
    actor: str | None,
    *,
    source: str = "admin",
    now: datetime | None = None,
) -> list[LearnedQuestion]:
    """Questions an admin attaches to an article at once (a draft's group questions, a
    sidecar): approved without a candidate step. One already learned stays as it is."""
    now = now or utcnow()
    rows: list[LearnedQuestion] = []
    for question in questions:
        text = mask(question)
        if not (MIN_CHARS <= len(text) <= MAX_CHARS):
            continue
        row = _row(session, article_id, question_key(text))
        if row is None:
            row = LearnedQuestion(
                article_id=article_id,
                text=text,
                key=question_key(text),
                status="candidate",
                source=source,
                confirmations=1,
                conversations=[],
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
        if row.status != "approved" and row.status != "merged":
            row.status = "approved"
            row.decided_at, row.decided_by, row.updated_at = now, actor, now
            _audit(session, row, "import" if source == "import" else "approve", actor, now)
        rows.append(row)
    session.flush()
    return rows


@dataclass(frozen=True)
class Page:
    items: list[LearnedQuestion]
    total: int


def list_learned(
    session: Session,
    *,
    status: str | None = None,
    article_id: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Page:
    """Learned questions, newest change first (candidates: most confirmed first)."""
    query = select(LearnedQuestion)
    if status:
        query = query.where(LearnedQuestion.status == status)
    if article_id:
        query = query.where(LearnedQuestion.article_id == article_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    order = (
        (LearnedQuestion.confirmations.desc(), LearnedQuestion.id)
        if status == "candidate"
        else (LearnedQuestion.updated_at.desc(), LearnedQuestion.id.desc())
    )
    items = list(
        session.scalars(query.order_by(*order).offset((page - 1) * per_page).limit(per_page))
    )
    return Page(items, int(total))


def audit_trail(
    session: Session, *, learned_id: int | None = None, limit: int = 200
) -> list[LearnedQuestionAudit]:
    query = select(LearnedQuestionAudit)
    if learned_id is not None:
        query = query.where(LearnedQuestionAudit.learned_id == learned_id)
    return list(session.scalars(query.order_by(LearnedQuestionAudit.id.desc()).limit(limit)))


# --- sidecar files ---------------------------------------------------------------------------


def sidecar_path(kb_path: Path, article_id: str) -> Path:
    return kb_path / f"{article_id}{SIDECAR_SUFFIX}"


def write_sidecars(session: Session, kb_path: Path, article_ids: Iterable[str]) -> None:
    """Rewrite the sidecar of each article from the approved questions (removed when none).
    Only for articles whose folder exists: a question learned for an article that is not a file
    here (a test, a removed article) has nowhere to go."""
    for article_id in dict.fromkeys(article_ids):
        path = sidecar_path(kb_path, article_id)
        if not path.resolve().is_relative_to(kb_path.resolve()):
            continue
        rows = session.scalars(
            select(LearnedQuestion)
            .where(LearnedQuestion.article_id == article_id, LearnedQuestion.status == "approved")
            .order_by(LearnedQuestion.id)
        ).all()
        if not rows:
            path.unlink(missing_ok=True)
            continue
        if not path.parent.is_dir():
            continue
        lines = [
            json.dumps(
                {
                    "question": row.text,
                    "approved_by": row.decided_by,
                    "approved_at": aware(row.decided_at).isoformat() if row.decided_at else None,
                },
                ensure_ascii=False,
            )
            for row in rows
        ]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(path)


def read_sidecar(path: Path) -> list[str]:
    """The questions of one sidecar file; bad lines are skipped with a warning."""
    questions: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item: Any = json.loads(line)
            question = item["question"] if isinstance(item, dict) else None
        except (ValueError, KeyError):
            question = None
        if isinstance(question, str) and question.strip():
            questions.append(question)
        else:
            log.warning("%s:%d: not a learned question line, skipped", path, number)
    return questions


def import_sidecars(session: Session, kb_path: Path) -> int:
    """Approve every question of every ``*.learned.jsonl`` under ``kb_path`` that is not
    approved yet (the files are what git keeps: a clone of the articles brings its learned
    questions). Returns how many were added."""
    if not kb_path.is_dir():
        return 0
    added = 0
    for path in sorted(kb_path.rglob(f"*{SIDECAR_SUFFIX}")):
        article_id = path.relative_to(kb_path).as_posix()[: -len(SIDECAR_SUFFIX)]
        before = session.scalar(
            select(func.count()).where(
                LearnedQuestion.article_id == article_id, LearnedQuestion.status == "approved"
            )
        )
        add_approved(session, article_id, read_sidecar(path), None, source="import")
        after = session.scalar(
            select(func.count()).where(
                LearnedQuestion.article_id == article_id, LearnedQuestion.status == "approved"
            )
        )
        added += int(after or 0) - int(before or 0)
    return added


# --- the index the retriever reads --------------------------------------------------------------


def _to_bytes(vector: Any) -> bytes:
    import numpy as np

    return bytes(np.asarray(vector, dtype=np.float32).tobytes())


def _from_bytes(blob: bytes) -> Any:
    import numpy as np

    return np.frombuffer(blob, dtype=np.float32)


class LearnedIndex:
    """The approved learned questions as one in-memory matrix, for the retriever.

    Kept in step with the database by a cheap check (count and latest change of the approved
    rows) at most every :data:`CHECK_EVERY_S` on use, so an approval in this process or another
    one sharing the database is answered from within a second. Rows approved without a vector
    (auto-approved, imported) are embedded on the next rebuild.
    """

    def __init__(self, sessions: sessionmaker[Session], embedder: Embedder) -> None:
        self.sessions = sessions
        self.embedder = embedder
        self._lock = threading.Lock()
        self._stamp: tuple[Any, ...] | None = None
        self._checked = 0.0
        self._matrix: Any = None
        self._articles: list[str] = []
        self._texts: list[str] = []

    def _current_stamp(self, session: Session) -> tuple[Any, ...]:
        count, latest, top = session.execute(
            select(
                func.count(), func.max(LearnedQuestion.updated_at), func.max(LearnedQuestion.id)
            ).where(LearnedQuestion.status == "approved")
        ).one()
        return (count, latest, top)

    def refresh(self, *, force: bool = False) -> None:
        """Rebuild the matrix when the approved set changed (always with ``force``)."""
        import numpy as np

        with self._lock:
            now = time.monotonic()
            if not force and now - self._checked < CHECK_EVERY_S and self._stamp is not None:
                return
            self._checked = now
            with self.sessions() as session, session.begin():
                stamp = self._current_stamp(session)
                if not force and stamp == self._stamp:
                    return
                rows = session.scalars(
                    select(LearnedQuestion)
                    .where(LearnedQuestion.status == "approved")
                    .order_by(LearnedQuestion.id)
                ).all()
                name = self.embedder.name
                missing = [
                    r
                    for r in rows
                    if r.vector is None
                    or r.embedder not in (None, name)
                    or len(r.vector) != 4 * self.embedder.dimension
                ]
                if missing:
                    vectors = self.embedder.encode([r.text for r in missing])
                    for row, vector in zip(missing, vectors, strict=True):
                        row.vector = _to_bytes(vector)
                        row.embedder = name
                self._articles = [r.article_id for r in rows]
                self._texts = [r.text for r in rows]
                self._matrix = (
                    np.vstack([_from_bytes(r.vector) for r in rows if r.vector is not None])
                    if rows
                    else None
                )
                self._stamp = stamp

    def similarities(self, vector: Sequence[float]) -> dict[str, float]:
        """Article id -> cosine of the question's nearest learned question of that article, for
        the :data:`TOP_ARTICLES` best articles at or above :data:`FLOOR`."""
        import numpy as np

        try:
            self.refresh()
        except Exception:  # learned questions only add evidence: never fail a question on them
            log.warning("learned questions could not be refreshed", exc_info=True)
        matrix, articles = self._matrix, self._articles
        if matrix is None or not len(articles):
            return {}
        sims = matrix @ np.asarray(vector, dtype=np.float32)
        best: dict[str, float] = {}
        for index in np.argsort(-sims)[: TOP_ARTICLES * 4]:
            similarity = float(sims[index])
            if similarity < FLOOR:
                break
            article = articles[int(index)]
            if article not in best:
                best[article] = similarity
                if len(best) >= TOP_ARTICLES:
                    break
        return best

    def stats(self) -> dict[str, int]:
        """How big the learned side is: questions held and bytes of vectors."""
        matrix = self._matrix
        return {
            "questions": len(self._articles),
            "vector_bytes": int(matrix.nbytes) if matrix is not None else 0,
        }
