"""``GET /resume?token=...``: the page a reply e-mail links to. It opens the widget on the
conversation the signed token names, so the customer reads the reply and answers there.

The token (:mod:`bot.people.identity`, ``email_link_hours``) is checked here first, so an
expired or forged link gets a plain page saying so instead of a widget that fails. The page then
hands the token to the widget the way a returning visitor's browser would: as the stored
conversation's resume token (the chat socket accepts a signed token for its conversation and
answers with a fresh one). The token never reaches the access log (``?token=`` is redacted)
nor another site (``Referrer-Policy: no-referrer``).
"""

from __future__ import annotations

import html
import json
import secrets

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from bot.conversations.store import get_conversation
from bot.people.identity import read_conversation_token
from bot.web.deps import ContextDep

router = APIRouter(tags=["widget"])

STORAGE_VERSION = "v1"  # widget/supportbot.js keeps its conversation under this key version

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style nonce="{nonce}">
body {{ font-family: system-ui, sans-serif; margin: 0; padding: 2rem; color: #1f2937; }}
main {{ max-width: 36rem; }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
<p>{text}</p>
</main>
{script}
</body>
</html>
"""

_SCRIPT = """<script nonce="{nonce}" id="supportbot-resume" type="application/json">{data}</script>
<script nonce="{nonce}">
(function () {{
  var data = JSON.parse(document.getElementById("supportbot-resume").textContent);
  var server = new URL(".", window.location.href).href.replace(/\\/+$/, "");
  var stored = {{ conversation_id: data.conversation_id, resume_token: data.token, last_seq: 0,
    messages: [], outbox: [], feedback: {{}}, choices: {{}}, csat_done: false, state: "bot" }};
  try {{
    window.localStorage.setItem("supportbot:{version}:" + server, JSON.stringify(stored));
  }} catch (_e) {{ /* no storage: the widget starts a new conversation */ }}
  var script = document.createElement("script");
  script.src = server + "/widget/supportbot.js";
  script.setAttribute("data-server", server);
  script.setAttribute("data-open", "true");
  script.setAttribute("data-title", {title});
  document.body.appendChild(script);
}})();
</script>"""


def _headers(nonce: str) -> dict[str, str]:
    return {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": (
            f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; "
            f"style-src 'self' 'nonce-{nonce}'; connect-src 'self' ws: wss:; "
            "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
        ),
    }


@router.get("/resume", response_class=HTMLResponse, include_in_schema=False)
async def resume_page(ctx: ContextDep, token: str = Query("", max_length=256)) -> HTMLResponse:
    """Open the widget on the conversation of an e-mailed link; a plain page when the link is
    expired, forged or its conversation gone (HTTP 410)."""
    nonce = secrets.token_urlsafe(16)
    claim = read_conversation_token(ctx.settings, token) if token else None
    exists = False
    if claim is not None:
        conversation_id = claim.conversation_id
        exists = await ctx.database.run(lambda s: get_conversation(s, conversation_id) is not None)
    if claim is None or not exists:
        page = _PAGE.format(
            nonce=nonce,
            title="This link has expired",
            text="The link to this conversation no longer works. You can start a new "
            "conversation from our website's chat at any time.",
            script="",
        )
        return HTMLResponse(page, status_code=410, headers=_headers(nonce))
    data = json.dumps({"conversation_id": claim.conversation_id, "token": token})
    script = _SCRIPT.format(
        nonce=nonce,
        data=data.replace("<", "\\u003c"),
        version=STORAGE_VERSION,
        title=json.dumps("Support"),
    )
    page = _PAGE.format(
        nonce=nonce,
        title=html.escape("Your conversation"),
        text="Your conversation is open in the chat below. You can read the reply and answer "
        "there.",
        script=script,
    )
    return HTMLResponse(page, headers=_headers(nonce))
