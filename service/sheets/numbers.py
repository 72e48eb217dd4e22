"""The figures of the daily, weekly and monthly sheets (docs/sheets.md), JSON-ready.

Every actual comes from ``kpi.compute`` (SQL), the midday check too: ``before_hour=12``
cuts each record at 12:00 local time by its own timestamp, so a call at 12:00:00 exactly is
after the check. Python only chains the few per-KPI numbers: the day's and the week's
targets derived from the month's, progress (actual ÷ target) and the week's pace.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from kpi import CATALOG, KPIS, KpiContext, KpiRow, Scope, compute, landing_forecast, list_teams
from kpi.periods import BusinessCalendar, next_period
from kpi.planning import FUNNEL_RATES, FUNNEL_STAGES, STAGE_HINTS, FunnelStage, diagnose
from models.kpi import KpiTarget
from models.store import table_of
from service.sheets.notes import check_scope, list_actions, note_updates, read_notes
from service.sheets.periods import week_days, week_name

DAILY_COUNTS: tuple[str, ...] = (
    "calls",
    "emails_sent",
    "connects",
    "effective_contacts",
    "meetings_set",
)
DAILY_RATES: tuple[str, ...] = ("connect_rate", "meeting_conversion_rate")
# connects has no KPI of its own: it is connect_rate's numerator.
_DAILY_KPIS = ["calls", "emails_sent", "effective_contacts", "meetings_set", *DAILY_RATES]
WEEKLY_MAIN: tuple[str, ...] = ("calls", "connect_rate", "meeting_conversion_rate", "meetings_set")
REP_KPIS: tuple[str, ...] = (
    "calls",
    "connect_rate",
    "effective_contacts",
    "meeting_conversion_rate",
    "meetings_set",
    "won_count",
    "won_amount",
)
MIDDAY_HOUR = 12


def _ratio(actual: float | None, target: float | None) -> float | None:
    if actual is None or not target:
        return None
    return actual / target


def _additive(kpi: str) -> bool:
    return kpi == "connects" or KPIS[kpi].kind in ("count", "sum")


def _targets(
    conn: Connection, grain: str, start: date, scope: str, scope_id: str
) -> dict[str, float]:
    """The achievement-level targets of one period and scope id, by KPI."""
    t = table_of(KpiTarget)
    rows = conn.execute(
        select(t.c.kpi, t.c.value).where(
            t.c.grain == grain,
            t.c.period_start == start,
            t.c.scope == scope,
            t.c.scope_id == scope_id,
            t.c.level == "achievement",
        )
    )
    return {kpi: float(value) for kpi, value in rows}


def _by_kpi(rows: Iterable[KpiRow]) -> dict[str, KpiRow]:
    return {r.kpi: r for r in rows}


def _scope_arg(scope: str, member_id: str) -> str | None:
    return None if scope == "org" else member_id


def _header(
    kind: str, period: str, start: date, end: date, scope: str, member: tuple[str, str]
) -> dict[str, Any]:
    return {
        "kind": kind,
        "period": period,
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "scope": scope,
        "scope_id": member[0],
        "scope_name": member[1],
    }


# --- daily ----------------------------------------------------------------------------------


def day_target(
    kpi: str,
    day_targets: dict[str, float],
    month_targets: dict[str, float],
    month_business_days: int,
) -> tuple[float | None, str | None]:
    """A KPI's target for one day and where it came from (``day`` or ``month``), else (None, None).

    A day target wins; else a count's or sum's month target ÷ the month's business days,
    and a rate's month target as it is.
    """
    if kpi in day_targets:
        return day_targets[kpi], "day"
    if kpi in month_targets:
        if _additive(kpi):
            if not month_business_days:
                return None, None
            return month_targets[kpi] / month_business_days, "month"
        return month_targets[kpi], "month"
    return None, None


def daily_sheet(
    engine: Engine, ctx: KpiContext, *, day: date, scope: Scope, scope_id: str | None
) -> dict[str, Any]:
    """The daily sheet: the five counts against the day's target at 12:00 and at day's end."""
    month = day.replace(day=1)
    calendar = BusinessCalendar(ctx.holidays)
    month_business_days = calendar.count(month, next_period(month, "month"))
    with engine.connect() as conn:
        member = check_scope(conn, scope, scope_id)
        sid = _scope_arg(scope, member[0])
        common: dict[str, Any] = {
            "kpis": _DAILY_KPIS,
            "grain": "day",
            "start": day,
            "end": day,
            "scope": scope,
            "scope_id": sid,
        }
        full = _by_kpi(compute(conn, ctx, **common))
        noon = _by_kpi(compute(conn, ctx, **common, before_hour=MIDDAY_HOUR))
        day_targets = _targets(conn, "day", day, scope, member[0])
        month_targets = _targets(conn, "month", month, scope, member[0])
        notes = read_notes(conn, "daily", day, scope, member[0])
        notes_updated = note_updates(conn, "daily", day, scope, member[0])

    def actual(rows: dict[str, KpiRow], kpi: str) -> float:
        row = rows["connect_rate" if kpi == "connects" else kpi]
        value = row.numerator if kpi == "connects" else row.value
        return float(value or 0)

    def target_of(kpi: str) -> tuple[float | None, str | None]:
        return day_target(kpi, day_targets, month_targets, month_business_days)

    counts = []
    for kpi in DAILY_COUNTS:
        target, source = target_of(kpi)
        half = None if target is None else target / 2
        at_noon, at_end = actual(noon, kpi), actual(full, kpi)
        counts.append(
            {
                "kpi": kpi,
                "actual": at_end,
                "target": target,
                "target_source": source,
                "midday": {"actual": at_noon, "target": half, "progress": _ratio(at_noon, half)},
                "end_of_day": {
                    "actual": at_end,
                    "target": target,
                    "progress": _ratio(at_end, target),
                },
            }
        )
    rates = []
    for kpi in DAILY_RATES:
        row = full[kpi]
        target, source = target_of(kpi)
        rates.append(
            {
                "kpi": kpi,
                "value": row.value,
                "numerator": row.numerator,
                "denominator": row.denominator,
                "target": target,
                "target_source": source,
                "achievement": _ratio(row.value, target),
            }
        )
    return {
        **_header("daily", day.isoformat(), day, day, scope, member),
        "business_day": calendar.is_business_day(day),
        "month_business_days": month_business_days,
        "midday_check": f"{MIDDAY_HOUR:02d}:00",
        "counts": counts,
        "rates": rates,
        "notes": notes,
        "notes_updated": notes_updated,
    }


# --- weekly ---------------------------------------------------------------------------------


def week_targets(
    conn: Connection,
    ctx: KpiContext,
    monday: date,
    scope: str,
    scope_id: str,
) -> dict[str, tuple[float, str]]:
    """Each KPI's target for the week and where it came from (``week`` or ``month``).

    Without a week target: counts and sums take, from each month the week touches, the month
    target × the week's business days in that month ÷ the month's business days; rates take
    the months' targets weighted by the week's business days in each. A month that has
    business days in the week but no target leaves the KPI without one.
    """
    calendar = BusinessCalendar(ctx.holidays)
    out = {k: (v, "week") for k, v in _targets(conn, "week", monday, scope, scope_id).items()}
    months = sorted({d.replace(day=1) for d in week_days(monday)})
    in_week = {
        m: sum(
            1 for d in week_days(monday) if d.replace(day=1) == m and calendar.is_business_day(d)
        )
        for m in months
    }
    in_month = {m: calendar.count(m, next_period(m, "month")) for m in months}
    by_month = {m: _targets(conn, "month", m, scope, scope_id) for m in months}
    keys = sorted({k for t in by_month.values() for k in t} - set(out))
    for kpi in keys:
        weighted = [m for m in months if in_week[m]]
        if not weighted:  # a week without business days: the first month's target, as is
            weighted = [months[0]]
        if any(kpi not in by_month[m] for m in weighted):
            continue
        if _additive(kpi):
            value = sum(
                by_month[m][kpi] * in_week[m] / in_month[m] for m in weighted if in_month[m]
            )
        else:
            days = sum(in_week[m] for m in weighted)
            value = (
                sum(by_month[m][kpi] * in_week[m] for m in weighted) / days
                if days
                else by_month[weighted[0]][kpi]
            )
        out[kpi] = (value, "month")
    return out


def _pace(ctx: KpiContext, start: date, end: date) -> tuple[int, int] | None:
    """(business days elapsed, in the period) when [start, end) holds today, else None."""
    today = ctx.today()
    if not start <= today < end:
        return None
    calendar = BusinessCalendar(ctx.holidays)
    total = calendar.count(start, end)
    if not total:
        return None
    return calendar.count(start, today + timedelta(days=1)), total


def weekly_sheet(
    engine: Engine, ctx: KpiContext, *, monday: date, scope: Scope, scope_id: str | None
) -> dict[str, Any]:
    """The weekly sheet: main KPIs and every targeted one, the week's funnel, notes, actions."""
    sunday = monday + timedelta(days=6)
    running = _pace(ctx, monday, monday + timedelta(days=7))
    with engine.connect() as conn:
        member = check_scope(conn, scope, scope_id)
        sid = _scope_arg(scope, member[0])
        common: dict[str, Any] = {"grain": "week", "scope": scope, "scope_id": sid}
        this = _by_kpi(compute(conn, ctx, start=monday, end=monday, **common))
        before = monday - timedelta(days=7)
        last = _by_kpi(compute(conn, ctx, start=before, end=before, **common))
        targets = week_targets(conn, ctx, monday, scope, member[0])
        notes = read_notes(conn, "weekly", monday, scope, member[0])
        notes_updated = note_updates(conn, "weekly", monday, scope, member[0])
        actions = list_actions(conn, ctx, week_start=monday, scope=scope, scope_id=member[0])

    def pace_of(kpi: str, target: float | None, actual: float | None) -> tuple[Any, Any]:
        if running is None or target is None or not _additive(kpi):
            return None, None
        pace_target = target * running[0] / running[1]
        return pace_target, _ratio(actual, pace_target)

    order = [s.key for s in CATALOG]
    listed = [*WEEKLY_MAIN, *sorted(set(targets) - set(WEEKLY_MAIN), key=order.index)]
    kpis = []
    for kpi in listed:
        row = this[kpi]
        target, source = targets.get(kpi, (None, None))
        pace_target, pace_achievement = pace_of(kpi, target, row.value)
        kpis.append(
            {
                "kpi": kpi,
                "tier": row.tier,
                "target": target,
                "target_source": source,
                "actual": row.value,
                "numerator": row.numerator,
                "denominator": row.denominator,
                "achievement": _ratio(row.value, target),
                "previous_actual": last[kpi].value,
                "pace_target": pace_target,
                "pace_achievement": pace_achievement,
            }
        )
    stages = []
    for key in FUNNEL_STAGES:
        target, _ = targets.get(key, (None, None))
        actual = this[key].value
        pace_target, pace_achievement = pace_of(key, target, actual)
        stages.append(
            FunnelStage(
                stage=key,
                kind="rate" if key in FUNNEL_RATES else "count",
                target=target,
                actual=actual,
                achievement=_ratio(actual, target),
                hint=STAGE_HINTS.get(key),
                pace_target=pace_target,
                pace_achievement=pace_achievement,
            )
        )
    diagnosis = diagnose(monday, scope, member[0], member[1], tuple(stages)).as_dict()
    diagnosis.pop("month")
    return {
        **_header("weekly", week_name(monday), monday, sunday, scope, member),
        "business_days": BusinessCalendar(ctx.holidays).count(monday, sunday + timedelta(days=1)),
        "business_days_elapsed": None if running is None else running[0],
        "kpis": kpis,
        "funnel": diagnosis,
        "notes": notes,
        "notes_updated": notes_updated,
        "actions": actions,
    }


# --- monthly --------------------------------------------------------------------------------


def _row(row: KpiRow) -> dict[str, Any]:
    return {
        "kpi": row.kpi,
        "tier": row.tier,
        "actual": row.value,
        "numerator": row.numerator,
        "denominator": row.denominator,
        "target": row.target,
        "targets": row.targets._asdict(),
        "achievement": row.achievement,
        "pace_target": row.pace_target,
        "pace_achievement": row.pace_achievement,
        "band": {"low": row.band.low, "high": row.band.high},
        "status": row.status,
    }


def _team_reps(conn: Connection, ctx: KpiContext, team_id: str) -> set[str]:
    for team in list_teams(conn, ctx, kind="all"):
        if team.id == team_id:
            return {r.id for r in team.reps}
    return set()


def monthly_sheet(
    engine: Engine, ctx: KpiContext, *, month: date, scope: Scope, scope_id: str | None
) -> dict[str, Any]:
    """The monthly sheet: every KPI, the landing forecast and its basis, per-rep rows, notes."""
    end = next_period(month, "month")
    with engine.connect() as conn:
        member = check_scope(conn, scope, scope_id)
        sid = _scope_arg(scope, member[0])
        rows = compute(conn, ctx, grain="month", start=month, end=month, scope=scope, scope_id=sid)
        forecast = landing_forecast(conn, ctx, month=month, scope=scope, scope_id=sid)
        rep_rows: Sequence[KpiRow] = compute(
            conn,
            ctx,
            kpis=list(REP_KPIS),
            grain="month",
            start=month,
            end=month,
            scope="rep",
            scope_id=member[0] if scope == "rep" else None,
        )
        if scope == "team":
            members = _team_reps(conn, ctx, member[0])
            rep_rows = [r for r in rep_rows if r.scope_id in members]
        notes = read_notes(conn, "monthly", month, scope, member[0])
        notes_updated = note_updates(conn, "monthly", month, scope, member[0])
    per_rep: dict[str, dict[str, Any]] = {}
    for r in rep_rows:
        entry = per_rep.setdefault(
            r.scope_id,
            {
                "rep_id": r.scope_id,
                "name": r.scope_name,
                "kpis": {},
                "note": notes["rep_notes"].get(r.scope_id),
            },
        )
        entry["kpis"][r.kpi] = {
            "actual": r.value,
            "target": r.target,
            "achievement": r.achievement,
            "pace_target": r.pace_target,
            "pace_achievement": r.pace_achievement,
        }
    first = forecast[0] if forecast else None
    return {
        **_header("monthly", f"{month:%Y-%m}", month, end - timedelta(days=1), scope, member),
        "kpis": [_row(r) for r in rows],
        "forecast": {
            "basis": {
                "as_of": None if first is None else first.as_of.isoformat(),
                "business_days": None if first is None else first.business_days,
                "business_days_elapsed": None if first is None else first.business_days_elapsed,
                "counts": "actual × business days in the month ÷ business days elapsed",
                "won_amount": "closed won so far + Σ open deals closing in the rest of the "
                "month × stage probability",
            },
            "rows": [
                {
                    "kpi": f.kpi,
                    "actual": f.actual,
                    "forecast": f.forecast,
                    "pipeline": f.pipeline,
                    "target": f.target,
                    "achievement": f.achievement,
                }
                for f in forecast
            ],
        },
        "reps": sorted(per_rep.values(), key=lambda e: str(e["rep_id"]).encode()),
        "notes": notes,
        "notes_updated": notes_updated,
    }
