"""The Salesforce connector: SObjects to normalized records (SPEC §4, §8), through simple-salesforce.

Streams, in sync order: ``roles`` (UserRole → Team), ``users`` (User → Rep; only the
``user_types`` of the mapping, Standard by default), ``leads`` (Lead), ``calls`` (Task with
TaskSubtype Call or Type Call → Call), ``emails`` (Task with TaskSubtype Email/ListEmail,
joined by ActivityId to EmailMessage → Email), ``meetings`` (Event → Meeting), ``tasks``
(the other Tasks with TaskSubtype Task → FollowUpTask) and ``opportunities`` (Opportunity →
Deal). A record's CRM id is its 18-character Salesforce Id (rep and team ids in the API are
``salesforce:<Id>``).

Before the first query of a connector, one composite request describes every object it reads
(User, UserRole, Lead, Task, Event, Opportunity, EmailMessage). Queries select only the fields
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
- leads, calls, meetings, tasks, opportunities: ceil(changed rows / P), at least 1. The tasks
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
So a first sync costs about rows / 2,000 + email Tasks / 1,000 + converted leads / 2,000 + 11
(the demo org, 170,000 records of which 60,000 emails: 158 requests); an incremental run about
changes / 2,000 + changed emails / 1,000 + a look-up per 1,000 changed activities on Contacts
+ 10; a run with no change (none in the lookback window before the last run either) exactly 10.

Limits and failures
-------------------
The quota guard: every REST response carries ``Sforce-Limit-Info: api-usage=used/max``
(without it the connector asks ``/limits`` once). On the first figure of a run the connector
fixes the run's budget, ``quota_share`` (default 25%) of the requests the org had left when
the run started; before each request past the budget it raises QuotaExhausted with a message
saying so. Salesforce's own 403 REQUEST_LIMIT_EXCEEDED raises QuotaExhausted too. Either way
the sync stores what it read and records a ``partial`` run; the next run resumes from the
saved cursors.

Auth: with an OAuth connected app (client id, secret, refresh token) a 401 INVALID_SESSION_ID
gets one refresh (POST ``{login_url}/services/oauth2/token``, grant_type=refresh_token, with
httpx) and the request is repeated; a rotated refresh token (in the token response) is kept
and handed to ``on_refresh_token``. With only a session id a 401 raises AuthError saying the
session expired; the run fails with its pages stored, resumable. TLS is always verified:
``verify`` (a CA bundle path), else the standard ``REQUESTS_CA_BUNDLE`` (for the token
endpoint too); an untrusted certificate fails the run with AuthError, without retries. 5xx answers, timeouts and dropped connections are retried with jittered
exponential backoff through the injected ``sleep``; after ``max_retries`` they raise
TransientError. Other 4xx raise a ConnectorError naming the error code. A record that cannot be
mapped is quarantined with the reason. Every API request counts in ``api_calls``; token
requests do not (they are not API calls), they count in ``token_refreshes``. No token or
secret appears in a message or a log line.

Write-back (the TargetWriter side, SPEC §9)
-------------------------------------------
Targets go to number fields of the rep's User and, when mapped, to the rep's ForecastingQuota
of the month and forecast type. ``prepare_fields`` describes the objects (one composite
request) and raises DestinationMissing or PermissionDenied naming a field that is missing, not a
number or not editable; ``read_values`` runs ``SELECT … WHERE Id IN (…)`` with 300 Ids a query,
five queries a composite request; ``push`` sends sObject Collections of at most 200 records,
``allOrNone: false`` (PATCH, or POST for quotas not created yet), one object type a request.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import random
import re
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote_plus, urlsplit

import httpx
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession

from connectors.base import (
    CurrentValue,
    FieldCheck,
    FieldRef,
    FieldUpdate,
    Page,
    PushBatch,
    StreamSpec,
    StreamState,
    UpdateResult,
)
from connectors.errors import (
    AuthError,
    ConnectorError,
    DestinationMissing,
    PermissionDenied,
    QuotaExhausted,
    RecordRejected,
    TransientError,
)
from connectors.mapping import Mapping, SourceMapping, default_mapping
from connectors.records import (
    Call,
    CallOutcome,
    Deal,
    Direction,
    Email,
    FollowUpTask,
    Lead,
    Meeting,
    MeetingOutcome,
    Record,
    Rejected,
    Rep,
    Team,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LOOKUP_IDS = 500  # Ids in one look-up query's IN list
COMPOSITE_QUERIES = 5  # query subrequests Salesforce allows in one composite request
DESCRIBED = ("UserRole", "User", "Lead", "Task", "Event", "Opportunity", "EmailMessage")
# Write-back (SPEC §9): sObject Collections take 200 records a request; a SOQL IN list of 300
# Ids keeps a query's GET URL well under the 16 KB Salesforce accepts.
COLLECTION_RECORDS = 200
WRITEBACK_IDS = 300
NUMBER_TYPES = ("double", "currency", "percent", "int")
QUOTA = "ForecastingQuota"


# --- the stream table ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Stream:
    name: str
    sobject: str
    kind: str  # the mapping's record kind
    record_type: type[Record]
    listing: bool = False  # read whole every run (few rows, no IsDeleted)


STREAM_TABLE: tuple[_Stream, ...] = (
    _Stream("roles", "UserRole", "team", Team, listing=True),
    _Stream("users", "User", "rep", Rep, listing=True),
    _Stream("leads", "Lead", "lead", Lead),
    _Stream("calls", "Task", "call", Call),
    _Stream("emails", "Task", "email", Email),
    _Stream("meetings", "Event", "meeting", Meeting),
    _Stream("tasks", "Task", "task", FollowUpTask),
    _Stream("opportunities", "Opportunity", "deal", Deal),
)
_STREAMS = {s.name: s for s in STREAM_TABLE}


# --- value parsing (REST JSON values, or Bulk CSV strings) ----------------------------------


def parse_datetime(value: Any, name: str) -> datetime | None:
    """A Salesforce dateTime (``2024-01-17T19:55:04.000+0000`` or ``...Z``) as aware UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordRejected(f"{name}: not a date and time: {value!r}")
    text = value.strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RecordRejected(f"{name}: not a date and time: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_date(value: Any, name: str) -> date | None:
    """A Salesforce date (``2024-01-17``); None if empty."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordRejected(f"{name}: not a date: {value!r}")
    text = value.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10]) if len(text) >= 10 and text[4] == "-" \
            else date.fromisoformat(text)
    except ValueError:
        raise RecordRejected(f"{name}: not a date: {text!r}") from None


def start_of_day(day: date, tz: tzinfo) -> datetime:
    """The first instant of a calendar day in the business time zone, in UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def soql_datetime(moment: datetime) -> str:
    """A SOQL dateTime literal, to the second (``2024-01-17T19:55:04Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def soql_string(value: str) -> str:
    """A quoted SOQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None if value is None else str(value).lower()
    text = str(value).strip()
    return text or None


def _decimal(value: Any, name: str) -> Decimal | None:
    if isinstance(value, bool):
        raise RecordRejected(f"{name}: not a number: {value!r}")
    if isinstance(value, int | float):
        number = Decimal(str(value))
    else:
        text = _text(value)
        if text is None:
            return None
        try:
            number = Decimal(text.replace(",", ""))
        except InvalidOperation:
            raise RecordRejected(f"{name}: not a number: {text!r}") from None
    if not number.is_finite():
        raise RecordRejected(f"{name}: not a finite number: {value!r}")
    return number


def _bool(value: Any, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    if not text:
        return None
    raise RecordRejected(f"{name}: not true or false: {value!r}")


# --- mapping functions: Salesforce records → normalized records (pure, no I/O) ------------


@dataclass
class LeadLinks:
    """Where WhoIds and opportunities lead: Contact and Opportunity Ids → the converted Lead's Id.

    The connector fills it by look-ups before mapping a page; None means "looked up, no lead".
    """

    contact_lead: dict[str, str | None] = field(default_factory=dict)
    deal_lead: dict[str, str | None] = field(default_factory=dict)

    def lead_of(self, who_id: str | None, mapping: SourceMapping) -> str | None:
        """The lead an activity's WhoId reaches: a Lead itself, or the Lead a Contact came from."""
        if who_id is None:
            return None
        if _has_prefix(who_id, mapping, "contact_id_prefixes"):
            return self.contact_lead.get(who_id) or who_id
        return who_id


def _has_prefix(record_id: str, mapping: SourceMapping, prefixes: str) -> bool:
    return any(record_id.startswith(p) for p in mapping.sets[prefixes])


class _Fields:
    """Read a record's mapped fields by normalized field name."""

    def __init__(self, payload: dict[str, Any], mapping: SourceMapping, kind: str) -> None:
        if not isinstance(payload, dict):
            raise RecordRejected("the record is not an object")
        self.payload = payload
        self.mapping = mapping
        self.kind = kind
        crm_id = _text(payload.get("Id"))
        if crm_id is None:
            raise RecordRejected("the record has no Id")
        self.crm_id = crm_id

    def name(self, field_name: str) -> str:
        return self.mapping.fields[self.kind].get(field_name, "")

    def raw(self, field_name: str) -> Any:
        name = self.name(field_name)
        return self.payload.get(name) if name else None

    def text(self, field_name: str) -> str | None:
        return _text(self.raw(field_name))

    def moment(self, field_name: str) -> datetime | None:
        return parse_datetime(self.raw(field_name), self.name(field_name))

    def required_moment(self, field_name: str) -> datetime:
        value = self.moment(field_name)
        if value is None:
            raise RecordRejected(f"missing {self.name(field_name) or field_name} (required)")
        return value

    def day(self, field_name: str) -> date | None:
        return parse_date(self.raw(field_name), self.name(field_name))

    def decimal(self, field_name: str) -> Decimal | None:
        return _decimal(self.raw(field_name), self.name(field_name))

    def number(self, field_name: str) -> float | None:
        value = self.decimal(field_name)
        return None if value is None else float(value)

    def whole(self, field_name: str) -> int | None:
        value = self.decimal(field_name)
        if value is None:
            return None
        if value != value.to_integral_value():
            raise RecordRejected(f"{self.name(field_name)}: not a whole number: {value}")
        return int(value)

    def flag(self, field_name: str) -> bool | None:
        return _bool(self.raw(field_name), self.name(field_name))

    def deleted(self) -> bool:
        return _bool(self.payload.get("IsDeleted"), "IsDeleted") is True

    def modified_at(self) -> datetime | None:
        return self.moment("modified_at")


def company_size(employees: int | None) -> str | None:
    """NumberOfEmployees bucketed: 1-9, 10-49, 50-249, 250-999, 1000+ (None when unknown)."""
    if employees is None or employees < 1:
        return None
    for upper, name in ((9, "1-9"), (49, "10-49"), (249, "50-249"), (999, "250-999")):
        if employees <= upper:
            return name
    return "1000+"


def is_call(payload: dict[str, Any], mapping: SourceMapping) -> bool:
    """Whether a Task is a call: TaskSubtype in ``call_subtypes`` or Type in ``call_types``."""
    fields = mapping.fields["call"]
    subtype = _text(payload.get(fields.get("subtype", ""))) if fields.get("subtype") else None
    kind = _text(payload.get(fields.get("type", ""))) if fields.get("type") else None
    return mapping.contains("call_subtypes", subtype) or mapping.contains("call_types", kind)


def map_role(payload: dict[str, Any], mapping: SourceMapping) -> Team:
    """A UserRole as a Team."""
    f = _Fields(payload, mapping, "team")
    return Team(source="salesforce", crm_id=f.crm_id, modified_at=f.modified_at(),
                name=f.text("name") or f.crm_id)


def map_user(payload: dict[str, Any], mapping: SourceMapping) -> Rep:
    """A User as a Rep; a deactivated user is flagged deleted, as HubSpot archives its owner."""
    f = _Fields(payload, mapping, "rep")
    active = f.flag("active")
    active = True if active is None else active
    return Rep(
        source="salesforce",
        crm_id=f.crm_id,
        deleted=not active,
        modified_at=f.modified_at(),
        name=f.text("name") or f.text("email") or f.crm_id,
        email=f.text("email"),
        team_crm_id=f.text("team_crm_id"),
        manager_crm_id=f.text("manager_crm_id"),
        active=active,
        user_id=f.crm_id,  # targets are written back to this User record
    )


def map_lead(payload: dict[str, Any], mapping: SourceMapping, tz: tzinfo) -> Lead:
    """A Lead; converted on ConvertedDate (its SQL day, from the start of that business day)."""
    f = _Fields(payload, mapping, "lead")
    converted = f.day("sql_at")
    is_converted = f.flag("is_converted")
    sql_at = start_of_day(converted, tz) if converted and is_converted is not False else None
    return Lead(
        source="salesforce",
        crm_id=f.crm_id,
        deleted=f.deleted(),
        modified_at=f.modified_at(),
        created_at=f.required_moment("created_at"),
        channel=f.text("channel"),
        industry=f.text("industry"),
        company_size=company_size(f.whole("company_size")),
        status=f.text("status"),
        sql_at=sql_at,
        score=f.number("score"),
        rep_crm_id=f.text("rep_crm_id"),
    )


def _direction(value: str | None, mapping: SourceMapping) -> Direction | None:
    if value is None:
        return None  # no direction is not outbound (SPEC §10)
    return "outbound" if mapping.contains("call_outbound", value) else "inbound"


def map_call(payload: dict[str, Any], mapping: SourceMapping, links: LeadLinks) -> Call:
    """A call Task: occurred at CompletedDateTime (else CreatedDate); CallDisposition → outcome."""
    f = _Fields(payload, mapping, "call")
    outcome: CallOutcome = mapping.value(  # type: ignore[assignment]  # checked by the loader
        "call_disposition", f.text("outcome")
    ) or "unknown"
    seconds = f.decimal("duration_seconds")
    if seconds is not None and seconds < 0:
        raise RecordRejected(f"{f.name('duration_seconds')}: negative duration: {seconds}")
    return Call(
        source="salesforce",
        crm_id=f.crm_id,
        deleted=f.deleted(),
        modified_at=f.modified_at(),
        occurred_at=f.moment("occurred_at") or f.required_moment("created_at"),
        direction=_direction(f.text("direction"), mapping),
        outcome=outcome,
        duration_ms=None if seconds is None else int(seconds * 1000),
        rep_crm_id=f.text("rep_crm_id"),
        contact_crm_id=links.lead_of(f.text("contact_crm_id"), mapping),
    )


def map_email(
    payload: dict[str, Any],
    message: dict[str, Any] | None,
    mapping: SourceMapping,
    links: LeadLinks,
) -> Email:
    """An email Task with its EmailMessage: every email Task is outbound; tracking from the message.

    Sent unless the message bounced; tracked when ``IsTracked``; opened, clicked and replied
    from FirstOpenedDate, FirstLinkClickedDate and HasReply (unknown when not tracked, or when
    the org lacks the field). The status is ``SENT`` or ``BOUNCED`` (the vocabulary HubSpot uses).
    """
    f = _Fields(payload, mapping, "email")
    bounced = tracked = False
    opened = clicked = replied = None
    if message is not None:
        m = _Fields(message, mapping, "email_message")
        bounced = m.flag("bounced") is True
        tracked = m.flag("tracked") is True
        if tracked:
            # A field the org lacks is not in the message at all: unknown, not "no".
            if m.name("opened") in message:
                opened = m.moment("opened") is not None
            if m.name("clicked") in message:
                clicked = m.moment("clicked") is not None
            if m.name("replied") in message:
                replied = m.flag("replied") is True
    return Email(
        source="salesforce",
        crm_id=f.crm_id,
        deleted=f.deleted(),
        modified_at=f.modified_at(),
        sent_at=f.moment("sent_at") or f.required_moment("created_at"),
        direction="outbound",
        status="BOUNCED" if bounced else "SENT",
        sent=not bounced,
        tracked=tracked,
        opened=opened,
        clicked=clicked,
        replied=replied,
        rep_crm_id=f.text("rep_crm_id"),
        contact_crm_id=links.lead_of(f.text("contact_crm_id"), mapping),
    )


def map_event(payload: dict[str, Any], mapping: SourceMapping, links: LeadLinks) -> Meeting:
    """An Event as a Meeting; a Meeting_Outcome__c label the mapping does not know rejects it."""
    f = _Fields(payload, mapping, "meeting")
    raw_outcome = f.text("outcome")
    outcome = mapping.value("meeting_outcome", raw_outcome)
    if raw_outcome is not None and outcome is None:
        raise RecordRejected(
            f"{f.name('outcome')}: unknown meeting outcome {raw_outcome!r} "
            "(map it under [salesforce.values.meeting_outcome] in the mapping file)"
        )
    meeting_outcome: MeetingOutcome | None = outcome  # type: ignore[assignment]
    what = f.text("deal_crm_id")
    return Meeting(
        source="salesforce",
        crm_id=f.crm_id,
        deleted=f.deleted(),
        modified_at=f.modified_at(),
        booked_at=f.required_moment("booked_at"),
        start_at=f.moment("start_at"),
        outcome=meeting_outcome,
        rep_crm_id=f.text("rep_crm_id"),
        contact_crm_id=links.lead_of(f.text("contact_crm_id"), mapping),
        deal_crm_id=what if what and _has_prefix(what, mapping, "deal_id_prefixes") else None,
    )


def map_task(
    payload: dict[str, Any], mapping: SourceMapping, links: LeadLinks, tz: tzinfo
) -> FollowUpTask | None:
    """A follow-up Task, due from the start of its ActivityDate; None when it is not a follow-up.

    A call (TaskSubtype Call or Type Call) is never a follow-up, nor is a Task with no due date.
    """
    if is_call(payload, mapping):
        return None
    f = _Fields(payload, mapping, "task")
    due = f.day("due_at")
    if due is None:
        return None
    status = f.text("status")
    closed = f.flag("is_closed")
    completed_at = f.moment("completed_at") if closed is not False else None
    return FollowUpTask(
        source="salesforce",
        crm_id=f.crm_id,
        deleted=f.deleted(),
        modified_at=f.modified_at(),
        due_at=start_of_day(due, tz),
        status=mapping.value("task_status", status) or status,
        completed_at=completed_at,
        rep_crm_id=f.text("rep_crm_id"),
        contact_crm_id=links.lead_of(f.text("contact_crm_id"), mapping),
    )


def map_opportunity(
    payload: dict[str, Any], mapping: SourceMapping, links: LeadLinks, tz: tzinfo
) -> Deal:
    """An Opportunity as a Deal: IS rep from IS_Rep__c, probability from Probability / 100."""
    f = _Fields(payload, mapping, "deal")
    close = f.day("closed_at")
    probability = f.number("probability")
    if probability is not None and not 0 <= probability <= 100:
        raise RecordRejected(f"{f.name('probability')}: not a percentage: {probability}")
    rating = f.number("handoff_rating")
    contact = links.deal_lead.get(f.crm_id) or links.lead_of(f.text("contact_crm_id"), mapping)
    return Deal(
        source="salesforce",
        crm_id=f.crm_id,
        deleted=f.deleted(),
        modified_at=f.modified_at(),
        created_at=f.required_moment("created_at"),
        closed_at=start_of_day(close, tz) if close is not None else None,
        amount=f.decimal("amount"),
        stage=f.text("stage"),
        pipeline=f.text("pipeline"),
        is_closed=f.flag("is_closed") is True,
        is_won=f.flag("is_won") is True,
        probability=None if probability is None else probability / 100,
        owner_crm_id=f.text("owner_crm_id"),
        rep_crm_id=f.text("rep_crm_id"),
        bant_budget=f.text("bant_budget"),
        bant_authority=f.text("bant_authority"),
        bant_need=f.text("bant_need"),
        bant_timing=f.text("bant_timing"),
        handoff_rating=rating,
        lead_source=f.text("lead_source"),
        contact_crm_id=contact,
    )


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
            "cursor": {"modified_at": _iso(self.at) if self.at else None, "crm_id": self.crm_id},
            "resume": self.resume,
        }


@dataclass
class _Batch:
    """Rows of one store page read by a pass, and what they cost."""

    rows: list[dict[str, Any]]
    cost: int
    total: int | None
    done: bool  # the pass ended with this batch


@dataclass(frozen=True)
class OAuthApp:
    """An OAuth connected app: the service gets and refreshes access tokens itself."""

    client_id: str
    client_secret: str
    refresh_token: str
    login_url: str = "https://login.salesforce.com"

    def __repr__(self) -> str:  # never show the secrets
        return f"OAuthApp(client_id={self.client_id!r}, login_url={self.login_url!r})"


class _BulkSwitch(Exception):
    """The first page says the stream is large: read it by a Bulk API 2.0 job instead."""

    def __init__(self, total: int, cost: int) -> None:
        super().__init__(total)
        self.total = total
        self.cost = cost  # the requests spent finding out


class _LocatorExpired(ConnectorError):
    """A query locator expired (INVALID_QUERY_LOCATOR): restart the query from the cursor."""


class _NotFound(ConnectorError):
    """A resource answered 404 (e.g. a bulk job that no longer exists)."""


class _Session(requests.Session):
    """A requests session whose own ``verify`` (a CA bundle given to the connector) wins over
    REQUESTS_CA_BUNDLE; with ``verify=True`` the environment's bundle applies as usual."""

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        settings: dict[str, Any] = super().merge_environment_settings(
            url, proxies, stream, verify, cert)
        if verify is None and self.verify is not True:
            settings["verify"] = self.verify
        return settings


class _TimeoutAdapter(HTTPAdapter):
    """A transport adapter giving every request a timeout (simple-salesforce sets none)."""

    def __init__(self, timeout: float) -> None:
        super().__init__(max_retries=0)  # retries are ours: counted, paced, jittered
        self._timeout = timeout

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, **kwargs)


# --- the connector ---------------------------------------------------------------------------


class SalesforceConnector:
    """Pulls roles, users, leads, calls, emails, meetings, tasks and opportunities from an org."""

    source = "salesforce"

    def __init__(
        self,
        instance_url: str,
        *,
        session_id: str | None = None,
        oauth: OAuthApp | None = None,
        api_version: str = "59.0",
        mapping: Mapping | None = None,
        lookback: timedelta = timedelta(minutes=10),
        page_size: int = 2_000,
        store_page_size: int = 1_000,
        bulk_threshold: int = 200_000,
        bulk_page_size: int = 50_000,
        bulk_poll_seconds: float = 2.0,
        bulk_timeout: timedelta = timedelta(hours=2),
        quota_share: float = 0.25,
        max_retries: int = 6,
        timeout: float = 60.0,
        verify: bool | str = True,
        timezone: tzinfo = UTC,
        sleep: Callable[[float], None] = time.sleep,
        on_request: Callable[[], None] | None = None,
        on_refresh_token: Callable[[str], None] | None = None,
    ) -> None:
        if not instance_url:
            raise AuthError("no Salesforce instance: set ISKPI_SALESFORCE_INSTANCE_URL")
        if not session_id and oauth is None:
            raise AuthError(
                "no Salesforce credentials: set ISKPI_SALESFORCE_SESSION_ID, or the OAuth "
                "connected app (ISKPI_SALESFORCE_CLIENT_ID, _CLIENT_SECRET, _REFRESH_TOKEN)"
            )
        if not 0 < quota_share <= 1:
            raise ValueError("quota_share must be in (0, 1]")
        if not 200 <= page_size <= 2_000:
            raise ValueError("page_size must be between 200 and 2,000 (Salesforce's batch sizes)")
        self.api_calls = 0
        self.write_requests = 0  # record write requests (sObject Collections), retries included
        self.token_refreshes = 0
        self._instance_url = instance_url.rstrip("/")
        self._session_id = session_id or None
        self._oauth = oauth
        self._refresh_token_value = oauth.refresh_token if oauth else None
        self._version = api_version
        self._mapping = (mapping or default_mapping()).salesforce
        self._lookback = lookback
        self._page_size = page_size
        self._store_page_size = max(1, store_page_size)
        self._bulk_threshold = bulk_threshold
        self._bulk_page_size = bulk_page_size
        self._bulk_poll_seconds = bulk_poll_seconds
        self._bulk_timeout = bulk_timeout
        self._quota_share = quota_share
        self._max_retries = max_retries
        self._timeout = timeout
        self._verify = verify
        self._tz = timezone
        self._sleep = sleep
        self._on_request = on_request
        self._on_refresh_token = on_refresh_token
        self._random = random.Random()
        self._http = _Session()
        adapter = _TimeoutAdapter(timeout)
        self._http.mount("https://", adapter)
        self._http.mount("http://", adapter)
        if verify is not True:
            self._http.verify = verify
        self._client: Any = None
        self._fields: dict[str, dict[str, str]] | None = None  # sobject → lower → name
        self._types: dict[str, dict[str, str]] = {}  # sobject → field → describe type
        self._warned: set[tuple[str, str]] = set()
        self._links = LeadLinks()
        self._links_complete = False  # every converted lead is in self._links
        self._first_sync = False  # the stream being pulled has no state yet
        # The quota guard, per run (a run is recognized by its ``until``).
        self._run_until: datetime | None = None
        self._run_calls = 0
        self._budget: int | None = None
        self._budget_basis: tuple[int, int, int] | None = None  # (remaining, used, max)
        self._usage: tuple[int, int] | None = None  # (used, max) as last reported
        self._asked_limits = False
        # Write-back: destination fields as described (sobject → lower name → describe entry).
        self._push_fields: dict[str, dict[str, dict[str, Any]]] = {}
        self._forecasting_type_id: str | None = None

    def __repr__(self) -> str:
        return f"SalesforceConnector({self._instance_url!r})"

    @property
    def streams(self) -> Sequence[StreamSpec]:
        """The streams in sync order: roles and users first, opportunities last."""
        return [
            StreamSpec(s.name, s.record_type,
                       self._mapping.fields[s.kind].get("modified_at") or "SystemModstamp",
                       self._lookback)
            for s in STREAM_TABLE
        ]

    @property
    def refresh_token(self) -> str | None:
        """The refresh token in use (the latest one, when the connected app rotates them)."""
        return self._refresh_token_value

    def pull(self, stream: str, state: StreamState | None, *, until: datetime) -> Iterator[Page]:
        """Yield the stream's pages from ``state`` (None: a full sync) up to ``until``."""
        if stream not in _STREAMS:
            raise ValueError(f"unknown Salesforce stream {stream!r}")
        spec = _STREAMS[stream]
        if until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
        until = until.astimezone(UTC).replace(microsecond=0)
        if until != self._run_until:
            self._start_run(until)
        calls_before = self.api_calls
        self._describe()
        self._first_sync = state is None
        pages: Iterator[Page]
        if spec.listing:
            pages = self._pull_listing(spec, state)
        elif spec.kind == "email":
            pages = self._pull_emails(spec, dict(state) if state else None, until)
        else:
            pages = self._pull_object(spec, dict(state) if state else None, until)
        spent = self.api_calls - calls_before  # the describe, charged to the first page
        for page in pages:
            page.api_calls += spent
            spent = 0
            yield page

    # -- runs and the quota guard -----------------------------------------------------------

    def _start_run(self, until: datetime) -> None:
        self._run_until = until
        self._run_calls = 0
        self._budget = None
        self._budget_basis = None
        self._asked_limits = False

    def _note_usage(self, client: Any) -> None:
        usage = (getattr(client, "api_usage", None) or {}).get("api-usage")
        if usage is not None:
            self._usage = (int(usage.used), int(usage.total))
        if self._budget is None and self._usage is not None:
            used, total = self._usage
            before = max(0, used - self._run_calls)
            remaining = max(0, total - before)
            self._budget = int(remaining * self._quota_share)
            self._budget_basis = (remaining, before, total)

    def _check_budget(self, label: str) -> None:
        if self._budget is None and self._run_calls > 0 and not self._asked_limits:
            self._asked_limits = True
            self._read_limits()
        if self._budget is not None and self._run_calls >= self._budget:
            remaining, used, total = self._budget_basis or (0, 0, 0)
            raise QuotaExhausted(
                f"Salesforce quota guard: stopped before {label} after {self._run_calls} API "
                f"requests, this run's share ({self._quota_share:.0%}) of the {remaining:,} "
                f"daily API requests the org had left ({used:,} of {total:,} used); the next "
                "sync resumes from the saved position"
            )

    def _read_limits(self) -> None:
        """Without Sforce-Limit-Info, read DailyApiRequests from /limits once per run."""
        data = self._call("GET limits", lambda c: c.limits())
        daily = data.get("DailyApiRequests") if isinstance(data, dict) else None
        if isinstance(daily, dict) and "Max" in daily and "Remaining" in daily:
            total, remaining = int(daily["Max"]), int(daily["Remaining"])
            self._usage = (total - remaining, total)
            self._note_usage(None)


    # -- write-back: targets into User fields and ForecastingQuota ---------------------------

    @property
    def batch_size(self) -> int:
        """Records in one sObject Collections request."""
        return COLLECTION_RECORDS

    def prepare_fields(self, refs: Sequence[FieldRef], *, create: bool) -> FieldCheck:
        """Describe the destination objects (one composite request) and check every field.

        Salesforce fields are never created here: a missing field, one that is not a number or
        one the integration user cannot edit raises with the field named. ``create`` is unused.
        """
        self._start_run(datetime.now(UTC).replace(microsecond=0))
        sobjects = sorted({r.crm_object for r in refs})
        base = f"/services/data/v{self._version}"
        body = {
            "allOrNone": False,
            "compositeRequest": [
                {"method": "GET", "url": f"{base}/sobjects/{name}/describe", "referenceId": name}
                for name in sobjects
            ],
        }
        data = self._call("POST composite (describe for write-back)", partial(_composite, body))
        for item in (data or {}).get("compositeResponse") or []:
            name = str(item.get("referenceId"))
            if item.get("httpStatusCode") == 200 and isinstance(item.get("body"), dict):
                self._push_fields[name] = {str(f.get("name")).lower(): f
                                           for f in item["body"].get("fields") or []}
            else:
                raise DestinationMissing(
                    f"the Salesforce org has no {name} object, or the integration user cannot "
                    f"see it (describe answered HTTP {item.get('httpStatusCode')})"
                )
        decimals: dict[FieldRef, int | None] = {}
        for ref in refs:
            described = self._push_field(ref)
            decimals[ref] = 0 if described.get("type") == "int" else int(
                described.get("scale") or 0)
        if any(r.crm_object == QUOTA for r in refs):
            self._check_quota_access()
        return FieldCheck(decimals=decimals)

    def _push_field(self, ref: FieldRef) -> dict[str, Any]:
        described = self._push_fields.get(ref.crm_object, {}).get(ref.field.lower())
        where = f"{ref.crm_object}.{ref.field}"
        if described is None:
            raise DestinationMissing(
                f"Salesforce {ref.crm_object} has no field {ref.field}, or the integration user "
                f"cannot see it: create it (a Number or Currency field) and grant the user Edit "
                f"access, or point the KPI at another field under [salesforce.writeback.month] "
                "in the mapping file"
            )
        if described.get("type") not in NUMBER_TYPES:
            raise DestinationMissing(
                f"Salesforce {where} is a {described.get('type')} field; targets need a number "
                "field (Number, Currency or Percent)"
            )
        if not described.get("updateable"):
            raise PermissionDenied(
                f"Salesforce {where} is not editable by the integration user: grant Edit "
                "access to the field (field-level security) in its profile or a permission set",
                (f"Edit {where}",),
            )
        return described

    def _check_quota_access(self) -> None:
        quota = self._push_fields.get(QUOTA, {})
        for name in ("quotaownerid", "startdate", "forecastingtypeid"):
            described = quota.get(name)
            if described is None or not described.get("createable"):
                raise PermissionDenied(
                    f"Salesforce ForecastingQuota.{name} cannot be set by the integration user: "
                    "it needs the Manage Quotas permission (and Collaborative Forecasts on)",
                    ("Manage Quotas",),
                )
        developer_name = self._mapping.writeback_options.get("forecasting_type",
                                                               "OpportunityRevenue")
        soql = ("SELECT Id FROM ForecastingType WHERE DeveloperName = "
                f"{soql_string(developer_name)} AND IsActive = TRUE")
        data = self._query(soql, "query ForecastingType", include_deleted=False)
        rows = data.get("records") or []
        if not rows:
            raise DestinationMissing(
                f"Salesforce has no active forecast type {developer_name!r} for quotas: enable "
                "it in Forecasts Settings, or set forecasting_type under [salesforce.writeback]"
            )
        self._forecasting_type_id = str(rows[0]["Id"])

    def read_values(
        self, user_ids: Sequence[str], refs: Sequence[FieldRef], period_start: date
    ) -> list[CurrentValue]:
        """Current values, by SOQL on User (and ForecastingQuota) with Ids in IN lists.

        300 Ids a query, five queries batched in one composite request: one API call reads
        1,500 users. A user the org does not have (or deactivated and purged) has no record.
        """
        wanted = list(dict.fromkeys(str(u) for u in user_ids))
        user_fields = sorted({self._push_field(r)["name"] for r in refs if r.crm_object == "User"})
        quota_fields = sorted({self._push_field(r)["name"] for r in refs if r.crm_object == QUOTA})
        queries: list[tuple[str, str]] = []
        for start in range(0, len(wanted), WRITEBACK_IDS):
            chunk = wanted[start:start + WRITEBACK_IDS]
            ids = ", ".join(soql_string(i) for i in chunk)
            queries.append(("users", f"SELECT {', '.join(['Id', *user_fields])} FROM User "
                                     f"WHERE Id IN ({ids})"))
            if quota_fields:
                if self._forecasting_type_id is None:
                    self._check_quota_access()
                queries.append(("quotas", (
                    f"SELECT {', '.join(['Id', 'QuotaOwnerId', *quota_fields])} FROM {QUOTA} "
                    f"WHERE StartDate = {period_start.isoformat()} AND ForecastingTypeId = "
                    f"{soql_string(self._forecasting_type_id or '')} AND QuotaOwnerId IN ({ids})"
                )))
        found = self._lookup(queries) if queries else {}
        users = {str(r.get("Id"))[:15]: r for r in found.get("users", [])}
        quotas = {str(r.get("QuotaOwnerId"))[:15]: r for r in found.get("quotas", [])}
        out: list[CurrentValue] = []
        for user_id in wanted:
            user = users.get(user_id[:15])
            for ref in refs:
                name = self._push_field(ref)["name"]
                if user is None:
                    out.append(CurrentValue(user_id, ref, None, None,
                                            f"no Salesforce user {user_id}"))
                elif ref.crm_object == QUOTA:
                    quota = quotas.get(user_id[:15])
                    out.append(CurrentValue(
                        user_id, ref, str(quota["Id"]) if quota else None,
                        _float_or_none(quota.get(name)) if quota else None))
                else:
                    out.append(CurrentValue(user_id, ref, str(user.get("Id")),
                                            _float_or_none(user.get(name))))
        return out

    def push(self, updates: Sequence[FieldUpdate]) -> Iterator[PushBatch]:
        """sObject Collections of at most 200 records, ``allOrNone: false``, per-record results.

        User records are updated (PATCH); quotas are updated when they exist and created
        (POST) when not. A setup object (User) never shares a request with another object
        (Salesforce refuses that mix). 5xx are retried; 403 REQUEST_LIMIT_EXCEEDED stops the
        push (QuotaExhausted).
        """
        groups: dict[tuple[str, str], dict[str, list[FieldUpdate]]] = {}
        for update in updates:
            creating = update.record_id is None
            if creating and update.ref.crm_object != QUOTA:
                raise ValueError(f"no record to update: {update}")
            group = (update.ref.crm_object, "POST" if creating else "PATCH")
            record_key = update.user_id if creating else str(update.record_id)
            groups.setdefault(group, {}).setdefault(record_key, []).append(update)
        for (sobject, method), by_record in groups.items():
            keys = list(by_record)
            for start in range(0, len(keys), COLLECTION_RECORDS):
                chunk = keys[start:start + COLLECTION_RECORDS]
                records = [self._collection_record(sobject, method, key, by_record[key])
                           for key in chunk]
                calls_before = self.api_calls
                saved = self._call(
                    f"{method} composite/sobjects ({sobject})",
                    partial(self._send_collection, method,
                            {"allOrNone": False, "records": records}),
                )
                results: list[UpdateResult] = []
                for index, key in enumerate(chunk):
                    result = saved[index] if isinstance(saved, list) and index < len(saved) \
                        else {}
                    ok = bool(result.get("success"))
                    record_id = str(result.get("id")) if result.get("id") else (
                        None if method == "POST" else key)
                    error = None if ok else _save_errors(result)
                    results += [UpdateResult(u, ok, record_id, error) for u in by_record[key]]
                yield PushBatch(results, api_calls=self.api_calls - calls_before,
                                records=len(chunk))

    def _collection_record(self, sobject: str, method: str, key: str,
                           updates: list[FieldUpdate]) -> dict[str, Any]:
        record: dict[str, Any] = {"attributes": {"type": sobject}}
        if method == "PATCH":
            record["id"] = key
        else:  # a new quota: its owner, period and forecast type
            record.update({"QuotaOwnerId": key, "StartDate": updates[0].period_start.isoformat(),
                           "ForecastingTypeId": self._forecasting_type_id})
        for update in updates:
            record[self._push_field(update.ref)["name"]] = update.value
        return record

    def _send_collection(self, method: str, body: dict[str, Any], client: Any) -> Any:
        self.write_requests += 1
        return client.restful("composite/sobjects", method=method, json=body)

    # -- HTTP: auth, retries, errors ----------------------------------------------------------

    def _ensure_client(self) -> Any:
        if self._session_id is None:
            self._refresh()
        if self._client is None:
            self._client = Salesforce(
                instance_url=self._instance_url,
                session_id=self._session_id,
                version=self._version,
                session=self._http,
                object_pairs_hook=dict,
            )
        return self._client

    def _call(self, label: str, send: Callable[[Any], T]) -> T:
        """Send one API request through simple-salesforce, retrying as Salesforce allows."""
        attempt = 0
        refreshed = False
        while True:
            self._check_budget(label)
            client = self._ensure_client()
            if self._on_request is not None:
                self._on_request()
            self.api_calls += 1
            self._run_calls += 1
            try:
                result = send(client)
            except SalesforceExpiredSession as exc:
                if self._oauth is not None and not refreshed:
                    log.info("Salesforce %s: session expired, refreshing the access token", label)
                    self._refresh()
                    refreshed = True
                    continue
                raise self._auth_error(label, exc, refreshed) from None
            except SalesforceError as exc:
                delay = self._failure_delay(label, exc, attempt)
            except requests.exceptions.SSLError:
                # The server could not prove it is the org: no retry, and no other stream.
                raise AuthError(
                    f"TLS verification of {urlsplit(self._instance_url).netloc} failed on "
                    f"{label}: its certificate is not trusted. If the org is reached through a "
                    "TLS-inspecting proxy or is a test server, point REQUESTS_CA_BUNDLE at the "
                    "CA bundle that signs it (verification is never turned off)"
                ) from None
            except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
                if attempt >= self._max_retries:
                    raise TransientError(
                        f"Salesforce {label} failed after {attempt + 1} attempts: "
                        f"{type(exc).__name__}"
                    ) from None
                delay = self._backoff(attempt)
                log.info("Salesforce %s: %s, retrying in %.1fs", label, type(exc).__name__, delay)
            else:
                self._note_usage(client)
                return result
            self._sleep(delay)
            attempt += 1

    def _auth_error(self, label: str, exc: SalesforceError, refreshed: bool) -> AuthError:
        code, message = _error_detail(exc)
        detail = f"HTTP 401 {code}: {message}" if code else "HTTP 401"
        if refreshed:
            return AuthError(
                f"Salesforce refused a freshly refreshed access token ({detail}) on {label}: "
                "check the connected app's OAuth scopes (api, refresh_token) and that the "
                "user has the API Enabled permission"
            )
        return AuthError(
            f"Salesforce refused the session ({detail}) on {label}: the access token in "
            "ISKPI_SALESFORCE_SESSION_ID has expired or was revoked. Set a fresh one, or "
            "configure the OAuth connected app (ISKPI_SALESFORCE_CLIENT_ID, _CLIENT_SECRET, "
            "_REFRESH_TOKEN) so the service refreshes it itself; the next sync resumes from "
            "the last stored page"
        )

    def _failure_delay(self, label: str, exc: SalesforceError, attempt: int) -> float:
        """How long to wait before retrying a failed request, or raise when it must not be."""
        status = int(getattr(exc, "status", 0) or 0)
        code, message = _error_detail(exc)
        if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
            raise QuotaExhausted(
                f"Salesforce refused {label} with REQUEST_LIMIT_EXCEEDED ({message}): the org's "
                "API allowance is spent; the next sync resumes from the saved position once "
                "it is available again"
            ) from None
        if status == 400 and code == "INVALID_QUERY_LOCATOR":
            raise _LocatorExpired(f"Salesforce {label}: the query locator expired") from None
        if status == 404:
            raise _NotFound(f"Salesforce {label} answered 404 {code}: {message[:300]}") from None
        if status == 0 or status >= 500:
            if attempt >= self._max_retries:
                raise TransientError(
                    f"Salesforce {label} failed with HTTP {status or 'error'} after "
                    f"{attempt + 1} attempts"
                ) from None
            delay = self._backoff(attempt)
            log.info("Salesforce %s: HTTP %s, retrying in %.1fs", label, status, delay)
            return delay
        if status == 403:
            raise ConnectorError(
                f"Salesforce refused {label} (HTTP 403 {code}): {message[:300]}; check the "
                "integration user's object and field permissions"
            ) from None
        raise ConnectorError(
            f"Salesforce {label} failed with HTTP {status} {code}: {message[:300]}"
        ) from None

    def _backoff(self, attempt: int) -> float:
        return min(30.0, 0.5 * 2.0**attempt) * (0.5 + 0.5 * self._random.random())

    def _httpx_verify(self) -> ssl.SSLContext | bool:
        bundle: str | None = None
        if isinstance(self._verify, str):
            bundle = self._verify
        elif self._verify is True:
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        else:
            return False
        return ssl.create_default_context(cafile=bundle) if bundle else True

    def _refresh(self) -> None:
        """Get a new access token with the refresh token (OAuth 2.0 refresh token flow)."""
        oauth = self._oauth
        if oauth is None:
            raise AuthError("no Salesforce session: set ISKPI_SALESFORCE_SESSION_ID")
        url = oauth.login_url.rstrip("/") + "/services/oauth2/token"
        form = {
            "grant_type": "refresh_token",
            "client_id": oauth.client_id,
            "client_secret": oauth.client_secret,
            "refresh_token": self._refresh_token_value or "",
        }
        attempt = 0
        with httpx.Client(verify=self._httpx_verify(), timeout=self._timeout) as http:
            while True:
                self.token_refreshes += 1
                try:
                    response = http.post(url, data=form, headers={"Accept": "application/json"})
                except httpx.TransportError as exc:
                    if isinstance(exc, httpx.ConnectError) and "CERTIFICATE" in str(exc).upper():
                        raise AuthError(
                            f"TLS verification of {urlsplit(url).netloc} failed: its "
                            "certificate is not trusted; point REQUESTS_CA_BUNDLE at the CA "
                            "bundle that signs it"
                        ) from None
                    status, body = 0, {}
                    reason = type(exc).__name__
                else:
                    status, reason = response.status_code, f"HTTP {response.status_code}"
                    try:
                        body = response.json()
                    except ValueError:
                        body = {}
                if status == 200 and isinstance(body, dict) and body.get("access_token"):
                    break
                if status in (400, 401, 403):
                    error = body.get("error", "") if isinstance(body, dict) else ""
                    description = body.get("error_description", "") if isinstance(body, dict) \
                        else ""
                    raise AuthError(
                        f"Salesforce refused the refresh token at {url} ({error or status}: "
                        f"{description}): check ISKPI_SALESFORCE_CLIENT_ID, "
                        "ISKPI_SALESFORCE_CLIENT_SECRET and ISKPI_SALESFORCE_REFRESH_TOKEN (with "
                        "refresh token rotation, the latest token issued)"
                    )
                if attempt >= self._max_retries:
                    raise TransientError(
                        f"Salesforce token endpoint {url} failed after {attempt + 1} attempts: "
                        f"{reason}"
                    )
                self._sleep(self._backoff(attempt))
                attempt += 1
        self._session_id = str(body["access_token"])
        instance = body.get("instance_url")
        if isinstance(instance, str) and instance.startswith("https://"):
            self._instance_url = instance.rstrip("/")
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token_value:
            self._refresh_token_value = rotated
            log.info("Salesforce rotated the refresh token; keeping the new one")
            if self._on_refresh_token is not None:
                self._on_refresh_token(rotated)
        self._client = None

    # -- describe ------------------------------------------------------------------------------

    def _describe(self) -> None:
        """Describe every object read, in one composite request (one API call)."""
        if self._fields is not None:
            return
        base = f"/services/data/v{self._version}"
        body = {
            "allOrNone": False,
            "compositeRequest": [
                {"method": "GET", "url": f"{base}/sobjects/{name}/describe", "referenceId": name}
                for name in DESCRIBED
            ],
        }
        data = self._call("POST composite (describe)", partial(_composite, body))
        fields: dict[str, dict[str, str]] = {}
        for item in (data or {}).get("compositeResponse") or []:
            name = item.get("referenceId")
            if item.get("httpStatusCode") == 200 and isinstance(item.get("body"), dict):
                described = item["body"].get("fields") or []
                fields[name] = {f["name"].lower(): f["name"] for f in described}
                self._types[name] = {f["name"]: f.get("type", "string") for f in described}
            else:
                log.info("Salesforce %s is not available to this user (HTTP %s)", name,
                         item.get("httpStatusCode"))
        self._fields = fields

    def _has_object(self, sobject: str) -> bool:
        return self._fields is not None and sobject in self._fields

    def _has_field(self, sobject: str, name: str) -> bool:
        return bool(name) and self._fields is not None and \
            name.lower() in self._fields.get(sobject, {})

    def _select(self, sobject: str, kind: str) -> list[str]:
        """Id, the cursor fields and the fields the mapping needs that the org has."""
        if not self._has_object(sobject):
            raise ConnectorError(
                f"the Salesforce org has no {sobject} object, or the integration user cannot "
                "see it"
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
        return []

    # -- queries ------------------------------------------------------------------------------

    def _query_header(self) -> dict[str, str]:
        return {"Sforce-Query-Options": f"batchSize={self._page_size}"}

    def _query(self, soql: str, label: str, *, include_deleted: bool) -> dict[str, Any]:
        data: dict[str, Any] = self._call(
            label, lambda c: c.query(soql, include_deleted=include_deleted,
                                     headers=self._query_header()))
        return data

    def _query_more(self, url: str, label: str) -> dict[str, Any]:
        data: dict[str, Any] = self._call(
            label, lambda c: c.query_more(url, identifier_is_url=True,
                                          headers=self._query_header()))
        return data

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
                        conditions.append(f"(SystemModstamp > {at} OR Id > "
                                          f"{soql_string(cursor.crm_id)})")
                else:
                    conditions.append(f"SystemModstamp >= {soql_datetime(cursor.at - self._lookback)}")
            conditions.append(f"SystemModstamp <= {soql_datetime(until)}")
            soql = (f"SELECT {', '.join(fields)} FROM {sobject} WHERE {' AND '.join(conditions)} "
                    "ORDER BY SystemModstamp ASC, Id ASC")
            calls_before = self.api_calls
            try:
                data = self._query(soql, label, include_deleted=True)
                total = int(data.get("totalSize") or 0) if first_query else None
                if (first_query and bulk_allowed and cursor.at is None and not cursor.resume
                        and total is not None and total > self._bulk_threshold):
                    raise _BulkSwitch(total, self.api_calls - calls_before)
                first_query = False
                while True:
                    rows = [r for r in data.get("records") or [] if isinstance(r, dict)]
                    done = bool(data.get("done", True)) or not data.get("nextRecordsUrl")
                    chunks = [rows[i:i + self._store_page_size]
                              for i in range(0, len(rows), self._store_page_size)] or [[]]
                    for index, chunk in enumerate(chunks):
                        last = done and index == len(chunks) - 1
                        fresh = self._advance(cursor, chunk, until, last)
                        yield _Batch(fresh, self.api_calls - calls_before, total, last)
                        calls_before, total = self.api_calls, None
                    if done:
                        return
                    data = self._query_more(str(data["nextRecordsUrl"]), label)
            except _LocatorExpired:
                log.info("Salesforce %s: query locator expired, querying again from the cursor",
                         sobject)
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
                cursor.at, cursor.crm_id, cursor.resume = min(stamp, until), str(row.get("Id")), True
        if last:
            cursor.at, cursor.crm_id, cursor.resume = until, None, False
        return rows

    # -- look-ups (composite: five queries a request, one API call) -----------------------------

    def _lookup(self, queries: list[tuple[str, str]]) -> dict[str, list[dict[str, Any]]]:
        """Run (key, SOQL) queries batched in composite requests; records per key."""
        out: dict[str, list[dict[str, Any]]] = {key: [] for key, _ in queries}
        base = f"/services/data/v{self._version}"
        for start in range(0, len(queries), COMPOSITE_QUERIES):
            batch = queries[start:start + COMPOSITE_QUERIES]
            body = {
                "allOrNone": False,
                "compositeRequest": [
                    {"method": "GET", "url": f"{base}/queryAll/?q={quote_plus(soql)}",
                     "referenceId": f"q{start + i}"}
                    for i, (_, soql) in enumerate(batch)
                ],
            }
            data = self._call("POST composite (look-ups)", partial(_composite, body))
            responses = {item.get("referenceId"): item
                         for item in (data or {}).get("compositeResponse") or []}
            for i, (key, soql) in enumerate(batch):
                item = responses.get(f"q{start + i}") or {}
                status = item.get("httpStatusCode")
                result = item.get("body")
                if status != 200 or not isinstance(result, dict):
                    code, message = _body_detail(result)
                    raise ConnectorError(
                        f"Salesforce look-up failed with HTTP {status} {code}: {message[:300]} "
                        f"({soql[:120]}…)"
                    )
                out[key].extend(r for r in result.get("records") or [] if isinstance(r, dict))
                while not result.get("done", True) and result.get("nextRecordsUrl"):
                    result = self._query_more(str(result["nextRecordsUrl"]), "query more (look-up)")
                    out[key].extend(r for r in result.get("records") or [] if isinstance(r, dict))
        return out

    def _id_queries(self, key: str, sobject: str, fields: list[str], match: str,
                    ids: Iterable[str], extra: str = "") -> list[tuple[str, str]]:
        unique = sorted(set(ids))
        out = []
        for start in range(0, len(unique), LOOKUP_IDS):
            chunk = unique[start:start + LOOKUP_IDS]
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
        soql = (f"SELECT Id, {', '.join(fields)} FROM Lead "
                f"WHERE {self._canonical('Lead', converted)} = TRUE")
        data = self._query(soql, "query Lead (converted)", include_deleted=False)
        while True:
            self._apply_links({"contact_lead": data.get("records") or [],
                               "deal_lead": data.get("records") or []}, [], "lead")
            if data.get("done", True) or not data.get("nextRecordsUrl"):
                break
            data = self._query_more(str(data["nextRecordsUrl"]), "query more Lead (converted)")
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
        contacts = {str(r.get(who)) for r in rows if who and _text(r.get(who))}
        contacts = {c for c in contacts if _has_prefix(c, m, "contact_id_prefixes")
                    and c not in self._links.contact_lead}
        if contacts and self._has_field("Lead", contact_field):
            canonical = self._canonical("Lead", contact_field)
            queries += self._id_queries("contact_lead", "Lead", ["Id", canonical],
                                        contact_field, contacts)
        if kind == "deal" and self._has_field("Lead", deal_field):
            deals = {str(r.get("Id")) for r in rows if r.get("Id")} - set(self._links.deal_lead)
            if deals:
                canonical = self._canonical("Lead", deal_field)
                queries += self._id_queries("deal_lead", "Lead", ["Id", canonical],
                                            deal_field, deals)
        return queries

    def _apply_links(self, found: dict[str, list[dict[str, Any]]], rows: list[dict[str, Any]],
                     kind: str) -> None:
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
            value = _text(row.get(who)) if who else None
            if value and _has_prefix(value, m, "contact_id_prefixes"):
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
                    record = None if is_call(payload, m) else map_email(
                        payload, (messages or {}).get(str(payload.get("Id"))), m, links)
                elif spec.kind == "meeting":
                    record = map_event(payload, m, links)
                elif spec.kind == "task":
                    record = map_task(payload, m, links, tz)
                else:
                    record = map_opportunity(payload, m, links, tz)
            except RecordRejected as exc:
                rejected.append(Rejected(_text(payload.get("Id")), payload, str(exc)))
                continue
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                # A payload of an unexpected shape is quarantined, not fatal to the run.
                reason = f"unexpected payload shape: {type(exc).__name__}: {exc}"
                rejected.append(Rejected(_text(payload.get("Id")), payload, reason))
                continue
            if record is None:
                not_ours.append(str(payload.get("Id")))
            else:
                records.append(record)
        return records, rejected, not_ours

    def _page(self, spec: _Stream, batch: _Batch, state: dict[str, Any],
              messages: dict[str, dict[str, Any]] | None = None,
              extra_cost: int = 0) -> Page:
        records, rejected, not_ours = self._map_rows(spec, batch.rows, messages)
        return Page(spec.name, records, rejected, state, api_calls=batch.cost + extra_cost,
                    total=batch.total, missing_crm_ids=not_ours)

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
        data = self._query(soql, f"query {spec.sobject}", include_deleted=False)
        total: int | None = int(data.get("totalSize") or 0)
        known = {str(i) for i in (state or {}).get("ids") or []}
        listed: list[str] = []
        while True:
            rows = [r for r in data.get("records") or [] if isinstance(r, dict)]
            done = bool(data.get("done", True)) or not data.get("nextRecordsUrl")
            chunks = [rows[i:i + self._store_page_size]
                      for i in range(0, len(rows), self._store_page_size)] or [[]]
            for index, chunk in enumerate(chunks):
                last = done and index == len(chunks) - 1
                listed += [str(r.get("Id")) for r in chunk if r.get("Id")]
                records, rejected, _ = self._map_rows(spec, chunk)
                new_state = ({"mode": "listing", "ids": sorted(listed)} if last
                             else dict(state or {}))
                yield Page(spec.name, records, rejected, new_state,
                           api_calls=self.api_calls - calls_before, total=total,
                           missing_crm_ids=sorted(known - set(listed)) if last else [])
                calls_before, total = self.api_calls, None
            if done:
                return
            data = self._query_more(str(data["nextRecordsUrl"]), f"query more {spec.sobject}")

    # -- object streams -----------------------------------------------------------------------

    def _pull_object(self, spec: _Stream, state: dict[str, Any] | None,
                     until: datetime) -> Iterator[Page]:
        if state is not None and state.get("mode") == "bulk":
            yield from self._pull_bulk(spec, state, until)
            return
        cursor = _Cursor.from_state(state) if state and state.get("mode") == "incremental" \
            else _Cursor()
        fields = self._select(spec.sobject, spec.kind)
        try:
            for batch in self._read_pass(spec.sobject, fields, self._filters(spec), cursor,
                                         until, bulk_allowed=state is None):
                cost = self.api_calls
                self._resolve_links(spec, batch.rows)
                cost = self.api_calls - cost
                yield self._page(spec, batch, {"mode": "incremental", **cursor.to_state()},
                                 extra_cost=cost)
        except _BulkSwitch as switch:
            log.info("Salesforce %s: %s rows, reading them by a Bulk API 2.0 job", spec.name,
                     f"{switch.total:,}")
            yield from self._pull_bulk(spec, None, until, total=switch.total, spent=switch.cost)

    def _resolve_links(self, spec: _Stream, rows: list[dict[str, Any]]) -> None:
        if spec.kind in ("call", "email", "meeting", "task", "deal") and rows:
            queries = self._link_queries(rows, spec.kind)
            found = self._lookup(queries) if queries else {}
            self._apply_links(found, rows, spec.kind)

    # -- emails: the Task pass, then the EmailMessage pass --------------------------------------

    def _message_fields(self) -> list[str]:
        if not self._has_object("EmailMessage"):
            return []
        fields = self._select("EmailMessage", "email_message")
        return fields

    def _messages_for(self, task_ids: Iterable[str], extra: list[tuple[str, str]]
                      ) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """EmailMessages by ActivityId (merged per Task), with other look-ups in the same batch."""
        fields = self._message_fields()
        activity = self._mapping.fields["email_message"].get("activity", "")
        queries = list(extra)
        ids = [i for i in task_ids if i]
        if fields and ids and self._has_field("EmailMessage", activity):
            queries += self._id_queries("messages", "EmailMessage", fields, activity, ids)
        found = self._lookup(queries) if queries else {}
        by_task: dict[str, dict[str, Any]] = {}
        canonical = self._canonical("EmailMessage", activity) if activity else ""
        for message in found.get("messages", []):
            if message.get("IsDeleted") is True:
                continue
            task_id = _text(message.get(canonical))
            if task_id is not None:
                by_task[task_id] = _merge_messages(by_task.get(task_id), message, self._mapping)
        return by_task, found

    def _pull_emails(self, spec: _Stream, state: dict[str, Any] | None,
                     until: datetime) -> Iterator[Page]:
        if state is not None and state.get("mode") == "bulk":
            yield from self._pull_bulk(spec, state, until)
            return
        incremental = state is not None and state.get("mode") == "incremental"
        tasks = _Cursor.from_state(state.get("tasks")) if incremental and state else _Cursor()
        messages = (_Cursor.from_state(state.get("messages")) if incremental and state
                    else _Cursor(at=until))
        phase = (state or {}).get("phase", "tasks") if incremental else "tasks"

        def current(next_phase: str) -> dict[str, Any]:
            return {"mode": "incremental", "phase": next_phase, "tasks": tasks.to_state(),
                    "messages": messages.to_state()}

        fields = self._select("Task", "email")
        if phase == "tasks":
            try:
                for batch in self._read_pass("Task", fields, self._filters(spec), tasks, until,
                                             bulk_allowed=state is None):
                    cost = self.api_calls
                    extra = self._link_queries(batch.rows, "email")
                    by_task, found = self._messages_for((str(r.get("Id")) for r in batch.rows),
                                                        extra)
                    self._apply_links(found, batch.rows, "email")
                    cost = self.api_calls - cost
                    yield self._page(spec, batch, current("messages" if batch.done else "tasks"),
                                     by_task, extra_cost=cost)
            except _BulkSwitch as switch:
                log.info("Salesforce emails: %s rows, reading them by a Bulk API 2.0 job",
                         f"{switch.total:,}")
                yield from self._pull_bulk(spec, None, until, total=switch.total,
                                           spent=switch.cost)
                return
        if not self._has_object("EmailMessage"):
            return
        # EmailMessages changed since the last run: their Tasks, mapped again with the news.
        message_fields = [f for f in ("Id", "IsDeleted", "SystemModstamp",
                                      self._mapping.fields["email_message"].get("activity", ""))
                          if f and self._has_field("EmailMessage", f)]
        activity = self._canonical("EmailMessage",
                                   self._mapping.fields["email_message"].get("activity", ""))
        filters = [f"{activity} != null"] if activity in message_fields else []
        for batch in self._read_pass("EmailMessage", message_fields, filters, messages, until):
            cost = self.api_calls
            task_ids = sorted({str(r[activity]) for r in batch.rows if r.get(activity)})
            rows: list[dict[str, Any]] = []
            tracking: dict[str, dict[str, Any]] = {}
            if task_ids:
                task_queries = self._id_queries("tasks", "Task", fields, "Id", task_ids,
                                                " AND ".join(self._filters(spec)))
                tracking, found = self._messages_for(task_ids, task_queries)
                rows = found.get("tasks", [])
                links = self._link_queries(rows, "email")
                self._apply_links(self._lookup(links) if links else {}, rows, "email")
            cost = self.api_calls - cost
            page_batch = _Batch(rows, batch.cost, batch.total, batch.done)
            yield self._page(spec, page_batch, current("tasks" if batch.done else "messages"),
                             tracking, extra_cost=cost)

    # -- Bulk API 2.0 ---------------------------------------------------------------------------

    def _bulk(self, client: Any, sobject: str) -> Any:
        return _bulk_client(client, sobject)

    def _pull_bulk(self, spec: _Stream, state: dict[str, Any] | None, until: datetime,
                   *, total: int | None = None, spent: int = 0) -> Iterator[Page]:
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
                info = self._call(f"GET bulk job {sobject}",
                                  lambda c: self._bulk(c, sobject).get_job(job_id, True))
                if info.get("state") in ("Failed", "Aborted"):
                    job_id = None
            except _NotFound:
                job_id = None
            if job_id is None:
                locator, offset = None, 0
        if job_id is None:
            conditions = [*self._filters(spec), f"SystemModstamp <= {soql_datetime(job_until)}"]
            soql = f"SELECT {', '.join(fields)} FROM {sobject} WHERE {' AND '.join(conditions)}"
            job = self._call(f"POST bulk query job {sobject}",
                             lambda c: self._bulk(c, sobject).create_job("queryAll", soql))
            job_id = str(job["id"])
            locator, offset = None, 0
        self._wait_for_job(sobject, job_id)
        types = self._types.get(sobject, {})
        while True:
            result = self._call(
                f"GET bulk results {sobject}",
                partial(_bulk_results, sobject, job_id, locator or "", self._bulk_page_size),
            )
            next_locator = result.get("locator") or None
            rows = [_typed_row(row, types)
                    for row in csv.DictReader(io.StringIO(result.get("records") or ""))]
            rows = rows[offset:]
            chunks = [rows[i:i + self._store_page_size]
                      for i in range(0, len(rows), self._store_page_size)] or [[]]
            for index, chunk in enumerate(chunks):
                offset += len(chunk)
                end_of_set = index == len(chunks) - 1
                if end_of_set and next_locator is None:
                    new_state = self._after_bulk(spec, job_until)
                elif end_of_set:
                    new_state = {"mode": "bulk", "job": job_id, "locator": next_locator,
                                 "offset": 0, "until": _iso(job_until)}
                else:
                    new_state = {"mode": "bulk", "job": job_id, "locator": locator,
                                 "offset": offset, "until": _iso(job_until)}
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
            return {"mode": "incremental", "phase": "tasks", "tasks": cursor.to_state(),
                    "messages": _Cursor(at=job_until).to_state()}
        return {"mode": "incremental", **cursor.to_state()}

    def _wait_for_job(self, sobject: str, job_id: str) -> None:
        started = time.monotonic()
        waited = 0.0
        delay = self._bulk_poll_seconds
        while True:
            info = self._call(f"GET bulk job {sobject}",
                              lambda c: self._bulk(c, sobject).get_job(job_id, True))
            state = info.get("state")
            if state == "JobComplete":
                return
            if state in ("Failed", "Aborted"):
                raise ConnectorError(
                    f"Salesforce Bulk API 2.0 job {job_id} for {sobject} ended {state}: "
                    f"{str(info.get('errorMessage') or '')[:300]}"
                )
            if waited >= self._bulk_timeout.total_seconds() or \
                    time.monotonic() - started >= self._bulk_timeout.total_seconds():
                raise TransientError(
                    f"Salesforce Bulk API 2.0 job {job_id} for {sobject} is still {state} after "
                    f"{self._bulk_timeout}; the next sync resumes it"
                )
            self._sleep(delay)
            waited += delay
            delay = min(30.0, delay * 1.5)


def _composite(body: dict[str, Any], client: Any) -> Any:
    return client.restful("composite", method="POST", json=body)


def _bulk_client(client: Any, sobject: str) -> Any:
    # simple-salesforce's Bulk API 2.0 client (``sf.bulk2.<Object>``): its job calls are
    # driven here, so that a job is polled through our sleep and resumed from a saved locator.
    return getattr(client.bulk2, sobject)._client


def _bulk_results(sobject: str, job_id: str, locator: str, max_records: int,
                  client: Any) -> Any:
    return _bulk_client(client, sobject).get_query_results(job_id, locator, max_records)


def _merge_messages(known: dict[str, Any] | None, message: dict[str, Any],
                    mapping: SourceMapping) -> dict[str, Any]:
    """One Task's EmailMessages as one: tracked, opened, clicked, replied or bounced if any is."""
    if known is None:
        return dict(message)
    merged = dict(known)
    names = mapping.fields["email_message"]
    for key in ("tracked", "replied", "bounced"):
        name = names.get(key, "")
        if name and (message.get(name) is True or merged.get(name) is True):
            merged[name] = True
    for key in ("opened", "clicked"):
        name = names.get(key, "")
        if name and message.get(name) and (not merged.get(name) or
                                           str(message[name]) < str(merged[name])):
            merged[name] = message[name]
    return merged


def _typed_row(row: dict[str, str], types: dict[str, str]) -> dict[str, Any]:
    """A Bulk API CSV row with the JSON types the REST API gives (empty → None)."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if value == "" or value is None:
            out[name] = None
            continue
        kind = types.get(name, "string")
        if kind == "boolean" and value in ("true", "false"):
            out[name] = value == "true"
        elif kind == "int" and re.fullmatch(r"-?\d+", value):
            out[name] = int(value)
        elif kind in ("double", "currency", "percent") and re.fullmatch(
                r"-?\d+(\.\d+)?(E-?\d+)?", value, re.I):
            out[name] = float(value)
        else:
            out[name] = value
    return out


def _float_or_none(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _save_errors(result: dict[str, Any]) -> str:
    """A failed SaveResult's errors as one line: ``STATUS_CODE: message (fields)``."""
    parts = []
    for error in result.get("errors") or []:
        if not isinstance(error, dict):
            continue
        fields = ", ".join(str(f) for f in error.get("fields") or [])
        message = str(error.get("message") or "")[:300]
        parts.append(f"{error.get('statusCode') or 'ERROR'}: {message}"
                     + (f" ({fields})" if fields else ""))
    return "; ".join(parts) or "Salesforce did not save the record"


def _body_detail(body: Any) -> tuple[str, str]:
    """(errorCode, message) of a Salesforce error body ``[{"message", "errorCode"}]``."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        first = body[0]
        message = str(first.get("message") or "").strip()
        # INVALID_FIELD and MALFORMED_QUERY messages echo the query first; keep the reason.
        if "\n" in message:
            message = message.splitlines()[-1]
        return str(first.get("errorCode") or ""), message
    if isinstance(body, dict):
        return str(body.get("errorCode") or body.get("error") or ""), \
            str(body.get("message") or body.get("error_description") or "")
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = str(body or "").strip()
    return "", re.sub(r"<[^>]+>", " ", text)[:200].strip()


def _error_detail(exc: SalesforceError) -> tuple[str, str]:
    return _body_detail(getattr(exc, "content", None))
