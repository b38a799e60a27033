"""The FastAPI application factory and its lifespan: the composition root.

Expensive things (the embedder, the Chroma collection, the database engine) are created once in
the lifespan and kept on ``app.state.ctx`` (an :class:`~bot.web.context.AppContext`); routes reach
them through :mod:`bot.web.deps`. Heavy libraries are imported inside :func:`build_context`, so
importing the app (and the CLI that imports it) stays cheap.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack, asynccontextmanager, suppress
from typing import TYPE_CHECKING

from fastapi import FastAPI

from bot import __version__
from bot.core.logs import configure_logging
from bot.core.metrics import process_exit
from bot.core.settings import Settings, get_settings
from bot.web.access_log import install_log_redaction
from bot.web.context import AppContext
from bot.web.deps import ContextDep
from bot.web.routes import (
    admin,
    admin_page,
    agents,
    ask,
    auth,
    chat,
    learned,
    ops,
    reports,
    reports_page,
    resume,
    widget,
)
from bot.web.routes.docs import router as docs_router

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from bot.core.schemas import Answerer
    from bot.knowledge.answer_process import AnswerWorkers
    from bot.knowledge.learned import LearnedIndex
    from ingest.embedder import Embedder

log = logging.getLogger(__name__)


def build_context(settings: Settings) -> AppContext:
    """Open every resource the service needs; fails fast on a misconfiguration."""
    from bot.conversations.redis_events import make_event_bus
    from bot.core.db import DatabaseWorkers, make_engine, make_session_factory
    from bot.core.migrate import upgrade_database
    from bot.knowledge.answerers import build_answerer
    from bot.knowledge.library import ArticleLibrary
    from bot.knowledge.publishing import KnowledgeWriter
    from bot.live.customer import ChatService
    from ingest.embedder import get_embedder
    from ingest.store import open_client, open_collection

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.ensure_secret_key()
    embedder = get_embedder(settings.embedding_model, settings.embedding_batch_size)
    collection = open_collection(open_client(settings), settings.collection, embedder)
    engine = make_engine(settings.effective_database_url)
    upgrade_database(engine)
    sessions = make_session_factory(engine)
    database = DatabaseWorkers(sessions)
    events = make_event_bus(settings)  # Redis pub/sub when processes share redis_url
    answerer = build_answerer(settings, collection, embedder)
    writer = KnowledgeWriter(settings, embedder, answerer.retriever)
    learned = _learned_questions(settings, sessions, embedder)
    answerer.retriever.learned = learned
    chat_answerer, workers = _chat_answerer(settings, answerer)
    return AppContext(
        settings=settings,
        embedder=embedder,
        collection=collection,
        engine=engine,
        sessions=sessions,
        database=database,
        events=events,
        retriever=answerer.retriever,
        answerer=answerer,
        chat=ChatService(settings, database, events, chat_answerer),
        writer=writer,
        library=ArticleLibrary(settings, writer, sessions),
        learned=learned,
        answer_workers=workers,
    )


def _chat_answerer(settings: Settings, answerer: Answerer) -> tuple[Answerer, AnswerWorkers | None]:
    """The chat computes extractive answers in worker processes when configured
    (``answer_processes``); an LLM's answers wait on the network, not on this process's lock,
    so they stay here."""
    from bot.knowledge.answer_process import AnswerWorkers, ProcessAnswerer
    from bot.knowledge.answerers import ExtractiveAnswerer

    if settings.answer_processes <= 0 or not isinstance(answerer, ExtractiveAnswerer):
        return answerer, None
    workers = AnswerWorkers(settings, answerer.retriever)
    return ProcessAnswerer(answerer, workers), workers


def _learned_questions(
    settings: Settings, sessions: sessionmaker[Session], embedder: Embedder
) -> LearnedIndex:
    """The learned questions the retriever counts as evidence, after reading the sidecar files
    beside the articles (a fresh clone of the articles brings its learned questions)."""
    from bot.knowledge.learned import LearnedIndex, import_sidecars

    try:
        with sessions() as session, session.begin():
            added = import_sidecars(session, settings.kb_path)
        if added:
            log.info("imported %d learned question(s) from the articles folder", added)
    except Exception:
        log.exception("reading the learned-question files failed; the database's are used")
    return LearnedIndex(sessions, embedder)


async def _warm_up(warm_up: Callable[[threading.Event], None], stop: threading.Event) -> None:
    """Precompute what the first questions would otherwise wait for; a failure only costs
    speed, so it is logged, never raised."""
    try:
        await asyncio.to_thread(warm_up, stop)
    except Exception:
        log.exception("warm-up failed; answers compute lazily instead")


async def _answer_unanswered(ctx: AppContext) -> None:
    """The start-up job: answer what the previous process owed; a failure is logged (the
    questions are picked up again on their conversation's next resume)."""
    try:
        count = await ctx.chat.answer_unanswered()
    except Exception:
        log.exception("answering questions left unanswered failed")
        return
    if count:
        log.info("answering %d question(s) left unanswered by the previous process", count)


async def drain_answers(app: FastAPI) -> None:
    """Shutting down: start no new answer and give those in flight ``shutdown_grace_s`` to be
    stored. ``supportbot serve`` calls it on SIGTERM before the sockets close, so customers get
    the answers live; the lifespan calls it again (then a no-op) for any other server."""
    ctx: AppContext | None = getattr(app.state, "ctx", None)
    if ctx is not None:
        await ctx.chat.close(ctx.settings.shutdown_grace_s)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Tests pass their own ``Settings``; production reads the environment."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from bot.conversations.outbox import run_outbox_job
        from bot.core.leases import owner_lease
        from bot.handoff.ledger import run_outcome_job
        from bot.handoff.machine import attach_event_bus
        from ingest.locking import service_lock, service_url

        # One writer by design: this process owns the data directory (and so its Chroma store)
        # until it stops; local ingests hand their work to it (bot.knowledge.publishing).
        # With shared engines (PostgreSQL, a Chroma server, Redis) several processes serve
        # together: knowledge-base writes take turns through a PostgreSQL advisory lock
        # (ingest.locking.ingest_lock) instead, and a local ingest writes directly.
        owner = ExitStack()
        url = service_url(settings.host, settings.port)
        service = (
            None
            if settings.shared_engines
            else owner.enter_context(
                service_lock(settings.data_dir, url, wait_s=settings.ingest_wait_s)
            )
        )
        try:
            ctx = build_context(settings)
        except BaseException:
            owner.close()
            raise
        ctx.service_token = service.token if service is not None else None
        # Other processes sharing the database see this one alive (its answers are not taken
        # over) for as long as it runs.
        try:
            owner.enter_context(owner_lease(ctx.engine, ctx.chat.owner))
        except BaseException:
            owner.close()
            raise
        app.state.ctx = ctx
        install_log_redaction()  # ?token= never reaches the access log
        configure_logging(settings)  # log_format=json for servers other than `supportbot serve`
        attach_event_bus(ctx.engine, ctx.events)  # queue notices -> agent consoles
        # Questions a stopped process left unanswered (killed, or past the grace at shutdown).
        recovering = asyncio.create_task(_answer_unanswered(ctx), name="answer-unanswered")
        outcome_job = asyncio.create_task(
            run_outcome_job(ctx.database, ctx.settings), name="outcome-job"
        )
        # Replies by e-mail to customers who left (bot.conversations.outbox), and presence.
        outbox_job = asyncio.create_task(
            run_outbox_job(ctx.database, ctx.settings, ctx.chat.present_conversations),
            name="email-outbox",
        )
        stop_warming = threading.Event()
        warm_up = getattr(ctx.answerer, "warm_up", None)
        warming = (
            asyncio.create_task(_warm_up(warm_up, stop_warming), name="warm-up")
            if warm_up
            else None
        )
        app.state.warming = warming
        if ctx.answer_workers is not None:
            try:
                await asyncio.to_thread(ctx.answer_workers.start)
            except Exception:  # answers are then computed here: slower, never lost
                log.exception("the answer workers could not be started; answering in-process")
                ctx.answer_workers.close()
                ctx.answer_workers = None
        try:
            yield
        finally:
            # Answers in flight are stored before anything closes (bounded); the rest keep
            # their mark and the next process answers them.
            await drain_answers(app)
            if ctx.answer_workers is not None:
                await asyncio.to_thread(ctx.answer_workers.close)
            stop_warming.set()
            for task in (outcome_job, outbox_job, warming, recovering):
                if task is not None:
                    task.cancel()
                    with suppress(asyncio.CancelledError):
                        await task
            ctx.database.close()
            ctx.engine.dispose()
            ctx.library.close()
            ctx.events.close()
            process_exit()  # this process's live gauges leave the multiprocess aggregate
            owner.close()

    app = FastAPI(
        title="Supportbot",
        version=__version__,
        description="Self-hosted AI support chatbot: cited answers, human handoff, deflection.",
        lifespan=lifespan,
        # FastAPI's own pages load Swagger UI from a CDN; bot.web.routes.docs serves it locally.
        docs_url=None,
        redoc_url=None,
    )

    @app.get("/healthz", tags=["ops"])
    def healthz(ctx: ContextDep) -> dict[str, str | bool]:
        """Liveness: the process is up and its lifespan finished. ``warm`` turns true once the
        start-up warm-up has embedded the knowledge base's sentences and the answer workers have
        started (answers are fastest)."""
        warming: asyncio.Task[None] | None = getattr(app.state, "warming", None)
        workers = ctx.answer_workers
        return {
            "status": "ok",
            "version": __version__,
            "warm": (warming is None or warming.done()) and (workers is None or workers.settled),
        }

    for module in (
        widget,
        ask,
        chat,
        auth,
        agents,
        admin_page,
        reports,
        reports_page,
        admin,
        learned,
        ops,
        resume,
    ):
        app.include_router(module.router)
    app.include_router(docs_router)
    return app
