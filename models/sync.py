"""Bookkeeping of the sync: per-stream state, run history, quarantine and the lock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class SyncState(Base):
    """Where a stream of a source stopped: the connector's cursor, saved with its page."""

    __tablename__ = "sync_state"

    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    stream: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime]


class SyncRun(Base):
    """One sync of one source: when, how it ended, and what it moved."""

    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(16))  # nightly, intraday, api, cli, demo
    full: Mapped[bool]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))  # running, ok, partial, failed
    records: Mapped[dict[str, int]] = mapped_column(JSON)  # stored records per stream
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    api_calls: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class QuarantinedRecord(Base):
    """A CRM record that could not be normalized, kept with its payload and reason."""

    __tablename__ = "quarantine"
    __table_args__ = (UniqueConstraint("source", "stream", "crm_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    stream: Mapped[str] = mapped_column(String(32))
    crm_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    run_id: Mapped[int | None]
    quarantined_at: Mapped[datetime] = mapped_column(server_default=func.current_timestamp())


class SyncLock(Base):
    """A lease on a source's sync, for SQLite (PostgreSQL uses an advisory lock)."""

    __tablename__ = "sync_locks"

    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]


class StoreMeta(Base):
    """Facts about the store itself: the time zone it was synced in, the audit secret."""

    __tablename__ = "store_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]
