"""The test store's engines: the PostgreSQL URL, the engines each store test runs on."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from models import Base
from service.db import make_engine

POSTGRES_URL = os.environ.get(
    "ISKPI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ENGINES = ("sqlite", "postgresql")


def postgres_engine(schema: str) -> Engine:
    """An engine on the test PostgreSQL whose search path is ``schema``."""
    return make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})


def truncate(engine: Engine) -> None:
    """Empty every store table (PostgreSQL), restarting the id sequences."""
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@contextmanager
def bare_store(backend: str, directory: Path, name: str) -> Iterator[Engine]:
    """An engine on an empty, unmigrated store, for migration tests: a SQLite file in
    ``directory``, or a fresh PostgreSQL schema named after ``name`` and the process,
    dropped afterwards."""
    if backend == "sqlite":
        db = make_engine(f"sqlite:///{directory / f'{name}.db'}")
        try:
            yield db
        finally:
            db.dispose()
        return
    schema = f"iskpi_{name}_{os.getpid()}_{threading.get_native_id()}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = postgres_engine(schema)
    try:
        yield db
    finally:
        db.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
