"""The daily rollups: kept by the maintainer around each page's upserts exactly as the sync
calls it, equal to a rebuild from raw rows, and giving the same KPIs as the raw rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select

from connectors.records import (
    Call,
    Deal,
    Email,
    FollowUpTask,
    Lead,
    Meeting,
    Record,
    Rep,
    Team,
)
from kpi import (
    KpiContext,
    RollupMaintainer,
    compute,
    ensure_rollups,
    rebuild_rollups,
    rollups_current,
)
from models import (
    TABLE_BY_KIND,
    Base,
    DailyCalls,
    DailyEmails,
    DailyMeetings,
    DailyTasks,
    LeadFirstTouch,
    RollupDirtyDay,
    store,
)
from tests.support.kpi_records import at, call, email

H = "hubspot"
TOKYO = KpiContext(timezone="Asia/Tokyo")
DERIVED = (DailyCalls, DailyEmails, DailyMeetings, DailyTasks, LeadFirstTouch)
TEAMS_AND_REPS: list[Record] = [
    Team(source=H, crm_id="t1", name="One"),
    Team(source=H, crm_id="t2", name="Two"),
    Rep(source=H, crm_id="r1", name="Rep 1", team_crm_id="t1"),
    Rep(source=H, crm_id="r2", name="Rep 2", team_crm_id="t1"),
    Rep(source=H, crm_id="r3", name="Rep 3", team_crm_id="t2"),
]


# One maintainer per sync run, as the sync keeps it: per (engine, context) until a flush.
RUNS: dict[tuple[Engine, KpiContext], RollupMaintainer] = {}


@pytest.fixture(autouse=True)
def _fresh_runs() -> Iterator[None]:
    RUNS.clear()
    yield
    RUNS.clear()


def run_of(engine: Engine, ctx: KpiContext) -> RollupMaintainer:
    return RUNS.setdefault((engine, ctx), RollupMaintainer(ctx))


def write_page(engine: Engine, ctx: KpiContext, records: Sequence[Record]) -> None:
    """One sync page: the maintainer around the upserts, in the page's transaction."""
    maintainer = run_of(engine, ctx)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_kind.setdefault(record.kind, []).append(record.as_row())
    with engine.begin() as conn:
        tokens = [
            maintainer.before_upsert(conn, kind, H, [r["crm_id"] for r in rows])
            for kind, rows in by_kind.items()
        ]
        for kind, rows in by_kind.items():
            store.upsert_records(conn, TABLE_BY_KIND[kind], rows, datetime.now(UTC))
        for token in tokens:
            maintainer.after_upsert(conn, token)


def flag_page(engine: Engine, ctx: KpiContext, kind: str, crm_ids: list[str]) -> None:
    """A page whose records the CRM no longer lists: flagged deleted, rollups kept."""
    maintainer = run_of(engine, ctx)
    with engine.begin() as conn:
        token = maintainer.before_upsert(conn, kind, H, crm_ids)
        store.flag_deleted(conn, TABLE_BY_KIND[kind], H, crm_ids, datetime.now(UTC))
        maintainer.after_upsert(conn, token)


def flush(engine: Engine, ctx: KpiContext) -> None:
    """The end of a sync run: recompute what its pages marked."""
    with engine.begin() as conn:
        run_of(engine, ctx).flush(conn, H)


def derived(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with engine.connect() as conn:
        for model in DERIVED:
            table = model.__table__
            keys = list(table.primary_key.columns)  # type: ignore[attr-defined]
            rest = [c for c in table.columns if c not in keys]  # type: ignore[attr-defined]
            rows = conn.execute(select(*keys, *rest))
            out[table.name] = sorted(tuple(r) for r in rows)  # type: ignore[attr-defined]
    return out


def assert_matches_rebuild(engine: Engine, ctx: KpiContext) -> dict[str, list[tuple[Any, ...]]]:
    flush(engine, ctx)
    kept = derived(engine)
    with engine.begin() as conn:
        rebuild_rollups(conn, ctx)
    assert derived(engine) == kept
    return kept


def calls_rollup(
    engine: Engine, ctx: KpiContext = TOKYO
) -> dict[tuple[str, date], tuple[int, ...]]:
    flush(engine, ctx)
    return {(r[1], r[2]): tuple(r[3:]) for r in derived(engine)["kpi_daily_calls"]}


def test_maintainer_keeps_rollups_through_sync_pages(engine: Engine) -> None:
    with engine.begin() as conn:
        assert ensure_rollups(conn, TOKYO)  # empty store: built at once
        assert not ensure_rollups(conn, TOKYO)
    write_page(engine, TOKYO, TEAMS_AND_REPS)
    write_page(
        engine,
        TOKYO,
        [
            # 1 Oct 09:30 and 2 Oct 00:30 JST (1 Oct 15:30 UTC)
            call(
                "c1", "2026-10-01T00:30", duration_ms=60_000, rep_crm_id="r1", contact_crm_id="L1"
            ),
            call("c2", "2026-10-01T15:30", "no_answer", rep_crm_id="r1"),
            call("c3", "2026-10-01T01:00", duration_ms=59_999, rep_crm_id=None),
            email("e1", "2026-10-01T02:00", tracked=True, opened=True, rep_crm_id="r2"),
        ],
    )
    # (calls, reached, connected, effective, talk ms) per (rep, local day)
    assert calls_rollup(engine) == {
        ("r1", date(2026, 10, 1)): (1, 1, 1, 1, 60_000),
        ("r1", date(2026, 10, 2)): (1, 1, 0, 0, 0),
        ("", date(2026, 10, 1)): (1, 1, 1, 0, 59_999),
    }
    assert_matches_rebuild(engine, TOKYO)
    # The CRM moves c1 to r2 on 3 Oct and makes c3 inbound: both old days lose them.
    write_page(
        engine,
        TOKYO,
        [
            call(
                "c1", "2026-10-03T00:30", duration_ms=61_000, rep_crm_id="r2", contact_crm_id="L1"
            ),
            call("c3", "2026-10-01T01:00", direction="inbound", duration_ms=59_999),
        ],
    )
    assert calls_rollup(engine) == {
        ("r1", date(2026, 10, 2)): (1, 1, 0, 0, 0),
        ("r2", date(2026, 10, 3)): (1, 1, 1, 1, 61_000),
    }
    assert_matches_rebuild(engine, TOKYO)
    flag_page(engine, TOKYO, "call", ["c2"])
    assert calls_rollup(engine) == {("r2", date(2026, 10, 3)): (1, 1, 1, 1, 61_000)}
    write_page(engine, TOKYO, [call("c2", "2026-10-01T15:30", "no_answer", rep_crm_id="r1")])
    assert ("r1", date(2026, 10, 2)) in calls_rollup(engine)  # un-deleted
    assert_matches_rebuild(engine, TOKYO)
    # Tasks: on time up to the end of the local due day, from the key's own UTC bounds.
    write_page(
        engine,
        TOKYO,
        [
            FollowUpTask(
                source=H,
                crm_id="t1",
                due_at=at("2026-10-01T03:00"),
                completed_at=at("2026-10-01T14:59:59.999000"),
                rep_crm_id="r1",
            ),
            FollowUpTask(
                source=H,
                crm_id="t2",
                due_at=at("2026-10-01T03:00"),
                completed_at=at("2026-10-01T15:00"),
                rep_crm_id="r1",
            ),
            Meeting(
                source=H,
                crm_id="m1",
                booked_at=at("2026-10-01T03:00"),
                outcome="canceled",
                rep_crm_id="r3",
            ),
        ],
    )
    # Until the flush, the marked keys are read from raw rows: same KPIs either way.
    october = {"grain": "day", "start": date(2026, 9, 30), "end": date(2026, 10, 3), "scope": "rep"}
    assert compute(engine, TOKYO, **october) == compute(engine, TOKYO, use_rollups=False, **october)
    kept = assert_matches_rebuild(engine, TOKYO)
    assert kept["kpi_daily_tasks"] == [("hubspot", "r1", date(2026, 10, 1), 2, 1)]
    assert kept["kpi_daily_meetings"] == [("hubspot", "r3", date(2026, 10, 1), 1, 0, 0, 1)]
    # Deals, reps and teams have no rollups: their tokens do nothing.
    write_page(engine, TOKYO, [Deal(source=H, crm_id="d1", created_at=at("2026-10-01T00:00"))])
    assert_matches_rebuild(engine, TOKYO)


def test_a_rolled_back_page_leaves_no_marks_behind(engine: Engine) -> None:
    with engine.begin() as conn:
        ensure_rollups(conn, TOKYO)
    write_page(engine, TOKYO, TEAMS_AND_REPS)
    maintainer = run_of(engine, TOKYO)
    page = [call("c1", "2026-10-01T00:30", rep_crm_id="r1").as_row()]
    with pytest.raises(RuntimeError), engine.begin() as conn:
        token = maintainer.before_upsert(conn, "call", H, ["c1"])
        store.upsert_records(conn, TABLE_BY_KIND["call"], page, datetime.now(UTC))
        maintainer.after_upsert(conn, token)
        raise RuntimeError("the page failed: its rows and its marks roll back")
    # The same run stores the page again: the key must be marked (and flushed) anew.
    write_page(engine, TOKYO, [call("c1", "2026-10-01T00:30", rep_crm_id="r1")])
    assert calls_rollup(engine) == {("r1", date(2026, 10, 1)): (1, 1, 1, 0, 0)}
    # A key marked again in the same run stays one mark; every change on it is counted.
    write_page(engine, TOKYO, [call("c2", "2026-10-01T01:30", rep_crm_id="r1")])
    write_page(engine, TOKYO, [call("c3", "2026-10-01T02:30", rep_crm_id="r1")])
    assert calls_rollup(engine) == {("r1", date(2026, 10, 1)): (3, 3, 3, 0, 0)}


def test_lead_first_touches_follow_pages_in_any_order(engine: Engine) -> None:
    with engine.begin() as conn:
        ensure_rollups(conn, TOKYO)

    def first_touch() -> dict[str, datetime]:
        flush(engine, TOKYO)
        return {r[1]: r[2] for r in derived(engine)["kpi_lead_first_touch"]}

    # Activity before its lead: nothing to attach to yet.
    write_page(engine, TOKYO, [call("c1", "2026-10-01T01:00", "busy", contact_crm_id="L1")])
    assert first_touch() == {}
    write_page(engine, TOKYO, [Lead(source=H, crm_id="L1", created_at=at("2026-10-01T00:00"))])
    assert first_touch() == {"L1": at("2026-10-01T01:00")}
    # An earlier touch wins; one before the lead's creation does not count.
    write_page(
        engine,
        TOKYO,
        [
            email("e1", "2026-10-01T00:20", contact_crm_id="L1"),
            call("c0", "2026-09-30T23:59", contact_crm_id="L1"),
            email("e2", "2026-10-01T00:05", contact_crm_id="L1", sent=False),  # not sent
        ],
    )
    assert first_touch() == {"L1": at("2026-10-01T00:20")}
    # The first touch moves to another lead: L1 falls back to c1.
    write_page(engine, TOKYO, [email("e1", "2026-10-01T00:20", contact_crm_id="L2")])
    assert first_touch() == {"L1": at("2026-10-01T01:00")}
    flag_page(engine, TOKYO, "call", ["c1"])
    assert first_touch() == {}
    # The lead's creation moves before c0: c0 now counts.
    write_page(engine, TOKYO, [Lead(source=H, crm_id="L1", created_at=at("2026-09-30T23:00"))])
    assert first_touch() == {"L1": at("2026-09-30T23:59")}
    assert_matches_rebuild(engine, TOKYO)


def test_rollups_of_another_context_are_not_used(engine: Engine) -> None:
    write_page(engine, TOKYO, TEAMS_AND_REPS)
    with engine.begin() as conn:
        ensure_rollups(conn, TOKYO)
    write_page(engine, TOKYO, [call("c1", "2026-09-30T15:30", rep_crm_id="r1", duration_ms=60_000)])
    utc = KpiContext(timezone="UTC")
    strict = KpiContext(timezone="Asia/Tokyo", effective_call_seconds=61)
    with engine.begin() as conn:
        assert rollups_current(conn, TOKYO)
        assert not rollups_current(conn, utc) and not rollups_current(conn, strict)
    # Stale for these contexts: computed from raw rows, so still right.
    sept = compute(
        engine, utc, kpis=["calls"], grain="month", start=date(2026, 9, 1), end=date(2026, 9, 30)
    )
    assert [r.value for r in sept] == [1]  # 30 Sep 15:30 UTC is still September in UTC
    oct_ = compute(
        engine,
        strict,
        kpis=["effective_contacts"],
        grain="month",
        start=date(2026, 10, 1),
        end=date(2026, 10, 31),
    )
    assert [r.value for r in oct_] == [0]  # 60 s < 61 s
    # While stale the maintainer does nothing; a rebuild for the new context catches up.
    write_page(engine, utc, [call("c2", "2026-10-05T00:00", rep_crm_id="r1")])
    with engine.begin() as conn:
        assert ensure_rollups(conn, utc)
        assert rollups_current(conn, utc)
    assert calls_rollup(engine, utc) == {
        ("r1", date(2026, 9, 30)): (1, 1, 1, 1, 60_000),
        ("r1", date(2026, 10, 5)): (1, 1, 1, 0, 0),  # no duration: not effective
    }


# --- randomized: rollups equal the raw computation ------------------------------------------

BASE = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)  # spans New York's DST start on 8 Mar
REPS = st.sampled_from(["r1", "r2", "r3", "r9", None])
CONTACTS = st.sampled_from(["L1", "L2", "L3", None])
MINUTES = st.integers(0, 4 * 24 * 60)


def when(minutes: int, seconds: int = 0) -> datetime:
    return BASE + timedelta(minutes=minutes, seconds=seconds)


calls_ = st.builds(
    lambda i, m, s, rep, direction, outcome, ms, contact, deleted: Call(
        source=H,
        crm_id=f"c{i}",
        occurred_at=when(m, s),
        rep_crm_id=rep,
        direction=direction,
        outcome=outcome,
        duration_ms=ms,
        contact_crm_id=contact,
        deleted=deleted,
    ),
    st.integers(0, 12),
    MINUTES,
    st.integers(0, 59),
    REPS,
    st.sampled_from(["outbound", "outbound", "inbound", None]),
    st.sampled_from(["connected", "no_answer", "busy", "voicemail"]),
    st.one_of(st.none(), st.integers(59_998, 60_001), st.integers(0, 600_000)),
    CONTACTS,
    st.booleans(),
)
emails_ = st.builds(
    lambda i, m, rep, sent, tracked, opened, contact, deleted: Email(
        source=H,
        crm_id=f"e{i}",
        sent_at=when(m),
        rep_crm_id=rep,
        direction="outbound",
        sent=sent,
        tracked=tracked,
        opened=opened,
        clicked=opened,
        replied=None,
        contact_crm_id=contact,
        deleted=deleted,
    ),
    st.integers(0, 8),
    MINUTES,
    REPS,
    st.booleans(),
    st.booleans(),
    st.sampled_from([True, False, None]),
    CONTACTS,
    st.booleans(),
)
meetings_ = st.builds(
    lambda i, m, rep, outcome, start, deleted: Meeting(
        source=H,
        crm_id=f"m{i}",
        booked_at=when(m),
        rep_crm_id=rep,
        outcome=outcome,
        start_at=when(m + 600) if start else None,
        deleted=deleted,
    ),
    st.integers(0, 6),
    MINUTES,
    REPS,
    st.sampled_from(["completed", "canceled", "scheduled", None]),
    st.booleans(),
    st.booleans(),
)
tasks_ = st.builds(
    lambda i, m, rep, done, deleted: FollowUpTask(
        source=H,
        crm_id=f"t{i}",
        due_at=when(m),
        rep_crm_id=rep,
        completed_at=None if done is None else when(m + done),
        deleted=deleted,
    ),
    st.integers(0, 6),
    MINUTES,
    REPS,
    st.one_of(st.none(), st.integers(-600, 2 * 24 * 60)),
    st.booleans(),
)
leads_ = st.builds(
    lambda i, m, rep, channel, sql, deleted: Lead(
        source=H,
        crm_id=f"L{i}",
        created_at=when(m),
        rep_crm_id=rep,
        channel=channel,
        sql_at=when(m + sql) if sql is not None else None,
        deleted=deleted,
    ),
    st.integers(1, 3),
    MINUTES,
    REPS,
    st.sampled_from(["web", "event", None]),
    st.one_of(st.none(), st.integers(0, 3000)),
    st.booleans(),
)
deals_ = st.builds(
    lambda i, m, rep, closed, won, amount, contact, rating: Deal(
        source=H,
        crm_id=f"d{i}",
        created_at=when(m),
        rep_crm_id=rep,
        closed_at=when(m + closed) if closed is not None else None,
        is_closed=closed is not None,
        is_won=closed is not None and won,
        amount=Decimal(amount),
        contact_crm_id=contact,
        handoff_rating=rating,
        bant_budget="b" if won else None,
    ),
    st.integers(0, 4),
    MINUTES,
    REPS,
    st.one_of(st.none(), st.integers(0, 3000)),
    st.booleans(),
    st.integers(0, 10**6),
    CONTACTS,
    st.one_of(st.none(), st.integers(1, 5)),
)
pages = st.lists(
    st.one_of(
        st.lists(calls_, min_size=1, max_size=6),
        st.lists(emails_, min_size=1, max_size=4),
        st.lists(meetings_, min_size=1, max_size=3),
        st.lists(tasks_, min_size=1, max_size=3),
        st.lists(leads_, min_size=1, max_size=3),
        st.lists(deals_, min_size=1, max_size=3),
        st.tuples(st.sampled_from(["call", "email", "lead"]), st.integers(0, 12)),  # flag deleted
    ),
    min_size=1,
    max_size=7,
)
VIEWS = st.sampled_from(
    [
        ("day", "org", None),
        ("day", "rep", None),
        ("week", "team", None),
        ("month", "org", "rep"),
        ("month", "org", "team"),
        ("week", "rep", "weekday"),
        ("month", "team", None),
    ]
)


def reset(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "alembic_version":
                conn.execute(delete(table))


def apply(engine: Engine, ctx: KpiContext, written: list[Any]) -> None:
    for page in written:
        if isinstance(page, tuple):
            kind, number = page
            prefix = {"call": "c", "email": "e", "lead": "L"}[kind]
            flag_page(engine, ctx, kind, [f"{prefix}{number}"])
        else:
            write_page(engine, ctx, page)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    zone=st.sampled_from(["America/New_York", "Asia/Tokyo", "UTC"]),
    first_run=pages,
    second_run=pages,
    whole=st.sampled_from([None, True, False]),
    first_flushed=st.booleans(),
    view=VIEWS,
)
def test_rollups_equal_raw_rows_on_random_syncs(
    engine: Engine,
    zone: str,
    first_run: list[Any],
    second_run: list[Any],
    whole: bool | None,
    first_flushed: bool,
    view: tuple[str, str, str | None],
) -> None:
    """Two sync runs: the first a first sync (marked whole, or page by page), which may die
    before its flush; the second an incremental one. KPIs from rollups equal the raw rows'
    at every step, and the flushed rollups equal a rebuild."""
    ctx = KpiContext(timezone=zone, holidays="US")
    reset(engine)
    grain, scope, by = view
    kw: dict[str, Any] = {
        "grain": grain,
        "start": date(2026, 3, 5),
        "end": date(2026, 3, 12),
        "scope": scope,
        "by": by,
        "max_rows": None,
    }

    def check() -> None:
        assert compute(engine, ctx, use_rollups=True, **kw) == compute(
            engine, ctx, use_rollups=False, **kw
        )

    RUNS.clear()
    with engine.begin() as conn:
        ensure_rollups(conn, ctx, H, whole=whole)  # an empty store: whole unless told not to
    write_page(engine, ctx, TEAMS_AND_REPS)
    apply(engine, ctx, first_run)
    check()  # mid-run: unflushed marks merged in from raw rows
    if first_flushed:
        assert_matches_rebuild(engine, ctx)
        check()
    RUNS.clear()  # a new run (after a crash, its start flushes what the last one left)
    with engine.begin() as conn:
        ensure_rollups(conn, ctx, H)
    apply(engine, ctx, second_run)
    check()
    assert_matches_rebuild(engine, ctx)
    check()


def test_first_sync_marks_the_whole_source(engine: Engine) -> None:
    with engine.begin() as conn:
        ensure_rollups(conn, TOKYO, H)  # no rows of the source yet: marked as a whole
    write_page(engine, TOKYO, TEAMS_AND_REPS)
    write_page(
        engine,
        TOKYO,
        [
            call(
                "c1", "2026-10-01T00:30", rep_crm_id="r1", duration_ms=60_000, contact_crm_id="L1"
            ),
            Lead(source=H, crm_id="L1", created_at=at("2026-10-01T00:00")),
        ],
    )
    with engine.connect() as conn:
        marks = conn.execute(select(RollupDirtyDay.__table__.c.fact)).scalars().all()
    assert marks == ["*"]  # the pages marked nothing themselves
    october = {"grain": "month", "start": date(2026, 10, 1), "end": date(2026, 10, 31)}
    assert compute(engine, TOKYO, **october) == compute(engine, TOKYO, use_rollups=False, **october)
    assert calls_rollup(engine) == {("r1", date(2026, 10, 1)): (1, 1, 1, 1, 60_000)}
    # The next run finds rows: it marks page by page.
    RUNS.clear()
    with engine.begin() as conn:
        ensure_rollups(conn, TOKYO, H)
    write_page(engine, TOKYO, [call("c1", "2026-10-02T00:30", rep_crm_id="r2")])
    with engine.connect() as conn:
        marks = conn.execute(select(RollupDirtyDay.__table__.c.fact)).scalars().all()
    assert marks == ["calls", "calls"]  # 1 Oct (before) and 2 Oct (after)
    assert calls_rollup(engine) == {("r2", date(2026, 10, 2)): (1, 1, 1, 0, 0)}
