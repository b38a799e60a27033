"""Escalation triggers: what a customer's message says about the conversation, as facts.

Each detector is a plain function over text so it can be tested table-driven with the phrasings
real customers use; :func:`read` gathers them into :class:`Signals`. Whether a signal hands the
conversation to a person is not decided here but in :mod:`bot.handoff.policy`. The "asks for a
person" detector lives in :mod:`bot.knowledge.intents`, because the stateless ``/api/ask``
needs the very same one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bot.core.text import content_similarity, normalise
from bot.knowledge.intents import asks_for_human

# --- sensitive topics -----------------------------------------------------------------------

TOPIC_PATTERNS: dict[str, str] = {
    "refund_dispute": (
        r"\bchargebacks?\b|\bcharge\s*back\b|\bdispute[sd]?\b|\bdisputing\b|\bfraudulent\s+charge"
        r"|\bunauthori[sz]ed\s+(?:charge|payment|transaction)|\bcharged\s+twice\b"
        r"|\bdouble\s+charged\b|\brefund\b.{0,40}\b(?:refused|denied|rejected|never|still\s+not)\b"
        r"|\b(?:bank|credit\s+card\s+company)\b.{0,40}\b(?:reverse|claim|dispute)"
    ),
    "legal": (
        r"\blawyers?\b|\battorneys?\b|\bsue\b|\bsuing\b|\blawsuit\b|\blegal\s+action\b"
        r"|\bsmall\s+claims\b|\bsolicitor\b|\bcourt\b|\bgdpr\s+(?:request|complaint)\b"
        r"|\bconsumer\s+protection\b|\bombudsman\b|\btrading\s+standards\b"
    ),
    "account_security": (
        r"\bhack(?:ed|er|ers|ing)?\b|\bcompromised\b|\bsomeone\s+(?:else\s+)?(?:logged|accessed"
        r"|is\s+using|used)\b|\bstolen\s+(?:account|password|card|identity)\b|\bidentity\s+theft\b"
        r"|\bphishing\b|\bunauthori[sz]ed\s+(?:access|login|log\s*in)\b|\btaken\s+over\b"
        r"|\bsuspicious\s+(?:login|activity|email)\b"
    ),
    "billing_error": r"\bovercharged\b|\bwrong\s+(?:amount|charge)\b|\binvoice\s+is\s+wrong\b",
    "data_privacy": (
        r"\bdelete\s+(?:all\s+)?my\s+(?:data|account|personal)\b|\bdata\s+breach\b"
        r"|\bright\s+to\s+be\s+forgotten\b|\bsubject\s+access\s+request\b"
    ),
}


def sensitive_topic(text: str, topics: list[str]) -> str | None:
    """The first configured sensitive topic the text touches, or ``None``.

    ``topics`` holds built-in names (keys of :data:`TOPIC_PATTERNS`) or custom entries
    ``name=phrase|other phrase`` (plain phrases, matched as whole words, case-insensitive).
    """
    lowered = normalise(text)
    for entry in topics:
        name, _, phrases = entry.partition("=")
        name = name.strip()
        if phrases:
            alternatives = [re.escape(p.strip().lower()) for p in phrases.split("|") if p.strip()]
            pattern = r"\b(?:" + "|".join(alternatives) + r")\b" if alternatives else None
        else:
            pattern = TOPIC_PATTERNS.get(name)
        if pattern and re.search(pattern, lowered):
            return name
    return None


# --- frustration ----------------------------------------------------------------------------

_FRUSTRATION = [
    (re.compile(r"\b(?:f+u+c+k+\w*|wtf|shit+\w*|bullshit|crap|damn\s+it|goddamn|fml)\b"), 2),
    (
        re.compile(
            r"\b(?:useless|pointless|worthless|ridiculous|pathetic|joke|scam|garbage|trash)\b"
        ),
        1,
    ),
    (
        re.compile(
            r"\b(?:furious|livid|fed\s+up|sick\s+of|sick\s+and\s+tired|frustrat\w+|angry|pissed)\b"
        ),
        1,
    ),
    (re.compile(r"\b(?:worst|terrible|awful|horrible|unacceptable|disgusting|incompetent)\b"), 1),
    (
        re.compile(
            r"\b(?:waste\s+of\s+(?:my\s+)?time|not\s+helping|doesn'?t\s+help|you\s+(?:don'?t|do\s+not)\s+understand|stupid\s+bot|dumb\s+bot)\b"
        ),
        2,
    ),
    (
        re.compile(r"\b(?:again|already\s+told\s+you|for\s+the\s+\w+\s+time|how\s+many\s+times)\b"),
        1,
    ),
    (re.compile(r"[!?]{3,}"), 1),
]


def frustration_score(text: str) -> int:
    """A rough score: profanity and "useless bot" weigh most; shouting adds one. One mild word
    ("this is awful weather") scores 1; the policy decides how much is too much."""
    lowered = normalise(text)
    score = sum(weight for pattern, weight in _FRUSTRATION if pattern.search(lowered))
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) > 0.7:
        score += 1
    return score


# --- rephrasing -----------------------------------------------------------------------------

REPHRASE_THRESHOLD = 0.5
"""Content-word overlap from which two messages ask the same thing."""


def is_rephrase(previous: str, current: str) -> bool:
    """Whether ``current`` asks the same thing as ``previous`` again (a sign the answer failed)."""
    if normalise(previous).strip(" ?!.") == normalise(current).strip(" ?!."):
        return True
    return content_similarity(previous, current) >= REPHRASE_THRESHOLD


# --- all of them ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Signals:
    """What the customer's latest message or action says; :mod:`bot.handoff.policy` weighs it.

    ``failed_answer`` is set when this message or vote judged the bot's last answer failed (a
    rephrase, or "not helpful"); ``failures_in_a_row`` then counts the distinct failed answers
    since the last helpful one, this one included.
    """

    person_request: Literal["words", "button"] | None = None
    sensitive_topic: str | None = None
    frustration: int = 0
    failed_answer: Literal["rephrase", "feedback"] | None = None
    failures_in_a_row: int = 0


QUIET = Signals()
"""Nothing said that could matter for a handoff (a bot answer is judged on its own)."""


def read(text: str, topics: list[str]) -> Signals:
    """Every signal one customer message carries on its own (repeated failure needs the
    conversation's history: the state machine adds it)."""
    return Signals(
        person_request="words" if asks_for_human(text) else None,
        sensitive_topic=sensitive_topic(text, topics),
        frustration=frustration_score(text),
    )
