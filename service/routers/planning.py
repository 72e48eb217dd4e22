"""The manager's month (docs/targets.md): landing forecast, plan (逆算), funnel diagnosis."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field

from kpi import Scope, funnel, landing_forecast, plan
from service.auth import ReadAccess
from service.dates import BoundedDate, BoundedMonth
from service.deps import EngineDep, KpiContextDep
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
def get_forecast(
    _: ReadAccess,
    engine: EngineDep,
    ctx: KpiContextDep,
    month: MonthQuery = None,
    as_of: AsOfQuery = None,
    scope: ScopeQuery = "org",
    id: IdQuery = None,
    kpi: Annotated[
        str | None, Query(description="KPI keys, comma-separated; default every forecast KPI")
    ] = None,
) -> ForecastOut:
    """The landing forecast (着地予測) of a month per scope id: run rate and weighted pipeline."""
    day = as_of or ctx.today()
    first = parse_month(month) or day.replace(day=1)
    keys = [k.strip() for k in (kpi or "").split(",") if k.strip()] or None
    rows = landing_forecast(
        engine, ctx, month=first, as_of=day, scope=scope, scope_id=id, kpis=keys
    )
    return ForecastOut(
        data=[ForecastRowOut.model_validate(row.__dict__) for row in rows],
        meta=ForecastMeta(**freshness(engine, ctx).model_dump(), month=first, as_of=day),
    )


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
def post_plan(
    _: ReadAccess,
    engine: EngineDep,
    ctx: KpiContextDep,
    body: Annotated[PlanIn, Body()],
    as_of: AsOfQuery = None,
) -> PlanOut:
    """Work back from a won target to meetings, effective contacts and calls (逆算).

    meetings = won ÷ meeting_win_rate, contacts = meetings ÷ meeting_conversion_rate,
    calls = contacts ÷ effective_contact_rate, each step rounded to 6 decimals then up;
    an amount target is ÷ avg_deal_size first, rounded up. Also per business day and
    per inside-sales rep.
    """
    month = parse_month(body.month)  # the pattern has been checked
    result = plan(
        engine,
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
    return PlanOut.model_validate(result.as_dict())


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
def get_funnel(
    _: ReadAccess,
    engine: EngineDep,
    ctx: KpiContextDep,
    month: MonthQuery = None,
    scope: ScopeQuery = "org",
    id: IdQuery = None,
) -> FunnelOut:
    """The month's funnel against its targets: the bottleneck stage and its cause."""
    first = parse_month(month) or ctx.today().replace(day=1)
    result = funnel(engine, ctx, month=first, scope=scope, scope_id=id)
    return FunnelOut.model_validate(result.as_dict())
