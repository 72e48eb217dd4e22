"""Issue 15's KPI fidelity on a small store, against values worked out by hand.

IS vs field sales (bant_rate over IS-sourced deals; field-sales reps out of the reps
in scope), the new KPIs (is_won_amount, meeting_win_rate, lead_quality_score,
list_consumption_rate), by=deal_type, the quarter and fiscal_year grains, and as_of
replays. Every store test runs on SQLite and PostgreSQL and, where the daily rollups
could answer, from raw rows and from rollups.

The month is October 2026 in Asia/Tokyo (UTC+9) with JP holidays: 21 business days
(Sports Day, Mon 12 Oct, is a holiday). Timestamps are UTC; "JST" notes give the
local time that decides the day.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite

from connectors.records import Call, Deal, Email, Lead, Meeting, Record, Rep, Source, Team
from kpi import (
    KPIS,
    KpiContext,
    KpiRequestError,
    KpiRow,
    Target,
    compute,
    list_targets,
    list_teams,
    plan,
    put_targets,
    rebuild_rollups,
)
from kpi.compiler import Request, compile_rows
from kpi.periods import next_period, period_start, period_starts
from models import TABLE_BY_KIND, CallList, CallListMember, store
from service.db import downgrade, make_engine, migrate
from tests.support.db import POSTGRES_URL, postgres_engine

H: Source = "hubspot"
FS_TEAMS = ("Field Sales",)
CTX = KpiContext(timezone="Asia/Tokyo", holidays="JP", field_sales_teams=FS_TEAMS)
NO_FS = KpiContext(timezone="Asia/Tokyo", holidays="JP")
OCT_1 = date(2026, 10, 1)
OCT = (OCT_1, date(2026, 10, 31))
PATHS = ("raw", "rollups")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def put_rows(engine: Engine, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
    """Store (kind, row) pairs the way the sync does: one upsert per kind."""
    by_kind: dict[str, list[Mapping[str, Any]]] = {}
    for kind, row in rows:
        by_kind.setdefault(kind, []).append(row)
    with engine.begin() as conn:
        for kind, page in by_kind.items():
            store.upsert_records(conn, TABLE_BY_KIND[kind], page, datetime.now(UTC))


def put(engine: Engine, records: Iterable[Record]) -> None:
    put_rows(engine, ((r.kind, r.as_row()) for r in records))


def call(crm_id: str, when: str, rep: str, contact: str | None = None, **kw: Any) -> Call:
    kw.setdefault("direction", "outbound")
    kw.setdefault("outcome", "connected")
    return Call(
        source=H, crm_id=crm_id, occurred_at=at(when), rep_crm_id=rep, contact_crm_id=contact, **kw
    )


def meeting(crm_id: str, when: str, rep: str) -> Meeting:
    return Meeting(source=H, crm_id=crm_id, booked_at=at(when), outcome="scheduled", rep_crm_id=rep)


BANT = {"bant_budget": "b", "bant_authority": "a", "bant_need": "n", "bant_timing": "t"}


def deal(crm_id: str, created: str, deal_type: str | None, **kw: Any) -> tuple[str, dict[str, Any]]:
    # The connectors do not map deal_type yet: the column is written as a row.
    row = Deal(source=H, crm_id=crm_id, created_at=at(created), **kw).as_row()
    return "deal", {**row, "deal_type": deal_type}


def won(closed: str, amount: int) -> dict[str, Any]:
    return {"closed_at": at(closed), "is_closed": True, "is_won": True, "amount": Decimal(amount)}


def call_list(crm_id: str, name: str, deleted: bool = False) -> tuple[str, dict[str, Any]]:
    return "call_list", {
        "source": H,
        "crm_id": crm_id,
        "name": name,
        "kind": "MANUAL",
        "deleted": deleted,
    }


def member(
    list_id: str, crm_id: str, lead: str, added: str, deleted: bool = False
) -> tuple[str, dict[str, Any]]:
    return "call_list_member", {
        "source": H,
        "list_crm_id": list_id,
        "crm_id": crm_id,
        "contact_crm_id": lead,
        "added_at": at(added),
        "deleted": deleted,
    }


RECORDS: list[Record] = [
    Team(source=H, crm_id="t1", name="Tokyo IS"),
    Team(source=H, crm_id="tf", name="Field Sales"),
    Rep(source=H, crm_id="r1", name="Aiko", email="aiko@example.com", team_crm_id="t1"),
    Rep(source=H, crm_id="r2", name="Ben", email="ben@example.com", team_crm_id="t1"),
    Rep(source=H, crm_id="f1", name="Fumi", email="fumi@example.com", team_crm_id="tf"),
    # --- calls and emails -------------------------------------------------------------------
    call("c1", "2026-10-01T01:00", "r1", "L1"),  # 1 Oct 10:00 JST
    call("c2", "2026-10-02T01:00", "f1"),  # a field-sales rep's call: counted, not "in scope"
    call("c3", "2026-10-05T16:00", "r2", "L2", outcome="no_answer"),  # 6 Oct 01:00 JST
    call("c4", "2026-10-31T15:30", "r2", "L4"),  # 1 Nov 00:30 JST: November
    call("c5", "2026-10-07T01:00", "r1"),  # 7 Oct: after a replay as of 6 Oct
    Email(
        source=H,
        crm_id="e1",
        sent_at=at("2026-10-06T01:00"),
        direction="outbound",
        rep_crm_id="r1",
        contact_crm_id="L3",
    ),
    # --- meetings ---------------------------------------------------------------------------
    meeting("m1", "2026-10-01T05:00", "r1"),
    meeting("m2", "2026-10-02T05:00", "r1"),
    meeting("m3", "2026-10-03T05:00", "r2"),
    meeting("m4", "2026-10-04T05:00", "r2"),
    meeting("m5", "2026-10-06T01:00", "r2"),  # 6 Oct 10:00 JST
    # --- leads ------------------------------------------------------------------------------
    Lead(source=H, crm_id="L1", created_at=at("2026-10-01T00:00"), score=80, rep_crm_id="r1"),
    Lead(source=H, crm_id="L2", created_at=at("2026-10-01T00:30"), score=40, rep_crm_id="r2"),
    Lead(source=H, crm_id="L3", created_at=at("2026-10-02T00:00"), rep_crm_id="r1"),  # no score
    # 30 Sep 15:30 UTC is 1 Oct 00:30 JST: October.
    Lead(source=H, crm_id="L4", created_at=at("2026-09-30T15:30"), score=30, rep_crm_id="r2"),
    # 30 Sep 14:00 UTC is 30 Sep 23:00 JST: September.
    Lead(source=H, crm_id="L5", created_at=at("2026-09-30T14:00"), score=100, rep_crm_id="r1"),
    Lead(
        source=H,
        crm_id="L6",
        created_at=at("2026-10-03T00:00"),
        score=99,
        rep_crm_id="r1",
        deleted=True,
    ),
]
ROWS: list[tuple[str, Mapping[str, Any]]] = [
    # --- deals ------------------------------------------------------------------------------
    deal(
        "d1",
        "2026-10-02T00:00",
        "new",
        rep_crm_id="r1",
        **BANT,
        **won("2026-10-20T00:00", 1_000_000),
    ),
    deal(
        "d2",
        "2026-10-03T00:00",
        "existing",
        rep_crm_id="r2",
        bant_budget="b",
        bant_need="n",
        **won("2026-10-21T00:00", 500_000),
    ),
    # A field-sales deal: no IS rep, never any BANT.
    deal("d3", "2026-10-04T00:00", "new", owner_crm_id="f1", **won("2026-10-22T00:00", 3_000_000)),
    deal(
        "d4",
        "2026-10-05T00:00",
        None,
        rep_crm_id="r1",
        **BANT,
        closed_at=at("2026-10-23T00:00"),
        is_closed=True,
        amount=Decimal(200_000),
    ),  # lost
    deal("d5", "2026-10-06T00:00", "existing", rep_crm_id="r2", **BANT),  # open
    # Logged on 10 Oct as won on 3 Oct: a replay as of 5 Oct must not see it.
    deal("d6", "2026-10-10T00:00", "new", rep_crm_id="r1", **won("2026-10-03T00:00", 700_000)),
    # --- call lists -------------------------------------------------------------------------
    call_list("list1", "October calling"),
    call_list("list2", "Dropped list", deleted=True),
    member("list1", "L1", "L1", "2026-10-01T00:10"),  # c1 at 01:00: worked
    member("list1", "L2", "L2", "2026-10-01T00:40"),  # c3 (no answer counts) on 6 Oct: worked
    member("list1", "L3", "L3", "2026-10-07T00:00"),  # e1 on 6 Oct was before it joined
    member("list1", "L4", "L4", "2026-10-30T00:00"),  # c4 falls in November
    member("list1", "L5", "L5", "2026-09-20T00:00"),  # added in September
    member("list1", "L6", "L2", "2026-10-03T00:00", deleted=True),
    member("list2", "L1", "L1", "2026-10-02T00:00"),  # of a deleted list
]


@pytest.fixture
def store_engine(engine: Engine) -> Engine:
    put(engine, RECORDS)
    put_rows(engine, ROWS)
    with engine.begin() as conn:
        rebuild_rollups(conn, CTX)
    return engine


Rows = dict[tuple[str, str, date, Any], KpiRow]


def rows_of(engine: Engine, path: str, ctx: KpiContext = CTX, **kw: Any) -> Rows:
    kw.setdefault("grain", "month")
    kw.setdefault("start", OCT[0])
    kw.setdefault("end", OCT[1])
    rows = compute(engine, ctx, use_rollups=path == "rollups", **kw)
    return {(r.kpi, r.scope_id, r.period_start, r.by_value): r for r in rows}


def fraction(row: KpiRow) -> tuple[Any, Any, Any]:
    return row.numerator, row.denominator, row.value


# --- the new KPIs and bant_rate -------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_new_kpis_and_bant_rate_at_org_scope(store_engine: Engine, path: str) -> None:
    rows = rows_of(
        store_engine,
        path,
        kpis=[
            "bant_rate",
            "is_won_amount",
            "won_amount",
            "meeting_win_rate",
            "lead_quality_score",
            "list_consumption_rate",
        ],
    )

    def org(kpi: str) -> KpiRow:
        return rows[(kpi, "org", OCT_1, None)]

    # IS-sourced deals created in October: d1 d2 d4 d5 d6 = 5 (d3 is field sales: out);
    # all four BANT: d1 d4 d5 → 3 / 5. (Counting d3 would make it 3 / 6.)
    assert fraction(org("bant_rate")) == (3, 5, pytest.approx(0.6))
    assert org("bant_rate").status == "below"  # band 0.70–0.85
    # IS-sourced won in October: d1 1,000,000 + d2 500,000 + d6 700,000 = 2,200,000;
    # the org's won amount adds the field-sales d3: 5,200,000.
    assert org("is_won_amount").value == pytest.approx(2_200_000)
    assert org("won_amount").value == pytest.approx(5_200_000)
    # IS-sourced won (d1 d2 d6) / meetings booked in October (m1–m5) = 3 / 5.
    assert fraction(org("meeting_win_rate")) == (3, 5, pytest.approx(0.6))
    assert org("meeting_win_rate").band == (0.20, 0.35)
    assert org("meeting_win_rate").status == "above"
    # Leads created in October JST with a score: L1 80, L2 40, L4 30 (L3 has none, L5 is
    # September, L6 deleted) → 150 / 3 = 50.
    assert fraction(org("lead_quality_score")) == (150, 3, 50.0)
    # Members of live lists added in October: L1 L2 L3 L4 (list1) = 4; worked by 31 Oct:
    # L1 (c1), L2 (c3) → 2 / 4.
    assert fraction(org("list_consumption_rate")) == (2, 4, 0.5)


@pytest.mark.parametrize("path", PATHS)
def test_new_kpis_at_rep_scope(store_engine: Engine, path: str) -> None:
    rows = rows_of(
        store_engine,
        path,
        scope="rep",
        kpis=["is_won_amount", "meeting_win_rate", "lead_quality_score", "list_consumption_rate"],
    )
    # f1 is field sales: not listed.
    assert sorted({s for _, s, _, _ in rows}) == ["hubspot:r1", "hubspot:r2"]

    def rep(kpi: str, rep_id: str) -> KpiRow:
        return rows[(kpi, f"hubspot:{rep_id}", OCT_1, None)]

    assert rep("is_won_amount", "r1").value == pytest.approx(1_700_000)  # d1 + d6
    assert rep("is_won_amount", "r2").value == pytest.approx(500_000)  # d2
    assert fraction(rep("meeting_win_rate", "r1")) == (2, 2, 1.0)  # d1 d6 / m1 m2
    assert fraction(rep("meeting_win_rate", "r2")) == (1, 3, pytest.approx(1 / 3))  # d2 / m3–m5
    assert fraction(rep("lead_quality_score", "r1")) == (80, 1, 80.0)  # L1 (L3 unscored)
    assert fraction(rep("lead_quality_score", "r2")) == (70, 2, 35.0)  # L2 40 + L4 30
    # A member belongs to the rep who owns its lead: r1 L1 (worked) L3; r2 L2 (worked) L4.
    assert fraction(rep("list_consumption_rate", "r1")) == (1, 2, 0.5)
    assert fraction(rep("list_consumption_rate", "r2")) == (1, 2, 0.5)


# --- by=deal_type --------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_breakdown_by_deal_type(store_engine: Engine, path: str) -> None:
    rows = rows_of(
        store_engine, path, by="deal_type", kpis=["deals_created", "won_amount", "calls"]
    )

    def values(kpi: str) -> list[tuple[Any, Any]]:
        return [(b, r.value) for (k, _, _, b), r in rows.items() if k == kpi]

    # IS-sourced deals created: d1 d6 new, d2 d5 existing, d4 unknown; byte order, null last.
    assert values("deals_created") == [("existing", 2), ("new", 2), (None, 1)]
    # Won by close date: new d1 1,000,000 + d3 3,000,000 + d6 700,000; existing d2 500,000.
    assert values("won_amount") == [
        ("existing", pytest.approx(500_000)),
        ("new", pytest.approx(4_700_000)),
        (None, 0),
    ]
    # Calls have no deal type: all four October calls (c1 c2 c3 c5) are under null.
    assert values("calls") == [("existing", 0), ("new", 0), (None, 4)]
    assert rows[("calls", "org", OCT_1, None)].band == (None, None)  # no per-day band per type


# --- field sales ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_field_sales_reps_are_out_of_the_per_day_band_scaling(
    store_engine: Engine, path: str
) -> None:
    # Reps with an outbound call or sent email in October: r1 (c1 c5 e1), r2 (c3), and the
    # field-sales f1 (c2), who is not in scope: 2 reps × 21 business days.
    calls = rows_of(store_engine, path, kpis=["calls"])[("calls", "org", OCT_1, None)]
    assert calls.value == 4  # c1 c2 c3 c5: the value still counts f1's call
    assert calls.band == (80 * 21 * 2, 120 * 21 * 2)
    plain = rows_of(store_engine, path, NO_FS, kpis=["calls"])[("calls", "org", OCT_1, None)]
    assert (plain.value, plain.band) == (4, (80 * 21 * 3, 120 * 21 * 3))
    # Team listings leave the field-sales team out; asked by id, it is still there.
    teams = rows_of(store_engine, path, scope="team", kpis=["calls"])
    assert [s for _, s, _, _ in teams] == ["hubspot:t1"]
    fs = rows_of(store_engine, path, scope="rep", scope_id="hubspot:f1", kpis=["calls"])
    assert fs[("calls", "hubspot:f1", OCT_1, None)].value == 1
    everyone = rows_of(store_engine, path, NO_FS, scope="rep", kpis=["calls"])
    assert sorted(s for _, s, _, _ in everyone) == ["hubspot:f1", "hubspot:r1", "hubspot:r2"]


def test_plan_counts_inside_sales_reps_only(store_engine: Engine) -> None:
    rates = {"win_rate": 0.25, "meeting_conversion_rate": 0.10, "effective_contact_rate": 0.30}
    kw: dict[str, Any] = {"won_target": 10, "month": OCT_1, "as_of": date(2026, 10, 15), **rates}
    assert plan(store_engine, CTX, **kw).reps == 2  # r1 r2 (not f1)
    assert plan(store_engine, NO_FS, **kw).reps == 3


def test_teams_listed_by_kind(store_engine: Engine) -> None:
    def listing(ctx: KpiContext, kind: str) -> list[dict[str, Any]]:
        return [t.as_dict() for t in list_teams(store_engine, ctx, kind=kind)]

    tokyo = {
        "id": "hubspot:t1",
        "name": "Tokyo IS",
        "kind": "is",
        "reps": [
            {"id": "hubspot:r1", "name": "Aiko", "email": "aiko@example.com", "active": True},
            {"id": "hubspot:r2", "name": "Ben", "email": "ben@example.com", "active": True},
        ],
    }
    field = {
        "id": "hubspot:tf",
        "name": "Field Sales",
        "kind": "fs",
        "reps": [{"id": "hubspot:f1", "name": "Fumi", "email": "fumi@example.com", "active": True}],
    }
    assert listing(CTX, "is") == [tokyo]
    assert listing(CTX, "fs") == [field]
    assert listing(CTX, "all") == [tokyo, field]
    # Named by id instead of by name: the same.
    by_id = KpiContext(timezone="Asia/Tokyo", field_sales_teams=(" hubspot:tf ", "other"))
    assert listing(by_id, "fs") == [field]
    assert listing(NO_FS, "all") == [tokyo, {**field, "kind": "is"}]
    with pytest.raises(KpiRequestError) as err:
        list_teams(store_engine, CTX, kind="everyone")
    assert err.value.param == "kind"


# --- as_of ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_as_of_replays_never_see_later_records(store_engine: Engine, path: str) -> None:
    kpis = [
        "calls",
        "meetings_set",
        "is_won_amount",
        "meeting_win_rate",
        "list_consumption_rate",
        "lead_response_minutes",
        "deals_created",
    ]
    full = rows_of(store_engine, path, kpis=kpis)
    replay = rows_of(store_engine, path, kpis=kpis, as_of=date(2026, 10, 5))

    def both(kpi: str) -> tuple[KpiRow, KpiRow]:
        return full[(kpi, "org", OCT_1, None)], replay[(kpi, "org", OCT_1, None)]

    # Through the end of 5 Oct JST (5 Oct 15:00 UTC): c1 c2 (c3 is 6 Oct 01:00 JST).
    assert [r.value for r in both("calls")] == [4, 2]
    assert [r.value for r in both("meetings_set")] == [5, 4]  # not m5 (6 Oct)
    # d6 closes on 3 Oct but was created on 10 Oct: the replay does not know it.
    assert [r.value for r in both("is_won_amount")] == [pytest.approx(2_200_000), 0]
    assert fraction(both("meeting_win_rate")[1]) == (0, 4, 0.0)
    # IS deals created by 5 Oct: d1 d2 d4 (d4 at 5 Oct 09:00 JST).
    assert [r.value for r in both("deals_created")] == [5, 3]
    # Members added by 5 Oct: L1 L2; worked before the cut: L1 (c3 on L2 is 6 Oct).
    assert fraction(both("list_consumption_rate")[0]) == (2, 4, 0.5)
    assert fraction(both("list_consumption_rate")[1]) == (1, 2, 0.5)
    # First touches: L1 c1 +60 min, L2 c3 +6,690 (4 d 15 h 30 min), L3 e1 +5,820 (4 d 1 h),
    # L4 c4 +44,640 (31 d): median (5,820 + 6,690) / 2 = 6,255. As of 5 Oct only L1 had one.
    response, replayed = both("lead_response_minutes")
    assert (response.value, response.denominator) == (6255.0, 4)
    assert (replayed.value, replayed.denominator) == (60.0, 1)


@pytest.mark.parametrize("path", PATHS)
def test_a_replayed_this_week_excludes_later_records(store_engine: Engine, path: str) -> None:
    week: dict[str, Any] = {"grain": "week", "start": date(2026, 10, 5), "end": date(2026, 10, 5)}
    kpis = ["calls", "meetings_set"]
    live = rows_of(store_engine, path, kpis=kpis, **week)
    # As of Tue 6 Oct: the week of Mon 5 Oct holds c3 (6 Oct 01:00 JST) but not c5 (7 Oct).
    replay = rows_of(store_engine, path, kpis=kpis, as_of=date(2026, 10, 6), **week)
    monday = date(2026, 10, 5)
    assert live[("calls", "org", monday, None)].value == 2
    assert replay[("calls", "org", monday, None)].value == 1
    assert replay[("meetings_set", "org", monday, None)].value == 1  # m5


# --- quarters and fiscal years -------------------------------------------------------------


def test_fiscal_periods_in_python() -> None:
    april = 4
    # An April year: 2026-04-01 names the year from April 2026 to March 2027.
    assert period_start(date(2026, 3, 31), "fiscal_year", april) == date(2025, 4, 1)
    assert period_start(date(2026, 4, 1), "fiscal_year", april) == date(2026, 4, 1)
    assert period_start(date(2027, 1, 15), "fiscal_year", april) == date(2026, 4, 1)
    assert next_period(date(2026, 4, 1), "fiscal_year") == date(2027, 4, 1)
    # Its quarters start in April, July, October and January.
    assert period_start(date(2026, 1, 15), "quarter", april) == date(2026, 1, 1)
    assert period_start(date(2026, 6, 30), "quarter", april) == date(2026, 4, 1)
    assert period_start(date(2026, 12, 31), "quarter", april) == date(2026, 10, 1)
    assert period_starts("quarter", date(2025, 12, 15), date(2026, 4, 1), april) == [
        date(2025, 10, 1),
        date(2026, 1, 1),
        date(2026, 4, 1),
    ]
    # A calendar year (the default), and a February year whose quarter spans New Year.
    assert period_start(date(2026, 11, 15), "quarter") == date(2026, 10, 1)
    assert period_start(date(2026, 12, 31), "fiscal_year") == date(2026, 1, 1)
    assert period_start(date(2026, 1, 15), "quarter", 2) == date(2025, 11, 1)
    assert period_start(date(2026, 1, 15), "fiscal_year", 2) == date(2025, 2, 1)
    assert next_period(date(2025, 11, 1), "quarter") == date(2026, 2, 1)
    for bad in (0, 13):
        with pytest.raises(ValueError):
            KpiContext(fiscal_year_start_month=bad)


def _fiscal_store(engine: Engine) -> None:
    put(
        engine,
        [
            Rep(source=H, crm_id="r1", name="Aiko"),
            call("y1", "2025-12-31T14:00", "r1"),  # 31 Dec 2025 23:00 JST
            call("y2", "2025-12-31T15:30", "r1"),  # 1 Jan 2026 00:30 JST
            call("y3", "2026-03-31T14:59:59", "r1"),  # 31 Mar 2026 23:59:59 JST
            call("y4", "2026-03-31T15:00", "r1"),  # 1 Apr 2026 00:00 JST
        ],
    )


@pytest.mark.parametrize("path", PATHS)
def test_quarters_and_fiscal_years_across_the_year_boundary(engine: Engine, path: str) -> None:
    # No holidays, so the business days are the weekdays, counted by hand.
    april = KpiContext(timezone="Asia/Tokyo", fiscal_year_start_month=4)
    calendar_year = KpiContext(timezone="Asia/Tokyo")
    _fiscal_store(engine)
    with engine.begin() as conn:
        rebuild_rollups(conn, april)

    def calls(ctx: KpiContext, grain: str, start: date, end: date) -> dict[date, Any]:
        rows = compute(
            engine,
            ctx,
            kpis=["calls"],
            grain=grain,  # type: ignore[arg-type]
            start=start,
            end=end,
            use_rollups=path == "rollups",
        )
        return {r.period_start: (r.value, r.band) for r in rows}

    # January 2026: 22 weekdays, February 20, March 22 → 64; one rep called.
    quarters = calls(april, "quarter", date(2025, 10, 1), date(2026, 6, 30))
    assert {p: v for p, (v, _) in quarters.items()} == {
        date(2025, 10, 1): 1,  # y1
        date(2026, 1, 1): 2,  # y2 y3
        date(2026, 4, 1): 1,  # y4
    }
    assert quarters[date(2026, 1, 1)][1] == (80 * 64, 120 * 64)
    # Fiscal year from Tue 1 Apr 2025 to Tue 31 Mar 2026: 52 weeks and a Tuesday = 261 weekdays.
    years = calls(april, "fiscal_year", date(2025, 4, 1), date(2027, 3, 31))
    assert years == {
        date(2025, 4, 1): (3, (80 * 261, 120 * 261)),  # y1 y2 y3
        date(2026, 4, 1): (1, (80 * 261, 120 * 261)),  # y4; FY2026 has 261 weekdays too
    }
    # A calendar fiscal year: 2025 (365 days from a Wednesday: 261 weekdays) and 2026.
    assert {p: v for p, (v, _) in calls(calendar_year, "fiscal_year", *OCT).items()} == {
        date(2026, 1, 1): 3
    }
    assert {
        p: v
        for p, (v, _) in calls(
            calendar_year, "quarter", date(2025, 12, 1), date(2026, 1, 1)
        ).items()
    } == {date(2025, 10, 1): 1, date(2026, 1, 1): 2}


@pytest.mark.parametrize("path", PATHS)
def test_list_consumption_by_the_end_of_a_quarter(store_engine: Engine, path: str) -> None:
    rows = rows_of(
        store_engine, path, grain="quarter", start=OCT_1, end=OCT_1, kpis=["list_consumption_rate"]
    )
    # October–December: L4 joined on 30 Oct and c4 reached it on 1 Nov, before the quarter's
    # end: 3 of the 4 members added are worked.
    assert fraction(rows[("list_consumption_rate", "org", OCT_1, None)]) == (3, 4, 0.75)


def test_quarter_and_fiscal_year_targets(store_engine: Engine) -> None:
    april = KpiContext(timezone="Asia/Tokyo", fiscal_year_start_month=4)
    put_targets(
        store_engine,
        [
            Target("calls", "quarter", date(2026, 10, 1), "org", "org", 300),
            Target("calls", "fiscal_year", date(2026, 4, 1), "org", "org", 1200),
        ],
        april,
    )
    assert [t.grain for t in list_targets(store_engine)] == ["fiscal_year", "quarter"]
    with pytest.raises(KpiRequestError) as err:  # an April year does not start in January
        put_targets(
            store_engine, [Target("calls", "fiscal_year", date(2026, 1, 1), "org", "org", 1)], april
        )
    assert err.value.param == "period_start"
    rows = compute(store_engine, april, kpis=["calls"], grain="quarter", start=OCT_1, end=OCT_1)
    # c1 c2 c3 c5 in October; c4 (1 Nov JST) too: 5 of 300.
    [row] = rows
    assert (row.value, row.target) == (5, 300)
    assert row.achievement == pytest.approx(5 / 300)


# --- the migration -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0004_downgrades_and_upgrades_again(backend: str, tmp_path: Any) -> None:
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    else:
        schema = f"iskpi_mig4_{os.getpid()}"
        admin = make_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = postgres_engine(schema)
    new_tables = {"call_lists", "call_list_members"}
    try:
        migrate(engine)

        def columns(table: str) -> set[str]:
            return {c["name"] for c in inspect(engine).get_columns(table)}

        assert new_tables <= set(inspect(engine).get_table_names())
        assert columns("call_list_members") == set(CallListMember.__table__.columns.keys())
        assert columns("call_lists") == set(CallList.__table__.columns.keys())
        assert "deal_type" in columns("deals")
        put_targets(engine, [Target("calls", "fiscal_year", date(2026, 1, 1), "org", "org", 1)])
        downgrade(engine, "0003")
        assert not new_tables & set(inspect(engine).get_table_names())
        assert "deal_type" not in columns("deals")
        migrate(engine)
        assert new_tables <= set(inspect(engine).get_table_names())
        assert "deal_type" in columns("deals")
    finally:
        engine.dispose()
        if backend == "postgresql":
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def test_members_upsert_on_their_list_key(engine: Engine) -> None:
    put_rows(
        engine,
        [
            call_list("list1", "One"),
            call_list("list2", "Two"),
            # The same member id in two lists is two memberships.
            member("list1", "L1", "L1", "2026-10-01T00:00"),
            member("list2", "L1", "L1", "2026-10-02T00:00"),
        ],
    )
    put_rows(engine, [member("list1", "L1", "L1", "2026-10-03T00:00")])  # a re-sync: updated
    with engine.begin() as conn:
        store.flag_deleted(
            conn, CallListMember, H, ["L1"], datetime.now(UTC), within={"list_crm_id": "list2"}
        )
        rows = conn.execute(
            select(CallListMember.list_crm_id, CallListMember.added_at, CallListMember.deleted)
        ).all()
    assert sorted(rows) == [
        ("list1", at("2026-10-03T00:00"), False),
        ("list2", at("2026-10-02T00:00"), True),
    ]


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()])
def test_new_ratios_compile_to_cast_over_nullif(dialect: Any) -> None:
    req = Request(ctx=CTX, dialect=dialect.name, grain="quarter", periods=(OCT_1,))
    specs = [KPIS[k] for k in ("meeting_win_rate", "lead_quality_score", "list_consumption_rate")]
    sql = str(compile_rows(specs, req).statement.compile(dialect=dialect))
    assert "CAST(w.deals_won_is AS FLOAT) / nullif(w.meetings_booked," in sql
    assert "CAST(w.lead_score_sum AS FLOAT) / nullif(w.leads_scored," in sql
    assert "CAST(w.list_members_worked AS FLOAT) / nullif(w.list_members_added," in sql
