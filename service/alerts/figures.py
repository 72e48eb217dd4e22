"""The numbers the alerts report: reps behind their day's call pace, and last week's digest.

Both come from the same places as the review sheets (docs/sheets.md): actuals from
``kpi.compute`` (SQL, the midday actual cut at 12:00 as on the daily sheet), a rep's day
target as the daily sheet derives it, and the week's targets and funnel diagnosis from
the weekly sheet. Python only compares the few per-rep numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine, and_, or_, select

from kpi import BusinessCalendar, KpiContext, compute
from kpi.periods import next_period
from models import KpiTarget
from models.store import table_of
from service.alerts.due import PacingCheck
from service.sheets.numbers import MIDDAY_HOUR, day_target, weekly_sheet

# A rep whose calls are below this share of the pace at a check is listed.
BEHIND_PACE = 0.8
DIGEST_KPIS: tuple[str, ...] = ("calls", "meetings_set", "won_amount")


@dataclass(frozen=True)
class RepPace:
    """One rep at a pacing check: calls so far against the pace target at that check."""

    rep_id: str
    name: str
    actual: float
    target: float  # at the midday check half the day's target, at the end of the day all of it
    day_target: float

    @property
    def pace(self) -> float:
        """Actual ÷ the pace target."""
        return self.actual / self.target


@dataclass(frozen=True)
class PaceCheck:
    """A pacing check of one day: how many reps have a call target, and who is behind."""

    check: PacingCheck
    day: date
    reps_with_target: int
    behind: tuple[RepPace, ...]  # the furthest behind first


def _rep_call_targets(
    engine: Engine, day: date, month: date
) -> tuple[dict[str, float], dict[str, float]]:
    """Every rep's call target of the day, and of the month, by rep id (achievement level)."""
    t = table_of(KpiTarget)
    query = select(t.c.scope_id, t.c.grain, t.c.value).where(
        t.c.kpi == "calls",
        t.c.scope == "rep",
        t.c.level == "achievement",
        or_(
            and_(t.c.grain == "day", t.c.period_start == day),
            and_(t.c.grain == "month", t.c.period_start == month),
        ),
    )
    by_day: dict[str, float] = {}
    by_month: dict[str, float] = {}
    with engine.connect() as conn:
        for rep_id, grain, value in conn.execute(query):
            (by_day if grain == "day" else by_month)[rep_id] = float(value)
    return by_day, by_month


def pace_check(engine: Engine, ctx: KpiContext, day: date, check: PacingCheck) -> PaceCheck:
    """The reps below BEHIND_PACE of their call pace at the midday or end-of-day check of ``day``."""
    month = day.replace(day=1)
    business_days = BusinessCalendar(ctx.holidays).count(month, next_period(month, "month"))
    by_day, by_month = _rep_call_targets(engine, day, month)
    rows = compute(
        engine,
        ctx,
        kpis=["calls"],
        grain="day",
        start=day,
        end=day,
        scope="rep",
        before_hour=MIDDAY_HOUR if check == "midday" else None,
    )
    with_target: list[RepPace] = []
    for row in rows:
        target, _ = day_target(
            "calls",
            {"calls": by_day[row.scope_id]} if row.scope_id in by_day else {},
            {"calls": by_month[row.scope_id]} if row.scope_id in by_month else {},
            business_days,
        )
        if not target:
            continue
        pace_target = target / 2 if check == "midday" else target
        with_target.append(
            RepPace(row.scope_id, row.scope_name, float(row.value or 0), pace_target, target)
        )
    behind = sorted(
        (r for r in with_target if r.actual < BEHIND_PACE * r.target),
        key=lambda r: (r.pace, r.name, r.rep_id),
    )
    return PaceCheck(check, day, len(with_target), tuple(behind))


@dataclass(frozen=True)
class DigestLine:
    """One KPI of the digest: the week's actual against its target."""

    kpi: str
    actual: float | None
    target: float | None
    achievement: float | None


@dataclass(frozen=True)
class Digest:
    """Last week's org figures and its funnel diagnosis (the weekly sheet's)."""

    monday: date
    lines: tuple[DigestLine, ...]
    funnel: dict[str, Any]  # the weekly sheet's ``funnel``: bottleneck, cause, hint, stages


def week_digest(engine: Engine, ctx: KpiContext, monday: date) -> Digest:
    """The org's calls, meetings_set and won_amount of the week against target, and its funnel."""
    sheet = weekly_sheet(engine, ctx, monday=monday, scope="org", scope_id=None)
    listed = {row["kpi"]: row for row in sheet["kpis"]}
    # The sheet lists won_amount only when it has a target; its actual is reported anyway.
    untargeted = [kpi for kpi in DIGEST_KPIS if kpi not in listed]
    actuals = {
        row.kpi: row.value
        for row in (
            compute(engine, ctx, kpis=untargeted, grain="week", start=monday, end=monday)
            if untargeted
            else []
        )
    }
    lines = tuple(
        DigestLine(kpi, listed[kpi]["actual"], listed[kpi]["target"], listed[kpi]["achievement"])
        if kpi in listed
        else DigestLine(kpi, actuals.get(kpi), None, None)
        for kpi in DIGEST_KPIS
    )
    return Digest(monday, lines, sheet["funnel"])
