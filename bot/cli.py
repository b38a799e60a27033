"""The ``supportbot`` command line.

Commands stay thin: they parse arguments, build ``Settings`` and call plain functions.
Heavy imports (torch, Chroma) happen inside the commands so ``supportbot --help`` is instant.
"""

from __future__ import annotations

import typer

from bot.config import get_settings

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

    from bot.app import create_app

    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port if port is not None else settings.port,
        ws_max_size=64 * 1024,
        log_level="info",
    )


# Further commands register below, each from the module that owns it.
