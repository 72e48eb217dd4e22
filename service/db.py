"""Engines for the store and the Alembic upgrade that every entry point runs first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for the store; SQLite gets WAL and a busy timeout so a reader never blocks a sync.

    Statement parameters are left out of error messages (``hide_parameters``): they hold
    CRM values, and an error's message reaches logs and sync runs.
    """
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def safe_url(engine: Engine) -> str:
    """The engine's URL with any password masked, for logs and messages."""
    return engine.url.render_as_string(hide_password=True)


def alembic_config(engine: Engine) -> Config:
    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


# Serializes migrations of one PostgreSQL database (replicas starting together).
MIGRATION_LOCK_KEY = 0x69736B7069_00  # "iskpi", 0


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the store to ``revision`` (head by default), all of it or nothing.

    Every step and its version stamp run in one transaction, so a process killed while it
    creates the schema leaves the store as it found it and the next run starts over. On
    PostgreSQL DDL is transactional as it is. pysqlite is not: it begins a transaction only
    before INSERT, UPDATE or DELETE and runs CREATE TABLE outside any, so a kill left tables
    without their stamp and every later run failed ("table calls already exists"). Here the
    driver's own transaction handling is switched off (``isolation_level = None``) for the
    migration's connection and the transaction is begun explicitly, the workaround SQLAlchemy
    documents for pysqlite; BEGIN IMMEDIATE also makes a second process wait its turn.
    """
    config = alembic_config(engine)
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        return
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert driver is not None
        saved = driver.isolation_level
        driver.isolation_level = None
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
            except BaseException:
                driver.rollback()
                raise
            driver.commit()
        finally:
            driver.isolation_level = saved
            connection.rollback()  # SQLAlchemy's own transaction (the driver's is over)


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade the store to ``revision`` ("base" drops everything)."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
