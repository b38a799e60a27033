"""What a customer's words ask for, beyond the question itself: here, a person.

One detector for "I want a person", read by the stateless ``/api/ask`` (through
:func:`bot.knowledge.answerability.decide`) and by the conversation triggers of the handoff, so
the two can never disagree. It errs on the side of recall (a missed request is the failure
customers hate most) while refusing the classic false friends ("human error", "human
resources", "I don't need an agent", "what do you call someone who...").
"""

from __future__ import annotations

import re

from bot.core.text import normalise

_PERSON = (
    r"(?:one\s+of\s+(?:your|the)\s+)?"
    r"(?:a\s+|an\s+|the\s+|some\s+|your\s+|real\s+|actual\s+|live\s+|human\s+|another\s+)*"
    r"(?:humans?(?:\s+being)?|person|people|someone|somebody|agents?|operators?|"
    r"representatives?|reps?|staff(?:\s+members?)?|support\s+(?:agents?|person|staff|team)|"
    r"customer\s+(?:service|support)|team\s+members?|manager|supervisor|advisors?|advisers?|"
    r"employees?)"
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
    # "live chat", "live agent", "real person", "real support"
    re.compile(r"\blive\s+(?:chat|agent|support|person)\b|\breal\s+(?:agent|person|support)\b"),
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
    # "what do you call someone who...": a word question, not a call-back request
    r"|\bcall\s+(?:someone|somebody|a\s+person)\s+(?:who|that)\b"
)


def asks_for_human(text: str) -> bool:
    """Whether the customer asks to be handed to a person, in any common phrasing."""
    lowered = normalise(text)
    if _NEGATED.search(lowered):
        return False
    cleaned = _FALSE_FRIENDS.sub(" ", lowered)
    return any(pattern.search(cleaned) for pattern in _HUMAN_REQUEST)
