"""Role guards for routes and sockets, built on :mod:`bot.people.credentials`.

Guards are ``Annotated`` aliases (``AgentUser``, ``LeadUser``, ``AdminUser`` for the API;
``AgentPage``... for HTML pages, which redirect to the sign-in page instead of a 401). Each guard
callable carries ``GUARD_ATTR`` so a test can prove that every non-public route has one.
Cookie-authenticated WebSockets must come from our own origin (browsers do not apply CORS to
WebSockets).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request, WebSocket, WebSocketException, status
from sqlalchemy.orm import Session

from bot.core.models import User
from bot.people.credentials import Principal, csrf_ok, identify
from bot.people.users import has_role
from bot.web.deps import SessionDep, get_context
from bot.web.proxies import forwarded_host

GUARD_ATTR = "__supportbot_guard__"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_CSRF_COOKIE = "supportbot_login_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Paths anyone may call. Everything else must depend on a guard (tests/integration/test_auth.py).
PUBLIC_PATHS = frozenset(
    {
        "/",
        "/healthz",
        "/readyz",  # load balancers probe it; it names failing parts, no data
        "/metrics",  # Prometheus scrapes it; keep it off the public site at the proxy
        "/docs",
        "/docs/oauth2-redirect",
        "/openapi.json",
        "/api/ask",
        "/ws/chat",
        "/resume",  # the link in a reply e-mail; the signed token in it is the credential
        "/login",
        "/logout",
    }
)
PUBLIC_PREFIXES = ("/widget", "/static", "/docs-assets")


def is_public_path(path: str) -> bool:
    return path in PUBLIC_PATHS or any(
        path == prefix or path.startswith(prefix + "/") for prefix in PUBLIC_PREFIXES
    )


def principal_from_request(request: Request, session: Session) -> Principal | None:
    settings = get_context(request).settings
    return identify(
        session,
        settings,
        authorization=request.headers.get("authorization"),
        cookie=request.cookies.get(settings.session_cookie_name),
    )


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
        ctx = get_context(websocket)
        settings = ctx.settings
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
    """Does the page that opened this cookie-authenticated socket belong to this service? The
    ``Host`` the browser sent, or the host a trusted proxy says the browser asked it for: a
    client-sent ``X-Forwarded-Host`` is believed only from ``SUPPORTBOT_TRUSTED_PROXIES``."""
    origin = websocket.headers.get("origin")
    if origin is None:  # not a browser
        return True
    hosts = {
        websocket.headers.get("host"),
        forwarded_host(websocket, get_context(websocket).settings.trusted_proxies),
    }
    return urlsplit(origin).netloc in hosts - {None}


AgentUser = Annotated[User, Depends(require_role("agent"))]
LeadUser = Annotated[User, Depends(require_role("lead"))]
AdminUser = Annotated[User, Depends(require_role("admin"))]
AgentPage = Annotated[User, Depends(require_page_role("agent"))]
LeadPage = Annotated[User, Depends(require_page_role("lead"))]
AdminPage = Annotated[User, Depends(require_page_role("admin"))]
AgentSocketUser = Annotated[User, Depends(require_ws_role("agent"))]
