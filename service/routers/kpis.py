"""GET /v1/kpis (rows as JSON, CSV or XLSX) and GET /v1/kpis/catalog."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from kpi import PHASE_GAPS, By, Grain, Scope, catalog
from service.auth import ReadAccess
from service.dates import BoundedDate
from service.deps import DataVersionDep, EngineDep, KpiBuildsDep, KpiCacheDep, KpiContextDep
from service.kpi_answers import XLSX_MEDIA_TYPE, Format, KpiQuery, answer_kpis
from service.routers.common import READ_RESPONSES, Freshness

router = APIRouter(tags=["kpis"], responses=READ_RESPONSES)

Tier = Literal["behavioral", "tactical", "strategic", "efficiency"]
Phase = Literal["launch", "growth", "mature"]


class BandOut(BaseModel):
    low: float | None
    high: float | None


class TargetsOut(BaseModel):
    minimum: float | None = Field(description="最低ライン: the least acceptable")
    achievement: float | None = Field(description="the target (`target` repeats it)")
    stretch: float | None = Field(description="the stretch goal")


class KpiRowOut(BaseModel):
    """One KPI value for one period, scope id and breakdown value."""

    kpi: str = Field(examples=["connect_rate"])
    tier: str = Field(examples=["behavioral"])
    grain: Grain
    period_start: date = Field(description="first day of the period, business time zone")
    scope: Scope
    scope_id: str = Field(examples=["hubspot:2001"], description='"org", or <source>:<crm id>')
    scope_name: str
    by: By | None
    by_value: str | int | None = Field(
        description="the breakdown value: weekday ISO 1–7 and hour 0–23 are integers"
    )
    value: float | None = Field(description="rates are fractions; null when the denominator is 0")
    numerator: float | None
    denominator: float | None
    target: float | None
    achievement: float | None = Field(description="value / target")
    band: BandOut = Field(description="the seed's benchmark range, scaled to the row")
    status: Literal["below", "within", "above"] | None
    targets: TargetsOut = Field(description="the row's targets at each level")
    pace_target: float | None = Field(
        default=None,
        description="running period, count or sum: target × business days elapsed ÷ business days in the period",
    )
    pace_achievement: float | None = Field(
        default=None, description="running period, count or sum: value / pace_target"
    )


class KpisMeta(Freshness):
    grain: Grain
    from_: date = Field(alias="from")
    to: date
    scope: Scope
    id: str | None
    by: By | None
    as_of: date | None = Field(description="the replay's day, when as_of was given")
    kpis: list[str]
    rows: int


class KpisOut(BaseModel):
    data: list[KpiRowOut]
    meta: KpisMeta


@router.get(
    "/v1/kpis",
    response_model=KpisOut,
    responses={
        200: {
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "kpi,tier,grain,period_start,…\r\ncalls,behavioral,month,2026-10-01,…",
                },
                XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
            },
            "description": (
                "JSON rows; with format=csv the same rows as CSV (UTF-8 with a byte-order mark, "
                "a header row, band and targets flattened as band.low, targets.stretch, …; a text "
                "cell starting with = + - @ tab or CR that is not a number gets a leading '); "
                "with format=xlsx an Excel workbook of the same rows and columns"
            ),
        }
    },
)
async def get_kpis(
    _: ReadAccess,
    request: Request,
    engine: EngineDep,
    ctx: KpiContextDep,
    cache: KpiCacheDep,
    clock: DataVersionDep,
    builds: KpiBuildsDep,
    kpi: Annotated[
        str | None,
        Query(
            description="KPI keys, comma-separated; default all", examples=["calls,connect_rate"]
        ),
    ] = None,
    grain: Annotated[
        Grain,
        Query(
            description="day, week (ISO, Monday first), month, quarter or fiscal_year "
            "(both from ISKPI_FISCAL_YEAR_START_MONTH); a period is named by its first day"
        ),
    ] = "month",
    from_: Annotated[
        BoundedDate | None,
        Query(alias="from", description="first day (inclusive); default: the month ending on `to`"),
    ] = None,
    to: Annotated[
        BoundedDate | None, Query(description="last day (inclusive); default as_of, else today")
    ] = None,
    scope: Annotated[Scope, Query(description="org, team or rep")] = "org",
    id: Annotated[
        str | None,
        Query(description="one team or rep: <source>:<crm id>", examples=["hubspot:2001"]),
    ] = None,
    by: Annotated[By | None, Query(description="breakdown within each scope id")] = None,
    tier: Annotated[Tier | None, Query(description="only this tier's KPIs")] = None,
    format: Annotated[Format, Query(description="json, csv or xlsx")] = "json",
    as_of: Annotated[
        BoundedDate | None,
        Query(
            description="replay as of this day: every record is cut at the end of it "
            "(business time zone), so later records are not counted"
        ),
    ] = None,
) -> Response:
    """KPI rows: one per KPI × period × scope id × breakdown value, dense.

    Rows are ordered by kpi, scope_id, period_start, by_value. A request that
    would return more than 200,000 rows, or a day-grain range of more than three
    years, is a 422 asking to narrow it. `as_of` replays the answer as of that
    day. Answers are cached until the next write to the store (a synced page, a
    target, a cost); JSON and CSV are sent gzipped when the client accepts it.
    """
    return await answer_kpis(
        engine,
        ctx,
        cache,
        clock,
        KpiQuery(kpi, grain, from_, to, scope, id, by, tier, format, as_of),
        gzip_ok="gzip" in request.headers.get("accept-encoding", ""),
        builds=builds,
    )


class CatalogBand(BaseModel):
    low: float | None
    high: float | None
    per: Literal["rep_business_day"] | None = Field(
        description="rep_business_day: the band is per rep per business day, scaled in rows"
    )


class CatalogEntry(BaseModel):
    key: str = Field(examples=["connect_rate"])
    tier: Tier
    names: dict[str, str] = Field(examples=[{"en": "Connect rate", "ja": "接続率"}])
    formula: str
    unit: str = Field(examples=["ratio"])
    numerator: str
    denominator: str | None
    band: CatalogBand | None
    phase_priority: dict[str, int] = Field(
        description="the seed's stars (3, 2, 1) per phase where the KPI is a focus",
        examples=[{"launch": 3}],
    )
    phase_notes: dict[str, str]
    grains: list[str]


class CatalogGapOut(BaseModel):
    phase: Phase
    stars: int
    name_ja: str
    reason: str


class CatalogMeta(BaseModel):
    phase: Phase | None
    tier: Tier | None
    gaps: list[CatalogGapOut] = Field(
        description="the seed's phase items that no KPI in the catalog measures, and why"
    )


class CatalogOut(BaseModel):
    data: list[CatalogEntry]
    meta: CatalogMeta


@router.get("/v1/kpis/catalog", response_model=CatalogOut)
def get_catalog(
    _: ReadAccess,
    phase: Annotated[
        Phase | None,
        Query(description="only this phase's focus KPIs, most stars first"),
    ] = None,
    tier: Annotated[Tier | None, Query(description="only this tier")] = None,
) -> CatalogOut:
    """The KPI catalog: key, tier, names (en, ja), formula, unit, band, phase priority."""
    gaps = [g for g in PHASE_GAPS if phase is None or g.phase == phase]
    return CatalogOut(
        data=[
            CatalogEntry.model_validate(spec.as_dict()) for spec in catalog(phase=phase, tier=tier)
        ],
        meta=CatalogMeta(
            phase=phase,
            tier=tier,
            gaps=[CatalogGapOut.model_validate(g.__dict__) for g in gaps],
        ),
    )
