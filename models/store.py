"""Bulk writes into the normalized store: one statement per page, never one per row."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from models.crm import CrmRecord
from models.sync import QuarantinedRecord, SyncState

# Both dialects spell "INSERT … ON CONFLICT DO UPDATE" the same way.
Upsert = postgresql.Insert | sqlite.Insert


def _insert(conn: Connection, table: Table) -> Upsert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for dialect {conn.dialect.name}")


def _last_per_key(rows: Iterable[Mapping[str, Any]], key: Sequence[str]) -> list[Mapping[str, Any]]:
    # A CRM page can repeat a record; one INSERT may touch each key once (PostgreSQL
    # refuses otherwise), and the later copy is the newer one.
    by_key: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for row in rows:
        by_key[tuple(row[k] for k in key)] = row
    return list(by_key.values())


def upsert_records(
    conn: Connection, model: type[CrmRecord], rows: Sequence[Mapping[str, Any]], synced_at: datetime
) -> int:
    """Insert or update rows keyed on (source, crm_id) in one statement; returns rows written."""
    if not rows:
        return 0
    unique = _last_per_key(rows, ("source", "crm_id"))
    table = model.__table__
    assert isinstance(table, Table)
    values = [{**row, "synced_at": synced_at} for row in unique]
    stmt = _insert(conn, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["source", "crm_id"],
        set_={name: stmt.excluded[name] for name in values[0] if name not in ("source", "crm_id")},
    )
    # One statement for the page, executed with the page's rows as its parameter sets:
    # the compiled statement is cached, where a multi-row VALUES would be compiled anew
    # for every page (which costs more than the database's work). psycopg pipelines
    # the parameter sets to PostgreSQL in one round trip.
    conn.execute(stmt, values)
    return len(unique)


def flag_deleted(
    conn: Connection, model: type[CrmRecord], source: str, crm_ids: Sequence[str], at: datetime
) -> None:
    """Flag records the CRM no longer lists as deleted."""
    if crm_ids:
        conn.execute(
            update(model)
            .where(model.source == source, model.crm_id.in_(crm_ids), model.deleted.is_(False))
            .values(deleted=True, synced_at=at)
        )


def quarantine(
    conn: Connection, source: str, stream: str, rejected: Sequence[Mapping[str, Any]], run_id: int
) -> None:
    """Keep rejected records with their reasons; a record rejected again replaces its entry."""
    if not rejected:
        return
    rows = _last_per_key(
        ({**r, "source": source, "stream": stream, "run_id": run_id} for r in rejected),
        ("crm_id",),
    )
    table = QuarantinedRecord.__table__
    assert isinstance(table, Table)
    stmt = _insert(conn, table).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["source", "stream", "crm_id"],
        set_={
            "payload": stmt.excluded.payload,
            "reason": stmt.excluded.reason,
            "run_id": stmt.excluded.run_id,
            "quarantined_at": func.current_timestamp(),
        },
    )
    conn.execute(stmt)


def release_from_quarantine(
    conn: Connection, source: str, stream: str, crm_ids: Sequence[str]
) -> None:
    """Drop quarantine entries of records that now map cleanly."""
    if crm_ids:
        conn.execute(
            delete(QuarantinedRecord).where(
                QuarantinedRecord.source == source,
                QuarantinedRecord.stream == stream,
                QuarantinedRecord.crm_id.in_(crm_ids),
            )
        )


def load_state(conn: Connection, source: str, stream: str) -> dict[str, Any] | None:
    """The saved state of a stream, or None before its first sync."""
    state = conn.execute(
        select(SyncState.state).where(SyncState.source == source, SyncState.stream == stream)
    ).scalar_one_or_none()
    return dict(state) if state is not None else None


def save_state(
    conn: Connection, source: str, stream: str, state: Mapping[str, Any], at: datetime
) -> None:
    """Save a stream's state (in the caller's transaction, beside its page)."""
    table = SyncState.__table__
    assert isinstance(table, Table)
    stmt = _insert(conn, table).values(
        source=source, stream=stream, state=dict(state), updated_at=at
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["source", "stream"],
        set_={"state": stmt.excluded.state, "updated_at": stmt.excluded.updated_at},
    )
    conn.execute(stmt)


def clear_state(conn: Connection, source: str) -> None:
    """Forget every stream's state of a source, so the next sync is a full one."""
    conn.execute(delete(SyncState).where(SyncState.source == source))
