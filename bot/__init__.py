"""Supportbot: the service. Subpackages by concept, imports only go down this list:

- ``bot.core``: settings, database, models, migrations, shared data shapes, the text toolkit
- ``bot.knowledge``: retrieval, answerability, answerers (imports ``ingest`` too)
- ``bot.people``: users and credentials
- ``bot.conversations``: frames, the conversation store, the event bus
- ``bot.handoff``: triggers, business hours, the state machine, the deflection ledger
- ``bot.reports``: report figures over the ledger and stored messages, their CSV and CLI
- ``bot.live``: the customer and agent socket sessions
- ``bot.web``: the FastAPI app, routes, pages
- ``bot.cli``: the ``supportbot`` command

``tests/unit/test_architecture.py`` fails on an import circle or an upward import.
"""

__version__ = "0.1.0"
