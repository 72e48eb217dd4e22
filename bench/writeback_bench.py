"""Write-back benchmark: write requests against ceil(changes / batch size), seconds, re-push cost.

    .venv/bin/python -m bench.writeback_bench [--reps 1000] [--engines sqlite postgresql]

For each simulated CRM (HubSpot over HTTP, Salesforce over HTTPS with a test CA) with ``--reps``
users, and each store engine: the reps and their month targets for 3 KPIs are stored, then

- first:   a push into empty fields (HubSpot also creates the group and the 3 properties);
- re-push: the same again with nothing changed (the goal: zero write requests, reads only);
- 10%:     a push after a tenth of the reps' calls targets changed.

Write requests are counted by the simulated CRM (record writes only; property creation is
listed apart) and compared with ceil(records to write / batch size): HubSpot batch updates
take 100 records, Salesforce sObject Collections 200. HubSpot's search (the users' record ids)
is paced at 5 requests a second, as the real portal requires.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from connectors.hubspot import HubSpotConnector
from connectors.mapping import default_mapping
from connectors.records import Rep, Source
from connectors.salesforce import SalesforceConnector
from kpi import KpiContext, Target, put_targets
from models import Rep as RepRow
from models import store
from service.db import make_engine, migrate
from service.writeback.push import PushReport, run_push
from simulators.hubspot.portal import HubSpotPortal, serve_portal
from simulators.salesforce.org import SalesforceOrg, serve_org

POSTGRES_URL = os.environ.get(
    "ISKPI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TOKEN = "bench-token"
NOW = datetime(2026, 11, 16, 3, 0, tzinfo=UTC)
MONTH = date(2026, 11, 1)
CTX = KpiContext(timezone="Asia/Tokyo", now=NOW)


@dataclass
class Crm:
    source: str
    writer: Callable[[], Any]
    write_log: list[tuple[str, str, int]]
    reps: list[tuple[str, str]]  # (crm id, user id)


@contextmanager
def hubspot(reps: int) -> Iterator[Crm]:
    portal = HubSpotPortal(TOKEN)  # search limited to 5 a second, as HubSpot does
    owners = [
        portal.add_owner(email=f"rep{i}@example.jp", first_name="Rep", last_name=str(i))
        for i in range(reps)
    ]
    with serve_portal(portal) as running:
        yield Crm(
            "hubspot",
            lambda: HubSpotConnector(TOKEN, host=running.url),
            portal.write_log,
            [(o, str(portal._owners[o].user_id)) for o in owners],
        )


@contextmanager
def salesforce(reps: int) -> Iterator[Crm]:
    import trustme

    org = SalesforceOrg(daily_api_limit=1_000_000)
    users = [
        org.create(
            "User",
            {
                "Username": f"rep{i}@example.jp",
                "LastName": f"Rep {i}",
                "Email": f"rep{i}@example.jp",
                "IsActive": True,
                "UserType": "Standard",
            },
        )
        for i in range(reps)
    ]
    with serve_org(org, tls=trustme.CA()) as running:
        yield Crm(
            "salesforce",
            lambda: SalesforceConnector(
                running.url, session_id=org.issue_session(), verify=str(running.ca_bundle)
            ),
            org.write_log,
            [(u, u) for u in users],
        )


@contextmanager
def store_engine(kind: str) -> Iterator[Engine]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="iskpi-wb-bench-") as folder:
            engine = make_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
            migrate(engine)
            yield engine
            engine.dispose()
        return
    schema = f"iskpi_wb_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def targets(crm: Crm, calls_bump: int = 0, every: int = 1) -> list[Target]:
    out = []
    for i, (crm_id, _) in enumerate(crm.reps):
        rep = f"{crm.source}:{crm_id}"
        calls = 1_500 + 10 * i + (calls_bump if i % every == 0 else 0)
        out += [
            Target("calls", "month", MONTH, "rep", rep, calls),
            Target("meetings_set", "month", MONTH, "rep", rep, 20 + i % 5),
            Target("won_amount", "month", MONTH, "rep", rep, 2_000_000 + 1_234.5 * i),
        ]
    return out


def measure(engine: Engine, crm: Crm, label: str) -> dict[str, Any]:
    writes_before = len(crm.write_log)
    writer = crm.writer()
    began = time.perf_counter()
    report: PushReport = run_push(
        engine, writer, default_mapping().sources[crm.source], CTX, requested_by="bench"
    )
    seconds = time.perf_counter() - began
    log = crm.write_log[writes_before:]
    record_writes = [n for kind, _, n in log if kind == "records"]
    return {
        "run": label,
        "changes": report.planned,
        "records": report.records,
        "batch": report.batch_size,
        "expected": math.ceil(report.records / report.batch_size) if report.records else 0,
        "writes": len(record_writes),
        "schema": sum(kind == "schema" for kind, _, _ in log),
        "reads": report.api_calls
        - report.write_requests
        - sum(kind == "schema" for kind, _, _ in log),
        "api_calls": report.api_calls,
        "seconds": seconds,
        "status": report.status,
    }


def run(source: Source, engine_kind: str, reps: int) -> list[dict[str, Any]]:
    factory = hubspot if source == "hubspot" else salesforce
    with factory(reps) as crm, store_engine(engine_kind) as engine:
        rows = [
            Rep(
                source=source,
                crm_id=crm_id,
                name=f"Rep {i}",
                user_id=user_id,
            ).as_row()
            for i, (crm_id, user_id) in enumerate(crm.reps)
        ]
        with engine.begin() as conn:
            store.upsert_records(conn, RepRow, rows, NOW)
        put_targets(engine, targets(crm))
        results = [measure(engine, crm, "first push"), measure(engine, crm, "re-push")]
        put_targets(engine, targets(crm, calls_bump=50, every=10))
        results.append(measure(engine, crm, "10% changed"))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1_000)
    parser.add_argument(
        "--engines", nargs="+", default=["sqlite"], choices=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--sources", nargs="+", default=["hubspot", "salesforce"], choices=["hubspot", "salesforce"]
    )
    args = parser.parse_args()
    header = (
        f"{'CRM':<11}{'store':<11}{'run':<13}{'changes':>8}{'records':>8}{'batch':>6}"
        f"{'ceil':>6}{'writes':>7}{'schema':>7}{'reads':>6}{'calls':>6}{'seconds':>9}"
    )
    print(f"{args.reps:,} reps x 3 KPIs")
    print(header)
    print("-" * len(header))
    sources: list[Source] = args.sources
    for source in sources:
        for engine_kind in args.engines:
            for r in run(source, engine_kind, args.reps):
                print(
                    f"{source:<11}{engine_kind:<11}{r['run']:<13}{r['changes']:>8,}"
                    f"{r['records']:>8,}{r['batch']:>6}{r['expected']:>6}{r['writes']:>7}"
                    f"{r['schema']:>7}{r['reads']:>6}{r['api_calls']:>6}"
                    f"{r['seconds']:>9.2f}"
                )


if __name__ == "__main__":
    main()
