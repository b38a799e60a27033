"""The pictures in docs/ and the README, taken from the real product: a fresh data directory,
the demo knowledge base ingested by ``supportbot ingest``, ``supportbot serve`` on a free port, a
shop on its own origin that embeds the widget for a signed-in customer (HMAC from the site's
secret), and Chromium.

    python scripts/screenshots.py            # writes docs/widget.png, docs/widget-phone.png,
                                             # docs/console-known-customer.png
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
AGENT_EMAIL = "sam@parcelly.example"
AGENT_PASSWORD = "screenshot-password-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def shop_page(server: str, secret: str, locale: str = "en") -> bytes:
    user_id = "cust-1042"
    digest = hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()
    return (
        f'<!doctype html><html lang="{locale}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Parcelly Kitchen</title></head>"
        '<body style="font-family:sans-serif;margin:40px;background:#f6f4ef">'
        "<h1>Parcelly Kitchen</h1><p>Pans, knives and everything for the kitchen.</p>"
        f'<script src="{server}/widget/supportbot.js" data-server="{server}" '
        f'data-user-id="{user_id}" data-user-name="Ana Silva" '
        f'data-user-email="ana@example.com" data-user-hash="{digest}" defer></script>'
        "</body></html>"
    ).encode()


def serve_shop(pages: dict[str, bytes]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path.split("?")[0], b"")
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def wait_ready(url: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"the service at {url} did not become ready")


def ask(page: Page, text: str) -> None:
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="supportbot-shots-"))
    env = {**os.environ, "SUPPORTBOT_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1"}
    env["SUPPORTBOT_BUSINESS_HOURS"] = "24/7"
    cli = [sys.executable, "-m", "bot.cli"]
    subprocess.run([*cli, "ingest", str(REPO / "kb_articles")], env=env, check=True, cwd=REPO)

    pages: dict[str, bytes] = {}
    shop = serve_shop(pages)
    shop_url = f"http://127.0.0.1:{shop.server_address[1]}"
    added = subprocess.run(
        [*cli, "site", "add", shop_url],
        env=env,
        check=True,
        cwd=REPO,
        text=True,
        capture_output=True,
    ).stdout
    secret = added.strip().splitlines()[-1]  # `site add` prints the secret on its last line
    sys.path.insert(0, str(REPO))
    from bot.core.db import make_engine, make_session_factory, transaction
    from bot.core.settings import Settings
    from bot.people.users import create_user

    settings = Settings(data_dir=data, _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(settings.effective_database_url)
    with transaction(make_session_factory(engine)) as session:
        create_user(session, AGENT_EMAIL, "agent", password=AGENT_PASSWORD)
    engine.dispose()

    port = free_port()
    server = f"http://127.0.0.1:{port}"
    service = subprocess.Popen([*cli, "serve", "--port", str(port)], env=env, cwd=REPO)
    try:
        wait_ready(server)
        pages["/"] = shop_page(server, secret)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            desktop = browser.new_context(viewport={"width": 1280, "height": 820})
            page = desktop.new_page()
            page.goto(shop_url + "/")
            page.wait_for_function("() => window.Supportbot && window.Supportbot.open")
            page.evaluate("() => window.Supportbot.open()")
            page.wait_for_timeout(800)
            ask(page, "How long do refunds take?")
            page.wait_for_timeout(4000)
            page.screenshot(path=str(DOCS / "widget.png"))
            ask(page, "I'd like to talk to a person please")
            page.wait_for_timeout(2500)

            phone = browser.new_context(
                viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
            )
            mobile = phone.new_page()
            mobile.goto(shop_url + "/")
            mobile.wait_for_function("() => window.Supportbot && window.Supportbot.open")
            mobile.evaluate("() => window.Supportbot.open()")
            mobile.wait_for_timeout(3000)
            mobile.screenshot(path=str(DOCS / "widget-phone.png"))

            console = browser.new_context(viewport={"width": 1280, "height": 820}).new_page()
            console.goto(server + "/agent")
            console.fill("input[type=email], input[name=email]", AGENT_EMAIL)
            console.fill("input[type=password]", AGENT_PASSWORD)
            console.keyboard.press("Enter")
            console.wait_for_timeout(2500)
            console.locator(".queue-item").first.click()
            console.locator("text=Ana Silva").first.wait_for()
            console.wait_for_timeout(2000)
            console.screenshot(path=str(DOCS / "console-known-customer.png"))
            browser.close()
    finally:
        service.terminate()
        service.wait(timeout=60)
        shop.shutdown()
    shots = ("widget.png", "widget-phone.png", "console-known-customer.png")
    print("written:", *(DOCS / name for name in shots), sep="\n  ")


if __name__ == "__main__":
    main()
