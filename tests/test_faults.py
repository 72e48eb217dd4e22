"""Faults during a sync, each against a clean run of the same data, on both CRMs and both engines.

Every test first takes the baseline: a clean sync of the unchanged simulated CRM into the same
engine (taken once per CRM and engine, then the store is emptied). After the fault and the
re-runs it compares the store with the baseline row for row (every content column of every
record: nothing lost, nothing duplicated, nothing stale) and the KPIs: ``kpi.compute`` over the
data's months, every KPI, rep scope, from the daily rollups the sync keeps and from the raw rows,
must both equal the baseline's rows.

Faults: a rate-limit storm (HubSpot: every third request answers 429; Salesforce, which never
answers 429, refuses every third with 403 REQUEST_LIMIT_EXCEEDED), 5xx bursts (short ones the
connector retries, and one longer than its retries, which fails a stream until the next run),
``iskpi sync`` killed with SIGKILL at random points then run again (ISKPI_FAULT_SEED moves
them), the database connection lost mid-page (PostgreSQL: the backend terminated, and the sync
lock's connection too; SQLite: a write failing), an access token expiring mid-sync, and
records created, modified and deleted in the CRM while a sync runs.

Time is scaled down so the suite stays CI-sized, and the figures say so: the storm's "minute" is
``STORM_SECONDS``, and the portal's rate-limit window (the ``X-HubSpot-RateLimit-Interval-
Milliseconds`` the connector waits after a 429) is ``WINDOW_MS`` instead of ten seconds.

With ``ISKPI_FAULT_REPORT`` set to a file, each test appends its figures as a JSON line (fault,
CRM, engine, times injected, records lost, records duplicated, KPI differences);
``bench/fault_bench.py`` runs this module so and prints the README's table.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trustme
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Connection, Engine, event, func, inspect, select, text
from sqlalchemy.engine.interfaces import DBAPICursor, ExecutionContext

from connectors.base import SourceConnector
from connectors.hubspot import HubSpotConnector
from kpi import KpiContext, KpiRow, compute
from models import (
    Call,
    Deal,
    Email,
    FollowUpTask,
    Lead,
    Meeting,
    Rep,
    SyncRun,
    SyncState,
    Team,
)
from models.credentials import CREDENTIALS_SOURCE
from service.app import create_app
from service.db import MIGRATIONS, make_engine
from service.errors import SyncLocked
from service.settings import Settings
from service.sync import sources
from service.sync.locks import SourceLock, _advisory_key, source_lock
from service.sync.run import SyncReport, run_sync
from service.sync.sources import build_connectors
from simulators.hubspot.portal import HubSpotPortal, RunningPortal, serve_portal
from simulators.hubspot.seed import generate_dataset
from simulators.salesforce.org import SalesforceOrg, serve_org
from simulators.salesforce.seed import generate_org_dataset
from tests.support.db import POSTGRES_URL, truncate
from tests.support.salesforce import Clock, Org, ca

__all__ = ["ca"]

TOKEN = "fault-test-token"
END = datetime(2026, 10, 31, 12, tzinfo=UTC)
SF_RUN = END + timedelta(hours=1)  # the Salesforce runs' `until` (the org's clock is fixed)
TIMEZONE = "Asia/Tokyo"
TOKYO = ZoneInfo(TIMEZONE)
CTX = KpiContext(timezone=TIMEZONE, now=END)
KPI_MONTHS = (date(2026, 9, 1), date(2026, 11, 30))  # the data's month, with a month each side
CONTENT_TABLES = (Team, Rep, Lead, Call, Email, Meeting, FollowUpTask, Deal)
CRMS = ("hubspot", "salesforce")

STORM_SECONDS = 3.0  # the rate-limit storm's "minute", scaled down
WINDOW_MS = 20  # the portal's rolling window: what the connector waits after each 429
KILLS_PER_RUN = 5  # SIGKILLs per CRM and engine: 20 in all
KILL_SEED = int(os.environ.get("ISKPI_FAULT_SEED", "8"))


def no_sleep(_seconds: float) -> None:
    """Retry back-offs cost nothing in tests (they are counted, not waited)."""


# --- the two simulated CRMs behind one interface ----------------------------------------------


class Side:
    """A served simulated CRM: connectors to it, its fault plan, its clock, changes to it."""

    name: str
    source: str

    def connector(
        self,
        *,
        on_request: Callable[[], None] | None = None,
        sleep: Callable[[float], None] = no_sleep,
        oauth: bool = False,
    ) -> SourceConnector:
        raise NotImplementedError

    def until(self) -> datetime:
        """The clock the runs use (a fixed one for Salesforce, whose org clock is fixed too)."""
        return datetime.now(UTC)

    def requests(self) -> int:
        raise NotImplementedError

    def slow(self, seconds: float) -> None:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        """What `iskpi sync` needs in its environment to reach this CRM."""
        raise NotImplementedError

    def change(self, round_: int) -> int:
        """Create, modify and delete records now (round 0, 1, 2…); returns the changes made."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class HubSpotSide(Side):
    name = source = "hubspot"

    def __init__(self) -> None:
        self.portal = HubSpotPortal(TOKEN)
        self.portal.load(
            generate_dataset(
                seed=11, teams=2, reps_per_team=2, months=1, end=END, calls_per_rep_day=12
            )
        )
        self.running: RunningPortal = serve_portal(self.portal)
        self.made: list[str] = []  # contacts made by change()

    def connector(
        self,
        *,
        on_request: Callable[[], None] | None = None,
        sleep: Callable[[float], None] = no_sleep,
        oauth: bool = False,
    ) -> SourceConnector:
        return HubSpotConnector(TOKEN, host=self.running.url, sleep=sleep, on_request=on_request)

    def requests(self) -> int:
        return len(self.portal.request_log)

    def slow(self, seconds: float) -> None:
        self.portal.faults.delay_seconds = seconds

    def env(self) -> dict[str, str]:
        return {"ISKPI_HUBSPOT_ACCESS_TOKEN": TOKEN, "ISKPI_HUBSPOT_BASE_URL": self.running.url}

    def change(self, round_: int) -> int:
        hub = self.portal
        calls, contacts, deals = hub.ids("calls"), hub.ids("contacts"), hub.ids("deals")
        owner = hub.owner_ids()[round_ % 2]
        at = datetime.now(UTC)
        for n in range(2):
            hub.create(
                "calls",
                {
                    "hs_timestamp": f"2026-10-{20 + round_:02d}T0{n + 1}:00:00.000Z",
                    "hs_call_direction": "OUTBOUND",
                    "hs_call_disposition": "f240bbac-87c9-4f6e-bf70-924b57d47db7",
                    "hs_call_status": "COMPLETED",
                    "hs_call_duration": str(61_000 + 1000 * n),
                    "hubspot_owner_id": owner,
                },
                associations={"contacts": [contacts[round_]]},
            )
        # One early record (its page was read already) and one late one (not read yet).
        hub.update("calls", calls[round_], {"hs_call_duration": "59999"})
        hub.update("calls", calls[-1 - round_], {"hs_call_disposition": ""})
        hub.archive("calls", calls[10 + round_], at=at)
        hub.update("contacts", contacts[-1 - round_], {"hs_analytics_source": "OFFLINE"})
        hub.update("deals", deals[round_], {"dealstage": "closedwon", "amount": "123456"})
        # A lead that nothing links to (the one the previous round made): deleting a record
        # others link to is another matter (see the README's notes).
        if self.made:
            hub.archive("contacts", self.made[-1], at=at)
        self.made.append(
            hub.create("contacts", {"createdate": "2026-10-20T00:00:00.000Z", "industry": "x"})
        )
        return 9 if round_ else 8

    def stop(self) -> None:
        self.running.stop()


class SalesforceSide(Side):
    name = source = "salesforce"

    def __init__(self, tls: trustme.CA) -> None:
        clock = Clock(SF_RUN)
        org = SalesforceOrg(clock=clock)
        org.load(
            generate_org_dataset(
                seed=11, teams=2, reps_per_team=2, months=1, end=END, calls_per_rep_day=12
            )
        )
        self.served = Org(serve_org(org, tls=tls), clock)
        self.run_at = SF_RUN
        self.app = self.served.oauth()  # a connected app, for the refresh path
        self.made: list[str] = []  # leads made by change()

    @property
    def org(self) -> SalesforceOrg:
        return self.served.org

    def connector(
        self,
        *,
        on_request: Callable[[], None] | None = None,
        sleep: Callable[[float], None] = no_sleep,
        oauth: bool = False,
    ) -> SourceConnector:
        # Pages of 200 (the smallest Salesforce allows): more pages, more points to fail at.
        options: dict[str, Any] = {
            "page_size": 200,
            "store_page_size": 200,
            "timezone": TOKYO,
            "sleep": sleep,
            "on_request": on_request,
        }
        if oauth:  # an access token that expires, and the connected app to refresh it
            options["oauth"] = self.app
            options["session_id"] = self.org.issue_session()
        return self.served.connector(**options)

    def until(self) -> datetime:
        return self.run_at

    def requests(self) -> int:
        return len(self.org.request_log)

    def slow(self, seconds: float) -> None:
        self.org.faults.delay_seconds = seconds

    def env(self) -> dict[str, str]:
        return {
            "ISKPI_SALESFORCE_INSTANCE_URL": self.served.url,
            "ISKPI_SALESFORCE_SESSION_ID": self.org.issue_session(),
            "REQUESTS_CA_BUNDLE": self.served.ca_bundle,
        }

    def change(self, round_: int) -> int:
        sf = self.org
        clock = self.served.clock
        # Half the changes carry a SystemModstamp from before the run began (a transaction
        # that committed late: the lookback's reason), half one from after.
        if round_ % 2 == 0:
            clock.now = SF_RUN - timedelta(seconds=5)
        else:
            clock.now = SF_RUN + timedelta(seconds=30 * round_)
        tasks = sf.ids("Task")
        calls = [t for t in tasks if sf.get("Task", t)["TaskSubtype"] == "Call"]
        users = [u for u in sf.ids("User") if sf.get("User", u)["UserType"] == "Standard"]
        leads, deals = sf.ids("Lead"), sf.ids("Opportunity")
        for n in range(2):
            sf.create(
                "Task",
                {
                    "TaskSubtype": "Call",
                    "Type": "Call",
                    "Status": "Completed",
                    "CallType": "Outbound",
                    "CallDisposition": "Connected",
                    "CallDurationInSeconds": 61 + n,
                    "CompletedDateTime": datetime(2026, 10, 20 + round_, 1 + n, tzinfo=UTC),
                    "OwnerId": users[round_ % len(users)],
                    "WhoId": leads[round_],
                },
            )
        sf.update("Task", calls[round_], {"CallDurationInSeconds": 59})
        sf.update("Task", calls[-1 - round_], {"CallDisposition": "Busy"})
        sf.delete("Task", calls[10 + round_])
        sf.update("Lead", leads[-1 - round_], {"LeadSource": "Offline"})
        sf.update("Opportunity", deals[round_], {"StageName": "Closed Won", "Amount": 123456.0})
        # A lead that nothing links to (the one the previous round made).
        if self.made:
            sf.delete("Lead", self.made[-1])
        self.made.append(sf.create("Lead", {"LastName": f"New {round_}", "Company": "Kawa"}))
        clock.now = SF_RUN
        return 9 if round_ else 8

    def stop(self) -> None:
        self.served.running.stop()


@pytest.fixture(params=CRMS)
def side(request: pytest.FixtureRequest) -> Iterator[Side]:
    """A freshly loaded simulated CRM, served on loopback."""
    made: Side = (
        HubSpotSide()
        if request.param == "hubspot"
        else SalesforceSide(request.getfixturevalue("ca"))
    )
    try:
        yield made
    finally:
        made.stop()


def sync(engine: Engine, side: Side, connector: SourceConnector | None = None) -> SyncReport:
    """One run as `iskpi sync` runs it: the KPI rollups kept, the forecast snapshot stored."""
    connector = connector or side.connector()
    return run_sync(engine, connector, kpi=CTX, clock=side.until)


# --- the baseline and the comparison ------------------------------------------------------------


Rows = dict[str, list[tuple[Any, ...]]]


def store_rows(engine: Engine, source: str) -> Rows:
    """Every stored record of a source, without the store's own bookkeeping columns."""
    out: Rows = {}
    with engine.connect() as conn:
        for model in CONTENT_TABLES:
            table = model.__table__
            # (source, crm_id) first: the record's key, then its content.
            columns = [table.c.source, table.c.crm_id] + [
                c for c in table.columns if c.name not in ("id", "synced_at", "source", "crm_id")
            ]
            rows = conn.execute(select(*columns).where(table.c.source == source))
            out[model.__tablename__] = [tuple(row) for row in rows]
    return out


def kpi_rows(engine: Engine, *, use_rollups: bool = True) -> list[KpiRow]:
    start, end = KPI_MONTHS
    return compute(
        engine, CTX, grain="month", start=start, end=end, scope="rep", use_rollups=use_rollups
    )


@dataclass(frozen=True)
class Baseline:
    rows: Rows
    kpis: list[KpiRow]


_baselines: dict[tuple[str, str], Baseline] = {}


def baseline(engine: Engine, side: Side) -> Baseline:
    """The store and KPIs after one clean run of the unchanged data (once per CRM and engine)."""
    key = (side.name, engine.dialect.name)
    if key not in _baselines:
        report = sync(engine, side)
        assert report.status == "ok", report.error
        _baselines[key] = Baseline(store_rows(engine, side.source), kpi_rows(engine))
        empty(engine)
    return _baselines[key]


def empty(engine: Engine) -> None:
    """Empty the store (every table), as before any sync."""
    if engine.dialect.name == "postgresql":
        truncate(engine)
        return
    from models import Base

    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@dataclass(frozen=True)
class Outcome:
    lost: int  # baseline records whose exact content is not in the store (missing or stale)
    duplicated: int  # store rows beyond one per record, plus rows the baseline does not have
    kpi_differences: int  # KPI rows (from rollups, and from raw rows) unlike the baseline's


def key_of(table: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    # (source, crm_id) lead every row of store_rows.
    return (table, row[0], row[1])


def compare(engine: Engine, source: str, base: Baseline) -> Outcome:
    got = store_rows(engine, source)
    lost = duplicated = 0
    for table, rows in base.rows.items():
        have = got[table]
        lost += len(set(rows) - set(have))
        keys = [key_of(table, row) for row in have]
        known = {key_of(table, row) for row in rows}
        duplicated += len(keys) - len(set(keys)) + sum(k not in known for k in set(keys))
    differences = 0
    for kpis in (kpi_rows(engine), kpi_rows(engine, use_rollups=False)):
        differences += sum(a != b for a, b in zip(kpis, base.kpis, strict=False))
        differences += abs(len(kpis) - len(base.kpis))
    return Outcome(lost, duplicated, differences)


def assert_same_as(engine: Engine, side: Side, base: Baseline) -> Outcome:
    """The store equals the baseline row for row, and the KPIs equal its KPIs."""
    outcome = compare(engine, side.source, base)
    got = store_rows(engine, side.source)
    for table, rows in base.rows.items():
        assert sorted(map(repr, got[table])) == sorted(map(repr, rows)), table
    assert kpi_rows(engine) == base.kpis
    assert outcome == Outcome(0, 0, 0)
    return outcome


def record(fault: str, side: Side, engine: Engine, injected: int, outcome: Outcome) -> None:
    """Append this test's figures to ISKPI_FAULT_REPORT, when set (for bench/fault_bench.py)."""
    path = os.environ.get("ISKPI_FAULT_REPORT")
    if not path:
        return
    line = {
        "fault": fault,
        "crm": side.name,
        "engine": engine.dialect.name,
        "injected": injected,
        "lost": outcome.lost,
        "duplicated": outcome.duplicated,
        "kpi_differences": outcome.kpi_differences,
    }
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


def runs(engine: Engine, source: str) -> list[tuple[str, str | None]]:
    with engine.connect() as conn:
        return [
            (status, error)
            for status, error in conn.execute(
                select(SyncRun.status, SyncRun.error)
                .where(SyncRun.source == source)
                .order_by(SyncRun.id)
            )
        ]


class AtCalls:
    """An ``on_request`` hook: runs ``action(n)`` just before the connector's nth request."""

    def __init__(self, actions: dict[int, Callable[[], object]]) -> None:
        self.actions = actions
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        action = self.actions.get(self.calls)
        if action is not None:
            action()


# --- a rate-limit storm -----------------------------------------------------------------------


def test_a_rate_limit_storm_loses_nothing(engine: Engine, side: Side) -> None:
    base = baseline(engine, side)
    if isinstance(side, HubSpotSide):
        hub = side.portal
        hub.burst_interval_ms = WINDOW_MS
        hub.faults.rate_limit_every = 3
        hub.faults.rate_limit_for_seconds = STORM_SECONDS
        waits: list[float] = []

        def wait(seconds: float) -> None:
            waits.append(seconds)
            time.sleep(seconds)

        report = sync(engine, side, side.connector(sleep=wait))
        assert report.status == "ok", report.error
        injected = hub.faults.injected
        # The connector waited as the portal said (its window, plus up to 10% jitter), once per 429.
        # At most every third request was refused; how many were depends on how much of the
        # sync fell inside the storm (wall time), so only the bound is exact.
        assert len(waits) == injected > 5
        assert injected <= report.api_calls // 3 + 1
        assert all(WINDOW_MS / 1000 <= w <= 1.1 * WINDOW_MS / 1000 for w in waits), waits
    else:
        assert isinstance(side, SalesforceSide)
        plan = side.org.faults
        plan.request_limit_every = 3
        plan.request_limit_for_seconds = STORM_SECONDS / 2
        # Salesforce's storm is 403 REQUEST_LIMIT_EXCEEDED ConcurrentPerOrgLongTxn, not the daily
        # quota: each refusal is retried after a backoff, and the one run goes through.
        sf_waits: list[float] = []
        report = sync(engine, side, side.connector(sleep=sf_waits.append))
        assert report.status == "ok", report.error
        injected = plan.injected
        assert len(sf_waits) == injected > 1  # every refusal of the storm waited once
        assert injected <= report.api_calls // 3 + 1  # at most every third request refused
        assert all(0 < w <= 30 for w in sf_waits)
        assert [status for status, _ in runs(engine, side.source)][-1] == "ok"
    record("rate-limit storm", side, engine, injected, assert_same_as(engine, side, base))


# --- 5xx bursts -------------------------------------------------------------------------------


def test_server_error_bursts_lose_nothing(engine: Engine, side: Side) -> None:
    base = baseline(engine, side)
    plan = side.portal.faults if isinstance(side, HubSpotSide) else side.org.faults  # type: ignore[attr-defined]

    def burst(n: int) -> Callable[[], None]:
        def arm() -> None:
            plan.server_error_burst = n

        return arm

    # Bursts of 2 to 5 are retried within the request; one of 7 outlasts the connector's six
    # retries, so its stream fails this run (partial) and the next run resumes it.
    hook = AtCalls({2: burst(2), 6: burst(5), 14: burst(7), 24: burst(3), 30: burst(4)})
    first = sync(engine, side, side.connector(on_request=hook))
    assert first.status == "partial", first.error
    assert first.error is not None and "503" in first.error
    injected = plan.injected
    assert injected == 2 + 5 + 7 + 3 + 4
    second = sync(engine, side)
    assert second.status == "ok", second.error
    record("5xx bursts", side, engine, injected, assert_same_as(engine, side, base))


# --- SIGKILL at random points, then `iskpi sync` again -----------------------------------------


def sync_process(
    engine: Engine, side: Side, env_of_side: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISKPI_")}
    env.update(side.env() if env_of_side is None else env_of_side)
    env["ISKPI_DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    env["ISKPI_TIMEZONE"] = TIMEZONE
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        env["PGOPTIONS"] = f"-csearch_path={schema}"
    return subprocess.Popen(
        [sys.executable, "-m", "service", "sync", "--source", side.source],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def last_cursor_save(engine: Engine) -> Any:
    """When a page was last stored (its cursor saved with it), to see pages land."""
    with engine.connect() as conn:
        return conn.execute(select(func.max(SyncState.updated_at))).scalar()


def test_sigkill_at_random_points_then_a_rerun_equals_a_clean_run(
    engine: Engine, side: Side
) -> None:
    base = baseline(engine, side)
    before = side.requests()
    sync(engine, side)  # how many requests a whole first sync makes
    whole = side.requests() - before
    empty(engine)
    rng = random.Random(f"{KILL_SEED}-{side.name}-{engine.dialect.name}")
    side.slow(0.01)  # time enough for a kill to land between a request and its page's commit
    kills = attempts = 0
    points: list[str] = []
    while kills < KILLS_PER_RUN:
        attempts += 1
        assert attempts <= 3 * KILLS_PER_RUN, points
        started, stored = side.requests(), last_cursor_save(engine)
        proc = sync_process(engine, side)
        if rng.random() < 0.5:
            # Mid-request: n requests into the run, then up to 15 ms more.
            n = rng.randint(1, max(2, whole // KILLS_PER_RUN))
            points.append(f"request {n}")
            while proc.poll() is None and side.requests() - started < n:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.015))
        else:
            # Right after a page's commit (the next one fetched ahead, not stored yet).
            n = rng.randint(1, 5)
            points.append(f"page {n}")
            for _ in range(n):
                while proc.poll() is None and last_cursor_save(engine) == stored:
                    time.sleep(0.001)
                stored = last_cursor_save(engine)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            # It finished first: start again from an empty store, to kill a first sync again.
            points[-1] += " (finished)"
            empty(engine)
    side.slow(0.0)
    proc = sync_process(engine, side)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-3000:]
    statuses = runs(engine, side.source)
    assert statuses[-1][0] == "ok"
    assert set(statuses[:-1]) == {("failed", "interrupted")}, points
    print(f"killed at {', '.join(points)}")
    record("SIGKILL mid-sync, then rerun", side, engine, kills, assert_same_as(engine, side, base))


# --- the database connection dropped mid-page -----------------------------------------------------


def terminate(pid: int) -> None:
    admin = make_engine(POSTGRES_URL)
    try:
        with admin.connect() as conn:
            # Waits (up to 5 s) until the backend is gone.
            stopped = conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            assert stopped.scalar()
    finally:
        admin.dispose()


class FailAt:
    """Make the nth statement holding ``prefix`` fail as a dropped connection would.

    PostgreSQL: its backend is terminated (pg_terminate_backend from another connection) just
    before the statement is sent. SQLite has no server to lose: the statement raises the
    driver's OperationalError instead (a write failing mid-page, as on a full or lost disk).
    """

    def __init__(self, prefix: str, nth: int) -> None:
        self.prefix = prefix
        self.nth = nth
        self.seen = 0
        self.done = False

    def __call__(
        self,
        conn: Connection,
        cursor: DBAPICursor,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        # "Holding": on PostgreSQL a page's rows move from their stage table in a statement
        # that opens with its WITH clause.
        if self.done or self.prefix not in statement.upper():
            return
        self.seen += 1
        if self.seen != self.nth:
            return
        self.done = True
        raw = conn.connection.dbapi_connection
        if conn.dialect.name == "postgresql":
            terminate(raw.info.backend_pid)  # type: ignore[union-attr]
        else:
            raise sqlite3.OperationalError("disk I/O error (injected)")


def slow_cursor_saves(
    conn: Connection,
    cursor: DBAPICursor,
    statement: str,
    parameters: Any,
    context: ExecutionContext | None,
    executemany: bool,
) -> None:
    """Store pages slower than the next is fetched (a busy database): the prefetch runs ahead.

    The wait is before a page's cursor is serialized (its quarantine release comes just before).
    """
    if statement.lstrip().upper().startswith("DELETE FROM QUARANTINE"):
        time.sleep(0.03)


def lock_holder(engine: Engine, source: str) -> int:
    """The backend holding the source's sync lock (a session advisory lock)."""
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        key = _advisory_key(schema, source) & 0xFFFF_FFFF_FFFF_FFFF
        pid = conn.execute(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid::bigint = :high AND objid::bigint = :low AND objsubid = 1"
            ),
            {"high": key >> 32, "low": key & 0xFFFF_FFFF},
        ).scalar_one()
    return int(pid)


def test_the_database_connection_dropped_mid_page_then_a_rerun_equals_a_clean_run(
    engine: Engine, side: Side
) -> None:
    base = baseline(engine, side)
    # 1. Inside a page's transaction, right before its calls are upserted (the KPI rollups'
    #    look-up of the page already ran in it): the whole page must roll back.
    # 2. At the last statement of a later page's transaction (its cursor being saved).
    injected = 0
    for prefix, nth in (("INSERT INTO CALLS", 2), ("INSERT INTO SYNC_STATE", 4)):
        hook = FailAt(prefix, nth)
        event.listen(engine, "before_cursor_execute", hook)
        event.listen(engine, "before_cursor_execute", slow_cursor_saves)
        try:
            report = sync(engine, side)
        finally:
            event.remove(engine, "before_cursor_execute", hook)
            event.remove(engine, "before_cursor_execute", slow_cursor_saves)
        assert hook.done
        injected += 1
        assert report.status == "failed" and report.error is not None
        assert "OperationalError" in report.error, report.error
    if engine.dialect.name == "postgresql":
        # 3. The connection holding the sync lock, mid-run: the server drops the lock with it;
        #    the run takes it again at its next page and goes on.
        def drop_lock() -> None:
            terminate(lock_holder(engine, side.source))

        report = sync(engine, side, side.connector(on_request=AtCalls({4: drop_lock})))
        assert report.status == "ok", report.error
        injected += 1
    report = sync(engine, side)
    assert report.status == "ok", report.error
    fault = (
        "PostgreSQL backend terminated mid-page"
        if engine.dialect.name == "postgresql"
        else "SQLite write failing mid-page"
    )
    record(fault, side, engine, injected, assert_same_as(engine, side, base))


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_a_lost_lock_connection_is_taken_again_or_stops_the_run(engine: Engine) -> None:
    """A sync whose lock connection died (PostgreSQL) re-locks, or stops if another sync has it."""
    with source_lock(engine, "hubspot") as lock:
        terminate(lock_holder(engine, "hubspot"))
        lock.renew()  # taken again on a new connection
        assert lock_holder(engine, "hubspot") != 0
        terminate(lock_holder(engine, "hubspot"))
        other = SourceLock(engine, "hubspot")
        assert other.acquire()  # another replica takes it meanwhile
        with pytest.raises(SyncLocked):
            lock.renew()
        other.release()


# --- an access token expiring mid-sync -----------------------------------------------------------


def test_an_access_token_expiring_mid_sync(
    engine: Engine, side: Side, caplog: pytest.LogCaptureFixture
) -> None:
    base = baseline(engine, side)
    if isinstance(side, HubSpotSide):
        # A private-app token has no refresh: the run fails with a clear message, and the run
        # after the token is fixed completes.
        plan = side.portal.faults

        def expire() -> None:
            plan.fail_auth = True

        failed = sync(engine, side, side.connector(on_request=AtCalls({15: expire})))
        assert failed.status == "failed"
        assert failed.error is not None and "401" in failed.error
        assert "ISKPI_HUBSPOT_ACCESS_TOKEN" in failed.error and TOKEN not in failed.error
        assert 0 < sum(failed.records.values())
        plan.fail_auth = False
        report = sync(engine, side)
        assert report.status == "ok", report.error
        injected = 1
    else:
        # With a connected app, each expiry costs one refresh and the run goes on.
        assert isinstance(side, SalesforceSide)
        connector = side.connector(
            oauth=True,
            on_request=AtCalls({4: side.org.expire_sessions, 11: side.org.expire_sessions}),
        )
        report = sync(engine, side, connector)
        assert report.status == "ok", report.error
        injected = connector.token_refreshes  # type: ignore[attr-defined]
        assert injected == 2
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert TOKEN not in logged and "refresh.token" not in logged
    record(
        "access token expired mid-sync", side, engine, injected, assert_same_as(engine, side, base)
    )


# --- a connected app rotating its refresh token -----------------------------------------------


@pytest.mark.parametrize("side", ["salesforce"], indirect=True)
def test_a_rotated_refresh_token_is_kept_in_the_store_for_every_process(
    engine: Engine, side: Side, caplog: pytest.LogCaptureFixture
) -> None:
    """Rotation on: each refresh retires the token it used. Two `iskpi sync` processes, a fresh
    connector build (a push, a restart), two replicas holding the same token, and a changed
    configured token all sync; no token is logged, recorded or answered."""
    assert isinstance(side, SalesforceSide)
    base = baseline(engine, side)
    app = side.org.apps[side.app.client_id]
    app.rotate = True
    configured_token = side.app.refresh_token
    issued = [configured_token]
    oauth_env = {
        "ISKPI_SALESFORCE_INSTANCE_URL": side.served.url,
        "ISKPI_SALESFORCE_LOGIN_URL": side.served.url,
        "ISKPI_SALESFORCE_CLIENT_ID": side.app.client_id,
        "ISKPI_SALESFORCE_CLIENT_SECRET": side.app.client_secret,
        "ISKPI_SALESFORCE_REFRESH_TOKEN": configured_token,
        "REQUESTS_CA_BUNDLE": side.served.ca_bundle,
    }
    said: list[str] = []
    for _ in range(2):  # two processes: the second must use the token the first was given
        proc = sync_process(engine, side, oauth_env)
        _, stderr = proc.communicate(timeout=120)
        said.append(stderr.decode())
        assert proc.returncode == 0, said[-1][-2000:]
        issued.append(app.refresh_token)
        assert stored_refresh_token(engine) == app.refresh_token
    assert app.refreshes == 2

    def settings_with(refresh_token: str) -> Settings:
        values = {k: v for k, v in oauth_env.items() if k.startswith("ISKPI_")}
        values["ISKPI_SALESFORCE_REFRESH_TOKEN"] = refresh_token
        return Settings(
            _env_file=None, **{k.removeprefix("ISKPI_").lower(): v for k, v in values.items()}
        )

    def fresh_connectors(settings: Settings, count: int) -> list[SourceConnector]:
        # A new process: nothing kept in memory, only what the store holds.
        sources._rotated_refresh_tokens.clear()
        return [build_connectors(settings, "salesforce", engine)[0] for _ in range(count)]

    def sync_built(connector: SourceConnector) -> None:
        report = run_sync(engine, connector, kpi=CTX, clock=side.until)
        assert report.status == "ok", report.error
        issued.append(app.refresh_token)

    configured = settings_with(configured_token)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REQUESTS_CA_BUNDLE", side.served.ca_bundle)
        # Two replicas built from the same stored token: the second finds it retired by the
        # first, reads its successor from the store, and goes on.
        first, second = fresh_connectors(configured, 2)
        sync_built(first)
        sync_built(second)
        assert app.refreshes == 4  # one each
        assert second.token_refreshes == 2  # type: ignore[attr-defined]  # one refused first
        # The operator authorizes the app again: the new configured token wins over the stored
        # one, which descends from the old configuration.
        app.refresh_token = "5Aep861reauthorized.by.the.operator.0123"
        issued.append(app.refresh_token)
        [again] = fresh_connectors(settings_with(app.refresh_token), 1)
        sync_built(again)
        assert stored_refresh_token(engine) == app.refresh_token
    outcome = assert_same_as(engine, side, base)
    with engine.connect() as conn:
        runs = [repr(tuple(row)) for row in conn.execute(select(SyncRun))]
        states = [repr(tuple(row)) for row in conn.execute(select(SyncState))]
    assert len(runs) == 5 and all("'ok'" in run for run in runs), runs
    api = TestClient(create_app(configured_api(configured), engine))
    got = [
        api.get(path, headers={"Authorization": "Bearer admin-token"})
        for path in ("/v1/sync/runs", "/healthz")
    ]
    assert [answer.status_code for answer in got] == [200, 200]
    answers = [answer.text for answer in got]
    logged = [r.getMessage() for r in caplog.records]
    for token in issued:
        for where, texts in (("stderr", said), ("log", logged), ("runs", runs), ("api", answers)):
            assert not any(token in t for t in texts), where
    # Only the state row that keeps it holds the latest one.
    assert sum(app.refresh_token in state for state in states) == 1
    record("refresh token rotated at every refresh, across processes", side, engine, 5, outcome)


def stored_refresh_token(engine: Engine) -> str | None:
    """The refresh token the store keeps for Salesforce, whatever configuration it descends from."""
    with engine.connect() as conn:
        state = conn.execute(
            select(SyncState.state).where(
                SyncState.source == CREDENTIALS_SOURCE, SyncState.stream == "salesforce"
            )
        ).scalar_one_or_none()
    return None if state is None else state.get("refresh_token")


def configured_api(settings: Settings) -> Settings:
    return settings.model_copy(update={"admin_tokens": [SecretStr("admin-token")]})


# --- `iskpi migrate` killed while it creates the schema ----------------------------------------


@pytest.fixture(params=("sqlite", "postgresql"))
def blank_urls(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[list[tuple[str, str]]]:
    """Two empty stores on one engine, as (URL, PGOPTIONS): one to kill, one migrated cleanly."""
    if request.param == "sqlite":
        yield [(f"sqlite:///{tmp_path / name}.db", "") for name in ("killed", "clean")]
        return
    schemas = [f"iskpi_migrate_{os.getpid()}_{n}_{random.randrange(16**6):06x}" for n in range(2)]
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        for schema in schemas:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield [(POSTGRES_URL, f"-csearch_path={schema}") for schema in schemas]
    finally:
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def migrate_process(url: str, pgoptions: str, pause_after: int = 0) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISKPI_")}
    env["ISKPI_DATABASE_URL"] = url
    if pgoptions:
        env["PGOPTIONS"] = pgoptions
    if pause_after:
        env["ISKPI_TEST_MIGRATION_PAUSE_AFTER"] = str(pause_after)
    return subprocess.Popen(
        [sys.executable, "-m", "service", "migrate"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def schema_of(url: str, pgoptions: str) -> dict[str, Any]:
    """Every table's columns, keys, indexes and constraints, and the Alembic version stamp."""
    options = {"connect_args": {"options": pgoptions}} if pgoptions else {}
    engine = make_engine(url, **options)
    try:
        with engine.connect() as conn:
            seen = inspect(conn)
            out: dict[str, Any] = {}
            for table in sorted(seen.get_table_names()):
                out[table] = (
                    [(c["name"], str(c["type"]), c["nullable"]) for c in seen.get_columns(table)],
                    seen.get_pk_constraint(table)["constrained_columns"],
                    sorted(repr(sorted(i.items())) for i in seen.get_indexes(table)),
                    sorted(repr(sorted(u.items())) for u in seen.get_unique_constraints(table)),
                    sorted(repr(sorted(f.items())) for f in seen.get_foreign_keys(table)),
                )
            if "alembic_version" in out:
                out["stamp"] = conn.execute(text("SELECT version_num FROM alembic_version")).all()
            return out
    finally:
        engine.dispose()


def test_migrate_killed_at_any_step_leaves_nothing_then_a_rerun_equals_a_clean_schema(
    blank_urls: list[tuple[str, str]],
) -> None:
    """SIGKILL `iskpi migrate` after each step (paused there by the test hook): the store is
    left empty every time, and the next `iskpi migrate` builds the schema a clean one has."""
    (url, options), clean = blank_urls
    proc = migrate_process(*clean)
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode() if proc.stderr else ""
    expected = schema_of(*clean)
    steps = len(expected["stamp"]) and len(list((MIGRATIONS / "versions").glob("*.py")))
    assert steps >= 5
    killed = 0
    for step in range(1, steps + 1):
        proc = migrate_process(url, options, pause_after=step)
        assert proc.stderr is not None
        said: list[str] = []
        while len([line for line in said if line.startswith("migrated ")]) < step:
            line = proc.stderr.readline().decode()
            assert line, "".join(said)  # it ended before the step
            said.append(line)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed += 1
        # Nothing of the killed run is left: not a table, not a stamp.
        assert schema_of(url, options) == {}, step
    proc = migrate_process(url, options)
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode() if proc.stderr else ""
    assert schema_of(url, options) == expected
    assert killed == steps


# --- the CRM changing while a sync runs --------------------------------------------------------


def test_records_changed_during_a_sync_converge_on_the_next_run(engine: Engine, side: Side) -> None:
    baseline(engine, side)  # taken before anything changes, like the other tests'
    changes = 0

    def change(round_: int) -> Callable[[], None]:
        def act() -> None:
            nonlocal changes
            changes += side.change(round_)

        return act

    hook = AtCalls({3: change(0), 9: change(1), 16: change(2)})
    report = sync(engine, side, side.connector(on_request=hook))
    assert report.status == "ok", report.error
    assert changes == 26
    if isinstance(side, SalesforceSide):
        side.run_at = SF_RUN + timedelta(hours=1)
    report = sync(engine, side)  # the next scheduled run, incremental
    assert report.status == "ok", report.error
    after = Baseline(store_rows(engine, side.source), kpi_rows(engine))
    # The CRM's final state, synced clean into an empty store: what the two runs must equal.
    empty(engine)
    if isinstance(side, SalesforceSide):
        side.run_at = SF_RUN + timedelta(hours=2)
    assert sync(engine, side).status == "ok"
    final = Baseline(store_rows(engine, side.source), kpi_rows(engine))
    empty(engine)
    for table, rows in final.rows.items():
        assert sorted(map(repr, after.rows[table])) == sorted(map(repr, rows)), table
    assert after.kpis == final.kpis
    lost = sum(len(set(rows) - set(after.rows[t])) for t, rows in final.rows.items())
    extra = sum(len(after.rows[t]) - len(rows) for t, rows in final.rows.items())
    kpi_diffs = sum(a != b for a, b in zip(after.kpis, final.kpis, strict=True))
    record(
        "records created, modified, deleted during a sync",
        side,
        engine,
        changes,
        Outcome(lost, max(0, extra), kpi_diffs),
    )


CALL_COLUMNS = ["source", "crm_id"] + [
    c.name for c in Call.__table__.columns if c.name not in ("id", "synced_at", "source", "crm_id")
]


def test_the_comparison_counts_lost_stale_and_extra_rows(engine: Engine) -> None:
    """The check can fail: a missing, a stale and an unexpected row are each counted."""
    with engine.begin() as conn:
        conn.execute(
            Call.__table__.insert(),  # type: ignore[attr-defined]
            [
                {"source": "hubspot", "crm_id": crm_id, "occurred_at": END, "outcome": "busy"}
                for crm_id in ("1", "2")
            ],
        )
    stored = store_rows(engine, "hubspot")
    one = next(row for row in stored["calls"] if row[1] == "1")
    outcome_at, id_at = CALL_COLUMNS.index("outcome"), CALL_COLUMNS.index("crm_id")
    newer = tuple("connected" if i == outcome_at else v for i, v in enumerate(one))
    missing = tuple("3" if i == id_at else v for i, v in enumerate(newer))
    base = Baseline({**{t: [] for t in stored}, "calls": [newer, missing]}, kpi_rows(engine))
    outcome = compare(engine, "hubspot", base)
    # Call 1 is stale and call 3 missing (2 lost); call 2 is not in the baseline (1 extra).
    assert (outcome.lost, outcome.duplicated, outcome.kpi_differences) == (2, 1, 0)
