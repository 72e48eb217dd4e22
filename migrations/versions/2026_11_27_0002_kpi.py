"""kpi engine: daily rollups and their dirty keys, lead first touches, targets, costs, forecast snapshots

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 23:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The daily rollups: key (source, rep, local day), then their counts and sums.
ROLLUPS: dict[str, list[tuple[str, type[sa.types.TypeEngine[int]]]]] = {
    "kpi_daily_calls": [
        ("calls", sa.Integer),
        ("calls_reached", sa.Integer),
        ("calls_connected", sa.Integer),
        ("calls_effective", sa.Integer),
        ("talk_ms", sa.BigInteger),
    ],
    "kpi_daily_emails": [
        ("emails_sent", sa.Integer),
        ("emails_tracked", sa.Integer),
        ("emails_opened", sa.Integer),
        ("emails_clicked", sa.Integer),
        ("emails_replied", sa.Integer),
    ],
    "kpi_daily_meetings": [
        ("meetings_booked", sa.Integer),
        ("meetings_completed", sa.Integer),
        ("meetings_with_start", sa.Integer),
        ("meetings_canceled", sa.Integer),
    ],
    "kpi_daily_tasks": [
        ("tasks_due", sa.Integer),
        ("tasks_on_time", sa.Integer),
    ],
}


def upgrade() -> None:
    for table, measures in ROLLUPS.items():
        op.create_table(
            table,
            sa.Column("source", sa.String(length=16), nullable=False),
            sa.Column("rep_crm_id", sa.String(length=64), nullable=False),
            sa.Column("day", sa.Date(), nullable=False),
            *(sa.Column(name, type_(), nullable=False) for name, type_ in measures),
            sa.PrimaryKeyConstraint("source", "rep_crm_id", "day", name=op.f(f"pk_{table}")),
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f"ix_{table}_day", ["day"], unique=False)

    op.create_table(
        "kpi_lead_first_touch",
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("lead_crm_id", sa.String(length=64), nullable=False),
        sa.Column("first_touch_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "lead_crm_id", name=op.f("pk_kpi_lead_first_touch")),
    )
    op.create_table(
        "kpi_rollup_dirty",
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("fact", sa.String(length=16), nullable=False),
        sa.Column("rep_crm_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("lo", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hi", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "source", "fact", "rep_crm_id", "day", name=op.f("pk_kpi_rollup_dirty")
        ),
    )
    op.create_table(
        "kpi_lead_dirty",
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("lead_crm_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("source", "lead_crm_id", name=op.f("pk_kpi_lead_dirty")),
    )
    op.create_table(
        "kpi_rollup_state",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("fingerprint", sa.String(length=255), nullable=False),
        sa.Column("rebuilt_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_kpi_rollup_state")),
    )
    op.create_table(
        "kpi_targets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kpi", sa.String(length=64), nullable=False),
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("scope_id", sa.String(length=96), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kpi_targets")),
        sa.UniqueConstraint(
            "kpi",
            "grain",
            "period_start",
            "scope",
            "scope_id",
            name=op.f("uq_kpi_targets_kpi_grain_period_start_scope_scope_id"),
        ),
    )
    op.create_table(
        "kpi_costs",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("month", name=op.f("pk_kpi_costs")),
    )
    op.create_table(
        "kpi_forecast_snapshots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("scope_id", sa.String(length=96), nullable=False),
        sa.Column("kpi", sa.String(length=64), nullable=False),
        sa.Column("actual", sa.Double(), nullable=False),
        sa.Column("forecast", sa.Double(), nullable=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kpi_forecast_snapshots")),
        sa.UniqueConstraint(
            "month",
            "as_of",
            "scope",
            "scope_id",
            "kpi",
            name=op.f("uq_kpi_forecast_snapshots_month_as_of_scope_scope_id_kpi"),
        ),
    )


def downgrade() -> None:
    op.drop_table("kpi_forecast_snapshots")
    op.drop_table("kpi_costs")
    op.drop_table("kpi_targets")
    op.drop_table("kpi_rollup_state")
    op.drop_table("kpi_lead_dirty")
    op.drop_table("kpi_rollup_dirty")
    op.drop_table("kpi_lead_first_touch")
    for table in reversed(list(ROLLUPS)):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_day")
        op.drop_table(table)
