"""Sign-in and sign-out for the pages (the API uses bearer tokens instead).

The sign-in form is protected against login CSRF with a double-submit token (a random value in
an HttpOnly ``SameSite=Lax`` cookie that the form must echo); sign-out needs the session's CSRF
token, so another site cannot sign an agent out either.

Guessing is throttled (``bot.people.throttle``): every refused sign-in is audited; after a few
misses an address (or an IP) must wait longer and longer between tries, then is locked for a
while (429 with ``Retry-After``, before any password is checked); password checks run a few at
a time (503 when the queue is full). Every refusal says the same generic sentence.
"""

from __future__ import annotations

import hmac
import logging
import math
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from bot.core.db import transaction
from bot.people import throttle
from bot.people.credentials import (
    clear_session_cookie,
    csrf_ok,
    safe_next,
    set_session_cookie,
)
from bot.people.users import authenticate, has_role
from bot.web.context import AppContext
from bot.web.deps import ContextDep, SessionDep, SettingsDep
from bot.web.guards import LOGIN_CSRF_COOKIE, principal_from_request
from bot.web.proxies import client_ip

log = logging.getLogger(__name__)
WRONG = "Wrong e-mail address or password."
BUSY_RETRY_S = 2

router = APIRouter(tags=["auth"], include_in_schema=False)
# The pages' templates (bot/web/templates), shared with the agent console.
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))
templates.env.globals["has_role"] = has_role  # the top bar links only the consoles one may open


def _login_page(
    request: Request,
    next_url: str,
    error: str | None,
    status: int,
    retry_after_s: float | None = None,
) -> Response:
    token = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request,
        "login.html",
        {"csrf": token, "next": next_url, "error": error, "title": "Sign in", "user": None},
        status_code=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="lax", path="/login"
    )
    if retry_after_s is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    return response


def _audit(ctx: AppContext, email: str, ip: str, outcome: throttle.Outcome) -> None:
    """Record a sign-in outcome in its own transaction, committed before the answer goes out:
    the next attempt is judged with it, and a refusal stays audited whatever happens next."""
    with transaction(ctx.sessions) as session:
        throttle.record(session, email, ip, outcome)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    """The sign-in form."""
    return _login_page(request, safe_next(next), None, 200)


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    ctx: ContextDep,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/agent",
) -> Response:
    """Check the password; on success set the session cookie and go where the user wanted."""
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf):
        return _login_page(request, safe_next(next), "Your form expired; please try again.", 400)
    ip = client_ip(request, settings.trusted_proxies)
    policy = throttle.LoginPolicy.from_settings(settings)
    with ctx.sessions() as reading:  # a short read: no connection is held while waiting below
        verdict = throttle.check(reading, email, ip, policy)
    if not verdict.allowed:
        _audit(ctx, email, ip, "locked" if verdict.locked else "throttled")
        wait = max(1, math.ceil(verdict.retry_after_s))
        message = f"Too many sign-in attempts. Please wait {wait} seconds and try again."
        return _login_page(request, safe_next(next), message, 429, verdict.retry_after_s)
    try:
        user = authenticate(session, email, password, pool=throttle.hash_pool(settings))
    except throttle.HashBusy:
        _audit(ctx, email, ip, "busy")
        message = "Sign-in is busy right now. Please try again in a moment."
        return _login_page(request, safe_next(next), message, 503, BUSY_RETRY_S)
    if user is None:
        _audit(ctx, email, ip, "failed")
        log.info("failed sign-in from %s", ip)
        return _login_page(request, safe_next(next), WRONG, 401)
    _audit(ctx, email, ip, "success")
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, user, settings)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Clear the session cookie (needs the session's CSRF token)."""
    principal = principal_from_request(request, session)
    if principal is not None and not csrf_ok(principal, csrf):
        return Response("missing or wrong CSRF token", status_code=403)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response, settings)
    return response
