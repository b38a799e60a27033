"""The ``supportbot`` command line.

Commands stay thin: they parse arguments, build ``Settings`` and call plain functions.
Heavy imports (torch, Chroma) happen inside the commands so ``supportbot --help`` is instant.
"""

from __future__ import annotations

import typer

from bot.core.settings import get_settings

app = typer.Typer(
    name="supportbot",
    help="Self-hosted AI support chatbot: answers from your help-center articles.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """Supportbot: ingest articles, serve the chat, evaluate answers, manage people."""


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Interface to bind (default from settings)."),
    port: int | None = typer.Option(None, help="Port to listen on (default from settings)."),
) -> None:
    """Run the service: chat WebSocket, /api/ask, agent console, widget demo page at /."""
    import uvicorn

    from bot.live.transport import uvicorn_ws_options
    from bot.web.app import create_app

    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port if port is not None else settings.port,
        log_level="info",
        **uvicorn_ws_options(settings),  # frame cap (1009) and server pings
    )


# Further commands register below, each from the module that owns it.

from ingest.cli import ingest_command  # noqa: E402  (light: heavy imports are inside it)

app.command("ingest")(ingest_command)

from bot.people.users import cli as user_cli  # noqa: E402  (the module that owns `supportbot user`)

app.add_typer(user_cli, name="user")

from bot.knowledge.cli import ask_command, eval_command  # noqa: E402  (heavy imports inside)

app.command("ask")(ask_command)
app.command("eval")(eval_command)
