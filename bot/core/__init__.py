"""Core: settings, the database engine and schema (models, migrations), shared data shapes and
small infrastructure (rate limiting, database worker threads).

Owns: ``Settings`` (the one configuration class), the SQLAlchemy models and Alembic migrations,
``AnswerResult``/``Turn``/``Source`` and the ``Answerer`` protocol, token buckets, the bot's
fixed texts in each customer language (``i18n``).
May import: nothing else of ``bot`` or ``ingest`` (everything else imports it).
"""
