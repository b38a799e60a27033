"""Defect 9 (issue #12): forwarded-host trust. The agent socket's same-origin check believed a
client-sent ``X-Forwarded-Host``, and the chat socket took the peer address as the client IP
whatever proxy sat in front. Forwarded headers now count only from
``SUPPORTBOT_TRUSTED_PROXIES`` (none by default), for both the same-origin check and the IP.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket

from bot.core.settings import Settings
from bot.web.guards import _same_origin
from bot.web.proxies import client_ip, forwarded_host, is_trusted


def scope(peer: str, headers: dict[str, str | list[str]], **settings: Any) -> dict[str, Any]:
    raw: list[tuple[bytes, bytes]] = []
    for name, value in headers.items():
        for item in value if isinstance(value, list) else [value]:
            raw.append((name.lower().encode(), item.encode()))
    app = SimpleNamespace(
        state=SimpleNamespace(ctx=SimpleNamespace(settings=Settings(_env_file=None, **settings)))
    )
    return {
        "type": "websocket",
        "path": "/ws/agent",
        "headers": raw,
        "client": (peer, 50000),
        "app": app,
    }


def connection(peer: str, headers: dict[str, str | list[str]]) -> HTTPConnection:
    return HTTPConnection(scope(peer, headers))


async def _receive() -> dict[str, Any]:
    raise AssertionError("not used")


async def _send(message: Any) -> None:
    raise AssertionError("not used")


def socket(peer: str, headers: dict[str, str | list[str]], **settings: Any) -> WebSocket:
    return WebSocket(scope(peer, headers, **settings), _receive, _send)


def test_forwarded_headers_nobody_is_trusted_by_default() -> None:
    assert Settings(_env_file=None).trusted_proxies == []
    forged = connection("203.0.113.9", {"x-forwarded-for": "10.1.1.1"})
    assert client_ip(forged, []) == "203.0.113.9"
    from_localhost = connection("127.0.0.1", {"x-forwarded-for": "10.1.1.1"})
    assert client_ip(from_localhost, []) == "127.0.0.1"
    assert forwarded_host(from_localhost, []) is None


def test_forwarded_headers_client_ip_from_a_trusted_proxy() -> None:
    trusted = ["10.0.0.0/8", "::1"]
    assert is_trusted("10.2.3.4", trusted) and is_trusted("::1", trusted)
    assert not is_trusted("192.0.2.1", trusted) and not is_trusted("testclient", trusted)
    # The proxy appends the address it saw; what the client wrote on the left is not believed.
    proxied = connection("10.0.0.2", {"x-forwarded-for": "6.6.6.6, 198.51.100.7"})
    assert client_ip(proxied, trusted) == "198.51.100.7"
    # Two trusted proxies in a row: skip both.
    chained = connection("10.0.0.2", {"x-forwarded-for": ["198.51.100.7", "10.0.0.3"]})
    assert client_ip(chained, trusted) == "198.51.100.7"
    # Garbage from the proxy side: the peer, not a guess.
    garbage = connection("10.0.0.2", {"x-forwarded-for": "198.51.100.7, not-an-ip"})
    assert client_ip(garbage, trusted) == "10.0.0.2"
    assert client_ip(connection("10.0.0.2", {}), trusted) == "10.0.0.2"


def test_forwarded_headers_forwarded_host_only_from_a_trusted_proxy() -> None:
    headers: dict[str, str | list[str]] = {
        "host": "internal:8000",
        "x-forwarded-host": "support.example.com",
        "origin": "https://support.example.com",
    }
    assert forwarded_host(connection("10.0.0.2", headers), ["10.0.0.0/8"]) == (
        "support.example.com"
    )
    # Defect 9: a client-sent X-Forwarded-Host made any origin "same origin".
    evil = {
        "host": "internal:8000",
        "x-forwarded-host": "evil.example",
        "origin": "https://evil.example",
    }
    assert not _same_origin(socket("203.0.113.9", dict(evil)))
    assert not _same_origin(socket("127.0.0.1", dict(evil)))
    assert _same_origin(socket("10.0.0.2", headers, trusted_proxies=["10.0.0.0/8"]))
    # Without a proxy: Origin must match Host.
    direct = {"host": "support.example.com", "origin": "https://support.example.com"}
    assert _same_origin(socket("203.0.113.9", dict(direct)))
    assert _same_origin(socket("203.0.113.9", {"host": "x"}))  # no Origin: not a browser


def test_forwarded_headers_setting_refuses_what_is_not_a_network() -> None:
    assert Settings(_env_file=None, trusted_proxies="10.0.0.1, 192.168.0.0/16").trusted_proxies == [
        "10.0.0.1",
        "192.168.0.0/16",
    ]
    with pytest.raises(ValueError):
        Settings(_env_file=None, trusted_proxies="proxy.internal")
