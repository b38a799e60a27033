"""Reports for support leads: what the bot deflected, what reached people, how fast, how it felt.

Owns the report figures (:mod:`bot.reports.figures`: one summary by local day and in total, and
the :class:`~bot.reports.figures.Period` every report view shares), their CSV exports
(:mod:`bot.reports.csv_export`), the ``supportbot report`` command (:mod:`bot.reports.cli`) and
the other views over the same period (content gaps, :mod:`bot.reports.gaps`). Every figure is
computed from the deflection ledger and the stored history (messages, events, queue items,
feedback, ratings), never kept as a counter of its own, so a report can always be recomputed
and checked.

May import the layers below it (``bot.core``, ``ingest``, ``bot.knowledge``, ``bot.people``,
``bot.conversations``, ``bot.handoff`` and its ledger); ``bot.live``, the web layer and the CLI
may import this package, never the other way round.
"""
