"""What the routers share: 422s that name the parameter, month parameters, freshness meta."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, NoReturn

from fastapi import Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine, func, select

from kpi import KpiContext, KpiRequestError
from models import SyncRun

MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"


class ErrorOut(BaseModel):
    detail: str


# Documented on every /v1 route (the router's default) and on admin routes.
READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no valid bearer token"}
}
ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "a read token on an admin route"}
}


def unprocessable(*loc: str | int, message: str) -> NoReturn:
    """Raise a 422 shaped like FastAPI's own validation errors, naming the parameter.

    ``loc`` is where the bad value is: ("query", "from") or ("body", 3, "kpi").
    """
    name = ".".join(str(part) for part in loc[1:])
    raise HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"loc": list(loc), "msg": f"{name}: {message}", "type": "value_error"}],
    )


def kpi_error(exc: KpiRequestError, where: str = "query") -> NoReturn:
    """The engine's refusal as a 422 at ``where`` (query or body)."""
    unprocessable(where, exc.param, message=exc.message)


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 body, with each message prefixed by the parameter it is about."""
    assert isinstance(exc, RequestValidationError)
    errors: list[dict[str, Any]] = []
    for error in exc.errors():
        loc = [part for part in error.get("loc", ()) if isinstance(part, str | int)]
        named = [str(part) for part in loc[1:]] or [str(part) for part in loc]
        errors.append(
            {
                "loc": loc,
                "msg": f"{'.'.join(named)}: {error.get('msg', 'invalid')}",
                "type": error.get("type", "value_error"),
            }
        )
    return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def parse_month(value: str | None, param: str = "month") -> date | None:
    """``YYYY-MM`` as the month's first day; a 422 naming ``param`` otherwise."""
    if value is None:
        return None
    if not re.fullmatch(MONTH_PATTERN, value):
        unprocessable("query", param, message=f"{value!r} is not a month (YYYY-MM)")
    year, month = value.split("-")
    return date(int(year), int(month), 1)


async def get_kpi_context(request: Request) -> KpiContext:
    ctx = request.app.state.kpi
    assert isinstance(ctx, KpiContext)
    return ctx


KpiContextDep = Annotated[KpiContext, Depends(get_kpi_context)]


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
