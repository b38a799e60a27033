"""Who is really calling: forwarded headers, believed only from the proxies we were told about.

``X-Forwarded-For`` and ``X-Forwarded-Host`` are plain request headers: any client can send them.
Believing them from anyone lets a visitor pick its own IP (and so dodge per-IP limits) or pass
the agent socket's same-origin check from another site. So they count only when the connection
itself comes from an address in ``SUPPORTBOT_TRUSTED_PROXIES`` (IPs or CIDRs, none by default),
and ``supportbot serve`` turns uvicorn's own forwarded-header handling off, so this module is the
one place that decides.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

from starlette.requests import HTTPConnection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=32)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


def is_trusted(address: str | None, trusted: Sequence[str]) -> bool:
    """Is ``address`` one of the configured proxies? Anything that is not an IP is not."""
    if not address or not trusted:
        return False
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in _networks(tuple(trusted)))


def _peer(connection: HTTPConnection) -> str | None:
    return connection.client.host if connection.client else None


def _values(connection: HTTPConnection, header: str) -> list[str]:
    """Every comma-separated value of every ``header`` line, in order."""
    return [
        part.strip()
        for line in connection.headers.getlist(header)
        for part in line.split(",")
        if part.strip()
    ]


def client_ip(connection: HTTPConnection, trusted: Sequence[str]) -> str:
    """The address to rate-limit and log: the peer, or, when the peer is a trusted proxy, the
    nearest address in ``X-Forwarded-For`` that is not itself a trusted proxy (read right to
    left: the entries on the left were written by whoever sent the request, and can be forged).
    """
    peer = _peer(connection)
    if peer is None:
        return "unknown"
    if not is_trusted(peer, trusted):
        return peer
    hops = _values(connection, "x-forwarded-for")
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # garbage from the proxy's side: do not guess past it
        if not is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def forwarded_host(connection: HTTPConnection, trusted: Sequence[str]) -> str | None:
    """The host the browser asked our proxy for (``X-Forwarded-Host``), only when the
    connection comes from a trusted proxy; the last value is the one our proxy wrote."""
    if not is_trusted(_peer(connection), trusted):
        return None
    hosts = _values(connection, "x-forwarded-host")
    return hosts[-1] if hosts else None
