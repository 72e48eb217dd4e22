"""targets: levels, draft/confirmed status, revisions; reps' CRM created date and level override

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 18:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TARGET_KEY = ["kpi", "grain", "period_start", "scope", "scope_id"]


def upgrade() -> None:
    # Existing targets were in force: they become the achievement level, confirmed.
    with op.batch_alter_table("kpi_targets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("level", sa.String(length=16), server_default="achievement", nullable=False)
        )
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), server_default="confirmed", nullable=False)
        )
        batch_op.add_column(sa.Column("updated_by", sa.String(length=128), nullable=True))
        batch_op.drop_constraint(
            "uq_kpi_targets_kpi_grain_period_start_scope_scope_id", type_="unique"
        )
        batch_op.create_unique_constraint(
            "uq_kpi_targets_kpi_grain_period_start_scope_scope_id_level", [*TARGET_KEY, "level"]
        )
    # New targets always name their status; the default was for the rows above only.
    with op.batch_alter_table("kpi_targets", schema=None) as batch_op:
        batch_op.alter_column("status", server_default=None)

    op.create_table(
        "kpi_target_revisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kpi", sa.String(length=64), nullable=False),
        sa.Column("grain", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("scope_id", sa.String(length=96), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("old_value", sa.Double(), nullable=True),
        sa.Column("new_value", sa.Double(), nullable=True),
        sa.Column("old_status", sa.String(length=16), nullable=True),
        sa.Column("new_status", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("changed_by", sa.String(length=128), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kpi_target_revisions")),
    )
    with op.batch_alter_table("kpi_target_revisions", schema=None) as batch_op:
        batch_op.create_index("ix_kpi_target_revisions_target", TARGET_KEY, unique=False)
        batch_op.create_index("ix_kpi_target_revisions_changed_at", ["changed_at"], unique=False)

    with op.batch_alter_table("reps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("crm_created_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("level_override", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reps", schema=None) as batch_op:
        batch_op.drop_column("level_override")
        batch_op.drop_column("crm_created_at")

    with op.batch_alter_table("kpi_target_revisions", schema=None) as batch_op:
        batch_op.drop_index("ix_kpi_target_revisions_changed_at")
        batch_op.drop_index("ix_kpi_target_revisions_target")
    op.drop_table("kpi_target_revisions")

    # One value per key again: the achievement level is the one that was in force.
    op.execute("DELETE FROM kpi_targets WHERE level <> 'achievement'")
    with op.batch_alter_table("kpi_targets", schema=None) as batch_op:
        batch_op.drop_constraint(
            "uq_kpi_targets_kpi_grain_period_start_scope_scope_id_level", type_="unique"
        )
        batch_op.create_unique_constraint(
            "uq_kpi_targets_kpi_grain_period_start_scope_scope_id", TARGET_KEY
        )
        batch_op.drop_column("updated_by")
        batch_op.drop_column("status")
        batch_op.drop_column("level")
