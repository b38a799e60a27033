"""shared state: the ingest ledger and the knowledge-base generation in the shared database

With ``SUPPORTBOT_DATABASE_URL`` naming a database several processes share, the ingest ledger
(``ingest_articles``) and the generation counter (``kb_generation``, one row) live there, so
every process sees one ledger and one generation (``ingest/ledger.py``). On SQLite the tables
are created too (harmless; the ledger itself stays in its own file there). A ``supportbot
ingest`` run before the first start may have created them already: they are left as they are.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "ingest_articles" not in existing:
        op.create_table(
            "ingest_articles",
            sa.Column("article_id", sa.String(), nullable=False),
            sa.Column("source_path", sa.String(), nullable=True),
            sa.Column("fingerprint", sa.String(), nullable=True),
            sa.Column("chunk_count", sa.Integer(), nullable=False),
            sa.Column("pending", sa.Boolean(), nullable=False),
            sa.Column("updated_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("article_id"),
        )
    if "kb_generation" not in existing:
        table = op.create_table(
            "kb_generation",
            sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("generation", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.bulk_insert(table, [{"id": 1, "generation": 0}])
    elif not op.get_bind().scalar(sa.text("SELECT count(*) FROM kb_generation WHERE id = 1")):
        op.execute(sa.text("INSERT INTO kb_generation (id, generation) VALUES (1, 0)"))


def downgrade() -> None:
    op.drop_table("kb_generation")
    op.drop_table("ingest_articles")
