"""The change log: which local days of which source each write changed (kpi_data_changes).

A cached answer is only as stale as the newest write it reads, so writes record what
they changed and answers are versioned by the changes they read, not by every page
of every sync:

- an activity page (calls, emails, meetings, tasks) records the local-day range of its
  records before and after the upsert, from the same keys the rollup marks compute
  (kpi/rollups.py), so a call moved from July to today changes both; calls and emails
  also record as ``touches`` the creation days of the leads they reach (a lead's first
  touch, and so the response time of the period it was created in, may follow);
- a deal page records the range of its deals' created and closed days, before and after;
- anything else — leads (their channel and industry break every activity down), call
  lists, a first or full sync, a rep's level, and reps and teams whose stored rows the
  page changed (a sync re-reads them every run) — records ``all`` of its source.

An answer reads the changes overlapping its whole periods (``reads_for``); its version is
(newest id, count, sum of ids) over them (``version_of``), which moves on every change
it reads, also one committed late by a concurrent transaction with a lower id. Rows past
the newest ``KEEP_CHANGES`` are pruned at a rollup flush (a transaction with no change
of its own, so the count falls and versions move: a pruned change never hides a new one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    String,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    union_all,
)
from sqlalchemy.sql.selectable import CTE

from kpi.catalog import KpiSpec
from kpi.compiler import FACTS
from kpi.periods import Grain, TimeBuckets, next_period, period_starts
from models.crm import TABLE_BY_KIND, Deal, Lead
from models.kpi import DataChange
from models.store import table_of

ChangeKind = Literal["days", "touches", "all"]
# Kinds a sync re-reads whole every run: compared before and after, recorded if they differ.
COMPARED_KINDS = frozenset({"rep", "team"})
KEEP_CHANGES = 10_000
# Measures of the facts that put a record in a period by one timestamp: a KPI of these
# reads only the days of its periods.
DAY_MEASURES = frozenset(measure for fact in FACTS for measure in fact.provides)


@dataclass(frozen=True)
class ChangeGroup:
    """Changes of one kind and day range: the newest id, how many, and the sum of their ids."""

    kind: str
    first_day: date | None
    last_day: date | None
    newest: int
    count: int
    id_sum: int


@dataclass(frozen=True)
class Reads:
    """What an answer reads: the local days [first_day, last_day], and with ``touches`` the
    first touches of the leads created on them."""

    first_day: date
    last_day: date
    touches: bool

    def overlaps(self, group: ChangeGroup) -> bool:
        if group.kind == "touches" and not self.touches:
            return False
        if group.first_day is None or group.last_day is None:  # "all"
            return True
        return group.first_day <= self.last_day and group.last_day >= self.first_day


def reads_touches(specs: Iterable[KpiSpec]) -> bool:
    """Whether any of the KPIs reads beyond its periods' days (a response time, a custom KPI)."""
    return any(
        spec.kind == "custom"
        or spec.numerator not in DAY_MEASURES
        or (spec.denominator is not None and spec.denominator not in DAY_MEASURES)
        for spec in specs
    )


def reads_for(
    specs: Sequence[KpiSpec], grain: Grain, start: date, end: date, fiscal_year_start_month: int
) -> Reads:
    """What KPI rows of the periods overlapping [start, end] read: their whole periods' days."""
    periods = period_starts(grain, start, end, fiscal_year_start_month)
    last = next_period(periods[-1], grain) - timedelta(days=1) if periods else end
    return Reads(periods[0] if periods else start, last, reads_touches(specs))


def version_of(groups: Iterable[ChangeGroup], reads: Reads) -> tuple[int, int, int]:
    """(newest id, count, sum of ids) of the changes ``reads`` overlaps."""
    newest = count = id_sum = 0
    for group in groups:
        if reads.overlaps(group):
            newest = max(newest, group.newest)
            count += group.count
            id_sum += group.id_sum
    return newest, count, id_sum


def change_groups(conn: Connection) -> tuple[ChangeGroup, ...]:
    """The change log grouped by kind and day range (a few rows: pages share their days)."""
    t = table_of(DataChange)
    rows = conn.execute(
        select(
            t.c.kind,
            t.c.first_day,
            t.c.last_day,
            func.max(t.c.id),
            func.count(),
            func.sum(t.c.id),
        ).group_by(t.c.kind, t.c.first_day, t.c.last_day)
    )
    return tuple(ChangeGroup(k, f, last, int(n), int(c), int(s)) for k, f, last, n, c, s in rows)


def newest_change(conn: Connection) -> int:
    """The id of the newest recorded change (0 before any): what a run compares at its end."""
    return int(conn.execute(select(func.max(table_of(DataChange).c.id))).scalar() or 0)


def record_all(conn: Connection, source: str) -> None:
    """Record that anything of ``source`` may have changed (in the writer's transaction)."""
    conn.execute(
        insert(table_of(DataChange)).values(
            source=source, kind="all", first_day=None, last_day=None, changed_at=func.now()
        )
    )


def _changed(kind: ChangeKind, first: Any, last: Any) -> list[Any]:
    return [
        bindparam("source", type_=String),
        literal(kind, String),
        first,
        last,
        func.now(),
    ]


_COLUMNS = ["source", "kind", "first_day", "last_day", "changed_at"]


def record_days_statement(days: Any, kind: ChangeKind = "days") -> Any:
    """INSERT of the range of ``days`` (a column of local days) as one change, if there are any."""
    bounds = select(func.min(days).label("lo"), func.max(days).label("hi")).subquery("bounds")
    return insert(table_of(DataChange)).from_select(
        _COLUMNS,
        select(*_changed(kind, bounds.c.lo, bounds.c.hi)).where(bounds.c.lo.is_not(None)),
    )


def record_touches_statement(found: CTE, buckets: TimeBuckets) -> Any:
    """INSERT of the creation days of the leads the ``found`` activities reach, as a
    ``touches`` change: their first touches, and so their response times, may move."""
    lead = table_of(Lead)
    created = (
        select(buckets.local_day(lead.c.created_at).label("day"))
        .select_from(found)
        .join(
            lead,
            and_(
                lead.c.source == bindparam("source", type_=String),
                lead.c.crm_id == found.c.contact,
            ),
        )
        .subquery("touched_leads")
    )
    return record_days_statement(created.c.day, "touches")


def record_deal_days(conn: Connection, zone_name: str, source: str, crm_ids: Sequence[str]) -> None:
    """Record the local days the deals ``crm_ids`` were created and closed on, as stored now."""
    if not crm_ids:
        return
    b = TimeBuckets(conn.dialect.name, ZoneInfo(zone_name), wide=True)
    t = table_of(Deal)
    mine = [t.c.source == source, t.c.crm_id.in_(list(crm_ids))]
    days = union_all(
        select(b.local_day(t.c.created_at).label("day")).where(*mine),
        select(b.local_day(t.c.closed_at).label("day")).where(*mine, t.c.closed_at.is_not(None)),
    ).subquery("deal_days")
    conn.execute(record_days_statement(days.c.day), {"source": source})


def stored_rows(
    conn: Connection, kind: str, source: str, crm_ids: Sequence[str]
) -> tuple[tuple[Any, ...], ...]:
    """The stored reps or teams ``crm_ids`` as answers read them (not when they were synced
    or last modified in the CRM: a touched, unchanged owner moves no answer)."""
    t = table_of(TABLE_BY_KIND[kind])
    columns = [c for c in t.c if c.name not in ("id", "synced_at", "modified_at")]
    rows = conn.execute(
        select(*columns)
        .where(t.c.source == source, t.c.crm_id.in_(list(crm_ids)))
        .order_by(t.c.crm_id)
    )
    return tuple(tuple(row) for row in rows)


def prune_changes(conn: Connection) -> None:
    """Drop all but the newest KEEP_CHANGES changes."""
    t = table_of(DataChange)
    newest = select(func.max(t.c.id)).scalar_subquery()
    conn.execute(delete(t).where(t.c.id <= newest - KEEP_CHANGES))
