"""Alembic environment: runs on the connection that service.db.migrate hands over."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import Connection, create_engine

from models import Base

config = context.config
target_metadata = Base.metadata


# A test hook (tests/test_faults.py kills `iskpi migrate` mid-way): with this set to N, each
# step is reported on stderr and the N-th one is followed by a long pause. Unset, nothing.
PAUSE_AFTER = int(os.environ.get("ISKPI_TEST_MIGRATION_PAUSE_AFTER") or 0)
_steps: list[str | None] = []


def _paused(
    ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
) -> None:
    _steps.append(step.up_revision_id)
    print(f"migrated {step.up_revision_id}", file=sys.stderr, flush=True)
    if len(_steps) == PAUSE_AFTER:
        time.sleep(3600)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        on_version_apply=_paused if PAUSE_AFTER > 0 else None,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # plain `alembic -c migrations/alembic.ini ...` from a shell
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///./iskpi.db")
    with engine.begin() as conn:
        _run(conn)
