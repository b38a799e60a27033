"""``/docs``: the interactive API reference (Swagger UI), entirely served by this service.

FastAPI's default page fetches Swagger UI's script and stylesheet from a CDN, so on a machine
without internet it stays blank, and elsewhere every visit tells a third party. The same files
ship in the ``swagger-ui-bundle-v2`` package, so they are served from here under
``/docs-assets/``. ReDoc is not offered: one reference page is enough, and it would need a
bundle of its own.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

DOCS_PATH = "/docs"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
ASSETS_PREFIX = "/docs-assets"

# Only the files the page loads; the bundle's source maps and demo pages stay unpublished.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
# The files change only with the package's version: caches may keep them for a day.
ASSET_CACHE_CONTROL = "public, max-age=86400"

router = APIRouter(include_in_schema=False)


@router.get(DOCS_PATH)
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI over this app's OpenAPI schema, its assets loaded from this service."""
    app = request.app
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} API",
        swagger_js_url=f"{root}{ASSETS_PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_PREFIX}/favicon-32x32.png",
        oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_PATH}",
        swagger_ui_parameters=app.swagger_ui_parameters,
    )


@router.get(OAUTH2_REDIRECT_PATH)
def swagger_ui_oauth2_redirect() -> HTMLResponse:
    """Where Swagger UI's "Authorize" flow returns to; it has no external assets."""
    return get_swagger_ui_oauth2_redirect_html()


@router.get(ASSETS_PREFIX + "/{name}")
def swagger_ui_asset(name: str) -> FileResponse:
    """One of Swagger UI's files from the installed bundle."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status_code=404)
    return FileResponse(
        Path(swagger_ui_path, name),
        media_type=media_type,
        headers={"Cache-Control": ASSET_CACHE_CONTROL},
    )
