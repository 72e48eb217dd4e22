"""The REST API (docs/api.md) through HTTP, on SQLite and PostgreSQL.

The store is the KPI engine's hand-worked October 2026 fixture (tests/support/kpi_records.py:
Asia/Tokyo, JP holidays, 21 business days). Values below are worked out from it:
rep r1 (Aiko) made 5 outbound calls in October JST (c1–c5; c6 falls in November,
c7 is inbound, c8 has no direction, c9 is deleted), 3 of them connected (c1, c2,
c5), 2 of those lasting ≥ 60 s (c1 120 s, c5 60 s; c2 is 59.999 s).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from connectors.hubspot import HubSpotConnector
from connectors.records import Call
from kpi import CATALOG, put_targets
from models import TABLE_BY_KIND, SyncRun, store
from service.app import create_app
from service.cache import StoreVersions
from service.kpi_answers import XLSX_MEDIA_TYPE
from simulators.hubspot.portal import HubSpotPortal, serve_portal
from tests.support.api import ADMIN, READ, WRITE, auth, settings_for
from tests.support.hubspot import TOKEN, small_dataset
from tests.support.kpi_records import FIXTURE, put
from tests.support.planning import HISTORY, PEOPLE, SEED_MONTH, seed_targets
from tests.support.planning import NOW as PLANNING_NOW
from tests.support.sync_pages import store_page


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    put(engine, FIXTURE)
    with TestClient(create_app(settings_for(), engine)) as test_client:
        yield test_client


def get(client: TestClient, path: str, token: str = READ, **params: Any) -> Any:
    response = client.get(path, params=params, headers=auth(token))
    assert response.status_code == 200, response.text
    return response.json()


def rows_by(body: dict[str, Any], *keys: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(row[k] for k in keys): row for row in body["data"]}


def assert_422(response: Any, param: str) -> None:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(param in error["loc"] for error in detail), detail
    assert any(error["msg"].split(":")[0].split(".")[-1] == param for error in detail), detail


# --- /v1/kpis -----------------------------------------------------------------------------------


def test_kpis_month_rep_rows_match_the_hand_worked_fixture(client: TestClient) -> None:
    body = get(
        client,
        "/v1/kpis",
        kpi="calls,connect_rate,effective_contacts",
        grain="month",
        scope="rep",
        **{"from": "2026-10-01", "to": "2026-10-31"},
    )
    rows = rows_by(body, "kpi", "scope_id")
    calls = rows[("calls", "hubspot:r1")]
    assert calls["value"] == 5
    assert calls["scope_name"] == "Aiko"
    assert calls["period_start"] == "2026-10-01"
    assert calls["tier"] == "behavioral" and calls["grain"] == "month"
    # 80–120 calls a business day × 21 business days × 1 active rep.
    assert calls["band"] == {"low": 80 * 21, "high": 120 * 21}
    assert calls["status"] == "below"
    connect = rows[("connect_rate", "hubspot:r1")]
    assert (connect["numerator"], connect["denominator"], connect["value"]) == (3, 5, 0.6)
    assert rows[("effective_contacts", "hubspot:r1")]["value"] == 2
    # Ben (r2): 2 calls (voicemail, wrong number), none connected; Dai (r5): nothing → null rate.
    assert rows[("connect_rate", "hubspot:r2")]["value"] == 0
    assert rows[("connect_rate", "hubspot:r5")]["value"] is None
    # Dense: 3 KPIs × (4 live reps + the deleted r4, who worked in October: c14); ordered by
    # kpi, scope_id.
    assert rows[("calls", "hubspot:r4")]["value"] == 1
    assert len(body["data"]) == 15
    keys = [(r["kpi"], r["scope_id"]) for r in body["data"]]
    assert keys == sorted(keys)
    meta = body["meta"]
    assert meta["from"] == "2026-10-01" and meta["to"] == "2026-10-31"
    assert meta["grain"] == "month" and meta["scope"] == "rep"
    assert meta["timezone"] == "Asia/Tokyo"
    assert meta["last_successful_sync"] == {}
    assert meta["rows"] == 15


def test_kpis_csv_parses_back_to_the_json_rows(client: TestClient) -> None:
    params = {
        "grain": "week",
        "scope": "team",
        "by": "weekday",
        "from": "2026-10-01",
        "to": "2026-10-14",
    }
    body = get(client, "/v1/kpis", **params)
    response = client.get("/v1/kpis", params={**params, "format": "csv"}, headers=auth())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len(parsed) == len(body["data"]) > 0
    for row, expected in zip(parsed, body["data"], strict=True):
        flat = {k: v for k, v in expected.items() if k not in ("band", "targets")}
        flat["band.low"] = expected["band"]["low"]
        flat["band.high"] = expected["band"]["high"]
        for level in ("minimum", "achievement", "stretch"):
            flat[f"targets.{level}"] = expected["targets"][level]
        assert set(row) == set(flat)
        for key, value in flat.items():
            if value is None:
                assert row[key] == "", (key, row)
            elif isinstance(value, float | int) and not isinstance(value, bool):
                assert float(row[key]) == pytest.approx(value), (key, row)
            else:
                assert row[key] == str(value), (key, row)


def test_kpis_defaults_to_the_trailing_month_of_now(client: TestClient) -> None:
    # ISKPI_NOW 2026-11-15 12:00 JST: the month ending on 15 Nov starts on 16 Oct.
    meta = get(client, "/v1/kpis", kpi="calls")["meta"]
    assert (meta["from"], meta["to"]) == ("2026-10-16", "2026-11-15")


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"kpi": "calls,warp_speed"}, "kpi"),
        ({"from": "2026-10-05", "to": "2026-10-01"}, "to"),
        ({"grain": "day", "from": "2020-01-01", "to": "2026-01-02"}, "to"),
        ({"scope": "rep", "id": "hubspot:nobody"}, "id"),
        ({"scope": "rep", "id": "no-colon"}, "id"),
        ({"from": "2026-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"grain": "year"}, "grain"),
        ({"scope": "galaxy"}, "scope"),
        ({"by": "zodiac"}, "by"),
        ({"tier": "legendary"}, "tier"),
        ({"format": "xml"}, "format"),
    ],
)
def test_kpis_bad_input_is_a_422_naming_the_parameter(
    client: TestClient, params: dict[str, str], param: str
) -> None:
    assert_422(client.get("/v1/kpis", params=params, headers=auth()), param)


def test_too_many_rows_is_a_422_asking_to_narrow(client: TestClient) -> None:
    # 36 KPIs × 1,096 days × 4 reps = 157,824 rows; by weekday the calls days alone exceed 200,000.
    response = client.get(
        "/v1/kpis",
        params={
            "grain": "day",
            "from": "2024-01-01",
            "to": "2026-12-31",
            "scope": "rep",
            "by": "hour",
        },
        headers=auth(),
    )
    assert_422(response, "to")
    assert "narrow" in response.json()["detail"][0]["msg"]


# --- catalog ------------------------------------------------------------------------------------


def test_catalog_serves_every_kpi_and_orders_a_phase_by_stars(client: TestClient) -> None:
    body = get(client, "/v1/kpis/catalog")
    assert [e["key"] for e in body["data"]] == [s.key for s in CATALOG]
    assert len(body["data"]) == 36
    connect = next(e for e in body["data"] if e["key"] == "connect_rate")
    assert connect["names"] == {"en": "Connect rate", "ja": "接続率"}
    assert connect["band"] == {"low": 0.2, "high": 0.35, "per": None}
    launch = get(client, "/v1/kpis/catalog", phase="launch")
    stars = [e["phase_priority"]["launch"] for e in launch["data"]]
    assert stars == sorted(stars, reverse=True) and stars[0] == 3
    assert {e["key"] for e in launch["data"]} == {
        "calls",
        "list_consumption_rate",
        "connect_rate",
        "meetings_set",
        "meeting_conversion_rate",
    }
    assert launch["meta"]["gaps"] == []  # リスト消化率 is a KPI now
    assert_422(client.get("/v1/kpis/catalog", params={"phase": "teen"}, headers=auth()), "phase")


# --- targets and costs --------------------------------------------------------------------------


def test_targets_round_trip_and_give_rows_their_achievement(client: TestClient) -> None:
    targets = [
        {
            "kpi": "calls",
            "grain": "month",
            "period_start": "2026-10-01",
            "scope": "rep",
            "id": "hubspot:r1",
            "value": 10,
        },
        {
            "kpi": "connect_rate",
            "grain": "month",
            "period_start": "2026-10-01",
            "scope": "org",
            "value": 0.3,
        },
    ]
    response = client.put("/v1/targets", json=targets, headers=auth(ADMIN))
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 2}
    listed = get(client, "/v1/targets")["data"]
    assert listed == [
        {
            "kpi": "calls",
            "grain": "month",
            "period_start": "2026-10-01",
            "scope": "rep",
            "id": "hubspot:r1",
            "level": "achievement",
            "value": 10.0,
            "status": "draft",
            "reason": None,
        },
        {
            "kpi": "connect_rate",
            "grain": "month",
            "period_start": "2026-10-01",
            "scope": "org",
            "id": "org",
            "level": "achievement",
            "value": 0.3,
            "status": "draft",
            "reason": None,
        },
    ]
    assert get(client, "/v1/targets", scope="org")["data"] == listed[1:]
    row = get(
        client,
        "/v1/kpis",
        kpi="calls",
        scope="rep",
        id="hubspot:r1",
        **{"from": "2026-10-01", "to": "2026-10-31"},
    )["data"][0]
    assert (row["value"], row["target"], row["achievement"]) == (5, 10, 0.5)
    # Replacing keeps one target per key.
    client.put("/v1/targets", json=[{**targets[0], "value": 4}], headers=auth(ADMIN))
    assert [t["value"] for t in get(client, "/v1/targets", kpi="calls")["data"]] == [4.0]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kpi": "nope"}, "kpi"),
        ({"value": -1}, "value"),
        ({"period_start": "2026-10-02"}, "period_start"),  # not the first of a month
        ({"grain": "year"}, "grain"),
        ({"id": "hubspot:ghost"}, "id"),
        ({"period_start": "October"}, "period_start"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_targets_are_a_422_naming_the_field_and_store_nothing(
    client: TestClient, change: dict[str, Any], field: str
) -> None:
    good = {
        "kpi": "calls",
        "grain": "month",
        "period_start": "2026-10-01",
        "scope": "rep",
        "id": "hubspot:r1",
        "value": 10,
    }
    response = client.put("/v1/targets", json=[good, {**good, **change}], headers=auth(ADMIN))
    assert_422(response, field)
    assert 1 in response.json()["detail"][0]["loc"]  # the second item
    assert get(client, "/v1/targets")["data"] == []


def test_costs_give_cac(client: TestClient) -> None:
    response = client.put(
        "/v1/costs", json={"month": "2026-10", "amount": 3_000_000}, headers=auth(ADMIN)
    )
    assert response.status_code == 200, response.text
    assert get(client, "/v1/costs")["data"] == [{"month": "2026-10", "amount": 3_000_000.0}]
    cac = get(client, "/v1/kpis", kpi="cac,won_count", **{"from": "2026-10-01", "to": "2026-10-31"})
    rows = rows_by(cac, "kpi")
    won = rows[("won_count",)]["value"]
    assert won > 0
    assert rows[("cac",)]["value"] == pytest.approx(3_000_000 / won)
    for body, field in (
        ({"month": "2026-13", "amount": 1}, "month"),
        ({"month": "2026-10", "amount": -5}, "amount"),
    ):
        assert_422(client.put("/v1/costs", json=body, headers=auth(ADMIN)), field)


# --- forecast -----------------------------------------------------------------------------------


def test_forecast_runs_the_rate_over_business_days(client: TestClient) -> None:
    # As of 15 Oct: business days 1, 2, 5–9, 13–15 Oct = 10 (12 Oct is Sports Day) of 21.
    body = get(
        client,
        "/v1/forecast",
        month="2026-10",
        as_of="2026-10-15",
        scope="rep",
        id="hubspot:r1",
        kpi="calls",
    )
    [row] = body["data"]
    assert (row["actual"], row["business_days"], row["business_days_elapsed"]) == (5, 21, 10)
    assert row["forecast"] == pytest.approx(5 * 21 / 10)
    assert body["meta"]["as_of"] == "2026-10-15" and body["meta"]["month"] == "2026-10-01"
    assert_422(client.get("/v1/forecast", params={"month": "2026-1"}, headers=auth()), "month")
    assert_422(client.get("/v1/forecast", params={"kpi": "win_rate"}, headers=auth()), "kpi")


# --- sync ---------------------------------------------------------------------------------------


def test_sync_trigger_runs_and_is_listed(engine: Engine) -> None:
    hub = HubSpotPortal(TOKEN)
    hub.load(small_dataset())
    running = serve_portal(hub)
    try:

        def connectors() -> list[Any]:
            return [HubSpotConnector(TOKEN, host=running.url, sleep=lambda _: None)]

        app = create_app(
            settings_for(sync_cron="0 2 1 1 *", sync_intraday_minutes=0),
            engine,
            connectors=connectors,
        )
        with TestClient(app) as client:
            assert_422(
                client.post("/v1/sync", params={"source": "salesforce"}, headers=auth(ADMIN)),
                "source",
            )
            response = client.post("/v1/sync", params={"wait": "true"}, headers=auth(ADMIN))
            assert response.status_code == 200, response.text
            [report] = response.json()["reports"]
            assert report["status"] == "ok" and report["source"] == "hubspot"
            assert report["records"]["calls"] == hub.count("calls") + hub.count(
                "calls", archived=True
            )
            runs = get(client, "/v1/sync/runs")["data"]
            assert [(r["id"], r["trigger"], r["status"]) for r in runs] == [
                (report["run_id"], "api", "ok")
            ]
            health = client.get("/healthz").json()
            assert set(health["last_successful_sync"]) == {"hubspot"}
    finally:
        running.stop()


# --- auth ---------------------------------------------------------------------------------------


ADMIN_ROUTES = {
    ("PUT", "/v1/targets"),
    ("POST", "/v1/targets/allocate"),
    ("PUT", "/v1/reps/{id}"),
    ("PUT", "/v1/costs"),
    ("POST", "/v1/sync"),
    ("POST", "/v1/targets/push"),
}


def test_every_v1_route_needs_a_token_and_admin_routes_an_admin_token(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    routes = [
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        if path.startswith("/v1/")
        for method in operations
    ]
    assert len(routes) >= 10
    for method, path in routes:
        for headers in ({}, auth("not-a-token"), {"Authorization": f"Basic {READ}"}):
            response = client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert READ not in response.text and ADMIN not in response.text
        if (method, path) in ADMIN_ROUTES:
            assert client.request(method, path, headers=auth(READ)).status_code == 403, path
    for open_path in ("/healthz", "/docs", "/openapi.json"):
        assert client.get(open_path).status_code == 200


def test_openapi_documents_every_parameter_and_the_row_shape(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    kpis = spec["paths"]["/v1/kpis"]["get"]
    names = {p["name"] for p in kpis["parameters"]}
    assert names == {"kpi", "grain", "from", "to", "scope", "id", "by", "tier", "format", "as_of"}
    row = spec["components"]["schemas"]["KpiRowOut"]["properties"]
    assert list(row) == [
        "kpi", "tier", "grain", "period_start", "scope", "scope_id", "scope_name", "by",
        "by_value", "value", "numerator", "denominator", "target", "achievement", "band", "status",
        "targets", "pace_target", "pace_achievement",
    ]  # fmt: skip
    assert "text/csv" in kpis["responses"]["200"]["content"]
    assert XLSX_MEDIA_TYPE in kpis["responses"]["200"]["content"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_day_grain_year_answers_in_one_request(client: TestClient) -> None:
    body = get(
        client,
        "/v1/kpis",
        kpi="calls",
        grain="day",
        scope="rep",
        **{"from": "2026-01-01", "to": "2026-12-31"},
    )
    assert len(body["data"]) == 365 * 4 + 1  # the deleted r4's day of work (c14) too
    r1_oct_1 = next(
        r
        for r in body["data"]
        if r["scope_id"] == "hubspot:r1" and r["period_start"] == "2026-10-01"
    )
    # c1, c2, c3 on 1 Oct UTC morning, and c5 at 00:30 JST on 1 Oct.
    assert r1_oct_1["value"] == 4
    assert date.fromisoformat(body["data"][-1]["period_start"]) == date(2026, 12, 31)


# --- plan, funnel, suggestion (docs/targets.md; stores of tests/support/planning.py) --------------------


def planning_client(engine: Engine, records: list[Any], now: datetime) -> TestClient:
    put(engine, records)
    return TestClient(create_app(settings_for().model_copy(update={"now": now}), engine))


def test_plan_reproduces_the_seed_example(engine: Engine) -> None:
    client = planning_client(engine, PEOPLE, PLANNING_NOW)
    body = {
        "won_target": 10,
        "win_rate": 0.25,
        "meeting_conversion_rate": 0.10,
        "effective_contact_rate": 0.30,
        "month": "2026-10",
    }
    response = client.post("/v1/plan", json=body, headers=auth())
    assert response.status_code == 200, response.text
    plan = response.json()
    assert [(s["stage"], s["value"]) for s in plan["steps"]] == [
        ("won_count", 10),
        ("meetings_set", 40),
        ("effective_contacts", 400),
        ("calls", 1334),  # 1,333.3 rounded up
    ]
    assert plan["business_days"] == 21  # October 2026, JP holidays
    calls = plan["steps"][3]
    assert calls["per_business_day"] == pytest.approx(1334 / 21, abs=1e-6)
    assert [r["source"] for r in plan["rates"]] == ["given", "given", "given"]
    for bad, field in (
        ({**body, "won_target": 0}, "won_target"),
        ({**body, "win_rate": 1.5}, "win_rate"),
        ({**body, "month": "2026-10-01"}, "month"),
        ({**body, "scope": "rep", "id": "hubspot:ghost"}, "id"),
    ):
        assert_422(client.post("/v1/plan", json=bad, headers=auth()), field)


def test_funnel_reproduces_the_seed_example(engine: Engine) -> None:
    client = planning_client(engine, SEED_MONTH, PLANNING_NOW)
    put_targets(engine, seed_targets())
    body = get(client, "/v1/funnel", month="2026-10")
    stages = {s["stage"]: s for s in body["stages"]}
    assert (stages["calls"]["actual"], stages["calls"]["achievement"]) == (1200, 1.0)
    assert stages["effective_contacts"]["actual"] == 360
    assert stages["meetings_set"]["actual"] == 12
    assert body["bottleneck"] == "meeting_conversion_rate"
    assert body["bottleneck_achievement"] == pytest.approx(0.6)
    assert body["cause"] == "quality"
    assert body["hint"] == {"en": "talk script, hearing", "ja": "トークスクリプト・ヒアリング"}
    assert_422(client.get("/v1/funnel", params={"month": "Oct"}, headers=auth()), "month")


def test_suggestion_is_the_trailing_mean_times_the_factors(engine: Engine) -> None:
    client = planning_client(engine, HISTORY, PLANNING_NOW)
    [org] = get(client, "/v1/targets/suggest", kpi="effective_contact_rate")["data"]
    # July 1/2, August 3/8, September no calls: pooled (1 + 3) / (2 + 8) = 0.4 (docs/api.md).
    assert [m["value"] for m in org["months"]] == [0.5, 0.375, None]
    assert (org["minimum"], org["achievement"], org["stretch"]) == (0.36, 0.4, 0.44)
    assert_422(client.get("/v1/targets/suggest", params={"kpi": "nope"}, headers=auth()), "kpi")
    assert_422(
        client.get("/v1/targets/suggest", params={"kpi": "calls", "stretch": -1}, headers=auth()),
        "stretch",
    )


def test_kpis_answers_are_cached_until_a_synced_page_moves_the_data_version(
    client: TestClient, engine: Engine
) -> None:
    # The page below is written as another process would; check the version on every request.
    client.app.state.data_version.check_seconds = 0  # type: ignore[attr-defined]
    params = {
        "kpi": "calls",
        "scope": "rep",
        "id": "hubspot:r1",
        "from": "2026-10-01",
        "to": "2026-10-31",
    }
    cache = client.app.state.kpi_cache  # type: ignore[attr-defined]
    assert get(client, "/v1/kpis", **params)["data"][0]["value"] == 5
    hits = cache.hits
    assert get(client, "/v1/kpis", **params)["data"][0]["value"] == 5
    assert cache.hits == hits + 1
    # A sync page: the record, its change and its stream's cursor in one transaction, as
    # run_sync stores it.
    new_call = Call(
        source="hubspot",
        crm_id="c-new",
        occurred_at=datetime(2026, 10, 20, 1, tzinfo=UTC),
        outcome="connected",
        direction="outbound",
        rep_crm_id="r1",
    )
    store_page(engine, client.app.state.kpi, [new_call])  # type: ignore[attr-defined]
    assert get(client, "/v1/kpis", **params)["data"][0]["value"] == 6
    # Big answers travel gzipped to clients that accept it (httpx decodes them).
    response = client.get(
        "/v1/kpis",
        params={"scope": "rep", "from": "2026-10-01", "to": "2026-10-31"},
        headers={**auth(), "Accept-Encoding": "gzip"},
    )
    assert response.headers["content-encoding"] == "gzip"
    assert len(response.json()["data"]) == 36 * 5  # 4 live reps and the deleted r4 (c14)


def test_only_writes_make_the_next_answer_reread_the_data_version(client: TestClient) -> None:
    clock = client.app.state.data_version  # type: ignore[attr-defined]
    get(client, "/v1/kpis", kpi="calls")
    assert clock.fresh() is not None
    plan = {
        "won_target": 1,
        "win_rate": 0.5,
        "meeting_conversion_rate": 0.5,
        "effective_contact_rate": 0.5,
    }
    assert client.post("/v1/plan", json=plan, headers=auth()).status_code == 200
    assert clock.fresh() is not None  # a plan only reads
    target = {
        "kpi": "calls",
        "grain": "month",
        "period_start": "2026-10-01",
        "scope": "org",
        "value": 1,
    }
    assert client.put("/v1/targets", json=[target], headers=auth(ADMIN)).status_code == 200
    assert clock.fresh() is None
    # An older read finishing after a newer one never replaces it.
    now = time.monotonic()
    clock.observe(StoreVersions(("new",), (), ()), now + 2)
    clock.observe(StoreVersions(("old",), (), ()), now + 1)
    assert clock._versions == StoreVersions(("new",), (), ())


def test_one_build_per_request_while_the_version_moves() -> None:
    from concurrent.futures import ThreadPoolExecutor
    from threading import Event

    from service.cache import ResponseCache

    cache = ResponseCache(2**20)
    started, release = Event(), Event()
    builds: list[int] = []

    def build() -> tuple[bytes, Any]:
        builds.append(1)
        started.set()
        release.wait(5)
        return b"answer at v2", ("q", "v2")

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.get_or_build, ("q", "v1"), build, flight="q")
        started.wait(5)
        # Asked again under a newer version while the first computation runs: it waits for it.
        second = pool.submit(cache.get_or_build, ("q", "v3"), build, flight="q")
        release.set()
        assert first.result().body == second.result().body == b"answer at v2"
    assert len(builds) == 1
    # Stored under the version it was computed from.
    assert cache.lookup(("q", "v2")) is not None and cache.lookup(("q", "v1")) is None


# --- meta ---------------------------------------------------------------------------------------


WALL = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)  # the wall clock /v1/meta counts freshness on


def _run(source: str, status: str, started_at: datetime, finished_at: datetime | None) -> Any:
    return SyncRun.__table__.insert().values(
        source=source,
        trigger="schedule",
        full=False,
        started_at=started_at,
        finished_at=finished_at,
        status=status,
        records={},
        quarantined=0,
        api_calls=1,
        error=None,
    )


def test_meta_lists_each_sources_last_run_and_the_freshness(engine: Engine) -> None:
    app = create_app(settings_for(hubspot_access_token="hub-token"), engine)
    app.state.run_summaries.now = lambda: WALL
    app.state.data_version.check_seconds = 0  # the runs below are stored as another process would
    with TestClient(app) as client:
        assert client.get("/v1/meta").status_code == 401
        assert client.get("/v1/meta", headers=auth("not-a-token")).status_code == 401
        # HubSpot is configured: listed before its first run; nothing synced, no freshness.
        before = get(client, "/v1/meta")
        assert before["syncs"] == [
            {
                "source": "hubspot",
                "finished_at": None,
                "status": None,
                "last_success_at": None,
                "running": False,
            }
        ]
        assert before["freshness_seconds"] is None
        assert before["today"] == "2026-11-15"  # ISKPI_NOW, 12:00 in Tokyo
        minutes = [WALL - timedelta(minutes=m) for m in range(0, 500)]
        with engine.begin() as conn:
            conn.execute(_run("hubspot", "ok", minutes[25], minutes[20]))
            conn.execute(_run("hubspot", "failed", minutes[12], minutes[10]))
            # Killed 7 hours ago and never closed: not running any more.
            conn.execute(_run("hubspot", "running", minutes[420], None))
            conn.execute(
                _run("salesforce", "partial", minutes[14], minutes[12] - timedelta(seconds=30))
            )
            conn.execute(_run("salesforce", "running", minutes[2], None))
        body = get(client, "/v1/meta")
    assert body["syncs"] == [
        {
            "source": "hubspot",
            "finished_at": "2026-12-06T11:50:00Z",
            "status": "failed",
            "last_success_at": "2026-12-06T11:40:00Z",
            "running": False,
        },
        {
            "source": "salesforce",
            "finished_at": "2026-12-06T11:47:30Z",
            "status": "partial",
            "last_success_at": "2026-12-06T11:47:30Z",
            "running": True,
        },
    ]
    # The newest ok or partial end is Salesforce's 11:47:30: 12:00:00 − 11:47:30 = 750 s.
    assert body["freshness_seconds"] == 750
    assert body["data_version"] != before["data_version"]


def test_meta_data_version_moves_when_data_is_stored_and_only_then(
    client: TestClient, engine: Engine
) -> None:
    clock = client.app.state.data_version  # type: ignore[attr-defined]
    first = get(client, "/v1/meta")["data_version"]
    assert isinstance(first, str) and first
    # Reads, and a POST that only reads, leave it.
    get(client, "/v1/kpis", kpi="calls")
    plan = {"won_target": 1, "win_rate": 0.5, "meeting_conversion_rate": 0.5}
    assert (
        client.post(
            "/v1/plan", json={**plan, "effective_contact_rate": 0.5}, headers=auth()
        ).status_code
        == 200
    )
    assert get(client, "/v1/meta")["data_version"] == first
    # A page synced by another process shows once the version is re-read, not before.
    clock.check_seconds = 3600
    page_at = datetime(2026, 11, 15, 4, 0, tzinfo=UTC)
    with engine.begin() as conn:
        store.upsert_records(
            conn,
            TABLE_BY_KIND["call"],
            [
                Call(
                    source="hubspot",
                    crm_id="c-meta",
                    occurred_at=datetime(2026, 11, 15, 1, tzinfo=UTC),
                    outcome="connected",
                    direction="outbound",
                    rep_crm_id="r1",
                ).as_row()
            ],
            page_at,
        )
        store.save_state(conn, "hubspot", "calls", {"cursor": "meta"}, page_at)
    assert get(client, "/v1/meta")["data_version"] == first
    clock.check_seconds = 0
    second = get(client, "/v1/meta")["data_version"]
    assert second != first
    assert get(client, "/v1/meta")["data_version"] == second
    # A target put through the API moves it at once, however long the check interval.
    clock.check_seconds = 3600
    target = {
        "kpi": "calls",
        "grain": "day",
        "period_start": "2026-11-16",
        "scope": "org",
        "value": 9,
    }
    assert client.put("/v1/targets", json=[target], headers=auth(ADMIN)).status_code == 200
    third = get(client, "/v1/meta")["data_version"]
    assert third not in (first, second)
    # So does a member's review note: a dashboard showing it refreshes on the version too.
    note = {"period": "2026-11-16", "scope": "org", "notes": {"issues": "list ran dry"}}
    assert client.put("/v1/sheets/daily/notes", json=note, headers=auth(WRITE)).status_code == 200
    assert get(client, "/v1/meta")["data_version"] not in (first, second, third)


def test_meta_polled_often_reads_the_store_once_per_check_interval(engine: Engine) -> None:
    app = create_app(settings_for(api_cache_check_seconds=60), engine)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    with TestClient(app) as client:
        first = get(client, "/v1/meta")  # reads the version and the run summary
        event.listen(engine, "before_cursor_execute", count)
        try:
            # Within the check interval the polls touch nothing.
            assert [get(client, "/v1/meta") for _ in range(20)] == [first] * 20
            assert statements == []
            # Once it is over (as after a write), the versions' two queries (the one-row
            # version, the change log's groups); the version has not moved, so the run
            # summary read for it stands.
            app.state.data_version.invalidate()
            assert get(client, "/v1/meta") == first
            assert len(statements) == 2, statements
            assert "sync_state" in statements[0] and "kpi_data_changes" in statements[1]
        finally:
            event.remove(engine, "before_cursor_execute", count)
