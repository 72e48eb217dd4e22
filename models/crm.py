"""The normalized CRM records (docs/sync.md), one table per record kind.

Every row is keyed by (source, crm_id); references to reps, contacts and deals
are CRM ids of the same source, because a CRM hands records over in any order.
``deleted`` marks archived or deleted CRM records: they stay in the store (so a
later un-delete is an update) but no KPI counts them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from sqlalchemy import Index, Numeric, String, UniqueConstraint, false, func, true
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class CrmRecord(Base):
    """Columns every normalized record has."""

    __abstract__ = True

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    crm_id: Mapped[str] = mapped_column(String(64))
    deleted: Mapped[bool] = mapped_column(default=False, server_default=false())
    modified_at: Mapped[datetime | None]
    synced_at: Mapped[datetime] = mapped_column(server_default=func.current_timestamp())

    # The columns a page of records is upserted on (a unique constraint of the table).
    upsert_key: ClassVar[tuple[str, ...]] = ("source", "crm_id")


class Team(CrmRecord):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("source", "crm_id"),)

    name: Mapped[str] = mapped_column(String(255))


class Rep(CrmRecord):
    __tablename__ = "reps"
    __table_args__ = (UniqueConstraint("source", "crm_id"),)

    name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    team_crm_id: Mapped[str | None] = mapped_column(String(64))
    manager_crm_id: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    user_id: Mapped[str | None] = mapped_column(String(64))
    # When the CRM created the user: a tenure start older than the rep's first activity here.
    crm_created_at: Mapped[datetime | None]
    # junior | mid | senior set by an admin (kpi.reps.set_rep_level); None: from tenure.
    level_override: Mapped[str | None] = mapped_column(String(16))


class Lead(CrmRecord):
    __tablename__ = "leads"
    __table_args__ = (
        UniqueConstraint("source", "crm_id"),
        Index("ix_leads_created", "source", "created_at"),
    )

    created_at: Mapped[datetime]
    channel: Mapped[str | None] = mapped_column(String(255))
    industry: Mapped[str | None] = mapped_column(String(255))
    company_size: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(64))
    sql_at: Mapped[datetime | None]
    score: Mapped[float | None]
    rep_crm_id: Mapped[str | None] = mapped_column(String(64))


class Call(CrmRecord):
    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("source", "crm_id"),
        Index("ix_calls_rep_occurred", "source", "rep_crm_id", "occurred_at"),
        Index("ix_calls_contact", "source", "contact_crm_id"),
    )

    occurred_at: Mapped[datetime]
    direction: Mapped[str | None] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    duration_ms: Mapped[int | None]
    rep_crm_id: Mapped[str | None] = mapped_column(String(64))
    contact_crm_id: Mapped[str | None] = mapped_column(String(64))


class Email(CrmRecord):
    __tablename__ = "emails"
    __table_args__ = (
        UniqueConstraint("source", "crm_id"),
        Index("ix_emails_rep_sent", "source", "rep_crm_id", "sent_at"),
        Index("ix_emails_contact", "source", "contact_crm_id"),
    )

    sent_at: Mapped[datetime]
    direction: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(32))
    sent: Mapped[bool]
    tracked: Mapped[bool]
    opened: Mapped[bool | None]
    clicked: Mapped[bool | None]
    replied: Mapped[bool | None]
    rep_crm_id: Mapped[str | None] = mapped_column(String(64))
    contact_crm_id: Mapped[str | None] = mapped_column(String(64))


class Meeting(CrmRecord):
    __tablename__ = "meetings"
    __table_args__ = (
        UniqueConstraint("source", "crm_id"),
        Index("ix_meetings_rep_booked", "source", "rep_crm_id", "booked_at"),
    )

    booked_at: Mapped[datetime]
    start_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(16))
    rep_crm_id: Mapped[str | None] = mapped_column(String(64))
    contact_crm_id: Mapped[str | None] = mapped_column(String(64))
    deal_crm_id: Mapped[str | None] = mapped_column(String(64))


class FollowUpTask(CrmRecord):
    __tablename__ = "follow_up_tasks"
    __table_args__ = (
        UniqueConstraint("source", "crm_id"),
        Index("ix_follow_up_tasks_rep_due", "source", "rep_crm_id", "due_at"),
    )

    due_at: Mapped[datetime]
    status: Mapped[str | None] = mapped_column(String(32))
    completed_at: Mapped[datetime | None]
    rep_crm_id: Mapped[str | None] = mapped_column(String(64))
    contact_crm_id: Mapped[str | None] = mapped_column(String(64))


class Deal(CrmRecord):
    __tablename__ = "deals"
    __table_args__ = (
        UniqueConstraint("source", "crm_id"),
        Index("ix_deals_rep_created", "source", "rep_crm_id", "created_at"),
        Index("ix_deals_closed", "source", "closed_at"),
    )

    created_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    stage: Mapped[str | None] = mapped_column(String(255))
    pipeline: Mapped[str | None] = mapped_column(String(255))
    is_closed: Mapped[bool]
    is_won: Mapped[bool]
    probability: Mapped[float | None]
    owner_crm_id: Mapped[str | None] = mapped_column(String(64))
    rep_crm_id: Mapped[str | None] = mapped_column(String(64))
    bant_budget: Mapped[str | None] = mapped_column(String(255))
    bant_authority: Mapped[str | None] = mapped_column(String(255))
    bant_need: Mapped[str | None] = mapped_column(String(255))
    bant_timing: Mapped[str | None] = mapped_column(String(255))
    handoff_rating: Mapped[float | None]
    lead_source: Mapped[str | None] = mapped_column(String(255))
    contact_crm_id: Mapped[str | None] = mapped_column(String(64))
    # "new" or "existing" (normalized by the connector), None when the CRM does not say.
    deal_type: Mapped[str | None] = mapped_column(String(16))


class CallList(CrmRecord):
    """A list of leads to work: a HubSpot static contact list, a Salesforce Campaign."""

    __tablename__ = "call_lists"
    __table_args__ = (UniqueConstraint("source", "crm_id"),)

    name: Mapped[str] = mapped_column(String(255))
    # What the CRM calls it: HubSpot processingType (MANUAL, SNAPSHOT), Salesforce Campaign Type.
    kind: Mapped[str | None] = mapped_column(String(64))


class CallListMember(CrmRecord):
    """A lead's membership of a call list, from the time it was added.

    ``crm_id`` is the membership's id within its list (the CampaignMember Id; for
    HubSpot, the member record's id), so the key is (source, list_crm_id, crm_id).
    ``contact_crm_id`` names the lead the way activities do (their contact).
    """

    __tablename__ = "call_list_members"
    __table_args__ = (
        UniqueConstraint("source", "list_crm_id", "crm_id"),
        Index("ix_call_list_members_added", "source", "added_at"),
        Index("ix_call_list_members_contact", "source", "contact_crm_id"),
    )
    upsert_key: ClassVar[tuple[str, ...]] = ("source", "list_crm_id", "crm_id")

    list_crm_id: Mapped[str] = mapped_column(String(64))
    contact_crm_id: Mapped[str | None] = mapped_column(String(64))
    added_at: Mapped[datetime]


# The table each normalized record kind lands in (connectors/records.py `kind`).
TABLE_BY_KIND: dict[str, type[CrmRecord]] = {
    "team": Team,
    "rep": Rep,
    "lead": Lead,
    "call": Call,
    "email": Email,
    "meeting": Meeting,
    "task": FollowUpTask,
    "deal": Deal,
    "call_list": CallList,
    "call_list_member": CallListMember,
}
