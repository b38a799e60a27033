"""Conversations: the record and the wire of a chat.

Owns: the frame models of both sockets (customer ``/ws/chat`` and agent ``/ws/agent``), the
conversation store (messages with their sequence numbers, events, feedback, CSAT), the event
bus that fans frames out to sockets, known customers on the chat socket (``customers``) and the
replies-by-e-mail outbox (``outbox``).
May import: ``bot.core``, ``bot.people`` (identity proofs).
"""
