"""The simulated portal's in-memory record store, and the generated datasets it loads."""

from __future__ import annotations

import bisect
import gc
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any

from simulators.hubspot.lists import GeneratedList, ListStore
from simulators.hubspot.wire import (
    DEFAULT_DEAL_STAGES,
    EPOCH,
    MERGEABLE_TYPES,
    OBJECT_TYPES,
    PROPERTY_TYPES,
    ObjectTypeSpec,
    PropertyKind,
    Value,
    canonical_object_type,
    iso_ms,
    parse_datetime_value,
    to_ms,
)


class Record:
    """One stored record; ``values`` follows its type's column order."""

    __slots__ = ("id", "created_ms", "modified_ms", "archived_ms", "values")

    def __init__(
        self,
        id: int,
        created_ms: int,
        modified_ms: int,
        archived_ms: int | None,
        values: tuple[Value, ...],
    ) -> None:
        self.id = id
        self.created_ms = created_ms
        self.modified_ms = modified_ms
        self.archived_ms = archived_ms
        self.values = values


class ObjectStore:
    """All records of one object type, kept in id order so a page costs O(page)."""

    def __init__(self, spec: ObjectTypeSpec) -> None:
        self.spec = spec
        self.columns: list[str] = [name for name, _ in spec.properties]
        self.index: dict[str, int] = {name: i for i, name in enumerate(self.columns)}
        self.kinds: dict[str, PropertyKind] = dict(spec.properties)
        self.kinds[spec.created_property] = "datetime"
        self.kinds[spec.modified_property] = "datetime"
        self.kinds["hs_object_id"] = "number"
        self.ids: list[int] = []
        self.rows: list[Record] = []
        self.by_id: dict[int, Record] = {}
        self.archived: list[int] = []  # sorted ids of archived records
        self.next_id = spec.first_id
        self.version = 0  # bumped on every change; keys the search cache

    def add_column(self, name: str, kind: PropertyKind = "string") -> int:
        """Register a custom property (as creating one in the portal's settings would)."""
        if name in self.index:
            return self.index[name]
        self.columns.append(name)
        self.index[name] = len(self.columns) - 1
        self.kinds[name] = kind
        return self.index[name]

    def raw_getter(self, name: str) -> Callable[[Record], Value]:
        """A function reading one property's stored value from a record."""
        spec = self.spec
        if name == spec.created_property:
            return attrgetter("created_ms")
        if name == spec.modified_property:
            return attrgetter("modified_ms")
        if name == "hs_object_id":
            return lambda o: str(o.id)
        idx = self.index[name]
        return lambda o: o.values[idx] if idx < len(o.values) else None

    def live(self, obj_id: int) -> Record | None:
        obj = self.by_id.get(obj_id)
        return obj if obj is not None and obj.archived_ms is None else None


@dataclass
class Owner:
    id: str
    email: str
    first_name: str
    last_name: str
    user_id: int
    teams: list[tuple[str, str, bool]]
    created_ms: int
    updated_ms: int
    archived: bool


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while many acyclic records are built (generation and loads, both CRMs)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# ---------------------------------------------------------------------------------------
# Generated datasets, as the store bulk-loads them
# ---------------------------------------------------------------------------------------


@dataclass
class GeneratedOwner:
    """An owner (HubSpot user) of the demo portal."""

    id: str
    email: str
    first_name: str
    last_name: str
    teams: list[tuple[str, str, bool]]  # (team id, team name, primary)
    user_id: int
    created_at: datetime
    role: str  # "inside_sales" or "field_sales"
    archived: bool = False


@dataclass
class ObjectTable:
    """Generated records of one object type, column-wise (compact for millions of rows).

    Row i has id ``ids[i]``; datetime properties hold epoch milliseconds, all other
    values HubSpot's strings; None means the property has no value. ``associations``
    maps a target type to one target id per row (0: none); ``archived_ms`` maps a row
    to the time it was archived.
    """

    object_type: str
    ids: list[int] = field(default_factory=list)
    created_ms: list[int] = field(default_factory=list)
    modified_ms: list[int] = field(default_factory=list)
    columns: dict[str, list[Value]] = field(default_factory=dict)
    associations: dict[str, list[int]] = field(default_factory=dict)
    archived_ms: dict[int, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class GeneratedRecord:
    """One generated record as HubSpot would serve it (for inspection and tests)."""

    object_type: str
    id: str
    properties: dict[str, str]  # values present only, all strings
    associations: dict[str, list[str]]
    created_at: datetime
    modified_at: datetime
    archived_at: datetime | None


@dataclass
class PortalDataset:
    """Everything the demo portal holds: owners, records per type, the deal pipeline."""

    seed: int
    start: datetime
    end: datetime
    owners: list[GeneratedOwner]
    objects: dict[str, ObjectTable]
    pipeline_stages: list[tuple[str, str, float, bool, bool]]
    lists: list[GeneratedList] = field(default_factory=list)  # call lists (static contact lists)

    def count(self, object_type: str, *, archived: bool | None = None) -> int:
        """Records of a type: all (None), only archived (True) or only live (False)."""
        table = self.objects[object_type]
        if archived is None:
            return len(table)
        return len(table.archived_ms) if archived else len(table) - len(table.archived_ms)

    def owner_ids(self, role: str) -> list[str]:
        """Ids of the live owners in a role ("inside_sales" or "field_sales")."""
        return [o.id for o in self.owners if o.role == role and not o.archived]

    def records(self, object_type: str) -> Iterator[GeneratedRecord]:
        """The records of a type rendered as HubSpot strings, in id order."""
        table = self.objects[object_type]
        spec = OBJECT_TYPES[object_type]
        datetimes = {name for name, kind in spec.properties if kind == "datetime"}
        names = list(table.columns)
        for i, record_id in enumerate(table.ids):
            props: dict[str, str] = {
                spec.created_property: iso_ms(table.created_ms[i]),
                spec.modified_property: iso_ms(table.modified_ms[i]),
                "hs_object_id": str(record_id),
            }
            for name in names:
                value = table.columns[name][i]
                if value is None:
                    continue
                props[name] = (
                    iso_ms(value) if name in datetimes and isinstance(value, int) else str(value)
                )
            links = {to: [str(col[i])] for to, col in table.associations.items() if col[i]}
            archived = table.archived_ms.get(i)
            yield GeneratedRecord(
                object_type,
                str(record_id),
                props,
                links,
                EPOCH + timedelta(milliseconds=table.created_ms[i]),
                EPOCH + timedelta(milliseconds=table.modified_ms[i]),
                None if archived is None else EPOCH + timedelta(milliseconds=archived),
            )


# ---------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------


class PortalStore(ListStore):
    """The portal's state and its Python API: records, associations, owners, pipeline, properties."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._init_lists()
        self._stores: dict[str, ObjectStore] = {
            name: ObjectStore(spec) for name, spec in OBJECT_TYPES.items()
        }
        self._links: dict[tuple[str, str], dict[int, list[int]]] = {}
        self._merged_into: dict[tuple[str, int], int] = {}  # (type, merged id) → new id
        self._owners: dict[str, Owner] = {}
        self._owner_order: list[int] = []
        self._next_owner_id = 41_000_001
        self._next_user_id = 9_000_001
        created = to_ms(self._clock())
        self._pipeline_created_ms = created
        self._stages: list[tuple[str, str, float, bool, bool]] = list(DEFAULT_DEAL_STAGES)
        self._stages_updated_ms = created
        created_iso = iso_ms(created)
        self._created_iso = created_iso
        # Property definitions created through the API, and property groups, per object type.
        self._custom_properties: dict[str, dict[str, dict[str, Any]]] = {
            name: {} for name in OBJECT_TYPES
        }
        self._groups: dict[str, dict[str, dict[str, Any]]] = {
            spec.name: {
                f"{spec.singular}information": {
                    "name": f"{spec.singular}information",
                    "label": f"{spec.singular.capitalize()} information",
                    "displayOrder": -1,
                    "archived": False,
                }
            }
            for spec in OBJECT_TYPES.values()
        }

    # -- Python API: building the portal's state ------------------------------------------

    def _now_ms(self) -> int:
        return to_ms(self._clock())

    def _lists_now_ms(self) -> int:
        return self._now_ms()

    def _store(self, object_type: str) -> ObjectStore:
        name = canonical_object_type(object_type)
        if name is None:
            raise ValueError(f"unknown object type {object_type!r}")
        return self._stores[name]

    def add_owner(
        self,
        *,
        email: str,
        first_name: str,
        last_name: str,
        teams: Sequence[tuple[str, str, bool]] = (),
        user_id: int | None = None,
        archived: bool = False,
        owner_id: str | None = None,
        created_at: datetime | None = None,
    ) -> str:
        """Add an owner (teams: (team_id, team_name, primary)); returns its id."""
        with self._lock:
            if owner_id is None:
                owner_id = str(self._next_owner_id)
            if owner_id in self._owners or not owner_id.isdigit():
                raise ValueError(f"owner id {owner_id!r} is taken or not numeric")
            self._next_owner_id = max(self._next_owner_id, int(owner_id)) + 1
            if user_id is None:
                user_id = self._next_user_id
            self._next_user_id = max(self._next_user_id, user_id) + 1
            created = to_ms(created_at) if created_at is not None else self._now_ms()
            self._owners[owner_id] = Owner(
                owner_id,
                email,
                first_name,
                last_name,
                user_id,
                list(teams),
                created,
                created,
                archived,
            )
            bisect.insort(self._owner_order, int(owner_id))
            if not archived:
                # The owner's user, as the users object has it (hs_internal_user_id = userId).
                self.create(
                    "users",
                    {
                        "hs_internal_user_id": str(user_id),
                        "hs_email": email,
                        "hs_given_name": first_name,
                        "hs_family_name": last_name,
                    },
                )
            return owner_id

    def user_record_id(self, user_id: int | str) -> str | None:
        """The users-object record id of a user (by its hs_internal_user_id), if any."""
        with self._lock:
            store = self._stores["users"]
            idx = store.index["hs_internal_user_id"]
            for obj in store.rows:
                if (
                    obj.archived_ms is None
                    and idx < len(obj.values)
                    and obj.values[idx] == str(user_id)
                ):
                    return str(obj.id)
            return None

    def archive_owner(self, owner_id: str) -> None:
        """Deactivate an owner (its user removed from the portal): listed as archived from now on."""
        with self._lock:
            owner = self._owners[owner_id]
            owner.archived = True
            owner.updated_ms = self._now_ms()

    def create_property(
        self, object_type: str, name: str, *, type_: str = "number", group: str | None = None
    ) -> None:
        """Define a custom property (as creating one in the portal's settings does)."""
        with self._lock:
            store = self._store(object_type)
            group_name = group or f"{store.spec.singular}information"
            if group_name not in self._groups[store.spec.name]:
                self._groups[store.spec.name][group_name] = {
                    "name": group_name,
                    "label": group_name,
                    "displayOrder": -1,
                    "archived": False,
                }
            self._define_property(
                store,
                {
                    "name": name,
                    "label": name,
                    "type": type_,
                    "fieldType": PROPERTY_TYPES[type_][0],
                    "groupName": group_name,
                },
            )

    def _define_property(self, store: ObjectStore, definition: dict[str, Any]) -> dict[str, Any]:
        now = iso_ms(self._now_ms())
        full = {
            "updatedAt": now,
            "createdAt": now,
            "name": definition["name"],
            "label": definition.get("label") or definition["name"],
            "type": definition["type"],
            "fieldType": definition["fieldType"],
            "description": definition.get("description") or "",
            "groupName": definition["groupName"],
            "options": definition.get("options") or [],
            "displayOrder": definition.get("displayOrder", -1),
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": bool(definition.get("hasUniqueValue")),
            "hidden": bool(definition.get("hidden")),
            "hubspotDefined": False,
            "modificationMetadata": {
                "archivable": True,
                "readOnlyDefinition": False,
                "readOnlyValue": False,
            },
            "formField": bool(definition.get("formField")),
            "archived": False,
        }
        kind: PropertyKind = "string"
        if full["type"] in ("number", "datetime", "enumeration", "bool"):
            kind = full["type"]
        elif full["type"] == "date":
            kind = "datetime"
        store.add_column(full["name"], kind)
        store.kinds[full["name"]] = kind
        self._custom_properties[store.spec.name][full["name"]] = full
        return full

    def set_pipeline_stages(self, stages: Sequence[tuple[str, str, float, bool, bool]]) -> None:
        """Replace the default deal pipeline's stages: (stage_id, label, probability, closed, won)."""
        with self._lock:
            self._stages = [(s, label, float(p), bool(c), bool(w)) for s, label, p, c, w in stages]
            self._stages_updated_ms = self._now_ms()

    def _coerce(self, kind: PropertyKind, value: str) -> Value:
        if value == "":
            return None  # HubSpot clears a property given an empty string
        if kind == "datetime":
            parsed = parse_datetime_value(value)
            return parsed if parsed is not None else value
        return value

    def _apply_deal_stage(self, store: ObjectStore, values: list[Value]) -> None:
        """Keep HubSpot's calculated deal properties in step with the stage, as HubSpot does."""
        stage_id = values[store.index["dealstage"]]
        for sid, _label, probability, closed, won in self._stages:
            if sid == stage_id:
                values[store.index["hs_is_closed"]] = "true" if closed else "false"
                values[store.index["hs_is_closed_won"]] = "true" if closed and won else "false"
                values[store.index["hs_deal_stage_probability"]] = repr(probability)
                return

    def _write(
        self, store: ObjectStore, values: list[Value], properties: Mapping[str, str]
    ) -> None:
        spec = store.spec
        for name, value in properties.items():
            if name in (spec.created_property, spec.modified_property, "hs_object_id"):
                continue
            idx = store.add_column(name) if name not in store.index else store.index[name]
            while len(values) < len(store.columns):
                values.append(None)
            values[idx] = self._coerce(store.kinds[name], value)
        while len(values) < len(store.columns):
            values.append(None)
        if spec.name == "deals" and "dealstage" in properties:
            self._apply_deal_stage(store, values)

    def create(
        self,
        object_type: str,
        properties: Mapping[str, str],
        *,
        associations: Mapping[str, Sequence[str]] | None = None,
        modified_at: datetime | None = None,
    ) -> str:
        """Create a record; returns its id. Sets the create/modify dates and hs_object_id."""
        with self._lock:
            store = self._store(object_type)
            spec = store.spec
            now = self._now_ms()
            created_raw = properties.get(spec.created_property)
            created = parse_datetime_value(created_raw) if created_raw else None
            created = created if created is not None else now
            modified = to_ms(modified_at) if modified_at is not None else max(now, created)
            values: list[Value] = [None] * len(store.columns)
            self._write(store, values, properties)
            obj = Record(store.next_id, created, modified, None, tuple(values))
            store.next_id += 1
            store.ids.append(obj.id)
            store.rows.append(obj)
            store.by_id[obj.id] = obj
            store.version += 1
            for to_type, to_ids in (associations or {}).items():
                target = self._store(to_type)
                for to_id in to_ids:
                    if int(to_id) not in target.by_id:
                        raise ValueError(f"no {target.spec.singular} {to_id} to associate with")
                    self._link(spec.name, obj.id, target.spec.name, int(to_id))
            return str(obj.id)

    def update(
        self,
        object_type: str,
        object_id: str,
        properties: Mapping[str, str],
        *,
        modified_at: datetime | None = None,
    ) -> None:
        """Change some properties of a record ("" clears one) and bump its modified date."""
        with self._lock:
            store = self._store(object_type)
            obj = store.by_id.get(int(object_id))
            if obj is None:
                raise ValueError(f"no {store.spec.singular} {object_id}")
            values = list(obj.values)
            self._write(store, values, properties)
            obj.values = tuple(values)
            obj.modified_ms = to_ms(modified_at) if modified_at is not None else self._now_ms()
            store.version += 1

    def archive(self, object_type: str, object_id: str, *, at: datetime | None = None) -> None:
        """Archive (delete to the recycle bin) a record."""
        with self._lock:
            store = self._store(object_type)
            obj = store.by_id.get(int(object_id))
            if obj is None:
                raise ValueError(f"no {store.spec.singular} {object_id}")
            if obj.archived_ms is not None:
                return
            obj.archived_ms = to_ms(at) if at is not None else self._now_ms()
            obj.modified_ms = max(obj.modified_ms, obj.archived_ms)
            bisect.insort(store.archived, obj.id)
            store.version += 1

    def merge(
        self, object_type: str, primary_id: str, merged_id: str, *, at: datetime | None = None
    ) -> str:
        """Merge two records as HubSpot merges contacts today; returns the new record's id.

        A new record is created with a new id: the primary's property values (the other's where
        the primary has none), the older create date, and ``hs_merged_object_ids`` listing both
        ids (and any merged into them before). Both originals are archived, their associations
        move to the new record, and the associated records themselves are left unchanged (their
        modified dates too). A request for an original id answers the new record.
        """
        with self._lock:
            store = self._store(object_type)
            if store.spec.name not in MERGEABLE_TYPES:
                raise ValueError(f"{store.spec.name} cannot be merged")
            primary = store.live(int(primary_id))
            other = store.live(int(merged_id))
            if primary is None or other is None or primary is other:
                raise ValueError(f"cannot merge {merged_id} into {primary_id}")
            now = to_ms(at) if at is not None else self._now_ms()
            width = len(store.columns)
            mine = list(primary.values) + [None] * (width - len(primary.values))
            theirs = list(other.values) + [None] * (width - len(other.values))
            values = [a if a is not None else b for a, b in zip(mine, theirs, strict=True)]
            merged_ids = {str(primary.id), str(other.id)}
            idx = store.index["hs_merged_object_ids"]
            for raw in (mine[idx], theirs[idx]):
                merged_ids.update(part for part in str(raw or "").split(";") if part)
            values[idx] = ";".join(sorted(merged_ids, key=int))
            obj = Record(
                store.next_id, min(primary.created_ms, other.created_ms), now, None, tuple(values)
            )
            store.next_id += 1
            store.ids.append(obj.id)
            store.rows.append(obj)
            store.by_id[obj.id] = obj
            for old in (primary, other):
                for (a, b), links in list(self._links.items()):
                    if a != store.spec.name or old.id not in links:
                        continue
                    for target in links.pop(old.id):
                        back = self._links.get((b, a), {}).get(target, [])
                        if old.id in back:
                            back.remove(old.id)
                        self._link(a, obj.id, b, target)
                self._merged_into[(store.spec.name, old.id)] = obj.id
                old.archived_ms = now
                old.modified_ms = max(old.modified_ms, now)
                bisect.insort(store.archived, old.id)
            store.version += 1
            return str(obj.id)

    def merged_into(self, object_type: str, object_id: int) -> int | None:
        """The record a merged (archived) record became, following later merges; None if not merged."""
        name = self._store(object_type).spec.name
        found = self._merged_into.get((name, object_id))
        while found is not None and (name, found) in self._merged_into:
            found = self._merged_into[(name, found)]
        return found

    def count(self, object_type: str, *, archived: bool = False) -> int:
        """How many records of a type are live (or archived)."""
        with self._lock:
            store = self._store(object_type)
            return len(store.archived) if archived else len(store.ids) - len(store.archived)

    def ids(self, object_type: str, *, archived: bool = False) -> list[str]:
        """Ids of the live (or archived) records of a type, in id order."""
        with self._lock:
            store = self._store(object_type)
            gone = set(store.archived)
            return [str(i) for i in store.ids if (i in gone) == archived]

    def owner_ids(self, *, archived: bool = False) -> list[str]:
        """Ids of the live (or archived) owners, in id order."""
        with self._lock:
            return [o.id for o in self._owners.values() if o.archived == archived]

    def load(self, dataset: PortalDataset) -> None:
        """Bulk-load a generated dataset (owners, pipeline stages, records, associations)."""
        with self._lock, gc_paused():
            for owner in dataset.owners:
                self.add_owner(
                    email=owner.email,
                    first_name=owner.first_name,
                    last_name=owner.last_name,
                    teams=owner.teams,
                    user_id=owner.user_id,
                    archived=owner.archived,
                    owner_id=owner.id,
                    created_at=owner.created_at,
                )
            if dataset.pipeline_stages:
                self.set_pipeline_stages(dataset.pipeline_stages)
            for table in dataset.objects.values():
                self._load_rows(
                    table.object_type,
                    table.ids,
                    table.created_ms,
                    table.modified_ms,
                    table.columns,
                    table.archived_ms,
                )
            for table in dataset.objects.values():
                for to_type, targets in table.associations.items():
                    self._load_links(table.object_type, table.ids, to_type, targets)
            self.load_lists(dataset.lists)

    def _load_rows(
        self,
        object_type: str,
        ids: Sequence[int],
        created_ms: Sequence[int],
        modified_ms: Sequence[int],
        columns: Mapping[str, Sequence[Value]],
        archived_ms: Mapping[int, int],
    ) -> None:
        store = self._store(object_type)
        if not ids:
            return
        for name in columns:
            if name not in store.kinds:
                store.add_column(name)
        n = len(ids)
        value_columns: list[Iterable[Value]] = [
            columns[name] if name in columns else itertools.repeat(None, n)
            for name in store.columns
        ]
        rows = list(
            map(
                Record,
                ids,
                created_ms,
                modified_ms,
                itertools.repeat(None, n),
                zip(*value_columns, strict=True),
            )
        )
        for row, at in archived_ms.items():
            rows[row].archived_ms = at
        if store.ids and ids[0] <= store.ids[-1]:
            clash = set(ids).intersection(store.by_id)
            if clash:
                raise ValueError(f"{store.spec.name}: ids already present, e.g. {min(clash)}")
        store.rows.extend(rows)
        if any(a >= b for a, b in itertools.pairwise(ids)) or (
            store.ids and ids[0] < store.ids[-1]
        ):
            store.rows.sort(key=attrgetter("id"))
            store.ids = [o.id for o in store.rows]
        else:
            store.ids.extend(ids)
        store.by_id.update(zip(ids, rows, strict=True))
        store.archived = sorted([*store.archived, *(ids[row] for row in archived_ms)])
        store.next_id = max(store.next_id, store.ids[-1] + 1)
        store.version += 1

    def _load_links(
        self, from_type: str, ids: Sequence[int], to_type: str, targets: Sequence[int]
    ) -> None:
        """Associate row i of ``ids`` with ``targets[i]`` (0: none), both ways."""
        a, b = self._store(from_type).spec.name, self._store(to_type).spec.name
        forward = self._links.setdefault((a, b), {})
        backward = self._links.setdefault((b, a), {})
        # A generated table has at most one target per row and type, so no pair repeats
        # unless the records were associated before; only then is a membership test needed.
        fresh = not forward and not backward
        for from_id, to_id in zip(ids, targets, strict=True):
            if not to_id:
                continue
            fwd = forward.get(from_id)
            if fwd is None:
                forward[from_id] = [to_id]
            elif fresh or to_id not in fwd:
                fwd.append(to_id)
            else:
                continue
            back = backward.get(to_id)
            if back is None:
                backward[to_id] = [from_id]
            else:
                back.append(from_id)

    def _link(self, a: str, a_id: int, b: str, b_id: int) -> None:
        forward = self._links.setdefault((a, b), {}).setdefault(a_id, [])
        if b_id not in forward:
            forward.append(b_id)
            self._links.setdefault((b, a), {}).setdefault(b_id, []).append(a_id)

    def _linked(self, from_type: str, from_id: int, to_type: str) -> list[int]:
        """Live records of ``to_type`` associated with a record, in id order."""
        targets = self._links.get((from_type, to_type), {}).get(from_id, ())
        store = self._stores[to_type]
        return sorted(t for t in targets if store.live(t) is not None)
