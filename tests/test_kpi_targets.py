"""Targets (docs/targets.md, docs/kpi-catalog.md): levels, draft / confirmed, revisions, skill levels, allocation, pace.

Each test runs on SQLite and PostgreSQL (the ``engine`` fixture). "Now" is 10 Dec 2026
12:00 JST, so the trailing three complete months are September–November 2026.
Business days (JP holidays): September 19, October 21 (Sports Day), November 19 (Culture
Day, Labour Thanksgiving), December 23 (no holiday), January 2027 19 (New Year's Day,
Coming of Age Day on the 11th).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, event, inspect, text, update

from connectors.records import Call, Email, Record, Rep, Team
from kpi import (
    CATALOG,
    KpiContext,
    KpiRequestError,
    Target,
    allocate,
    compute,
    largest_remainder,
    list_revisions,
    list_targets,
    put_targets,
    rep_levels,
    set_rep_level,
    suggest_targets,
)
from models import Base, store
from models.crm import TABLE_BY_KIND
from models.crm import Rep as RepRow
from models.store import table_of
from service.db import downgrade, migrate
from tests.support.db import ENGINES, bare_store

H: Final = "hubspot"
NOW = datetime(2026, 12, 10, 3, 0, tzinfo=UTC)
CTX = KpiContext(timezone="Asia/Tokyo", holidays="JP", now=NOW)
DEC_1, JAN_1 = date(2026, 12, 1), date(2027, 1, 1)
FS = ("hubspot:t9",)  # the field-sales team

# --- small fixture helpers (copied, not imported from other test modules) ------------------------


def at(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=UTC)


def put(engine: Engine, records: Iterable[Record]) -> None:
    """Store records the way the sync does: one upsert per kind."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_kind.setdefault(record.kind, []).append(record.as_row())
    with engine.begin() as conn:
        for kind, rows in by_kind.items():
            store.upsert_records(conn, TABLE_BY_KIND[kind], rows, datetime.now(UTC))


def call(crm_id: str, when: str, rep: str, outcome: str = "connected") -> Call:
    return Call(
        source=H,
        crm_id=crm_id,
        occurred_at=at(when),
        outcome=outcome,  # type: ignore[arg-type]
        direction="outbound",
        duration_ms=90_000,
        rep_crm_id=rep,
    )


def email(crm_id: str, when: str, rep: str) -> Email:
    return Email(
        source=H,
        crm_id=crm_id,
        sent_at=at(when),
        direction="outbound",
        sent=True,
        tracked=False,
        rep_crm_id=rep,
    )


def calls(rep: str, month: str, count: int, per_day: int = 1) -> list[Call]:
    """``count`` calls from the 1st of ``month`` (YYYY-MM), ``per_day`` a day at 10:00 JST on."""
    return [
        call(
            f"{rep}-{month}-{i}",
            f"{month}-{i // per_day + 1:02d}T01:{i % per_day:02d}",
            rep,
        )
        for i in range(count)
    ]


# Tokyo (t1) is inside sales; t9 is field sales. First activities: r1 2 Jun 2025 (senior
# on 10 Dec 2026), r2 11 May 2026 (mid: 6 months on 11 Nov), r3 1 Sep 2026 (junior).
#
#          calls Sep–Nov    emails Sep–Nov
#   r1          6                3
#   r2          3                1
#   r3          1                0
#   r4 (FS)    10                0
#   r5 (inactive, no activity)
PEOPLE: list[Record] = [
    Team(source=H, crm_id="t1", name="Tokyo"),
    Team(source=H, crm_id="t9", name="Field"),
    Rep(source=H, crm_id="r1", name="Aiko", team_crm_id="t1"),
    Rep(source=H, crm_id="r2", name="Ben", team_crm_id="t1"),
    Rep(source=H, crm_id="r3", name="Chie", team_crm_id="t1"),
    Rep(source=H, crm_id="r4", name="Field rep", team_crm_id="t9"),
    Rep(source=H, crm_id="r5", name="Left", team_crm_id="t1", active=False),
]
HISTORY: list[Record] = [
    *PEOPLE,
    call("r1-first", "2025-06-02T01:00", "r1"),
    call("r2-first", "2026-05-11T01:00", "r2"),
    *calls("r1", "2026-09", 2),
    *calls("r1", "2026-10", 2),
    *calls("r1", "2026-11", 2),
    *calls("r2", "2026-10", 3),
    call("r3-first", "2026-09-01T01:00", "r3"),
    *calls("r4", "2026-10", 10),
    email("e1", "2026-09-02T01:00", "r1"),
    email("e2", "2026-10-02T01:00", "r1"),
    email("e3", "2026-11-02T01:00", "r1"),
    email("e4", "2026-11-03T01:00", "r2"),
]


@pytest.fixture
def history(engine: Engine) -> Engine:
    put(engine, HISTORY)
    return engine


def target(kpi: str, scope: str, scope_id: str, value: float | None, **kw: Any) -> Target:
    return Target(kpi, "month", DEC_1, scope, scope_id, value, **kw)


def rep_targets(engine: Engine, kpi: str, **kw: Any) -> dict[str, tuple[float | None, str | None]]:
    return {
        t.scope_id: (t.value, t.status) for t in list_targets(engine, kpi=kpi, scope="rep", **kw)
    }


# --- allocation -----------------------------------------------------------------------------------


def test_largest_remainder_sums_exactly_and_breaks_ties_by_id() -> None:
    one = Fraction(1)
    # 100 / 3 = 33.33…: one unit left, three equal remainders: the smallest id gets it.
    assert largest_remainder(100, [("b", one), ("a", one), ("c", one)]) == {
        "a": 34,
        "b": 33,
        "c": 33,
    }
    assert largest_remainder(0, [("a", one), ("b", one)]) == {"a": 0, "b": 0}


def test_equal_split_of_a_stored_team_target_writes_drafts(history: Engine) -> None:
    put_targets(history, [target("calls", "team", "hubspot:t1", 100, status="confirmed")])
    result = allocate(
        history,
        CTX,
        kpi="calls",
        grain="month",
        period_start=DEC_1,
        scope="team",
        scope_id="hubspot:t1",
        method="equal",
        who="Sato",
    )
    # r5 is inactive: three reps. 100 / 3 = 33.33…; the unit left goes to the smallest id.
    assert [(r.rep_id, r.value, r.share) for r in result.reps] == [
        ("hubspot:r1", 34, 0.333333),
        ("hubspot:r2", 33, 0.333333),
        ("hubspot:r3", 33, 0.333333),
    ]
    assert sum(r.value for r in result.reps) == 100
    assert (result.value, result.value_source, result.mode, result.written) == (
        100,
        "stored",
        "split",
        3,
    )
    assert rep_targets(history, "calls") == {
        "hubspot:r1": (34, "draft"),
        "hubspot:r2": (33, "draft"),
        "hubspot:r3": (33, "draft"),
    }
    # Drafts record no revisions; only the confirmed team target's creation is one.
    assert [(r.scope, r.new_value) for r in list_revisions(history)] == [("team", 100)]
    body = result.as_dict()
    assert body["reps"][0] == {
        "id": "hubspot:r1",
        "name": "Aiko",
        "level": "senior",
        "weight": 1.0,
        "share": 0.333333,
        "value": 34,
    }


def test_org_split_leaves_out_field_sales_reps(history: Engine) -> None:
    common: dict[str, Any] = {
        "kpi": "calls",
        "grain": "month",
        "period_start": DEC_1,
        "scope": "org",
        "value": 100,
        "dry_run": True,
    }
    with_fs = allocate(history, CTX, **common)
    assert [r.value for r in with_fs.reps] == [25, 25, 25, 25]  # r1–r4
    without = allocate(history, CTX, field_sales_team_ids=FS, **common)
    assert [r.rep_id for r in without.reps] == ["hubspot:r1", "hubspot:r2", "hubspot:r3"]
    assert without.field_sales_team_ids == FS
    assert (without.dry_run, without.written) == (True, 0)
    assert list_targets(history, scope="rep", level=None) == []  # a dry run writes nothing
    with pytest.raises(KpiRequestError) as err:
        fs_team = {**common, "scope": "team", "scope_id": "hubspot:t9"}
        allocate(history, CTX, **fs_team, field_sales_team_ids=FS)
    assert err.value.param == "id"


def test_skill_split_by_level_weights(history: Engine) -> None:
    common: dict[str, Any] = {
        "kpi": "meetings_set",
        "grain": "month",
        "period_start": DEC_1,
        "scope": "team",
        "scope_id": "hubspot:t1",
        "method": "skill",
        "level": "stretch",
    }
    put_targets(history, [target("meetings_set", "team", "hubspot:t1", 31, level="stretch")])
    result = allocate(history, CTX, **common)
    # Weights senior 1.2 (r1), mid 1.0 (r2), junior 0.7 (r3); Σ 2.9. Quotas: 31 × 1.2 / 2.9 =
    # 12.828, 31 × 1.0 / 2.9 = 10.690, 31 × 0.7 / 2.9 = 7.483; floors 12 + 10 + 7 = 29; the two
    # units left go to the largest remainders .828 (r1) and .690 (r2): 13, 11, 7.
    assert [(r.rep_id, r.level, r.weight, r.value) for r in result.reps] == [
        ("hubspot:r1", "senior", 1.2, 13),
        ("hubspot:r2", "mid", 1.0, 11),
        ("hubspot:r3", "junior", 0.7, 7),
    ]
    assert result.weights == {"junior": 0.7, "mid": 1.0, "senior": 1.2}
    assert rep_targets(history, "meetings_set", level="stretch") == {
        "hubspot:r1": (13, "draft"),
        "hubspot:r2": (11, "draft"),
        "hubspot:r3": (7, "draft"),
    }
    assert rep_targets(history, "meetings_set") == {}  # the achievement level is untouched
    # Given weights (junior 1, mid 1, senior 2; Σ 4): 15.5, 7.75, 7.75 → 15 + 7 + 7 = 29; the
    # two units go to .75 and .75 (r2, r3): 15, 8, 8.
    again = allocate(history, CTX, **common, weights={"junior": 1, "senior": 2}, dry_run=True)
    assert [r.value for r in again.reps] == [15, 8, 8]
    for bad in ({"expert": 1.0}, {"junior": 0}, {"mid": float("nan")}):
        with pytest.raises(KpiRequestError) as err:
            allocate(history, CTX, **common, weights=bad, dry_run=True)
        assert err.value.param == "weights"


def test_history_split_by_trailing_share_and_equal_fallback(history: Engine) -> None:
    common: dict[str, Any] = {
        "grain": "month",
        "period_start": DEC_1,
        "scope": "team",
        "scope_id": "hubspot:t1",
        "method": "history",
        "dry_run": True,
    }
    # Calls September–November: r1 6, r2 3, r3 1 (of 10). 101 → 60.6, 30.3, 10.1; floors
    # 60 + 30 + 10 = 100; the unit left to the largest remainder (.6, r1): 61, 30, 10.
    result = allocate(history, CTX, kpi="calls", value=101, **common)
    assert [(r.weight, r.share, r.value) for r in result.reps] == [
        (6, 0.6, 61),
        (3, 0.3, 30),
        (1, 0.1, 10),
    ]
    assert result.trailing_months == (date(2026, 9, 1), date(2026, 10, 1), date(2026, 11, 1))
    assert result.fallback is None
    # Emails: r1 3, r2 1, r3 none (share 0). 10 → 7.5, 2.5, 0; the tie of .5 goes to r1.
    emails = allocate(history, CTX, kpi="emails_sent", value=10, **common)
    assert [(r.share, r.value) for r in emails.reps] == [(0.75, 8), (0.25, 2), (0.0, 0)]
    # No meetings at all: equal, and the result says so.
    meetings = allocate(history, CTX, kpi="meetings_set", value=10, **common)
    assert meetings.fallback == "equal"
    assert [r.value for r in meetings.reps] == [4, 3, 3]


def test_amounts_split_in_whole_units_and_rates_are_copied(history: Engine) -> None:
    common: dict[str, Any] = {
        "grain": "month",
        "period_start": DEC_1,
        "scope": "team",
        "scope_id": "hubspot:t1",
    }
    won = allocate(history, CTX, kpi="won_amount", value=1_000_000, **common)
    assert [r.value for r in won.reps] == [333_334, 333_333, 333_333]
    with pytest.raises(KpiRequestError) as err:
        allocate(history, CTX, kpi="won_amount", value=1000.5, dry_run=True, **common)
    assert err.value.param == "value"
    rate = allocate(history, CTX, kpi="connect_rate", value=0.3, method="skill", **common)
    assert rate.mode == "copied"
    assert [(r.value, r.weight, r.share) for r in rate.reps] == [(0.3, None, None)] * 3
    assert rep_targets(history, "connect_rate") == {
        f"hubspot:r{i}": (0.3, "draft") for i in (1, 2, 3)
    }


def test_allocation_is_all_or_nothing(history: Engine) -> None:
    # r3 already has a confirmed target: changing it needs a reason, and without one the
    # allocation writes nothing, not even r1's and r2's drafts.
    put_targets(history, [target("calls", "rep", "hubspot:r3", 20, status="confirmed")])
    common: dict[str, Any] = {
        "kpi": "calls",
        "grain": "month",
        "period_start": DEC_1,
        "scope": "team",
        "scope_id": "hubspot:t1",
        "value": 100,
    }
    with pytest.raises(KpiRequestError) as err:
        allocate(history, CTX, **common)
    assert (err.value.param, err.value.index) == ("reason", 2)
    assert rep_targets(history, "calls") == {"hubspot:r3": (20, "confirmed")}
    # Confirmed at once, with a reason: one revision per rep, r3's from its old value.
    allocate(history, CTX, **common, confirm=True, reason="Q4 plan", who="Sato")
    assert rep_targets(history, "calls") == {
        "hubspot:r1": (34, "confirmed"),
        "hubspot:r2": (33, "confirmed"),
        "hubspot:r3": (33, "confirmed"),
    }
    revisions = list_revisions(history, scope="rep", scope_id="hubspot:r3")
    assert [(r.old_value, r.new_value, r.reason, r.who) for r in revisions] == [
        (20, 33, "Q4 plan", "Sato"),
        (None, 20, None, "system"),
    ]


def test_allocation_errors_name_the_parameter(history: Engine) -> None:
    common: dict[str, Any] = {
        "kpi": "calls",
        "grain": "month",
        "period_start": DEC_1,
        "scope": "team",
        "scope_id": "hubspot:t1",
        "dry_run": True,
    }
    for change, param in (
        ({}, "value"),  # nothing stored at the achievement level
        ({"scope": "rep", "scope_id": "hubspot:r1", "value": 1}, "scope"),
        ({"method": "random", "value": 1}, "method"),
        ({"weights": {"junior": 1}, "value": 1}, "weights"),
        ({"value": 10.5}, "value"),
        ({"value": -1}, "value"),
        ({"kpi": "nope", "value": 1}, "kpi"),
        ({"period_start": date(2026, 12, 2), "value": 1}, "period_start"),
        ({"scope_id": "hubspot:t404", "value": 1}, "id"),
        ({"level": "huge", "value": 1}, "level"),
    ):
        with pytest.raises(KpiRequestError) as err:
            allocate(history, CTX, **{**common, **change})
        assert err.value.param == param, change


# --- draft / confirmed and revisions ------------------------------------------------------------


def test_revisions_record_confirmed_changes_newest_first(history: Engine) -> None:
    org = target("calls", "org", "org", 100)
    put_targets(history, [org], who="Ito")  # a draft: no revision
    assert list_revisions(history) == []
    assert [(t.value, t.status, t.updated_by) for t in list_targets(history)] == [
        (100, "draft", "Ito")
    ]
    put_targets(history, [target("calls", "org", "org", 100, status="confirmed")], who="Sato")
    # Changing a confirmed value needs a reason; the error names it and the target's index.
    with pytest.raises(KpiRequestError) as err:
        put_targets(
            history,
            [target("meetings_set", "org", "org", 5), target("calls", "org", "org", 120)],
        )
    assert (err.value.param, err.value.index) == ("reason", 1)
    assert [t.kpi for t in list_targets(history)] == ["calls"]  # the batch wrote nothing
    put_targets(history, [target("calls", "org", "org", 120, reason="new hires")], who="Sato")
    assert [(t.value, t.status) for t in list_targets(history)] == [(120, "confirmed")]
    # Deleting a confirmed target is a revision to null, and needs a reason too.
    with pytest.raises(KpiRequestError) as err:
        put_targets(history, [target("calls", "org", "org", None)])
    assert err.value.param == "reason"
    put_targets(history, [target("calls", "org", "org", None, reason="dropped")], who="Kato")
    assert list_targets(history) == []
    got = [
        (r.old_value, r.new_value, r.old_status, r.new_status, r.reason, r.who)
        for r in list_revisions(history, kpi="calls", grain="month", period_start=DEC_1)
    ]
    assert got == [
        (120, None, "confirmed", None, "dropped", "Kato"),
        (100, 120, "confirmed", "confirmed", "new hires", "Sato"),
        (100, 100, "draft", "confirmed", None, "Sato"),  # the agreement
    ]
    newest = list_revisions(history)[0]
    assert newest.as_dict()["id"] == "org" and newest.at.tzinfo is not None
    assert list_revisions(history, kpi="meetings_set") == []
    assert list_revisions(history, period_start=JAN_1) == []
    # The same value again changes nothing and records nothing.
    put_targets(history, [target("won_count", "org", "org", 3, status="confirmed")])
    put_targets(history, [target("won_count", "org", "org", 3)])
    assert len(list_revisions(history, kpi="won_count")) == 1


def test_target_values_are_validated_in_one_place(history: Engine) -> None:
    for change, param in (
        ({"value": 10.5}, "value"),  # a count is whole
        ({"value": -1}, "value"),
        ({"value": float("nan")}, "value"),
        ({"value": float("inf")}, "value"),
        ({"kpi": "connect_rate", "value": 1.5}, "value"),  # a rate is a fraction
        ({"level": "huge"}, "level"),
        ({"status": "agreed"}, "status"),
        ({"scope_id": "hubspot:r404"}, "id"),
    ):
        fields: dict[str, Any] = {"kpi": "calls", "scope_id": "hubspot:r1", "value": 10, **change}
        kpi, scope_id, value = fields.pop("kpi"), fields.pop("scope_id"), fields.pop("value")
        with pytest.raises(KpiRequestError) as err:
            put_targets(
                history,
                [
                    target("calls", "rep", "hubspot:r1", 1),
                    target(kpi, "rep", scope_id, value, **fields),
                ],
            )
        assert (err.value.param, err.value.index) == (param, 1), change
    assert list_targets(history, level=None) == []
    # Rates at the bounds, amounts with decimals and means are fine.
    put_targets(
        history,
        [
            target("connect_rate", "rep", "hubspot:r1", 1),
            target("connect_rate", "rep", "hubspot:r2", 0),
            target("won_amount", "org", "org", 1000.5),
            target("avg_talk_seconds", "org", "org", 240.5),
        ],
    )
    assert len(list_targets(history)) == 4
    with pytest.raises(KpiRequestError) as who:
        put_targets(history, [target("calls", "org", "org", 1)], who=" ")
    assert who.value.param == "who"


def test_kpi_rows_carry_all_three_levels(history: Engine) -> None:
    put_targets(
        history,
        [
            target("calls", "rep", "hubspot:r1", 2, level="minimum"),
            target("calls", "rep", "hubspot:r1", 4),
            target("calls", "rep", "hubspot:r1", 8, level="stretch"),
            target("emails_sent", "rep", "hubspot:r1", 5, level="stretch"),
        ],
    )
    put(history, [call("dec1", "2026-12-01T01:00", "r1"), call("dec2", "2026-12-02T01:00", "r1")])
    rows = compute(
        history,
        CTX,
        kpis=["calls", "emails_sent"],
        start=DEC_1,
        end=DEC_1,
        scope="rep",
        scope_id="hubspot:r1",
    )
    got = {r.kpi: (r.value, r.target, r.achievement, tuple(r.targets)) for r in rows}
    assert got == {
        "calls": (2, 4, 0.5, (2, 4, 8)),
        "emails_sent": (0, None, None, (None, None, 5)),
    }
    assert rows[0].as_dict()["targets"] == {"minimum": 2, "achievement": 4, "stretch": 8}
    # Another rep's row has none.
    (r2,) = compute(
        history, CTX, kpis=["calls"], start=DEC_1, end=DEC_1, scope="rep", scope_id="hubspot:r2"
    )
    assert (r2.target, tuple(r2.targets)) == (None, (None, None, None))


# --- skill levels -------------------------------------------------------------------------------


def test_skill_levels_from_tenure_at_the_boundaries(engine: Engine) -> None:
    # First call at 01:00 JST on 15 Apr 2026 (14 Apr UTC): tenure counts from 15 Apr.
    put(engine, [*PEOPLE, call("first", "2026-04-14T16:00", "r1")])

    def level(day: date) -> tuple[str, str, date | None]:
        (rep,) = rep_levels(engine, CTX, as_of=day, scope="rep", scope_id="hubspot:r1")
        return rep.level, rep.tenure_level, rep.since

    start = date(2026, 4, 15)
    assert level(date(2026, 10, 14)) == ("junior", "junior", start)
    assert level(date(2026, 10, 15)) == ("mid", "mid", start)  # 6 months
    assert level(date(2027, 4, 14)) == ("mid", "mid", start)
    assert level(date(2027, 4, 15)) == ("senior", "senior", start)  # 12 months
    # Before the first activity the rep has no tenure yet (a replay).
    assert level(date(2026, 4, 1)) == ("junior", "junior", None)
    # An earlier CRM created date counts from there.
    with engine.begin() as conn:
        reps = table_of(RepRow)
        conn.execute(
            update(reps).where(reps.c.crm_id == "r1").values(crm_created_at=at("2025-10-01T00:00"))
        )
    assert level(date(2026, 10, 14)) == ("senior", "senior", date(2025, 10, 1))


def test_level_override_and_one_query_for_all_reps(engine: Engine) -> None:
    put(engine, HISTORY)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        levels = rep_levels(engine, CTX)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 1
    assert [(r.rep_id, r.level) for r in levels] == [
        ("hubspot:r1", "senior"),
        ("hubspot:r2", "mid"),
        ("hubspot:r3", "junior"),
        ("hubspot:r4", "junior"),  # first call in October
        ("hubspot:r5", "junior"),  # no activity at all
    ]
    set_rep_level(engine, "hubspot:r1", "junior")
    put(engine, PEOPLE)  # a sync of the reps keeps the override
    (r1,) = rep_levels(engine, CTX, scope="rep", scope_id="hubspot:r1")
    assert (r1.level, r1.tenure_level, r1.override) == ("junior", "senior", "junior")
    assert r1.as_dict()["level"] == "junior"
    team = rep_levels(engine, CTX, scope="team", scope_id="hubspot:t1", include_inactive=False)
    assert [r.rep_id for r in team] == ["hubspot:r1", "hubspot:r2", "hubspot:r3"]
    set_rep_level(engine, "hubspot:r1", None)
    (r1,) = rep_levels(engine, CTX, scope="rep", scope_id="hubspot:r1")
    assert (r1.level, r1.override) == ("senior", None)
    for args, param in ((("hubspot:r1", "expert"), "level"), (("hubspot:r404", "mid"), "id")):
        with pytest.raises(KpiRequestError) as err:
            set_rep_level(engine, *args)  # type: ignore[arg-type]
        assert err.value.param == param


# --- suggestion by pace -------------------------------------------------------------------------


def test_suggestion_scales_by_the_target_months_business_days(engine: Engine) -> None:
    # r1: September 30 calls, October 42, November 46: 118 over 19 + 21 + 19 = 59 business
    # days = 2 a business day. December has 23: 46 (the months' mean, 39.3, would be 15 %
    # low); January 2027 has 19: 38. r3 starts in October: September is left out, 42 + 46
    # = 88 over 21 + 19 = 40 days = 2.2 a day.
    put(
        engine,
        [
            *PEOPLE,
            *calls("r1", "2026-09", 30),
            *calls("r1", "2026-10", 42, per_day=2),
            *calls("r1", "2026-11", 46, per_day=2),
            *calls("r3", "2026-10", 42, per_day=2),
            *calls("r3", "2026-11", 46, per_day=2),
        ],
    )
    (dec,) = suggest_targets(engine, CTX, kpi="calls", scope="rep", scope_id="hubspot:r1")
    assert (dec.period_start, dec.business_days, dec.per_business_day) == (DEC_1, 23, 2.0)
    # 0.9 × 46 = 41.4 → 41; 1.1 × 46 = 50.6 → 51.
    assert (dec.minimum, dec.achievement, dec.stretch) == (41, 46, 51)
    assert [m.business_days for m in dec.months] == [19, 21, 19]
    (jan,) = suggest_targets(
        engine, CTX, kpi="calls", scope="rep", scope_id="hubspot:r1", period_start=JAN_1
    )
    assert (jan.business_days, jan.minimum, jan.achievement, jan.stretch) == (19, 34, 38, 42)
    (late,) = suggest_targets(engine, CTX, kpi="calls", scope="rep", scope_id="hubspot:r3")
    assert [m.included for m in late.months] == [False, True, True]
    assert (late.per_business_day, late.base, late.achievement) == (2.2, 50.6, 51)
    # The team paces from its first activity (r1's, in September): (118 + 88) / 59 × 23.
    (team,) = suggest_targets(engine, CTX, kpi="calls", scope="team", scope_id="hubspot:t1")
    assert team.base == round(206 / 59 * 23, 6)
    # A week target takes the week's business days (the week of 7 Dec: 5).
    (week,) = suggest_targets(
        engine,
        CTX,
        kpi="calls",
        scope="rep",
        scope_id="hubspot:r1",
        grain="week",
        period_start=date(2026, 12, 7),
    )
    assert (week.business_days, week.achievement) == (5, 10)


# --- the migration ------------------------------------------------------------------------------

TARGET_TABLES = ("kpi_targets", "kpi_target_revisions", "reps")


@pytest.fixture(params=ENGINES)
def bare(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of its own (migrations run on it step by step)."""
    with bare_store(request.param, tmp_path, "tg") as db:
        yield db


def test_the_targets_migration_keeps_existing_targets_confirmed(bare: Engine) -> None:
    migrate(bare, "0003")
    with bare.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO kpi_targets (kpi, grain, period_start, scope, scope_id, value) "
                "VALUES ('calls', 'month', '2026-12-01', 'org', 'org', 100)"
            )
        )
    migrate(bare)
    assert "kpi_target_revisions" in inspect(bare).get_table_names()
    (kept,) = list_targets(bare)
    assert (kept.value, kept.level, kept.status) == (100, "achievement", "confirmed")
    with bare.connect() as conn:  # the migration builds exactly what the models declare
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        drift = [
            d
            for d in compare_metadata(context, Base.metadata)
            if any(t in repr(d) for t in TARGET_TABLES)
        ]
    assert drift == []
    put_targets(bare, [target("calls", "org", "org", 90, level="minimum")])
    downgrade(bare, "0003")
    with bare.connect() as conn:
        rows = conn.execute(text("SELECT kpi, value FROM kpi_targets")).all()
    assert [tuple(r) for r in rows] == [("calls", 100)]  # the achievement level stays
    assert "kpi_target_revisions" not in inspect(bare).get_table_names()
    assert "level_override" not in {c["name"] for c in inspect(bare).get_columns("reps")}
    migrate(bare)


def test_every_catalog_kpi_suggests_and_allocates(history: Engine) -> None:
    for spec in CATALOG:
        (org,) = suggest_targets(history, CTX, kpi=spec.key)
        assert org.method == ("pace" if spec.kind in ("count", "sum") else org.method), spec.key
        value = 0.5 if spec.unit == "ratio" else 10
        result = allocate(
            history,
            CTX,
            kpi=spec.key,
            grain="month",
            period_start=DEC_1,
            scope="org",
            value=value,
            method="history",
            dry_run=True,
            field_sales_team_ids=FS,
        )
        if spec.kind in ("count", "sum"):
            assert sum(r.value for r in result.reps) == value, spec.key
        else:
            assert {r.value for r in result.reps} == {value}, spec.key
