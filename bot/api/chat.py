"""``/ws/chat``: the customer chat socket. Thin: the origin check at the handshake, then
``bot.chat.serve_chat`` does the protocol (see docs/protocol.md)."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from bot.app import AppContext
from bot.chat import Disconnected, origin_allowed, serve_chat
from bot.protocol import CLOSE_POLICY_VIOLATION

router = APIRouter(tags=["chat"])


class StarletteTransport:
    """Adapts Starlette's ``WebSocket`` to ``bot.chat.Transport``."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket

    async def receive(self) -> str | bytes:
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
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


@router.websocket("/ws/chat")
async def chat_socket(websocket: WebSocket) -> None:
    """Customer chat. Refused with HTTP 403 (close 1008) when the page's origin is not allowed."""
    ctx: AppContext = websocket.app.state.ctx
    origin = websocket.headers.get("origin")
    if not origin_allowed(origin, ctx.settings.allowed_origins, websocket.headers.get("host")):
        await websocket.close(code=CLOSE_POLICY_VIOLATION, reason="origin not allowed")
        return
    await websocket.accept()
    client_ip = websocket.client.host if websocket.client else "unknown"
    await serve_chat(ctx, StarletteTransport(websocket), client_ip=client_ip, origin=origin)
