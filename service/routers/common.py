"""What the routers share: documented error answers, month parameters, freshness meta."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Engine, func, select

from kpi import KpiContext
from models import SyncRun
from service.dates import FIRST_DAY, LAST_DAY, month_start
from service.dates import MONTH_PATTERN as MONTH_PATTERN
from service.errors import Unprocessable


class ErrorOut(BaseModel):
    detail: str


# Documented on every /v1 route (the router's default) and on admin routes.
READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no valid bearer token"}
}
ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "a read token on an admin route"}
}


def parse_month(value: str | None, param: str = "month") -> date | None:
    """``YYYY-MM`` as the month's first day; a 422 naming ``param`` otherwise."""
    if value is None:
        return None
    try:
        first = month_start(value)
    except ValueError:
        raise Unprocessable("query", param, message=f"{value!r} is not a month (YYYY-MM)") from None
    if not FIRST_DAY <= first <= LAST_DAY:
        raise Unprocessable("query", param, message=f"{value} is outside the months served")
    return first


class Freshness(BaseModel):
    """How fresh the numbers are."""

    timezone: str = Field(description="the business time zone periods are cut in")
    last_successful_sync: dict[str, datetime] = Field(
        description="per source, when its last sync finished with status ok",
        examples=[{"hubspot": "2026-11-27T02:04:11Z"}],
    )


def last_successful_sync(engine: Engine) -> dict[str, datetime]:
    """When each source last finished a sync with status ok."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(SyncRun.source, func.max(SyncRun.finished_at))
            .where(SyncRun.status == "ok")
            .group_by(SyncRun.source)
        ).all()
    return {source: at for source, at in rows if at is not None}


def freshness(engine: Engine, ctx: KpiContext) -> Freshness:
    return Freshness(timezone=ctx.timezone, last_successful_sync=last_successful_sync(engine))
