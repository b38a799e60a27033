"""``Annotated`` dependencies, so a route reads ``def route(ctx: ContextDep, ...)``.

They take an ``HTTPConnection``, so the same aliases serve HTTP routes and WebSocket routes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from bot.core.settings import Settings
from bot.web.context import AppContext


def get_context(connection: HTTPConnection) -> AppContext:
    ctx: AppContext = connection.app.state.ctx
    return ctx


# The dependencies are ``async def`` though they never wait: FastAPI runs a plain ``def``
# dependency in its thread pool, a thread hop for every request and every chat socket that
# only reads an attribute (it showed in the chat socket's profile, bench/chat_latency.py).
async def context_dependency(connection: HTTPConnection) -> AppContext:
    return get_context(connection)


async def settings_dependency(connection: HTTPConnection) -> Settings:
    return get_context(connection).settings


def get_session(connection: HTTPConnection) -> Iterator[Session]:
    """A database session for one request, committed on success."""
    with get_context(connection).sessions() as session, session.begin():
        yield session


ContextDep = Annotated[AppContext, Depends(context_dependency)]
SettingsDep = Annotated[Settings, Depends(settings_dependency)]
SessionDep = Annotated[Session, Depends(get_session)]
