"""Load benchmark: `iskpi serve` on PostgreSQL with the 5,000,000-call store, while a sync writes.

    .venv/bin/python -m bench.load_bench [--calls 5000000] [--seconds 60] [--clients 32]
                                         [--portal-calls 200000] [--reference-seconds 60]
                                         [--store SCHEMA] [--build-only]

It builds the KPI benchmark's store (bench.kpi_bench: --calls calls over 50 reps and the
year from 2025-10-01) in a PostgreSQL schema (a fresh one, dropped at the end; or --store's,
kept and reused) and serves it with `iskpi serve` in its own process. Then, for --seconds:

- a writer process syncs a simulated HubSpot portal (--portal-calls calls of one new rep, all
  outbound, all on today's business day, as an intraday sync writes) into the same store
  with ``run_sync`` — what `iskpi sync` runs — first in full, then incrementally in a loop,
  adding 1,000 calls and touching 500 between runs;
- --clients concurrent clients in a third process send a mix of requests as fast as answers
  come: GET /v1/kpis (org calls by month; rep calls by month; every KPI per rep, the
  BI-tool question — all three over the year; and today's org calls), GET /v1/funnel (June
  2026, org) and POST /v1/plan (10 wins in June).

Every kind is asked once before the load (so the figures are of a warm server). It reports
errors and p50/p99 latency per request kind, and checks that every answer is consistent:
the writer records, right after each page it commits, how many of its calls the store holds
— the store's states at page boundaries. Every answer about today's calls must equal the
starting figure plus one of those states (an answer that saw half a page would fall
between two), and the year's and June's calls must not move (the writer writes none
there); each client's successive answers of a kind must never go down; and once the writer
has stopped, the answers must equal the store counted directly. The writer's calls all
count (outbound, today, their rep known), so these checks can fail.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import func, select, text

from bench.api_bench import QUERY, headers, serve
from bench.kpi_bench import (
    HOLIDAYS,
    POSTGRES_URL,
    TIMEZONE,
    YEAR_END,
    YEAR_START,
    fresh_engine,
    generate,
)
from models import Rep
from models.store import table_of

PORTAL_TOKEN = "load-bench-portal-token"
ZONE = ZoneInfo(TIMEZONE)
JUNE = "2026-06"
CALLS_QUERY = {
    "kpi": "calls",
    "grain": "month",
    "from": YEAR_START.isoformat(),
    "to": YEAR_END.isoformat(),
}
KINDS = {  # request kind → weight among the requests
    "kpis org calls": 0.25,
    "kpis rep calls": 0.2,
    "kpis all (rep)": 0.15,
    "funnel": 0.2,
    "plan": 0.2,
    # Today's org calls: what the writer writes, so every page it commits moves the answer.
    "kpis calls today": 0.05,
}
ADD_PER_RUN, TOUCH_PER_RUN = 1_000, 500
# What the writer's syncs leave besides records, cleared before a kept store is reused.
WRITER_TRACES = (
    "sync_state",
    "sync_runs",
    "quarantine",
    "kpi_forecast_snapshots",
    "kpi_rollup_dirty",
    "kpi_lead_dirty",
    "kpi_data_changes",
)


# --- the writer: a portal, synced into the store in a loop, with its page-boundary states -----


def today() -> date:
    """The business day the server answers for (Asia/Tokyo), which the writer's calls are on."""
    return datetime.now(ZONE).date()


def _call_props(rng: random.Random, owner: str, day: date) -> dict[str, str]:
    local = datetime(day.year, day.month, day.day, tzinfo=ZONE) + timedelta(
        seconds=rng.randrange(24 * 3600)
    )
    return {
        "hs_timestamp": local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "hs_call_direction": "OUTBOUND",
        "hs_call_disposition": "f240bbac-87c9-4f6e-bf70-924b57d47db7",
        "hs_call_status": "COMPLETED",
        "hs_call_duration": "90000",
        "hubspot_owner_id": owner,
    }


class LoadOver(Exception):
    """Raised in the writer's sync, between pages, when the load is over."""


class Oracle:
    """A sync progress that writes the store's state after each committed page."""

    def __init__(self, path: Path, stop: threading.Event) -> None:
        self.out = path.open("a", encoding="utf-8")
        self.stop = stop
        self.seen: set[str] = set()
        self.months: dict[str, int] = defaultdict(int)
        self.days: dict[str, int] = defaultdict(int)
        self.today = today().isoformat()
        self.pages = self.records = 0
        self.write()

    def write(self) -> None:
        line = {
            "t": time.time(),
            "total": len(self.seen),
            "june": self.months.get(JUNE, 0),
            "today": self.days.get(self.today, 0),
        }
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()

    def stream_started(self, stream: str) -> None:
        pass

    def page_stored(self, stream: str, page: Any) -> None:
        # Called after the page's transaction committed and before the next page is stored.
        self.pages += 1
        self.records += len(page.records)
        if stream == "calls":
            for record in page.records:
                if record.crm_id not in self.seen and not record.deleted:
                    self.seen.add(record.crm_id)
                    local = record.occurred_at.astimezone(ZONE)
                    self.months[local.strftime("%Y-%m")] += 1
                    self.days[local.date().isoformat()] += 1
            self.write()
        if self.stop.is_set():
            raise LoadOver("the load is over")  # ends the run cleanly: recorded, rollups flushed

    def stream_finished(self, stream: str) -> None:
        pass


def writer_child(database_url: str, schema: str, portal_calls: int, oracle: str) -> None:
    """Serve a portal and sync it into the store until told to stop (stdin: go, stop)."""
    from connectors.hubspot import HubSpotConnector
    from kpi import KpiContext
    from service.db import make_engine
    from service.sync.run import run_sync
    from simulators.hubspot.portal import HubSpotPortal, serve_portal

    # The run the load's end stops is recorded as failed; its traceback is no news.
    logging.getLogger("service.sync.run").addFilter(
        lambda r: not (r.exc_info and isinstance(r.exc_info[1], LoadOver))
    )
    portal = HubSpotPortal(PORTAL_TOKEN)
    portal.burst_limit = 1_000_000  # measure the store, not HubSpot's pacing
    owner = portal.add_owner(
        email="writer@example.jp",
        first_name="Load",
        last_name="Writer",
        teams=[("990001", "Load", True)],
        created_at=datetime(2025, 9, 1, tzinfo=UTC),  # one rep, the same in every run
    )
    rng = random.Random(5)
    day = today()
    for _ in range(portal_calls):
        portal.create("calls", _call_props(rng, owner, day))
    running = serve_portal(portal)
    engine = make_engine(database_url, connect_args={"options": f"-csearch_path={schema}"})
    ctx = KpiContext(timezone=TIMEZONE, holidays=HOLIDAYS)
    stop = threading.Event()
    progress = Oracle(Path(oracle), stop)
    print("ready", flush=True)
    assert sys.stdin.readline().strip() == "go"

    def wait_for_stop() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    runs: list[str] = []
    while not stop.is_set():
        connector = HubSpotConnector(PORTAL_TOKEN, host=running.url)
        report = run_sync(engine, connector, trigger="bench", kpi=ctx, progress=progress)
        runs.append(report.status)
        if stop.is_set():
            break
        now = datetime.now(UTC)
        for _ in range(ADD_PER_RUN):
            portal.create("calls", _call_props(rng, owner, day))
        for crm_id in rng.sample(portal.ids("calls"), TOUCH_PER_RUN):
            portal.update("calls", crm_id, {}, modified_at=now)
    engine.dispose()
    running.stop()
    print(
        json.dumps(
            {
                "runs": runs,
                "pages": progress.pages,
                "records": progress.records,
                "new_calls": len(progress.seen),
            }
        ),
        flush=True,
    )


# --- the clients ------------------------------------------------------------------------------


def _calls_total(body: dict[str, Any]) -> float:
    return float(sum(row["value"] or 0 for row in body["data"]))


def _june_calls(body: dict[str, Any]) -> float:
    return float(next(s["actual"] for s in body["stages"] if s["stage"] == "calls") or 0)


def ask(client: httpx.Client, url: str, kind: str) -> float | None:
    """One request of a kind; the figure the consistency checks read (None for the others)."""
    if kind == "kpis org calls":
        response = client.get(f"{url}/v1/kpis", params={**CALLS_QUERY, "scope": "org"})
    elif kind == "kpis rep calls":
        response = client.get(f"{url}/v1/kpis", params={**CALLS_QUERY, "scope": "rep"})
    elif kind == "kpis all (rep)":
        with client.stream("GET", f"{url}/v1/kpis", params=QUERY) as streamed:
            for _ in streamed.iter_raw():  # the gzipped body, as a BI connector reads it
                pass
            streamed.raise_for_status()
        return None
    elif kind == "kpis calls today":
        day = today().isoformat()
        params = {"kpi": "calls", "grain": "day", "from": day, "to": day, "scope": "org"}
        response = client.get(f"{url}/v1/kpis", params=params)
    elif kind == "funnel":
        response = client.get(f"{url}/v1/funnel", params={"month": JUNE, "scope": "org"})
    else:
        response = client.post(f"{url}/v1/plan", json={"won_target": 10, "month": JUNE})
    response.raise_for_status()
    if kind == "funnel":
        return _june_calls(response.json())
    if kind.startswith("kpis"):
        return _calls_total(response.json())
    return None


def load_child(url: str, clients: int, seconds: float, out: str, only: str = "") -> None:
    """``clients`` threads, each asking a random mix as fast as answers come."""
    samples: list[tuple[int, str, float, float, float | None, str | None]] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    mix = {k: v for k, v in KINDS.items() if not only or k in only.split(",")}
    kinds, weights = list(mix), list(mix.values())

    def client_loop(index: int) -> None:
        rng = random.Random(index)
        mine: list[tuple[int, str, float, float, float | None, str | None]] = []
        with httpx.Client(headers=headers(), timeout=120) as client:
            while time.perf_counter() < stop:
                kind = rng.choices(kinds, weights)[0]
                began = time.perf_counter()
                try:
                    value, error = ask(client, url, kind), None
                except (httpx.HTTPError, KeyError, ValueError, StopIteration) as exc:
                    value, error = None, f"{type(exc).__name__}: {exc}"[:200]
                mine.append((index, kind, began, time.perf_counter(), value, error))
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    Path(out).write_text(json.dumps(samples))


# --- the parent -------------------------------------------------------------------------------


def probe(url: str) -> dict[str, float]:
    """Every kind asked once (which also computes it into the cache); the figures checked."""
    with httpx.Client(headers=headers(), timeout=300) as client:
        return {kind: value for kind in KINDS if (value := ask(client, url, kind)) is not None}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def check(
    samples: list[Any], base: dict[str, float], states: list[dict[str, Any]]
) -> dict[str, Any]:
    """Every figure at a page boundary; never down per client and kind."""
    valid = {
        # The writer's calls are all today's, after the year and June: those stay put.
        "kpis org calls": {base["kpis org calls"]},
        "kpis rep calls": {base["kpis rep calls"]},
        "funnel": {base["funnel"]},
        "kpis calls today": {base["kpis calls today"] + s["today"] for s in states},
    }
    off_boundary: list[Any] = []
    backwards: list[Any] = []
    last: dict[tuple[int, str], float] = {}
    seen: dict[str, set[float]] = defaultdict(set)
    checked = 0
    for client, kind, _began, _ended, value, error in sorted(samples, key=lambda s: s[2]):
        if kind not in valid or error is not None or value is None:
            continue
        checked += 1
        seen[kind].add(value)
        if value not in valid[kind]:
            off_boundary.append((kind, value))
        previous = last.get((client, kind))
        if previous is not None and value < previous:
            backwards.append((client, kind, previous, value))
        last[(client, kind)] = value
    return {
        "answers_checked": checked,
        "not_at_a_page_boundary": len(off_boundary),
        "examples": off_boundary[:5],
        "went_backwards": len(backwards),
        "backwards_examples": backwards[:5],
        "distinct_states_seen": {kind: len(values) for kind, values in seen.items()},
    }


def writer_calls_in_store(engine: Any) -> int:
    """The writer's calls the store holds, counted directly (its rep's, outbound)."""
    from models import Call

    with engine.connect() as conn:
        owner = select(Rep.crm_id).where(Rep.email == "writer@example.jp").scalar_subquery()
        return int(
            conn.execute(
                select(func.count())
                .select_from(Call)
                .where(Call.source == "hubspot", Call.rep_crm_id == owner, Call.deleted.is_(False))
            ).scalar_one()
        )


def kept_store(schema: str) -> tuple[Any, Callable[[], None]]:
    """An engine on ``schema`` (created and migrated if need be) that the run leaves in place."""
    from service.db import make_engine, migrate

    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    admin.dispose()
    engine = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    migrate(engine)
    return engine, engine.dispose


def remove_writer_rows(engine: Any, ctx: Any) -> None:
    """Put a kept store back as generated: the writer's records and the syncs' traces go
    (its rep and team stay, as an intraday sync finds them).

    The generator stamps every row it writes with one ``synced_at`` (its transaction's
    time); whatever a sync stored came later. The rollups are rebuilt from what is left.
    """
    from kpi import rebuild_rollups
    from models import Base

    with engine.begin() as conn:
        generated = conn.execute(select(func.min(table_of(Rep).c.synced_at))).scalar_one()
        for table in Base.metadata.sorted_tables:
            # Its rep and team stay: the next writer syncs a rep the store knows.
            if "synced_at" in table.c and table.name not in ("reps", "teams"):
                conn.execute(table.delete().where(table.c.synced_at > generated))
        for name in WRITER_TRACES:
            if name in Base.metadata.tables:  # an older checkout may not have them all
                conn.execute(Base.metadata.tables[name].delete())
        rebuild_rollups(conn, ctx)


def run_load(url: str, clients: int, seconds: float, path: Path, kinds: str) -> list[Any]:
    """The clients, in a process of their own; their samples."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.load_bench",
            "--load-child",
            url,
            str(clients),
            str(seconds),
            str(path),
            kinds,
        ],
        check=True,
    )
    samples: list[Any] = json.loads(path.read_text())
    return samples


def summarize(samples: list[Any], seconds: float) -> dict[str, Any]:
    """Requests, errors, p50 and p99 per kind."""
    by_kind: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    examples: list[str] = []
    for _client, kind, start, end, _value, error in samples:
        if error is None:
            by_kind[kind].append(end - start)
        else:
            errors[kind] += 1
            examples.append(error)
    return {
        "kinds": {
            kind: {
                "count": len(by_kind[kind]) + errors[kind],
                "errors": errors[kind],
                "p50_ms": 1000 * statistics.median(by_kind[kind]) if by_kind[kind] else None,
                "p99_ms": 1000 * percentile(by_kind[kind], 0.99) if by_kind[kind] else None,
            }
            for kind in KINDS
        },
        "requests_per_second": len(samples) / seconds,
        "errors": sum(errors.values()),
        "error_examples": examples[:5],
    }


def show(title: str, figures: dict[str, Any], consistency: dict[str, Any], states: int) -> None:
    print(f"\n{title}")
    for kind, row in figures["kinds"].items():
        print(
            f"  {kind:<15} {row['count']:>7,} requests, {row['errors']} errors, "
            f"p50 {row['p50_ms'] or 0:.1f} ms, p99 {row['p99_ms'] or 0:.1f} ms"
        )
    print(f"  {figures['requests_per_second']:.1f} requests/s in all, {figures['errors']} errors")
    print(
        f"  consistency: {consistency['answers_checked']:,} answers checked against {states:,} "
        f"page-boundary states: {consistency['not_at_a_page_boundary']} not at a boundary, "
        f"{consistency['went_backwards']} went backwards"
    )
    for example in consistency["examples"] + consistency["backwards_examples"]:
        print(f"    {example}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--writer-child":
        writer_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--load-child":
        load_child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=5_000_000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--portal-calls", type=int, default=200_000)
    parser.add_argument(
        "--kinds",
        default="",
        help=f"comma-separated request kinds to send (default all: {', '.join(KINDS)})",
    )
    parser.add_argument(
        "--reference-seconds",
        type=float,
        default=0,
        help="first the same load with no sync writing, for reference (0: skip)",
    )
    parser.add_argument(
        "--store",
        default="",
        help="a PostgreSQL schema to keep the store in: built on the first run, reused on the "
        "next ones (the writer's rows of an earlier run removed first); default a fresh "
        "schema, dropped at the end",
    )
    parser.add_argument("--build-only", action="store_true", help="build the store, then exit")
    args = parser.parse_args()

    from kpi import KpiContext, ensure_rollups

    ctx = KpiContext(timezone=TIMEZONE, holidays=HOLIDAYS)
    engine, drop = kept_store(args.store) if args.store else fresh_engine("postgresql", "load")
    results: dict[str, Any] = {
        "calls": args.calls,
        "clients": args.clients,
        "seconds": args.seconds,
        "date": date.today().isoformat(),
    }
    folder = tempfile.TemporaryDirectory(prefix="iskpi-load-")
    oracle, samples_path = Path(folder.name) / "states.jsonl", Path(folder.name) / "samples.json"
    try:
        began = time.perf_counter()
        with engine.connect() as conn:
            built = conn.execute(select(func.count()).select_from(table_of(Rep))).scalar_one() > 0
        if built:
            remove_writer_rows(engine, ctx)
            results["rows"] = "reused"
        else:
            with engine.begin() as conn:
                results["rows"] = generate(conn, args.calls)
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        with engine.begin() as conn:
            ensure_rollups(conn, ctx)
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        print(
            f"# store of {results['rows']} ready in {time.perf_counter() - began:.0f} s", flush=True
        )
        if args.build_only:
            return
        with serve(schema, cache_mb=256) as url:
            base = probe(url)
            print(f"# before the writer: {base}", flush=True)
            if args.reference_seconds:
                samples = run_load(
                    url, args.clients, args.reference_seconds, samples_path, args.kinds
                )
                results["reference"] = summarize(samples, args.reference_seconds)
                results["reference"]["consistency"] = check(
                    samples, base, [{"total": 0, "june": 0, "today": 0}]
                )
            writer = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.load_bench",
                    "--writer-child",
                    POSTGRES_URL,
                    schema,
                    str(args.portal_calls),
                    str(oracle),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert writer.stdin is not None and writer.stdout is not None
            assert writer.stdout.readline().strip() == "ready"
            writer.stdin.write("go\n")
            writer.stdin.flush()
            time.sleep(2)  # the first pages are being written
            samples = run_load(url, args.clients, args.seconds, samples_path, args.kinds)
            writer.stdin.write("stop\n")
            writer.stdin.flush()
            writer_out, _ = writer.communicate(timeout=600)
            results["writer"] = json.loads(writer_out.strip().splitlines()[-1])
            stored = writer_calls_in_store(engine)
            time.sleep(2)  # past the server's data-version check interval
            final = probe(url)
        states = [json.loads(line) for line in oracle.read_text().splitlines() if line]
        results["final"] = {
            "writer_calls_in_store": stored,
            "oracle_final": states[-1]["total"],
            "answers_equal_store": final["kpis calls today"] == base["kpis calls today"] + stored
            and all(final[kind] == base[kind] for kind in ("kpis org calls", "kpis rep calls")),
        }
        results["load"] = summarize(samples, args.seconds)
        results["load"]["consistency"] = check(samples, base, states)
        results["page_boundary_states"] = len(states)
    finally:
        drop()
        folder.cleanup()
    if "reference" in results:
        reference = results["reference"]
        show(
            f"reference: {args.clients} clients for {args.reference_seconds:.0f} s, no sync",
            reference,
            reference["consistency"],
            1,
        )
    writer_figures = results["writer"]
    show(
        f"load: {args.clients} clients for {args.seconds:.0f} s while a sync writes "
        f"({writer_figures['pages']:,} pages, {writer_figures['records']:,} records, "
        f"{writer_figures['new_calls']:,} new calls; runs {writer_figures['runs']})",
        results["load"],
        results["load"]["consistency"],
        results["page_boundary_states"],
    )
    print(
        f"  after the writer stopped, answers "
        f"{'equal' if results['final']['answers_equal_store'] else 'DIFFER FROM'} the store "
        f"counted directly ({results['final']['writer_calls_in_store']:,} writer calls)"
    )
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
