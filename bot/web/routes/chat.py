"""``/ws/chat``: the customer chat socket. Thin: the origin check at the handshake, then
:func:`bot.live.customer.serve_chat` does the protocol (see docs/protocol.md)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from bot.conversations.frames import CLOSE_POLICY_VIOLATION
from bot.live.customer import serve_chat
from bot.live.transport import StarletteTransport, origin_allowed
from bot.people.sites import site_by_origin
from bot.web import proxies
from bot.web.context import AppContext
from bot.web.deps import ContextDep

router = APIRouter(tags=["chat"])


async def _registered_site(ctx: AppContext, origin: str | None) -> bool:
    """Sites added with ``supportbot site add`` may open the chat too (read per handshake, so
    a site added or removed while the service runs counts at once)."""
    if not origin:
        return False
    site = await ctx.database.run(lambda s: site_by_origin(s, origin))
    return site is not None


@router.websocket("/ws/chat")
async def chat_socket(websocket: WebSocket, ctx: ContextDep) -> None:
    """Customer chat. Refused with HTTP 403 (close 1008) when the page's origin is not allowed."""
    origin = websocket.headers.get("origin")
    if not origin_allowed(
        origin, ctx.settings.allowed_origins, websocket.headers.get("host")
    ) and not await _registered_site(ctx, origin):
        await websocket.close(code=CLOSE_POLICY_VIOLATION, reason="origin not allowed")
        return
    client_ip = proxies.client_ip(websocket, ctx.settings.trusted_proxies)
    if ctx.chat.gate.sockets_refused(client_ip):
        # Its sockets were closed for flooding again and again: refused until the window passes.
        await websocket.close(code=CLOSE_POLICY_VIOLATION, reason="rate limit exceeded")
        return
    await websocket.accept()
    await serve_chat(ctx.chat, StarletteTransport(websocket), client_ip=client_ip, origin=origin)
