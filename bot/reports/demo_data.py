"""Demo data: a few weeks of synthetic support conversations, so a new install shows a living
dashboard (``supportbot demo-data``).

Why it drives the real code: every conversation goes through the same functions the chat socket
and the agent console call (:func:`bot.handoff.machine.customer_wrote`, ``bot_answered``,
``on_feedback``, ``request_handoff``, ``claim``, ``agent_reply``, ``resolve``,
:func:`bot.conversations.store.record_csat`) with a clock the generator controls, and the ledger
job (:func:`bot.handoff.ledger.close_idle_conversations`) closes the idle ones. So the outcomes,
reasons, queue times and escalations are the ones the product itself decides (a customer asking
for a person is detected by the real trigger, not written down as "customer_request"); only the
bot's answers are scripted, from the demo knowledge base's own articles (``kb_articles/``), so no
search index or model is needed.

What it writes: customers asking what the articles answer (most deflected, some voting), people
asking for a person, sensitive topics and frustration, questions the articles do not cover
(content gaps, answered by three demo agents, mostly within business hours), "not helpful" votes,
CSAT and effort ratings. Conversations are marked ``visitor.demo = true`` and ``origin =
"demo-data"``. It refuses a database that already holds conversations unless forced: demo rows
must never mix into real data by accident.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.conversations.store import create_conversation, record_csat
from bot.core.clock import aware, utcnow
from bot.core.db import transaction
from bot.core.models import Conversation, User
from bot.core.schemas import AnswerResult, Source
from bot.core.settings import Settings
from bot.handoff import machine
from bot.handoff.hours import BusinessHours, business_hours
from bot.handoff.ledger import close_idle_conversations
from bot.knowledge.answerers import ESCALATION_TEXT
from bot.people.users import create_user, get_by_email

DEMO_ORIGIN = "demo-data"
DEMO_AGENTS = ("ana.smith@example.com", "ben.okafor@example.com", "chloe.martin@example.com")
DEFAULT_DAYS = 60
"""Two 30-day periods: the dashboard's default view then has a previous period to compare with."""
DEFAULT_SEED = 7


class DemoDataError(RuntimeError):
    """The database is not one demo data may be written into (it holds conversations)."""


# --- what customers ask -----------------------------------------------------------------------


@dataclass(frozen=True)
class Topic:
    """Questions one demo article answers."""

    article_id: str
    title: str
    questions: tuple[str, ...]


@dataclass(frozen=True)
class Gap:
    """Questions no article answers, and what the agents reply (a content gap)."""

    questions: tuple[str, ...]
    replies: tuple[str, ...]
    near: Topic | None = None  # the article the bot offers when it is unsure, if any


@dataclass(frozen=True)
class NearMiss:
    """Questions the bot answers from an article that does not quite cover them."""

    topic: Topic
    replies: tuple[str, ...]


ANSWERED = (
    Topic(
        "orders-shipping/track-order",
        "Tracking your order",
        (
            "Where is my order?",
            "How can I track my parcel?",
            "my package hasn't arrived yet, where can I see the tracking",
            "Is there a tracking number for my order?",
        ),
    ),
    Topic(
        "billing/refunds",
        "How refunds work and how long they take",
        (
            "How long does a refund take?",
            "When will I get my money back for the return?",
            "how long until the refund shows on my PayPal",
            "I returned my shoes last week, when is the refund paid?",
        ),
    ),
    Topic(
        "returns/start-a-return",
        "Starting a return",
        (
            "How do I return an item?",
            "I want to send back a jacket, how does that work?",
            "where do I get a return label",
        ),
    ),
    Topic(
        "returns/return-policy",
        "Parcelly's return policy",
        (
            "How many days do I have to return something?",
            "Can I return a sale item?",
            "what is your return policy",
        ),
    ),
    Topic(
        "orders-shipping/shipping-options",
        "Shipping options, costs and delivery times",
        (
            "How much is delivery?",
            "Do you have next day delivery?",
            "how long does standard shipping take",
        ),
    ),
    Topic(
        "orders-shipping/change-or-cancel-order",
        "Changing or cancelling an order",
        (
            "Can I cancel my order?",
            "I ordered the wrong colour, can I change my order?",
            "how do I change the delivery address on an order I just placed",
        ),
    ),
    Topic(
        "account/reset-password",
        "Resetting your password",
        (
            "I forgot my password",
            "How do I reset my password?",
            "the password reset email never came",
        ),
    ),
    Topic(
        "billing/payment-methods",
        "Payment methods we accept",
        (
            "Which payment methods do you accept?",
            "Can I pay with Klarna?",
            "do you take Apple Pay",
        ),
    ),
    Topic(
        "billing/promo-codes-gift-cards",
        "Using promo codes and gift cards",
        (
            "My promo code isn't working",
            "How do I use a gift card?",
            "can I use two discount codes on one order",
        ),
    ),
    Topic(
        "orders-shipping/missing-or-damaged-package",
        "Package missing, late or damaged",
        (
            "My parcel arrived damaged",
            "Tracking says delivered but I don't have it",
            "an item is missing from my package",
        ),
    ),
    Topic(
        "returns/exchanges",
        "Exchanging an item for a different size or colour",
        (
            "Can I exchange for a different size?",
            "how do I swap a shirt for another colour",
        ),
    ),
    Topic(
        "plus/benefits",
        "Parcelly Plus benefits",
        (
            "What do I get with Parcelly Plus?",
            "is delivery free with Plus",
        ),
    ),
    Topic(
        "plus/cancel-membership",
        "Cancelling Parcelly Plus",
        ("How do I cancel my Plus membership?", "stop my Parcelly Plus subscription"),
    ),
    Topic(
        "billing/invoices-vat",
        "Invoices and VAT receipts",
        ("Where can I download my invoice?", "I need a VAT receipt for my company"),
    ),
    Topic(
        "orders-shipping/international-shipping",
        "International shipping and customs",
        ("Do you ship abroad?", "will I pay customs fees on an order to Switzerland"),
    ),
    Topic(
        "orders-shipping/pickup-points",
        "Delivery to a pickup point or parcel locker",
        ("Can I pick up my parcel at a locker?", "how do I choose a pickup point"),
    ),
    Topic(
        "billing/card-declined",
        "Payment failed or card declined",
        ("Why was my card declined?", "payment keeps failing at checkout"),
    ),
    Topic(
        "troubleshooting/app-crashes",
        "The app crashes or won't load",
        ("The app keeps crashing", "the Parcelly app won't open on my phone"),
    ),
    Topic(
        "account/change-email",
        "Changing the email address on your account",
        ("How do I change my email address?",),
    ),
    Topic(
        "contact/contact-us",
        "How to contact us and support hours",
        ("What are your opening hours?", "what's your phone number"),
    ),
)
"""Weighted by position: the first topics are asked most (as in any help center)."""

GAPS = (
    Gap(
        (
            "Can you gift wrap my order?",
            "Do you offer gift wrapping?",
            "is it possible to add gift wrap and a card",
            "Can I send this as a present with wrapping paper?",
            "gift wrapping for a birthday order?",
        ),
        (
            "We don't gift wrap yet, sorry! What we can do is leave the invoice out of the "
            "parcel: choose 'This is a gift' at checkout and the prices won't be printed.",
            "No gift wrapping at the moment, but if you tick 'This is a gift' at checkout we "
            "leave out the invoice and add a gift note.",
        ),
    ),
    Gap(
        (
            "Do you have a student discount?",
            "is there a discount for students",
            "Student discount code?",
            "I'm a student, do I get money off?",
        ),
        (
            "We don't run a student discount, but students get Parcelly Plus at half price "
            "for the first year: sign up with your university email address.",
            "There's no student code, sorry. Plus is half price for a year if you sign up "
            "with a university email address, though.",
        ),
        near=Topic("plus/plans-and-pricing", "Parcelly Plus plans and pricing", ()),
    ),
    Gap(
        (
            "When will the walnut side table be back in stock?",
            "can you tell me when an item is restocked",
            "The kettle I want is sold out, will you get more?",
            "Do you notify when something is back in stock?",
            "item says out of stock, when does it come back",
        ),
        (
            "Open the product page and press 'Email me when it's back': you'll get one email "
            "the moment it is in stock again. The walnut table is due back in about two weeks.",
            "Use 'Email me when it's back' on the product page and we'll let you know. We "
            "can't promise dates for every item, sorry.",
        ),
    ),
    Gap(
        (
            "How do I recycle the packaging?",
            "can I send the boxes back to you",
            "Is your packaging recyclable?",
            "what do I do with the plastic air cushions",
        ),
        (
            "All our boxes and paper fill go in household paper recycling. The air cushions "
            "are soft plastic: most supermarkets take them back.",
        ),
    ),
    Gap(
        (
            "Can I choose a delivery time slot?",
            "is it possible to pick a delivery time",
            "Can you deliver on Saturday morning only?",
        ),
        (
            "You can't choose a slot at checkout yet, but the carrier's tracking link lets "
            "you pick a day and a 2-hour window once the parcel ships.",
        ),
        near=Topic(
            "orders-shipping/shipping-options", "Shipping options, costs and delivery times", ()
        ),
    ),
    Gap(
        (
            "Do you have business accounts for bulk orders?",
            "I want to order 50 mugs for my company, is there a discount?",
            "wholesale prices for companies?",
        ),
        (
            "For orders over 25 items our business team can quote a discount: write to "
            "business@parcelly.example with the items and quantities.",
        ),
    ),
    Gap(
        (
            "Can I pre-order the new winter collection?",
            "is preordering possible",
            "How do pre-orders work?",
        ),
        (
            "Pre-orders open on the product page a week before launch; we only charge you "
            "when the item ships.",
        ),
    ),
)
"""Weighted by position too: the first gaps are the biggest groups on the dashboard."""

NEAR_MISSES = (
    NearMiss(
        Topic(
            "orders-shipping/shipping-options",
            "Shipping options, costs and delivery times",
            (
                "Can you combine my two orders into one delivery?",
                "I placed two orders, can they ship together?",
                "merge two orders into one parcel",
            ),
        ),
        (
            "Orders ship separately once they're placed, but if both are still 'Processing' "
            "we can merge them: I've done that for you now.",
        ),
    ),
    NearMiss(
        Topic(
            "returns/exchanges",
            "Exchanging an item for a different size or colour",
            (
                "Can I exchange an item for a completely different product?",
                "swap my lamp for a different lamp model",
            ),
        ),
        (
            "Exchanges are only for another size or colour of the same item. For a different "
            "product, return the first one and place a new order.",
        ),
    ),
)

PERSON_REQUESTS = (
    "Can I talk to a real person please?",
    "I would like to speak to someone from your team",
    "Is there a human I can chat with?",
    "can I get an agent",
)
SENSITIVE = (
    "I want to dispute a charge from last week",
    "Someone logged into my account and changed my address",
    "My refund was refused, I will ask my bank to reverse the payment",
)
FRUSTRATED = (
    "This is useless, you are not helping at all!!!",
    "this bot is a joke, waste of my time",
)
THANKS = ("Thanks!", "Great, thank you", "perfect, thanks for your help", "ok thank you")
SENSITIVE_REPLIES = (
    "I'm sorry about this. I've locked the account for now and sent you a link to set a new "
    "password; the address change has been reverted.",
    "Thanks for telling us. I've opened a case with our payments team; you'll hear from us "
    "within two working days, and nothing else needs doing on your side.",
)
PERSON_REPLIES = (
    "Hi, I'm happy to help. I've looked at your order and it leaves our warehouse today.",
    "Hello! I've checked that for you: the refund was issued yesterday and should show within "
    "3 working days.",
    "Hi there, I've updated the delivery address on your order as you asked.",
)
CSAT_COMMENTS = {
    5: ("Quick and friendly, thanks!", "Sorted in minutes"),
    4: ("Good help",),
    3: ("Took a while to get an answer",),
    2: ("I had to wait until the next day",),
    1: ("Still no solution",),
}


# --- the conversation driver ------------------------------------------------------------------


@dataclass
class DemoChat:
    """One customer conversation stepped through the state machine, in one transaction.

    Every step takes its own time: the clock is the generator's, not the wall's.
    """

    session: Session
    settings: Settings
    conversation_id: str
    last_question: int = 0
    last_answer: int | None = None

    @classmethod
    def start(cls, session: Session, settings: Settings, visitor: str, at: datetime) -> DemoChat:
        conv, _ = create_conversation(
            session, visitor={"id": visitor, "demo": True}, origin=DEMO_ORIGIN, now=at
        )
        return cls(session, settings, conv.id)

    @property
    def state(self) -> str:
        conv = self.session.get(Conversation, self.conversation_id)
        assert conv is not None
        return conv.state

    def customer(self, text: str, at: datetime) -> bool:
        """The customer writes; ``True`` when the bot should answer (the machine decides)."""
        turn = machine.customer_wrote(
            self.session, self.conversation_id, text, settings=self.settings, now=at
        )
        self.last_question = turn.message.seq
        return turn.bot_should_answer

    def bot(self, result: AnswerResult, at: datetime) -> bool:
        """The bot's answer to the last question; ``False`` when the machine did not store it."""
        frames = machine.bot_answered(
            self.session,
            self.conversation_id,
            result,
            reply_to=self.last_question,
            settings=self.settings,
            now=at,
        )
        if not frames:
            return False
        self.last_answer = int(frames[0]["seq"])
        return True

    def vote(self, helpful: bool, at: datetime) -> None:
        if self.last_answer is not None:
            machine.on_feedback(
                self.session,
                self.conversation_id,
                self.last_answer,
                helpful,
                settings=self.settings,
                now=at,
            )

    def ask_for_person(self, at: datetime) -> None:
        """The widget's "talk to a person" button."""
        machine.request_handoff(self.session, self.conversation_id, settings=self.settings, now=at)

    def claim(self, agent: User, at: datetime) -> None:
        machine.claim(self.session, self.conversation_id, agent, now=at)

    def agent_reply(self, agent: User, text: str, at: datetime) -> None:
        machine.agent_reply(self.session, self.conversation_id, agent, text, now=at)

    def resolve(self, agent: User, at: datetime) -> None:
        machine.resolve(self.session, self.conversation_id, agent, now=at)

    def rate(self, score: int, ces: int | None, comment: str | None, at: datetime) -> None:
        record_csat(self.session, self.conversation_id, score, comment, ces=ces, now=at)


# --- the bot's scripted answers ---------------------------------------------------------------


@dataclass(frozen=True)
class KnownArticle:
    title: str
    url: str | None
    lead: str  # the article's first paragraph: what the scripted answer says


def load_demo_articles(kb_path: Path) -> dict[str, KnownArticle]:
    """The demo knowledge base's articles (id -> title, URL, first paragraph); empty when the
    folder is not there (the answers then name the article only)."""
    from ingest.loaders import load_folder

    if not kb_path.exists():
        return {}
    articles = {}
    for article in load_folder(kb_path).articles:
        paragraphs = [
            p.strip()
            for p in article.body.split("\n\n")
            if p.strip() and not p.lstrip().startswith("#")
        ]
        lead = " ".join(paragraphs[0].split()) if paragraphs else ""
        articles[article.id] = KnownArticle(article.title, article.url, lead)
    return articles


def _source(topic: Topic, known: Mapping[str, KnownArticle], score: float) -> Source:
    article = known.get(topic.article_id)
    return Source(
        article_id=topic.article_id,
        title=article.title if article else topic.title,
        url=article.url if article else None,
        score=round(score, 2),
    )


def answer(topic: Topic, known: Mapping[str, KnownArticle], rng: random.Random) -> AnswerResult:
    """A confident, cited answer from ``topic``'s article (and a runner-up source)."""
    article = known.get(topic.article_id)
    lead = article.lead if article and article.lead else f"Our article “{topic.title}” covers this."
    title = article.title if article else topic.title
    sources = [_source(topic, known, rng.uniform(0.72, 0.95))]
    other = rng.choice([t for t in ANSWERED if t.article_id != topic.article_id])
    sources.append(_source(other, known, rng.uniform(0.3, 0.55)))
    return AnswerResult(
        answer=f"{lead}\n\nMore in “{title}”.",
        escalate=False,
        confidence=round(rng.uniform(0.66, 0.95), 2),
        sources=sources,
    )


def cannot_answer(gap: Gap, known: Mapping[str, KnownArticle], rng: random.Random) -> AnswerResult:
    """What the answerer says when the articles miss: no knowledge, or an unsure near match."""
    if gap.near is not None and rng.random() < 0.6:
        return AnswerResult(
            answer=ESCALATION_TEXT["low_confidence"],
            escalate=True,
            reason="low_confidence",
            confidence=round(rng.uniform(0.35, 0.55), 2),
            sources=[_source(gap.near, known, rng.uniform(0.4, 0.6))],
        )
    return AnswerResult(
        answer=ESCALATION_TEXT["no_knowledge"],
        escalate=True,
        reason="no_knowledge",
        confidence=round(rng.uniform(0.05, 0.3), 2),
    )


# --- the generator ----------------------------------------------------------------------------


@dataclass
class DemoSummary:
    """What :func:`fill_demo_data` wrote."""

    start: datetime
    end: datetime
    conversations: int = 0
    scenarios: Counter[str] = field(default_factory=Counter)
    agents: tuple[str, ...] = DEMO_AGENTS


def has_conversations(session: Session) -> bool:
    return session.scalar(select(Conversation.id).limit(1)) is not None


def demo_agents(session: Session) -> list[User]:
    """The demo agents (created once, without passwords: nobody signs in as them)."""
    agents = []
    for email in DEMO_AGENTS:
        user = get_by_email(session, email) or create_user(session, email, "agent")[0]
        agents.append(user)
    return agents


class _Clock:
    """The simulated time of one conversation; steps past ``end`` do not happen (yet)."""

    def __init__(self, start: datetime, end: datetime) -> None:
        self.now = start
        self.end = end

    def after(self, seconds: float) -> datetime | None:
        self.now = self.now + timedelta(seconds=seconds)
        return self.now if self.now <= self.end else None


def _pick(rng: random.Random, items: Sequence[str]) -> str:
    return items[rng.randrange(len(items))]


def _weighted(rng: random.Random, count: int, skew: float = 0.12) -> int:
    """An index in ``range(count)``, the first ones most likely (a long tail)."""
    weights = [1.0 / (1.0 + skew * i * i) for i in range(count)]
    return rng.choices(range(count), weights=weights)[0]


SCENARIOS: tuple[tuple[str, float, float], ...] = (
    # name, weight at the start of the history, weight at its end (the mix drifts linearly)
    ("helpful", 0.25, 0.34),
    ("silent", 0.27, 0.30),
    ("two_questions", 0.07, 0.08),
    ("gap", 0.18, 0.07),
    ("near_miss", 0.05, 0.04),
    ("near_miss_person", 0.03, 0.02),
    ("rephrase", 0.02, 0.01),
    ("person", 0.07, 0.07),
    ("sensitive", 0.04, 0.04),
    ("frustrated", 0.02, 0.02),
)


class _Generator:
    def __init__(
        self,
        settings: Settings,
        agent_ids: Sequence[int],
        known: Mapping[str, KnownArticle],
        rng: random.Random,
        hours: BusinessHours,
    ) -> None:
        self.settings = settings
        self.agent_ids = agent_ids
        self.known = known
        self.rng = rng
        self.hours = hours

    def scenario(self, progress: float) -> str:
        """Which kind of conversation; the mix improves over the weeks (fewer gaps)."""
        weights = [a + (b - a) * progress for _, a, b in SCENARIOS]
        return self.rng.choices([name for name, _, _ in SCENARIOS], weights=weights)[0]

    def topic(self) -> Topic:
        return ANSWERED[_weighted(self.rng, len(ANSWERED), 0.05)]

    def run(self, chat: DemoChat, kind: str, clock: _Clock) -> None:
        rng = self.rng
        if kind == "sensitive":
            self.customer(chat, clock, _pick(rng, SENSITIVE), None)
            self.agents_help(chat, clock, SENSITIVE_REPLIES)
            return
        if kind == "gap":
            gap = GAPS[_weighted(rng, len(GAPS), 0.25)]
            if self.customer(chat, clock, _pick(rng, gap.questions), None, gap=gap):
                self.agents_help(chat, clock, gap.replies)
            return
        if kind in ("near_miss", "near_miss_person", "rephrase"):
            miss = NEAR_MISSES[rng.randrange(len(NEAR_MISSES))]
            question = _pick(rng, miss.topic.questions)
            if not self.customer(chat, clock, question, miss.topic):
                return
            if (at := clock.after(rng.uniform(20, 120))) is None:
                return
            chat.vote(False, at)
            if kind == "near_miss":
                return  # leaves unhappy: abandoned
            if kind == "rephrase":
                again = "I mean, " + question[0].lower() + question[1:]
                self.customer(chat, clock, again, miss.topic)
            elif clock.after(rng.uniform(10, 60)) is not None:
                self.customer(chat, clock, _pick(rng, PERSON_REQUESTS), miss.topic, wait=0)
            self.agents_help(chat, clock, miss.replies)
            return
        topic = self.topic()
        if not self.customer(chat, clock, _pick(rng, topic.questions), topic):
            return
        if kind == "helpful":
            if (at := clock.after(rng.uniform(15, 90))) is not None:
                chat.vote(True, at)
                if rng.random() < 0.35 and (at := clock.after(rng.uniform(5, 30))):
                    chat.rate(rng.choice((5, 5, 5, 4, 4)), rng.choice((7, 7, 6, 6, 5)), None, at)
        elif kind == "two_questions":
            if clock.after(rng.uniform(30, 180)) is not None:
                second = self.topic()
                self.customer(chat, clock, _pick(rng, second.questions), second)
        elif kind == "person":
            if clock.after(rng.uniform(20, 120)) is not None:
                if rng.random() < 0.5:
                    self.customer(chat, clock, _pick(rng, PERSON_REQUESTS), topic, wait=0)
                elif (at := clock.after(1)) is not None:
                    chat.ask_for_person(at)
                self.agents_help(chat, clock, PERSON_REPLIES)
        elif kind == "frustrated" and clock.after(rng.uniform(20, 90)) is not None:
            self.customer(chat, clock, _pick(rng, FRUSTRATED), topic, wait=0)
            self.agents_help(chat, clock, PERSON_REPLIES)

    def customer(
        self,
        chat: DemoChat,
        clock: _Clock,
        text: str,
        topic: Topic | None,
        *,
        gap: Gap | None = None,
        wait: float | None = None,
    ) -> bool:
        """The customer writes (after ``wait`` seconds); the bot answers 1-4 s later when the
        machine lets it. ``True`` when the conversation goes on (it was not cut off by ``end``)."""
        at = clock.after(self.rng.uniform(5, 40) if wait is None else wait)
        if at is None:
            return False
        if not chat.customer(text, at):
            return True  # the machine handed it to a person (or a person holds it)
        at = clock.after(self.rng.uniform(1.2, 4.0))
        if at is None:
            return False
        if gap is not None:
            result = cannot_answer(gap, self.known, self.rng)
        elif topic is not None and topic.questions:
            result = answer(topic, self.known, self.rng)
        else:
            return True
        chat.bot(result, at)
        return True

    def agents_help(self, chat: DemoChat, clock: _Clock, replies: Sequence[str]) -> None:
        """If the conversation waits for a person: an agent claims it (in business hours),
        replies, the customer thanks, the agent resolves, the customer may rate it."""
        rng = self.rng
        if chat.state != "awaiting_human":
            return
        agent = chat.session.get(User, self.agent_ids[_weighted(rng, len(self.agent_ids), 0.4)])
        assert agent is not None
        opening = self.hours.next_opening(clock.now) or clock.now
        wait = (opening - clock.now).total_seconds() + rng.uniform(60, 35 * 60)
        if (at := clock.after(wait)) is None:
            return  # still in the queue now
        chat.claim(agent, at)
        if (at := clock.after(rng.uniform(40, 240))) is None:
            return
        chat.agent_reply(agent, _pick(rng, replies), at)
        if rng.random() < 0.8 and (at := clock.after(rng.uniform(30, 300))) is not None:
            chat.customer(_pick(rng, THANKS), at)
        if (at := clock.after(rng.uniform(60, 900))) is None:
            return
        chat.resolve(agent, at)
        if rng.random() < 0.6 and (at := clock.after(rng.uniform(10, 120))) is not None:
            score = rng.choice((2, 3, 4, 4, 5) if wait > 3 * 3600 else (3, 4, 5, 5, 5))
            comment = _pick(rng, CSAT_COMMENTS[score]) if rng.random() < 0.3 else None
            chat.rate(
                score, rng.choice((3, 4, 5, 6, 7)) if rng.random() < 0.7 else None, comment, at
            )


HOURLY: tuple[float, ...] = (0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.5, 1, 2, 3, 3.5, 3.5)  # 00-11
HOURLY += (3, 3, 3, 3, 3, 3, 3.5, 4, 3.5, 2.5, 1.5, 0.6)  # 12-23
"""How busy each local hour is: mid-morning to evening, quiet at night."""


def _arrivals(rng: random.Random, weekend: bool, scale: float) -> list[float]:
    """Seconds after local midnight at which customers start chatting on one day."""
    base = (9 if weekend else 16) * scale
    count = max(0, round(rng.gauss(base, base**0.5)))
    return sorted(
        rng.choices(range(24), weights=HOURLY)[0] * 3600 + rng.uniform(0, 3600)
        for _ in range(count)
    )


def fill_demo_data(
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    days: int = DEFAULT_DAYS,
    now: datetime | None = None,
    seed: int = DEFAULT_SEED,
    force: bool = False,
    articles: Mapping[str, KnownArticle] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DemoSummary:
    """Write ``days`` days of demo conversations ending at ``now`` (default: the current time).

    Raises :class:`DemoDataError` when the database already holds conversations and ``force``
    is false. The same ``seed`` and ``now`` write the same history. Conversations still inside
    their deflection window at ``now`` stay undecided, and escalations of the last hours may
    still wait in the queue: the dashboard shows a day in progress.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    end = aware(now or utcnow())
    start = end - timedelta(days=days)
    with transaction(sessions) as session:
        if has_conversations(session) and not force:
            raise DemoDataError(
                "this database already holds conversations; demo data is only written into an "
                "empty one (pass --force to add it anyway)"
            )
        agent_ids = [agent.id for agent in demo_agents(session)]
    known = dict(articles) if articles is not None else load_demo_articles(settings.kb_path)
    rng = random.Random(seed)
    hours = business_hours(settings.business_hours, settings.business_timezone)
    zone = hours.tz
    generator = _Generator(settings, agent_ids, known, rng, hours)
    summary = DemoSummary(start=start, end=end)
    local_day = start.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    total_days = days + 1
    for number in range(total_days):
        day = local_day + timedelta(days=number)
        trend = number / max(1, total_days - 1)
        for offset in _arrivals(rng, day.weekday() >= 5, 0.9 + 0.25 * trend):
            begins = (day + timedelta(seconds=offset)).astimezone(start.tzinfo)
            if not start <= begins < end:
                continue
            kind = generator.scenario(trend)
            with transaction(sessions) as session:
                visitor = f"demo-{seed}-{end:%Y%m%d%H%M}-{summary.conversations + 1}"
                chat = DemoChat.start(session, settings, visitor, begins)
                generator.run(chat, kind, _Clock(begins, end))
            summary.conversations += 1
            summary.scenarios[kind] += 1
        if progress is not None:
            progress(number + 1, total_days)
    with transaction(sessions) as session:
        close_idle_conversations(session, now=end, window_hours=settings.deflection_window_hours)
    return summary


# --- the command ------------------------------------------------------------------------------


@contextmanager
def _database(settings: Settings) -> Iterator[sessionmaker[Session]]:
    from bot.core.db import make_engine, make_session_factory
    from bot.core.migrate import upgrade_database

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    try:
        upgrade_database(engine)
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def demo_data_command(
    days: int = typer.Option(DEFAULT_DAYS, "--days", min=1, max=366, help="Days of history."),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Same seed, same conversations."),
    force: bool = typer.Option(
        False, "--force", help="Write even though the database already holds conversations."
    ),
) -> None:
    """Fill an empty data directory with weeks of demo conversations for the dashboard."""
    from bot.core.settings import get_settings

    settings = get_settings()
    with _database(settings) as sessions:
        try:
            summary = fill_demo_data(
                sessions,
                settings,
                days=days,
                seed=seed,
                force=force,
                progress=lambda done, total: typer.echo(f"\r  day {done}/{total}", nl=False),
            )
        except DemoDataError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(
        f"\n{summary.conversations} demo conversations from {summary.start:%Y-%m-%d} to "
        f"{summary.end:%Y-%m-%d} in {settings.data_dir} (demo agents: "
        f"{', '.join(summary.agents)})."
    )
    typer.echo(
        "See them at /reports: sign in as a lead "
        "(supportbot user add you@example.com --role lead --password)."
    )
