"""Escalation triggers read from what the customer writes.

Each detector is a plain function over text so it can be tested table-driven with the phrasings
real customers use. They err on the side of recall for "I want a person" (a missed request is
the failure customers hate most) while refusing the classic false positives ("human error",
"human resources", "I don't need an agent").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# --- asking for a person --------------------------------------------------------------------

_PERSON = (
    r"(?:a\s+|an\s+|the\s+|some\s+|your\s+|real\s+|actual\s+|live\s+|human\s+|another\s+)*"
    r"(?:human(?:\s+being)?|person|people|someone|somebody|agent|operator|representative|rep|"
    r"staff(?:\s+member)?|support\s+(?:agent|person|staff|team)|customer\s+(?:service|support)|"
    r"team\s+member|manager|supervisor|advisor|adviser|employee)"
)
_HUMAN_REQUEST = [
    # "talk to a human", "speak with someone", "I'd like to chat with an agent"
    re.compile(
        rf"\b(?:talk|speak|chat)\s+(?:directly\s+|right\s+now\s+)?(?:to|with)\s+{_PERSON}\b"
    ),
    # "connect me with an agent", "put me through to a human", "transfer me to a live agent"
    re.compile(
        r"\b(?:connect|transfer|put|pass|forward|hand|escalate|send|switch)\s+me\s+"
        rf"(?:through\s+|over\s+|on\s+)?(?:to|with)\s+{_PERSON}\b"
    ),
    # "get me a person", "I need a representative", "can I get an actual human"
    re.compile(rf"\b(?:get|give|find)\s+me\s+{_PERSON}\b"),
    re.compile(
        r"\b(?:need|want|prefer|request|get|have)\s+(?:to\s+(?:talk|speak|chat)\s+(?:to|with)\s+)?"
        r"(?:a\s+|an\s+|some\s+)?(?:real\s+|actual\s+|live\s+)?"
        r"(?:human(?:\s+being)?|person|agent|operator|representative|rep|manager|supervisor)\b"
    ),
    # "I need help from a person"
    re.compile(rf"\b(?:help|assistance|answer)\s+from\s+{_PERSON}\b"),
    # "human please", "agent!", "operator", "representative" as the whole message
    re.compile(
        r"^\s*(?:a\s+|an\s+)?(?:real\s+|live\s+)?(?:human|agent|operator|representative|person|"
        r"real person|live agent|live chat|customer service)"
        r"(?:\s+(?:please|pls|plz|now|asap))?\s*[.!?]*\s*$"
    ),
    # "is there a human I can talk to", "can a person help me", "are there any real people"
    re.compile(
        rf"\b(?:is\s+there|are\s+there|can|could|may)\s+(?:any|an?|some)?\s*{_PERSON}\s+"
        r"(?:i\s+can|to|who|that|help|available|online|here|there|around|look)"
    ),
    # "I'd like to speak to your team", "let me talk to support"
    re.compile(
        r"\b(?:talk|speak|chat)\s+(?:to|with)\s+(?:your\s+)?(?:support|team|staff|someone)\b"
    ),
    # "stop the bot", "no more bots", "not a bot", "not a machine"
    re.compile(
        r"\b(?:not|no\s+more|stop|enough\s+of|done\s+with)\s+(?:this\s+|the\s+|a\s+|talking\s+to\s+"
        r"(?:a\s+|the\s+|this\s+)?)?(?:bots?|robots?|machines?|ai|chatbots?|automated)\b"
    ),
    re.compile(r"\blive\s+(?:chat|agent|support|person)\b"),
    re.compile(
        r"\b(?:don'?t|do\s+not)\s+want\s+(?:to\s+(?:talk|speak|chat)\s+(?:to|with)\s+)?"
        r"(?:a\s+|the\s+|this\s+|your\s+)?(?:bot|robot|machine|chatbot|ai)\b"
    ),
    re.compile(r"\b(?:call|phone)\s+(?:me|someone|you|support)\b"),
    re.compile(r"\bhuman\s+(?:please|pls|plz|support|help|agent|being)\b"),
]
_NEGATED = re.compile(
    r"\b(?:don'?t|do\s+not|no\s+need\s+to|not\s+necessary\s+to|never|won'?t|without)\s+"
    r"(?:\w+\s+){0,3}?(?:need|want|talk|speak|chat|a|an|to|any)\b"
    r"(?:\s+\w+){0,4}\s+(?:human|person|agent|someone|operator|representative)"
)
_FALSE_FRIENDS = re.compile(
    r"\bhuman\s+(?:error|resources|rights|readable|nature|body|trafficking)\b"
    r"|\bhr\b|\buser\s+agent\b|\bagent\s+(?:string|software|version)\b"
    r"|\bshipping\s+agent\b|\bpeople\s+(?:who|that)\s+(?:ordered|bought)"
)


def asks_for_human(text: str) -> bool:
    """Whether the customer asks to be handed to a person, in any common phrasing."""
    lowered = _normalise(text)
    if _NEGATED.search(lowered):
        return False
    cleaned = _FALSE_FRIENDS.sub(" ", lowered)
    return any(pattern.search(cleaned) for pattern in _HUMAN_REQUEST)


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
    lowered = _normalise(text)
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
FRUSTRATION_THRESHOLD = 2


def frustration_score(text: str) -> int:
    """A rough score: profanity and "useless bot" weigh most; shouting adds one."""
    lowered = _normalise(text)
    score = sum(weight for pattern, weight in _FRUSTRATION if pattern.search(lowered))
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) > 0.7:
        score += 1
    return score


def is_strongly_frustrated(text: str) -> bool:
    """Strong frustration only: one mild word ("this is awful weather") is not enough."""
    return frustration_score(text) >= FRUSTRATION_THRESHOLD


# --- rephrasing -----------------------------------------------------------------------------

_STOP_WORDS = """
a an the i me my we our you your it its is are was were be been do does did to of in on for
with and or but not no so this that how what why when where can could would should please pls
just still again already really any some there here have has had get got
"""
_STOP = frozenset(_STOP_WORDS.split())


def content_words(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9]+", _normalise(text))
    return {_stem(w) for w in words if w not in _STOP and len(w) > 1}


def similarity(a: str, b: str) -> float:
    """Jaccard overlap of content words: cheap, explainable, good enough for 'asked again'."""
    wa, wb = content_words(a), content_words(b)
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / len(wa | wb)


REPHRASE_THRESHOLD = 0.5


def is_rephrase(previous: str, current: str) -> bool:
    """Whether ``current`` asks the same thing as ``previous`` again (a sign the answer failed)."""
    if _normalise(previous).strip(" ?!.") == _normalise(current).strip(" ?!."):
        return True
    return similarity(previous, current) >= REPHRASE_THRESHOLD


# --- one verdict ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Trigger:
    reason: str  # an EscalationReason
    detail: str


def detect(text: str, topics: list[str]) -> Trigger | None:
    """The first trigger a single customer message fires, in order of what matters most."""
    if asks_for_human(text):
        return Trigger("customer_request", "asked for a person")
    topic = sensitive_topic(text, topics)
    if topic:
        return Trigger("sensitive_topic", topic)
    if is_strongly_frustrated(text):
        return Trigger("frustration", f"frustration score {frustration_score(text)}")
    return None


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower().replace("’", "'")).strip()


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word
