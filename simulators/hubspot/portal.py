"""A simulated HubSpot portal: in-memory CRM state served in HubSpot's own wire format.

``iskpi demo`` syncs from it through the real HubSpot connector (hubspot-api-client
pointed at it with ``HubSpot(access_token=..., host=url)``), and the connector tests use
it as their test double. It is strict where HubSpot is strict, because a fake that
accepts what the real API rejects is a bug in the fake: limits over the maximum, unknown
filter properties, more than one sort, paging past the search cap of 10,000 results and
more than five searches a second are all refused with HubSpot's error bodies.

What is served (shapes from HubSpot's documentation; the tests pin them):

- ``GET  /crm/v3/owners/``, ``/crm/v3/owners/{ownerId}``
- ``GET  /crm/v3/objects/{objectType}`` (list, ordered by id, ``after`` = next id),
  ``/crm/v3/objects/{objectType}/{objectId}``, ``POST .../batch/read``
- ``POST /crm/v3/objects/{objectType}/search``
- ``POST /crm/v3/objects/contacts/merge`` (``primaryObjectId``, ``objectIdToMerge``): as HubSpot
  merges contacts today, a new contact with a new id and ``hs_merged_object_ids`` listing both;
  both originals archived, their associations moved to it, the associated records unchanged; a
  GET of an original id answers the new contact
- ``POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read``
- ``GET  /crm/v3/pipelines/deals[/{pipelineId}[/stages]]``
- ``POST /crm/v3/lists/search``, ``GET /crm/v3/lists/{listId}``, ``GET
  /crm/v3/lists/{listId}/memberships/join-order`` (simulators/hubspot/lists.py; scope
  ``crm.lists.read``)
- ``POST /crm/v3/objects/{objectType}/batch/update`` (at most 100 inputs; a batch with any
  invalid property value is refused whole with 400 VALIDATION_ERROR "Property values were not
  valid", missing or refused records come back as 207 multi-status ``errors``)
- ``GET/POST /crm/v3/properties/{objectType}``, ``GET .../{propertyName}``, ``POST
  .../batch/read``, ``GET/POST .../groups``, ``GET .../groups/{groupName}`` (custom properties
  and groups; 409 OBJECT_ALREADY_EXISTS; a property's group must exist)

The ``users`` object (0-115) holds one record per active owner's user (``hs_internal_user_id`` =
the owner's ``userId``). ``missing_scopes`` simulates a private app without some scopes: the
users object needs ``crm.objects.users.read``/``.write``, property definitions
``crm.schemas.<type>.read``/``.write``, and a request without one answers 403 MISSING_SCOPES
naming it. ``write_log`` records every request to a write endpoint (refused ones too), so
tests can assert that a dry run sent none.

Property values are stored compactly (datetimes as epoch milliseconds) and rendered as
HubSpot renders them: every value a string, datetimes as ``2024-01-17T19:55:04.281Z``.

Sources: developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm (search:
default 10 / max 200 a page, one sort, 5 groups x 6 filters, 18 in all, 10,000-result
cap, 5 requests/s, archived records never returned, ``after`` an integer offset);
.../crm/owners/guide (owners); .../crm/associations/associate-records/batch/
get-associations (v4 batch read, ``paging`` only when more); the usage guidelines
(X-HubSpot-RateLimit-* headers; 429 bodies with ``errorType`` RATE_LIMIT and
``policyName`` TEN_SECONDLY_ROLLING, SECONDLY or DAILY).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from simulators.hubspot.search import compile_groups, compile_sort, match
from simulators.hubspot.store import ObjectStore, Owner, PortalStore, Record
from simulators.hubspot.wire import (
    ASSOCIATION_BATCH_MAX,
    ASSOCIATION_PAGE,
    ASSOCIATION_TYPE_IDS,
    BATCH_READ_MAX,
    BATCH_WRITE_MAX,
    LIST_LIMIT_DEFAULT,
    LIST_LIMIT_MAX,
    MERGEABLE_TYPES,
    OBJECT_TYPES,
    OWNERS_LIMIT_DEFAULT,
    OWNERS_LIMIT_MAX,
    PROPERTY_NAME,
    PROPERTY_TYPES,
    READ_ONLY_PROPERTIES,
    SEARCH_LIMIT_DEFAULT,
    SEARCH_LIMIT_MAX,
    SEARCH_RESULT_CAP,
    ApiError,
    as_number,
    canonical_object_type,
    inputs_in,
    iso_ms,
    not_found,
    parse_after,
    parse_bool,
    parse_datetime_value,
    parse_limit,
    unknown_type,
)
from simulators.server import RunningServer, bind_socket, start_server


@dataclass
class FaultPlan:
    """Failures the portal injects; tests set the fields, the portal counts requests per plan."""

    rate_limit_every: int | None = None  # every Nth request answers 429 (TEN_SECONDLY_ROLLING) ...
    # ... for this long after the first one (None: forever)
    rate_limit_for_seconds: float | None = None
    server_error_every: int | None = None  # every Nth request answers 502, 503, 500 in turn
    server_error_burst: int = 0  # the next N requests answer 503, then normal
    delay_seconds: float = 0.0  # sleep before answering (to provoke client timeouts)
    delay_every: int | None = None  # apply the delay on every Nth request only (None: all)
    fail_auth: bool = False  # answer 401 to everything (an expired token)
    # (object_type, id) -> property overrides served as they are, e.g. {"hs_timestamp": "x"}
    # (any JSON value: null, a number, an object, a megabyte of text)
    malformed: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # Hostile payloads: each record of a list or search page, as JSON, passes through this
    # (object_type, record) -> the records served in its place ([] drops it, two duplicate it).
    rewrite: Callable[[str, dict[str, Any]], list[dict[str, Any]]] | None = None
    # Write requests (batch update, property creation): let ``write_fault_after`` through, then
    # answer ``write_fault_status`` (429 TEN_SECONDLY_ROLLING, or a 5xx) ``write_fault_times``
    # times (None: every later write).
    write_fault_after: int | None = None
    write_fault_status: int = 503
    write_fault_times: int | None = None
    # Record id -> a validation message: batch updates fail that record (207 multi-status).
    reject_records: dict[str, str] = field(default_factory=dict)
    injected: int = field(default=0, init=False)  # fault answers served so far (429, 5xx, 401)
    _seen: int = field(default=0, init=False, repr=False)
    _writes: int = field(default=0, init=False, repr=False)
    _rate_limited_since: float | None = field(default=None, init=False, repr=False)
    _server_errors: int = field(default=0, init=False, repr=False)


@dataclass
class _Call:
    """One parsed HTTP request, as the handlers see it."""

    method: str
    path: str
    params: dict[str, str]
    query: list[tuple[str, str]]
    body: Any
    base_url: str

    def first(self, name: str) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return None

    def many(self, name: str) -> list[str]:
        """A repeated and/or comma-separated query parameter, in order."""
        out: list[str] = []
        for key, value in self.query:
            if key == name:
                out.extend(part.strip() for part in value.split(",") if part.strip())
        return out


# ---------------------------------------------------------------------------------------
# The portal
# ---------------------------------------------------------------------------------------


class HubSpotPortal(PortalStore):
    """In-memory portal served over HTTP: the store, plus faults, rate limits, scopes, logs."""

    def __init__(
        self,
        access_token: str = "demo-token",
        *,
        clock: Callable[[], datetime] | None = None,
        enforce_search_rate_limit: bool = True,
        enforce_burst_limit: bool = False,
    ) -> None:
        super().__init__(clock=clock)
        self.access_token = access_token
        # Search allows 5 requests a second per portal; a real client must pace or back off.
        self.enforce_search_rate_limit = enforce_search_rate_limit
        self.search_requests_per_second = 5
        # Private apps on Professional/Enterprise: 190 requests per 10 s (docs/sync.md). Off by
        # default, since honouring it makes a million-record first sync take minutes.
        self.enforce_burst_limit = enforce_burst_limit
        self.burst_limit = 190
        self.burst_interval_ms = 10_000
        self.daily_limit = 1_000_000
        self.faults = FaultPlan()
        self.request_log: list[tuple[str, str]] = []
        self._burst_window: deque[float] = deque()
        self._search_window: deque[float] = deque()
        self._daily_used = 0
        self._search_cache: dict[tuple[str, str, int], list[Record]] = {}
        self._app: ASGIApp | None = None
        # Scopes the private app was not granted: requests that need one answer 403
        # MISSING_SCOPES. Records need crm.objects.<type>.read/.write, property definitions
        # crm.schemas.<type>.read/.write.
        self.missing_scopes: set[str] = set()
        # Every request to a write endpoint, refused ones too: (kind, "METHOD path", inputs or 1),
        # kind "records" (batch update) or "schema" (property groups and properties).
        self.write_log: list[tuple[str, str, int]] = []

    def get(self, object_type: str, object_id: str) -> dict[str, str]:
        """A record's properties as HubSpot would serve them (values present only)."""
        with self._lock:
            store = self._store(object_type)
            obj = store.by_id.get(int(object_id))
            if obj is None:
                raise ValueError(f"no {store.spec.singular} {object_id}")
            props = self._render(store, obj, sorted(store.kinds))
            return {k: v for k, v in props.items() if v is not None}

    # -- Rendering ----------------------------------------------------------------------

    def _render(
        self, store: ObjectStore, obj: Record, names: Sequence[str]
    ) -> dict[str, str | None]:
        props: dict[str, str | None] = {}
        for name in names:
            raw = store.raw_getter(name)(obj)
            if raw is None:
                props[name] = None
            elif isinstance(raw, int):
                props[name] = iso_ms(raw)
            else:
                props[name] = raw
        overrides = self.faults.malformed.get((store.spec.name, str(obj.id)))
        if overrides:
            props.update(overrides)
        return props

    def _served(self, store: ObjectStore, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A page's records as served: through the fault plan's ``rewrite``, when set."""
        rewrite = self.faults.rewrite
        if rewrite is None:
            return results
        return [out for result in results for out in rewrite(store.spec.name, result)]

    def _property_names(self, store: ObjectStore, requested: Sequence[str]) -> list[str]:
        """The properties HubSpot returns: the defaults, or the asked-for ones plus the basics."""
        spec = store.spec
        if not requested:
            return sorted(name for name in spec.default_properties if name in store.kinds)
        wanted = {spec.created_property, spec.modified_property, "hs_object_id"}
        wanted.update(name for name in requested if name in store.kinds)
        return sorted(wanted)

    def _object_json(
        self,
        store: ObjectStore,
        obj: Record,
        names: Sequence[str],
        associations: Sequence[str] = (),
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": str(obj.id),
            "properties": self._render(store, obj, names),
            "createdAt": iso_ms(obj.created_ms),
            "updatedAt": iso_ms(obj.modified_ms),
            "archived": obj.archived_ms is not None,
        }
        if obj.archived_ms is not None:
            out["archivedAt"] = iso_ms(obj.archived_ms)
        linked: dict[str, Any] = {}
        for to_type in associations:
            targets = self._linked(store.spec.name, obj.id, to_type)
            if targets:
                label = f"{store.spec.association_name}_to_{OBJECT_TYPES[to_type].association_name}"
                linked[to_type] = {"results": [{"id": str(t), "type": label} for t in targets]}
        if linked:
            out["associations"] = linked
        return out

    # -- HTTP handlers ------------------------------------------------------------------

    def _http_store(self, name: str) -> ObjectStore:
        canonical = canonical_object_type(name)
        if canonical is None:
            raise unknown_type(name)
        return self._stores[canonical]

    def _association_types(self, call: _Call) -> list[str]:
        out: list[str] = []
        for name in call.many("associations"):
            canonical = canonical_object_type(name)
            if canonical is None:
                raise unknown_type(name)
            if canonical not in out:
                out.append(canonical)
        return out

    def _owner_json(self, owner: Owner) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": owner.id,
            "email": owner.email,
            "type": "PERSON",
            "firstName": owner.first_name,
            "lastName": owner.last_name,
        }
        if not owner.archived:
            # A deactivated user keeps only the "including inactive" id.
            out["userId"] = owner.user_id
        out["userIdIncludingInactive"] = owner.user_id
        out["createdAt"] = iso_ms(owner.created_ms)
        out["updatedAt"] = iso_ms(owner.updated_ms)
        out["archived"] = owner.archived
        if owner.teams:
            out["teams"] = [{"id": t, "name": n, "primary": p} for t, n, p in owner.teams]
        return out

    def _list_owners(self, call: _Call) -> tuple[int, Any]:
        limit = parse_limit(call.first("limit"), OWNERS_LIMIT_DEFAULT, OWNERS_LIMIT_MAX)
        after = parse_after(call.first("after"))
        archived = parse_bool(call.first("archived"), "archived")
        email = call.first("email")
        chosen: list[Owner] = []
        next_after: int | None = None
        for owner_id in self._owner_order[bisect.bisect_left(self._owner_order, after) :]:
            owner = self._owners[str(owner_id)]
            if owner.archived != archived:
                continue
            if email is not None and owner.email.lower() != email.lower():
                continue
            if len(chosen) == limit:
                next_after = owner_id
                break
            chosen.append(owner)
        body: dict[str, Any] = {"results": [self._owner_json(o) for o in chosen]}
        if next_after is not None:
            body["paging"] = {
                "next": {"after": str(next_after), "link": self._next_link(call, str(next_after))}
            }
        return 200, body

    def _get_owner(self, call: _Call) -> tuple[int, Any]:
        owner_id = call.params["ownerId"]
        archived = parse_bool(call.first("archived"), "archived")
        if call.first("idProperty") == "userId":
            found = [o for o in self._owners.values() if str(o.user_id) == owner_id]
            owner = found[0] if found else None
        else:
            owner = self._owners.get(owner_id)
        if owner is None or owner.archived != archived:
            raise not_found()
        return 200, self._owner_json(owner)

    def _next_link(self, call: _Call, after: str) -> str:
        params = [(k, v) for k, v in call.query if k != "after"] + [("after", after)]
        return f"{call.base_url}{call.path}?{urlencode(params)}"

    def _list_objects(self, call: _Call) -> tuple[int, Any]:
        store = self._http_store(call.params["objectType"])
        self._require_records(store, "read")
        limit = parse_limit(call.first("limit"), LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX)
        after = parse_after(call.first("after"))
        archived = parse_bool(call.first("archived"), "archived")
        associations = self._association_types(call)
        names = self._property_names(store, call.many("properties"))
        chosen: list[Record] = []
        next_id: int | None = None
        if archived:
            window = store.archived[bisect.bisect_left(store.archived, after) :][: limit + 1]
            chosen = [store.by_id[i] for i in window[:limit]]
            next_id = window[limit] if len(window) > limit else None
        else:
            rows = store.rows
            for pos in range(bisect.bisect_left(store.ids, after), len(rows)):
                obj = rows[pos]
                if obj.archived_ms is not None:
                    continue
                if len(chosen) == limit:
                    next_id = obj.id
                    break
                chosen.append(obj)
        body: dict[str, Any] = {
            "results": self._served(
                store, [self._object_json(store, o, names, associations) for o in chosen]
            )
        }
        if next_id is not None:
            body["paging"] = {
                "next": {"after": str(next_id), "link": self._next_link(call, str(next_id))}
            }
        return 200, body

    def _get_object(self, call: _Call) -> tuple[int, Any]:
        store = self._http_store(call.params["objectType"])
        self._require_records(store, "read")
        archived = parse_bool(call.first("archived"), "archived")
        try:
            obj = store.by_id.get(int(call.params["objectId"]))
        except ValueError:
            obj = None
        if obj is not None and obj.archived_ms is not None and not archived:
            # A merged record's id answers the record it became.
            into = self.merged_into(store.spec.name, obj.id)
            obj = store.live(into) if into is not None else obj
        if obj is None or (obj.archived_ms is not None) != archived:
            raise not_found()
        names = self._property_names(store, call.many("properties"))
        return 200, self._object_json(store, obj, names, self._association_types(call))

    def _merge_objects(self, call: _Call) -> tuple[int, Any]:
        store = self._http_store(call.params["objectType"])
        self._require_records(store, "write")
        body = call.body if isinstance(call.body, dict) else {}
        primary, other = body.get("primaryObjectId"), body.get("objectIdToMerge")
        if not isinstance(primary, str | int) or not isinstance(other, str | int):
            raise ApiError(
                400, "Invalid input JSON: primaryObjectId and objectIdToMerge are required"
            )
        if store.spec.name not in MERGEABLE_TYPES:
            raise ApiError(400, f"Merging {store.spec.name} is not supported by this portal")
        if str(primary) == str(other):
            raise ApiError(400, "Cannot merge an object with itself")
        for raw in (primary, other):
            if not str(raw).isdigit() or store.live(int(str(raw))) is None:
                raise not_found()
        new_id = self.merge(store.spec.name, str(primary), str(other))
        obj = store.by_id[int(new_id)]
        return 200, self._object_json(store, obj, self._property_names(store, []))

    def _batch_read_objects(self, call: _Call) -> tuple[int, Any]:
        store = self._http_store(call.params["objectType"])
        self._require_records(store, "read")
        body = call.body if isinstance(call.body, dict) else {}
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not 1 <= len(inputs) <= BATCH_READ_MAX:
            raise ApiError(400, f"inputs must hold between 1 and {BATCH_READ_MAX} objects")
        archived = parse_bool(call.first("archived"), "archived")
        requested = body.get("properties") or []
        names = self._property_names(store, [str(p) for p in requested])
        started = self._now_ms()
        results: list[dict[str, Any]] = []
        missing: list[str] = []
        for item in inputs:
            raw_id = str(item.get("id")) if isinstance(item, dict) else ""
            obj = store.by_id.get(int(raw_id)) if raw_id.isdigit() else None
            if obj is None or (obj.archived_ms is not None) != archived:
                missing.append(raw_id)
            else:
                results.append(self._object_json(store, obj, names))
        out: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso_ms(started),
            "completedAt": iso_ms(self._now_ms()),
        }
        if not missing:
            return 200, out
        out["numErrors"] = 1
        out["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": (
                    f"Could not get some {store.spec.singular.upper()} objects, they may be "
                    "deleted or not exist. Check that ids are valid."
                ),
                "context": {"ids": missing},
                "errors": [],
                "links": {},
            }
        ]
        return 207, out

    # -- Scopes -------------------------------------------------------------------------

    def _require(self, scope: str) -> None:
        if scope in self.missing_scopes:
            raise ApiError(
                403,
                "This app hasn't been granted all required scopes to make this call. Read more "
                "about required scopes here: https://developers.hubspot.com/scopes.",
                "MISSING_SCOPES",
                errors=[
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": [scope]},
                    }
                ],
                links={"scopes": "https://developers.hubspot.com/scopes"},
            )

    def _require_records(self, store: ObjectStore, access: str) -> None:
        # Scopes are simulated for the users object (write-back's); the sync's objects are
        # read through the scopes the connector documents and are not checked here.
        if store.spec.name == "users":
            self._require(f"crm.objects.users.{access}")

    # -- Properties API -----------------------------------------------------------------

    def _property_json(self, store: ObjectStore, name: str) -> dict[str, Any]:
        custom = self._custom_properties[store.spec.name].get(name)
        if custom is not None:
            return custom
        kind = store.kinds[name]
        field_type = {
            "datetime": "date",
            "number": "number",
            "enumeration": "select",
            "bool": "booleancheckbox",
        }.get(kind, "text")
        return {
            "updatedAt": self._created_iso,
            "createdAt": self._created_iso,
            "name": name,
            "label": name.removeprefix("hs_").replace("_", " ").capitalize(),
            "type": kind,
            "fieldType": field_type,
            "description": "",
            "groupName": f"{store.spec.singular}information",
            "options": [],
            "displayOrder": -1,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": False,
            "hidden": False,
            "hubspotDefined": True,
            "modificationMetadata": {
                "archivable": False,
                "readOnlyDefinition": True,
                "readOnlyValue": name in READ_ONLY_PROPERTIES,
            },
            "formField": False,
            "archived": False,
        }

    def _property_store(self, call: _Call, access: str) -> ObjectStore:
        store = self._http_store(call.params["objectType"])
        self._require(f"crm.schemas.{store.spec.name}.{access}")
        return store

    def _list_properties(self, call: _Call) -> tuple[int, Any]:
        store = self._property_store(call, "read")
        return 200, {"results": [self._property_json(store, n) for n in sorted(store.kinds)]}

    def _get_property(self, call: _Call) -> tuple[int, Any]:
        store = self._property_store(call, "read")
        name = call.params["propertyName"]
        if name not in store.kinds:
            raise ApiError(
                404,
                f"Unable to find property {name} on object type {store.spec.type_id}",
                "OBJECT_NOT_FOUND",
            )
        return 200, self._property_json(store, name)

    def _batch_read_properties(self, call: _Call) -> tuple[int, Any]:
        store = self._property_store(call, "read")
        body = call.body if isinstance(call.body, dict) else {}
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise ApiError(400, 'inputs must be a non-empty list of {"name": ...}')
        started = self._now_ms()
        results, missing = [], []
        for item in inputs:
            name = str(item.get("name")) if isinstance(item, dict) else ""
            if name in store.kinds:
                results.append(self._property_json(store, name))
            else:
                missing.append(name)
        out: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso_ms(started),
            "completedAt": iso_ms(self._now_ms()),
        }
        if not missing:
            return 200, out
        out["numErrors"] = len(missing)
        out["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": f"Unable to find property {name} on object type {store.spec.type_id}",
                "context": {"properties": [name]},
                "errors": [],
                "links": {},
            }
            for name in missing
        ]
        return 207, out

    def _create_property(self, call: _Call) -> tuple[int, Any]:
        store = self._property_store(call, "write")
        body = call.body if isinstance(call.body, dict) else None
        if body is None:
            raise ApiError(400, "Invalid input JSON: the request body must be a JSON object")
        missing = [
            k
            for k in ("name", "label", "type", "fieldType", "groupName")
            if not isinstance(body.get(k), str) or not body.get(k)
        ]
        if missing:
            raise ApiError(
                400, f"Property definition is missing required fields: {', '.join(missing)}"
            )
        name, type_, field_type = body["name"], body["type"], body["fieldType"]
        if not PROPERTY_NAME.match(name):
            raise ApiError(
                400,
                f"Property name {name!r} must start with a lowercase letter and "
                "hold only lowercase letters, digits and underscores",
            )
        if type_ not in PROPERTY_TYPES:
            raise ApiError(
                400, f"Invalid property type {type_!r}: one of {', '.join(PROPERTY_TYPES)}"
            )
        if field_type not in PROPERTY_TYPES[type_]:
            raise ApiError(400, f"fieldType {field_type!r} is not valid for a {type_} property")
        if name in store.kinds:
            raise ApiError(
                409, f"A property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS"
            )
        if body["groupName"] not in self._groups[store.spec.name]:
            raise ApiError(
                400,
                f"property group {body['groupName']} does not exist for "
                f"object type {store.spec.type_id}",
            )
        return 201, self._define_property(store, body)

    def _list_groups(self, call: _Call) -> tuple[int, Any]:
        store = self._property_store(call, "read")
        return 200, {"results": list(self._groups[store.spec.name].values())}

    def _get_group(self, call: _Call) -> tuple[int, Any]:
        store = self._property_store(call, "read")
        group = self._groups[store.spec.name].get(call.params["groupName"])
        if group is None:
            raise ApiError(
                404, f"Unable to find property group {call.params['groupName']}", "OBJECT_NOT_FOUND"
            )
        return 200, group

    def _create_group(self, call: _Call) -> tuple[int, Any]:
        store = self._property_store(call, "write")
        body = call.body if isinstance(call.body, dict) else {}
        name, label = body.get("name"), body.get("label")
        if not isinstance(name, str) or not PROPERTY_NAME.match(name) or not label:
            raise ApiError(
                400,
                "A property group needs a name (lowercase letters, digits, "
                "underscores) and a label",
            )
        if name in self._groups[store.spec.name]:
            raise ApiError(
                409, f"A property group named '{name}' already exists.", "OBJECT_ALREADY_EXISTS"
            )
        group = {
            "name": name,
            "label": str(label),
            "displayOrder": int(body.get("displayOrder") or -1),
            "archived": False,
        }
        self._groups[store.spec.name][name] = group
        return 201, group

    # -- Batch update -------------------------------------------------------------------

    def _batch_update(self, call: _Call) -> tuple[int, Any]:
        store = self._http_store(call.params["objectType"])
        self._require_records(store, "write")
        body = call.body if isinstance(call.body, dict) else {}
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not 1 <= len(inputs) <= BATCH_WRITE_MAX:
            raise ApiError(400, f"inputs must hold between 1 and {BATCH_WRITE_MAX} objects")
        problems: list[dict[str, Any]] = []
        for item in inputs:
            if (
                not isinstance(item, dict)
                or item.get("id") is None
                or not isinstance(item.get("properties"), dict)
            ):
                raise ApiError(400, "Invalid input JSON: each input needs an id and properties")
            if item.get("idProperty") is not None:
                raise ApiError(
                    400,
                    f"Unable to perform update/upsert by non-unique "
                    f"{store.spec.type_id} property {item['idProperty']}",
                )
            for name, value in item["properties"].items():
                problem = self._invalid_value(store, str(name), value)
                if problem is not None:
                    problems.append(problem)
        if problems:
            # HubSpot refuses the whole batch when any property value is invalid.
            raise ApiError(
                400,
                "Property values were not valid: " + json.dumps(problems, separators=(",", ":")),
            )
        started = self._now_ms()
        results: list[dict[str, Any]] = []
        missing: list[str] = []
        rejected: list[tuple[str, str]] = []
        for item in inputs:
            raw_id = str(item["id"])
            obj = store.live(int(raw_id)) if raw_id.isdigit() else None
            if obj is None:
                missing.append(raw_id)
                continue
            reason = self.faults.reject_records.get(raw_id)
            if reason is not None:
                rejected.append((raw_id, reason))
                continue
            properties = {
                str(k): "" if v is None else str(v).strip() for k, v in item["properties"].items()
            }
            values = list(obj.values)
            self._write(store, values, properties)
            obj.values = tuple(values)
            obj.modified_ms = self._now_ms()
            store.version += 1
            results.append(
                self._object_json(store, obj, self._property_names(store, list(properties)))
            )
        out: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso_ms(started),
            "completedAt": iso_ms(self._now_ms()),
        }
        errors: list[dict[str, Any]] = []
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": (
                        f"Could not update some {store.spec.singular.upper()} objects, they "
                        "may be deleted or not exist. Check that ids are valid."
                    ),
                    "context": {"ids": missing},
                    "errors": [],
                    "links": {},
                }
            )
        for raw_id, reason in rejected:
            errors.append(
                {
                    "status": "error",
                    "category": "VALIDATION_ERROR",
                    "message": reason,
                    "context": {"ids": [raw_id]},
                    "errors": [],
                    "links": {},
                }
            )
        if not errors:
            return 200, out
        out["numErrors"] = len(errors)
        out["errors"] = errors
        return 207, out

    def _invalid_value(self, store: ObjectStore, name: str, value: Any) -> dict[str, Any] | None:
        def problem(message: str, error: str) -> dict[str, Any]:
            return {
                "isValid": False,
                "message": message,
                "error": error,
                "name": name,
                "localizedErrorMessage": message,
            }

        kind = store.kinds.get(name)
        if kind is None:
            return problem(f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST")
        if name in READ_ONLY_PROPERTIES or name in (
            store.spec.created_property,
            store.spec.modified_property,
        ):
            return problem(
                f'"{name}" is a read only property; its value cannot be set.', "READ_ONLY_VALUE"
            )
        if value is None or (isinstance(value, str) and value == ""):
            return None
        if isinstance(value, dict | list):
            return problem(f"{json.dumps(value)} is not a valid value", "INVALID_VALUE")
        text = str(value)
        if kind == "number" and (
            text != text.strip() or as_number(text) is None or not math.isfinite(float(text))
        ):
            return problem(f"{text} was not a valid number.", "INVALID_FLOAT")
        if kind == "datetime" and parse_datetime_value(text) is None:
            return problem(f"{text} was not a valid long.", "INVALID_LONG")
        return None

    # -- Search -------------------------------------------------------------------------

    def _search(self, call: _Call) -> tuple[int, Any]:
        store = self._http_store(call.params["objectType"])
        self._require_records(store, "read")
        body = call.body
        if not isinstance(body, dict):
            raise ApiError(400, "Invalid input JSON: the request body must be a JSON object")
        limit = parse_limit(body.get("limit"), SEARCH_LIMIT_DEFAULT, SEARCH_LIMIT_MAX)
        after = parse_after(body.get("after"))
        if after + limit > SEARCH_RESULT_CAP:
            raise ApiError(
                400,
                f"Search results are limited to {SEARCH_RESULT_CAP} results: cannot page to "
                f"after={after} with limit={limit}. Narrow the query with filters.",
            )
        groups = compile_groups(store, body.get("filterGroups"))
        sort_key = compile_sort(store, body.get("sorts"))
        query = body.get("query")
        if query is not None and not isinstance(query, str):
            raise ApiError(400, "query must be a string")
        requested = body.get("properties") or []
        if not isinstance(requested, list):
            raise ApiError(400, "properties must be a list of property names")
        names = self._property_names(store, [str(p) for p in requested])

        cache_key = (
            store.spec.name,
            json.dumps([body.get("filterGroups"), body.get("sorts"), query], sort_keys=True),
            store.version,
        )
        matched = self._search_cache.get(cache_key)
        if matched is None:
            matched = match(store, groups, query)
            if sort_key is not None:
                key, descending = sort_key
                matched.sort(key=key, reverse=descending)
            if len(self._search_cache) >= 16:
                self._search_cache.pop(next(iter(self._search_cache)))
            self._search_cache[cache_key] = matched
        page = matched[after : after + limit]
        out: dict[str, Any] = {
            "total": len(matched),
            "results": self._served(store, [self._object_json(store, o, names) for o in page]),
        }
        if after + limit < len(matched):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return 200, out

    # -- Associations and pipelines -------------------------------------------------------

    def _association_batch(self, call: _Call) -> tuple[int, Any]:
        from_store = self._http_store(call.params["fromObjectType"])
        to_store = self._http_store(call.params["toObjectType"])
        body = call.body if isinstance(call.body, dict) else {}
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not 1 <= len(inputs) <= ASSOCIATION_BATCH_MAX:
            raise ApiError(400, f"inputs must hold between 1 and {ASSOCIATION_BATCH_MAX} objects")
        a, b = from_store.spec.name, to_store.spec.name
        type_id = ASSOCIATION_TYPE_IDS.get((a, b))
        started = self._now_ms()
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for item in inputs:
            if not isinstance(item, dict) or item.get("id") is None:
                raise ApiError(400, "each input needs an id")
            raw_id = str(item["id"])
            offset = parse_after(item.get("after"))
            obj = from_store.live(int(raw_id)) if raw_id.isdigit() else None
            targets = self._linked(a, obj.id, b) if obj is not None and type_id else []
            if not targets:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                        "message": (
                            f"No {to_store.spec.singular} is associated with "
                            f"{from_store.spec.singular} {raw_id}."
                        ),
                        "context": {
                            "fromObjectId": [raw_id],
                            "fromObjectType": [from_store.spec.singular],
                            "toObjectType": [to_store.spec.singular],
                        },
                        "errors": [],
                        "links": {},
                    }
                )
                continue
            page = targets[offset : offset + ASSOCIATION_PAGE]
            result: dict[str, Any] = {
                "from": {"id": raw_id},
                "to": [
                    {
                        "toObjectId": t,
                        "associationTypes": [
                            {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}
                        ],
                    }
                    for t in page
                ],
            }
            if offset + ASSOCIATION_PAGE < len(targets):
                result["paging"] = {"next": {"after": str(offset + ASSOCIATION_PAGE)}}
            results.append(result)
        out: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso_ms(started),
            "completedAt": iso_ms(self._now_ms()),
        }
        if not errors:
            return 200, out
        out["numErrors"] = len(errors)
        out["errors"] = errors
        return 207, out

    def _pipeline_json(self) -> dict[str, Any]:
        stages = [
            {
                "label": label,
                "displayOrder": order,
                "metadata": {
                    "isClosed": "true" if closed else "false",
                    "probability": repr(probability),
                },
                "id": stage_id,
                "createdAt": iso_ms(self._pipeline_created_ms),
                "updatedAt": iso_ms(self._stages_updated_ms),
                "archived": False,
                "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
            }
            for order, (stage_id, label, probability, closed, _won) in enumerate(self._stages)
        ]
        return {
            "label": "Sales Pipeline",
            "displayOrder": 0,
            "id": "default",
            "stages": stages,
            "createdAt": iso_ms(self._pipeline_created_ms),
            "updatedAt": iso_ms(self._stages_updated_ms),
            "archived": False,
        }

    def _pipelines(self, call: _Call) -> tuple[int, Any]:
        store = self._http_store(call.params["objectType"])
        if store.spec.name != "deals":
            raise ApiError(400, f"Object type {store.spec.name} does not support pipelines")
        pipeline_id = call.params.get("pipelineId")
        if pipeline_id is None:
            return 200, {"results": [self._pipeline_json()]}
        if pipeline_id != "default":
            raise not_found()
        pipeline = self._pipeline_json()
        if call.path.rstrip("/").endswith("/stages"):
            return 200, {"results": pipeline["stages"]}
        return 200, pipeline

    # -- Lists API v3 ---------------------------------------------------------------------

    def _search_lists(self, call: _Call) -> tuple[int, Any]:
        self._require("crm.lists.read")
        return 200, self.search_lists(call.body)

    def _get_list(self, call: _Call) -> tuple[int, Any]:
        self._require("crm.lists.read")
        return 200, self.get_list(call.params["listId"])

    def _list_join_order(self, call: _Call) -> tuple[int, Any]:
        self._require("crm.lists.read")
        body = self.join_order(call.params["listId"], call.first("after"), call.first("limit"))
        nxt = (body.get("paging") or {}).get("next")
        if nxt:
            nxt["link"] = self._next_link(call, nxt["after"])
        return 200, body

    def _unknown_route(self, call: _Call) -> tuple[int, Any]:
        raise not_found()

    # -- The HTTP pipeline: log, delay, auth, faults, limits, answer -------------------------

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self._daily_used)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.burst_interval_ms),
            "X-HubSpot-RateLimit-Max": str(self.burst_limit),
            "X-HubSpot-RateLimit-Remaining": str(
                max(0, self.burst_limit - len(self._burst_window))
            ),
        }

    @staticmethod
    def _rate_limited(message: str, policy: str) -> dict[str, Any]:
        return {
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "requestId": uuid.uuid4().hex,
        }

    def _answer(
        self,
        request: Request,
        raw: bytes,
        handler: Callable[[_Call], tuple[int, Any]],
        search: bool,
        plan: FaultPlan,
        seen: int,
        write: str | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        """Status, body (JSON-able, or str for a gateway page) and headers of one request."""
        correlation = {"X-HubSpot-Correlation-Id": str(uuid.uuid4())}
        if plan.fail_auth:
            plan.injected += 1
            return (
                401,
                {
                    "status": "error",
                    "message": "The OAuth token used to make this call expired 1 hour(s) ago.",
                    "correlationId": correlation["X-HubSpot-Correlation-Id"],
                    "category": "EXPIRED_AUTHENTICATION",
                },
                correlation,
            )
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.access_token:
            return (
                401,
                {
                    "status": "error",
                    "message": (
                        "Authentication credentials not found. This API supports OAuth 2.0 "
                        "authentication and you can find more details at "
                        "https://developers.hubspot.com/docs/methods/auth/oauth-overview"
                    ),
                    "correlationId": correlation["X-HubSpot-Correlation-Id"],
                    "category": "INVALID_AUTHENTICATION",
                },
                correlation,
            )

        now = time.monotonic()
        window = self._burst_window
        while window and now - window[0] >= self.burst_interval_ms / 1000:
            window.popleft()
        self._daily_used += 1
        headers = {**correlation, **self._rate_headers()}

        if plan.server_error_burst > 0:
            plan.server_error_burst -= 1
            plan.injected += 1
            return 503, "Service Unavailable", headers
        if plan.server_error_every and seen % plan.server_error_every == 0:
            status = (502, 503, 500)[plan._server_errors % 3]
            plan._server_errors += 1
            plan.injected += 1
            if status == 500:
                return (
                    500,
                    {
                        "status": "error",
                        "message": "internal error",
                        "correlationId": headers["X-HubSpot-Correlation-Id"],
                    },
                    headers,
                )
            return status, "Bad Gateway" if status == 502 else "Service Unavailable", headers
        if plan.rate_limit_every and seen % plan.rate_limit_every == 0:
            if plan._rate_limited_since is None:
                plan._rate_limited_since = now
            still = (
                plan.rate_limit_for_seconds is None
                or now - plan._rate_limited_since < plan.rate_limit_for_seconds
            )
            if still:
                plan.injected += 1
                headers["X-HubSpot-RateLimit-Remaining"] = "0"
                return (
                    429,
                    self._rate_limited(
                        "You have reached your ten_secondly_rolling limit.", "TEN_SECONDLY_ROLLING"
                    ),
                    headers,
                )
        if write is not None and plan.write_fault_after is not None:
            plan._writes += 1
            if plan._writes > plan.write_fault_after and plan.write_fault_times != 0:
                if plan.write_fault_times is not None:
                    plan.write_fault_times -= 1
                plan.injected += 1
                if plan.write_fault_status == 429:
                    headers["X-HubSpot-RateLimit-Remaining"] = "0"
                    return (
                        429,
                        self._rate_limited(
                            "You have reached your ten_secondly_rolling limit.",
                            "TEN_SECONDLY_ROLLING",
                        ),
                        headers,
                    )
                return plan.write_fault_status, "Service Unavailable", headers
        if self._daily_used > self.daily_limit:
            return 429, self._rate_limited("You have reached your daily limit.", "DAILY"), headers
        if self.enforce_burst_limit and len(window) >= self.burst_limit:
            headers["X-HubSpot-RateLimit-Remaining"] = "0"
            return (
                429,
                self._rate_limited(
                    "You have reached your ten_secondly_rolling limit.", "TEN_SECONDLY_ROLLING"
                ),
                headers,
            )
        window.append(now)
        headers["X-HubSpot-RateLimit-Remaining"] = str(max(0, self.burst_limit - len(window)))
        if search:
            searches = self._search_window
            while searches and now - searches[0] >= 1.0:
                searches.popleft()
            if self.enforce_search_rate_limit and len(searches) >= self.search_requests_per_second:
                return (
                    429,
                    self._rate_limited("You have reached your secondly limit.", "SECONDLY"),
                    headers,
                )
            searches.append(now)

        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                err = ApiError(400, "Invalid input JSON: the request body is not valid JSON")
                return err.status, err.body(), headers
        call = _Call(
            method=request.method,
            path=request.url.path,
            params={k: str(v) for k, v in request.path_params.items()},
            query=list(request.query_params.multi_items()),
            body=body,
            base_url=str(request.base_url).rstrip("/"),
        )
        try:
            status, payload = handler(call)
        except ApiError as err:
            return err.status, err.body(), headers
        return status, payload, headers

    async def _serve(
        self,
        request: Request,
        handler: Callable[[_Call], tuple[int, Any]],
        search: bool,
        write: str | None = None,
    ) -> Response:
        raw = await request.body()
        with self._lock:
            self.request_log.append((request.method, request.url.path))
            if write is not None:
                self.write_log.append(
                    (
                        write,
                        f"{request.method} {request.url.path}",
                        inputs_in(raw) if write == "records" else 1,
                    )
                )
            plan = self.faults
            plan._seen += 1
            seen = plan._seen
        if plan.delay_seconds > 0 and (not plan.delay_every or seen % plan.delay_every == 0):
            await asyncio.sleep(plan.delay_seconds)
        with self._lock:
            status, payload, headers = self._answer(
                request, raw, handler, search, plan, seen, write
            )
        if isinstance(payload, str):
            return Response(payload, status_code=status, headers=headers, media_type="text/html")
        headers["Content-Type"] = "application/json;charset=utf-8"
        return Response(
            json.dumps(payload, separators=(",", ":")), status_code=status, headers=headers
        )

    def _endpoint(
        self,
        handler: Callable[[_Call], tuple[int, Any]],
        *,
        search: bool = False,
        write: str | None = None,
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._serve(request, handler, search, write)

        return endpoint

    def asgi_app(self) -> ASGIApp:
        """The portal as an ASGI application (Starlette)."""
        if self._app is None:
            ep = self._endpoint
            all_methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
            self._app = Starlette(
                routes=[
                    Route("/crm/v3/owners", ep(self._list_owners), methods=["GET"]),
                    Route("/crm/v3/owners/", ep(self._list_owners), methods=["GET"]),
                    Route("/crm/v3/owners/{ownerId}", ep(self._get_owner), methods=["GET"]),
                    Route(
                        "/crm/v3/objects/{objectType}/search",
                        ep(self._search, search=True),
                        methods=["POST"],
                    ),
                    Route(
                        "/crm/v3/objects/{objectType}/batch/read",
                        ep(self._batch_read_objects),
                        methods=["POST"],
                    ),
                    Route(
                        "/crm/v3/objects/{objectType}/batch/update",
                        ep(self._batch_update, write="records"),
                        methods=["POST"],
                    ),
                    Route(
                        "/crm/v3/objects/{objectType}/merge",
                        ep(self._merge_objects, write="records"),
                        methods=["POST"],
                    ),
                    Route(
                        "/crm/v3/properties/{objectType}/groups",
                        ep(self._list_groups),
                        methods=["GET"],
                    ),
                    Route(
                        "/crm/v3/properties/{objectType}/groups",
                        ep(self._create_group, write="schema"),
                        methods=["POST"],
                    ),
                    Route(
                        "/crm/v3/properties/{objectType}/groups/{groupName}",
                        ep(self._get_group),
                        methods=["GET"],
                    ),
                    Route(
                        "/crm/v3/properties/{objectType}/batch/read",
                        ep(self._batch_read_properties),
                        methods=["POST"],
                    ),
                    Route(
                        "/crm/v3/properties/{objectType}",
                        ep(self._list_properties),
                        methods=["GET"],
                    ),
                    Route(
                        "/crm/v3/properties/{objectType}",
                        ep(self._create_property, write="schema"),
                        methods=["POST"],
                    ),
                    Route(
                        "/crm/v3/properties/{objectType}/{propertyName}",
                        ep(self._get_property),
                        methods=["GET"],
                    ),
                    Route("/crm/v3/objects/{objectType}", ep(self._list_objects), methods=["GET"]),
                    Route(
                        "/crm/v3/objects/{objectType}/{objectId}",
                        ep(self._get_object),
                        methods=["GET"],
                    ),
                    Route(
                        "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read",
                        ep(self._association_batch),
                        methods=["POST"],
                    ),
                    Route("/crm/v3/pipelines/{objectType}", ep(self._pipelines), methods=["GET"]),
                    Route(
                        "/crm/v3/pipelines/{objectType}/{pipelineId}",
                        ep(self._pipelines),
                        methods=["GET"],
                    ),
                    Route(
                        "/crm/v3/pipelines/{objectType}/{pipelineId}/stages",
                        ep(self._pipelines),
                        methods=["GET"],
                    ),
                    Route("/crm/v3/lists/search", ep(self._search_lists), methods=["POST"]),
                    Route(
                        "/crm/v3/lists/{listId}/memberships/join-order",
                        ep(self._list_join_order),
                        methods=["GET"],
                    ),
                    Route("/crm/v3/lists/{listId}", ep(self._get_list), methods=["GET"]),
                    Route("/{path:path}", ep(self._unknown_route), methods=all_methods),
                ]
            )
        return self._app


# ---------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------


class RunningPortal(RunningServer):
    """A portal served by uvicorn in a daemon thread; a context manager that stops it."""

    def __init__(
        self, portal: HubSpotPortal, server: uvicorn.Server, thread: threading.Thread, url: str
    ) -> None:
        super().__init__(server, thread, url)
        self.portal = portal


def serve_portal(portal: HubSpotPortal, *, host: str = "127.0.0.1", port: int = 0) -> RunningPortal:
    """Serve the portal over plain HTTP; returns once it accepts connections."""
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    server, thread = start_server(
        portal.asgi_app(), sock, name="hubspot-portal", label="HubSpot portal"
    )
    return RunningPortal(portal, server, thread, f"http://{host}:{bound_port}")
