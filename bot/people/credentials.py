"""Credentials: bearer API tokens, signed session cookies and CSRF tokens, as plain functions.

* API clients send ``Authorization: Bearer <token>`` (``supportbot user add`` prints one).
* The pages use a session cookie: ``HttpOnly``, ``SameSite=Lax``, signed with HMAC-SHA256 over
  ``secret_key``, expiring after ``session_max_age_hours``; it also carries a fingerprint of the
  password hash, so changing a password signs every old session out.
* CSRF: a cookie-authenticated request that changes something must carry the session's CSRF
  token; bearer requests need none (a browser never adds that header by itself).

The FastAPI guards that apply these rules to routes live in :mod:`bot.web.guards`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from bot.core.models import User
from bot.core.settings import Settings
from bot.people.users import user_by_token

# --- session cookies --------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionData:
    user_id: int
    expires: float
    csrf: str
    password_fp: str


def _key(settings: Settings) -> bytes:
    secret = settings.ensure_secret_key().get_secret_value().encode()
    return hashlib.sha256(b"supportbot-session-v1:" + secret).digest()


def password_fingerprint(user: User) -> str:
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]


def make_session_cookie(user: User, settings: Settings, *, now: float | None = None) -> str:
    payload = {
        "u": user.id,
        "e": (now or time.time()) + settings.session_max_age_hours * 3600,
        "c": secrets.token_urlsafe(24),
        "p": password_fingerprint(user),
    }
    raw = json.dumps(payload, separators=(",", ":")).encode()
    # No "=" padding: a cookie value with "=" gets quoted, which some clients mangle.
    body = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    signature = hmac.new(_key(settings), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{signature}"


def read_session_cookie(
    value: str | None, settings: Settings, *, now: float | None = None
) -> SessionData | None:
    """The session if the cookie is ours, unaltered and unexpired; ``None`` otherwise."""
    if not value or "." not in value:
        return None
    body, _, signature = value.rpartition(".")
    expected = hmac.new(_key(settings), body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        data = SessionData(int(payload["u"]), float(payload["e"]), str(payload["c"]), payload["p"])
    except (ValueError, KeyError, TypeError):
        return None
    if data.expires < (now or time.time()):
        return None
    return data


def set_session_cookie(response: Any, user: User, settings: Settings) -> None:
    response.set_cookie(
        settings.session_cookie_name,
        make_session_cookie(user, settings),
        max_age=int(settings.session_max_age_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=settings.session_cookie_secure,
        path="/",
    )


def clear_session_cookie(response: Any, settings: Settings) -> None:
    response.delete_cookie(settings.session_cookie_name, path="/", httponly=True, samesite="lax")


# --- who is calling ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    user: User
    via: str  # "token" | "cookie"
    session: SessionData | None = None


def identify(
    session: Session,
    settings: Settings,
    *,
    authorization: str | None,
    cookie: str | None,
) -> Principal | None:
    """The caller from a bearer token (preferred) or the session cookie; ``None`` if neither."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            user = user_by_token(session, token.strip())
            return Principal(user, "token") if user is not None else None
        return None
    data = read_session_cookie(cookie, settings)
    if data is None:
        return None
    user = session.get(User, data.user_id)
    if user is None or not hmac.compare_digest(password_fingerprint(user), data.password_fp):
        return None
    return Principal(user, "cookie", data)


def csrf_ok(principal: Principal, supplied: str | None) -> bool:
    if principal.via != "cookie" or principal.session is None:
        return True
    return bool(supplied) and hmac.compare_digest(principal.session.csrf, supplied or "")


def safe_next(target: str | None) -> str:
    """Only same-site relative redirects after sign-in (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/agent"
    return target
