"""The Chromium the browser tests drive: Debian's, started the way this machine needs."""

from __future__ import annotations

from pathlib import Path

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
