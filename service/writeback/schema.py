"""A push as the API shows it: the audited push, its rows, and the list of pushes."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from models import WritebackPush, WritebackPushRow

if TYPE_CHECKING:
    from service.writeback.push import PlanRow, PushReport


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


def row_out(row: PlanRow) -> PushRowOut:
    """One row of a push's plan and its result."""
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
        rows=[row_out(r) for r in report.rows],
    )


def stored_out(push: WritebackPush, rows: list[WritebackPushRow] | None) -> PushOut:
    """A push from the audit tables, with its rows when they were read."""
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


def report_json(report: PushReport) -> dict[str, Any]:
    """A push with its rows as the JSON the API answers with."""
    return report_out(report).model_dump(mode="json")
