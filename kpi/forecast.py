"""The landing forecast (着地予測, docs/targets.md) and the snapshot the sync stores after each run.

As of day D of a month: counts run at their pace, actual × business days in the
month / business days elapsed (the 1st through D); won_amount is the amount
closed won through D plus Σ amount × stage probability of the open deals whose
close date falls in the rest of the month (D+1 to its last day). The store
keeps no deal history, so a replay of a past D sees today's open pipeline;
that is why each sync stores a snapshot, which forecast_accuracy reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from kpi.compiler import SCOPES, Request, Scope, compile_measures
from kpi.engine import KpiRequestError, _connection, compute, parse_scope_id
from kpi.periods import BusinessCalendar, KpiContext, next_period
from kpi.rollups import rollups_current
from kpi.targets import list_targets
from models.kpi import ForecastSnapshot
from models.store import table_of, upsert

# The count KPIs forecast by run rate, and won_amount by the pipeline.
RUN_RATE_KPIS: tuple[str, ...] = (
    "calls",
    "effective_contacts",
    "emails_sent",
    "meetings_set",
    "valid_meetings",
    "deals_created",
    "sql_count",
    "won_count",
    "lead_supply",
)
FORECAST_KPIS: tuple[str, ...] = (*RUN_RATE_KPIS, "won_amount")


@dataclass(frozen=True)
class ForecastRow:
    """A KPI's landing forecast for a month, as of a day, for one scope id."""

    kpi: str
    month: date
    as_of: date
    scope: str
    scope_id: str
    scope_name: str
    actual: float  # through the end of as_of
    forecast: float | None  # None before the month's first business day (nothing to run from)
    business_days: int
    business_days_elapsed: int
    pipeline: float | None  # won_amount: the probability-weighted open deals of the rest
    target: float | None
    achievement: float | None  # forecast / target

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "month": self.month.isoformat(),
            "as_of": self.as_of.isoformat(),
        }


def landing_forecast(
    bind: Connection | Engine,
    ctx: KpiContext,
    *,
    month: date | None = None,
    as_of: date | None = None,
    scope: Scope = "org",
    scope_id: str | None = None,
    kpis: Sequence[str] | None = None,
) -> list[ForecastRow]:
    """The landing forecast of ``month`` (default: as_of's) as of ``as_of`` (default: today)."""
    day = as_of or ctx.today()
    first = (month or day).replace(day=1)
    end = next_period(first, "month")
    wanted = list(kpis) if kpis else list(FORECAST_KPIS)
    unknown = [k for k in wanted if k not in FORECAST_KPIS]
    if unknown:
        raise KpiRequestError("kpi", f"no landing forecast for {', '.join(map(repr, unknown))}")
    key = parse_scope_id(scope, scope_id)
    cut = min(day, end - timedelta(days=1))  # actuals through the end of this day
    calendar = BusinessCalendar(ctx.holidays)
    in_month = calendar.count(first, end)
    elapsed = calendar.count(first, cut + timedelta(days=1)) if cut >= first else 0
    rest_start = max(cut + timedelta(days=1), first)
    with _connection(bind) as conn:
        actuals = compute(
            conn,
            ctx,
            kpis=wanted,
            grain="month",
            start=first,
            end=first,
            scope=scope,
            scope_id=scope_id,
            as_of=cut if cut >= first else first - timedelta(days=1),
            max_rows=None,
        )
        pipeline = _pipeline(conn, ctx, first, rest_start, end, scope, key)
        targets = {
            (t.kpi, t.scope_id): t.value
            for t in list_targets(conn, grain="month", scope=scope, start=first, end=first)
        }
    out: list[ForecastRow] = []
    for row in actuals:
        actual = float(row.value or 0)
        expected: float | None = None
        if row.kpi == "won_amount":
            expected = pipeline.get(row.scope_id, 0.0)
            forecast: float | None = actual + expected
        else:
            forecast = actual * in_month / elapsed if elapsed else None
        target = targets.get((row.kpi, row.scope_id))
        out.append(
            ForecastRow(
                kpi=row.kpi,
                month=first,
                as_of=day,
                scope=scope,
                scope_id=row.scope_id,
                scope_name=row.scope_name,
                actual=actual,
                forecast=forecast,
                business_days=in_month,
                business_days_elapsed=elapsed,
                pipeline=expected,
                target=target,
                achievement=(forecast / target if forecast is not None and target else None),
            )
        )
    return out


def _pipeline(
    conn: Connection,
    ctx: KpiContext,
    month: date,
    rest_start: date,
    end: date,
    scope: Scope,
    key: tuple[str, str] | None,
) -> dict[str, float]:
    """Σ amount × probability of open deals closing in [rest_start, end), per scope id."""
    if rest_start >= end:
        return {}
    req = Request(
        ctx=ctx,
        dialect=conn.dialect.name,
        grain="month",
        periods=(month,),
        scope=scope,
        scope_key=key,
        use_rollups=rollups_current(conn, ctx),
        window=(rest_start, end),
    )
    w, _ = compile_measures(req, ["pipeline_expected"])
    rows = conn.execute(select(w.c.scope_id, w.c.pipeline_expected))
    return {scope_id: float(expected or 0) for scope_id, expected in rows}


def snapshot_taken(conn: Connection, day: date) -> bool:
    """Whether a landing-forecast snapshot of ``day`` is stored already."""
    table = table_of(ForecastSnapshot)
    return conn.execute(select(table.c.id).where(table.c.as_of == day).limit(1)).first() is not None


def store_forecast_snapshot(
    conn: Connection, ctx: KpiContext, *, taken_at: datetime | None = None
) -> int:
    """Store the current month's landing forecast for the org, every team and every rep.

    Called by the sync at the end of a run, in its own transaction; the last
    snapshot of a day replaces earlier ones. Returns the rows stored.
    """
    taken = taken_at or ctx.current_time()
    day = taken.astimezone(ctx.zone).date()
    rows: list[ForecastRow] = []
    for scope in SCOPES:
        rows += landing_forecast(conn, ctx, as_of=day, scope=scope)  # type: ignore[arg-type]
    if not rows:
        return 0
    table = table_of(ForecastSnapshot)
    # The rows as parameters of one cached statement: a VALUES list of them was compiled
    # anew every run, a quarter of a no-change sync's snapshot.
    stmt = upsert(conn, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["month", "as_of", "scope", "scope_id", "kpi"],
        set_={
            "actual": stmt.excluded.actual,
            "forecast": stmt.excluded.forecast,
            "taken_at": stmt.excluded.taken_at,
        },
    )
    conn.execute(
        stmt,
        [
            {
                "month": r.month,
                "as_of": r.as_of,
                "scope": r.scope,
                "scope_id": r.scope_id,
                "kpi": r.kpi,
                "actual": r.actual,
                "forecast": r.forecast,
                "taken_at": taken,
            }
            for r in rows
        ],
    )
    return len(rows)
