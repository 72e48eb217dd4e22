"""sheets: review-sheet notes, their audit log, improvement actions

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 20:00:00.000000
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
        "sheet_notes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("scope_id", sa.String(length=96), nullable=False),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=96), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sheet_notes")),
        sa.UniqueConstraint(
            "kind",
            "period_start",
            "scope",
            "scope_id",
            "field",
            "subject",
            name=op.f("uq_sheet_notes_kind_period_start_scope_scope_id_field_subject"),
        ),
    )
    op.create_table(
        "sheet_note_writes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("scope_id", sa.String(length=96), nullable=False),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=96), nullable=False),
        sa.Column("old_text", sa.Text(), nullable=True),
        sa.Column("new_text", sa.Text(), nullable=False),
        sa.Column("written_by", sa.String(length=128), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sheet_note_writes")),
    )
    with op.batch_alter_table("sheet_note_writes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sheet_note_writes_sheet", ["kind", "period_start", "scope", "scope_id"]
        )
    op.create_table(
        "improvement_actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.String(length=96), nullable=False),
        sa.Column("due", sa.Date(), nullable=False),
        sa.Column("kpi", sa.String(length=64), nullable=True),
        sa.Column("week_start", sa.Date(), nullable=True),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("scope_id", sa.String(length=96), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_improvement_actions")),
    )
    with op.batch_alter_table("improvement_actions", schema=None) as batch_op:
        batch_op.create_index("ix_improvement_actions_status_due", ["status", "due"])
        batch_op.create_index("ix_improvement_actions_week_start", ["week_start"])


def downgrade() -> None:
    with op.batch_alter_table("improvement_actions", schema=None) as batch_op:
        batch_op.drop_index("ix_improvement_actions_week_start")
        batch_op.drop_index("ix_improvement_actions_status_due")
    op.drop_table("improvement_actions")
    with op.batch_alter_table("sheet_note_writes", schema=None) as batch_op:
        batch_op.drop_index("ix_sheet_note_writes_sheet")
    op.drop_table("sheet_note_writes")
    op.drop_table("sheet_notes")
