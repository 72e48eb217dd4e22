"""Daily rollups per (source, rep, local day), kept in step with the store by the sync.

The sync stores each page in one transaction. Around the page's writes it calls::

    token = maintainer.before_upsert(conn, kind, source, crm_ids)  # mark the keys rows had
    store.upsert_records(conn, Model, rows, at)                   # (or store.flag_deleted)
    maintainer.after_upsert(conn, token)                          # mark the keys they have

with ``ensure_rollups(conn, ctx, source)`` at the start of the run and
``flush_rollups(conn, ctx, source)`` at its end.

A page only *marks* the (source, fact, rep, local day) keys its records were on
before and after the write, and the leads whose first touch they may change, in
``kpi_rollup_dirty`` / ``kpi_lead_dirty``: an INSERT … SELECT that looks the page's
records up by the unique index and computes their local days in SQL (a mark already
made is kept). The flush recomputes exactly those rollup rows from the raw rows,
set-based, with the same per-row measure expressions the raw KPI queries use
(kpi/compiler.py FACTS), and clears the marks. A run that writes most of a source —
its first sync, a full re-sync — marks the source as a whole instead: its pages mark
nothing, and its flush rebuilds the source. Until a mark is flushed the engine reads
what it covers from raw rows (merge on read), so KPIs equal the raw computation at
every commit — mid-sync, or after a sync died (the next run's start flushes).

The rollups depend on the business time zone and the effective-call threshold;
``kpi_rollup_state`` records what they were built for. While it differs from the
context, the engine ignores the rollups and the maintainer does nothing;
``ensure_rollups`` rebuilds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    Integer,
    String,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    true,
    tuple_,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine.interfaces import Compiled
from sqlalchemy.sql.selectable import CTE

from kpi.changes import (
    COMPARED_KINDS,
    prune_changes,
    record_all,
    record_days_statement,
    record_deal_days,
    record_touches_statement,
    stored_rows,
)
from kpi.compiler import ACTIVITY_FACT_BY_KIND, Fact, RowEnv, dirty_days, first_touches
from kpi.periods import KpiContext, TimeBuckets, sql_text
from models.crm import Lead
from models.kpi import LeadDirty, LeadFirstTouch, RollupDirtyDay, RollupState
from models.store import table_of, upsert, upsert_for

STATE_NAME = "rollups"
MAINTAINED_KINDS = frozenset({"call", "email", "meeting", "task", "lead"})
TOUCH_KINDS = frozenset({"call", "email"})
TOUCH_FACTS = frozenset({"calls", "emails"})
_CHUNK = 5000


def _chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def rollups_current(conn: Connection, ctx: KpiContext) -> bool:
    """Whether the rollups were built for this context (time zone, effective-call threshold)."""
    state = table_of(RollupState)
    fingerprint = conn.execute(
        select(state.c.fingerprint).where(state.c.name == STATE_NAME)
    ).scalar_one_or_none()
    return fingerprint == ctx.rollup_fingerprint


WHOLE_SOURCE = "*"  # a dirty-day mark whose fact is "*": every row of its source is dirty
_NO_DAY = date(1970, 1, 1)


@dataclass(frozen=True)
class Pending:
    """What the rollups do not reflect yet (read from raw rows until the flush)."""

    facts: frozenset[str] = frozenset()  # facts with dirty (source, rep, day) keys
    leads: bool = False  # leads whose first touch is dirty
    sources: frozenset[str] = frozenset()  # sources that are dirty as a whole


def pending(conn: Connection) -> Pending:
    """What is marked dirty and not flushed yet."""
    dirty = table_of(RollupDirtyDay)
    marks = conn.execute(select(dirty.c.fact, dirty.c.source).distinct()).all()
    leads = conn.execute(select(literal(1)).select_from(table_of(LeadDirty)).limit(1)).first()
    return Pending(
        facts=frozenset(fact for fact, _ in marks if fact != WHOLE_SOURCE),
        leads=leads is not None,
        sources=frozenset(source for fact, source in marks if fact == WHOLE_SOURCE),
    )


def whole_source_dirty(conn: Connection, source: str) -> bool:
    dirty = table_of(RollupDirtyDay)
    found = conn.execute(
        select(literal(1))
        .select_from(dirty)
        .where(dirty.c.source == source, dirty.c.fact == WHOLE_SOURCE)
        .limit(1)
    ).first()
    return found is not None


def _has_rows(conn: Connection, source: str) -> bool:
    models: list[Any] = [f.table for f in ACTIVITY_FACT_BY_KIND.values()]
    for model in [*models, Lead]:
        t = table_of(model)
        if conn.execute(select(literal(1)).where(t.c.source == source).limit(1)).first():
            return True
    return False


def mark_whole_source(conn: Connection, source: str) -> None:
    """Mark every rollup row and first touch of a source dirty: its pages need not mark keys.

    For runs that write most of a source (a first sync, a full re-sync): the flush
    then rebuilds the source set-based, and until then the engine reads its activity
    from raw rows.
    """
    stmt = upsert(conn, table_of(RollupDirtyDay)).values(
        source=source,
        fact=WHOLE_SOURCE,
        rep_crm_id="",
        day=_NO_DAY,
        lo=datetime(1970, 1, 1, tzinfo=UTC),
        hi=datetime(1970, 1, 1, tzinfo=UTC),
    )
    conn.execute(stmt.on_conflict_do_nothing())


def _save_state(conn: Connection, ctx: KpiContext) -> None:
    state = table_of(RollupState)
    stmt = upsert(conn, state).values(
        name=STATE_NAME, fingerprint=ctx.rollup_fingerprint, rebuilt_at=datetime.now(UTC)
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"fingerprint": stmt.excluded.fingerprint, "rebuilt_at": stmt.excluded.rebuilt_at},
        )
    )


def _rollup_columns(fact: Fact) -> list[str]:
    return ["source", "rep_crm_id", "day", *fact.provides]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def rebuild_rollups(conn: Connection, ctx: KpiContext, source: str | None = None) -> None:
    """Rebuild the rollups and lead first touches (of one source) from the raw rows."""
    effective_ms = ctx.effective_call_seconds * 1000
    dirty, leads_dirty = table_of(RollupDirtyDay), table_of(LeadDirty)
    conn.execute(delete(dirty).where(*([] if source is None else [dirty.c.source == source])))
    conn.execute(
        delete(leads_dirty).where(*([] if source is None else [leads_dirty.c.source == source]))
    )
    for fact in ACTIVITY_FACT_BY_KIND.values():
        assert fact.rollup is not None
        rollup = table_of(fact.rollup)
        t = table_of(fact.table)
        mine = [] if source is None else [t.c.source == source]
        conn.execute(delete(rollup).where(*([] if source is None else [rollup.c.source == source])))
        ts = t.c[fact.ts]
        lo, hi = conn.execute(select(func.min(ts), func.max(ts)).where(*mine)).one()
        if lo is None:
            continue
        buckets = TimeBuckets(conn.dialect.name, ctx.zone, (_aware(lo), _aware(hi)))
        env = RowEnv(
            buckets=buckets,
            effective_ms=effective_ms,
            on_time=lambda t, b=buckets: and_(  # type: ignore[misc]
                t.c.completed_at.is_not(None),
                b.local_day(t.c.completed_at) <= b.local_day(t.c.due_at),
            ),
        )
        rep = func.coalesce(t.c.rep_crm_id, sql_text(""))
        day = buckets.local_day(ts)
        measures = fact.measures(t, env)
        rows = (
            select(t.c.source, rep, day, *(func.sum(measures[m]) for m in fact.provides))
            .where(*fact.where(t), *mine)
            .group_by(t.c.source, rep, day)
        )
        conn.execute(insert(rollup).from_select(_rollup_columns(fact), rows))
    first_touch = table_of(LeadFirstTouch)
    conn.execute(
        delete(first_touch).where(*([] if source is None else [first_touch.c.source == source]))
    )
    lead = table_of(Lead)
    conn.execute(
        insert(first_touch).from_select(
            ["source", "lead_crm_id", "first_touch_at"],
            first_touches(
                lead,
                [] if source is None else [lead.c.source == source],
                touch_filter=lambda t: [] if source is None else [t.c.source == source],
            ),
        )
    )
    if source is None:
        _save_state(conn, ctx)


def _analyze_stale(conn: Connection) -> None:
    """PostgreSQL: analyze the tables the flush reads that grew since their statistics.

    Autovacuum analyzes a table a minute or so after it grows. A flush right after a first
    sync was cut short (a run resumed after a crash, a 5xx or a quota stop) would otherwise
    be planned on empty-table estimates: nested loops over every call per dirty lead, which
    took 17 s for 1,100 calls and grows with the square of the store. This does what
    autovacuum would (its default threshold: 50 rows + 10%), before the flush needs it.
    """
    if conn.dialect.name != "postgresql":
        return
    models: list[type[Any]] = [Lead, RollupDirtyDay, LeadDirty]
    for fact in ACTIVITY_FACT_BY_KIND.values():
        assert fact.rollup is not None
        models += [fact.table, fact.rollup]
    names = [table_of(m).name for m in models]
    stale = conn.execute(
        text(
            "SELECT c.relname FROM pg_class c "
            "JOIN pg_stat_user_tables s ON s.relid = c.oid "
            "WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(:names) "
            "AND (c.reltuples < 0 OR s.n_mod_since_analyze > 50 + 0.1 * c.reltuples)"
        ),
        {"names": sorted(set(names))},
    ).scalars()
    for name in list(stale):
        conn.execute(text(f'ANALYZE "{name}"'))


def flush_rollups(conn: Connection, ctx: KpiContext, source: str | None = None) -> int:
    """Recompute the dirty rollup rows and first touches (of one source) and clear them.

    The sync calls it at the end of a run, for its own source (another source's sync
    may be marking keys at the same time). Returns the keys recomputed.
    """
    prune_changes(conn)
    if not rollups_current(conn, ctx):
        return 0
    dirty = table_of(RollupDirtyDay)
    whole = [dirty.c.fact == WHOLE_SOURCE]
    if source is not None:
        whole.append(dirty.c.source == source)
    for (whole_source,) in conn.execute(select(dirty.c.source).where(*whole)).all():
        rebuild_rollups(conn, ctx, whole_source)  # also clears the source's marks
    _analyze_stale(conn)
    flushed = 0
    for fact in ACTIVITY_FACT_BY_KIND.values():
        assert fact.rollup is not None
        mine = [dirty.c.fact == fact.name]
        if source is not None:
            mine.append(dirty.c.source == source)
        count = conn.execute(select(func.count()).select_from(dirty).where(*mine)).scalar_one()
        if not count:
            continue
        rollup = table_of(fact.rollup)
        keys = select(dirty.c.source, dirty.c.rep_crm_id, dirty.c.day).where(*mine)
        conn.execute(
            delete(rollup).where(
                tuple_(rollup.c.source, rollup.c.rep_crm_id, rollup.c.day).in_(keys)
            )
        )
        rows = dirty_days(fact, conn.dialect.name, ctx, source).subquery("fresh")
        conn.execute(
            insert(rollup).from_select(
                _rollup_columns(fact), select(*(rows.c[c] for c in _rollup_columns(fact)))
            )
        )
        conn.execute(delete(dirty).where(*mine))
        flushed += count
    leads_dirty = table_of(LeadDirty)
    mine_leads = [] if source is None else [leads_dirty.c.source == source]
    count = conn.execute(
        select(func.count()).select_from(leads_dirty).where(*mine_leads)
    ).scalar_one()
    if count:
        first_touch = table_of(LeadFirstTouch)
        keys = select(leads_dirty.c.source, leads_dirty.c.lead_crm_id).where(*mine_leads)
        conn.execute(
            delete(first_touch).where(
                tuple_(first_touch.c.source, first_touch.c.lead_crm_id).in_(keys)
            )
        )
        lead = table_of(Lead)
        conn.execute(
            insert(first_touch).from_select(
                ["source", "lead_crm_id", "first_touch_at"],
                first_touches(
                    lead,
                    [tuple_(lead.c.source, lead.c.crm_id).in_(keys)],
                    touch_filter=lambda t: [tuple_(t.c.source, t.c.contact_crm_id).in_(keys)],
                ),
            )
        )
        conn.execute(delete(leads_dirty).where(*mine_leads))
        flushed += count
    return flushed


def ensure_rollups(
    conn: Connection, ctx: KpiContext, source: str | None = None, *, whole: bool | None = None
) -> bool:
    """Prepare the rollups for a sync run of ``source``; True when it rebuilt them all.

    Rebuilds everything for a new context (time zone, effective-call threshold);
    otherwise flushes what an earlier run of the source left marked. Then, when
    ``whole`` (default: when the source has no rows yet, a first sync), marks the whole
    source dirty so the run's pages skip marking and its flush rebuilds the source.
    """
    rebuilt = not rollups_current(conn, ctx)
    if rebuilt:
        rebuild_rollups(conn, ctx)
    else:
        flush_rollups(conn, ctx, source)
    if source is not None and (whole if whole is not None else not _has_rows(conn, source)):
        mark_whole_source(conn, source)
    return rebuilt


def _found(dialect: str, fact: Fact) -> CTE:
    """(rep, timestamp, contact) of the records ``:crm_ids`` of ``:source`` as stored now.

    On PostgreSQL one LATERAL unique-index probe per id, whatever the statistics say:
    during a first sync the tables grow faster than autovacuum analyzes them, and
    without statistics the planner answers ``source = … AND crm_id IN (…)`` by scanning
    every row of the source — once a page.
    """
    t = table_of(fact.table)
    source = bindparam("source", type_=String)
    contact = t.c.contact_crm_id if fact.name in TOUCH_FACTS else literal(None, String)
    if dialect != "postgresql":
        return (
            select(t.c.rep_crm_id, t.c[fact.ts].label("at"), contact.label("contact"))
            .where(t.c.source == source, t.c.crm_id.in_(bindparam("crm_ids", expanding=True)))
            .cte("found")
        )
    wanted = (
        func.unnest(bindparam("crm_ids", type_=postgresql.ARRAY(String)))
        .table_valued("crm_id")
        .render_derived()
    )
    probe = (
        select(t.c.rep_crm_id, t.c[fact.ts].label("at"), contact.label("contact"))
        .where(t.c.source == source, t.c.crm_id == wanted.c.crm_id)
        .limit(1)  # keeps the subquery a per-id probe (not flattened into a join)
        .lateral("probe")
    )
    return (
        select(probe.c.rep_crm_id, probe.c.at, probe.c.contact)
        .select_from(wanted)
        .join(probe, true())
        .cte("found")
    )


def _mark_statements(dialect: str, fact: Fact, zone_name: str) -> list[Any]:
    """Statements marking the (rep, local day) keys and lead contacts the records are on now.

    Everything — local day, the day's UTC bounds — is computed in SQL, in the time zone's
    terms, so a page costs one round trip on PostgreSQL (two on SQLite) and no rows travel.
    """
    b = TimeBuckets(dialect, ZoneInfo(zone_name), wide=True)
    found = _found(dialect, fact)
    source = bindparam("source", type_=String)
    keys = (
        select(
            func.coalesce(found.c.rep_crm_id, sql_text("")).label("rep"),
            b.local_day(found.c.at).label("day"),
        )
        .distinct()
        .subquery("keys")
    )
    record_days = record_days_statement(b.local_day(found.c.at))
    day = keys.c.day
    next_day = (
        day + literal(1, Integer) if dialect == "postgresql" else func.date(day, sql_text("+1 day"))
    )
    mark_days = (
        upsert_for(dialect, table_of(RollupDirtyDay))
        .from_select(
            ["source", "fact", "rep_crm_id", "day", "lo", "hi"],
            # WHERE true: SQLite reads "… FROM keys ON CONFLICT" as a join otherwise.
            select(
                source,
                literal(fact.name, String),
                keys.c.rep,
                day,
                b.day_start(day),
                b.day_start(next_day),
            ).where(true()),
        )
        .on_conflict_do_nothing()
    )
    if fact.name not in TOUCH_FACTS:
        if dialect != "postgresql":
            return [mark_days, record_days]
        return [record_days.add_cte(mark_days.cte("mark_days"))]
    # SQLite would answer "contact IS NOT NULL" through the contact index, scanning every
    # activity of the source with a contact (50 ms a page at 100,000 calls) instead of
    # probing the page's ids; wrapped in a function the test cannot use that index.
    has_contact = (
        found.c.contact.is_not(None)
        if dialect == "postgresql"
        else func.ifnull(found.c.contact, literal(None, String)).is_not(None)
    )
    mark_leads = (
        upsert_for(dialect, table_of(LeadDirty))
        .from_select(
            ["source", "lead_crm_id"],
            select(source, found.c.contact).distinct().where(has_contact),
        )
        .on_conflict_do_nothing()
    )
    record_touches = record_touches_statement(found, b)
    if dialect != "postgresql":
        return [mark_days, mark_leads, record_days, record_touches]
    # One statement: the days' insert and the change log's as data-modifying CTEs beside
    # the leads' insert.
    return [
        mark_leads.add_cte(
            mark_days.cte("mark_days"),
            record_days.cte("record_days"),
            record_touches.cte("record_touches"),
        )
    ]


def _mark_leads_pg() -> Any:
    wanted = (
        func.unnest(bindparam("crm_ids", type_=postgresql.ARRAY(String)))
        .table_valued("crm_id")
        .render_derived()
    )
    return (
        postgresql.insert(table_of(LeadDirty))
        .from_select(
            ["source", "lead_crm_id"], select(bindparam("source", type_=String), wanted.c.crm_id)
        )
        .on_conflict_do_nothing()
    )


_STATEMENTS: dict[tuple[str, str, str], list[Any]] = {}
_COMPILED: dict[tuple[type[Any], str, str], list[Compiled]] = {}


def _run_marks(
    conn: Connection, fact: Fact | None, zone_name: str, source: str, ids: Sequence[str]
) -> None:
    dialect = conn.dialect.name
    if fact is None and dialect != "postgresql":
        rows = [{"source": source, "lead_crm_id": lead} for lead in ids]
        conn.execute(upsert(conn, table_of(LeadDirty)).on_conflict_do_nothing(), rows)
        return
    name = fact.name if fact is not None else "leads"
    key = (dialect, name, zone_name)
    statements = _STATEMENTS.get(key)
    if statements is None:
        statements = _STATEMENTS[key] = (
            _mark_statements(dialect, fact, zone_name) if fact is not None else [_mark_leads_pg()]
        )
    for chunk in _chunks(ids):
        params = {"source": source, "crm_ids": list(chunk)}
        if dialect != "postgresql":
            for statement in statements:
                conn.execute(statement, params)
            continue
        # psycopg prepares a statement on its 5th run, and PostgreSQL keeps the plan it made
        # then — while the table was still small, a scan. These run once per page as the
        # table grows: never prepared, they are planned for the table as it is.
        ckey = (type(conn.dialect), name, zone_name)
        compiled = _COMPILED.get(ckey)
        if compiled is None:
            compiled = _COMPILED[ckey] = [s.compile(dialect=conn.dialect) for s in statements]
        driver = conn.connection.driver_connection
        for statement in compiled:
            driver.execute(str(statement), statement.construct_params(params), prepare=False)  # type: ignore[union-attr]


@dataclass(frozen=True)
class RollupToken:
    """A page's records, between ``before_upsert`` and ``after_upsert``."""

    kind: str
    source: str
    crm_ids: tuple[str, ...]
    active: bool = True  # the rollup marks (and with them the change log's days) are kept
    stored: tuple[tuple[Any, ...], ...] | None = None  # reps and teams: the rows before


class RollupMaintainer:
    """Marks the rollup rows and first touches a sync's pages invalidate (one per run), and
    records in the change log (kpi/changes.py) what the pages changed."""

    def __init__(self, ctx: KpiContext) -> None:
        self.ctx = ctx
        self._current: bool | None = None
        self._whole: dict[str, bool] = {}

    def _active(self, conn: Connection, source: str) -> bool:
        # Once current, current for the run (ensure_rollups at its start made them so);
        # a source marked dirty as a whole stays so until the run's flush.
        if not self._current:
            self._current = rollups_current(conn, self.ctx)
        if source not in self._whole:
            self._whole[source] = whole_source_dirty(conn, source)
        return self._current and not self._whole[source]

    def before_upsert(
        self, conn: Connection, kind: str, source: str, crm_ids: Sequence[str]
    ) -> RollupToken:
        """Mark the keys the records are on before the write (in the page's transaction)."""
        ids = tuple(dict.fromkeys(crm_ids))
        if not ids:
            return RollupToken(kind, source, ids, active=False)
        if kind == "deal":
            record_deal_days(conn, self.ctx.timezone, source, ids)
            return RollupToken(kind, source, ids, active=False)
        if kind in COMPARED_KINDS:
            # Re-read every run (an owners list has no modification time): only a real
            # change of a rep or team moves the answers.
            return RollupToken(kind, source, ids, False, stored_rows(conn, kind, source, ids))
        active = kind in MAINTAINED_KINDS and self._active(conn, source)
        if not active or kind == "lead":
            # Nothing tells which days these change: everything of the source may have.
            record_all(conn, source)
        if not active:
            return RollupToken(kind, source, ids, active=False)
        if kind != "lead":
            _run_marks(conn, ACTIVITY_FACT_BY_KIND[kind], self.ctx.timezone, source, ids)
        return RollupToken(kind, source, ids)

    def after_upsert(self, conn: Connection, token: RollupToken) -> None:
        """Mark the keys the records are on after the write (same transaction)."""
        if token.kind == "deal" and token.crm_ids:
            record_deal_days(conn, self.ctx.timezone, token.source, token.crm_ids)
            return
        if token.stored is not None:
            if stored_rows(conn, token.kind, token.source, token.crm_ids) != token.stored:
                record_all(conn, token.source)
            return
        if not token.active:
            return
        fact = None if token.kind == "lead" else ACTIVITY_FACT_BY_KIND[token.kind]
        _run_marks(conn, fact, self.ctx.timezone, token.source, token.crm_ids)

    def flush(self, conn: Connection, source: str | None = None) -> int:
        """Recompute what this run marked (see ``flush_rollups``)."""
        self._whole.clear()
        return flush_rollups(conn, self.ctx, source)
