"""GET /v1/meta: what a dashboard polls to know when the numbers moved and how fresh they are."""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from service.auth import ReadAccess
from service.deps import DataVersionDep, KpiContextDep, RunSummariesDep
from service.meta import FinishedStatus, freshness_seconds, running, version_digest
from service.routers.common import READ_RESPONSES

router = APIRouter(tags=["meta"], responses=READ_RESPONSES)


class SourceSyncOut(BaseModel):
    source: str = Field(examples=["hubspot"])
    finished_at: datetime | None = Field(
        description="when its last finished run ended (null before its first)"
    )
    status: FinishedStatus | None = Field(description="how that run ended: ok, partial or failed")
    last_success_at: datetime | None = Field(
        description="when its last run that ended ok or partial ended"
    )
    running: bool = Field(description="a run of this source is in progress")


class MetaOut(BaseModel):
    data_version: str = Field(
        description="opaque; changes whenever a synced page, a run, a target, a cost, a "
        "forecast snapshot or a review note or action is stored, and only then",
        examples=["5d41402abc4b2a76b971"],
    )
    syncs: list[SourceSyncOut] = Field(description="per configured or synced source, by name")
    freshness_seconds: int | None = Field(
        description="seconds since the newest run that ended ok or partial; null before any"
    )
    today: date = Field(description="today in the business time zone (ISKPI_NOW fixes it)")


@router.get("/v1/meta", response_model=MetaOut)
async def get_meta(
    _: ReadAccess, clock: DataVersionDep, summaries: RunSummariesDep, ctx: KpiContextDep
) -> MetaOut:
    """The data version, each source's last sync and the freshness: poll it, refresh on change."""
    version = clock.fresh()
    if version is None:
        version = await run_in_threadpool(clock.read)
    runs = summaries.known(version)
    if runs is None:
        runs = await run_in_threadpool(summaries.read, version)
    now = summaries.now()
    return MetaOut(
        data_version=version_digest(version),
        syncs=[
            SourceSyncOut(
                source=run.source,
                finished_at=run.finished_at,
                status=run.status,
                last_success_at=run.last_success_at,
                running=running(run, now),
            )
            for run in runs
        ],
        freshness_seconds=freshness_seconds(runs, now),
        today=ctx.today(),
    )
