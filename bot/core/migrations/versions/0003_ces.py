"""csat.ces: the end-of-chat survey's customer effort answer (1-7, optional)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: ratings stored before the effort question have none, and it stays optional.
    with op.batch_alter_table("csat", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ces", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("csat", schema=None) as batch_op:
        batch_op.drop_column("ces")
