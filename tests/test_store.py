"""The normalized store on SQLite and PostgreSQL: migrations, upserts, state, quarantine, locks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, inspect, select, text

from connectors.records import Call, Deal, Rep
from models import Call as CallRow
from models import Deal as DealRow
from models import QuarantinedRecord, store
from models import Rep as RepRow
from service.db import at_head, downgrade, head_revision, make_engine, migrate
from service.errors import SyncLocked
from service.sync.locks import SourceLock, source_lock
from tests.support.db import POSTGRES_URL, postgres_engine

T0 = datetime(2026, 10, 1, 9, 30, tzinfo=UTC)
APP_TABLES = {
    "teams",
    "reps",
    "leads",
    "calls",
    "emails",
    "meetings",
    "follow_up_tasks",
    "deals",
    "sync_state",
    "sync_runs",
    "quarantine",
    "sync_locks",
}


def _calls(n: int, *, outcome: str = "connected") -> list[dict[str, Any]]:
    return [
        Call(
            source="hubspot",
            crm_id=str(1000 + i),
            occurred_at=T0 + timedelta(minutes=i),
            direction="outbound",
            outcome=outcome,  # type: ignore[arg-type]
            duration_ms=61_000,
            rep_crm_id="7",
            modified_at=T0,
        ).as_row()
        for i in range(n)
    ]


class StatementCounter:
    def __init__(self, engine: Engine) -> None:
        self.statements: list[str] = []
        event.listen(engine, "before_cursor_execute", self._on)

    def _on(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_upgrade_and_downgrade(backend: str, tmp_path: Any) -> None:
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    else:
        schema = f"iskpi_mig_{os.getpid()}"
        admin = make_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = postgres_engine(schema)
    try:
        migrate(engine)
        assert APP_TABLES <= set(inspect(engine).get_table_names())
        downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        migrate(engine)  # and back up again: the downgrade left nothing behind
        assert APP_TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
        if backend == "postgresql":
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def test_the_head_read_from_the_migration_files_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    from service.db import alembic_config

    script = ScriptDirectory.from_config(alembic_config(make_engine("sqlite://")))
    assert head_revision() == script.get_current_head()


def test_a_store_at_head_is_not_migrated_again_and_one_behind_is(engine: Engine) -> None:
    assert at_head(engine)  # the fixture's store is migrated
    counter = StatementCounter(engine)
    migrate(engine)
    assert counter.statements == ["SELECT version_num FROM alembic_version"]
    downgrade(engine, "-1")
    try:
        assert not at_head(engine)
        migrate(engine)
        assert at_head(engine)
    finally:
        migrate(engine)


def test_upsert_is_one_statement_per_page_and_never_duplicates(engine: Engine) -> None:
    counter = StatementCounter(engine)
    with engine.begin() as conn:
        assert store.upsert_records(conn, CallRow, _calls(250), T0) == 250
    # SQLite: one INSERT stepped through the rows; PostgreSQL: one move from the stage
    # the rows were copied into (the COPY goes to the driver, past this counter).
    inserts = [s for s in counter.statements if "INSERT INTO" in s.upper()]
    assert len(inserts) == 1
    # The same page again, now with another outcome: updated in place, not duplicated.
    with engine.begin() as conn:
        store.upsert_records(conn, CallRow, _calls(250, outcome="busy"), T0 + timedelta(hours=1))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CallRow)).scalar_one() == 250
        outcomes = conn.execute(select(CallRow.outcome).distinct()).scalars().all()
    assert outcomes == ["busy"]


def test_a_page_rolled_back_with_its_new_stage_leaves_the_next_page_working(
    engine: Engine,
) -> None:
    # PostgreSQL creates the page's stage table in the page's transaction: rolled back, the
    # stage is gone, and the next page on the same pooled connection must create it again.
    engine.pool.dispose()

    class Boom(Exception):
        pass

    with pytest.raises(Boom), engine.begin() as conn:
        store.upsert_records(conn, CallRow, _calls(3), T0)
        raise Boom
    with engine.begin() as conn:
        assert store.upsert_records(conn, CallRow, _calls(5), T0) == 5
    with engine.begin() as conn:
        store.upsert_records(conn, CallRow, _calls(2, outcome="busy"), T0)
    with engine.connect() as conn:
        outcomes = conn.execute(select(CallRow.crm_id, CallRow.outcome).order_by(CallRow.crm_id))
        assert outcomes.all() == [
            ("1000", "busy"),
            ("1001", "busy"),
            ("1002", "connected"),
            ("1003", "connected"),
            ("1004", "connected"),
        ]


def test_pages_in_one_transaction_each_move_only_their_own_rows(engine: Engine) -> None:
    # Several pages share a transaction when they were fetched already: each page's move
    # takes its rows out of the stage, so a record on two pages is written twice, in order.
    first = _calls(3)
    second = [{**first[1], "outcome": "voicemail"}, *_calls(1, outcome="busy")]
    with engine.begin() as conn:
        assert store.upsert_records(conn, CallRow, first, T0) == 3
        assert store.upsert_records(conn, CallRow, second, T0 + timedelta(minutes=1)) == 2
    with engine.connect() as conn:
        rows = conn.execute(
            select(CallRow.crm_id, CallRow.outcome, CallRow.synced_at).order_by(CallRow.crm_id)
        ).all()
    assert rows == [
        ("1000", "busy", T0 + timedelta(minutes=1)),
        ("1001", "voicemail", T0 + timedelta(minutes=1)),
        ("1002", "connected", T0),
    ]


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_a_value_postgresql_refuses_in_the_copy_is_a_store_error_without_it(
    engine: Engine,
) -> None:
    from sqlalchemy.exc import DataError

    from service.sync.run import safe_error

    row = _calls(1)[0] | {"duration_ms": "Secret-Customer-Name"}
    with pytest.raises(DataError) as caught, engine.begin() as conn:
        store.upsert_records(conn, CallRow, [row], T0)
    assert "InvalidTextRepresentation" in safe_error(caught.value)
    assert "Secret-Customer-Name" not in safe_error(caught.value)
    with engine.begin() as conn:  # the connection is usable again, its stage too
        assert store.upsert_records(conn, CallRow, _calls(2), T0) == 2


def test_a_page_repeating_a_record_keeps_the_later_copy(engine: Engine) -> None:
    rows = _calls(2)
    later = {**rows[0], "outcome": "voicemail"}
    with engine.begin() as conn:
        assert store.upsert_records(conn, CallRow, [*rows, later], T0) == 2
    with engine.connect() as conn:
        outcome = conn.execute(select(CallRow.outcome).where(CallRow.crm_id == "1000")).scalar_one()
    assert outcome == "voicemail"


def test_timestamps_round_trip_as_aware_utc(engine: Engine) -> None:
    tokyo = timezone(timedelta(hours=9))
    row = _calls(1)[0] | {"occurred_at": datetime(2026, 9, 1, 0, 30, tzinfo=tokyo)}
    with engine.begin() as conn:
        store.upsert_records(conn, CallRow, [row], T0)
    with engine.connect() as conn:
        occurred = conn.execute(select(CallRow.occurred_at)).scalar_one()
    assert occurred == datetime(2026, 8, 31, 15, 30, tzinfo=UTC)
    assert occurred.tzinfo is not None and occurred.utcoffset() == timedelta(0)


def test_decimal_amount_and_same_crm_id_across_sources(engine: Engine) -> None:
    deal = Deal(source="hubspot", crm_id="42", created_at=T0, amount=Decimal("1234567.89"))
    other = Deal(source="salesforce", crm_id="42", created_at=T0, amount=Decimal("10"))
    with engine.begin() as conn:
        store.upsert_records(conn, DealRow, [deal.as_row(), other.as_row()], T0)
    with engine.connect() as conn:
        amounts = dict(conn.execute(select(DealRow.source, DealRow.amount)).all())
    assert amounts == {"hubspot": Decimal("1234567.89"), "salesforce": Decimal("10")}


def test_flag_deleted_marks_only_the_named_records(engine: Engine) -> None:
    reps = [Rep(source="hubspot", crm_id=str(i), name=f"Rep {i}").as_row() for i in range(3)]
    with engine.begin() as conn:
        store.upsert_records(conn, RepRow, reps, T0)
        store.flag_deleted(conn, RepRow, "hubspot", ["1"], T0)
    with engine.connect() as conn:
        deleted = dict(conn.execute(select(RepRow.crm_id, RepRow.deleted)).all())
    assert deleted == {"0": False, "1": True, "2": False}


def test_state_saved_and_loaded_per_stream(engine: Engine) -> None:
    with engine.begin() as conn:
        assert store.load_state(conn, "hubspot", "calls") is None
        store.save_state(conn, "hubspot", "calls", {"after": "200"}, T0)
        store.save_state(conn, "hubspot", "calls", {"after": "300"}, T0)
        store.save_state(conn, "hubspot", "emails", {"after": "7"}, T0)
    with engine.connect() as conn:
        assert store.load_state(conn, "hubspot", "calls") == {"after": "300"}
        assert store.load_state(conn, "hubspot", "emails") == {"after": "7"}
    with engine.begin() as conn:
        store.clear_state(conn, "hubspot")
        assert store.load_state(conn, "hubspot", "calls") is None


def test_state_rolls_back_with_its_page(engine: Engine) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), engine.begin() as conn:
        store.upsert_records(conn, CallRow, _calls(3), T0)
        store.save_state(conn, "hubspot", "calls", {"after": "3"}, T0)
        raise Boom
    with engine.connect() as conn:
        assert store.load_state(conn, "hubspot", "calls") is None
        assert conn.execute(select(func.count()).select_from(CallRow)).scalar_one() == 0


def test_quarantine_keeps_reason_replaces_on_repeat_and_releases(engine: Engine) -> None:
    bad = {"crm_id": "9", "payload": {"hs_timestamp": "not-a-date"}, "reason": "bad date"}
    with engine.begin() as conn:
        store.quarantine(conn, "hubspot", "calls", [bad], run_id=1)
        store.quarantine(conn, "hubspot", "calls", [bad | {"reason": "still bad"}], run_id=2)
    with engine.connect() as conn:
        rows = conn.execute(select(QuarantinedRecord.__table__)).all()
    assert [(r.crm_id, r.reason, r.run_id, r.payload) for r in rows] == [
        ("9", "still bad", 2, {"hs_timestamp": "not-a-date"})
    ]
    with engine.begin() as conn:
        store.release_from_quarantine(conn, "hubspot", "calls", ["9"])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(QuarantinedRecord)).scalar_one() == 0


def test_source_lock_is_exclusive_until_released(engine: Engine) -> None:
    with source_lock(engine, "hubspot"):
        with pytest.raises(SyncLocked), source_lock(engine, "hubspot"):
            pass
        with source_lock(engine, "salesforce"):  # another source is independent
            pass
    with source_lock(engine, "hubspot"):  # released: free again
        pass


def test_sqlite_lease_of_a_killed_holder_expires(tmp_path: Any) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    migrate(engine)
    elsewhere = SourceLock(engine, "hubspot")
    elsewhere.holder = "another-host:4242:abcd"
    assert elsewhere.acquire()  # never released, like a process killed with SIGKILL
    assert not SourceLock(engine, "hubspot").acquire()  # cannot tell it is dead: wait
    with engine.begin() as conn:
        conn.execute(text("UPDATE sync_locks SET expires_at = '2000-01-01 00:00:00'"))
    assert SourceLock(engine, "hubspot").acquire()
    engine.dispose()


def test_sqlite_lease_of_a_dead_process_on_this_host_is_taken_over(tmp_path: Any) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    migrate(engine)
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = SourceLock(engine, "hubspot")
    dead.holder = f"{socket.gethostname()}:{child.stdout.strip()}:dead"
    assert dead.acquire()
    alive = SourceLock(engine, "hubspot")
    alive.holder = f"{socket.gethostname()}:{os.getpid()}:alive"
    assert alive.acquire()  # the dead holder's lease is taken over at once
    assert not SourceLock(engine, "hubspot").acquire()  # but a live holder's is not
    engine.dispose()
