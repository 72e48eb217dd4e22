"""One compiler from catalog specs to SQLAlchemy Core.

The compiled statement has four layers, all SQL:

1. **facts** — one grouped SELECT per fact (calls, emails, meetings, follow-up
   tasks, deals created, deals closed, leads created, …) producing, per
   (period start, scope id, breakdown value), the additive measures its KPIs
   need. Activity facts read the daily rollups when they can answer (no lead
   attribute, no hour breakdown, rollups built for this context); otherwise
   the raw rows. Three facts are not plain sums: the lead response median (the
   one escape hatch, ``percentile_cont`` on PostgreSQL, a window-function median
   on SQLite), the reps in scope (a distinct count, field sales left out) and the
   call-list members worked by their period's end (a correlated EXISTS).
2. **frame** — every period × scope id × breakdown value present in the data,
   so rows are dense; facts and frame are unioned and grouped into one wide
   row of measures per key (``w``), counts and sums 0 where nothing happened.
3. **kpis** — per spec, numerator, denominator and value over ``w``; ratios are
   ``CAST(n AS FLOAT) / NULLIF(d, 0)``; bands scaled by business days × reps.
4. **rows** — joined to the targets for achievement and band status, ordered
   by kpi, scope id, period start, breakdown value.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any, Literal, get_args

from sqlalchemy import (
    BigInteger,
    Date,
    Float,
    Integer,
    Select,
    String,
    and_,
    case,
    cast,
    column,
    false,
    func,
    literal,
    null,
    or_,
    select,
    true,
    tuple_,
    type_coerce,
    union,
    union_all,
    values,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE, CompoundSelect, FromClause, Subquery

from kpi.catalog import KpiSpec
from kpi.periods import (
    BusinessCalendar,
    Grain,
    KpiContext,
    TimeBuckets,
    day_start_utc,
    month_days,
    next_period,
    period_start,
    sql_int,
    sql_text,
)
from models.crm import (
    Call,
    CallList,
    CallListMember,
    CrmRecord,
    Deal,
    Email,
    FollowUpTask,
    Lead,
    Meeting,
    Rep,
    Team,
)
from models.kpi import (
    DailyCalls,
    DailyEmails,
    DailyMeetings,
    DailyRollup,
    DailyTasks,
    ForecastSnapshot,
    KpiCost,
    KpiTarget,
    LeadDirty,
    LeadFirstTouch,
    RollupDirtyDay,
)
from models.store import table_of

Scope = Literal["org", "team", "rep"]
SCOPES: tuple[str, ...] = get_args(Scope)
By = Literal["rep", "team", "channel", "industry", "company_size", "weekday", "hour", "deal_type"]
BYS: tuple[str, ...] = get_args(By)
LEAD_BYS = frozenset({"channel", "industry", "company_size"})
# deal_type (new / existing) is an attribute of deals only. Records that have no such
# attribute land in the null breakdown value, the way a call without a lead lands in the
# null company_size: the rows of a breakdown still add up to the unbroken total.
DEAL_BYS = frozenset({"deal_type"})
# Breakdowns a per-rep-per-business-day band still means something for.
PER_DAY_BAND_BYS = frozenset({None, "rep", "team", "weekday"})

# docs/sync.md: a call is reached (着電) when it rang through to someone or something.
REACHED_OUTCOMES = ("connected", "no_answer", "voicemail", "live_message", "wrong_number")
BANT_FIELDS = ("bant_budget", "bant_authority", "bant_need", "bant_timing")


# The type of a breakdown value (text unless given), for typed NULLs in unions.
_BY_TYPE: dict[str | None, type[Any]] = {"weekday": Integer, "hour": Integer}


def _typed_null(type_: Any) -> ColumnElement[Any]:
    # PostgreSQL resolves UNION column types pairwise: an untyped NULL column becomes text.
    return cast(null(), type_)


# --- the request ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What one computation asks for, already validated."""

    ctx: KpiContext
    dialect: str
    grain: Grain
    periods: tuple[date, ...]  # period starts, ascending
    scope: Scope = "org"
    scope_key: tuple[str, str] | None = None  # (source, crm id) of the scope id filter
    by: By | None = None
    cutoff: date | None = None  # the data stops at the end of this local day (as_of)
    # Each local day's data stops before this hour (12: the daily sheet's midday check):
    # a record at 12:00:00 exactly is after the check. Read from raw rows only.
    before_hour: int | None = None
    use_rollups: bool = True
    # The data window, when it is not the periods' span (the forecast's rest of the month).
    window: tuple[date, date] | None = None
    # Rollup keys not flushed yet (kpi/rollups.py): read from raw rows, merged on read.
    dirty_facts: frozenset[str] = frozenset()
    dirty_leads: bool = False
    dirty_sources: frozenset[str] = frozenset()  # sources being (re)loaded as a whole

    @property
    def first_day(self) -> date:
        return self.window[0] if self.window else self.periods[0]

    @property
    def end_day(self) -> date:
        """The exclusive end of the data window."""
        end = self.window[1] if self.window else next_period(self.periods[-1], self.grain)
        if self.cutoff is not None:
            end = min(end, self.cutoff + timedelta(days=1))
        return max(end, self.first_day)

    @cached_property
    def utc_window(self) -> tuple[datetime, datetime]:
        zone = self.ctx.zone
        return day_start_utc(self.first_day, zone), day_start_utc(self.end_day, zone)

    @cached_property
    def buckets(self) -> TimeBuckets:
        return TimeBuckets(self.dialect, self.ctx.zone, self.utc_window)

    @property
    def scope_id(self) -> str | None:
        return None if self.scope_key is None else ":".join(self.scope_key)


# --- dimensions: period, scope id, breakdown value -------------------------------------------


class _Dims:
    """The key columns of a fact row and the joins and filters they need."""

    def __init__(
        self,
        req: Request,
        *,
        source: ColumnElement[str],
        rep: ColumnElement[str | None],
        day: ColumnElement[date],
        hour: Callable[[], ColumnElement[int]] | None,
        lead: FromClause | None,
        channel_fallback: ColumnElement[str | None] | None = None,
        rep_filter: ColumnElement[str | None] | None = None,
        deal_type: ColumnElement[str | None] | None = None,
        period: ColumnElement[date] | None = None,
    ) -> None:
        self.req = req
        self.source = source
        self.rep = rep
        self.rep_table: FromClause | None = None
        if req.scope == "team" or req.by == "team":
            self.rep_table = table_of(Rep).alias("scope_rep")
        b = req.buckets
        self.period = (
            period
            if period is not None
            else b.period(day, req.grain, req.ctx.fiscal_year_start_month)
        )
        colon = sql_text(":")
        if req.scope == "org":
            self.scope_id: ColumnElement[Any] = sql_text("org")
        elif req.scope == "rep":
            self.scope_id = source + colon + rep
        else:
            assert self.rep_table is not None
            self.scope_id = self.rep_table.c.source + colon + self.rep_table.c.team_crm_id
        self.filters: list[ColumnElement[bool]] = []
        if req.scope == "rep":
            if req.scope_key is not None:
                self.filters += [
                    source == req.scope_key[0],
                    (rep_filter if rep_filter is not None else rep) == req.scope_key[1],
                ]
            else:
                self.filters.append(rep.is_not(None))
        elif req.scope == "team":
            assert self.rep_table is not None
            if req.scope_key is not None:
                self.filters += [
                    self.rep_table.c.source == req.scope_key[0],
                    self.rep_table.c.team_crm_id == req.scope_key[1],
                ]
            else:
                self.filters.append(self.rep_table.c.team_crm_id.is_not(None))
        by = req.by
        self.by_value: ColumnElement[Any]
        if by is None:
            self.by_value = _typed_null(_BY_TYPE.get(req.by, String))
        elif by == "rep":
            self.by_value = source + colon + rep
        elif by == "team":
            assert self.rep_table is not None
            self.by_value = self.rep_table.c.source + colon + self.rep_table.c.team_crm_id
        elif by == "weekday":
            self.by_value = b.weekday(day)
        elif by == "hour":
            if hour is None:
                raise ValueError("this fact has no hour")
            self.by_value = hour()
        elif by in DEAL_BYS:
            # Not a deal: the null value (see DEAL_BYS).
            self.by_value = (
                _typed_null(String) if deal_type is None else func.nullif(deal_type, sql_text(""))
            )
        else:
            if lead is None:
                self.by_value = _typed_null(_BY_TYPE.get(req.by, String))
            else:
                attribute = func.nullif(lead.c[by], sql_text(""))
                if by == "channel" and channel_fallback is not None:
                    attribute = func.coalesce(
                        attribute, func.nullif(channel_fallback, sql_text(""))
                    )
                self.by_value = attribute

    def join(self, from_: FromClause) -> FromClause:
        if self.rep_table is None:
            return from_
        on = and_(self.rep_table.c.source == self.source, self.rep_table.c.crm_id == self.rep)
        return from_.join(self.rep_table, on, isouter=self.req.scope != "team")

    @property
    def keys(self) -> list[ColumnElement[Any]]:
        return [
            type_coerce(self.period, Date).label("period_start"),
            self.scope_id.label("scope_id"),
            self.by_value.label("by_value"),
        ]

    @property
    def group_by(self) -> list[ColumnElement[Any]]:
        # Constant keys stay out of GROUP BY: PostgreSQL rejects a non-integer constant there.
        cols = [self.period]
        if self.req.scope != "org":
            cols.append(self.scope_id)
        if self.req.by is not None:
            cols.append(self.by_value)
        return cols

    def select(
        self,
        measures: dict[str, ColumnElement[Any]],
        from_: FromClause,
        where: Iterable[ColumnElement[bool]],
    ) -> Select[Any]:
        """The grouped fact select: key columns, then every measure as a FLOAT sum."""
        return (
            select(*self.keys, *(cast(func.sum(e), Float).label(n) for n, e in measures.items()))
            .select_from(self.join(from_))
            .where(*where, *self.filters)
            .group_by(*self.group_by)
        )


# --- facts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowEnv:
    """What a fact's per-row measure expressions may use besides the row itself."""

    buckets: TimeBuckets
    effective_ms: int
    # Follow-ups: completed by the end of the local due day (docs/kpi-catalog.md: 23:59:59.999 local).
    on_time: Callable[[FromClause], ColumnElement[bool]]
    lead: FromClause | None = None


RowMeasures = Callable[[FromClause, RowEnv], dict[str, ColumnElement[Any]]]


@dataclass(frozen=True)
class Fact:
    """Records of one table that land in a period by one timestamp, with their measures."""

    name: str
    table: type[CrmRecord]
    ts: str  # the timestamp that puts a record in a period
    where: Callable[[FromClause], list[ColumnElement[bool]]]
    measures: RowMeasures  # per-row values; a fact's measure is their SUM
    provides: tuple[str, ...]
    rollup: type[DailyRollup] | None = None
    lead: Literal["contact", "self", "inner"] = "contact"  # how the fact reaches its lead
    channel_fallback: str | None = None  # deals: LeadSource when no lead is linked


def _one() -> ColumnElement[int]:
    return sql_int(1)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


def _not_deleted(t: FromClause) -> ColumnElement[bool]:
    return t.c.deleted == false()


def _calls_where(t: FromClause) -> list[ColumnElement[bool]]:
    # A call with no direction is not outbound (docs/kpi-catalog.md).
    return [_not_deleted(t), t.c.direction == "outbound"]


def _calls_measures(t: FromClause, env: RowEnv) -> dict[str, ColumnElement[Any]]:
    connected = t.c.outcome == "connected"
    return {
        "calls": _one(),
        "calls_reached": _count_if(t.c.outcome.in_(REACHED_OUTCOMES)),
        "calls_connected": _count_if(connected),
        # Exact: ms / 1000 >= threshold, so 59,999 ms is not 60 s.
        "calls_effective": _count_if(and_(connected, t.c.duration_ms >= env.effective_ms)),
        "talk_ms": case((connected, func.coalesce(t.c.duration_ms, 0)), else_=0),
    }


def _emails_where(t: FromClause) -> list[ColumnElement[bool]]:
    return [_not_deleted(t), t.c.direction == "outbound", t.c.sent == true()]


def _emails_measures(t: FromClause, env: RowEnv) -> dict[str, ColumnElement[Any]]:
    tracked = t.c.tracked == true()
    return {
        "emails_sent": _one(),
        # Only tracked sent emails enter the rate denominators; unknown counts as not opened.
        "emails_tracked": _count_if(tracked),
        "emails_opened": _count_if(and_(tracked, t.c.opened == true())),
        "emails_clicked": _count_if(and_(tracked, t.c.clicked == true())),
        "emails_replied": _count_if(and_(tracked, t.c.replied == true())),
    }


def _meetings_measures(t: FromClause, env: RowEnv) -> dict[str, ColumnElement[Any]]:
    return {
        "meetings_booked": _one(),
        "meetings_completed": _count_if(t.c.outcome == "completed"),
        "meetings_with_start": _count_if(t.c.start_at.is_not(None)),
        "meetings_canceled": _count_if(t.c.outcome == "canceled"),
    }


def _tasks_measures(t: FromClause, env: RowEnv) -> dict[str, ColumnElement[Any]]:
    return {"tasks_due": _one(), "tasks_on_time": _count_if(env.on_time(t))}


def _acquired(t: FromClause, name: str) -> ColumnElement[bool]:
    value = t.c[name]
    return and_(value.is_not(None), func.trim(value) != "")


def _deals_created_measures(t: FromClause, env: RowEnv) -> dict[str, ColumnElement[Any]]:
    is_sourced = t.c.rep_crm_id.is_not(None)
    fields_acquired = sum((_count_if(_acquired(t, name)) for name in BANT_FIELDS), sql_int(0))
    return {
        "deals_created_all": _one(),
        "deals_created_is": _count_if(is_sourced),
        # Field-sales deals never carry BANT: bant_rate counts IS-sourced deals only.
        "deals_bant_complete_is": _count_if(
            and_(is_sourced, *(_acquired(t, name) for name in BANT_FIELDS))
        ),
        "bant_fields_is": case((is_sourced, fields_acquired), else_=0),
        "rating_sum": func.coalesce(t.c.handoff_rating, 0),
        "rating_count": _count_if(t.c.handoff_rating.is_not(None)),
    }


def _deal_lead_time_measures(t: FromClause, env: RowEnv) -> dict[str, ColumnElement[Any]]:
    assert env.lead is not None
    millis = env.buckets.millis_between(env.lead.c.created_at, t.c.created_at)
    return {"lead_time_days": millis / 86_400_000.0, "lead_time_deals": _one()}


def _deals_closed_where(t: FromClause) -> list[ColumnElement[bool]]:
    return [_not_deleted(t), t.c.is_closed == true(), t.c.closed_at.is_not(None)]


def _deals_closed_measures(t: FromClause, env: RowEnv) -> dict[str, ColumnElement[Any]]:
    won = t.c.is_won == true()
    is_sourced = t.c.rep_crm_id.is_not(None)
    return {
        "deals_closed": _one(),
        "deals_won": _count_if(won),
        "won_amount": case((won, func.coalesce(t.c.amount, 0)), else_=0),
        "deals_closed_is": _count_if(is_sourced),
        "deals_won_is": _count_if(and_(won, is_sourced)),
        "won_amount_is": case((and_(won, is_sourced), func.coalesce(t.c.amount, 0)), else_=0),
    }


def _leads_created_measures(t: FromClause, env: RowEnv) -> dict[str, ColumnElement[Any]]:
    scored = t.c.score.is_not(None)
    return {
        "leads_created": _one(),
        "lead_score_sum": case((scored, t.c.score), else_=0),
        "leads_scored": _count_if(scored),
    }


def _open_pipeline_where(t: FromClause) -> list[ColumnElement[bool]]:
    return [_not_deleted(t), t.c.is_closed == false(), t.c.closed_at.is_not(None)]


def _open_pipeline_measures(t: FromClause, env: RowEnv) -> dict[str, ColumnElement[Any]]:
    expected = func.coalesce(t.c.amount, 0) * func.coalesce(t.c.probability, 0)
    return {"pipeline_expected": expected, "open_deals": _one()}


FACTS: tuple[Fact, ...] = (
    Fact(
        "calls",
        Call,
        "occurred_at",
        _calls_where,
        _calls_measures,
        ("calls", "calls_reached", "calls_connected", "calls_effective", "talk_ms"),
        rollup=DailyCalls,
    ),
    Fact(
        "emails",
        Email,
        "sent_at",
        _emails_where,
        _emails_measures,
        ("emails_sent", "emails_tracked", "emails_opened", "emails_clicked", "emails_replied"),
        rollup=DailyEmails,
    ),
    Fact(
        "meetings",
        Meeting,
        "booked_at",
        lambda t: [_not_deleted(t)],
        _meetings_measures,
        ("meetings_booked", "meetings_completed", "meetings_with_start", "meetings_canceled"),
        rollup=DailyMeetings,
    ),
    Fact(
        "tasks",
        FollowUpTask,
        "due_at",
        lambda t: [_not_deleted(t)],
        _tasks_measures,
        ("tasks_due", "tasks_on_time"),
        rollup=DailyTasks,
    ),
    Fact(
        "deals_created",
        Deal,
        "created_at",
        lambda t: [_not_deleted(t)],
        _deals_created_measures,
        (
            "deals_created_all",
            "deals_created_is",
            "deals_bant_complete_is",
            "bant_fields_is",
            "rating_sum",
            "rating_count",
        ),
        channel_fallback="lead_source",
    ),
    Fact(
        "deal_lead_time",
        Deal,
        "created_at",
        lambda t: [_not_deleted(t), t.c.rep_crm_id.is_not(None)],
        _deal_lead_time_measures,
        ("lead_time_days", "lead_time_deals"),
        lead="inner",
        channel_fallback="lead_source",
    ),
    Fact(
        "deals_closed",
        Deal,
        "closed_at",
        _deals_closed_where,
        _deals_closed_measures,
        (
            "deals_closed",
            "deals_won",
            "won_amount",
            "deals_closed_is",
            "deals_won_is",
            "won_amount_is",
        ),
        channel_fallback="lead_source",
    ),
    Fact(
        "leads_created",
        Lead,
        "created_at",
        lambda t: [_not_deleted(t)],
        _leads_created_measures,
        ("leads_created", "lead_score_sum", "leads_scored"),
        lead="self",
    ),
    Fact(
        "leads_sql",
        Lead,
        "sql_at",
        lambda t: [_not_deleted(t), t.c.sql_at.is_not(None)],
        lambda t, env: {"leads_sql": _one()},
        ("leads_sql",),
        lead="self",
    ),
    Fact(
        "open_pipeline",
        Deal,
        "closed_at",
        _open_pipeline_where,
        _open_pipeline_measures,
        ("pipeline_expected", "open_deals"),
        channel_fallback="lead_source",
    ),
)
FACT_BY_NAME = {fact.name: fact for fact in FACTS}
ACTIVITY_FACT_BY_KIND = {
    "call": FACT_BY_NAME["calls"],
    "email": FACT_BY_NAME["emails"],
    "meeting": FACT_BY_NAME["meetings"],
    "task": FACT_BY_NAME["tasks"],
}

# Measures that count records (the rest are sums of amounts, durations, ratings, medians).
COUNT_MEASURES = frozenset(
    {m for f in FACTS for m in f.provides}
    - {
        "talk_ms",
        "rating_sum",
        "lead_time_days",
        "won_amount",
        "won_amount_is",
        "pipeline_expected",
        "lead_score_sum",
    }
    | {"leads_touched", "active_reps", "list_members_added", "list_members_worked"}
)
# Measures that stay NULL where nothing was recorded (not 0): a missing cost or forecast is unknown.
NULLABLE_MEASURES = frozenset({"costs", "forecast_won_amount", "lead_response_median"})
# Facts that are not sums of rows, built by their own functions below.
SPECIAL_MEASURES = {
    "lead_response_median": "lead_response",
    "leads_touched": "lead_response",
    "active_reps": "active_reps",
    "costs": "costs",
    "forecast_won_amount": "forecast",
    "list_members_added": "list_consumption",
    "list_members_worked": "list_consumption",
}
SPECIAL_PROVIDES = {
    "lead_response": ("lead_response_median", "leads_touched"),
    "active_reps": ("active_reps",),
    "costs": ("costs",),
    "forecast": ("forecast_won_amount",),
    "list_consumption": ("list_members_added", "list_members_worked"),
}
MEASURE_FACT: dict[str, str] = {
    **{m: f.name for f in FACTS for m in f.provides},
    **SPECIAL_MEASURES,
}


def raw_row_env(req: Request, lead: FromClause | None = None) -> RowEnv:
    b = req.buckets
    return RowEnv(
        buckets=b,
        effective_ms=req.ctx.effective_call_seconds * 1000,
        on_time=lambda t: and_(
            t.c.completed_at.is_not(None), b.local_day(t.c.completed_at) <= b.local_day(t.c.due_at)
        ),
        lead=lead,
    )


def _raw_fact(req: Request, fact: Fact) -> Select[Any]:
    t = table_of(fact.table).alias(fact.name)
    ts = t.c[fact.ts]
    b = req.buckets
    from_: FromClause = t
    lead: FromClause | None = None
    if fact.lead == "self":
        lead = t
    elif fact.lead == "inner" or req.by in LEAD_BYS:
        lead = table_of(Lead).alias(f"{fact.name}_lead")
        on = and_(
            lead.c.source == t.c.source,
            lead.c.crm_id == t.c.contact_crm_id,
            lead.c.deleted == false(),
        )
        from_ = from_.join(lead, on, isouter=fact.lead != "inner")
    dims = _Dims(
        req,
        source=t.c.source,
        rep=t.c.rep_crm_id,
        day=b.local_day(ts),
        hour=lambda: b.local_hour(ts),
        lead=lead,
        channel_fallback=t.c[fact.channel_fallback] if fact.channel_fallback else None,
        deal_type=t.c.deal_type if fact.table is Deal else None,
    )
    lo, hi = req.utc_window
    where = [*fact.where(t), ts >= lo, ts < hi]
    if req.before_hour is not None:
        where.append(b.local_hour(ts) < sql_int(req.before_hour))
    if req.cutoff is not None and fact.ts != "created_at" and "created_at" in t.c:
        # A replay: a deal or lead created after the cutoff did not exist yet, whatever
        # its close date or SQL date says.
        where.append(t.c.created_at < hi)
    return dims.select(fact.measures(t, raw_row_env(req, lead)), from_, where)


def dirty_days(
    fact: Fact,
    dialect: str,
    ctx: KpiContext,
    source: str | None = None,
    skip_sources: Collection[str] = (),
) -> CompoundSelect[Any]:
    """The rollup rows of ``fact``'s dirty keys, recomputed from the raw rows.

    Columns: source, rep_crm_id ('' without a rep), day, then the fact's measures.
    Each dirty key carries its day's UTC bounds, so the raw rows are found through the
    (source, rep, timestamp) index, and "on time" is "completed before the day's end".
    """
    d = table_of(RollupDirtyDay).alias(f"{fact.name}_dirty")
    t = table_of(fact.table).alias(f"{fact.name}_dirty_rows")
    ts = t.c[fact.ts]
    env = RowEnv(
        buckets=TimeBuckets(dialect, ctx.zone),
        effective_ms=ctx.effective_call_seconds * 1000,
        on_time=lambda t: and_(t.c.completed_at.is_not(None), t.c.completed_at < d.c.hi),
    )
    measures = fact.measures(t, env)
    parts = []
    for without_rep in (False, True):
        rep_match = t.c.rep_crm_id.is_(None) if without_rep else t.c.rep_crm_id == d.c.rep_crm_id
        where = [d.c.fact == fact.name, (d.c.rep_crm_id == "") == without_rep, *fact.where(t)]
        if source is not None:
            where.append(d.c.source == source)
        if skip_sources:
            where.append(d.c.source.not_in(sorted(skip_sources)))
        parts.append(
            select(
                d.c.source,
                d.c.rep_crm_id,
                d.c.day,
                *(func.sum(measures[m]).label(m) for m in fact.provides),
            )
            .select_from(
                d.join(t, and_(t.c.source == d.c.source, rep_match, ts >= d.c.lo, ts < d.c.hi))
            )
            .where(*where)
            .group_by(d.c.source, d.c.rep_crm_id, d.c.day)
        )
    return union_all(*parts)


def _rollup_rows(req: Request, fact: Fact) -> FromClause:
    """The fact's daily rollup, with what is not flushed yet read from raw rows instead:
    dirty (source, rep, day) keys, and whole sources being loaded."""
    assert fact.rollup is not None
    rollup = table_of(fact.rollup)
    keys_dirty = fact.name in req.dirty_facts
    if not keys_dirty and not req.dirty_sources:
        return rollup.alias(f"{fact.name}_daily")
    measures = [rollup.c[m] for m in fact.provides]
    clean = select(rollup.c.source, rollup.c.rep_crm_id, rollup.c.day, *measures)
    parts: list[Any] = []
    if keys_dirty:
        d = table_of(RollupDirtyDay).alias(f"{fact.name}_pending")
        is_dirty = (
            select(d.c.day)
            .where(
                d.c.fact == fact.name,
                d.c.source == rollup.c.source,
                d.c.rep_crm_id == rollup.c.rep_crm_id,
                d.c.day == rollup.c.day,
            )
            .exists()
        )
        clean = clean.where(~is_dirty)
        parts += list(
            dirty_days(fact, req.dialect, req.ctx, skip_sources=req.dirty_sources).selects
        )
    if req.dirty_sources:
        sources = sorted(req.dirty_sources)
        clean = clean.where(rollup.c.source.not_in(sources))
        t = table_of(fact.table).alias(f"{fact.name}_loading")
        ts = t.c[fact.ts]
        b = req.buckets
        rep = func.coalesce(t.c.rep_crm_id, sql_text(""))
        day = b.local_day(ts)
        lo, hi = req.utc_window
        row_measures = fact.measures(t, raw_row_env(req))
        parts.append(
            select(
                t.c.source,
                rep.label("rep_crm_id"),
                type_coerce(day, Date).label("day"),
                *(func.sum(row_measures[m]).label(m) for m in fact.provides),
            )
            .where(*fact.where(t), t.c.source.in_(sources), ts >= lo, ts < hi)
            .group_by(t.c.source, rep, day)
        )
    return union_all(clean, *parts).subquery(f"{fact.name}_daily")


def _rollup_fact(req: Request, fact: Fact) -> Select[Any]:
    assert fact.rollup is not None
    r = _rollup_rows(req, fact)
    dims = _Dims(
        req,
        source=r.c.source,
        rep=func.nullif(r.c.rep_crm_id, sql_text("")),
        rep_filter=r.c.rep_crm_id,
        day=r.c.day,
        hour=None,
        lead=None,
    )
    where = [r.c.day >= req.first_day, r.c.day < req.end_day]
    return dims.select({m: r.c[m] for m in fact.provides}, r, where)


def rollups_answer(req: Request) -> bool:
    """Whether the daily rollups can answer this request's activity facts."""
    return (
        req.use_rollups and req.by not in LEAD_BYS and req.by != "hour" and req.before_hour is None
    )


def fact_select(req: Request, fact: Fact) -> Select[Any]:
    """One fact's grouped select: period_start, scope_id, by_value, then its measures."""
    if fact.rollup is not None and rollups_answer(req):
        return _rollup_fact(req, fact)
    return _raw_fact(req, fact)


# --- inside sales and field sales ------------------------------------------------------------


def _named(ctx: KpiContext, team: FromClause) -> ColumnElement[bool]:
    names = list(ctx.field_sales_teams)
    return or_(
        team.c.name.in_(names),
        team.c.crm_id.in_(names),
        (team.c.source + sql_text(":") + team.c.crm_id).in_(names),
    )


def field_sales_teams(ctx: KpiContext) -> Select[Any] | None:
    """(source, crm_id) of the teams ISKPI_FIELD_SALES_TEAMS names; None when it names none."""
    if not ctx.field_sales_teams:
        return None
    team = table_of(Team).alias("fs_team")
    return select(team.c.source, team.c.crm_id).where(_named(ctx, team))


def field_sales_reps(ctx: KpiContext) -> Select[Any] | None:
    """(source, crm_id) of the reps of field-sales teams; None when no team is field sales."""
    if not ctx.field_sales_teams:
        return None
    rep, team = table_of(Rep).alias("fs_rep"), table_of(Team).alias("fs_rep_team")
    on = and_(team.c.source == rep.c.source, team.c.crm_id == rep.c.team_crm_id)
    return (
        select(rep.c.source, rep.c.crm_id).select_from(rep.join(team, on)).where(_named(ctx, team))
    )


def not_field_sales(
    ctx: KpiContext, source: ColumnElement[Any], rep: ColumnElement[Any]
) -> list[ColumnElement[bool]]:
    """Filters keeping (source, rep) out of the field-sales reps (none when there are none)."""
    reps = field_sales_reps(ctx)
    if reps is None:
        return []
    fs = reps.subquery("fs_reps")
    return [~select(fs.c.crm_id).where(fs.c.source == source, fs.c.crm_id == rep).exists()]


def inside_sales_only(ctx: KpiContext, scope: str, table: FromClause) -> list[ColumnElement[bool]]:
    """Filters keeping a listing of reps (or teams) to inside sales (docs/kpi-catalog.md)."""
    if scope == "rep":
        return not_field_sales(ctx, table.c.source, table.c.crm_id)
    teams = field_sales_teams(ctx)
    if scope != "team" or teams is None:
        return []
    fs = teams.subquery("fs_teams")
    return [
        ~select(fs.c.crm_id)
        .where(fs.c.source == table.c.source, fs.c.crm_id == table.c.crm_id)
        .exists()
    ]


# --- the escape hatch and the other non-sum facts --------------------------------------------


def _touches(source_filter: Callable[[FromClause], list[ColumnElement[bool]]]) -> Subquery:
    """Outbound calls (any outcome) and sent outbound emails, as (source, contact, at)."""
    c = table_of(Call).alias("touch_call")
    e = table_of(Email).alias("touch_email")
    return union_all(
        select(c.c.source, c.c.contact_crm_id.label("contact"), c.c.occurred_at.label("at")).where(
            *_calls_where(c), c.c.contact_crm_id.is_not(None), *source_filter(c)
        ),
        select(e.c.source, e.c.contact_crm_id.label("contact"), e.c.sent_at.label("at")).where(
            *_emails_where(e), e.c.contact_crm_id.is_not(None), *source_filter(e)
        ),
    ).subquery("touch")


def first_touches(
    leads: FromClause,
    lead_filter: list[ColumnElement[bool]],
    touch_filter: Callable[[FromClause], list[ColumnElement[bool]]] = lambda t: [],
) -> Select[Any]:
    """Per lead: its first touch at or after its creation (docs/kpi-catalog.md lead_response_minutes)."""
    touch = _touches(touch_filter)
    on = and_(
        touch.c.source == leads.c.source,
        touch.c.contact == leads.c.crm_id,
        touch.c.at >= leads.c.created_at,
    )
    return (
        select(
            leads.c.source,
            leads.c.crm_id.label("lead_crm_id"),
            func.min(touch.c.at).label("first_touch_at"),
        )
        .select_from(leads.join(touch, on))
        .where(*lead_filter)
        .group_by(leads.c.source, leads.c.crm_id)
    )


def _lead_response(req: Request) -> Select[Any]:
    lead = table_of(Lead).alias("response_lead")
    lo, hi = req.utc_window
    in_window = [lead.c.deleted == false(), lead.c.created_at >= lo, lead.c.created_at < hi]
    if not req.use_rollups:
        inner = table_of(Lead).alias("touched_lead")
        first: FromClause = first_touches(
            inner,
            [inner.c.deleted == false(), inner.c.created_at >= lo, inner.c.created_at < hi],
        ).subquery("first_touch")
    elif not req.dirty_leads and not req.dirty_sources:
        first = table_of(LeadFirstTouch).alias("first_touch")
    else:
        # What is not flushed yet is recomputed from the touches: dirty leads, loading sources.
        stored = table_of(LeadFirstTouch)
        kept = select(stored.c.source, stored.c.lead_crm_id, stored.c.first_touch_at)
        fresh: list[Select[Any]] = []
        if req.dirty_leads:
            dirty = table_of(LeadDirty)
            keys = select(dirty.c.source, dirty.c.lead_crm_id)
            kept = kept.where(tuple_(stored.c.source, stored.c.lead_crm_id).not_in(keys))
            touched = table_of(Lead).alias("dirty_lead")
            fresh.append(
                first_touches(
                    touched,
                    [tuple_(touched.c.source, touched.c.crm_id).in_(keys)],
                    touch_filter=lambda t: [tuple_(t.c.source, t.c.contact_crm_id).in_(keys)],
                )
            )
        if req.dirty_sources:
            sources = sorted(req.dirty_sources)
            kept = kept.where(stored.c.source.not_in(sources))
            loading = table_of(Lead).alias("loading_lead")
            fresh.append(
                first_touches(
                    loading,
                    [
                        loading.c.source.in_(sources),
                        loading.c.created_at >= lo,
                        loading.c.created_at < hi,
                    ],
                    touch_filter=lambda t: [t.c.source.in_(sources)],
                )
            )
        first = union_all(kept, *fresh).subquery("first_touch")
    b = req.buckets
    dims = _Dims(
        req,
        source=lead.c.source,
        rep=lead.c.rep_crm_id,
        day=b.local_day(lead.c.created_at),
        hour=lambda: b.local_hour(lead.c.created_at),
        lead=lead,
    )
    on = and_(first.c.source == lead.c.source, first.c.lead_crm_id == lead.c.crm_id)
    if req.cutoff is not None:
        # A replay: a first touch after the cutoff had not happened yet (the stored first
        # touch is the earliest, so one after the cutoff means none before it).
        in_window.append(first.c.first_touch_at < hi)
    minutes = b.millis_between(lead.c.created_at, first.c.first_touch_at) / 60_000.0
    from_ = dims.join(lead.join(first, on))
    if req.dialect == "postgresql":
        # The median of an even count is the mean of the middle two: percentile_cont(0.5).
        return (
            select(
                *dims.keys,
                cast(func.percentile_cont(0.5).within_group(minutes), Float).label(
                    "lead_response_median"
                ),
                cast(func.count(), Float).label("leads_touched"),
            )
            .select_from(from_)
            .where(*in_window, *dims.filters)
            .group_by(*dims.group_by)
        )
    # SQLite has no percentile_cont: rank within each key, average the one or two middle rows.
    partition = dims.group_by
    ranked = (
        select(
            *dims.keys,
            minutes.label("minutes"),
            func.row_number().over(partition_by=partition, order_by=minutes).label("rn"),
            func.count().over(partition_by=partition).label("n"),
        )
        .select_from(from_)
        .where(*in_window, *dims.filters)
        .subquery("ranked")
    )
    middle = ranked.c.rn.in_([(ranked.c.n + 1) // 2, (ranked.c.n + 2) // 2])
    return select(
        ranked.c.period_start,
        ranked.c.scope_id,
        ranked.c.by_value,
        cast(func.avg(case((middle, ranked.c.minutes))), Float).label("lead_response_median"),
        cast(func.max(ranked.c.n), Float).label("leads_touched"),
    ).group_by(ranked.c.period_start, ranked.c.scope_id, ranked.c.by_value)


def _active_reps(req: Request) -> Select[Any]:
    """Reps in scope for per-day bands: those with an outbound call or sent outbound email."""
    parts: list[Select[Any]] = []
    colon = sql_text(":")
    for fact in (FACT_BY_NAME["calls"], FACT_BY_NAME["emails"]):
        if fact.rollup is not None and rollups_answer(req):
            r = _rollup_rows(req, fact)
            dims = _Dims(
                req,
                source=r.c.source,
                rep=func.nullif(r.c.rep_crm_id, sql_text("")),
                rep_filter=r.c.rep_crm_id,
                day=r.c.day,
                hour=None,
                lead=None,
            )
            where = [
                r.c.day >= req.first_day,
                r.c.day < req.end_day,
                r.c.rep_crm_id != "",
                *not_field_sales(req.ctx, r.c.source, r.c.rep_crm_id),
            ]
            parts.append(
                select(*dims.keys, (r.c.source + colon + r.c.rep_crm_id).label("rep_key"))
                .select_from(dims.join(r))
                .where(*where, *dims.filters)
            )
        else:
            t = table_of(fact.table).alias(f"{fact.name}_active")
            ts = t.c[fact.ts]
            b = req.buckets
            from_: FromClause = t
            lead = None
            if req.by in LEAD_BYS:
                lead = table_of(Lead).alias(f"{fact.name}_active_lead")
                on = and_(
                    lead.c.source == t.c.source,
                    lead.c.crm_id == t.c.contact_crm_id,
                    lead.c.deleted == false(),
                )
                from_ = from_.join(lead, on, isouter=True)
            dims = _Dims(
                req,
                source=t.c.source,
                rep=t.c.rep_crm_id,
                day=b.local_day(ts),
                hour=lambda ts=ts, b=b: b.local_hour(ts),  # type: ignore[misc]
                lead=lead,
            )
            lo, hi = req.utc_window
            parts.append(
                select(*dims.keys, (t.c.source + colon + t.c.rep_crm_id).label("rep_key"))
                .select_from(dims.join(from_))
                .where(
                    *fact.where(t),
                    ts >= lo,
                    ts < hi,
                    t.c.rep_crm_id.is_not(None),
                    *not_field_sales(req.ctx, t.c.source, t.c.rep_crm_id),
                    *dims.filters,
                )
            )
    active = union(*parts).subquery("active")
    return select(
        active.c.period_start,
        active.c.scope_id,
        active.c.by_value,
        cast(func.count(), Float).label("active_reps"),
    ).group_by(active.c.period_start, active.c.scope_id, active.c.by_value)


def _list_consumption(req: Request) -> Select[Any]:
    """Call-list members added in each period, and those worked by the period's end.

    Worked: an outbound call (any outcome) or a sent outbound email to the member's
    lead at or after it joined and before its period ends (or the replay's cutoff).
    A member belongs to the rep who owns its lead. The period's UTC bounds come from
    a VALUES table, so the EXISTS probes (through the activities' (source, contact)
    indexes) compare plain timestamps on both engines.
    """
    lo, hi = req.utc_window
    bounds = []
    for start in req.periods:
        p_lo = max(day_start_utc(start, req.ctx.zone), lo)
        p_hi = min(day_start_utc(next_period(start, req.grain), req.ctx.zone), hi)
        if p_lo < p_hi:
            bounds.append((start, p_lo, p_hi))
    if not bounds:
        return select(
            _typed_null(Date).label("period_start"),
            _typed_null(String).label("scope_id"),
            _typed_null(_BY_TYPE.get(req.by, String)).label("by_value"),
            _typed_null(Float).label("list_members_added"),
            _typed_null(Float).label("list_members_worked"),
        ).where(false())
    m = table_of(CallListMember).alias("list_member")
    stamp = m.c.added_at.type
    periods = (
        values(
            column("period_start", Date),
            column("lo", stamp),
            column("hi", stamp),
            name="list_periods",
        )
        .data(bounds)
        .cte("list_periods")
    )
    lists = table_of(CallList).alias("call_list")
    lead = table_of(Lead).alias("list_lead")
    b = req.buckets
    from_: FromClause = (
        m.join(
            lists,
            and_(
                lists.c.source == m.c.source,
                lists.c.crm_id == m.c.list_crm_id,
                lists.c.deleted == false(),
            ),
        )
        .join(periods, and_(m.c.added_at >= periods.c.lo, m.c.added_at < periods.c.hi))
        .join(
            lead,
            and_(
                lead.c.source == m.c.source,
                lead.c.crm_id == m.c.contact_crm_id,
                lead.c.deleted == false(),
            ),
            isouter=True,
        )
    )
    dims = _Dims(
        req,
        source=m.c.source,
        rep=lead.c.rep_crm_id,
        day=b.local_day(m.c.added_at),
        hour=lambda: b.local_hour(m.c.added_at),
        lead=lead,
        period=periods.c.period_start,
    )
    c = table_of(Call).alias("list_call")
    e = table_of(Email).alias("list_email")
    called = (
        select(c.c.id)
        .where(
            *_calls_where(c),
            c.c.source == m.c.source,
            c.c.contact_crm_id == m.c.contact_crm_id,
            c.c.occurred_at >= m.c.added_at,
            c.c.occurred_at < periods.c.hi,
        )
        .exists()
    )
    emailed = (
        select(e.c.id)
        .where(
            *_emails_where(e),
            e.c.source == m.c.source,
            e.c.contact_crm_id == m.c.contact_crm_id,
            e.c.sent_at >= m.c.added_at,
            e.c.sent_at < periods.c.hi,
        )
        .exists()
    )
    measures = {
        "list_members_added": _one(),
        "list_members_worked": _count_if(or_(called, emailed)),
    }
    return dims.select(measures, from_, [m.c.deleted == false()])


def _costs(req: Request) -> Select[Any]:
    """Costs of the periods: a month's costs, or its share by calendar days for days and weeks."""
    cost = table_of(KpiCost)
    if req.grain == "month":
        return select(
            cost.c.month.label("period_start"),
            sql_text("org").label("scope_id"),
            _typed_null(String).label("by_value"),
            cast(cost.c.amount, Float).label("costs"),
        ).where(cost.c.month >= req.periods[0], cost.c.month <= req.periods[-1])
    shares: dict[tuple[date, date], int] = {}
    for start in req.periods:
        day = start
        while day < next_period(start, req.grain):
            key = (start, day.replace(day=1))
            shares[key] = shares.get(key, 0) + 1
            day += timedelta(days=1)
    share = (
        values(
            column("period_start", Date),
            column("month", Date),
            column("days", Integer),
            column("month_days", Integer),
            name="cost_share",
        )
        .data([(p, m, n, month_days(m)) for (p, m), n in shares.items()])
        .cte("cost_share")
    )
    amount = cast(cast(cost.c.amount, Float) * share.c.days, Float) / type_coerce(
        share.c.month_days, Float
    )
    return (
        select(
            share.c.period_start,
            sql_text("org").label("scope_id"),
            _typed_null(String).label("by_value"),
            cast(func.sum(amount), Float).label("costs"),
        )
        .select_from(share.join(cost, cost.c.month == share.c.month))
        .group_by(share.c.period_start)
    )


def _forecast(req: Request) -> Select[Any]:
    """The landing forecast of won_amount taken on each month's 15th (else the last before it)."""
    snap = table_of(ForecastSnapshot)
    fifteenth = (
        values(column("month", Date), column("fifteenth", Date), name="fifteenth")
        .data([(m, m.replace(day=15)) for m in req.periods])
        .cte("fifteenth")
    )
    wanted = [snap.c.kpi == "won_amount", snap.c.scope == req.scope]
    if req.scope_id is not None:
        wanted.append(snap.c.scope_id == req.scope_id)
    if req.cutoff is not None:
        wanted.append(snap.c.as_of <= req.cutoff)  # a replay: no snapshot taken after it
    taken = (
        select(snap.c.month, snap.c.scope_id, func.max(snap.c.as_of).label("as_of"))
        .select_from(
            snap.join(
                fifteenth,
                and_(fifteenth.c.month == snap.c.month, snap.c.as_of <= fifteenth.c.fifteenth),
            )
        )
        .where(*wanted)
        .group_by(snap.c.month, snap.c.scope_id)
        .subquery("taken")
    )
    on = and_(
        taken.c.month == snap.c.month,
        taken.c.scope_id == snap.c.scope_id,
        taken.c.as_of == snap.c.as_of,
    )
    return (
        select(
            snap.c.month.label("period_start"),
            snap.c.scope_id,
            _typed_null(String).label("by_value"),
            cast(snap.c.forecast, Float).label("forecast_won_amount"),
        )
        .select_from(snap.join(taken, on))
        .where(*wanted)
    )


def _special_select(req: Request, name: str) -> Select[Any] | None:
    if name == "lead_response":
        return _lead_response(req)
    if name == "active_reps":
        return _active_reps(req)
    if name == "costs":
        return _costs(req) if req.scope == "org" and req.by is None else None
    if name == "forecast":
        return _forecast(req) if req.grain == "month" and req.by is None else None
    if name == "list_consumption":
        return _list_consumption(req)
    raise KeyError(name)


# --- KPIs over the wide measure row -------------------------------------------------------------


def _measure(w: FromClause, name: str) -> ColumnElement[Any]:
    return w.c[name] if name in w.c else null()


def _ratio(n: ColumnElement[Any], d: ColumnElement[Any]) -> ColumnElement[Any]:
    """CAST(n AS FLOAT) / NULLIF(d, 0): an empty denominator gives NULL, never an error or 0."""
    # A plain "/" operator: SQLAlchemy's true division would wrap the denominator once more.
    return cast(n, Float).op("/", return_type=Float)(func.nullif(d, 0))


def _lead_response_minutes(
    spec: KpiSpec, w: FromClause, req: Request
) -> tuple[ColumnElement[Any], ColumnElement[Any], ColumnElement[Any]]:
    # A median is not a ratio: the value is the median, the denominator the leads it is over.
    return null(), _measure(w, "leads_touched"), _measure(w, "lead_response_median")


def _forecast_accuracy(
    spec: KpiSpec, w: FromClause, req: Request
) -> tuple[ColumnElement[Any], ColumnElement[Any], ColumnElement[Any]]:
    forecast, actual = _measure(w, "forecast_won_amount"), _measure(w, "won_amount")
    accuracy = 1.0 - _ratio(func.abs(forecast - actual), actual)
    clipped = case((accuracy < 0, 0.0), (accuracy > 1, 1.0), else_=accuracy)
    return forecast, actual, clipped


# The one escape hatch: KPIs of kind "custom" name their compiler here.
ESCAPE_HATCHES: dict[
    str,
    Callable[
        [KpiSpec, FromClause, Request],
        tuple[ColumnElement[Any], ColumnElement[Any], ColumnElement[Any]],
    ],
] = {
    "lead_response_minutes": _lead_response_minutes,
    "forecast_accuracy": _forecast_accuracy,
}


def compile_value(
    spec: KpiSpec, w: FromClause, req: Request
) -> tuple[ColumnElement[Any], ColumnElement[Any], ColumnElement[Any]] | None:
    """(numerator, denominator, value) of a KPI over the wide measure row ``w``.

    None when the KPI has no value for the request: a grain it is not defined at
    (forecast_accuracy is monthly) or, for CAC, a scope or breakdown costs do not have.
    """
    if req.grain not in spec.grains or (spec.org_only and (req.scope != "org" or req.by)):
        return None
    if spec.kind == "custom":
        return ESCAPE_HATCHES[spec.key](spec, w, req)
    numerator = _measure(w, spec.numerator)
    factor = spec.multiply_by
    if isinstance(factor, str):
        factor = float(getattr(req.ctx, factor))
    if factor != 1:
        numerator = type_coerce(numerator, Float) * literal(float(factor), Float)
    if spec.divide_by != 1:
        numerator = type_coerce(numerator, Float) / literal(float(spec.divide_by), Float)
    if spec.kind in ("count", "sum"):
        return numerator, null(), numerator
    denominator = _measure(w, spec.denominator or "")
    return numerator, denominator, _ratio(numerator, denominator)


def needed_measures(specs: Sequence[KpiSpec], req: Request) -> list[str]:
    names: list[str] = []
    for spec in specs:
        for name in (spec.numerator, spec.denominator):
            if name and name not in names:
                names.append(name)
        if spec.band and spec.band.per_rep_day and req.by in PER_DAY_BAND_BYS:
            if "active_reps" not in names:
                names.append("active_reps")
    return names


# --- the frame: dense keys --------------------------------------------------------------------


def _scopes(req: Request, *, leavers: bool = False) -> Select[Any]:
    """The scope ids every period lists (known, not deleted); ``leavers``: the deleted reps."""
    colon = sql_text(":")
    if req.scope == "org":
        return select(sql_text("org").label("scope_id"), sql_text("org").label("scope_name"))
    model = table_of(Rep if req.scope == "rep" else Team)
    where = [model.c.deleted == (true() if leavers else false())]
    if req.scope_key is not None:
        where += [model.c.source == req.scope_key[0], model.c.crm_id == req.scope_key[1]]
    else:
        where += inside_sales_only(req.ctx, req.scope, model)
    return select(
        (model.c.source + colon + model.c.crm_id).label("scope_id"),
        model.c.name.label("scope_name"),
    ).where(*where)


def _period_values(req: Request) -> FromClause:
    """Periods with their business days (per ISO weekday for by=weekday), as a VALUES CTE."""
    cal = BusinessCalendar(req.ctx.holidays)
    if req.by == "weekday":
        return (
            values(
                column("period_start", Date),
                column("weekday", Integer),
                column("business_days", Integer),
                name="period_weekdays",
            )
            .data(
                [
                    (p, wd, cal.count(p, next_period(p, req.grain), weekday=wd))
                    for p in req.periods
                    for wd in range(1, 8)
                ]
            )
            .cte("period_weekdays")
        )
    return (
        values(column("period_start", Date), column("business_days", Integer), name="periods")
        .data([(p, cal.count(p, next_period(p, req.grain))) for p in req.periods])
        .cte("periods")
    )


@dataclass
class _Compiled:
    facts: list[Select[Any]] = field(default_factory=list)
    measures: list[str] = field(default_factory=list)
    # Per fact: whether its rows are a rep's activity (a forecast snapshot or a cost is not).
    activity: list[bool] = field(default_factory=list)


# Facts whose rows do not show that a rep worked in a period (a leaver's rows need activity).
NOT_ACTIVITY = frozenset({"forecast", "costs"})


def compile_measures(req: Request, measures: Sequence[str]) -> tuple[CTE, list[str]]:
    """The dense wide CTE ``w``: one row per frame key with every fact measure the names need."""
    fact_names: list[str] = []
    for name in measures:
        fact_name = MEASURE_FACT[name]
        if fact_name not in fact_names:
            fact_names.append(fact_name)
    compiled = _Compiled()
    for fact_name in fact_names:
        if fact_name in FACT_BY_NAME:
            declared = FACT_BY_NAME[fact_name]
            compiled.facts.append(fact_select(req, declared))
            provides = declared.provides
        else:
            special = _special_select(req, fact_name)
            if special is None:
                continue
            compiled.facts.append(special)
            provides = SPECIAL_PROVIDES[fact_name]
        compiled.activity.append(fact_name not in NOT_ACTIVITY)
        compiled.measures += [m for m in provides if m not in compiled.measures]

    all_measures = compiled.measures
    scopes = _scopes(req).cte("scopes")
    # A rep who left (deactivated or deleted in the CRM) keeps the rows of the periods where it
    # has activity, so a team's total is the sum of its reps' rows, the leaver's included.
    leavers = _scopes(req, leavers=True).cte("leavers") if req.scope == "rep" else None

    def project(sel: Select[Any], activity: bool) -> Select[Any]:
        sq = sel.subquery()
        return select(
            sq.c.period_start,
            sq.c.scope_id,
            sq.c.by_value,
            _typed_null(String).label("scope_name"),
            _typed_null(Integer).label("business_days"),
            # 0: a fact row; NULL (which MIN and MAX skip): one that is no rep's activity.
            (sql_int(0) if activity else _typed_null(Integer)).label("in_frame"),
            *((sq.c[m] if m in sq.c else _typed_null(Float)).label(m) for m in all_measures),
        )

    parts = [project(s, a) for s, a in zip(compiled.facts, compiled.activity, strict=True)]
    periods = _period_values(req)
    frame_measures = [_typed_null(Float).label(m) for m in all_measures]
    frames: list[Select[Any]] = []
    if req.by is None:
        for listed, flag in ((scopes, 1), (leavers, 2)):
            if listed is None:
                continue
            frames.append(
                select(
                    periods.c.period_start,
                    listed.c.scope_id,
                    _typed_null(String).label("by_value"),
                    listed.c.scope_name,
                    periods.c.business_days,
                    sql_int(flag).label("in_frame"),
                    *frame_measures,
                ).select_from(periods.join(listed, true()))
            )
    else:
        # Breakdown values present in the data of the scope ids shown.
        facts = union_all(*parts).cte("facts") if parts else None
        if facts is None:
            bys: FromClause = (
                select(_typed_null(_BY_TYPE.get(req.by, String)).label("by_value"))
                .where(false())
                .subquery("bys")
            )
        else:
            shown: FromClause = scopes
            if leavers is not None:
                shown = union_all(select(scopes.c.scope_id), select(leavers.c.scope_id)).subquery(
                    "shown"
                )
            bys = (
                select(facts.c.by_value)
                .distinct()
                .select_from(facts.join(shown, shown.c.scope_id == facts.c.scope_id))
                .subquery("bys")
            )
            parts = [select(*facts.c)]
        business_days = (
            periods.c.business_days if req.by in PER_DAY_BAND_BYS else _typed_null(Integer)
        )
        for listed, flag in ((scopes, 1), (leavers, 2)):
            if listed is None:
                continue
            if req.by == "weekday":
                from_ = periods.join(bys, bys.c.by_value == periods.c.weekday).join(listed, true())
            else:
                from_ = periods.join(bys, true()).join(listed, true())
            frames.append(
                select(
                    periods.c.period_start,
                    listed.c.scope_id,
                    bys.c.by_value,
                    listed.c.scope_name,
                    business_days.label("business_days"),
                    sql_int(flag).label("in_frame"),
                    *frame_measures,
                ).select_from(from_)
            )
    rows = union_all(*parts, *frames).subquery("keyed")
    # A listed key (in_frame 1) always has its row; a leaver's (2) only with a fact row (0).
    in_frame = func.max(rows.c.in_frame) == 1
    if leavers is not None:
        in_frame = or_(
            in_frame, and_(func.max(rows.c.in_frame) == 2, func.min(rows.c.in_frame) == 0)
        )
    w = (
        select(
            type_coerce(rows.c.period_start, Date).label("period_start"),
            rows.c.scope_id,
            rows.c.by_value,
            func.max(rows.c.scope_name).label("scope_name"),
            func.max(rows.c.business_days).label("business_days"),
            *(
                (
                    func.sum(rows.c[m])
                    if m in NULLABLE_MEASURES
                    else func.coalesce(func.sum(rows.c[m]), 0.0)
                ).label(m)
                for m in all_measures
            ),
        )
        .group_by(rows.c.period_start, rows.c.scope_id, rows.c.by_value)
        .having(in_frame)
        .cte("w")
    )
    return w, all_measures


@dataclass(frozen=True)
class KpiColumns:
    """Where one KPI's row fields are in the wide result row (column labels), or their constants."""

    spec: KpiSpec
    value: str | None  # None: the KPI has no value for this request (grain, org-only)
    numerator: str | None
    denominator: str | None
    status: str | None
    band: tuple[float | None, float | None]  # the band when it is the same on every row
    band_columns: tuple[str, str] | None  # the band's columns when it is scaled per row
    target: str | None  # the achievement level's
    achievement: str | None
    target_minimum: str | None = None
    target_stretch: str | None = None
    pace_target: str | None = None
    pace_achievement: str | None = None


# Target levels (kpi/targets.py Level), each a column of the targets pivot.
TARGET_LEVELS: tuple[str, ...] = ("minimum", "achievement", "stretch")


@dataclass(frozen=True)
class CompiledRows:
    """The wide statement (one row per scope id × period × breakdown value) and its KPI columns."""

    statement: Select[Any]
    kpis: tuple[KpiColumns, ...]


def target_scope(req: Request) -> str | None:
    """The scope of the targets a request's rows are measured against (None: no targets)."""
    if req.by is None:
        return req.scope
    return req.by if req.by in ("rep", "team") else None


def running_period(req: Request) -> tuple[date, int, int] | None:
    """The request's running period (the one holding today, or as_of) with its business days
    elapsed (the first day through today) and in all; None when no period runs or it has none.
    """
    today = req.cutoff or req.ctx.today()
    start = period_start(today, req.grain, req.ctx.fiscal_year_start_month)
    if start not in req.periods:
        return None
    calendar = BusinessCalendar(req.ctx.holidays)
    total = calendar.count(start, next_period(start, req.grain))
    if total == 0:
        return None
    return start, calendar.count(start, today + timedelta(days=1)), total


def _status(
    value: ColumnElement[Any],
    low: ColumnElement[Any] | None,
    high: ColumnElement[Any] | None,
) -> ColumnElement[Any]:
    """below / within / above the band (an open side never fails); NULL without a value.

    NULL too when the band is empty: a per-day band scaled by no business day (or no rep)
    is 0–0, which measures nothing, so a 0 in it is not "within".
    """
    whens: list[tuple[ColumnElement[bool], Any]] = [(value.is_(None), null())]
    if low is not None and high is not None:
        whens.append((and_(func.coalesce(low, 0) == 0, func.coalesce(high, 0) == 0), null()))
    if low is not None:
        whens.append((value < low, "below"))
    if high is not None:
        whens.append((value > high, "above"))
    return case(*whens, else_="within")


def compile_rows(
    specs: Sequence[KpiSpec], req: Request, targeted: Collection[str] = ()
) -> CompiledRows:
    """The statement for the KPI rows of ``specs``: dense, with band status and targets.

    One wide row per (scope id, period, breakdown value), ordered by scope id, period
    start, breakdown value; per KPI its value, numerator, denominator, band, status and —
    for the KPIs in ``targeted`` — target and achievement, all computed in SQL. The
    engine turns each wide row into one KpiRow per KPI without further arithmetic.
    """
    w, _ = compile_measures(req, needed_measures(specs, req))
    inner: list[ColumnElement[Any]] = [w.c.period_start, w.c.scope_id, w.c.scope_name, w.c.by_value]
    labels: set[str] = set()

    def add(expr: ColumnElement[Any], label: str, type_: Any) -> str:
        if label not in labels:
            labels.add(label)
            inner.append(cast(expr, type_).label(label))
        return label

    def measure(name: str | None) -> str | None:
        if not name or name not in w.c:
            return None
        return add(w.c[name], f"m_{name}", BigInteger if name in COUNT_MEASURES else Float)

    plans: list[dict[str, Any]] = []
    for spec in specs:
        key = spec.key
        plan: dict[str, Any] = {"spec": spec, "band": (None, None), "band_columns": None}
        plans.append(plan)
        compiled = compile_value(spec, w, req)
        if compiled is None:
            plan.update(value=None, numerator=None, denominator=None)
            continue
        numerator, denominator, value = compiled
        unscaled = spec.multiply_by == 1 and spec.divide_by == 1
        if spec.kind in ("count", "sum") and unscaled:
            plan["value"] = plan["numerator"] = measure(spec.numerator)
            plan["denominator"] = None
        elif spec.kind == "ratio":
            plan["numerator"] = (
                measure(spec.numerator) if unscaled else add(numerator, f"{key}__numerator", Float)
            )
            plan["denominator"] = measure(spec.denominator)
            plan["value"] = add(value, f"{key}__value", Float)
        else:
            plan["numerator"] = add(numerator, f"{key}__numerator", Float)
            plan["denominator"] = measure(spec.denominator)
            plan["value"] = add(value, f"{key}__value", Float)
        band = spec.band
        if band is None or req.grain not in spec.grains:
            continue
        if band.per_rep_day:
            if req.by not in PER_DAY_BAND_BYS:
                continue
            # Per rep per business day, scaled by business days × reps in scope (docs/kpi-catalog.md).
            scale = w.c.business_days * w.c.active_reps
            plan["band_columns"] = (
                add(literal(band.low, Float) * scale, f"{key}__band_low", Float),
                add(literal(band.high, Float) * scale, f"{key}__band_high", Float),
            )
        else:
            plan["band"] = tuple(None if b is None else float(b) for b in (band.low, band.high))

    values_ = select(*inner).subquery("kpi_values")
    outer: list[ColumnElement[Any]] = [
        type_coerce(values_.c.period_start, Date).label("period_start"),
        values_.c.scope_id,
        values_.c.scope_name,
        values_.c.by_value,
        *(values_.c[label] for label in sorted(labels)),
    ]
    from_: FromClause = values_
    scope_of_targets = target_scope(req)
    targets = [s.key for s in specs if s.key in targeted] if scope_of_targets else []
    pivot = None
    if targets:
        t = table_of(KpiTarget)
        pivot = (
            select(
                t.c.period_start,
                t.c.scope_id,
                *(
                    func.max(case((and_(t.c.kpi == k, t.c.level == level), t.c.value))).label(
                        f"{k}__{level}"
                    )
                    for k in targets
                    for level in TARGET_LEVELS
                ),
            )
            .where(
                t.c.grain == req.grain,
                t.c.scope == scope_of_targets,
                t.c.kpi.in_(targets),
                t.c.period_start >= req.periods[0],
                t.c.period_start <= req.periods[-1],
            )
            .group_by(t.c.period_start, t.c.scope_id)
            .subquery("targets")
        )
        target_id = values_.c.scope_id if req.by is None else values_.c.by_value
        from_ = values_.outerjoin(
            pivot,
            and_(pivot.c.period_start == values_.c.period_start, pivot.c.scope_id == target_id),
        )
    running = running_period(req)
    columns: list[KpiColumns] = []
    for plan in plans:
        spec = plan["spec"]
        key = spec.key
        status = target = achievement = target_minimum = target_stretch = None
        pace_target = pace_achievement = None
        value_label = plan["value"]
        if value_label is not None:
            value_col = values_.c[value_label]
            if plan["band_columns"] is not None:
                low_label, high_label = plan["band_columns"]
                status = f"{key}__status"
                outer.append(
                    _status(value_col, values_.c[low_label], values_.c[high_label]).label(status)
                )
            elif plan["band"] != (None, None):
                low, high = plan["band"]
                status = f"{key}__status"
                outer.append(
                    _status(
                        value_col,
                        None if low is None else literal(low, Float),
                        None if high is None else literal(high, Float),
                    ).label(status)
                )
            if pivot is not None and key in targets:
                target, achievement = f"{key}__target", f"{key}__achievement"
                target_minimum, target_stretch = f"{key}__target_minimum", f"{key}__target_stretch"
                level = pivot.c[f"{key}__achievement"]
                outer += [
                    level.label(target),
                    _ratio(value_col, level).label(achievement),
                    pivot.c[f"{key}__minimum"].label(target_minimum),
                    pivot.c[f"{key}__stretch"].label(target_stretch),
                ]
                if running is not None and spec.kind in ("count", "sum"):
                    # docs/sheets.md: target × business days elapsed ÷ business days in the
                    # period, on the running period's rows only.
                    run_start, elapsed, total = running
                    pace = case(
                        (
                            pivot.c.period_start == literal(run_start, Date),
                            cast(level, Float) * literal(elapsed, Integer) / literal(total, Float),
                        ),
                        else_=null(),
                    )
                    pace_target, pace_achievement = f"{key}__pace_target", f"{key}__pace"
                    outer += [
                        pace.label(pace_target),
                        _ratio(value_col, pace).label(pace_achievement),
                    ]
        columns.append(
            KpiColumns(
                spec=spec,
                value=value_label,
                numerator=plan["numerator"],
                denominator=plan["denominator"],
                status=status,
                band=plan["band"],
                band_columns=plan["band_columns"],
                target=target,
                achievement=achievement,
                target_minimum=target_minimum,
                target_stretch=target_stretch,
                pace_target=pace_target,
                pace_achievement=pace_achievement,
            )
        )
    statement = select(*outer).select_from(from_).order_by(*_ordering(req, values_))
    return CompiledRows(statement, tuple(columns))


def _ordering(req: Request, rows: FromClause) -> list[ColumnElement[Any]]:
    # Byte order on both engines (PostgreSQL's default collation may not be).
    def text_order(col: ColumnElement[Any]) -> ColumnElement[Any]:
        return col.collate("C") if req.dialect == "postgresql" else col

    by_value: ColumnElement[Any] = rows.c.by_value
    if req.by not in (None, "weekday", "hour"):
        by_value = text_order(by_value)
    return [text_order(rows.c.scope_id), rows.c.period_start, by_value.asc().nulls_last()]
