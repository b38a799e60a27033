"""messages.answer_owner: which service process owes a customer message its bot answer

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-16 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable and empty for every older message: a question stored before this column existed
    # is still recognised as unanswered by what follows it (bot.conversations.store).
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answer_owner", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_messages_answer_owner", ["answer_owner"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_answer_owner")
        batch_op.drop_column("answer_owner")
