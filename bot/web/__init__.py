"""Web: the FastAPI application, the composition root.

Owns: the app factory and lifespan, the typed application context, request dependencies, route
guards, one router per audience (``routes/``), the pages' templates and static files.
May import: everything below it (``bot.core`` ... ``bot.live``) and ``ingest``.
"""
