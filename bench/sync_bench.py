"""Sync benchmark: requests per 100 records, records per second, store overhead, peak memory.

    .venv/bin/python -m bench.sync_bench [--calls 100000 1000000] [--engines sqlite postgresql]

For each portal size a simulated HubSpot portal runs in its own process. Each
measurement runs in a fresh child process (so its peak RSS is its own):

- fetch: the same client pulls every page of every stream, mapping them, storing nothing;
- full:  `run_sync` into an empty store (the fetch plus the store);
- noop:  an incremental run right after, with nothing changed;
- incr:  an incremental run after 1% of the calls were modified.

Prints medians over --repeat runs and the ratios the goals are stated in.
"""

from __future__ import annotations

import argparse
import json
import os
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


def child(mode: str, portal_url: str, database_url: str, schema: str | None) -> dict[str, Any]:
    from connectors.hubspot import HubSpotConnector
    from service.db import make_engine, migrate
    from service.sync.run import run_sync

    connector = HubSpotConnector(TOKEN, host=portal_url)
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
    mode: str, portal_url: str, database_url: str = "", schema: str | None = None
) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.sync_bench",
            "--child",
            mode,
            portal_url,
            database_url,
            schema or "",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


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


def bench(calls: int, engines: list[str], repeat: int) -> dict[str, Any]:
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
            fulls, noops, incrs = [], [], []
            for i in range(repeat):
                url, schema = fresh_store(engine_name, str(calls))
                try:
                    fulls.append(run_child("full", portal.url, url, schema))
                    noops.append(run_child("noop", portal.url, url, schema))
                    if i == 0:
                        portal.command(f"touch calls {calls // 100}")
                        incrs.append(run_child("incr", portal.url, url, schema))
                finally:
                    drop_store(url, schema)
            full_s = statistics.median(f["seconds"] for f in fulls)
            full = fulls[0]
            noop = noops[0]
            incr = incrs[0]
            row = {
                "full_seconds": full_s,
                "records": full["records"],
                "records_per_second": full["records"] / full_s,
                "full_requests_per_100": per100(full["requests"], full["records"]),
                "full_to_fetch_ratio": full_s / fetch_s,
                "noop_requests": noop["requests"],
                "noop_streams": len(noop["per_stream"]),
                "incr_records": incr["records"],
                "incr_requests_per_100": per100(incr["requests"], incr["records"]),
                "peak_rss_mb": max(f["peak_rss_mb"] for f in fulls),
            }
            figures[engine_name] = row
            print(
                f"{engine_name}: full sync {row['records']:,} records in {full_s:.1f} s (median of {repeat}) = "
                f"{row['records_per_second']:,.0f} records/s; {row['full_requests_per_100']:.3f} requests per 100 records; "
                f"full / fetch-only = {row['full_to_fetch_ratio']:.2f}; "
                f"no-change run: {row['noop_requests']} requests over {row['noop_streams']} streams; "
                f"incremental after 1% modified: {row['incr_records']:,} records, "
                f"{row['incr_requests_per_100']:.3f} requests per 100; peak RSS {row['peak_rss_mb']:.0f} MB"
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
    args = parser.parse_args()
    results = [
        bench(n, args.engines, args.repeat if n <= 200_000 else args.repeat_large)
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
            a, b = small[engine_name]["peak_rss_mb"], large[engine_name]["peak_rss_mb"]
            print(f"{engine_name} full-sync peak RSS {a:.0f} MB vs {b:.0f} MB: {b / a:.2f}x")


if __name__ == "__main__":
    main()
