"""Proofs of who a customer is: the site's HMAC over a user id, and signed conversation tokens.

Two kinds of proof, both HMAC-SHA256 and both checked in constant time:

* **User hash.** A site's server computes ``hex(HMAC-SHA256(site secret, user id))`` and puts it
  on its page beside the id; the widget passes both in ``hello.user``. Only a server that knows
  the site's secret can produce it, so a page cannot claim to be another customer. The secret
  never reaches a browser.
* **Conversation tokens** (``ct1.<conversation id>.<expiry>.<signature>``): signed with the
  service's ``secret_key``, they open one conversation until they expire. They are what a
  verified customer gets for a conversation started on another device (the conversation's own
  resume token is stored only as a hash, so it cannot be handed out again), and what the link in
  a reply e-mail carries. Short enough (about 90 characters) to fit the ``resume_token`` field.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.core.settings import Settings

TOKEN_PREFIX = "ct1"


def user_hash(secret: str, user_id: str) -> str:
    """What the site's server puts in ``data-user-hash``: hex HMAC-SHA256(secret, user id)."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def user_hash_ok(secret: str, user_id: str, supplied: str | None) -> bool:
    """Does ``supplied`` prove ``user_id`` for the site with ``secret``? Constant time; upper-
    and lower-case hex are both accepted."""
    if not supplied or not user_id:
        return False
    return hmac.compare_digest(user_hash(secret, user_id), supplied.strip().lower())


def _token_key(settings: Settings) -> bytes:
    # Derived, so a conversation token can never pass for a session cookie or the reverse.
    secret = settings.ensure_secret_key().get_secret_value().encode()
    return hashlib.sha256(b"supportbot-conversation-token-v1:" + secret).digest()


def _sign(key: bytes, body: str) -> str:
    digest = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def conversation_token(
    settings: Settings, conversation_id: str, *, valid_s: float, now: float | None = None
) -> str:
    """A token that opens ``conversation_id`` for ``valid_s`` seconds."""
    expires = int((now if now is not None else time.time()) + valid_s)
    body = f"{TOKEN_PREFIX}.{conversation_id}.{expires}"
    return f"{body}.{_sign(_token_key(settings), body)}"


@dataclass(frozen=True)
class TokenClaim:
    conversation_id: str
    expires: int


def read_conversation_token(
    settings: Settings, token: str, *, now: float | None = None
) -> TokenClaim | None:
    """The conversation a valid, unexpired token opens; ``None`` for anything else (a plain
    resume token, a forged or expired one), without saying which."""
    if not token.startswith(TOKEN_PREFIX + "."):
        return None
    parts = token.split(".")
    if len(parts) != 4:
        return None
    _, conversation_id, expires_text, signature = parts
    expected = _sign(_token_key(settings), f"{TOKEN_PREFIX}.{conversation_id}.{expires_text}")
    if not hmac.compare_digest(expected, signature):
        return None
    try:
        expires = int(expires_text)
    except ValueError:
        return None
    if expires < (now if now is not None else time.time()):
        return None
    return TokenClaim(conversation_id, expires)


def is_conversation_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX + ".")
