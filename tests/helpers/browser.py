"""The Chromium the browser tests drive: Debian's, started the way this machine needs."""

from __future__ import annotations

from pathlib import Path
from typing import Self

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]

# Records every frame the page receives (__frames) and sends (__sent) on its sockets; installed
# before the page's own scripts run (``page.add_init_script``).
RECORD_FRAMES = """(() => {
  window.__frames = [];
  window.__sent = [];
  const Native = window.WebSocket;
  window.WebSocket = function (url, protocols) {
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    ws.addEventListener('message', (e) => window.__frames.push(JSON.parse(e.data)));
    const send = ws.send.bind(ws);
    ws.send = (data) => { window.__sent.push(JSON.parse(data)); send(data); };
    return ws;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
})();"""


class OtherOrigin:
    """A website on its own origin (a real local HTTP server on a free port), such as the shop
    that embeds the widget. ``pages`` maps a path to its HTML; any other path gets ``html``
    (404 when that is empty). ``headers`` go with every page (a Content-Security-Policy, say).
    Serves from construction until :meth:`close` (or the end of a ``with`` block)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.pages: dict[str, bytes] = {}
        self.html = b""
        self.headers: dict[str, str] = {}
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = origin.pages.get(self.path, origin.html)
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                for name, value in origin.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
