"""Salesforce write-back: KPI targets into User fields and ForecastingQuota (docs/writeback.md).

Targets go to number fields of the rep's User and, when mapped, to the rep's ForecastingQuota
of the month and forecast type. ``prepare_fields`` describes the objects (one composite
request) and raises DestinationMissing or PermissionDenied naming a field that is missing, not a
number or not editable; ``read_values`` runs ``SELECT … WHERE Id IN (…)`` with 300 Ids a query,
five queries a composite request; ``push`` sends sObject Collections of at most 200 records,
``allOrNone: false`` (PATCH, or POST for quotas not created yet), one object type a request.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
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
from connectors.mapping import Mapping, default_mapping
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.normalize import soql_string

# sObject Collections take 200 records a request; a SOQL IN list of 300 Ids keeps a query's
# GET URL well under the 16 KB Salesforce accepts.
COLLECTION_RECORDS = 200
WRITEBACK_IDS = 300
NUMBER_TYPES = ("double", "currency", "percent", "int")
QUOTA = "ForecastingQuota"


class SalesforceWriter:
    """Writes KPI targets into number fields of the reps' Users and their ForecastingQuotas."""

    source = "salesforce"

    def __init__(self, client: SalesforceClient, *, mapping: Mapping | None = None) -> None:
        self._client = client
        self._mapping = (mapping or default_mapping()).salesforce
        # Destination fields as described (sobject → lower name → describe entry).
        self._push_fields: dict[str, dict[str, dict[str, Any]]] = {}
        self._forecasting_type_id: str | None = None

    @property
    def api_calls(self) -> int:
        """API requests made so far through the client, retries included."""
        return self._client.api_calls

    @property
    def write_requests(self) -> int:
        """Of those, the sObject Collections requests."""
        return self._client.write_requests

    @property
    def batch_size(self) -> int:
        """Records in one sObject Collections request."""
        return COLLECTION_RECORDS

    def prepare_fields(self, refs: Sequence[FieldRef], *, create: bool) -> FieldCheck:
        """Describe the destination objects (one composite request) and check every field.

        Salesforce fields are never created here: a missing field, one that is not a number or
        one the integration user cannot edit raises with the field named. ``create`` is unused.
        """
        # A push is a run of its own: the quota guard gives it its own budget.
        self._client.begin_run(datetime.now(UTC).replace(microsecond=0))
        sobjects = sorted({r.crm_object for r in refs})
        base = f"/services/data/v{self._client.version}"
        body = {
            "allOrNone": False,
            "compositeRequest": [
                {"method": "GET", "url": f"{base}/sobjects/{name}/describe", "referenceId": name}
                for name in sobjects
            ],
        }
        data = self._client.composite("POST composite (describe for write-back)", body)
        for item in (data or {}).get("compositeResponse") or []:
            name = str(item.get("referenceId"))
            if item.get("httpStatusCode") == 200 and isinstance(item.get("body"), dict):
                self._push_fields[name] = {
                    str(f.get("name")).lower(): f for f in item["body"].get("fields") or []
                }
            else:
                raise DestinationMissing(
                    f"the Salesforce org has no {name} object, or the integration user cannot "
                    f"see it (describe answered HTTP {item.get('httpStatusCode')})"
                )
        decimals: dict[FieldRef, int | None] = {}
        for ref in refs:
            described = self._push_field(ref)
            decimals[ref] = (
                0 if described.get("type") == "int" else int(described.get("scale") or 0)
            )
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
        developer_name = self._mapping.writeback_options.get(
            "forecasting_type", "OpportunityRevenue"
        )
        soql = (
            "SELECT Id FROM ForecastingType WHERE DeveloperName = "
            f"{soql_string(developer_name)} AND IsActive = TRUE"
        )
        data = self._client.query(soql, "query ForecastingType", include_deleted=False)
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
            chunk = wanted[start : start + WRITEBACK_IDS]
            ids = ", ".join(soql_string(i) for i in chunk)
            queries.append(
                ("users", f"SELECT {', '.join(['Id', *user_fields])} FROM User WHERE Id IN ({ids})")
            )
            if quota_fields:
                if self._forecasting_type_id is None:
                    self._check_quota_access()
                queries.append(
                    (
                        "quotas",
                        (
                            f"SELECT {', '.join(['Id', 'QuotaOwnerId', *quota_fields])} FROM {QUOTA} "
                            f"WHERE StartDate = {period_start.isoformat()} AND ForecastingTypeId = "
                            f"{soql_string(self._forecasting_type_id or '')} AND QuotaOwnerId IN ({ids})"
                        ),
                    )
                )
        found = self._client.lookup(queries) if queries else {}
        users = {str(r.get("Id"))[:15]: r for r in found.get("users", [])}
        quotas = {str(r.get("QuotaOwnerId"))[:15]: r for r in found.get("quotas", [])}
        out: list[CurrentValue] = []
        for user_id in wanted:
            user = users.get(user_id[:15])
            for ref in refs:
                name = self._push_field(ref)["name"]
                if user is None:
                    out.append(
                        CurrentValue(user_id, ref, None, None, f"no Salesforce user {user_id}")
                    )
                elif ref.crm_object == QUOTA:
                    quota = quotas.get(user_id[:15])
                    out.append(
                        CurrentValue(
                            user_id,
                            ref,
                            str(quota["Id"]) if quota else None,
                            _float_or_none(quota.get(name)) if quota else None,
                        )
                    )
                else:
                    out.append(
                        CurrentValue(
                            user_id, ref, str(user.get("Id")), _float_or_none(user.get(name))
                        )
                    )
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
                chunk = keys[start : start + COLLECTION_RECORDS]
                records = [
                    self._collection_record(sobject, method, key, by_record[key]) for key in chunk
                ]
                calls_before = self._client.api_calls
                saved = self._client.call(
                    f"{method} composite/sobjects ({sobject})",
                    partial(
                        self._send_collection, method, {"allOrNone": False, "records": records}
                    ),
                )
                results: list[UpdateResult] = []
                for index, key in enumerate(chunk):
                    result = saved[index] if isinstance(saved, list) and index < len(saved) else {}
                    ok = bool(result.get("success"))
                    record_id = (
                        str(result.get("id"))
                        if result.get("id")
                        else (None if method == "POST" else key)
                    )
                    error = None if ok else _save_errors(result)
                    results += [UpdateResult(u, ok, record_id, error) for u in by_record[key]]
                yield PushBatch(
                    results, api_calls=self.api_calls - calls_before, records=len(chunk)
                )

    def _collection_record(
        self, sobject: str, method: str, key: str, updates: list[FieldUpdate]
    ) -> dict[str, Any]:
        record: dict[str, Any] = {"attributes": {"type": sobject}}
        if method == "PATCH":
            record["id"] = key
        else:  # a new quota: its owner, period and forecast type
            record.update(
                {
                    "QuotaOwnerId": key,
                    "StartDate": updates[0].period_start.isoformat(),
                    "ForecastingTypeId": self._forecasting_type_id,
                }
            )
        for update in updates:
            record[self._push_field(update.ref)["name"]] = update.value
        return record

    def _send_collection(self, method: str, body: dict[str, Any], client: Any) -> Any:
        self._client.write_requests += 1
        return client.restful("composite/sobjects", method=method, json=body)


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
        parts.append(
            f"{error.get('statusCode') or 'ERROR'}: {message}" + (f" ({fields})" if fields else "")
        )
    return "; ".join(parts) or "Salesforce did not save the record"
