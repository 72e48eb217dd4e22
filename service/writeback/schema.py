"""A push as the API shows it: the audited push, its rows, and the list of pushes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from models import WritebackPush, WritebackPushRow


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
    level: str | None = Field(
        default=None,
        description="the target level pushed; null in the list of pushes (not kept in the audit)",
    )
    rows: list[PushRowOut] | None = None


class PushesOut(BaseModel):
    data: list[PushOut]


def stored_out(push: WritebackPush, rows: list[WritebackPushRow] | None) -> PushOut:
    """A push from the audit tables, with its rows when they were read."""
    out: dict[str, Any] = {
        name: getattr(push, name) for name in PushOut.model_fields if name not in ("rows", "level")
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
