"""A simulated Salesforce org: in-memory records served in Salesforce's own wire format, over HTTPS.

``iskpi demo --source salesforce`` syncs from it through the real connector (simple-salesforce
pointed at it with a session id; simple-salesforce always builds ``https://`` URLs, so the org
speaks TLS with a test CA made by trustme), and the Salesforce tests use it as their test double.
It is strict where Salesforce is strict, because a fake that accepts what the real API rejects
is a bug in the fake: unknown fields and objects (INVALID_FIELD, INVALID_TYPE), SOQL it cannot
parse or that mixes AND and OR without parentheses (MALFORMED_QUERY), filter values of the
wrong type, more than 25 composite subrequests or more than 5 queries in one, an expired
session (401 INVALID_SESSION_ID) and a spent daily allowance (403 REQUEST_LIMIT_EXCEEDED).

What is served (shapes from Salesforce's REST API and Bulk API 2.0 developer guides):

- ``POST /services/oauth2/token`` (refresh_token grant; rotates the refresh token when asked)
- ``GET  /services/data/vXX.X/sobjects/`` (describe global), ``.../sobjects/{name}/describe``
- ``GET  /services/data/vXX.X/limits/`` (``DailyApiRequests``: ``Max``, ``Remaining``)
- ``GET  /services/data/vXX.X/query/?q=`` and ``/queryAll/?q=``, pages of up to 2,000 records
  (``Sforce-Query-Options: batchSize=``) through a relative ``nextRecordsUrl``; ``queryAll``
  also returns deleted records (``IsDeleted``) and archived activities
- ``POST /services/data/vXX.X/composite`` (up to 25 subrequests, 5 of them queries; one call)
- ``PATCH /services/data/vXX.X/composite/sobjects`` (update up to 200 records, ``allOrNone``;
  per-record SaveResults: INVALID_FIELD, INVALID_FIELD_FOR_INSERT_UPDATE for fields the
  platform sets, NUMBER_OUTSIDE_VALID_RANGE, INVALID_CROSS_REFERENCE_KEY, MIXED_DML_OPERATION
  when User shares the call with another object; a value of the wrong JSON type refuses the
  whole request with 400 JSON_PARSER_ERROR; numbers are saved rounded to the scale describe
  reports) and ``POST`` (create, REQUIRED_FIELD_MISSING, one ForecastingQuota per owner,
  period and type). ``write_log`` records every record write, so tests can assert a dry run
  sent none
- Bulk API 2.0 query jobs: ``POST .../jobs/query``, ``GET/PATCH/DELETE .../jobs/query/{id}``,
  ``GET .../jobs/query/{id}/results?locator=&maxRecords=`` (CSV; ``Sforce-Locator``,
  ``Sforce-NumberOfRecords``)

Every API response carries ``Sforce-Limit-Info: api-usage=used/max``; every request to
``/services/data`` counts once against the daily allowance (a composite request once in all).
Errors are Salesforce's: a JSON array ``[{"message": ..., "errorCode": ...}]``.

The SOQL understood is the subset the connector sends: ``SELECT`` fields or ``COUNT()``,
``FROM`` one object, ``WHERE`` with ``= != < <= > >=``, ``IN``/``NOT IN``, ``LIKE``, ``NOT``,
``AND``/``OR`` with parentheses, literals typed as Salesforce types them (quoted strings and
ids, unquoted ``YYYY-MM-DDThh:mm:ssZ`` datetimes and ``YYYY-MM-DD`` dates, numbers, ``TRUE``,
``FALSE``, ``null``), ``ORDER BY`` fields ``ASC|DESC NULLS FIRST|LAST``, ``LIMIT`` and
``OFFSET``. Relationship fields (``Owner.Name``) are not simulated.

Sources: developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/ (dome_query,
resources_queryall_more_results, headers_api_usage, errorcodes, resources_limits,
dome_sobject_describe, resources_composite_composite_post, intro_understanding_refresh_token_oauth);
.../api_asynch.meta/api_asynch/ (query_create_job, query_get_one_job, query_get_job_results);
.../soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_dateformats.htm.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import re
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

if TYPE_CHECKING:
    import trustme

    from connectors.demo.salesforce_dataset import OrgDataset

FieldType = Literal[
    "id", "reference", "string", "picklist", "textarea", "email", "phone", "boolean",
    "datetime", "date", "int", "double", "currency", "percent",
]
# A stored value: datetimes as epoch milliseconds, dates as date, the rest as JSON has them.
Value = str | int | float | bool | date | None

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_API_VERSION = 62.0
MIN_API_VERSION = 20.0
QUERY_BATCH_DEFAULT, QUERY_BATCH_MIN, QUERY_BATCH_MAX = 2_000, 200, 2_000
COMPOSITE_MAX_SUBREQUESTS, COMPOSITE_MAX_QUERIES = 25, 5
COLLECTION_MAX_RECORDS = 200
SOQL_MAX_LENGTH = 100_000
WHERE_STRING_MAX = 4_000
BULK_RESULTS_DEFAULT = 50_000
ORG_ID = "00DHp0000000001AAA"

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?$")


def salesforce_id(prefix: str, number: int) -> str:
    """An 18-character Salesforce id: key prefix, pod, a base-62 serial and the case checksum."""
    digits = ""
    while True:
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
        if number == 0:
            break
    body = f"{prefix}Hp0{digits.rjust(9, '0')}"
    if len(body) != 15:
        raise ValueError("id serial out of range")
    return body + id_checksum(body)


def id_serial(record_id: str) -> int:
    """The base-62 serial of an id made by :func:`salesforce_id` (0 for any other id)."""
    serial = 0
    for char in record_id[6:15]:
        position = _BASE62.find(char)
        if position < 0:
            return 0
        serial = serial * 62 + position
    return serial


def id_checksum(id15: str) -> str:
    """The three-character suffix that makes a 15-character id case-insensitive."""
    out = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, char in enumerate(chunk) if "A" <= char <= "Z")
        out += _ID_SUFFIX[bits]
    return out


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(milliseconds=1)


def _ms(moment: datetime | int) -> int:
    return moment if isinstance(moment, int) else to_ms(moment)


def rest_datetime(ms: int) -> str:
    """Salesforce's REST rendering of a dateTime: ``2024-01-17T19:55:04.000+0000``."""
    moment = EPOCH + timedelta(milliseconds=ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}+0000"


def bulk_datetime(ms: int) -> str:
    """Bulk API 2.0's CSV rendering of a dateTime: ``2024-01-17T19:55:04.000Z``."""
    moment = EPOCH + timedelta(milliseconds=ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


# ---------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One field of an SObject as describe reports it."""

    name: str
    type: FieldType
    label: str = ""
    reference_to: tuple[str, ...] = ()
    length: int = 0
    nillable: bool = True
    custom: bool = False
    picklist: tuple[str, ...] = ()

    @property
    def filterable(self) -> bool:
        return self.type != "textarea"


@dataclass
class SObjectSpec:
    """One SObject: its name, key prefix and fields."""

    name: str
    label: str
    key_prefix: str
    fields: list[FieldSpec]
    archivable: bool = False  # activities: archived rows only reach queryAll

    def field(self, name: str) -> FieldSpec | None:
        wanted = name.lower()
        for spec in self.fields:
            if spec.name.lower() == wanted:
                return spec
        return None


def _f(name: str, type_: FieldType, *, ref: Sequence[str] = (), custom: bool = False,
       nillable: bool = True, picklist: Sequence[str] = ()) -> FieldSpec:
    length = {"id": 18, "reference": 18, "string": 255, "picklist": 255, "textarea": 32000,
              "email": 80, "phone": 40}.get(type_, 0)
    label = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name.removesuffix("__c").replace("_", " "))
    return FieldSpec(name, type_, label, tuple(ref), length, nillable, custom, tuple(picklist))


def _system(deletable: bool = True) -> list[FieldSpec]:
    out = [_f("Id", "id", nillable=False)]
    if deletable:
        out.append(_f("IsDeleted", "boolean", nillable=False))
    out += [
        _f("CreatedDate", "datetime", nillable=False),
        _f("CreatedById", "reference", ref=("User",), nillable=False),
        _f("LastModifiedDate", "datetime", nillable=False),
        _f("SystemModstamp", "datetime", nillable=False),
    ]
    return out


TASK_SUBTYPES = ("Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn")
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
CLOSED_TASK_STATUSES = frozenset({"completed"})
# The default opportunity stages: (StageName, probability %, closed, won).
DEFAULT_STAGES: tuple[tuple[str, float, bool, bool], ...] = (
    ("Prospecting", 10.0, False, False),
    ("Qualification", 20.0, False, False),
    ("Needs Analysis", 25.0, False, False),
    ("Value Proposition", 50.0, False, False),
    ("Id. Decision Makers", 60.0, False, False),
    ("Perception Analysis", 70.0, False, False),
    ("Proposal/Price Quote", 75.0, False, False),
    ("Negotiation/Review", 90.0, False, False),
    ("Closed Won", 100.0, True, True),
    ("Closed Lost", 0.0, True, False),
)
MEETING_OUTCOMES = ("Scheduled", "Completed", "Rescheduled", "No Show", "Canceled")


def standard_schema() -> dict[str, SObjectSpec]:
    """The objects an inside-sales org has, with the custom fields of SPEC §4 and §9."""
    specs = [
        SObjectSpec("UserRole", "Role", "00E", [
            _f("Id", "id", nillable=False), _f("Name", "string", nillable=False),
            _f("DeveloperName", "string"), _f("ParentRoleId", "reference", ref=("UserRole",)),
            _f("LastModifiedDate", "datetime", nillable=False),
            _f("SystemModstamp", "datetime", nillable=False),
        ]),
        SObjectSpec("User", "User", "005", [
            *_system(deletable=False),
            _f("Username", "string", nillable=False), _f("FirstName", "string"),
            _f("LastName", "string", nillable=False), _f("Name", "string", nillable=False),
            _f("Email", "email", nillable=False), _f("IsActive", "boolean", nillable=False),
            _f("UserType", "picklist", picklist=("Standard", "PowerPartner", "CsnOnly",
                                                 "AutomatedProcess", "Guest")),
            _f("UserRoleId", "reference", ref=("UserRole",)),
            _f("ManagerId", "reference", ref=("User",)),
            _f("IS_Target_Calls__c", "double", custom=True),
            _f("IS_Target_Meetings__c", "double", custom=True),
            _f("IS_Target_Won_Amount__c", "currency", custom=True),
        ]),
        SObjectSpec("Account", "Account", "001", [
            *_system(), _f("Name", "string", nillable=False), _f("Industry", "picklist"),
            _f("NumberOfEmployees", "int"), _f("OwnerId", "reference", ref=("User",)),
        ]),
        SObjectSpec("Contact", "Contact", "003", [
            *_system(), _f("FirstName", "string"), _f("LastName", "string", nillable=False),
            _f("Name", "string", nillable=False), _f("Email", "email"),
            _f("AccountId", "reference", ref=("Account",)),
            _f("OwnerId", "reference", ref=("User",)),
        ]),
        SObjectSpec("Lead", "Lead", "00Q", [
            *_system(), _f("FirstName", "string"), _f("LastName", "string", nillable=False),
            _f("Name", "string", nillable=False), _f("Company", "string", nillable=False),
            _f("Email", "email"), _f("Phone", "phone"),
            _f("Status", "picklist", nillable=False, picklist=(
                "Open - Not Contacted", "Working - Contacted", "Closed - Converted",
                "Closed - Not Converted")),
            _f("LeadSource", "picklist"), _f("Industry", "picklist"),
            _f("NumberOfEmployees", "int"), _f("OwnerId", "reference", ref=("User", "Group")),
            _f("IsConverted", "boolean", nillable=False), _f("ConvertedDate", "date"),
            _f("ConvertedAccountId", "reference", ref=("Account",)),
            _f("ConvertedContactId", "reference", ref=("Contact",)),
            _f("ConvertedOpportunityId", "reference", ref=("Opportunity",)),
        ]),
        SObjectSpec("Task", "Task", "00T", [
            *_system(), _f("IsArchived", "boolean", nillable=False), _f("Subject", "string"),
            _f("Status", "picklist", nillable=False, picklist=TASK_STATUSES),
            _f("Priority", "picklist", nillable=False, picklist=("High", "Normal", "Low")),
            _f("IsClosed", "boolean", nillable=False), _f("ActivityDate", "date"),
            _f("CompletedDateTime", "datetime"),
            _f("TaskSubtype", "picklist", picklist=TASK_SUBTYPES),
            _f("Type", "picklist", picklist=("Call", "Email", "Meeting", "Other")),
            _f("CallType", "picklist", picklist=("Internal", "Inbound", "Outbound")),
            _f("CallDisposition", "string"), _f("CallDurationInSeconds", "int"),
            _f("CallObject", "string"), _f("Description", "textarea"),
            _f("WhoId", "reference", ref=("Contact", "Lead")),
            _f("WhatId", "reference", ref=("Account", "Opportunity")),
            _f("OwnerId", "reference", ref=("User",), nillable=False),
        ], archivable=True),
        SObjectSpec("Event", "Event", "00U", [
            *_system(), _f("IsArchived", "boolean", nillable=False), _f("Subject", "string"),
            _f("Type", "picklist", picklist=("Call", "Email", "Meeting", "Other")),
            _f("EventSubtype", "picklist", picklist=("Event",)),
            _f("StartDateTime", "datetime"), _f("EndDateTime", "datetime"),
            _f("ActivityDateTime", "datetime"), _f("ActivityDate", "date"),
            _f("IsAllDayEvent", "boolean", nillable=False), _f("DurationInMinutes", "int"),
            _f("Description", "textarea"),
            _f("WhoId", "reference", ref=("Contact", "Lead")),
            _f("WhatId", "reference", ref=("Account", "Opportunity")),
            _f("OwnerId", "reference", ref=("User",), nillable=False),
            _f("Meeting_Outcome__c", "picklist", custom=True, picklist=MEETING_OUTCOMES),
        ], archivable=True),
        SObjectSpec("Opportunity", "Opportunity", "006", [
            *_system(), _f("Name", "string", nillable=False),
            _f("AccountId", "reference", ref=("Account",)),
            _f("ContactId", "reference", ref=("Contact",)),
            _f("StageName", "picklist", nillable=False,
               picklist=tuple(s[0] for s in DEFAULT_STAGES)),
            _f("Amount", "currency"), _f("Probability", "percent"),
            _f("CloseDate", "date", nillable=False), _f("Type", "picklist"),
            _f("LeadSource", "picklist"), _f("IsClosed", "boolean", nillable=False),
            _f("IsWon", "boolean", nillable=False), _f("ForecastCategory", "picklist"),
            _f("OwnerId", "reference", ref=("User",), nillable=False),
            _f("IS_Rep__c", "reference", ref=("User",), custom=True),
            _f("BANT_Budget__c", "string", custom=True),
            _f("BANT_Authority__c", "string", custom=True),
            _f("BANT_Need__c", "string", custom=True),
            _f("BANT_Timing__c", "string", custom=True),
            _f("Handoff_Rating__c", "double", custom=True),
        ]),
        SObjectSpec("EmailMessage", "Email Message", "02s", [
            *_system(), _f("ActivityId", "reference", ref=("Task",)),
            _f("ParentId", "reference", ref=("Case",)), _f("Subject", "string"),
            _f("FromAddress", "email"), _f("ToAddress", "string"),
            _f("MessageDate", "datetime"),
            _f("Status", "picklist", nillable=False, picklist=("0", "1", "2", "3", "4", "5")),
            _f("Incoming", "boolean", nillable=False), _f("IsTracked", "boolean", nillable=False),
            _f("IsBounced", "boolean", nillable=False), _f("IsClientManaged", "boolean"),
            _f("FirstOpenedDate", "datetime"), _f("LastOpenedDate", "datetime"),
            _f("FirstLinkClickedDate", "datetime"), _f("HasReply", "boolean"),
        ]),
        # Collaborative Forecasts: a forecast type, and a quota per owner, type and period.
        SObjectSpec("ForecastingType", "Forecasting Type", "0Db", [
            _f("Id", "id", nillable=False), _f("DeveloperName", "string", nillable=False),
            _f("MasterLabel", "string", nillable=False), _f("IsActive", "boolean", nillable=False),
            _f("IsAmount", "boolean", nillable=False), _f("IsQuantity", "boolean", nillable=False),
            _f("LastModifiedDate", "datetime", nillable=False),
            _f("SystemModstamp", "datetime", nillable=False),
        ]),
        SObjectSpec("ForecastingQuota", "Forecasting Quota", "0J9", [
            *_system(deletable=False),
            _f("QuotaOwnerId", "reference", ref=("User",), nillable=False),
            _f("StartDate", "date", nillable=False),
            _f("QuotaAmount", "currency"), _f("QuotaQuantity", "double"),
            _f("ForecastingTypeId", "reference", ref=("ForecastingType",)),
            _f("IsAmount", "boolean", nillable=False), _f("IsQuantity", "boolean", nillable=False),
        ]),
    ]
    return {spec.name: spec for spec in specs}


# Fields the platform sets: describe reports them neither createable nor updateable.
READ_ONLY_FIELDS = frozenset({
    "Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp", "CreatedById",
    "Name", "IsClosed", "IsWon", "IsArchived", "IsAmount", "IsQuantity",
})
# Setup objects cannot share a DML call with other objects (MIXED_DML_OPERATION).
SETUP_OBJECTS = frozenset({"User", "UserRole"})
NUMBER_PRECISION, NUMBER_SCALE = 18, 2  # what describe reports for double, currency, percent


# ---------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------


class _Row:
    __slots__ = ("id", "values")

    def __init__(self, record_id: str, values: list[Value]) -> None:
        self.id = record_id
        self.values = values


class _Table:
    """All records of one SObject, in id order; values follow the spec's field order."""

    def __init__(self, spec: SObjectSpec) -> None:
        self.spec = spec
        self.index: dict[str, int] = {}
        self.types: list[FieldType] = []
        self.rows: list[_Row] = []
        self.by_id: dict[str, _Row] = {}
        self.next_serial = 1
        for field_spec in spec.fields:
            self._register(field_spec)

    def _register(self, field_spec: FieldSpec) -> None:
        self.index[field_spec.name.lower()] = len(self.types)
        self.types.append(field_spec.type)

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

    def get(self, row: _Row, name: str) -> Value:
        return row.values[self.index[name.lower()]]

    def live(self, name: str) -> bool:
        return self.spec.field(name) is not None


@dataclass
class FaultPlan:
    """Failures the org injects; tests set the fields, the org counts API requests per plan."""

    server_error_every: int | None = None  # every Nth API request answers 503, 500, 502 in turn
    server_error_burst: int = 0  # the next N API requests answer 503, then normal
    delay_seconds: float = 0.0  # sleep before answering (to provoke client timeouts)
    delay_every: int | None = None  # apply the delay on every Nth API request only (None: all)
    expire_sessions_after: int | None = None  # after N more API requests every session expires
    request_limit_exceeded: bool = False  # answer 403 REQUEST_LIMIT_EXCEEDED to every API request
    # A rate-limit storm, Salesforce's way (it never answers 429): every Nth API request answers
    # 403 REQUEST_LIMIT_EXCEEDED (ConcurrentPerOrgLongTxn) ...
    request_limit_every: int | None = None
    request_limit_for_seconds: float | None = None  # ... for this long after the first (None: forever)
    omit_limit_header: bool = False  # leave out Sforce-Limit-Info (clients must ask /limits)
    expire_query_locators: bool = False  # nextRecordsUrl answers INVALID_QUERY_LOCATOR
    # Record writes (sObject Collections): let ``write_fault_after`` through, then answer
    # ``write_fault_status`` (503, 500, 502, or 403 REQUEST_LIMIT_EXCEEDED: Salesforce signals
    # over-quota so, never 429) ``write_fault_times`` times (None: every later write).
    write_fault_after: int | None = None
    write_fault_status: int = 503
    write_fault_times: int | None = None
    # Record id -> a validation rule's message: writes of that record fail with
    # FIELD_CUSTOM_VALIDATION_EXCEPTION (a per-record error, the others are saved).
    reject_records: dict[str, str] = field(default_factory=dict)
    bulk_polls_in_progress: int = 1  # job-info polls that answer InProgress before JobComplete
    # (sobject, id) -> field overrides served as they are, e.g. {"CreatedDate": "yesterday"}
    malformed: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # Hostile payloads: each record of a REST query page, as JSON, passes through this
    # (sobject, record) -> the records served in its place ([] drops it, two duplicate it).
    rewrite: Callable[[str, dict[str, Any]], list[dict[str, Any]]] | None = None
    injected: int = field(default=0, init=False)  # fault answers served so far (403, 5xx)
    _seen: int = field(default=0, init=False, repr=False)
    _limited_since: float | None = field(default=None, init=False, repr=False)
    _server_errors: int = field(default=0, init=False, repr=False)
    _writes: int = field(default=0, init=False, repr=False)


@dataclass
class ConnectedApp:
    """An OAuth connected app and the refresh token it has granted."""

    client_id: str
    client_secret: str
    refresh_token: str
    rotate: bool = False  # refresh token rotation: each refresh issues a new one
    refreshes: int = 0


class ApiError(Exception):
    """An error answered in Salesforce's format: ``[{"message": ..., "errorCode": ...}]``."""

    def __init__(self, status: int, code: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields)

    def body(self) -> list[dict[str, Any]]:
        out: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields:
            out["fields"] = self.fields
        return [out]


def _not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


@dataclass
class _Cursor:
    rows: list[_Row]
    table: _Table
    fields: list[str]
    version: str


@dataclass
class _BulkJob:
    id: str
    operation: str
    table: _Table
    fields: list[str]
    rows: list[_Row]
    version: str
    created_ms: int
    polls: int = 0
    state: str = "UploadComplete"
    column_delimiter: str = "COMMA"
    line_ending: str = "LF"


@dataclass
class Answer:
    """One response: status, a JSON-able body (or raw text) and headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json;charset=UTF-8"


# ---------------------------------------------------------------------------------------
# The org
# ---------------------------------------------------------------------------------------


class SalesforceOrg:
    """In-memory org: objects, sessions, connected apps, faults, request log, API usage."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        daily_api_limit: int = 15_000,
        schema: Mapping[str, SObjectSpec] | None = None,
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self.daily_api_limit = daily_api_limit
        self.daily_api_used = 0
        self.faults = FaultPlan()
        self.request_log: list[tuple[str, str]] = []
        self.soql_log: list[str] = []  # every SOQL statement received (REST, composite, bulk)
        self.sessions: set[str] = set()
        self.apps: dict[str, ConnectedApp] = {}
        self.url = "https://127.0.0.1"  # set by serve_org
        self._lock = threading.RLock()
        self._tables: dict[str, _Table] = {
            name.lower(): _Table(spec) for name, spec in (schema or standard_schema()).items()
        }
        self._stages = {s[0].lower(): s for s in DEFAULT_STAGES}
        self._cursors: dict[str, _Cursor] = {}
        self._jobs: dict[str, _BulkJob] = {}
        self._app: ASGIApp | None = None
        # Every record write request: ("records", "METHOD path", records in it).
        self.write_log: list[tuple[str, str, int]] = []
        if self.has_object("ForecastingType"):
            self.create("ForecastingType", {
                "DeveloperName": "OpportunityRevenue", "MasterLabel": "Opportunity Revenue",
                "IsActive": True, "IsAmount": True, "IsQuantity": False,
            })

    # -- Python API: sessions and apps ---------------------------------------------------

    def issue_session(self) -> str:
        """A new access token (session id) the org accepts until sessions expire."""
        with self._lock:
            token = f"{ORG_ID[:15]}!AQ{secrets.token_urlsafe(48)}"
            self.sessions.add(token)
            return token

    def expire_sessions(self) -> None:
        """Every access token issued so far stops working (as a session timeout does)."""
        with self._lock:
            self.sessions.clear()

    def add_connected_app(
        self, client_id: str, client_secret: str, refresh_token: str, *, rotate: bool = False
    ) -> ConnectedApp:
        """Register a connected app that has granted ``refresh_token``."""
        with self._lock:
            app = ConnectedApp(client_id, client_secret, refresh_token, rotate)
            self.apps[client_id] = app
            return app

    # -- Python API: schema -----------------------------------------------------------------

    def table(self, sobject: str) -> _Table:
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

    def _coerce(self, table: _Table, name: str, value: Any) -> Value:
        kind = table.types[table.position(name)]
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

    def _apply_rules(self, table: _Table, row: _Row, given: Mapping[str, Any]) -> None:
        """Keep Salesforce's derived fields in step, as the platform does."""
        lowered = {k.lower() for k in given}
        name = table.spec.name
        if name in ("Lead", "Contact", "User") and "name" not in lowered and (
            "firstname" in lowered or "lastname" in lowered
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
            if record_id is None:
                record_id = salesforce_id(spec.key_prefix, table.next_serial)
            elif record_id in table.by_id:
                raise ValueError(f"{spec.name} {record_id} exists")
            table.next_serial = max(table.next_serial, id_serial(record_id)) + 1
            values: list[Value] = [None] * len(table.types)
            for position, kind in enumerate(table.types):
                if kind == "boolean":
                    values[position] = False
            row = _Row(record_id, values)
            now = self._now_ms()
            created = _ms(created_at) if created_at is not None else now
            modified = _ms(modified_at) if modified_at is not None else max(created, now)
            for name, value in fields.items():
                if name.lower() not in table.index:
                    raise ValueError(f"{spec.name} has no field {name!r}")
                values[table.position(name)] = self._coerce(table, name, value)
            values[table.position("Id")] = record_id
            if "createddate" in table.index and "createddate" not in {k.lower() for k in fields}:
                values[table.position("CreatedDate")] = created
            for stamp in ("LastModifiedDate", "SystemModstamp"):
                if stamp.lower() in table.index:
                    values[table.position(stamp)] = modified
            if "createdbyid" in table.index and values[table.position("CreatedById")] is None:
                values[table.position("CreatedById")] = salesforce_id("005", 1)
            self._apply_rules(table, row, fields)
            table.rows.append(row)
            table.by_id[record_id] = row
            return record_id

    def _row(self, sobject: str, record_id: str) -> tuple[_Table, _Row]:
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

    def _touch(self, table: _Table, row: _Row, modified_at: datetime | int | None) -> None:
        stamp = _ms(modified_at) if modified_at is not None else self._now_ms()
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

    def get(self, sobject: str, record_id: str) -> dict[str, Any]:
        """A record as the REST API renders it (every field describe lists)."""
        with self._lock:
            table, row = self._row(sobject, record_id)
            names = [f.name for f in table.spec.fields]
            return self._render(table, row, names, "v59.0")

    @staticmethod
    def _deleted(table: _Table, row: _Row) -> bool:
        return "isdeleted" in table.index and row.values[table.index["isdeleted"]] is True

    def load(self, dataset: OrgDataset) -> None:
        """Bulk-load a generated dataset (records in dependency order, with their own ids)."""
        with self._lock:
            for record in dataset.records:
                self.create(record.sobject, record.fields, created_at=record.created_ms,
                            modified_at=record.modified_ms, record_id=record.id)
                if record.deleted_ms is not None:
                    self.delete(record.sobject, record.id, at=record.deleted_ms)

    # -- rendering --------------------------------------------------------------------------

    def _render(self, table: _Table, row: _Row, names: Sequence[str], version: str
                ) -> dict[str, Any]:
        spec = table.spec
        out: dict[str, Any] = {
            "attributes": {
                "type": spec.name,
                "url": f"/services/data/{version}/sobjects/{spec.name}/{row.id}",
            }
        }
        for name in names:
            position = table.index[name.lower()]
            out[name] = _json_value(table.types[position], row.values[position])
        override = self.faults.malformed.get((spec.name, row.id))
        if override:
            for name in names:
                for key, value in override.items():
                    if key.lower() == name.lower():
                        out[name] = value
        return out

    def _csv_row(self, table: _Table, row: _Row, names: Sequence[str]) -> list[str]:
        out: list[str] = []
        override = self.faults.malformed.get((table.spec.name, row.id)) or {}
        lowered = {k.lower(): v for k, v in override.items()}
        for name in names:
            if name.lower() in lowered:
                raw = lowered[name.lower()]
                out.append("" if raw is None else str(raw))
                continue
            position = table.index[name.lower()]
            out.append(_csv_value(table.types[position], row.values[position]))
        return out

    # -- HTTP: authentication, accounting, faults ------------------------------------------

    def _limit_header(self) -> dict[str, str]:
        if self.faults.omit_limit_header:
            return {}
        return {"Sforce-Limit-Info": f"api-usage={self.daily_api_used}/{self.daily_api_limit}"}

    def handle(self, method: str, path: str, query: str, headers: Mapping[str, str],
               body: bytes) -> Answer:
        """Answer one HTTP request (the ASGI app and tests call this)."""
        with self._lock:
            self.request_log.append((method, path))
            plan = self.faults
            if path.rstrip("/") == "/services/oauth2/token":
                return self._token(method, body)
            if not path.startswith("/services/data"):
                return Answer(404, _not_found().body())
            scheme, _, token = headers.get("authorization", "").partition(" ")
            if scheme.lower() not in ("bearer", "oauth") or token.strip() not in self.sessions:
                err = ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
                return Answer(401, err.body())
            if plan.request_limit_exceeded or self.daily_api_used >= self.daily_api_limit:
                err = ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                return Answer(403, err.body())
            plan._seen += 1
            if plan.request_limit_every and plan._seen % plan.request_limit_every == 0:
                now = time.monotonic()
                if plan._limited_since is None:
                    plan._limited_since = now
                if (plan.request_limit_for_seconds is None
                        or now - plan._limited_since < plan.request_limit_for_seconds):
                    plan.injected += 1
                    err = ApiError(403, "REQUEST_LIMIT_EXCEEDED",
                                   "ConcurrentPerOrgLongTxn Limit exceeded.")
                    return Answer(403, err.body(), self._limit_header())
            self.daily_api_used += 1
            if plan.expire_sessions_after is not None:
                plan.expire_sessions_after -= 1
                if plan.expire_sessions_after <= 0:
                    plan.expire_sessions_after = None
                    self.sessions.clear()  # this request still succeeds; the next one is 401
            limit = self._limit_header()
            if _is_record_write(method, path):
                self.write_log.append(("records", f"{method} {path}", _records_in(body)))
                if plan.write_fault_after is not None:
                    plan._writes += 1
                    if plan._writes > plan.write_fault_after and plan.write_fault_times != 0:
                        if plan.write_fault_times is not None:
                            plan.write_fault_times -= 1
                        plan.injected += 1
                        if plan.write_fault_status == 403:
                            err = ApiError(403, "REQUEST_LIMIT_EXCEEDED",
                                           "TotalRequests Limit exceeded.")
                            return Answer(403, err.body(), limit)
                        if plan.write_fault_status == 500:
                            err = ApiError(500, "UNKNOWN_EXCEPTION",
                                           "An unexpected error occurred.")
                            return Answer(500, err.body(), limit)
                        return Answer(plan.write_fault_status, "Service Unavailable", limit,
                                      "text/html")
            if plan.server_error_burst > 0:
                plan.server_error_burst -= 1
                plan.injected += 1
                return Answer(503, "Service Unavailable", limit, "text/html")
            if plan.server_error_every and plan._seen % plan.server_error_every == 0:
                status = (503, 500, 502)[plan._server_errors % 3]
                plan._server_errors += 1
                plan.injected += 1
                if status == 500:
                    err = ApiError(500, "UNKNOWN_EXCEPTION",
                                   "An unexpected error occurred. Please include this ErrorId "
                                   "if you contact support: 1234567890-12345 (-1234567890)")
                    return Answer(500, err.body(), limit)
                return Answer(status, "Bad Gateway" if status == 502 else "Service Unavailable",
                              limit, "text/html")
            try:
                answer = self._dispatch(method, path, query, headers, body)
            except ApiError as err:
                answer = Answer(err.status, err.body())
            answer.headers.update(self._limit_header())
            return answer

    def _delay_for(self) -> float:
        plan = self.faults
        if plan.delay_seconds <= 0:
            return 0.0
        if plan.delay_every and (plan._seen + 1) % plan.delay_every != 0:
            return 0.0
        return plan.delay_seconds

    def _token(self, method: str, body: bytes) -> Answer:
        if method != "POST":
            return Answer(405, [{"errorCode": "METHOD_NOT_ALLOWED",
                                 "message": f"HTTP Method '{method}' not allowed. Allowed are POST"}])
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type")
        if grant != "refresh_token":
            return Answer(400, {"error": "unsupported_grant_type",
                                "error_description": "grant type not supported"})
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            return Answer(400, {"error": "invalid_client_id",
                                "error_description": "client identifier invalid"})
        if form.get("client_secret") != app.client_secret:
            return Answer(400, {"error": "invalid_client",
                                "error_description": "invalid client credentials"})
        if form.get("refresh_token") != app.refresh_token:
            return Answer(400, {"error": "invalid_grant",
                                "error_description": "expired access/refresh token"})
        app.refreshes += 1
        issued = str(self._now_ms())
        token = self.issue_session()
        out = {
            "access_token": token,
            "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
            "scope": "refresh_token api",
            "instance_url": self.url,
            "id": f"https://login.salesforce.com/id/{ORG_ID}/{salesforce_id('005', 1)}",
            "token_type": "Bearer",
            "issued_at": issued,
        }
        if app.rotate:
            app.refresh_token = f"5Aep861{secrets.token_urlsafe(60)}"
            out["refresh_token"] = app.refresh_token
        return Answer(200, out)

    # -- routing ----------------------------------------------------------------------------

    _ROUTES: tuple[tuple[str, str, str], ...] = (
        ("GET", r"/services/data/?", "_versions"),
        ("GET", r"/services/data/(?P<v>v\d+\.\d)/?", "_resources"),
        ("GET", r"/services/data/(?P<v>v\d+\.\d)/sobjects/?", "_describe_global"),
        ("GET", r"/services/data/(?P<v>v\d+\.\d)/sobjects/(?P<name>\w+)/describe/?", "_describe"),
        ("GET", r"/services/data/(?P<v>v\d+\.\d)/limits/?", "_limits"),
        ("GET", r"/services/data/(?P<v>v\d+\.\d)/(?P<kind>query|queryAll)/?", "_query"),
        ("GET", r"/services/data/(?P<v>v\d+\.\d)/(?P<kind>query|queryAll)/(?P<locator>[\w-]+)/?",
         "_query_more"),
        ("POST", r"/services/data/(?P<v>v\d+\.\d)/composite/?", "_composite"),
        ("PATCH", r"/services/data/(?P<v>v\d+\.\d)/composite/sobjects/?", "_collection_update"),
        ("POST", r"/services/data/(?P<v>v\d+\.\d)/composite/sobjects/?", "_collection_create"),
        ("POST", r"/services/data/(?P<v>v\d+\.\d)/jobs/query/?", "_create_job"),
        ("GET", r"/services/data/(?P<v>v\d+\.\d)/jobs/query/(?P<job>\w+)/?", "_get_job"),
        ("PATCH", r"/services/data/(?P<v>v\d+\.\d)/jobs/query/(?P<job>\w+)/?", "_patch_job"),
        ("DELETE", r"/services/data/(?P<v>v\d+\.\d)/jobs/query/(?P<job>\w+)/?", "_delete_job"),
        ("GET", r"/services/data/(?P<v>v\d+\.\d)/jobs/query/(?P<job>\w+)/results/?",
         "_job_results"),
    )
    _COMPILED = tuple((m, re.compile(p + "$"), h) for m, p, h in _ROUTES)

    def _dispatch(self, method: str, path: str, query: str, headers: Mapping[str, str],
                  body: bytes) -> Answer:
        allowed: list[str] = []
        for route_method, pattern, handler in self._COMPILED:
            match = pattern.match(path)
            if match is None:
                continue
            if route_method != method:
                allowed.append(route_method)
                continue
            params = match.groupdict()
            if "v" in params:
                _check_version(params["v"])
            call = _HttpCall(method, path, params, parse_qs(query, keep_blank_values=True),
                             {k.lower(): v for k, v in headers.items()}, body)
            answer: Answer = getattr(self, handler)(call)
            return answer
        if allowed:
            return Answer(405, [{"errorCode": "METHOD_NOT_ALLOWED",
                                 "message": f"HTTP Method '{method}' not allowed. Allowed are "
                                            f"{','.join(sorted(set(allowed)))}"}])
        return Answer(404, _not_found().body())

    def _versions(self, call: _HttpCall) -> Answer:
        return Answer(200, [{"label": "Winter '25", "url": "/services/data/v62.0",
                             "version": "62.0"}])

    def _resources(self, call: _HttpCall) -> Answer:
        v = call.params["v"]
        return Answer(200, {name: f"/services/data/{v}/{name}" for name in
                            ("sobjects", "query", "queryAll", "limits", "composite", "jobs")})

    def _describe_global(self, call: _HttpCall) -> Answer:
        v = call.params["v"]
        return Answer(200, {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [_global_entry(t.spec, v) for t in self._tables.values()],
        })

    def _describe(self, call: _HttpCall) -> Answer:
        table = self._tables.get(call.params["name"].lower())
        if table is None:
            raise _not_found()
        return Answer(200, _describe(table.spec, call.params["v"]))

    def _limits(self, call: _HttpCall) -> Answer:
        jobs_today = len(self._jobs)
        return Answer(200, {
            "DailyApiRequests": {"Max": self.daily_api_limit,
                                 "Remaining": max(0, self.daily_api_limit - self.daily_api_used)},
            "DailyBulkV2QueryFileStorageMB": {"Max": 976_562, "Remaining": 976_562},
            "DailyBulkV2QueryJobs": {"Max": 10_000, "Remaining": 10_000 - jobs_today},
        })

    # -- query ------------------------------------------------------------------------------

    def run_soql(self, soql: str, *, include_deleted: bool) -> tuple[_Table, list[str], list[_Row],
                                                                     bool]:
        """Parse and run a query: (table, selected field names, matching rows, is COUNT())."""
        self.soql_log.append(soql)
        parsed = parse_soql(soql, self._tables)
        table = parsed.table
        rows = [row for row in table.rows if parsed.where(row)]
        if not include_deleted:
            deleted = table.index.get("isdeleted")
            archived = table.index.get("isarchived")
            rows = [row for row in rows
                    if not (deleted is not None and row.values[deleted] is True)
                    and not (archived is not None and row.values[archived] is True)]
        if parsed.order:
            for position, descending, nulls_last, kind in reversed(parsed.order):
                present = [r for r in rows if r.values[position] is not None]
                missing = [r for r in rows if r.values[position] is None]
                present.sort(key=partial(_row_sort_key, kind, position), reverse=descending)
                rows = present + missing if nulls_last else missing + present
        if parsed.offset:
            rows = rows[parsed.offset:]
        if parsed.limit is not None:
            rows = rows[: parsed.limit]
        return table, parsed.fields, rows, parsed.count

    def _query(self, call: _HttpCall) -> Answer:
        soql = (call.query.get("q") or [""])[0]
        if not soql.strip():
            raise ApiError(400, "MALFORMED_QUERY", "SOQL statements cannot be empty or null")
        include_deleted = call.params["kind"] == "queryAll"
        table, fields, rows, counting = self.run_soql(soql, include_deleted=include_deleted)
        if counting:
            return Answer(200, {"totalSize": len(rows), "done": True, "records": []})
        batch = _batch_size(call.headers.get("sforce-query-options", ""))
        cursor = _Cursor(rows, table, fields, call.params["v"])
        return Answer(200, self._page(cursor, 0, batch, call.params["v"]))

    def _page(self, cursor: _Cursor, start: int, batch: int, version: str) -> dict[str, Any]:
        chunk = cursor.rows[start:start + batch]
        out: dict[str, Any] = {
            "totalSize": len(cursor.rows),
            "done": start + batch >= len(cursor.rows),
            "records": [self._render(cursor.table, row, cursor.fields, cursor.version)
                        for row in chunk],
        }
        rewrite = self.faults.rewrite
        if rewrite is not None:
            name = cursor.table.spec.name
            out["records"] = [r for record in out["records"] for r in rewrite(name, record)]
        if not out["done"]:
            locator = f"01g{secrets.token_hex(6)[:12]}AAA"
            self._cursors[locator] = cursor
            out["nextRecordsUrl"] = f"/services/data/{version}/query/{locator}-{start + batch}"
        return out

    def _query_more(self, call: _HttpCall) -> Answer:
        locator, _, offset = call.params["locator"].rpartition("-")
        cursor = self._cursors.get(locator)
        if cursor is None or not offset.isdigit() or self.faults.expire_query_locators:
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        batch = _batch_size(call.headers.get("sforce-query-options", ""))
        page = self._page(cursor, int(offset), batch, call.params["v"])
        if page["done"]:
            self._cursors.pop(locator, None)
        return Answer(200, page)

    # -- composite --------------------------------------------------------------------------

    def _composite(self, call: _HttpCall) -> Answer:
        body = _json_body(call.body)
        if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
            raise ApiError(400, "JSON_PARSER_ERROR", "compositeRequest is required")
        subrequests = body["compositeRequest"]
        if not subrequests:
            raise ApiError(400, "INVALID_INPUT", "compositeRequest must not be empty")
        if len(subrequests) > COMPOSITE_MAX_SUBREQUESTS:
            raise ApiError(400, "LIMIT_EXCEEDED",
                           f"Composite requests can have up to {COMPOSITE_MAX_SUBREQUESTS} "
                           "subrequests")
        version = call.params["v"]
        queries = 0
        for sub in subrequests:
            if not isinstance(sub, dict) or not isinstance(sub.get("url"), str) \
                    or not isinstance(sub.get("referenceId"), str) \
                    or sub.get("method") not in ("GET", "POST", "PATCH", "DELETE"):
                raise ApiError(400, "INVALID_INPUT",
                               "each subrequest needs a method, a url and a referenceId")
            path = urlsplit(sub["url"]).path
            if not path.startswith(f"/services/data/{version}/"):
                raise ApiError(400, "INVALID_INPUT",
                               f"subrequest url must start with /services/data/{version}/")
            if re.search(r"/(query|queryAll)(/|$)", path):
                queries += 1
        if queries > COMPOSITE_MAX_QUERIES:
            raise ApiError(400, "LIMIT_EXCEEDED",
                           f"Composite requests can have up to {COMPOSITE_MAX_QUERIES} query "
                           "operations")
        responses = []
        for sub in subrequests:
            parts = urlsplit(sub["url"])
            raw = json.dumps(sub["body"]).encode() if "body" in sub else b""
            try:
                extra = {str(k).lower(): str(v) for k, v in (sub.get("httpHeaders") or {}).items()}
                answer = self._dispatch(sub["method"], parts.path, parts.query,
                                        {**call.headers, **extra}, raw)
            except ApiError as err:
                answer = Answer(err.status, err.body())
            responses.append({
                "body": answer.body if answer.status != 204 else None,
                "httpHeaders": {},
                "httpStatusCode": answer.status,
                "referenceId": sub["referenceId"],
            })
        return Answer(200, {"compositeResponse": responses})

    def _collection_records(self, call: _HttpCall) -> tuple[list[Any], bool]:
        body = _json_body(call.body)
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records:
            raise ApiError(400, "INVALID_INPUT", "records is required")
        if len(records) > COLLECTION_MAX_RECORDS:
            raise ApiError(400, "EXCEEDED_ID_LIMIT",
                           f"record limit reached. cannot submit more than "
                           f"{COLLECTION_MAX_RECORDS} records into this call")
        for record in records:
            if not isinstance(record, dict):
                raise ApiError(400, "JSON_PARSER_ERROR", "each record must be a JSON object")
            for name, value in record.items():
                if name in ("attributes", "id", "Id"):
                    continue
                sobject = (record.get("attributes") or {}).get("type")
                table = self._tables.get(str(sobject).lower()) if sobject else None
                spec = table.spec.field(name) if table is not None else None
                if spec is not None:
                    _check_json_type(spec, value)  # a body of the wrong types is refused whole
        return records, bool(body.get("allOrNone", False))

    def _record_changes(self, table: _Table, record: dict[str, Any]
                        ) -> tuple[dict[str, Value], dict[str, Any] | None]:
        """The record's fields, typed and checked as Salesforce saves them; or its error."""
        changes: dict[str, Value] = {}
        for name, value in record.items():
            if name in ("attributes", "id", "Id"):
                continue
            spec = table.spec.field(name)
            if spec is None:
                return {}, {"statusCode": "INVALID_FIELD",
                            "message": f"No such column '{name}' on sobject of type "
                                       f"{table.spec.name}", "fields": [name]}
            if spec.name in READ_ONLY_FIELDS:
                return {}, {"statusCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
                            "message": f"Unable to create/update fields: {spec.name}. Please "
                                       "check the security settings of this field and verify "
                                       "that it is read/write for your profile or permission "
                                       "set.", "fields": [spec.name]}
            if spec.type in ("double", "currency", "percent") and value is not None:
                number = round(float(value), NUMBER_SCALE)
                if abs(number) >= 10 ** (NUMBER_PRECISION - NUMBER_SCALE):
                    return {}, {"statusCode": "NUMBER_OUTSIDE_VALID_RANGE",
                                "message": f"{spec.label}: value outside of valid range on "
                                           f"numeric field: {value}", "fields": [spec.name]}
                changes[spec.name] = number
                continue
            if spec.type in ("id", "reference") and value is not None \
                    and not _ID_RE.match(str(value)):
                return {}, {"statusCode": "MALFORMED_ID",
                            "message": f"{spec.label}: id value of incorrect type: {value}",
                            "fields": [spec.name]}
            changes[spec.name] = self._coerce(table, spec.name, value)
        return changes, None

    def _mixed_dml(self, records: list[Any]) -> dict[str, Any] | None:
        types = {str((r.get("attributes") or {}).get("type") or "") for r in records}
        setup = sorted(t for t in types if t in SETUP_OBJECTS)
        other = sorted(t for t in types if t not in SETUP_OBJECTS and t)
        if setup and other:
            return {"statusCode": "MIXED_DML_OPERATION",
                    "message": f"DML operation on setup object is not permitted after you have "
                               f"updated a non-setup object (or vice versa): {setup[0]}, "
                               f"original object: {other[0]}", "fields": []}
        return None

    def _collection_update(self, call: _HttpCall) -> Answer:
        records, all_or_none = self._collection_records(call)
        mixed = self._mixed_dml(records)
        results: list[dict[str, Any]] = []
        planned: list[tuple[_Table, _Row, dict[str, Value]]] = []
        for record in records:
            sobject = (record.get("attributes") or {}).get("type")
            record_id = record.get("id") or record.get("Id")
            error: dict[str, Any] | None = mixed
            table = self._tables.get(str(sobject).lower()) if sobject else None
            row = table.by_id.get(str(record_id)) if table is not None else None
            if error is not None:
                pass
            elif table is None:
                error = {"statusCode": "INVALID_TYPE", "message": "sObject type "
                         f"'{sobject}' is not supported.", "fields": []}
            elif record_id is None or not _ID_RE.match(str(record_id)):
                error = {"statusCode": "MALFORMED_ID", "message": f"bad id {record_id}",
                         "fields": ["Id"]}
            elif row is None or self._deleted(table, row):
                error = {"statusCode": "INVALID_CROSS_REFERENCE_KEY",
                         "message": "invalid cross reference id", "fields": []}
            else:
                changes, error = self._record_changes(table, record)
                reason = self.faults.reject_records.get(row.id)
                if error is None and reason is not None:
                    error = {"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                             "message": reason, "fields": []}
                if error is None:
                    planned.append((table, row, changes))
            results.append({"id": record_id, "success": error is None,
                            "errors": [error] if error else []})
        if all_or_none and any(not r["success"] for r in results):
            return Answer(200, _rolled_back(results))
        for table, row, changes in planned:
            for name, value in changes.items():
                row.values[table.position(name)] = value
            self._apply_rules(table, row, changes)
            self._touch(table, row, None)
        return Answer(200, results)

    def _collection_create(self, call: _HttpCall) -> Answer:
        records, all_or_none = self._collection_records(call)
        mixed = self._mixed_dml(records)
        results: list[dict[str, Any]] = []
        planned: list[tuple[_Table, dict[str, Value], int]] = []
        for record in records:
            sobject = (record.get("attributes") or {}).get("type")
            table = self._tables.get(str(sobject).lower()) if sobject else None
            error: dict[str, Any] | None = mixed
            changes: dict[str, Value] = {}
            if error is not None:
                pass
            elif table is None:
                error = {"statusCode": "INVALID_TYPE", "message": "sObject type "
                         f"'{sobject}' is not supported.", "fields": []}
            elif record.get("id") or record.get("Id"):
                error = {"statusCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
                         "message": "cannot specify Id in an insert call", "fields": ["Id"]}
            else:
                changes, error = self._record_changes(table, record)
                given = {k.lower() for k in changes}
                required = [f.name for f in table.spec.fields
                            if not f.nillable and f.type != "boolean"
                            and f.name not in READ_ONLY_FIELDS and f.name.lower() not in given]
                if error is None and required:
                    error = {"statusCode": "REQUIRED_FIELD_MISSING",
                             "message": f"Required fields are missing: [{', '.join(required)}]",
                             "fields": required}
                if error is None and table.spec.name == "ForecastingQuota":
                    error = self._duplicate_quota(table, changes, planned)
            results.append({"id": None, "success": error is None,
                            "errors": [error] if error else []})
            if error is None and table is not None:
                planned.append((table, changes, len(results) - 1))
        if all_or_none and any(not r["success"] for r in results):
            return Answer(200, _rolled_back(results))
        for table, changes, index in planned:
            results[index]["id"] = self.create(table.spec.name, changes)
        return Answer(200, results)

    def _duplicate_quota(self, table: _Table, changes: dict[str, Value],
                         planned: list[tuple[_Table, dict[str, Value], int]]
                         ) -> dict[str, Any] | None:
        """One quota per owner, start date and forecasting type, as Salesforce enforces."""
        def key(values: Mapping[str, Value]) -> tuple[Any, ...]:
            lowered = {k.lower(): v for k, v in values.items()}
            owner = lowered.get("quotaownerid")
            kind = lowered.get("forecastingtypeid")
            return (str(owner)[:15] if owner else None, lowered.get("startdate"),
                    str(kind)[:15] if kind else None)

        wanted = key(changes)
        existing = [key({f.name: table.get(row, f.name) for f in table.spec.fields})
                    for row in table.rows]
        existing += [key(other) for t, other, _ in planned if t is table]
        if wanted in existing:
            return {"statusCode": "DUPLICATE_VALUE",
                    "message": "duplicate value found: a quota for this owner, period and "
                               "forecast type already exists", "fields": []}
        return None

    # -- Bulk API 2.0 query jobs ------------------------------------------------------------

    def _create_job(self, call: _HttpCall) -> Answer:
        body = _json_body(call.body)
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "request body is not valid JSON")
        operation = body.get("operation")
        if operation not in ("query", "queryAll"):
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        soql = body.get("query")
        if not isinstance(soql, str) or not soql.strip():
            raise ApiError(400, "INVALIDJOB", "InvalidJob : query is required")
        if re.match(r"\s*select\s+count\s*\(", soql, re.I):
            raise ApiError(400, "INVALIDJOB",
                           "InvalidJob : Aggregate Relationship queries and aggregate "
                           "functions are not supported by Bulk API 2.0")
        table, fields, rows, _ = self.run_soql(soql, include_deleted=operation == "queryAll")
        job_id = salesforce_id("750", len(self._jobs) + 1)
        job = _BulkJob(job_id, operation, table, fields, rows, call.params["v"], self._now_ms(),
                       column_delimiter=str(body.get("columnDelimiter") or "COMMA"),
                       line_ending=str(body.get("lineEnding") or "LF"))
        if job.column_delimiter != "COMMA":
            raise ApiError(400, "INVALIDJOB", "InvalidJob : only COMMA is simulated")
        self._jobs[job_id] = job
        return Answer(200, self._job_info(job, created=True))

    def _job_info(self, job: _BulkJob, *, created: bool = False) -> dict[str, Any]:
        info: dict[str, Any] = {
            "id": job.id,
            "operation": job.operation,
            "object": job.table.spec.name,
            "createdById": salesforce_id("005", 1),
            "createdDate": rest_datetime(job.created_ms),
            "systemModstamp": rest_datetime(job.created_ms),
            "state": job.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(job.version[1:]),
            "jobType": "V2Query",
            "lineEnding": job.line_ending,
            "columnDelimiter": job.column_delimiter,
        }
        if not created:
            done = job.state == "JobComplete"
            info.update({
                "numberRecordsProcessed": len(job.rows) if done else 0,
                "retries": 0,
                "totalProcessingTime": 334 if done else 0,
                "isPkChunkingSupported": True,
            })
        return info

    def _job(self, call: _HttpCall) -> _BulkJob:
        job = self._jobs.get(call.params["job"])
        if job is None:
            raise _not_found()
        return job

    def _get_job(self, call: _HttpCall) -> Answer:
        job = self._job(call)
        if job.state in ("UploadComplete", "InProgress"):
            job.polls += 1
            job.state = ("InProgress" if job.polls <= self.faults.bulk_polls_in_progress
                         else "JobComplete")
        return Answer(200, self._job_info(job))

    def _patch_job(self, call: _HttpCall) -> Answer:
        job = self._job(call)
        body = _json_body(call.body)
        if not isinstance(body, dict) or body.get("state") != "Aborted":
            raise ApiError(400, "INVALIDJOBSTATE", "a query job can only be set to Aborted")
        if job.state == "JobComplete":
            raise ApiError(400, "INVALIDJOBSTATE", "the job has completed")
        job.state = "Aborted"
        return Answer(200, self._job_info(job))

    def _delete_job(self, call: _HttpCall) -> Answer:
        job = self._job(call)
        del self._jobs[job.id]
        return Answer(204, None)

    def _job_results(self, call: _HttpCall) -> Answer:
        job = self._job(call)
        if job.version != call.params["v"]:
            raise ApiError(409, "INVALIDJOB", "use the API version the job was created with")
        if job.state != "JobComplete":
            raise ApiError(412, "JOB_NOT_COMPLETE",
                           "can only download query results of successfully completed bulk "
                           f"job with status: JOB_COMPLETE. Current status: {job.state.upper()}")
        raw_locator = (call.query.get("locator") or [""])[0]
        start = _decode_locator(raw_locator) if raw_locator else 0
        raw_max = (call.query.get("maxRecords") or [str(BULK_RESULTS_DEFAULT)])[0]
        try:
            max_records = int(raw_max)
        except ValueError:
            raise ApiError(400, "INVALIDJOB", f"invalid maxRecords: {raw_max}") from None
        if max_records < 1:
            raise ApiError(400, "INVALIDJOB", f"invalid maxRecords: {raw_max}")
        chunk = job.rows[start:start + max_records]
        buffer = io.StringIO()
        writer = csv.writer(buffer, quoting=csv.QUOTE_ALL,
                            lineterminator="\r\n" if job.line_ending == "CRLF" else "\n")
        writer.writerow(job.fields)
        for row in chunk:
            writer.writerow(self._csv_row(job.table, row, job.fields))
        end = start + len(chunk)
        locator = _encode_locator(end) if end < len(job.rows) else "null"
        return Answer(200, buffer.getvalue(), {
            "Sforce-Locator": locator,
            "Sforce-NumberOfRecords": str(len(chunk)),
        }, "text/csv")

    # -- ASGI -------------------------------------------------------------------------------

    def asgi_app(self) -> ASGIApp:
        """The org as an ASGI application (Starlette)."""
        if self._app is None:
            async def endpoint(request: Request) -> Response:
                raw = await request.body()
                with self._lock:
                    delay = self._delay_for() if request.url.path.startswith("/services/data") \
                        else 0.0
                if delay:
                    await asyncio.sleep(delay)
                answer = self.handle(request.method, request.url.path, request.url.query,
                                     dict(request.headers), raw)
                if answer.status == 204:
                    return Response(status_code=204, headers=answer.headers)
                if isinstance(answer.body, str):
                    return Response(answer.body, status_code=answer.status,
                                    headers=answer.headers, media_type=answer.media_type)
                return Response(json.dumps(answer.body, separators=(",", ":")),
                                status_code=answer.status, headers=answer.headers,
                                media_type=answer.media_type)

            methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
            self._app = Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])
        return self._app


@dataclass
class _HttpCall:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


def _check_version(v: str) -> None:
    number = float(v[1:])
    if not MIN_API_VERSION <= number <= MAX_API_VERSION:
        raise _not_found()


def _rolled_back(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for result in results:
        if result["success"]:
            result["success"] = False
            result["errors"] = [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                 "message": "Record rolled back because not all records were "
                                            "valid and the request was using AllOrNone header",
                                 "fields": []}]
    return results


def _is_record_write(method: str, path: str) -> bool:
    """Whether a request writes records (sObject Collections or sObject rows)."""
    if method not in ("POST", "PATCH", "DELETE"):
        return False
    return re.search(r"/services/data/v\d+\.\d/(composite/sobjects|sobjects/\w+)(/|$)",
                     path) is not None


def _records_in(raw: bytes) -> int:
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        return 0
    records = body.get("records") if isinstance(body, dict) else None
    return len(records) if isinstance(records, list) else 1


def _check_json_type(spec: FieldSpec, value: Any) -> None:
    """Refuse a value JSON cannot bind to the field's type, as Salesforce's parser does."""
    if value is None:
        return
    wanted = {"double": "double", "currency": "double", "percent": "double", "int": "int",
              "boolean": "boolean"}.get(spec.type)
    if wanted is None:
        return
    ok = isinstance(value, bool) if wanted == "boolean" else (
        isinstance(value, int | float) and not isinstance(value, bool)
        and (wanted == "double" or float(value).is_integer())
    )
    if not ok and wanted != "boolean" and isinstance(value, str):
        try:
            number = float(value)
            ok = number == number and (wanted == "double" or number.is_integer())
        except ValueError:
            ok = False
    if not ok:
        kind = "VALUE_STRING" if isinstance(value, str) else \
            "VALUE_TRUE" if value is True else "VALUE_FALSE" if value is False else \
            "VALUE_NUMBER_FLOAT" if isinstance(value, float) else "START_OBJECT"
        raise ApiError(400, "JSON_PARSER_ERROR",
                       f"Cannot deserialize instance of {wanted} from {kind} value {value} or "
                       f"request may be missing a required field (field {spec.name})")


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body is not valid JSON") from None


def _batch_size(options: str) -> int:
    match = re.search(r"batchSize\s*=\s*(\d+)", options, re.I)
    if match is None:
        return QUERY_BATCH_DEFAULT
    return min(QUERY_BATCH_MAX, max(QUERY_BATCH_MIN, int(match.group(1))))


def _encode_locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _decode_locator(locator: str) -> int:
    try:
        padded = locator + "=" * (-len(locator) % 4)
        return int(base64.b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "INVALIDLOCATOR", f"invalid locator: {locator}") from None


_SOAP_TYPES: dict[str, str] = {
    "id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "datetime": "xsd:dateTime",
    "date": "xsd:date", "int": "xsd:int", "double": "xsd:double", "currency": "xsd:double",
    "percent": "xsd:double",
}


def _field_describe(spec: FieldSpec) -> dict[str, Any]:
    numeric = spec.type in ("int", "double", "currency", "percent")
    return {
        "aggregatable": spec.type != "textarea",
        "autoNumber": False,
        "byteLength": spec.length * 3,
        "calculated": False,
        "createable": spec.name not in ("Id", "IsDeleted", "CreatedDate", "LastModifiedDate",
                                        "SystemModstamp", "CreatedById", "Name", "IsClosed",
                                        "IsWon", "IsArchived"),
        "custom": spec.custom,
        "defaultValue": None,
        "digits": 9 if spec.type == "int" else 0,
        "filterable": spec.filterable,
        "groupable": spec.type not in ("textarea", "double", "currency", "percent", "datetime"),
        "idLookup": spec.name == "Id",
        "label": spec.label or spec.name,
        "length": spec.length,
        "name": spec.name,
        "nillable": spec.nillable,
        "picklistValues": [
            {"active": True, "defaultValue": False, "label": value, "validFor": None,
             "value": value} for value in spec.picklist
        ],
        "precision": 18 if numeric and spec.type != "int" else 0,
        "referenceTo": list(spec.reference_to),
        "relationshipName": (spec.name[:-2] if spec.type == "reference" and
                             spec.name.endswith("Id") else
                             spec.name[:-3] + "__r" if spec.type == "reference" else None),
        "scale": 2 if spec.type in ("currency", "double", "percent") else 0,
        "soapType": _SOAP_TYPES.get(spec.type, "xsd:string"),
        "sortable": spec.type != "textarea",
        "type": spec.type,
        "unique": False,
        "updateable": spec.name not in ("Id", "IsDeleted", "CreatedDate", "LastModifiedDate",
                                        "SystemModstamp", "CreatedById", "Name", "IsClosed",
                                        "IsWon", "IsArchived"),
    }


def _global_entry(spec: SObjectSpec, version: str) -> dict[str, Any]:
    base = f"/services/data/{version}/sobjects/{spec.name}"
    return {
        "activateable": False, "createable": True, "custom": False, "customSetting": False,
        "deletable": spec.name not in ("User", "UserRole"), "deprecatedAndHidden": False,
        "feedEnabled": False, "keyPrefix": spec.key_prefix, "label": spec.label,
        "labelPlural": spec.label + "s", "layoutable": True, "mergeable": False,
        "mruEnabled": True, "name": spec.name, "queryable": True, "replicateable": True,
        "retrieveable": True, "searchable": True, "triggerable": True, "undeletable": True,
        "updateable": True,
        "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"},
    }


def _describe(spec: SObjectSpec, version: str) -> dict[str, Any]:
    out = _global_entry(spec, version)
    out.update({
        "fields": [_field_describe(f) for f in spec.fields],
        "childRelationships": [],
        "recordTypeInfos": [],
        "supportedScopes": [],
    })
    return out


def _json_value(kind: FieldType, value: Value) -> Any:
    if value is None:
        return None
    if kind == "datetime" and isinstance(value, int):
        return rest_datetime(value)
    if kind == "date" and isinstance(value, date):
        return value.isoformat()
    return value


def _csv_value(kind: FieldType, value: Value) -> str:
    if value is None:
        return ""
    if kind == "datetime" and isinstance(value, int):
        return bulk_datetime(value)
    if kind == "date" and isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _row_sort_key(kind: FieldType, position: int, row: _Row) -> Any:
    return _sort_key(kind, row.values[position])


def _sort_key(kind: FieldType, value: Value) -> Any:
    if kind in ("string", "picklist", "textarea", "email", "phone") and isinstance(value, str):
        return value.casefold()
    if kind in ("id", "reference") and isinstance(value, str):
        return value[:15]
    return value


# ---------------------------------------------------------------------------------------
# SOQL
# ---------------------------------------------------------------------------------------

_DATETIME_LITERAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2})")
_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<string>'(?:[^'\\]|\\.)*')
    |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2}))
    |(?P<date>\d{4}-\d{2}-\d{2})
    |(?P<number>-?\d+(?:\.\d+)?)
    |(?P<op><=|>=|!=|<>|=|<|>)
    |(?P<punct>[(),])
    |(?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
    """,
    re.X,
)
_KEYWORDS = frozenset({
    "select", "from", "where", "and", "or", "not", "in", "like", "order", "by", "asc", "desc",
    "nulls", "first", "last", "limit", "offset", "null", "true", "false", "count",
})


def parse_datetime_literal(text: str) -> int | None:
    """Epoch millis of a SOQL dateTime literal (or an ISO datetime); None if it is not one."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_ms(moment)


@dataclass
class _Tok:
    kind: str
    text: str
    column: int  # 1-based, as Salesforce reports it

    @property
    def lower(self) -> str:
        return self.text.lower()


def _malformed(soql: str, tok: _Tok | None, message: str) -> ApiError:
    column = tok.column if tok is not None else len(soql) + 1
    caret = " " * (column - 1) + "^"
    return ApiError(400, "MALFORMED_QUERY",
                    f"\n{soql}\n{caret}\nERROR at Row:1:Column:{column}\n{message}")


def _tokenize(soql: str) -> list[_Tok]:
    out: list[_Tok] = []
    position = 0
    while position < len(soql):
        match = _TOKEN.match(soql, position)
        if match is None:
            tok = _Tok("bad", soql[position], position + 1)
            raise _malformed(soql, tok, f"unexpected token: {soql[position]!r}")
        kind = match.lastgroup or "bad"
        if kind != "space":
            out.append(_Tok(kind, match.group(), position + 1))
        position = match.end()
    return out


Predicate = Callable[[_Row], bool]


@dataclass
class ParsedQuery:
    table: _Table
    fields: list[str]
    count: bool
    where: Predicate
    order: list[tuple[int, bool, bool, FieldType]]
    limit: int | None
    offset: int


class _Parser:
    def __init__(self, soql: str, tables: Mapping[str, _Table]) -> None:
        if len(soql) > SOQL_MAX_LENGTH:
            raise ApiError(400, "MALFORMED_QUERY",
                           f"Query is too long: the maximum length is {SOQL_MAX_LENGTH} characters")
        self.soql = soql
        self.tables = tables
        self.toks = _tokenize(soql)
        self.i = 0
        self.table: _Table | None = None

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise _malformed(self.soql, None, "unexpected end of query")
        self.i += 1
        return tok

    def accept(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind in ("ident", "punct", "op") and tok.lower == word:
            self.i += 1
            return True
        return False

    def expect(self, word: str) -> _Tok:
        tok = self.next()
        if tok.lower != word:
            raise _malformed(self.soql, tok, f"unexpected token: {tok.text}")
        return tok

    def field_ref(self, tok: _Tok) -> FieldSpec:
        assert self.table is not None
        if tok.kind != "ident" or tok.lower in _KEYWORDS:
            raise _malformed(self.soql, tok, f"unexpected token: {tok.text}")
        spec = self.table.spec.field(tok.text)
        if spec is None:
            caret = " " * (tok.column - 1) + "^"
            if "." in tok.text:
                message = (f"Didn't understand relationship '{tok.text.split('.')[0]}' in field "
                           f"path. If you are attempting to use a custom relationship, be sure "
                           f"to append the '__r' after the custom relationship name. Please "
                           f"reference your WSDL or the describe call for the appropriate names.")
            else:
                message = (f"No such column '{tok.text}' on entity '{self.table.spec.name}'. If "
                           f"you are attempting to use a custom field, be sure to append the "
                           f"'__c' after the custom field name. Please reference your WSDL or "
                           f"the describe call for the appropriate names.")
            raise ApiError(400, "INVALID_FIELD",
                           f"\n{self.soql}\n{caret}\nERROR at Row:1:Column:{tok.column}\n{message}")
        return spec

    def parse(self) -> ParsedQuery:
        self.expect("select")
        select_toks: list[_Tok] = []
        counting = False
        tok = self.peek()
        if tok is not None and tok.lower == "count":
            self.next()
            self.expect("(")
            self.expect(")")
            counting = True
        else:
            while True:
                select_toks.append(self.next())
                if not self.accept(","):
                    break
        self.expect("from")
        name_tok = self.next()
        table = self.tables.get(name_tok.lower) if name_tok.kind == "ident" else None
        if table is None:
            caret = " " * (name_tok.column - 1) + "^"
            raise ApiError(400, "INVALID_TYPE",
                           f"\n{self.soql}\n{caret}\nERROR at Row:1:Column:{name_tok.column}\n"
                           f"sObject type '{name_tok.text}' is not supported. If you are "
                           f"attempting to use a custom object, be sure to append the '__c' after "
                           f"the entity name. Please reference your WSDL or the describe call for "
                           f"the appropriate names.")
        self.table = table
        fields: list[str] = []
        seen: set[str] = set()
        for tok in select_toks:
            spec = self.field_ref(tok)
            if spec.name.lower() in seen:
                raise _malformed(self.soql, tok, f"duplicate field selected: {spec.name}")
            seen.add(spec.name.lower())
            fields.append(spec.name)
        where: Predicate = _always
        if self.accept("where"):
            where = self.expression()
        order: list[tuple[int, bool, bool, FieldType]] = []
        if self.accept("order"):
            self.expect("by")
            while True:
                spec = self.field_ref(self.next())
                if not spec.filterable:
                    raise ApiError(400, "INVALID_FIELD",
                                   f"field '{spec.name}' can not be sorted in a query call")
                descending = False
                if self.accept("desc"):
                    descending = True
                else:
                    self.accept("asc")
                nulls_last = False
                if self.accept("nulls"):
                    if self.accept("last"):
                        nulls_last = True
                    else:
                        self.expect("first")
                order.append((table.position(spec.name), descending, nulls_last, spec.type))
                if not self.accept(","):
                    break
        limit: int | None = None
        offset = 0
        if self.accept("limit"):
            limit = self.integer()
        if self.accept("offset"):
            offset = self.integer()
        trailing = self.peek()
        if trailing is not None:
            raise _malformed(self.soql, trailing, f"unexpected token: {trailing.text}")
        return ParsedQuery(table, fields, counting, where, order, limit, offset)

    def integer(self) -> int:
        tok = self.next()
        if tok.kind != "number" or not tok.text.isdigit():
            raise _malformed(self.soql, tok, f"unexpected token: {tok.text}")
        return int(tok.text)

    def expression(self) -> Predicate:
        terms = [self.unary()]
        joiner: str | None = None
        while True:
            tok = self.peek()
            if tok is None or tok.lower not in ("and", "or"):
                break
            if joiner is not None and tok.lower != joiner:
                raise _malformed(self.soql, tok,
                                 f"unexpected token: {tok.text.upper()} (use parentheses to "
                                 "combine AND and OR)")
            joiner = tok.lower
            self.next()
            terms.append(self.unary())
        if len(terms) == 1:
            return terms[0]
        if joiner == "and":
            return lambda row: all(term(row) for term in terms)
        return lambda row: any(term(row) for term in terms)

    def unary(self) -> Predicate:
        if self.accept("not"):
            inner = self.unary()
            return lambda row: not inner(row)
        if self.accept("("):
            inner = self.expression()
            self.expect(")")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        assert self.table is not None
        field_tok = self.next()
        spec = self.field_ref(field_tok)
        if not spec.filterable:
            raise ApiError(400, "INVALID_FIELD",
                           f"\n{self.soql}\nERROR at Row:1:Column:{field_tok.column}\nfield "
                           f"'{spec.name}' can not be filtered in query call")
        position = self.table.position(spec.name)
        negate_in = False
        if self.accept("not"):
            tok = self.peek()
            if tok is None or tok.lower != "in":
                raise _malformed(self.soql, tok, "unexpected token: NOT")
            negate_in = True
        tok = self.next()
        if tok.lower == "in":
            self.expect("(")
            values = [self.literal(spec)]
            while self.accept(","):
                values.append(self.literal(spec))
            self.expect(")")
            keys = {_compare_key(spec.type, v) for v in values}
            if negate_in:
                return lambda row: _compare_key(spec.type, row.values[position]) not in keys
            return lambda row: _compare_key(spec.type, row.values[position]) in keys
        if tok.lower == "like":
            pattern_tok = self.next()
            if pattern_tok.kind != "string":
                raise _malformed(self.soql, pattern_tok, f"unexpected token: {pattern_tok.text}")
            regex = re.compile(
                "^" + "".join(".*" if c == "%" else "." if c == "_" else re.escape(c)
                              for c in _unquote(pattern_tok.text)) + "$", re.I | re.S)
            return lambda row: isinstance(row.values[position], str) and bool(
                regex.match(str(row.values[position])))
        if tok.kind != "op":
            raise _malformed(self.soql, tok, f"unexpected token: {tok.text}")
        op = "!=" if tok.text == "<>" else tok.text
        value = self.literal(spec)
        if value is None:
            if op == "=":
                return lambda row: row.values[position] is None
            if op == "!=":
                return lambda row: row.values[position] is not None
            raise _malformed(self.soql, tok, f"invalid operator on null: {op}")
        key = _compare_key(spec.type, value)
        if op == "=":
            return lambda row: _compare_key(spec.type, row.values[position]) == key
        if op == "!=":
            return lambda row: _compare_key(spec.type, row.values[position]) != key
        compare: Callable[[Any, Any], bool] = {
            "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
        }[op]
        if spec.type == "boolean":
            raise _malformed(self.soql, tok, f"invalid operator on boolean field: {op}")

        def ordered(row: _Row) -> bool:
            stored = row.values[position]
            return stored is not None and compare(_compare_key(spec.type, stored), key)

        return ordered

    def literal(self, spec: FieldSpec) -> Value:
        tok = self.next()
        kind = spec.type
        if tok.kind == "ident" and tok.lower == "null":
            return None
        if kind == "datetime":
            if tok.kind != "datetime":
                raise self._type_error(spec, tok, "dateTime")
            parsed = parse_datetime_literal(tok.text)
            assert parsed is not None
            return parsed
        if kind == "date":
            if tok.kind != "date":
                raise self._type_error(spec, tok, "date")
            return date.fromisoformat(tok.text)
        if kind == "boolean":
            if tok.kind != "ident" or tok.lower not in ("true", "false"):
                raise self._type_error(spec, tok, "boolean")
            return tok.lower == "true"
        if kind in ("int", "double", "currency", "percent"):
            if tok.kind != "number":
                raise self._type_error(spec, tok, "number")
            return float(tok.text) if "." in tok.text else int(tok.text)
        if tok.kind != "string":
            raise ApiError(400, "MALFORMED_QUERY",
                           f"\n{self.soql}\nERROR at Row:1:Column:{tok.column}\nvalue of filter "
                           f"criterion for field '{spec.name}' must be of type {kind} and should "
                           "be enclosed in quotes")
        text = _unquote(tok.text)
        if len(text) > WHERE_STRING_MAX:
            raise _malformed(self.soql, tok, f"String too long (max {WHERE_STRING_MAX})")
        if kind in ("id", "reference"):
            if not _ID_RE.match(text):
                raise ApiError(400, "INVALID_QUERY_FILTER_OPERATOR",
                               f"\n{self.soql}\nERROR at Row:1:Column:{tok.column}\ninvalid ID "
                               f"field: {text}")
        return text

    def _type_error(self, spec: FieldSpec, tok: _Tok, wanted: str) -> ApiError:
        return ApiError(400, "INVALID_FIELD",
                        f"\n{self.soql}\nERROR at Row:1:Column:{tok.column}\nvalue of filter "
                        f"criterion for field '{spec.name}' must be of type {wanted} and should "
                        "not be enclosed in quotes")


def _always(row: _Row) -> bool:
    return True


def _unquote(text: str) -> str:
    inner = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1),
                                                                              m.group(1)), inner)


def _compare_key(kind: FieldType, value: Value) -> Any:
    if value is None:
        return None
    if kind in ("id", "reference") and isinstance(value, str):
        return value[:15]
    if kind in ("string", "picklist", "textarea", "email", "phone") and isinstance(value, str):
        return value.casefold()
    if kind in ("double", "currency", "percent", "int") and not isinstance(value, bool):
        return float(value)  # type: ignore[arg-type]
    return value


def parse_soql(soql: str, tables: Mapping[str, _Table]) -> ParsedQuery:
    """Parse one SOQL statement against the org's tables; raises ApiError as Salesforce would."""
    return _Parser(soql, tables).parse()


# ---------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------


class RunningOrg:
    """An org served by uvicorn over HTTPS in a daemon thread; a context manager that stops it."""

    def __init__(self, org: SalesforceOrg, server: uvicorn.Server, thread: threading.Thread,
                 url: str, ca_bundle: Path, workdir: tempfile.TemporaryDirectory[str]) -> None:
        self.org = org
        self.url = url
        self.ca_bundle = ca_bundle  # PEM of the CA that signed the server certificate
        self._server = server
        self._thread = thread
        self._workdir = workdir

    def stop(self) -> None:
        """Stop serving, wait for the server thread and remove the certificate files."""
        self._server.should_exit = True
        # Idle keep-alive TLS connections would hold a graceful shutdown until their clients
        # answer the TLS close; a test double need not wait for them.
        self._server.force_exit = True
        self._thread.join(timeout=10)
        self._workdir.cleanup()

    def __enter__(self) -> RunningOrg:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_org(
    org: SalesforceOrg, *, tls: trustme.CA, host: str = "127.0.0.1", port: int = 0
) -> RunningOrg:
    """Serve the org over HTTPS with a certificate from ``tls``; returns once it accepts."""
    workdir = tempfile.TemporaryDirectory(prefix="iskpi-salesforce-org-")
    folder = Path(workdir.name)
    cert = tls.issue_cert(host, "localhost", "127.0.0.1")
    cert_path, key_path, ca_path = folder / "server.pem", folder / "server.key", folder / "ca.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    tls.cert_pem.write_to_path(str(ca_path))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    bound = sock.getsockname()[1]
    url = f"https://{host}:{bound}"
    org.url = url
    config = uvicorn.Config(
        org.asgi_app(), log_level="warning", access_log=False, lifespan="off",
        timeout_keep_alive=30, ssl_certfile=str(cert_path), ssl_keyfile=str(key_path),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name=f"salesforce-org-{bound}")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            workdir.cleanup()
            raise RuntimeError("the simulated Salesforce org did not start")
        time.sleep(0.01)
    return RunningOrg(org, server, thread, url, ca_path, workdir)


def rows_as_dicts(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Query records without their ``attributes`` (handy in tests)."""
    return [{k: v for k, v in r.items() if k != "attributes"} for r in records]
