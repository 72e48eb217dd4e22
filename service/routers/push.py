"""Write-back of targets (SPEC §7, §9): POST /v1/targets/push, GET /v1/targets/pushes.

Errors of a push the CRM stopped: **409** when the CRM is not set up for it (a destination
field or property missing and not creatable, a scope or field permission missing, another
push running, a bad mapping) and **502** when the CRM failed (5xx or 429 that outlived the
retries, a refused token, the API quota spent). The body is ``{"detail": {"message",
"source", "push"}}``, ``push`` being the audited push as far as it got: rows already written
are there as written.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from connectors.errors import DestinationMissing, PermissionDenied
from connectors.mapping import MappingError
from models import WritebackPush, WritebackPushRow
from service.auth import AdminAccess, ReadAccess
from service.deps import EngineDep, SettingsDep
from service.routers.common import ADMIN_RESPONSES, READ_RESPONSES, KpiContextDep
from service.sources import SourceNotConfigured
from service.writeback import (
    PlanRow,
    PushFailed,
    PushLocked,
    PushReport,
    build_writers,
    list_pushes,
    run_push,
)

router = APIRouter(tags=["targets"], responses=READ_RESPONSES)


class PushRowOut(BaseModel):
    seq: int
    rep_id: str
    kpi: str
    object: str
    record_id: str | None
    field: str
    crm_value: float | None
    new_value: float
    last_pushed: float | None
    reason: str
    action: str  # write, conflict, skip
    status: str  # planned, written, failed, not_sent, conflict, skipped
    error: str | None


class PushOut(BaseModel):
    id: int
    source: str
    requested_by: str
    trigger: str
    dry_run: bool
    force: bool
    period_start: date
    started_at: datetime
    finished_at: datetime | None
    status: str  # planned (dry run), ok, partial, failed, running
    planned: int
    records: int
    conflicts: int
    unchanged: int
    skipped: int
    written: int
    failed: int
    api_calls: int
    write_requests: int
    batch_size: int
    created_fields: list[str]
    error: str | None
    rows: list[PushRowOut] | None = None


class PushesOut(BaseModel):
    data: list[PushOut]


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


def _row_out(row: PlanRow) -> PushRowOut:
    return PushRowOut(
        seq=row.seq,
        rep_id=row.rep_id,
        kpi=row.kpi,
        object=row.ref.crm_object,
        record_id=row.record_id,
        field=row.ref.field,
        crm_value=row.crm_value,
        new_value=row.new_value,
        last_pushed=row.last_pushed,
        reason=row.reason,
        action=row.action,
        status=row.status,
        error=row.error,
    )


def report_out(report: PushReport) -> PushOut:
    """A push as the API returns it, with its rows."""
    return PushOut(
        id=report.push_id,
        source=report.source,
        requested_by=report.requested_by,
        trigger=report.trigger,
        dry_run=report.dry_run,
        force=report.force,
        period_start=report.period_start,
        started_at=report.started_at,
        finished_at=report.finished_at,
        status=report.status,
        planned=report.planned,
        records=report.records,
        conflicts=report.conflicts,
        unchanged=report.unchanged,
        skipped=report.skipped,
        written=report.written,
        failed=report.failed,
        api_calls=report.api_calls,
        write_requests=report.write_requests,
        batch_size=report.batch_size,
        created_fields=report.created_fields,
        error=report.error,
        rows=[_row_out(r) for r in report.rows],
    )


def _stored_out(push: WritebackPush, rows: list[WritebackPushRow] | None) -> PushOut:
    out: dict[str, Any] = {
        name: getattr(push, name) for name in PushOut.model_fields if name not in ("rows",)
    }
    if rows is not None:
        out["rows"] = [
            PushRowOut(
                seq=r.seq,
                rep_id=r.rep_id,
                kpi=r.kpi,
                object=r.crm_object,
                record_id=r.record_id,
                field=r.field,
                crm_value=r.crm_value,
                new_value=r.new_value,
                last_pushed=r.last_pushed,
                reason=r.reason,
                action=r.action,
                status=r.status,
                error=r.error,
            )
            for r in rows
        ]
    return PushOut.model_validate(out)


def _refused(
    code: int, message: str, source: str | None, report: PushReport | None, done: list[PushOut]
) -> HTTPException:
    detail: dict[str, Any] = {"message": message, "source": source}
    if report is not None:
        detail["push"] = report_out(report).model_dump(mode="json")
    if done:
        detail["completed"] = [p.model_dump(mode="json") for p in done]
    return HTTPException(code, detail=detail)


@router.post("/v1/targets/push", response_model=PushesOut, responses=PUSH_RESPONSES)
def push_targets(
    caller: AdminAccess,
    settings: SettingsDep,
    engine: EngineDep,
    ctx: KpiContextDep,
    dry_run: Annotated[bool, Query(description="return the plan only, write nothing")] = False,
    force: Annotated[bool, Query(description="overwrite fields changed in the CRM")] = False,
    source: Annotated[
        Literal["hubspot", "salesforce", "all"], Query(description="which configured CRM")
    ] = "all",
) -> PushesOut:
    """Write the month's rep targets into the mapped CRM fields (or plan it), audited."""
    try:
        writers = build_writers(settings, source)
    except (SourceNotConfigured, MappingError) as exc:
        raise _refused(status.HTTP_409_CONFLICT, str(exc), None, None, []) from exc
    done: list[PushOut] = []
    for writer, mapping in writers:
        try:
            report = run_push(
                engine,
                writer,
                mapping.sources[writer.source],
                ctx,
                requested_by=caller.name,
                trigger="api",
                dry_run=dry_run,
                force=force,
            )
        except PushFailed as exc:
            code = (
                status.HTTP_409_CONFLICT
                if isinstance(exc.cause, DestinationMissing | PermissionDenied)
                else status.HTTP_502_BAD_GATEWAY
            )
            raise _refused(code, str(exc), writer.source, exc.report, done) from exc
        except (PushLocked, MappingError) as exc:
            raise _refused(status.HTTP_409_CONFLICT, str(exc), writer.source, None, done) from exc
        done.append(report_out(report))
    return PushesOut(data=done)


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
    found = list_pushes(engine, source=source, limit=limit, with_rows=rows)
    return PushesOut(
        data=[_stored_out(push, push_rows if rows else None) for push, push_rows in found]
    )
