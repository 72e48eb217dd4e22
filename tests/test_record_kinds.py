"""The record kinds defined twice agree: connectors/records.py's dataclasses and models/'s tables.

A connector emits a record; the sync stores ``record.as_row()`` in ``TABLE_BY_KIND[kind]``.
So every record field needs a column of the same Python type and nullability, and every
content column of the table needs a field, or nothing a connector does can fill it. The
field and column lists come from the dataclasses and the tables themselves.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

import pytest
from sqlalchemy import Column, String
from sqlalchemy.types import TypeDecorator, TypeEngine

from connectors.records import RECORD_TYPES, Record
from models import TABLE_BY_KIND, Base

RECORD_BY_KIND: dict[str, type[Record]] = {r.kind: r for r in RECORD_TYPES}

# Columns the store keeps for itself on every table: the surrogate key and the sync time.
BOOKKEEPING = frozenset({"id", "synced_at"})
# Columns the application owns, not the CRM. A record field for one would have each sync
# write the record's value over it.
STORE_OWNED = {
    "rep": frozenset({"level_override"}),  # set by an admin (kpi.reps.set_rep_level)
}

# Record fields stored under another column name (``kind`` is every record's ClassVar, so a
# call list's own kind is the field ``list_kind``; its as_row() writes it to ``kind``).
COLUMN_OF = {"call_list": {"list_kind": "kind"}}


def column_name(kind: str, field_name: str) -> str:
    return COLUMN_OF.get(kind, {}).get(field_name, field_name)


# Real gaps today: the store has the column (or table), no connector emits it.
GAPS = {
    "kinds": {},
    "columns": {},
}


def known_gap(kind: str, gaps: dict[str, str]) -> Any:
    if kind in gaps:
        return pytest.param(kind, marks=pytest.mark.xfail(strict=True, reason=gaps[kind]))
    return kind


def field_type(hint: Any) -> tuple[set[type], bool, tuple[Any, ...]]:
    """A field's Python types, whether it may be None, and its Literal values (if any)."""
    nullable = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        nullable = type(None) in args
        (hint,) = (a for a in args if a is not type(None))
    if typing.get_origin(hint) is Literal:
        values = typing.get_args(hint)
        return {type(v) for v in values}, nullable, values
    return {hint}, nullable, ()


def column_type(column: Column[Any]) -> type:
    """The Python type a column holds (a TypeDecorator holds its implementation's)."""
    sql_type: TypeEngine[Any] = column.type
    if isinstance(sql_type, TypeDecorator):
        sql_type = sql_type.impl_instance
    return sql_type.python_type


def test_every_record_kind_has_a_table() -> None:
    assert RECORD_TYPES, "no record types found"
    missing = [
        f"{r.__name__} (kind {r.kind!r})" for r in RECORD_TYPES if r.kind not in TABLE_BY_KIND
    ]
    assert not missing, f"record kinds with no table in TABLE_BY_KIND: {', '.join(missing)}"


@pytest.mark.parametrize("kind", [known_gap(k, GAPS["kinds"]) for k in TABLE_BY_KIND])
def test_every_table_kind_has_a_record_type(kind: str) -> None:
    table = TABLE_BY_KIND[kind].__tablename__
    assert kind in RECORD_BY_KIND, (
        f"TABLE_BY_KIND[{kind!r}] ({table}) has no record type in connectors/records.py"
    )


@pytest.mark.parametrize("kind", [r.kind for r in RECORD_TYPES])
def test_record_fields_have_columns_of_the_same_type(kind: str) -> None:
    record, model = RECORD_BY_KIND[kind], TABLE_BY_KIND[kind]
    table = Base.metadata.tables[model.__tablename__]
    hints = typing.get_type_hints(record)
    mismatches = []
    for field in dataclasses.fields(record):
        name = column_name(kind, field.name)
        where = f"{record.__name__}.{field.name} → {table.name}.{name}"
        column = table.c.get(name)
        if column is None:
            mismatches.append(f"{where}: no such column")
            continue
        types_, nullable, values = field_type(hints[field.name])
        stored = column_type(column)
        if types_ != {stored}:
            names = " | ".join(sorted(t.__name__ for t in types_))
            mismatches.append(f"{where}: field is {names}, column holds {stored.__name__}")
        if nullable != column.nullable:
            mismatches.append(
                f"{where}: field {'may' if nullable else 'may not'} be None, "
                f"column is {'' if column.nullable else 'NOT '}NULL"
            )
        length = column.type.length if isinstance(column.type, String) else None
        too_long = [v for v in values if length is not None and len(v) > length]
        if too_long:
            mismatches.append(f"{where}: values {too_long} longer than String({length})")
    assert not mismatches, "record fields and columns disagree:\n" + "\n".join(mismatches)


@pytest.mark.parametrize("kind", [known_gap(r.kind, GAPS["columns"]) for r in RECORD_TYPES])
def test_content_columns_have_record_fields(kind: str) -> None:
    record, model = RECORD_BY_KIND[kind], TABLE_BY_KIND[kind]
    table = Base.metadata.tables[model.__tablename__]
    fields = {column_name(kind, f.name) for f in dataclasses.fields(record)}
    skipped = BOOKKEEPING | STORE_OWNED.get(kind, frozenset())
    missing = [c for c in table.c.keys() if c not in fields and c not in skipped]
    assert not missing, (
        f"{table.name} columns with no {record.__name__} field in connectors/records.py: "
        + ", ".join(missing)
    )


def test_the_exclusions_name_real_columns() -> None:
    # A renamed column must not leave a stale exclusion that hides its successor.
    excluded = [(kind, name) for kind in RECORD_BY_KIND for name in BOOKKEEPING]
    excluded += [(kind, name) for kind, names in STORE_OWNED.items() for name in names]
    stale = [
        f"{kind}.{name}"
        for kind, name in excluded
        if name not in Base.metadata.tables[TABLE_BY_KIND[kind].__tablename__].c
    ]
    assert not stale, f"exclusions that name no column: {', '.join(stale)}"
