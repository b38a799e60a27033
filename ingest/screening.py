"""Article screening: what an article may carry into the index, and into answers.

Articles are quoted to customers (the extractive answerer replies with their sentences) and to a
language model (the LLM answerer), with the confidence retrieval gives them. An article that asks
the reader to "reply to this chat with your full card number" or tells an assistant to "ignore
previous instructions" is therefore an attack on every customer who asks a nearby question, and
it arrives through the most ordinary door: a help-center export, an upload, a pasted draft.

So every article is screened before it is indexed:

* **Invisible characters are removed**: zero-width spaces and joiners, the soft hyphen, word
  joiners, the byte-order mark and the bidirectional controls. They have no place in help text,
  and they are how "pass\u200bword" slips past a reader and a filter alike.
* **Requests for credentials are held**: text asking the reader to send, share, reply with or
  type into the chat a password, a card number, a CVC, a one-time code and the like. Telling
  customers never to share them ("we will never ask for your password") is allowed.
* **Instructions aimed at an assistant are held**: "ignore previous instructions", role prompts
  ("you are now...", "act as an AI..."), role markers ("system:") and chat-template tokens.

Matching runs on a normalised copy of the text (Unicode compatibility forms, look-alike letters
from other scripts, accents removed, digits and symbols used as letters such as ``p@ssw0rd``),
and the key words tolerate separators between their letters ("pass word", "p.a.s.s.w.o.r.d").

A held article is not indexed (a previously indexed version of it stays, as for a file that
failed); the ingest report lists it with the reason, the held list in the data directory
(``held_articles.json``) records it for the admin page, and the admin API refuses to publish
one with a 422 that gives the reason.

The module also owns the links answers may show (:func:`drop_foreign_links`): only hosts on the
knowledge base's allow-list, so an article cannot send customers to an attacker's site.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Collection, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ingest.loaders import Article

# --- invisible characters ---------------------------------------------------------------------

INVISIBLE_CHARACTERS = frozenset(
    [
        "\u00ad",  # soft hyphen
        "\u034f",  # combining grapheme joiner
        "\u061c",  # Arabic letter mark (bidi)
        "\u115f",  # Hangul choseong filler
        "\u1160",  # Hangul jungseong filler
        "\u17b4",  # Khmer vowel inherent aq
        "\u17b5",  # Khmer vowel inherent aa
        "\u180e",  # Mongolian vowel separator
        *[chr(c) for c in range(0x200B, 0x2010)],  # zero-width space/joiners, LRM, RLM
        *[chr(c) for c in range(0x202A, 0x202F)],  # bidi embeddings and overrides
        *[chr(c) for c in range(0x2060, 0x2070)],  # word joiner, invisible operators, isolates
        "\u3164",  # Hangul filler
        "\ufeff",  # zero-width no-break space (BOM)
        "\uffa0",  # halfwidth Hangul filler
        *[chr(c) for c in range(0xFE00, 0xFE10)],  # variation selectors
        *[chr(c) for c in range(0xE0000, 0xE0080)],  # tag characters ("ASCII smuggling")
    ]
)
_INVISIBLE = re.compile("[" + "".join(re.escape(c) for c in sorted(INVISIBLE_CHARACTERS)) + "]")


def strip_invisible(text: str) -> str:
    """``text`` without zero-width and bidirectional control characters."""
    return _INVISIBLE.sub("", text)


# --- normalising for matching -------------------------------------------------------------------

# Letters from other scripts that look like Latin ones (the common confusables).
_LOOKALIKES = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j",
        "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ɡ": "g", "ɑ": "a", "ο": "o",
        "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ρ": "p", "τ": "t", "υ": "u",
        "χ": "x", "ω": "w", "ϲ": "c",
    }
)  # fmt: skip
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "$": "s"})
_LEET_TOKEN = re.compile(r"[a-z0-9$@]+")


def _unleet(match: re.Match[str]) -> str:
    token = match.group(0)
    if not re.search(r"[a-z]", token):
        return token  # a number stays a number
    # "@" as a letter ("p@ssword"), but not the "@" of an e-mail address.
    token = re.sub(r"(?<=[a-z])@(?=[a-z$]{2,}\b)", "a", token) if "." not in token else token
    return token.translate(_LEET)


def normalise(text: str) -> str:
    """The text as the screening rules read it: invisible characters gone, compatibility forms
    folded (fullwidth and mathematical letters), look-alike letters mapped to Latin, accents
    dropped, lower case, and letters written as digits or symbols read as letters."""
    text = strip_invisible(text)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = unicodedata.normalize("NFKC", text).translate(_LOOKALIKES).casefold()
    return _LEET_TOKEN.sub(_unleet, text)


# --- the rules ----------------------------------------------------------------------------------

_SEP = r"[\s\-_.*·•'`~|/\\+]{0,2}"
"""What may stand between the letters of a key word: "pass word", "p.a.s.s", "c-v-c"."""


def _fuzzy(phrase: str) -> str:
    """A key word (or words) with separators tolerated between every letter."""
    words = []
    for word in phrase.split():
        words.append(_SEP.join(re.escape(letter) for letter in word))
    return r"\W{0,3}".join(words)


def _any(*phrases: str) -> str:
    return "(?:" + "|".join(_fuzzy(p) for p in sorted(phrases, key=len, reverse=True)) + ")"


_CREDENTIAL = (
    r"(?:"
    + _any(
        "password", "passcode", "passphrase", "pin code", "pin number", "cvc", "cvv", "csc",
        "security code", "card number",
        "card details", "card data", "full card", "credit card", "debit card", "card no",
        "one time code", "one time password", "one time passcode", "otp", "2fa code",
        "two factor code", "verification code", "authentication code", "login code",
        "sign in code", "recovery code", "backup code", "recovery phrase", "seed phrase",
        "login details", "login credentials", "credentials", "security answer",
        "social security number", "ssn", "private key",
    )
    + r"|\bpin\b)"
)  # fmt: skip
_SEND_VERB = _any(
    "send", "email", "mail", "reply", "respond", "text", "message", "dm", "tell", "give",
    "share", "provide", "forward", "disclose", "submit", "post", "paste", "type", "write",
    "enter", "include", "confirm", "verify", "read out", "spell out", "let us know", "supply",
)  # fmt: skip
_STRONG_VERB = _any(
    "send", "email", "mail", "reply", "respond", "text", "message", "dm", "tell", "give",
    "share", "provide", "forward", "disclose", "read out", "spell out", "let us know", "supply",
)  # fmt: skip
_CHANNEL = _any("chat", "conversation", "this window", "reply", "message box", "chat box")
_WORDS = r"(?:[^\w.!?\n]+\w+){0,%d}?[^\w.!?\n]+"
"""Up to n words within one sentence."""
_NOT_A_VERB = r"(?!\W*(?:address|addresses|settings|notifications?|preferences|inbox)\b)"
_NEGATION = re.compile(
    r"\b(?:never|not|n't|dont|no one|nobody|noone|if (?:someone|anyone|somebody|a caller|an email"
    r"|a message|you are asked)|refuse to|avoid|beware of|instead of)\b(?:\W+\w+){0,5}\W*$"
)
_NEGATED_INSIDE = re.compile(r"\b(?:without|never|not|n't)\b")
"""A request that says it does not want the secret: "share the network without giving out your
password"."""
_CREDENTIAL_RULES = [
    # "email your account password to ...", "reply to this chat with your full card number"
    re.compile(
        r"\b" + _STRONG_VERB + r"\b" + _NOT_A_VERB + (_WORDS % 8)
        + r"(?:your|ur|yr|the\W+(?:full|complete|whole|entire))\b"
        + (_WORDS % 3) + _CREDENTIAL
    ),
    # "type your card number in this chat", "enter the CVC here in the chat"
    re.compile(
        r"\b" + _SEND_VERB + r"\b" + _NOT_A_VERB + (_WORDS % 6) + _CREDENTIAL + (_WORDS % 6)
        + r"(?:in|into|to|via|on|here in|below in)\W+(?:this|the|our|a)?\W*" + _CHANNEL
    ),
    # "... the chat, type your card number"
    re.compile(r"\b" + _CHANNEL + (_WORDS % 4) + _SEND_VERB + r"\b" + (_WORDS % 4) + _CREDENTIAL),
    # "your password to verify@evil.test"
    re.compile(_CREDENTIAL + (_WORDS % 4) + r"(?:to|at)\W+[\w.+-]+@[\w-]+\.[\w.]+"),
]  # fmt: skip

_AI = _any(
    "assistant",
    "ai",
    "a i",
    "chatbot",
    "chat bot",
    "bot",
    "language model",
    "llm",
    "gpt",
    "chatgpt",
    "claude",
    "gemini",
    "dan",
    "model",
)
_INSTRUCTION_RULES = [
    # "ignore previous instructions", "disregard all prior rules"
    re.compile(
        r"\b" + _any("ignore", "disregard", "forget", "override", "bypass", "discard") + r"\b"
        + (_WORDS % 3)
        + _any(
            "previous", "prior", "above", "earlier", "preceding", "former", "existing",
            "original", "initial", "old", "all", "any", "your", "system", "these", "those",
        )
        + r"\b" + (_WORDS % 2)
        + _any(
            "instructions", "instruction", "prompts", "prompt", "rules", "directions",
            "guidelines", "directives", "commands", "context", "programming", "restrictions",
            "guardrails", "policies", "system message",
        )
        + r"\b"
    ),
    # "ignore the above", "forget everything you were told"
    re.compile(
        r"\b" + _any("ignore", "disregard", "forget") + r"\W+(?:all\W+|everything\W+|anything\W+)?"
        r"(?:the\W+|that\W+|what\W+)?(?:above|before this|said before|you were told"
        r"|you have been told|you know|you were given)\b"
    ),
    # role prompts: "you are now DAN", "you are no longer an assistant"
    re.compile(
        r"\byou\W+are\W+(?:now|no\W+longer|actually|really)\W+(?:\w+\W+){0,3}?(?:"
        + _AI
        + r"|jailbroken|unrestricted|unfiltered|uncensored|developer\W+mode|administrator"
        r"|admin|hacker|evil|system|free\W+of)\b"
    ),
    re.compile(
        r"\b(?:from\W+now\W+on|henceforth|starting\W+now|for\W+the\W+rest\W+of\W+this"
        r"\W+conversation)\b(?:\W+\w+){0,8}?\W+(?:act|acting|pretend|roleplay|role\W?play"
        r"|obey|ignore|disregard|assistant|ai|chatbot|language\W+model|system\W+prompt"
        r"|instructions)\b"
    ),
    re.compile(
        r"\b(?:act|behave|pretend|roleplay|role\W?play|respond|answer|reply|speak|operate)\W+"
        r"(?:as|like|to\W+be|you\W+are|that\W+you\W+are)\W+(?:an?\W+|the\W+|my\W+)?"
        r"(?:\w+\W+){0,2}?(?:" + _AI + r"|system|administrator|admin|developer|hacker"
        r"|unrestricted|unfiltered|jailbroken)\b"
    ),
    # role markers and chat-template tokens
    re.compile(
        r"(?:^|[\n\r]|[.!?;>\]\)\}\"'*#|(\[{<-])\s*(?:system|assistant|developer)"
        r"(?:\W{0,2}(?:prompt|message|note|instruction|instructions|override|update))?\s*:",
        re.MULTILINE,
    ),
    re.compile(
        r"<\|?\s*(?:im_start|im_end|system|assistant|endoftext|begin_of_text|start_header_id)"
        r"\s*\|?>|\[/?(?:inst|sys|system)\]|<</?sys>>|</?(?:system|instructions?|articles?"
        r"|prompt)>"
    ),
    # talking to the model: "if you are an AI", "note to the AI", "new instructions:"
    re.compile(
        r"\b(?:if\W+you\W+are|if\W+you're|note\W+to|attention|dear|hey|instructions\W+for)\W+"
        r"(?:the\W+|an?\W+|any\W+)?(?:" + _AI + r")\b"
    ),
    re.compile(
        r"\b(?:" + _AI + r")s?\W+(?:reading|processing|summari[sz]ing|parsing|answering"
        r"\W+from)\W+this\b"
    ),
    re.compile(
        r"\b(?:new|updated|real|actual|additional|secret|hidden|override|important)\W+"
        r"(?:system\W+)?(?:instructions?|prompt|directives?)\W{0,3}:"
    ),
    re.compile(
        r"\b(?:reveal|print|show|repeat|output|display|leak|dump)\W+(?:\w+\W+){0,3}?"
        r"(?:system\W+prompt|your\W+(?:instructions|prompt|rules|system\W+message)"
        r"|the\W+prompt|initial\W+prompt|hidden\W+instructions)\b"
    ),
]  # fmt: skip

CREDENTIALS = "credentials"
INSTRUCTIONS = "instructions"

_REASONS = {
    CREDENTIALS: "asks the reader for a password, card number, CVC or similar secret",
    INSTRUCTIONS: "contains instructions aimed at an AI assistant",
}


@dataclass(frozen=True)
class Finding:
    """One thing screening found: its kind and the (normalised) words that matched."""

    kind: str  # "credentials" | "instructions"
    excerpt: str

    @property
    def reason(self) -> str:
        return f'{_REASONS[self.kind]} ("{self.excerpt}")'


@dataclass(frozen=True)
class Screening:
    """The verdict on one text: held when anything was found."""

    findings: tuple[Finding, ...] = ()

    @property
    def held(self) -> bool:
        return bool(self.findings)

    @property
    def reason(self) -> str:
        """One sentence for a person: what was found, with the words that matched."""
        if not self.findings:
            return ""
        kinds: dict[str, Finding] = {}
        for finding in self.findings:
            kinds.setdefault(finding.kind, finding)
        return "held for review: " + "; ".join(f.reason for f in kinds.values())


def _excerpt(text: str, start: int, end: int) -> str:
    words = " ".join(text[start:end].split())
    return words if len(words) <= 90 else words[:87] + "..."


_LIST_LINE = re.compile(r"\s*(?:[-*+]|\d{1,3}[.)])\s")
_NEGATED_LEAD_IN = re.compile(r"\b(?:never|not|n't|dont|no one|nobody|noone)\b.*:\s*$")


def _negated(text: str, start: int) -> bool:
    """Is the request at ``start`` negated: "never send your password", or an item of a list
    led in by "We will never ask you to:"."""
    if _NEGATION.search(text[max(0, start - 80) : start]):
        return True
    line_start = text.rfind("\n", 0, start) + 1
    if not _LIST_LINE.match(text, line_start):
        return False
    lines = text[:line_start].split("\n")[:-1]
    while lines and (not lines[-1].strip() or _LIST_LINE.match(lines[-1])):
        lines.pop()
    return bool(lines) and bool(_NEGATED_LEAD_IN.search(lines[-1]))


def _credential_requests(text: str) -> Iterator[Finding]:
    for rule in _CREDENTIAL_RULES:
        for match in rule.finditer(text):
            if _negated(text, match.start()) or _NEGATED_INSIDE.search(match.group(0)):
                continue
            yield Finding(CREDENTIALS, _excerpt(text, match.start(), match.end()))
            break


def _instructions(text: str) -> Iterator[Finding]:
    for rule in _INSTRUCTION_RULES:
        match = rule.search(text)
        if match is not None:
            excerpt = _excerpt(text, match.start(), match.end()).strip(" .!?;>-\n")
            yield Finding(INSTRUCTIONS, excerpt)


def screen_text(*parts: str) -> Screening:
    """Screen the parts of an article (title, body, ...) as one text."""
    text = normalise("\n\n".join(part for part in parts if part))
    findings = [*_credential_requests(text), *_instructions(text)]
    return Screening(tuple(findings))


def clean_article(article: Article) -> Article:
    """The article with invisible characters removed from its title and body."""
    title, body = strip_invisible(article.title), strip_invisible(article.body)
    if title == article.title and body == article.body:
        return article
    return article.model_copy(update={"title": title.strip() or article.title, "body": body})


def screen_article(article: Article) -> tuple[Article, Screening]:
    """The article as it may be indexed (invisible characters removed) and the verdict."""
    cleaned = clean_article(article)
    return cleaned, screen_text(cleaned.title, cleaned.body)


# --- the held list ------------------------------------------------------------------------------

HELD_FILE = "held_articles.json"


@dataclass(frozen=True)
class HeldArticle:
    """An article screening kept out of the index, waiting for a person to fix it."""

    id: str
    path: str | None
    title: str
    reason: str
    held_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


def held_path(data_dir: Path) -> Path:
    return data_dir / HELD_FILE


def load_held(data_dir: Path) -> list[HeldArticle]:
    """The articles held by the ingests of this data directory, by id."""
    try:
        raw = json.loads(held_path(data_dir).read_text())
    except (OSError, ValueError):
        return []
    items = raw.get("articles", {}) if isinstance(raw, dict) else {}
    held = []
    for value in items.values() if isinstance(items, dict) else []:
        try:
            held.append(
                HeldArticle(
                    id=str(value["id"]),
                    path=str(value["path"]) if value.get("path") else None,
                    title=str(value.get("title") or value["id"]),
                    reason=str(value["reason"]),
                    held_at=str(value.get("held_at") or ""),
                )
            )
        except (KeyError, TypeError, AttributeError):
            continue
    return sorted(held, key=lambda item: item.id)


def record_held(data_dir: Path, held: Iterable[HeldArticle], cleared: Iterable[str]) -> None:
    """Update the held list: ``held`` articles are (still) held, ``cleared`` ids are not any
    more (indexed, or deleted); entries whose file is gone are dropped. Called by the ingest
    under the data directory's writer lock; written atomically, so a reader sees the old list or
    the new one."""
    held = list(held)
    cleared = set(cleared)
    before = {item.id: item for item in load_held(data_dir)}
    # An entry whose file is gone is no longer waiting for anyone.
    current = {k: v for k, v in before.items() if v.path is None or Path(v.path).exists()}
    if not held and not (cleared & set(current)) and len(current) == len(before):
        return
    for article_id in cleared:
        current.pop(article_id, None)
    for item in held:
        previous = current.get(item.id)
        same = previous is not None and (previous.reason, previous.path) == (item.reason, item.path)
        current[item.id] = previous if same and previous is not None else item
    data_dir.mkdir(parents=True, exist_ok=True)
    payload = {"articles": {key: asdict(value) for key, value in sorted(current.items())}}
    fd, temp = tempfile.mkstemp(dir=data_dir, prefix=f".{HELD_FILE}.")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=1, ensure_ascii=False)
        os.replace(temp, held_path(data_dir))
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# --- links in answers ---------------------------------------------------------------------------

LINK_REMOVED = "[link removed]"

_LINKS = re.compile(
    r"(?P<md>!?\[(?P<label>[^\]\n]{0,300})\]\(\s*<?(?P<target>[^()\s<>]*(?:\([^()\s]*\)"
    r"[^()\s<>]*)*)>?(?:\s+\"[^\"\n]*\")?\s*\))"
    r"|<(?P<auto>(?:https?|ftp|mailto):[^<>\s]+)>"
    r"|(?P<bare>\b(?:https?://|ftp://|www\.)[^\s<>()\[\]\"']+[^\s<>()\[\]\"'.,;:!?])",
    re.IGNORECASE,
)


def link_host(url: str) -> str | None:
    """The host a link points to; ``None`` for a relative link (``/path``, ``#part``)."""
    url = url.strip()
    if url.lower().startswith("www."):
        url = "http://" + url
    if url.lower().startswith("mailto:"):
        return url.partition("@")[2].split("?")[0].strip().lower() or "mailto"
    parts = urlsplit(url)
    if not parts.scheme and not parts.netloc:
        return None
    return (parts.hostname or parts.scheme or "").lower().rstrip(".") or None


def hosts_of(urls: Iterable[str | None]) -> frozenset[str]:
    """The hosts of ``urls`` (the default allow-list: where the articles themselves live)."""
    hosts = set()
    for url in urls:
        if url:
            host = link_host(url)
            if host:
                hosts.add(host)
    return frozenset(hosts)


def host_allowed(host: str | None, allowed: Collection[str]) -> bool:
    """Relative links always; otherwise an allowed host or one of its sub-domains."""
    if host is None:
        return True
    host = host.lower().rstrip(".")
    return any(host == item or host.endswith("." + item) for item in allowed)


def url_allowed(url: str | None, allowed: Collection[str]) -> bool:
    if not url:
        return True
    scheme = urlsplit(url.strip()).scheme.lower()
    if scheme and scheme not in ("http", "https", "mailto"):
        return False
    return host_allowed(link_host(url), allowed)


def drop_foreign_links(text: str, allowed: Collection[str]) -> str:
    """``text`` with links to hosts off the allow-list removed: a Markdown link keeps its
    words, a bare address becomes ``[link removed]``. Relative links stay."""

    def replace(match: re.Match[str]) -> str:
        if match.group("md"):
            if url_allowed(match.group("target"), allowed):
                return match.group(0)
            return match.group("label")
        url = match.group("auto") or match.group("bare")
        return match.group(0) if url_allowed(url, allowed) else LINK_REMOVED

    return _LINKS.sub(replace, text)


class LinkStream:
    """:func:`drop_foreign_links` over a stream of pieces (an LLM answer as it arrives).

    A link is only judged whole: text after the last white space, or after an unfinished
    ``[label](``, is held back until more arrives (at most ``max_held`` characters), so the
    pieces given out concatenate to the filtered whole answer.
    """

    def __init__(self, allowed: Collection[str], max_held: int = 600) -> None:
        self.allowed = allowed
        self.max_held = max_held
        self._buffer = ""

    def feed(self, piece: str) -> str:
        self._buffer += piece
        cut = self._safe_cut(self._buffer)
        if cut <= 0 and len(self._buffer) <= self.max_held:
            return ""
        if cut <= 0:
            cut = len(self._buffer)
        ready, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return drop_foreign_links(ready, self.allowed)

    def flush(self) -> str:
        ready, self._buffer = self._buffer, ""
        return drop_foreign_links(ready, self.allowed)

    @staticmethod
    def _safe_cut(text: str) -> int:
        """Where the judged part ends: at the last white space, or before a link that may
        still be growing (``[label``, ``[label]``, ``[label](partial``) at the very end."""
        cut = max(text.rfind(" "), text.rfind("\n"), text.rfind("\t")) + 1
        for link in _WHOLE_LINK.finditer(text):
            if link.start() < cut < link.end():  # white space inside a link's label
                cut = link.start()
        growing = _GROWING_LINK.search(text)
        if growing is not None:
            cut = min(cut, growing.start())
        return cut


_WHOLE_LINK = re.compile(r"!?\[[^\]\n]{0,300}\]\([^()\s]*(?:\([^()\s]*\)[^()\s]*)*\)")
_GROWING_LINK = re.compile(r"!?\[[^\]\n]{0,300}(?:\](?:\([^)\s]*)?)?\Z")
