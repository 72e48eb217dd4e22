"""The HubSpot connector: CRM v3 objects to normalized records (SPEC §4, §8).

Streams, in sync order: ``owners`` (→ Rep and Team: teams come from the owners'
``teams``, the primary one is the rep's team), ``contacts`` (→ Lead), ``calls``,
``emails``, ``meetings``, ``tasks`` (→ FollowUpTask) and ``deals`` (→ Deal, with the
stage probability from the deal pipelines' stage metadata, read once per run and only
when deals arrive).

How a stream is read
--------------------
*Full sync* (no state, or a full pass in progress): the list endpoint
``GET /crm/v3/objects/{type}`` 100 records a page, with the mapped properties and the
``associations`` the records need, so list pages cost no extra requests; then the
same with ``archived=true`` (records flagged ``deleted``). Each page's state holds the
phase and the next ``after`` token, so a killed run continues from the next page. When
the pass ends the state becomes an incremental cursor at the pass's start time.

*Incremental sync*: ``POST /crm/v3/objects/{type}/search`` on ``hs_lastmodifieddate``
(``lastmodifieddate`` for contacts) ``GTE`` cursor − lookback (a closed bound; right
after a full pass there is no lookback, the list endpoints read the primary store)
and ``LTE`` the run's start, sorted ascending. Search returns no associations: each page
costs one ``POST /crm/v4/associations/{type}/{to}/batch/read`` per association type
(contacts; meetings also deals). Records already read at the same modified time (kept
in the state for the lookback window) are dropped before that look-up, so the lookback
re-reads cost nothing downstream. A page's cursor is (modified_at, crm_id) of its last
record; a finished run moves it to the run's start, never past it.

The 10,000-result cap of search: before paging would pass 10,000 results the search
restarts with its lower bound at the last modified time seen, t (closed: the records
on the boundary are read again, and dropped as already read). The boundary timestamp t
itself is read by key — ``modified EQ t`` and ``hs_object_id GT last id``, sorted by
``hs_object_id``, no offset and so no cap — then the search goes on from just after t.
So any number of records sharing a day or one millisecond syncs completely, each
yielded once; a restart costs one extra request per 10,000 records.

Archived records never appear in search. Each incremental run (or, with
``archived_sweep_interval``, each run at least that long after the previous sweep)
sweeps ``archived=true`` list pages and reports only the records archived since the
previous sweep (``archivedAt``, with the lookback). HubSpot keeps archived records 90
days, so a sweep costs ceil(archived in the last 90 days / 100) requests per stream,
at least one.

Owners have no search: every run lists the active owners (a full pass also the
archived ones, flagged deleted); owners that left the active list since the previous
run are reported in ``Page.missing_crm_ids``.

Cost in requests (P = page size, 100)
-------------------------------------
- full: per object stream ceil(active/P) + ceil(archived/P), at least 1 + 1; deals +1
  (pipelines); owners ceil(active/P) + ceil(archived/P). About 1.0 request per 100
  records plus two per stream.
- incremental: per object stream ceil(changed/P) searches (+ the restarts at the cap),
  plus per page with new records one batch read per association type (calls, emails,
  tasks, deals 1; meetings 2; contacts 0), deals +1 (pipelines) when deals changed,
  plus the archived sweep; owners ceil(owners/P).
- no change: exactly one search per object stream and one owners page (7 requests),
  plus the archived sweep (6 requests while each type has at most 100 archived records)
  when it is due.

Limits and failures
-------------------
Search requests are paced to ``searches_per_second`` (5, HubSpot's search limit;
search responses carry no rate-limit headers), waiting in real time. When a response says ``X-HubSpot-RateLimit-Remaining: 0``
the next request waits until the portal's rolling window (``-Interval-Milliseconds``,
``-Max``) has room. A 429 waits as HubSpot says: ``Retry-After``, else the policy in
the body (``SECONDLY`` 1 s, ``TEN_SECONDLY_ROLLING`` the window), and is retried; a
``DAILY`` 429 raises QuotaExhausted at once. 5xx answers and network errors or
timeouts retry with jittered exponential backoff. Every other wait goes
through the injected ``sleep``; after ``max_retries`` retries a request raises RateLimited or
TransientError. 401 raises AuthError, 403 and other 4xx a ConnectorError naming the
endpoint. Every attempt counts in ``api_calls`` (and calls ``on_request``); a page's
own cost is ``Page.api_calls``. The token never appears in a message or a log line.

Write-back (the TargetWriter side, SPEC §9)
-------------------------------------------
Targets go to properties of the ``users`` object record of the owner's user (the owner's
``userId`` is its ``hs_internal_user_id``). ``prepare_fields`` batch-reads the property
definitions and, unless in a dry run, creates what is missing: the group (``iskpi``) first,
then each property as a number. ``read_values`` finds the records by search (``IN``, 100
userIds a request) and reads the values by batch read (100 a request). ``push`` sends batch
updates of at most 100 inputs; a 207 fails the records its errors name, a 400 the batch's
records (a property that does not exist stops the push), a 403 MISSING_SCOPES raises
PermissionDenied naming the scope.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationsApiError
from hubspot.crm.objects.exceptions import ApiException as ObjectsApiError
from hubspot.crm.owners.exceptions import ApiException as OwnersApiError
from hubspot.crm.pipelines.exceptions import ApiException as PipelinesApiError
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiError
from urllib3.util.retry import Retry

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
    RateLimited,
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

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SEARCH_CAP = 10_000  # HubSpot search answers at most this many results per query
SEARCH_PER_SECOND = 5  # HubSpot's search limit per portal
# Records remembered to deduplicate re-reads in the lookback window: in the saved state,
# and (more) in memory during a run, where the cap's boundary timestamp is re-read.
SEEN_CAP = 2_000
SEEN_CAP_IN_RUN = 200_000
OWNERS_PAGE = 100
# Each generated package of the client raises its own ApiException (status, headers, body).
API_ERRORS: tuple[type[Exception], ...] = (
    ObjectsApiError, OwnersApiError, PipelinesApiError, AssociationsApiError, PropertiesApiError,
)
# Write-back (SPEC §9, §10): the users object, its records found by hs_internal_user_id.
USERS = "users"  # the object type in /crm/v3/objects/users
USERS_PROPERTIES = "user"  # as the users guide spells it in /crm/v3/properties/user
USER_ID_PROPERTY = "hs_internal_user_id"
BATCH_WRITE = 100  # inputs in one batch update (and one batch read)


# --- the stream table ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Stream:
    name: str
    object_type: str  # the CRM object type ("owners" is not a CRM object)
    kind: str  # the mapping's record kind
    record_type: type[Record]


STREAM_TABLE: tuple[_Stream, ...] = (
    _Stream("owners", "owners", "rep", Rep),
    _Stream("contacts", "contacts", "lead", Lead),
    _Stream("calls", "calls", "call", Call),
    _Stream("emails", "emails", "email", Email),
    _Stream("meetings", "meetings", "meeting", Meeting),
    _Stream("tasks", "tasks", "task", FollowUpTask),
    _Stream("deals", "deals", "deal", Deal),
)
_STREAMS = {s.name: s for s in STREAM_TABLE}


# --- value parsing (HubSpot sends every property value as a string) ------------------------


def parse_datetime(value: Any, name: str) -> datetime | None:
    """An ISO datetime, a date, or epoch milliseconds as an aware UTC datetime; None if empty."""
    if value is None or isinstance(value, bool):
        if value is None:
            return None
        raise RecordRejected(f"{name}: not a date or time: {value!r}")
    if isinstance(value, int | float):
        return _from_millis(int(value), name)
    text = str(value).strip()
    if not text:
        return None
    if re.fullmatch(r"-?\d+", text):
        return _from_millis(int(text), name)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RecordRejected(f"{name}: not a date or time: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _from_millis(millis: int, name: str) -> datetime:
    try:
        return EPOCH + timedelta(milliseconds=millis)
    except OverflowError:
        raise RecordRejected(f"{name}: epoch milliseconds out of range: {millis}") from None


def to_millis(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(milliseconds=1)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _decimal(value: Any, name: str) -> Decimal | None:
    text = _text(value)
    if text is None:
        return None
    try:
        number = Decimal(text.replace(",", ""))
    except InvalidOperation:
        raise RecordRejected(f"{name}: not a number: {text!r}") from None
    if not number.is_finite():
        raise RecordRejected(f"{name}: not a finite number: {text!r}")
    return number


def _int(value: Any, name: str) -> int | None:
    number = _decimal(value, name)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise RecordRejected(f"{name}: not a whole number: {value!r}")
    return int(number)


def _float(value: Any, name: str) -> float | None:
    number = _decimal(value, name)
    return None if number is None else float(number)


def _bool(value: Any, name: str) -> bool:
    text = _text(value)
    if text is None:
        return False
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise RecordRejected(f"{name}: not true or false: {text!r}")


# --- mapping functions: HubSpot JSON → normalized records (pure, no I/O) ------------------


class _Props:
    """Read a record's mapped properties by normalized field name."""

    def __init__(self, payload: dict[str, Any], mapping: SourceMapping, kind: str) -> None:
        self.payload = payload
        self.mapping = mapping
        self.kind = kind
        props = payload.get("properties")
        if not isinstance(props, dict):
            raise RecordRejected("the record has no properties object")
        self.props: dict[str, Any] = props
        crm_id = _text(payload.get("id"))
        if crm_id is None:
            raise RecordRejected("the record has no id")
        self.crm_id = crm_id

    def name(self, field_name: str) -> str:
        return self.mapping.crm_field(self.kind, field_name)

    def raw(self, field_name: str) -> Any:
        return self.props.get(self.name(field_name))

    def text(self, field_name: str) -> str | None:
        return _text(self.raw(field_name))

    def present(self, field_name: str) -> bool:
        return _text(self.raw(field_name)) is not None

    def moment(self, field_name: str) -> datetime | None:
        return parse_datetime(self.raw(field_name), self.name(field_name))

    def required_datetime(self, field_name: str) -> datetime:
        value = self.moment(field_name)
        if value is None:
            raise RecordRejected(f"missing {self.name(field_name)} (required)")
        return value

    def whole(self, field_name: str) -> int | None:
        return _int(self.raw(field_name), self.name(field_name))

    def number(self, field_name: str) -> float | None:
        return _float(self.raw(field_name), self.name(field_name))

    def decimal(self, field_name: str) -> Decimal | None:
        return _decimal(self.raw(field_name), self.name(field_name))

    def flag(self, field_name: str) -> bool:
        return _bool(self.raw(field_name), self.name(field_name))

    def count_positive(self, field_name: str) -> bool | None:
        count = self.whole(field_name)
        return None if count is None else count > 0

    def modified_at(self) -> datetime | None:
        return self.moment("modified_at") or parse_datetime(
            self.payload.get("updatedAt"), "updatedAt"
        )

    def deleted(self) -> bool:
        return self.payload.get("archived") is True

    def associated(self, field_name: str) -> str | None:
        """The associated record's id (the lowest, when there are several)."""
        to_type = self.mapping.associations.get(self.kind, {}).get(field_name)
        if to_type is None:
            return None
        associations = self.payload.get("associations") or {}
        block = associations.get(to_type) if isinstance(associations, dict) else None
        results = block.get("results", []) if isinstance(block, dict) else []
        ids = {str(item["id"]) for item in results if isinstance(item, dict) and item.get("id")}
        if not ids:
            return None
        return min(ids, key=lambda crm_id: (len(crm_id), crm_id))


def _direction(value: str | None, mapping: SourceMapping, outbound_set: str) -> Direction | None:
    if value is None:
        return None  # no direction is not outbound (SPEC §10)
    return "outbound" if mapping.contains(outbound_set, value) else "inbound"


def company_size(value: str | None, mapping: SourceMapping) -> str | None:
    """numemployees → a company-size bucket; a plain number is bucketed too; else None."""
    if value is None:
        return None
    bucket = mapping.value("company_size", value)
    if bucket is not None:
        return bucket
    try:
        count = int(Decimal(value.replace(",", "")))
    except (InvalidOperation, ValueError):
        return None
    if count < 1:
        return None
    for upper, name in ((9, "1-9"), (49, "10-49"), (249, "50-249"), (999, "250-999")):
        if count <= upper:
            return name
    return "1000+"


def call_outcome(disposition: str | None, status: str | None, mapping: SourceMapping) -> str:
    """The disposition's outcome, else the call status's (BUSY, NO_ANSWER, FAILED…), else unknown."""
    by_disposition = mapping.value("call_disposition", disposition)
    if by_disposition is not None:
        return by_disposition
    return mapping.value("call_status", status) or "unknown"


def map_contact(payload: dict[str, Any], mapping: SourceMapping) -> Lead:
    """A HubSpot contact as a Lead."""
    p = _Props(payload, mapping, "lead")
    return Lead(
        source="hubspot",
        crm_id=p.crm_id,
        deleted=p.deleted(),
        modified_at=p.modified_at(),
        created_at=p.required_datetime("created_at"),
        channel=p.text("channel"),
        industry=p.text("industry"),
        company_size=company_size(p.text("company_size"), mapping),
        status=p.text("status"),
        sql_at=p.moment("sql_at"),
        score=p.number("score"),
        rep_crm_id=p.text("rep_crm_id"),
    )


def map_call(payload: dict[str, Any], mapping: SourceMapping) -> Call:
    """A HubSpot call engagement as a Call."""
    p = _Props(payload, mapping, "call")
    outcome: CallOutcome = call_outcome(  # type: ignore[assignment]  # checked by the loader
        p.text("outcome"), p.text("outcome_status"), mapping
    )
    return Call(
        source="hubspot",
        crm_id=p.crm_id,
        deleted=p.deleted(),
        modified_at=p.modified_at(),
        occurred_at=p.required_datetime("occurred_at"),
        direction=_direction(p.text("direction"), mapping, "call_outbound"),
        outcome=outcome,
        duration_ms=p.whole("duration_ms"),
        rep_crm_id=p.text("rep_crm_id"),
        contact_crm_id=p.associated("contact_crm_id"),
    )


def map_email(payload: dict[str, Any], mapping: SourceMapping) -> Email:
    """A HubSpot email engagement as an Email (absent counts mean unknown, not zero)."""
    p = _Props(payload, mapping, "email")
    status = p.text("status")
    return Email(
        source="hubspot",
        crm_id=p.crm_id,
        deleted=p.deleted(),
        modified_at=p.modified_at(),
        sent_at=p.required_datetime("sent_at"),
        direction=_direction(p.text("direction"), mapping, "email_outbound"),
        status=status,
        sent=not mapping.contains("email_not_sent", status),
        tracked=p.present("opened"),
        opened=p.count_positive("opened"),
        clicked=p.count_positive("clicked"),
        replied=p.count_positive("replied"),
        rep_crm_id=p.text("rep_crm_id"),
        contact_crm_id=p.associated("contact_crm_id"),
    )


def map_meeting(payload: dict[str, Any], mapping: SourceMapping) -> Meeting:
    """A HubSpot meeting as a Meeting; an outcome the mapping does not know rejects it."""
    p = _Props(payload, mapping, "meeting")
    raw_outcome = p.text("outcome")
    outcome = mapping.value("meeting_outcome", raw_outcome)
    if raw_outcome is not None and outcome is None:
        raise RecordRejected(
            f"{p.name('outcome')}: unknown meeting outcome {raw_outcome!r} "
            "(map it under [hubspot.values.meeting_outcome] in the mapping file)"
        )
    meeting_outcome: MeetingOutcome | None = outcome  # type: ignore[assignment]
    return Meeting(
        source="hubspot",
        crm_id=p.crm_id,
        deleted=p.deleted(),
        modified_at=p.modified_at(),
        booked_at=p.required_datetime("booked_at"),
        start_at=p.moment("start_at"),
        outcome=meeting_outcome,
        rep_crm_id=p.text("rep_crm_id"),
        contact_crm_id=p.associated("contact_crm_id"),
        deal_crm_id=p.associated("deal_crm_id"),
    )


def map_task(payload: dict[str, Any], mapping: SourceMapping) -> FollowUpTask:
    """A HubSpot task as a FollowUpTask."""
    p = _Props(payload, mapping, "task")
    return FollowUpTask(
        source="hubspot",
        crm_id=p.crm_id,
        deleted=p.deleted(),
        modified_at=p.modified_at(),
        due_at=p.required_datetime("due_at"),
        status=p.text("status"),
        completed_at=p.moment("completed_at"),
        rep_crm_id=p.text("rep_crm_id"),
        contact_crm_id=p.associated("contact_crm_id"),
    )


def attach_associations(
    results: list[dict[str, Any]], to_type: str, batch_read: dict[str, Any]
) -> None:
    """Give search results the ``associations`` block of list results, from a v4 batch read."""
    linked: dict[str, list[dict[str, str]]] = {}
    for item in batch_read.get("results") or []:
        from_id = _text((item.get("from") or {}).get("id"))
        if from_id is None:
            continue
        for target in item.get("to") or []:
            to_id = _text(target.get("toObjectId"))
            if to_id is not None and {"id": to_id} not in linked.get(from_id, []):
                linked.setdefault(from_id, []).append({"id": to_id})
    for result in results:
        block = result.setdefault("associations", {})
        block[to_type] = {"results": linked.get(str(result.get("id")), [])}


StageProbabilities = dict[tuple[str, str], float]


def stage_probabilities(payload: dict[str, Any]) -> StageProbabilities:
    """(pipeline id, stage id) → probability (0–1) from ``GET /crm/v3/pipelines/deals``."""
    probabilities: StageProbabilities = {}
    for pipeline in payload.get("results") or []:
        for stage in pipeline.get("stages") or []:
            metadata = stage.get("metadata") or {}
            try:
                probability = _float(metadata.get("probability"), "probability")
            except RecordRejected:
                probability = None
            if probability is not None:
                probabilities[(str(pipeline.get("id")), str(stage.get("id")))] = probability
    return probabilities


def _probability(
    probabilities: StageProbabilities, pipeline: str | None, stage: str | None
) -> float | None:
    if stage is None:
        return None
    if pipeline is not None and (pipeline, stage) in probabilities:
        return probabilities[(pipeline, stage)]
    # Stage ids are unique in a portal; a deal without its pipeline still finds its stage.
    matches = {value for (_, stage_id), value in probabilities.items() if stage_id == stage}
    return matches.pop() if len(matches) == 1 else None


def map_deal(
    payload: dict[str, Any], mapping: SourceMapping, probabilities: StageProbabilities
) -> Deal:
    """A HubSpot deal as a Deal, its stage probability looked up in the pipelines."""
    p = _Props(payload, mapping, "deal")
    pipeline, stage = p.text("pipeline"), p.text("stage")
    return Deal(
        source="hubspot",
        crm_id=p.crm_id,
        deleted=p.deleted(),
        modified_at=p.modified_at(),
        created_at=p.required_datetime("created_at"),
        closed_at=p.moment("closed_at"),
        amount=p.decimal("amount"),
        stage=stage,
        pipeline=pipeline,
        is_closed=p.flag("is_closed"),
        is_won=p.flag("is_won"),
        probability=_probability(probabilities, pipeline, stage),
        owner_crm_id=p.text("owner_crm_id"),
        rep_crm_id=p.text("rep_crm_id"),
        bant_budget=p.text("bant_budget"),
        bant_authority=p.text("bant_authority"),
        bant_need=p.text("bant_need"),
        bant_timing=p.text("bant_timing"),
        handoff_rating=p.number("handoff_rating"),
        lead_source=p.text("lead_source"),
        contact_crm_id=p.associated("contact_crm_id"),
    )


def map_owner(payload: dict[str, Any]) -> tuple[Rep, list[Team]]:
    """A HubSpot owner as a Rep (its primary team is its team) and the owner's teams."""
    crm_id = _text(payload.get("id"))
    if crm_id is None:
        raise RecordRejected("the owner has no id")
    teams: list[Team] = []
    primary: str | None = None
    for team in payload.get("teams") or []:
        team_id = _text(team.get("id"))
        if team_id is None:
            continue
        teams.append(Team(source="hubspot", crm_id=team_id, name=_text(team.get("name")) or team_id))
        if team.get("primary") is True and primary is None:
            primary = team_id
    if primary is None and teams:
        primary = teams[0].crm_id
    first, last = _text(payload.get("firstName")), _text(payload.get("lastName"))
    email = _text(payload.get("email"))
    name = " ".join(part for part in (first, last) if part) or email or crm_id
    archived = payload.get("archived") is True
    return (
        Rep(
            source="hubspot",
            crm_id=crm_id,
            deleted=archived,
            modified_at=parse_datetime(payload.get("updatedAt"), "updatedAt"),
            name=name,
            email=email,
            team_crm_id=primary,
            active=not archived,
            user_id=_text(payload.get("userId")),
        ),
        teams,
    )


def map_object(
    kind: str,
    payload: dict[str, Any],
    mapping: SourceMapping,
    probabilities: StageProbabilities | None = None,
) -> Record:
    """Map one CRM object of a record kind; raises RecordRejected when it cannot be."""
    if kind == "lead":
        return map_contact(payload, mapping)
    if kind == "call":
        return map_call(payload, mapping)
    if kind == "email":
        return map_email(payload, mapping)
    if kind == "meeting":
        return map_meeting(payload, mapping)
    if kind == "task":
        return map_task(payload, mapping)
    if kind == "deal":
        return map_deal(payload, mapping, probabilities or {})
    raise ValueError(f"no HubSpot object maps to record kind {kind!r}")


# --- the incremental state -------------------------------------------------------------------


@dataclass
class _Incremental:
    """The saved position of an incremental stream (see the module docstring)."""

    cursor_at: datetime
    cursor_id: str | None = None
    lookback: bool = True  # False right after a full pass: the list endpoints had no lag
    seen: dict[str, int] = field(default_factory=dict)  # crm id → modified millis
    keyset: dict[str, Any] | None = None  # {"at": millis, "after_id": id | None}
    phase: str = "search"  # what comes next: "search", or "archived" (a sweep in progress)
    archived_after: str | None = None
    archived_since: datetime | None = None  # report records archived at/after this
    sweep_started: datetime | None = None
    swept_at: datetime | None = None

    @classmethod
    def from_state(cls, state: StreamState) -> _Incremental:
        def moment(name: str) -> datetime | None:
            value = state.get(name)
            return parse_datetime(value, name) if value else None

        cursor = state.get("cursor") or {}
        cursor_at = parse_datetime(cursor.get("modified_at"), "cursor")
        if cursor_at is None:
            raise ValueError("incremental state without a cursor")
        return cls(
            cursor_at=cursor_at,
            cursor_id=cursor.get("crm_id"),
            lookback=bool(state.get("lookback", True)),
            seen={str(k): int(v) for k, v in (state.get("seen") or {}).items()},
            keyset=dict(state["keyset"]) if state.get("keyset") else None,
            phase=str(state.get("phase", "search")),
            archived_after=state.get("archived_after"),
            archived_since=moment("archived_since"),
            sweep_started=moment("sweep_started"),
            swept_at=moment("swept_at"),
        )

    def to_state(self) -> dict[str, Any]:
        def text(moment: datetime | None) -> str | None:
            return _iso(moment) if moment is not None else None

        return {
            "mode": "incremental",
            "cursor": {"modified_at": _iso(self.cursor_at), "crm_id": self.cursor_id},
            "lookback": self.lookback,
            "seen": _newest(self.seen, SEEN_CAP),
            "keyset": dict(self.keyset) if self.keyset else None,
            "phase": self.phase,
            "archived_after": self.archived_after,
            "archived_since": text(self.archived_since),
            "sweep_started": text(self.sweep_started),
            "swept_at": text(self.swept_at),
        }

    def prune_seen(self, lookback: timedelta) -> None:
        floor = to_millis(self.cursor_at - lookback)
        self.seen = _newest({k: at for k, at in self.seen.items() if at >= floor}, SEEN_CAP_IN_RUN)


def _newest(seen: dict[str, int], cap: int) -> dict[str, int]:
    # Forgetting a record only costs a harmless re-read; keep the newest.
    if len(seen) <= cap:
        return dict(seen)
    return dict(sorted(seen.items(), key=lambda item: item[1])[-cap:])


# --- the connector ---------------------------------------------------------------------------


class HubSpotConnector:
    """Pulls owners, contacts, calls, emails, meetings, tasks and deals from a HubSpot portal."""

    source = "hubspot"

    def __init__(
        self,
        access_token: str,
        *,
        host: str = "https://api.hubapi.com",
        mapping: Mapping | None = None,
        page_size: int = 100,
        search_page_size: int = 100,
        lookback: timedelta = timedelta(minutes=10),
        max_retries: int = 6,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        on_request: Callable[[], None] | None = None,
        archived_sweep_interval: timedelta = timedelta(0),
        searches_per_second: int | None = SEARCH_PER_SECOND,
    ) -> None:
        if not access_token:
            raise AuthError("no HubSpot access token: set ISKPI_HUBSPOT_ACCESS_TOKEN")
        self.api_calls = 0
        self._mapping = (mapping or default_mapping()).hubspot
        self._page_size = page_size
        self._search_page_size = search_page_size
        self._lookback = lookback
        self._max_retries = max_retries
        self._timeout = timeout
        self._sleep = sleep
        self._on_request = on_request
        self._sweep_interval = archived_sweep_interval
        self._random = random.Random()
        # Search pacing waits in real time (time.sleep), not through ``sleep``: the limit
        # is the server's wall clock, and a test's instant ``sleep`` cannot satisfy it.
        self._searches_per_second = searches_per_second
        self._search_times: deque[float] = deque(maxlen=searches_per_second or 1)
        self._sent_times: deque[float] = deque(maxlen=1_000)  # for the portal's rolling window
        self._not_before = 0.0
        self._probabilities: StageProbabilities | None = None
        # Retries are ours (counted, paced, jittered), so urllib3 must not add its own.
        client = HubSpot(access_token=access_token, host=host.rstrip("/"), retry=Retry(0))
        self._objects = client.crm.objects.basic_api
        self._search = client.crm.objects.search_api
        self._owners = client.crm.owners.owners_api
        self._pipelines = client.crm.pipelines.pipelines_api
        self._associations = client.crm.associations.v4.batch_api
        self._batch = client.crm.objects.batch_api
        self._properties = client.crm.properties.core_api
        self._property_groups = client.crm.properties.groups_api
        self._property_batch = client.crm.properties.batch_api
        self.write_requests = 0

    @property
    def streams(self) -> Sequence[StreamSpec]:
        """The streams in sync order: owners first, deals last."""
        specs = []
        for stream in STREAM_TABLE:
            cursor = (
                "updatedAt"
                if stream.kind == "rep"
                else self._mapping.crm_field(stream.kind, "modified_at")
            )
            specs.append(StreamSpec(stream.name, stream.record_type, cursor, self._lookback))
        return specs

    def pull(self, stream: str, state: StreamState | None, *, until: datetime) -> Iterator[Page]:
        """Yield the stream's pages from ``state`` (None: a full sync) up to ``until``."""
        if stream not in _STREAMS:
            raise ValueError(f"unknown HubSpot stream {stream!r}")
        spec = _STREAMS[stream]
        if until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
        self._probabilities = None  # read the deal pipelines once per run
        if spec.kind == "rep":
            yield from self._pull_owners(state)
            return
        incremental: _Incremental | None = None
        if state is not None and state.get("mode") == "incremental":
            try:
                incremental = _Incremental.from_state(state)
            except (ValueError, TypeError, AttributeError) as exc:
                log.warning("unreadable %s state (%s): syncing the stream in full", stream, exc)
        if incremental is not None:
            yield from self._pull_incremental(spec, incremental, until)
        elif state is not None and state.get("mode") == "full":
            yield from self._pull_full(spec, state, until)
        else:
            yield from self._pull_full(spec, {}, until)

    # -- full pass ---------------------------------------------------------------------------

    def _pull_full(self, spec: _Stream, state: StreamState, until: datetime) -> Iterator[Page]:
        started_at = parse_datetime(state.get("started_at"), "started_at") or until
        phase = "archived" if state.get("phase") == "archived" else "active"
        after: str | None = state.get("after")
        while True:
            calls_before = self.api_calls
            data = self._list_page(spec, after=after, archived=phase == "archived")
            records, rejected = self._map_page(spec, data.get("results") or [])
            next_after = _next_after(data)
            new_state: dict[str, Any]
            if next_after is not None:
                new_state = {"mode": "full", "phase": phase, "after": next_after,
                             "started_at": _iso(started_at)}
            elif phase == "active":
                new_state = {"mode": "full", "phase": "archived", "after": None,
                             "started_at": _iso(started_at)}
            else:
                # The list endpoints read everything modified before the pass began.
                new_state = _Incremental(
                    cursor_at=started_at,
                    lookback=False,
                    archived_since=started_at,
                    swept_at=started_at,
                ).to_state()
            yield Page(spec.name, records, rejected, new_state,
                       api_calls=self.api_calls - calls_before)
            if next_after is not None:
                after = next_after
            elif phase == "active":
                phase, after = "archived", None
            else:
                return

    # -- incremental -------------------------------------------------------------------------

    def _pull_incremental(
        self, spec: _Stream, state: _Incremental, until: datetime
    ) -> Iterator[Page]:
        if state.phase == "archived":
            yield from self._sweep_archived(spec, state, until)
        yield from self._search_changes(spec, state, until)
        if state.phase == "archived":
            yield from self._sweep_archived(spec, state, until)

    def _search_body(self, spec: _Stream, filters: list[dict[str, str]], sort: str,
                     after: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": self._mapping.properties(spec.kind),
            "limit": self._search_page_size,
        }
        if after is not None:
            body["after"] = after
        return body

    def _search_changes(
        self, spec: _Stream, state: _Incremental, until: datetime
    ) -> Iterator[Page]:
        modified = self._mapping.crm_field(spec.kind, "modified_at")
        until_ms = to_millis(until)
        lower_at = state.cursor_at - self._lookback if state.lookback else state.cursor_at
        window_lower = to_millis(lower_at)
        after: str | None = None
        first_page = True
        while True:
            calls_before = self.api_calls
            keyset = state.keyset
            if keyset is not None:
                filters = [{"propertyName": modified, "operator": "EQ", "value": str(keyset["at"])}]
                if keyset.get("after_id"):
                    filters.append({"propertyName": "hs_object_id", "operator": "GT",
                                    "value": str(keyset["after_id"])})
                body = self._search_body(spec, filters, "hs_object_id", None)
            else:
                filters = [
                    {"propertyName": modified, "operator": "GTE", "value": str(window_lower)},
                    {"propertyName": modified, "operator": "LTE", "value": str(until_ms)},
                ]
                body = self._search_body(spec, filters, modified, after)
            data = self._request(
                f"POST /crm/v3/objects/{spec.object_type}/search",
                partial(self._search.do_search, spec.object_type, body,
                        _preload_content=False, _request_timeout=self._timeout),
                search=True,
            )
            results: list[dict[str, Any]] = [r for r in data.get("results") or []
                                             if isinstance(r, dict)]
            stamped = [(r, self._modified_millis(spec, r)) for r in results]
            fresh = [r for r, at in stamped if at is None or state.seen.get(str(r.get("id"))) != at]
            self._attach_associations(spec, fresh)
            records, rejected = self._map_page(spec, fresh)
            for result, at in stamped:
                if at is not None and result.get("id") is not None:
                    state.seen[str(result["id"])] = at
            last_at = next((at for _, at in reversed(stamped) if at is not None), None)
            if results and last_at is not None:
                state.cursor_at = min(EPOCH + timedelta(milliseconds=last_at), until)
                state.cursor_id = str(results[-1].get("id"))
                state.lookback = True
            next_after = _next_after(data)
            more = True
            if keyset is not None:
                if results:
                    keyset["after_id"] = str(results[-1].get("id"))
                if next_after is None or len(results) < self._search_page_size:
                    # That timestamp is exhausted: go on just after it.
                    window_lower, after = int(keyset["at"]) + 1, None
                    state.keyset = None
            else:
                if next_after is None or not results:
                    more = False
                elif (_offset(next_after, after, len(results)) + self._search_page_size
                      > SEARCH_CAP):
                    if last_at is None:
                        raise ConnectorError(
                            f"HubSpot search of {spec.object_type} returned records without "
                            f"{modified}; cannot page past {SEARCH_CAP} results"
                        )
                    # Restart at the last modified time seen. That timestamp itself is read
                    # by id (no cap there, however many records share it), then the search
                    # goes on just after it.
                    state.keyset = {"at": last_at, "after_id": None}
                else:
                    after = next_after
            if not more:
                state.cursor_at, state.cursor_id, state.lookback = until, None, True
                if self._sweep_due(state, until):
                    state.phase = "archived"
                    state.archived_after, state.sweep_started = None, until
            state.prune_seen(self._lookback)
            total = data.get("total") if first_page and isinstance(data.get("total"), int) else None
            first_page = False
            yield Page(spec.name, records, rejected, state.to_state(),
                       api_calls=self.api_calls - calls_before, total=total)
            if not more:
                return

    def _sweep_due(self, state: _Incremental, until: datetime) -> bool:
        return state.swept_at is None or until - state.swept_at >= self._sweep_interval

    def _sweep_archived(
        self, spec: _Stream, state: _Incremental, until: datetime
    ) -> Iterator[Page]:
        sweep_started = state.sweep_started or until
        since = state.archived_since
        floor = since - self._lookback if since is not None else None
        while True:
            calls_before = self.api_calls
            data = self._list_page(spec, after=state.archived_after, archived=True)
            results = [r for r in data.get("results") or [] if isinstance(r, dict)]
            if floor is not None:
                results = [r for r in results if _archived_since(r, floor)]
            records, rejected = self._map_page(spec, results)
            next_after = _next_after(data)
            if next_after is not None:
                state.archived_after = next_after
            else:
                state.phase, state.archived_after = "search", None
                state.archived_since, state.swept_at = sweep_started, sweep_started
                state.sweep_started = None
            yield Page(spec.name, records, rejected, state.to_state(),
                       api_calls=self.api_calls - calls_before)
            if next_after is None:
                return

    # -- owners ------------------------------------------------------------------------------

    def _pull_owners(self, state: StreamState | None) -> Iterator[Page]:
        calls_before = self.api_calls
        full = state is None or state.get("mode") != "incremental"
        owners = list(self._list_owners(archived=False))
        archived = list(self._list_owners(archived=True)) if full else []
        reps: list[Record] = []
        teams: dict[str, Team] = {}
        rejected: list[Rejected] = []
        active_ids: set[str] = set()
        listed_ids: set[str] = set()
        for payload in [*owners, *archived]:
            try:
                rep, owner_teams = map_owner(payload)
            except RecordRejected as exc:
                rejected.append(Rejected(_text(payload.get("id")), payload, str(exc)))
                continue
            if rep.crm_id in listed_ids:
                continue  # an owner both active and archived: the active copy wins
            listed_ids.add(rep.crm_id)
            if rep.active:
                active_ids.add(rep.crm_id)
            reps.append(rep)
            for team in owner_teams:
                teams.setdefault(team.crm_id, team)
        known = {str(i) for i in (state or {}).get("owner_ids") or []}
        missing = sorted(known - listed_ids)
        # Reps first: the store flags missing ids on the kind of the page's first record.
        yield Page(
            "owners",
            [*reps, *teams.values()],
            rejected,
            {"mode": "incremental", "owner_ids": sorted(active_ids)},
            api_calls=self.api_calls - calls_before,
            total=len(owners),
            missing_crm_ids=missing,
        )

    def _list_owners(self, *, archived: bool) -> Iterator[dict[str, Any]]:
        after: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": OWNERS_PAGE}
            if after is not None:
                kwargs["after"] = after
            if archived:
                kwargs["archived"] = "true"
            data = self._request(
                "GET /crm/v3/owners/",
                partial(self._owners.get_page, **kwargs, _preload_content=False,
                        _request_timeout=self._timeout),
            )
            for payload in data.get("results") or []:
                if isinstance(payload, dict):
                    if archived:
                        payload.setdefault("archived", True)
                    yield payload
            after = _next_after(data)
            if after is None:
                return

    # -- pages, associations, pipelines -------------------------------------------------------

    def _list_page(self, spec: _Stream, *, after: str | None, archived: bool) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "limit": self._page_size,
            "properties": self._mapping.properties(spec.kind),
        }
        to_types = sorted(set(self._mapping.associations.get(spec.kind, {}).values()))
        if to_types:
            kwargs["associations"] = to_types
        if after is not None:
            kwargs["after"] = after
        if archived:
            kwargs["archived"] = "true"
        return self._request(
            f"GET /crm/v3/objects/{spec.object_type}",
            partial(self._objects.get_page, spec.object_type, **kwargs,
                    _preload_content=False, _request_timeout=self._timeout),
        )

    def _attach_associations(self, spec: _Stream, results: list[dict[str, Any]]) -> None:
        """Give search results the ``associations`` block list pages have (one batch read each)."""
        ids = [str(r["id"]) for r in results if r.get("id") is not None]
        if not ids:
            return
        for to_type in sorted(set(self._mapping.associations.get(spec.kind, {}).values())):
            body = {"inputs": [{"id": crm_id} for crm_id in ids]}
            data = self._request(
                f"POST /crm/v4/associations/{spec.object_type}/{to_type}/batch/read",
                partial(self._associations.get_page, spec.object_type, to_type, body,
                        _preload_content=False, _request_timeout=self._timeout),
            )
            attach_associations(results, to_type, data)

    def _stage_probabilities(self) -> StageProbabilities:
        if self._probabilities is None:
            data = self._request(
                "GET /crm/v3/pipelines/deals",
                partial(self._pipelines.get_all, "deals", _preload_content=False,
                        _request_timeout=self._timeout),
            )
            self._probabilities = stage_probabilities(data)
        return self._probabilities

    def _map_page(
        self, spec: _Stream, results: Iterable[dict[str, Any]]
    ) -> tuple[list[Record], list[Rejected]]:
        results = list(results)
        probabilities = self._stage_probabilities() if spec.kind == "deal" and results else None
        records: list[Record] = []
        rejected: list[Rejected] = []
        for payload in results:
            try:
                records.append(map_object(spec.kind, payload, self._mapping, probabilities))
            except RecordRejected as exc:
                rejected.append(Rejected(_text(payload.get("id")), payload, str(exc)))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                # A payload of an unexpected shape is quarantined, not fatal to the run.
                reason = f"unexpected payload shape: {type(exc).__name__}: {exc}"
                rejected.append(Rejected(_text(payload.get("id")), payload, reason))
        return records, rejected

    def _modified_millis(self, spec: _Stream, result: dict[str, Any]) -> int | None:
        props = result.get("properties") or {}
        modified = self._mapping.crm_field(spec.kind, "modified_at")
        for value, name in ((props.get(modified), modified), (result.get("updatedAt"), "updatedAt")):
            try:
                moment = parse_datetime(value, name)
            except RecordRejected:
                moment = None
            if moment is not None:
                return to_millis(moment)
        return None


    # -- write-back: targets into users-object properties ---------------------------------

    @property
    def batch_size(self) -> int:
        """Inputs in one batch update."""
        return BATCH_WRITE

    def prepare_fields(self, refs: Sequence[FieldRef], *, create: bool) -> FieldCheck:
        """Check the users properties exist as numbers; with ``create``, create the missing ones.

        One batch read of the property definitions; creating costs one request for the group
        (when it is missing) and one per property.
        """
        names = self._users_properties(refs)
        data = self._request(
            f"POST /crm/v3/properties/{USERS_PROPERTIES}/batch/read",
            partial(self._property_batch.read, USERS_PROPERTIES,
                    {"archived": False, "inputs": [{"name": n} for n in names]},
                    _preload_content=False, _request_timeout=self._timeout),
        )
        found = {str(p.get("name")): p for p in data.get("results") or [] if isinstance(p, dict)}
        for name, definition in found.items():
            if definition.get("type") != "number":
                raise DestinationMissing(
                    f"HubSpot users property {name} is a {definition.get('type')} property; "
                    "targets need a number property (point the KPI at another property in "
                    "[hubspot.writeback.month] of the mapping file)"
                )
            if (definition.get("modificationMetadata") or {}).get("readOnlyValue"):
                raise DestinationMissing(f"HubSpot users property {name} is read-only")
        missing = [FieldRef(USERS, n) for n in names if n not in found]
        decimals: dict[FieldRef, int | None] = {FieldRef(USERS, n): None for n in names}
        if not missing or not create:
            return FieldCheck(missing=missing, decimals=decimals)
        try:
            self._ensure_group()
            for ref in missing:
                self._create_property(ref.field)
        except PermissionDenied as exc:
            wanted = ", ".join(r.field for r in missing)
            raise PermissionDenied(
                f"{exc}. The users properties {wanted} do not exist and cannot be created "
                f"without it: grant the scope, or create them in HubSpot as Number properties "
                f"of the user object (group {self._property_group})",
                exc.missing,
            ) from None
        return FieldCheck(missing=missing, created=list(missing), decimals=decimals)

    @property
    def _property_group(self) -> str:
        return self._mapping.writeback_options.get("property_group", "iskpi")

    def _users_properties(self, refs: Sequence[FieldRef]) -> list[str]:
        others = sorted({r.crm_object for r in refs if r.crm_object != USERS})
        if others:
            raise DestinationMissing(
                f"HubSpot targets are written to the users object only, not {', '.join(others)}"
            )
        return sorted({r.field for r in refs})

    def _ensure_group(self) -> None:
        group = self._property_group
        data = self._request(
            f"GET /crm/v3/properties/{USERS_PROPERTIES}/groups",
            partial(self._property_groups.get_all, USERS_PROPERTIES, _preload_content=False,
                    _request_timeout=self._timeout),
        )
        if any(isinstance(g, dict) and g.get("name") == group for g in data.get("results") or []):
            return
        self._request(
            f"POST /crm/v3/properties/{USERS_PROPERTIES}/groups",
            partial(self._property_groups.create, USERS_PROPERTIES,
                    {"name": group, "label": "iskpi targets", "displayOrder": -1},
                    _preload_content=False, _request_timeout=self._timeout),
            accept=(409,),  # created meanwhile: fine
        )
        log.info("HubSpot: created the users property group %s", group)

    def _create_property(self, name: str) -> None:
        label = name.removeprefix("iskpi_").replace("_", " ").capitalize()
        body = {
            "name": name, "label": label, "type": "number", "fieldType": "number",
            "groupName": self._property_group,
            "description": "The rep's target for the current month, written by iskpi",
        }
        self._request(
            f"POST /crm/v3/properties/{USERS_PROPERTIES}",
            partial(self._properties.create, USERS_PROPERTIES, body, _preload_content=False,
                    _request_timeout=self._timeout),
            accept=(409,),
        )
        log.info("HubSpot: created the users property %s", name)

    def read_values(
        self, user_ids: Sequence[str], refs: Sequence[FieldRef], period_start: date
    ) -> list[CurrentValue]:
        """Current property values of the users behind the owners' userIds.

        Per 100 users: one search on hs_internal_user_id (the users-object record ids), then one
        batch read of the properties (search is eventually consistent; batch read is not, so a
        value just written is never mistaken for someone else's change).
        """
        names = self._users_properties(refs)
        wanted = list(dict.fromkeys(str(u) for u in user_ids))
        records: dict[str, str] = {}
        for start in range(0, len(wanted), BATCH_WRITE):
            records.update(self._find_users(wanted[start:start + BATCH_WRITE]))
        values: dict[str, dict[str, Any]] = {}
        record_ids = list(dict.fromkeys(records.values()))
        for start in range(0, len(record_ids), BATCH_WRITE):
            chunk = record_ids[start:start + BATCH_WRITE]
            data = self._request(
                f"POST /crm/v3/objects/{USERS}/batch/read",
                partial(self._batch.read, USERS,
                        {"inputs": [{"id": i} for i in chunk], "properties": names},
                        archived=False, _preload_content=False, _request_timeout=self._timeout),
            )
            for result in data.get("results") or []:
                if isinstance(result, dict) and isinstance(result.get("properties"), dict):
                    values[str(result.get("id"))] = result["properties"]
        out: list[CurrentValue] = []
        for user_id in wanted:
            record_id = records.get(user_id)
            props = values.get(record_id) if record_id is not None else None
            for ref in refs:
                if props is None:
                    out.append(CurrentValue(user_id, ref, None, None,
                                            f"no HubSpot user with {USER_ID_PROPERTY} {user_id}"))
                else:
                    out.append(CurrentValue(user_id, ref, record_id,
                                            _number_value(props.get(ref.field))))
        return out

    def _find_users(self, user_ids: list[str]) -> dict[str, str]:
        """userId → users-object record id, by one search (IN) per 100 userIds."""
        found: dict[str, str] = {}
        after: str | None = None
        while True:
            body: dict[str, Any] = {
                "filterGroups": [{"filters": [
                    {"propertyName": USER_ID_PROPERTY, "operator": "IN", "values": user_ids}]}],
                "properties": [USER_ID_PROPERTY],
                "limit": BATCH_WRITE,
            }
            if after is not None:
                body["after"] = after
            data = self._request(
                f"POST /crm/v3/objects/{USERS}/search",
                partial(self._search.do_search, USERS, body, _preload_content=False,
                        _request_timeout=self._timeout),
                search=True,
            )
            for result in data.get("results") or []:
                props = result.get("properties") if isinstance(result, dict) else None
                user_id = _text((props or {}).get(USER_ID_PROPERTY))
                if user_id is not None:
                    # A whole number, however the portal renders it.
                    user_id = user_id.split(".")[0]
                    found.setdefault(user_id, str(result.get("id")))
            after = _next_after(data)
            if after is None:
                return found

    def push(self, updates: Sequence[FieldUpdate]) -> Iterator[PushBatch]:
        """Batch updates of at most 100 users records each; a result per update as each returns.

        A 207 answer fails the records its errors name (missing records, refused values); a
        400 fails the batch's records with HubSpot's message, except a property that does not
        exist, which stops the push (every batch would fail). 429 and 5xx are retried as for
        reads; a 403 stops the push with the scope named.
        """
        by_record: dict[str, list[FieldUpdate]] = {}
        for update in updates:
            if update.ref.crm_object != USERS or update.record_id is None:
                raise ValueError(f"not a users-object update: {update}")
            by_record.setdefault(update.record_id, []).append(update)
        record_ids = list(by_record)
        for start in range(0, len(record_ids), BATCH_WRITE):
            chunk = record_ids[start:start + BATCH_WRITE]
            inputs = [
                {"id": record_id,
                 "properties": {u.ref.field: _number_text(u.value) for u in by_record[record_id]}}
                for record_id in chunk
            ]
            calls_before = self.api_calls
            data = self._request(
                f"POST /crm/v3/objects/{USERS}/batch/update",
                partial(self._batch.update, USERS, {"inputs": inputs}, _preload_content=False,
                        _request_timeout=self._timeout),
                write=True, accept=(400,),
            )
            failed: dict[str, str] = {}
            if data.get("_status") == 400:
                message = str(data.get("message") or "HTTP 400")
                if "PROPERTY_DOESNT_EXIST" in message:
                    raise DestinationMissing(
                        f"HubSpot refused the batch update: {message[:300]}; the users "
                        "properties must exist (a push creates them when it may)"
                    )
                failed = dict.fromkeys(
                    chunk, f"HubSpot refused the batch (HTTP 400): {message[:300]}")
            else:
                for error in data.get("errors") or []:
                    if not isinstance(error, dict):
                        continue
                    reason = (f"{error.get('category') or 'ERROR'}: "
                              f"{str(error.get('message') or '')[:300]}")
                    for record_id in (error.get("context") or {}).get("ids") or []:
                        failed[str(record_id)] = reason
            results = [
                UpdateResult(update, record_id not in failed, record_id, failed.get(record_id))
                for record_id in chunk for update in by_record[record_id]
            ]
            yield PushBatch(results, api_calls=self.api_calls - calls_before, records=len(chunk))

    # -- HTTP: retries, rate limits, errors ----------------------------------------------------

    def _request(
        self, label: str, send: Callable[[], Any], *, search: bool = False, write: bool = False,
        accept: tuple[int, ...] = (),
    ) -> dict[str, Any]:
        """Send one API request through the client, retrying as HubSpot asks; the JSON body.

        An error status in ``accept`` is not raised: its error body comes back with the status
        under ``"_status"``. ``write`` counts the request in ``write_requests``.
        """
        attempt = 0
        while True:
            self._pace(search)
            if self._on_request is not None:
                self._on_request()
            self.api_calls += 1
            if write:
                self.write_requests += 1
            try:
                response = send()
                payload = response.data
                headers = response.headers
                response.release_conn()
            except API_ERRORS as exc:
                status = int(getattr(exc, "status", 0) or 0)
                if status in accept:
                    return {**_error_body(getattr(exc, "body", None)), "_status": status}
                delay = self._failure_delay(label, exc, attempt)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if attempt >= self._max_retries:
                    raise TransientError(
                        f"HubSpot {label} failed after {attempt + 1} attempts: "
                        f"{type(exc).__name__}"
                    ) from None
                delay = self._backoff(attempt)
                log.info("HubSpot %s: %s, retrying in %.1fs", label, type(exc).__name__, delay)
            else:
                self._note_rate_headers(headers)
                try:
                    data = json.loads(payload or b"{}")
                except ValueError:
                    raise ConnectorError(f"HubSpot {label} answered with invalid JSON") from None
                if not isinstance(data, dict):
                    raise ConnectorError(f"HubSpot {label} answered with unexpected JSON")
                return data
            self._sleep(delay)
            attempt += 1

    def _failure_delay(self, label: str, exc: Any, attempt: int) -> float:
        """How long to wait before retrying a failed request, or raise when it must not be."""
        status = int(getattr(exc, "status", 0) or 0)
        headers = {str(k).lower(): str(v) for k, v in dict(getattr(exc, "headers", None) or {}).items()}
        body = _error_body(getattr(exc, "body", None))
        if status == 401:
            raise AuthError(
                f"HubSpot refused the access token (HTTP 401) on {label}: check "
                "ISKPI_HUBSPOT_ACCESS_TOKEN (a private-app token with the CRM read scopes)"
            ) from None
        if status == 429:
            policy = str(body.get("policyName") or "").upper()
            if policy == "DAILY":
                raise QuotaExhausted(
                    f"HubSpot's daily API limit is spent ({label} answered 429 DAILY); "
                    "the sync resumes from its saved state tomorrow"
                ) from None
            delay = _rate_limit_delay(headers, policy, attempt)
            if policy == "SECONDLY" and self._searches_per_second:
                # The search window is full (other clients share it): pace from now.
                self._search_times.extend([time.monotonic()] * self._searches_per_second)
            if attempt >= self._max_retries:
                raise RateLimited(
                    f"HubSpot kept answering 429 ({policy or 'rate limit'}) to {label} "
                    f"after {attempt + 1} attempts",
                    retry_after=delay,
                ) from None
            log.info("HubSpot %s: 429 %s, waiting %.1fs", label, policy, delay)
            return delay * (1.0 + 0.1 * self._random.random())
        if status == 0 or status >= 500:
            if attempt >= self._max_retries:
                raise TransientError(
                    f"HubSpot {label} failed with HTTP {status or 'error'} "
                    f"after {attempt + 1} attempts"
                ) from None
            delay = self._backoff(attempt)
            log.info("HubSpot %s: HTTP %s, retrying in %.1fs", label, status, delay)
            return delay
        message = _text(body.get("message")) or _text(getattr(exc, "reason", None)) or ""
        if status == 403:
            scopes = required_scopes(body)
            if scopes:
                category = body.get("category") or "MISSING_SCOPES"
                raise PermissionDenied(
                    f"HubSpot denied {label} (HTTP 403 {category}): "
                    f"the private app lacks the scope {' or '.join(scopes)}; add it to the app "
                    "(Settings → Integrations → Private apps → Scopes)",
                    tuple(scopes),
                ) from None
            raise PermissionDenied(
                f"HubSpot denied {label} (HTTP 403): the private app lacks a scope. {message[:300]}"
            ) from None
        raise ConnectorError(f"HubSpot {label} failed with HTTP {status}: {message[:300]}") from None

    def _backoff(self, attempt: int) -> float:
        return min(30.0, 0.5 * 2.0**attempt) * (0.5 + 0.5 * self._random.random())

    def _pace(self, search: bool) -> None:
        now = time.monotonic()
        if self._not_before > now:
            self._sleep(self._not_before - now)
            self._not_before = 0.0
        if search and self._searches_per_second:
            if len(self._search_times) == self._searches_per_second:
                # A little over the second: the server's clock starts when requests arrive.
                wait = 1.05 - (time.monotonic() - self._search_times[0])
                if wait > 0:
                    time.sleep(wait)
            self._search_times.append(time.monotonic())
        self._sent_times.append(time.monotonic())

    def _note_rate_headers(self, headers: Any) -> None:
        # The portal's rolling window says how many requests are left; at zero, wait until
        # the oldest of our requests in the window has left it (the whole window if unknown).
        try:
            remaining = headers.get("X-HubSpot-RateLimit-Remaining")
            interval = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
            if remaining is None or interval is None or int(remaining) > 0:
                return
            window = int(interval) / 1000.0
            limit = int(headers.get("X-HubSpot-RateLimit-Max") or 0)
        except (TypeError, ValueError, AttributeError):
            return
        oldest = (self._sent_times[-limit] if 0 < limit <= len(self._sent_times)
                  else time.monotonic())
        self._not_before = oldest + window + 0.05


def required_scopes(body: dict[str, Any]) -> list[str]:
    """The scopes a 403 MISSING_SCOPES body says are required (either spelling of the key)."""
    out: list[str] = []
    for error in body.get("errors") or []:
        context = error.get("context") if isinstance(error, dict) else None
        if not isinstance(context, dict):
            continue
        for key in ("requiredGranularScopes", "requiredScopes"):
            for scope in context.get(key) or []:
                if str(scope) not in out:
                    out.append(str(scope))
    return out


def _number_text(value: float) -> str:
    """A number as a HubSpot property value: ``120``, ``1500000``, ``0.25`` (no trailing zeros)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _number_value(raw: Any) -> float | None:
    """A number property's value (HubSpot sends strings); None when empty or not a number."""
    text = _text(raw)
    if text is None:
        return None
    try:
        number = float(text.replace(",", ""))
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def _error_body(body: Any) -> dict[str, Any]:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _rate_limit_delay(headers: dict[str, str], policy: str, attempt: int) -> float:
    """Seconds to wait after a 429, from Retry-After, the policy and the rate-limit headers."""
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass
    interval = headers.get("x-hubspot-ratelimit-interval-milliseconds")
    if policy == "SECONDLY":
        return 1.0
    if interval is not None:
        try:
            return max(0.0, int(interval) / 1000.0)
        except ValueError:
            pass
    if policy == "TEN_SECONDLY_ROLLING":
        return 10.0
    return min(10.0, 2.0**attempt)


def _next_after(data: dict[str, Any]) -> str | None:
    paging = data.get("paging") or {}
    nxt = paging.get("next") if isinstance(paging, dict) else None
    return _text(nxt.get("after")) if isinstance(nxt, dict) else None


def _offset(next_after: str, after: str | None, count: int) -> int:
    """The result offset the next search page starts at (search's ``after`` is an offset)."""
    try:
        return int(next_after)
    except ValueError:
        return (int(after) if after and after.isdigit() else 0) + count


def _archived_since(result: dict[str, Any], floor: datetime) -> bool:
    try:
        archived_at = parse_datetime(result.get("archivedAt"), "archivedAt")
    except RecordRejected:
        archived_at = None
    return archived_at is None or archived_at >= floor
