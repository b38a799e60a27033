"""Conversations: the record and the wire of a chat.

Owns: the frame models of both sockets (customer ``/ws/chat`` and agent ``/ws/agent``), the
conversation store (messages with their sequence numbers, events, feedback, CSAT) and the event
bus that fans frames out to sockets.
May import: ``bot.core``.
"""
