"""Engines for the store and the Alembic upgrade that every entry point runs first."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config

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
    from alembic.config import Config

    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


# Serializes migrations of one PostgreSQL database (replicas starting together).
MIGRATION_LOCK_KEY = 0x69736B7069_00  # "iskpi", 0

# A migration's own id and its parent's, as every file in migrations/versions declares them.
_REVISION_LINE = re.compile(r'^(revision|down_revision)\b[^=]*=\s*(?:"([^"]+)"|None)\s*$', re.M)


def head_revision() -> str | None:
    """The newest migration's id, read from the files' text; None unless there is exactly one."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = dict(_REVISION_LINE.findall(path.read_text()))
        if not found.get("revision"):
            return None  # a file this reading does not understand: let Alembic decide
        revisions.add(found["revision"])
        if found.get("down_revision"):
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def at_head(engine: Engine) -> bool:
    """Whether the store is already at the newest migration (then Alembic need not load)."""
    head = head_revision()
    if head is None:
        return False
    try:
        with engine.connect() as conn:
            stamped = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    except DBAPIError:  # no store yet
        return False
    return [row[0] for row in stamped] == [head]


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
    if revision == "head" and at_head(engine):
        # Every command migrates first: Alembic's import and its look at the store were a
        # quarter of a no-change sync's start-up.
        return
    from alembic import command

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
    from alembic import command

    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
