"""sites and known customers, replies by e-mail: the sites table, who the customer is on each
conversation (and their language), and the e-mail outbox

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("require_verification", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("origin"),
    )
    # Every older conversation is anonymous, has no known language and owes no e-mail.
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locale", sa.String(length=35), nullable=True))
        batch_op.add_column(sa.Column("site_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("customer_id", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("customer_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("customer_email", sa.String(length=320), nullable=True))
        batch_op.add_column(
            sa.Column("customer_verified", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("customer_seen_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("emailed_through_seq", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_foreign_key(
            "fk_conversations_site_id", "sites", ["site_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_index("ix_conversations_site_customer", ["site_id", "customer_id"])
    op.create_table(
        "email_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=True),
        sa.Column("to_address", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("email_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_email_outbox_status_due", ["status", "next_attempt_at"])
        batch_op.create_index("ix_email_outbox_conversation_id", ["conversation_id"])


def downgrade() -> None:
    with op.batch_alter_table("email_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_email_outbox_conversation_id")
        batch_op.drop_index("ix_email_outbox_status_due")
    op.drop_table("email_outbox")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_site_customer")
        batch_op.drop_constraint("fk_conversations_site_id", type_="foreignkey")
        for column in (
            "emailed_through_seq",
            "customer_seen_at",
            "customer_verified",
            "customer_email",
            "customer_name",
            "customer_id",
            "site_id",
            "locale",
        ):
            batch_op.drop_column(column)
    op.drop_table("sites")
