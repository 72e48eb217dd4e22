"""The portal's lists (Lists API v3): state, a Python API to build it, and the wire handlers' core.

Shapes from developers.hubspot.com/docs/api-reference/legacy/crm/lists (search-lists: body
``query``, ``count``, ``offset``, ``processingTypes``, ``listIds``, ``additionalProperties``;
response ``lists``, ``offset``, ``hasMore``, ``total``; list fields ``listId`` (a string),
``name``, ``objectTypeId``, ``processingType``, ``processingStatus``, ``createdAt``,
``updatedAt``, ``listVersion``, ``additionalProperties`` such as ``hs_list_size`` and
``hs_last_record_added_at`` (epoch milliseconds, as strings)) and memberships/join-order (results
``recordId`` + ``membershipTimestamp``, ordered by the time each record joined, ``limit`` at most
250, ``paging.next.after`` an opaque token). Adding or removing members changes the list's size
and last-added time, not its ``updatedAt`` (which follows the list's definition).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from simulators.hubspot.wire import EPOCH, ApiError, iso_ms, not_found, parse_limit, to_ms

LIST_PROCESSING_TYPES = ("MANUAL", "SNAPSHOT", "DYNAMIC")
SEARCH_COUNT_DEFAULT, SEARCH_COUNT_MAX = 20, 500
MEMBERSHIPS_LIMIT_DEFAULT, MEMBERSHIPS_LIMIT_MAX = 100, 250
DEFAULT_LIST_PROPERTIES = ("hs_list_size", "hs_last_record_added_at", "hs_list_reference_count")


@dataclass
class GeneratedList:
    """A list of a generated dataset: its definition and members (record id → added at, ms)."""

    list_id: str
    name: str
    processing_type: str
    created_ms: int
    members: dict[int, int]
    object_type_id: str = "0-1"


@dataclass
class PortalList:
    list_id: str
    name: str
    processing_type: str
    object_type_id: str
    created_ms: int
    updated_ms: int
    members: dict[int, int] = field(default_factory=dict)  # record id → added at (ms)
    last_added_ms: int | None = None
    deleted_ms: int | None = None
    version: int = 1


class ListStore:
    """The lists part of the portal's state (mixed into the portal store)."""

    def _init_lists(self) -> None:
        self._lists: dict[str, PortalList] = {}
        self._next_list_id = 1

    def _lists_now_ms(self) -> int:
        raise NotImplementedError

    # -- Python API -------------------------------------------------------------------------

    def create_list(
        self,
        name: str,
        *,
        processing_type: str = "MANUAL",
        object_type_id: str = "0-1",
        at: datetime | None = None,
        list_id: str | None = None,
    ) -> str:
        """Create a list; returns its id."""
        if processing_type not in LIST_PROCESSING_TYPES:
            raise ValueError(f"unknown processing type {processing_type!r}")
        now = to_ms(at) if at is not None else self._lists_now_ms()
        if list_id is None:
            list_id = str(self._next_list_id)
        self._next_list_id = max(self._next_list_id, int(list_id) + 1)
        self._lists[list_id] = PortalList(list_id, name, processing_type, object_type_id, now, now)
        return list_id

    def add_to_list(
        self, list_id: str, record_ids: Iterable[int | str], *, at: datetime | None = None
    ) -> None:
        """Add records to a list (a record already in it keeps its join time)."""
        target = self._live_list(list_id)
        now = to_ms(at) if at is not None else self._lists_now_ms()
        for record_id in record_ids:
            if int(record_id) not in target.members:
                target.members[int(record_id)] = now
                target.last_added_ms = max(target.last_added_ms or now, now)

    def remove_from_list(self, list_id: str, record_ids: Iterable[int | str]) -> None:
        """Remove records from a list."""
        target = self._live_list(list_id)
        for record_id in record_ids:
            target.members.pop(int(record_id), None)

    def rename_list(self, list_id: str, name: str, *, at: datetime | None = None) -> None:
        """Rename a list (its ``updatedAt`` moves)."""
        target = self._live_list(list_id)
        target.name = name
        target.updated_ms = to_ms(at) if at is not None else self._lists_now_ms()
        target.version += 1

    def delete_list(self, list_id: str, *, at: datetime | None = None) -> None:
        """Delete a list: it leaves search and its endpoints answer 404."""
        target = self._live_list(list_id)
        target.deleted_ms = to_ms(at) if at is not None else self._lists_now_ms()

    def list_members(self, list_id: str) -> dict[str, datetime]:
        """A list's members: record id → the time it joined."""
        return {
            str(k): EPOCH + timedelta(milliseconds=v)
            for k, v in self._live_list(list_id).members.items()
        }

    def load_lists(self, lists: Sequence[GeneratedList]) -> None:
        for generated in lists:
            self._lists[generated.list_id] = PortalList(
                generated.list_id,
                generated.name,
                generated.processing_type,
                generated.object_type_id,
                generated.created_ms,
                generated.created_ms,
                dict(generated.members),
                max(generated.members.values()) if generated.members else None,
            )
            self._next_list_id = max(self._next_list_id, int(generated.list_id) + 1)

    def _live_list(self, list_id: str) -> PortalList:
        found = self._lists.get(str(list_id))
        if found is None or found.deleted_ms is not None:
            raise not_found()
        return found

    # -- wire -------------------------------------------------------------------------------

    def list_json(self, target: PortalList, extra: Sequence[str] = ()) -> dict[str, Any]:
        props: dict[str, str] = {
            "hs_list_size": str(len(target.members)),
            "hs_list_reference_count": "0",
        }
        if target.last_added_ms is not None:
            props["hs_last_record_added_at"] = str(target.last_added_ms)
        wanted = set(DEFAULT_LIST_PROPERTIES) | set(extra)
        return {
            "listId": target.list_id,
            "listVersion": target.version,
            "name": target.name,
            "objectTypeId": target.object_type_id,
            "processingStatus": "COMPLETE",
            "processingType": target.processing_type,
            "createdAt": iso_ms(target.created_ms),
            "createdById": "1",
            "filtersUpdatedAt": iso_ms(target.created_ms),
            "updatedAt": iso_ms(target.updated_ms),
            "updatedById": "1",
            "additionalProperties": {k: v for k, v in props.items() if k in wanted},
        }

    def search_lists(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "Invalid input JSON: a list search request is an object")
        count = parse_limit(body.get("count"), SEARCH_COUNT_DEFAULT, SEARCH_COUNT_MAX)
        offset = body.get("offset") or 0
        if not isinstance(offset, int) or offset < 0:
            raise ApiError(400, f"offset must be a non-negative integer, got {offset!r}")
        types = body.get("processingTypes") or []
        for kind in types:
            if kind not in LIST_PROCESSING_TYPES:
                raise ApiError(400, f"Unknown processing type: {kind}")
        ids = {str(i) for i in body.get("listIds") or []}
        query = str(body.get("query") or "").casefold()
        extra = [str(p) for p in body.get("additionalProperties") or []]
        matching = [
            target
            for target in sorted(self._lists.values(), key=lambda t: int(t.list_id))
            if target.deleted_ms is None
            and (not types or target.processing_type in types)
            and (not ids or target.list_id in ids)
            and query in target.name.casefold()
        ]
        window = matching[offset : offset + count]
        return {
            "lists": [self.list_json(t, extra) for t in window],
            "offset": offset + len(window),
            "hasMore": offset + len(window) < len(matching),
            "total": len(matching),
        }

    def get_list(self, list_id: str) -> dict[str, Any]:
        target = self._live_list(list_id)
        return {"list": {**self.list_json(target), "size": len(target.members)}}

    def join_order(self, list_id: str, after: str | None, limit: Any) -> dict[str, Any]:
        target = self._live_list(list_id)
        size = parse_limit(limit, MEMBERSHIPS_LIMIT_DEFAULT, MEMBERSHIPS_LIMIT_MAX)
        ordered = sorted((added, record) for record, added in target.members.items())
        start = 0
        if after:
            try:
                at_ms, _, record = base64.urlsafe_b64decode(after.encode()).decode().partition(":")
                key = (int(at_ms), int(record))
            except ValueError:
                raise ApiError(400, f"Invalid after token: {after}") from None
            start = next((i for i, item in enumerate(ordered) if item > key), len(ordered))
        window = ordered[start : start + size]
        body: dict[str, Any] = {
            "results": [
                {"recordId": str(record), "membershipTimestamp": iso_ms(added)}
                for added, record in window
            ],
            "total": len(ordered),
        }
        if start + size < len(ordered) and window:
            last_added, last_record = window[-1]
            token = base64.urlsafe_b64encode(f"{last_added}:{last_record}".encode()).decode()
            body["paging"] = {"next": {"after": token}}
        return body
