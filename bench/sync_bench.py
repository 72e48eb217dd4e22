"""Sync benchmark: requests per 100 records, records per second, store overhead, peak memory.

    .venv/bin/python -m bench.sync_bench [--calls 100000 1000000] [--engines sqlite postgresql]

For each portal size a simulated HubSpot portal runs in its own process. Each
measurement runs in a fresh child process (so its peak RSS is its own):

- fetch: the same client pulls every page of every stream, mapping them, storing nothing;
- full:  `run_sync` into an empty store (the fetch plus the store);
- noop:  an incremental run right after, with nothing changed (wall time of the whole
         `iskpi sync` process as well: imports and start-up included, after one untimed
         `iskpi sync` that builds the KPI rollups the benchmark's own runs leave out);
- incr:  an incremental run after 1% of the calls were modified;
- store: the pages of a full sync fetched first, into memory, then written by `run_sync`
         from a connector that replays them: the store code alone (`--store-only`).

Every full sync is measured right after a fetch-only run of its own, and full ÷ fetch-only
is the median of those pairs' ratios: on a machine whose load changes from minute to
minute, a ratio of medians taken minutes apart says more about the load than the store.
Prints medians over --repeat runs and the ratios the goals are stated in. With
``--compare DIR`` every measurement also runs on the checkout in DIR, alternating with
this one in the same run, and the ratios between the two are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

POSTGRES_URL = os.environ.get(
    "ISKPI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TOKEN = "bench-token"


# --- the child side ---------------------------------------------------------------------------


class Replay:
    """A connector that hands over pages fetched before, without a request."""

    source = "hubspot"

    def __init__(self, streams: Any, pages: dict[str, list[Any]]) -> None:
        self.streams = streams
        self.pages = pages
        self.api_calls = 0

    def pull(self, stream: str, state: Any, *, until: datetime) -> Any:
        yield from self.pages[stream]


def child(mode: str, portal_url: str, database_url: str, schema: str | None) -> dict[str, Any]:
    from connectors.hubspot import HubSpotConnector
    from service.db import make_engine, migrate
    from service.sync.run import run_sync

    connector: Any = HubSpotConnector(TOKEN, host=portal_url)
    if mode == "store":
        # ISKPI_BENCH_PAGES: a file the fetched pages are kept in, so that runs after the
        # first (and another checkout's) replay the same pages without fetching them again.
        cache = os.environ.get("ISKPI_BENCH_PAGES")
        if cache and os.path.exists(cache):
            with open(cache, "rb") as f:
                pages = pickle.load(f)
        else:
            until = datetime.now(UTC)
            pages = {
                s.name: list(connector.pull(s.name, None, until=until)) for s in connector.streams
            }
            if cache:
                with open(cache, "wb") as f:
                    pickle.dump(pages, f)
        connector = Replay(connector.streams, pages)
    began = time.perf_counter()
    if mode == "fetch":
        records = 0
        until = datetime.now(UTC)
        for spec in connector.streams:
            for page in connector.pull(spec.name, None, until=until):
                records += len(page.records) + len(page.rejected)
        result: dict[str, Any] = {"records": records, "per_stream": {}}
    else:
        kwargs: dict[str, Any] = {}
        if schema:
            kwargs["connect_args"] = {"options": f"-csearch_path={schema}"}
        engine = make_engine(database_url, **kwargs)
        migrate(engine)
        began = time.perf_counter()
        report = run_sync(engine, connector, trigger="bench")
        assert report.status == "ok", report.error
        result = {"records": sum(report.records.values()), "per_stream": report.records}
    result["seconds"] = time.perf_counter() - began
    result["requests"] = connector.api_calls
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


# --- the parent side --------------------------------------------------------------------------


def run_child(
    mode: str,
    portal_url: str,
    database_url: str = "",
    schema: str | None = None,
    tree: str | None = None,
) -> dict[str, Any]:
    env = dict(os.environ)
    program = ["-m", "bench.sync_bench"]
    if tree:
        # Another checkout's code under this benchmark (run as a script, so that its
        # modes are this one's), with this virtualenv: the checkout comes first on the path.
        env["PYTHONPATH"] = tree
        program = [os.path.abspath(__file__)]
    out = subprocess.run(
        [
            sys.executable,
            *program,
            "--child",
            mode,
            portal_url,
            database_url,
            schema or "",
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def noop_cli_seconds(
    portal_url: str, database_url: str, schema: str | None, tree: str | None
) -> float:
    """Wall time of a whole `iskpi sync` process with nothing changed: start-up included."""
    env = dict(os.environ)
    env.update(
        ISKPI_DATABASE_URL=database_url,
        ISKPI_HUBSPOT_ACCESS_TOKEN=TOKEN,
        ISKPI_HUBSPOT_BASE_URL=portal_url,
    )
    if schema:
        env["PGOPTIONS"] = f"-csearch_path={schema}"
    if tree:
        env["PYTHONPATH"] = tree
    iskpi = os.path.join(os.path.dirname(sys.executable), "iskpi")
    began = time.perf_counter()
    subprocess.run(
        [iskpi, "sync", "--source", "hubspot"],
        check=True,
        capture_output=True,
        env=env,
    )
    return time.perf_counter() - began


class Portal:
    def __init__(self, calls: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.portal_process", "--calls", str(calls)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def command(self, line: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def fresh_store(engine_name: str, tag: str) -> tuple[str, str | None]:
    if engine_name == "sqlite":
        path = f"/tmp/iskpi-bench-{tag}-{uuid.uuid4().hex[:6]}.db"
        return f"sqlite:///{path}", None
    from service.db import make_engine

    schema = f"iskpi_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return POSTGRES_URL, schema


def drop_store(url: str, schema: str | None) -> None:
    if schema is None:
        for suffix in ("", "-wal", "-shm"):
            path = url.removeprefix("sqlite:///") + suffix
            if os.path.exists(path):
                os.remove(path)
        return
    from service.db import make_engine

    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def per100(requests: float, records: float) -> float:
    return 100 * requests / records if records else float("nan")


def _label(tree: str | None) -> str:
    return "this checkout" if tree is None else tree


def bench(
    calls: int, engines: list[str], repeat: int, trees: list[str | None], store_only: bool
) -> dict[str, Any]:
    began = time.perf_counter()
    portal = Portal(calls)
    print(
        f"\n## {calls:,} calls (portal ready in {time.perf_counter() - began:.0f} s at {portal.url})"
    )
    figures: dict[str, Any] = {"calls": calls}
    try:
        fetches = [run_child("fetch", portal.url) for _ in range(repeat)]
        fetch_s = statistics.median(f["seconds"] for f in fetches)
        fetch = fetches[0]
        print(
            f"fetch only: {fetch['records']:,} records, {fetch['requests']:,} requests "
            f"({per100(fetch['requests'], fetch['records']):.3f} per 100), median {fetch_s:.1f} s, "
            f"peak RSS {max(f['peak_rss_mb'] for f in fetches):.0f} MB"
        )
        figures["fetch_seconds"] = fetch_s
        figures["fetch_peak_rss_mb"] = max(f["peak_rss_mb"] for f in fetches)
        for engine_name in engines:
            runs: dict[str | None, dict[str, list[Any]]] = {
                t: {"full": [], "noop": [], "noop_cli": [], "incr": [], "store": [], "pairs": []}
                for t in trees
            }
            for i in range(repeat):
                # Alternate the checkouts measurement by measurement, so load hits them alike.
                for tree in trees if i % 2 == 0 else trees[::-1]:
                    got = runs[tree]
                    url, schema = fresh_store(engine_name, str(calls))
                    try:
                        paired = run_child("fetch", portal.url)
                        got["full"].append(run_child("full", portal.url, url, schema, tree))
                        got["pairs"].append(got["full"][-1]["seconds"] / paired["seconds"])
                        got["noop"].append(run_child("noop", portal.url, url, schema, tree))
                        noop_cli_seconds(portal.url, url, schema, tree)  # builds the rollups
                        got["noop_cli"].append(noop_cli_seconds(portal.url, url, schema, tree))
                        if i == 0 and tree is None:
                            portal.command(f"touch calls {calls // 100}")
                            got["incr"].append(run_child("incr", portal.url, url, schema, tree))
                    finally:
                        drop_store(url, schema)
                    if store_only:
                        url, schema = fresh_store(engine_name, str(calls))
                        try:
                            got["store"].append(run_child("store", portal.url, url, schema, tree))
                        finally:
                            drop_store(url, schema)
            for tree in trees:
                got = runs[tree]
                full_s = statistics.median(f["seconds"] for f in got["full"])
                full, noop = got["full"][0], got["noop"][0]
                row = {
                    "full_seconds": full_s,
                    "records": full["records"],
                    "records_per_second": full["records"] / full_s,
                    "full_requests_per_100": per100(full["requests"], full["records"]),
                    "full_to_fetch_ratio": statistics.median(got["pairs"]),
                    "full_to_fetch_pairs": got["pairs"],
                    "noop_requests": noop["requests"],
                    "noop_streams": len(noop["per_stream"]),
                    "noop_seconds": statistics.median(f["seconds"] for f in got["noop"]),
                    "noop_cli_seconds": statistics.median(got["noop_cli"]),
                    "peak_rss_mb": max(f["peak_rss_mb"] for f in got["full"]),
                }
                line = (
                    f"{engine_name} [{_label(tree)}]: full sync {row['records']:,} records in "
                    f"{full_s:.1f} s (median of {repeat}) = {row['records_per_second']:,.0f} records/s; "
                    f"{row['full_requests_per_100']:.3f} requests per 100 records; "
                    f"full / fetch-only = {row['full_to_fetch_ratio']:.2f} (median of pairs "
                    f"{', '.join(f'{r:.2f}' for r in got['pairs'])}); "
                    f"no-change run: {row['noop_requests']} requests over {row['noop_streams']} "
                    f"streams, run_sync {row['noop_seconds']:.2f} s, `iskpi sync` process "
                    f"{row['noop_cli_seconds']:.2f} s; peak RSS {row['peak_rss_mb']:.0f} MB"
                )
                if got["incr"]:
                    incr = got["incr"][0]
                    row["incr_records"] = incr["records"]
                    row["incr_requests_per_100"] = per100(incr["requests"], incr["records"])
                    row["incr_seconds"] = incr["seconds"]
                    row["incr_requests"] = incr["requests"]
                    line += (
                        f"; incremental after 1% modified: {row['incr_records']:,} records, "
                        f"{row['incr_requests']:,} requests over {len(incr['per_stream'])} "
                        f"streams ({row['incr_requests_per_100']:.3f} per 100), "
                        f"run_sync {row['incr_seconds']:.2f} s"
                    )
                if got["store"]:
                    store_s = statistics.median(f["seconds"] for f in got["store"])
                    row["store_only_seconds"] = store_s
                    row["store_only_records_per_second"] = got["store"][0]["records"] / store_s
                    line += (
                        f"; store only (pre-fetched pages): {store_s:.1f} s = "
                        f"{row['store_only_records_per_second']:,.0f} records/s"
                    )
                print(line)
                figures.setdefault(engine_name, {})[_label(tree)] = row
            if len(trees) == 2:
                a, b = (figures[engine_name][_label(t)] for t in trees)
                keys = ["full_seconds", "noop_seconds", "noop_cli_seconds"]
                keys += ["store_only_seconds"] if store_only else []
                print(
                    f"{engine_name}: {_label(trees[1])} ÷ {_label(trees[0])}: "
                    + ", ".join(f"{k} {b[k] / a[k]:.2f}×" for k in keys)
                )
    finally:
        portal.stop()
    return figures


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, portal_url, database_url, schema = sys.argv[2:6]
        print(json.dumps(child(mode, portal_url, database_url, schema or None)))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--engines", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per figure at sizes up to 200,000 calls"
    )
    parser.add_argument(
        "--repeat-large", type=int, default=1, help="runs per figure above 200,000 calls"
    )
    parser.add_argument(
        "--compare",
        metavar="DIR",
        help="another checkout (e.g. `git worktree add /tmp/base main`) measured alternately",
    )
    parser.add_argument(
        "--store-only",
        action="store_true",
        help="also write pre-fetched pages by the store code alone (records/s)",
    )
    args = parser.parse_args()
    trees: list[str | None] = [None] + ([os.path.abspath(args.compare)] if args.compare else [])
    results = [
        bench(
            n,
            args.engines,
            args.repeat if n <= 200_000 else args.repeat_large,
            trees,
            args.store_only,
        )
        for n in args.calls
    ]
    if len(results) >= 2:
        small, large = results[0], results[-1]
        print("\n## memory")
        print(
            f"fetch-only peak RSS {small['fetch_peak_rss_mb']:.0f} MB at {small['calls']:,} calls vs "
            f"{large['fetch_peak_rss_mb']:.0f} MB at {large['calls']:,}: "
            f"{large['fetch_peak_rss_mb'] / small['fetch_peak_rss_mb']:.2f}x"
        )
        for engine_name in args.engines:
            here = _label(None)
            a = small[engine_name][here]["peak_rss_mb"]
            b = large[engine_name][here]["peak_rss_mb"]
            print(f"{engine_name} full-sync peak RSS {a:.0f} MB vs {b:.0f} MB: {b / a:.2f}x")


if __name__ == "__main__":
    main()
