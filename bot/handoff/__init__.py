"""Handoff: who answers a conversation and how it ends.

Owns: the signals read from customer messages (triggers), business hours, the escalation policy
(the one place a verdict and the signals become a decision), the conversation state machine
(``bot -> awaiting_human -> human -> resolved``, with the queue), the deflection ledger
(outcomes) and the queue's read models.
May import: ``bot.core``, ``bot.knowledge``, ``bot.people``, ``bot.conversations``.
"""
