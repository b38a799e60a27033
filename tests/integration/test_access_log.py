"""Defect 6 (issue #12): the agent API token in the access log. A console that opens
``/ws/agent?token=sbt_...`` had its token written in plain text by uvicorn's handshake and
request lines. The app now installs a filter on uvicorn's loggers that redacts secret query
parameters; checked on log records and on the log of a real server process.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bot.web.access_log import QueryTokenRedactor, install_log_redaction, redact
from tests.helpers.child_server import ChildServer


def test_access_log_redacts_query_tokens() -> None:
    assert redact("/ws/agent?token=sbt_secret") == "/ws/agent?token=[redacted]"
    assert redact("/x?a=1&token=sbt_s&b=2") == "/x?a=1&token=[redacted]&b=2"
    assert redact("/x?access_token=abc&resume_token=def") == (
        "/x?access_token=[redacted]&resume_token=[redacted]"
    )
    assert redact("/x?TOKEN=abc") == "/x?TOKEN=[redacted]"
    assert redact("/x?tokens=1&mytoken=2") == "/x?tokens=1&mytoken=2"  # other names stay
    assert redact("/healthz") == "/healthz"


def test_access_log_filter_rewrites_uvicorn_records() -> None:
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", "/ws/agent?token=sbt_secret"),
        None,
    )
    assert QueryTokenRedactor().filter(record)
    assert "sbt_secret" not in record.getMessage()
    assert "token=[redacted]" in record.getMessage()
    install_log_redaction()
    install_log_redaction()  # idempotent
    for name in ("uvicorn.access", "uvicorn.error"):
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, QueryTokenRedactor) for f in filters) == 1


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_access_log_has_no_agent_token(tmp_path: Path) -> None:
    with ChildServer(tmp_path / "data") as server:
        created = subprocess.run(
            ["supportbot", "user", "add", "ana@example.com", "--role", "agent"],
            env=server.env(),
            capture_output=True,
            text=True,
            check=True,
        )
        token = created.stdout.strip().splitlines()[-1].split()[-1]
        assert token.startswith("sbt_")
        url = f"ws://127.0.0.1:{server.port}/ws/agent?token={token}"
        async with connect(url, open_timeout=10) as ws:
            await ws.recv()  # hello: the handshake was accepted (and logged)
        bad = f"ws://127.0.0.1:{server.port}/ws/agent?token={token}x"
        with pytest.raises(InvalidStatus):  # refused handshake: logged too
            async with connect(bad, open_timeout=10):
                pass
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(f"{server.base}/api/agent/queue?token={token}", timeout=5)
    log = server.log_text()
    assert "/ws/agent?token=[redacted]" in log
    assert token not in log
    assert token[4:] not in log
