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
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from simulators.salesforce.ids import ID_RE, salesforce_id
from simulators.salesforce.schema import (
    NUMBER_PRECISION,
    NUMBER_SCALE,
    READ_ONLY_FIELDS,
    SETUP_OBJECTS,
    FieldSpec,
    SObjectSpec,
    describe_sobject,
    global_entry,
)
from simulators.salesforce.seed import generate_org_dataset
from simulators.salesforce.soql import parse_soql, select_rows
from simulators.salesforce.store import OrgStore, Row, Table
from simulators.salesforce.wire import (
    ApiError,
    Value,
    batch_size,
    csv_value,
    decode_locator,
    encode_locator,
    json_value,
    not_found,
    rest_datetime,
)
from simulators.server import RunningServer, TlsFiles, bind_socket, start_server

if TYPE_CHECKING:
    import trustme

MAX_API_VERSION = 62.0
MIN_API_VERSION = 20.0
COMPOSITE_MAX_SUBREQUESTS, COMPOSITE_MAX_QUERIES = 25, 5
COLLECTION_MAX_RECORDS = 200
BULK_RESULTS_DEFAULT = 50_000
ORG_ID = "00DHp0000000001AAA"


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
    request_limit_for_seconds: float | None = (
        None  # ... for this long after the first (None: forever)
    )
    # Every API request answers 403 REQUEST_LIMIT_EXCEEDED (ConcurrentPerOrgLongTxn: the org's
    # long-running requests are at their limit) for this long after the first one (None: off).
    concurrent_limit_for_seconds: float | None = None
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
    _concurrent_since: float | None = field(default=None, init=False, repr=False)
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


@dataclass
class _Cursor:
    rows: list[Row]
    table: Table
    fields: list[str]
    version: str


@dataclass
class _BulkJob:
    id: str
    operation: str
    table: Table
    fields: list[str]
    rows: list[Row]
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


class SalesforceOrg(OrgStore):
    """In-memory org served over HTTPS: the store, plus sessions, connected apps, faults, logs."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        daily_api_limit: int = 15_000,
        schema: Mapping[str, SObjectSpec] | None = None,
    ) -> None:
        self.daily_api_limit = daily_api_limit
        self.daily_api_used = 0
        self.faults = FaultPlan()
        self.request_log: list[tuple[str, str]] = []
        self.soql_log: list[str] = []  # every SOQL statement received (REST, composite, bulk)
        self.sessions: set[str] = set()
        self.apps: dict[str, ConnectedApp] = {}
        self.url = "https://127.0.0.1"  # set by serve_org
        self._cursors: dict[str, _Cursor] = {}
        self._jobs: dict[str, _BulkJob] = {}
        self._app: ASGIApp | None = None
        # Every record write request: ("records", "METHOD path", records in it).
        self.write_log: list[tuple[str, str, int]] = []
        super().__init__(clock=clock, schema=schema)

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

    def get(self, sobject: str, record_id: str) -> dict[str, Any]:
        """A record as the REST API renders it (every field describe lists)."""
        with self._lock:
            table, row = self._row(sobject, record_id)
            names = [f.name for f in table.spec.fields]
            return self._render(table, row, names, "v59.0")

    # -- rendering --------------------------------------------------------------------------

    def _render(self, table: Table, row: Row, names: Sequence[str], version: str) -> dict[str, Any]:
        spec = table.spec
        out: dict[str, Any] = {
            "attributes": {
                "type": spec.name,
                "url": f"/services/data/{version}/sobjects/{spec.name}/{row.id}",
            }
        }
        for name in names:
            position = table.index[name.lower()]
            out[name] = json_value(table.types[position], row.values[position])
        override = self.faults.malformed.get((spec.name, row.id))
        if override:
            for name in names:
                for key, value in override.items():
                    if key.lower() == name.lower():
                        out[name] = value
        return out

    def _csv_row(self, table: Table, row: Row, names: Sequence[str]) -> list[str]:
        out: list[str] = []
        override = self.faults.malformed.get((table.spec.name, row.id)) or {}
        lowered = {k.lower(): v for k, v in override.items()}
        for name in names:
            if name.lower() in lowered:
                raw = lowered[name.lower()]
                out.append("" if raw is None else str(raw))
                continue
            position = table.index[name.lower()]
            out.append(csv_value(table.types[position], row.values[position]))
        return out

    # -- HTTP: authentication, accounting, faults ------------------------------------------

    def _limit_header(self) -> dict[str, str]:
        if self.faults.omit_limit_header:
            return {}
        return {"Sforce-Limit-Info": f"api-usage={self.daily_api_used}/{self.daily_api_limit}"}

    def handle(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Answer:
        """Answer one HTTP request (the ASGI app and tests call this)."""
        with self._lock:
            self.request_log.append((method, path))
            plan = self.faults
            if path.rstrip("/") == "/services/oauth2/token":
                return self._token(method, body)
            if not path.startswith("/services/data"):
                return Answer(404, not_found().body())
            scheme, _, token = headers.get("authorization", "").partition(" ")
            if scheme.lower() not in ("bearer", "oauth") or token.strip() not in self.sessions:
                err = ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
                return Answer(401, err.body())
            if plan.request_limit_exceeded or self.daily_api_used >= self.daily_api_limit:
                err = ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                return Answer(403, err.body())
            plan._seen += 1
            if plan.concurrent_limit_for_seconds is not None:
                now = time.monotonic()
                if plan._concurrent_since is None:
                    plan._concurrent_since = now
                if now - plan._concurrent_since < plan.concurrent_limit_for_seconds:
                    plan.injected += 1
                    err = ApiError(
                        403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."
                    )
                    return Answer(403, err.body(), self._limit_header())
            if plan.request_limit_every and plan._seen % plan.request_limit_every == 0:
                now = time.monotonic()
                if plan._limited_since is None:
                    plan._limited_since = now
                if (
                    plan.request_limit_for_seconds is None
                    or now - plan._limited_since < plan.request_limit_for_seconds
                ):
                    plan.injected += 1
                    err = ApiError(
                        403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."
                    )
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
                            err = ApiError(
                                403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."
                            )
                            return Answer(403, err.body(), limit)
                        if plan.write_fault_status == 500:
                            err = ApiError(
                                500, "UNKNOWN_EXCEPTION", "An unexpected error occurred."
                            )
                            return Answer(500, err.body(), limit)
                        return Answer(
                            plan.write_fault_status, "Service Unavailable", limit, "text/html"
                        )
            if plan.server_error_burst > 0:
                plan.server_error_burst -= 1
                plan.injected += 1
                return Answer(503, "Service Unavailable", limit, "text/html")
            if plan.server_error_every and plan._seen % plan.server_error_every == 0:
                status = (503, 500, 502)[plan._server_errors % 3]
                plan._server_errors += 1
                plan.injected += 1
                if status == 500:
                    err = ApiError(
                        500,
                        "UNKNOWN_EXCEPTION",
                        "An unexpected error occurred. Please include this ErrorId "
                        "if you contact support: 1234567890-12345 (-1234567890)",
                    )
                    return Answer(500, err.body(), limit)
                return Answer(
                    status,
                    "Bad Gateway" if status == 502 else "Service Unavailable",
                    limit,
                    "text/html",
                )
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
            return Answer(
                405,
                [
                    {
                        "errorCode": "METHOD_NOT_ALLOWED",
                        "message": f"HTTP Method '{method}' not allowed. Allowed are POST",
                    }
                ],
            )
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type")
        if grant != "refresh_token":
            return Answer(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
            )
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            return Answer(
                400,
                {"error": "invalid_client_id", "error_description": "client identifier invalid"},
            )
        if form.get("client_secret") != app.client_secret:
            return Answer(
                400, {"error": "invalid_client", "error_description": "invalid client credentials"}
            )
        if form.get("refresh_token") != app.refresh_token:
            return Answer(
                400, {"error": "invalid_grant", "error_description": "expired access/refresh token"}
            )
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
        (
            "GET",
            r"/services/data/(?P<v>v\d+\.\d)/(?P<kind>query|queryAll)/(?P<locator>[\w-]+)/?",
            "_query_more",
        ),
        ("POST", r"/services/data/(?P<v>v\d+\.\d)/composite/?", "_composite"),
        ("PATCH", r"/services/data/(?P<v>v\d+\.\d)/composite/sobjects/?", "_collection_update"),
        ("POST", r"/services/data/(?P<v>v\d+\.\d)/composite/sobjects/?", "_collection_create"),
        ("POST", r"/services/data/(?P<v>v\d+\.\d)/jobs/query/?", "_create_job"),
        ("GET", r"/services/data/(?P<v>v\d+\.\d)/jobs/query/(?P<job>\w+)/?", "_get_job"),
        ("PATCH", r"/services/data/(?P<v>v\d+\.\d)/jobs/query/(?P<job>\w+)/?", "_patch_job"),
        ("DELETE", r"/services/data/(?P<v>v\d+\.\d)/jobs/query/(?P<job>\w+)/?", "_delete_job"),
        (
            "GET",
            r"/services/data/(?P<v>v\d+\.\d)/jobs/query/(?P<job>\w+)/results/?",
            "_job_results",
        ),
    )
    _COMPILED = tuple((m, re.compile(p + "$"), h) for m, p, h in _ROUTES)

    def _dispatch(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Answer:
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
            call = _HttpCall(
                method,
                path,
                params,
                parse_qs(query, keep_blank_values=True),
                {k.lower(): v for k, v in headers.items()},
                body,
            )
            answer: Answer = getattr(self, handler)(call)
            return answer
        if allowed:
            return Answer(
                405,
                [
                    {
                        "errorCode": "METHOD_NOT_ALLOWED",
                        "message": f"HTTP Method '{method}' not allowed. Allowed are "
                        f"{','.join(sorted(set(allowed)))}",
                    }
                ],
            )
        return Answer(404, not_found().body())

    def _versions(self, call: _HttpCall) -> Answer:
        return Answer(
            200, [{"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"}]
        )

    def _resources(self, call: _HttpCall) -> Answer:
        v = call.params["v"]
        return Answer(
            200,
            {
                name: f"/services/data/{v}/{name}"
                for name in ("sobjects", "query", "queryAll", "limits", "composite", "jobs")
            },
        )

    def _describe_global(self, call: _HttpCall) -> Answer:
        v = call.params["v"]
        return Answer(
            200,
            {
                "encoding": "UTF-8",
                "maxBatchSize": 200,
                "sobjects": [global_entry(t.spec, v) for t in self._tables.values()],
            },
        )

    def _describe(self, call: _HttpCall) -> Answer:
        table = self._tables.get(call.params["name"].lower())
        if table is None:
            raise not_found()
        return Answer(200, describe_sobject(table.spec, call.params["v"]))

    def _limits(self, call: _HttpCall) -> Answer:
        jobs_today = len(self._jobs)
        return Answer(
            200,
            {
                "DailyApiRequests": {
                    "Max": self.daily_api_limit,
                    "Remaining": max(0, self.daily_api_limit - self.daily_api_used),
                },
                "DailyBulkV2QueryFileStorageMB": {"Max": 976_562, "Remaining": 976_562},
                "DailyBulkV2QueryJobs": {"Max": 10_000, "Remaining": 10_000 - jobs_today},
            },
        )

    # -- query ------------------------------------------------------------------------------

    def run_soql(
        self, soql: str, *, include_deleted: bool
    ) -> tuple[Table, list[str], list[Row], bool]:
        """Parse and run a query: (table, selected field names, matching rows, is COUNT())."""
        self.soql_log.append(soql)
        parsed = parse_soql(soql, self._tables)
        rows = select_rows(parsed, include_deleted=include_deleted)
        return parsed.table, parsed.fields, rows, parsed.count

    def _query(self, call: _HttpCall) -> Answer:
        soql = (call.query.get("q") or [""])[0]
        if not soql.strip():
            raise ApiError(400, "MALFORMED_QUERY", "SOQL statements cannot be empty or null")
        include_deleted = call.params["kind"] == "queryAll"
        table, fields, rows, counting = self.run_soql(soql, include_deleted=include_deleted)
        if counting:
            return Answer(200, {"totalSize": len(rows), "done": True, "records": []})
        batch = batch_size(call.headers.get("sforce-query-options", ""))
        cursor = _Cursor(rows, table, fields, call.params["v"])
        return Answer(200, self._page(cursor, 0, batch, call.params["v"]))

    def _page(self, cursor: _Cursor, start: int, batch: int, version: str) -> dict[str, Any]:
        chunk = cursor.rows[start : start + batch]
        out: dict[str, Any] = {
            "totalSize": len(cursor.rows),
            "done": start + batch >= len(cursor.rows),
            "records": [
                self._render(cursor.table, row, cursor.fields, cursor.version) for row in chunk
            ],
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
        batch = batch_size(call.headers.get("sforce-query-options", ""))
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
            raise ApiError(
                400,
                "LIMIT_EXCEEDED",
                f"Composite requests can have up to {COMPOSITE_MAX_SUBREQUESTS} subrequests",
            )
        version = call.params["v"]
        queries = 0
        for sub in subrequests:
            if (
                not isinstance(sub, dict)
                or not isinstance(sub.get("url"), str)
                or not isinstance(sub.get("referenceId"), str)
                or sub.get("method") not in ("GET", "POST", "PATCH", "DELETE")
            ):
                raise ApiError(
                    400, "INVALID_INPUT", "each subrequest needs a method, a url and a referenceId"
                )
            path = urlsplit(sub["url"]).path
            if not path.startswith(f"/services/data/{version}/"):
                raise ApiError(
                    400,
                    "INVALID_INPUT",
                    f"subrequest url must start with /services/data/{version}/",
                )
            if re.search(r"/(query|queryAll)(/|$)", path):
                queries += 1
        if queries > COMPOSITE_MAX_QUERIES:
            raise ApiError(
                400,
                "LIMIT_EXCEEDED",
                f"Composite requests can have up to {COMPOSITE_MAX_QUERIES} query operations",
            )
        responses = []
        for sub in subrequests:
            parts = urlsplit(sub["url"])
            raw = json.dumps(sub["body"]).encode() if "body" in sub else b""
            try:
                extra = {str(k).lower(): str(v) for k, v in (sub.get("httpHeaders") or {}).items()}
                answer = self._dispatch(
                    sub["method"], parts.path, parts.query, {**call.headers, **extra}, raw
                )
            except ApiError as err:
                answer = Answer(err.status, err.body())
            responses.append(
                {
                    "body": answer.body if answer.status != 204 else None,
                    "httpHeaders": {},
                    "httpStatusCode": answer.status,
                    "referenceId": sub["referenceId"],
                }
            )
        return Answer(200, {"compositeResponse": responses})

    def _collection_records(self, call: _HttpCall) -> tuple[list[Any], bool]:
        body = _json_body(call.body)
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records:
            raise ApiError(400, "INVALID_INPUT", "records is required")
        if len(records) > COLLECTION_MAX_RECORDS:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than "
                f"{COLLECTION_MAX_RECORDS} records into this call",
            )
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

    def _record_changes(
        self, table: Table, record: dict[str, Any]
    ) -> tuple[dict[str, Value], dict[str, Any] | None]:
        """The record's fields, typed and checked as Salesforce saves them; or its error."""
        changes: dict[str, Value] = {}
        for name, value in record.items():
            if name in ("attributes", "id", "Id"):
                continue
            spec = table.spec.field(name)
            if spec is None:
                return {}, {
                    "statusCode": "INVALID_FIELD",
                    "message": f"No such column '{name}' on sobject of type {table.spec.name}",
                    "fields": [name],
                }
            if spec.name in READ_ONLY_FIELDS:
                return {}, {
                    "statusCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
                    "message": f"Unable to create/update fields: {spec.name}. Please "
                    "check the security settings of this field and verify "
                    "that it is read/write for your profile or permission "
                    "set.",
                    "fields": [spec.name],
                }
            if spec.type in ("double", "currency", "percent") and value is not None:
                number = round(float(value), NUMBER_SCALE)
                if abs(number) >= 10 ** (NUMBER_PRECISION - NUMBER_SCALE):
                    return {}, {
                        "statusCode": "NUMBER_OUTSIDE_VALID_RANGE",
                        "message": f"{spec.label}: value outside of valid range on "
                        f"numeric field: {value}",
                        "fields": [spec.name],
                    }
                changes[spec.name] = number
                continue
            if (
                spec.type in ("id", "reference")
                and value is not None
                and not ID_RE.match(str(value))
            ):
                return {}, {
                    "statusCode": "MALFORMED_ID",
                    "message": f"{spec.label}: id value of incorrect type: {value}",
                    "fields": [spec.name],
                }
            changes[spec.name] = self._coerce(table, spec.name, value)
        return changes, None

    def _mixed_dml(self, records: list[Any]) -> dict[str, Any] | None:
        types = {str((r.get("attributes") or {}).get("type") or "") for r in records}
        setup = sorted(t for t in types if t in SETUP_OBJECTS)
        other = sorted(t for t in types if t not in SETUP_OBJECTS and t)
        if setup and other:
            return {
                "statusCode": "MIXED_DML_OPERATION",
                "message": f"DML operation on setup object is not permitted after you have "
                f"updated a non-setup object (or vice versa): {setup[0]}, "
                f"original object: {other[0]}",
                "fields": [],
            }
        return None

    def _collection_update(self, call: _HttpCall) -> Answer:
        records, all_or_none = self._collection_records(call)
        mixed = self._mixed_dml(records)
        results: list[dict[str, Any]] = []
        planned: list[tuple[Table, Row, dict[str, Value]]] = []
        for record in records:
            sobject = (record.get("attributes") or {}).get("type")
            record_id = record.get("id") or record.get("Id")
            error: dict[str, Any] | None = mixed
            table = self._tables.get(str(sobject).lower()) if sobject else None
            row = table.by_id.get(str(record_id)) if table is not None else None
            if error is not None:
                pass
            elif table is None:
                error = {
                    "statusCode": "INVALID_TYPE",
                    "message": f"sObject type '{sobject}' is not supported.",
                    "fields": [],
                }
            elif record_id is None or not ID_RE.match(str(record_id)):
                error = {
                    "statusCode": "MALFORMED_ID",
                    "message": f"bad id {record_id}",
                    "fields": ["Id"],
                }
            elif row is None or self._deleted(table, row):
                error = {
                    "statusCode": "INVALID_CROSS_REFERENCE_KEY",
                    "message": "invalid cross reference id",
                    "fields": [],
                }
            else:
                changes, error = self._record_changes(table, record)
                reason = self.faults.reject_records.get(row.id)
                if error is None and reason is not None:
                    error = {
                        "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                        "message": reason,
                        "fields": [],
                    }
                if error is None:
                    planned.append((table, row, changes))
            results.append(
                {"id": record_id, "success": error is None, "errors": [error] if error else []}
            )
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
        planned: list[tuple[Table, dict[str, Value], int]] = []
        for record in records:
            sobject = (record.get("attributes") or {}).get("type")
            table = self._tables.get(str(sobject).lower()) if sobject else None
            error: dict[str, Any] | None = mixed
            changes: dict[str, Value] = {}
            if error is not None:
                pass
            elif table is None:
                error = {
                    "statusCode": "INVALID_TYPE",
                    "message": f"sObject type '{sobject}' is not supported.",
                    "fields": [],
                }
            elif record.get("id") or record.get("Id"):
                error = {
                    "statusCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
                    "message": "cannot specify Id in an insert call",
                    "fields": ["Id"],
                }
            else:
                changes, error = self._record_changes(table, record)
                given = {k.lower() for k in changes}
                required = [
                    f.name
                    for f in table.spec.fields
                    if not f.nillable
                    and f.type != "boolean"
                    and f.name not in READ_ONLY_FIELDS
                    and f.name.lower() not in given
                ]
                if error is None and required:
                    error = {
                        "statusCode": "REQUIRED_FIELD_MISSING",
                        "message": f"Required fields are missing: [{', '.join(required)}]",
                        "fields": required,
                    }
                if error is None and table.spec.name == "ForecastingQuota":
                    error = self._duplicate_quota(table, changes, planned)
            results.append(
                {"id": None, "success": error is None, "errors": [error] if error else []}
            )
            if error is None and table is not None:
                planned.append((table, changes, len(results) - 1))
        if all_or_none and any(not r["success"] for r in results):
            return Answer(200, _rolled_back(results))
        for table, changes, index in planned:
            results[index]["id"] = self.create(table.spec.name, changes)
        return Answer(200, results)

    def _duplicate_quota(
        self,
        table: Table,
        changes: dict[str, Value],
        planned: list[tuple[Table, dict[str, Value], int]],
    ) -> dict[str, Any] | None:
        """One quota per owner, start date and forecasting type, as Salesforce enforces."""

        def key(values: Mapping[str, Value]) -> tuple[Any, ...]:
            lowered = {k.lower(): v for k, v in values.items()}
            owner = lowered.get("quotaownerid")
            kind = lowered.get("forecastingtypeid")
            return (
                str(owner)[:15] if owner else None,
                lowered.get("startdate"),
                str(kind)[:15] if kind else None,
            )

        wanted = key(changes)
        existing = [
            key({f.name: table.get(row, f.name) for f in table.spec.fields}) for row in table.rows
        ]
        existing += [key(other) for t, other, _ in planned if t is table]
        if wanted in existing:
            return {
                "statusCode": "DUPLICATE_VALUE",
                "message": "duplicate value found: a quota for this owner, period and "
                "forecast type already exists",
                "fields": [],
            }
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
            raise ApiError(
                400,
                "INVALIDJOB",
                "InvalidJob : Aggregate Relationship queries and aggregate "
                "functions are not supported by Bulk API 2.0",
            )
        table, fields, rows, _ = self.run_soql(soql, include_deleted=operation == "queryAll")
        job_id = salesforce_id("750", len(self._jobs) + 1)
        job = _BulkJob(
            job_id,
            operation,
            table,
            fields,
            rows,
            call.params["v"],
            self._now_ms(),
            column_delimiter=str(body.get("columnDelimiter") or "COMMA"),
            line_ending=str(body.get("lineEnding") or "LF"),
        )
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
            info.update(
                {
                    "numberRecordsProcessed": len(job.rows) if done else 0,
                    "retries": 0,
                    "totalProcessingTime": 334 if done else 0,
                    "isPkChunkingSupported": True,
                }
            )
        return info

    def _job(self, call: _HttpCall) -> _BulkJob:
        job = self._jobs.get(call.params["job"])
        if job is None:
            raise not_found()
        return job

    def _get_job(self, call: _HttpCall) -> Answer:
        job = self._job(call)
        if job.state in ("UploadComplete", "InProgress"):
            job.polls += 1
            job.state = (
                "InProgress" if job.polls <= self.faults.bulk_polls_in_progress else "JobComplete"
            )
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
            raise ApiError(
                412,
                "JOB_NOT_COMPLETE",
                "can only download query results of successfully completed bulk "
                f"job with status: JOB_COMPLETE. Current status: {job.state.upper()}",
            )
        raw_locator = (call.query.get("locator") or [""])[0]
        start = decode_locator(raw_locator) if raw_locator else 0
        raw_max = (call.query.get("maxRecords") or [str(BULK_RESULTS_DEFAULT)])[0]
        try:
            max_records = int(raw_max)
        except ValueError:
            raise ApiError(400, "INVALIDJOB", f"invalid maxRecords: {raw_max}") from None
        if max_records < 1:
            raise ApiError(400, "INVALIDJOB", f"invalid maxRecords: {raw_max}")
        chunk = job.rows[start : start + max_records]
        buffer = io.StringIO()
        writer = csv.writer(
            buffer,
            quoting=csv.QUOTE_ALL,
            lineterminator="\r\n" if job.line_ending == "CRLF" else "\n",
        )
        writer.writerow(job.fields)
        for row in chunk:
            writer.writerow(self._csv_row(job.table, row, job.fields))
        end = start + len(chunk)
        locator = encode_locator(end) if end < len(job.rows) else "null"
        return Answer(
            200,
            buffer.getvalue(),
            {
                "Sforce-Locator": locator,
                "Sforce-NumberOfRecords": str(len(chunk)),
            },
            "text/csv",
        )

    # -- ASGI -------------------------------------------------------------------------------

    def asgi_app(self) -> ASGIApp:
        """The org as an ASGI application (Starlette)."""
        if self._app is None:

            async def endpoint(request: Request) -> Response:
                raw = await request.body()
                with self._lock:
                    delay = (
                        self._delay_for() if request.url.path.startswith("/services/data") else 0.0
                    )
                if delay:
                    await asyncio.sleep(delay)
                answer = self.handle(
                    request.method, request.url.path, request.url.query, dict(request.headers), raw
                )
                if answer.status == 204:
                    return Response(status_code=204, headers=answer.headers)
                if isinstance(answer.body, str):
                    return Response(
                        answer.body,
                        status_code=answer.status,
                        headers=answer.headers,
                        media_type=answer.media_type,
                    )
                return Response(
                    json.dumps(answer.body, separators=(",", ":")),
                    status_code=answer.status,
                    headers=answer.headers,
                    media_type=answer.media_type,
                )

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
        raise not_found()


def _rolled_back(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for result in results:
        if result["success"]:
            result["success"] = False
            result["errors"] = [
                {
                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "message": "Record rolled back because not all records were "
                    "valid and the request was using AllOrNone header",
                    "fields": [],
                }
            ]
    return results


def _is_record_write(method: str, path: str) -> bool:
    """Whether a request writes records (sObject Collections or sObject rows)."""
    if method not in ("POST", "PATCH", "DELETE"):
        return False
    return (
        re.search(r"/services/data/v\d+\.\d/(composite/sobjects|sobjects/\w+)(/|$)", path)
        is not None
    )


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
    wanted = {
        "double": "double",
        "currency": "double",
        "percent": "double",
        "int": "int",
        "boolean": "boolean",
    }.get(spec.type)
    if wanted is None:
        return
    ok = (
        isinstance(value, bool)
        if wanted == "boolean"
        else (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (wanted == "double" or float(value).is_integer())
        )
    )
    if not ok and wanted != "boolean" and isinstance(value, str):
        try:
            number = float(value)
            ok = number == number and (wanted == "double" or number.is_integer())
        except ValueError:
            ok = False
    if not ok:
        kind = (
            "VALUE_STRING"
            if isinstance(value, str)
            else "VALUE_TRUE"
            if value is True
            else "VALUE_FALSE"
            if value is False
            else "VALUE_NUMBER_FLOAT"
            if isinstance(value, float)
            else "START_OBJECT"
        )
        raise ApiError(
            400,
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of {wanted} from {kind} value {value} or "
            f"request may be missing a required field (field {spec.name})",
        )


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body is not valid JSON") from None


# ---------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------


class RunningOrg(RunningServer):
    """An org served by uvicorn over HTTPS in a daemon thread; a context manager that stops it."""

    def __init__(
        self,
        org: SalesforceOrg,
        server: uvicorn.Server,
        thread: threading.Thread,
        url: str,
        tls_files: TlsFiles,
    ) -> None:
        super().__init__(server, thread, url)
        self.org = org
        self.ca_bundle = tls_files.ca_bundle  # PEM of the CA that signed the server certificate
        self._tls_files = tls_files

    def stop(self) -> None:
        """Stop serving, wait for the server thread and remove the certificate files."""
        # Idle keep-alive TLS connections would hold a graceful shutdown until their clients
        # answer the TLS close; a test double need not wait for them.
        self._server.force_exit = True
        super().stop()
        self._tls_files.cleanup()


def serve_org(
    org: SalesforceOrg, *, tls: trustme.CA, host: str = "127.0.0.1", port: int = 0
) -> RunningOrg:
    """Serve the org over HTTPS with a certificate from ``tls``; returns once it accepts."""
    tls_files = TlsFiles(tls, host)
    sock = bind_socket(host, port)
    bound = sock.getsockname()[1]
    url = f"https://{host}:{bound}"
    org.url = url
    try:
        server, thread = start_server(
            org.asgi_app(),
            sock,
            name="salesforce-org",
            label="Salesforce org",
            ssl_certfile=tls_files.cert,
            ssl_keyfile=tls_files.key,
        )
    except RuntimeError:
        tls_files.cleanup()
        raise
    return RunningOrg(org, server, thread, url, tls_files)


def rows_as_dicts(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Query records without their ``attributes`` (handy in tests)."""
    return [{k: v for k, v in r.items() if k != "attributes"} for r in records]


# ---------------------------------------------------------------------------------------
# The demo org
# ---------------------------------------------------------------------------------------


@dataclass
class DemoOrg:
    """A running demo org and what a client needs to reach it."""

    running: RunningOrg
    url: str  # the instance URL (https://127.0.0.1:<port>)
    ca_bundle: Path  # PEM of the demo CA: a client's ``verify`` (or REQUESTS_CA_BUNDLE)
    session_id: str  # an access token the org accepts
    counts: dict[str, int]  # records generated per object

    @property
    def org(self) -> SalesforceOrg:
        return self.running.org

    def stop(self) -> None:
        """Stop the org's server and remove its certificate files."""
        self.running.stop()


def start_demo_org(
    *,
    months: int = 6,
    end: datetime | None = None,
    seed: int = 8,
    teams: int = 3,
    reps_per_team: int = 4,
    calls_per_rep_day: float = 60.0,
) -> DemoOrg:
    """Generate the demo team as a Salesforce org and serve it over HTTPS with a fresh test CA."""
    import trustme  # the demo's TLS: a throwaway CA, so verification stays on

    if end is None:
        end = datetime.now(UTC)  # every record is modified before the first sync starts
    dataset = generate_org_dataset(
        seed=seed,
        teams=teams,
        reps_per_team=reps_per_team,
        months=months,
        end=end,
        calls_per_rep_day=calls_per_rep_day,
    )
    org = SalesforceOrg(daily_api_limit=1_000_000)
    org.load(dataset)
    running = serve_org(org, tls=trustme.CA())
    return DemoOrg(running, running.url, running.ca_bundle, org.issue_session(), dataset.counts())
