"""fidelity: deal type, call lists and their members, targets of the fiscal grains

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 18:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _record_columns() -> list[sa.Column[object]]:
    # The columns every normalized record has (models.crm.CrmRecord).
    return [
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("crm_id", sa.String(length=64), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "synced_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
    ]


def upgrade() -> None:
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deal_type", sa.String(length=16), nullable=True))
    with op.batch_alter_table("kpi_targets", schema=None) as batch_op:
        # "fiscal_year" does not fit the 8 characters "month" needed.
        batch_op.alter_column(
            "grain",
            existing_type=sa.String(length=8),
            type_=sa.String(length=16),
            existing_nullable=False,
        )

    op.create_table(
        "call_lists",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=True),
        *_record_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_lists")),
        sa.UniqueConstraint("source", "crm_id", name=op.f("uq_call_lists_source_crm_id")),
    )

    op.create_table(
        "call_list_members",
        sa.Column("list_crm_id", sa.String(length=64), nullable=False),
        sa.Column("contact_crm_id", sa.String(length=64), nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        *_record_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_list_members")),
        sa.UniqueConstraint(
            "source",
            "list_crm_id",
            "crm_id",
            name=op.f("uq_call_list_members_source_list_crm_id_crm_id"),
        ),
    )
    with op.batch_alter_table("call_list_members", schema=None) as batch_op:
        batch_op.create_index("ix_call_list_members_added", ["source", "added_at"], unique=False)
        batch_op.create_index(
            "ix_call_list_members_contact", ["source", "contact_crm_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("call_list_members", schema=None) as batch_op:
        batch_op.drop_index("ix_call_list_members_contact")
        batch_op.drop_index("ix_call_list_members_added")
    op.drop_table("call_list_members")
    op.drop_table("call_lists")
    # The grains 0003 does not know: their targets cannot be kept (nor fit, for fiscal_year).
    op.execute(sa.text("DELETE FROM kpi_targets WHERE grain IN ('quarter', 'fiscal_year')"))
    with op.batch_alter_table("kpi_targets", schema=None) as batch_op:
        batch_op.alter_column(
            "grain",
            existing_type=sa.String(length=16),
            type_=sa.String(length=8),
            existing_nullable=False,
        )
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.drop_column("deal_type")
