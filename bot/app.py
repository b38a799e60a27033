"""The FastAPI application factory and its lifespan.

Expensive things (the embedder, the Chroma collection, the database engine) are created once in
the lifespan and kept on ``app.state.ctx``; routes reach them through ``bot.deps``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request

from bot import __version__
from bot.config import Settings, get_settings

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from bot.events import EventBus
    from bot.schemas import Answerer
    from ingest.embedder import Embedder


@dataclass
class AppContext:
    """Everything the routes share, built once per process."""

    settings: Settings
    embedder: Embedder
    collection: Collection
    engine: Engine
    sessions: sessionmaker[Session]
    events: EventBus
    answerer: Answerer | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def build_context(settings: Settings) -> AppContext:
    """Open every resource the service needs; fails fast on a misconfiguration."""
    from bot.db import make_engine, make_session_factory
    from bot.events import EventBus
    from ingest.embedder import get_embedder
    from ingest.store import open_client, open_collection

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.ensure_secret_key()
    embedder = get_embedder(settings.embedding_model, settings.embedding_batch_size)
    collection = open_collection(open_client(settings), settings.collection, embedder)
    engine = make_engine(settings.effective_database_url)
    from bot.migrate import upgrade_database

    upgrade_database(engine)
    ctx = AppContext(
        settings=settings,
        embedder=embedder,
        collection=collection,
        engine=engine,
        sessions=make_session_factory(engine),
        events=EventBus(),
    )
    from bot.answer import build_answerer

    answerer = build_answerer(settings, collection, embedder)
    ctx.answerer = answerer
    ctx.extras["retriever"] = answerer.retriever  # .invalidate() after publishing an article
    return ctx


async def _warm_up(warm_up: Callable[[threading.Event], None], stop: threading.Event) -> None:
    """Precompute what the first questions would otherwise wait for; a failure only costs
    speed, so it is logged, never raised."""
    try:
        await asyncio.to_thread(warm_up, stop)
    except Exception:
        logging.getLogger(__name__).exception("warm-up failed; answers compute lazily instead")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Tests pass their own ``Settings``; production reads the environment."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = build_context(settings)
        app.state.ctx = ctx
        from bot.deflection import run_outcome_job
        from bot.handoff import attach_event_bus

        attach_event_bus(ctx.engine, ctx.events)  # queue notices -> agent consoles
        outcome_job = asyncio.create_task(run_outcome_job(ctx), name="outcome-job")
        stop_warming = threading.Event()
        warm_up = getattr(ctx.answerer, "warm_up", None)
        warming = (
            asyncio.create_task(_warm_up(warm_up, stop_warming), name="warm-up")
            if warm_up
            else None
        )
        app.state.warming = warming
        try:
            yield
        finally:
            stop_warming.set()
            for task in (outcome_job, warming):
                if task is not None:
                    task.cancel()
                    with suppress(asyncio.CancelledError):
                        await task
            ctx.engine.dispose()

    app = FastAPI(
        title="Supportbot",
        version=__version__,
        description="Self-hosted AI support chatbot: cited answers, human handoff, deflection.",
        lifespan=lifespan,
    )

    @app.get("/healthz", tags=["ops"])
    def healthz(request: Request) -> dict[str, str | bool]:
        """Liveness: the process is up and its lifespan finished. ``warm`` turns true once the
        start-up warm-up has embedded the knowledge base's sentences (answers are fastest)."""
        warming = getattr(request.app.state, "warming", None)
        return {
            "status": "ok",
            "version": __version__,
            "warm": warming is None or warming.done(),
        }

    # One router per audience; imported here because they import bot.deps, which imports us.
    from bot.api import agents, ask, auth, chat, widget

    for module in (widget, ask, chat, auth, agents):
        app.include_router(module.router)
    return app
