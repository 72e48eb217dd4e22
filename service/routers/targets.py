"""Targets (docs/api.md, docs/targets.md): levels, status, revisions, allocation, skill levels, suggestions.

GET, PUT /v1/targets; GET /v1/targets/history; POST /v1/targets/allocate; PUT /v1/reps/{id};
GET /v1/targets/suggest; and the costs CAC divides (GET, PUT /v1/costs). Writes are admin
only and name the caller for the revisions by its audit name (service.auth), never the token.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from kpi import (
    Grain,
    KpiRequestError,
    Level,
    Method,
    Scope,
    SkillLevel,
    Status,
    Target,
    allocate,
    list_costs,
    list_revisions,
    list_targets,
    put_cost,
    put_targets,
    rep_levels,
    set_rep_level,
    suggest_targets,
)
from service.auth import AdminAccess, ReadAccess
from service.dates import BoundedDate, BoundedMonth
from service.deps import EngineDep, KpiContextDep
from service.errors import NotFound, Unprocessable
from service.limits import MAX_TARGETS
from service.routers.common import (
    ADMIN_RESPONSES,
    READ_RESPONSES,
    ErrorOut,
    parse_month,
)

router = APIRouter(tags=["targets"], responses=READ_RESPONSES)

ScopeIdField = Field(
    default="org", description='"org", or <source>:<crm id>', examples=["hubspot:2001"]
)
PeriodStartField = Field(
    description="the first day of the period (a Monday for weeks, the 1st for months)",
    examples=["2026-11-01"],
)


class TargetIn(BaseModel):
    """A target of one KPI, period, scope id and level (docs/api.md, docs/targets.md); value null deletes it."""

    model_config = ConfigDict(extra="forbid")

    kpi: str = Field(examples=["meetings_set"])
    grain: Grain = Field(examples=["month"])
    period_start: BoundedDate = PeriodStartField
    scope: Scope = Field(examples=["rep"])
    id: str = ScopeIdField
    level: Level = Field(
        default="achievement", description="最低ライン / 達成目標 / ストレッチ目標"
    )
    value: float | None = Field(
        ge=0, allow_inf_nan=False, examples=[20], description="null deletes the target"
    )
    status: Status | None = Field(
        default=None,
        description="draft (a proposal) or confirmed (agreed); omitted: the stored status, "
        "draft for a new target",
    )
    reason: str | None = Field(
        default=None,
        max_length=2000,
        description="why; required to change or delete a confirmed value",
    )


class TargetOut(BaseModel):
    kpi: str
    grain: Grain
    period_start: date
    scope: Scope
    id: str
    level: Level
    value: float
    status: Status
    reason: str | None = Field(description="the reason of the target's latest revision")


class TargetsOut(BaseModel):
    data: list[TargetOut]


class PutTargetsOut(BaseModel):
    stored: int = Field(description="targets inserted, replaced or deleted")


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
    level: Annotated[Level | None, Query(description="one level; default all three")] = None,
    status: Annotated[Status | None, Query(description="draft or confirmed; default both")] = None,
) -> TargetsOut:
    """Targets, ordered by kpi, grain, period_start, scope, id, then minimum, achievement, stretch."""
    targets = list_targets(
        engine,
        kpi=kpi,
        grain=grain,
        scope=scope,
        scope_id=id,
        start=from_,
        end=to,
        level=level,
        status=status,
        with_reason=True,
    )
    return TargetsOut(
        data=[
            TargetOut(
                kpi=t.kpi,
                grain=t.grain,
                period_start=t.period_start,
                scope=t.scope,
                id=t.scope_id,
                level=t.level,
                value=t.value,
                status=t.status or "draft",
                reason=t.reason,
            )
            for t in targets
        ]
    )


@router.put("/v1/targets", response_model=PutTargetsOut, responses=ADMIN_RESPONSES)
def put_targets_route(
    caller: AdminAccess,
    engine: EngineDep,
    ctx: KpiContextDep,
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
                        "level": "achievement",
                        "value": 20,
                        "status": "confirmed",
                        "reason": "agreed in the monthly review",
                    }
                ]
            ],
        ),
    ],
) -> PutTargetsOut:
    """Insert, replace or delete targets keyed on (kpi, grain, period_start, scope, id, level).

    All or none. A change of a confirmed value (or its deletion) needs a ``reason``;
    creating, changing or confirming a confirmed target records a revision.
    """
    rows = [
        Target(
            t.kpi,
            t.grain,
            t.period_start,
            t.scope,
            "org" if t.scope == "org" else t.id,
            t.value,
            level=t.level,
            status=t.status,
            reason=t.reason,
        )
        for t in targets
    ]
    return PutTargetsOut(stored=put_targets(engine, rows, ctx, who=caller.name))


# --- history -----------------------------------------------------------------------------------


class RevisionOut(BaseModel):
    kpi: str
    grain: str
    period_start: date
    scope: str
    id: str
    level: str
    old_value: float | None = Field(description="null: created")
    new_value: float | None = Field(description="null: deleted")
    old_status: str | None
    new_status: str | None
    reason: str | None
    who: str = Field(description="the caller's audit name (never the token)")
    at: datetime


class RevisionsOut(BaseModel):
    data: list[RevisionOut]


@router.get("/v1/targets/history", response_model=RevisionsOut)
def get_target_history(
    _: ReadAccess,
    engine: EngineDep,
    kpi: Annotated[str | None, Query(description="one KPI key")] = None,
    grain: Annotated[Grain | None, Query()] = None,
    period_start: Annotated[BoundedDate | None, Query(description="one period")] = None,
    scope: Annotated[Scope | None, Query()] = None,
    id: Annotated[str | None, Query(description="one scope id")] = None,
    level: Annotated[Level | None, Query(description="one level; default all three")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> RevisionsOut:
    """Revisions of targets, newest first: old and new value and status, reason, who, when."""
    revisions = list_revisions(
        engine,
        kpi=kpi,
        grain=grain,
        period_start=period_start,
        scope=scope,
        scope_id=id,
        level=level,
        limit=limit,
    )
    return RevisionsOut(data=[RevisionOut.model_validate(r.as_dict()) for r in revisions])


# --- allocation ------------------------------------------------------------------------------


class AllocateIn(BaseModel):
    """A team or org target to split over its inside-sales reps (docs/targets.md)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kpi": "meetings_set",
                    "grain": "month",
                    "period_start": "2026-12-01",
                    "scope": "team",
                    "id": "hubspot:6100001",
                    "value": 40,
                    "method": "skill",
                    "dry_run": True,
                }
            ]
        },
    )

    kpi: str = Field(examples=["meetings_set"])
    grain: Grain = Field(examples=["month"])
    period_start: date = PeriodStartField
    scope: Literal["org", "team"] = Field(examples=["team"])
    id: str = ScopeIdField
    level: Level = "achievement"
    value: float | None = Field(
        default=None, allow_inf_nan=False, description="default: the stored target at level"
    )
    method: Method = Field(
        default="equal", description="equal, history (trailing three months' share) or skill"
    )
    weights: dict[str, float] | None = Field(
        default=None,
        description="skill only: level → weight (default junior 0.7, mid 1.0, senior 1.2)",
        examples=[{"junior": 0.7, "mid": 1.0, "senior": 1.2}],
    )
    dry_run: bool = Field(default=False, description="only answer the split, write nothing")
    confirm: bool = Field(default=False, description="write the rep targets confirmed")
    reason: str | None = Field(
        default=None, max_length=2000, description="needed to change confirmed rep targets"
    )


class RepShareOut(BaseModel):
    id: str = Field(examples=["hubspot:2001"])
    name: str
    level: SkillLevel
    weight: float | None = Field(
        description="equal 1, history the trailing actual, skill the level's"
    )
    share: float | None = Field(description="weight ÷ Σ weights; null when the value is copied")
    value: float


class AllocationOut(BaseModel):
    kpi: str
    grain: str
    period_start: date
    scope: str
    id: str
    level: Level
    value: float = Field(description="the parent's value split")
    value_source: Literal["stored", "given"]
    method: Method
    mode: Literal["split", "copied"] = Field(description="counts and sums split; rates copied")
    fallback: Literal["equal"] | None = Field(description="history without any: split equally")
    weights: dict[str, float] | None
    trailing_months: list[date] | None
    reps: list[RepShareOut]
    dry_run: bool
    status: Status = Field(description="of the rep targets written (or that would be)")
    written: int = Field(description="rep targets written (0 on a dry run)")


@router.post("/v1/targets/allocate", response_model=AllocationOut, responses=ADMIN_RESPONSES)
def post_allocate(
    caller: AdminAccess,
    engine: EngineDep,
    ctx: KpiContextDep,
    body: Annotated[AllocateIn, Body()],
    as_of: Annotated[
        date | None, Query(description="the day skill levels and history are read as of")
    ] = None,
) -> AllocationOut:
    """Split a team or org target into rep targets that sum exactly to it (largest remainder).

    Written as drafts (confirmed with ``confirm``), all or nothing, unless ``dry_run``.
    """
    try:
        result = allocate(
            engine,
            ctx,
            kpi=body.kpi,
            grain=body.grain,
            period_start=body.period_start,
            scope=body.scope,
            scope_id=body.id,
            level=body.level,
            value=body.value,
            method=body.method,
            weights=body.weights,
            dry_run=body.dry_run,
            confirm=body.confirm,
            reason=body.reason,
            who=caller.name,
            as_of=as_of,
        )
    except KpiRequestError as exc:
        # A rep target's refusal (a confirmed one changing without a reason) is indexed by
        # rep; the field to fix is the allocation body's own.
        raise Unprocessable("body", exc.param, message=exc.message) from None
    return AllocationOut.model_validate(result.as_dict())


# --- skill levels ------------------------------------------------------------------------------


class RepLevelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: SkillLevel | None = Field(
        description="junior, mid or senior; null goes back to the level from tenure"
    )


class RepOut(BaseModel):
    id: str
    name: str
    email: str | None
    team_id: str | None
    active: bool
    level: SkillLevel = Field(description="the override when set, else from tenure")
    tenure_level: SkillLevel = Field(description="junior < 6 months, mid 6–12, senior 12+")
    override: SkillLevel | None
    since: date | None = Field(description="tenure start: first activity or CRM created date")


REP_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ADMIN_RESPONSES,
    404: {"model": ErrorOut, "description": "no rep with that id"},
}


@router.put("/v1/reps/{id}", response_model=RepOut, responses=REP_RESPONSES, tags=["reps"])
def put_rep(
    _: AdminAccess,
    engine: EngineDep,
    ctx: KpiContextDep,
    id: Annotated[str, Path(description="<source>:<crm id>", examples=["hubspot:2001"])],
    body: RepLevelIn,
) -> RepOut:
    """Override a rep's skill level (初級 / 中級 / 上級), or clear it with null; 404 unknown rep."""
    try:
        found = rep_levels(engine, ctx, scope="rep", scope_id=id)
    except KpiRequestError as exc:
        raise Unprocessable("path", "id", message=exc.message) from None
    if not found:
        raise NotFound(f"no rep with id {id!r}")
    set_rep_level(engine, id, body.level)
    (rep,) = rep_levels(engine, ctx, scope="rep", scope_id=id)
    return RepOut.model_validate(rep.as_dict())


# --- suggestion --------------------------------------------------------------------------------


class SuggestionMonthOut(BaseModel):
    month: date
    value: float | None
    numerator: float | None
    denominator: float | None
    business_days: int
    included: bool = Field(description="false: before the scope's first activity")


class SuggestionOut(BaseModel):
    kpi: str
    as_of: date
    scope: Scope
    scope_id: str
    scope_name: str
    grain: Grain
    period_start: date = Field(description="the target period")
    business_days: int = Field(description="of the target period")
    months: list[SuggestionMonthOut] = Field(description="the trailing three complete months")
    first_activity: date | None
    method: Literal["pace", "pooled", "mean"] = Field(
        description="pace: counts and sums per business day × the period's business days; "
        "pooled: rates Σ numerator ÷ Σ denominator; mean: the months' mean (median KPIs)"
    )
    per_business_day: float | None
    base: float | None = Field(description="the suggestion at factor 1.0, before rounding")
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
    grain: Annotated[Grain, Query(description="the target period's grain")] = "month",
    period_start: Annotated[
        BoundedDate | None, Query(description="the target period's first day; default as_of's")
    ] = None,
    minimum: Annotated[float, Query(gt=0, le=100, description="factor of the minimum")] = 0.90,
    achievement: Annotated[float, Query(gt=0, le=100, description="factor of the target")] = 1.00,
    stretch: Annotated[float, Query(gt=0, le=100, description="factor of the stretch")] = 1.10,
) -> SuggestionsOut:
    """Minimum, achievement and stretch targets from the trailing three complete months' pace."""
    suggestions = suggest_targets(
        engine,
        ctx,
        kpi=kpi,
        scope=scope,
        scope_id=id,
        as_of=as_of,
        factors=(minimum, achievement, stretch),
        grain=grain,
        period_start=period_start,
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
