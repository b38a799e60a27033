"""Live: the socket sessions, as plain code over a ``Transport``.

Owns: the customer session and the process-wide chat service that owns answer tasks, the agent
console session, and the socket plumbing (transport adapter, origin check, uvicorn options).
May import: ``bot.core``, ``bot.knowledge``, ``bot.people``, ``bot.conversations``,
``bot.handoff``.
"""
