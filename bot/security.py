"""Who is calling: bearer API tokens, signed session cookies, role guards.

* API clients send ``Authorization: Bearer <token>`` (``supportbot user add`` prints one).
* The pages use a session cookie: ``HttpOnly``, ``SameSite=Lax``, signed with HMAC-SHA256 over
  ``secret_key``, expiring after ``session_max_age_hours``; it also carries a fingerprint of the
  password hash, so changing a password signs every old session out.
* CSRF: a cookie-authenticated request that changes something must carry the session's CSRF
  token (``X-CSRF-Token`` header from the console's JS, or a ``csrf`` form field); bearer
  requests need none (a browser never adds that header by itself). Cookie-authenticated
  WebSockets must come from our own origin (browsers do not apply CORS to WebSockets).

Guards are ``Annotated`` aliases (``AgentUser``, ``LeadUser``, ``AdminUser`` for the API;
``AgentPage``... for HTML pages, which redirect to the sign-in page instead of a 401). Each guard
callable carries ``GUARD_ATTR`` so a test can prove that every non-public route has one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request, WebSocket, WebSocketException, status
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.deps import SessionDep
from bot.models import User
from bot.users import has_role, user_by_token

GUARD_ATTR = "__supportbot_guard__"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_CSRF_COOKIE = "supportbot_login_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Paths anyone may call. Everything else must depend on a guard (tests/integration/test_auth.py).
PUBLIC_PATHS = frozenset(
    {
        "/",
        "/healthz",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
        "/api/ask",
        "/ws/chat",
        "/login",
        "/logout",
    }
)
PUBLIC_PREFIXES = ("/widget", "/static")


def is_public_path(path: str) -> bool:
    return path in PUBLIC_PATHS or any(
        path == prefix or path.startswith(prefix + "/") for prefix in PUBLIC_PREFIXES
    )


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


def principal_from_request(request: Request, session: Session) -> Principal | None:
    settings: Settings = request.app.state.ctx.settings
    return identify(
        session,
        settings,
        authorization=request.headers.get("authorization"),
        cookie=request.cookies.get(settings.session_cookie_name),
    )


def csrf_ok(principal: Principal, supplied: str | None) -> bool:
    if principal.via != "cookie" or principal.session is None:
        return True
    return bool(supplied) and hmac.compare_digest(principal.session.csrf, supplied or "")


def _guard(role: str, *, page: bool = False) -> Callable[..., User]:
    def guard(request: Request, session: SessionDep) -> User:
        principal = principal_from_request(request, session)
        if principal is None:
            if page:
                target = quote(request.url.path, safe="/")
                raise HTTPException(
                    status.HTTP_303_SEE_OTHER, headers={"Location": f"/login?next={target}"}
                )
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "sign in or send a bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not has_role(principal.user, role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"requires the {role} role")
        if request.method not in SAFE_METHODS and not csrf_ok(
            principal, request.headers.get(CSRF_HEADER)
        ):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
        request.state.principal = principal
        return principal.user

    setattr(guard, GUARD_ATTR, role)
    guard.__name__ = f"require_{role}{'_page' if page else ''}"
    return guard


def require_role(role: str) -> Callable[..., User]:
    """A dependency: the calling user, who must have ``role`` (or a higher one)."""
    return _guard(role)


def require_page_role(role: str) -> Callable[..., User]:
    """Like :func:`require_role` for HTML pages: unauthenticated visitors go to ``/login``."""
    return _guard(role, page=True)


def require_ws_role(role: str) -> Callable[..., Any]:
    """A WebSocket dependency: closes the handshake with 1008 unless the caller has ``role``.

    Accepts ``Authorization: Bearer``, ``?token=`` (for clients that cannot set headers) or the
    session cookie, the last only from our own origin.
    """

    def guard(websocket: WebSocket) -> User:
        ctx = websocket.app.state.ctx
        settings: Settings = ctx.settings
        authorization = websocket.headers.get("authorization")
        token = websocket.query_params.get("token")
        if not authorization and token:
            authorization = f"Bearer {token}"
        with ctx.sessions() as session:
            principal = identify(
                session,
                settings,
                authorization=authorization,
                cookie=websocket.cookies.get(settings.session_cookie_name),
            )
            if principal is not None:
                session.expunge(principal.user)
        if principal is None:
            raise WebSocketException(status.WS_1008_POLICY_VIOLATION, "not signed in")
        if principal.via == "cookie" and not _same_origin(websocket):
            raise WebSocketException(status.WS_1008_POLICY_VIOLATION, "cross-origin socket")
        if not has_role(principal.user, role):
            raise WebSocketException(status.WS_1008_POLICY_VIOLATION, f"requires {role}")
        return principal.user

    setattr(guard, GUARD_ATTR, role)
    guard.__name__ = f"require_ws_{role}"
    return guard


def _same_origin(websocket: WebSocket) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:  # not a browser
        return True
    hosts = {websocket.headers.get("host"), websocket.headers.get("x-forwarded-host")}
    return urlsplit(origin).netloc in hosts - {None}


def safe_next(target: str | None) -> str:
    """Only same-site relative redirects after sign-in (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/agent"
    return target


def is_guard(call: object) -> bool:
    return hasattr(call, GUARD_ATTR)


AgentUser = Annotated[User, Depends(require_role("agent"))]
LeadUser = Annotated[User, Depends(require_role("lead"))]
AdminUser = Annotated[User, Depends(require_role("admin"))]
AgentPage = Annotated[User, Depends(require_page_role("agent"))]
LeadPage = Annotated[User, Depends(require_page_role("lead"))]
AdminPage = Annotated[User, Depends(require_page_role("admin"))]
AgentSocketUser = Annotated[User, Depends(require_ws_role("agent"))]
