"""The admin page ``/admin``: the knowledge-base editor, a "try a question" box, uploads.

Only the server-rendered shell lives here; ``bot/web/static/admin.js`` fills it from the admin API
(``/api/admin/...``). The page is split from that API so the HTML and its assets can change
without touching the endpoints. It renders Markdown previews and answers with the widget's own
sanitizer (``/widget/supportbot.js`` loaded with ``data-mount="false"``), so what an admin sees
is exactly what a customer would see.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from bot.web.guards import AdminPage
from bot.web.routes.auth import templates

router = APIRouter(tags=["admin"], include_in_schema=False)
PACKAGE_DIR = Path(__file__).resolve().parent.parent


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, user: AdminPage) -> HTMLResponse:
    """The admin page; the CSRF token goes into a meta tag for the script's API calls."""
    principal = request.state.principal
    csrf = principal.session.csrf if principal.session is not None else ""
    return templates.TemplateResponse(
        request, "admin.html", {"user": user, "csrf": csrf, "title": "Knowledge base"}
    )


# The assets are public (``/static`` is in ``PUBLIC_PREFIXES``): they hold no data, and the
# sign-in redirect must not break them.


@router.get("/static/admin.js")
def admin_js() -> FileResponse:
    return FileResponse(PACKAGE_DIR / "static" / "admin.js", media_type="text/javascript")


@router.get("/static/learned.js")
def learned_js() -> FileResponse:
    """The learned-questions review pane of the admin page."""
    return FileResponse(PACKAGE_DIR / "static" / "learned.js", media_type="text/javascript")


@router.get("/static/admin.css")
def admin_css() -> FileResponse:
    return FileResponse(PACKAGE_DIR / "static" / "admin.css", media_type="text/css")
