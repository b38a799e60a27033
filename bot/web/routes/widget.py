"""Serves the embeddable widget: the script at ``/widget/supportbot.js`` and the demo page at ``/``.

The source files live in the repository's top-level ``widget/`` folder (plain JavaScript and
HTML, no build step). The wheel carries that folder inside the package as
``bot.web.widget_assets`` (a ``package-dir`` mapping in ``pyproject.toml``), so an installed
service finds them with ``importlib.resources``. A source checkout, run in place or installed in
editable mode (whose import hook does not map that data-only folder), uses the folder itself.
Both files are read once per change on disk and served with a strong ETag, so browsers
revalidate cheaply and a deploy is picked up without a restart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response

WIDGET_PACKAGE = "bot.web.widget_assets"
CHECKOUT_WIDGET_DIR = Path(__file__).resolve().parents[3] / "widget"


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
PAGE_CACHE_CONTROL = "no-cache"

router = APIRouter(tags=["widget"])


@dataclass(frozen=True)
class _Asset:
    body: bytes
    etag: str
    mtime_ns: int


_cache: dict[Path, _Asset] = {}


def _load(path: Path) -> _Asset:
    """The file's bytes and ETag, re-read only when its modification time changes."""
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
    asset = _Asset(body=body, etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"', mtime_ns=mtime_ns)
    _cache[path] = asset
    return asset


def _serve(request: Request, path: Path, media_type: str, headers: dict[str, str]) -> Response:
    asset = _load(path)
    headers = {**headers, "ETag": asset.etag, "X-Content-Type-Options": "nosniff"}
    if_none_match = request.headers.get("if-none-match", "")
    if asset.etag in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(content=asset.body, media_type=media_type, headers=headers)


@router.api_route(
    "/widget/supportbot.js",
    methods=["GET", "HEAD"],
    include_in_schema=False,
    summary="The embeddable chat widget script",
)
def widget_script(request: Request) -> Response:
    """One ``<script src=... defer>`` tag on any site adds the chat launcher and panel."""
    return _serve(
        request,
        WIDGET_DIR / "supportbot.js",
        "text/javascript; charset=utf-8",
        {
            "Cache-Control": SCRIPT_CACHE_CONTROL,
            # Sites that send Cross-Origin-Embedder-Policy can still load it.
            "Cross-Origin-Resource-Policy": "cross-origin",
        },
    )


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
def demo_page(request: Request) -> Response:
    """A demo store page ("Parcelly") with the widget embedded, to try the bot in a browser."""
    return _serve(
        request,
        WIDGET_DIR / "demo.html",
        "text/html; charset=utf-8",
        {"Cache-Control": PAGE_CACHE_CONTROL, "Referrer-Policy": "strict-origin-when-cross-origin"},
    )
