"""Normalized records: what every connector produces, whatever the CRM (docs/sync.md).

Connectors map CRM payloads to these frozen dataclasses; the store upserts them
keyed on (source, crm_id). Foreign references (rep, contact, deal) are CRM ids
of the same source, resolved by the store and the KPI engine, because a CRM
hands records over in any order.

Timestamps are timezone-aware UTC datetimes. ``modified_at`` is the CRM's own
last-modified time (HubSpot hs_lastmodifieddate, Salesforce SystemModstamp).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

Source = Literal["hubspot", "salesforce"]

CallOutcome = Literal[
    "connected",
    "no_answer",
    "voicemail",
    "live_message",
    "wrong_number",
    "busy",
    "failed",
    "unknown",
]
CALL_OUTCOMES: tuple[str, ...] = (
    "connected",
    "no_answer",
    "voicemail",
    "live_message",
    "wrong_number",
    "busy",
    "failed",
    "unknown",
)
# A call is reached (着電) when it rang through to someone or something.
REACHED_OUTCOMES: frozenset[str] = frozenset(
    {"connected", "no_answer", "voicemail", "live_message", "wrong_number"}
)

MeetingOutcome = Literal["scheduled", "completed", "rescheduled", "no_show", "canceled"]
MEETING_OUTCOMES: tuple[str, ...] = ("scheduled", "completed", "rescheduled", "no_show", "canceled")

Direction = Literal["outbound", "inbound"]

# A deal wins a new customer or sells more to an existing one (by=deal_type).
DealType = Literal["new", "existing"]
DEAL_TYPES: tuple[str, ...] = ("new", "existing")

COMPANY_SIZES: tuple[str, ...] = ("1-9", "10-49", "50-249", "250-999", "1000+")

NUL = "\x00"


def plain_text(value: Any) -> str | None:
    """A CRM value as stripped text with its NUL bytes (U+0000) removed; None when missing or blank.

    Both normalizers read free text through this. PostgreSQL text cannot hold U+0000 (SQLite
    can), so one NUL in a name or a note would fail its page on every run; stripped here, both
    engines store the same text. Ids are not free text: a record whose id holds a NUL is
    quarantined instead (:func:`nul_in_id`).
    """
    if value is None:
        return None
    text = str(value)
    if NUL in text:
        text = text.replace(NUL, "")
    return text.strip() or None


def nul_in_id(value: Any) -> str | None:
    """Why a record's raw id cannot be used (it holds a NUL byte), or None."""
    if isinstance(value, str) and NUL in value:
        return "the record's id holds a NUL byte (U+0000): quarantined, not guessed at"
    return None


@dataclass(frozen=True, kw_only=True)
class Record:
    """Fields every normalized record has."""

    kind: ClassVar[str]

    source: Source
    crm_id: str
    deleted: bool = False
    modified_at: datetime | None = None

    def as_row(self) -> dict[str, Any]:
        """The record as a column → value mapping for the store."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True, kw_only=True)
class Team(Record):
    kind: ClassVar[str] = "team"

    name: str


@dataclass(frozen=True, kw_only=True)
class Rep(Record):
    kind: ClassVar[str] = "rep"

    name: str
    email: str | None = None
    team_crm_id: str | None = None
    manager_crm_id: str | None = None
    active: bool = True
    # HubSpot: the owner's userId (the CRM users object's hs_internal_user_id), for write-back.
    user_id: str | None = None
    # When the CRM created the user (HubSpot owner createdAt, Salesforce User.CreatedDate):
    # the start of the rep's tenure when it is older than the first activity synced.
    crm_created_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Lead(Record):
    kind: ClassVar[str] = "lead"

    created_at: datetime
    channel: str | None = None
    industry: str | None = None
    company_size: str | None = None  # one of COMPANY_SIZES, or None when unknown
    status: str | None = None
    sql_at: datetime | None = None
    score: float | None = None
    rep_crm_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Call(Record):
    kind: ClassVar[str] = "call"

    occurred_at: datetime
    direction: Direction | None = None
    outcome: CallOutcome = "unknown"
    duration_ms: int | None = None
    rep_crm_id: str | None = None
    contact_crm_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Email(Record):
    kind: ClassVar[str] = "email"

    sent_at: datetime
    direction: Direction | None = None
    status: str | None = None
    sent: bool = True
    tracked: bool = False  # open tracking known: only tracked sent emails enter the rates
    opened: bool | None = None
    clicked: bool | None = None
    replied: bool | None = None
    rep_crm_id: str | None = None
    contact_crm_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Meeting(Record):
    kind: ClassVar[str] = "meeting"

    booked_at: datetime
    start_at: datetime | None = None
    outcome: MeetingOutcome | None = None
    rep_crm_id: str | None = None
    contact_crm_id: str | None = None
    deal_crm_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class FollowUpTask(Record):
    kind: ClassVar[str] = "task"

    due_at: datetime
    status: str | None = None
    completed_at: datetime | None = None
    rep_crm_id: str | None = None
    contact_crm_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Deal(Record):
    kind: ClassVar[str] = "deal"

    created_at: datetime
    closed_at: datetime | None = None
    amount: Decimal | None = None
    stage: str | None = None
    pipeline: str | None = None
    is_closed: bool = False
    is_won: bool = False
    probability: float | None = None  # stage probability, a fraction 0–1
    owner_crm_id: str | None = None  # field sales owner
    rep_crm_id: str | None = None  # the IS rep; set means the deal is IS-sourced
    bant_budget: str | None = None
    bant_authority: str | None = None
    bant_need: str | None = None
    bant_timing: str | None = None
    handoff_rating: float | None = None
    lead_source: str | None = None
    contact_crm_id: str | None = None
    deal_type: DealType | None = None  # None when the CRM does not say, or says something else


@dataclass(frozen=True, kw_only=True)
class CallList(Record):
    """A list of leads to work: a HubSpot static contact list, a Salesforce Campaign."""

    kind: ClassVar[str] = "call_list"

    name: str
    # What the CRM calls it: HubSpot processingType (MANUAL, SNAPSHOT), Salesforce Campaign Type.
    list_kind: str | None = None

    def as_row(self) -> dict[str, Any]:
        """The record as a column → value mapping (``list_kind`` is the ``kind`` column)."""
        row = super().as_row()
        row["kind"] = row.pop("list_kind")
        return row


@dataclass(frozen=True, kw_only=True)
class CallListMember(Record):
    """A lead's membership of a call list, from the time it was added.

    ``crm_id`` is the membership's id within its list (the CampaignMember Id; for HubSpot the
    member contact's id), so a member is keyed by (source, list_crm_id, crm_id).
    ``contact_crm_id`` names the lead the way activities do (their contact).
    """

    kind: ClassVar[str] = "call_list_member"

    list_crm_id: str
    added_at: datetime
    contact_crm_id: str | None = None


RECORD_TYPES: tuple[type[Record], ...] = (
    Team,
    Rep,
    Lead,
    Call,
    Email,
    Meeting,
    FollowUpTask,
    Deal,
    CallList,
    CallListMember,
)


@dataclass(frozen=True)
class Rejected:
    """A CRM record that could not be normalized; it goes to quarantine."""

    crm_id: str | None
    payload: dict[str, Any]
    reason: str
