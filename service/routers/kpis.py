"""GET /v1/kpis (rows as JSON or CSV) and GET /v1/kpis/catalog (SPEC §5, §7, §10)."""

from __future__ import annotations

import calendar
import csv
import gc
import io
import time
from collections.abc import Hashable, Sequence
from datetime import date, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from kpi import PHASE_GAPS, By, Grain, KpiRequestError, KpiRow, Scope, catalog, compute
from service.auth import ReadAccess
from service.cache import DataVersionClock, ResponseCache, data_version
from service.deps import EngineDep
from service.routers.common import READ_RESPONSES, Freshness, KpiContextDep, freshness, kpi_error

router = APIRouter(tags=["kpis"], responses=READ_RESPONSES)

Tier = Literal["behavioral", "tactical", "strategic", "efficiency"]
Phase = Literal["launch", "growth", "mature"]

# CSV columns: the JSON row's keys, with the band flattened the way pandas.json_normalize names it.
CSV_COLUMNS = (
    "kpi",
    "tier",
    "grain",
    "period_start",
    "scope",
    "scope_id",
    "scope_name",
    "by",
    "by_value",
    "value",
    "numerator",
    "denominator",
    "target",
    "achievement",
    "band.low",
    "band.high",
    "status",
    "targets.minimum",
    "targets.achievement",
    "targets.stretch",
)


class BandOut(BaseModel):
    low: float | None
    high: float | None


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


class KpisMeta(Freshness):
    grain: Grain
    from_: date = Field(alias="from")
    to: date
    scope: Scope
    id: str | None
    by: By | None
    kpis: list[str]
    rows: int


class KpisOut(BaseModel):
    data: list[KpiRowOut]
    meta: KpisMeta


def _trailing_month_start(end: date) -> date:
    """The first day of the month that ends on ``end`` (28 Nov → 29 Oct)."""
    month_before = (end.replace(day=1) - timedelta(days=1)).replace(day=1)
    last = calendar.monthrange(month_before.year, month_before.month)[1]
    return month_before.replace(day=min(end.day, last)) + timedelta(days=1)


def _keys(kpi: str | None) -> list[str] | None:
    keys = [k.strip() for k in (kpi or "").split(",") if k.strip()]
    return keys or None


def _csv(rows: Sequence[KpiRow]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(
        (
            *row[:4],
            *row[4:14],
            row.band.low,
            row.band.high,
            row.status,
            *row.targets,
        )
        for row in rows
    )
    return out.getvalue().encode("utf-8")


def _json_rows(rows: Sequence[KpiRow]) -> list[dict[str, Any]]:
    """The rows as dicts for orjson, with the cyclic GC paused (they hold no cycles, and a
    collection pass over 200,000 fresh dicts would cost more than building them)."""
    fields = KpiRow._fields
    collecting = gc.isenabled()
    gc.disable()
    try:
        out = []
        for row in rows:
            item: dict[str, Any] = dict(zip(fields, row, strict=True))
            item["band"] = {"low": row.band.low, "high": row.band.high}
            item["targets"] = row.targets._asdict()
            out.append(item)
        return out
    finally:
        if collecting:
            gc.enable()


@router.get(
    "/v1/kpis",
    response_model=KpisOut,
    responses={
        200: {
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "kpi,tier,grain,period_start,…\r\ncalls,behavioral,month,2026-10-01,…",
                }
            },
            "description": "JSON rows, or CSV with format=csv (a header row, UTF-8)",
        }
    },
)
async def get_kpis(
    _: ReadAccess,
    request: Request,
    engine: EngineDep,
    ctx: KpiContextDep,
    kpi: Annotated[
        str | None,
        Query(
            description="KPI keys, comma-separated; default all", examples=["calls,connect_rate"]
        ),
    ] = None,
    grain: Annotated[Grain, Query(description="day, week (ISO, Monday first) or month")] = "month",
    from_: Annotated[
        date | None,
        Query(alias="from", description="first day (inclusive); default: the month ending on `to`"),
    ] = None,
    to: Annotated[date | None, Query(description="last day (inclusive); default today")] = None,
    scope: Annotated[Scope, Query(description="org, team or rep")] = "org",
    id: Annotated[
        str | None,
        Query(description="one team or rep: <source>:<crm id>", examples=["hubspot:2001"]),
    ] = None,
    by: Annotated[By | None, Query(description="breakdown within each scope id")] = None,
    tier: Annotated[Tier | None, Query(description="only this tier's KPIs")] = None,
    format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
) -> Response:
    """KPI rows: one per KPI × period × scope id × breakdown value, dense (SPEC §7, §10).

    Rows are ordered by kpi, scope_id, period_start, by_value. A request that
    would return more than 200,000 rows, or a day-grain range of more than three
    years, is a 422 asking to narrow it. Answers are cached until the next write
    to the store (a synced page, a target, a cost) and sent gzipped when the
    client accepts it.
    """
    end = to or ctx.today()
    start = from_ or _trailing_month_start(end)
    keys = _keys(kpi)

    cache: ResponseCache = request.app.state.kpi_cache
    clock: DataVersionClock = request.app.state.data_version
    request_key = (tuple(keys or ()), grain, start, end, scope, id, by, tier, format)

    def build() -> tuple[bytes, Hashable | None]:
        # The answer is labelled with the version it was computed from: read before and
        # after in one snapshot (PostgreSQL: REPEATABLE READ); if a page landed in
        # between (SQLite reads statement by statement), the answer is not cached.
        began = time.monotonic()
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            before = data_version(conn)
            try:
                rows = compute(
                    conn,
                    ctx,
                    kpis=keys,
                    grain=grain,
                    start=start,
                    end=end,
                    scope=scope,
                    scope_id=id,
                    by=by,
                    tier=tier,
                )
            except KpiRequestError as exc:
                kpi_error(exc)
            after = data_version(conn)
        true_key: Hashable | None = None
        if before == after:
            clock.observe(after, began)
            true_key = (request_key, after)
        if format == "csv":
            return _csv(rows), true_key
        meta = {
            **freshness(engine, ctx).model_dump(mode="json"),
            "grain": grain,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "scope": scope,
            "id": id,
            "by": by,
            "kpis": sorted({row.kpi for row in rows}),
            "rows": len(rows),
        }
        return orjson.dumps({"data": _json_rows(rows), "meta": meta}), true_key

    # A cached answer is served from the event loop; computing one runs in a worker thread.
    version = clock.fresh() or await run_in_threadpool(clock.read)
    key = (request_key, version)
    entry = cache.lookup(key)
    if entry is None:
        entry = await run_in_threadpool(cache.get_or_build, key, build, flight=request_key)
    headers = {"Vary": "Accept-Encoding"}
    if format == "csv":
        media_type = "text/csv; charset=utf-8"
        headers["Content-Disposition"] = 'inline; filename="kpis.csv"'
    else:
        media_type = "application/json"
    if entry.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(entry.gzipped, media_type=media_type, headers=headers)
    return Response(entry.body, media_type=media_type, headers=headers)


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
