"""Salesforce into the store, end to end: the real simple-salesforce client, the simulated org over
HTTPS, ``service.sync.run.run_sync``, on SQLite and on PostgreSQL.

Each test compares the store with what the org holds (worked out from the generated dataset),
or with a clean run of the same data. The last tests enter the same business activity in both
simulated CRMs and sync both into one store: the rows are identical apart from source and ids.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trustme
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from connectors.hubspot import HubSpotConnector
from models import (
    Call,
    Deal,
    Email,
    FollowUpTask,
    Lead,
    Meeting,
    QuarantinedRecord,
    Rep,
    SyncRun,
    SyncState,
    Team,
)
from service.db import make_engine, migrate
from service.errors import SyncLocked
from service.sync.run import run_sync
from simulators.hubspot.portal import HubSpotPortal, serve_portal
from simulators.salesforce.org import SalesforceOrg, serve_org
from simulators.salesforce.seed import generate_org_dataset
from simulators.salesforce.store import OrgDataset
from tests.support.salesforce import Clock, Org, ca

__all__ = ["ca"]

END = datetime(2026, 10, 31, 12, tzinfo=UTC)
RUN = END + timedelta(hours=1)
CONTENT_TABLES = (Team, Rep, Lead, Call, Email, Meeting, FollowUpTask, Deal)


def small_dataset() -> OrgDataset:
    return generate_org_dataset(
        seed=11, teams=2, reps_per_team=2, months=1, end=END, calls_per_rep_day=12
    )


@pytest.fixture(scope="module")
def dataset() -> OrgDataset:
    return small_dataset()


@pytest.fixture
def org(ca: trustme.CA, dataset: OrgDataset) -> Iterator[Org]:
    clock = Clock(RUN)
    sf = SalesforceOrg(clock=clock)
    sf.load(dataset)
    served = Org(serve_org(sf, tls=ca), clock)
    try:
        yield served
    finally:
        served.running.stop()


def expected(dataset: OrgDataset) -> dict[type[Any], tuple[int, int]]:
    """(live, deleted) rows per table, worked out from the generated records."""

    def split(records: list[Any]) -> tuple[int, int]:
        gone = sum(r.deleted_ms is not None for r in records)
        return len(records) - gone, gone

    tasks = list(dataset.of("Task"))
    calls = [
        r for r in tasks if r.fields.get("TaskSubtype") == "Call" or r.fields.get("Type") == "Call"
    ]
    emails = [r for r in tasks if r.fields.get("TaskSubtype") == "Email"]
    follow_ups = [
        r
        for r in tasks
        if r.fields.get("TaskSubtype") == "Task"
        and r.fields.get("Type") != "Call"
        and r.fields.get("ActivityDate")
    ]
    users = [r for r in dataset.of("User") if r.fields.get("UserType") == "Standard"]
    return {
        Lead: split(list(dataset.of("Lead"))),
        Call: split(calls),
        Email: split(emails),
        Meeting: split(list(dataset.of("Event"))),
        FollowUpTask: split(follow_ups),
        Deal: split(list(dataset.of("Opportunity"))),
        Rep: (
            sum(bool(r.fields["IsActive"]) for r in users),
            sum(not r.fields["IsActive"] for r in users),
        ),
        Team: (dataset.count("UserRole"), 0),
    }


def count(engine: Engine, model: Any, **where: Any) -> int:
    query = select(func.count()).select_from(model)
    for column, value in where.items():
        query = query.where(getattr(model, column) == value)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def snapshot(engine: Engine, source: str = "salesforce") -> dict[str, set[tuple[Any, ...]]]:
    out: dict[str, set[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for model in CONTENT_TABLES:
            table = model.__table__
            columns = [c for c in table.columns if c.name not in ("id", "synced_at")]
            rows = conn.execute(select(*columns).where(table.c.source == source)).all()
            out[table.name] = {tuple(row) for row in rows}  # type: ignore[attr-defined]
            assert len(rows) == len(out[table.name]), f"duplicates in {table.name}"  # type: ignore[attr-defined]
    return out


def assert_store_matches_org(engine: Engine, dataset: OrgDataset) -> None:
    for model, (live, deleted) in expected(dataset).items():
        name = model.__tablename__
        assert count(engine, model, source="salesforce", deleted=False) == live, name
        assert count(engine, model, source="salesforce", deleted=True) == deleted, name


def test_first_sync_stores_every_record_once_and_records_the_run(
    engine: Engine, org: Org, dataset: OrgDataset
) -> None:
    connector = org.connector()
    report = run_sync(engine, connector, clock=lambda: RUN)
    assert report.status == "ok", report.error
    assert_store_matches_org(engine, dataset)
    with engine.connect() as conn:
        orphans = conn.execute(
            select(func.count()).select_from(Call).where(Call.rep_crm_id.is_(None))
        ).scalar_one()
        keys = {k for (k,) in conn.execute(select(Lead.crm_id))}
        call_leads = {c for (c,) in conn.execute(select(Call.contact_crm_id).distinct())}
        won = conn.execute(select(func.count()).select_from(Deal).where(Deal.is_won)).scalar_one()
    assert orphans == 0
    # Every call reaches a stored lead: WhoIds on converted Contacts were mapped back.
    assert call_leads <= keys and all(len(k) == 18 for k in keys)
    assert won > 0
    with Session(engine) as session:
        run = session.scalars(select(SyncRun)).one()
    assert (run.source, run.status, run.quarantined) == ("salesforce", "ok", 0)
    assert run.api_calls == report.api_calls == connector.api_calls == len(org.org.request_log)
    assert run.records == report.records and run.records["calls"] > 0


def test_rerunning_never_duplicates_and_a_quiet_run_costs_thirteen_requests(
    engine: Engine, org: Org
) -> None:
    run_sync(engine, org.connector(), clock=lambda: RUN)
    first = snapshot(engine)
    report = run_sync(engine, org.connector(), full=True, clock=lambda: RUN)
    assert report.status == "ok" and snapshot(engine) == first
    later = RUN + timedelta(hours=1)
    quiet = run_sync(engine, org.connector(), clock=lambda: later)
    assert (quiet.status, quiet.api_calls) == ("ok", 13)
    assert snapshot(engine) == first


def test_incremental_sync_picks_up_created_changed_and_deleted_records(
    engine: Engine, org: Org
) -> None:
    run_sync(engine, org.connector(), clock=lambda: RUN)
    later = RUN + timedelta(hours=2)
    org.clock.now = later - timedelta(minutes=30)
    sf = org.org
    rep = sf.ids("User")[1]
    lead = sf.ids("Lead")[0]
    new_call = sf.create(
        "Task",
        {
            "TaskSubtype": "Call",
            "Type": "Call",
            "Status": "Completed",
            "CallType": "Outbound",
            "CallDisposition": "Connected",
            "CallDurationInSeconds": 61,
            "CompletedDateTime": later - timedelta(hours=1),
            "OwnerId": rep,
            "WhoId": lead,
        },
    )
    calls = [i for i in sf.ids("Task") if sf.get("Task", i)["TaskSubtype"] == "Call"]
    changed, gone = calls[3], calls[5]
    sf.update("Task", changed, {"CallDurationInSeconds": 59})
    sf.delete("Task", gone)
    report = run_sync(engine, org.connector(), clock=lambda: later)
    assert report.status == "ok" and report.records["calls"] == 3
    with Session(engine) as session:
        rows = {
            r.crm_id: r
            for r in session.scalars(select(Call).where(Call.crm_id.in_([new_call, changed, gone])))
        }
    assert rows[new_call].outcome == "connected" and rows[new_call].duration_ms == 61_000
    assert rows[new_call].contact_crm_id == lead
    assert rows[changed].duration_ms == 59_000 and rows[gone].deleted


_clean: dict[str, set[tuple[Any, ...]]] = {}


def clean_snapshot(org: Org, tmp_path: Path) -> dict[str, set[tuple[Any, ...]]]:
    """The store after one clean run of the (unchanged) dataset, computed once."""
    if not _clean:
        clean = make_engine(f"sqlite:///{tmp_path / 'clean.db'}")
        migrate(clean)
        before = len(org.org.request_log)
        run_sync(clean, org.connector(), clock=lambda: RUN)
        del org.org.request_log[before:]
        _clean.update(snapshot(clean))
        clean.dispose()
    return dict(_clean)


def test_a_quota_stop_leaves_a_partial_run_and_the_next_run_completes_it(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    expected_rows = clean_snapshot(org, tmp_path)
    sf = org.org
    sf.daily_api_used = sf.daily_api_limit - 28  # 28 left: this run may use 7
    stopped = run_sync(engine, org.connector(page_size=200), clock=lambda: RUN)
    assert stopped.status == "partial" and stopped.api_calls == 7
    assert stopped.error is not None and "quota guard" in stopped.error
    with Session(engine) as session:
        run = session.scalars(select(SyncRun)).one()
        assert (run.status, run.error, run.api_calls) == ("partial", stopped.error, 7)
    assert snapshot(engine) != expected_rows
    sf.daily_api_used = 0  # the allowance is back
    resumed = run_sync(engine, org.connector(page_size=200), clock=lambda: RUN)
    assert resumed.status == "ok", resumed.error
    assert snapshot(engine) == expected_rows


def test_an_expired_session_fails_the_run_and_a_new_one_resumes_it(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    expected_rows = clean_snapshot(org, tmp_path)
    org.org.faults.expire_sessions_after = 6
    failed = run_sync(engine, org.connector(page_size=200), clock=lambda: RUN)
    assert failed.status == "failed"
    assert failed.error is not None and "ISKPI_SALESFORCE_SESSION_ID" in failed.error
    assert 0 < sum(failed.records.values())
    resumed = run_sync(engine, org.connector(page_size=200), clock=lambda: RUN)
    assert resumed.status == "ok", resumed.error
    assert snapshot(engine) == expected_rows


def test_a_bulk_first_sync_stores_what_the_rest_path_stores(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    expected_rows = clean_snapshot(org, tmp_path)
    report = run_sync(
        engine, org.connector(bulk_threshold=300, bulk_page_size=500), clock=lambda: RUN
    )
    assert report.status == "ok", report.error
    jobs = [p for m, p in org.org.request_log if m == "POST" and p.endswith("/jobs/query")]
    assert len(jobs) >= 3  # leads, calls, emails, follow-ups are over the threshold
    assert snapshot(engine) == expected_rows


def test_quarantine_keeps_the_bad_record_and_releases_it_when_fixed(
    engine: Engine, org: Org
) -> None:
    sf = org.org
    bad = sf.ids("Opportunity")[2]
    sf.faults.malformed[("Opportunity", bad)] = {"Probability": 250}
    report = run_sync(engine, org.connector(), clock=lambda: RUN)
    assert report.status == "ok" and report.quarantined == 1
    with Session(engine) as session:
        q = session.scalars(select(QuarantinedRecord)).one()
    assert (q.source, q.stream, q.crm_id) == ("salesforce", "opportunities", bad)
    assert "Probability" in q.reason and q.payload["Probability"] == 250
    del sf.faults.malformed[("Opportunity", bad)]
    later = RUN + timedelta(hours=1)
    org.clock.now = later - timedelta(minutes=5)
    sf.update("Opportunity", bad, {"Amount": 1.0})
    run_sync(engine, org.connector(), clock=lambda: later)
    assert count(engine, QuarantinedRecord) == 0
    assert count(engine, Deal, crm_id=bad) == 1


# --- killed with SIGKILL, resumed by `iskpi sync --source salesforce` ------------------------


def test_kill_mid_sync_then_resume_equals_a_clean_run(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    expected_rows = clean_snapshot(org, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISKPI_")}
    env.update(
        {
            "ISKPI_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "ISKPI_SALESFORCE_INSTANCE_URL": org.url,
            "ISKPI_SALESFORCE_SESSION_ID": org.org.issue_session(),
            "REQUESTS_CA_BUNDLE": org.ca_bundle,  # the standard way to trust a private CA
        }
    )
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            env["PGOPTIONS"] = (
                f"-csearch_path={conn.execute(text('SELECT current_schema()')).scalar_one()}"
            )
    org.clock.now = datetime.now(UTC)

    def sync() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "service", "sync", "--source", "salesforce"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    org.org.faults.delay_seconds = 0.05
    proc = sync()
    while proc.poll() is None and len(org.org.request_log) < 9:  # mid calls, after 3 streams
        time.sleep(0.005)
    assert proc.poll() is None, "the sync finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    org.org.faults.delay_seconds = 0.0
    proc = sync()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert snapshot(engine) == expected_rows
    with engine.connect() as conn:
        statuses = conn.execute(select(SyncRun.status).order_by(SyncRun.id)).scalars().all()
        streams = conn.execute(select(func.count()).select_from(SyncState)).scalar_one()
    assert statuses == ["failed", "ok"]  # the killed run is marked interrupted
    assert streams == 10


# --- the same business activity in HubSpot and in Salesforce ---------------------------------

TOKYO = ZoneInfo("Asia/Tokyo")
T = datetime(2024, 3, 4, 1, 0, tzinfo=UTC)  # Monday 10:00 in Tokyo
CREATED = T - timedelta(days=3)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def local_day(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=TOKYO).astimezone(UTC)


def hubspot_side(hub: HubSpotPortal) -> dict[str, str]:
    """The team's week entered in HubSpot; returns HubSpot id → the entity's name."""
    hub.set_pipeline_stages(
        [
            ("Closed Won", "Closed Won", 1.0, True, True),
            ("Closed Lost", "Closed Lost", 0.0, True, False),
        ]
    )
    names: dict[str, str] = {"7001": "team IS", "7002": "team Field"}
    aiko = hub.add_owner(
        email="aiko@example.jp",
        first_name="Aiko",
        last_name="Tanaka",
        teams=[("7001", "Inside Sales", True)],
        created_at=CREATED,
        user_id=9_100_001,
    )
    kenji = hub.add_owner(
        email="kenji@example.jp",
        first_name="Kenji",
        last_name="Sato",
        teams=[("7002", "Field Sales", True)],
        created_at=CREATED,
        user_id=9_100_002,
    )
    # A rep's user_id is the id write-back uses: HubSpot's user, Salesforce's User.
    names.update({aiko: "aiko", kenji: "kenji", "9100001": "aiko", "9100002": "kenji"})
    mio = hub.create(
        "contacts",
        {
            "createdate": iso(CREATED),
            "hs_analytics_source": "Web",
            "industry": "Technology",
            "numemployees": "25-50",
            "lifecyclestage": "Closed - Converted",
            "hs_lifecyclestage_salesqualifiedlead_date": iso(local_day(date(2024, 3, 4))),
            "hubspot_owner_id": aiko,
        },
        modified_at=T + timedelta(hours=5),
    )
    ren = hub.create(
        "contacts",
        {
            "createdate": iso(CREATED + timedelta(hours=1)),
            "hs_analytics_source": "Trade Show",
            "numemployees": "1000+",
            "lifecyclestage": "Working - Contacted",
            "hubspot_owner_id": aiko,
        },
        modified_at=CREATED + timedelta(hours=1),
    )
    names.update({mio: "mio", ren: "ren"})
    deal = hub.create(
        "deals",
        {
            "createdate": iso(T + timedelta(hours=4)),
            "closedate": iso(local_day(date(2024, 3, 29))),
            "amount": "1500000",
            "dealstage": "Closed Won",
            "hubspot_owner_id": kenji,
            "is_rep_owner_id": aiko,
            "bant_budget": "Approved",
            "bant_authority": "CTO",
            "bant_need": "Pipeline visibility",
            "bant_timing": "This quarter",
            "handoff_rating": "4",
            "hs_analytics_source": "Web",
        },
        associations={"contacts": [mio]},
        modified_at=T + timedelta(days=2),
    )
    names[deal] = "deal"
    calls = [
        (
            "call connected",
            T,
            "OUTBOUND",
            "f240bbac-87c9-4f6e-bf70-924b57d47db7",
            "COMPLETED",
            "185000",
            mio,
        ),
        (
            "call inbound",
            T + timedelta(minutes=20),
            "INBOUND",
            "73a0d17f-1163-4015-bdd5-ec830791da20",
            "COMPLETED",
            "0",
            ren,
        ),
        ("call busy", T + timedelta(minutes=40), None, None, "BUSY", "0", ren),
    ]
    for name, at, direction, disposition, status, duration, contact in calls:
        props = {
            "hs_timestamp": iso(at),
            "hs_createdate": iso(at),
            "hs_call_status": status,
            "hs_call_duration": duration,
            "hubspot_owner_id": aiko,
        }
        if direction:
            props["hs_call_direction"] = direction
        if disposition:
            props["hs_call_disposition"] = disposition
        names[
            hub.create(
                "calls",
                props,
                associations={"contacts": [contact]},
                modified_at=at + timedelta(minutes=1),
            )
        ] = name
    emails = [
        ("email tracked", T + timedelta(hours=1), "SENT", ("2", "1", "0"), mio),
        ("email untracked", T + timedelta(hours=1, minutes=5), "SENT", None, ren),
        ("email bounced", T + timedelta(hours=1, minutes=9), "BOUNCED", None, ren),
    ]
    for name, at, status, counts, contact in emails:
        props = {
            "hs_timestamp": iso(at),
            "hs_createdate": iso(at),
            "hs_email_direction": "EMAIL",
            "hs_email_status": status,
            "hubspot_owner_id": aiko,
        }
        if counts:
            props.update(
                zip(
                    ("hs_email_open_count", "hs_email_click_count", "hs_email_reply_count"),
                    counts,
                    strict=True,
                )
            )
        names[
            hub.create(
                "emails",
                props,
                associations={"contacts": [contact]},
                modified_at=at + timedelta(hours=2),
            )
        ] = name
    names[
        hub.create(
            "meetings",
            {
                "hs_createdate": iso(T + timedelta(minutes=5)),
                "hs_meeting_start_time": iso(T + timedelta(days=1)),
                "hs_meeting_outcome": "COMPLETED",
                "hubspot_owner_id": aiko,
            },
            associations={"contacts": [mio], "deals": [deal]},
            modified_at=T + timedelta(days=1, hours=1),
        )
    ] = "meeting"
    names[
        hub.create(
            "tasks",
            {
                "hs_createdate": iso(T),
                "hs_timestamp": iso(local_day(date(2024, 3, 5))),
                "hs_task_status": "COMPLETED",
                "hs_task_completion_date": iso(T + timedelta(days=1)),
                "hubspot_owner_id": aiko,
            },
            associations={"contacts": [ren]},
            modified_at=T + timedelta(days=1),
        )
    ] = "follow-up"
    return names


def salesforce_side(sf: SalesforceOrg) -> dict[str, str]:
    """The same week entered in Salesforce; returns Salesforce Id → the entity's name."""
    names: dict[str, str] = {}
    is_role = sf.create(
        "UserRole", {"Name": "Inside Sales"}, created_at=CREATED, modified_at=CREATED
    )
    field_role = sf.create(
        "UserRole", {"Name": "Field Sales"}, created_at=CREATED, modified_at=CREATED
    )
    aiko = sf.create(
        "User",
        {
            "FirstName": "Aiko",
            "LastName": "Tanaka",
            "Username": "a",
            "Email": "aiko@example.jp",
            "IsActive": True,
            "UserType": "Standard",
            "UserRoleId": is_role,
        },
        created_at=CREATED,
        modified_at=CREATED,
    )
    kenji = sf.create(
        "User",
        {
            "FirstName": "Kenji",
            "LastName": "Sato",
            "Username": "k",
            "Email": "kenji@example.jp",
            "IsActive": True,
            "UserType": "Standard",
            "UserRoleId": field_role,
        },
        created_at=CREATED,
        modified_at=CREATED,
    )
    names.update({is_role: "team IS", field_role: "team Field", aiko: "aiko", kenji: "kenji"})
    ren = sf.create(
        "Lead",
        {
            "LastName": "Ren",
            "Company": "Kawa",
            "LeadSource": "Trade Show",
            "NumberOfEmployees": 3000,
            "Status": "Working - Contacted",
            "OwnerId": aiko,
        },
        created_at=CREATED + timedelta(hours=1),
        modified_at=CREATED + timedelta(hours=1),
    )
    contact = sf.create("Contact", {"LastName": "Mio"}, created_at=T, modified_at=T)
    deal = sf.create(
        "Opportunity",
        {
            "Name": "Aozora",
            "StageName": "Closed Won",
            "Probability": 100.0,
            "CloseDate": date(2024, 3, 29),
            "Amount": 1500000.0,
            "OwnerId": kenji,
            "IS_Rep__c": aiko,
            "BANT_Budget__c": "Approved",
            "BANT_Authority__c": "CTO",
            "BANT_Need__c": "Pipeline visibility",
            "BANT_Timing__c": "This quarter",
            "Handoff_Rating__c": 4.0,
            "LeadSource": "Web",
            "ContactId": contact,
        },
        created_at=T + timedelta(hours=4),
        modified_at=T + timedelta(days=2),
    )
    mio = sf.create(
        "Lead",
        {
            "LastName": "Mio",
            "Company": "Aozora",
            "LeadSource": "Web",
            "Industry": "Technology",
            "NumberOfEmployees": 30,
            "Status": "Closed - Converted",
            "IsConverted": True,
            "ConvertedDate": date(2024, 3, 4),
            "ConvertedContactId": contact,
            "ConvertedOpportunityId": deal,
            "OwnerId": aiko,
        },
        created_at=CREATED,
        modified_at=T + timedelta(hours=5),
    )
    names.update({mio: "mio", ren: "ren", deal: "deal"})
    calls = [
        ("call connected", T, "Outbound", "Connected", 185, contact),  # logged on the Contact
        ("call inbound", T + timedelta(minutes=20), "Inbound", "No Answer", 0, ren),
        ("call busy", T + timedelta(minutes=40), None, "Busy", 0, ren),
    ]
    for name, at, kind, disposition, seconds, who in calls:
        names[
            sf.create(
                "Task",
                {
                    "TaskSubtype": "Call",
                    "Type": "Call",
                    "Status": "Completed",
                    "CallType": kind,
                    "CallDisposition": disposition,
                    "CallDurationInSeconds": seconds,
                    "CompletedDateTime": at,
                    "OwnerId": aiko,
                    "WhoId": who,
                },
                created_at=at,
                modified_at=at + timedelta(minutes=1),
            )
        ] = name
    emails = [
        ("email tracked", T + timedelta(hours=1), True, False, True, contact),
        ("email untracked", T + timedelta(hours=1, minutes=5), False, False, False, ren),
        ("email bounced", T + timedelta(hours=1, minutes=9), False, True, False, ren),
    ]
    for name, at, tracked, bounced, opened, who in emails:
        task = sf.create(
            "Task",
            {
                "TaskSubtype": "Email",
                "Type": "Email",
                "Status": "Completed",
                "CompletedDateTime": at,
                "OwnerId": aiko,
                "WhoId": who,
            },
            created_at=at,
            modified_at=at + timedelta(hours=2),
        )
        sf.create(
            "EmailMessage",
            {
                "ActivityId": task,
                "MessageDate": at,
                "Status": "3",
                "IsTracked": tracked,
                "IsBounced": bounced,
                "HasReply": False,
                "FirstOpenedDate": at + timedelta(minutes=30) if opened else None,
                "FirstLinkClickedDate": at + timedelta(minutes=31) if opened else None,
            },
            created_at=at,
            modified_at=at + timedelta(hours=2),
        )
        names[task] = name
    names[
        sf.create(
            "Event",
            {
                "StartDateTime": T + timedelta(days=1),
                "Meeting_Outcome__c": "Completed",
                "OwnerId": aiko,
                "WhoId": contact,
                "WhatId": deal,
            },
            created_at=T + timedelta(minutes=5),
            modified_at=T + timedelta(days=1, hours=1),
        )
    ] = "meeting"
    names[
        sf.create(
            "Task",
            {
                "TaskSubtype": "Task",
                "Type": "Other",
                "Status": "Completed",
                "ActivityDate": date(2024, 3, 5),
                "CompletedDateTime": T + timedelta(days=1),
                "OwnerId": aiko,
                "WhoId": ren,
            },
            created_at=T,
            modified_at=T + timedelta(days=1),
        )
    ] = "follow-up"
    return names


def patient_sync(engine: Engine, connector: Any, **options: Any) -> Any:
    """run_sync, waiting while another process syncs the same source (PostgreSQL's advisory
    lock is per source and database, so a HubSpot test running elsewhere can hold it)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return run_sync(engine, connector, **options)
        except SyncLocked:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def named_rows(engine: Engine, source: str, names: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every stored row of a source keyed by the entity's name, ids replaced by names."""
    out: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for model in CONTENT_TABLES:
            table = model.__table__
            for row in conn.execute(select(table).where(table.c.source == source)).mappings():
                values = {k: v for k, v in row.items() if k not in ("id", "synced_at", "source")}
                for key, value in values.items():
                    if (key.endswith("crm_id") or key == "user_id") and value is not None:
                        values[key] = names.get(value, f"unknown id {value}")
                if model is Team:
                    values.pop("modified_at")  # HubSpot's owner teams carry no timestamp
                if isinstance(values.get("amount"), Decimal):
                    values["amount"] = values["amount"].normalize()
                out[f"{table.name}:{values.pop('crm_id')}"] = values  # type: ignore[attr-defined]
    return out


def test_the_same_activity_in_both_crms_gives_identical_rows(
    engine: Engine, ca: trustme.CA
) -> None:
    hub = HubSpotPortal("hub-token", enforce_search_rate_limit=False)
    hub_names = hubspot_side(hub)
    sf = SalesforceOrg(clock=lambda: T + timedelta(days=3))
    sf_names = salesforce_side(sf)
    with serve_portal(hub) as portal, serve_org(sf, tls=ca) as served:
        hubspot = HubSpotConnector(
            "hub-token", host=portal.url, sleep=lambda _: None, searches_per_second=None
        )
        salesforce = Org(served, Clock(T)).connector(timezone=TOKYO)
        for connector in (hubspot, salesforce):  # both CRMs into one store
            report = patient_sync(engine, connector, clock=lambda: T + timedelta(days=3))
            assert report.status == "ok" and report.quarantined == 0, report.error
    hubspot_rows = named_rows(engine, "hubspot", hub_names)
    salesforce_rows = named_rows(engine, "salesforce", sf_names)
    assert set(hubspot_rows) == set(salesforce_rows)
    assert len(salesforce_rows) == 2 + 2 + 2 + 3 + 3 + 1 + 1 + 1
    for key, row in hubspot_rows.items():
        assert salesforce_rows[key] == row, key
    # Spot checks that the rows say what the week was.
    assert hubspot_rows["calls:call connected"]["contact_crm_id"] == "mio"
    assert salesforce_rows["emails:email tracked"]["opened"] is True
    assert salesforce_rows["deals:deal"]["probability"] == 1.0
    assert salesforce_rows["leads:mio"]["company_size"] == "10-49"
    assert salesforce_rows["follow_up_tasks:follow-up"]["status"] == "COMPLETED"
