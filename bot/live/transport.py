"""Socket plumbing shared by the customer and agent sessions.

The sessions speak to a :class:`Transport`, not to Starlette, so their protocol logic runs the
same over a real socket, a test double, or another server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

if TYPE_CHECKING:
    from bot.core.settings import Settings


class Disconnected(Exception):
    """The peer went away."""


class Transport(Protocol):
    """What a session needs from a socket; :class:`StarletteTransport` adapts Starlette's."""

    async def receive(self) -> str | bytes:
        """The next frame; raises :class:`Disconnected`."""
        ...

    async def send(self, data: dict[str, Any]) -> None:
        """Send one JSON frame; raises :class:`Disconnected`."""
        ...

    async def close(self, code: int, reason: str = "") -> None: ...


class StarletteTransport:
    """Adapts Starlette's ``WebSocket`` to :class:`Transport`."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket

    async def receive(self) -> str | bytes:
        """A text frame as ``str``, a binary frame as ``bytes`` (the parsers read it as UTF-8
        JSON and answer ``invalid_json`` when it is not): a binary frame never ends the socket.
        """
        try:
            message = await self.websocket.receive()
        except (WebSocketDisconnect, RuntimeError) as exc:
            raise Disconnected from exc
        if message.get("type") == "websocket.disconnect":
            raise Disconnected
        text = message.get("text")
        if text is not None:
            return str(text)
        return bytes(message.get("bytes") or b"")

    async def send(self, data: dict[str, Any]) -> None:
        try:
            await self.websocket.send_json(data)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise Disconnected from exc

    async def close(self, code: int, reason: str = "") -> None:
        if self.websocket.application_state != WebSocketState.DISCONNECTED:
            with contextlib.suppress(RuntimeError, OSError):
                await self.websocket.close(code=code, reason=reason)


def origin_allowed(origin: str | None, allowed: Iterable[str], host: str | None = None) -> bool:
    """Is a browser page at ``origin`` allowed to open the chat socket?

    Browsers always send ``Origin`` on a WebSocket handshake and CORS does not apply to
    WebSockets, so this check is what stops another site from chatting as our visitors. A
    handshake without ``Origin`` comes from a non-browser client (an app, a script), which could
    forge the header anyway; it is allowed. The service's own pages (same host and port as the
    handshake's ``Host``, e.g. the demo page at ``/`` on any port) are always allowed.
    """
    allowed_set = {item.strip().rstrip("/").lower() for item in allowed}
    if "*" in allowed_set or origin is None:
        return True
    normalized = origin.strip().rstrip("/").lower()
    if host and urlsplit(normalized).netloc == host.strip().lower():
        return True
    return normalized in allowed_set


def uvicorn_ws_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's WebSocket options for the chat: the frame cap (1009 on oversize), server pings
    so dead peers are noticed, and no per-message deflate (its zlib buffers would cost far more
    memory per idle socket than the socket itself; chat frames are small)."""
    return {
        "ws_max_size": settings.chat_max_frame_bytes,
        "ws_ping_interval": settings.chat_ping_interval_s,
        "ws_ping_timeout": settings.chat_ping_timeout_s,
        "ws_per_message_deflate": False,
    }
