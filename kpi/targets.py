"""Targets (docs/targets.md): three levels, draft and confirmed, and their revisions.

A target is ``(kpi, grain, period_start, scope, id, level)`` → value. Its status is
``draft`` (a proposal: the seed's bottom-up step) or ``confirmed`` (agreed). Every
write goes through ``put_targets``, which validates each value in one place
(``check_target_value``) and records a revision whenever a confirmed target is
created, changed, deleted or un-confirmed, or a draft is confirmed; a change of a
confirmed value needs a ``reason``. Nothing here commits except through
``engine.begin()`` when handed an Engine, so a batch is written all or nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, get_args

from sqlalchemy import ColumnElement, Connection, Engine, delete, insert, null, select, tuple_

from kpi.catalog import KPIS, KpiSpec
from kpi.engine import KpiRequestError, _connection, parse_scope_id, scope_members
from kpi.periods import GRAINS, Grain, KpiContext, period_start
from models.kpi import KpiTarget, KpiTargetRevision
from models.store import table_of, upsert

Level = Literal["minimum", "achievement", "stretch"]
LEVELS: tuple[str, ...] = get_args(Level)
Status = Literal["draft", "confirmed"]
STATUSES: tuple[str, ...] = get_args(Status)

MAX_NAME = 128  # kpi_target_revisions.changed_by, kpi_targets.updated_by
MAX_REASON = 2000
# Rows per statement: 14 columns × 500 stays below every driver's parameter limit.
CHUNK = 500

TargetKey = tuple[str, str, date, str, str, str]  # kpi, grain, period_start, scope, id, level


@dataclass(frozen=True)
class Target:
    """A KPI target (docs/api.md /v1/targets: kpi, grain, period_start, scope, id, level, value).

    As input to ``put_targets``: ``value`` None deletes the target; ``status`` None keeps
    the stored status (a new target is a draft); ``reason`` explains a change.
    """

    kpi: str
    grain: str
    period_start: date
    scope: str
    scope_id: str
    value: float | None
    level: Level = "achievement"
    status: Status | None = None
    reason: str | None = None
    updated_at: datetime | None = None  # as read back by list_targets
    updated_by: str | None = None

    @property
    def key(self) -> TargetKey:
        scope_id = "org" if self.scope == "org" else self.scope_id
        return (self.kpi, self.grain, self.period_start, self.scope, scope_id, self.level)

    def as_dict(self) -> dict[str, Any]:
        """The target as /v1/targets answers it (``id`` for the scope id, dates ISO)."""
        return {
            "kpi": self.kpi,
            "grain": self.grain,
            "period_start": self.period_start.isoformat(),
            "scope": self.scope,
            "id": self.scope_id,
            "level": self.level,
            "value": self.value,
            "status": self.status,
            "reason": self.reason,
            "updated_at": None if self.updated_at is None else self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True)
class StoredTarget(Target):
    """A target as ``list_targets`` reads it back: always a value and a status."""

    value: float
    status: Status | None = "draft"


@dataclass(frozen=True)
class Revision:
    """One recorded change of a target (docs/targets.md): old and new value and status, why, who, when."""

    id: int
    kpi: str
    grain: str
    period_start: date
    scope: str
    scope_id: str
    level: str
    old_value: float | None
    new_value: float | None  # None: deleted
    old_status: str | None  # None: created
    new_status: str | None
    reason: str | None
    who: str
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        """The revision as /v1/targets/history answers it."""
        return {
            "kpi": self.kpi,
            "grain": self.grain,
            "period_start": self.period_start.isoformat(),
            "scope": self.scope,
            "id": self.scope_id,
            "level": self.level,
            "old_value": self.old_value,
            "new_value": self.new_value,
            "old_status": self.old_status,
            "new_status": self.new_status,
            "reason": self.reason,
            "who": self.who,
            "at": self.at.isoformat(),
        }


# --- validation ---------------------------------------------------------------------------------


def check_target_value(spec: KpiSpec, value: object, param: str = "value") -> float:
    """The value as a float, or KpiRequestError naming ``param``: finite, ≥ 0, rates ≤ 1, counts whole."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise KpiRequestError(param, f"a finite number, not {value!r}")
    number = float(value)
    if number < 0:
        raise KpiRequestError(param, f"0 or more, not {value!r}")
    if spec.unit == "ratio" and number > 1:
        raise KpiRequestError(param, f"{spec.key} is a fraction from 0 to 1 (0.31, not 31)")
    if spec.unit == "count" and not number.is_integer():
        raise KpiRequestError(param, f"{spec.key} is a count: a whole number, not {value!r}")
    return number


def check_name(param: str, value: object, limit: int = MAX_NAME) -> str:
    """A caller's name or a reason: non-empty text of at most ``limit`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise KpiRequestError(param, "a non-empty text")
    if len(value) > limit:
        raise KpiRequestError(param, f"at most {limit} characters")
    return value.strip()


def validate_target(conn: Connection, target: Target, ctx: KpiContext | None = None) -> None:
    """Raise KpiRequestError naming the field of a target its KPI, period or scope cannot take.

    Quarters and fiscal years start in ``ctx``'s fiscal year's first month (January without).
    """
    if target.kpi not in KPIS:
        raise KpiRequestError("kpi", f"unknown KPI {target.kpi!r}")
    if target.grain not in GRAINS:
        raise KpiRequestError("grain", f"unknown grain {target.grain!r}")
    grain: Grain = target.grain  # type: ignore[assignment]
    first_month = 1 if ctx is None else ctx.fiscal_year_start_month
    if period_start(target.period_start, grain, first_month) != target.period_start:
        raise KpiRequestError(
            "period_start", f"{target.period_start} does not start a {target.grain}"
        )
    key = parse_scope_id(target.scope, target.scope_id)
    if target.scope != "org" and key is None:
        raise KpiRequestError("id", f"a {target.scope} target needs an id")
    if key is not None and not scope_members(conn, target.scope, key):
        raise KpiRequestError("id", f"no {target.scope} with id {target.scope_id!r}")
    if target.level not in LEVELS:
        raise KpiRequestError(
            "level", f"unknown level {target.level!r}; one of {', '.join(LEVELS)}"
        )
    if target.status is not None and target.status not in STATUSES:
        raise KpiRequestError(
            "status", f"unknown status {target.status!r}; one of {', '.join(STATUSES)}"
        )
    if target.reason is not None:
        check_name("reason", target.reason, MAX_REASON)
    if target.value is not None:
        check_target_value(KPIS[target.kpi], target.value)


# --- writing ------------------------------------------------------------------------------------


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _key_filter(keys: Sequence[TargetKey]) -> ColumnElement[bool]:
    t = table_of(KpiTarget)
    columns = (t.c.kpi, t.c.grain, t.c.period_start, t.c.scope, t.c.scope_id, t.c.level)
    return tuple_(*columns).in_(list(keys))


def _stored(conn: Connection, keys: Sequence[TargetKey]) -> dict[TargetKey, tuple[float, str]]:
    """(value, status) of the stored targets among ``keys``."""
    t = table_of(KpiTarget)
    out: dict[TargetKey, tuple[float, str]] = {}
    for chunk in _chunks(keys):
        rows = conn.execute(
            select(
                t.c.kpi,
                t.c.grain,
                t.c.period_start,
                t.c.scope,
                t.c.scope_id,
                t.c.level,
                t.c.value,
                t.c.status,
            ).where(_key_filter(chunk))
        )
        for *key, value, status in rows:
            out[tuple(key)] = (float(value), status)
    return out


def put_targets(
    bind: Connection | Engine,
    targets: Sequence[Target],
    ctx: KpiContext | None = None,
    *,
    who: str = "system",
) -> int:
    """Insert, replace or delete (value None) targets, recording revisions; returns how many.

    All or nothing: every target is validated, and every change of a confirmed value
    checked for its reason, before anything is written. ``who`` is the caller's name
    (the API passes the token's name, never the token). Raises KpiRequestError
    naming the field and the target's index in ``targets``; the last of repeated keys wins.
    """
    if not targets:
        return 0
    who = check_name("who", who)
    now = datetime.now(UTC)
    with _connection(bind, write=True) as conn:
        last: dict[TargetKey, tuple[int, Target]] = {}
        for index, target in enumerate(targets):
            try:
                validate_target(conn, target, ctx)
            except KpiRequestError as exc:
                raise KpiRequestError(exc.param, exc.message, index=index) from None
            last[target.key] = (index, target)
        stored = _stored(conn, list(last))
        upserts: list[dict[str, Any]] = []
        deletes: list[TargetKey] = []
        revisions: list[dict[str, Any]] = []
        for key, (index, target) in last.items():
            old = stored.get(key)
            old_value, old_status = old if old is not None else (None, None)
            new_value = None if target.value is None else float(target.value)
            new_status: str | None = None
            if new_value is not None:
                new_status = target.status or old_status or "draft"
            if (old_value, old_status) == (new_value, new_status):
                continue  # nothing changes: no write, no revision
            reason = None if target.reason is None else target.reason.strip()
            if old_status == "confirmed" and old_value != new_value and not reason:
                what = "deleting" if new_value is None else "changing"
                raise KpiRequestError(
                    "reason",
                    f"{what} the confirmed {target.level} target of {target.kpi} "
                    f"({old_value:g}) needs a reason",
                    index=index,
                )
            if new_value is None:
                deletes.append(key)
            else:
                upserts.append(
                    {
                        "kpi": key[0],
                        "grain": key[1],
                        "period_start": key[2],
                        "scope": key[3],
                        "scope_id": key[4],
                        "level": key[5],
                        "value": new_value,
                        "status": new_status,
                        "updated_at": now,
                        "updated_by": who,
                    }
                )
            if "confirmed" in (old_status, new_status):
                revisions.append(
                    {
                        "kpi": key[0],
                        "grain": key[1],
                        "period_start": key[2],
                        "scope": key[3],
                        "scope_id": key[4],
                        "level": key[5],
                        "old_value": old_value,
                        "new_value": new_value,
                        "old_status": old_status,
                        "new_status": new_status,
                        "reason": reason,
                        "changed_by": who,
                        "changed_at": now,
                    }
                )
        _write(conn, upserts, deletes, revisions)
        return len(last)


def _write(
    conn: Connection,
    upserts: Sequence[dict[str, Any]],
    deletes: Sequence[TargetKey],
    revisions: Sequence[dict[str, Any]],
) -> None:
    table = table_of(KpiTarget)
    for chunk in _chunks(upserts):
        stmt = upsert(conn, table).values(list(chunk))
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["kpi", "grain", "period_start", "scope", "scope_id", "level"],
                set_={
                    "value": stmt.excluded.value,
                    "status": stmt.excluded.status,
                    "updated_at": stmt.excluded.updated_at,
                    "updated_by": stmt.excluded.updated_by,
                },
            )
        )
    for chunk in _chunks(deletes):
        conn.execute(delete(table).where(_key_filter(chunk)))
    for chunk in _chunks(revisions):
        conn.execute(insert(table_of(KpiTargetRevision)), list(chunk))


# --- reading ------------------------------------------------------------------------------------


def _filters(
    table: Any,
    *,
    kpi: str | None,
    grain: str | None,
    scope: str | None,
    scope_id: str | None,
    start: date | None,
    end: date | None,
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    for name, wanted in (("kpi", kpi), ("grain", grain), ("scope", scope), ("scope_id", scope_id)):
        if wanted is not None:
            where.append(table.c[name] == wanted)
    if start is not None:
        where.append(table.c.period_start >= start)
    if end is not None:
        where.append(table.c.period_start <= end)
    return where


def list_targets(
    bind: Connection | Engine,
    *,
    kpi: str | None = None,
    grain: str | None = None,
    scope: str | None = None,
    scope_id: str | None = None,
    start: date | None = None,
    end: date | None = None,
    level: Level | None = "achievement",
    status: Status | None = None,
    with_reason: bool = False,
) -> list[StoredTarget]:
    """Targets matching the filters, ordered by kpi, grain, period_start, scope, id, level.

    ``level`` defaults to the achievement level (what write-back pushes); None lists all
    three. ``status`` None lists drafts and confirmed targets. ``with_reason`` reads each
    target's ``reason``: its latest revision's (None without revisions).
    """
    table = table_of(KpiTarget)
    reason: ColumnElement[Any] = null()
    if with_reason:
        rev = table_of(KpiTargetRevision)
        reason = (
            select(rev.c.reason)
            .where(
                rev.c.kpi == table.c.kpi,
                rev.c.grain == table.c.grain,
                rev.c.period_start == table.c.period_start,
                rev.c.scope == table.c.scope,
                rev.c.scope_id == table.c.scope_id,
                rev.c.level == table.c.level,
            )
            .order_by(rev.c.changed_at.desc(), rev.c.id.desc())
            .limit(1)
            .correlate(table)
            .scalar_subquery()
        )
    where = _filters(
        table, kpi=kpi, grain=grain, scope=scope, scope_id=scope_id, start=start, end=end
    )
    if level is not None:
        where.append(table.c.level == level)
    if status is not None:
        where.append(table.c.status == status)
    order = {name: i for i, name in enumerate(LEVELS)}
    with _connection(bind) as conn:
        rows = conn.execute(
            select(
                table.c.kpi,
                table.c.grain,
                table.c.period_start,
                table.c.scope,
                table.c.scope_id,
                table.c.value,
                table.c.level,
                table.c.status,
                table.c.updated_at,
                table.c.updated_by,
                reason.label("reason"),
            )
            .where(*where)
            .order_by(
                table.c.kpi,
                table.c.grain,
                table.c.period_start,
                table.c.scope,
                table.c.scope_id,
            )
        )
        targets = [
            StoredTarget(kpi_, grain_, start_, scope_, id_, value, level_, status_, why, at, by)
            for kpi_, grain_, start_, scope_, id_, value, level_, status_, at, by, why in rows
        ]
    # minimum, achievement, stretch within a key (the SQL order is by key only).
    return sorted(targets, key=lambda t: (*t.key[:5], order.get(t.level, 9)))


def list_revisions(
    bind: Connection | Engine,
    *,
    kpi: str | None = None,
    grain: str | None = None,
    period_start: date | None = None,
    scope: str | None = None,
    scope_id: str | None = None,
    level: Level | None = None,
    limit: int | None = 1000,
) -> list[Revision]:
    """Revisions matching the filters, newest first (docs/targets.md GET /v1/targets/history)."""
    table = table_of(KpiTargetRevision)
    where = _filters(
        table,
        kpi=kpi,
        grain=grain,
        scope=scope,
        scope_id=scope_id,
        start=period_start,
        end=period_start,
    )
    if level is not None:
        where.append(table.c.level == level)
    stmt = (
        select(
            table.c.id,
            table.c.kpi,
            table.c.grain,
            table.c.period_start,
            table.c.scope,
            table.c.scope_id,
            table.c.level,
            table.c.old_value,
            table.c.new_value,
            table.c.old_status,
            table.c.new_status,
            table.c.reason,
            table.c.changed_by,
            table.c.changed_at,
        )
        .where(*where)
        # A batch shares one timestamp: the id keeps its order.
        .order_by(table.c.changed_at.desc(), table.c.id.desc())
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    with _connection(bind) as conn:
        return [Revision(*tuple(row)) for row in conn.execute(stmt)]


def stored_target(
    conn: Connection,
    *,
    kpi: str,
    grain: str,
    period_start: date,
    scope: str,
    scope_id: str,
    level: Level,
) -> tuple[float, str] | None:
    """(value, status) of one stored target, or None."""
    key: TargetKey = (kpi, grain, period_start, scope, scope_id, level)
    return _stored(conn, [key]).get(key)
