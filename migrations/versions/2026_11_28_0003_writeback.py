"""write-back: push audits, their rows, and the last value pushed per CRM field

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 09:00:00.000000
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
    op.create_table(
        "writeback_pushes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("force", sa.Boolean(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("planned", sa.Integer(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("conflicts", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("written", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("api_calls", sa.Integer(), nullable=False),
        sa.Column("write_requests", sa.Integer(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("created_fields", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_writeback_pushes")),
    )
    with op.batch_alter_table("writeback_pushes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_writeback_pushes_source_started", ["source", "started_at"], unique=False
        )

    op.create_table(
        "writeback_push_rows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("push_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("rep_id", sa.String(length=96), nullable=False),
        sa.Column("kpi", sa.String(length=64), nullable=False),
        sa.Column("crm_object", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=True),
        sa.Column("field", sa.String(length=128), nullable=False),
        sa.Column("crm_value", sa.Double(), nullable=True),
        sa.Column("new_value", sa.Double(), nullable=False),
        sa.Column("last_pushed", sa.Double(), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["push_id"],
            ["writeback_pushes.id"],
            name=op.f("fk_writeback_push_rows_push_id_writeback_pushes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_writeback_push_rows")),
    )
    with op.batch_alter_table("writeback_push_rows", schema=None) as batch_op:
        batch_op.create_index("ix_writeback_push_rows_push_seq", ["push_id", "seq"], unique=False)

    op.create_table(
        "writeback_state",
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("crm_object", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("field", sa.String(length=128), nullable=False),
        sa.Column("rep_id", sa.String(length=96), nullable=False),
        sa.Column("kpi", sa.String(length=64), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("pushed_value", sa.Double(), nullable=True),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.String(length=16), nullable=False),
        sa.Column("attempted_value", sa.Double(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_push_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "source", "crm_object", "record_id", "field", name=op.f("pk_writeback_state")
        ),
    )


def downgrade() -> None:
    op.drop_table("writeback_state")
    with op.batch_alter_table("writeback_push_rows", schema=None) as batch_op:
        batch_op.drop_index("ix_writeback_push_rows_push_seq")
    op.drop_table("writeback_push_rows")
    with op.batch_alter_table("writeback_pushes", schema=None) as batch_op:
        batch_op.drop_index("ix_writeback_pushes_source_started")
    op.drop_table("writeback_pushes")
