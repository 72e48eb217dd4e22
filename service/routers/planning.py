"""The manager's month (docs/targets.md): landing forecast, plan (逆算), funnel diagnosis.

Answers are cached like /v1/kpis (service/cache.py): by the request and the version of
the days they read, so a sync writing today's calls leaves a June funnel cached.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from kpi import FORECAST_KPIS, PLAN_RATES, Scope, funnel, landing_forecast, plan, reads_for
from kpi.engine import select_specs
from kpi.planning import FUNNEL_STAGES, trailing_months
from service.auth import ReadAccess
from service.cache import CachedBody, cached_answer
from service.dates import BoundedDate, BoundedMonth
from service.deps import DataVersionDep, EngineDep, KpiCacheDep, KpiContextDep
from service.routers.common import (
    READ_RESPONSES,
    Freshness,
    freshness,
    parse_month,
)

router = APIRouter(tags=["planning"], responses=READ_RESPONSES)

MonthQuery = Annotated[
    BoundedMonth | None,
    Query(
        description="YYYY-MM; default the month of as_of",
        examples=["2026-11"],
    ),
]
AsOfQuery = Annotated[
    BoundedDate | None,
    Query(description="replay as of this day (default today, or ISKPI_NOW)"),
]
ScopeQuery = Annotated[Scope, Query(description="org, team or rep")]
IdQuery = Annotated[
    str | None, Query(description="one team or rep: <source>:<crm id>", examples=["hubspot:2001"])
]


class ForecastRowOut(BaseModel):
    kpi: str = Field(examples=["won_amount"])
    month: date
    as_of: date
    scope: Scope
    scope_id: str
    scope_name: str
    actual: float = Field(description="through the end of as_of")
    forecast: float | None = Field(
        description="counts: actual × business days in month / elapsed; won_amount: won + pipeline"
    )
    business_days: int
    business_days_elapsed: int
    pipeline: float | None = Field(
        description="won_amount only: Σ amount × stage probability of open deals closing in the rest of the month"
    )
    target: float | None
    achievement: float | None = Field(description="forecast / target")


class ForecastMeta(Freshness):
    month: date
    as_of: date


class ForecastOut(BaseModel):
    data: list[ForecastRowOut]
    meta: ForecastMeta


@router.get("/v1/forecast", response_model=ForecastOut)
async def get_forecast(
    _: ReadAccess,
    request: Request,
    engine: EngineDep,
    ctx: KpiContextDep,
    cache: KpiCacheDep,
    clock: DataVersionDep,
    month: MonthQuery = None,
    as_of: AsOfQuery = None,
    scope: ScopeQuery = "org",
    id: IdQuery = None,
    kpi: Annotated[
        str | None, Query(description="KPI keys, comma-separated; default every forecast KPI")
    ] = None,
) -> Response:
    """The landing forecast (着地予測) of a month per scope id: run rate and weighted pipeline."""
    day = as_of or ctx.today()
    first = parse_month(month) or day.replace(day=1)
    keys = [k.strip() for k in (kpi or "").split(",") if k.strip()] or None

    def render(conn: Connection) -> bytes:
        rows = landing_forecast(
            conn, ctx, month=first, as_of=day, scope=scope, scope_id=id, kpis=keys
        )
        return (
            ForecastOut(
                data=[ForecastRowOut.model_validate(row.__dict__) for row in rows],
                meta=ForecastMeta(**freshness(engine, ctx).model_dump(), month=first, as_of=day),
            )
            .model_dump_json()
            .encode()
        )

    # The month's actuals through as_of and its deals closing after: the month's days.
    specs = select_specs([k for k in keys or FORECAST_KPIS if k in FORECAST_KPIS])
    reads = reads_for(specs, "month", first, first, ctx.fiscal_year_start_month)
    request_key = ("forecast", first, day, scope, id, tuple(keys or ()), ctx.today())
    entry = await cached_answer(engine, cache, clock, request_key, reads, render)
    return json_response(entry, request)


# --- plan (逆算) -----------------------------------------------------------------------------------

Rate = Annotated[float | None, Field(gt=0, le=1, allow_inf_nan=False)]


class PlanIn(BaseModel):
    """A won target (a count, or an amount), and optionally the rates to plan with.

    Missing rates (and the deal size of the amount path) are the scope's trailing three
    complete months, pooled.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "won_target": 10,
                    "meeting_win_rate": 0.25,
                    "meeting_conversion_rate": 0.10,
                    "effective_contact_rate": 0.30,
                },
                {"won_amount_target": 30_000_000, "month": "2026-12"},
            ]
        },
    )

    won_target: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="IS-sourced deals to win in the month: a whole number "
        "(give this or won_amount_target)",
    )
    won_amount_target: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="the amount to win in the month (the CRM's currency); ÷ avg_deal_size, "
        "rounded up, is the won target",
    )
    avg_deal_size: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="overrides the IS-sourced won deals' mean over the trailing months",
    )
    meeting_win_rate: Rate = Field(
        default=None, description="IS-sourced deals won ÷ meetings set (商談受注率)"
    )
    meeting_conversion_rate: Rate = None
    effective_contact_rate: Rate = None
    win_rate: Rate = Field(default=None, description="the old name of meeting_win_rate")
    month: BoundedMonth | None = Field(default=None, description="YYYY-MM")
    scope: Scope = "org"
    id: str | None = Field(default=None, description="a team or rep: <source>:<crm id>")


class PlanRateOut(BaseModel):
    kpi: str
    value: float
    source: Literal["given", "derived"]
    numerator: float | None = Field(description="derived: Σ over the trailing months")
    denominator: float | None


class PlanStepOut(BaseModel):
    stage: str = Field(examples=["calls"])
    value: float = Field(description="the month's need, each step rounded up")
    rate: str | None
    rate_used: float | None
    per_business_day: float | None
    per_rep: float | None
    per_rep_per_business_day: float | None


class PlanOut(BaseModel):
    month: date
    as_of: date
    scope: Scope
    scope_id: str
    scope_name: str
    won_target: int = Field(description="IS-sourced deals to win: given, or the amount's")
    won_amount_target: float | None = Field(description="the amount given, if one was")
    avg_deal_size: PlanRateOut | None = Field(
        description="the amount path's divisor: given, or derived from the trailing months"
    )
    business_days: int
    reps: int = Field(description="active inside-sales reps in the scope (field sales left out)")
    rates: list[PlanRateOut]
    trailing_months: list[date] | None = Field(
        description="the complete months missing rates were pooled over"
    )
    steps: list[PlanStepOut]


@router.post("/v1/plan", response_model=PlanOut)
async def post_plan(
    _: ReadAccess,
    request: Request,
    engine: EngineDep,
    ctx: KpiContextDep,
    cache: KpiCacheDep,
    clock: DataVersionDep,
    body: Annotated[PlanIn, Body()],
    as_of: AsOfQuery = None,
) -> Response:
    """Work back from a won target to meetings, effective contacts and calls (逆算).

    meetings = won ÷ meeting_win_rate, contacts = meetings ÷ meeting_conversion_rate,
    calls = contacts ÷ effective_contact_rate, each step rounded to 6 decimals then up;
    an amount target is ÷ avg_deal_size first, rounded up. Also per business day and
    per inside-sales rep.
    """
    month = parse_month(body.month)  # the pattern has been checked

    def render(conn: Connection) -> bytes:
        result = plan(
            conn,
            ctx,
            won_target=body.won_target,
            won_amount_target=body.won_amount_target,
            avg_deal_size=body.avg_deal_size,
            meeting_win_rate=body.meeting_win_rate,
            win_rate=body.win_rate,
            meeting_conversion_rate=body.meeting_conversion_rate,
            effective_contact_rate=body.effective_contact_rate,
            month=month,
            scope=body.scope,
            scope_id=body.id,
            as_of=as_of,
        )
        return PlanOut.model_validate(result.as_dict()).model_dump_json().encode()

    # Missing rates come from the trailing three complete months before as_of's month.
    window = trailing_months(as_of or ctx.today())
    reads = reads_for(
        select_specs([*PLAN_RATES, "is_won_amount"]),
        "month",
        window[0],
        window[-1],
        ctx.fiscal_year_start_month,
    )
    request_key = ("plan", body.model_dump_json(), as_of, ctx.today())
    entry = await cached_answer(engine, cache, clock, request_key, reads, render)
    return json_response(entry, request)


# --- funnel diagnosis ---------------------------------------------------------------------------


class HintOut(BaseModel):
    en: str
    ja: str


class FunnelStageOut(BaseModel):
    stage: str = Field(examples=["meeting_conversion_rate"])
    kind: Literal["count", "rate"]
    target: float | None
    actual: float | None
    achievement: float | None = Field(description="actual / target")
    pace_target: float | None = Field(
        default=None,
        description="a running month's count stage: target × business days elapsed ÷ business days",
    )
    pace_achievement: float | None = Field(
        default=None, description="actual / pace_target: what decides a running count stage"
    )
    below_target: bool
    hint: HintOut | None


class FunnelOut(BaseModel):
    month: date
    scope: Scope
    scope_id: str
    scope_name: str
    stages: list[FunnelStageOut]
    bottleneck: str | None = Field(description="the rate stage with the lowest achievement below 1")
    bottleneck_achievement: float | None
    cause: Literal["volume", "quality"] | None
    hint: HintOut | None
    approach: HintOut | None


@router.get("/v1/funnel", response_model=FunnelOut)
async def get_funnel(
    _: ReadAccess,
    request: Request,
    engine: EngineDep,
    ctx: KpiContextDep,
    cache: KpiCacheDep,
    clock: DataVersionDep,
    month: MonthQuery = None,
    scope: ScopeQuery = "org",
    id: IdQuery = None,
) -> Response:
    """The month's funnel against its targets: the bottleneck stage and its cause."""
    first = parse_month(month) or ctx.today().replace(day=1)

    def render(conn: Connection) -> bytes:
        result = funnel(conn, ctx, month=first, scope=scope, scope_id=id)
        return FunnelOut.model_validate(result.as_dict()).model_dump_json().encode()

    reads = reads_for(
        select_specs(list(FUNNEL_STAGES)), "month", first, first, ctx.fiscal_year_start_month
    )
    # Today too: a running month's count stages are compared with their pace.
    request_key = ("funnel", first, scope, id, ctx.today())
    entry = await cached_answer(engine, cache, clock, request_key, reads, render)
    return json_response(entry, request)


def json_response(entry: CachedBody, request: Request) -> Response:
    """A cached JSON body, gzipped when the client accepts it and the body is worth it."""
    headers = {"Vary": "Accept-Encoding"}
    if entry.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(entry.gzipped, media_type="application/json", headers=headers)
    return Response(entry.body, media_type="application/json", headers=headers)
