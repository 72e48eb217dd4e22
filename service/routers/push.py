"""Write-back of targets (docs/api.md, docs/writeback.md): POST /v1/targets/push, GET /v1/targets/pushes.

Errors of a push the CRM stopped: **409** when the CRM is not set up for it (a destination
field or property missing and not creatable, a scope or field permission missing, another
push running, a bad mapping) and **502** when the CRM failed (5xx or 429 that outlived the
retries, a refused token, the API quota spent). The body is ``{"detail": {"message",
"source", "push"}}``, ``push`` being the audited push as far as it got: rows already written
are there as written (service.errors.PushStopped).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from kpi import Level
from service.auth import AdminAccess, ReadAccess
from service.deps import EngineDep, KpiContextDep, SettingsDep
from service.routers.common import ADMIN_RESPONSES, READ_RESPONSES
from service.writeback import push as writeback
from service.writeback.push import report_out
from service.writeback.schema import PushesOut, PushOut, stored_out

router = APIRouter(tags=["targets"], responses=READ_RESPONSES)


class PushErrorDetail(BaseModel):
    message: str
    source: str | None = Field(description="the CRM whose push stopped; null: none started")
    push: PushOut | None = Field(
        default=None, description="the audited push as far as it got, rows written included"
    )
    completed: list[PushOut] | None = Field(
        default=None, description="pushes to other CRMs that finished before it"
    )


class PushErrorOut(BaseModel):
    detail: PushErrorDetail


PUSH_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ADMIN_RESPONSES,
    409: {
        "model": PushErrorOut,
        "description": "the CRM is not set up for the push (a field, scope or permission "
        "missing), no CRM is configured, another push is running, or the mapping is wrong",
    },
    502: {
        "model": PushErrorOut,
        "description": "the CRM failed mid-push (5xx or 429 after retries, a refused token, the "
        "API quota spent); the rows already written are in detail.push",
    },
}


@router.post("/v1/targets/push", response_model=PushesOut, responses=PUSH_RESPONSES)
def push_targets(
    caller: AdminAccess,
    settings: SettingsDep,
    engine: EngineDep,
    ctx: KpiContextDep,
    dry_run: Annotated[
        bool,
        Query(description="return the plan of field changes only (the default); false writes"),
    ] = True,
    level: Annotated[
        Level, Query(description="the target level to push (drafts and confirmed alike)")
    ] = "achievement",
    force: Annotated[bool, Query(description="overwrite fields changed in the CRM")] = False,
    source: Annotated[
        Literal["hubspot", "salesforce", "all"], Query(description="which configured CRM")
    ] = "all",
) -> PushesOut:
    """Plan the month's rep targets into the mapped CRM fields, or write them (dry_run=false).

    A dry run by default; audited either way. Pushes ``level``'s targets, drafts included.
    """
    reports = writeback.push_targets(
        engine,
        settings,
        ctx,
        which=source,
        requested_by=caller.name,
        trigger="api",
        dry_run=dry_run,
        force=force,
        level=level,
    )
    return PushesOut(data=[report_out(r) for r in reports])


@router.get("/v1/targets/pushes", response_model=PushesOut)
def list_target_pushes(
    _: ReadAccess,
    engine: EngineDep,
    source: Annotated[
        Literal["hubspot", "salesforce"] | None, Query(description="one CRM's pushes only")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    rows: Annotated[bool, Query(description="include each push's rows")] = False,
) -> PushesOut:
    """Audited pushes and dry runs, newest first: who, when, counts, API calls, rows."""
    found = writeback.list_pushes(engine, source=source, limit=limit, with_rows=rows)
    return PushesOut(
        data=[stored_out(push, push_rows if rows else None) for push, push_rows in found]
    )
