"""Bulk writes into the normalized store: one statement per page, never one per row.

On PostgreSQL a page's rows are copied (COPY, formatted by psycopg's C code) into a
temporary stage table of the connection, then moved into their table by one
``WITH moved AS (DELETE FROM stage RETURNING …) INSERT … ON CONFLICT DO UPDATE``. Handing
the same rows over as one array a column cost twice the client's CPU: psycopg quotes
every element of a text array in Python, with a regular expression.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Float,
    Integer,
    Numeric,
    String,
    Table,
    bindparam,
    case,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from models.base import UTCDateTime
from models.crm import CrmRecord
from models.sync import QuarantinedRecord, SyncState

# Both dialects spell "INSERT … ON CONFLICT DO UPDATE" the same way.
Upsert = postgresql.Insert | sqlite.Insert


def table_of(model: type[Any]) -> Table:
    """The Core table of a mapped model."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def upsert_for(dialect: str, table: Table) -> Upsert:
    """An INSERT that can take ON CONFLICT clauses, on the named dialect."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for dialect {dialect}")


def upsert(conn: Connection, table: Table) -> Upsert:
    """An INSERT that can take ON CONFLICT clauses, on the connection's dialect."""
    return upsert_for(conn.dialect.name, table)


def _last_per_key(rows: Iterable[Mapping[str, Any]], key: Sequence[str]) -> list[Mapping[str, Any]]:
    # A CRM page can repeat a record; one INSERT may touch each key once (PostgreSQL
    # refuses otherwise), and the later copy is the newer one.
    by_key: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for row in rows:
        by_key[tuple(row[k] for k in key)] = row
    return list(by_key.values())


# Timestamps every business time zone can place in a day (UTC±14 h stays within 1..9999).
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
# An expected close date may be a placeholder such as 9999-12-31; no day is cut from it.
PLACEHOLDER_DATES = frozenset({("deals", "closed_at")})
INT32 = (-(2**31), 2**31 - 1)
# The connectors strip it from free text; an id or anything else still holding one is quarantined.
NUL = "\x00"


Check = Callable[[Any], str | None]


def _check(table: str, name: str, kind: Any) -> Check | None:
    """The test a value of one column must pass to be stored, if it has one."""
    if isinstance(kind, String) and kind.length:
        length = kind.length
        return lambda v: (
            f"{name}: {len(v):,} characters, more than the {length} the store keeps"
            if len(v) > length
            else f"{name}: holds a NUL byte (U+0000), which PostgreSQL cannot store"
            if NUL in v
            else None
        )
    if isinstance(kind, Integer) and not isinstance(kind, BigInteger):
        return lambda v: f"{name}: {v} is out of range" if not INT32[0] <= v <= INT32[1] else None
    if isinstance(kind, Float):
        return lambda v: None if math.isfinite(v) else f"{name}: {v} is not a finite number"
    if isinstance(kind, Numeric) and kind.precision:
        digits = kind.precision - (kind.scale or 0)
        bound = Decimal(10) ** digits
        return lambda v: (
            None
            if Decimal(v).is_finite() and abs(Decimal(v)) < bound
            else f"{name}: {v} has more than {digits} digits before the point"
        )
    if isinstance(kind, UTCDateTime) and (table, name) not in PLACEHOLDER_DATES:
        return lambda v: (
            None
            if v.tzinfo is None or EARLIEST <= v < LATEST
            else f"{name}: {v.isoformat()} is outside the years the store can place in a day"
        )
    return None


@cache
def _checks(model: type[CrmRecord]) -> tuple[tuple[str, Check], ...]:
    table = table_of(model)
    found = ((c.name, _check(table.name, c.name, c.type)) for c in table.columns)
    return tuple((name, check) for name, check in found if check is not None)


def unfit(model: type[CrmRecord], row: Mapping[str, Any]) -> str | None:
    """Why a normalized row cannot be stored as it is (a column it overflows), or None.

    A CRM hands over what it holds: a megabyte in a short text field, a duration of
    centuries, an amount past the column's precision, an infinite rating, a call in the
    year 9999. Stored, such a value fails the page on PostgreSQL (and every later run at
    the same page) or skews a KPI; the sync quarantines the record with this reason.
    """
    for name, check in _checks(model):
        value = row.get(name)
        if value is not None:
            reason = check(value)
            if reason is not None:
                return reason
    return None


def _sqlite_timestamp(value: datetime | None) -> str | None:
    # What UTCDateTime and SQLite's DATETIME make of a value, in one C-level call: naive UTC
    # text with microseconds always present, so stored values compare as SQLAlchemy binds them.
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the store only takes aware timestamps")
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _aware_timestamp(value: datetime | None) -> datetime | None:
    # psycopg sends an aware datetime as timestamptz as it is; only a naive one is refused.
    if value is not None and value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the store only takes aware timestamps")
    return value


Convert = Callable[[Any], Any]


def _converter(column: Any, dialect: Any) -> Convert | None:
    """How one column's value is handed to the driver, or None when the driver takes it as is."""
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return _sqlite_timestamp if dialect.name == "sqlite" else _aware_timestamp
    if isinstance(kind, (Boolean, String, Float)):
        return None  # both drivers bind str, bool and float natively
    process: Convert | None = kind.dialect_impl(dialect).bind_processor(dialect)
    return process


@dataclass(frozen=True)
class _UpsertPlan:
    """A page upsert of one table and column list, compiled once for the driver."""

    columns: tuple[str, ...]
    defaults: tuple[tuple[str, Any], ...]  # Python-side defaults of columns rows leave out
    converts: tuple[tuple[int, Convert], ...]  # (position, converter) of columns that need one
    sql: str  # SQLite: INSERT … VALUES (?, …) ON CONFLICT; PostgreSQL: the move from the stage
    stage: str | None = None  # PostgreSQL: the stage table's name
    create_stage: str = ""  # PostgreSQL: creates the stage in the connection's session
    copy: str = ""  # PostgreSQL: COPY of the columns into the stage


_PLANS: dict[tuple[str, str | None, str, tuple[str, ...]], _UpsertPlan] = {}


def _upsert_plan(
    conn: Connection, table: Table, key: Sequence[str], given: Sequence[str]
) -> _UpsertPlan:
    dialect = conn.dialect
    cache_key = (dialect.name, table.schema, table.name, tuple(given))
    plan = _PLANS.get(cache_key)
    if plan is not None:
        return plan
    defaults = tuple(
        (c.name, c.default.arg)
        for c in table.columns
        if c.name not in given and isinstance(c.default, ScalarElementColumnDefault)
    )
    columns = (*given, *(name for name, _ in defaults))
    quote = dialect.identifier_preparer.quote
    converts = tuple(
        (i, convert)
        for i, name in enumerate(columns)
        if (convert := _converter(table.c[name], dialect)) is not None
    )
    target = dialect.identifier_preparer.format_table(table)
    names = ", ".join(quote(c) for c in columns)
    updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns if c not in key)
    on_conflict = f"ON CONFLICT ({', '.join(quote(c) for c in key)}) DO UPDATE SET {updates}"
    if dialect.name == "sqlite":
        plan = _UpsertPlan(
            columns=columns,
            defaults=defaults,
            converts=converts,
            sql=(
                f"INSERT INTO {target} ({names}) VALUES ({', '.join(['?'] * len(columns))}) "
                f"{on_conflict}"
            ),
        )
    else:
        # One stage per table and session, holding only the page being moved: the move
        # empties it, and a commit truncates it (so its dead rows never pile up).
        stage = quote(f"iskpi_stage_{table.name}")
        plan = _UpsertPlan(
            columns=columns,
            defaults=defaults,
            converts=converts,
            sql=(
                f"WITH moved AS (DELETE FROM {stage} RETURNING {names}) "
                f"INSERT INTO {target} ({names}) SELECT {names} FROM moved {on_conflict}"
            ),
            stage=stage,
            create_stage=(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS "
                f"AS SELECT * FROM {target} WITH NO DATA"
            ),
            copy=f"COPY {stage} ({names}) FROM STDIN",
        )
    _PLANS[cache_key] = plan
    return plan


# The key, in a DBAPI connection's info, of the stage tables its session is known to hold.
_STAGES = "iskpi_stages"


def _forget_stages(conn: Connection, *_: Any) -> None:
    # A rolled-back transaction takes the stages it created with it; which ones it created
    # is not worth tracking: the next page creates its stage again if it does not exist.
    if not conn.invalidated:
        conn.connection.info.pop(_STAGES, None)


def _stage(conn: Connection, plan: _UpsertPlan, values: list[list[Any]]) -> None:
    """Copy rows into the plan's stage table, creating it first unless the session holds it."""
    assert plan.stage is not None
    info = conn.connection.info
    stages: set[str] = info.setdefault(_STAGES, set())
    if plan.stage not in stages:
        if not event.contains(conn.engine, "rollback", _forget_stages):
            event.listen(conn.engine, "rollback", _forget_stages)
            event.listen(conn.engine, "rollback_savepoint", _forget_stages)
        conn.exec_driver_sql(plan.create_stage)
        stages.add(plan.stage)
    driver = conn.connection.driver_connection
    assert driver is not None
    try:
        with driver.cursor() as cursor, cursor.copy(plan.copy) as copy:
            for value in values:
                copy.write_row(value)
    except conn.dialect.loaded_dbapi.Error as exc:
        # Raised as SQLAlchemy would (its message keeps no row values: hide_parameters).
        raise DBAPIError.instance(
            plan.copy,
            None,
            exc,
            conn.dialect.loaded_dbapi.Error,
            hide_parameters=True,
            dialect=conn.dialect,
        ) from None


def upsert_records(
    conn: Connection, model: type[CrmRecord], rows: Sequence[Mapping[str, Any]], synced_at: datetime
) -> int:
    """Insert or update rows on the model's key (source, crm_id); returns the rows written.

    One statement a page on SQLite; a COPY and one statement on PostgreSQL.
    """
    if not rows:
        return 0
    key = model.upsert_key
    unique = _last_per_key(rows, key)
    table = table_of(model)
    given = [name for name in unique[0] if name != "synced_at"]
    plan = _upsert_plan(conn, table, key, [*given, "synced_at"])
    # Values go to the driver as they are, but for the few columns it cannot take so
    # (timestamps on SQLite, decimals): SQLAlchemy's per-value bind processing cost more
    # than the database's work. The SQL is built once per table and column list.
    extra = tuple(value for _, value in plan.defaults)
    pick = itemgetter(*given)
    values: list[list[Any]] = []
    for row in unique:
        picked = pick(row)
        value = [*(picked if len(given) > 1 else (picked,)), synced_at, *extra]
        for i, convert in plan.converts:
            value[i] = convert(value[i])
        values.append(value)
    if plan.stage is not None:
        # PostgreSQL: the page copied into the stage, then moved into its table.
        _stage(conn, plan, values)
        conn.exec_driver_sql(plan.sql)
    else:
        # SQLite: one prepared statement stepped through the page's rows.
        conn.exec_driver_sql(plan.sql, [tuple(v) for v in values])
    return len(unique)


def flag_deleted(
    conn: Connection,
    model: type[CrmRecord],
    source: str,
    crm_ids: Sequence[str],
    at: datetime,
    *,
    within: Mapping[str, Any] | None = None,
) -> None:
    """Flag records the CRM no longer lists as deleted (``within``: e.g. one list's members)."""
    if crm_ids:
        table = table_of(model)
        narrower = [table.c[name] == value for name, value in (within or {}).items()]
        conn.execute(
            update(table)
            .where(
                table.c.source == source,
                table.c.crm_id.in_(crm_ids),
                table.c.deleted.is_(False),
                *narrower,
            )
            .values(deleted=True, synced_at=at)
        )


def referencing(
    conn: Connection, model: type[CrmRecord], source: str, column: str, crm_ids: Sequence[str]
) -> list[str]:
    """The CRM ids of the rows whose reference ``column`` names one of ``crm_ids``."""
    if not crm_ids:
        return []
    table = table_of(model)
    found = conn.execute(
        select(table.c.crm_id).where(table.c.source == source, table.c[column].in_(crm_ids))
    )
    return list(found.scalars())


def repoint(
    conn: Connection,
    model: type[CrmRecord],
    source: str,
    column: str,
    survivors: Mapping[str, str],
    at: datetime,
) -> None:
    """Point a reference ``column`` from merged records at the ones they became (old → new id)."""
    if survivors:
        table = table_of(model)
        reference = table.c[column]
        conn.execute(
            update(table)
            .where(table.c.source == source, reference.in_(list(survivors)))
            .values({column: case(dict(survivors), value=reference), "synced_at": at})
        )


def _json_safe(value: Any) -> Any:
    # JSON has no Infinity or NaN (PostgreSQL refuses them), yet a CRM's 1e400 parses to inf.
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    # PostgreSQL keeps a \u0000 in json but fails any query reading it as text: drop it.
    if isinstance(value, str):
        return value.replace(NUL, "") if NUL in value else value
    if isinstance(value, dict):
        return {_json_safe(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def quarantine(
    conn: Connection, source: str, stream: str, rejected: Sequence[Mapping[str, Any]], run_id: int
) -> None:
    """Keep rejected records with their reasons; a record rejected again replaces its entry."""
    if not rejected:
        return
    rows = _last_per_key(
        (
            {
                **r,
                "payload": _json_safe(r["payload"]),
                "reason": _json_safe(r["reason"]),
                "source": source,
                "stream": stream,
                "run_id": run_id,
            }
            for r in rejected
        ),
        ("crm_id",),
    )
    table = table_of(QuarantinedRecord)
    stmt = upsert(conn, table).values(rows)
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


def has_quarantined(conn: Connection, source: str, stream: str) -> bool:
    """Whether the quarantine holds any record of a stream (so a page may release some)."""
    found = conn.execute(
        select(QuarantinedRecord.id)
        .where(QuarantinedRecord.source == source, QuarantinedRecord.stream == stream)
        .limit(1)
    ).first()
    return found is not None


def load_state(conn: Connection, source: str, stream: str) -> dict[str, Any] | None:
    """The saved state of a stream, or None before its first sync."""
    state = conn.execute(
        select(SyncState.state).where(SyncState.source == source, SyncState.stream == stream)
    ).scalar_one_or_none()
    return dict(state) if state is not None else None


@cache
def _save_state_statement(dialect: str) -> Upsert:
    # Built once: constructing the upsert (its EXCLUDED columns) cost more than running it.
    table = table_of(SyncState)
    stmt = upsert_for(dialect, table).values(
        source=bindparam("source"),
        stream=bindparam("stream"),
        state=bindparam("state", type_=table.c.state.type),
        updated_at=bindparam("updated_at", type_=table.c.updated_at.type),
    )
    return stmt.on_conflict_do_update(
        index_elements=["source", "stream"],
        set_={"state": stmt.excluded.state, "updated_at": stmt.excluded.updated_at},
    )


def save_state(
    conn: Connection, source: str, stream: str, state: Mapping[str, Any], at: datetime
) -> None:
    """Save a stream's state (in the caller's transaction, beside its page)."""
    conn.execute(
        _save_state_statement(conn.dialect.name),
        {"source": source, "stream": stream, "state": dict(state), "updated_at": at},
    )


def clear_state(conn: Connection, source: str) -> None:
    """Forget every stream's state of a source, so the next sync is a full one."""
    conn.execute(delete(SyncState).where(SyncState.source == source))
