"""Handoff: who answers a conversation and how it ends.

Owns: the triggers read from customer messages, business hours, the conversation state machine
(``bot -> awaiting_human -> human -> resolved``, with the queue), the deflection ledger
(outcomes) and the queue's read models.
May import: ``bot.core``, ``bot.knowledge``, ``bot.people``, ``bot.conversations``.
"""
