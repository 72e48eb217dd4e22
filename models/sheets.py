"""Tables of the review sheets (docs/sheets.md): their notes, the notes' audit log, improvement actions.

A note is one free-text field of one sheet (``kind`` daily, weekly or monthly) for one
period (the day, the ISO week's Monday, the month's first day) and scope id; the monthly
sheet's note per rep is the field ``rep_notes`` with the rep's id as ``subject`` ('' for
every other field). The last writer wins per field; each write is also appended to
``sheet_note_writes`` (who, when, the text before and after), which is never updated.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class SheetNote(Base):
    """The current text of one field of one sheet."""

    __tablename__ = "sheet_notes"
    __table_args__ = (
        UniqueConstraint("kind", "period_start", "scope", "scope_id", "field", "subject"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # daily | weekly | monthly
    period_start: Mapped[date]
    scope: Mapped[str] = mapped_column(String(8))
    scope_id: Mapped[str] = mapped_column(String(96))  # "org" or "<source>:<crm id>"
    field: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(96), default="")  # rep_notes: the rep's id
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(128))  # a caller's name, never a credential


class SheetNoteWrite(Base):
    """One write of one note field (the audit log); never updated."""

    __tablename__ = "sheet_note_writes"
    __table_args__ = (
        Index("ix_sheet_note_writes_sheet", "kind", "period_start", "scope", "scope_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    period_start: Mapped[date]
    scope: Mapped[str] = mapped_column(String(8))
    scope_id: Mapped[str] = mapped_column(String(96))
    field: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(96), default="")
    old_text: Mapped[str | None] = mapped_column(Text)  # None: the field was empty
    new_text: Mapped[str] = mapped_column(Text)
    written_by: Mapped[str] = mapped_column(String(128))
    written_at: Mapped[datetime]


class ImprovementAction(Base):
    """An improvement action (改善アクション): an owner, a due date, a status and its result."""

    __tablename__ = "improvement_actions"
    __table_args__ = (
        Index("ix_improvement_actions_status_due", "status", "due"),
        Index("ix_improvement_actions_week_start", "week_start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[str] = mapped_column(String(96))  # a rep id, "<source>:<crm id>"
    due: Mapped[date]
    kpi: Mapped[str | None] = mapped_column(String(64))
    week_start: Mapped[date | None]  # the Monday of the ISO week it belongs to
    scope: Mapped[str] = mapped_column(String(8))
    scope_id: Mapped[str] = mapped_column(String(96))
    status: Mapped[str] = mapped_column(String(16))  # open | done | dropped
    result: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(128))
