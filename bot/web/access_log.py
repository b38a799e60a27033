"""Keeps credentials out of the server's logs.

Clients that cannot set headers open ``/ws/agent?token=...`` (docs/agents.md), and uvicorn logs
every request line and WebSocket handshake with its query string: the agent's API token would
sit in plain text in every log file and log shipper. :class:`QueryTokenRedactor` rewrites such
values to ``[redacted]`` before a record is formatted; :func:`install_log_redaction` puts it on
uvicorn's loggers (idempotent), and the app's lifespan calls it, so every way of running the app
is covered, not only ``supportbot serve``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

# Query parameters whose values are secrets wherever they appear.
SECRET_PARAMS = ("token", "access_token", "resume_token", "api_key", "key", "password")
REDACTED = "[redacted]"
# uvicorn.error carries the WebSocket handshake lines ('"WebSocket /ws/agent?token=..."'),
# uvicorn.access the HTTP request lines.
UVICORN_LOGGERS = ("uvicorn.access", "uvicorn.error")

_SECRET_VALUE = re.compile(
    r"(?P<key>(?:^|[?&;])(?:" + "|".join(SECRET_PARAMS) + r")=)(?P<value>[^&;\s\"#]*)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with the value of every secret query parameter replaced."""
    if "=" not in text:
        return text
    return _SECRET_VALUE.sub(lambda m: m.group("key") + REDACTED, text)


def _redact_arg(arg: Any) -> Any:
    return redact(arg) if isinstance(arg, str) else arg


class QueryTokenRedactor(logging.Filter):
    """Redacts secret query parameters in a record's message and arguments; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redact_arg(value) for key, value in record.args.items()}
        return True


def install_log_redaction(names: tuple[str, ...] = UVICORN_LOGGERS) -> None:
    """Put one :class:`QueryTokenRedactor` on each named logger (again: no second filter)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QueryTokenRedactor) for f in logger.filters):
            logger.addFilter(QueryTokenRedactor())
