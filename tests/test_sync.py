"""The sync end to end: the real HubSpot client against the simulated portal, into both stores.

Each test compares the store with what the portal holds (worked out from the
portal's own records), or with a clean run of the same data.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.orm import Session

from connectors.hubspot import HubSpotConnector
from kpi import KpiContext, compute
from models import (
    Call,
    DailyCalls,
    Deal,
    Email,
    FollowUpTask,
    ForecastSnapshot,
    Lead,
    Meeting,
    QuarantinedRecord,
    Rep,
    RollupDirtyDay,
    SyncRun,
    SyncState,
    Team,
)
from service.db import make_engine, migrate
from service.errors import SyncLocked
from service.sync.locks import source_lock
from service.sync.run import run_sync
from service.sync.scheduler import scheduled_sync
from simulators.hubspot.portal import HubSpotPortal, RunningPortal
from tests.support.hubspot import END, TOKEN, small_portal

TABLES = {
    "contacts": Lead,
    "calls": Call,
    "emails": Email,
    "meetings": Meeting,
    "tasks": FollowUpTask,
    "deals": Deal,
}
CONTENT_TABLES = (Team, Rep, Lead, Call, Email, Meeting, FollowUpTask, Deal)


@pytest.fixture
def portal() -> Iterator[RunningPortal]:
    with small_portal() as running:
        yield running


def connector(running: RunningPortal, **kwargs: Any) -> HubSpotConnector:
    return HubSpotConnector(TOKEN, host=running.url, sleep=lambda _: None, **kwargs)


def count(engine: Engine, model: Any, **where: Any) -> int:
    query = select(func.count()).select_from(model)
    for column, value in where.items():
        query = query.where(getattr(model, column) == value)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def snapshot(engine: Engine) -> dict[str, set[tuple[Any, ...]]]:
    """Every stored record's content, without the store's own bookkeeping columns."""
    out: dict[str, set[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for model in CONTENT_TABLES:
            table = model.__table__
            columns = [c for c in table.columns if c.name not in ("id", "synced_at")]  # type: ignore[attr-defined]
            rows = conn.execute(select(*columns)).all()
            out[table.name] = {tuple(row) for row in rows}  # type: ignore[attr-defined]
            assert len(rows) == len(out[table.name]), f"duplicates in {table.name}"  # type: ignore[attr-defined]
    return out


def assert_store_matches_portal(engine: Engine, hub: HubSpotPortal) -> None:
    for object_type, model in TABLES.items():
        live, archived = hub.count(object_type), hub.count(object_type, archived=True)
        assert count(engine, model, deleted=False) == live, object_type
        assert count(engine, model, deleted=True) == archived, object_type


def test_first_sync_stores_every_record_once(engine: Engine, portal: RunningPortal) -> None:
    report = run_sync(engine, connector(portal))
    assert report.status == "ok", report.error
    assert_store_matches_portal(engine, portal.portal)
    # Two inside-sales teams and the field-sales team; every live owner is a live rep.
    assert count(engine, Team) == 3
    assert count(engine, Rep, deleted=False) == len(portal.portal.owner_ids())
    assert count(engine, Rep, deleted=True) == len(portal.portal.owner_ids(archived=True))
    # Activities reach their rep and their lead.
    with engine.connect() as conn:
        orphans = conn.execute(
            select(func.count()).select_from(Call).where(Call.rep_crm_id.is_(None))
        ).scalar_one()
        linked = conn.execute(
            select(func.count()).select_from(Call).where(Call.contact_crm_id.is_not(None))
        ).scalar_one()
    assert orphans == 0
    assert linked == count(engine, Call)
    run = only(engine, SyncRun)
    assert run.status == "ok" and run.finished_at is not None
    assert run.records == report.records
    assert run.api_calls == report.api_calls > 0
    assert sum(run.records.values()) >= sum(hub_total(portal.portal).values())


def only(engine: Engine, model: Any) -> Any:
    """The one row of a table, as an ORM object."""
    with Session(engine) as session:
        return session.scalars(select(model)).one()


def hub_total(hub: HubSpotPortal) -> dict[str, int]:
    return {t: hub.count(t) + hub.count(t, archived=True) for t in TABLES}


def test_rerunning_a_full_sync_never_duplicates(engine: Engine, portal: RunningPortal) -> None:
    run_sync(engine, connector(portal))
    first = snapshot(engine)
    report = run_sync(engine, connector(portal), full=True)
    assert report.status == "ok"
    assert snapshot(engine) == first


def test_incremental_sync_picks_up_created_modified_and_archived(
    engine: Engine, portal: RunningPortal
) -> None:
    hub = portal.portal
    run_sync(engine, connector(portal))
    owner = hub.owner_ids()[0]
    contact = hub.ids("contacts")[0]
    now = datetime.now(UTC)
    new_call = hub.create(
        "calls",
        {
            "hs_timestamp": "2026-10-30T01:00:00.000Z",
            "hs_call_direction": "OUTBOUND",
            "hs_call_disposition": "f240bbac-87c9-4f6e-bf70-924b57d47db7",
            "hs_call_status": "COMPLETED",
            "hs_call_duration": "61000",
            "hubspot_owner_id": owner,
        },
        associations={"contacts": [contact]},
        modified_at=now,
    )
    changed_call = hub.ids("calls")[3]
    hub.update("calls", changed_call, {"hs_call_duration": "59999"}, modified_at=now)
    gone_call = hub.ids("calls")[5]
    hub.archive("calls", gone_call, at=now)

    before = len(hub.request_log)
    report = run_sync(engine, connector(portal))
    assert report.status == "ok", report.error
    assert_store_matches_portal(engine, hub)
    with Session(engine) as session:
        rows = {
            r.crm_id: r
            for r in session.scalars(
                select(Call).where(Call.crm_id.in_([new_call, changed_call, gone_call]))
            )
        }
    assert rows[new_call].outcome == "connected" and rows[new_call].contact_crm_id == contact
    assert rows[new_call].duration_ms == 61_000
    assert rows[changed_call].duration_ms == 59_999
    assert rows[gone_call].deleted is True
    # Only the changes were fetched: far fewer requests than a full pass.
    incremental_requests = len(hub.request_log) - before
    assert incremental_requests < 40, hub.request_log[before:]


def test_quarantine_keeps_the_bad_record_and_the_sync_goes_on(
    engine: Engine, portal: RunningPortal
) -> None:
    hub = portal.portal
    bad = hub.ids("calls")[2]
    hub.faults.malformed[("calls", bad)] = {"hs_timestamp": "not-a-date"}
    report = run_sync(engine, connector(portal))
    assert report.status == "ok"
    assert report.quarantined == 1
    assert count(engine, Call) == hub_total(hub)["calls"] - 1
    q = only(engine, QuarantinedRecord)
    assert (q.source, q.stream, q.crm_id) == ("hubspot", "calls", bad)
    assert "hs_timestamp" in q.reason
    assert q.payload["properties"]["hs_timestamp"] == "not-a-date"
    # Fixed in the CRM: the next sync stores it and releases it from quarantine.
    del hub.faults.malformed[("calls", bad)]
    hub.update("calls", bad, {"hs_call_status": "COMPLETED"}, modified_at=datetime.now(UTC))
    run_sync(engine, connector(portal))
    assert count(engine, QuarantinedRecord) == 0
    assert count(engine, Call) == hub_total(hub)["calls"]


def test_rate_limits_and_server_errors_lose_nothing(engine: Engine, portal: RunningPortal) -> None:
    hub = portal.portal
    hub.faults.rate_limit_every = 3
    hub.faults.server_error_every = 7
    report = run_sync(engine, connector(portal))
    assert report.status == "ok", report.error
    assert_store_matches_portal(engine, hub)
    assert snapshot(engine)["calls"]


def test_bad_token_fails_the_run_with_a_clear_message(
    engine: Engine, portal: RunningPortal
) -> None:
    report = run_sync(engine, HubSpotConnector("wrong-secret-token", host=portal.url))
    assert report.status == "failed"
    assert report.error is not None and "401" in report.error or "token" in (report.error or "")
    assert "wrong-secret-token" not in (report.error or "")
    run = only(engine, SyncRun)
    assert run.status == "failed" and run.error == report.error


def test_a_second_sync_of_the_same_source_is_refused_while_one_runs(
    engine: Engine, portal: RunningPortal
) -> None:
    with source_lock(engine, "hubspot"):
        with pytest.raises(SyncLocked):
            run_sync(engine, connector(portal))
        scheduled_sync(engine, lambda: [connector(portal)])  # skipped, not raised
    assert count(engine, SyncRun) == 0
    scheduled_sync(engine, lambda: [connector(portal)])
    run = only(engine, SyncRun)
    assert (run.trigger, run.status) == ("nightly", "ok")


# --- a sync killed with SIGKILL resumes without loss or duplicates ---------------------------


def database_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def sync_process(url: str, portal_url: str, env_extra: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ISKPI_DATABASE_URL": url,
        "ISKPI_HUBSPOT_ACCESS_TOKEN": TOKEN,
        "ISKPI_HUBSPOT_BASE_URL": portal_url,
        **env_extra,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "service", "sync", "--source", "hubspot"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_kill_mid_sync_then_resume_equals_a_clean_run(
    engine: Engine, portal: RunningPortal, tmp_path: Path
) -> None:
    hub = portal.portal
    clean = make_engine(f"sqlite:///{tmp_path / 'clean.db'}")
    migrate(clean)
    run_sync(clean, connector(portal))
    expected = snapshot(clean)

    url = database_url(engine)
    env_extra: dict[str, str] = {}
    if engine.dialect.name == "postgresql":
        schema = engine.dialect.default_schema_name
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        env_extra["PGOPTIONS"] = f"-csearch_path={schema}"
    hub.faults.delay_seconds = 0.01
    kills = 0
    for stop_after in (5, 25, 60):
        start = len(hub.request_log)
        proc = sync_process(url, portal.url, env_extra)
        while proc.poll() is None and len(hub.request_log) - start < stop_after:
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
    assert kills >= 2, "the sync finished before it could be killed"
    hub.faults.delay_seconds = 0.0
    proc = sync_process(url, portal.url, env_extra)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert snapshot(engine) == expected
    with engine.connect() as conn:
        statuses = conn.execute(select(SyncRun.status).order_by(SyncRun.id)).scalars().all()
        streams = conn.execute(select(func.count()).select_from(SyncState)).scalar_one()
    assert statuses[-1] == "ok"
    assert statuses[:kills] == ["failed"] * kills  # the killed runs, marked interrupted
    assert streams == len(TABLES) + 3  # owners and the two call-list streams too
    clean.dispose()


def test_sync_keeps_kpi_rollups_equal_to_raw_rows_and_snapshots_the_forecast(
    engine: Engine, portal: RunningPortal
) -> None:
    hub = portal.portal
    ctx = KpiContext(timezone="Asia/Tokyo", now=END)
    assert run_sync(engine, connector(portal), kpi=ctx).status == "ok"
    now = datetime.now(UTC)
    for call in hub.ids("calls")[:40:4]:
        hub.update("calls", call, {"hs_call_duration": "59999"}, modified_at=now)
    hub.archive("calls", hub.ids("calls")[50], at=now)
    assert run_sync(engine, connector(portal), kpi=ctx).status == "ok"
    with engine.connect() as conn:
        dirty = conn.execute(select(func.count()).select_from(RollupDirtyDay)).scalar_one()
        rollup_rows = conn.execute(select(func.count()).select_from(DailyCalls)).scalar_one()
        snapshots = conn.execute(select(func.count()).select_from(ForecastSnapshot)).scalar_one()
    assert dirty == 0  # every touched day was recomputed at the end of the run
    assert rollup_rows > 0 and snapshots > 0
    window = {"grain": "day", "start": date(2026, 10, 1), "end": date(2026, 10, 31), "scope": "rep"}
    from_rollups = compute(engine, ctx, **window)  # type: ignore[arg-type]
    from_raw = compute(engine, ctx, use_rollups=False, **window)  # type: ignore[arg-type]
    assert from_rollups == from_raw
    calls = sum(r.value or 0 for r in from_rollups if r.kpi == "calls")
    with engine.connect() as conn:
        outbound = conn.execute(
            select(func.count())
            .select_from(Call)
            .where(Call.deleted.is_(False), Call.direction == "outbound")
            .where(Call.occurred_at >= datetime(2026, 9, 30, 15, tzinfo=UTC))
            .where(Call.occurred_at < datetime(2026, 10, 31, 15, tzinfo=UTC))
            .where(Call.rep_crm_id.in_(select(Rep.crm_id).where(Rep.deleted.is_(False))))
        ).scalar_one()
    assert calls == outbound > 0


def test_a_run_that_changed_nothing_keeps_today_s_forecast_snapshot(
    engine: Engine, portal: RunningPortal
) -> None:
    hub = portal.portal
    ctx = KpiContext(timezone="Asia/Tokyo", now=END)
    snapshots: list[str] = []

    def count(*args: Any) -> None:
        if args[2].startswith("INSERT INTO kpi_forecast_snapshots"):
            snapshots.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert run_sync(engine, connector(portal), kpi=ctx).status == "ok"
        assert len(snapshots) == 1
        assert run_sync(engine, connector(portal), kpi=ctx).status == "ok"
        assert len(snapshots) == 1  # nothing changed: today's snapshot of the same data stands
        call = hub.ids("calls")[0]
        hub.update("calls", call, {"hs_call_duration": "59999"}, modified_at=datetime.now(UTC))
        assert run_sync(engine, connector(portal), kpi=ctx).status == "ok"
        assert len(snapshots) == 2  # a changed call: taken again
    finally:
        event.remove(engine, "before_cursor_execute", count)
