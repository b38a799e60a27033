"""People: users, roles, passwords and API tokens, signed session cookies and CSRF tokens.

Owns: ``supportbot user ...``, credential checks as plain functions (no FastAPI here; the route
guards built on them live in ``bot.web.guards``).
May import: ``bot.core``.
"""
