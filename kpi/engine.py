"""compute(): dense KPI rows (docs/api.md, docs/kpi-catalog.md) with targets, achievement and band status.

Also the costs CAC divides (targets live in kpi/targets.py). Everything here
runs on a Connection or an Engine the caller owns; nothing here commits
except through ``engine.begin()`` when handed an Engine.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from itertools import repeat
from typing import Any, Literal, NamedTuple, get_args

from sqlalchemy import Connection, Engine, false, select

from kpi.catalog import CATALOG, KPIS, TIERS, KpiSpec
from kpi.compiler import (
    BYS,
    SCOPES,
    By,
    CompiledRows,
    Request,
    Scope,
    compile_rows,
    field_sales_teams,
    inside_sales_only,
    target_scope,
)
from kpi.periods import GRAINS, Grain, KpiContext, period_starts
from kpi.rollups import Pending, pending, rollups_current
from models.crm import Rep, Team
from models.kpi import KpiCost, KpiTarget
from models.store import table_of, upsert

MAX_ROWS = 200_000
MAX_DAY_GRAIN_YEARS = 3


class KpiRequestError(ValueError):
    """A request the engine cannot answer; ``param`` names the parameter to fix (an API 422).

    ``index`` is the position of the refused item in a list (put_targets), if any.
    """

    def __init__(self, param: str, message: str, *, index: int | None = None) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message
        self.index = index


class RowBand(NamedTuple):
    low: float | None
    high: float | None


class RowTargets(NamedTuple):
    """A row's targets at the three levels (docs/targets.md); None where unset."""

    minimum: float | None
    achievement: float | None
    stretch: float | None


NO_TARGETS = RowTargets(None, None, None)


class KpiRow(NamedTuple):
    """One KPI value: the docs/api.md row (a named tuple: a year of daily rows is 584,000 of them)."""

    kpi: str
    tier: str
    grain: str
    period_start: date
    scope: str
    scope_id: str
    scope_name: str
    by: str | None
    by_value: str | int | None
    value: float | None
    numerator: float | None
    denominator: float | None
    target: float | None
    achievement: float | None
    band: RowBand
    status: str | None
    targets: RowTargets = NO_TARGETS  # ``target`` is ``targets.achievement``
    # A running period's count or sum with a target (docs/sheets.md): target × business days
    # elapsed ÷ business days in the period, and value ÷ that; None on other rows.
    pace_target: float | None = None
    pace_achievement: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-ready data (period_start as an ISO date)."""
        row = self._asdict()
        row["period_start"] = self.period_start.isoformat()
        row["band"] = {"low": self.band.low, "high": self.band.high}
        row["targets"] = self.targets._asdict()
        return row


@contextmanager
def _connection(bind: Connection | Engine, *, write: bool = False) -> Iterator[Connection]:
    if isinstance(bind, Connection):
        yield bind
    elif write:
        with bind.begin() as conn:
            yield conn
    else:
        with bind.connect() as conn:
            yield conn


# --- validation ---------------------------------------------------------------------------------


def select_specs(kpis: Sequence[str] | None, tier: str | None = None) -> list[KpiSpec]:
    """The specs asked for, in key order (the order rows come in); raises on an unknown key."""
    if tier is not None and tier not in TIERS:
        raise KpiRequestError("tier", f"unknown tier {tier!r}; one of {', '.join(TIERS)}")
    if kpis:
        unknown = [k for k in kpis if k not in KPIS]
        if unknown:
            raise KpiRequestError("kpi", f"unknown KPI {', '.join(map(repr, unknown))}")
        specs = [KPIS[k] for k in dict.fromkeys(kpis)]
    else:
        specs = list(CATALOG)
    if tier is not None:
        specs = [s for s in specs if s.tier == tier]
    return sorted(specs, key=lambda s: s.key.encode())


def parse_scope_id(scope: str, scope_id: str | None) -> tuple[str, str] | None:
    """Split a ``<source>:<crm id>`` scope id; "org" (or nothing) at org scope."""
    if scope not in SCOPES:
        raise KpiRequestError("scope", f"unknown scope {scope!r}; one of {', '.join(SCOPES)}")
    if scope_id is None:
        return None
    if scope == "org":
        if scope_id != "org":
            raise KpiRequestError("id", "the org scope has the single id 'org'")
        return None
    source, sep, crm_id = scope_id.partition(":")
    if not sep or not source or not crm_id:
        raise KpiRequestError("id", f"{scope} ids are '<source>:<crm id>', not {scope_id!r}")
    return source, crm_id


def scope_members(
    conn: Connection,
    scope: str,
    key: tuple[str, str] | None,
    ctx: KpiContext | None = None,
    *,
    leavers: bool = False,
) -> list[tuple[str, str]]:
    """(scope id, name) of every known, non-deleted rep or team (the org for org).

    With ``ctx``, a listing leaves out field-sales reps and teams (docs/kpi-catalog.md); a rep or
    team asked for by its id is found whatever its kind. ``leavers``: a rep asked for by
    its id is found after it left (deactivated or deleted) too.
    """
    if scope == "org":
        return [("org", "org")]
    table = table_of(Rep if scope == "rep" else Team)
    where = [] if leavers and key is not None and scope == "rep" else [table.c.deleted == false()]
    if key is not None:
        where += [table.c.source == key[0], table.c.crm_id == key[1]]
    elif ctx is not None:
        where += inside_sales_only(ctx, scope, table)
    rows = conn.execute(select(table.c.source, table.c.crm_id, table.c.name).where(*where))
    return [(f"{source}:{crm_id}", name) for source, crm_id, name in rows]


TeamKind = Literal["is", "fs"]
TEAM_KINDS: tuple[str, ...] = (*get_args(TeamKind), "all")


@dataclass(frozen=True)
class TeamRep:
    """A rep as GET /v1/teams lists it."""

    id: str
    name: str
    email: str | None
    active: bool

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "email": self.email, "active": self.active}


@dataclass(frozen=True)
class TeamListing:
    """A team with its kind (inside sales ``is``, field sales ``fs``) and its reps."""

    id: str
    name: str
    kind: TeamKind
    reps: tuple[TeamRep, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "reps": [r.as_dict() for r in self.reps],
        }


def list_teams(
    bind: Connection | Engine, ctx: KpiContext, *, kind: str = "is"
) -> list[TeamListing]:
    """Non-deleted teams of ``kind`` (is, fs or all) with their non-deleted reps, by id."""
    if kind not in TEAM_KINDS:
        raise KpiRequestError("kind", f"unknown team kind {kind!r}; one of {', '.join(TEAM_KINDS)}")
    teams, reps = table_of(Team), table_of(Rep)
    with _connection(bind) as conn:
        fs_select = field_sales_teams(ctx)
        field_sales: set[tuple[str, str]] = (
            set() if fs_select is None else {(s, c) for s, c in conn.execute(fs_select)}
        )
        team_rows = conn.execute(
            select(teams.c.source, teams.c.crm_id, teams.c.name).where(teams.c.deleted == false())
        ).all()
        rep_rows = conn.execute(
            select(
                reps.c.source,
                reps.c.team_crm_id,
                reps.c.crm_id,
                reps.c.name,
                reps.c.email,
                reps.c.active,
            ).where(reps.c.deleted == false(), reps.c.team_crm_id.is_not(None))
        ).all()
    members: dict[tuple[str, str], list[TeamRep]] = {}
    for source, team_id, crm_id, name, email, active in rep_rows:
        members.setdefault((source, team_id), []).append(
            TeamRep(f"{source}:{crm_id}", name, email, bool(active))
        )
    out: list[TeamListing] = []
    for source, crm_id, name in team_rows:
        team_kind: TeamKind = "fs" if (source, crm_id) in field_sales else "is"
        if kind != "all" and team_kind != kind:
            continue
        listed = sorted(members.get((source, crm_id), []), key=lambda r: r.id.encode())
        out.append(TeamListing(f"{source}:{crm_id}", name, team_kind, tuple(listed)))
    return sorted(out, key=lambda t: t.id.encode())


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _check_dates(start: date, end: date) -> None:
    if not isinstance(start, date) or isinstance(start, datetime):
        raise KpiRequestError("from", "a date (YYYY-MM-DD)")
    if not isinstance(end, date) or isinstance(end, datetime):
        raise KpiRequestError("to", "a date (YYYY-MM-DD)")
    if end < start:
        raise KpiRequestError("to", f"{end} is before from={start}")


# --- compute ------------------------------------------------------------------------------------


def compute(
    bind: Connection | Engine,
    ctx: KpiContext,
    *,
    kpis: Sequence[str] | None = None,
    grain: Grain = "month",
    start: date,
    end: date,
    scope: Scope = "org",
    scope_id: str | None = None,
    by: By | None = None,
    tier: str | None = None,
    as_of: date | None = None,
    use_rollups: bool = True,
    max_rows: int | None = MAX_ROWS,
    before_hour: int | None = None,
) -> list[KpiRow]:
    """KPI rows for every period overlapping [start, end] (each row covers its whole period).

    Dense per docs/kpi-catalog.md: one row per KPI × period × scope id × breakdown value present
    in the data, ordered by kpi, scope_id, period_start, by_value. ``as_of`` cuts every
    record at the end of that local day, by its own timestamp (a deal closed before it
    but created after it is cut too; call-list members count touches before it only),
    so a replay never sees later records. Field-sales reps and teams (``ctx``) are not
    listed at rep or team scope unless asked for by id. Raises KpiRequestError
    naming the parameter at fault, including when more than ``max_rows`` rows would come.
    ``before_hour`` cuts each local day before that hour (the daily sheet's 12:00 check).
    The running period's count and sum rows with a target carry ``pace_target`` and
    ``pace_achievement`` (the running period holds as_of, else today).
    """
    specs = select_specs(kpis, tier)
    if grain not in GRAINS:
        raise KpiRequestError("grain", f"unknown grain {grain!r}; one of {', '.join(GRAINS)}")
    if by is not None and by not in BYS:
        raise KpiRequestError("by", f"unknown breakdown {by!r}; one of {', '.join(BYS)}")
    _check_dates(start, end)
    if grain == "day" and end > _years_after(start, MAX_DAY_GRAIN_YEARS):
        raise KpiRequestError(
            "to",
            f"a day-grain range is at most {MAX_DAY_GRAIN_YEARS} years; "
            f"{start} to {end} is longer: use week or month grain, or a shorter range",
        )
    if before_hour is not None and not 0 <= before_hour <= 24:
        raise KpiRequestError("before_hour", "an hour from 0 to 24")
    key = parse_scope_id(scope, scope_id)
    periods = period_starts(grain, start, end, ctx.fiscal_year_start_month)
    with _connection(bind) as conn:
        # A rep who left still has the rows of the periods where it worked (compile_rows).
        members = scope_members(conn, scope, key, ctx, leavers=True)
        if key is not None and not members:
            raise KpiRequestError("id", f"no {scope} with id {scope_id!r}")
        least = len(specs) * len(periods) * len(members)
        if max_rows is not None and least > max_rows:
            raise _too_many(least, max_rows)
        if not specs:
            return []
        rollups = use_rollups and rollups_current(conn, ctx)
        unflushed = pending(conn) if rollups else Pending()
        req = Request(
            ctx=ctx,
            dialect=conn.dialect.name,
            grain=grain,
            periods=tuple(periods),
            scope=scope,
            scope_key=key,
            by=by,
            cutoff=as_of,
            before_hour=before_hour,
            use_rollups=rollups,
            dirty_facts=unflushed.facts,
            dirty_leads=unflushed.leads,
            dirty_sources=unflushed.sources,
        )
        compiled = compile_rows(specs, req, _targeted(conn, req, specs))
        result = conn.execute(compiled.statement)
        keys = list(result.keys())
        if max_rows is None:
            wide = result.fetchall()
        else:
            wide = result.fetchmany(max_rows // len(specs) + 1)
            result.close()
            if len(wide) * len(specs) > max_rows:
                raise _too_many(len(wide) * len(specs), max_rows, at_least=True)
    return _rows(compiled, keys, wide, grain, scope, by)


def _targeted(conn: Connection, req: Request, specs: Sequence[KpiSpec]) -> set[str]:
    """The KPIs with a target at this grain and target scope in the request's periods."""
    scope = target_scope(req)
    if scope is None:
        return set()
    table = table_of(KpiTarget)
    rows = conn.execute(
        select(table.c.kpi)
        .where(
            table.c.grain == req.grain,
            table.c.scope == scope,
            table.c.kpi.in_([s.key for s in specs]),
            table.c.period_start >= req.periods[0],
            table.c.period_start <= req.periods[-1],
        )
        .distinct()
    )
    return set(rows.scalars())


def _too_many(count: int, limit: int, at_least: bool = False) -> KpiRequestError:
    more = "more than " if at_least else ""
    return KpiRequestError(
        "to",
        f"the request would return {more}{count:,} rows (limit {limit:,}); "
        "narrow it: a shorter from/to, a coarser grain, fewer kpi, an id, or no by",
    )


def _rows(
    compiled: CompiledRows,
    keys: list[str],
    wide: Sequence[Any],
    grain: str,
    scope: str,
    by: str | None,
) -> list[KpiRow]:
    """One KpiRow per KPI per wide row: KPI order, then the rows' scope id, period, by order.

    A reshaping only (every figure comes from SQL). It runs column-wise in C — zip
    over the result's columns, tuple.__new__ for each row — with the cyclic garbage
    collector paused: the rows hold no references back, and a year of daily rows per
    rep is 584,000 of them.
    """
    if not wide:
        return []
    index = {name: i for i, name in enumerate(keys)}
    columns = list(zip(*wide, strict=True))
    make_row = partial(tuple.__new__, KpiRow)
    make_band = partial(tuple.__new__, RowBand)
    make_targets = partial(tuple.__new__, RowTargets)
    nothing = repeat(None)

    def column(label: str | None) -> Iterable[Any]:
        return nothing if label is None else columns[index[label]]

    out: list[KpiRow] = []
    collecting = gc.isenabled()
    gc.disable()
    try:
        for kpi in compiled.kpis:
            bands: Iterable[RowBand]
            if kpi.band_columns is None:
                bands = repeat(RowBand(*kpi.band))
            else:
                low, high = kpi.band_columns
                bands = map(make_band, zip(column(low), column(high), strict=False))
            targets: Iterable[RowTargets] = repeat(NO_TARGETS)
            if kpi.target is not None:
                targets = map(
                    make_targets,
                    zip(
                        column(kpi.target_minimum),
                        column(kpi.target),
                        column(kpi.target_stretch),
                        strict=False,
                    ),
                )
            out.extend(
                map(
                    make_row,
                    zip(
                        repeat(kpi.spec.key),
                        repeat(kpi.spec.tier),
                        repeat(grain),
                        columns[0],
                        repeat(scope),
                        columns[1],
                        columns[2],
                        repeat(by),
                        columns[3],
                        column(kpi.value),
                        column(kpi.numerator),
                        column(kpi.denominator),
                        column(kpi.target),
                        column(kpi.achievement),
                        bands,
                        column(kpi.status),
                        targets,
                        column(kpi.pace_target),
                        column(kpi.pace_achievement),
                    ),
                )
            )
    finally:
        if collecting:
            gc.enable()
    return out


# --- costs ----------------------------------------------------------------------------------------


def put_cost(bind: Connection | Engine, month: date, amount: Decimal | float | int) -> None:
    """Enter the acquisition costs of a month (any day of it) for CAC; replaces an earlier entry."""
    value = Decimal(str(amount))
    if not value.is_finite():
        raise KpiRequestError("amount", "a finite number")
    if value < 0 or abs(value) >= Decimal("1e16"):
        raise KpiRequestError("amount", "from 0 to 9,999,999,999,999,999.99")
    table = table_of(KpiCost)
    with _connection(bind, write=True) as conn:
        stmt = upsert(conn, table).values(
            month=month.replace(day=1), amount=value, updated_at=datetime.now(UTC)
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["month"],
                set_={"amount": stmt.excluded.amount, "updated_at": stmt.excluded.updated_at},
            )
        )


def list_costs(bind: Connection | Engine) -> list[tuple[date, Decimal]]:
    """Every month's entered costs, by month."""
    table = table_of(KpiCost)
    with _connection(bind) as conn:
        rows = conn.execute(select(table.c.month, table.c.amount).order_by(table.c.month))
        return [(month, Decimal(amount)) for month, amount in rows]
