"""HubSpot write-back: KPI targets into users-object properties (the TargetWriter side, docs/writeback.md).

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

import logging
from collections.abc import Iterator, Sequence
from datetime import date
from functools import partial
from typing import Any

from connectors.base import (
    CurrentValue,
    FieldCheck,
    FieldRef,
    FieldUpdate,
    PushBatch,
    UpdateResult,
)
from connectors.errors import DestinationMissing, PermissionDenied
from connectors.hubspot.client import HubSpotClient, after_token
from connectors.hubspot.normalize import clean_text
from connectors.mapping import Mapping, default_mapping

log = logging.getLogger(__name__)

# The users object, its records found by hs_internal_user_id (docs/writeback.md, docs/sync.md).
USERS = "users"  # the object type in /crm/v3/objects/users
USERS_PROPERTIES = "user"  # as the users guide spells it in /crm/v3/properties/user
USER_ID_PROPERTY = "hs_internal_user_id"
BATCH_WRITE = 100  # inputs in one batch update (and one batch read)


class HubSpotWriter:
    """Writes KPI targets into the users-object properties of the owners' users."""

    source = "hubspot"

    def __init__(self, client: HubSpotClient, *, mapping: Mapping | None = None) -> None:
        self._client = client
        self._mapping = (mapping or default_mapping()).hubspot

    @property
    def api_calls(self) -> int:
        """HTTP requests made so far through the client, retries included."""
        return self._client.api_calls

    @property
    def write_requests(self) -> int:
        """Of those, the batch update requests."""
        return self._client.write_requests

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
        data = self._client.request(
            f"POST /crm/v3/properties/{USERS_PROPERTIES}/batch/read",
            partial(
                self._client.property_batch.read,
                USERS_PROPERTIES,
                {"archived": False, "inputs": [{"name": n} for n in names]},
                _preload_content=False,
                _request_timeout=self._client.timeout,
            ),
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
        data = self._client.request(
            f"GET /crm/v3/properties/{USERS_PROPERTIES}/groups",
            partial(
                self._client.property_groups.get_all,
                USERS_PROPERTIES,
                _preload_content=False,
                _request_timeout=self._client.timeout,
            ),
        )
        if any(isinstance(g, dict) and g.get("name") == group for g in data.get("results") or []):
            return
        self._client.request(
            f"POST /crm/v3/properties/{USERS_PROPERTIES}/groups",
            partial(
                self._client.property_groups.create,
                USERS_PROPERTIES,
                {"name": group, "label": "iskpi targets", "displayOrder": -1},
                _preload_content=False,
                _request_timeout=self._client.timeout,
            ),
            accept=(409,),  # created meanwhile: fine
        )
        log.info("HubSpot: created the users property group %s", group)

    def _create_property(self, name: str) -> None:
        label = name.removeprefix("iskpi_").replace("_", " ").capitalize()
        body = {
            "name": name,
            "label": label,
            "type": "number",
            "fieldType": "number",
            "groupName": self._property_group,
            "description": "The rep's target for the current month, written by iskpi",
        }
        self._client.request(
            f"POST /crm/v3/properties/{USERS_PROPERTIES}",
            partial(
                self._client.properties.create,
                USERS_PROPERTIES,
                body,
                _preload_content=False,
                _request_timeout=self._client.timeout,
            ),
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
            records.update(self._find_users(wanted[start : start + BATCH_WRITE]))
        values: dict[str, dict[str, Any]] = {}
        record_ids = list(dict.fromkeys(records.values()))
        for start in range(0, len(record_ids), BATCH_WRITE):
            chunk = record_ids[start : start + BATCH_WRITE]
            data = self._client.request(
                f"POST /crm/v3/objects/{USERS}/batch/read",
                partial(
                    self._client.batch.read,
                    USERS,
                    {"inputs": [{"id": i} for i in chunk], "properties": names},
                    archived=False,
                    _preload_content=False,
                    _request_timeout=self._client.timeout,
                ),
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
                    out.append(
                        CurrentValue(
                            user_id,
                            ref,
                            None,
                            None,
                            f"no HubSpot user with {USER_ID_PROPERTY} {user_id}",
                        )
                    )
                else:
                    out.append(
                        CurrentValue(user_id, ref, record_id, _number_value(props.get(ref.field)))
                    )
        return out

    def _find_users(self, user_ids: list[str]) -> dict[str, str]:
        """userId → users-object record id, by one search (IN) per 100 userIds."""
        found: dict[str, str] = {}
        after: str | None = None
        while True:
            body: dict[str, Any] = {
                "filterGroups": [
                    {
                        "filters": [
                            {"propertyName": USER_ID_PROPERTY, "operator": "IN", "values": user_ids}
                        ]
                    }
                ],
                "properties": [USER_ID_PROPERTY],
                "limit": BATCH_WRITE,
            }
            if after is not None:
                body["after"] = after
            data = self._client.request(
                f"POST /crm/v3/objects/{USERS}/search",
                partial(
                    self._client.search.do_search,
                    USERS,
                    body,
                    _preload_content=False,
                    _request_timeout=self._client.timeout,
                ),
                search=True,
            )
            for result in data.get("results") or []:
                props = result.get("properties") if isinstance(result, dict) else None
                user_id = clean_text((props or {}).get(USER_ID_PROPERTY))
                if user_id is not None:
                    # A whole number, however the portal renders it.
                    user_id = user_id.split(".")[0]
                    found.setdefault(user_id, str(result.get("id")))
            after = after_token(data)
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
            chunk = record_ids[start : start + BATCH_WRITE]
            inputs = [
                {
                    "id": record_id,
                    "properties": {
                        u.ref.field: _number_text(u.value) for u in by_record[record_id]
                    },
                }
                for record_id in chunk
            ]
            calls_before = self._client.api_calls
            data = self._client.request(
                f"POST /crm/v3/objects/{USERS}/batch/update",
                partial(
                    self._client.batch.update,
                    USERS,
                    {"inputs": inputs},
                    _preload_content=False,
                    _request_timeout=self._client.timeout,
                ),
                write=True,
                accept=(400,),
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
                    chunk, f"HubSpot refused the batch (HTTP 400): {message[:300]}"
                )
            else:
                for error in data.get("errors") or []:
                    if not isinstance(error, dict):
                        continue
                    reason = (
                        f"{error.get('category') or 'ERROR'}: "
                        f"{str(error.get('message') or '')[:300]}"
                    )
                    for record_id in (error.get("context") or {}).get("ids") or []:
                        failed[str(record_id)] = reason
            results = [
                UpdateResult(update, record_id not in failed, record_id, failed.get(record_id))
                for record_id in chunk
                for update in by_record[record_id]
            ]
            yield PushBatch(results, api_calls=self.api_calls - calls_before, records=len(chunk))


def _number_text(value: float) -> str:
    """A number as a HubSpot property value: ``120``, ``1500000``, ``0.25`` (no trailing zeros)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _number_value(raw: Any) -> float | None:
    """A number property's value (HubSpot sends strings); None when empty or not a number."""
    text = clean_text(raw)
    if text is None:
        return None
    try:
        number = float(text.replace(",", ""))
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None
