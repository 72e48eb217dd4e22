"""Tables of the write-back of targets into CRM fields (docs/writeback.md): audits, their rows, last pushes.

Every push (dry runs too) is one ``writeback_pushes`` row: who asked, when, for which source
and month, how it ended and the API requests it cost. Its plan is ``writeback_push_rows``,
one row per field to write (or held back as a conflict, or skipped), each with the CRM's value
at planning time, the new value, the reason and, once sent, the result.

``writeback_state`` remembers, per (source, object, record, field), the value last written
(or found already in place), so a push writes only what changed and notices a field someone
changed in the CRM since: the conflict rule of service/writeback/push.py.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Double, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class WritebackPush(Base):
    """One push of targets to one CRM (or a dry run of it): the audit record."""

    __tablename__ = "writeback_pushes"
    __table_args__ = (Index("ix_writeback_pushes_source_started", "source", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(128))  # the admin token's name, or "cli"
    trigger: Mapped[str] = mapped_column(String(16))  # cli, api
    dry_run: Mapped[bool]
    force: Mapped[bool]
    period_start: Mapped[date]  # the month whose targets are due
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))  # running, planned, ok, partial, failed
    planned: Mapped[int] = mapped_column(Integer, default=0)  # field updates to write
    records: Mapped[int] = mapped_column(Integer, default=0)  # records those updates touch
    conflicts: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    written: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    api_calls: Mapped[int] = mapped_column(Integer, default=0)
    write_requests: Mapped[int] = mapped_column(Integer, default=0)
    batch_size: Mapped[int] = mapped_column(Integer, default=0)
    created_fields: Mapped[list[Any]] = mapped_column(JSON)  # "object.field" created first
    error: Mapped[str | None] = mapped_column(Text)


class WritebackPushRow(Base):
    """One field of a push's plan and its result."""

    __tablename__ = "writeback_push_rows"
    __table_args__ = (Index("ix_writeback_push_rows_push_seq", "push_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    push_id: Mapped[int] = mapped_column(ForeignKey("writeback_pushes.id", ondelete="CASCADE"))
    seq: Mapped[int]
    rep_id: Mapped[str] = mapped_column(String(96))  # "<source>:<crm id>"
    kpi: Mapped[str] = mapped_column(String(64))
    crm_object: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str | None] = mapped_column(String(64))  # None: none yet (to be created)
    field: Mapped[str] = mapped_column(String(128))
    crm_value: Mapped[float | None] = mapped_column(Double)  # in the CRM when planned
    new_value: Mapped[float] = mapped_column(Double)
    last_pushed: Mapped[float | None] = mapped_column(Double)
    reason: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))  # write, conflict, skip
    status: Mapped[str] = mapped_column(String(16))  # planned, written, failed, not_sent, ...
    error: Mapped[str | None] = mapped_column(Text)


class WritebackState(Base):
    """The value last written to (or found in) one CRM field, and how the last attempt went."""

    __tablename__ = "writeback_state"

    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    crm_object: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    field: Mapped[str] = mapped_column(String(128), primary_key=True)
    rep_id: Mapped[str] = mapped_column(String(96))
    kpi: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[date]
    pushed_value: Mapped[float | None] = mapped_column(Double)  # known to be in the CRM
    pushed_at: Mapped[datetime | None]
    last_status: Mapped[str] = mapped_column(String(16))  # ok, failed
    attempted_value: Mapped[float | None] = mapped_column(Double)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_push_id: Mapped[int | None]
    updated_at: Mapped[datetime]
