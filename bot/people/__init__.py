"""People: users, roles, passwords and API tokens, signed session cookies and CSRF tokens.

Owns: ``supportbot user ...``, ``supportbot site ...`` (sites that embed the widget, their
identity secrets and the customers they vouch for; ``identity`` holds the HMAC checks and the
signed conversation tokens), credential checks as plain functions (no FastAPI here; the route
guards built on them live in ``bot.web.guards``).
May import: ``bot.core``.
"""
