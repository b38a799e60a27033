"""Knowledge: from a question to evidence and an answer, and the articles behind them.

Owns: the text toolkit (tokenizing, stemming, stop words, sentences), what a customer's words
ask for (``intents``), hybrid retrieval over the ingested chunks, the answerability verdict,
follow-up rewriting, the answerers (extractive default and LLM), the chat-model factory, the
article library (articles as files, versions) and its one writer in the service, the quality
evaluation and the ``supportbot ask``/``eval`` commands.
May import: ``bot.core`` and ``ingest``.
"""
