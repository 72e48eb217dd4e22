"""API benchmark: GET /v1/kpis under `iskpi serve` on PostgreSQL, from another process.

    .venv/bin/python -m bench.api_bench [--calls 5000000] [--seconds 20] [--clients 1 32]

It builds the KPI benchmark's store (bench.kpi_bench: --calls calls over 50
reps and 12 months) in a fresh PostgreSQL schema, then measures the query a BI
tool asks most — every KPI, month grain, rep scope, for the year:

- compute: ``kpi.compute`` in process (median of 5);
- cold API: the same over HTTP with the response cache off (ISKPI_API_CACHE_MB=0),
  so every request computes and serializes (median of 5), and its ratio to compute;
- load: `iskpi serve` as it ships (cache on), --clients concurrent clients in a
  separate process for --seconds each: requests per second, p50 and p99 latency.
  Clients ask for gzip and read the raw body (as BI connectors do), so the
  client's own decompression is not in the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx

from bench.kpi_bench import (
    HOLIDAYS,
    POSTGRES_URL,
    TIMEZONE,
    YEAR_END,
    YEAR_START,
    fresh_engine,
    generate,
)

TOKEN = "bench-read-token"
QUERY = {
    "grain": "month",
    "scope": "rep",
    "from": YEAR_START.isoformat(),
    "to": YEAR_END.isoformat(),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(schema: str, cache_mb: int) -> Iterator[str]:
    """`iskpi serve` in its own process on the benchmark schema; yields its base URL."""
    port = free_port()
    options = quote(f"-csearch_path={schema}")
    env = {
        **os.environ,
        "ISKPI_DATABASE_URL": f"{POSTGRES_URL}?options={options}",
        "ISKPI_TIMEZONE": TIMEZONE,
        "ISKPI_HOLIDAYS": HOLIDAYS,
        "ISKPI_READ_TOKENS": TOKEN,
        "ISKPI_API_CACHE_MB": str(cache_mb),
    }
    iskpi = os.path.join(os.path.dirname(sys.executable), "iskpi")
    process = subprocess.Popen(
        [iskpi, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("iskpi serve did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def timed_get(client: httpx.Client, url: str) -> float:
    began = time.perf_counter()
    with client.stream("GET", f"{url}/v1/kpis", params=QUERY) as response:
        for _ in response.iter_raw():
            pass
        response.raise_for_status()
    return time.perf_counter() - began


def headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", "Accept-Encoding": "gzip"}


def load_child(url: str, clients: int, seconds: float) -> dict[str, Any]:
    """Run in a separate process: ``clients`` threads asking as fast as answers come."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client_loop() -> None:
        nonlocal errors
        with httpx.Client(headers=headers(), timeout=60) as client:
            while time.perf_counter() < stop:
                try:
                    took = timed_get(client, url)
                except httpx.HTTPError:
                    with lock:
                        errors += 1
                    continue
                with lock:
                    latencies.append(took)

    began = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def run_load(url: str, clients: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.api_bench", "--load-child", url, str(clients), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--load-child":
        url, clients, seconds = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
        print(json.dumps(load_child(url, clients, seconds)))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=5_000_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()

    from kpi import KpiContext, compute, ensure_rollups

    ctx = KpiContext(timezone=TIMEZONE, holidays=HOLIDAYS)
    engine, drop = fresh_engine("postgresql", "api")
    results: dict[str, Any] = {"calls": args.calls}
    try:
        began = time.perf_counter()
        with engine.begin() as conn:
            results["rows"] = generate(conn, args.calls)
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
        with engine.begin() as conn:
            ensure_rollups(conn, ctx)
        print(
            f"# store of {results['rows']} built in {time.perf_counter() - began:.0f} s", flush=True
        )
        with engine.connect() as conn:
            schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()

        def compute_once() -> int:
            return len(
                compute(engine, ctx, grain="month", start=YEAR_START, end=YEAR_END, scope="rep")
            )

        compute_once()  # warm: plans, caches
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            row_count = compute_once()
            times.append(time.perf_counter() - t0)
        results["compute_s"] = statistics.median(times)
        results["kpi_rows"] = row_count
        print(f"compute in process: {results['compute_s']:.3f} s ({row_count:,} rows)", flush=True)

        with (
            serve(schema, cache_mb=0) as url,
            httpx.Client(headers=headers(), timeout=120) as client,
        ):
            timed_get(client, url)  # warm
            cold = [timed_get(client, url) for _ in range(5)]
        results["cold_api_s"] = statistics.median(cold)
        results["cold_ratio"] = results["cold_api_s"] / results["compute_s"]
        print(
            f"API, cache off: {results['cold_api_s']:.3f} s = {results['cold_ratio']:.2f}x compute",
            flush=True,
        )

        results["load"] = []
        with serve(schema, cache_mb=256) as url:
            for clients in args.clients:
                figures = run_load(url, clients, args.seconds)
                results["load"].append(figures)
                print(
                    f"load, {clients} clients, {args.seconds:.0f} s: {figures['rps']:.1f} req/s, "
                    f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
                    f"{figures['errors']} errors",
                    flush=True,
                )
    finally:
        drop()
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
