"""The test store's engines: the PostgreSQL URL, the engines each store test runs on."""

from __future__ import annotations

import os

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
