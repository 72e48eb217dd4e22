"""Sync history (GET /v1/sync/runs) and freshness (part of /healthz)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import Engine, func, select

from models import SyncRun
from service.auth import ReadAccess
from service.deps import EngineDep

router = APIRouter()


class SyncRunOut(BaseModel):
    id: int
    source: str
    trigger: str
    full: bool
    started_at: datetime
    finished_at: datetime | None
    status: str
    records: dict[str, int]
    quarantined: int
    api_calls: int
    error: str | None


class SyncRunsOut(BaseModel):
    data: list[SyncRunOut]


def last_successful_sync(engine: Engine) -> dict[str, datetime]:
    """When each source last finished a sync with status ok."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(SyncRun.source, func.max(SyncRun.finished_at))
            .where(SyncRun.status == "ok")
            .group_by(SyncRun.source)
        ).all()
    return {source: at for source, at in rows if at is not None}


@router.get("/v1/sync/runs", response_model=SyncRunsOut, tags=["sync"])
def list_sync_runs(
    _: ReadAccess,
    engine: EngineDep,
    source: str | None = Query(default=None, description="hubspot or salesforce"),
    limit: int = Query(default=50, ge=1, le=1000),
) -> SyncRunsOut:
    """Recent sync runs, newest first, with records per stream and API calls used."""
    query = select(SyncRun).order_by(SyncRun.id.desc()).limit(limit)
    if source is not None:
        query = query.where(SyncRun.source == source)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return SyncRunsOut(data=[SyncRunOut.model_validate(dict(row)) for row in rows])
