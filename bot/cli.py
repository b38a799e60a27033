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
    workers: int = typer.Option(
        1,
        min=1,
        help="Service processes on this host, sharing the port (over 1 needs the shared "
        "engines: SUPPORTBOT_DATABASE_URL, SUPPORTBOT_CHROMA_URL, SUPPORTBOT_REDIS_URL).",
    ),
) -> None:
    """Run the service: chat WebSocket, /api/ask, agent console, widget demo page at /.

    The service is the one writer of its data directory while it runs (`supportbot ingest`
    hands its work to it); a second service on the same data directory is refused. With the
    shared engines configured, any number of processes serve together (`--workers`, or one
    per host behind a load balancer).
    """
    from ingest.locking import read_service_info, running_service_message, service_running

    settings = get_settings()
    if workers > 1:
        if not settings.shared_engines:
            typer.echo(
                f"supportbot serve: --workers {workers} needs the shared engines: PostgreSQL "
                "(SUPPORTBOT_DATABASE_URL), a Chroma server (SUPPORTBOT_CHROMA_URL) and Redis "
                "(SUPPORTBOT_REDIS_URL). With the SQLite file and the embedded Chroma store "
                "only one process may serve a data directory.",
                err=True,
            )
            raise typer.Exit(2)
        import os

        # Each worker builds its settings from the environment (bot.web.app:create_app).
        settings.host = host or settings.host
        settings.port = port if port is not None else settings.port
        os.environ["SUPPORTBOT_HOST"] = settings.host
        os.environ["SUPPORTBOT_PORT"] = str(settings.port)
        from bot.core.metrics import reset_multiprocess_dir

        reset_multiprocess_dir()  # PROMETHEUS_MULTIPROC_DIR: this run's counts only
        run_server("bot.web.app:create_app", settings, workers=workers)
        return
    if service_running(settings.data_dir):  # the lifespan refuses too; this says it before
        message = running_service_message(settings.data_dir, read_service_info(settings.data_dir))
        typer.echo(f"supportbot serve: {message}", err=True)
        raise typer.Exit(1)

    from bot.web.app import create_app

    # The service records where it listens (service.json) from these two settings.
    settings.host = host or settings.host
    settings.port = port if port is not None else settings.port
    run_server(create_app(settings), settings)


def run_server(app: FastAPI | str, settings: Settings, *, workers: int = 1) -> None:
    """uvicorn as the service needs it; returns when the server has stopped.

    ``workers`` over 1 (``app`` is then an import string of an app factory): uvicorn's
    supervisor runs that many processes on one socket. A worker given SIGTERM drains its
    answers in its lifespan: they are stored, and a client that reconnects (to any worker)
    resumes with them.

    On SIGTERM (or Ctrl+C) it stops accepting connections, lets the answers being written
    finish and be stored (``shutdown_grace_s``, while their sockets still carry them live),
    then closes every socket with 1012 and stops, bounded by the same grace. Forwarded headers
    are left to the app (``trusted_proxies``), and ``?token=`` never reaches the access log.
    """
    import asyncio

    import uvicorn

    from bot.core.logs import uvicorn_log_config
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
            assert not isinstance(app, str)
            draining = asyncio.ensure_future(drain_answers(app))
            while not draining.done() and not self.force_exit:
                await asyncio.wait({draining}, timeout=0.1)
            await super().shutdown(sockets)

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        log_config=uvicorn_log_config(settings),  # log_format: text, or JSON lines
        proxy_headers=False,  # bot.web.proxies decides, from trusted_proxies
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_s)),
        factory=isinstance(app, str),
        workers=workers,
        # A worker loading the embedding model can hold the GIL for seconds: uvicorn's default
        # (5 s) would kill it as hung and start another, over and over, on a busy host.
        timeout_worker_healthcheck=120,
        **uvicorn_ws_options(settings),  # frame cap (1009) and server pings
    )
    install_log_redaction()  # uvicorn configured logging above; redact from the first line
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    DrainingServer(config).run()


# Further commands register below, each from the module that owns it.

from ingest.cli import ingest_command  # noqa: E402  (light: heavy imports are inside it)

app.command("ingest")(ingest_command)

from bot.people.users import cli as user_cli  # noqa: E402  (the module that owns `supportbot user`)

app.add_typer(user_cli, name="user")

from bot.people.sites import cli as site_cli  # noqa: E402  (the module that owns `supportbot site`)

app.add_typer(site_cli, name="site")

from bot.knowledge.cli import ask_command, eval_command  # noqa: E402  (heavy imports inside)

app.command("ask")(ask_command)
app.command("eval")(eval_command)

from bot.reports.cli import report_command  # noqa: E402  (light: no torch, Chroma or embedder)

app.command("report")(report_command)

from bot.reports.demo_data import demo_data_command  # noqa: E402  (light: no torch or Chroma)

app.command("demo-data")(demo_data_command)


if __name__ == "__main__":  # ``python -m bot.cli``: the same as the ``supportbot`` script
    app()
