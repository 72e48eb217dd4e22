"""KPI engine benchmark: every KPI for a year, per rep, against a bare GROUP BY on the same engine.

    .venv/bin/python -m bench.kpi_bench [--calls 5000000] [--engines sqlite postgresql]
                                         [--repeat 3] [--sync-calls 100000]

For each engine it generates a store with set-based inserts (PostgreSQL:
INSERT … SELECT FROM generate_series; SQLite: a recursive CTE): --calls calls,
a fifth as many emails and proportional meetings, follow-up tasks, leads and
deals, over 50 reps in 5 teams and the 12 months from 2025-10-01 (Asia/Tokyo,
JP holidays). Then it reports, as medians of --repeat runs:

- bare:    SELECT rep, month, count(*) FROM calls GROUP BY 1, 2 (and by day);
- kpis:    kpi.compute of all 32 KPIs, month grain, rep scope, for the year,
           from the daily rollups (and by day), with its ratio to bare;
- raw:     the same computed from the raw rows only (one run), for scale;
- rebuild: a full rollup rebuild.

Then the cost of keeping the rollups during a sync: a real HubSpot sync of a
simulated portal (bench.portal_process, --sync-calls calls) into an empty store,
once without and once with the KPI rollups kept (``run_sync(kpi=...)``, as
`iskpi sync` and `iskpi serve` run it), timing the rollup calls the sync makes;
and the same for an incremental run after 1% of the calls changed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import Connection, Engine, text

POSTGRES_URL = os.environ.get(
    "ISKPI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TIMEZONE = "Asia/Tokyo"
HOLIDAYS = "JP"
REPS = 50
TEAMS = 5
YEAR_START = date(2025, 10, 1)
YEAR_END = date(2026, 9, 30)


def sizes(calls: int) -> dict[str, int]:
    """Record counts proportional to the calls (the issue's 5,000,000 calls : 1,000,000 emails)."""
    return {
        "calls": calls,
        "emails": calls // 5,
        "leads": calls // 25,
        "meetings": calls // 50,
        "tasks": calls // 16,
        "deals": calls // 160,
    }


# --- generation ---------------------------------------------------------------------------------

# Each generator is one INSERT … SELECT over a series `g` of row numbers with per-row randoms
# r1..r4 in [0, 1); the dialect supplies the series and the date arithmetic.


def _pg_series(n: int) -> str:
    return (
        "(SELECT g, random() AS r1, random() AS r2, random() AS r3, random() AS r4 "
        f"FROM generate_series(CAST(1 AS bigint), {n}) AS g) AS s"
    )


def _sqlite_series(n: int) -> str:
    rnd = "((abs(random()) % 1000000) / 1000000.0)"
    return (
        f"(SELECT x AS g, {rnd} AS r1, {rnd} AS r2, {rnd} AS r3, {rnd} AS r4 FROM "
        f"(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) "
        "SELECT x FROM c)) AS s"
    )


class Dialect:
    def __init__(self, name: str) -> None:
        self.name = name

    def series(self, n: int) -> str:
        return _pg_series(n) if self.name == "postgresql" else _sqlite_series(n)

    def ts(self, days: str, seconds: str) -> str:
        """A timestamp ``days`` + ``seconds`` after 2025-10-01 00:00 UTC (09:00 in Tokyo)."""
        if self.name == "postgresql":
            return (
                f"(timestamptz '2025-10-01 00:00:00+00' + ({days}) * interval '1 day' "
                f"+ ({seconds}) * interval '1 second')"
            )
        return (
            f"(strftime('%Y-%m-%d %H:%M:%S', '2025-10-01 00:00:00', "
            f"printf('%+d days', CAST({days} AS INTEGER)), "
            f"printf('%+d seconds', CAST({seconds} AS INTEGER))) || '.000000')"
        )

    def shift(self, ts: str, seconds: str) -> str:
        if self.name == "postgresql":
            return f"({ts} + ({seconds}) * interval '1 second')"
        return (
            f"(strftime('%Y-%m-%d %H:%M:%S', {ts}, printf('%+d seconds', CAST({seconds} AS INTEGER)))"
            " || '.000000')"
        )

    def int_(self, expr: str) -> str:
        return (
            f"CAST(floor({expr}) AS INTEGER)"
            if self.name == "postgresql"
            else f"CAST({expr} AS INTEGER)"
        )

    def true(self) -> str:
        return "true" if self.name == "postgresql" else "1"

    def false(self) -> str:
        return "false" if self.name == "postgresql" else "0"

    def boolean(self, cond: str) -> str:
        return f"({cond})" if self.name == "postgresql" else f"(CASE WHEN {cond} THEN 1 ELSE 0 END)"


def _pad(d: Dialect, prefix: str, expr: str = "g") -> str:
    if d.name == "postgresql":
        return f"'{prefix}' || lpad(CAST({expr} AS text), 8, '0')"
    return f"'{prefix}' || printf('%08d', {expr})"


def generate(conn: Connection, calls: int) -> dict[str, int]:
    """Fill an empty, migrated store; returns the rows per table."""
    d = Dialect(conn.dialect.name)
    n = sizes(calls)
    t, f = d.true(), d.false()
    rep = f"'r' || (1 + g % {REPS})"
    lead_number = f"1 + (g * 7919) % {n['leads']}"
    lead_of = _pad(d, "lead-", lead_number)
    day = f"{d.int_('r1 * 365')}"
    work_seconds = f"{d.int_('r2 * 36000')}"  # 09:00–19:00 Tokyo
    now = "CURRENT_TIMESTAMP"
    statements = [
        "INSERT INTO teams (source, crm_id, deleted, name, synced_at) "
        f"SELECT 'hubspot', 't' || g, {f}, 'Team ' || g, {now} FROM {d.series(TEAMS)}",
        "INSERT INTO reps (source, crm_id, deleted, name, team_crm_id, active, synced_at) "
        f"SELECT 'hubspot', 'r' || g, {f}, 'Rep ' || g, 't' || (1 + (g - 1) / {REPS // TEAMS}), "
        f"{t}, {now} FROM {d.series(REPS)}",
        # Leads: a month before the year too, so early activity has its leads.
        "INSERT INTO leads (source, crm_id, deleted, created_at, channel, industry, company_size, "
        "sql_at, rep_crm_id, synced_at) "
        f"SELECT 'hubspot', {_pad(d, 'lead-')}, {d.boolean('g % 400 = 0')}, "
        f"{d.ts(d.int_('r1 * 395') + ' - 30', d.int_('r2 * 86400'))}, "
        "CASE WHEN r3 < 0.35 THEN 'web' WHEN r3 < 0.6 THEN 'event' WHEN r3 < 0.8 THEN 'referral' "
        "WHEN r3 < 0.95 THEN 'ads' ELSE NULL END, "
        "CASE g % 8 WHEN 0 THEN 'saas' WHEN 1 THEN 'manufacturing' WHEN 2 THEN 'finance' "
        "WHEN 3 THEN 'retail' WHEN 4 THEN 'logistics' WHEN 5 THEN 'healthcare' "
        "WHEN 6 THEN 'education' ELSE NULL END, "
        "CASE g % 6 WHEN 0 THEN '1-9' WHEN 1 THEN '10-49' WHEN 2 THEN '50-249' "
        "WHEN 3 THEN '250-999' WHEN 4 THEN '1000+' ELSE NULL END, "
        f"CASE WHEN r4 < 0.2 THEN {d.ts(d.int_('r1 * 395') + ' - 20', d.int_('r2 * 86400'))} END, "
        f"{rep}, {now} FROM {d.series(n['leads'])}",
        "INSERT INTO calls (source, crm_id, deleted, occurred_at, direction, outcome, duration_ms, "
        "rep_crm_id, contact_crm_id, synced_at) "
        f"SELECT 'hubspot', {_pad(d, 'call-')}, {d.boolean('g % 500 = 0')}, "
        f"{d.ts(day, work_seconds)}, "
        "CASE WHEN g % 20 = 0 THEN 'inbound' WHEN g % 97 = 0 THEN NULL ELSE 'outbound' END, "
        "CASE WHEN r3 < 0.28 THEN 'connected' WHEN r3 < 0.68 THEN 'no_answer' "
        "WHEN r3 < 0.83 THEN 'voicemail' WHEN r3 < 0.88 THEN 'live_message' "
        "WHEN r3 < 0.90 THEN 'wrong_number' WHEN r3 < 0.95 THEN 'busy' "
        "WHEN r3 < 0.98 THEN 'failed' ELSE 'unknown' END, "
        f"CASE WHEN r3 < 0.28 THEN {d.int_('r4 * 600000')} ELSE {d.int_('r4 * 30000')} END, "
        f"CASE WHEN g % 1000 = 0 THEN NULL ELSE {rep} END, {lead_of}, {now} "
        f"FROM {d.series(n['calls'])}",
        "INSERT INTO emails (source, crm_id, deleted, sent_at, direction, status, sent, tracked, "
        "opened, clicked, replied, rep_crm_id, contact_crm_id, synced_at) "
        f"SELECT 'hubspot', {_pad(d, 'email-')}, {d.boolean('g % 500 = 0')}, "
        f"{d.ts(day, work_seconds)}, CASE WHEN g % 10 = 0 THEN 'inbound' ELSE 'outbound' END, "
        "CASE WHEN g % 50 = 0 THEN 'BOUNCED' ELSE 'SENT' END, "
        f"{d.boolean('g % 50 <> 0')}, {d.boolean('r3 < 0.8')}, "
        "CASE WHEN r3 < 0.8 THEN " + d.boolean("r4 < 0.3") + " END, "
        "CASE WHEN r3 < 0.8 THEN " + d.boolean("r4 < 0.05") + " END, "
        "CASE WHEN r3 < 0.8 THEN " + d.boolean("r4 > 0.9") + " END, "
        f"{rep}, {lead_of}, {now} FROM {d.series(n['emails'])}",
        "INSERT INTO meetings (source, crm_id, deleted, booked_at, start_at, outcome, rep_crm_id, "
        "contact_crm_id, synced_at) "
        f"SELECT 'hubspot', {_pad(d, 'meeting-')}, {d.boolean('g % 300 = 0')}, "
        f"{d.ts(day, work_seconds)}, "
        f"CASE WHEN r3 < 0.85 THEN {d.ts(day + ' + 7', work_seconds)} END, "
        "CASE WHEN r4 < 0.55 THEN 'completed' WHEN r4 < 0.65 THEN 'scheduled' "
        "WHEN r4 < 0.75 THEN 'rescheduled' WHEN r4 < 0.85 THEN 'no_show' ELSE 'canceled' END, "
        f"{rep}, {lead_of}, {now} FROM {d.series(n['meetings'])}",
        "INSERT INTO follow_up_tasks (source, crm_id, deleted, due_at, status, completed_at, "
        "rep_crm_id, contact_crm_id, synced_at) "
        f"SELECT 'hubspot', {_pad(d, 'task-')}, {d.boolean('g % 300 = 0')}, "
        f"{d.ts(day, work_seconds)}, CASE WHEN r3 < 0.85 THEN 'COMPLETED' ELSE 'NOT_STARTED' END, "
        f"CASE WHEN r3 < 0.7 THEN {d.ts(day, d.int_('r4 * 36000'))} "
        f"WHEN r3 < 0.85 THEN {d.ts(day + ' + 1', d.int_('r4 * 86400'))} END, "
        f"{rep}, {lead_of}, {now} FROM {d.series(n['tasks'])}",
        "INSERT INTO deals (source, crm_id, deleted, created_at, closed_at, amount, stage, "
        "is_closed, is_won, probability, owner_crm_id, rep_crm_id, bant_budget, bant_authority, "
        "bant_need, bant_timing, handoff_rating, lead_source, contact_crm_id, synced_at) "
        f"SELECT 'hubspot', {_pad(d, 'deal-')}, {d.boolean('g % 300 = 0')}, "
        f"{d.ts(day, work_seconds)}, {d.ts(day + ' + ' + d.int_('r3 * 60'), work_seconds)}, "
        f"{d.int_('r4 * 4900000')} + 100000, CASE WHEN r3 < 0.6 THEN 'closed' ELSE 'open' END, "
        f"{d.boolean('r3 < 0.6')}, {d.boolean('r3 < 0.2')}, "
        "CASE WHEN r3 < 0.2 THEN 1.0 WHEN r3 < 0.6 THEN 0.0 ELSE r4 END, "
        f"'fs' || (1 + g % 10), CASE WHEN g % 10 = 0 THEN NULL ELSE {rep} END, "
        "CASE WHEN r1 < 0.9 THEN 'yes' END, CASE WHEN r2 < 0.85 THEN 'cfo' END, "
        "CASE WHEN r4 < 0.95 THEN 'need' END, CASE WHEN r1 < 0.8 THEN 'q3' END, "
        f"CASE WHEN r2 < 0.7 THEN 1 + {d.int_('r4 * 5')} END, 'web', {lead_of}, {now} "
        f"FROM {d.series(n['deals'])}",
    ]
    for statement in statements:
        conn.execute(text(statement))
    counts = {}
    for table in (
        "teams",
        "reps",
        "leads",
        "calls",
        "emails",
        "meetings",
        "follow_up_tasks",
        "deals",
    ):
        counts[table] = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    return counts


# --- measuring ----------------------------------------------------------------------------------


def median_seconds(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times), result


def bare_query(engine_name: str, grain: str) -> str:
    if engine_name == "postgresql":
        return (
            f"SELECT rep_crm_id, date_trunc('{grain}', occurred_at), count(*) "
            "FROM calls GROUP BY 1, 2"
        )
    fmt = "%Y-%m" if grain == "month" else "%Y-%m-%d"
    return f"SELECT rep_crm_id, strftime('{fmt}', occurred_at), count(*) FROM calls GROUP BY 1, 2"


def fresh_engine(engine_name: str, tag: str) -> tuple[Engine, Callable[[], None]]:
    from service.db import make_engine, migrate

    if engine_name == "sqlite":
        path = f"/tmp/iskpi-kpi-bench-{tag}-{uuid.uuid4().hex[:6]}.db"
        engine = make_engine(f"sqlite:///{path}")
        migrate(engine)

        def drop() -> None:
            engine.dispose()
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(path + suffix):
                    os.remove(path + suffix)

        return engine, drop
    schema = f"iskpi_kpi_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    migrate(engine)

    def drop_schema() -> None:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return engine, drop_schema


def bench_queries(engine_name: str, calls: int, repeat: int) -> dict[str, Any]:
    from kpi import KpiContext, compute, ensure_rollups

    ctx = KpiContext(timezone=TIMEZONE, holidays=HOLIDAYS)
    engine, drop = fresh_engine(engine_name, "q")
    figures: dict[str, Any] = {"engine": engine_name}
    try:
        began = time.perf_counter()
        with engine.begin() as conn:
            figures["rows"] = generate(conn, calls)
        if engine_name == "postgresql":
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        else:
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        figures["generate_s"] = time.perf_counter() - began
        print(f"  generated {figures['rows']} in {figures['generate_s']:.0f} s", flush=True)

        began = time.perf_counter()
        with engine.begin() as conn:
            ensure_rollups(conn, ctx)
        figures["rebuild_s"] = time.perf_counter() - began
        print(f"  rollups rebuilt in {figures['rebuild_s']:.1f} s", flush=True)

        def bare(grain: str) -> Callable[[], int]:
            def run() -> int:
                with engine.connect() as conn:
                    return len(conn.execute(text(bare_query(engine_name, grain))).all())

            return run

        def kpis(grain: str, use_rollups: bool = True) -> Callable[[], int]:
            def run() -> int:
                rows = compute(
                    engine,
                    ctx,
                    grain=grain,  # type: ignore[arg-type]
                    start=YEAR_START,
                    end=YEAR_END,
                    scope="rep",
                    use_rollups=use_rollups,
                    max_rows=None,
                )
                return len(rows)

            return run

        for grain in ("month", "day"):
            bare_s, bare_rows = median_seconds(bare(grain), repeat)
            kpi_s, kpi_rows = median_seconds(kpis(grain), repeat)
            figures[grain] = {
                "bare_s": bare_s,
                "bare_rows": bare_rows,
                "kpis_s": kpi_s,
                "kpi_rows": kpi_rows,
                "ratio": kpi_s / bare_s,
            }
            print(
                f"  {grain}: bare GROUP BY {bare_s:.2f} s ({bare_rows:,} rows); all KPIs, rep scope, "
                f"one year from rollups {kpi_s:.2f} s ({kpi_rows:,} rows): {kpi_s / bare_s:.2f}x",
                flush=True,
            )
        raw_s, _ = median_seconds(kpis("month", use_rollups=False), 1)
        figures["month"]["raw_s"] = raw_s
        print(f"  month, raw rows only (no rollups): {raw_s:.2f} s", flush=True)
    finally:
        drop()
    return figures


# --- rollup maintenance during a sync ----------------------------------------------------------


def sync_child(
    portal_url: str, engine_name: str, database_url: str, schema: str, maintain: bool
) -> dict[str, Any]:
    """One run_sync in this process, with (``kpi=``) or without the rollups kept.

    The real wiring runs; the rollup calls service/sync.py makes (ensure, the
    maintainer around each page's writes, flush) are timed through thin wrappers.
    """
    from connectors.hubspot import HubSpotConnector
    from kpi import KpiContext, RollupMaintainer
    from service.db import make_engine, migrate
    from service.sync import run as sync_module

    kwargs: dict[str, Any] = {}
    if schema:
        kwargs["connect_args"] = {"options": f"-csearch_path={schema}"}
    engine = make_engine(database_url, **kwargs)
    migrate(engine)
    ctx = KpiContext(timezone=TIMEZONE, holidays=HOLIDAYS)
    spent = {"maintain_s": 0.0}

    def timed(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kw: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                took = time.perf_counter() - began
                spent["maintain_s"] += took
                spent[f"{fn.__name__}_s"] = spent.get(f"{fn.__name__}_s", 0.0) + took

        return run

    class TimedMaintainer(RollupMaintainer):
        before_upsert = timed(RollupMaintainer.before_upsert)  # type: ignore[assignment]
        after_upsert = timed(RollupMaintainer.after_upsert)  # type: ignore[assignment]

    sync_module.RollupMaintainer = TimedMaintainer  # type: ignore[misc]
    sync_module.ensure_rollups = timed(sync_module.ensure_rollups)
    sync_module.flush_rollups = timed(sync_module.flush_rollups)
    connector = HubSpotConnector("bench-token", host=portal_url)
    began = time.perf_counter()
    report = sync_module.run_sync(engine, connector, trigger="bench", kpi=ctx if maintain else None)
    seconds = time.perf_counter() - began
    assert report.status == "ok", report.error
    engine.dispose()
    return {"seconds": seconds, "records": sum(report.records.values()), **spent}


def run_sync_child(
    portal_url: str, engine_name: str, url: str, schema: str, maintain: bool
) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.kpi_bench",
            "--sync-child",
            portal_url,
            engine_name,
            url,
            schema,
            "1" if maintain else "0",
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(f"sync child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_sync(engines: list[str], calls: int, repeat: int) -> dict[str, Any]:
    from bench.sync_bench import Portal, drop_store, fresh_store

    figures: dict[str, Any] = {}
    portal = Portal(calls)
    try:
        for engine_name in engines:
            plain_full, kept_full, plain_incr, kept_incr, maintain_full, maintain_incr = (
                [],
                [],
                [],
                [],
                [],
                [],
            )
            for _i in range(repeat):
                for maintain in (False, True):
                    url, schema = fresh_store(engine_name, f"sync{int(maintain)}")
                    try:
                        full = run_sync_child(portal.url, engine_name, url, schema or "", maintain)
                        (kept_full if maintain else plain_full).append(full["seconds"])
                        if maintain:
                            maintain_full.append(full["maintain_s"])
                        portal.command(f"touch calls {calls // 100}")
                        incr = run_sync_child(portal.url, engine_name, url, schema or "", maintain)
                        (kept_incr if maintain else plain_incr).append(incr["seconds"])
                        if maintain:
                            maintain_incr.append(incr["maintain_s"])
                    finally:
                        drop_store(url, schema)
            row = {
                "full_plain_s": statistics.median(plain_full),
                "full_kept_s": statistics.median(kept_full),
                "full_maintain_s": statistics.median(maintain_full),
                "incr_plain_s": statistics.median(plain_incr),
                "incr_kept_s": statistics.median(kept_incr),
                "incr_maintain_s": statistics.median(maintain_incr),
            }
            row["full_share"] = row["full_maintain_s"] / row["full_kept_s"]
            row["incr_share"] = row["incr_maintain_s"] / row["incr_kept_s"]
            # The whole difference includes the landing-forecast snapshot the kept run stores.
            row["full_ratio"] = row["full_kept_s"] / row["full_plain_s"]
            row["incr_ratio"] = row["incr_kept_s"] / row["incr_plain_s"]
            figures[engine_name] = row
            print(
                f"  {engine_name}: full sync {row['full_plain_s']:.1f} s plain, {row['full_kept_s']:.1f} s with rollups "
                f"kept (maintainer {row['full_maintain_s']:.2f} s = {100 * row['full_share']:.1f}% of the sync); "
                f"incremental after 1% changed {row['incr_plain_s']:.1f} s vs {row['incr_kept_s']:.1f} s "
                f"(maintainer {row['incr_maintain_s']:.2f} s = {100 * row['incr_share']:.1f}%); "
                f"whole run with ÷ without: {row['full_ratio']:.2f}× full, {row['incr_ratio']:.2f}× incremental",
                flush=True,
            )
    finally:
        portal.stop()
    return figures


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--sync-child":
        portal_url, engine_name, url, schema, maintain = sys.argv[2:7]
        print(json.dumps(sync_child(portal_url, engine_name, url, schema, maintain == "1")))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=5_000_000)
    parser.add_argument("--engines", nargs="+", default=["postgresql", "sqlite"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--sync-calls", type=int, default=100_000, help="portal size for the sync cost; 0 skips it"
    )
    args = parser.parse_args()
    print(f"# KPI benchmark: {sizes(args.calls)} over {REPS} reps, {YEAR_START} to {YEAR_END}")
    results: dict[str, Any] = {"sizes": sizes(args.calls), "queries": [], "sync": None}
    for engine_name in args.engines if args.calls else ():  # --calls 0: the sync cost only
        print(f"\n## {engine_name}", flush=True)
        results["queries"].append(bench_queries(engine_name, args.calls, args.repeat))
    if args.sync_calls:
        print(
            f"\n## rollup maintenance during a sync ({args.sync_calls:,} calls portal)", flush=True
        )
        results["sync"] = bench_sync(args.engines, args.sync_calls, args.repeat)
    print("\n" + json.dumps(results, default=str))


if __name__ == "__main__":
    main()
