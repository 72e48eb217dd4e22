"""HubSpot contact lists as call lists (Lists API v3): the mapping functions and the two streams.

Which lists: contact lists (``objectTypeId`` 0-1) whose ``processingType`` is in the mapping's
``list_processing_types`` (MANUAL and SNAPSHOT: the lists reps work; DYNAMIC lists are
segments), or, when the mapping's ``call_lists`` names lists, exactly those (by ``listId`` or
name, whatever their processing type). Both streams find them with ``POST /crm/v3/lists/search``
(100 lists a page, ``offset`` paging), asking for the additional properties ``hs_list_size``
and ``hs_last_record_added_at``.

``call_lists`` (→ CallList): every run lists the lists (they are few) and stores those whose
``updatedAt`` (or last addition) is at or after the cursor minus the lookback (all of them on a first sync); lists
no longer listed (deleted, or no longer named or of a synced type) are reported in
``Page.missing_crm_ids`` and flagged deleted. The cursor moves to the run's start.

``call_list_members`` (→ CallListMember): memberships carry no modification time and cannot be
searched, so a list's memberships are re-read whole when the list changed since the cursor:
its ``updatedAt`` or ``hs_last_record_added_at`` at or after the cursor minus the lookback, or
its ``hs_list_size`` different from the size the last read saw (a removal moves only the
size). A list is re-read through ``GET /crm/v3/lists/{listId}/memberships/join-order`` (the
members in the order they joined, each with its ``membershipTimestamp``: the time it was
added), 250 a page by the ``paging.next.after`` token. The state keeps, per list, its size and
member ids, so the members a re-read no longer finds are reported missing within that list
(``Page.missing_within``) and flagged deleted. A run killed in the middle of a list reads that
list again from its first page on the next run; lists already re-read are not read again.

Cost in requests: per stream ceil(lists / 100) searches (1 for most portals); a first sync
ceil(members / 250) per list on top, about 0.4 requests per 100 members; an incremental run
ceil(members of the changed lists / 250); a run in which no list changed, 2 requests in all.
The scope is ``crm.lists.read``: without it the search answers 403 MISSING_SCOPES, the two
streams fail with a message naming the scope, and the other streams sync.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from connectors.base import Page, StreamState
from connectors.errors import RecordRejected
from connectors.hubspot.client import HubSpotClient, after_token
from connectors.hubspot.normalize import clean_text, iso_millis, parse_datetime
from connectors.mapping import SourceMapping
from connectors.records import CallList, CallListMember, Record, Rejected

log = logging.getLogger(__name__)

CONTACTS_OBJECT_TYPE = "0-1"
SEARCH_COUNT = 100  # lists a search page
MEMBERSHIPS_LIMIT = 250  # the join-order endpoint's maximum page
LIST_PROPERTIES = ("hs_list_size", "hs_last_record_added_at")


# --- mapping (pure functions, tested on recorded payloads) -----------------------------------


def map_list(payload: dict[str, Any]) -> CallList:
    """A Lists v3 list (a search result or ``GET /crm/v3/lists/{listId}``'s ``list``)."""
    if not isinstance(payload, dict):
        raise RecordRejected("the list is not an object")
    list_id = clean_text(payload.get("listId"))
    if list_id is None:
        raise RecordRejected("missing listId")
    name = clean_text(payload.get("name"))
    if name is None:
        raise RecordRejected("missing name")
    deleted_at = parse_datetime(payload.get("deletedAt"), "deletedAt")
    return CallList(
        source="hubspot",
        crm_id=list_id,
        name=name,
        list_kind=clean_text(payload.get("processingType")),
        deleted=deleted_at is not None,
        modified_at=parse_datetime(payload.get("updatedAt"), "updatedAt"),
    )


def map_membership(list_id: str, payload: dict[str, Any]) -> CallListMember:
    """One result of ``GET /crm/v3/lists/{listId}/memberships/join-order``: a contact and when it joined."""
    if not isinstance(payload, dict):
        raise RecordRejected("the membership is not an object")
    record_id = clean_text(payload.get("recordId"))
    if record_id is None:
        raise RecordRejected("missing recordId")
    added_at = parse_datetime(payload.get("membershipTimestamp"), "membershipTimestamp")
    if added_at is None:
        raise RecordRejected("missing membershipTimestamp (required)")
    return CallListMember(
        source="hubspot",
        crm_id=record_id,
        list_crm_id=list_id,
        contact_crm_id=record_id,
        added_at=added_at,
        modified_at=added_at,
    )


def list_changed_at(payload: dict[str, Any]) -> datetime | None:
    """The later of a list's ``updatedAt`` and its last member's addition; None if unknown."""
    extra = payload.get("additionalProperties") or {}
    moments = []
    for value, name in (
        (payload.get("updatedAt"), "updatedAt"),
        (extra.get("hs_last_record_added_at") if isinstance(extra, dict) else None, "added"),
    ):
        try:
            moment = parse_datetime(value, name)
        except RecordRejected:
            moment = None
        if moment is not None:
            moments.append(moment)
    return max(moments) if moments else None


def list_size(payload: dict[str, Any]) -> int | None:
    """A list's ``hs_list_size`` (an additional property, a string), or None."""
    extra = payload.get("additionalProperties") or {}
    raw = extra.get("hs_list_size") if isinstance(extra, dict) else None
    try:
        return int(str(raw)) if raw is not None else None
    except ValueError:
        return None


def is_call_list(payload: dict[str, Any], mapping: SourceMapping) -> bool:
    """Whether a list is synced: named in ``call_lists``, else a contact list of a synced type."""
    named = {n.casefold() for n in mapping.sets["call_lists"]}
    if named:
        ids = {
            str(payload.get("listId") or "").casefold(),
            str(payload.get("name") or "").casefold(),
        }
        return bool(ids & named)
    return str(payload.get("objectTypeId") or "") == CONTACTS_OBJECT_TYPE and mapping.contains(
        "list_processing_types", clean_text(payload.get("processingType"))
    )


# --- the member stream's saved state ----------------------------------------------------------


@dataclass
class _MemberState:
    cursor_at: datetime | None = None
    lists: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → {size, members}
    pending: list[str] = field(default_factory=list)  # lists a killed run had still to re-read

    @classmethod
    def from_state(cls, state: StreamState | None) -> _MemberState:
        if not state or state.get("mode") != "incremental":
            return cls()
        cursor = state.get("cursor") or {}
        return cls(
            cursor_at=parse_datetime(cursor.get("modified_at"), "cursor"),
            lists={str(k): dict(v) for k, v in (state.get("lists") or {}).items()},
            pending=[str(i) for i in state.get("pending") or []],
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "mode": "incremental",
            "cursor": {
                "modified_at": iso_millis(self.cursor_at) if self.cursor_at else None,
                "crm_id": None,
            },
            "lists": self.lists,
            "pending": list(self.pending),
        }


class ListStreams:
    """Pulls the ``call_lists`` and ``call_list_members`` streams of a portal."""

    def __init__(self, client: HubSpotClient, mapping: SourceMapping, lookback: timedelta) -> None:
        self._client = client
        self._mapping = mapping
        self._lookback = lookback

    def _search(self) -> list[dict[str, Any]]:
        """Every synced list, through as many search pages as there are."""
        found: list[dict[str, Any]] = []
        offset = 0
        while True:
            body: dict[str, Any] = {
                "query": "",
                "count": SEARCH_COUNT,
                "offset": offset,
                "additionalProperties": list(LIST_PROPERTIES),
            }
            if not self._mapping.sets["call_lists"]:
                body["processingTypes"] = list(self._mapping.sets["list_processing_types"])
            data = self._client.request(
                "POST /crm/v3/lists/search",
                partial(
                    self._client.lists.do_search,
                    body,
                    _preload_content=False,
                    _request_timeout=self._client.timeout,
                ),
            )
            page = [r for r in data.get("lists") or [] if isinstance(r, dict)]
            found += [r for r in page if is_call_list(r, self._mapping)]
            if not data.get("hasMore") or not page:
                return found
            offset = int(data.get("offset") or offset + len(page))

    def pull_lists(self, state: StreamState | None, until: datetime) -> Iterator[Page]:
        """One page: the lists changed since the cursor, and the lists no longer found."""
        calls_before = self._client.api_calls
        cursor = _MemberState.from_state(state).cursor_at
        floor = cursor - self._lookback if cursor is not None else None
        records: list[Record] = []
        rejected: list[Rejected] = []
        listed: list[str] = []
        for payload in self._search():
            list_id = clean_text(payload.get("listId"))
            if list_id is not None:
                listed.append(list_id)
            changed = list_changed_at(payload)
            if floor is not None and changed is not None and changed < floor:
                continue
            try:
                records.append(map_list(payload))
            except RecordRejected as exc:
                rejected.append(Rejected(list_id, payload, str(exc)))
        known = {str(i) for i in (state or {}).get("list_ids") or []}
        yield Page(
            "call_lists",
            records,
            rejected,
            {
                "mode": "incremental",
                "cursor": {"modified_at": iso_millis(until), "crm_id": None},
                "list_ids": sorted(listed),
            },
            api_calls=self._client.api_calls - calls_before,
            total=len(listed),
            missing_crm_ids=sorted(known - set(listed)),
        )

    def pull_members(self, state: StreamState | None, until: datetime) -> Iterator[Page]:
        """The memberships of every list changed since the cursor, a page per API page."""
        saved = _MemberState.from_state(state)
        calls_before = self._client.api_calls
        floor = saved.cursor_at - self._lookback if saved.cursor_at is not None else None
        lists = self._search()
        listed = {str(p.get("listId")) for p in lists if p.get("listId") is not None}
        todo: list[tuple[str, int | None]] = []
        for payload in lists:
            list_id = str(payload.get("listId"))
            known = saved.lists.get(list_id)
            size = list_size(payload)
            changed = list_changed_at(payload)
            if (
                known is None
                or floor is None
                or list_id in saved.pending
                or changed is None
                or changed >= floor
                or size != known.get("size")
            ):
                todo.append((list_id, size))
        # Lists no longer synced are forgotten (the list stream flags them deleted).
        saved.lists = {k: v for k, v in saved.lists.items() if k in listed}
        saved.pending = [list_id for list_id, _ in todo]
        spent = self._client.api_calls - calls_before
        if not todo:
            saved.cursor_at = until
            yield Page("call_list_members", [], [], saved.to_state(), api_calls=spent)
            return
        for index, (list_id, size) in enumerate(todo):
            before = set(saved.lists.get(list_id, {}).get("members") or [])
            seen: list[str] = []
            after: str | None = None
            while True:
                calls_before = self._client.api_calls
                kwargs: dict[str, Any] = {"limit": MEMBERSHIPS_LIMIT}
                if after is not None:
                    kwargs["after"] = after
                data = self._client.request(
                    f"GET /crm/v3/lists/{list_id}/memberships/join-order",
                    partial(
                        self._client.memberships.get_page_ordered_by_added_to_list_date,
                        list_id,
                        **kwargs,
                        _preload_content=False,
                        _request_timeout=self._client.timeout,
                    ),
                )
                records: list[Record] = []
                rejected: list[Rejected] = []
                for payload in data.get("results") or []:
                    try:
                        member = map_membership(list_id, payload)
                    except RecordRejected as exc:
                        shown = payload if isinstance(payload, dict) else {"value": payload}
                        crm_id = clean_text(shown.get("recordId"))
                        rejected.append(Rejected(crm_id, {"listId": list_id, **shown}, str(exc)))
                        if crm_id is not None:
                            seen.append(crm_id)  # still a member: not to be flagged deleted
                        continue
                    records.append(member)
                    seen.append(member.crm_id)
                after = after_token(data)
                missing: list[str] = []
                if after is None:
                    missing = sorted(before - set(seen))
                    saved.lists[list_id] = {"size": size, "members": sorted(set(seen))}
                    saved.pending = [i for i, _ in todo[index + 1 :]]
                    if not saved.pending:
                        saved.cursor_at = until
                yield Page(
                    "call_list_members",
                    records,
                    rejected,
                    saved.to_state(),
                    api_calls=self._client.api_calls - calls_before + spent,
                    missing_crm_ids=missing,
                    missing_within={"list_crm_id": list_id} if missing else {},
                )
                spent = 0
                if after is None:
                    break
