"""GET /v1/meta benchmark: what a dashboard's poll costs, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.meta_bench [--runs 20000] [--polls 2000]

A store with --runs sync runs (two sources, a year of intraday syncs is about 10,000 each)
answers --polls requests in process (Starlette's test client: no network), median each:

- cached: within ISKPI_API_CACHE_CHECK_SECONDS, as nearly every poll is (no query);
- version read: the interval over (check every time), the version unchanged (one query);
- moved: the version read and the run summary re-read, as after each synced page.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, insert

from bench.kpi_bench import fresh_engine
from models import SyncRun
from service.app import create_app
from service.settings import Settings

TOKEN = "bench-read-token"


def fill_runs(engine: Engine, runs: int) -> None:
    start = datetime(2026, 1, 5, tzinfo=UTC)
    rows = [
        {
            "source": ("hubspot", "salesforce")[n % 2],
            "trigger": "schedule",
            "full": False,
            "started_at": start + timedelta(minutes=15 * n),
            "finished_at": start + timedelta(minutes=15 * n + 2),
            "status": "ok" if n % 50 else "partial",
            "records": {"calls": 40},
            "quarantined": 0,
            "api_calls": 12,
            "error": None,
        }
        for n in range(runs)
    ]
    with engine.begin() as conn:
        conn.execute(insert(SyncRun), rows)


def median_ms(client: TestClient, polls: int, before: object = None) -> float:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    times = []
    for _ in range(polls):
        if callable(before):
            before()
        began = time.perf_counter()
        response = client.get("/v1/meta", headers=headers)
        times.append(time.perf_counter() - began)
        assert response.status_code == 200, response.text
    return statistics.median(times) * 1000


def bench(engine_name: str, runs: int, polls: int) -> None:
    engine, drop = fresh_engine(engine_name, "meta")
    try:
        fill_runs(engine, runs)
        settings = Settings(database_url="sqlite://", read_tokens=[SecretStr(TOKEN)])
        app = create_app(settings, engine)
        clock, summaries = app.state.data_version, app.state.run_summaries
        with TestClient(app) as client:
            median_ms(client, 20)  # warm: the audit secret, the pools
            cached = median_ms(client, polls)
            clock.check_seconds = 0
            version = median_ms(client, polls)

            def forget_summary() -> None:
                summaries._version = None  # as if the version had moved

            moved = median_ms(client, max(polls // 10, 10), forget_summary)
        print(
            f"{engine_name:10} {runs:,} runs: cached {cached:.3f} ms, version read "
            f"{version:.3f} ms ({version / cached:.1f}x), moved {moved:.3f} ms "
            f"({moved / cached:.1f}x)"
        )
    finally:
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--polls", type=int, default=2000)
    args = parser.parse_args()
    for engine_name in ("sqlite", "postgresql"):
        bench(engine_name, args.runs, args.polls)


if __name__ == "__main__":
    main()
