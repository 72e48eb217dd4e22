"""Fault benchmark: the README's table of faults injected during syncs, and what they cost.

    .venv/bin/python -m bench.fault_bench [--seeds 8] [--keep report.jsonl]

Runs tests/test_faults.py (both CRMs, SQLite and PostgreSQL) once per seed, each test
appending its figures to a report (ISKPI_FAULT_REPORT), and prints one row per fault and
CRM, summed over the engines and seeds: times injected, records lost, records duplicated,
KPI differences. The goal is 0, 0, 0 on every row; the tests fail otherwise. A seed moves
the points at which `iskpi sync` is killed (ISKPI_FAULT_SEED).

*Lost* counts baseline records whose exact content is not in the store (missing or stale),
*duplicated* store rows beyond one per record or not in the baseline, *KPI differences* the
KPI rows (all KPIs, month grain, rep scope, from rollups and from raw rows) unlike the
baseline's. Needs PostgreSQL on 127.0.0.1:5432 (ISKPI_TEST_POSTGRES_URL overrides).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ORDER = (
    "rate-limit storm",
    "5xx bursts",
    "SIGKILL mid-sync, then rerun",
    "PostgreSQL backend terminated mid-page",
    "SQLite write failing mid-page",
    "access token expired mid-sync",
    "records created, modified, deleted during a sync",
)
DESCRIPTION = {
    "rate-limit storm": {
        "hubspot": "429 storm: every 3rd request for a scaled minute (3 s; 20 ms windows)",
        "salesforce": "rate-limit storm: every 3rd request 403 REQUEST_LIMIT_EXCEEDED "
        "for 1.5 s (Salesforce never answers 429); runs retried every 0.25 s",
    },
    "5xx bursts": dict.fromkeys(
        ("hubspot", "salesforce"),
        "5xx bursts of 2, 5, 7, 3, 4 responses (the 7 outlasts the six retries: "
        "partial run, then a rerun)",
    ),
    "SIGKILL mid-sync, then rerun": dict.fromkeys(
        ("hubspot", "salesforce"),
        "`iskpi sync` killed with SIGKILL at random points (mid-request, or right "
        "after a page commit), then run again",
    ),
    "PostgreSQL backend terminated mid-page": dict.fromkeys(
        ("hubspot", "salesforce"),
        "PostgreSQL backend terminated mid-page (twice), and the sync lock's "
        "connection (once); then a rerun",
    ),
    "SQLite write failing mid-page": dict.fromkeys(
        ("hubspot", "salesforce"),
        "SQLite write failing mid-page (an injected disk I/O error, twice); then a rerun",
    ),
    "access token expired mid-sync": {
        "hubspot": "access token expired mid-sync: the run fails naming "
        "ISKPI_HUBSPOT_ACCESS_TOKEN; the next completes",
        "salesforce": "access token expired mid-sync (twice): refreshed through the "
        "connected app, the run goes on",
    },
    "records created, modified, deleted during a sync": dict.fromkeys(
        ("hubspot", "salesforce"),
        "records created, modified and deleted in the CRM during a sync (3 rounds); "
        "the next run converges on the CRM's final state",
    ),
}


def run_tests(seed: int, report: Path) -> float:
    env = {**os.environ, "ISKPI_FAULT_REPORT": str(report), "ISKPI_FAULT_SEED": str(seed)}
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_faults.py"],
        env=env,
        check=True,
    )
    return time.perf_counter() - began


def table(lines: list[dict[str, Any]]) -> str:
    rows: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"injected": 0, "lost": 0, "duplicated": 0, "kpi_differences": 0, "engines": set()}
    )
    for line in lines:
        row = rows[(line["fault"], line["crm"])]
        for key in ("injected", "lost", "duplicated", "kpi_differences"):
            row[key] += line[key]
        row["engines"].add({"postgresql": "PostgreSQL", "sqlite": "SQLite"}[line["engine"]])
    out = [
        "| fault | CRM | stores | times injected | records lost | records duplicated "
        "| KPI differences |",
        "|---|---|---|---|---|---|---|",
    ]
    known = {fault: i for i, fault in enumerate(ORDER)}
    for (fault, crm), row in sorted(rows.items(), key=lambda kv: (known.get(kv[0][0], 99), kv[0])):
        name = DESCRIPTION.get(fault, {}).get(crm, fault)
        crm_name = "HubSpot" if crm == "hubspot" else "Salesforce"
        out.append(
            f"| {name} | {crm_name} | {', '.join(sorted(row['engines']))} | {row['injected']:,} "
            f"| {row['lost']} | {row['duplicated']} | {row['kpi_differences']} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[8])
    parser.add_argument("--keep", type=Path, help="keep the raw JSON lines here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        report = args.keep or Path(folder) / "faults.jsonl"
        report.unlink(missing_ok=True)
        seconds = [run_tests(seed, report) for seed in args.seeds]
        lines = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    print()
    print(table(lines))
    print()
    print(
        f"{len(lines)} fault tests over {len(args.seeds)} run(s) (seeds {args.seeds}), "
        f"{sum(seconds):.0f} s; every row's goal is 0, 0, 0"
    )


if __name__ == "__main__":
    main()
