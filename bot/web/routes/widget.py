"""Serves the embeddable widget: its scripts under ``/widget/`` and the demo page at ``/``.

The files live in the repository's top-level ``widget/`` folder: the readable source
``supportbot.js``, the minified build ``supportbot.min.js`` (made by ``scripts/build_widget.sh``
and committed), the German, French and Spanish texts (``locale.<tag>.js``, fetched only by pages
in those languages), ``extras.js`` (fetched by the widget only when it needs it) and the demo
page. The wheel carries that folder inside the package as
``bot.web.widget_assets`` (a ``package-dir`` mapping in ``pyproject.toml``), so an installed
service finds them with ``importlib.resources``. A source checkout, run in place or installed in
editable mode (whose import hook does not map that data-only folder), uses the folder itself.

Sites should embed the versioned URL ``/widget/supportbot.<version>.js`` (``version``: the first
12 hex digits of the minified file's SHA-256): it never changes content, so it is cached for a
year (``immutable``) and a page view costs no request at all. The unversioned URLs keep working
with a five-minute cache and a strong ETag, so a release reaches their sites within minutes. A
versioned URL of an earlier release redirects to the current one, so an old embed never breaks.
Every file is read once per change on disk (a deploy is picked up without a restart) and sent
gzip-compressed to clients that accept it. Brotli is not offered: neither the standard library
nor the service's dependencies have an encoder, and gzip alone keeps the widget in its budget.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

WIDGET_PACKAGE = "bot.web.widget_assets"
CHECKOUT_WIDGET_DIR = Path(__file__).resolve().parents[3] / "widget"
MINIFIED = "supportbot.min.js"
LOCALES = ("de", "fr", "es")
"""The catalogues besides English (English is inside the script): ``widget/locale.<tag>.js``."""
VERSION_CHARS = 12


def locate_widget_dir() -> Path:
    """The folder holding ``supportbot.js`` and ``demo.html``: the packaged copy when the
    package is importable, otherwise the checkout's ``widget/`` folder."""
    try:
        script = resources.files(WIDGET_PACKAGE) / "supportbot.js"
    except ModuleNotFoundError:
        return CHECKOUT_WIDGET_DIR
    # pip installs unpacked files, so this is a real path; anything else (a zip) is not supported.
    return script.parent if isinstance(script, Path) else CHECKOUT_WIDGET_DIR


WIDGET_DIR = locate_widget_dir()

# Embedding sites load the script on every page view: let caches keep it for a few minutes,
# then revalidate (a 304 when unchanged), so a new release reaches every site within minutes.
SCRIPT_CACHE_CONTROL = "public, max-age=300, stale-while-revalidate=86400"
# A versioned URL names one exact build: it can be cached for good.
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"
PAGE_CACHE_CONTROL = "no-cache"
JS = "text/javascript; charset=utf-8"
SCRIPT_HEADERS = {
    # Sites that send Cross-Origin-Embedder-Policy can still load it.
    "Cross-Origin-Resource-Policy": "cross-origin",
}
# Below this size compression is not worth a CPU cycle or the Vary header.
MIN_COMPRESS_BYTES = 1024

router = APIRouter(tags=["widget"])


@dataclass(frozen=True)
class _Asset:
    body: bytes
    gzipped: bytes | None
    etag: str
    version: str
    mtime_ns: int


_cache: dict[Path, _Asset] = {}


def _load(path: Path) -> _Asset:
    """The file's bytes, gzip copy and ETag, re-read only when its modification time changes."""
    try:
        mtime_ns = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise HTTPException(
            status_code=404,
            detail=f"{path.name} not found in {path.parent}: the installation is incomplete",
        ) from None
    cached = _cache.get(path)
    if cached is not None and cached.mtime_ns == mtime_ns:
        return cached
    body = path.read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    # mtime=0: the same bytes always compress to the same bytes (stable ETags across processes).
    gzipped = gzip.compress(body, 9, mtime=0) if len(body) >= MIN_COMPRESS_BYTES else None
    asset = _Asset(body, gzipped, f'"{digest[:32]}"', digest[:VERSION_CHARS], mtime_ns)
    _cache[path] = asset
    return asset


def _accepts_gzip(request: Request) -> bool:
    """``gzip`` in ``Accept-Encoding`` without ``q=0``."""
    for part in request.headers.get("accept-encoding", "").lower().split(","):
        name, _, params = part.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _serve(request: Request, path: Path, media_type: str, headers: dict[str, str]) -> Response:
    asset = _load(path)
    compress = asset.gzipped is not None and _accepts_gzip(request)
    # Each encoding is its own representation with its own ETag (RFC 9110 8.8.3).
    etag = asset.etag[:-1] + '-gz"' if compress else asset.etag
    headers = {**headers, "ETag": etag, "X-Content-Type-Options": "nosniff"}
    if asset.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    if_none_match = {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}
    if etag in if_none_match or asset.etag in if_none_match:
        return Response(status_code=304, headers=headers)
    if compress:
        assert asset.gzipped is not None
        headers["Content-Encoding"] = "gzip"
        return Response(content=asset.gzipped, media_type=media_type, headers=headers)
    return Response(content=asset.body, media_type=media_type, headers=headers)


def widget_version() -> str:
    """The current build's version: the start of the minified file's SHA-256."""
    return _load(WIDGET_DIR / MINIFIED).version


@router.api_route(
    "/widget/supportbot.js",
    methods=["GET", "HEAD"],
    include_in_schema=False,
    summary="The embeddable chat widget script (readable source)",
)
def widget_script(request: Request) -> Response:
    """One ``<script src=... defer>`` tag on any site adds the chat launcher and panel. This URL
    has always served the readable source; embeds of it keep working as they did."""
    headers = {**SCRIPT_HEADERS, "Cache-Control": SCRIPT_CACHE_CONTROL}
    return _serve(request, WIDGET_DIR / "supportbot.js", JS, headers)


@router.api_route("/widget/supportbot.min.js", methods=["GET", "HEAD"], include_in_schema=False)
def widget_script_minified(request: Request) -> Response:
    """The minified build under a stable name, for sites that cannot update a versioned URL."""
    headers = {**SCRIPT_HEADERS, "Cache-Control": SCRIPT_CACHE_CONTROL}
    return _serve(request, WIDGET_DIR / MINIFIED, JS, headers)


@router.get("/widget/version.json", include_in_schema=False)
def widget_version_info() -> JSONResponse:
    """Where the current build lives, for deploy scripts that template the embed tag."""
    version = widget_version()
    return JSONResponse(
        {"version": version, "script": f"/widget/supportbot.{version}.js"},
        headers={"Cache-Control": PAGE_CACHE_CONTROL},
    )


@router.api_route("/widget/locale.{tag}.js", methods=["GET", "HEAD"], include_in_schema=False)
def widget_locale(request: Request, tag: str) -> Response:
    """A language's widget texts, loaded by the widget itself on pages in that language."""
    if tag not in LOCALES:
        raise HTTPException(status_code=404, detail=f"no widget texts for {tag!r}")
    headers = {**SCRIPT_HEADERS, "Cache-Control": SCRIPT_CACHE_CONTROL}
    return _serve(request, WIDGET_DIR / f"locale.{tag}.js", JS, headers)


@router.api_route("/widget/extras.js", methods=["GET", "HEAD"], include_in_schema=False)
def widget_extras(request: Request) -> Response:
    """Parts of the widget few page views need (a known customer's earlier conversations, the
    e-mail option, the end-of-chat survey), loaded by the widget itself only when needed."""
    headers = {**SCRIPT_HEADERS, "Cache-Control": SCRIPT_CACHE_CONTROL}
    return _serve(request, WIDGET_DIR / "extras.js", JS, headers)


@router.api_route(
    "/widget/supportbot.{version}.js", methods=["GET", "HEAD"], include_in_schema=False
)
def widget_script_versioned(request: Request, version: str) -> Response:
    """The minified build at a URL that names it, cached for a year; an earlier release's URL
    is sent on to the current one (not cached), so embeds survive upgrades."""
    current = widget_version()
    if version != current:
        return RedirectResponse(
            f"supportbot.{current}.js",  # relative: works behind a path prefix too
            status_code=302,
            headers={"Cache-Control": PAGE_CACHE_CONTROL, **SCRIPT_HEADERS},
        )
    headers = {**SCRIPT_HEADERS, "Cache-Control": IMMUTABLE_CACHE_CONTROL}
    return _serve(request, WIDGET_DIR / MINIFIED, JS, headers)


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
def demo_page(request: Request) -> Response:
    """A demo store page ("Parcelly") with the widget embedded, to try the bot in a browser."""
    return _serve(
        request,
        WIDGET_DIR / "demo.html",
        "text/html; charset=utf-8",
        {"Cache-Control": PAGE_CACHE_CONTROL, "Referrer-Policy": "strict-origin-when-cross-origin"},
    )
