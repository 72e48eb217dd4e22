"""The HubSpot source: CRM v3 objects to pages of normalized records (docs/sync.md).

Streams, in sync order: ``owners`` (→ Rep and Team: teams come from the owners'
``teams``, the primary one is the rep's team), ``contacts`` (→ Lead), ``calls``,
``emails``, ``meetings``, ``tasks`` (→ FollowUpTask), ``deals`` (→ Deal, with the
stage probability from the deal pipelines' stage metadata, read once per run and only
when deals arrive), then ``call_lists`` and ``call_list_members`` (static contact lists and
their memberships, → CallList and CallListMember: connectors/hubspot/lists.py, which says how
they are read and what they cost).

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

Contact merges: HubSpot archives the merged contacts and moves their activities and deals to
the contact they became, without changing those records (so no search would find them again).
The survivor is modified, and its ``hs_merged_object_ids`` lists the ids merged into it; each
contacts page reports them in ``Page.merged_crm_ids`` (merged id → survivor), and the store
flags the merged leads deleted and points their activities' and deals' contact at the survivor,
whether or not the archived sweep is due. It costs no request.

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
  when it is due, plus one list search per call-list stream (2).

Requests go through :class:`connectors.hubspot.client.HubSpotClient` (pacing, rate limits,
retries, errors); records are mapped by connectors/hubspot/normalize.py. A page's own cost in
requests is ``Page.api_calls``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal

from connectors.base import Page, StreamSpec, StreamState
from connectors.errors import ConnectorError, RecordRejected
from connectors.hubspot.client import HubSpotClient, after_token
from connectors.hubspot.lists import ListStreams
from connectors.hubspot.normalize import (
    EPOCH,
    StageProbabilities,
    attach_associations,
    clean_text,
    iso_millis,
    map_object,
    map_owner,
    merged_ids,
    parse_datetime,
    stage_probabilities,
    to_millis,
)
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

log = logging.getLogger(__name__)

SEARCH_CAP = 10_000  # HubSpot search answers at most this many results per query
# Records remembered to deduplicate re-reads in the lookback window: in the saved state,
# and (more) in memory during a run, where the cap's boundary timestamp is re-read.
SEEN_CAP = 2_000
SEEN_CAP_IN_RUN = 200_000
OWNERS_PAGE = 100

# What an incremental stream does next: search for changes, or sweep the archived records.
IncrementalPhase = Literal["search", "archived"]
# Which list a full pass is reading: the active records, then the archived ones.
FullPhase = Literal["active", "archived"]


# --- the stream table ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Stream:
    name: str
    object_type: str  # the CRM object type ("owners" is not a CRM object)
    kind: str  # the mapping's record kind
    record_type: type[Record]
    key: str = "hs_object_id"  # the id the cursor breaks ties on


STREAM_TABLE: tuple[_Stream, ...] = (
    _Stream("owners", "owners", "rep", Rep, key="id"),
    _Stream("contacts", "contacts", "lead", Lead),
    _Stream("calls", "calls", "call", Call),
    _Stream("emails", "emails", "email", Email),
    _Stream("meetings", "meetings", "meeting", Meeting),
    _Stream("tasks", "tasks", "task", FollowUpTask),
    _Stream("deals", "deals", "deal", Deal),
    # Contact lists and their memberships (connectors/hubspot/lists.py), after the contacts.
    _Stream("call_lists", "lists", "call_list", CallList, key="listId"),
    _Stream("call_list_members", "lists", "call_list_member", CallListMember, key="recordId"),
)
_LIST_KINDS = ("call_list", "call_list_member")
_STREAMS = {s.name: s for s in STREAM_TABLE}


# --- the incremental state -------------------------------------------------------------------


@dataclass
class _Incremental:
    """The saved position of an incremental stream (see the module docstring)."""

    cursor_at: datetime
    cursor_id: str | None = None
    lookback: bool = True  # False right after a full pass: the list endpoints had no lag
    seen: dict[str, int] = field(default_factory=dict)  # crm id → modified millis
    keyset: dict[str, Any] | None = None  # {"at": millis, "after_id": id | None}
    phase: IncrementalPhase = "search"  # "archived": a sweep in progress
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
            phase="archived" if state.get("phase") == "archived" else "search",
            archived_after=state.get("archived_after"),
            archived_since=moment("archived_since"),
            sweep_started=moment("sweep_started"),
            swept_at=moment("swept_at"),
        )

    def to_state(self) -> dict[str, Any]:
        def text(moment: datetime | None) -> str | None:
            return iso_millis(moment) if moment is not None else None

        return {
            "mode": "incremental",
            "cursor": {"modified_at": iso_millis(self.cursor_at), "crm_id": self.cursor_id},
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


class HubSpotSource:
    """Pulls owners, contacts, calls, emails, meetings, tasks and deals from a HubSpot portal."""

    source = "hubspot"

    def __init__(
        self,
        client: HubSpotClient,
        *,
        mapping: Mapping | None = None,
        page_size: int = 100,
        search_page_size: int = 100,
        lookback: timedelta = timedelta(minutes=10),
        archived_sweep_interval: timedelta = timedelta(0),
    ) -> None:
        self._client = client
        self._mapping = (mapping or default_mapping()).hubspot
        self._page_size = page_size
        self._search_page_size = search_page_size
        self._lookback = lookback
        self._sweep_interval = archived_sweep_interval
        self._probabilities: StageProbabilities | None = None
        self._lists = ListStreams(client, self._mapping, lookback)

    @property
    def api_calls(self) -> int:
        """HTTP requests made so far through the client, retries included."""
        return self._client.api_calls

    @property
    def streams(self) -> Sequence[StreamSpec]:
        """The streams in sync order: owners first, deals last."""
        specs = []
        for stream in STREAM_TABLE:
            cursor = (
                "updatedAt"
                if stream.kind in ("rep", *_LIST_KINDS)
                else self._mapping.crm_field(stream.kind, "modified_at")
            )
            specs.append(
                StreamSpec(stream.name, stream.record_type, cursor, self._lookback, stream.key)
            )
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
        if spec.kind == "call_list":
            yield from self._lists.pull_lists(state, until)
            return
        if spec.kind == "call_list_member":
            yield from self._lists.pull_members(state, until)
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
        phase: FullPhase = "archived" if state.get("phase") == "archived" else "active"
        after: str | None = state.get("after")
        while True:
            calls_before = self.api_calls
            data = self._list_page(spec, after=after, archived=phase == "archived")
            listed: list[dict[str, Any]] = data.get("results") or []
            records, rejected = self._map_page(spec, listed)
            next_after = after_token(data)
            new_state: dict[str, Any]
            if next_after is not None:
                new_state = {
                    "mode": "full",
                    "phase": phase,
                    "after": next_after,
                    "started_at": iso_millis(started_at),
                }
            elif phase == "active":
                new_state = {
                    "mode": "full",
                    "phase": "archived",
                    "after": None,
                    "started_at": iso_millis(started_at),
                }
            else:
                # The list endpoints read everything modified before the pass began.
                new_state = _Incremental(
                    cursor_at=started_at,
                    lookback=False,
                    archived_since=started_at,
                    swept_at=started_at,
                ).to_state()
            yield Page(
                spec.name,
                records,
                rejected,
                new_state,
                api_calls=self.api_calls - calls_before,
                merged_crm_ids=self._merges(spec, listed),
            )
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

    def _search_body(
        self, spec: _Stream, filters: list[dict[str, str]], sort: str, after: str | None
    ) -> dict[str, Any]:
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
                    filters.append(
                        {
                            "propertyName": "hs_object_id",
                            "operator": "GT",
                            "value": str(keyset["after_id"]),
                        }
                    )
                body = self._search_body(spec, filters, "hs_object_id", None)
            else:
                filters = [
                    {"propertyName": modified, "operator": "GTE", "value": str(window_lower)},
                    {"propertyName": modified, "operator": "LTE", "value": str(until_ms)},
                ]
                body = self._search_body(spec, filters, modified, after)
            data = self._client.request(
                f"POST /crm/v3/objects/{spec.object_type}/search",
                partial(
                    self._client.search.do_search,
                    spec.object_type,
                    body,
                    _preload_content=False,
                    _request_timeout=self._client.timeout,
                ),
                search=True,
            )
            results: list[dict[str, Any]] = [
                r for r in data.get("results") or [] if isinstance(r, dict)
            ]
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
            next_after = after_token(data)
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
                elif _offset(next_after, after, len(results)) + self._search_page_size > SEARCH_CAP:
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
            yield Page(
                spec.name,
                records,
                rejected,
                state.to_state(),
                api_calls=self.api_calls - calls_before,
                total=total,
                merged_crm_ids=self._merges(spec, fresh),
            )
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
            next_after = after_token(data)
            if next_after is not None:
                state.archived_after = next_after
            else:
                state.phase, state.archived_after = "search", None
                state.archived_since, state.swept_at = sweep_started, sweep_started
                state.sweep_started = None
            yield Page(
                spec.name,
                records,
                rejected,
                state.to_state(),
                api_calls=self.api_calls - calls_before,
            )
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
                rejected.append(Rejected(clean_text(payload.get("id")), payload, str(exc)))
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
            data = self._client.request(
                "GET /crm/v3/owners/",
                partial(
                    self._client.owners.get_page,
                    **kwargs,
                    _preload_content=False,
                    _request_timeout=self._client.timeout,
                ),
            )
            for payload in data.get("results") or []:
                if isinstance(payload, dict):
                    if archived:
                        payload.setdefault("archived", True)
                    yield payload
            after = after_token(data)
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
        return self._client.request(
            f"GET /crm/v3/objects/{spec.object_type}",
            partial(
                self._client.objects.get_page,
                spec.object_type,
                **kwargs,
                _preload_content=False,
                _request_timeout=self._client.timeout,
            ),
        )

    def _attach_associations(self, spec: _Stream, results: list[dict[str, Any]]) -> None:
        """Give search results the ``associations`` block list pages have (one batch read each)."""
        ids = [str(r["id"]) for r in results if r.get("id") is not None]
        if not ids:
            return
        for to_type in sorted(set(self._mapping.associations.get(spec.kind, {}).values())):
            body = {"inputs": [{"id": crm_id} for crm_id in ids]}
            data = self._client.request(
                f"POST /crm/v4/associations/{spec.object_type}/{to_type}/batch/read",
                partial(
                    self._client.associations.get_page,
                    spec.object_type,
                    to_type,
                    body,
                    _preload_content=False,
                    _request_timeout=self._client.timeout,
                ),
            )
            attach_associations(results, to_type, data)

    def _stage_probabilities(self) -> StageProbabilities:
        if self._probabilities is None:
            data = self._client.request(
                "GET /crm/v3/pipelines/deals",
                partial(
                    self._client.pipelines.get_all,
                    "deals",
                    _preload_content=False,
                    _request_timeout=self._client.timeout,
                ),
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
                rejected.append(Rejected(clean_text(payload.get("id")), payload, str(exc)))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                # A payload of an unexpected shape is quarantined, not fatal to the run.
                reason = f"unexpected payload shape: {type(exc).__name__}: {exc}"
                rejected.append(Rejected(clean_text(payload.get("id")), payload, reason))
        return records, rejected

    def _merges(self, spec: _Stream, results: Iterable[dict[str, Any]]) -> dict[str, str]:
        """Merged contact id → the contact it became, from the survivors' hs_merged_object_ids."""
        if spec.kind != "lead":
            return {}
        out: dict[str, str] = {}
        for payload in results:
            if not isinstance(payload, dict):
                continue
            survivor = clean_text(payload.get("id"))
            if survivor is not None:
                out.update(dict.fromkeys(merged_ids(payload, self._mapping), survivor))
        return out

    def _modified_millis(self, spec: _Stream, result: dict[str, Any]) -> int | None:
        props = result.get("properties") or {}
        modified = self._mapping.crm_field(spec.kind, "modified_at")
        for value, name in (
            (props.get(modified), modified),
            (result.get("updatedAt"), "updatedAt"),
        ):
            try:
                moment = parse_datetime(value, name)
            except RecordRejected:
                moment = None
            if moment is not None:
                return to_millis(moment)
        return None


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
