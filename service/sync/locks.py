"""One sync per source at a time, across processes and replicas.

PostgreSQL: a session advisory lock held on a dedicated connection for the
whole run; the server drops it when that connection dies, so a killed process
never leaves a stale lock. When the connection dies under a live run (a backend
terminated, a failover), ``renew`` takes the lock again on a new connection, or
stops the run if another sync took it meanwhile. SQLite: a lease row that the holder renews while it
works; a lease left by a killed process is taken over at once on the same host
(its pid is gone) and expires elsewhere.

The sync renews at every page, inside the page's transaction: on SQLite the lease is
extended there once a minute (a lease lost meanwhile rolls the page back), and on
PostgreSQL the lock's connection is checked with one round trip. Neither costs a
commit of its own.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError

from models import SyncLock
from models.store import table_of
from service.errors import SyncLocked

LEASE = timedelta(minutes=10)
# How often a running sync extends its SQLite lease: well within the lease.
RENEW_EVERY = LEASE.total_seconds() / 10


def _advisory_key(schema: str, source: str) -> int:
    # Advisory locks are per database: the schema is in the key, so stores in two
    # schemas of one database (two deployments, parallel test runs) never block each other.
    digest = hashlib.sha256(f"iskpi-sync:{schema}:{source}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _holder_is_dead(holder: str) -> bool:
    """True when a lease holder ran on this host and its process is gone."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


class SourceLock:
    """A held lock on one source's sync; ``renew`` keeps a SQLite lease alive."""

    def __init__(self, engine: Engine, source: str) -> None:
        self.engine = engine
        self.source = source
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._pg_connection: Connection | None = None
        self._pg_key = 0
        self._renewed = 0.0  # time.monotonic() of the last lease extension (SQLite)

    def acquire(self) -> bool:
        if self.engine.dialect.name == "postgresql":
            # Autocommit: the lock is the session's, and checking it costs one round trip.
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            key = _advisory_key(
                conn.execute(text("SELECT current_schema()")).scalar_one(), self.source
            )
            got = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar_one()
            conn.commit()
            if got:
                self._pg_connection, self._pg_key = conn, key
            else:
                conn.close()
            return bool(got)
        now = datetime.now(UTC)
        table = table_of(SyncLock)
        stmt = sqlite.insert(table).values(
            source=self.source, holder=self.holder, expires_at=now + LEASE
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["source"],
            set_={"holder": stmt.excluded.holder, "expires_at": stmt.excluded.expires_at},
            where=table.c.expires_at < now,
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)
            holder = conn.execute(
                select(SyncLock.holder).where(SyncLock.source == self.source)
            ).scalar_one()
            if holder != self.holder and _holder_is_dead(holder):
                # Killed on this host without releasing: take its lease over now
                # rather than wait for it to expire.
                conn.execute(
                    update(SyncLock)
                    .where(SyncLock.source == self.source, SyncLock.holder == holder)
                    .values(holder=self.holder, expires_at=now + LEASE)
                )
                holder = self.holder
        if holder == self.holder:
            self._renewed = time.monotonic()
        return holder == self.holder

    def renew(self, conn: Connection | None = None) -> None:
        """Keep the lock: extend a SQLite lease; on PostgreSQL, check its connection lives.

        With ``conn`` (a page's transaction) a SQLite lease is extended in that transaction,
        at most once every RENEW_EVERY seconds, and SyncLocked rolls the page back when
        the lease was lost; without it the lease is extended at once in a transaction of
        its own.
        """
        if self._pg_connection is not None:
            try:
                self._pg_connection.execute(text("SELECT 1"))
                self._pg_connection.rollback()  # ends SQLAlchemy's transaction; no round trip
                return
            except DBAPIError:
                # The server dropped the lock with the connection: take it again, or stop.
                self._drop_pg_connection()
            if not self.acquire():
                raise SyncLocked(
                    f"lost the sync lock of {self.source} with its database connection, and "
                    "another sync holds it now"
                )
            return
        if self.engine.dialect.name == "postgresql":
            return
        now = time.monotonic()
        if conn is not None and now - self._renewed < RENEW_EVERY:
            return
        extend = (
            update(SyncLock)
            .where(SyncLock.source == self.source, SyncLock.holder == self.holder)
            .values(expires_at=datetime.now(UTC) + LEASE)
        )
        if conn is None:
            with self.engine.begin() as own:
                own.execute(extend)
        elif conn.execute(extend).rowcount == 0:
            raise SyncLocked(f"the sync lease of {self.source} expired and another sync took it")
        self._renewed = now

    def _drop_pg_connection(self) -> None:
        if self._pg_connection is not None:
            try:
                self._pg_connection.invalidate()
                self._pg_connection.close()
            except DBAPIError:
                pass
            self._pg_connection = None

    def release(self) -> None:
        if self._pg_connection is not None:
            try:
                self._pg_connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": self._pg_key}
                )
                self._pg_connection.commit()
                self._pg_connection.close()
                self._pg_connection = None
            except DBAPIError:
                # The connection is gone, and the server released the lock with it.
                self._drop_pg_connection()
        elif self.engine.dialect.name != "postgresql":
            with self.engine.begin() as conn:
                conn.execute(
                    delete(SyncLock).where(
                        SyncLock.source == self.source, SyncLock.holder == self.holder
                    )
                )


@contextmanager
def source_lock(engine: Engine, source: str) -> Iterator[SourceLock]:
    """Hold the sync lock of ``source`` or raise SyncLocked at once."""
    lock = SourceLock(engine, source)
    if not lock.acquire():
        raise SyncLocked(f"a sync of {source} is already running")
    try:
        yield lock
    finally:
        lock.release()
