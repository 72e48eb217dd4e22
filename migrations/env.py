"""Alembic environment: runs on the connection that service.db.migrate hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
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
