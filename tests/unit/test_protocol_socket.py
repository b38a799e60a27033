"""The chat socket's own guards, without a network: frame size, frame flood, origins."""

from __future__ import annotations

from typing import Any

import pytest

from bot.conversations.events import EventBus
from bot.core.settings import Settings
from bot.live.customer import ChatConnection, ChatService
from bot.live.transport import origin_allowed, uvicorn_ws_options


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None

    async def receive(self) -> str | bytes:
        raise AssertionError("not used")

    async def send(self, data: dict[str, Any]) -> None:
        self.sent.append(data)

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = (code, reason)


def connection(**overrides: Any) -> tuple[ChatConnection, FakeTransport]:
    settings = Settings(_env_file=None, **overrides)  # type: ignore[call-arg]
    database: Any = None  # these frames are refused before they reach the store
    service = ChatService(settings, database, EventBus(), answerer=None)
    transport = FakeTransport()
    return ChatConnection(service, transport, client_ip="10.0.0.1"), transport


async def test_frame_over_the_byte_limit_closes_1009_even_below_uvicorns_cap() -> None:
    conn, transport = connection(chat_max_frame_bytes=1024)
    # 400 characters but 1200 bytes: the limit is on bytes, as on the wire.
    keep_open = await conn.handle_raw('{"type": "typing", "x": "' + "€" * 400 + '"}')
    assert keep_open is False
    assert transport.sent == [
        {"type": "error", "code": "frame_too_large", "detail": "frames are limited to 1024 bytes"}
    ]
    assert transport.closed is not None and transport.closed[0] == 1009


async def test_a_flood_of_frames_is_rate_limited_but_the_socket_stays() -> None:
    conn, transport = connection(chat_rate_frames_burst=5, chat_rate_frames_per_second=0.001)
    results = [await conn.handle_raw("garbage") for _ in range(7)]
    assert all(results)
    codes = [frame["code"] for frame in transport.sent]
    assert codes == ["invalid_json"] * 5 + ["rate_limited"] * 2
    assert transport.sent[-1]["retry_after_ms"] > 0


async def test_frames_before_hello_are_refused() -> None:
    conn, transport = connection()
    await conn.handle_raw('{"type": "csat", "score": 3}')
    await conn.handle_raw('{"type": "typing"}')  # silently ignored before hello
    assert [frame["code"] for frame in transport.sent] == ["hello_required"]


@pytest.mark.parametrize(
    ("origin", "allowed", "ok"),
    [
        ("https://shop.example", ["https://shop.example"], True),
        ("https://SHOP.example/", ["https://shop.example"], True),
        ("https://evil.example", ["https://shop.example"], False),
        ("https://shop.example.evil.example", ["https://shop.example"], False),
        ("null", ["https://shop.example"], False),
        ("https://anything.example", ["*"], True),
        (None, ["https://shop.example"], True),  # not a browser: nothing to protect against
    ],
)
def test_origin_allow_list(origin: str | None, allowed: list[str], ok: bool) -> None:
    assert origin_allowed(origin, allowed) is ok


@pytest.mark.parametrize(
    ("origin", "host", "ok"),
    [
        ("http://127.0.0.1:9000", "127.0.0.1:9000", True),  # the service's own demo page
        ("http://127.0.0.1:9001", "127.0.0.1:9000", False),
        ("https://evil.example", "127.0.0.1:9000", False),
    ],
)
def test_the_services_own_pages_are_always_allowed(origin: str, host: str, ok: bool) -> None:
    """Regression: `supportbot serve --port 9000` refused its own demo page's widget, because
    only the default port's origins were on the allow-list."""
    assert origin_allowed(origin, ["http://localhost:8000"], host=host) is ok


def test_serve_uses_the_frame_cap_and_pings() -> None:
    settings = Settings(_env_file=None, chat_max_frame_bytes=4096)  # type: ignore[call-arg]
    options = uvicorn_ws_options(settings)
    assert options["ws_max_size"] == 4096
    assert options["ws_ping_interval"] == settings.chat_ping_interval_s > 0
    assert options["ws_per_message_deflate"] is False
