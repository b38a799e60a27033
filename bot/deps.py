"""``Annotated`` dependencies so a route reads ``def route(ctx: ContextDep, ...)``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from bot.app import AppContext
from bot.config import Settings


def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def get_app_settings(request: Request) -> Settings:
    return get_context(request).settings


def get_session(request: Request) -> Iterator[Session]:
    """A database session for one request, committed on success."""
    with get_context(request).sessions() as session, session.begin():
        yield session


ContextDep = Annotated[AppContext, Depends(get_context)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
