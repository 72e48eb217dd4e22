"""The Salesforce source: SObjects to pages of normalized records (docs/sync.md).

Streams, in sync order: ``roles`` (UserRole → Team), ``users`` (User → Rep; only the
``user_types`` of the mapping, Standard by default), ``leads`` (Lead), ``calls`` (Task with
TaskSubtype Call or Type Call → Call), ``emails`` (Task with TaskSubtype Email/ListEmail,
joined by ActivityId to EmailMessage → Email), ``meetings`` (Event → Meeting), ``tasks``
(the other Tasks with TaskSubtype Task → FollowUpTask), ``opportunities`` (Opportunity →
Deal), ``campaigns`` (Campaign → CallList, the Telemarketing ones) and ``campaign_members``
(CampaignMember → CallListMember, of those campaigns only: connectors/salesforce/campaigns.py). A record's CRM id is its 18-character Salesforce Id (rep and team ids in the API are
``salesforce:<Id>``).

Before the first query of a connector, one composite request describes every object it reads
(User, UserRole, Lead, Task, Event, Opportunity, EmailMessage, Campaign, CampaignMember). Queries select only the fields
the mapping needs that the org has: a mapped field the org lacks (a custom field such as
``BANT_Budget__c`` not created yet, EmailMessage's ``FirstLinkClickedDate`` in an org without
link tracking) is left empty instead of failing the query; an org without EmailMessage syncs
emails without tracking.

How a stream is read
--------------------
Every object stream is one keyset pass over ``queryAll`` (so deleted rows arrive, flagged
``deleted``, and archived activities too), ordered by ``SystemModstamp, Id`` and bounded above
by the run's start (to the second; never past it), in pages of up to 2,000 records through
the relative ``nextRecordsUrl``. Each API page is stored as pages of at most
``store_page_size`` records, each with its cursor: the (SystemModstamp, Id) of its last row.

- *First sync* (no state): no lower bound. When the first page's ``totalSize`` exceeds
  ``bulk_threshold`` (default 200,000) the stream is read by a Bulk API 2.0 ``queryAll`` job
  instead: created, polled, and its CSV result sets read ``bulk_page_size`` rows at a time by
  ``Sforce-Locator``; the job id, the locator and the rows stored of the current set are the
  state, so a killed run resumes in the same job.
- *Incremental*: ``SystemModstamp >= cursor - lookback`` (a closed bound). Rows re-read in the
  lookback window are stored again (an idempotent upsert): SystemModstamp counts whole seconds
  and a late commit keeps its transaction's start, so a second version of a row can carry the
  stamp of the first; dropping re-reads by (Id, SystemModstamp) would lose it.
- *Resumed* (a run stopped mid-pass): ``SystemModstamp >= t AND (SystemModstamp > t OR Id > id)``
  from the last stored row, so a crash, an expired session or a quota stop loses and repeats
  nothing. An expired query locator (INVALID_QUERY_LOCATOR) restarts the query the same way.
When a pass ends its cursor moves to the run's start.

Emails are two passes: the email Tasks (their EmailMessages looked up by ActivityId), then the
EmailMessages changed since the last run (opens, clicks and replies arrive after the Task was
written), whose Tasks are looked up by Id and mapped again. Activities reach their lead through
WhoId; a WhoId that is a Contact is mapped back to the Lead converted into it
(``Lead.ConvertedContactId``), and an opportunity to the lead converted into it
(``ConvertedOpportunityId``, else its ``ContactId``'s lead). A first sync reads every converted
lead once for this; later runs look the page's unknown Ids up, queries of 500 Ids batched five
to a composite request (one API call), cached for the connector's life.

Roles and users are listed whole every run (an org has few); ones no longer listed are reported
in ``Page.missing_crm_ids``. So are Tasks that stop being follow-ups (they became calls, or
lost their ActivityDate).

Cost in API requests (P = 2,000, the page size)
-----------------------------------------------
- every run: 1 (a composite request describing the seven objects);
- roles, users: ceil(n / P) each, 1 for most orgs;
- leads, calls, meetings, tasks, opportunities, campaigns, campaign members:
  ceil(changed rows / P), at least 1; campaign members also 1 query listing the call-list
  campaigns, and the members of campaigns new among them (read whole, once). The tasks
  query also returns the CTI calls (TaskSubtype Task, Type Call), which it skips;
- emails: ceil(changed email Tasks / P) + ceil(changed EmailMessages / P), at least 1 + 1, plus
  one composite request per stored page of email Tasks (their EmailMessages, 500 Ids a query)
  and per stored page of changed EmailMessages (their Tasks and messages);
- leads of Contacts and opportunities: on a first sync ceil(converted leads / P), once; on an
  incremental run at most one composite request per stored page (1,000 rows) that has a Contact
  WhoId (or an opportunity) not seen before in the run;
- a first sync by Bulk API 2.0 instead: 1 REST page (which told the size), 1 job, the polls (the
  first after ``bulk_poll_seconds``, then 1.5 times longer each, at most 30 s apart) and
  ceil(rows / ``bulk_page_size``) result requests.
So a first sync costs about rows / 2,000 + email Tasks / 1,000 + converted leads / 2,000 + 14
(the demo org, 170,000 records of which 60,000 emails: 158 requests before the call lists); an
incremental run about changes / 2,000 + changed emails / 1,000 + a look-up per 1,000 changed activities on Contacts
+ 13; a run with no change (none in the lookback window before the last run either) exactly 13.

Requests go through :class:`connectors.salesforce.client.SalesforceClient` (auth, the quota
guard, retries, errors); records are mapped by connectors/salesforce/normalize.py. A record that
cannot be mapped is quarantined with the reason. The run is the caller's: every ``pull`` of one
run passes the same ``until``, which also starts the run's quota budget in the client.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from typing import Any, Literal

from simple_salesforce.util import exception_handler

from connectors.base import Page, StreamSpec, StreamState
from connectors.errors import ConnectorError, RecordRejected, TransientError
from connectors.mapping import Mapping, default_mapping
from connectors.records import (
    Call,
    CallList,
    CallListMember,
    Deal,
    Email,
    FollowUpTask,
    Lead,
    Meeting,
    Record,
    Rejected,
    Rep,
    Team,
)
from connectors.salesforce.campaigns import (
    campaign_condition,
    map_campaign,
    map_campaign_member,
    member_filter,
)
from connectors.salesforce.client import LocatorExpired, NotFound, SalesforceClient
from connectors.salesforce.normalize import (
    LeadLinks,
    clean_text,
    has_prefix,
    is_call,
    iso_millis,
    map_call,
    map_email,
    map_event,
    map_lead,
    map_opportunity,
    map_role,
    map_task,
    map_user,
    merge_messages,
    parse_datetime,
    soql_datetime,
    soql_string,
    typed_row,
)

log = logging.getLogger(__name__)

LOOKUP_IDS = 500  # Ids in one look-up query's IN list
DESCRIBED = (
    "UserRole",
    "User",
    "Lead",
    "Task",
    "Event",
    "Opportunity",
    "EmailMessage",
    "Campaign",
    "CampaignMember",
)

# Which pass of an email stream comes next: the email Tasks, or the EmailMessages changed.
EmailPhase = Literal["tasks", "messages"]


# --- the stream table ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Stream:
    name: str
    sobject: str
    kind: str  # the mapping's record kind
    record_type: type[Record]
    listing: bool = False  # read whole every run (few rows, no IsDeleted)
    key: str = "Id"  # the id the cursor breaks ties on


STREAM_TABLE: tuple[_Stream, ...] = (
    _Stream("roles", "UserRole", "team", Team, listing=True),
    _Stream("users", "User", "rep", Rep, listing=True),
    _Stream("leads", "Lead", "lead", Lead),
    _Stream("calls", "Task", "call", Call),
    _Stream("emails", "Task", "email", Email),
    _Stream("meetings", "Event", "meeting", Meeting),
    _Stream("tasks", "Task", "task", FollowUpTask),
    _Stream("opportunities", "Opportunity", "deal", Deal),
    # Call lists: Telemarketing campaigns (connectors/salesforce/campaigns.py) and their members.
    _Stream("campaigns", "Campaign", "call_list", CallList),
    _Stream("campaign_members", "CampaignMember", "call_list_member", CallListMember),
)
_STREAMS = {s.name: s for s in STREAM_TABLE}


# --- the saved position of a pass -----------------------------------------------------------


@dataclass
class _Cursor:
    """Where a keyset pass over (SystemModstamp, Id) stands (see the module docstring)."""

    at: datetime | None = None  # None: the first pass, from the beginning
    crm_id: str | None = None
    resume: bool = False  # mid-pass: continue strictly after (at, crm_id), no lookback

    @classmethod
    def from_state(cls, state: Any) -> _Cursor:
        if not isinstance(state, dict):
            return cls()
        raw = state.get("cursor") or {}
        at = parse_datetime(raw.get("modified_at"), "cursor") if raw.get("modified_at") else None
        return cls(
            at=at,
            crm_id=raw.get("crm_id"),
            resume=bool(state.get("resume", False)),
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "cursor": {
                "modified_at": iso_millis(self.at) if self.at else None,
                "crm_id": self.crm_id,
            },
            "resume": self.resume,
        }


@dataclass
class _Batch:
    """Rows of one store page read by a pass, and what they cost."""

    rows: list[dict[str, Any]]
    cost: int
    total: int | None
    done: bool  # the pass ended with this batch


class _BulkSwitch(Exception):
    """The first page says the stream is large: read it by a Bulk API 2.0 job instead."""

    def __init__(self, total: int, cost: int) -> None:
        super().__init__(total)
        self.total = total
        self.cost = cost  # the requests spent finding out


class SalesforceSource:
    """Pulls roles, users, leads, calls, emails, meetings, tasks and opportunities from an org."""

    source = "salesforce"

    def __init__(
        self,
        client: SalesforceClient,
        *,
        mapping: Mapping | None = None,
        lookback: timedelta = timedelta(minutes=10),
        store_page_size: int = 1_000,
        bulk_threshold: int = 200_000,
        bulk_page_size: int = 50_000,
        bulk_poll_seconds: float = 2.0,
        bulk_timeout: timedelta = timedelta(hours=2),
        timezone: tzinfo = UTC,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._mapping = (mapping or default_mapping()).salesforce
        self._lookback = lookback
        self._store_page_size = max(1, store_page_size)
        self._bulk_threshold = bulk_threshold
        self._bulk_page_size = bulk_page_size
        self._bulk_poll_seconds = bulk_poll_seconds
        self._bulk_timeout = bulk_timeout
        self._tz = timezone
        self._sleep = sleep  # between bulk job polls
        self._fields: dict[str, dict[str, str]] | None = None  # sobject → lower → name
        self._types: dict[str, dict[str, str]] = {}  # sobject → field → describe type
        self._warned: set[tuple[str, str]] = set()
        self._links = LeadLinks()
        self._links_complete = False  # every converted lead is in self._links
        self._first_sync = False  # the stream being pulled has no state yet

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._client.instance_url!r})"

    @property
    def api_calls(self) -> int:
        """API requests made so far through the client, retries included."""
        return self._client.api_calls

    @property
    def token_refreshes(self) -> int:
        """Token endpoint requests made so far (not API calls)."""
        return self._client.token_refreshes

    @property
    def refresh_token(self) -> str | None:
        """The refresh token in use (the latest one, when the connected app rotates them)."""
        return self._client.refresh_token

    @property
    def streams(self) -> Sequence[StreamSpec]:
        """The streams in sync order: roles and users first, opportunities last."""
        return [
            StreamSpec(
                s.name,
                s.record_type,
                self._mapping.fields[s.kind].get("modified_at") or "SystemModstamp",
                self._lookback,
                s.key,
            )
            for s in STREAM_TABLE
        ]

    def pull(self, stream: str, state: StreamState | None, *, until: datetime) -> Iterator[Page]:
        """Yield the stream's pages from ``state`` (None: a full sync) up to ``until``."""
        if stream not in _STREAMS:
            raise ValueError(f"unknown Salesforce stream {stream!r}")
        spec = _STREAMS[stream]
        if until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
        until = until.astimezone(UTC).replace(microsecond=0)
        self._client.begin_run(until)
        calls_before = self.api_calls
        self._describe()
        self._first_sync = state is None
        pages: Iterator[Page]
        if spec.listing:
            pages = self._pull_listing(spec, state)
        elif spec.kind == "email":
            pages = self._pull_emails(spec, dict(state) if state else None, until)
        elif spec.kind == "call_list_member":
            pages = self._pull_members(spec, dict(state) if state else None, until)
        else:
            pages = self._pull_object(spec, dict(state) if state else None, until)
        spent = self.api_calls - calls_before  # the describe, charged to the first page
        for page in pages:
            page.api_calls += spent
            spent = 0
            yield page

    # -- describe ------------------------------------------------------------------------------

    def _describe(self) -> None:
        """Describe every object read, in one composite request (one API call)."""
        if self._fields is not None:
            return
        base = f"/services/data/v{self._client.version}"
        body = {
            "allOrNone": False,
            "compositeRequest": [
                {"method": "GET", "url": f"{base}/sobjects/{name}/describe", "referenceId": name}
                for name in DESCRIBED
            ],
        }
        data = self._client.composite("POST composite (describe)", body)
        fields: dict[str, dict[str, str]] = {}
        for item in (data or {}).get("compositeResponse") or []:
            name = item.get("referenceId")
            if item.get("httpStatusCode") == 200 and isinstance(item.get("body"), dict):
                described = item["body"].get("fields") or []
                fields[name] = {f["name"].lower(): f["name"] for f in described}
                self._types[name] = {f["name"]: f.get("type", "string") for f in described}
            else:
                log.info(
                    "Salesforce %s is not available to this user (HTTP %s)",
                    name,
                    item.get("httpStatusCode"),
                )
        self._fields = fields

    def _has_object(self, sobject: str) -> bool:
        return self._fields is not None and sobject in self._fields

    def _has_field(self, sobject: str, name: str) -> bool:
        return (
            bool(name)
            and self._fields is not None
            and name.lower() in self._fields.get(sobject, {})
        )

    def _select(self, sobject: str, kind: str) -> list[str]:
        """Id, the cursor fields and the fields the mapping needs that the org has."""
        if not self._has_object(sobject):
            raise ConnectorError(
                f"the Salesforce org has no {sobject} object, or the integration user cannot see it"
            )
        assert self._fields is not None
        available = self._fields[sobject]
        wanted = ["Id", "IsDeleted", "SystemModstamp", *self._mapping.fields[kind].values()]
        out: list[str] = []
        for name in wanted:
            if not name:
                continue
            canonical = available.get(name.lower())
            if canonical is None:
                if name not in ("IsDeleted",) and (sobject, name) not in self._warned:
                    self._warned.add((sobject, name))
                    log.warning("Salesforce %s has no field %s: it stays empty", sobject, name)
                continue
            if canonical not in out:
                out.append(canonical)
        if "SystemModstamp" not in out:
            raise ConnectorError(f"Salesforce {sobject} has no SystemModstamp to sync by")
        return out

    def _in_list(self, sobject: str, name: str, values: Iterable[str]) -> str:
        items = ", ".join(soql_string(v) for v in values)
        return f"{self._canonical(sobject, name)} IN ({items})"

    def _canonical(self, sobject: str, name: str) -> str:
        assert self._fields is not None
        return self._fields.get(sobject, {}).get(name.lower(), name)

    def _filters(self, spec: _Stream) -> list[str]:
        """The WHERE conditions that pick a stream's rows out of its object."""
        m = self._mapping
        if spec.kind == "call":
            parts = []
            for key, values in (("subtype", "call_subtypes"), ("type", "call_types")):
                name = m.fields["call"].get(key, "")
                if self._has_field("Task", name) and m.sets[values]:
                    parts.append(self._in_list("Task", name, m.sets[values]))
            if not parts:
                raise ConnectorError("Salesforce Task has neither TaskSubtype nor Type")
            return [parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"]
        if spec.kind in ("email", "task"):
            name = m.fields[spec.kind].get("subtype", "")
            subtypes = m.sets["email_subtypes" if spec.kind == "email" else "task_subtypes"]
            if not self._has_field("Task", name):
                raise ConnectorError("Salesforce Task has no TaskSubtype to tell activities apart")
            return [self._in_list("Task", name, subtypes)]
        if spec.kind == "rep":
            name = m.fields["rep"].get("user_type", "")
            if self._has_field("User", name) and m.sets["user_types"]:
                return [self._in_list("User", name, m.sets["user_types"])]
        if spec.kind == "call_list_member":
            campaign = m.fields["call_list_member"].get("list_crm_id", "")
            condition = campaign_condition(
                m,
                self._canonical("Campaign", m.fields["call_list"].get("list_kind", "Type")),
                self._canonical("Campaign", m.fields["call_list"].get("name", "Name")),
            )
            return [member_filter(m, self._canonical("CampaignMember", campaign), condition)]
        return []

    def _read_pass(
        self,
        sobject: str,
        fields: list[str],
        filters: list[str],
        cursor: _Cursor,
        until: datetime,
        *,
        bulk_allowed: bool = False,
    ) -> Iterator[_Batch]:
        """Rows changed since ``cursor`` up to ``until``, in (SystemModstamp, Id) order.

        Yields batches of at most ``store_page_size`` rows; the cursor is advanced before each
        batch is yielded, so the caller saves it with the batch. The last batch has ``done``.
        """
        label = f"queryAll {sobject}"
        first_query = True
        while True:
            conditions = list(filters)
            if cursor.at is not None:
                if cursor.resume:
                    at = soql_datetime(cursor.at)
                    conditions.append(f"SystemModstamp >= {at}")
                    if cursor.crm_id:
                        conditions.append(
                            f"(SystemModstamp > {at} OR Id > {soql_string(cursor.crm_id)})"
                        )
                else:
                    conditions.append(
                        f"SystemModstamp >= {soql_datetime(cursor.at - self._lookback)}"
                    )
            conditions.append(f"SystemModstamp <= {soql_datetime(until)}")
            soql = (
                f"SELECT {', '.join(fields)} FROM {sobject} WHERE {' AND '.join(conditions)} "
                "ORDER BY SystemModstamp ASC, Id ASC"
            )
            calls_before = self.api_calls
            try:
                data = self._client.query(soql, label, include_deleted=True)
                total = int(data.get("totalSize") or 0) if first_query else None
                if (
                    first_query
                    and bulk_allowed
                    and cursor.at is None
                    and not cursor.resume
                    and total is not None
                    and total > self._bulk_threshold
                ):
                    raise _BulkSwitch(total, self.api_calls - calls_before)
                first_query = False
                while True:
                    rows = [r for r in data.get("records") or [] if isinstance(r, dict)]
                    done = bool(data.get("done", True)) or not data.get("nextRecordsUrl")
                    chunks = [
                        rows[i : i + self._store_page_size]
                        for i in range(0, len(rows), self._store_page_size)
                    ] or [[]]
                    for index, chunk in enumerate(chunks):
                        last = done and index == len(chunks) - 1
                        fresh = self._advance(cursor, chunk, until, last)
                        yield _Batch(fresh, self.api_calls - calls_before, total, last)
                        calls_before, total = self.api_calls, None
                    if done:
                        return
                    data = self._client.query_more(str(data["nextRecordsUrl"]), label)
            except LocatorExpired:
                log.info(
                    "Salesforce %s: query locator expired, querying again from the cursor", sobject
                )
                continue

    def _advance(
        self, cursor: _Cursor, rows: list[dict[str, Any]], until: datetime, last: bool
    ) -> list[dict[str, Any]]:
        """Move the cursor over ``rows``; the rows to store (all of them, re-reads too)."""
        for row in rows:
            try:
                stamp = parse_datetime(row.get("SystemModstamp"), "SystemModstamp")
            except RecordRejected:
                stamp = None
            if stamp is not None:
                cursor.at, cursor.crm_id, cursor.resume = (
                    min(stamp, until),
                    str(row.get("Id")),
                    True,
                )
        if last:
            cursor.at, cursor.crm_id, cursor.resume = until, None, False
        return rows

    def _id_queries(
        self,
        key: str,
        sobject: str,
        fields: list[str],
        match: str,
        ids: Iterable[str],
        extra: str = "",
    ) -> list[tuple[str, str]]:
        unique = sorted(set(ids))
        out = []
        for start in range(0, len(unique), LOOKUP_IDS):
            chunk = unique[start : start + LOOKUP_IDS]
            where = self._in_list(sobject, match, chunk) + (f" AND {extra}" if extra else "")
            out.append((key, f"SELECT {', '.join(fields)} FROM {sobject} WHERE {where}"))
        return out

    def _load_links(self) -> None:
        """Read every converted lead's Contact and Opportunity once (a first sync's look-ups)."""
        m = self._mapping.fields["lead"]
        names = [m.get("converted_contact", ""), m.get("converted_deal", "")]
        fields = [self._canonical("Lead", n) for n in names if self._has_field("Lead", n)]
        converted = m.get("is_converted", "")
        if not fields or not self._has_field("Lead", converted):
            return
        soql = (
            f"SELECT Id, {', '.join(fields)} FROM Lead "
            f"WHERE {self._canonical('Lead', converted)} = TRUE"
        )
        data = self._client.query(soql, "query Lead (converted)", include_deleted=False)
        while True:
            self._apply_links(
                {"contact_lead": data.get("records") or [], "deal_lead": data.get("records") or []},
                [],
                "lead",
            )
            if data.get("done", True) or not data.get("nextRecordsUrl"):
                break
            data = self._client.query_more(
                str(data["nextRecordsUrl"]), "query more Lead (converted)"
            )
        self._links_complete = True

    def _link_queries(self, rows: list[dict[str, Any]], kind: str) -> list[tuple[str, str]]:
        """Look-ups that resolve the page's Contact WhoIds (and opportunities) to leads.

        A first sync reads all converted leads once instead (cheaper than a look-up a page);
        after that, an Id not among them has no lead and needs no look-up.
        """
        if self._first_sync and not self._links_complete and rows:
            self._load_links()
        if self._links_complete:
            return []
        m = self._mapping
        lead_fields = m.fields["lead"]
        contact_field = lead_fields.get("converted_contact", "")
        deal_field = lead_fields.get("converted_deal", "")
        queries: list[tuple[str, str]] = []
        who = m.fields[kind].get("contact_crm_id", "")
        contacts = {str(r.get(who)) for r in rows if who and clean_text(r.get(who))}
        contacts = {
            c
            for c in contacts
            if has_prefix(c, m, "contact_id_prefixes") and c not in self._links.contact_lead
        }
        if contacts and self._has_field("Lead", contact_field):
            canonical = self._canonical("Lead", contact_field)
            queries += self._id_queries(
                "contact_lead", "Lead", ["Id", canonical], contact_field, contacts
            )
        if kind == "deal" and self._has_field("Lead", deal_field):
            deals = {str(r.get("Id")) for r in rows if r.get("Id")} - set(self._links.deal_lead)
            if deals:
                canonical = self._canonical("Lead", deal_field)
                queries += self._id_queries(
                    "deal_lead", "Lead", ["Id", canonical], deal_field, deals
                )
        return queries

    def _apply_links(
        self, found: dict[str, list[dict[str, Any]]], rows: list[dict[str, Any]], kind: str
    ) -> None:
        m = self._mapping
        contact_field = self._canonical("Lead", m.fields["lead"].get("converted_contact", ""))
        deal_field = self._canonical("Lead", m.fields["lead"].get("converted_deal", ""))
        for lead in found.get("contact_lead", []):
            if lead.get(contact_field):
                self._links.contact_lead[str(lead[contact_field])] = str(lead["Id"])
        for lead in found.get("deal_lead", []):
            if lead.get(deal_field):
                self._links.deal_lead[str(lead[deal_field])] = str(lead["Id"])
        # Remember the misses too, so they are not looked up again.
        who = m.fields[kind].get("contact_crm_id", "")
        for row in rows:
            value = clean_text(row.get(who)) if who else None
            if value and has_prefix(value, m, "contact_id_prefixes"):
                self._links.contact_lead.setdefault(value, None)
            if kind == "deal" and row.get("Id"):
                self._links.deal_lead.setdefault(str(row["Id"]), None)

    # -- mapping a page -----------------------------------------------------------------------

    def _map_rows(
        self,
        spec: _Stream,
        rows: list[dict[str, Any]],
        messages: dict[str, dict[str, Any]] | None = None,
    ) -> tuple[list[Record], list[Rejected], list[str]]:
        """Normalize a page; records, quarantined rows, and Ids that are not of this stream."""
        records: list[Record] = []
        rejected: list[Rejected] = []
        not_ours: list[str] = []
        m, links, tz = self._mapping, self._links, self._tz
        for payload in rows:
            try:
                record: Record | None
                if spec.kind == "team":
                    record = map_role(payload, m)
                elif spec.kind == "rep":
                    record = map_user(payload, m)
                elif spec.kind == "lead":
                    record = map_lead(payload, m, tz)
                elif spec.kind == "call":
                    record = map_call(payload, m, links)
                elif spec.kind == "email":
                    record = (
                        None
                        if is_call(payload, m)
                        else map_email(
                            payload, (messages or {}).get(str(payload.get("Id"))), m, links
                        )
                    )
                elif spec.kind == "meeting":
                    record = map_event(payload, m, links)
                elif spec.kind == "task":
                    record = map_task(payload, m, links, tz)
                elif spec.kind == "call_list":
                    record = map_campaign(payload, m)
                elif spec.kind == "call_list_member":
                    record = map_campaign_member(payload, m, links)
                else:
                    record = map_opportunity(payload, m, links, tz)
            except RecordRejected as exc:
                rejected.append(Rejected(clean_text(payload.get("Id")), payload, str(exc)))
                continue
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                # A payload of an unexpected shape is quarantined, not fatal to the run.
                reason = f"unexpected payload shape: {type(exc).__name__}: {exc}"
                rejected.append(Rejected(clean_text(payload.get("Id")), payload, reason))
                continue
            if record is None:
                not_ours.append(str(payload.get("Id")))
            else:
                records.append(record)
        return records, rejected, not_ours

    def _page(
        self,
        spec: _Stream,
        batch: _Batch,
        state: dict[str, Any],
        messages: dict[str, dict[str, Any]] | None = None,
        extra_cost: int = 0,
    ) -> Page:
        records, rejected, not_ours = self._map_rows(spec, batch.rows, messages)
        return Page(
            spec.name,
            records,
            rejected,
            state,
            api_calls=batch.cost + extra_cost,
            total=batch.total,
            missing_crm_ids=not_ours,
        )

    # -- listing streams (roles, users) --------------------------------------------------------

    def _pull_listing(self, spec: _Stream, state: StreamState | None) -> Iterator[Page]:
        fields = self._select(spec.sobject, spec.kind)
        fields = [f for f in fields if f != "IsDeleted"]
        where = self._filters(spec)
        soql = f"SELECT {', '.join(fields)} FROM {spec.sobject}"
        if where:
            soql += " WHERE " + " AND ".join(where)
        soql += " ORDER BY Id ASC"
        calls_before = self.api_calls
        data = self._client.query(soql, f"query {spec.sobject}", include_deleted=False)
        total: int | None = int(data.get("totalSize") or 0)
        known = {str(i) for i in (state or {}).get("ids") or []}
        listed: list[str] = []
        while True:
            rows = [r for r in data.get("records") or [] if isinstance(r, dict)]
            done = bool(data.get("done", True)) or not data.get("nextRecordsUrl")
            chunks = [
                rows[i : i + self._store_page_size]
                for i in range(0, len(rows), self._store_page_size)
            ] or [[]]
            for index, chunk in enumerate(chunks):
                last = done and index == len(chunks) - 1
                listed += [str(r.get("Id")) for r in chunk if r.get("Id")]
                records, rejected, _ = self._map_rows(spec, chunk)
                new_state = (
                    {"mode": "listing", "ids": sorted(listed)} if last else dict(state or {})
                )
                yield Page(
                    spec.name,
                    records,
                    rejected,
                    new_state,
                    api_calls=self.api_calls - calls_before,
                    total=total,
                    missing_crm_ids=sorted(known - set(listed)) if last else [],
                )
                calls_before, total = self.api_calls, None
            if done:
                return
            data = self._client.query_more(
                str(data["nextRecordsUrl"]), f"query more {spec.sobject}"
            )

    # -- object streams -----------------------------------------------------------------------

    def _pull_object(
        self, spec: _Stream, state: dict[str, Any] | None, until: datetime
    ) -> Iterator[Page]:
        if state is not None and state.get("mode") == "bulk":
            yield from self._pull_bulk(spec, state, until)
            return
        cursor = (
            _Cursor.from_state(state) if state and state.get("mode") == "incremental" else _Cursor()
        )
        fields = self._select(spec.sobject, spec.kind)
        try:
            for batch in self._read_pass(
                spec.sobject, fields, self._filters(spec), cursor, until, bulk_allowed=state is None
            ):
                cost = self.api_calls
                self._resolve_links(spec, batch.rows)
                cost = self.api_calls - cost
                yield self._page(
                    spec, batch, {"mode": "incremental", **cursor.to_state()}, extra_cost=cost
                )
        except _BulkSwitch as switch:
            log.info(
                "Salesforce %s: %s rows, reading them by a Bulk API 2.0 job",
                spec.name,
                f"{switch.total:,}",
            )
            yield from self._pull_bulk(spec, None, until, total=switch.total, spent=switch.cost)

    # -- campaign members: the keyset pass, and a backfill for campaigns new to the stream ------

    def _call_list_campaigns(self) -> list[str]:
        """The Ids of the campaigns that are call lists now (one query for most orgs)."""
        m = self._mapping
        condition = campaign_condition(
            m,
            self._canonical("Campaign", m.fields["call_list"].get("list_kind", "Type")),
            self._canonical("Campaign", m.fields["call_list"].get("name", "Name")),
        )
        data = self._client.query(
            f"SELECT Id FROM Campaign WHERE {condition} ORDER BY Id ASC",
            "query Campaign (call lists)",
            include_deleted=False,
        )
        ids: list[str] = []
        while True:
            ids += [str(r["Id"]) for r in data.get("records") or [] if r.get("Id")]
            if data.get("done", True) or not data.get("nextRecordsUrl"):
                return ids
            data = self._client.query_more(
                str(data["nextRecordsUrl"]), "query more Campaign (call lists)"
            )

    def _pull_members(
        self, spec: _Stream, state: dict[str, Any] | None, until: datetime
    ) -> Iterator[Page]:
        """CampaignMembers by the keyset pass; first, the older members of new call lists.

        A campaign that becomes a call list (its Type changed to Telemarketing, or the mapping
        file names it) has members older than the cursor. The stream keeps the call-list
        campaigns it has read; each run lists them (one query) and reads the members of the
        new ones whole (``CampaignId IN (...)``, no lower bound) before the usual pass.
        """
        if state is not None and state.get("mode") == "bulk":
            yield from self._pull_bulk(spec, state, until)
            return
        incremental = state is not None and state.get("mode") == "incremental"
        spent = self.api_calls
        current = self._call_list_campaigns()
        known = set((state or {}).get("campaigns") or []) if incremental else set(current)
        if incremental and state is not None and "campaigns" not in state:
            known = set(current)  # a state from before the backfill existed (or a bulk pass)
        pending = sorted(
            set((state or {}).get("backfill") or []) | (set(current) - known)
            if incremental
            else set()
        )
        refill = _Cursor.from_state((state or {}).get("refill")) if pending else _Cursor()
        cursor = _Cursor.from_state(state) if incremental else _Cursor()
        fields = self._select(spec.sobject, spec.kind)
        campaign = self._canonical(
            "CampaignMember", self._mapping.fields["call_list_member"].get("list_crm_id", "")
        )

        def current_state() -> dict[str, Any]:
            return {
                "mode": "incremental",
                **cursor.to_state(),
                "campaigns": sorted(current),
                "backfill": pending,
                "refill": refill.to_state(),
            }

        spent = self.api_calls - spent
        if pending:
            ids = pending[:LOOKUP_IDS]
            for batch in self._read_pass(
                spec.sobject,
                fields,
                [self._in_list("CampaignMember", campaign, ids)],
                refill,
                until,
            ):
                cost = self.api_calls
                self._resolve_links(spec, batch.rows)
                if batch.done:
                    pending, refill = pending[len(ids) :], _Cursor()
                yield self._page(
                    spec, batch, current_state(), extra_cost=self.api_calls - cost + spent
                )
                spent = 0
        for batch in self._read_pass(
            spec.sobject, fields, self._filters(spec), cursor, until, bulk_allowed=False
        ):
            cost = self.api_calls
            self._resolve_links(spec, batch.rows)
            yield self._page(spec, batch, current_state(), extra_cost=self.api_calls - cost + spent)
            spent = 0

    def _resolve_links(self, spec: _Stream, rows: list[dict[str, Any]]) -> None:
        if spec.kind in ("call", "email", "meeting", "task", "deal", "call_list_member") and rows:
            queries = self._link_queries(rows, spec.kind)
            found = self._client.lookup(queries) if queries else {}
            self._apply_links(found, rows, spec.kind)

    # -- emails: the Task pass, then the EmailMessage pass --------------------------------------

    def _message_fields(self) -> list[str]:
        if not self._has_object("EmailMessage"):
            return []
        fields = self._select("EmailMessage", "email_message")
        return fields

    def _messages_for(
        self, task_ids: Iterable[str], extra: list[tuple[str, str]]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """EmailMessages by ActivityId (merged per Task), with other look-ups in the same batch."""
        fields = self._message_fields()
        activity = self._mapping.fields["email_message"].get("activity", "")
        queries = list(extra)
        ids = [i for i in task_ids if i]
        if fields and ids and self._has_field("EmailMessage", activity):
            queries += self._id_queries("messages", "EmailMessage", fields, activity, ids)
        found = self._client.lookup(queries) if queries else {}
        by_task: dict[str, dict[str, Any]] = {}
        canonical = self._canonical("EmailMessage", activity) if activity else ""
        for message in found.get("messages", []):
            if message.get("IsDeleted") is True:
                continue
            task_id = clean_text(message.get(canonical))
            if task_id is not None:
                by_task[task_id] = merge_messages(by_task.get(task_id), message, self._mapping)
        return by_task, found

    def _pull_emails(
        self, spec: _Stream, state: dict[str, Any] | None, until: datetime
    ) -> Iterator[Page]:
        if state is not None and state.get("mode") == "bulk":
            yield from self._pull_bulk(spec, state, until)
            return
        incremental = state is not None and state.get("mode") == "incremental"
        tasks = _Cursor.from_state(state.get("tasks")) if incremental and state else _Cursor()
        messages = (
            _Cursor.from_state(state.get("messages"))
            if incremental and state
            else _Cursor(at=until)
        )
        saved_phase = (state or {}).get("phase", "tasks") if incremental else "tasks"
        # Any saved phase but "tasks" goes on with the EmailMessage pass.
        phase: EmailPhase = "tasks" if saved_phase == "tasks" else "messages"

        def current(next_phase: EmailPhase) -> dict[str, Any]:
            return {
                "mode": "incremental",
                "phase": next_phase,
                "tasks": tasks.to_state(),
                "messages": messages.to_state(),
            }

        fields = self._select("Task", "email")
        if phase == "tasks":
            try:
                for batch in self._read_pass(
                    "Task", fields, self._filters(spec), tasks, until, bulk_allowed=state is None
                ):
                    cost = self.api_calls
                    extra = self._link_queries(batch.rows, "email")
                    by_task, found = self._messages_for(
                        (str(r.get("Id")) for r in batch.rows), extra
                    )
                    self._apply_links(found, batch.rows, "email")
                    cost = self.api_calls - cost
                    yield self._page(
                        spec,
                        batch,
                        current("messages" if batch.done else "tasks"),
                        by_task,
                        extra_cost=cost,
                    )
            except _BulkSwitch as switch:
                log.info(
                    "Salesforce emails: %s rows, reading them by a Bulk API 2.0 job",
                    f"{switch.total:,}",
                )
                yield from self._pull_bulk(spec, None, until, total=switch.total, spent=switch.cost)
                return
        if not self._has_object("EmailMessage"):
            return
        # EmailMessages changed since the last run: their Tasks, mapped again with the news.
        message_fields = [
            f
            for f in (
                "Id",
                "IsDeleted",
                "SystemModstamp",
                self._mapping.fields["email_message"].get("activity", ""),
            )
            if f and self._has_field("EmailMessage", f)
        ]
        activity = self._canonical(
            "EmailMessage", self._mapping.fields["email_message"].get("activity", "")
        )
        filters = [f"{activity} != null"] if activity in message_fields else []
        for batch in self._read_pass("EmailMessage", message_fields, filters, messages, until):
            cost = self.api_calls
            task_ids = sorted({str(r[activity]) for r in batch.rows if r.get(activity)})
            rows: list[dict[str, Any]] = []
            tracking: dict[str, dict[str, Any]] = {}
            if task_ids:
                task_queries = self._id_queries(
                    "tasks", "Task", fields, "Id", task_ids, " AND ".join(self._filters(spec))
                )
                tracking, found = self._messages_for(task_ids, task_queries)
                rows = found.get("tasks", [])
                links = self._link_queries(rows, "email")
                self._apply_links(self._client.lookup(links) if links else {}, rows, "email")
            cost = self.api_calls - cost
            page_batch = _Batch(rows, batch.cost, batch.total, batch.done)
            yield self._page(
                spec,
                page_batch,
                current("tasks" if batch.done else "messages"),
                tracking,
                extra_cost=cost,
            )

    # -- Bulk API 2.0 ---------------------------------------------------------------------------

    def _pull_bulk(
        self,
        spec: _Stream,
        state: dict[str, Any] | None,
        until: datetime,
        *,
        total: int | None = None,
        spent: int = 0,
    ) -> Iterator[Page]:
        sobject = spec.sobject
        fields = self._select(sobject, spec.kind)
        job_until = parse_datetime(state.get("until"), "until") if state else None
        job_until = job_until or until
        job_id = str(state["job"]) if state and state.get("job") else None
        locator: str | None = state.get("locator") if state else None
        offset = int(state.get("offset") or 0) if state else 0
        calls_before = self.api_calls - spent
        if job_id is not None:
            try:
                info = self._client.call(f"GET bulk job {sobject}", partial(_bulk_job, job_id))
                if info.get("state") in ("Failed", "Aborted"):
                    job_id = None
            except NotFound:
                job_id = None
            if job_id is None:
                locator, offset = None, 0
        if job_id is None:
            conditions = [*self._filters(spec), f"SystemModstamp <= {soql_datetime(job_until)}"]
            soql = f"SELECT {', '.join(fields)} FROM {sobject} WHERE {' AND '.join(conditions)}"
            job = self._client.call(f"POST bulk query job {sobject}", partial(_create_job, soql))
            job_id = str(job["id"])
            locator, offset = None, 0
        self._wait_for_job(sobject, job_id)
        types = self._types.get(sobject, {})
        while True:
            result = self._client.call(
                f"GET bulk results {sobject}",
                partial(_bulk_results, job_id, locator, self._bulk_page_size),
            )
            next_locator = result.get("locator") or None
            rows = [
                typed_row(row, types)
                for row in csv.DictReader(io.StringIO(result.get("records") or ""))
            ]
            rows = rows[offset:]
            chunks = [
                rows[i : i + self._store_page_size]
                for i in range(0, len(rows), self._store_page_size)
            ] or [[]]
            for index, chunk in enumerate(chunks):
                offset += len(chunk)
                end_of_set = index == len(chunks) - 1
                if end_of_set and next_locator is None:
                    new_state = self._after_bulk(spec, job_until)
                elif end_of_set:
                    new_state = {
                        "mode": "bulk",
                        "job": job_id,
                        "locator": next_locator,
                        "offset": 0,
                        "until": iso_millis(job_until),
                    }
                else:
                    new_state = {
                        "mode": "bulk",
                        "job": job_id,
                        "locator": locator,
                        "offset": offset,
                        "until": iso_millis(job_until),
                    }
                cost = self.api_calls
                messages: dict[str, dict[str, Any]] | None = None
                if spec.kind == "email":
                    extra = self._link_queries(chunk, "email")
                    messages, found = self._messages_for((str(r.get("Id")) for r in chunk), extra)
                    self._apply_links(found, chunk, "email")
                else:
                    self._resolve_links(spec, chunk)
                lookups = self.api_calls - cost
                batch = _Batch(chunk, self.api_calls - calls_before - lookups, total, False)
                yield self._page(spec, batch, new_state, messages, extra_cost=lookups)
                calls_before, total = self.api_calls, None
            if next_locator is None:
                return
            locator, offset = next_locator, 0

    def _after_bulk(self, spec: _Stream, job_until: datetime) -> dict[str, Any]:
        cursor = _Cursor(at=job_until)
        if spec.kind == "email":
            return {
                "mode": "incremental",
                "phase": "tasks",
                "tasks": cursor.to_state(),
                "messages": _Cursor(at=job_until).to_state(),
            }
        return {"mode": "incremental", **cursor.to_state()}

    def _wait_for_job(self, sobject: str, job_id: str) -> None:
        started = time.monotonic()
        waited = 0.0
        delay = self._bulk_poll_seconds
        while True:
            info = self._client.call(f"GET bulk job {sobject}", partial(_bulk_job, job_id))
            state = info.get("state")
            if state == "JobComplete":
                return
            if state in ("Failed", "Aborted"):
                raise ConnectorError(
                    f"Salesforce Bulk API 2.0 job {job_id} for {sobject} ended {state}: "
                    f"{str(info.get('errorMessage') or '')[:300]}"
                )
            if (
                waited >= self._bulk_timeout.total_seconds()
                or time.monotonic() - started >= self._bulk_timeout.total_seconds()
            ):
                raise TransientError(
                    f"Salesforce Bulk API 2.0 job {job_id} for {sobject} is still {state} after "
                    f"{self._bulk_timeout}; the next sync resumes it"
                )
            self._sleep(delay)
            waited += delay
            delay = min(30.0, delay * 1.5)


# Bulk API 2.0 query jobs through their documented REST endpoints, on the client's own session
# and headers (``Salesforce.restful``, ``.session``, ``.headers``, ``.base_url`` are public).
# simple-salesforce's ``bulk2.<Object>.query_all`` creates, waits for and reads a job in one
# call, so it can neither poll through our sleep nor resume a job from a saved locator.


def _create_job(soql: str, client: Any) -> Any:
    """POST /jobs/query: a ``queryAll`` job (deleted and archived rows too), CSV, comma, LF."""
    body = {"operation": "queryAll", "query": soql, "columnDelimiter": "COMMA", "lineEnding": "LF"}
    return client.restful("jobs/query", method="POST", json=body)


def _bulk_job(job_id: str, client: Any) -> Any:
    """GET /jobs/query/{id}: the job's state."""
    return client.restful(f"jobs/query/{job_id}")


def _bulk_results(job_id: str, locator: str | None, max_records: int, client: Any) -> Any:
    """GET /jobs/query/{id}/results?locator=&maxRecords=: one CSV result set and the next locator."""
    params: dict[str, Any] = {"maxRecords": max_records}
    if locator:
        params["locator"] = locator
    url = f"{client.base_url}jobs/query/{job_id}/results"
    response = client.session.get(
        url, headers={**client.headers, "Accept": "text/csv"}, params=params
    )
    if response.status_code >= 300:
        exception_handler(response, f"jobs/query/{job_id}/results")
    next_locator = response.headers.get("Sforce-Locator") or ""
    return {
        "locator": "" if next_locator == "null" else next_locator,
        # A NUL byte in a text field breaks the CSV reader; simple-salesforce drops them too.
        "records": response.content.decode("utf-8").replace("\x00", ""),
    }
