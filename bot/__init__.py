"""Supportbot: the service (FastAPI app, retrieval, answering, conversations, handoff, reports)."""

__version__ = "0.1.0"
