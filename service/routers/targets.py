"""Targets (GET, PUT /v1/targets) and the costs CAC divides (GET, PUT /v1/costs)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field

from kpi import (
    Grain,
    Scope,
    Target,
    list_costs,
    list_targets,
    put_cost,
    put_targets,
    suggest_targets,
)
from service.auth import AdminAccess, ReadAccess
from service.dates import BoundedDate, BoundedMonth
from service.deps import EngineDep, KpiContextDep
from service.limits import MAX_TARGETS
from service.routers.common import ADMIN_RESPONSES, READ_RESPONSES, parse_month

router = APIRouter(tags=["targets"], responses=READ_RESPONSES)


class TargetIn(BaseModel):
    """A target of one KPI for one period and scope id (SPEC §7)."""

    model_config = ConfigDict(extra="forbid")

    kpi: str = Field(examples=["meetings_set"])
    grain: Grain = Field(examples=["month"])
    period_start: BoundedDate = Field(
        description="the first day of the period (a Monday for weeks, the 1st for months)",
        examples=["2026-11-01"],
    )
    scope: Scope = Field(examples=["rep"])
    id: str = Field(
        default="org", description='"org", or <source>:<crm id>', examples=["hubspot:2001"]
    )
    value: float = Field(ge=0, allow_inf_nan=False, examples=[20])


class TargetsOut(BaseModel):
    data: list[TargetIn]


class PutTargetsOut(BaseModel):
    stored: int = Field(description="targets inserted or replaced")


@router.get("/v1/targets", response_model=TargetsOut)
def get_targets(
    _: ReadAccess,
    engine: EngineDep,
    kpi: Annotated[str | None, Query(description="one KPI key")] = None,
    grain: Annotated[Grain | None, Query()] = None,
    scope: Annotated[Scope | None, Query()] = None,
    id: Annotated[str | None, Query(description="one scope id")] = None,
    from_: Annotated[
        BoundedDate | None, Query(alias="from", description="periods starting on or after")
    ] = None,
    to: Annotated[BoundedDate | None, Query(description="periods starting on or before")] = None,
) -> TargetsOut:
    """Targets, ordered by kpi, grain, period_start, scope, id."""
    targets = list_targets(
        engine, kpi=kpi, grain=grain, scope=scope, scope_id=id, start=from_, end=to
    )
    return TargetsOut(
        data=[
            TargetIn(
                kpi=t.kpi,
                grain=t.grain,
                period_start=t.period_start,
                scope=t.scope,
                id=t.scope_id,
                value=t.value,
            )
            for t in targets
        ]
    )


@router.put("/v1/targets", response_model=PutTargetsOut, responses=ADMIN_RESPONSES)
def put_targets_route(
    _: AdminAccess,
    engine: EngineDep,
    targets: Annotated[
        list[TargetIn],
        Body(
            max_length=MAX_TARGETS,
            examples=[
                [
                    {
                        "kpi": "meetings_set",
                        "grain": "month",
                        "period_start": "2026-11-01",
                        "scope": "rep",
                        "id": "hubspot:2001",
                        "value": 20,
                    }
                ]
            ],
        ),
    ],
) -> PutTargetsOut:
    """Insert or replace targets keyed on (kpi, grain, period_start, scope, id); all or none."""
    rows = [
        Target(
            t.kpi, t.grain, t.period_start, t.scope, "org" if t.scope == "org" else t.id, t.value
        )
        for t in targets
    ]
    return PutTargetsOut(stored=put_targets(engine, rows))


class SuggestionMonthOut(BaseModel):
    month: date
    value: float | None


class SuggestionOut(BaseModel):
    kpi: str
    as_of: date
    scope: Scope
    scope_id: str
    scope_name: str
    months: list[SuggestionMonthOut] = Field(description="the trailing three complete months")
    mean: float | None = Field(description="of the months with a value")
    factors: list[float]
    minimum: float | None
    achievement: float | None
    stretch: float | None


class SuggestionsOut(BaseModel):
    data: list[SuggestionOut]


@router.get("/v1/targets/suggest", response_model=SuggestionsOut)
def suggest(
    _: ReadAccess,
    engine: EngineDep,
    ctx: KpiContextDep,
    kpi: Annotated[str, Query(description="the KPI to suggest targets for", examples=["calls"])],
    scope: Annotated[Scope, Query()] = "org",
    id: Annotated[
        str | None, Query(description="one team or rep; without it, one suggestion per member")
    ] = None,
    as_of: Annotated[BoundedDate | None, Query(description="replay as of this day")] = None,
    minimum: Annotated[float, Query(gt=0, le=100, description="factor of the minimum")] = 0.90,
    achievement: Annotated[float, Query(gt=0, le=100, description="factor of the target")] = 1.00,
    stretch: Annotated[float, Query(gt=0, le=100, description="factor of the stretch")] = 1.10,
) -> SuggestionsOut:
    """Minimum, achievement and stretch targets from the trailing three complete months' mean."""
    suggestions = suggest_targets(
        engine,
        ctx,
        kpi=kpi,
        scope=scope,
        scope_id=id,
        as_of=as_of,
        factors=(minimum, achievement, stretch),
    )
    return SuggestionsOut(data=[SuggestionOut.model_validate(s.as_dict()) for s in suggestions])


class CostIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    month: BoundedMonth = Field(examples=["2026-11"], description="YYYY-MM")
    amount: Decimal = Field(
        ge=0, allow_inf_nan=False, max_digits=18, decimal_places=2, examples=[1_200_000]
    )


class CostOut(BaseModel):
    month: str = Field(examples=["2026-11"])
    amount: float


class CostsOut(BaseModel):
    data: list[CostOut]


@router.put("/v1/costs", response_model=CostOut, responses=ADMIN_RESPONSES)
def put_costs(_: AdminAccess, engine: EngineDep, cost: CostIn) -> CostOut:
    """Enter a month's acquisition costs for CAC (replaces the month's earlier entry)."""
    month = parse_month(cost.month)
    assert month is not None
    put_cost(engine, month, cost.amount)
    return CostOut(month=cost.month, amount=float(cost.amount))


@router.get("/v1/costs", response_model=CostsOut)
def get_costs(_: ReadAccess, engine: EngineDep) -> CostsOut:
    """Every month's entered costs."""
    return CostsOut(
        data=[CostOut(month=m.strftime("%Y-%m"), amount=float(a)) for m, a in list_costs(engine)]
    )
