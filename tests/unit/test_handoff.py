"""The state machine in bot/handoff/machine.py, driven like the chat socket and the agent API
drive it, one transaction per step, with a frozen clock.

``Sim`` is also the script runner of tests/unit/test_deflection.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.conversations.store import create_conversation, events_of, messages_after
from bot.core.db import transaction
from bot.core.models import Conversation, QueueItem, User
from bot.core.schemas import AnswerResult, Source
from bot.core.settings import Settings
from bot.handoff import machine as handoff
from bot.handoff.ledger import close_idle_conversations
from bot.people.users import create_user

# Monday 2026-11-23 10:00 UTC: inside the default business hours (Mon-Fri 09:00-17:00 UTC).
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
BOT_DELAY = timedelta(seconds=2)


@dataclass
class Sim:
    """One customer conversation, stepped with an explicit clock (minutes after ``start``)."""

    sessions: sessionmaker[Session]
    settings: Settings
    start: datetime = T0
    visitor: dict[str, Any] | None = None
    conversation_id: str = ""
    now: datetime = T0
    frames: list[dict[str, Any]] = field(default_factory=list)
    agent_events: list[dict[str, Any]] = field(default_factory=list)
    bot_answers: int = 0
    last_customer_seq: int = 0

    def __post_init__(self) -> None:
        self.now = self.start
        with transaction(self.sessions) as session:
            conv, _ = create_conversation(session, visitor=self.visitor, now=self.now)
            self.conversation_id = conv.id

    def at(self, minutes: float) -> Sim:
        self.now = self.start + timedelta(minutes=minutes)
        return self

    def _keep(self, session: Session, frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.frames += frames
        self.agent_events += handoff.drain_agent_events(session)
        return frames

    def customer(
        self,
        text: str,
        *,
        answer: str | None = "Here is how that works.",
        escalate: bool = False,
        reason: str | None = None,
        article: str = "returns/return-policy",
    ) -> bool:
        """The customer writes; the bot answers (2 s later) when the state machine lets it."""
        with transaction(self.sessions) as session:
            turn = handoff.customer_wrote(
                session, self.conversation_id, text, settings=self.settings, now=self.now
            )
            self._keep(session, turn.frames)
            self.last_customer_seq = turn.message.seq
        if turn.bot_should_answer and answer is not None:
            self.bot(answer, escalate=escalate, reason=reason, article=article)
        return turn.bot_should_answer

    def bot(
        self, answer: str, *, escalate: bool = False, reason: str | None = None, article: str = ""
    ) -> int | None:
        """The bot's answer to the last customer message; ``None`` when it was not stored."""
        when = self.now + BOT_DELAY
        result = AnswerResult(
            answer=answer,
            escalate=escalate,
            reason=reason,
            confidence=0.2 if escalate else 0.8,
            sources=[Source(article_id=article, title=article.title(), score=0.8)]
            if article
            else [],
        )
        with transaction(self.sessions) as session:
            frames = handoff.bot_answered(
                session,
                self.conversation_id,
                result,
                reply_to=self.last_customer_seq,
                settings=self.settings,
                now=when,
            )
            if frames is None:
                return None
            self._keep(session, frames)
        self.bot_answers += 1
        return int(frames[0]["seq"])

    def last_bot_seq(self) -> int:
        with self.sessions() as session:
            return max(
                m.seq for m in messages_after(session, self.conversation_id) if m.role == "bot"
            )

    def feedback(self, helpful: bool, seq: int | None = None) -> None:
        seq = seq or self.last_bot_seq()
        with transaction(self.sessions) as session:
            self._keep(
                session,
                handoff.on_feedback(
                    session,
                    self.conversation_id,
                    seq,
                    helpful,
                    settings=self.settings,
                    now=self.now,
                ),
            )

    def handoff_request(self) -> None:
        with transaction(self.sessions) as session:
            self._keep(
                session,
                handoff.request_handoff(
                    session, self.conversation_id, settings=self.settings, now=self.now
                ),
            )

    def agent(self, action: str, email: str, text: str = "") -> list[dict[str, Any]]:
        with transaction(self.sessions) as session:
            user = session.scalar(select(User).where(User.email == email))
            if user is None:
                user, _ = create_user(session, email, "agent")
            if action == "reply":
                frames = handoff.agent_reply(
                    session, self.conversation_id, user, text, now=self.now
                )
            else:
                frames = getattr(handoff, action)(session, self.conversation_id, user, now=self.now)
            return self._keep(session, frames)

    def close_idle(self, minutes: float) -> None:
        with transaction(self.sessions) as session:
            close_idle_conversations(
                session,
                now=self.start + timedelta(minutes=minutes),
                window_hours=self.settings.deflection_window_hours,
            )

    # -- reading back ----------------------------------------------------------------------

    def state(self) -> str:
        with self.sessions() as session:
            conv = session.get(Conversation, self.conversation_id)
            assert conv is not None
            return conv.state

    def messages(self) -> list[tuple[str, str]]:
        with self.sessions() as session:
            return [(m.role, m.text) for m in messages_after(session, self.conversation_id)]

    def queue_items(self) -> list[QueueItem]:
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(QueueItem).where(QueueItem.conversation_id == self.conversation_id)
                )
            )

    def event_kinds(self) -> list[str]:
        with self.sessions() as session:
            return [e.kind for e in events_of(session, self.conversation_id)]


@pytest.fixture
def sim(sessions: sessionmaker[Session], hsettings: Settings) -> Sim:
    return Sim(sessions, hsettings)


def frame_types(frames: list[dict[str, Any]]) -> list[str]:
    return [f["type"] for f in frames]


# --- escalation -------------------------------------------------------------------------------


def test_asking_for_a_person_escalates_with_state_frame_and_stored_system_message(sim: Sim) -> None:
    assert sim.customer("Where is my parcel?") is True
    assert sim.customer("can I talk to a real person please") is False
    assert sim.state() == "awaiting_human"
    state = [f for f in sim.frames if f["type"] == "state"]
    assert state == [{"type": "state", "state": "awaiting_human", "reason": "customer_request"}]
    system = [f for f in sim.frames if f["type"] == "message" and f["role"] == "system"]
    assert len(system) == 1 and "Connecting you with a person" in system[0]["text"]
    # The system message is stored, so a resuming widget replays it.
    assert ("system", system[0]["text"]) in sim.messages()
    [item] = sim.queue_items()
    assert item.reason == "customer_request" and item.open_key == sim.conversation_id
    assert "talk to a real person" in (item.detail or "")
    assert item.sources and item.sources[0]["article_id"] == "returns/return-policy"
    assert any(e["type"] == "queue" and e["action"] == "added" for e in sim.agent_events)


def test_escalating_twice_creates_one_queue_item(sim: Sim) -> None:
    sim.customer("Where is my parcel?")
    sim.handoff_request()
    sim.handoff_request()
    sim.customer("talk to a human!!")
    sim.bot("I'm not sure.", escalate=True, reason="low_confidence")
    assert len(sim.queue_items()) == 1
    assert frame_types(sim.frames).count("state") == 1
    assert sim.event_kinds().count("escalated") == 1


def test_bot_stays_silent_while_a_person_holds_the_conversation(sim: Sim) -> None:
    sim.customer("I want to speak to an agent")
    assert sim.customer("hello? anyone?") is False  # awaiting_human
    sim.at(3).agent("claim", "ana@example.com")
    assert sim.state() == "human"
    assert sim.at(4).customer("my parcel 123 is lost") is False
    assert sim.bot_answers == 0


def test_an_answer_finished_after_the_handoff_may_not_be_stored(sim: Sim) -> None:
    sim.customer("Where is my parcel?", answer=None)  # the bot starts answering...
    sim.handoff_request()  # ...the customer presses "talk to a person" meanwhile
    assert sim.bot("Your parcel is on its way.") is None
    assert ("bot", "Your parcel is on its way.") not in sim.messages()
    [item] = sim.queue_items()
    assert (item.reason, item.detail) == (
        "customer_request",
        "pressed talk to a person; last customer message: Where is my parcel?",
    )


def _waiting_answer(sim: Sim, text: str, confidence: float) -> list[dict[str, Any]] | None:
    """The customer writes while waiting; the bot's answer (2 s later) goes the waiting way."""
    with transaction(sim.sessions) as session:
        turn = handoff.customer_wrote(
            session, sim.conversation_id, text, settings=sim.settings, now=sim.now
        )
        sim._keep(session, turn.frames)
    assert (turn.bot_should_answer, turn.answer_while_waiting) == (False, True)
    result = AnswerResult(
        answer="Refunds are paid within 5 days.",
        escalate=False,
        confidence=confidence,
        sources=[Source(article_id="billing/refunds", title="Refunds", score=confidence)],
    )
    with transaction(sim.sessions) as session:
        frames = handoff.bot_answered(
            session,
            sim.conversation_id,
            result,
            reply_to=turn.message.seq,
            settings=sim.settings,
            now=sim.now + BOT_DELAY,
            while_waiting=True,
        )
        if frames is not None:
            sim._keep(session, frames)
    return frames


def test_while_waiting_the_bot_answers_what_it_is_sure_of_and_the_queue_stays(sim: Sim) -> None:
    sim.customer("talk to a human")
    frames = _waiting_answer(sim.at(1), "How long do refunds take?", confidence=0.9)
    assert frames is not None and [f["type"] for f in frames] == ["message"]
    assert frames[0]["role"] == "bot" and frames[0]["reply_to"] == 3
    assert frames[0]["text"].startswith("Refunds are paid within 5 days.")
    assert "virtual assistant" in frames[0]["text"] and "still in the queue" in frames[0]["text"]
    assert sim.state() == "awaiting_human"
    [item] = sim.queue_items()
    assert item.open_key == sim.conversation_id and item.closed_at is None
    assert [f["state"] for f in sim.frames if f["type"] == "state"] == ["awaiting_human"]
    # A person still follows up: the conversation counts as escalated, not deflected.
    from bot.handoff.ledger import ledger

    with sim.sessions() as session:
        assert ledger(session)[sim.conversation_id].outcome == "escalated"


def test_while_waiting_a_doubtful_answer_is_left_to_the_person(sim: Sim) -> None:
    sim.customer("talk to a human")
    # 0.7 would be answered in a bot conversation (answer_threshold 0.6), not while waiting
    assert _waiting_answer(sim.at(1), "Can I pay with a voucher?", confidence=0.7) is None
    assert [role for role, _ in sim.messages()].count("bot") == 0
    assert sim.state() == "awaiting_human" and sim.queue_items()[0].open_key


def test_while_waiting_the_customers_words_still_come_first(sim: Sim) -> None:
    sim.customer("talk to a human")
    with transaction(sim.sessions) as session:
        for text in ("hello?? I said a real person", "this is useless, total waste of time!!!"):
            turn = handoff.customer_wrote(
                session, sim.conversation_id, text, settings=sim.settings, now=sim.now
            )
            assert (turn.bot_should_answer, turn.answer_while_waiting) == (False, False)


def test_a_waiting_answer_is_dropped_once_a_person_claimed_the_conversation(sim: Sim) -> None:
    sim.customer("talk to a human")
    with transaction(sim.sessions) as session:
        turn = handoff.customer_wrote(
            session, sim.conversation_id, "How long do refunds take?", settings=sim.settings
        )
    assert turn.answer_while_waiting
    sim.at(1).agent("claim", "ana@example.com")  # ...while the bot was still answering
    result = AnswerResult(answer="Refunds take 5 days.", escalate=False, confidence=0.95)
    with transaction(sim.sessions) as session:
        frames = handoff.bot_answered(
            session,
            sim.conversation_id,
            result,
            reply_to=turn.message.seq,
            settings=sim.settings,
            while_waiting=True,
        )
    assert frames is None
    assert ("bot", "Refunds take 5 days.") not in sim.messages()
    # and once a person holds it, the bot does not even try
    with transaction(sim.sessions) as session:
        turn = handoff.customer_wrote(
            session, sim.conversation_id, "and how long for express?", settings=sim.settings
        )
    assert (turn.bot_should_answer, turn.answer_while_waiting) == (False, False)


def test_an_email_left_while_waiting_is_kept_not_answered(sim: Sim) -> None:
    sim.customer("talk to a human")
    with transaction(sim.sessions) as session:
        turn = handoff.customer_wrote(
            session, sim.conversation_id, "it's jo@example.com", settings=sim.settings
        )
    assert (turn.bot_should_answer, turn.answer_while_waiting) == (False, False)
    assert turn.frames and "jo@example.com" in turn.frames[0]["text"]


def test_low_confidence_answer_escalates_with_the_answers_sources(sim: Sim) -> None:
    sim.customer(
        "Can you ship a live animal?",
        escalate=True,
        reason="no_knowledge",
        article="shipping/prohibited-items",
    )
    assert sim.state() == "awaiting_human"
    [item] = sim.queue_items()
    assert item.reason == "no_knowledge"
    assert item.sources == [
        {
            "article_id": "shipping/prohibited-items",
            "title": "Shipping/Prohibited-Items",
            "url": None,
            "score": 0.8,
        }
    ]


def test_a_failed_answer_hands_over_with_reason_error_and_says_so(sim: Sim) -> None:
    from bot.handoff.ledger import ledger
    from bot.handoff.policy import failed_answer

    sim.customer("How long do refunds take?", answer=None)
    result = failed_answer("Refunds are paid within ")
    with transaction(sim.sessions) as session:
        frames = handoff.bot_answered(
            session, sim.conversation_id, result, reply_to=1, settings=sim.settings, now=sim.now
        )
    assert frames is not None
    assert frames[0]["text"].startswith("Refunds are paid within \n\nSorry, something went wrong")
    assert [f["reason"] for f in frames if f["type"] == "state"] == ["error"]
    [item] = sim.queue_items()
    assert item.reason == "error" and (item.detail or "").startswith("bot answer #2 (")
    with sim.sessions() as session:  # the same call kept the ledger in step
        assert ledger(session)[sim.conversation_id].reason == "error"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Someone hacked my account and changed my address", "sensitive_topic"),
        ("I'm filing a chargeback", "sensitive_topic"),
        ("This is useless, what a waste of time!!!", "frustration"),
    ],
)
def test_triggers_escalate_before_the_bot_answers(sim: Sim, text: str, reason: str) -> None:
    assert sim.customer(text) is False
    assert sim.queue_items()[0].reason == reason
    assert sim.bot_answers == 0


def test_two_unhelpful_answers_in_a_row_escalate(sim: Sim) -> None:
    sim.customer("How long does a refund take?")
    sim.feedback(False)
    assert sim.state() == "bot"
    sim.customer("What is the fee for parcels to Spain?")
    sim.feedback(False)
    assert sim.state() == "awaiting_human"
    assert sim.queue_items()[0].reason == "repeated_failure"


def test_helpful_in_between_resets_the_count(sim: Sim) -> None:
    sim.customer("How long does a refund take?")
    sim.feedback(False)
    sim.customer("What is the fee for parcels to Spain?")
    sim.feedback(True)
    sim.customer("Do you deliver on Sundays?")
    sim.feedback(False)
    assert sim.state() == "bot"


def test_a_rephrase_counts_as_a_failed_answer(sim: Sim) -> None:
    sim.customer("How do I change my delivery address?")
    sim.feedback(False)
    # Thumbs-down and a rephrase judge the same answer: the bot gets one more try...
    assert sim.customer("how can I change the delivery address") is True
    # ...and a second failed answer hands over.
    sim.feedback(False)
    assert sim.state() == "awaiting_human"
    assert sim.queue_items()[0].reason == "repeated_failure"


def test_rephrasing_twice_escalates(sim: Sim) -> None:
    sim.customer("How do I change my delivery address?")
    assert sim.customer("how can I change the delivery address") is True
    assert sim.customer("change my delivery address how") is False
    assert sim.state() == "awaiting_human"


def test_feedback_on_a_non_bot_message_is_refused(sim: Sim) -> None:
    sim.customer("hi")
    with pytest.raises(handoff.HandoffError):
        sim.feedback(False, seq=1)  # seq 1 is the customer's


# --- agents -----------------------------------------------------------------------------------


def test_claim_reply_resolve_then_a_new_message_goes_to_the_bot_not_the_queue(sim: Sim) -> None:
    sim.customer("talk to a human")
    sim.at(2).agent("claim", "ana@example.com")
    frames = sim.at(3).agent("reply", "ana@example.com", "Hi, I'm Ana. Let me check.")
    assert frames[-1]["role"] == "agent" and frames[-1]["author"] == "Ana"
    sim.at(10).agent("resolve", "ana@example.com")
    assert sim.state() == "resolved"
    [item] = sim.queue_items()
    assert item.open_key is None and item.closed_at is not None
    # The customer writes again: a new bot turn, no new queue item, no loop.
    assert sim.at(60).customer("Thanks! One more thing: do you deliver on Sundays?") is True
    assert sim.state() == "bot"
    assert len(sim.queue_items()) == 1
    states = [f["state"] for f in sim.frames if f["type"] == "state"]
    assert states == ["awaiting_human", "human", "resolved", "bot"]


def test_asking_again_after_resolve_opens_a_new_item(sim: Sim) -> None:
    sim.customer("talk to a human")
    sim.at(2).agent("claim", "ana@example.com")
    sim.at(5).agent("resolve", "ana@example.com")
    sim.at(30).handoff_request()
    assert sim.state() == "awaiting_human"
    items = sim.queue_items()
    assert len(items) == 2 and items[0].open_key is None and items[1].open_key


def test_reopen_to_agent_setting(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, reopen_resolved="agent", _env_file=None)
    sim = Sim(sessions, settings)
    sim.customer("talk to a human")
    sim.at(2).agent("claim", "ana@example.com")
    sim.at(5).agent("resolve", "ana@example.com")
    assert sim.at(30).customer("it broke again") is False
    assert sim.state() == "human"
    items = sim.queue_items()
    assert len(items) == 2 and items[-1].claimed_by is not None and items[-1].open_key


def test_handback_gives_the_conversation_to_the_bot(sim: Sim) -> None:
    sim.customer("talk to a human")
    sim.at(2).agent("claim", "ana@example.com")
    sim.at(3).agent("handback", "ana@example.com")
    assert sim.state() == "bot"
    assert sim.at(4).customer("Where is my parcel?") is True
    assert sim.queue_items()[0].open_key is None


def test_another_agent_cannot_take_a_claimed_conversation(sim: Sim) -> None:
    sim.customer("talk to a human")
    sim.agent("claim", "ana@example.com")
    with pytest.raises(handoff.HandoffError):
        sim.agent("claim", "bob@example.com")
    with pytest.raises(handoff.HandoffError):
        sim.agent("reply", "bob@example.com", "hi")


def test_invalid_transitions_are_refused(sim: Sim) -> None:
    sim.customer("Where is my parcel?")
    with pytest.raises(handoff.HandoffError):
        sim.agent("claim", "ana@example.com")  # nothing to claim: the bot holds it
    with pytest.raises(handoff.HandoffError):
        sim.agent("reply", "ana@example.com", "hi")


# --- out of hours -----------------------------------------------------------------------------


def test_out_of_hours_tells_when_and_keeps_an_email(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        business_hours="Mon-Fri 09:00-17:00",
        business_timezone="Europe/Berlin",
        smtp_url="smtp://127.0.0.1:2525",  # replies by e-mail on: the notice asks for an address
        _env_file=None,
    )
    friday_night = datetime(2026, 11, 27, 21, 0, tzinfo=UTC)
    sim = Sim(sessions, settings, start=friday_night)
    sim.customer("I need a person")
    [system] = [f for f in sim.frames if f["type"] == "message" and f["role"] == "system"]
    assert "on Monday at 09:00 (Europe/Berlin)" in system["text"]
    assert "email" in system["text"]
    sim.at(1).customer("sure, it's jo@example.org")
    with sessions() as session:
        conv = session.get(Conversation, sim.conversation_id)
        assert conv is not None and conv.contact_email == "jo@example.org"
    assert sim.queue_items()[0].open_key  # the item waits for Monday
    assert sim.bot_answers == 0


# --- locking ----------------------------------------------------------------------------------


def test_concurrent_escalations_from_two_threads_make_one_item(
    sessions: sessionmaker[Session], hsettings: Settings
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    sim = Sim(sessions, hsettings)
    sim.customer("Where is my parcel?")

    def escalate(_: int) -> int:
        with transaction(sessions) as session:
            return len(handoff.request_handoff(session, sim.conversation_id, settings=hsettings))

    with ThreadPoolExecutor(4) as pool:
        frame_counts = list(pool.map(escalate, range(8)))
    assert sum(1 for n in frame_counts if n) == 1
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(QueueItem)) == 1
