"""The alert records: one claim per alert across replicas, then one delivery attempt at a time.

- **Claim**: an alert is inserted ``pending`` with its text; the unique (kind, period_start)
  fails the insert of every other process due to send it, so the text is written once.
- **Attempt**: a conditional UPDATE marks the alert as being delivered (``delivering_since``)
  and counts the attempt; a process that finds it marked leaves it alone. A mark older
  than DELIVERY_LEASE (its process died mid-post) may be taken over.
- **Finish**: ``sent`` with its time, or back to ``pending`` with the error for the next
  sync; an alert whose time has passed while pending becomes ``failed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Engine, and_, false, insert, null, or_, select, update
from sqlalchemy.exc import IntegrityError

from models import Alert
from service.alerts.due import AlertKey

# Longer than any POST takes (its timeout is seconds): a mark this old is a dead process's.
DELIVERY_LEASE = timedelta(minutes=2)
STALE = "not delivered while it was due"


def _among(keys: Sequence[AlertKey]) -> ColumnElement[bool]:
    if not keys:
        return false()
    return or_(*(and_(Alert.kind == k.kind, Alert.period_start == k.period_start) for k in keys))


def _not_in_flight(now: datetime) -> ColumnElement[bool]:
    """No process is posting it (or the one that was has been gone for DELIVERY_LEASE)."""
    return or_(Alert.delivering_since.is_(None), Alert.delivering_since < now - DELIVERY_LEASE)


def recorded(engine: Engine, keys: Sequence[AlertKey]) -> set[AlertKey]:
    """Which of ``keys`` have a record, whatever its status."""
    with engine.connect() as conn:
        rows = conn.execute(select(Alert.kind, Alert.period_start).where(_among(keys)))
        return {AlertKey(kind, start) for kind, start in rows}


def claim(engine: Engine, key: AlertKey, text: str, now: datetime) -> bool:
    """Record the alert as pending with its text; False when another process recorded it first."""
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(Alert).values(
                    kind=key.kind,
                    period_start=key.period_start,
                    text=text,
                    status="pending",
                    attempts=0,
                    created_at=now,
                )
            )
    except IntegrityError:
        return False
    return True


def expire(engine: Engine, due: Sequence[AlertKey], now: datetime) -> int:
    """Fail the pending alerts that are no longer due; returns how many."""
    with engine.begin() as conn:
        return conn.execute(
            update(Alert)
            .where(Alert.status == "pending", ~_among(due), _not_in_flight(now))
            .values(status="failed", last_error=STALE, delivering_since=None)
        ).rowcount


def pending(engine: Engine, due: Sequence[AlertKey]) -> list[tuple[int, AlertKey, str]]:
    """The pending alerts among ``due``: id, key and text, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Alert.id, Alert.kind, Alert.period_start, Alert.text)
            .where(Alert.status == "pending", _among(due))
            .order_by(Alert.id)
        )
        return [(alert_id, AlertKey(kind, start), text) for alert_id, kind, start, text in rows]


def start_attempt(engine: Engine, alert_id: int, now: datetime) -> bool:
    """Mark a pending alert as being delivered by this process; False when another one is."""
    with engine.begin() as conn:
        taken = conn.execute(
            update(Alert)
            .where(
                Alert.id == alert_id,
                Alert.status == "pending",
                _not_in_flight(now),
            )
            .values(attempts=Alert.attempts + 1, delivering_since=now)
        ).rowcount
    return taken == 1


def finish_attempt(engine: Engine, alert_id: int, error: str | None, now: datetime) -> None:
    """Sent (``error`` None), or pending again with the error for the next sync."""
    values: dict[str, object] = {"delivering_since": null()}
    if error is None:
        values.update(status="sent", sent_at=now, last_error=None)
    else:
        values.update(last_error=error)
    with engine.begin() as conn:
        conn.execute(update(Alert).where(Alert.id == alert_id).values(**values))
