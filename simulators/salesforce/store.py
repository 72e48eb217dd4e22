"""The simulated org's in-memory record store, and the generated datasets it loads."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from simulators.hubspot.store import gc_paused
from simulators.salesforce.ids import id_serial, salesforce_id
from simulators.salesforce.schema import (
    CLOSED_TASK_STATUSES,
    DEFAULT_STAGES,
    FieldSpec,
    FieldType,
    SObjectSpec,
    standard_schema,
)
from simulators.salesforce.wire import EPOCH, Value, as_ms, parse_datetime_literal, to_ms

# Who created a record when the caller does not say: the org's first user.
DEFAULT_CREATOR = salesforce_id("005", 1)


class Row:
    __slots__ = ("id", "values")

    def __init__(self, record_id: str, values: list[Value]) -> None:
        self.id = record_id
        self.values = values


class Table:
    """All records of one SObject, in id order; values follow the spec's field order."""

    def __init__(self, spec: SObjectSpec) -> None:
        self.spec = spec
        self.index: dict[str, int] = {}
        self.types: list[FieldType] = []
        self.rows: list[Row] = []
        self.by_id: dict[str, Row] = {}
        self.next_serial = 1
        self._blank: list[Value] = []
        for field_spec in spec.fields:
            self._register(field_spec)

    def _register(self, field_spec: FieldSpec) -> None:
        self.index[field_spec.name.lower()] = len(self.types)
        self.types.append(field_spec.type)
        self._blank = [False if kind == "boolean" else None for kind in self.types]

    def blank_values(self) -> list[Value]:
        """A new row's values: False for every boolean field, None for the rest."""
        return self._blank.copy()

    def add_field(self, field_spec: FieldSpec) -> None:
        if field_spec.name.lower() in self.index:
            return
        self.spec.fields.append(field_spec)
        self._register(field_spec)
        for row in self.rows:
            row.values.append(None)

    def drop_field(self, name: str) -> None:
        # The column stays in storage (unreachable): describe and SOQL no longer see it.
        spec = self.spec.field(name)
        if spec is None:
            raise ValueError(f"{self.spec.name} has no field {name!r}")
        self.spec.fields.remove(spec)

    def position(self, name: str) -> int:
        return self.index[name.lower()]

    def get(self, row: Row, name: str) -> Value:
        return row.values[self.index[name.lower()]]

    def live(self, name: str) -> bool:
        return self.spec.field(name) is not None


# ---------------------------------------------------------------------------------------
# Generated datasets, as the store bulk-loads them
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrgRecord:
    """One record to load: API field names with Python values (datetimes as epoch millis)."""

    sobject: str
    id: str
    fields: dict[str, Any]
    created_ms: int
    modified_ms: int
    deleted_ms: int | None = None

    @property
    def created_at(self) -> datetime:
        return EPOCH + timedelta(milliseconds=self.created_ms)

    @property
    def modified_at(self) -> datetime:
        return EPOCH + timedelta(milliseconds=self.modified_ms)

    @property
    def deleted_at(self) -> datetime | None:
        return None if self.deleted_ms is None else EPOCH + timedelta(milliseconds=self.deleted_ms)


@dataclass
class OrgDataset:
    """Everything the demo org holds, in load order (every object's records in Id order)."""

    seed: int
    start: datetime
    end: datetime
    records: list[OrgRecord] = field(default_factory=list)

    def of(self, sobject: str) -> Iterator[OrgRecord]:
        """The records of one object."""
        return (r for r in self.records if r.sobject == sobject)

    def count(self, sobject: str, *, deleted: bool | None = None) -> int:
        """Records of an object: all (None), only deleted (True) or only live (False)."""
        return sum(
            1 for r in self.of(sobject) if deleted is None or (r.deleted_ms is not None) == deleted
        )

    def counts(self) -> dict[str, int]:
        """Records per object."""
        return dict(Counter(r.sobject for r in self.records))


# ---------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------


class OrgStore:
    """The org's records and schema, and their Python API (create, update, delete, load)."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        schema: Mapping[str, SObjectSpec] | None = None,
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._tables: dict[str, Table] = {
            name.lower(): Table(spec) for name, spec in (schema or standard_schema()).items()
        }
        self._stages = {s[0].lower(): s for s in DEFAULT_STAGES}
        if self.has_object("ForecastingType"):
            self.create(
                "ForecastingType",
                {
                    "DeveloperName": "OpportunityRevenue",
                    "MasterLabel": "Opportunity Revenue",
                    "IsActive": True,
                    "IsAmount": True,
                    "IsQuantity": False,
                },
            )

    # -- Python API: schema -----------------------------------------------------------------

    def table(self, sobject: str) -> Table:
        found = self._tables.get(sobject.lower())
        if found is None:
            raise ValueError(f"the org has no object {sobject!r}")
        return found

    def has_object(self, sobject: str) -> bool:
        return sobject.lower() in self._tables

    def drop_object(self, sobject: str) -> None:
        """Remove an object (an org without it, e.g. without Enhanced Email's EmailMessage)."""
        with self._lock:
            self._tables.pop(sobject.lower(), None)

    def drop_field(self, sobject: str, name: str) -> None:
        """Remove a field from describe and SOQL (an org without that custom field)."""
        with self._lock:
            self.table(sobject).drop_field(name)

    def add_field(self, sobject: str, spec: FieldSpec) -> None:
        """Add a field (as creating a custom field in Setup does)."""
        with self._lock:
            self.table(sobject).add_field(spec)

    # -- Python API: records ----------------------------------------------------------------

    def _now_ms(self) -> int:
        return to_ms(self._clock())

    def _coerce(self, table: Table, name: str, value: Any) -> Value:
        return _coerce(table, table.types[table.position(name)], name, value)

    def _apply_rules(
        self,
        table: Table,
        row: Row,
        given: Mapping[str, Any],
        lowered: frozenset[str] | set[str] | None = None,
    ) -> None:
        """Keep Salesforce's derived fields in step, as the platform does."""
        if lowered is None:
            lowered = {k.lower() for k in given}
        name = table.spec.name
        if (
            name in ("Lead", "Contact", "User")
            and "name" not in lowered
            and ("firstname" in lowered or "lastname" in lowered)
        ):
            first, last = table.get(row, "FirstName"), table.get(row, "LastName")
            row.values[table.position("Name")] = " ".join(str(p) for p in (first, last) if p)
        if name == "Opportunity" and "stagename" in lowered:
            stage = self._stages.get(str(table.get(row, "StageName")).lower())
            if stage is not None:
                _label, probability, closed, won = stage
                row.values[table.position("IsClosed")] = closed
                row.values[table.position("IsWon")] = closed and won
                if "probability" not in lowered:
                    row.values[table.position("Probability")] = probability
        if name == "CampaignMember" and ("leadid" in lowered or "contactid" in lowered):
            who = table.get(row, "ContactId") or table.get(row, "LeadId")
            row.values[table.position("LeadOrContactId")] = who
        if name == "Task" and "status" in lowered and "isclosed" not in lowered:
            status = str(table.get(row, "Status") or "").lower()
            row.values[table.position("IsClosed")] = status in CLOSED_TASK_STATUSES

    def create(
        self,
        sobject: str,
        fields: Mapping[str, Any],
        *,
        created_at: datetime | int | None = None,
        modified_at: datetime | int | None = None,
        record_id: str | None = None,
    ) -> str:
        """Create a record from API field names (Python values); returns its 18-character Id."""
        with self._lock:
            table = self.table(sobject)
            spec = table.spec
            index, types = table.index, table.types
            if record_id is None:
                record_id = salesforce_id(spec.key_prefix, table.next_serial)
            elif record_id in table.by_id:
                raise ValueError(f"{spec.name} {record_id} exists")
            table.next_serial = max(table.next_serial, id_serial(record_id)) + 1
            values = table.blank_values()
            row = Row(record_id, values)
            now = self._now_ms()
            created = as_ms(created_at) if created_at is not None else now
            modified = as_ms(modified_at) if modified_at is not None else max(created, now)
            lowered: set[str] = set()
            for name, value in fields.items():
                key = name.lower()
                position = index.get(key)
                if position is None:
                    raise ValueError(f"{spec.name} has no field {name!r}")
                lowered.add(key)
                values[position] = _coerce(table, types[position], name, value)
            values[index["id"]] = record_id
            if "createddate" in index and "createddate" not in lowered:
                values[index["createddate"]] = created
            for stamp in ("lastmodifieddate", "systemmodstamp"):
                if stamp in index:
                    values[index[stamp]] = modified
            creator = index.get("createdbyid")
            if creator is not None and values[creator] is None:
                values[creator] = DEFAULT_CREATOR
            self._apply_rules(table, row, fields, lowered)
            table.rows.append(row)
            table.by_id[record_id] = row
            return record_id

    def _row(self, sobject: str, record_id: str) -> tuple[Table, Row]:
        table = self.table(sobject)
        row = table.by_id.get(record_id)
        if row is None:
            raise ValueError(f"no {table.spec.name} {record_id}")
        return table, row

    def update(
        self,
        sobject: str,
        record_id: str,
        fields: Mapping[str, Any],
        *,
        modified_at: datetime | None = None,
    ) -> None:
        """Change fields of a record (None clears one) and bump its modstamps."""
        with self._lock:
            table, row = self._row(sobject, record_id)
            for name, value in fields.items():
                if name.lower() not in table.index:
                    raise ValueError(f"{table.spec.name} has no field {name!r}")
                row.values[table.position(name)] = self._coerce(table, name, value)
            self._apply_rules(table, row, fields)
            self._touch(table, row, modified_at)

    def _touch(self, table: Table, row: Row, modified_at: datetime | int | None) -> None:
        stamp = as_ms(modified_at) if modified_at is not None else self._now_ms()
        for name in ("LastModifiedDate", "SystemModstamp"):
            if name.lower() in table.index:
                row.values[table.position(name)] = stamp

    def delete(self, sobject: str, record_id: str, *, at: datetime | int | None = None) -> None:
        """Delete a record to the recycle bin: IsDeleted, still returned by queryAll."""
        with self._lock:
            table, row = self._row(sobject, record_id)
            if "isdeleted" not in table.index:
                raise ValueError(f"{table.spec.name} records cannot be deleted")
            row.values[table.position("IsDeleted")] = True
            self._touch(table, row, at)

    def archive(self, sobject: str, record_id: str, *, at: datetime | None = None) -> None:
        """Archive an activity (Salesforce does after a year): only queryAll returns it."""
        with self._lock:
            table, row = self._row(sobject, record_id)
            if not table.spec.archivable:
                raise ValueError(f"{table.spec.name} records are not archived")
            row.values[table.position("IsArchived")] = True
            self._touch(table, row, at)

    def ids(self, sobject: str, *, deleted: bool = False) -> list[str]:
        """Ids of the live (or deleted) records of an object, in id order."""
        with self._lock:
            table = self.table(sobject)
            return [row.id for row in table.rows if self._deleted(table, row) == deleted]

    def count(self, sobject: str, *, deleted: bool = False) -> int:
        """How many records of an object are live (or deleted)."""
        return len(self.ids(sobject, deleted=deleted))

    @staticmethod
    def _deleted(table: Table, row: Row) -> bool:
        return "isdeleted" in table.index and row.values[table.index["isdeleted"]] is True

    def load(self, dataset: OrgDataset) -> None:
        """Bulk-load a generated dataset (records in dependency order, with their own ids)."""
        with self._lock, gc_paused():
            for record in dataset.records:
                self.create(
                    record.sobject,
                    record.fields,
                    created_at=record.created_ms,
                    modified_at=record.modified_ms,
                    record_id=record.id,
                )
                if record.deleted_ms is not None:
                    self.delete(record.sobject, record.id, at=record.deleted_ms)


def _coerce(table: Table, kind: FieldType, name: str, value: Any) -> Value:
    """A Python value as the store holds it for a field of ``kind``; ValueError if it cannot be."""
    if value is None or value == "" and kind not in ("string", "textarea"):
        return None
    if kind == "datetime":
        if isinstance(value, datetime):
            return to_ms(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        parsed = parse_datetime_literal(str(value))
        if parsed is None:
            raise ValueError(f"{table.spec.name}.{name}: not a dateTime: {value!r}")
        return parsed
    if kind == "date":
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        return date.fromisoformat(str(value))
    if kind == "boolean":
        return bool(value)
    if kind == "int":
        return int(value)
    if kind in ("double", "currency", "percent"):
        return float(value)
    return str(value)
