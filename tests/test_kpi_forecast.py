"""The landing forecast (docs/targets.md), its snapshots, and forecast_accuracy built on them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, insert, select

from connectors.records import Deal, Rep, Team
from kpi import (
    ForecastRow,
    KpiContext,
    KpiRequestError,
    Target,
    compute,
    ensure_rollups,
    landing_forecast,
    put_targets,
    store_forecast_snapshot,
)
from models import ForecastSnapshot
from tests.support.kpi_records import at, call, put

H = "hubspot"
# "Now" is 15 Oct 2026 12:00 JST. October 2026 has 21 business days (JP: Sports Day on the
# 12th); 1–15 Oct hold 10 of them: 1, 2, 5–9, 13, 14, 15.
NOW = datetime(2026, 10, 15, 3, 0, tzinfo=UTC)
CTX = KpiContext(timezone="Asia/Tokyo", holidays="JP", now=NOW)
OCT_1 = date(2026, 10, 1)

RECORDS = [
    Team(source=H, crm_id="t1", name="Tokyo"),
    Rep(source=H, crm_id="r1", name="Aiko", team_crm_id="t1"),
    Rep(source=H, crm_id="r2", name="Ben", team_crm_id="t1"),
    *(call(f"c{i}", f"2026-10-{i + 1:02d}T01:00", rep_crm_id="r1") for i in range(6)),
    call("c9", "2026-10-16T01:00", rep_crm_id="r1"),  # after the as-of day
    Deal(
        source=H,
        crm_id="d0",
        created_at=at("2026-09-01T00:00"),
        rep_crm_id="r1",
        closed_at=at("2026-09-10T00:00"),
        is_closed=True,
        is_won=True,
        amount=Decimal("250000"),
    ),
    Deal(
        source=H,
        crm_id="d1",
        created_at=at("2026-09-20T00:00"),
        rep_crm_id="r1",
        closed_at=at("2026-10-05T00:00"),
        is_closed=True,
        is_won=True,
        amount=Decimal("1000000"),
    ),
    # Won on the 16th: after the as-of day, in the month's final actual.
    Deal(
        source=H,
        crm_id="d2",
        created_at=at("2026-09-20T00:00"),
        rep_crm_id="r1",
        closed_at=at("2026-10-16T00:00"),
        is_closed=True,
        is_won=True,
        amount=Decimal("500000"),
    ),
    # Open, closing in the rest of October (16–31 Oct JST):
    Deal(
        source=H,
        crm_id="d3",
        created_at=at("2026-10-01T00:00"),
        rep_crm_id="r1",
        closed_at=at("2026-10-20T00:00"),
        amount=Decimal("2000000"),
        probability=0.25,
    ),
    Deal(
        source=H,
        crm_id="d7",
        created_at=at("2026-10-01T00:00"),
        rep_crm_id="r2",
        closed_at=at("2026-10-31T14:00"),
        amount=Decimal("400000"),
        probability=0.5,
    ),
    Deal(
        source=H,
        crm_id="d5",
        created_at=at("2026-10-01T00:00"),
        closed_at=at("2026-10-16T00:00"),
        amount=Decimal("1000000"),
    ),  # no probability: 0
    # Open but outside the rest of the month: 1 Nov JST, and the as-of day itself.
    Deal(
        source=H,
        crm_id="d4",
        created_at=at("2026-10-01T00:00"),
        rep_crm_id="r2",
        closed_at=at("2026-10-31T16:00"),
        amount=Decimal("9000000"),
        probability=0.9,
    ),
    Deal(
        source=H,
        crm_id="d6",
        created_at=at("2026-10-01T00:00"),
        rep_crm_id="r2",
        closed_at=at("2026-10-15T00:00"),
        amount=Decimal("800000"),
        probability=0.5,
    ),
]


@pytest.fixture
def store_engine(engine: Engine) -> Engine:
    put(engine, RECORDS)
    with engine.begin() as conn:
        ensure_rollups(conn, CTX)
    return engine


def by_kpi(rows: list[ForecastRow]) -> dict[tuple[str, str], ForecastRow]:
    return {(r.kpi, r.scope_id): r for r in rows}


def test_landing_forecast_as_of_the_15th(store_engine: Engine) -> None:
    put_targets(store_engine, [Target("won_amount", "month", OCT_1, "org", "org", 2_000_000)])
    rows = by_kpi(landing_forecast(store_engine, CTX))  # month and day from ISKPI_NOW
    calls = rows[("calls", "org")]
    # 6 calls through 15 Oct × 21 / 10 business days = 12.6 (c9 on the 16th is not counted).
    assert (calls.actual, calls.business_days, calls.business_days_elapsed) == (6, 21, 10)
    assert calls.forecast == pytest.approx(12.6)
    won = rows[("won_amount", "org")]
    # Won through the 15th: d1 1,000,000; rest of the month: d3 2,000,000 × 0.25 + d7
    # 400,000 × 0.5 + d5 × 0 = 700,000 (not d4: 1 Nov JST; not d6: due on the as-of day).
    assert won.actual == 1_000_000
    assert won.pipeline == pytest.approx(700_000)
    assert won.forecast == pytest.approx(1_700_000)
    assert (won.target, won.achievement) == (2_000_000, pytest.approx(0.85))
    reps = by_kpi(landing_forecast(store_engine, CTX, scope="rep"))
    assert reps[("won_amount", "hubspot:r1")].forecast == pytest.approx(1_500_000)
    assert reps[("won_amount", "hubspot:r2")].forecast == pytest.approx(200_000)
    assert reps[("calls", "hubspot:r2")].forecast == 0


def test_landing_forecast_before_and_after_the_month(store_engine: Engine) -> None:
    early = by_kpi(landing_forecast(store_engine, CTX, month=OCT_1, as_of=date(2026, 9, 30)))
    assert early[("calls", "org")].forecast is None  # no business day elapsed
    # The whole month's open pipeline: d3 500,000 + d7 200,000 + d6 400,000 = 1,100,000.
    assert early[("won_amount", "org")].forecast == pytest.approx(1_100_000)
    late = by_kpi(landing_forecast(store_engine, CTX, month=OCT_1, as_of=date(2026, 11, 3)))
    assert late[("calls", "org")].forecast == late[("calls", "org")].actual == 7
    assert late[("won_amount", "org")].forecast == 1_500_000  # d1 + d2
    with pytest.raises(KpiRequestError) as err:
        landing_forecast(store_engine, CTX, kpis=["win_rate"])
    assert err.value.param == "kpi"


def test_snapshots_feed_forecast_accuracy(store_engine: Engine) -> None:
    with store_engine.begin() as conn:
        # Snapshots on the 10th, twice on the 15th (the later replaces the earlier), the 16th.
        for taken in (
            "2026-10-10T03:00",
            "2026-10-15T01:00",
            "2026-10-15T03:00",
            "2026-10-16T03:00",
        ):
            count = store_forecast_snapshot(conn, CTX, taken_at=at(taken))
            assert count == 4 * 10  # org, team t1, reps r1 r2 × 10 forecast KPIs
        rows = conn.execute(select(func.count()).select_from(ForecastSnapshot)).scalar_one()
        assert rows == 3 * 40  # one per day
        # September: only a snapshot on the 12th (the last one on or before the 15th counts);
        # forecast 2,500,000 against 250,000 won: 1 − 2,250,000 / 250,000 < 0, clipped to 0.
        conn.execute(
            insert(ForecastSnapshot).values(
                month=date(2026, 9, 1),
                as_of=date(2026, 9, 12),
                scope="org",
                scope_id="org",
                kpi="won_amount",
                actual=0,
                forecast=2_500_000,
                taken_at=at("2026-09-12T00:00"),
            )
        )
    rows = compute(
        store_engine,
        CTX,
        kpis=["forecast_accuracy", "won_amount"],
        grain="month",
        start=date(2026, 9, 1),
        end=date(2026, 10, 31),
    )
    accuracy = {r.period_start: r for r in rows if r.kpi == "forecast_accuracy"}
    # October: the 15th's forecast 1,700,000 against the month's 1,500,000 won (d1 + d2):
    # 1 − 200,000 / 1,500,000 = 0.866….
    october = accuracy[OCT_1]
    assert (october.numerator, october.denominator) == (pytest.approx(1_700_000), 1_500_000)
    assert october.value == pytest.approx(1 - 200_000 / 1_500_000)
    assert accuracy[date(2026, 9, 1)].value == 0.0
    reps = compute(
        store_engine,
        CTX,
        kpis=["forecast_accuracy"],
        grain="month",
        start=OCT_1,
        end=OCT_1,
        scope="rep",
    )
    # r1: forecast 1,500,000, won 1,500,000 → 1.0; r2: won nothing → no accuracy.
    assert [(r.scope_id, r.value) for r in reps] == [("hubspot:r1", 1.0), ("hubspot:r2", None)]
    # Monthly only, and not per breakdown value.
    days = compute(
        store_engine, CTX, kpis=["forecast_accuracy"], grain="day", start=OCT_1, end=OCT_1
    )
    assert [r.value for r in days] == [None]
    by = compute(
        store_engine,
        CTX,
        kpis=["forecast_accuracy"],
        grain="month",
        start=OCT_1,
        end=OCT_1,
        by="rep",
    )
    assert all(r.value is None for r in by)
