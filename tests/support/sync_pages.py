"""Sync pages written the way run_sync writes them, for the tests of what a page invalidates.

One transaction per page: the rollup maintainer marks (and records in the change log) the
keys the records have before and after the upsert, and the stream's cursor is saved with
them, as service/sync/run.py does.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Engine

from connectors.records import Record
from kpi import KpiContext, RollupMaintainer, ensure_rollups
from models import TABLE_BY_KIND, store

PAGE_AT = datetime(2026, 10, 15, 4, 0, tzinfo=UTC)


def build_rollups(engine: Engine, ctx: KpiContext) -> None:
    """Make the rollups current for ``ctx`` (as the first sync's end leaves them)."""
    with engine.begin() as conn:
        ensure_rollups(conn, ctx)


def store_page(engine: Engine, ctx: KpiContext, records: Iterable[Record]) -> None:
    """Store ``records`` (one kind) as one committed sync page of their source."""
    records = list(records)
    kind, source = records[0].kind, records[0].source
    rows = [record.as_row() for record in records]
    maintainer = RollupMaintainer(ctx)
    with engine.begin() as conn:
        token = maintainer.before_upsert(conn, kind, source, [r["crm_id"] for r in rows])
        store.upsert_records(conn, TABLE_BY_KIND[kind], rows, PAGE_AT)
        maintainer.after_upsert(conn, token)
        store.save_state(conn, source, f"{kind}s", {"cursor": records[-1].crm_id}, PAGE_AT)
