"""The application context: every long-lived resource of one service process, typed.

Built once by :func:`bot.web.app.build_context` in the lifespan and reached by routes through the
aliases of :mod:`bot.web.deps`, never through ``app.state`` by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from bot.conversations.events import EventBus
    from bot.core.db import DatabaseWorkers
    from bot.core.schemas import Answerer
    from bot.core.settings import Settings
    from bot.knowledge.answer_process import AnswerWorkers
    from bot.knowledge.learned import LearnedIndex
    from bot.knowledge.library import ArticleLibrary
    from bot.knowledge.publishing import KnowledgeWriter
    from bot.knowledge.retrieval import Retriever
    from bot.live.customer import ChatService
    from ingest.embedder import Embedder


@dataclass
class AppContext:
    """Everything the routes and sockets share, built once per process."""

    settings: Settings
    embedder: Embedder
    collection: Collection
    engine: Engine
    sessions: sessionmaker[Session]
    database: DatabaseWorkers
    events: EventBus
    retriever: Retriever
    answerer: Answerer
    chat: ChatService
    writer: KnowledgeWriter  # the one writer of the knowledge base in this process
    library: ArticleLibrary  # articles as files, for the admin API
    learned: LearnedIndex | None = None  # approved learned questions, as the retriever sees them
    service_token: str | None = None  # service.json's token: the local CLI's hand-off key
    answer_workers: AnswerWorkers | None = None  # the chat's answer processes, when configured
