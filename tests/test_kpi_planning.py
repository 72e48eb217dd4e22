"""Plan (逆算), funnel diagnosis and target suggestions (docs/targets.md, docs/kpi-catalog.md) against hand-worked numbers.

Each test runs on SQLite and PostgreSQL (the ``engine`` fixture). "Now" is 15 Oct
2026 12:00 JST, so the trailing three complete months are July–September 2026.
Business days (JP holidays): October 2026 has 21 (Sports Day, Mon 12 Oct);
September 2026 has 22 weekdays minus Respect for the Aged Day (21st), the
bridging national holiday (22nd) and the Autumnal Equinox (23rd) = 19. The stores
(PEOPLE, HISTORY, SEED_MONTH) are in tests/support/planning.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from connectors.records import Deal, Record, Rep, Team
from kpi import (
    Funnel,
    KpiContext,
    KpiRequestError,
    ensure_rollups,
    funnel,
    plan,
    put_targets,
    suggest_targets,
)
from tests.support.kpi_records import H, at, call, put
from tests.support.planning import (
    CTX,
    HISTORY,
    NOW,
    OCT_1,
    PEOPLE,
    SEED_MONTH,
    meeting,
    seed_targets,
)

JUL_1, AUG_1, SEP_1 = date(2026, 7, 1), date(2026, 8, 1), date(2026, 9, 1)


@pytest.fixture
def people(engine: Engine) -> Engine:
    put(engine, PEOPLE)
    return engine


@pytest.fixture
def history(engine: Engine) -> Engine:
    put(engine, HISTORY)
    with engine.begin() as conn:
        ensure_rollups(conn, CTX)
    return engine


# --- plan ---------------------------------------------------------------------------------------


def test_plan_seed_example(people: Engine) -> None:
    result = plan(
        people,
        CTX,
        won_target=10,
        meeting_win_rate=0.25,
        meeting_conversion_rate=0.10,
        effective_contact_rate=0.30,
    )
    # 10 ÷ 0.25 = 40 meetings; 40 ÷ 0.10 = 400 contacts; 400 ÷ 0.30 = 1,333.3… → 1,334 calls.
    assert [(s.stage, s.value, s.rate, s.rate_used) for s in result.steps] == [
        ("won_count", 10, None, None),
        ("meetings_set", 40, "meeting_win_rate", 0.25),
        ("effective_contacts", 400, "meeting_conversion_rate", 0.10),
        ("calls", 1334, "effective_contact_rate", 0.30),
    ]
    # The body's old name win_rate is the same rate.
    old_name = plan(
        people,
        CTX,
        won_target=10,
        win_rate=0.25,
        meeting_conversion_rate=0.10,
        effective_contact_rate=0.30,
    )
    assert old_name.steps == result.steps
    assert (result.won_target, result.won_amount_target, result.avg_deal_size) == (10, None, None)
    assert [(r.kpi, r.source) for r in result.rates] == [
        ("meeting_win_rate", "given"),
        ("meeting_conversion_rate", "given"),
        ("effective_contact_rate", "given"),
    ]
    assert result.trailing_months is None  # nothing derived
    # Month and as_of from ISKPI_NOW: October, 21 business days; reps r1 r2 (r3 inactive,
    # r4 deleted). 1,334 / 21 = 63.523810; / 2 = 667; / 42 = 31.761905.
    assert (result.month, result.as_of, result.business_days, result.reps) == (
        OCT_1,
        date(2026, 10, 15),
        21,
        2,
    )
    calls = result.steps[-1]
    assert (calls.per_business_day, calls.per_rep, calls.per_rep_per_business_day) == (
        63.52381,
        667,
        31.761905,
    )
    body = result.as_dict()
    assert json.loads(json.dumps(body)) == body  # JSON-ready
    assert (body["month"], body["as_of"], body["scope_id"]) == ("2026-10-01", "2026-10-15", "org")
    assert body["steps"][-1]["value"] == 1334
    # A team counts its active reps; a rep is one.
    team = plan(
        people,
        CTX,
        won_target=10,
        win_rate=0.25,
        meeting_conversion_rate=0.10,
        effective_contact_rate=0.30,
        scope="team",
        scope_id="hubspot:t1",
    )
    assert (team.reps, team.scope_name) == (2, "Tokyo")
    rep = plan(
        people,
        CTX,
        won_target=10,
        win_rate=0.25,
        meeting_conversion_rate=0.10,
        effective_contact_rate=0.30,
        scope="rep",
        scope_id="hubspot:r1",
        month=date(2026, 9, 30),
    )
    assert (rep.reps, rep.month, rep.business_days, rep.steps[-1].per_rep) == (
        1,
        SEP_1,
        19,
        1334,
    )


@pytest.mark.parametrize(
    ("won", "rates", "expected"),
    [
        # 40 ÷ 0.10 is 400, not 401 (the seed's second step on its own).
        (4, (0.10, 0.10, 1.0), [4, 40, 400, 400]),
        # 21 ÷ 0.35 is 60.00000000000001 in floating point: 60, not 61; then 60 ÷ 0.29 =
        # 206.9 → 207; 207 ÷ 1 = 207.
        (21, (0.35, 0.29, 1.0), [21, 60, 207, 207]),
        # 145 ÷ 0.29 = 500.00000000000006 → 500; 500 ÷ 0.35 = 1,428.57 → 1,429 (it divides the
        # rounded 500, not 500.00000000000006); 1,429 ÷ 0.57 = 2,507.02 → 2,508.
        (145, (0.29, 0.35, 0.57), [145, 500, 1429, 2508]),
    ],
)
def test_plan_rounds_each_step_to_6_places_then_up(
    people: Engine, won: int, rates: tuple[float, float, float], expected: list[int]
) -> None:
    result = plan(
        people,
        CTX,
        won_target=won,
        win_rate=rates[0],
        meeting_conversion_rate=rates[1],
        effective_contact_rate=rates[2],
    )
    assert [s.value for s in result.steps] == expected


def test_plan_derives_missing_rates_from_the_trailing_months(history: Engine) -> None:
    result = plan(history, CTX, won_target=2)
    assert result.trailing_months == (JUL_1, AUG_1, SEP_1)
    # meeting_win_rate: IS-sourced deals won (d-jul, d-sep) / meetings set (m-jul, m-aug) = 2/2.
    assert [(r.kpi, r.source, r.numerator, r.denominator, r.value) for r in result.rates] == [
        ("meeting_win_rate", "derived", 2, 2, 1.0),
        ("meeting_conversion_rate", "derived", 2, 4, 0.5),
        ("effective_contact_rate", "derived", 4, 10, 0.4),
    ]
    # 2 ÷ 1.0 = 2 meetings; 2 ÷ 0.5 = 4 contacts; 4 ÷ 0.4 = 10 calls.
    assert [s.value for s in result.steps] == [2, 2, 4, 10]
    assert result.as_dict()["trailing_months"] == ["2026-07-01", "2026-08-01", "2026-09-01"]
    # Given and derived together: only the missing rates come from the history.
    mixed = plan(history, CTX, won_target=2, meeting_win_rate=0.25)
    assert [(r.kpi, r.source, r.value) for r in mixed.rates] == [
        ("meeting_win_rate", "given", 0.25),
        ("meeting_conversion_rate", "derived", 0.5),
        ("effective_contact_rate", "derived", 0.4),
    ]
    assert [s.value for s in mixed.steps] == [2, 8, 16, 40]
    # Rep r1, July–September: meeting_win_rate 1 won (d-jul) / 1 meeting (m-jul) = 1.0;
    # conversion 1 meeting / 2 effective contacts (jul1, aug1) = 0.5; effective_contact_rate
    # (1 + 1) / (2 + 4) = 1/3. Won 1 → 1 meeting → 2 contacts → 6 calls.
    rep = plan(history, CTX, won_target=1, scope="rep", scope_id="hubspot:r1")
    assert [r.value for r in rep.rates] == [1.0, 0.5, pytest.approx(1 / 3)]
    assert [s.value for s in rep.steps] == [1, 1, 2, 6]


def test_plan_replays_as_of_a_past_day(history: Engine) -> None:
    # As of 5 Sep: June–August. meeting_win_rate: 1 IS-sourced won (d-jul) / 2 meetings (m-jul,
    # m-aug) = 0.5; conversion (0 + 1 + 1) / (5 + 1 + 3) = 2/9; effective_contact_rate
    # (5 + 1 + 3) / (5 + 2 + 8) = 9/15 = 0.6. Won 1 → 2 meetings → 2 ÷ 2/9 = 9.000000000000002
    # → 9 contacts (6 decimals first) → 9 ÷ 0.6 = 15 calls, in September (as_of's month): 19
    # business days.
    result = plan(history, CTX, won_target=1, as_of=date(2026, 9, 5))
    assert result.trailing_months == (date(2026, 6, 1), JUL_1, AUG_1)
    assert [r.value for r in result.rates] == [0.5, pytest.approx(2 / 9), 0.6]
    assert [s.value for s in result.steps] == [1, 2, 9, 15]
    assert (result.month, result.business_days) == (SEP_1, 19)


def test_plan_missing_rate_errors(history: Engine) -> None:
    # As of 15 Jan 2027 (October–December) r2 set no meetings: no meeting_win_rate to derive.
    with pytest.raises(KpiRequestError) as err:
        plan(
            history, CTX, won_target=5, scope="rep", scope_id="hubspot:r2", as_of=date(2027, 1, 15)
        )
    assert err.value.param == "meeting_win_rate"
    assert str(err.value) == (
        "meeting_win_rate: no meetings set in 2026-10..2026-12 to derive it from; give it"
    )
    # A rate that derives as 0 cannot be divided by: as of 10 Jul (April–June) the org had
    # 5 effective contacts and no meetings.
    with pytest.raises(KpiRequestError) as err:
        plan(history, CTX, won_target=1, meeting_win_rate=0.5, as_of=date(2026, 7, 10))
    assert err.value.param == "meeting_conversion_rate"
    assert "no meetings set in 2026-04..2026-06" in err.value.message
    # Nothing at all in January–March: the missing rate is named, the given ones are not.
    with pytest.raises(KpiRequestError) as err:
        plan(
            history,
            CTX,
            won_target=1,
            meeting_win_rate=0.2,
            meeting_conversion_rate=0.1,
            as_of=date(2026, 4, 1),
        )
    assert err.value.param == "effective_contact_rate"
    assert "no calls in 2026-01..2026-03" in err.value.message
    # The amount path with no IS-sourced deal won in the months: the deal size is asked for.
    with pytest.raises(KpiRequestError) as err:
        plan(history, CTX, won_amount_target=1_000_000, as_of=date(2026, 4, 1))
    assert err.value.param == "avg_deal_size"
    assert "no IS-sourced deals won in 2026-01..2026-03" in err.value.message


# A small history for the plan's defaults and the amount path (now: 15 Oct 2026, so July–
# September), with a field-sales team whose rep is not counted per rep:
#
#   meetings set:   r1 5 (July 2, August 2, September 1), r2 3 (August 1, September 2)  = 8
#   calls:          40, 16 of them effective contacts (connected, 90 s), 24 unanswered
#   IS-sourced won: d1 r1 July 300,000; d2 r2 September 500,000                          = 2
#   not counted:    d3 r1 lost (August, 700,000); d4 no IS rep, won (September, 9,000,000)
#
#   meeting_win_rate        = 2 / 8   = 0.25
#   meeting_conversion_rate = 8 / 16  = 0.5
#   effective_contact_rate  = 16 / 40 = 0.4
#   avg_deal_size           = (300,000 + 500,000) / 2 = 400,000  (d4 has no IS rep: not in it)
PLAN_CTX = KpiContext(
    timezone="Asia/Tokyo", holidays="JP", now=NOW, field_sales_teams=("Field Sales",)
)


def _plan_deal(crm_id: str, closed: str, won: bool, rep: str | None, amount: int) -> Deal:
    return Deal(
        source=H,
        crm_id=crm_id,
        created_at=at(closed) - timedelta(days=10),
        closed_at=at(closed),
        is_closed=True,
        is_won=won,
        amount=Decimal(amount),
        rep_crm_id=rep,
    )


PLAN_HISTORY: list[Record] = [
    Team(source=H, crm_id="t1", name="Tokyo"),
    Team(source=H, crm_id="tf", name="Field Sales"),
    Rep(source=H, crm_id="r1", name="Aiko", team_crm_id="t1"),
    Rep(source=H, crm_id="r2", name="Ben", team_crm_id="t1"),
    Rep(source=H, crm_id="f1", name="Fumi", team_crm_id="tf"),
    *(
        meeting(f"pm{i}", when, rep)
        for i, (when, rep) in enumerate(
            [
                ("2026-07-06T01:00", "r1"),
                ("2026-07-07T01:00", "r1"),
                ("2026-08-03T01:00", "r1"),
                ("2026-08-04T01:00", "r1"),
                ("2026-09-01T01:00", "r1"),
                ("2026-08-05T01:00", "r2"),
                ("2026-09-02T01:00", "r2"),
                ("2026-09-03T01:00", "r2"),
            ]
        )
    ),
    # 40 calls on 1–20 July, two a day at 01:00 and 02:00 UTC; two in every five (i % 5 < 2:
    # 16) connected for 90 s.
    *(
        call(
            f"pc{i}",
            f"2026-07-{i // 2 + 1:02d}T0{i % 2 + 1}:00",
            "connected" if i % 5 < 2 else "no_answer",
            duration_ms=90_000 if i % 5 < 2 else None,
            rep_crm_id="r1" if i % 2 else "r2",
        )
        for i in range(40)
    ),
    _plan_deal("d1", "2026-07-20T01:00", True, "r1", 300_000),
    _plan_deal("d2", "2026-09-15T01:00", True, "r2", 500_000),
    _plan_deal("d3", "2026-08-20T01:00", False, "r1", 700_000),
    _plan_deal("d4", "2026-09-16T01:00", True, None, 9_000_000),
]


@pytest.fixture
def plan_history(engine: Engine) -> Engine:
    put(engine, PLAN_HISTORY)
    with engine.begin() as conn:
        ensure_rollups(conn, PLAN_CTX)
    return engine


def test_plan_defaults_and_the_amount_path(plan_history: Engine) -> None:
    counted = plan(plan_history, PLAN_CTX, won_target=5)
    assert [(r.kpi, r.numerator, r.denominator, r.value) for r in counted.rates] == [
        ("meeting_win_rate", 2, 8, 0.25),
        ("meeting_conversion_rate", 8, 16, 0.5),
        ("effective_contact_rate", 16, 40, 0.4),
    ]
    # 5 won ÷ 0.25 = 20 meetings ÷ 0.5 = 40 contacts ÷ 0.4 = 100 calls.
    assert [s.value for s in counted.steps] == [5, 20, 40, 100]
    # Per rep: r1 and r2 (f1 is field sales): 100 / 2 = 50; October's 21 business days.
    assert (counted.reps, counted.business_days, counted.steps[-1].per_rep) == (2, 21, 50)
    # The amount: 3,000,000 ÷ avg_deal_size 400,000 = 7.5 → 8 won; 8 ÷ 0.25 = 32 meetings;
    # 32 ÷ 0.5 = 64 contacts; 64 ÷ 0.4 = 160 calls: 160 / 21 = 7.619048 a business day,
    # 80 per rep, 80 / 21 = 3.809524 per rep per business day.
    amount = plan(plan_history, PLAN_CTX, won_amount_target=3_000_000)
    assert amount.avg_deal_size is not None
    assert amount.avg_deal_size.as_dict() == {
        "kpi": "avg_deal_size",
        "value": 400_000,
        "source": "derived",
        "numerator": 800_000,
        "denominator": 2,
    }
    assert (amount.won_target, amount.won_amount_target) == (8, 3_000_000)
    assert [s.value for s in amount.steps] == [8, 32, 64, 160]
    calls = amount.steps[-1]
    assert (calls.per_business_day, calls.per_rep, calls.per_rep_per_business_day) == (
        7.619048,
        80,
        3.809524,
    )
    body = amount.as_dict()
    assert (body["won_target"], body["won_amount_target"], body["avg_deal_size"]["value"]) == (
        8,
        3_000_000,
        400_000,
    )
    # avg_deal_size given: 3,000,000 ÷ 250,000 = 12 won → 48 meetings → 96 → 240 calls.
    given = plan(plan_history, PLAN_CTX, won_amount_target=3_000_000, avg_deal_size=250_000)
    assert given.avg_deal_size is not None and given.avg_deal_size.source == "given"
    assert [s.value for s in given.steps] == [12, 48, 96, 240]
    # An amount that divides exactly is not rounded up past it: 2,000,000 ÷ 400,000 = 5.
    assert plan(plan_history, PLAN_CTX, won_amount_target=2_000_000).won_target == 5
    # Team t1, the same months: the same meetings, calls and IS-sourced wins (d4 has no rep).
    team = plan(
        plan_history, PLAN_CTX, won_amount_target=3_000_000, scope="team", scope_id="hubspot:t1"
    )
    assert [s.value for s in team.steps] == [8, 32, 64, 160]


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"won_target": 0}, "won_target"),
        ({"won_target": -3}, "won_target"),
        ({"won_target": 2.5}, "won_target"),  # a count of deals: whole
        ({"won_target": float("nan")}, "won_target"),
        ({"won_target": float("inf")}, "won_target"),
        ({"won_target": None}, "won_target"),  # neither a count nor an amount
        ({"won_amount_target": 1_000_000}, "won_amount_target"),  # both
        ({"won_target": None, "won_amount_target": -5}, "won_amount_target"),
        ({"won_target": None, "won_amount_target": 1e6, "avg_deal_size": 0}, "avg_deal_size"),
        ({"avg_deal_size": 100_000}, "avg_deal_size"),  # only with an amount
        ({"won_target": 10, "meeting_win_rate": 0}, "meeting_win_rate"),
        ({"won_target": 10, "meeting_win_rate": 1.01}, "meeting_win_rate"),
        ({"won_target": 10, "win_rate": 0}, "win_rate"),
        ({"won_target": 10, "win_rate": 0.3}, "win_rate"),  # beside a different meeting_win_rate
        ({"won_target": 10, "meeting_conversion_rate": 1.5}, "meeting_conversion_rate"),
        ({"won_target": 10, "effective_contact_rate": float("nan")}, "effective_contact_rate"),
        ({"won_target": 10, "scope": "rep"}, "id"),
        ({"won_target": 10, "scope": "rep", "scope_id": "hubspot:r9"}, "id"),
        ({"won_target": 10, "scope": "galaxy"}, "scope"),
    ],
)
def test_plan_validation_names_the_parameter(
    people: Engine, kwargs: dict[str, object], param: str
) -> None:
    rates = {
        "meeting_win_rate": 0.25,
        "meeting_conversion_rate": 0.1,
        "effective_contact_rate": 0.3,
        "won_target": 10,
    }
    with pytest.raises(KpiRequestError) as err:
        plan(people, CTX, **{**rates, **kwargs})  # type: ignore[arg-type]
    assert err.value.param == param


# --- funnel -------------------------------------------------------------------------------------


@pytest.fixture
def seed_month(engine: Engine) -> Engine:
    put(engine, SEED_MONTH)
    with engine.begin() as conn:
        ensure_rollups(conn, CTX)
    return engine


def stages(result: Funnel) -> dict[str, tuple[float | None, float | None, float | None]]:
    return {s.stage: (s.target, s.actual, s.achievement) for s in result.stages}


def test_funnel_seed_example(seed_month: Engine) -> None:
    put_targets(seed_month, seed_targets())
    result = funnel(seed_month, CTX, month=date(2026, 10, 20))  # any day names its month
    got = stages(result)
    assert list(got) == [
        "calls",
        "connect_rate",
        "effective_contacts",
        "meeting_conversion_rate",
        "meetings_set",
        "win_rate",
        "won_count",
    ]
    assert got["calls"] == (1200, 1200, 1.0)
    assert got["connect_rate"] == (0.30, 0.30, pytest.approx(1.0))
    assert got["effective_contacts"] == (360, 360, 1.0)
    # 12 / 360 = 3.3…% against 20 / 360 = 5.5…%: 0.6 (= 12 meetings of 20).
    assert got["meeting_conversion_rate"] == (
        pytest.approx(20 / 360),
        pytest.approx(12 / 360),
        pytest.approx(0.6),
    )
    assert got["meetings_set"] == (20, 12, 0.6)
    assert got["win_rate"] == (None, None, None)  # no targets, nothing closed
    assert got["won_count"] == (None, 0, None)
    assert (result.bottleneck, result.bottleneck_achievement) == (
        "meeting_conversion_rate",
        pytest.approx(0.6),
    )
    assert result.cause == "quality"  # calls on target
    assert result.hint is not None and result.hint.ja == "トークスクリプト・ヒアリング"
    assert result.approach is not None and result.approach.ja.startswith("スキル向上")
    body = result.as_dict()
    assert json.loads(json.dumps(body)) == body  # JSON-ready
    assert (body["month"], body["bottleneck"], body["cause"]) == (
        "2026-10-01",
        "meeting_conversion_rate",
        "quality",
    )
    assert body["stages"][3]["hint"] == {
        "en": "talk script, hearing",
        "ja": "トークスクリプト・ヒアリング",
    }
    assert body["stages"][3]["below_target"] is True
    # With the conversion target as printed (5.5 %), the achievement is 0.0333… / 0.055 =
    # 0.606; the bottleneck and cause are the same.
    put_targets(seed_month, seed_targets(meeting_conversion_rate=0.055))
    printed = funnel(seed_month, CTX, month=OCT_1)
    assert printed.bottleneck == "meeting_conversion_rate"
    assert printed.bottleneck_achievement == pytest.approx(12 / 360 / 0.055)
    assert round(printed.bottleneck_achievement or 0, 3) == 0.606


def test_funnel_volume_cause(seed_month: Engine) -> None:
    # Calls at 1,200 of 1,500 (0.8): volume. The connect rate at 0.30 of 0.40 (0.75) is short
    # too, but the conversion's 0.6 is the lowest: still the bottleneck. October is over
    # (now in November): counts are compared with the whole target, not a pace.
    put_targets(seed_month, seed_targets(calls=1500, connect_rate=0.40))
    ctx = replace(CTX, now=datetime(2026, 11, 2, 3, 0, tzinfo=UTC))
    result = funnel(seed_month, ctx, month=OCT_1)
    assert stages(result)["calls"][2] == 0.8
    assert stages(result)["connect_rate"][2] == pytest.approx(0.75)
    assert (result.bottleneck, result.cause) == ("meeting_conversion_rate", "volume")
    assert result.hint is not None and result.hint.ja == "時間の使い方・ツール活用"
    assert result.approach is not None and result.approach.en.startswith("work efficiency")
    # Calls back on target (1,200) and the connect rate at 0.30 of 0.60 (0.5), below the
    # conversion's 0.6: connect_rate is the bottleneck, and the cause is quality.
    put_targets(seed_month, seed_targets(connect_rate=0.60))
    connect = funnel(seed_month, ctx, month=OCT_1)
    assert (connect.bottleneck, connect.cause) == ("connect_rate", "quality")
    assert connect.hint is not None and connect.hint.ja == "リストの質・架電時間帯"


def test_funnel_of_a_running_month_compares_counts_with_their_pace(seed_month: Engine) -> None:
    # Now is 15 Oct: business days 1, 2, 5–9, 13–15 (Sports Day, 12 Oct, is a holiday) = 10
    # of October's 21. Calls 1,200 against 1,500: achievement 0.8 of the whole month, but the
    # pace target is 1,500 × 10 / 21 = 714.285…, and 1,200 / 714.285… = 1.68: on pace, so
    # not "volume". meetings_set 12 of 20: pace 20 × 10 / 21 = 9.523…, 12 / 9.523… = 1.26.
    put_targets(seed_month, seed_targets(calls=1500))
    result = funnel(seed_month, CTX, month=OCT_1)
    calls = result.stages[0]
    assert (calls.achievement, calls.pace_target) == (0.8, pytest.approx(1500 * 10 / 21))
    assert calls.pace_achievement == pytest.approx(1200 / (1500 * 10 / 21))
    assert calls.below_target is False
    meetings = {s.stage: s for s in result.stages}["meetings_set"]
    assert meetings.achievement == 0.6
    assert meetings.pace_achievement == pytest.approx(12 / (20 * 10 / 21))
    rate = {s.stage: s for s in result.stages}["meeting_conversion_rate"]
    assert rate.pace_target is None  # rates are compared with their target as is
    assert result.cause == "quality"
    assert result.bottleneck == "meeting_conversion_rate"
    assert result.as_dict()["stages"][0]["pace_achievement"] == pytest.approx(1.68)


def test_funnel_without_targets(seed_month: Engine) -> None:
    result = funnel(seed_month, CTX, month=OCT_1)
    assert all(s.target is None and s.achievement is None for s in result.stages)
    assert stages(result)["calls"] == (None, 1200, None)
    assert (result.bottleneck, result.bottleneck_achievement, result.cause, result.hint) == (
        None,
        None,
        None,
        None,
    )
    # A rep's funnel reads rep targets only (the org's do not apply), and needs an id.
    put_targets(seed_month, seed_targets())
    rep = funnel(seed_month, CTX, month=OCT_1, scope="rep", scope_id="hubspot:r1")
    assert stages(rep)["calls"] == (None, 600, None)
    assert stages(rep)["meetings_set"] == (None, 12, None)
    with pytest.raises(KpiRequestError) as err:
        funnel(seed_month, CTX, month=OCT_1, scope="team")
    assert err.value.param == "id"


# --- target suggestion --------------------------------------------------------------------------


# docs/targets.md, docs/kpi-catalog.md changed from the months' mean to the pace: counts Σ ÷ Σ business days × the
# target month's business days, rates pooled. Business days (JP): July 22, August 20
# (Mountain Day, Tue 11 Aug), September 19, October 21, November 19 (Culture Day, Labour
# Thanksgiving), June 22.


def test_suggestion_pools_rates_and_paces_counts(history: Engine) -> None:
    (org,) = suggest_targets(history, CTX, kpi="effective_contact_rate")
    # July 1/2, August 3/8, September no calls (no denominator): pooled (1 + 3) / (2 + 8) = 0.4.
    assert [(m.month, m.value) for m in org.months] == [(JUL_1, 0.5), (AUG_1, 0.375), (SEP_1, None)]
    assert (org.method, org.base) == ("pooled", 0.4)
    # 0.4 × 0.9 / 1.0 / 1.1
    assert (org.minimum, org.achievement, org.stretch) == (0.36, 0.4, 0.44)
    body = org.as_dict()
    assert json.loads(json.dumps(body)) == body  # JSON-ready
    assert body["months"][2] == {
        "month": "2026-09-01",
        "value": None,
        "numerator": 0.0,
        "denominator": 0.0,
        "business_days": 19,
        "included": True,
    }
    assert (body["as_of"], body["scope_id"], body["factors"], body["period_start"]) == (
        "2026-10-15",
        "org",
        [0.9, 1.0, 1.1],
        "2026-10-01",
    )
    # Counts are 0, not null, in a month without calls: (2 + 8 + 0) calls over 22 + 20 + 19 =
    # 61 business days, × October's 21 = 210 / 61 = 3.4426…; levels rounded to whole calls.
    (calls,) = suggest_targets(history, CTX, kpi="calls", factors=(0.5, 1, 2))
    assert (calls.method, calls.business_days) == ("pace", 21)
    assert calls.per_business_day == round(10 / 61, 6)
    assert calls.base == round(210 / 61, 6)
    assert (calls.minimum, calls.achievement, calls.stretch) == (2, 3, 7)  # 1.72, 3.44, 6.89


def test_suggestion_per_member_and_all_null(history: Engine) -> None:
    reps = suggest_targets(history, CTX, kpi="calls", scope="rep")
    # r1 (first call in June): (2 + 4 + 0) / 61 × 21 = 126 / 61 = 2.066.
    # r2 (first call 5 August): July is left out: (4 + 0) / (20 + 19) × 21 = 84 / 39 = 2.154.
    # r3 (inactive, still a known rep) never made a call: no month counts, no suggestion.
    assert [(s.scope_id, s.scope_name, s.first_activity, s.base) for s in reps] == [
        ("hubspot:r1", "Aiko", date(2026, 6, 1), round(126 / 61, 6)),
        ("hubspot:r2", "Ben", date(2026, 8, 5), round(84 / 39, 6)),
        ("hubspot:r3", "Chie (left)", None, None),
    ]
    assert [m.included for m in reps[1].months] == [False, True, True]
    (one,) = suggest_targets(history, CTX, kpi="calls", scope="rep", scope_id="hubspot:r2")
    assert (one.scope_id, one.achievement) == ("hubspot:r2", 2)
    # r3 made no calls: every month's connect rate is null, and so is every suggestion.
    (idle,) = suggest_targets(history, CTX, kpi="connect_rate", scope="rep", scope_id="hubspot:r3")
    assert [m.value for m in idle.months] == [None, None, None]
    assert (idle.base, idle.minimum, idle.achievement, idle.stretch) == (None, None, None, None)
    for kwargs, param in (
        ({"kpi": "nope"}, "kpi"),
        ({"kpi": "calls", "factors": (0.9, 0, 1.1)}, "factors"),
        ({"kpi": "calls", "factors": (0.9, 1.0, float("inf"))}, "factors"),
        ({"kpi": "calls", "scope": "team", "scope_id": "hubspot:t9"}, "id"),
        ({"kpi": "calls", "period_start": date(2026, 11, 2)}, "period_start"),
    ):
        with pytest.raises(KpiRequestError) as err:
            suggest_targets(history, CTX, **kwargs)  # type: ignore[arg-type]
        assert err.value.param == param


def test_suggestion_replays_as_of_a_past_day(history: Engine) -> None:
    # As of 20 Sep: June 5, July 2, August 8 calls = 15 over 22 + 22 + 20 = 64 business days,
    # × September's 19 = 285 / 64 = 4.453: 4.01 → 4, 4.45 → 4, 4.90 → 5.
    (past,) = suggest_targets(history, CTX, kpi="calls", as_of=date(2026, 9, 20))
    assert [m.month for m in past.months] == [date(2026, 6, 1), JUL_1, AUG_1]
    assert (past.as_of, past.base, past.minimum, past.achievement, past.stretch) == (
        date(2026, 9, 20),
        round(285 / 64, 6),
        4,
        4,
        5,
    )
    # ISKPI_NOW moves "today": a context fixed at 2 Nov reads August–October: 8 + 0 + 3 = 11
    # over 20 + 19 + 21 = 60 business days, × November's 19 = 209 / 60.
    later = KpiContext(timezone="Asia/Tokyo", holidays="JP", now=datetime(2026, 11, 2, tzinfo=UTC))
    (now,) = suggest_targets(history, later, kpi="calls")
    assert [(m.month, m.value) for m in now.months] == [(AUG_1, 8), (SEP_1, 0), (OCT_1, 3)]
    assert now.base == round(209 / 60, 6)
