"""Every KPI of docs/kpi-catalog.md on a small store, against values worked out by hand.

Each test runs on SQLite and PostgreSQL (the ``engine`` fixture) and, where the
daily rollups could answer, both from the raw rows and from the rollups.

The fixture month is October 2026 in Asia/Tokyo (UTC+9, no DST) with JP
holidays: 22 weekdays minus Sports Day (Mon 12 Oct) = 21 business days.
Timestamps are UTC; "JST" notes give the local time that decides the day. The store
is ``FIXTURE`` in tests/support/kpi_records.py.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine

from connectors.records import Rep
from kpi import (
    CATALOG,
    KpiContext,
    KpiRequestError,
    KpiRow,
    Target,
    compute,
    put_cost,
    put_targets,
    rebuild_rollups,
)
from tests.support.kpi_records import CTX, FIXTURE, H, call, put

OCT = (date(2026, 10, 1), date(2026, 10, 31))
OCT_1 = date(2026, 10, 1)
BUSINESS_DAYS_OCT = 21
PATHS = ("raw", "rollups")


@pytest.fixture
def store_engine(engine: Engine) -> Engine:
    put(engine, FIXTURE)
    with engine.begin() as conn:
        rebuild_rollups(conn, CTX)
    return engine


def rows_of(
    engine: Engine, path: str, *, kpis: list[str] | None = None, **kw: Any
) -> dict[tuple[str, str, date, Any], KpiRow]:
    kw.setdefault("grain", "month")
    kw.setdefault("start", OCT[0])
    kw.setdefault("end", OCT[1])
    rows = compute(engine, CTX, kpis=kpis, use_rollups=path == "rollups", **kw)
    return {(r.kpi, r.scope_id, r.period_start, r.by_value): r for r in rows}


def org(rows: dict[tuple[str, str, date, Any], KpiRow], kpi: str) -> KpiRow:
    return rows[(kpi, "org", OCT_1, None)]


@pytest.mark.parametrize("path", PATHS)
def test_behavioral_kpis_at_org_scope(store_engine: Engine, path: str) -> None:
    rows = rows_of(store_engine, path)
    assert len(rows) == len(CATALOG) == 36  # one row per KPI for the one period and scope id
    # Outbound, non-deleted calls in October JST: c1 c2 c3 c4 c5 c10 c11 c12 c14 = 9
    # (not c6: November JST; c7 inbound; c8 no direction; c9 deleted).
    calls = org(rows, "calls")
    assert (calls.value, calls.numerator, calls.denominator) == (9, 9, None)
    # Reps with an outbound call or sent outbound email: r1 r2 r3 (e7) r4 (c14) = 4;
    # band 80–120 per rep per business day × 21 × 4 = 6,720–10,080; 9 is below.
    assert calls.band == (80 * 21 * 4, 120 * 21 * 4)
    assert calls.status == "below"
    # Reached: all but c4 (busy) = 8 of 9.
    reach = org(rows, "call_reach_rate")
    assert (reach.numerator, reach.denominator) == (8, 9)
    assert reach.value == pytest.approx(8 / 9)
    assert reach.status == "within"  # 0.889 in 0.85–0.95
    # Connected: c1 c2 c5 c12 c14 = 5 of 9.
    assert org(rows, "connect_rate").value == pytest.approx(5 / 9)
    assert org(rows, "connect_rate").status == "above"  # 0.556 > 0.35
    # Effective (≥ 60 s): c1 120 s, c5 60.000 s, c12 61 s, c14 70 s; not c2 (59.999 s) = 4.
    assert org(rows, "effective_contacts").value == 4
    assert org(rows, "effective_contact_rate").value == pytest.approx(4 / 9)
    # Talk: (120,000 + 59,999 + 60,000 + 61,000 + 70,000) ms / 5 connected = 74.1998 s.
    talk = org(rows, "avg_talk_seconds")
    assert talk.numerator == pytest.approx(370.999)
    assert talk.denominator == 5
    assert talk.value == pytest.approx(74.1998)
    assert talk.status == "below"
    # Sent outbound emails: e1 e2 e3 e7 = 4 (e4 bounced, e5 inbound, e6 deleted);
    # tracked among them: e1 e2 e7 = 3; opened e1, clicked e1, replied e2.
    sent = org(rows, "emails_sent")
    assert sent.value == 4
    assert sent.band == (30 * 21 * 4, 50 * 21 * 4)
    for kpi in ("email_open_rate", "email_click_rate", "email_reply_rate"):
        assert (org(rows, kpi).numerator, org(rows, kpi).denominator) == (1, 3)
        assert org(rows, kpi).value == pytest.approx(1 / 3)
    # Tasks due in October: t1 t2 t3 t4 (t5 deleted); on time: t1 (23:59:59.999 JST), t3.
    follow = org(rows, "follow_up_rate")
    assert (follow.numerator, follow.denominator, follow.value) == (2, 4, 0.5)
    assert follow.band == (None, None) and follow.status is None


@pytest.mark.parametrize("path", PATHS)
def test_tactical_kpis_at_org_scope(store_engine: Engine, path: str) -> None:
    rows = rows_of(store_engine, path)
    # Booked in October JST: m1 m2 m3 m4 (m5 is 30 Sep 23:59:59 JST, m6 deleted).
    assert org(rows, "meetings_set").value == 4
    # meetings_set / effective_contacts = 4 / 4.
    conv = org(rows, "meeting_conversion_rate")
    assert (conv.numerator, conv.denominator, conv.value) == (4, 4, 1.0)
    assert org(rows, "valid_meetings").value == 2  # m1, m4 completed
    assert org(rows, "appointment_set_rate").value == pytest.approx(3 / 4)  # m1 m3 m4 have a start
    cancel = org(rows, "meeting_cancel_rate")
    assert cancel.value == pytest.approx(1 / 4)  # m3
    assert cancel.band == (None, 0.10) and cancel.status == "above"
    # IS-sourced deals created in October: d1 d2 d3 d7 (d4 has no IS rep, d5 deleted, d6 Sept).
    assert org(rows, "deals_created").value == 4
    # SQL at in October JST: L1 (5 Oct), L9 (11 Oct); not L8 (1 Nov JST).
    assert org(rows, "sql_count").value == 2
    # IS-sourced deals created in October: d1 d2 d3 d7 = 4 (d4 has no IS rep: a field-sales
    # deal, out); all four BANT: d1 d7 (d2's authority is "" and timing blank: not acquired).
    bant = org(rows, "bant_rate")
    assert (bant.numerator, bant.denominator) == (2, 4)
    assert bant.value == pytest.approx(0.5)
    assert bant.status == "below"
    # IS-sourced closed in October: d1 (won), d2 (lost), d6 (won) → 2 / 3.
    handoff = org(rows, "handoff_win_rate")
    assert (handoff.numerator, handoff.denominator) == (2, 3)


@pytest.mark.parametrize("path", PATHS)
def test_strategic_and_efficiency_kpis_at_org_scope(store_engine: Engine, path: str) -> None:
    put_cost(store_engine, date(2026, 10, 1), Decimal("850000"))
    rows = rows_of(store_engine, path)
    # Closed won in October JST: d1 1,000,000, d4 3,000,000 (no IS rep: org counts it),
    # d6 250,000 (created in September); not d5 (deleted) nor d7 (1 Nov JST).
    assert org(rows, "won_count").value == 3
    assert org(rows, "won_amount").value == pytest.approx(4_250_000)
    # Closed: d1 d2 d4 d6 = 4 → 3 / 4.
    assert org(rows, "win_rate").value == pytest.approx(0.75)
    assert org(rows, "avg_deal_size").value == pytest.approx(4_250_000 / 3)
    ltv = org(rows, "ltv")  # × ISKPI_LTV_MONTHS (12)
    assert ltv.value == pytest.approx(17_000_000)
    assert ltv.numerator == pytest.approx(51_000_000)
    cac = org(rows, "cac")
    assert (cac.numerator, cac.denominator) == (850_000, 3)
    assert cac.value == pytest.approx(850_000 / 3)
    # Leads created in October JST: L1 L2 L3 L4 L5 L6 L8 L9 = 8 (L7 deleted).
    assert org(rows, "lead_supply").value == 8
    # First touches: L1 c1 +30 min, L2 c2 +50, L3 c4 (busy counts) +240, L4 c10 +6,060
    # (4 d 5 h); L5 never, L6 only by a deleted call and an email before it existed.
    # Median of 30, 50, 240, 6,060: the mean of the middle two = (50 + 240) / 2 = 145.
    response = org(rows, "lead_response_minutes")
    assert (response.value, response.numerator, response.denominator) == (145.0, None, 4)
    assert response.band == (None, 5.0) and response.status == "above"
    # IS deals created with a lead: d1 (L1 +1 d), d2 (L2: 1 Oct 00:10 → 4 Oct 12:00
    # = 3 d 11 h 50 min = 3.4930556 d); mean 2.2465278 d.
    lead_time = org(rows, "deal_lead_time_days")
    assert lead_time.denominator == 2
    assert lead_time.value == pytest.approx((1 + 3 + 710 / 1440) / 2)
    # BANT score over IS deals created: d1 4/4, d2 2/4, d3 0/4, d7 4/4 → 2.5 / 4.
    score = org(rows, "handoff_bant_score")
    assert (score.numerator, score.denominator, score.value) == (2.5, 4, 0.625)
    # Ratings of deals created in October that have one: d1 5, d3 3, d4 4 → 4.0.
    rating = org(rows, "handoff_rating")
    assert (rating.numerator, rating.denominator, rating.value) == (12, 3, 4.0)
    assert rating.band == (4.0, None) and rating.status == "within"
    # No snapshot: no forecast accuracy.
    assert org(rows, "forecast_accuracy").value is None


@pytest.mark.parametrize("path", PATHS)
def test_rep_scope(store_engine: Engine, path: str) -> None:
    rows = rows_of(store_engine, path, scope="rep")
    # Every known, non-deleted rep, whether or not it did anything: r1 r2 r3 r5; and the
    # deleted r4 for October, where it worked (c14), so team t2's total is r3 + r4.
    reps = sorted({scope for _, scope, _, _ in rows})
    assert reps == ["hubspot:r1", "hubspot:r2", "hubspot:r3", "hubspot:r4", "hubspot:r5"]
    assert len(rows) == 36 * 5
    r4 = {k: v for (k, s, _, _), v in rows.items() if s == "hubspot:r4"}
    assert r4["calls"].value == 1 and r4["calls"].scope_name == "Gone"
    teams = rows_of(store_engine, path, scope="team", kpis=["calls", "effective_contacts"])
    for kpi in ("calls", "effective_contacts"):
        t2 = teams[(kpi, "hubspot:t2", OCT_1, None)].value
        assert t2 == rows[(kpi, "hubspot:r3", OCT_1, None)].value + r4[kpi].value, kpi
    r1 = {k: v for (k, s, _, _), v in rows.items() if s == "hubspot:r1"}
    assert r1["calls"].scope_name == "Aiko"
    # r1: c1 c2 c3 c4 c5; reached c1 c2 c3 c5; connected c1 c2 c5; effective c1 c5.
    assert (r1["calls"].value, r1["call_reach_rate"].value) == (5, 0.8)
    assert r1["connect_rate"].value == pytest.approx(3 / 5)
    assert r1["effective_contacts"].value == 2
    assert r1["avg_talk_seconds"].value == pytest.approx(239.999 / 3)
    assert r1["calls"].band == (80 * 21, 120 * 21)  # one rep
    # r1 emails: e1 e2 e3 sent, e1 e2 tracked: opened 1/2, clicked 1/2, replied 1/2.
    assert r1["emails_sent"].value == 3
    assert r1["email_open_rate"].value == 0.5
    assert r1["follow_up_rate"].value == 0.5
    # r1 meetings m1 m2 m3; 3 booked / 2 effective.
    assert r1["meeting_conversion_rate"].value == 1.5
    assert r1["meeting_cancel_rate"].value == pytest.approx(1 / 3)
    # r1 deals: d1 d2 created (BANT 1 of 2), won d1 of closed d1 d2.
    assert r1["deals_created"].value == 2
    assert r1["bant_rate"].value == 0.5
    assert r1["win_rate"].value == 0.5
    assert r1["won_amount"].value == 1_000_000
    assert r1["handoff_bant_score"].value == 0.75
    # r1's leads: L1 +30, L2 +50, L4 +6,060 → median 50 (L6 untouched).
    assert (r1["lead_response_minutes"].value, r1["lead_response_minutes"].denominator) == (50, 3)
    assert r1["lead_supply"].value == 4  # L1 L2 L4 L6
    assert r1["cac"].value is None and r1["cac"].numerator is None  # costs are org-wide
    r2 = {k: v for (k, s, _, _), v in rows.items() if s == "hubspot:r2"}
    # r2: c10 (voicemail), c11 (wrong number): no connected call → no average talk time.
    assert r2["calls"].value == 2
    assert r2["connect_rate"].value == 0.0
    assert r2["avg_talk_seconds"].value is None and r2["avg_talk_seconds"].denominator == 0
    assert r2["meeting_conversion_rate"].value is None  # 1 meeting over 0 effective contacts
    assert r2["follow_up_rate"].value is None  # t5 deleted: nothing due
    assert (r2["won_count"].value, r2["win_rate"].value) == (1, 1.0)  # d6 closed in October
    assert r2["handoff_rating"].value == 3.0 and r2["handoff_rating"].status == "below"
    r3 = {k: v for (k, s, _, _), v in rows.items() if s == "hubspot:r3"}
    # r3 sent e7 (so is "in scope" for the calls band) but called nobody.
    assert r3["calls"].value == 0 and r3["calls"].band == (1680, 2520)
    assert r3["calls"].status == "below"
    assert r3["email_open_rate"].value == 0.0  # e7 tracked, opened unknown: not opened
    assert r3["win_rate"].value is None  # nothing closed in October (d7 closes in November)
    assert r3["lead_response_minutes"].value is None  # L5 never touched
    r5 = {k: v for (k, s, _, _), v in rows.items() if s == "hubspot:r5"}
    # r5 made no call or email: zero reps in scope, an empty band, which measures nothing.
    assert r5["calls"].value == 0 and r5["calls"].band == (0, 0)
    assert r5["calls"].status is None
    assert r5["connect_rate"].value is None and r5["connect_rate"].denominator == 0


@pytest.mark.parametrize("path", PATHS)
def test_team_scope_and_deleted_rep(store_engine: Engine, path: str) -> None:
    rows = rows_of(store_engine, path, scope="team", kpis=["calls", "deals_created", "won_count"])
    # Teams t1, t2 (t3 deleted); t1 = r1 + r2, t2 = r3 + the deleted r4's call c14.
    assert sorted({s for _, s, _, _ in rows}) == ["hubspot:t1", "hubspot:t2"]
    t1 = rows[("calls", "hubspot:t1", OCT_1, None)]
    assert (t1.value, t1.scope_name) == (7, "Tokyo")
    assert t1.band == (80 * 21 * 2, 120 * 21 * 2)
    t2 = rows[("calls", "hubspot:t2", OCT_1, None)]
    assert t2.value == 1 and t2.band == (80 * 21 * 2, 120 * 21 * 2)  # r3 emailed, r4 called
    assert rows[("deals_created", "hubspot:t1", OCT_1, None)].value == 3  # d1 d2 d3
    assert rows[("won_count", "hubspot:t1", OCT_1, None)].value == 2  # d1 d6 (not d4: no IS rep)
    one = rows_of(store_engine, path, scope="team", scope_id="hubspot:t2", kpis=["calls"])
    assert list(one) == [("calls", "hubspot:t2", OCT_1, None)]


@pytest.mark.parametrize("path", PATHS)
def test_day_and_week_grains_cut_in_the_business_time_zone(store_engine: Engine, path: str) -> None:
    rows = rows_of(
        store_engine,
        path,
        grain="day",
        start=date(2026, 9, 30),
        end=date(2026, 10, 2),
        scope="rep",
        scope_id="hubspot:r1",
        kpis=["calls", "follow_up_rate"],
    )
    calls = {p: r.value for (k, _, p, _), r in rows.items() if k == "calls"}
    # c5 (30 Sep 15:30 UTC) is 1 Oct JST; c4 is 2 Oct.
    assert calls == {date(2026, 9, 30): 0, date(2026, 10, 1): 4, date(2026, 10, 2): 1}
    band = rows[("calls", "hubspot:r1", date(2026, 10, 1), None)].band
    assert band == (80, 120)  # one business day, one rep
    idle = rows[("calls", "hubspot:r1", date(2026, 9, 30), None)]
    assert idle.band == (0, 0) and idle.status is None  # no activity: an empty band
    assert rows[("follow_up_rate", "hubspot:r1", date(2026, 10, 1), None)].value == 0.5
    weeks = rows_of(store_engine, path, grain="week", start=OCT[0], end=OCT[1], kpis=["calls"])
    # ISO weeks starting Monday, each whole: 28 Sep (c1–c5), 5 Oct (c10 c11 c12 c14),
    # 12, 19 Oct, and 26 Oct–1 Nov, which holds c6 (1 Nov 00:30 JST).
    by_week = {p: r.value for (_, _, p, _), r in weeks.items()}
    assert by_week == {
        date(2026, 9, 28): 5,
        date(2026, 10, 5): 4,
        date(2026, 10, 12): 0,
        date(2026, 10, 19): 0,
        date(2026, 10, 26): 1,
    }
    # Week of 5 Oct: 5 business days; active reps r2 (c10 c11), r3 (e7), r4 (c14) = 3.
    assert weeks[("calls", "org", date(2026, 10, 5), None)].band == (80 * 5 * 3, 120 * 5 * 3)


@pytest.mark.parametrize("path", PATHS)
def test_breakdown_by_rep_team_weekday(store_engine: Engine, path: str) -> None:
    rows = rows_of(store_engine, path, by="rep", kpis=["calls"])
    by_rep = {b: r.value for (_, _, _, b), r in rows.items()}
    # Values present in the data, byte order, the no-rep value last.
    assert list(by_rep) == ["hubspot:r1", "hubspot:r2", "hubspot:r3", "hubspot:r4", None]
    assert by_rep == {"hubspot:r1": 5, "hubspot:r2": 2, "hubspot:r3": 0, "hubspot:r4": 1, None: 1}
    assert rows[("calls", "org", OCT_1, "hubspot:r2")].band == (1680, 2520)
    rows = rows_of(store_engine, path, by="team", kpis=["calls", "won_count"])
    assert {b: r.value for (k, _, _, b), r in rows.items() if k == "calls"} == {
        "hubspot:t1": 7,
        "hubspot:t2": 1,
        None: 1,
    }
    # d4 has no IS rep: its win shows under no team.
    assert {b: r.value for (k, _, _, b), r in rows.items() if k == "won_count"} == {
        "hubspot:t1": 2,
        "hubspot:t2": 0,
        None: 1,
    }
    rows = rows_of(store_engine, path, by="weekday", kpis=["calls"])
    # JST dates: Thu 1 Oct c1 c2 c3 c5, Fri 2 Oct c4, Wed 7 Oct c10 c11, Thu 8 Oct c12,
    # Fri 9 Oct c14; the weekday values present (emails etc. add Sat 3 and Sat 10 Oct).
    by_day = {b: r.value for (_, _, _, b), r in rows.items()}
    assert by_day[4] == 5 and by_day[5] == 2 and by_day[3] == 2
    assert all(isinstance(b, int) for b in by_day)
    # Thursdays in October 2026: 1 8 15 22 29 = 5 business days; reps active on Thursdays:
    # r1 (c1…), r2? no; Thursday activity: r1 (calls, e1), no-rep c12 → 1 rep.
    assert rows[("calls", "org", OCT_1, 4)].band == (80 * 5 * 1, 120 * 5 * 1)
    # Saturdays have no business day: an empty band, and no status against it.
    assert rows[("calls", "org", OCT_1, 6)].band == (0, 0)
    assert rows[("calls", "org", OCT_1, 6)].status is None
    assert rows[("calls", "org", OCT_1, 4)].status is not None


@pytest.mark.parametrize("path", PATHS)
def test_breakdown_by_lead_attributes_and_hour(store_engine: Engine, path: str) -> None:
    rows = rows_of(store_engine, path, by="channel", kpis=["calls", "lead_supply", "deals_created"])
    calls = {b: r.value for (k, _, _, b), r in rows.items() if k == "calls"}
    # Through the call's contact: web c1 c3 c4 (L1 L1 L3), event c2 (L2); ads: no call;
    # partner: a deal's own lead source; no lead (or a deleted one, L7) → null.
    assert calls == {"ads": 0, "event": 1, "partner": 0, "web": 3, None: 5}
    assert {b: r.value for (k, _, _, b), r in rows.items() if k == "lead_supply"} == {
        "ads": 1,
        "event": 1,
        "partner": 0,
        "web": 3,  # L1 L3 L8
        None: 3,  # L4 L6 L9
    }
    assert {b: r.value for (k, _, _, b), r in rows.items() if k == "deals_created"} == {
        "ads": 0,
        "event": 1,  # d2 (L2)
        "partner": 1,  # d7: no contact, LeadSource partner
        "web": 1,  # d1 (L1); d4 is not IS-sourced
        None: 1,  # d3
    }
    assert rows[("calls", "org", OCT_1, "web")].band == (None, None)  # no per-day band per channel
    sizes = rows_of(store_engine, path, by="company_size", kpis=["lead_supply"])
    assert {b: r.value for (_, _, _, b), r in sizes.items()} == {"1-9": 1, "10-49": 1, None: 6}
    industry = rows_of(store_engine, path, by="industry", kpis=["calls"])
    assert {b: r.value for (_, _, _, b), r in industry.items()} == {"saas": 2, None: 7}
    hours = rows_of(store_engine, path, by="hour", kpis=["calls", "connect_rate"])
    # JST hours: c5 0, c1 9, c2 10, c12 10, c14 10, c3 11, c4 12, c10 14, c11 15.
    by_hour = {b: r.value for (k, _, _, b), r in hours.items() if k == "calls"}
    assert {h: v for h, v in by_hour.items() if v} == {
        0: 1,
        9: 1,
        10: 3,
        11: 1,
        12: 1,
        14: 1,
        15: 1,
    }
    assert hours[("connect_rate", "org", OCT_1, 10)].value == 1.0  # c2 c12 c14 connected


@pytest.mark.parametrize("path", PATHS)
def test_targets_and_achievement(store_engine: Engine, path: str) -> None:
    put_targets(
        store_engine,
        [
            Target("calls", "month", OCT_1, "rep", "hubspot:r1", 10),
            Target("won_amount", "month", OCT_1, "org", "org", 5_000_000),
            Target("connect_rate", "month", OCT_1, "rep", "hubspot:r2", 0),
        ],
    )
    rows = rows_of(store_engine, path, scope="rep", kpis=["calls", "connect_rate"])
    r1 = rows[("calls", "hubspot:r1", OCT_1, None)]
    assert (r1.target, r1.achievement) == (10, 0.5)  # 5 / 10
    r2 = rows[("connect_rate", "hubspot:r2", OCT_1, None)]
    assert (r2.target, r2.achievement) == (0, None)  # a zero target: no achievement
    assert rows[("calls", "hubspot:r2", OCT_1, None)].target is None
    won = rows_of(store_engine, path, kpis=["won_amount"])
    assert org(won, "won_amount").achievement == pytest.approx(4_250_000 / 5_000_000)
    # A breakdown by rep is measured against each rep's own target.
    by_rep = rows_of(store_engine, path, by="rep", kpis=["calls"])
    assert by_rep[("calls", "org", OCT_1, "hubspot:r1")].achievement == 0.5
    # Day rows have day targets only.
    days = rows_of(
        store_engine, path, grain="day", start=OCT_1, end=OCT_1, scope="rep", kpis=["calls"]
    )
    assert all(r.target is None for r in days.values())


def test_replacing_targets_and_validation(engine: Engine) -> None:
    put(engine, FIXTURE[:8])
    put_targets(engine, [Target("calls", "month", OCT_1, "org", "org", 100)])
    put_targets(engine, [Target("calls", "month", OCT_1, "org", "org", 120)])
    from kpi import list_targets

    assert [t.value for t in list_targets(engine)] == [120]
    bad = [
        (Target("nope", "month", OCT_1, "org", "org", 1), "kpi"),
        (Target("calls", "year", OCT_1, "org", "org", 1), "grain"),
        (Target("calls", "month", date(2026, 10, 2), "org", "org", 1), "period_start"),
        (Target("calls", "week", OCT_1, "org", "org", 1), "period_start"),  # a Thursday
        (Target("calls", "month", OCT_1, "rep", "hubspot:r9", 1), "id"),
        (Target("calls", "month", OCT_1, "rep", "r1", 1), "id"),
        (Target("calls", "month", OCT_1, "galaxy", "x", 1), "scope"),
        (Target("calls", "month", OCT_1, "org", "org", float("nan")), "value"),
    ]
    for target, param in bad:
        with pytest.raises(KpiRequestError) as err:
            put_targets(engine, [target])
        assert err.value.param == param


@pytest.mark.parametrize("path", PATHS)
def test_cac_prorates_monthly_costs_over_days(store_engine: Engine, path: str) -> None:
    put_cost(store_engine, date(2026, 10, 15), 31_000)  # any day names its month
    rows = rows_of(
        store_engine,
        path,
        grain="day",
        start=date(2026, 10, 20),
        end=date(2026, 10, 21),
        kpis=["cac"],
    )
    # 31,000 over 31 days = 1,000 a day; one win on each of 20 (d1) and 21 (d4) October.
    assert [(r.numerator, r.denominator, r.value) for r in rows.values()] == [
        (1000, 1, 1000),
        (1000, 1, 1000),
    ]
    weeks = rows_of(
        store_engine,
        path,
        grain="week",
        start=date(2026, 9, 28),
        end=date(2026, 9, 28),
        kpis=["cac"],
    )
    # Week of 28 Sep: 4 October days (1–4 Oct) → 4,000; no month cost for September; no win.
    week = weeks[("cac", "org", date(2026, 9, 28), None)]
    assert (week.numerator, week.denominator, week.value) == (4000, 0, None)


def test_dense_rows_and_order(store_engine: Engine) -> None:
    rows = compute(
        store_engine,
        CTX,
        kpis=["won_count", "calls"],
        grain="month",
        start=date(2026, 9, 1),
        end=OCT[1],
        scope="rep",
    )
    keys = [(r.kpi, r.scope_id, r.period_start) for r in rows]
    assert keys == sorted(keys)  # kpi, scope_id, period_start
    # KPIs × (reps × months, zeros where nothing happened; the deleted r4 in October only,
    # where it worked).
    assert len(rows) == 2 * (4 * 2 + 1)
    september = [r for r in rows if r.period_start == date(2026, 9, 1) and r.kpi == "calls"]
    assert [r.value for r in september] == [0, 0, 0, 0]
    assert "hubspot:r4" not in {r.scope_id for r in september}
    row = rows[0]
    assert row.as_dict() == {
        "kpi": "calls",
        "tier": "behavioral",
        "grain": "month",
        "period_start": "2026-09-01",
        "scope": "rep",
        "scope_id": "hubspot:r1",
        "scope_name": "Aiko",
        "by": None,
        "by_value": None,
        "value": 0,
        "numerator": 0,
        "denominator": None,
        "target": None,
        "achievement": None,
        "band": {"low": 0.0, "high": 0.0},
        "status": None,
        "targets": {"minimum": None, "achievement": None, "stretch": None},
        "pace_target": None,
        "pace_achievement": None,
    }


def test_request_errors_name_the_parameter(store_engine: Engine) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kpis": ["calls", "nope"]}, "kpi"),
        ({"grain": "year"}, "grain"),
        ({"scope": "galaxy"}, "scope"),
        ({"scope": "rep", "scope_id": "hubspot:r99"}, "id"),  # unknown
        ({"scope": "rep", "scope_id": "r1"}, "id"),
        ({"scope_id": "hubspot:r1"}, "id"),  # org has only "org"
        ({"by": "moon"}, "by"),
        ({"tier": "legendary"}, "tier"),
        ({"start": date(2026, 10, 2), "end": date(2026, 10, 1)}, "to"),
        ({"grain": "day", "start": date(2000, 1, 1), "end": date(2026, 12, 31)}, "to"),
    ]
    for kw, param in cases:
        kw = {"grain": "month", "start": OCT[0], "end": OCT[1], **kw}
        with pytest.raises(KpiRequestError) as err:
            compute(store_engine, CTX, **kw)
        assert err.value.param == param, kw
    # A breakdown's size is only known from the data: checked on the result.
    with pytest.raises(KpiRequestError, match="narrow"):
        compute(store_engine, CTX, grain="month", start=OCT[0], end=OCT[1], by="hour", max_rows=100)
    assert (
        len(
            compute(
                store_engine,
                CTX,
                grain="day",
                start=OCT[0],
                end=OCT[1],
                kpis=["calls"],
                tier="behavioral",
            )
        )
        == 31
    )


def test_new_york_dst_boundaries(engine: Engine) -> None:
    ny = KpiContext(timezone="America/New_York")
    put(
        engine,
        [
            Rep(source=H, crm_id="r1", name="Ann"),
            # DST starts 8 Mar 2026 07:00 UTC. 04:59 UTC on 8 Mar is 7 Mar 23:59 EST.
            call("a", "2026-03-08T04:59", rep_crm_id="r1"),
            call("b", "2026-03-08T05:00", rep_crm_id="r1"),  # 8 Mar 00:00 EST
            call("c", "2026-03-09T03:59", rep_crm_id="r1"),  # 8 Mar 23:59 EDT
            call("d", "2026-03-09T04:00", rep_crm_id="r1"),  # 9 Mar 00:00 EDT
            # DST ends 1 Nov 2026 06:00 UTC: 04:30 UTC is 1 Nov 00:30 EDT, next day's
            # 04:30 UTC is 1 Nov 23:30 EST; 05:00 UTC on 2 Nov is 2 Nov 00:00 EST.
            call("e", "2026-11-01T03:59", rep_crm_id="r1"),  # 31 Oct 23:59 EDT
            call("f", "2026-11-01T04:30", rep_crm_id="r1"),
            call("g", "2026-11-02T04:30", rep_crm_id="r1"),
            call("h", "2026-11-02T05:00", rep_crm_id="r1"),
        ],
    )
    for use_rollups in (False, True):
        if use_rollups:
            with engine.begin() as conn:
                rebuild_rollups(conn, ny)
        rows = compute(
            engine,
            ny,
            kpis=["calls"],
            grain="day",
            start=date(2026, 3, 7),
            end=date(2026, 3, 9),
            use_rollups=use_rollups,
        )
        assert [r.value for r in rows] == [1, 2, 1]
        rows = compute(
            engine,
            ny,
            kpis=["calls"],
            grain="day",
            start=date(2026, 10, 31),
            end=date(2026, 11, 2),
            use_rollups=use_rollups,
        )
        assert [r.value for r in rows] == [1, 2, 1]
        months = compute(
            engine,
            ny,
            kpis=["calls"],
            grain="month",
            start=date(2026, 10, 1),
            end=date(2026, 11, 30),
            use_rollups=use_rollups,
        )
        assert [r.value for r in months] == [1, 3]
    hours = compute(
        engine,
        ny,
        kpis=["calls"],
        grain="month",
        start=date(2026, 3, 1),
        end=date(2026, 3, 31),
        by="hour",
    )
    # a 23 (EST), b 0 (EST), c 23 (EDT), d 0 (EDT)
    assert {r.by_value: r.value for r in hours} == {0: 2, 23: 2}
