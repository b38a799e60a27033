"""Operations routes: ``/readyz`` (may this process get traffic?) and ``/metrics`` (Prometheus).

``/healthz`` (in the app factory) only says the process is alive; a proxy or orchestrator that
routed chats by it would send customers to a process whose database is down. ``/readyz`` checks
each part a chat needs (``bot.core.health``) and answers 503 with the failing parts named, so a
person reading the probe's log knows where to look. Both are public paths (no data in them);
keep ``/metrics`` off the public site at the proxy (``deploy/nginx.conf``).
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse

from bot.core import health, metrics
from bot.web.deps import ContextDep

log = logging.getLogger(__name__)
router = APIRouter(tags=["ops"])


@router.get("/readyz")
async def readyz(request: Request, ctx: ContextDep) -> JSONResponse:
    """Ready: the database, the vector store and Redis (when configured) answer, and the
    start-up warm-up is done. 200 with each part ``ok``; 503 naming the failing parts."""
    checks: dict[str, str | None] = {}
    database, chroma, *redis = await asyncio.gather(
        asyncio.to_thread(health.check_database, ctx.engine),
        asyncio.to_thread(health.check_chroma, ctx.collection),
        *(asyncio.to_thread(health.check_redis, url) for url in health.redis_urls(ctx.settings)),
    )
    checks["database"] = database
    checks["chroma"] = chroma
    for index, error in enumerate(redis):
        checks["redis" if index == 0 else f"redis_{index + 1}"] = error
    warming: asyncio.Task[None] | None = getattr(request.app.state, "warming", None)
    checks["warm_up"] = None if warming is None or warming.done() else "still running"
    failing = [name for name, error in checks.items() if error is not None]
    body = {
        "status": "ready" if not failing else "not_ready",
        "failing": failing,
        "checks": {name: error or "ok" for name, error in checks.items()},
    }
    code = status.HTTP_200_OK if not failing else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(body, status_code=code)


@router.get("/metrics")
async def prometheus_metrics(ctx: ContextDep) -> Response:
    """Prometheus text exposition; every worker's figures when ``PROMETHEUS_MULTIPROC_DIR``
    is set. The hand-off queue length is read from the database at scrape time, the answer
    workers' states from this process's pool."""

    def read_queue() -> None:
        with ctx.sessions() as session:
            metrics.read_handoff_queue(session)

    try:
        await asyncio.to_thread(read_queue)
    except Exception:  # a scrape still reports everything else; /readyz names the database
        log.debug("reading the hand-off queue for /metrics failed", exc_info=True)
    if ctx.answer_workers is not None:
        metrics.read_answer_workers(ctx.answer_workers.states())
    payload = await asyncio.to_thread(metrics.exposition)
    return Response(payload, media_type=metrics.CONTENT_TYPE)
