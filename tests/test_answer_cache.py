"""Cached answers follow what they read: a sync page of today leaves July cached.

The store is the planning history (tests/support/planning.py; "now" 15 Oct 2026 JST): July
has 2 org calls (jul1, jul2), 1 won deal of 100,000 (d-jul); August 8 calls, no deal won;
today (15 Oct) nothing yet. Each page below is written as run_sync writes one, and each
request checks the versions afresh (as another process's sync would need). "Builds" count
the answers computed, not served from the cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

import kpi.changes
from connectors.hubspot import HubSpotConnector
from connectors.records import Lead, Rep
from kpi import KpiContext, flush_rollups, record_all
from kpi.rollups import mark_whole_source
from models import Call, DataChange
from service.app import create_app
from service.cache import ResponseCache
from service.sync.run import run_sync
from simulators.hubspot.portal import RunningPortal
from tests.support.api import ADMIN, auth, settings_for
from tests.support.hubspot import TOKEN, small_portal
from tests.support.kpi_records import at, call, put
from tests.support.planning import CTX, HISTORY, NOW, PEOPLE, deal, meeting
from tests.support.sync_pages import build_rollups, store_page

TODAY = "2026-10-15"
JULY = {"kpi": "calls", "grain": "month", "from": "2026-07-01", "to": "2026-07-31"}
TODAY_CALLS = {"kpi": "calls", "grain": "day", "from": TODAY, "to": TODAY}


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    put(engine, HISTORY)
    app = create_app(settings_for().model_copy(update={"now": NOW}), engine)
    with TestClient(app) as test_client:
        build_rollups(engine, app.state.kpi)
        app.state.data_version.check_seconds = 0
        yield test_client


def ctx_of(client: TestClient) -> KpiContext:
    ctx = client.app.state.kpi  # type: ignore[attr-defined]
    assert isinstance(ctx, KpiContext)
    return ctx


def builds(client: TestClient) -> int:
    cache = client.app.state.kpi_cache  # type: ignore[attr-defined]
    assert isinstance(cache, ResponseCache)
    return cache.misses


def value(client: TestClient, **params: Any) -> Any:
    response = client.get("/v1/kpis", params=params, headers=auth())
    assert response.status_code == 200, response.text
    [row] = response.json()["data"]
    return row["value"]


def funnel_calls(client: TestClient, month: str) -> Any:
    response = client.get("/v1/funnel", params={"month": month}, headers=auth())
    assert response.status_code == 200, response.text
    return next(s["actual"] for s in response.json()["stages"] if s["stage"] == "calls")


# Given rates but the effective contact rate: derived from July–September,
# (1 + 3 + 0) effective / (2 + 8 + 0) calls = 0.4; 2 won ÷ 0.5 = 4 meetings ÷ 0.5 = 8
# contacts ÷ 0.4 = 20 calls.
PLAN = {"won_target": 2, "meeting_win_rate": 0.5, "meeting_conversion_rate": 0.5}


def plan_calls(client: TestClient) -> Any:
    response = client.post("/v1/plan", json=PLAN, headers=auth())
    assert response.status_code == 200, response.text
    return next(s["value"] for s in response.json()["steps"] if s["stage"] == "calls")


def test_a_page_of_today_leaves_july_cached_and_moves_today(client: TestClient) -> None:
    assert value(client, **JULY) == 2
    assert value(client, **TODAY_CALLS) == 0
    before = builds(client)
    assert value(client, **JULY) == 2
    assert builds(client) == before  # asked again: from the cache
    store_page(engine_of(client), ctx_of(client), [call("new1", "2026-10-15T02:00")])
    assert value(client, **JULY) == 2
    assert builds(client) == before  # July is not what the page changed
    assert value(client, **TODAY_CALLS) == 1
    assert builds(client) == before + 1  # today's answer was computed again


def test_a_call_moved_from_july_to_today_changes_both(client: TestClient) -> None:
    assert value(client, **JULY) == 2
    assert value(client, **TODAY_CALLS) == 0
    before = builds(client)
    # jul2 (2 July) is edited in the CRM to today: July loses it, today gains it.
    store_page(
        engine_of(client),
        ctx_of(client),
        [call("jul2", "2026-10-15T02:00", "no_answer", rep_crm_id="r1")],
    )
    assert value(client, **JULY) == 1
    assert value(client, **TODAY_CALLS) == 1
    assert builds(client) == before + 2


def test_a_target_put_invalidates(client: TestClient) -> None:
    response = client.get("/v1/kpis", params=JULY, headers=auth())
    [row] = response.json()["data"]
    assert (row["target"], row["achievement"]) == (None, None)
    target = {"kpi": "calls", "grain": "month", "period_start": "2026-07-01", "scope": "org"}
    put_target = client.put("/v1/targets", json=[{**target, "value": 4}], headers=auth(ADMIN))
    assert put_target.status_code == 200, put_target.text
    [row] = client.get("/v1/kpis", params=JULY, headers=auth()).json()["data"]
    assert (row["value"], row["target"], row["achievement"]) == (2, 4, 0.5)  # 2 calls of 4


def test_a_deal_change_invalidates_won_amount_of_its_period_only(client: TestClient) -> None:
    july = {**JULY, "kpi": "won_amount"}
    august = {**july, "from": "2026-08-01", "to": "2026-08-31"}
    assert value(client, **july) == 100_000  # d-jul
    assert value(client, **august) == 0  # d-aug1..3 lost
    before = builds(client)
    # d-aug3 (created 4 August, closed 24 August) is won after all.
    won = deal("d-aug3", "2026-08-24T01:00", True, "r2")
    store_page(engine_of(client), ctx_of(client), [won])
    assert value(client, **july) == 100_000
    assert builds(client) == before  # July is cached still
    assert value(client, **august) == 100_000
    assert builds(client) == before + 1


def test_funnel_and_plan_are_cached_and_follow_the_days_they_read(client: TestClient) -> None:
    assert funnel_calls(client, "2026-07") == 2
    assert plan_calls(client) == 20
    before = builds(client)
    assert (funnel_calls(client, "2026-07"), plan_calls(client)) == (2, 20)
    assert builds(client) == before  # both from the cache
    store_page(engine_of(client), ctx_of(client), [call("new1", "2026-10-15T02:00")])
    assert (funnel_calls(client, "2026-07"), plan_calls(client)) == (2, 20)
    assert builds(client) == before  # today is neither July nor July–September
    # An effective August call (2 minutes): 5 effective / 11 calls; 8 ÷ 5/11 = 17.6 → 18 calls.
    store_page(
        engine_of(client),
        ctx_of(client),
        [call("aug9", "2026-08-07T01:00", duration_ms=120_000, rep_crm_id="r2")],
    )
    assert plan_calls(client) == 18
    assert funnel_calls(client, "2026-07") == 2
    assert builds(client) == before + 1  # the plan only: the July funnel is cached still
    # A July call: the July funnel follows.
    store_page(engine_of(client), ctx_of(client), [call("jul3", "2026-07-03T01:00")])
    assert funnel_calls(client, "2026-07") == 3


def test_forecast_follows_a_page_of_today(client: TestClient) -> None:
    params = {"kpi": "calls"}

    def actual() -> Any:
        response = client.get("/v1/forecast", params=params, headers=auth())
        assert response.status_code == 200, response.text
        [row] = response.json()["data"]
        return row["actual"]

    assert actual() == 3  # oct0..oct2
    before = builds(client)
    assert actual() == 3
    assert builds(client) == before
    store_page(engine_of(client), ctx_of(client), [call("new1", "2026-10-15T02:00")])
    assert actual() == 4


def engine_of(client: TestClient) -> Engine:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    assert isinstance(engine, Engine)
    return engine


def test_a_first_touch_today_moves_the_response_time_of_its_leads_month(
    client: TestClient,
) -> None:
    lead = Lead(source="hubspot", crm_id="lead-jul", created_at=at("2026-07-10T01:00"))
    store_page(engine_of(client), ctx_of(client), [lead])
    response_time = {**JULY, "kpi": "lead_response_minutes"}
    assert value(client, **response_time) is None  # no lead of July was touched
    assert value(client, **JULY) == 2
    before = builds(client)
    # Today's first call to it: 10 July 01:00 → 15 October 02:00 UTC is 97 days and an
    # hour, 97 × 1,440 + 60 = 139,740 minutes.
    store_page(
        engine_of(client),
        ctx_of(client),
        [call("new1", "2026-10-15T02:00", contact_crm_id="lead-jul", rep_crm_id="r1")],
    )
    assert value(client, **JULY) == 2
    assert builds(client) == before  # July's calls are not what the page changed
    assert value(client, **response_time) == 139_740
    assert builds(client) == before + 1


def changes(engine: Engine) -> list[tuple[str, str, date | None, date | None]]:
    t = DataChange.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.c.source, t.c.kind, t.c.first_day, t.c.last_day).order_by(t.c.id)
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def clear_changes(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(DataChange.__table__.delete())


def test_the_change_log_holds_each_pages_days_before_and_after(engine: Engine) -> None:
    put(engine, HISTORY)
    build_rollups(engine, CTX)
    # jul2 moved to today (15 Oct JST): 2 July before the upsert, 15 October after.
    store_page(engine, CTX, [call("jul2", "2026-10-15T02:00", "no_answer", rep_crm_id="r1")])
    assert changes(engine) == [
        ("hubspot", "days", date(2026, 7, 2), date(2026, 7, 2)),
        ("hubspot", "days", date(2026, 10, 15), date(2026, 10, 15)),
    ]
    # A deal: created 4 August, closed 24 August (before and after alike).
    store_page(engine, CTX, [deal("d-aug3", "2026-08-24T01:00", True, "r2")])
    assert changes(engine)[2:] == [("hubspot", "days", date(2026, 8, 4), date(2026, 8, 24))] * 2
    # A meeting booked 3 July (m-jul) re-booked on 7 August.
    store_page(engine, CTX, [meeting("m-jul", "2026-08-07T01:00", "r1")])
    assert changes(engine)[4:] == [
        ("hubspot", "days", date(2026, 7, 3), date(2026, 7, 3)),
        ("hubspot", "days", date(2026, 8, 7), date(2026, 8, 7)),
    ]
    clear_changes(engine)
    # A rep as it was (re-read every run): nothing; renamed: anything of the source.
    aiko = PEOPLE[1]
    assert isinstance(aiko, Rep)
    store_page(engine, CTX, [aiko])
    store_page(engine, CTX, [replace(aiko, modified_at=at("2026-10-15T02:00"))])  # touched
    assert changes(engine) == []
    store_page(engine, CTX, [replace(aiko, name="Aiko Sato")])
    assert changes(engine) == [("hubspot", "all", None, None)]
    # A first sync marks the source as a whole: its pages record it all.
    with engine.begin() as conn:
        mark_whole_source(conn, "hubspot")
    store_page(engine, CTX, [call("new1", "2026-10-15T02:00")])
    assert changes(engine)[1:] == [("hubspot", "all", None, None)]


def test_old_changes_are_pruned_at_a_flush(engine: Engine, monkeypatch: Any) -> None:
    monkeypatch.setattr(kpi.changes, "KEEP_CHANGES", 2)
    build_rollups(engine, CTX)
    with engine.begin() as conn:
        for _ in range(5):
            record_all(conn, "hubspot")
        flush_rollups(conn, CTX, "hubspot")
    t = DataChange.__table__
    with engine.connect() as conn:
        ids = conn.execute(select(t.c.id).order_by(t.c.id)).scalars().all()
    assert len(ids) == 2 and ids[1] - ids[0] == 1  # the newest two


@pytest.fixture
def portal() -> Iterator[RunningPortal]:
    with small_portal() as running:
        yield running


def test_a_sync_records_what_its_pages_changed(engine: Engine, portal: RunningPortal) -> None:
    hub = portal.portal
    hubspot = HubSpotConnector(TOKEN, host=portal.url, sleep=lambda _: None)
    # Without a KPI context nothing works the days out: each page changes anything.
    run_sync(engine, hubspot)
    assert {kind for _, kind, _, _ in changes(engine)} == {"all"}
    clear_changes(engine)
    # With one, a first sync (--full) rewrites the source: anything again (deals also say
    # their days, as they always do).
    run_sync(engine, hubspot, full=True, kpi=CTX)
    assert {kind for _, kind, _, _ in changes(engine)} == {"all", "days"}
    clear_changes(engine)
    # An incremental run: a call moved to 30 October (JST) changes its old day and that one.
    moved = hub.ids("calls")[3]
    with engine.connect() as conn:
        old = conn.execute(select(Call.occurred_at).where(Call.crm_id == moved)).scalar_one()
    old_day = old.astimezone(CTX.zone).date()
    hub.update(
        "calls", moved, {"hs_timestamp": "2026-10-30T01:00:00.000Z"}, modified_at=datetime.now(UTC)
    )
    assert run_sync(engine, hubspot, kpi=CTX).status == "ok"
    recorded = changes(engine)
    assert ("hubspot", "days", old_day, old_day) in recorded
    assert ("hubspot", "days", date(2026, 10, 30), date(2026, 10, 30)) in recorded
    assert all(kind != "all" for _, kind, _, _ in recorded)  # the owners were as they were


def test_a_rep_level_put_invalidates_the_answers_of_its_source(client: TestClient) -> None:
    assert value(client, **JULY) == 2
    before = builds(client)
    response = client.put("/v1/reps/hubspot:r1", json={"level": "senior"}, headers=auth(ADMIN))
    assert response.status_code == 200, response.text
    assert value(client, **JULY) == 2
    assert builds(client) == before + 1  # computed again: the store moved under it
