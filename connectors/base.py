"""The contracts between a CRM connector and the service: pulling pages, pushing targets.

A connector knows its CRM's wire format and nothing about the database: it
turns a stream's saved state into pages of normalized records, each page
carrying the state to save once that page is stored. The sync (service/)
stores the page and the state in one transaction, so a killed run resumes
from its last stored page.

Write-back goes the other way (service/writeback.py): a TargetWriter checks the
destination fields (creating them where the CRM allows), reads their current
values for the reps' users, and writes field updates in batches, one result per
update, so the service can diff before writing and audit every row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from connectors.records import Record, Rejected

# A stream's saved position, JSON-serializable. Its shape is the connector's own
# business; the sync stores it verbatim and hands it back on the next run.
StreamState = Mapping[str, Any]


@dataclass(frozen=True)
class StreamSpec:
    """One stream a connector pulls, declared once: its record type and its cursor."""

    name: str  # "calls", "emails", ... (the store's stream name)
    record_type: type[Record]
    cursor_field: str  # the CRM's last-modified field the incremental cursor follows
    lookback: timedelta = timedelta(minutes=10)
    key: str = "Id"  # the CRM's id field: the cursor is (cursor_field, key), ties broken by it


@dataclass
class Page:
    """One page of a stream: records to upsert, records to quarantine, and the state after it."""

    stream: str
    records: list[Record]
    rejected: list[Rejected]
    state: dict[str, Any]
    api_calls: int = 0  # requests this page cost, including retries and side look-ups
    total: int | None = None  # the stream's expected record count, when the CRM tells it
    # Records of this stream's type that the CRM no longer lists at all (e.g. a
    # deactivated owner); the store flags them deleted.
    missing_crm_ids: list[str] = field(default_factory=list)
    # Records of this stream's type merged into another (merged id → the id it became, e.g. a
    # HubSpot contact's hs_merged_object_ids): the store flags the merged ones deleted and
    # points the records that referenced them (activities' and deals' contacts) at the survivor.
    merged_crm_ids: dict[str, str] = field(default_factory=dict)
    # Narrows ``missing_crm_ids`` to the records with these values, for records keyed within a
    # parent: {"list_crm_id": "123"} flags members of that one list.
    missing_within: dict[str, str] = field(default_factory=dict)


class SourceConnector(Protocol):
    """Pulls pages of normalized records from one CRM.

    The run boundary is the caller's: a sync run fixes its start once and passes it as
    ``until`` to every ``pull`` of the run. ``until`` bounds every stream from above (no record
    modified after it is read, and a finished stream's cursor moves to it, never past it), and
    it names the run: a connector that keeps per-run state, such as Salesforce's quota guard
    (its share of the org's daily requests), starts that state afresh when it is given an
    ``until`` it has not seen, and never guesses a run from the clock or from the order of calls.
    """

    source: str

    @property
    def api_calls(self) -> int:
        """HTTP requests made so far, retries included."""
        ...

    @property
    def streams(self) -> Sequence[StreamSpec]:
        """The streams in the order they should be synced."""
        ...

    def pull(self, stream: str, state: StreamState | None, *, until: datetime) -> Iterator[Page]:
        """Yield the stream's pages from ``state`` (None: a full sync) up to the run's ``until``."""
        ...


# --- write-back: KPI targets into CRM fields ---------------------------------------------------


@dataclass(frozen=True)
class FieldRef:
    """A CRM field a target is written to, on a record that belongs to a rep's CRM user.

    ``crm_object`` is the CRM's own name: Salesforce ``User`` or ``ForecastingQuota``, HubSpot
    ``users``. Which record of it is the rep's is the connector's business (the User itself, the
    users-object record of the owner's user, the user's quota for the period).
    """

    crm_object: str
    field: str


@dataclass(frozen=True)
class FieldCheck:
    """What a connector found about the destination fields before a push."""

    # Fields the CRM does not have yet and the connector would create (HubSpot properties);
    # after ``prepare_fields(create=True)`` these exist.
    missing: list[FieldRef] = field(default_factory=list)
    created: list[FieldRef] = field(default_factory=list)
    # Decimal places each field keeps (a value is rounded to them when stored); None: as sent.
    decimals: dict[FieldRef, int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class CurrentValue:
    """A destination field's value in the CRM now, for one rep's user."""

    user_id: str
    ref: FieldRef
    record_id: str | None  # the record holding the field; None: the CRM has none (yet)
    value: float | None
    # Why there is no record; None when there is one or one will be created by the push.
    missing_reason: str | None = None


@dataclass(frozen=True)
class FieldUpdate:
    """One value to write: the rep's user, the field, the record (None: create it) and the value."""

    user_id: str
    ref: FieldRef
    record_id: str | None
    value: float
    period_start: date


@dataclass(frozen=True)
class UpdateResult:
    """How one field update went; a record that fails fails every field written to it."""

    update: FieldUpdate
    ok: bool
    record_id: str | None  # the record written (a created record's new id)
    error: str | None = None


@dataclass
class PushBatch:
    """One write request's outcome: a result per field update and the requests it cost."""

    results: list[UpdateResult]
    api_calls: int = 0
    records: int = 0  # records in the request


class TargetWriter(Protocol):
    """Writes KPI targets into CRM fields: check fields, read current values, push updates.

    A push is one run: ``prepare_fields`` starts it (a connector's per-run state, such as a
    quota budget, starts afresh there), then ``read_values`` and ``push`` follow.
    """

    source: str

    @property
    def api_calls(self) -> int:
        """HTTP requests made so far, retries included."""
        ...

    @property
    def write_requests(self) -> int:
        """Of those, the record write requests (batches sent, retries included)."""
        ...

    @property
    def batch_size(self) -> int:
        """Records per write request (HubSpot 100, Salesforce 200)."""
        ...

    def prepare_fields(self, refs: Sequence[FieldRef], *, create: bool) -> FieldCheck:
        """Check the fields exist and can be written; with ``create``, create missing ones."""
        ...

    def read_values(
        self, user_ids: Sequence[str], refs: Sequence[FieldRef], period_start: date
    ) -> list[CurrentValue]:
        """The current value of every field for every user (missing users included, no record)."""
        ...

    def push(self, updates: Sequence[FieldUpdate]) -> Iterator[PushBatch]:
        """Write the updates in batches, yielding each batch's per-update results as it returns."""
        ...
