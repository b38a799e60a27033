"""Log output: plain text (the default) or one JSON object per line (``log_format = json``).

Why JSON: log shippers (Loki, Elasticsearch, CloudWatch) index fields, not sentences; with N
processes behind a proxy, "everything that happened to conversation X" is a query on
``conversation_id`` only when every line carries it as a field.

Where the conversation id comes from: :data:`conversation_id` is a context variable that the
chat socket sets once it knows its conversation, and that each answer task sets for its own
conversation; asyncio tasks copy the context they were created in, so every log line written
while serving a conversation carries its id without each call passing it. A call may also pass
``extra={"conversation_id": ...}``.

What never goes into a line at info level: the customer's words. The code logs ids, sequence
numbers, reasons and counts; message text is not a log argument anywhere on the chat path, and
the personal-data mask (``bot.core.privacy``) still runs on every record in case a library does.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.core.settings import Settings

conversation_id: ContextVar[str | None] = ContextVar("supportbot_conversation_id", default=None)

# Fields of every LogRecord; anything else on a record came from ``extra=`` and is emitted.
_RECORD_FIELDS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName", "color_message", "_supportbot_masked"}
)
# uvicorn's loggers; they get the same formatter so every line of the process is one format.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``logger``, ``message``, then
    ``conversation_id`` when known, the ``extra=`` fields, and ``exc`` for a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = getattr(record, "conversation_id", None) or conversation_id.get()
        if current:
            entry["conversation_id"] = current
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and key not in entry and not key.startswith("_"):
                entry[key] = _plain(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def uvicorn_log_config(settings: Settings) -> dict[str, Any]:
    """The ``log_config`` for uvicorn: its own default for text, JSON on stderr for json (the
    root logger included, so the service's own lines come out in the same format)."""
    from uvicorn.config import LOGGING_CONFIG

    if settings.log_format != "json":
        return LOGGING_CONFIG
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "bot.core.logs.JsonFormatter"}},
        "handlers": {"json": handler},
        "loggers": {
            "uvicorn": {"handlers": [], "level": "INFO", "propagate": True},
            "uvicorn.error": {"level": "INFO", "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "INFO", "propagate": True},
        },
        "root": {"handlers": ["json"], "level": "INFO"},
    }


def configure_logging(settings: Settings) -> None:
    """Apply ``log_format`` to a process that did not start through ``supportbot serve``
    (another ASGI server, tests): with json, every handler on the root and uvicorn loggers
    formats as JSON, and the root logger gets one at info when it has none. Idempotent; text
    leaves the process's logging as it was."""
    if settings.log_format != "json":
        return
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    for logger in (root, *(logging.getLogger(name) for name in UVICORN_LOGGERS)):
        for handler in logger.handlers:
            if not isinstance(handler.formatter, JsonFormatter):
                handler.setFormatter(JsonFormatter())
