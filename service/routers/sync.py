"""Sync history (GET /v1/sync/runs) and a sync on demand (POST /v1/sync)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import Engine, select

from connectors.base import SourceConnector
from kpi import KpiContext
from models import SyncRun
from service.alerts.dispatch import AlertConfig, after_sync_pass, alert_config
from service.auth import AdminAccess, ReadAccess
from service.deps import EngineDep, KpiContextDep, SettingsDep
from service.errors import Conflict, SyncLocked, Unprocessable
from service.routers.common import ADMIN_RESPONSES, READ_RESPONSES, ErrorOut
from service.sync.run import SyncReport, run_sync

log = logging.getLogger(__name__)

router = APIRouter(tags=["sync"], responses=READ_RESPONSES)


class SyncRunOut(BaseModel):
    id: int
    source: str
    trigger: str = Field(
        description="what started the run: nightly or intraday (the schedules of `iskpi serve`), api, cli or demo"
    )
    full: bool
    started_at: datetime
    finished_at: datetime | None
    status: str = Field(description="running, ok, partial or failed")
    records: dict[str, int] = Field(description="records stored per stream")
    quarantined: int
    api_calls: int
    error: str | None


class SyncRunsOut(BaseModel):
    data: list[SyncRunOut]


@router.get("/v1/sync/runs", response_model=SyncRunsOut)
def list_sync_runs(
    _: ReadAccess,
    engine: EngineDep,
    source: Annotated[
        Literal["hubspot", "salesforce"] | None, Query(description="one source's runs")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="newest first, at most this many")] = 50,
) -> SyncRunsOut:
    """Recent sync runs, newest first, with records per stream and API calls used."""
    query = select(SyncRun).order_by(SyncRun.id.desc()).limit(limit)
    if source is not None:
        query = query.where(SyncRun.source == source)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return SyncRunsOut(data=[SyncRunOut.model_validate(dict(row)) for row in rows])


class SyncReportOut(BaseModel):
    run_id: int
    source: str
    status: str = Field(description="ok, partial or failed")
    records: dict[str, int]
    quarantined: int
    api_calls: int
    seconds: float
    error: str | None


class SyncStarted(BaseModel):
    status: Literal["started", "finished"]
    sources: list[str]
    reports: list[SyncReportOut] = Field(
        default_factory=list, description="with wait=true: how each source's run went"
    )


# One on-demand sync per process at a time; other processes are kept out by run_sync's lock.
_running = threading.Lock()


def _sync(
    engine: Engine,
    connectors: list[SourceConnector],
    full: bool,
    ctx: KpiContext,
    alerts: AlertConfig | None,
) -> list[SyncReport]:
    reports: list[SyncReport] = []
    try:
        for connector in connectors:
            try:
                reports.append(run_sync(engine, connector, trigger="api", full=full, kpi=ctx))
            except SyncLocked as exc:
                log.info("API sync of %s skipped: %s", connector.source, exc)
    finally:
        _running.release()
    after_sync_pass(engine, ctx, alerts, reports)
    return reports


@router.post(
    "/v1/sync",
    response_model=SyncStarted,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **ADMIN_RESPONSES,
        200: {"model": SyncStarted, "description": "with wait=true: the finished runs"},
        409: {"model": ErrorOut, "description": "a sync started through the API is still running"},
    },
)
def trigger_sync(
    _: AdminAccess,
    request: Request,
    response: Response,
    engine: EngineDep,
    ctx: KpiContextDep,
    settings: SettingsDep,
    source: Annotated[
        Literal["hubspot", "salesforce", "all"], Query(description="which configured CRM")
    ] = "all",
    full: Annotated[bool, Query(description="ignore the saved cursors")] = False,
    wait: Annotated[bool, Query(description="answer when the sync has finished")] = False,
) -> SyncStarted:
    """Sync now: in the background (202), or with wait=true when it has finished (200)."""
    factory: Callable[[], list[SourceConnector]] | None = request.app.state.connectors
    connectors = [c for c in (factory() if factory else []) if source in ("all", c.source)]
    if not connectors:
        raise Unprocessable("query", "source", message=f"no configured CRM to sync for {source!r}")
    if not _running.acquire(blocking=False):
        raise Conflict("a sync is already running")
    sources = [c.source for c in connectors]
    alerts = alert_config(settings)
    if wait:
        reports = _sync(engine, connectors, full, ctx, alerts)
        response.status_code = status.HTTP_200_OK
        return SyncStarted(
            status="finished",
            sources=sources,
            reports=[SyncReportOut.model_validate(r.__dict__) for r in reports],
        )
    threading.Thread(
        target=_sync, args=(engine, connectors, full, ctx, alerts), name="api-sync", daemon=True
    ).start()
    return SyncStarted(status="started", sources=sources)
