"""Report figures over the deflection ledger and the stored history, by local day and in total.

Inputs are a :class:`Period` (the local dates ``since``..``until``, both included, in an IANA time
zone) and the outcomes of the conversations (the ledger's rows, or the same rules recomputed from
history by :func:`bot.handoff.ledger.recompute_outcomes`); the output is one
:class:`ReportSummary`. docs/reports.md says what every figure means; the rules in short:

* **Membership.** A conversation belongs to the period, and to a day, by its start time
  (``Conversation.created_at``) in the report's time zone, and only if the customer wrote at
  least once (a widget opened and left silent is not a conversation; the ledger gives it no
  outcome either).
* **Outcome rates** are over *decided* conversations (those with a ledger outcome): a
  conversation still inside its deflection window is ``undecided`` and counted separately, so
  the last day's deflection rate is not dragged down by conversations that may still deflect.
* **Times** (first bot response, first human response after the escalation, resolution) are
  the ledger's, summarised as nearest-rank percentiles (:func:`percentile`).
* **First contact resolution**: a decided conversation that was resolved (deflected, confirmed
  or assumed, or escalated and then marked resolved by a person) with no reopening after a
  resolve and at most one escalation. The rate is over decided conversations.
* **CSAT / CES**: per conversation the latest score and the latest effort answer; the response
  rate is rated conversations over conversations.
* **Articles**: *retrieved* counts bot messages listing the article among their sources;
  *cited* counts bot answers that did not escalate and whose first (best) source is the
  article; helpful / not helpful are the current votes on those citing answers; the deflection
  rate is over decided conversations with at least one citing answer.
* **Agents**: an agent *handled* a conversation when they wrote in it; the first response time
  counts for the agent who wrote the first reply after the escalation, the resolution time for
  the person who resolved it.
* **Backlog** is the queue as it was, not by conversation start: per day the number of items
  *waiting* (open and not yet claimed) at the end of the local day and at the day's peak; and
  now, the waiting items, the oldest one's age, and the items being worked on.

Because the figures are a function of the outcomes and the history, :func:`summary_from_ledger`
and :func:`summary_from_history` agree whenever the ledger does (a test checks it).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from bot.core.clock import aware, utcnow
from bot.core.models import (
    Conversation,
    ConversationEvent,
    CsatRating,
    Feedback,
    Message,
    Outcome,
    QueueItem,
)
from bot.handoff.ledger import OutcomeRecord, derive_outcome

DEFAULT_DAYS = 30
"""Without ``since``, the report covers this many days ending with ``until`` (today)."""
MAX_DAYS = 366
"""The longest period one report computes (a year by day; longer asks are refused)."""
CSAT_SCALE = (1, 2, 3, 4, 5)
CES_SCALE = (1, 2, 3, 4, 5, 6, 7)
DEFLECTED = ("deflected_confirmed", "deflected_assumed")


class ReportError(ValueError):
    """A period or a time zone a report cannot use; the API answers 422 with its message."""


# --- the period -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The local dates ``since``..``until`` (both included) in time zone ``tz``."""

    since: date
    until: date
    tz: ZoneInfo

    @property
    def start(self) -> datetime:
        """The first instant of the period (UTC): local midnight starting ``since``."""
        return local_midnight(self.since, self.tz)

    @property
    def end(self) -> datetime:
        """The first instant after the period (UTC): local midnight ending ``until``."""
        return local_midnight(self.until + timedelta(days=1), self.tz)

    def days(self) -> list[date]:
        return [self.since + timedelta(days=n) for n in range((self.until - self.since).days + 1)]

    def day_of(self, moment: datetime) -> date:
        return aware(moment).astimezone(self.tz).date()


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The instant (UTC) at which ``day`` starts in ``tz`` (DST-aware: days have 23-25 hours)."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def time_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (``Europe/Amsterdam``), or :class:`ReportError`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportError(
            f"unknown time zone {name!r}: use an IANA name such as UTC or Europe/Amsterdam"
        ) from None


def make_period(
    since: date | None = None,
    until: date | None = None,
    tz: str = "UTC",
    *,
    now: datetime | None = None,
) -> Period:
    """The report period; by default the last :data:`DEFAULT_DAYS` local days, today included.

    Raises :class:`ReportError` for an unknown time zone, ``since`` after ``until``, or a
    period longer than :data:`MAX_DAYS`.
    """
    zone = time_zone(tz)
    until = until or _today(zone, now)
    since = since or until - timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        raise ReportError(f"since ({since}) is after until ({until})")
    if (until - since).days + 1 > MAX_DAYS:
        raise ReportError(f"the period is longer than {MAX_DAYS} days; ask for a shorter one")
    return Period(since, until, zone)


def _today(zone: ZoneInfo, now: datetime | None) -> date:
    return aware(now or utcnow()).astimezone(zone).date()


# --- the output -------------------------------------------------------------------------------


class Percentiles(BaseModel):
    """Nearest-rank percentiles of a set of durations in milliseconds (``None`` when empty)."""

    count: int
    p50: int | None
    p90: int | None


class Rating(BaseModel):
    """A survey answer summarised: ``distribution`` counts every score of the scale."""

    responses: int
    average: float | None
    distribution: dict[int, int]
    response_rate: float | None


class FirstContactResolution(BaseModel):
    eligible: int = Field(description="Decided conversations.")
    resolved: int = Field(description="Resolved at first contact (see the module docstring).")
    rate: float | None


class Figures(BaseModel):
    """The figures of a set of conversations (one day's, or the whole period's)."""

    conversations: int
    decided: int
    undecided: int
    deflected_confirmed: int
    deflected_assumed: int
    escalated: int
    abandoned: int
    deflection_rate_confirmed: float | None
    deflection_rate_assumed: float | None
    deflection_rate: float | None
    escalation_rate: float | None
    abandonment_rate: float | None
    escalations_by_reason: dict[str, int]
    first_bot_response_ms: Percentiles
    first_human_response_ms: Percentiles
    resolution_ms: Percentiles
    first_contact_resolution: FirstContactResolution
    csat: Rating
    ces: Rating


class DayFigures(Figures):
    """One local day: its conversations' figures and the queue on that day."""

    day: date
    queue_waiting_end_of_day: int | None = Field(
        description="Items waiting (open, unclaimed) at the end of the local day, or now for "
        "today; None for a day that has not started."
    )
    queue_waiting_peak: int | None = Field(
        description="The most items waiting at any moment of the day (None: not started)."
    )


class Backlog(BaseModel):
    """The queue now."""

    waiting_now: int
    in_progress_now: int
    oldest_waiting_since: datetime | None
    oldest_waiting_s: int | None


class ArticleFigures(BaseModel):
    article_id: str
    title: str | None
    retrieved: int
    cited: int
    helpful: int
    not_helpful: int
    conversations: int = Field(description="Conversations with at least one citing answer.")
    decided: int
    deflected: int
    deflection_rate: float | None


class AgentFigures(BaseModel):
    agent: str
    conversations_handled: int
    first_response_ms: Percentiles
    resolution_ms: Percentiles
    csat: Rating


class ReportSummary(BaseModel):
    """``GET /api/reports/summary`` and ``supportbot report``: see docs/reports.md."""

    since: date
    until: date
    tz: str
    start: datetime
    end: datetime
    generated_at: datetime
    total: Figures
    days: list[DayFigures]
    backlog: Backlog
    articles: list[ArticleFigures]
    articles_never_cited: list[str] | None
    agents: list[AgentFigures]


class ConversationRow(BaseModel):
    """One conversation of the period, as ``conversations.csv`` lists it."""

    conversation_id: str
    started_at: datetime
    outcome: str | None
    reason: str | None
    first_bot_response_ms: int | None
    first_human_response_ms: int | None
    resolution_ms: int | None
    csat: int | None
    ces: int | None
    agent: str | None
    first_question: str


# --- arithmetic -------------------------------------------------------------------------------


def percentile(values: Sequence[int], p: int) -> int | None:
    """The nearest-rank ``p``-th percentile: the smallest value with at least ``p`` % of the
    values at or below it, i.e. the value at 1-based rank ``ceil(p * n / 100)`` of the sorted
    values (rank 1 at least). Always one of the values; ``None`` for no values.

    Integer arithmetic on purpose: ``0.9 * 10`` is not 9 in floating point.
    """
    if not 0 < p <= 100:
        raise ValueError("p must be in 1..100")
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-p * len(ordered) // 100))
    return ordered[rank - 1]


def percentiles(values: Iterable[int | None]) -> Percentiles:
    present = [v for v in values if v is not None]
    return Percentiles(count=len(present), p50=percentile(present, 50), p90=percentile(present, 90))


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def rating(scores: Sequence[int], scale: Sequence[int], population: int) -> Rating:
    counts = Counter(scores)
    return Rating(
        responses=len(scores),
        average=sum(scores) / len(scores) if scores else None,
        distribution={score: counts.get(score, 0) for score in scale},
        response_rate=ratio(len(scores), population),
    )


# --- what the history says about each conversation --------------------------------------------


@dataclass
class _Facts:
    """One conversation of the period and what the report needs of it."""

    id: str
    started_at: datetime
    day: date
    first_question: str
    outcome: OutcomeRecord | None = None
    csat: int | None = None
    ces: int | None = None
    escalations: int = 0
    reopened: bool = False
    handlers: set[str] = field(default_factory=set)
    first_responder: str | None = None
    resolver: str | None = None
    retrieved: list[str] = field(default_factory=list)  # one entry per (bot message, article)
    cited: list[tuple[str, bool | None]] = field(default_factory=list)  # (article, vote)

    @property
    def kind(self) -> str | None:
        return self.outcome.outcome if self.outcome else None

    @property
    def first_contact_resolved(self) -> bool:
        if self.outcome is None or self.reopened or self.escalations > 1:
            return False
        if self.kind in DEFLECTED:
            return True
        return self.kind == "escalated" and self.outcome.resolution_ms is not None


def _period_ids(period: Period) -> Select[str]:
    return select(Conversation.id).where(
        Conversation.created_at >= period.start, Conversation.created_at < period.end
    )


def _load_facts(session: Session, period: Period) -> dict[str, _Facts]:
    """Every conversation that started in the period and in which the customer wrote."""
    ids = _period_ids(period)
    conversations = {
        conv.id: conv
        for conv in session.scalars(
            select(Conversation)
            .where(Conversation.id.in_(ids))
            .order_by(Conversation.created_at, Conversation.id)
        )
    }
    messages: dict[str, list[Message]] = defaultdict(list)
    for message in session.scalars(
        select(Message)
        .where(Message.conversation_id.in_(ids))
        .order_by(Message.conversation_id, Message.seq)
    ):
        messages[message.conversation_id].append(message)
    events: dict[str, list[ConversationEvent]] = defaultdict(list)
    for event in session.scalars(
        select(ConversationEvent)
        .where(ConversationEvent.conversation_id.in_(ids))
        .order_by(ConversationEvent.id)
    ):
        events[event.conversation_id].append(event)
    votes: dict[tuple[str, int], bool] = {
        (vote.conversation_id, vote.message_seq): vote.helpful
        for vote in session.scalars(select(Feedback).where(Feedback.conversation_id.in_(ids)))
    }

    facts: dict[str, _Facts] = {}
    for conv_id, conv in conversations.items():
        history = messages.get(conv_id, [])
        first = next((m for m in history if m.role == "customer"), None)
        if first is None:
            continue
        started = aware(conv.created_at)
        fact = _Facts(conv_id, started, period.day_of(started), first.text)
        _read_history(fact, history, events.get(conv_id, []), votes)
        facts[conv_id] = fact

    for rated in session.scalars(
        select(CsatRating)
        .where(CsatRating.conversation_id.in_(ids))
        .order_by(CsatRating.created_at, CsatRating.id)
    ):
        fact_or_none = facts.get(rated.conversation_id)
        if fact_or_none is None:
            continue
        fact_or_none.csat = rated.score  # the latest wins
        if rated.ces is not None:
            fact_or_none.ces = rated.ces
    return facts


def _read_history(
    fact: _Facts,
    messages: Sequence[Message],
    events: Sequence[ConversationEvent],
    votes: Mapping[tuple[str, int], bool],
) -> None:
    """Escalations, reopenings, who answered and resolved, and which articles were used."""
    escalation: ConversationEvent | None = None
    reply_authors: dict[int, str] = {}
    for event in events:
        data = event.data or {}
        if event.kind == "escalated":
            fact.escalations += 1
            escalation = escalation or event
        elif event.kind == "state" and data.get("reason") == "reopened":
            fact.reopened = True
        elif event.kind == "agent_reply" and data.get("agent"):
            fact.handlers.add(str(data["agent"]))
            reply_authors[int(data.get("seq", 0))] = str(data["agent"])
        elif (
            event.kind == "state"
            and data.get("to") == "resolved"
            and escalation is not None
            and fact.resolver is None
        ):
            fact.resolver = str(data.get("actor") or "") or None
    if escalation is not None:
        # The same reply the ledger times first_human_response_ms by.
        t_esc = aware(escalation.created_at)
        first_reply = next(
            (m for m in messages if m.role == "agent" and aware(m.created_at) >= t_esc), None
        )
        if first_reply is not None:
            fact.first_responder = reply_authors.get(first_reply.seq)
    for message in messages:
        if message.role != "bot" or not message.sources:
            continue
        listed = [str(s.get("article_id")) for s in message.sources if s.get("article_id")]
        fact.retrieved.extend(dict.fromkeys(listed))
        if listed and not message.escalate and message.sources[0].get("article_id"):
            fact.cited.append((listed[0], votes.get((fact.id, message.seq))))


# --- outcomes ---------------------------------------------------------------------------------


def period_ledger(session: Session, period: Period) -> dict[str, OutcomeRecord]:
    """The ledger's rows for the conversations that started in the period."""
    return {
        row.conversation_id: OutcomeRecord.of(row)
        for row in session.scalars(
            select(Outcome).where(Outcome.conversation_id.in_(_period_ids(period)))
        )
    }


def period_history(
    session: Session, period: Period, *, now: datetime, window_hours: float = 24.0
) -> dict[str, OutcomeRecord]:
    """The outcomes the stored history implies at ``now`` for the period's conversations: what
    :func:`bot.handoff.ledger.recompute_outcomes` computes, restricted to the period."""
    window = timedelta(hours=window_hours)
    result = {}
    for conv in session.scalars(
        select(Conversation).where(Conversation.id.in_(_period_ids(period)))
    ):
        derived = derive_outcome(session, conv, now=now, window=window)
        if derived is not None:
            result[conv.id] = derived
    return result


# --- the figures ------------------------------------------------------------------------------


def figures_of(facts: Sequence[_Facts]) -> Figures:
    decided = [f for f in facts if f.outcome is not None]
    kinds = Counter(f.kind for f in decided)
    reasons = Counter(
        f.outcome.reason or "unknown"
        for f in decided
        if f.outcome is not None and f.kind == "escalated"
    )
    n = len(decided)
    confirmed, assumed = kinds["deflected_confirmed"], kinds["deflected_assumed"]
    fcr = sum(1 for f in decided if f.first_contact_resolved)
    return Figures(
        conversations=len(facts),
        decided=n,
        undecided=len(facts) - n,
        deflected_confirmed=confirmed,
        deflected_assumed=assumed,
        escalated=kinds["escalated"],
        abandoned=kinds["abandoned"],
        deflection_rate_confirmed=ratio(confirmed, n),
        deflection_rate_assumed=ratio(assumed, n),
        deflection_rate=ratio(confirmed + assumed, n),
        escalation_rate=ratio(kinds["escalated"], n),
        abandonment_rate=ratio(kinds["abandoned"], n),
        escalations_by_reason=dict(sorted(reasons.items())),
        first_bot_response_ms=percentiles(
            f.outcome.first_bot_response_ms for f in decided if f.outcome
        ),
        first_human_response_ms=percentiles(
            f.outcome.first_human_response_ms for f in decided if f.outcome
        ),
        resolution_ms=percentiles(f.outcome.resolution_ms for f in decided if f.outcome),
        first_contact_resolution=FirstContactResolution(
            eligible=n, resolved=fcr, rate=ratio(fcr, n)
        ),
        csat=rating([f.csat for f in facts if f.csat is not None], CSAT_SCALE, len(facts)),
        ces=rating([f.ces for f in facts if f.ces is not None], CES_SCALE, len(facts)),
    )


def article_figures(
    facts: Sequence[_Facts], articles: Mapping[str, str] | None = None
) -> list[ArticleFigures]:
    """Per article, most cited first; every known article (``articles``: id -> title) is listed
    even when the period never used it."""
    retrieved: Counter[str] = Counter()
    cited: Counter[str] = Counter()
    helpful: Counter[str] = Counter()
    not_helpful: Counter[str] = Counter()
    citing: dict[str, list[_Facts]] = defaultdict(list)
    for fact in facts:
        retrieved.update(fact.retrieved)
        for article_id, vote in fact.cited:
            cited[article_id] += 1
            if vote is True:
                helpful[article_id] += 1
            elif vote is False:
                not_helpful[article_id] += 1
        for article_id in dict.fromkeys(a for a, _ in fact.cited):
            citing[article_id].append(fact)
    known = dict(articles or {})
    rows = []
    for article_id in set(known) | set(retrieved) | set(cited):
        convs = citing.get(article_id, [])
        decided = [f for f in convs if f.outcome is not None]
        deflected = sum(1 for f in decided if f.kind in DEFLECTED)
        rows.append(
            ArticleFigures(
                article_id=article_id,
                title=known.get(article_id),
                retrieved=retrieved[article_id],
                cited=cited[article_id],
                helpful=helpful[article_id],
                not_helpful=not_helpful[article_id],
                conversations=len(convs),
                decided=len(decided),
                deflected=deflected,
                deflection_rate=ratio(deflected, len(decided)),
            )
        )
    rows.sort(key=lambda r: (-r.cited, -r.retrieved, r.article_id))
    return rows


def agent_figures(facts: Sequence[_Facts]) -> list[AgentFigures]:
    """Per agent (e-mail), most conversations handled first."""
    handled: dict[str, list[_Facts]] = defaultdict(list)
    first: dict[str, list[int | None]] = defaultdict(list)
    resolution: dict[str, list[int | None]] = defaultdict(list)
    for fact in facts:
        for agent in fact.handlers:
            handled[agent].append(fact)
        if fact.outcome is None or fact.kind != "escalated":
            continue
        if fact.first_responder:
            first[fact.first_responder].append(fact.outcome.first_human_response_ms)
        if fact.resolver:
            resolution[fact.resolver].append(fact.outcome.resolution_ms)
    agents = set(handled) | set(first) | set(resolution)
    rows = [
        AgentFigures(
            agent=agent,
            conversations_handled=len(handled[agent]),
            first_response_ms=percentiles(first[agent]),
            resolution_ms=percentiles(resolution[agent]),
            csat=rating(
                [f.csat for f in handled[agent] if f.csat is not None],
                CSAT_SCALE,
                len(handled[agent]),
            ),
        )
        for agent in agents
    ]
    rows.sort(key=lambda r: (-r.conversations_handled, r.agent))
    return rows


# --- the queue --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Wait:
    """An item's time waiting: from its creation until claimed or closed (whichever first)."""

    since: datetime
    until: datetime | None  # None: still waiting

    def at(self, moment: datetime) -> bool:
        return self.since <= moment and (self.until is None or moment < self.until)


def _waits(session: Session, period: Period, now: datetime) -> list[_Wait]:
    """Waiting spans of every queue item that could have waited during the period or now."""
    first = min(period.start, now)
    waits = []
    for item in session.scalars(
        select(QueueItem).where(
            QueueItem.created_at <= max(period.end, now),
            or_(QueueItem.claimed_at.is_(None), QueueItem.claimed_at > first),
            or_(QueueItem.closed_at.is_(None), QueueItem.closed_at > first),
        )
    ):
        ends = [aware(t) for t in (item.claimed_at, item.closed_at) if t is not None]
        wait = _Wait(aware(item.created_at), min(ends) if ends else None)
        if wait.until is not None and (wait.until <= wait.since or wait.until <= first):
            continue  # never waited (claimed as it was opened), or done before it matters
        waits.append(wait)
    return waits


def queue_by_day(
    waits: Sequence[_Wait], period: Period, now: datetime
) -> dict[date, tuple[int, int]]:
    """(waiting at the end of the day, peak waiting during the day) for each started day.

    The end of today is now. At one instant departures count before arrivals, so an item
    claimed the moment another arrives does not make a peak.
    """
    result = {}
    for day in period.days():
        start = local_midnight(day, period.tz)
        if start > now:
            continue
        stop = min(local_midnight(day + timedelta(days=1), period.tz), now)
        waiting = sum(1 for w in waits if w.at(start))
        steps = [(w.since, 1) for w in waits if start < w.since <= stop]
        steps += [(w.until, -1) for w in waits if w.until is not None and start < w.until <= stop]
        peak = waiting
        for _, delta in sorted(steps):
            waiting += delta
            peak = max(peak, waiting)
        result[day] = (waiting, peak)
    return result


def backlog_now(session: Session, now: datetime) -> Backlog:
    open_items = list(session.scalars(select(QueueItem).where(QueueItem.open_key.is_not(None))))
    waiting = sorted(
        aware(item.created_at)
        for item in open_items
        if item.claimed_at is None and aware(item.created_at) <= now
    )
    oldest = waiting[0] if waiting else None
    return Backlog(
        waiting_now=len(waiting),
        in_progress_now=sum(1 for item in open_items if item.claimed_at is not None),
        oldest_waiting_since=oldest,
        oldest_waiting_s=int((now - oldest).total_seconds()) if oldest else None,
    )


# --- the summary ------------------------------------------------------------------------------


def summarize(
    session: Session,
    period: Period,
    outcomes: Mapping[str, OutcomeRecord],
    *,
    articles: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> ReportSummary:
    """The report of ``period`` given each conversation's outcome (by conversation id).

    ``articles`` (id -> title, e.g. the retriever's ``article_titles()``) names the articles and
    makes ``articles_never_cited`` known; without it that list is ``None``.
    """
    now = aware(now or utcnow())
    facts = _facts_with(session, period, outcomes)
    by_day: dict[date, list[_Facts]] = defaultdict(list)
    for fact in facts:
        by_day[fact.day].append(fact)
    queue = queue_by_day(_waits(session, period, now), period, now)
    days = [
        DayFigures(
            day=day,
            queue_waiting_end_of_day=queue[day][0] if day in queue else None,
            queue_waiting_peak=queue[day][1] if day in queue else None,
            **figures_of(by_day.get(day, [])).model_dump(),
        )
        for day in period.days()
    ]
    per_article = article_figures(facts, articles)
    never = (
        sorted(r.article_id for r in per_article if r.cited == 0 and r.article_id in articles)
        if articles is not None
        else None
    )
    return ReportSummary(
        since=period.since,
        until=period.until,
        tz=period.tz.key,
        start=period.start,
        end=period.end,
        generated_at=now,
        total=figures_of(facts),
        days=days,
        backlog=backlog_now(session, now),
        articles=per_article,
        articles_never_cited=never,
        agents=agent_figures(facts),
    )


def summary_from_ledger(
    session: Session,
    period: Period,
    *,
    articles: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> ReportSummary:
    """The report from the incremental ledger (what the dashboard and the CLI show)."""
    return summarize(session, period, period_ledger(session, period), articles=articles, now=now)


def summary_from_history(
    session: Session,
    period: Period,
    *,
    now: datetime | None = None,
    window_hours: float = 24.0,
    articles: Mapping[str, str] | None = None,
) -> ReportSummary:
    """The same report with every outcome recomputed from messages and events (the check)."""
    now = aware(now or utcnow())
    outcomes = period_history(session, period, now=now, window_hours=window_hours)
    return summarize(session, period, outcomes, articles=articles, now=now)


def conversation_rows(
    session: Session, period: Period, outcomes: Mapping[str, OutcomeRecord] | None = None
) -> list[ConversationRow]:
    """One row per conversation of the period, oldest first (``outcomes``: the ledger's)."""
    if outcomes is None:
        outcomes = period_ledger(session, period)
    return [
        ConversationRow(
            conversation_id=fact.id,
            started_at=fact.started_at.astimezone(period.tz),
            outcome=fact.kind,
            reason=fact.outcome.reason if fact.outcome else None,
            first_bot_response_ms=fact.outcome.first_bot_response_ms if fact.outcome else None,
            first_human_response_ms=fact.outcome.first_human_response_ms if fact.outcome else None,
            resolution_ms=fact.outcome.resolution_ms if fact.outcome else None,
            csat=fact.csat,
            ces=fact.ces,
            agent=fact.first_responder or min(fact.handlers, default=None),
            first_question=fact.first_question,
        )
        for fact in _facts_with(session, period, outcomes)
    ]


def _facts_with(
    session: Session, period: Period, outcomes: Mapping[str, OutcomeRecord]
) -> list[_Facts]:
    facts = list(_load_facts(session, period).values())
    for fact in facts:
        fact.outcome = outcomes.get(fact.id)
    return facts


def article_rows(
    session: Session,
    period: Period,
    outcomes: Mapping[str, OutcomeRecord] | None = None,
    *,
    articles: Mapping[str, str] | None = None,
) -> list[ArticleFigures]:
    """The per-article figures of the period alone (``articles.csv``)."""
    if outcomes is None:
        outcomes = period_ledger(session, period)
    return article_figures(_facts_with(session, period, outcomes), articles)
