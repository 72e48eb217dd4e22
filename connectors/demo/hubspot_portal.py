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
- ``POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read``
- ``GET  /crm/v3/pipelines/deals[/{pipelineId}[/stages]]``
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
import gc
import itertools
import json
import math
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

if TYPE_CHECKING:
    from connectors.demo.dataset import PortalDataset

PropertyKind = Literal["datetime", "number", "enumeration", "string", "bool"]
# A stored property value: HubSpot's string, or epoch milliseconds for a datetime property.
Value = str | int | None

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The default deal pipeline of a new portal: (stage id, label, probability, closed, won).
DEFAULT_DEAL_STAGES: tuple[tuple[str, str, float, bool, bool], ...] = (
    ("appointmentscheduled", "Appointment Scheduled", 0.2, False, False),
    ("qualifiedtobuy", "Qualified To Buy", 0.4, False, False),
    ("presentationscheduled", "Presentation Scheduled", 0.6, False, False),
    ("decisionmakerboughtin", "Decision Maker Bought-In", 0.8, False, False),
    ("contractsent", "Contract Sent", 0.9, False, False),
    ("closedwon", "Closed Won", 1.0, True, True),
    ("closedlost", "Closed Lost", 0.0, True, False),
)

LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 10, 100
OWNERS_LIMIT_DEFAULT, OWNERS_LIMIT_MAX = 100, 500
SEARCH_LIMIT_DEFAULT, SEARCH_LIMIT_MAX = 10, 200
SEARCH_RESULT_CAP = 10_000
SEARCH_MAX_GROUPS, SEARCH_MAX_FILTERS_PER_GROUP, SEARCH_MAX_FILTERS = 5, 6, 18
BATCH_READ_MAX = 100
ASSOCIATION_BATCH_MAX = 1_000
ASSOCIATION_PAGE = 500

FILTER_OPERATORS = frozenset(
    {
        "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN",
        "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
    }
)


@dataclass(frozen=True)
class ObjectTypeSpec:
    """One CRM object type as HubSpot defines it."""

    name: str  # the plural API name, e.g. "calls"
    singular: str
    type_id: str  # e.g. "0-48"
    association_name: str  # as in the v3 association type label "meeting_event_to_contact"
    created_property: str
    modified_property: str
    first_id: int  # where this portal starts numbering the type
    default_properties: tuple[str, ...]  # returned when no ``properties`` are asked for
    searchable: tuple[str, ...]  # searched by the free-text ``query``
    properties: tuple[tuple[str, PropertyKind], ...]  # stored properties (virtual ones excluded)


_ENGAGEMENT_DEFAULTS = ("hs_createdate", "hs_lastmodifieddate", "hs_object_id")

OBJECT_TYPES: dict[str, ObjectTypeSpec] = {
    spec.name: spec
    for spec in (
        ObjectTypeSpec(
            "contacts", "contact", "0-1", "contact", "createdate", "lastmodifieddate", 100_001,
            ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
            ("firstname", "lastname", "email", "phone", "company"),
            (
                ("firstname", "string"), ("lastname", "string"), ("email", "string"),
                ("company", "string"), ("phone", "string"), ("jobtitle", "string"),
                ("hs_analytics_source", "enumeration"), ("industry", "string"),
                ("numemployees", "enumeration"), ("lifecyclestage", "enumeration"),
                ("hs_lifecyclestage_salesqualifiedlead_date", "datetime"),
                ("hs_lead_status", "enumeration"), ("hubspotscore", "number"),
                ("hubspot_owner_id", "enumeration"),
            ),
        ),
        ObjectTypeSpec(
            "deals", "deal", "0-3", "deal", "createdate", "hs_lastmodifieddate", 500_001,
            (
                "amount", "closedate", "createdate", "dealname", "dealstage",
                "hs_lastmodifieddate", "hs_object_id", "pipeline",
            ),
            ("dealname", "pipeline", "dealstage", "description", "dealtype"),
            (
                ("dealname", "string"), ("amount", "number"), ("closedate", "datetime"),
                ("dealstage", "enumeration"), ("pipeline", "enumeration"),
                ("dealtype", "enumeration"), ("description", "string"),
                ("hs_is_closed", "bool"), ("hs_is_closed_won", "bool"),
                ("hs_deal_stage_probability", "number"), ("hubspot_owner_id", "enumeration"),
                ("is_rep_owner_id", "enumeration"), ("bant_budget", "string"),
                ("bant_authority", "string"), ("bant_need", "string"), ("bant_timing", "string"),
                ("handoff_rating", "number"),
            ),
        ),
        ObjectTypeSpec(
            "calls", "call", "0-48", "call", "hs_createdate", "hs_lastmodifieddate", 10_000_001,
            _ENGAGEMENT_DEFAULTS,
            ("hs_call_title", "hs_body_preview"),
            (
                ("hs_timestamp", "datetime"), ("hs_call_title", "string"),
                ("hs_body_preview", "string"), ("hs_call_direction", "enumeration"),
                ("hs_call_disposition", "enumeration"), ("hs_call_status", "enumeration"),
                ("hs_call_duration", "number"), ("hubspot_owner_id", "enumeration"),
                ("hs_call_to_number", "string"), ("hs_call_from_number", "string"),
            ),
        ),
        ObjectTypeSpec(
            "emails", "email", "0-49", "email", "hs_createdate", "hs_lastmodifieddate", 30_000_001,
            _ENGAGEMENT_DEFAULTS,
            ("hs_email_subject",),
            (
                ("hs_timestamp", "datetime"), ("hs_email_subject", "string"),
                ("hs_email_direction", "enumeration"), ("hs_email_status", "enumeration"),
                ("hs_email_open_count", "number"), ("hs_email_click_count", "number"),
                ("hs_email_reply_count", "number"), ("hubspot_owner_id", "enumeration"),
            ),
        ),
        ObjectTypeSpec(
            "meetings", "meeting", "0-47", "meeting_event", "hs_createdate", "hs_lastmodifieddate",
            50_000_001,
            _ENGAGEMENT_DEFAULTS,
            ("hs_meeting_title", "hs_meeting_body"),
            (
                ("hs_timestamp", "datetime"), ("hs_meeting_title", "string"),
                ("hs_meeting_body", "string"), ("hs_meeting_start_time", "datetime"),
                ("hs_meeting_end_time", "datetime"), ("hs_meeting_outcome", "enumeration"),
                ("hubspot_owner_id", "enumeration"),
            ),
        ),
        ObjectTypeSpec(
            "tasks", "task", "0-27", "task", "hs_createdate", "hs_lastmodifieddate", 70_000_001,
            _ENGAGEMENT_DEFAULTS,
            ("hs_task_body", "hs_task_subject"),
            (
                ("hs_timestamp", "datetime"), ("hs_task_subject", "string"),
                ("hs_task_body", "string"), ("hs_task_status", "enumeration"),
                ("hs_task_type", "enumeration"), ("hs_task_priority", "enumeration"),
                ("hs_task_completion_date", "datetime"), ("hubspot_owner_id", "enumeration"),
            ),
        ),
        # The users object: one record per user of the portal (an owner's ``userId`` is its
        # ``hs_internal_user_id``). Custom properties are created through the properties API.
        ObjectTypeSpec(
            "users", "user", "0-115", "user", "hs_createdate", "hs_lastmodifieddate", 90_000_001,
            _ENGAGEMENT_DEFAULTS,
            ("hs_email", "hs_given_name", "hs_family_name"),
            (
                ("hs_internal_user_id", "number"), ("hs_email", "string"),
                ("hs_given_name", "string"), ("hs_family_name", "string"),
                ("hs_job_title", "string"), ("hs_additional_phone", "string"),
                ("hs_availability_status", "enumeration"),
                ("hs_standard_time_zone", "enumeration"),
            ),
        ),
    )
}

# Properties a client may read but never write (HubSpot answers READ_ONLY_VALUE).
READ_ONLY_PROPERTIES = frozenset({
    "hs_object_id", "hs_createdate", "hs_lastmodifieddate", "createdate", "lastmodifieddate",
    "hs_internal_user_id", "hs_is_closed", "hs_is_closed_won", "hs_deal_stage_probability",
})
PROPERTY_TYPES: dict[str, tuple[str, ...]] = {  # type → the fieldTypes it may be shown as
    "string": ("text", "textarea", "phonenumber", "html", "file"),
    "number": ("number", "calculation_equation"),
    "datetime": ("date",),
    "date": ("date",),
    "enumeration": ("select", "radio", "checkbox", "booleancheckbox", "calculation_equation"),
    "bool": ("booleancheckbox",),
}
BATCH_WRITE_MAX = 100
_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

_TYPE_ALIASES: dict[str, str] = {
    alias: spec.name
    for spec in OBJECT_TYPES.values()
    for alias in (spec.name, spec.singular, spec.type_id)
}

# HubSpot-defined association type ids (v4 ``typeId``), one per direction.
ASSOCIATION_TYPE_IDS: dict[tuple[str, str], int] = {
    ("deals", "contacts"): 3, ("contacts", "deals"): 4,
    ("contacts", "calls"): 193, ("calls", "contacts"): 194,
    ("contacts", "emails"): 197, ("emails", "contacts"): 198,
    ("contacts", "meetings"): 199, ("meetings", "contacts"): 200,
    ("contacts", "tasks"): 203, ("tasks", "contacts"): 204,
    ("deals", "calls"): 205, ("calls", "deals"): 206,
    ("deals", "emails"): 209, ("emails", "deals"): 210,
    ("deals", "meetings"): 211, ("meetings", "deals"): 212,
    ("deals", "tasks"): 215, ("tasks", "deals"): 216,
}


def canonical_object_type(name: str) -> str | None:
    """The plural API name for a type name, singular, or object type id; None if unknown."""
    return _TYPE_ALIASES.get(name.lower() if not name.startswith("0-") else name)


# ---------------------------------------------------------------------------------------
# Time and value helpers
# ---------------------------------------------------------------------------------------


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(milliseconds=1)


def iso_ms(ms: int) -> str:
    """HubSpot's rendering of a datetime: ``2024-01-17T19:55:04.281Z``."""
    moment = EPOCH + timedelta(milliseconds=ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


_DIGITS = re.compile(r"-?\d+")


def parse_datetime_value(text: str) -> int | None:
    """Epoch millis from epoch-millis digits, an ISO datetime or an ISO date; None if neither."""
    text = text.strip()
    if _DIGITS.fullmatch(text):
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return to_ms(moment)


def _as_number(value: Value) -> float | None:
    if value is None or isinstance(value, int):
        return None
    try:
        return float(value)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------


class _Obj:
    """One stored record; ``values`` follows its type's column order."""

    __slots__ = ("id", "created_ms", "modified_ms", "archived_ms", "values")

    def __init__(
        self, id: int, created_ms: int, modified_ms: int, archived_ms: int | None,
        values: tuple[Value, ...],
    ) -> None:
        self.id = id
        self.created_ms = created_ms
        self.modified_ms = modified_ms
        self.archived_ms = archived_ms
        self.values = values


class _Store:
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
        self.rows: list[_Obj] = []
        self.by_id: dict[int, _Obj] = {}
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

    def raw_getter(self, name: str) -> Callable[[_Obj], Value]:
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

    def live(self, obj_id: int) -> _Obj | None:
        obj = self.by_id.get(obj_id)
        return obj if obj is not None and obj.archived_ms is None else None


@dataclass
class _Owner:
    id: str
    email: str
    first_name: str
    last_name: str
    user_id: int
    teams: list[tuple[str, str, bool]]
    created_ms: int
    updated_ms: int
    archived: bool


@dataclass
class FaultPlan:
    """Failures the portal injects; tests set the fields, the portal counts requests per plan."""

    rate_limit_every: int | None = None  # every Nth request answers 429 (TEN_SECONDLY_ROLLING) ...
    rate_limit_for_seconds: float | None = None  # ... for this long after the first one (None: forever)
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


class _ApiError(Exception):
    def __init__(
        self, status: int, message: str, category: str | None = "VALIDATION_ERROR",
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category
        self.extra = extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": "error", "message": self.message, "correlationId": str(uuid.uuid4()),
        }
        if self.category is not None:
            out["category"] = self.category
        out.update(self.extra)
        return out


def _not_found() -> _ApiError:
    return _ApiError(404, "resource not found", "OBJECT_NOT_FOUND")


def _unknown_type(name: str) -> _ApiError:
    # HubSpot answers an unknown object type with 400 and no category.
    return _ApiError(400, f"Unable to infer object type from: {name}", None)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while millions of acyclic records are built (3x faster loads)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _inputs_in(raw: bytes) -> int:
    """How many inputs a batch request body holds (0 when it is not one)."""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return 0
    inputs = body.get("inputs") if isinstance(body, dict) else None
    return len(inputs) if isinstance(inputs, list) else 0


def _parse_bool(text: str | None, name: str) -> bool:
    if text is None:
        return False
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise _ApiError(400, f"Invalid value for query parameter '{name}': {text}")


def _parse_limit(raw: object, default: int, maximum: int) -> int:
    if raw is None:
        return default
    try:
        limit = int(str(raw))
    except ValueError:
        raise _ApiError(400, f"Invalid limit: {raw!r} is not an integer") from None
    if not 1 <= limit <= maximum:
        raise _ApiError(400, f"limit must be between 1 and {maximum}, got {limit}")
    return limit


def _parse_after(raw: object) -> int:
    """A cursor: this portal's cursors are integers (the next id, or a search offset)."""
    if raw is None or raw == "":
        return 0
    try:
        after = int(str(raw))
    except ValueError:
        raise _ApiError(400, f"Invalid paging cursor 'after': {raw!r}") from None
    if after < 0:
        raise _ApiError(400, f"Invalid paging cursor 'after': {raw!r}")
    return after


# ---------------------------------------------------------------------------------------
# The portal
# ---------------------------------------------------------------------------------------


class HubSpotPortal:
    """In-memory portal: objects, owners, pipelines, faults, request log."""

    def __init__(
        self,
        access_token: str = "demo-token",
        *,
        clock: Callable[[], datetime] | None = None,
        enforce_search_rate_limit: bool = True,
        enforce_burst_limit: bool = False,
    ) -> None:
        self.access_token = access_token
        self._clock = clock or (lambda: datetime.now(UTC))
        # Search allows 5 requests a second per portal; a real client must pace or back off.
        self.enforce_search_rate_limit = enforce_search_rate_limit
        self.search_requests_per_second = 5
        # Private apps on Professional/Enterprise: 190 requests per 10 s (SPEC §8). Off by
        # default, since honouring it makes a million-record first sync take minutes.
        self.enforce_burst_limit = enforce_burst_limit
        self.burst_limit = 190
        self.burst_interval_ms = 10_000
        self.daily_limit = 1_000_000
        self.faults = FaultPlan()
        self.request_log: list[tuple[str, str]] = []
        self._lock = threading.RLock()
        self._stores: dict[str, _Store] = {name: _Store(spec) for name, spec in OBJECT_TYPES.items()}
        self._links: dict[tuple[str, str], dict[int, list[int]]] = {}
        self._owners: dict[str, _Owner] = {}
        self._owner_order: list[int] = []
        self._next_owner_id = 41_000_001
        self._next_user_id = 9_000_001
        created = to_ms(self._clock())
        self._pipeline_created_ms = created
        self._stages: list[tuple[str, str, float, bool, bool]] = list(DEFAULT_DEAL_STAGES)
        self._stages_updated_ms = created
        self._burst_window: deque[float] = deque()
        self._search_window: deque[float] = deque()
        self._daily_used = 0
        self._search_cache: dict[tuple[str, str, int], list[_Obj]] = {}
        self._app: ASGIApp | None = None
        # Scopes the private app was not granted: requests that need one answer 403
        # MISSING_SCOPES. Records need crm.objects.<type>.read/.write, property definitions
        # crm.schemas.<type>.read/.write.
        self.missing_scopes: set[str] = set()
        # Every request to a write endpoint, refused ones too: (kind, "METHOD path", inputs or 1),
        # kind "records" (batch update) or "schema" (property groups and properties).
        self.write_log: list[tuple[str, str, int]] = []
        created_iso = iso_ms(created)
        self._created_iso = created_iso
        # Property definitions created through the API, and property groups, per object type.
        self._custom_properties: dict[str, dict[str, dict[str, Any]]] = {
            name: {} for name in OBJECT_TYPES}
        self._groups: dict[str, dict[str, dict[str, Any]]] = {
            spec.name: {f"{spec.singular}information": {
                "name": f"{spec.singular}information",
                "label": f"{spec.singular.capitalize()} information",
                "displayOrder": -1, "archived": False}}
            for spec in OBJECT_TYPES.values()
        }

    # -- Python API: building the portal's state ------------------------------------------

    def _now_ms(self) -> int:
        return to_ms(self._clock())

    def _store(self, object_type: str) -> _Store:
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
            self._owners[owner_id] = _Owner(
                owner_id, email, first_name, last_name, user_id, list(teams), created, created,
                archived,
            )
            bisect.insort(self._owner_order, int(owner_id))
            if not archived:
                # The owner's user, as the users object has it (hs_internal_user_id = userId).
                self.create("users", {
                    "hs_internal_user_id": str(user_id), "hs_email": email,
                    "hs_given_name": first_name, "hs_family_name": last_name,
                })
            return owner_id

    def user_record_id(self, user_id: int | str) -> str | None:
        """The users-object record id of a user (by its hs_internal_user_id), if any."""
        with self._lock:
            store = self._stores["users"]
            idx = store.index["hs_internal_user_id"]
            for obj in store.rows:
                if obj.archived_ms is None and idx < len(obj.values) \
                        and obj.values[idx] == str(user_id):
                    return str(obj.id)
            return None

    def create_property(
        self, object_type: str, name: str, *, type_: str = "number", group: str | None = None
    ) -> None:
        """Define a custom property (as creating one in the portal's settings does)."""
        with self._lock:
            store = self._store(object_type)
            group_name = group or f"{store.spec.singular}information"
            if group_name not in self._groups[store.spec.name]:
                self._groups[store.spec.name][group_name] = {
                    "name": group_name, "label": group_name, "displayOrder": -1,
                    "archived": False}
            self._define_property(store, {
                "name": name, "label": name, "type": type_,
                "fieldType": PROPERTY_TYPES[type_][0], "groupName": group_name})

    def _define_property(self, store: _Store, definition: dict[str, Any]) -> dict[str, Any]:
        now = iso_ms(self._now_ms())
        full = {
            "updatedAt": now, "createdAt": now, "name": definition["name"],
            "label": definition.get("label") or definition["name"],
            "type": definition["type"], "fieldType": definition["fieldType"],
            "description": definition.get("description") or "",
            "groupName": definition["groupName"], "options": definition.get("options") or [],
            "displayOrder": definition.get("displayOrder", -1), "calculated": False,
            "externalOptions": False, "hasUniqueValue": bool(definition.get("hasUniqueValue")),
            "hidden": bool(definition.get("hidden")), "hubspotDefined": False,
            "modificationMetadata": {"archivable": True, "readOnlyDefinition": False,
                                     "readOnlyValue": False},
            "formField": bool(definition.get("formField")), "archived": False,
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

    def _apply_deal_stage(self, store: _Store, values: list[Value]) -> None:
        """Keep HubSpot's calculated deal properties in step with the stage, as HubSpot does."""
        stage_id = values[store.index["dealstage"]]
        for sid, _label, probability, closed, won in self._stages:
            if sid == stage_id:
                values[store.index["hs_is_closed"]] = "true" if closed else "false"
                values[store.index["hs_is_closed_won"]] = "true" if closed and won else "false"
                values[store.index["hs_deal_stage_probability"]] = repr(probability)
                return

    def _write(self, store: _Store, values: list[Value], properties: Mapping[str, str]) -> None:
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
            obj = _Obj(store.next_id, created, modified, None, tuple(values))
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

    def get(self, object_type: str, object_id: str) -> dict[str, str]:
        """A record's properties as HubSpot would serve them (values present only)."""
        with self._lock:
            store = self._store(object_type)
            obj = store.by_id.get(int(object_id))
            if obj is None:
                raise ValueError(f"no {store.spec.singular} {object_id}")
            props = self._render(store, obj, sorted(store.kinds))
            return {k: v for k, v in props.items() if v is not None}

    def load(self, dataset: PortalDataset) -> None:
        """Bulk-load a generated dataset (owners, pipeline stages, records, associations)."""
        with self._lock, _gc_paused():
            for owner in dataset.owners:
                self.add_owner(
                    email=owner.email, first_name=owner.first_name, last_name=owner.last_name,
                    teams=owner.teams, user_id=owner.user_id, archived=owner.archived,
                    owner_id=owner.id, created_at=owner.created_at,
                )
            if dataset.pipeline_stages:
                self.set_pipeline_stages(dataset.pipeline_stages)
            for table in dataset.objects.values():
                self._load_rows(table.object_type, table.ids, table.created_ms, table.modified_ms,
                                table.columns, table.archived_ms)
            for table in dataset.objects.values():
                for to_type, targets in table.associations.items():
                    self._load_links(table.object_type, table.ids, to_type, targets)

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
        rows = list(map(_Obj, ids, created_ms, modified_ms, itertools.repeat(None, n),
                        zip(*value_columns, strict=True)))
        for row, at in archived_ms.items():
            rows[row].archived_ms = at
        if store.ids and ids[0] <= store.ids[-1]:
            clash = set(ids).intersection(store.by_id)
            if clash:
                raise ValueError(f"{store.spec.name}: ids already present, e.g. {min(clash)}")
        store.rows.extend(rows)
        if any(a >= b for a, b in itertools.pairwise(ids)) or (store.ids and ids[0] < store.ids[-1]):
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

    # -- Rendering ----------------------------------------------------------------------

    def _render(self, store: _Store, obj: _Obj, names: Sequence[str]) -> dict[str, str | None]:
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

    def _served(self, store: _Store, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A page's records as served: through the fault plan's ``rewrite``, when set."""
        rewrite = self.faults.rewrite
        if rewrite is None:
            return results
        return [out for result in results for out in rewrite(store.spec.name, result)]

    def _property_names(self, store: _Store, requested: Sequence[str]) -> list[str]:
        """The properties HubSpot returns: the defaults, or the asked-for ones plus the basics."""
        spec = store.spec
        if not requested:
            return sorted(name for name in spec.default_properties if name in store.kinds)
        wanted = {spec.created_property, spec.modified_property, "hs_object_id"}
        wanted.update(name for name in requested if name in store.kinds)
        return sorted(wanted)

    def _object_json(
        self,
        store: _Store,
        obj: _Obj,
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
                label = (f"{store.spec.association_name}_to_"
                         f"{OBJECT_TYPES[to_type].association_name}")
                linked[to_type] = {"results": [{"id": str(t), "type": label} for t in targets]}
        if linked:
            out["associations"] = linked
        return out

    # -- HTTP handlers ------------------------------------------------------------------

    def _http_store(self, name: str) -> _Store:
        canonical = canonical_object_type(name)
        if canonical is None:
            raise _unknown_type(name)
        return self._stores[canonical]

    def _association_types(self, call: _Call) -> list[str]:
        out: list[str] = []
        for name in call.many("associations"):
            canonical = canonical_object_type(name)
            if canonical is None:
                raise _unknown_type(name)
            if canonical not in out:
                out.append(canonical)
        return out

    def _owner_json(self, owner: _Owner) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": owner.id,
            "email": owner.email,
            "type": "PERSON",
            "firstName": owner.first_name,
            "lastName": owner.last_name,
        }
        if not owner.archived:
            out["userId"] = owner.user_id  # a deactivated user keeps only the "including inactive" id
        out["userIdIncludingInactive"] = owner.user_id
        out["createdAt"] = iso_ms(owner.created_ms)
        out["updatedAt"] = iso_ms(owner.updated_ms)
        out["archived"] = owner.archived
        if owner.teams:
            out["teams"] = [{"id": t, "name": n, "primary": p} for t, n, p in owner.teams]
        return out

    def _list_owners(self, call: _Call) -> tuple[int, Any]:
        limit = _parse_limit(call.first("limit"), OWNERS_LIMIT_DEFAULT, OWNERS_LIMIT_MAX)
        after = _parse_after(call.first("after"))
        archived = _parse_bool(call.first("archived"), "archived")
        email = call.first("email")
        chosen: list[_Owner] = []
        next_after: int | None = None
        for owner_id in self._owner_order[bisect.bisect_left(self._owner_order, after):]:
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
            body["paging"] = {"next": {"after": str(next_after),
                                       "link": self._next_link(call, str(next_after))}}
        return 200, body

    def _get_owner(self, call: _Call) -> tuple[int, Any]:
        owner_id = call.params["ownerId"]
        archived = _parse_bool(call.first("archived"), "archived")
        if call.first("idProperty") == "userId":
            found = [o for o in self._owners.values() if str(o.user_id) == owner_id]
            owner = found[0] if found else None
        else:
            owner = self._owners.get(owner_id)
        if owner is None or owner.archived != archived:
            raise _not_found()
        return 200, self._owner_json(owner)

    def _next_link(self, call: _Call, after: str) -> str:
        params = [(k, v) for k, v in call.query if k != "after"] + [("after", after)]
        return f"{call.base_url}{call.path}?{urlencode(params)}"

    def _list_objects(self, call: _Call) -> tuple[int, Any]:
        store = self._http_store(call.params["objectType"])
        self._require_records(store, "read")
        limit = _parse_limit(call.first("limit"), LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX)
        after = _parse_after(call.first("after"))
        archived = _parse_bool(call.first("archived"), "archived")
        associations = self._association_types(call)
        names = self._property_names(store, call.many("properties"))
        chosen: list[_Obj] = []
        next_id: int | None = None
        if archived:
            window = store.archived[bisect.bisect_left(store.archived, after):][: limit + 1]
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
            "results": self._served(store, [self._object_json(store, o, names, associations)
                                            for o in chosen])
        }
        if next_id is not None:
            body["paging"] = {"next": {"after": str(next_id),
                                       "link": self._next_link(call, str(next_id))}}
        return 200, body

    def _get_object(self, call: _Call) -> tuple[int, Any]:
        store = self._http_store(call.params["objectType"])
        self._require_records(store, "read")
        archived = _parse_bool(call.first("archived"), "archived")
        try:
            obj = store.by_id.get(int(call.params["objectId"]))
        except ValueError:
            obj = None
        if obj is None or (obj.archived_ms is not None) != archived:
            raise _not_found()
        names = self._property_names(store, call.many("properties"))
        return 200, self._object_json(store, obj, names, self._association_types(call))

    def _batch_read_objects(self, call: _Call) -> tuple[int, Any]:
        store = self._http_store(call.params["objectType"])
        self._require_records(store, "read")
        body = call.body if isinstance(call.body, dict) else {}
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not 1 <= len(inputs) <= BATCH_READ_MAX:
            raise _ApiError(400, f"inputs must hold between 1 and {BATCH_READ_MAX} objects")
        archived = _parse_bool(call.first("archived"), "archived")
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
            "status": "COMPLETE", "results": results,
            "startedAt": iso_ms(started), "completedAt": iso_ms(self._now_ms()),
        }
        if not missing:
            return 200, out
        out["numErrors"] = 1
        out["errors"] = [{
            "status": "error", "category": "OBJECT_NOT_FOUND",
            "message": (f"Could not get some {store.spec.singular.upper()} objects, they may be "
                        "deleted or not exist. Check that ids are valid."),
            "context": {"ids": missing}, "errors": [], "links": {},
        }]
        return 207, out


    # -- Scopes -------------------------------------------------------------------------

    def _require(self, scope: str) -> None:
        if scope in self.missing_scopes:
            raise _ApiError(
                403,
                "This app hasn't been granted all required scopes to make this call. Read more "
                "about required scopes here: https://developers.hubspot.com/scopes.",
                "MISSING_SCOPES",
                errors=[{"message": "One or more of the following scopes are required.",
                         "context": {"requiredGranularScopes": [scope]}}],
                links={"scopes": "https://developers.hubspot.com/scopes"},
            )

    def _require_records(self, store: _Store, access: str) -> None:
        # Scopes are simulated for the users object (write-back's); the sync's objects are
        # read through the scopes the connector documents and are not checked here.
        if store.spec.name == "users":
            self._require(f"crm.objects.users.{access}")

    # -- Properties API -----------------------------------------------------------------

    def _property_json(self, store: _Store, name: str) -> dict[str, Any]:
        custom = self._custom_properties[store.spec.name].get(name)
        if custom is not None:
            return custom
        kind = store.kinds[name]
        field_type = {"datetime": "date", "number": "number", "enumeration": "select",
                      "bool": "booleancheckbox"}.get(kind, "text")
        return {
            "updatedAt": self._created_iso, "createdAt": self._created_iso, "name": name,
            "label": name.removeprefix("hs_").replace("_", " ").capitalize(), "type": kind,
            "fieldType": field_type, "description": "",
            "groupName": f"{store.spec.singular}information", "options": [],
            "displayOrder": -1, "calculated": False, "externalOptions": False,
            "hasUniqueValue": False, "hidden": False, "hubspotDefined": True,
            "modificationMetadata": {"archivable": False, "readOnlyDefinition": True,
                                     "readOnlyValue": name in READ_ONLY_PROPERTIES},
            "formField": False, "archived": False,
        }

    def _property_store(self, call: _Call, access: str) -> _Store:
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
            raise _ApiError(404, f"Unable to find property {name} on object type "
                                 f"{store.spec.type_id}", "OBJECT_NOT_FOUND")
        return 200, self._property_json(store, name)

    def _batch_read_properties(self, call: _Call) -> tuple[int, Any]:
        store = self._property_store(call, "read")
        body = call.body if isinstance(call.body, dict) else {}
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise _ApiError(400, "inputs must be a non-empty list of {\"name\": ...}")
        started = self._now_ms()
        results, missing = [], []
        for item in inputs:
            name = str(item.get("name")) if isinstance(item, dict) else ""
            if name in store.kinds:
                results.append(self._property_json(store, name))
            else:
                missing.append(name)
        out: dict[str, Any] = {"status": "COMPLETE", "results": results,
                               "startedAt": iso_ms(started), "completedAt": iso_ms(self._now_ms())}
        if not missing:
            return 200, out
        out["numErrors"] = len(missing)
        out["errors"] = [{
            "status": "error", "category": "OBJECT_NOT_FOUND",
            "message": f"Unable to find property {name} on object type {store.spec.type_id}",
            "context": {"properties": [name]}, "errors": [], "links": {},
        } for name in missing]
        return 207, out

    def _create_property(self, call: _Call) -> tuple[int, Any]:
        store = self._property_store(call, "write")
        body = call.body if isinstance(call.body, dict) else None
        if body is None:
            raise _ApiError(400, "Invalid input JSON: the request body must be a JSON object")
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName")
                   if not isinstance(body.get(k), str) or not body.get(k)]
        if missing:
            raise _ApiError(400, f"Property definition is missing required fields: "
                                 f"{', '.join(missing)}")
        name, type_, field_type = body["name"], body["type"], body["fieldType"]
        if not _PROPERTY_NAME.match(name):
            raise _ApiError(400, f"Property name {name!r} must start with a lowercase letter and "
                                 "hold only lowercase letters, digits and underscores")
        if type_ not in PROPERTY_TYPES:
            raise _ApiError(400, f"Invalid property type {type_!r}: one of "
                                 f"{', '.join(PROPERTY_TYPES)}")
        if field_type not in PROPERTY_TYPES[type_]:
            raise _ApiError(400, f"fieldType {field_type!r} is not valid for a {type_} property")
        if name in store.kinds:
            raise _ApiError(409, f"A property named '{name}' already exists.",
                            "OBJECT_ALREADY_EXISTS")
        if body["groupName"] not in self._groups[store.spec.name]:
            raise _ApiError(400, f"property group {body['groupName']} does not exist for "
                                 f"object type {store.spec.type_id}")
        return 201, self._define_property(store, body)

    def _list_groups(self, call: _Call) -> tuple[int, Any]:
        store = self._property_store(call, "read")
        return 200, {"results": list(self._groups[store.spec.name].values())}

    def _get_group(self, call: _Call) -> tuple[int, Any]:
        store = self._property_store(call, "read")
        group = self._groups[store.spec.name].get(call.params["groupName"])
        if group is None:
            raise _ApiError(404, f"Unable to find property group {call.params['groupName']}",
                            "OBJECT_NOT_FOUND")
        return 200, group

    def _create_group(self, call: _Call) -> tuple[int, Any]:
        store = self._property_store(call, "write")
        body = call.body if isinstance(call.body, dict) else {}
        name, label = body.get("name"), body.get("label")
        if not isinstance(name, str) or not _PROPERTY_NAME.match(name) or not label:
            raise _ApiError(400, "A property group needs a name (lowercase letters, digits, "
                                 "underscores) and a label")
        if name in self._groups[store.spec.name]:
            raise _ApiError(409, f"A property group named '{name}' already exists.",
                            "OBJECT_ALREADY_EXISTS")
        group = {"name": name, "label": str(label),
                 "displayOrder": int(body.get("displayOrder") or -1), "archived": False}
        self._groups[store.spec.name][name] = group
        return 201, group

    # -- Batch update -------------------------------------------------------------------

    def _batch_update(self, call: _Call) -> tuple[int, Any]:
        store = self._http_store(call.params["objectType"])
        self._require_records(store, "write")
        body = call.body if isinstance(call.body, dict) else {}
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not 1 <= len(inputs) <= BATCH_WRITE_MAX:
            raise _ApiError(400, f"inputs must hold between 1 and {BATCH_WRITE_MAX} objects")
        problems: list[dict[str, Any]] = []
        for item in inputs:
            if not isinstance(item, dict) or item.get("id") is None \
                    or not isinstance(item.get("properties"), dict):
                raise _ApiError(400, "Invalid input JSON: each input needs an id and properties")
            if item.get("idProperty") is not None:
                raise _ApiError(400, f"Unable to perform update/upsert by non-unique "
                                     f"{store.spec.type_id} property {item['idProperty']}")
            for name, value in item["properties"].items():
                problem = self._invalid_value(store, str(name), value)
                if problem is not None:
                    problems.append(problem)
        if problems:
            # HubSpot refuses the whole batch when any property value is invalid.
            raise _ApiError(400, "Property values were not valid: "
                                 + json.dumps(problems, separators=(",", ":")))
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
            properties = {str(k): "" if v is None else str(v).strip()
                          for k, v in item["properties"].items()}
            values = list(obj.values)
            self._write(store, values, properties)
            obj.values = tuple(values)
            obj.modified_ms = self._now_ms()
            store.version += 1
            results.append(self._object_json(store, obj,
                                              self._property_names(store, list(properties))))
        out: dict[str, Any] = {"status": "COMPLETE", "results": results,
                               "startedAt": iso_ms(started), "completedAt": iso_ms(self._now_ms())}
        errors: list[dict[str, Any]] = []
        if missing:
            errors.append({
                "status": "error", "category": "OBJECT_NOT_FOUND",
                "message": (f"Could not update some {store.spec.singular.upper()} objects, they "
                            "may be deleted or not exist. Check that ids are valid."),
                "context": {"ids": missing}, "errors": [], "links": {}})
        for raw_id, reason in rejected:
            errors.append({"status": "error", "category": "VALIDATION_ERROR", "message": reason,
                           "context": {"ids": [raw_id]}, "errors": [], "links": {}})
        if not errors:
            return 200, out
        out["numErrors"] = len(errors)
        out["errors"] = errors
        return 207, out

    def _invalid_value(self, store: _Store, name: str, value: Any) -> dict[str, Any] | None:
        def problem(message: str, error: str) -> dict[str, Any]:
            return {"isValid": False, "message": message, "error": error, "name": name,
                    "localizedErrorMessage": message}

        kind = store.kinds.get(name)
        if kind is None:
            return problem(f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST")
        if name in READ_ONLY_PROPERTIES or name in (store.spec.created_property,
                                                     store.spec.modified_property):
            return problem(f'"{name}" is a read only property; its value cannot be set.',
                           "READ_ONLY_VALUE")
        if value is None or (isinstance(value, str) and value == ""):
            return None
        if isinstance(value, dict | list):
            return problem(f"{json.dumps(value)} is not a valid value", "INVALID_VALUE")
        text = str(value)
        if kind == "number" and (text != text.strip() or _as_number(text) is None
                                 or not math.isfinite(float(text))):
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
            raise _ApiError(400, "Invalid input JSON: the request body must be a JSON object")
        limit = _parse_limit(body.get("limit"), SEARCH_LIMIT_DEFAULT, SEARCH_LIMIT_MAX)
        after = _parse_after(body.get("after"))
        if after + limit > SEARCH_RESULT_CAP:
            raise _ApiError(
                400,
                f"Search results are limited to {SEARCH_RESULT_CAP} results: cannot page to "
                f"after={after} with limit={limit}. Narrow the query with filters.",
            )
        groups = self._compile_groups(store, body.get("filterGroups"))
        sort_key = self._compile_sorts(store, body.get("sorts"))
        query = body.get("query")
        if query is not None and not isinstance(query, str):
            raise _ApiError(400, "query must be a string")
        requested = body.get("properties") or []
        if not isinstance(requested, list):
            raise _ApiError(400, "properties must be a list of property names")
        names = self._property_names(store, [str(p) for p in requested])

        cache_key = (
            store.spec.name,
            json.dumps([body.get("filterGroups"), body.get("sorts"), query], sort_keys=True),
            store.version,
        )
        matched = self._search_cache.get(cache_key)
        if matched is None:
            matched = self._match(store, groups, query)
            if sort_key is not None:
                key, descending = sort_key
                matched.sort(key=key, reverse=descending)
            if len(self._search_cache) >= 16:
                self._search_cache.pop(next(iter(self._search_cache)))
            self._search_cache[cache_key] = matched
        page = matched[after: after + limit]
        out: dict[str, Any] = {
            "total": len(matched),
            "results": self._served(store, [self._object_json(store, o, names) for o in page]),
        }
        if after + limit < len(matched):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return 200, out

    def _match(
        self, store: _Store, groups: list[_Group], query: str | None
    ) -> list[_Obj]:
        rows = store.rows
        if len(groups) == 1 and groups[0].slot_range is not None and not query:
            slot, lo, hi = groups[0].slot_range
            if slot == "modified_ms":
                return [o for o in rows if o.archived_ms is None and lo <= o.modified_ms <= hi]
            return [o for o in rows if o.archived_ms is None and lo <= o.created_ms <= hi]
        live = [o for o in rows if o.archived_ms is None]
        if len(groups) == 1:
            test = groups[0].test
            live = [o for o in live if test(o)]
        elif groups:
            tests = [g.test for g in groups]
            live = [o for o in live if any(t(o) for t in tests)]
        if query:
            needle = query.lower().strip("*")
            getters = [store.raw_getter(n) for n in store.spec.searchable if n in store.kinds]

            def hit(o: _Obj) -> bool:
                for get in getters:
                    value = get(o)
                    if isinstance(value, str) and needle in value.lower():
                        return True
                return False

            live = [o for o in live if hit(o)]
        return live

    def _compile_groups(self, store: _Store, raw: object) -> list[_Group]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise _ApiError(400, "filterGroups must be a list")
        if len(raw) > SEARCH_MAX_GROUPS:
            raise _ApiError(400, f"Too many filterGroups: at most {SEARCH_MAX_GROUPS} are allowed")
        total = 0
        groups: list[_Group] = []
        for group in raw:
            filters = group.get("filters") if isinstance(group, dict) else None
            if not isinstance(filters, list):
                raise _ApiError(400, "each filterGroup needs a list of filters")
            if len(filters) > SEARCH_MAX_FILTERS_PER_GROUP:
                raise _ApiError(
                    400, f"Too many filters in a group: at most {SEARCH_MAX_FILTERS_PER_GROUP}"
                )
            total += len(filters)
            groups.append(_compile_group(store, filters))
        if total > SEARCH_MAX_FILTERS:
            raise _ApiError(400, f"Too many filters: at most {SEARCH_MAX_FILTERS} in all")
        return groups

    def _compile_sorts(
        self, store: _Store, raw: object
    ) -> tuple[Callable[[_Obj], tuple[int, Any]], bool] | None:
        if raw is None or raw == []:
            return None
        if not isinstance(raw, list):
            raise _ApiError(400, "sorts must be a list")
        if len(raw) > 1:
            raise _ApiError(400, "Only one sort is allowed per search")
        sort = raw[0]
        if not isinstance(sort, dict):
            # The client's model types sorts as list[str]; the API wants objects.
            raise _ApiError(
                400, f"Invalid sort {sort!r}: expected {{\"propertyName\": ..., \"direction\": ...}}"
            )
        name = sort.get("propertyName")
        direction = sort.get("direction", "ASCENDING")
        if direction not in ("ASCENDING", "DESCENDING"):
            raise _ApiError(400, f"Invalid sort direction {direction!r}")
        if not isinstance(name, str) or name not in store.kinds:
            raise _ApiError(400, f"Cannot sort on unknown property {name!r}",
                            errors=[{"message": f"Property {name!r} does not exist"}])
        normalize = _normalizer(store.kinds[name])
        get = store.raw_getter(name)

        def key(o: _Obj) -> tuple[int, Any]:
            value = normalize(get(o))
            return (0, 0) if value is None else (1, value)

        return key, direction == "DESCENDING"

    # -- Associations and pipelines -------------------------------------------------------

    def _association_batch(self, call: _Call) -> tuple[int, Any]:
        from_store = self._http_store(call.params["fromObjectType"])
        to_store = self._http_store(call.params["toObjectType"])
        body = call.body if isinstance(call.body, dict) else {}
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not 1 <= len(inputs) <= ASSOCIATION_BATCH_MAX:
            raise _ApiError(400, f"inputs must hold between 1 and {ASSOCIATION_BATCH_MAX} objects")
        a, b = from_store.spec.name, to_store.spec.name
        type_id = ASSOCIATION_TYPE_IDS.get((a, b))
        started = self._now_ms()
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for item in inputs:
            if not isinstance(item, dict) or item.get("id") is None:
                raise _ApiError(400, "each input needs an id")
            raw_id = str(item["id"])
            offset = _parse_after(item.get("after"))
            obj = from_store.live(int(raw_id)) if raw_id.isdigit() else None
            targets = self._linked(a, obj.id, b) if obj is not None and type_id else []
            if not targets:
                errors.append({
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    "message": (f"No {to_store.spec.singular} is associated with "
                                f"{from_store.spec.singular} {raw_id}."),
                    "context": {
                        "fromObjectId": [raw_id],
                        "fromObjectType": [from_store.spec.singular],
                        "toObjectType": [to_store.spec.singular],
                    },
                    "errors": [],
                    "links": {},
                })
                continue
            page = targets[offset: offset + ASSOCIATION_PAGE]
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
            "status": "COMPLETE", "results": results,
            "startedAt": iso_ms(started), "completedAt": iso_ms(self._now_ms()),
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
                "metadata": {"isClosed": "true" if closed else "false",
                             "probability": repr(probability)},
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
            raise _ApiError(400, f"Object type {store.spec.name} does not support pipelines")
        pipeline_id = call.params.get("pipelineId")
        if pipeline_id is None:
            return 200, {"results": [self._pipeline_json()]}
        if pipeline_id != "default":
            raise _not_found()
        pipeline = self._pipeline_json()
        if call.path.rstrip("/").endswith("/stages"):
            return 200, {"results": pipeline["stages"]}
        return 200, pipeline

    def _unknown_route(self, call: _Call) -> tuple[int, Any]:
        raise _not_found()

    # -- The HTTP pipeline: log, delay, auth, faults, limits, answer -------------------------

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self._daily_used)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.burst_interval_ms),
            "X-HubSpot-RateLimit-Max": str(self.burst_limit),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.burst_limit - len(self._burst_window))),
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
        self, request: Request, raw: bytes, handler: Callable[[_Call], tuple[int, Any]],
        search: bool, plan: FaultPlan, seen: int, write: str | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        """Status, body (JSON-able, or str for a gateway page) and headers of one request."""
        correlation = {"X-HubSpot-Correlation-Id": str(uuid.uuid4())}
        if plan.fail_auth:
            plan.injected += 1
            return 401, {
                "status": "error",
                "message": "The OAuth token used to make this call expired 1 hour(s) ago.",
                "correlationId": correlation["X-HubSpot-Correlation-Id"],
                "category": "EXPIRED_AUTHENTICATION",
            }, correlation
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.access_token:
            return 401, {
                "status": "error",
                "message": ("Authentication credentials not found. This API supports OAuth 2.0 "
                            "authentication and you can find more details at "
                            "https://developers.hubspot.com/docs/methods/auth/oauth-overview"),
                "correlationId": correlation["X-HubSpot-Correlation-Id"],
                "category": "INVALID_AUTHENTICATION",
            }, correlation

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
                return 500, {"status": "error", "message": "internal error",
                             "correlationId": headers["X-HubSpot-Correlation-Id"]}, headers
            return status, "Bad Gateway" if status == 502 else "Service Unavailable", headers
        if plan.rate_limit_every and seen % plan.rate_limit_every == 0:
            if plan._rate_limited_since is None:
                plan._rate_limited_since = now
            still = (plan.rate_limit_for_seconds is None
                     or now - plan._rate_limited_since < plan.rate_limit_for_seconds)
            if still:
                plan.injected += 1
                headers["X-HubSpot-RateLimit-Remaining"] = "0"
                return 429, self._rate_limited(
                    "You have reached your ten_secondly_rolling limit.", "TEN_SECONDLY_ROLLING"
                ), headers
        if write is not None and plan.write_fault_after is not None:
            plan._writes += 1
            if plan._writes > plan.write_fault_after and plan.write_fault_times != 0:
                if plan.write_fault_times is not None:
                    plan.write_fault_times -= 1
                plan.injected += 1
                if plan.write_fault_status == 429:
                    headers["X-HubSpot-RateLimit-Remaining"] = "0"
                    return 429, self._rate_limited(
                        "You have reached your ten_secondly_rolling limit.",
                        "TEN_SECONDLY_ROLLING"), headers
                return plan.write_fault_status, "Service Unavailable", headers
        if self._daily_used > self.daily_limit:
            return 429, self._rate_limited("You have reached your daily limit.", "DAILY"), headers
        if self.enforce_burst_limit and len(window) >= self.burst_limit:
            headers["X-HubSpot-RateLimit-Remaining"] = "0"
            return 429, self._rate_limited(
                "You have reached your ten_secondly_rolling limit.", "TEN_SECONDLY_ROLLING"
            ), headers
        window.append(now)
        headers["X-HubSpot-RateLimit-Remaining"] = str(max(0, self.burst_limit - len(window)))
        if search:
            searches = self._search_window
            while searches and now - searches[0] >= 1.0:
                searches.popleft()
            if self.enforce_search_rate_limit and len(searches) >= self.search_requests_per_second:
                return 429, self._rate_limited(
                    "You have reached your secondly limit.", "SECONDLY"
                ), headers
            searches.append(now)

        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                err = _ApiError(400, "Invalid input JSON: the request body is not valid JSON")
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
        except _ApiError as err:
            return err.status, err.body(), headers
        return status, payload, headers

    async def _serve(
        self, request: Request, handler: Callable[[_Call], tuple[int, Any]], search: bool,
        write: str | None = None,
    ) -> Response:
        raw = await request.body()
        with self._lock:
            self.request_log.append((request.method, request.url.path))
            if write is not None:
                self.write_log.append((write, f"{request.method} {request.url.path}",
                                       _inputs_in(raw) if write == "records" else 1))
            plan = self.faults
            plan._seen += 1
            seen = plan._seen
        if plan.delay_seconds > 0 and (not plan.delay_every or seen % plan.delay_every == 0):
            await asyncio.sleep(plan.delay_seconds)
        with self._lock:
            status, payload, headers = self._answer(request, raw, handler, search, plan, seen,
                                                    write)
        if isinstance(payload, str):
            return Response(payload, status_code=status, headers=headers, media_type="text/html")
        headers["Content-Type"] = "application/json;charset=utf-8"
        return Response(json.dumps(payload, separators=(",", ":")), status_code=status,
                        headers=headers)

    def _endpoint(
        self, handler: Callable[[_Call], tuple[int, Any]], *, search: bool = False,
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
            self._app = Starlette(routes=[
                Route("/crm/v3/owners", ep(self._list_owners), methods=["GET"]),
                Route("/crm/v3/owners/", ep(self._list_owners), methods=["GET"]),
                Route("/crm/v3/owners/{ownerId}", ep(self._get_owner), methods=["GET"]),
                Route("/crm/v3/objects/{objectType}/search", ep(self._search, search=True),
                      methods=["POST"]),
                Route("/crm/v3/objects/{objectType}/batch/read", ep(self._batch_read_objects),
                      methods=["POST"]),
                Route("/crm/v3/objects/{objectType}/batch/update",
                      ep(self._batch_update, write="records"), methods=["POST"]),
                Route("/crm/v3/properties/{objectType}/groups", ep(self._list_groups),
                      methods=["GET"]),
                Route("/crm/v3/properties/{objectType}/groups",
                      ep(self._create_group, write="schema"), methods=["POST"]),
                Route("/crm/v3/properties/{objectType}/groups/{groupName}", ep(self._get_group),
                      methods=["GET"]),
                Route("/crm/v3/properties/{objectType}/batch/read",
                      ep(self._batch_read_properties), methods=["POST"]),
                Route("/crm/v3/properties/{objectType}", ep(self._list_properties),
                      methods=["GET"]),
                Route("/crm/v3/properties/{objectType}",
                      ep(self._create_property, write="schema"), methods=["POST"]),
                Route("/crm/v3/properties/{objectType}/{propertyName}", ep(self._get_property),
                      methods=["GET"]),
                Route("/crm/v3/objects/{objectType}", ep(self._list_objects), methods=["GET"]),
                Route("/crm/v3/objects/{objectType}/{objectId}", ep(self._get_object),
                      methods=["GET"]),
                Route("/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read",
                      ep(self._association_batch), methods=["POST"]),
                Route("/crm/v3/pipelines/{objectType}", ep(self._pipelines), methods=["GET"]),
                Route("/crm/v3/pipelines/{objectType}/{pipelineId}", ep(self._pipelines),
                      methods=["GET"]),
                Route("/crm/v3/pipelines/{objectType}/{pipelineId}/stages", ep(self._pipelines),
                      methods=["GET"]),
                Route("/{path:path}", ep(self._unknown_route), methods=all_methods),
            ])
        return self._app


# ---------------------------------------------------------------------------------------
# Search filters
# ---------------------------------------------------------------------------------------


@dataclass
class _Group:
    test: Callable[[_Obj], bool]
    # Set when every filter is a range on the created/modified date: (slot, lo, hi) inclusive.
    slot_range: tuple[str, int, int] | None


_BIG = 1 << 62


def _normalizer(kind: PropertyKind) -> Callable[[Value], Any]:
    """Stored value -> the comparable HubSpot compares (None: no usable value)."""
    if kind == "datetime":
        return lambda v: v if isinstance(v, int) else None
    if kind == "number":
        return _as_number
    if kind == "enumeration":
        return lambda v: v if isinstance(v, str) and v != "" else None
    return lambda v: v.lower() if isinstance(v, str) and v != "" else None


def _filter_value(kind: PropertyKind, raw: object, name: str) -> Any:
    """A filter's value as a comparable; 400 when it cannot be read as the property's type."""
    if raw is None:
        raise _ApiError(400, f"Filter on {name!r} needs a value")
    text = str(raw).lower() if isinstance(raw, bool) else str(raw)
    if kind == "datetime":
        parsed = parse_datetime_value(text)
        if parsed is None:
            raise _ApiError(400, f"{text!r} is not a valid datetime value for {name!r}: "
                                 "use epoch milliseconds or an ISO 8601 string")
        return parsed
    if kind == "number":
        number = _as_number(text)
        if number is None:
            raise _ApiError(400, f"{text!r} is not a valid number for {name!r}")
        return number
    if kind == "enumeration":
        return text
    return text.lower()


def _token_matcher(pattern: str) -> Callable[[str], bool]:
    regex = re.compile(
        "^" + ".*".join(re.escape(part) for part in pattern.lower().split("*")) + "$"
    )
    return lambda value: any(regex.match(token) for token in [value, *value.split()])


def _compile_filter(store: _Store, raw: object) -> tuple[Callable[[_Obj], bool], Any]:
    """One filter as a predicate, plus its (slot, lo, hi) range when it is a simple date range."""
    if not isinstance(raw, dict):
        raise _ApiError(400, "each filter must be an object")
    name = raw.get("propertyName")
    operator = raw.get("operator", "EQ")
    if operator not in FILTER_OPERATORS:
        raise _ApiError(400, f"Invalid filter operator {operator!r}")
    if not isinstance(name, str) or name not in store.kinds:
        raise _ApiError(
            400, f"Invalid filter: property {name!r} does not exist on {store.spec.name}",
            errors=[{"message": f"Property {name!r} does not exist", "in": "propertyName"}],
        )
    kind = store.kinds[name]
    get = store.raw_getter(name)
    norm = _normalizer(kind)
    slot = {store.spec.created_property: "created_ms",
            store.spec.modified_property: "modified_ms"}.get(name)

    if operator == "HAS_PROPERTY":
        return (lambda o: get(o) not in (None, "")), None
    if operator == "NOT_HAS_PROPERTY":
        return (lambda o: get(o) in (None, "")), None
    if operator in ("IN", "NOT_IN"):
        values = raw.get("values")
        if not isinstance(values, list) or not values:
            raise _ApiError(400, f"Filter {operator} on {name!r} needs a non-empty 'values' list")
        # For string properties HubSpot wants the values lowercase already; they are not folded.
        wanted = {str(v) if kind == "string" else _filter_value(kind, v, name) for v in values}
        if operator == "IN":
            return (lambda o: norm(get(o)) in wanted), None
        return (lambda o: norm(get(o)) not in wanted), None
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        matcher = _token_matcher(str(raw.get("value", "")))
        contains = operator == "CONTAINS_TOKEN"

        def token_test(o: _Obj) -> bool:
            value = get(o)
            found = isinstance(value, str) and matcher(value.lower())
            return found if contains else not found

        return token_test, None

    v = _filter_value(kind, raw.get("value"), name)
    if operator == "BETWEEN":
        hv = _filter_value(kind, raw.get("highValue"), name)
        rng = (slot, v, hv) if slot else None
        return (lambda o: (s := norm(get(o))) is not None and v <= s <= hv), rng
    if operator == "NEQ":
        return (lambda o: (s := norm(get(o))) is None or s != v), None
    if operator == "EQ":
        return (lambda o: norm(get(o)) == v), ((slot, v, v) if slot else None)
    if operator == "LT":
        return ((lambda o: (s := norm(get(o))) is not None and s < v),
                (slot, -_BIG, v - 1) if slot else None)
    if operator == "LTE":
        return ((lambda o: (s := norm(get(o))) is not None and s <= v),
                (slot, -_BIG, v) if slot else None)
    if operator == "GT":
        return ((lambda o: (s := norm(get(o))) is not None and s > v),
                (slot, v + 1, _BIG) if slot else None)
    return ((lambda o: (s := norm(get(o))) is not None and s >= v),
            (slot, v, _BIG) if slot else None)


def _compile_group(store: _Store, filters: list[Any]) -> _Group:
    compiled = [_compile_filter(store, f) for f in filters]
    tests = [test for test, _ in compiled]
    ranges = [rng for _, rng in compiled]
    slot_range: tuple[str, int, int] | None = None
    if ranges and all(r is not None for r in ranges) and len({r[0] for r in ranges}) == 1:
        slot_range = (ranges[0][0], max(r[1] for r in ranges), min(r[2] for r in ranges))
    if not tests:
        return _Group(lambda o: True, None)
    if len(tests) == 1:
        return _Group(tests[0], slot_range)
    if len(tests) == 2:
        first, second = tests
        return _Group(lambda o: first(o) and second(o), slot_range)

    def test_all(o: _Obj) -> bool:
        return all(t(o) for t in tests)

    return _Group(test_all, slot_range)


# ---------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------


class RunningPortal:
    """A portal served by uvicorn in a daemon thread; a context manager that stops it."""

    def __init__(
        self, portal: HubSpotPortal, server: uvicorn.Server, thread: threading.Thread, url: str
    ) -> None:
        self.portal = portal
        self.url = url
        self._server = server
        self._thread = thread

    def stop(self) -> None:
        """Stop serving and wait for the server thread to finish."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningPortal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_portal(portal: HubSpotPortal, *, host: str = "127.0.0.1", port: int = 0) -> RunningPortal:
    """Serve the portal over plain HTTP; returns once it accepts connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this: without it, Nagle's algorithm holds the body
    # (sent after the headers) until the client's delayed ACK, 40 ms a request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        portal.asgi_app(), log_level="warning", access_log=False, lifespan="off",
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name=f"hubspot-portal-{bound_port}")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the simulated HubSpot portal did not start")
        time.sleep(0.01)
    return RunningPortal(portal, server, thread, f"http://{host}:{bound_port}")
