"""Knowledge: from a question to evidence and an answer.

Owns: hybrid retrieval over the ingested chunks, the answerability score, follow-up rewriting,
the answerers (extractive default and LLM), the chat-model factory, the quality evaluation and
the ``supportbot ask``/``eval`` commands.
May import: ``bot.core`` and ``ingest``.
"""
