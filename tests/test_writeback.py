"""Writing targets back into CRM fields (docs/writeback.md), on SQLite and PostgreSQL.

The real clients (hubspot-api-client over HTTP, simple-salesforce over HTTPS with a test CA)
push to the simulated CRMs, which validate writes as the real APIs do and log every write
request. The expected figures are worked out by hand from the targets the tests set:

- rep i's November 2026 targets: calls 1,500 + 10·i, meetings_set 20 + i mod 5, won_amount
  2,000,000 + 1,234.567·i (rep 1: 2,001,234.567; Salesforce's currency field keeps 2 decimals,
  so it stores and reports 2,001,234.57, and the plan compares against that);
- 250 reps × 3 KPIs = 750 field updates on 250 records: HubSpot takes 100 records a request
  (ceil(250 / 100) = 3 requests of 100, 100, 50), Salesforce 200 (2 requests of 200, 50).

"Now" is 2026-11-16 03:00 UTC (ISKPI_NOW), 12:00 in Tokyo: November's targets are due;
October's and December's, and team or org targets, are not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, inspect, text

from connectors.errors import DestinationMissing, PermissionDenied, RateLimited, TransientError
from connectors.hubspot import HubSpotConnector
from connectors.mapping import Mapping, MappingError, default_mapping, load_mapping, merge_mapping
from connectors.records import Rep, Source
from connectors.salesforce import SalesforceConnector
from kpi import KpiContext, Target, put_targets
from models import Base, WritebackPush, store
from models import Rep as RepRow
from service.app import create_app
from service.db import downgrade, make_engine, migrate
from service.settings import Settings
from service.writeback.push import (
    CHANGED,
    CONFLICT,
    FORCED,
    NEW,
    RETRY,
    PushFailed,
    PushReport,
    list_pushes,
    run_push,
)
from simulators.hubspot.portal import HubSpotPortal, RunningPortal, serve_portal
from simulators.salesforce.org import RunningOrg, SalesforceOrg, serve_org
from tests.support.db import POSTGRES_URL, postgres_engine

TOKEN = "pat-na1-writeback-test-token"
READ, ADMIN = "read-token-wb", "admin-token-wb"
NOW = datetime(2026, 11, 16, 3, 0, tzinfo=UTC)
MONTH = date(2026, 11, 1)
CTX = KpiContext(timezone="Asia/Tokyo", now=NOW)
KPI_FIELDS = {  # KPI → (HubSpot users property, Salesforce User field)
    "calls": ("iskpi_target_calls", "IS_Target_Calls__c"),
    "meetings_set": ("iskpi_target_meetings", "IS_Target_Meetings__c"),
    "won_amount": ("iskpi_target_won_amount", "IS_Target_Won_Amount__c"),
}


def target_values(i: int) -> dict[str, float]:
    return {
        "calls": 1_500 + 10 * i,
        "meetings_set": 20 + i % 5,
        "won_amount": 2_000_000 + 1_234.567 * i,
    }


def no_sleep(_: float) -> None:
    return None


# --- the store: reps and targets ------------------------------------------------------------------


def add_reps(
    engine: Engine,
    source: Source,
    reps: list[tuple[str, str | None]],
    deleted: frozenset[str] = frozenset(),
) -> None:
    rows = [
        Rep(
            source=source,
            crm_id=crm_id,
            name=f"Rep {crm_id}",
            user_id=user_id,
            deleted=crm_id in deleted,
            active=crm_id not in deleted,
        ).as_row()
        for crm_id, user_id in reps
    ]
    with engine.begin() as conn:
        store.upsert_records(conn, RepRow, rows, NOW)


def set_targets(
    engine: Engine,
    source: str,
    crm_ids: list[str],
    values: Callable[[int], dict[str, float]] = target_values,
    month: date = MONTH,
) -> None:
    put_targets(
        engine,
        [
            Target(kpi, "month", month, "rep", f"{source}:{crm_id}", value)
            for i, crm_id in enumerate(crm_ids)
            for kpi, value in values(i).items()
        ],
    )


# --- the simulated CRMs ---------------------------------------------------------------------------


@dataclass
class Hub:
    running: RunningPortal
    owners: list[str]
    user_ids: list[str]

    @property
    def portal(self) -> HubSpotPortal:
        return self.running.portal

    def writer(self, **options: Any) -> HubSpotConnector:
        options.setdefault("searches_per_second", None)
        options.setdefault("sleep", no_sleep)
        options.setdefault("max_retries", 2)
        return HubSpotConnector(TOKEN, host=self.running.url, **options)

    def record_writes(self) -> list[int]:
        return [n for kind, _, n in self.portal.write_log if kind == "records"]

    def value(self, i: int, prop: str) -> str | None:
        record = self.portal.user_record_id(self.user_ids[i])
        assert record is not None
        return self.portal.get("users", record).get(prop)


@pytest.fixture
def hub() -> Iterator[Callable[[int], Hub]]:
    started: list[RunningPortal] = []

    def start(reps: int) -> Hub:
        portal = HubSpotPortal(TOKEN, enforce_search_rate_limit=False)
        owners = [
            portal.add_owner(email=f"rep{i}@example.jp", first_name="Rep", last_name=str(i))
            for i in range(reps)
        ]
        running = serve_portal(portal)
        started.append(running)
        return Hub(running, owners, [str(portal._owners[o].user_id) for o in owners])

    yield start
    for running in started:
        running.stop()


def hub_store(engine: Engine, crm: Hub) -> None:
    add_reps(engine, "hubspot", list(zip(crm.owners, crm.user_ids, strict=True)))
    set_targets(engine, "hubspot", crm.owners)


@dataclass
class Org:
    running: RunningOrg
    users: list[str]

    @property
    def org(self) -> SalesforceOrg:
        return self.running.org

    def writer(self, mapping: Mapping | None = None, **options: Any) -> SalesforceConnector:
        options.setdefault("sleep", no_sleep)
        options.setdefault("max_retries", 2)
        return SalesforceConnector(
            self.running.url,
            session_id=self.org.issue_session(),
            verify=str(self.running.ca_bundle),
            mapping=mapping,
            **options,
        )

    def record_writes(self) -> list[int]:
        return [n for kind, _, n in self.org.write_log if kind == "records"]

    def value(self, i: int, name: str) -> Any:
        return self.org.get("User", self.users[i])[name]


@pytest.fixture(scope="module")
def tls() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def sfdc(tls: trustme.CA) -> Iterator[Callable[[int], Org]]:
    started: list[RunningOrg] = []

    def start(reps: int) -> Org:
        org = SalesforceOrg(clock=lambda: NOW, daily_api_limit=1_000_000)
        users = [
            org.create(
                "User",
                {
                    "Username": f"rep{i}@example.jp",
                    "LastName": f"Rep {i}",
                    "Email": f"rep{i}@example.jp",
                    "IsActive": True,
                    "UserType": "Standard",
                },
            )
            for i in range(reps)
        ]
        running = serve_org(org, tls=tls)
        started.append(running)
        return Org(running, users)

    yield start
    for running in started:
        running.stop()


def org_store(engine: Engine, crm: Org) -> None:
    add_reps(engine, "salesforce", [(u, u) for u in crm.users])
    set_targets(engine, "salesforce", crm.users)


def push(
    engine: Engine, writer: Any, *, mapping: Mapping | None = None, **options: Any
) -> PushReport:
    options.setdefault("requested_by", "cli")
    source_mapping = (mapping or default_mapping()).sources[writer.source]
    return run_push(engine, writer, source_mapping, CTX, **options)


def rows_by_reason(report: PushReport) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in report.rows:
        out[row.reason] = out.get(row.reason, 0) + 1
    return out


# --- HubSpot: plan, dry run, batches, idempotence --------------------------------------------------


def test_hubspot_dry_run_plans_every_field_and_writes_nothing(
    engine: Engine, hub: Callable[[int], Hub]
) -> None:
    crm = hub(3)
    hub_store(engine, crm)
    report = push(engine, crm.writer(), dry_run=True)
    assert crm.portal.write_log == []  # not even the properties were created
    assert report.status == "planned" and report.period_start == MONTH
    assert report.missing_fields == [f"users.{p}" for p, _ in sorted(KPI_FIELDS.values())]
    assert (report.planned, report.records, report.expected_write_requests) == (9, 3, 1)
    first = [r for r in report.rows if r.rep_id == f"hubspot:{crm.owners[1]}"]
    assert [(r.kpi, r.ref.field, r.crm_value, r.new_value, r.reason, r.action) for r in first] == [
        ("calls", "iskpi_target_calls", None, 1_510.0, NEW, "write"),
        ("meetings_set", "iskpi_target_meetings", None, 21.0, NEW, "write"),
        ("won_amount", "iskpi_target_won_amount", None, 2_001_234.567, NEW, "write"),
    ]
    assert first[0].record_id == crm.portal.user_record_id(crm.user_ids[1])
    [(audit, rows)] = list_pushes(engine, with_rows=True)
    assert (audit.dry_run, audit.status, audit.requested_by, audit.planned, audit.written) == (
        True,
        "planned",
        "cli",
        9,
        0,
    )
    assert audit.write_requests == 0 and audit.api_calls == report.api_calls > 0
    assert [r.status for r in rows] == ["planned"] * 9


def test_hubspot_push_creates_the_properties_then_writes_in_batches_of_100(
    engine: Engine, hub: Callable[[int], Hub]
) -> None:
    crm = hub(250)
    hub_store(engine, crm)
    writer = crm.writer()
    report = push(engine, writer)
    # The group first, then each property; then 3 batch updates of 100, 100 and 50 records.
    schema = [path for kind, path, _ in crm.portal.write_log if kind == "schema"]
    assert schema == ["POST /crm/v3/properties/user/groups"] + ["POST /crm/v3/properties/user"] * 3
    assert crm.record_writes() == [100, 100, 50]
    assert report.created_fields == [f"users.{p}" for p, _ in sorted(KPI_FIELDS.values())]
    assert (report.status, report.planned, report.records, report.written, report.failed) == (
        "ok",
        750,
        250,
        750,
        0,
    )
    assert report.write_requests == report.expected_write_requests == 3
    assert crm.value(0, "iskpi_target_calls") == "1500"
    assert crm.value(1, "iskpi_target_won_amount") == "2001234.567"
    assert crm.value(249, "iskpi_target_meetings") == "24"  # 20 + 249 mod 5
    group = crm.portal._custom_properties["users"]["iskpi_target_calls"]
    assert (group["groupName"], group["type"]) == ("iskpi", "number")

    # Nothing changed: the second push reads (3 searches, 3 batch reads, 1 property read)
    # and writes nothing at all.
    before = len(crm.portal.write_log)
    again = push(engine, crm.writer())
    assert len(crm.portal.write_log) == before
    assert (again.status, again.planned, again.unchanged, again.write_requests) == ("ok", 0, 750, 0)
    assert again.api_calls == 7


def test_salesforce_push_writes_200_records_a_request_and_repush_writes_nothing(
    engine: Engine, sfdc: Callable[[int], Org]
) -> None:
    crm = sfdc(250)
    org_store(engine, crm)
    report = push(engine, crm.writer())
    assert crm.record_writes() == [200, 50]
    assert (report.status, report.planned, report.records, report.written) == ("ok", 750, 250, 750)
    assert report.write_requests == report.expected_write_requests == 2
    assert crm.value(0, "IS_Target_Calls__c") == 1_500.0
    assert crm.value(1, "IS_Target_Won_Amount__c") == 2_001_234.57
    # The plan rounded won_amount to the currency field's 2 decimals before comparing.
    assert {r.new_value for r in report.rows if r.rep_id == f"salesforce:{crm.users[1]}"} == {
        1_510.0,
        21.0,
        2_001_234.57,
    }
    again = push(engine, crm.writer())
    assert crm.record_writes() == [200, 50]
    assert (again.planned, again.unchanged, again.write_requests) == (0, 750, 0)
    # Reads only: one describe (composite) and one composite of SOQL queries (300 Ids each).
    assert again.api_calls == 2


def test_only_this_months_rep_targets_of_mapped_kpis_are_due(
    engine: Engine, hub: Callable[[int], Hub]
) -> None:
    crm = hub(2)
    add_reps(engine, "hubspot", list(zip(crm.owners, crm.user_ids, strict=True)))
    rep = f"hubspot:{crm.owners[0]}"
    put_targets(
        engine,
        [
            Target("calls", "month", MONTH, "rep", rep, 1_200),
            Target("calls", "month", date(2026, 10, 1), "rep", rep, 900),  # last month
            Target("calls", "month", date(2026, 12, 1), "rep", rep, 1_300),  # next month
            Target("calls", "month", MONTH, "org", "org", 30_000),  # not a rep's
            Target("valid_meetings", "month", MONTH, "rep", rep, 12),  # not written back
        ],
    )
    report = push(engine, crm.writer(), dry_run=True)
    assert [(r.rep_id, r.kpi, r.new_value) for r in report.rows] == [(rep, "calls", 1_200.0)]
    # ISKPI_NOW decides the month: on 1 December (Tokyo) December's target is due.
    december = KpiContext(timezone="Asia/Tokyo", now=datetime(2026, 11, 30, 15, 0, tzinfo=UTC))
    plan = run_push(
        engine, crm.writer(), default_mapping().hubspot, december, requested_by="cli", dry_run=True
    )
    assert (plan.period_start, [r.new_value for r in plan.rows]) == (date(2026, 12, 1), [1_300.0])


def test_mapping_points_kpis_at_other_fields(
    engine: Engine, hub: Callable[[int], Hub], tmp_path: Path
) -> None:
    crm = hub(2)
    hub_store(engine, crm)
    path = tmp_path / "mapping.toml"
    path.write_text(
        '[hubspot.writeback.month]\nmeetings_set = ""\nwon_amount = "users.iskpi_revenue_goal"\n'
    )
    report = push(engine, crm.writer(), mapping=load_mapping(path))
    assert {(r.kpi, r.ref.field) for r in report.rows} == {
        ("calls", "iskpi_target_calls"),
        ("won_amount", "iskpi_revenue_goal"),
    }
    assert crm.value(1, "iskpi_revenue_goal") == "2001234.567"
    assert crm.value(1, "iskpi_target_meetings") is None


# --- conflicts, changed targets, force --------------------------------------------------------------


def test_a_field_changed_in_the_crm_is_a_conflict_until_forced(
    engine: Engine, hub: Callable[[int], Hub]
) -> None:
    crm = hub(3)
    hub_store(engine, crm)
    push(engine, crm.writer())
    # A manager edits rep 0's calls target in HubSpot; we raise rep 1's meetings target.
    record = crm.portal.user_record_id(crm.user_ids[0])
    assert record is not None
    crm.portal.update("users", record, {"iskpi_target_calls": "1400"})
    set_targets(engine, "hubspot", crm.owners[1:2], values=lambda i: {"meetings_set": 25})
    writes = len(crm.record_writes())
    report = push(engine, crm.writer())
    conflict = [r for r in report.rows if r.action == "conflict"]
    assert [
        (r.rep_id, r.kpi, r.crm_value, r.last_pushed, r.new_value, r.reason) for r in conflict
    ] == [(f"hubspot:{crm.owners[0]}", "calls", 1_400.0, 1_500.0, 1_500.0, CONFLICT)]
    changed = [r for r in report.rows if r.action == "write"]
    assert [(r.kpi, r.crm_value, r.new_value, r.reason) for r in changed] == [
        ("meetings_set", 21.0, 25.0, CHANGED)
    ]
    assert crm.record_writes()[writes:] == [1]
    assert crm.value(0, "iskpi_target_calls") == "1400"  # not overwritten
    assert crm.value(1, "iskpi_target_meetings") == "25"
    # Still a conflict on the next push; forced, it is overwritten.
    assert push(engine, crm.writer(), dry_run=True).conflicts == 1
    forced = push(engine, crm.writer(), force=True)
    assert [(r.kpi, r.reason, r.status) for r in forced.rows] == [("calls", FORCED, "written")]
    assert crm.value(0, "iskpi_target_calls") == "1500"
    assert push(engine, crm.writer()).rows == []


def test_a_crm_value_that_already_matches_is_adopted_not_written(
    engine: Engine, sfdc: Callable[[int], Org]
) -> None:
    crm = sfdc(2)
    org_store(engine, crm)
    crm.org.update("User", crm.users[0], {"IS_Target_Calls__c": 1_500})  # set by hand already
    report = push(engine, crm.writer())
    assert (report.planned, report.unchanged) == (5, 1)
    # Remembered as pushed: a later change in Salesforce is noticed as a conflict.
    crm.org.update("User", crm.users[0], {"IS_Target_Calls__c": 1_000})
    again = push(engine, crm.writer())
    assert [(r.kpi, r.reason) for r in again.rows] == [("calls", CONFLICT)]


# --- failures: per row, mid-push, permissions, missing fields --------------------------------------


def test_salesforce_rows_refused_are_recorded_and_retried_on_the_next_push(
    engine: Engine, sfdc: Callable[[int], Org]
) -> None:
    crm = sfdc(5)
    org_store(engine, crm)
    crm.org.faults.reject_records[crm.users[2]] = "Targets are locked for this user"
    report = push(engine, crm.writer())
    assert (report.status, report.written, report.failed) == ("partial", 12, 3)
    failed = [r for r in report.rows if r.status == "failed"]
    assert {r.rep_id for r in failed} == {f"salesforce:{crm.users[2]}"}
    assert failed[0].error == (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION: Targets are locked for this user"
    )
    assert crm.value(2, "IS_Target_Calls__c") is None and crm.value(3, "IS_Target_Calls__c")
    [(audit, rows)] = list_pushes(engine, with_rows=True)
    assert (audit.status, audit.written, audit.failed) == ("partial", 12, 3)
    assert sum(r.status == "failed" for r in rows) == 3
    crm.org.faults.reject_records.clear()
    retry = push(engine, crm.writer())
    assert rows_by_reason(retry) == {RETRY: 3}
    assert crm.record_writes() == [5, 1]  # only the refused record again
    assert crm.value(2, "IS_Target_Calls__c") == 1_520.0


def test_hubspot_records_refused_in_a_207_are_recorded_per_row(
    engine: Engine, hub: Callable[[int], Hub]
) -> None:
    crm = hub(4)
    hub_store(engine, crm)
    record = crm.portal.user_record_id(crm.user_ids[3])
    assert record is not None
    crm.portal.faults.reject_records[record] = "Users in this team cannot take targets"
    report = push(engine, crm.writer())
    assert (report.status, report.written, report.failed) == ("partial", 9, 3)
    assert {r.error for r in report.rows if r.status == "failed"} == {
        "VALIDATION_ERROR: Users in this team cannot take targets"
    }
    crm.portal.faults.reject_records.clear()
    assert rows_by_reason(push(engine, crm.writer())) == {RETRY: 3}


def test_a_5xx_mid_push_keeps_the_rows_written_and_the_next_push_sends_the_rest(
    engine: Engine, sfdc: Callable[[int], Org]
) -> None:
    crm = sfdc(250)
    org_store(engine, crm)
    crm.org.faults.write_fault_after = 1  # the first batch goes through, then 503s
    with pytest.raises(PushFailed) as stopped:
        push(engine, crm.writer(max_retries=2))
    report = stopped.value.report
    assert isinstance(stopped.value.cause, TransientError)
    assert (report.status, report.written, report.failed) == ("failed", 600, 150)
    assert {r.status for r in report.rows[600:]} == {"not_sent"}
    assert crm.record_writes() == [200, 50, 50, 50]  # the second batch, tried 3 times
    [(audit, _)] = list_pushes(engine)
    assert (audit.status, audit.written, audit.failed, audit.write_requests) == (
        "failed",
        600,
        150,
        4,
    )
    assert "503" in (audit.error or "")
    crm.org.faults.write_fault_after = None
    rest = push(engine, crm.writer())
    assert rows_by_reason(rest) == {RETRY: 150}
    assert crm.record_writes()[4:] == [50]
    assert crm.value(249, "IS_Target_Calls__c") == 3_990.0  # 1,500 + 10 × 249


def test_a_429_that_outlives_the_retries_stops_a_hubspot_push_cleanly(
    engine: Engine, hub: Callable[[int], Hub]
) -> None:
    crm = hub(150)
    hub_store(engine, crm)
    crm.portal.create_property("users", "iskpi_target_calls", group="iskpi")
    crm.portal.create_property("users", "iskpi_target_meetings", group="iskpi")
    crm.portal.create_property("users", "iskpi_target_won_amount", group="iskpi")
    crm.portal.faults.write_fault_after = 1
    crm.portal.faults.write_fault_status = 429
    with pytest.raises(PushFailed) as stopped:
        push(engine, crm.writer(max_retries=1))
    assert isinstance(stopped.value.cause, RateLimited)
    report = stopped.value.report
    assert (report.written, report.failed) == (300, 150)
    assert crm.record_writes() == [100, 50, 50]


def test_a_missing_scope_is_named_and_nothing_is_written(
    engine: Engine, hub: Callable[[int], Hub]
) -> None:
    crm = hub(2)
    hub_store(engine, crm)
    crm.portal.missing_scopes = {"crm.schemas.users.write"}
    # A dry run needs no write scope: it lists the properties to create.
    plan = push(engine, crm.writer(), dry_run=True)
    assert plan.planned == 6 and len(plan.missing_fields) == 3
    with pytest.raises(PushFailed) as refused:
        push(engine, crm.writer())
    message = str(refused.value)
    assert isinstance(refused.value.cause, PermissionDenied)
    assert "crm.schemas.users.write" in message and "iskpi_target_calls" in message
    assert crm.record_writes() == []
    assert refused.value.report.status == "failed"
    assert TOKEN not in message


def test_a_salesforce_field_missing_is_named_before_anything_is_sent(
    engine: Engine, sfdc: Callable[[int], Org]
) -> None:
    crm = sfdc(2)
    org_store(engine, crm)
    crm.org.drop_field("User", "IS_Target_Meetings__c")
    for dry_run in (True, False):
        with pytest.raises(PushFailed) as missing:
            push(engine, crm.writer(), dry_run=dry_run)
        assert isinstance(missing.value.cause, DestinationMissing)
        assert "User has no field IS_Target_Meetings__c" in str(missing.value)
    assert crm.org.write_log == []
    assert [p.status for p, _ in list_pushes(engine)] == ["failed", "failed"]


def test_reps_without_a_crm_user_are_skipped_with_the_reason(
    engine: Engine, sfdc: Callable[[int], Org]
) -> None:
    crm = sfdc(2)
    gone = "005Hp000000zzzzAAA"
    reps: list[tuple[str, str | None]] = [
        (crm.users[0], crm.users[0]),
        (crm.users[1], crm.users[1]),
        (gone, gone),
        ("005Hp000000yyyyAAA", None),
    ]
    add_reps(engine, "salesforce", reps)
    set_targets(
        engine, "salesforce", [crm_id for crm_id, _ in reps], values=lambda i: {"calls": 100 + i}
    )
    add_reps(engine, "salesforce", reps[1:2], deleted=frozenset({crm.users[1]}))  # left since
    report = push(engine, crm.writer())
    reasons = {r.rep_id.split(":")[1]: (r.action, r.reason) for r in report.rows}
    assert reasons == {
        crm.users[0]: ("write", NEW),
        crm.users[1]: ("skip", "the rep is deleted or inactive in the CRM"),
        gone: ("skip", f"no Salesforce user {gone}"),
        "005Hp000000yyyyAAA": ("skip", "the rep has no CRM user"),
    }
    assert (report.status, report.written, report.skipped) == ("ok", 1, 3)


# --- ForecastingQuota --------------------------------------------------------------------------------


def test_won_amount_can_also_go_to_the_reps_forecasting_quota(
    engine: Engine, sfdc: Callable[[int], Org]
) -> None:
    crm = sfdc(250)
    org_store(engine, crm)
    mapping = merge_mapping(
        default_mapping(),
        {
            "salesforce": {
                "writeback": {
                    "month": {
                        "won_amount": ["IS_Target_Won_Amount__c", "ForecastingQuota.QuotaAmount"]
                    }
                }
            }
        },
    )
    report = push(engine, crm.writer(mapping), mapping=mapping)
    # Users: PATCH 200 + 50. Quotas (none yet): POST 200 + 50, never mixed with User.
    assert [(path.split()[0], n) for _, path, n in crm.org.write_log] == [
        ("PATCH", 200),
        ("PATCH", 50),
        ("POST", 200),
        ("POST", 50),
    ]
    assert (report.planned, report.written, report.expected_write_requests) == (1000, 1000, 4)
    quotas = crm.org.ids("ForecastingQuota")
    assert len(quotas) == 250
    one = crm.org.get("ForecastingQuota", quotas[1])
    assert (one["StartDate"], one["QuotaAmount"]) == ("2026-11-01", 2_001_234.57)
    again = push(engine, crm.writer(mapping), mapping=mapping)
    assert (again.planned, again.unchanged, again.write_requests) == (0, 1000, 0)


# --- mapping --------------------------------------------------------------------------------------


def test_writeback_mapping_defaults_and_errors() -> None:
    defaults = default_mapping()
    assert {
        k: [f"{r.crm_object}.{r.field}" for r in v]
        for k, v in defaults.salesforce.destinations().items()
    } == {
        "calls": ["User.IS_Target_Calls__c"],
        "meetings_set": ["User.IS_Target_Meetings__c"],
        "won_amount": ["User.IS_Target_Won_Amount__c"],
    }
    assert defaults.hubspot.writeback_options == {"property_group": "iskpi"}
    for bad, says in (
        ({"hubspot": {"writeback": {"week": {"calls": "x"}}}}, "only month"),
        ({"hubspot": {"writeback": {"month": {"calls": "contacts.x"}}}}, "'contacts'"),
        (
            {"salesforce": {"writeback": {"month": {"calls": "ForecastingQuota.Foo"}}}},
            "QuotaAmount",
        ),
        ({"salesforce": {"writeback": {"month": {"calls": 5}}}}, "Object.Field"),
    ):
        with pytest.raises(MappingError, match=says):
            merge_mapping(defaults, bad)


def test_a_destination_for_a_kpi_not_in_the_catalog_is_refused(
    engine: Engine, hub: Callable[[int], Hub]
) -> None:
    crm = hub(1)
    mapping = merge_mapping(
        default_mapping(), {"hubspot": {"writeback": {"month": {"calls_made": "iskpi_calls"}}}}
    )
    with pytest.raises(MappingError, match="hubspot.writeback.month.calls_made"):
        push(engine, crm.writer(), mapping=mapping)


# --- the API --------------------------------------------------------------------------------------


def api_settings(crm: Hub) -> Settings:
    return Settings(
        _env_file=None,
        database_url="sqlite://",
        timezone="Asia/Tokyo",
        now=NOW,
        hubspot_access_token=SecretStr(TOKEN),
        hubspot_base_url=crm.running.url,
        read_tokens=[SecretStr(READ)],
        admin_tokens=[SecretStr(ADMIN)],
    )


def test_api_push_needs_an_admin_token_and_dry_run_writes_nothing(
    engine: Engine, hub: Callable[[int], Hub]
) -> None:
    crm = hub(3)
    hub_store(engine, crm)
    with TestClient(create_app(api_settings(crm), engine)) as client:
        assert client.post("/v1/targets/push").status_code == 401
        read = {"Authorization": f"Bearer {READ}"}
        admin = {"Authorization": f"Bearer {ADMIN}"}
        assert client.post("/v1/targets/push", headers=read).status_code == 403
        assert client.get("/v1/targets/pushes").status_code == 401
        planned = client.post("/v1/targets/push", headers=admin)  # a dry run by default
        assert planned.status_code == 200, planned.text
        [plan] = planned.json()["data"]
        assert crm.portal.write_log == []
        assert (plan["source"], plan["dry_run"], plan["status"], plan["planned"]) == (
            "hubspot",
            True,
            "planned",
            9,
        )
        assert plan["requested_by"].startswith("admin#1 (hmac:") and ADMIN not in planned.text
        row = plan["rows"][0]
        assert {
            k: row[k]
            for k in (
                "kpi",
                "object",
                "field",
                "crm_value",
                "new_value",
                "reason",
                "action",
                "status",
            )
        } == {
            "kpi": "calls",
            "object": "users",
            "field": "iskpi_target_calls",
            "crm_value": None,
            "new_value": 1_500.0,
            "reason": "new",
            "action": "write",
            "status": "planned",
        }
        pushed = client.post("/v1/targets/push", params={"dry_run": False}, headers=admin)
        assert pushed.status_code == 200, pushed.text
        assert pushed.json()["data"][0]["written"] == 9 and crm.record_writes() == [3]
        listed = client.get("/v1/targets/pushes", headers=read, params={"rows": True}).json()
        assert [(p["dry_run"], p["status"], len(p["rows"])) for p in listed["data"]] == [
            (False, "ok", 9),
            (True, "planned", 9),
        ]
        assert client.get("/v1/targets/pushes", headers=read).json()["data"][0]["rows"] is None


def test_api_push_is_a_dry_run_of_the_achievement_level_unless_told(
    engine: Engine, hub: Callable[[int], Hub]
) -> None:
    crm = hub(3)
    hub_store(engine, crm)  # achievement targets: 3 reps × 3 KPIs
    first = f"hubspot:{crm.owners[0]}"
    put_targets(
        engine,
        [
            Target("calls", "month", MONTH, "rep", first, 1_800, level="stretch"),
            Target("calls", "month", MONTH, "rep", first, 1_200, level="minimum"),
        ],
    )
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(create_app(api_settings(crm), engine)) as client:
        [default] = client.post("/v1/targets/push", headers=admin).json()["data"]
        assert (default["level"], default["dry_run"], default["planned"]) == (
            "achievement",
            True,
            9,
        )
        # The stretch level: the one stretch target, a draft (pushed whatever its status).
        answer = client.post("/v1/targets/push", params={"level": "stretch"}, headers=admin)
        assert answer.status_code == 200, answer.text
        [stretch] = answer.json()["data"]
        assert (stretch["level"], stretch["dry_run"], stretch["planned"]) == ("stretch", True, 1)
        assert [(r["rep_id"], r["kpi"], r["new_value"]) for r in stretch["rows"]] == [
            (first, "calls", 1_800.0)
        ]
        bad = client.post("/v1/targets/push", params={"level": "best"}, headers=admin)
        assert bad.status_code == 422 and "level" in bad.json()["detail"][0]["loc"]
        assert crm.portal.write_log == []
        written = client.post(
            "/v1/targets/push", params={"level": "minimum", "dry_run": False}, headers=admin
        ).json()["data"][0]
        assert (written["level"], written["written"]) == ("minimum", 1)
        assert crm.record_writes() == [1]


def test_api_push_refused_by_the_crm_is_a_409_with_the_audited_push(
    engine: Engine, hub: Callable[[int], Hub]
) -> None:
    crm = hub(2)
    hub_store(engine, crm)
    crm.portal.missing_scopes = {"crm.schemas.users.write"}
    with TestClient(create_app(api_settings(crm), engine)) as client:
        answer = client.post(
            "/v1/targets/push",
            params={"dry_run": False},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
    assert answer.status_code == 409
    detail = answer.json()["detail"]
    assert "crm.schemas.users.write" in detail["message"] and detail["source"] == "hubspot"
    assert detail["push"]["status"] == "failed" and detail["push"]["written"] == 0
    assert TOKEN not in answer.text


# --- the CLI --------------------------------------------------------------------------------------


def test_cli_push_prints_the_plan_and_exits_1_on_failure(
    hub: Callable[[int], Hub], tmp_path: Path
) -> None:
    crm = hub(2)
    database = tmp_path / "cli.db"
    cli_engine = make_engine(f"sqlite:///{database}")
    migrate(cli_engine)
    hub_store(cli_engine, crm)
    cli_engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISKPI_")}
    env.update(
        ISKPI_DATABASE_URL=f"sqlite:///{database}",
        ISKPI_HUBSPOT_ACCESS_TOKEN=TOKEN,
        ISKPI_HUBSPOT_BASE_URL=crm.running.url,
        ISKPI_NOW=NOW.isoformat(),
        ISKPI_TIMEZONE="Asia/Tokyo",
        COLUMNS="200",
    )

    def iskpi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service", "targets", "push", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )

    dry = iskpi("--source", "hubspot")  # a dry run unless --apply
    assert dry.returncode == 0, dry.stderr
    assert "hubspot dry run #1 of 2026-11 targets: planned" in dry.stdout
    assert "hubspot dry run #1, achievement targets" in dry.stdout
    assert "iskpi_target_calls" in dry.stdout and "1,500" in dry.stdout
    assert "--apply writes these changes" in dry.stdout
    stretch = iskpi("--level", "stretch")  # no stretch targets: nothing to plan
    assert stretch.returncode == 0, stretch.stderr
    assert "hubspot dry run #2, stretch targets" in stretch.stdout
    assert "iskpi_target_calls" not in stretch.stdout
    assert iskpi("--level", "best").returncode == 2
    assert iskpi("--apply", "--dry-run").returncode == 2
    assert crm.portal.write_log == []
    done = iskpi("--apply")
    assert done.returncode == 0, done.stderr
    assert "push #3" in done.stdout and "written" in done.stdout
    assert crm.record_writes() == [2]
    crm.portal.missing_scopes = {"crm.objects.users.write"}
    set_engine = make_engine(f"sqlite:///{database}")
    set_targets(set_engine, "hubspot", crm.owners, values=lambda i: {"calls": 1})
    set_engine.dispose()
    failed = iskpi("--apply")
    assert failed.returncode == 1
    assert "crm.objects.users.write" in failed.stderr
    assert TOKEN not in failed.stdout + failed.stderr


# --- the migration ----------------------------------------------------------------------------------

WRITEBACK_TABLES = {"writeback_pushes", "writeback_push_rows", "writeback_state"}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_writeback_migration_upgrades_and_downgrades(backend: str, tmp_path: Path) -> None:
    admin = None
    schema = f"iskpi_wb_{os.getpid()}"
    if backend == "sqlite":
        db = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    else:
        admin = make_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        db = postgres_engine(schema)
    try:
        migrate(db, "0002")
        assert not WRITEBACK_TABLES & set(inspect(db).get_table_names())
        migrate(db)
        assert WRITEBACK_TABLES <= set(inspect(db).get_table_names())
        with db.connect() as conn:  # the migration builds exactly what the models declare
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            drift = [d for d in compare_metadata(context, Base.metadata) if "writeback" in repr(d)]
        assert drift == []
        downgrade(db, "0002")
        tables = set(inspect(db).get_table_names())
        assert not WRITEBACK_TABLES & tables and "kpi_targets" in tables
        migrate(db)
        assert WRITEBACK_TABLES <= set(inspect(db).get_table_names())
        with db.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM writeback_pushes")).scalar_one() == 0
    finally:
        db.dispose()
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def test_audit_rows_are_readable_as_models(engine: Engine, hub: Callable[[int], Hub]) -> None:
    crm = hub(1)
    hub_store(engine, crm)
    push(engine, crm.writer(), requested_by="admin#2 (sha256:0badc0de)", trigger="api")
    [(audit, rows)] = list_pushes(engine, source="hubspot", with_rows=True)
    assert isinstance(audit, WritebackPush)
    assert (audit.requested_by, audit.trigger, audit.period_start, audit.batch_size) == (
        "admin#2 (sha256:0badc0de)",
        "api",
        MONTH,
        100,
    )
    assert audit.finished_at is not None and audit.finished_at >= audit.started_at
    assert [(r.kpi, r.status, r.new_value) for r in rows] == [
        ("calls", "written", 1_500.0),
        ("meetings_set", "written", 20.0),
        ("won_amount", "written", 2_000_000.0),
    ]
    assert list_pushes(engine, source="salesforce") == []
