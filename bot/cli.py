"""The ``supportbot`` command line.

Commands stay thin: they parse arguments, build ``Settings`` and call plain functions.
Heavy imports (torch, sentence-transformers, Chroma, LangChain) happen inside the commands that
use them, so ``--help`` and ``supportbot user`` start at once;
``tests/unit/test_startup_imports.py`` fails when a module-level import brings one back.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import typer

from bot.core.settings import get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bot.core.settings import Settings

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
    """Run the service: chat WebSocket, /api/ask, agent console, widget demo page at /.

    The service is the one writer of its data directory while it runs (`supportbot ingest`
    hands its work to it); a second service on the same data directory is refused.
    """
    from ingest.locking import read_service_info, running_service_message, service_running

    settings = get_settings()
    if service_running(settings.data_dir):  # the lifespan refuses too; this says it before
        message = running_service_message(settings.data_dir, read_service_info(settings.data_dir))
        typer.echo(f"supportbot serve: {message}", err=True)
        raise typer.Exit(1)

    from bot.web.app import create_app

    # The service records where it listens (service.json) from these two settings.
    settings.host = host or settings.host
    settings.port = port if port is not None else settings.port
    run_server(create_app(settings), settings)


def run_server(app: FastAPI, settings: Settings) -> None:
    """uvicorn as the service needs it; returns when the server has stopped.

    On SIGTERM (or Ctrl+C) it stops accepting connections, lets the answers being written
    finish and be stored (``shutdown_grace_s``, while their sockets still carry them live),
    then closes every socket with 1012 and stops, bounded by the same grace. Forwarded headers
    are left to the app (``trusted_proxies``), and ``?token=`` never reaches the access log.
    """
    import asyncio

    import uvicorn

    from bot.live.transport import uvicorn_ws_options
    from bot.web.access_log import install_log_redaction
    from bot.web.app import drain_answers

    class DrainingServer(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            for server in self.servers:  # stop accepting first...
                server.close()
            for sock in sockets or []:
                sock.close()
            # ...then let the answers in flight be stored (a second Ctrl+C stops waiting).
            draining = asyncio.ensure_future(drain_answers(app))
            while not draining.done() and not self.force_exit:
                await asyncio.wait({draining}, timeout=0.1)
            await super().shutdown(sockets)

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        proxy_headers=False,  # bot.web.proxies decides, from trusted_proxies
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_s)),
        **uvicorn_ws_options(settings),  # frame cap (1009) and server pings
    )
    install_log_redaction()  # uvicorn configured logging above; redact from the first line
    DrainingServer(config).run()


# Further commands register below, each from the module that owns it.

from ingest.cli import ingest_command  # noqa: E402  (light: heavy imports are inside it)

app.command("ingest")(ingest_command)

from bot.people.users import cli as user_cli  # noqa: E402  (the module that owns `supportbot user`)

app.add_typer(user_cli, name="user")

from bot.knowledge.cli import ask_command, eval_command  # noqa: E402  (heavy imports inside)

app.command("ask")(ask_command)
app.command("eval")(eval_command)

from bot.reports.cli import report_command  # noqa: E402  (light: no torch, Chroma or embedder)

app.command("report")(report_command)

from bot.reports.demo_data import demo_data_command  # noqa: E402  (light: no torch or Chroma)

app.command("demo-data")(demo_data_command)


if __name__ == "__main__":  # ``python -m bot.cli``: the same as the ``supportbot`` script
    app()
