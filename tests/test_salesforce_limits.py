"""Salesforce's two REQUEST_LIMIT_EXCEEDED, deal types and users' created dates, end to end.

The real simple-salesforce client against the simulated org over HTTPS (a trustme CA),
``run_sync`` into both stores. Salesforce answers 403 REQUEST_LIMIT_EXCEEDED both when the
daily API allowance is spent ("TotalRequests Limit exceeded.") and when too many of the org's
requests run long at once ("ConcurrentPerOrgLongTxn Limit exceeded."): the first stops the run
cleanly, the second passes in seconds and is waited out.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trustme
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from connectors.salesforce import SalesforceConnector
from models import Call, Deal, Lead, Rep
from service.sync.run import run_sync
from simulators.salesforce.org import RunningOrg, SalesforceOrg, serve_org
from simulators.salesforce.seed import generate_org_dataset
from simulators.salesforce.store import OrgDataset
from tests.support.salesforce import ca

__all__ = ["ca"]

END = datetime(2026, 10, 31, 12, tzinfo=UTC)
RUN = END + timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def dataset() -> OrgDataset:
    return generate_org_dataset(
        seed=11, teams=2, reps_per_team=2, months=1, end=END, calls_per_rep_day=6
    )


@pytest.fixture
def org(ca: trustme.CA, dataset: OrgDataset) -> Iterator[RunningOrg]:
    sf = SalesforceOrg(clock=lambda: RUN)
    sf.load(dataset)
    running = serve_org(sf, tls=ca)
    try:
        yield running
    finally:
        running.stop()


def connector(org: RunningOrg, **options: Any) -> SalesforceConnector:
    options.setdefault("sleep", lambda _: None)
    return SalesforceConnector(
        org.url, session_id=org.org.issue_session(), verify=str(org.ca_bundle), **options
    )


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def test_concurrent_long_txn_for_a_second_is_waited_out(
    engine: Engine, org: RunningOrg, dataset: OrgDataset
) -> None:
    org.org.faults.concurrent_limit_for_seconds = 1.0
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    began = time.monotonic()
    report = run_sync(engine, connector(org, sleep=wait), clock=lambda: RUN)
    assert report.status == "ok", report.error
    injected = org.org.faults.injected
    assert injected == len(waits) >= 2  # each refusal waited once, with a growing backoff
    assert sum(waits) >= 1.0 - 0.1 and time.monotonic() - began >= 1.0
    assert all(b >= a / 2 for a, b in zip(waits, waits[1:], strict=False))  # backoff, jittered
    assert count(engine, Lead) == dataset.count("Lead")
    assert count(engine, Deal) == dataset.count("Opportunity")


def test_a_concurrency_limit_that_outlasts_the_retries_fails_the_stream_not_as_quota(
    engine: Engine, org: RunningOrg
) -> None:
    org.org.faults.concurrent_limit_for_seconds = 3600.0
    report = run_sync(engine, connector(org, max_retries=2), clock=lambda: RUN)
    assert report.status == "failed"  # every stream: a transient failure, retried next run
    assert report.error is not None and "ConcurrentPerOrgLongTxn" in report.error
    assert "3 times" in report.error and "allowance is spent" not in report.error


def test_the_daily_quota_still_stops_the_run_as_partial(engine: Engine, org: RunningOrg) -> None:
    sent = 0

    def after_a_few() -> Callable[[], None]:
        def hook() -> None:
            nonlocal sent
            sent += 1
            if sent == 6:
                org.org.faults.request_limit_exceeded = True  # TotalRequests Limit exceeded.

        return hook

    waits: list[float] = []
    report = run_sync(
        engine, connector(org, on_request=after_a_few(), sleep=waits.append), clock=lambda: RUN
    )
    assert report.status == "partial"
    assert report.error is not None and "REQUEST_LIMIT_EXCEEDED" in report.error
    assert "TotalRequests" in report.error and "allowance is spent" in report.error
    assert waits == []  # not retried
    assert sum(report.records.values()) > 0  # the pages before it are kept


def test_deal_types_and_users_created_dates_reach_the_store(
    engine: Engine, org: RunningOrg, dataset: OrgDataset
) -> None:
    assert run_sync(engine, connector(org), clock=lambda: RUN).status == "ok"

    def kind(value: Any) -> str | None:
        if value == "New Customer":
            return "new"
        return "existing" if str(value).startswith("Existing Customer") else None

    expected = Counter(kind(r.fields.get("Type")) for r in dataset.of("Opportunity"))
    created = {
        r.id: EPOCH + timedelta(milliseconds=r.created_ms)
        for r in dataset.of("User")
        if r.fields.get("UserType") == "Standard"
    }
    with Session(engine) as session:
        stored = Counter(d.deal_type for d in session.scalars(select(Deal)))
        reps = {r.crm_id: r.crm_created_at for r in session.scalars(select(Rep))}
    assert stored == expected and stored["new"] > stored["existing"] > 0
    assert {crm_id[:15]: at for crm_id, at in reps.items()} == {
        crm_id[:15]: at for crm_id, at in created.items()
    }
    assert count(engine, Call) > 0
