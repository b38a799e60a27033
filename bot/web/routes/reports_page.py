"""The deflection dashboard ``/reports`` for support leads, and its content-gaps API.

The page is a server-rendered shell; ``bot/web/static/reports.js`` fills it from
``/api/reports/summary`` (:mod:`bot.web.routes.reports`, the figures) and ``/api/reports/gaps``
(here: the questions the knowledge base failed, grouped by meaning, see
:mod:`bot.reports.gaps`). Charts are drawn by Chart.js, vendored under ``static/vendor/`` so the
page works offline and under a strict Content-Security-Policy: the page sends one that allows
scripts, styles and requests from this origin only (no inline script, no ``eval``), so even a
customer question that smuggled markup into a report could not run.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse

from bot.people.users import has_role
from bot.reports.figures import ReportError, make_period
from bot.reports.gaps import ContentGaps, content_gaps
from bot.web.deps import ContextDep, SessionDep
from bot.web.guards import LeadPage, LeadUser
from bot.web.routes.auth import templates

router = APIRouter(tags=["reports"])
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


@router.get("/reports", response_class=HTMLResponse, include_in_schema=False)
def reports_page(request: Request, user: LeadPage) -> HTMLResponse:
    """The dashboard shell. Admins also get "draft an article" links (the editor is theirs)."""
    principal = request.state.principal
    csrf = principal.session.csrf if principal.session is not None else ""
    response = templates.TemplateResponse(
        request,
        "reports.html",
        {
            "user": user,
            "csrf": csrf,
            "title": "Deflection dashboard",
            "can_draft": has_role(user, "admin"),
        },
    )
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@router.get("/api/reports/gaps")
def get_gaps(
    user: LeadUser,
    session: SessionDep,
    ctx: ContextDep,
    since: Annotated[date | None, Query(description="First local day, included.")] = None,
    until: Annotated[date | None, Query(description="Last local day, included.")] = None,
    tz: Annotated[str, Query(max_length=64, description="IANA time zone of the days.")] = "UTC",
) -> ContentGaps:
    """Questions of the period that ended in a ``no_knowledge``/``low_confidence`` escalation or
    a "not helpful" vote, grouped by meaning, largest group first, with the agents' replies and
    a link that opens the admin editor on a drafted article."""
    try:
        period = make_period(since, until, tz)
    except ReportError as exc:
        raise HTTPException(422, str(exc)) from None
    return content_gaps(session, period, ctx.embedder.encode)


# Assets are public (``/static`` is in ``PUBLIC_PREFIXES``): they hold no data.


@router.get("/static/reports.js", include_in_schema=False)
def reports_js() -> FileResponse:
    return FileResponse(STATIC_DIR / "reports.js", media_type="text/javascript")


@router.get("/static/reports.css", include_in_schema=False)
def reports_css() -> FileResponse:
    return FileResponse(STATIC_DIR / "reports.css", media_type="text/css")


@router.get("/static/vendor/chart.umd.min.js", include_in_schema=False)
def chart_js() -> FileResponse:
    return FileResponse(STATIC_DIR / "vendor" / "chart.umd.min.js", media_type="text/javascript")


@router.get("/static/vendor/LICENSE.chartjs.txt", include_in_schema=False)
def chart_js_license() -> FileResponse:
    return FileResponse(STATIC_DIR / "vendor" / "LICENSE.chartjs.txt", media_type="text/plain")
