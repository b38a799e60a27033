"""learned questions: customer questions an article answers, and their audit trail

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 07:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "learned_questions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("article_id", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("confirmations", sa.Integer(), nullable=False),
        sa.Column("conversations", sa.JSON(), nullable=True),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column("embedder", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=320), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("article_id", "key", name="uq_learned_article_key"),
    )
    with op.batch_alter_table("learned_questions", schema=None) as batch_op:
        batch_op.create_index("ix_learned_questions_article_id", ["article_id"])
        batch_op.create_index("ix_learned_questions_status", ["status"])
    op.create_table(
        "learned_question_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("learned_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=True),
        sa.Column("article_id", sa.String(length=200), nullable=False),
        sa.Column("previous_article_id", sa.String(length=200), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("learned_question_audit", schema=None) as batch_op:
        batch_op.create_index("ix_learned_question_audit_learned_id", ["learned_id"])


def downgrade() -> None:
    with op.batch_alter_table("learned_question_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_learned_question_audit_learned_id")
    op.drop_table("learned_question_audit")
    with op.batch_alter_table("learned_questions", schema=None) as batch_op:
        batch_op.drop_index("ix_learned_questions_status")
        batch_op.drop_index("ix_learned_questions_article_id")
    op.drop_table("learned_questions")
