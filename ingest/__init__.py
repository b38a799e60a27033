"""Supportbot's ingestion pipeline: load articles -> chunk -> embed -> Chroma, incrementally."""
