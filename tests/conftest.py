"""Shared fixtures: the store on both engines, migrated once per test session.

Every store test runs twice, on SQLite and on PostgreSQL. PostgreSQL tests use
a schema of their own per test session (so parallel runs do not collide) and
truncate the tables after each test; SQLite tests get a copy of a migrated
template file.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from service.db import make_engine, migrate
from tests.support.db import ENGINES, POSTGRES_URL, postgres_engine, truncate


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str]:
    schema = f"iskpi_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = postgres_engine(schema)
    migrate(engine)
    engine.dispose()
    yield schema
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty store on each engine."""
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        sqlite_engine = make_engine(f"sqlite:///{path}")
        yield sqlite_engine
        sqlite_engine.dispose()
    else:
        pg = postgres_engine(request.getfixturevalue("postgres_schema"))
        try:
            yield pg
        finally:
            truncate(pg)
            pg.dispose()
