"""Reps as targets see them (docs/kpi-catalog.md, docs/targets.md): skill levels from tenure, first activity, IS reps in scope.

A rep's tenure starts at the earlier of its first activity in the store (a call,
an email or a meeting booked) and the CRM's created date of the user. Under 6
months is ``junior``, 6 to 12 ``mid``, 12 and more ``senior``, unless an admin set
``level_override``. Each function answers in one SQL statement, whatever the
number of reps: first activities are correlated MIN subqueries that the
(source, rep, timestamp) indexes answer with one seek each.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal, get_args

from sqlalchemy import Connection, Engine, false, func, select, true, update
from sqlalchemy.sql.elements import ColumnElement

from kpi.changes import record_all
from kpi.compiler import Scope, not_field_sales
from kpi.engine import KpiRequestError, _connection, parse_scope_id
from kpi.periods import KpiContext, day_start_utc
from models.crm import Call, Email, Meeting, Rep
from models.store import table_of

SkillLevel = Literal["junior", "mid", "senior"]
SKILL_LEVELS: tuple[str, ...] = get_args(SkillLevel)
MID_MONTHS = 6
SENIOR_MONTHS = 12

# The activities whose earliest timestamp starts a rep's tenure: (model, timestamp column).
_ACTIVITIES: tuple[tuple[type[Any], str], ...] = (
    (Call, "occurred_at"),
    (Email, "sent_at"),
    (Meeting, "booked_at"),
)


@dataclass(frozen=True)
class RepLevel:
    """A rep's skill level as of a day, and where it comes from."""

    rep_id: str  # <source>:<crm id>
    name: str
    email: str | None
    team_id: str | None  # <source>:<team crm id>
    active: bool
    level: SkillLevel  # the override when set, else from tenure
    tenure_level: SkillLevel
    override: SkillLevel | None
    since: date | None  # tenure start (local day); None: no activity and no CRM created date

    def as_dict(self) -> dict[str, Any]:
        """The rep as /v1/teams lists it (``id`` for the rep id)."""
        return {
            "id": self.rep_id,
            "name": self.name,
            "email": self.email,
            "team_id": self.team_id,
            "active": self.active,
            "level": self.level,
            "tenure_level": self.tenure_level,
            "override": self.override,
            "since": None if self.since is None else self.since.isoformat(),
        }


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later, clipped to the month's end (31 Aug + 6 → 28/29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    first = date(year, month + 1, 1)
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first.replace(day=min(day.day, (following - first).days))


def tenure_level(since: date | None, as_of: date) -> SkillLevel:
    """junior under 6 months, mid from 6 to under 12, senior from 12 (no start: junior)."""
    if since is None:
        return "junior"
    if as_of >= add_months(since, SENIOR_MONTHS):
        return "senior"
    if as_of >= add_months(since, MID_MONTHS):
        return "mid"
    return "junior"


def first_activity_columns(reps: Any, before: datetime | None) -> list[ColumnElement[Any]]:
    """Per rep row of ``reps``: the earliest call, email and meeting (correlated MINs)."""
    out: list[ColumnElement[Any]] = []
    for model, column in _ACTIVITIES:
        table = table_of(model)
        at = table.c[column]
        where = [
            table.c.source == reps.c.source,
            table.c.rep_crm_id == reps.c.crm_id,
            table.c.deleted == false(),
        ]
        if before is not None:
            where.append(at < before)
        out.append(
            select(func.min(at)).where(*where).scalar_subquery().label(f"first_{model.__name__}")
        )
    return out


def _earliest(values: Collection[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _cutoff(ctx: KpiContext, as_of: date) -> datetime:
    return day_start_utc(as_of + timedelta(days=1), ctx.zone)


def rep_levels(
    bind: Connection | Engine,
    ctx: KpiContext,
    *,
    as_of: date | None = None,
    scope: Scope = "org",
    scope_id: str | None = None,
    include_inactive: bool = True,
) -> list[RepLevel]:
    """Every non-deleted rep of the scope with its skill level as of ``as_of`` (default today).

    Activities after ``as_of`` do not count (a replay); one SQL statement for all reps.
    """
    day = as_of or ctx.today()
    reps = table_of(Rep)
    where: list[ColumnElement[bool]] = [reps.c.deleted == false()]
    key = parse_scope_id(scope, scope_id)
    if scope != "org" and key is None:
        raise KpiRequestError("id", f"a {scope} needs an id")
    if key is not None:
        where.append(reps.c.source == key[0])
        where.append((reps.c.team_crm_id if scope == "team" else reps.c.crm_id) == key[1])
    if not include_inactive:
        where.append(reps.c.active == true())
    cutoff = _cutoff(ctx, day)
    stmt = (
        select(
            reps.c.source,
            reps.c.crm_id,
            reps.c.name,
            reps.c.email,
            reps.c.team_crm_id,
            reps.c.active,
            reps.c.level_override,
            reps.c.crm_created_at,
            *first_activity_columns(reps, cutoff),
        )
        .where(*where)
        .order_by(reps.c.source, reps.c.crm_id)
    )
    out: list[RepLevel] = []
    with _connection(bind) as conn:
        rows = conn.execute(stmt).all()
    for source, crm_id, name, email, team, active, override, created, *firsts in rows:
        # A CRM created date after as_of is not yet known on that day.
        start = _earliest([*firsts, created if created is not None and created < cutoff else None])
        since = None if start is None else start.astimezone(ctx.zone).date()
        from_tenure = tenure_level(since, day)
        chosen: SkillLevel | None = override if override in SKILL_LEVELS else None
        out.append(
            RepLevel(
                rep_id=f"{source}:{crm_id}",
                name=name,
                email=email,
                team_id=None if team is None else f"{source}:{team}",
                active=bool(active),
                level=chosen or from_tenure,
                tenure_level=from_tenure,
                override=chosen,
                since=since,
            )
        )
    # Byte order of the ids, as KPI rows are ordered.
    return sorted(out, key=lambda r: r.rep_id.encode())


def set_rep_level(bind: Connection | Engine, rep_id: str, level: SkillLevel | None) -> None:
    """Override a rep's skill level (docs/api.md PUT /v1/reps/{id}); None goes back to tenure."""
    if level is not None and level not in SKILL_LEVELS:
        raise KpiRequestError(
            "level", f"unknown level {level!r}; one of {', '.join(SKILL_LEVELS)}, or null"
        )
    key = parse_scope_id("rep", rep_id)
    if key is None:
        raise KpiRequestError("id", "a rep id: <source>:<crm id>")
    reps = table_of(Rep)
    with _connection(bind, write=True) as conn:
        result = conn.execute(
            update(reps)
            .where(reps.c.source == key[0], reps.c.crm_id == key[1], reps.c.deleted == false())
            .values(level_override=level)
        )
        if result.rowcount == 0:
            raise KpiRequestError("id", f"no rep with id {rep_id!r}")
        record_all(conn, key[0])  # as any change of a rep: every answer of its source moves


def is_reps(
    conn: Connection,
    scope: Scope,
    scope_id: str | None,
    *,
    ctx: KpiContext | None = None,
    field_sales_team_ids: Collection[str] = (),
) -> list[tuple[str, str]]:
    """(rep id, name) of the active, non-deleted inside-sales reps of the org or a team.

    The reps of ``ctx``'s field-sales teams (docs/kpi-catalog.md) are left out, and so are those of
    ``field_sales_team_ids`` (<source>:<crm id> of teams), for callers without a context.
    """
    reps = table_of(Rep)
    where: list[ColumnElement[bool]] = [reps.c.deleted == false(), reps.c.active == true()]
    if ctx is not None:
        where += not_field_sales(ctx, reps.c.source, reps.c.crm_id)
    key = parse_scope_id(scope, scope_id)
    if scope == "team" and key is not None:
        where += [reps.c.source == key[0], reps.c.team_crm_id == key[1]]
    elif scope == "rep" and key is not None:
        where += [reps.c.source == key[0], reps.c.crm_id == key[1]]
    rows = conn.execute(
        select(reps.c.source, reps.c.crm_id, reps.c.name, reps.c.team_crm_id).where(*where)
    )
    excluded = set(field_sales_team_ids)
    out = [
        (f"{source}:{crm_id}", name)
        for source, crm_id, name, team in rows
        if team is None or f"{source}:{team}" not in excluded
    ]
    return sorted(out, key=lambda r: r[0].encode())


def first_activity(
    conn: Connection,
    ctx: KpiContext,
    scope: Scope,
    *,
    as_of: date,
) -> Mapping[str, date]:
    """The local day of the first activity (through ``as_of``) of each rep, team, or the org.

    Keyed by scope id ("org" at org scope); a member without activity is absent.
    """
    cutoff = _cutoff(ctx, as_of)
    if scope == "org":
        firsts = []
        for model, column in _ACTIVITIES:
            table = table_of(model)
            at = table.c[column]
            firsts.append(
                select(func.min(at))
                .where(table.c.deleted == false(), at < cutoff)
                .scalar_subquery()
            )
        values = conn.execute(select(*firsts)).one()
        start = _earliest(list(values))
        return {} if start is None else {"org": start.astimezone(ctx.zone).date()}
    reps = table_of(Rep)
    rows = conn.execute(
        select(
            reps.c.source,
            reps.c.crm_id,
            reps.c.team_crm_id,
            *first_activity_columns(reps, cutoff),
        ).where(reps.c.deleted == false())
    )
    out: dict[str, date] = {}
    for row in rows:
        source, crm_id, team = row[0], row[1], row[2]
        start = _earliest(list(row[3:]))
        if start is None:
            continue
        if scope == "rep":
            member = f"{source}:{crm_id}"
        elif team is None:
            continue
        else:
            member = f"{source}:{team}"
        day = start.astimezone(ctx.zone).date()
        out[member] = min(day, out.get(member, day))
    return out
