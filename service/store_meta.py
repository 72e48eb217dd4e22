"""Facts the store keeps about itself (table store_meta): its sync time zone, the audit secret.

- ``sync_timezone``: the ISKPI_TIMEZONE the data was synced in. Date-only CRM fields
  (Salesforce dates) were stored as midnight in that zone, so a store read in another zone
  is wrong by a day at the edges: `serve` and `sync` refuse to start (exit 2) until the zone
  is set back or `iskpi sync --full` has re-read everything in the new one.
- ``audit_secret``: the HMAC key naming API callers when ISKPI_AUDIT_SECRET is unset,
  generated once, so names stay the same across restarts and replicas.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from models import StoreMeta

SYNC_TIMEZONE = "sync_timezone"
AUDIT_SECRET = "audit_secret"


def read(engine: Engine, key: str) -> str | None:
    """The stored value of ``key``, or None."""
    with engine.connect() as conn:
        value = conn.execute(select(StoreMeta.value).where(StoreMeta.key == key)).scalar()
    return value


def write(engine: Engine, key: str, value: str) -> None:
    """Store ``value`` under ``key``, replacing any earlier one."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        done = conn.execute(
            update(StoreMeta).where(StoreMeta.key == key).values(value=value, updated_at=now)
        )
        if done.rowcount == 0:
            conn.execute(insert(StoreMeta).values(key=key, value=value, updated_at=now))


def first_value(engine: Engine, key: str, value: str) -> str:
    """The stored value of ``key``; stores ``value`` if there is none (the first one wins)."""
    stored = read(engine, key)
    if stored is not None:
        return stored
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(StoreMeta).values(key=key, value=value, updated_at=datetime.now(UTC))
            )
    except IntegrityError:  # another process stored one first
        pass
    stored = read(engine, key)
    assert stored is not None
    return stored


def audit_secret(engine: Engine) -> str:
    """The store's audit secret, generated on first use."""
    return first_value(engine, AUDIT_SECRET, secrets.token_hex(32))


def timezone_mismatch(engine: Engine, timezone: str) -> str | None:
    """The zone the store was synced in when it differs from ``timezone``; records it if new."""
    stored = first_value(engine, SYNC_TIMEZONE, timezone)
    return None if stored == timezone else stored
