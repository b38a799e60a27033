"""deploy/nginx.conf in front of two real service processes: the sample config is checked
(``nginx -t``), then a chat runs through it over a WebSocket and plain requests reach both
processes (no stickiness). Skipped when nginx is not installed (``apt-get install nginx``).

The file is used as shipped; only its marked, site-specific lines are rewritten: the upstream
``server`` lines (the two test processes' ports) and ``listen`` (a free port). nginx runs in the
foreground with its own prefix in the test's temporary directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.child_server import ChildServer, free_port
from tests.helpers.live_server import chat_connect, hello, is_bot_message, recv_until, send

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "deploy" / "nginx.conf"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


NGINX = nginx_binary()
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")


def site_config(ports: list[int], listen: int) -> str:
    """The sample with this test's upstream ports and listen port."""
    text = SAMPLE.read_text()
    servers = re.findall(r"^\s*server 127\.0\.0\.1:\d+ [^\n]*;$", text, flags=re.MULTILINE)
    assert len(servers) == 2, "the sample lists two upstream processes"
    lines = "\n".join(
        f"    server 127.0.0.1:{port} max_fails=3 fail_timeout=10s;" for port in ports
    )
    text = text.replace("\n".join(servers), lines)
    assert "listen 80;" in text
    return text.replace("listen 80;", f"listen 127.0.0.1:{listen};")


def main_config(prefix: Path, site: Path) -> str:
    """A minimal nginx.conf around the site file, everything under ``prefix``."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {name}_temp_path {prefix / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix / "access.log"};
{temp}
    include {site};
}}
"""


def write_config(tmp: Path, ports: list[int], listen: int) -> Path:
    prefix = tmp / "nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    site = prefix / "supportbot.conf"
    site.write_text(site_config(ports, listen))
    main = prefix / "nginx.conf"
    main.write_text(main_config(prefix, site))
    return main


@needs_nginx
def test_the_sample_config_is_valid(tmp_path: Path) -> None:
    assert NGINX is not None
    main = write_config(tmp_path, [free_port(), free_port()], free_port())
    checked = subprocess.run(
        [NGINX, "-t", "-p", str(main.parent), "-c", str(main)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[list[ChildServer]]:
    env = {"SUPPORTBOT_TRUSTED_PROXIES": "127.0.0.1"}
    first = ChildServer(tmp_path / "one" / "data", delay_s=0.02, pieces=3, env=env)
    second = ChildServer(tmp_path / "two" / "data", delay_s=0.02, pieces=3, env=env)
    with first, second:
        yield [first, second]


@pytest.fixture
def proxy(tmp_path: Path, backends: list[ChildServer]) -> Iterator[int]:
    assert NGINX is not None
    port = free_port()
    main = write_config(tmp_path, [b.port for b in backends], port)
    process = subprocess.Popen(
        [NGINX, "-p", str(main.parent), "-c", str(main), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "nginx did not start: "
                        + (process.stderr.read() if process.stderr else b"").decode(
                            errors="replace"
                        )
                    ) from None
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)


def healthz_lines(server: ChildServer) -> int:
    return server.log_text().count("GET /healthz")


@needs_nginx
async def test_a_chat_runs_through_nginx_to_two_processes(
    proxy: int, backends: list[ChildServer]
) -> None:
    before = [healthz_lines(b) for b in backends]
    for _ in range(6):
        with urllib.request.urlopen(f"http://127.0.0.1:{proxy}/healthz", timeout=5) as reply:
            assert reply.status == 200
    time.sleep(0.3)  # the access log lines are written after the response
    after = [healthz_lines(b) for b in backends]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)

    async with chat_connect(f"ws://127.0.0.1:{proxy}/ws/chat", origin=None) as ws:
        welcome = await hello(ws)
        assert welcome["type"] == "welcome"
        await send(ws, {"type": "message", "client_msg_id": "via-nginx", "text": "Where is it?"})
        frames = await recv_until(ws, is_bot_message)
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "ack" and "delta" in kinds
    deltas = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert deltas and deltas == frames[-1]["text"]
