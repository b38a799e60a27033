"""Escalation triggers over the phrasings real customers use, and the classic false positives.

The "asks for a person" detector is bot.knowledge.intents (the stateless /api/ask uses it too);
the policy turns signals into decisions (tests/unit/test_policy.py).
"""

from __future__ import annotations

import pytest

from bot.handoff.policy import decide
from bot.handoff.triggers import Signals, frustration_score, is_rephrase, read
from bot.knowledge.intents import asks_for_human

TOPICS = ["refund_dispute", "legal", "account_security"]

ASKS_FOR_A_PERSON = [
    "talk to a human",
    "Can I speak to someone?",
    "I want to talk to a real person",
    "human please",
    "agent",
    "Agent!!",
    "operator",
    "representative",
    "connect me with an agent",
    "Is there a human I can talk to?",
    "get me a person",
    "I need a representative",
    "let me speak with customer service",
    "transfer me to a live agent",
    "I'd rather chat with your support team",
    "can I talk with somebody from support",
    "REAL PERSON PLEASE",
    "Please put me through to a human being",
    "i want to speak to a manager",
    "Can someone call me?",
    "no more bots",
    "I don't want to talk to a bot",
    "speak to human",
    "is anyone there? I need help from a person",
    "live chat",
    "can i get an actual human",
    "I’d like to speak to someone please",  # typographic apostrophe
    # what the stateless /api/ask detector used to catch on its own
    "I want to speak to a real person",
    "live agent",
    "human agent",
    "live person",
    "real support",
    "talk to one of your staff",
    "can i speak to one of your agents",
    "Could you connect me to a person?",
    "put me through to somebody in charge",
]

NOT_A_REQUEST = [
    "was this a human error?",
    "contact human resources",
    "I don't need to talk to a person, just tell me the fee",
    "Where is my parcel?",
    "how do I change my delivery address",
    "my user agent string is wrong",
    "the courier left my parcel with someone else",
    "Is the label human readable?",
    "Which agent delivers to Spain?",
    "Can I send a parcel to someone in France?",
    "I do not want a refund, I want a replacement",
    "How do I contact the seller about a human-size bean bag?",
    "what do you call someone who was born in segovia",
]


@pytest.mark.parametrize("text", ASKS_FOR_A_PERSON)
def test_requests_for_a_person_are_recognised(text: str) -> None:
    assert asks_for_human(text), text
    assert read(text, TOPICS).person_request == "words"
    assert decide(read(text, TOPICS)).reason == "customer_request"


@pytest.mark.parametrize("text", NOT_A_REQUEST)
def test_false_friends_are_not_requests(text: str) -> None:
    assert not asks_for_human(text), text


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("My account was hacked", "account_security"),
        ("someone logged into my account from another country", "account_security"),
        ("I will file a chargeback with my bank", "refund_dispute"),
        ("I was charged twice for one label", "refund_dispute"),
        ("I want to dispute this charge", "refund_dispute"),
        ("my lawyer will hear about this", "legal"),
        ("I'm going to take legal action", "legal"),
        ("How do I get a refund?", None),
        ("What does the tracking status mean?", None),
    ],
)
def test_sensitive_topics(text: str, topic: str | None) -> None:
    assert read(text, TOPICS).sensitive_topic == topic


def test_topics_are_configurable() -> None:
    assert read("I was hacked", ["legal"]) == Signals()  # account_security switched off
    custom = read("there is a recall on my product", ["safety=recall|injury"])
    assert custom.sensitive_topic == "safety"


@pytest.mark.parametrize(
    ("text", "strong"),
    [
        ("This is useless, what a waste of time", True),
        ("this bot is USELESS!!!", True),
        ("wtf is this", True),
        ("I'm sick of this, you don't understand", True),
        ("WHERE IS MY PARCEL I HAVE BEEN WAITING FOR WEEKS", False),
        ("the weather was terrible so the parcel is late?", False),
        ("thanks, that helped", False),
    ],
)
def test_strong_frustration_hands_over_and_one_mild_word_does_not(text: str, strong: bool) -> None:
    signals = read(text, [])
    assert signals.frustration == frustration_score(text)
    assert (decide(signals).reason == "frustration") is strong


@pytest.mark.parametrize(
    ("before", "after", "same"),
    [
        ("How do I change my delivery address?", "how can I change the delivery address", True),
        ("How do I change my delivery address?", "How do I change my delivery address?", True),
        ("change delivery address", "I need to change the address for delivery", True),
        ("How do I change my delivery address?", "what are your opening hours", False),
        ("Where is my parcel?", "thanks!", False),
    ],
)
def test_rephrase(before: str, after: str, same: bool) -> None:
    assert is_rephrase(before, after) is same
