"""Planning (逆算), funnel diagnosis and target suggestions (docs/targets.md, docs/kpi-catalog.md).

Every figure over activity rows comes from ``compute`` (SQL); Python only chains
the few per-stage numbers:

- ``plan``: from a won target back to the activity needed: meetings = won ÷
  meeting_win_rate (IS-sourced deals won per meeting set), contacts = meetings ÷
  meeting_conversion_rate, calls = contacts ÷ effective_contact_rate. Each step is
  rounded to 6 decimal places and then up (40 ÷ 0.10 is 400, not 401), each step
  dividing the previous step's rounded value. The won target is a whole count of
  IS-sourced deals, or an amount ÷ the average IS-sourced deal size, rounded up. Rates
  (and the deal size) not given are the scope's trailing three complete months pooled
  (Σ numerator / Σ denominator).
- ``funnel``: a month's stages against their month targets (a running month's count
  stages against their pace); the bottleneck is the rate stage furthest below target,
  the cause ``volume`` when calls are short. ``diagnose`` is that step alone, for the
  weekly review sheet's stages.
- ``suggest_targets``: the trailing three complete months' pace (per business day, × the
  target period's business days; rates pooled) × factors.

The results are frozen dataclasses with ``as_dict()`` (JSON-ready, dates ISO) for
the routers of /v1/plan, /v1/funnel and /v1/targets/suggest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from sqlalchemy import Connection, Engine, false, func, select, true

from kpi.compiler import Scope, not_field_sales
from kpi.engine import (
    KpiRequestError,
    KpiRow,
    _connection,
    compute,
    parse_scope_id,
    scope_members,
    select_specs,
)
from kpi.periods import GRAINS, BusinessCalendar, Grain, KpiContext, next_period
from kpi.periods import period_start as first_of_period
from kpi.reps import first_activity
from models.crm import Rep
from models.store import table_of

RateSource = Literal["given", "derived"]
Cause = Literal["volume", "quality"]

# The plan's chain: (stage, the rate that divides the previous stage into it).
PLAN_CHAIN: tuple[tuple[str, str], ...] = (
    ("meetings_set", "meeting_win_rate"),
    ("effective_contacts", "meeting_conversion_rate"),
    ("calls", "effective_contact_rate"),
)
PLAN_RATES: tuple[str, ...] = tuple(rate for _, rate in PLAN_CHAIN)

# What a plan rate's numerator and denominator count, for the error when it cannot be derived.
_RATE_COUNTS: dict[str, tuple[str, str]] = {
    "meeting_win_rate": ("IS-sourced deals won", "meetings set"),
    "meeting_conversion_rate": ("meetings set", "effective contacts"),
    "effective_contact_rate": ("effective contacts", "calls"),
}

FUNNEL_STAGES: tuple[str, ...] = (
    "calls",
    "connect_rate",
    "effective_contacts",
    "meeting_conversion_rate",
    "meetings_set",
    "win_rate",
    "won_count",
)
FUNNEL_RATES: tuple[str, ...] = ("connect_rate", "meeting_conversion_rate", "win_rate")

TRAILING_MONTHS = 3
# No team needs a trillion calls a month: a plan past this is a typo in the target or a rate.
MAX_PLAN_VALUE = 1e12


@dataclass(frozen=True)
class Hint:
    """Where to look, in the seed's words (原因の切り分けフローチャート)."""

    en: str
    ja: str

    def as_dict(self) -> dict[str, str]:
        return {"en": self.en, "ja": self.ja}


# The seed's flowchart: a short stage and what to work on.
STAGE_HINTS: dict[str, Hint] = {
    "calls": Hint("how calling time is spent, tool use", "時間の使い方・ツール活用"),
    "connect_rate": Hint("list quality, calling hours", "リストの質・架電時間帯"),
    "meeting_conversion_rate": Hint("talk script, hearing", "トークスクリプト・ヒアリング"),
    "win_rate": Hint("meeting quality, handoff information", "商談品質・引継ぎ情報"),
}
# The seed's 改善アプローチ per cause.
CAUSE_APPROACHES: dict[str, Hint] = {
    "volume": Hint(
        "work efficiency, more resources, revisit priorities",
        "業務効率化・リソース追加・優先順位の見直し",
    ),
    "quality": Hint(
        "skill building, better talk, revisit targeting",
        "スキル向上・トーク改善・ターゲット見直し",
    ),
}


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanRate:
    """A rate the plan divides by: given by the caller, or derived from the trailing months."""

    kpi: str
    value: float
    source: RateSource
    numerator: float | None  # derived: Σ over the trailing months; given: None
    denominator: float | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PlanStep:
    """One stage of the plan: the month's need, and its pace per business day and per rep."""

    stage: str
    value: float  # won_count: the target as given; later stages: whole numbers, rounded up
    rate: str | None  # the rate dividing the previous stage into this one (None for won_count)
    rate_used: float | None
    per_business_day: float | None  # value / business days (not rounded up; 6 decimals)
    per_rep: float | None  # value / reps (None without reps)
    per_rep_per_business_day: float | None  # value / (business days × reps)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Plan:
    """docs/targets.md plan (逆算): from a won target to the meetings, contacts and calls it needs."""

    month: date
    as_of: date
    scope: str
    scope_id: str
    scope_name: str
    won_target: int  # IS-sourced deals to win: as given, or the amount ÷ avg_deal_size, up
    won_amount_target: float | None  # the amount given (None: a count was given)
    avg_deal_size: PlanRate | None  # the amount path's divisor (None: a count was given)
    business_days: int
    reps: int  # non-deleted, active inside-sales reps in the scope (1 at rep scope)
    rates: tuple[PlanRate, ...]  # meeting_win_rate, meeting_conversion_rate, effective_contact_rate
    trailing_months: tuple[date, ...] | None  # the months derived figures pooled; None: all given
    steps: tuple[PlanStep, ...]  # won_count, meetings_set, effective_contacts, calls

    def as_dict(self) -> dict[str, Any]:
        return {
            "month": self.month.isoformat(),
            "as_of": self.as_of.isoformat(),
            "scope": self.scope,
            "scope_id": self.scope_id,
            "scope_name": self.scope_name,
            "won_target": self.won_target,
            "won_amount_target": self.won_amount_target,
            "avg_deal_size": None if self.avg_deal_size is None else self.avg_deal_size.as_dict(),
            "business_days": self.business_days,
            "reps": self.reps,
            "rates": [r.as_dict() for r in self.rates],
            "trailing_months": (
                None
                if self.trailing_months is None
                else [m.isoformat() for m in self.trailing_months]
            ),
            "steps": [s.as_dict() for s in self.steps],
        }


@dataclass(frozen=True)
class FunnelStage:
    """A funnel stage's month target, actual and achievement (actual / target)."""

    stage: str
    kind: Literal["count", "rate"]
    target: float | None
    actual: float | None
    achievement: float | None  # None without a target, with a 0 target, or without an actual
    hint: Hint | None  # the seed's hint for calls and the three rates
    # A running period's count stage: target × business days elapsed ÷ in the period, and
    # actual ÷ that; the stage is short when it is behind its pace (docs/targets.md).
    pace_target: float | None = None
    pace_achievement: float | None = None

    @property
    def compared(self) -> float | None:
        """What decides the stage: its pace achievement in a running period, else achievement."""
        return self.pace_achievement if self.pace_target is not None else self.achievement

    @property
    def below_target(self) -> bool:
        return self.compared is not None and self.compared < 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "kind": self.kind,
            "target": self.target,
            "actual": self.actual,
            "achievement": self.achievement,
            "pace_target": self.pace_target,
            "pace_achievement": self.pace_achievement,
            "below_target": self.below_target,
            "hint": None if self.hint is None else self.hint.as_dict(),
        }


@dataclass(frozen=True)
class Funnel:
    """docs/targets.md funnel diagnosis of a month for one scope id."""

    month: date
    scope: str
    scope_id: str
    scope_name: str
    stages: tuple[FunnelStage, ...]
    bottleneck: str | None  # the rate stage with the lowest achievement below 1
    bottleneck_achievement: float | None
    cause: Cause | None  # None when no stage is below its target
    hint: Hint | None  # volume: the calls hint; quality: the bottleneck's
    approach: Hint | None  # the seed's improvement approach for the cause

    def as_dict(self) -> dict[str, Any]:
        return {
            "month": self.month.isoformat(),
            "scope": self.scope,
            "scope_id": self.scope_id,
            "scope_name": self.scope_name,
            "stages": [s.as_dict() for s in self.stages],
            "bottleneck": self.bottleneck,
            "bottleneck_achievement": self.bottleneck_achievement,
            "cause": self.cause,
            "hint": None if self.hint is None else self.hint.as_dict(),
            "approach": None if self.approach is None else self.approach.as_dict(),
        }


@dataclass(frozen=True)
class SuggestionMonth:
    """One trailing month: its actual, business days, and whether the pace counts it."""

    month: date
    value: float | None
    numerator: float | None
    denominator: float | None
    business_days: int
    included: bool  # False: before the scope's first activity

    def as_dict(self) -> dict[str, Any]:
        return {
            "month": self.month.isoformat(),
            "value": self.value,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "business_days": self.business_days,
            "included": self.included,
        }


@dataclass(frozen=True)
class Suggestion:
    """docs/targets.md, docs/kpi-catalog.md target suggestion for one KPI, scope id and target period, by pace.

    Counts and sums: Σ of the included months ÷ Σ of their business days × the target
    period's business days, each level rounded to a whole number (whole currency units).
    Ratios: Σ numerator ÷ Σ denominator (6 decimals); the two custom KPIs (a median, the
    forecast accuracy) take the included months' mean.
    """

    kpi: str
    as_of: date
    scope: str
    scope_id: str
    scope_name: str
    grain: str
    period_start: date  # the target period
    business_days: int  # of the target period
    months: tuple[SuggestionMonth, ...]  # the trailing three complete months, oldest first
    first_activity: date | None  # the scope's, through as_of
    method: Literal["pace", "pooled", "mean"]
    per_business_day: float | None  # pace only (6 decimals)
    base: float | None  # factor 1.0 before rounding (6 decimals); None without history
    factors: tuple[float, float, float]
    minimum: float | None
    achievement: float | None
    stretch: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kpi": self.kpi,
            "as_of": self.as_of.isoformat(),
            "scope": self.scope,
            "scope_id": self.scope_id,
            "scope_name": self.scope_name,
            "grain": self.grain,
            "period_start": self.period_start.isoformat(),
            "business_days": self.business_days,
            "months": [m.as_dict() for m in self.months],
            "first_activity": None
            if self.first_activity is None
            else self.first_activity.isoformat(),
            "method": self.method,
            "per_business_day": self.per_business_day,
            "base": self.base,
            "factors": list(self.factors),
            "minimum": self.minimum,
            "achievement": self.achievement,
            "stretch": self.stretch,
        }


# --- helpers ------------------------------------------------------------------------------------


def round_up(value: float) -> int:
    """docs/kpi-catalog.md: rounded to 6 decimal places, then up (so float noise never adds one)."""
    return math.ceil(round(value, 6))


def trailing_months(as_of: date) -> tuple[date, ...]:
    """The first days of the three complete months before ``as_of``'s month, oldest first."""
    months: list[date] = []
    current = as_of.replace(day=1)
    for _ in range(TRAILING_MONTHS):
        current = (current - timedelta(days=1)).replace(day=1)
        months.insert(0, current)
    return tuple(months)


def _span(months: Sequence[date]) -> str:
    return f"{months[0]:%Y-%m}..{months[-1]:%Y-%m}"


def _check_day(param: str, value: date | None) -> None:
    if value is not None and (not isinstance(value, date) or isinstance(value, datetime)):
        raise KpiRequestError(param, "a date (YYYY-MM-DD)")


def _check_rate(param: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise KpiRequestError(param, "a finite number")
    if not 0 < value <= 1:
        raise KpiRequestError(param, f"a fraction in (0, 1], not {value}")


def _one_member(conn: Connection, scope: Scope, scope_id: str | None, what: str) -> tuple[str, str]:
    """(scope id, name) of the one scope id a plan or funnel is for; raises naming the param."""
    key = parse_scope_id(scope, scope_id)
    if scope != "org" and key is None:
        raise KpiRequestError("id", f"a {scope} {what} needs an id")
    members = scope_members(conn, scope, key)
    if not members:
        raise KpiRequestError("id", f"no {scope} with id {scope_id!r}")
    return members[0]


def _reps_in_scope(
    conn: Connection, ctx: KpiContext, scope: Scope, key: tuple[str, str] | None
) -> int:
    """Headcount for the per-rep pace: non-deleted, active inside-sales reps (1 at rep scope)."""
    if scope == "rep":
        return 1
    reps = table_of(Rep)
    where = [
        reps.c.deleted == false(),
        reps.c.active == true(),
        *not_field_sales(ctx, reps.c.source, reps.c.crm_id),
    ]
    if scope == "team" and key is not None:
        where += [reps.c.source == key[0], reps.c.team_crm_id == key[1]]
    count = conn.execute(select(func.count()).select_from(reps).where(*where)).scalar_one()
    return int(count)


def _pace(value: float, divisor: int) -> float | None:
    return round(value / divisor, 6) if divisor > 0 else None


# --- plan ---------------------------------------------------------------------------------------


def _check_number(param: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise KpiRequestError(param, f"a finite number, not {value!r}")
    return float(value)


def _won_count(won_target: object) -> int:
    """The won target as a whole count of deals above 0, or KpiRequestError naming it."""
    number = _check_number("won_target", won_target)
    if number <= 0:
        raise KpiRequestError("won_target", f"a number of deals above 0, not {won_target!r}")
    if not number.is_integer():
        raise KpiRequestError(
            "won_target",
            f"a whole number of deals, not {won_target!r}; give an amount as won_amount_target",
        )
    return int(number)


def _pooled(history: Sequence[KpiRow], key: str) -> tuple[float, float]:
    """Σ numerator and Σ denominator of ``key`` over the trailing months' rows."""
    rows = [r for r in history if r.kpi == key]
    return (
        float(sum(r.numerator or 0 for r in rows)),
        float(sum(r.denominator or 0 for r in rows)),
    )


def plan(
    bind: Connection | Engine,
    ctx: KpiContext,
    *,
    won_target: float | None = None,
    won_amount_target: float | None = None,
    avg_deal_size: float | None = None,
    meeting_win_rate: float | None = None,
    meeting_conversion_rate: float | None = None,
    effective_contact_rate: float | None = None,
    win_rate: float | None = None,
    month: date | None = None,
    scope: Scope = "org",
    scope_id: str | None = None,
    as_of: date | None = None,
) -> Plan:
    """The activity a won target needs in ``month`` (default: as_of's month; as_of: today).

    ``won_target`` is a whole count of IS-sourced deals; ``won_amount_target`` an amount,
    turned into a count by ÷ ``avg_deal_size`` (default: the IS-sourced won deals' mean over
    the trailing months), rounded up. ``win_rate`` is the old name of ``meeting_win_rate``.
    """
    if won_target is None and won_amount_target is None:
        raise KpiRequestError("won_target", "give won_target (deals) or won_amount_target")
    if won_target is not None and won_amount_target is not None:
        raise KpiRequestError(
            "won_amount_target", "give won_target (deals) or won_amount_target, not both"
        )
    amount: float | None = None
    if won_amount_target is not None:
        amount = _check_number("won_amount_target", won_amount_target)
        if amount <= 0:
            raise KpiRequestError(
                "won_amount_target", f"an amount above 0, not {won_amount_target!r}"
            )
        if avg_deal_size is not None:
            if _check_number("avg_deal_size", avg_deal_size) <= 0:
                raise KpiRequestError("avg_deal_size", f"an amount above 0, not {avg_deal_size!r}")
    elif avg_deal_size is not None:
        raise KpiRequestError("avg_deal_size", "avg_deal_size goes with won_amount_target")
    count = None if won_target is None else _won_count(won_target)
    if win_rate is not None:
        if meeting_win_rate is not None and meeting_win_rate != win_rate:
            raise KpiRequestError(
                "win_rate", "win_rate is the old name of meeting_win_rate: give one of them"
            )
        _check_rate("win_rate", win_rate)
        meeting_win_rate = win_rate
    given = {
        "meeting_win_rate": meeting_win_rate,
        "meeting_conversion_rate": meeting_conversion_rate,
        "effective_contact_rate": effective_contact_rate,
    }
    for param, value in given.items():
        _check_rate(param, value)
    _check_day("as_of", as_of)
    _check_day("month", month)
    day = as_of or ctx.today()
    first = (month or day).replace(day=1)
    window = trailing_months(day)
    missing = [k for k in PLAN_RATES if given[k] is None]
    size_missing = amount is not None and avg_deal_size is None
    # The amount path's deal size: IS-sourced won amount ÷ IS-sourced deals won, the latter
    # being meeting_win_rate's numerator.
    wanted = [*missing, *(["is_won_amount", "meeting_win_rate"] if size_missing else [])]
    with _connection(bind) as conn:
        member_id, member_name = _one_member(conn, scope, scope_id, "plan")
        reps = _reps_in_scope(conn, ctx, scope, parse_scope_id(scope, scope_id))
        history = (
            compute(
                conn,
                ctx,
                kpis=list(dict.fromkeys(wanted)),
                grain="month",
                start=window[0],
                end=window[-1],
                scope=scope,
                scope_id=None if scope == "org" else member_id,
                as_of=day,
                max_rows=None,
            )
            if wanted
            else []
        )
    size: PlanRate | None = None
    if amount is not None:
        if avg_deal_size is not None:
            size = PlanRate("avg_deal_size", float(avg_deal_size), "given", None, None)
        else:
            won_amount = float(sum(r.value or 0 for r in history if r.kpi == "is_won_amount"))
            won_deals, _ = _pooled(history, "meeting_win_rate")
            if not won_deals:
                raise KpiRequestError(
                    "avg_deal_size",
                    f"no IS-sourced deals won in {_span(window)} to derive it from; give it",
                )
            if not won_amount:
                raise KpiRequestError(
                    "avg_deal_size",
                    f"the IS-sourced deals won in {_span(window)} have no amount; give it",
                )
            size = PlanRate(
                "avg_deal_size", won_amount / won_deals, "derived", won_amount, won_deals
            )
        need = amount / size.value
        if not need <= MAX_PLAN_VALUE:
            raise KpiRequestError(
                "won_amount_target",
                f"the plan would need more than {MAX_PLAN_VALUE:,.0f} deals won "
                f"({amount:,.6g} ÷ avg_deal_size {size.value:.6g}); check the amount",
            )
        count = round_up(need)
    assert count is not None
    rates: dict[str, PlanRate] = {}
    for key in PLAN_RATES:
        value = given[key]
        if value is not None:
            rates[key] = PlanRate(key, float(value), "given", None, None)
            continue
        numerator, denominator = _pooled(history, key)
        won, out_of = _RATE_COUNTS[key]
        if not denominator:
            raise KpiRequestError(key, f"no {out_of} in {_span(window)} to derive it from; give it")
        if not numerator:
            raise KpiRequestError(key, f"no {won} in {_span(window)}, so it derives as 0; give it")
        rates[key] = PlanRate(key, numerator / denominator, "derived", numerator, denominator)

    business_days = BusinessCalendar(ctx.holidays).count(first, next_period(first, "month"))

    def step(stage: str, value: float, rate: PlanRate | None) -> PlanStep:
        return PlanStep(
            stage=stage,
            value=value,
            rate=None if rate is None else rate.kpi,
            rate_used=None if rate is None else rate.value,
            per_business_day=_pace(value, business_days),
            per_rep=_pace(value, reps),
            per_rep_per_business_day=_pace(value, business_days * reps),
        )

    target_param = "won_target" if amount is None else "won_amount_target"
    steps = [step("won_count", count, None)]
    previous = count
    for stage, key in PLAN_CHAIN:
        need = previous / rates[key].value
        if not need <= MAX_PLAN_VALUE:  # also catches inf from a vanishing rate
            raise KpiRequestError(
                target_param if rates[key].source == "derived" else key,
                f"the plan would need more than {MAX_PLAN_VALUE:,.0f} {stage} a month "
                f"({previous:,.6g} ÷ {key} {rates[key].value:.6g}); check the target and the rates",
            )
        previous = round_up(need)  # each step divides the rounded value
        steps.append(step(stage, previous, rates[key]))
    return Plan(
        month=first,
        as_of=day,
        scope=scope,
        scope_id=member_id,
        scope_name=member_name,
        won_target=count,
        won_amount_target=amount,
        avg_deal_size=size,
        business_days=business_days,
        reps=reps,
        rates=tuple(rates[k] for k in PLAN_RATES),
        trailing_months=window if wanted else None,
        steps=tuple(steps),
    )


# --- funnel -------------------------------------------------------------------------------------


def funnel(
    bind: Connection | Engine,
    ctx: KpiContext,
    *,
    month: date,
    scope: Scope = "org",
    scope_id: str | None = None,
) -> Funnel:
    """The funnel of ``month`` (any day of it) against its month targets, with the bottleneck."""
    _check_day("month", month)
    first = month.replace(day=1)
    with _connection(bind) as conn:
        member_id, member_name = _one_member(conn, scope, scope_id, "funnel")
        rows = compute(
            conn,
            ctx,
            kpis=list(FUNNEL_STAGES),
            grain="month",
            start=first,
            end=first,
            scope=scope,
            scope_id=None if scope == "org" else member_id,
        )
    by_kpi: dict[str, KpiRow] = {r.kpi: r for r in rows}
    stages = tuple(
        FunnelStage(
            stage=key,
            kind="rate" if key in FUNNEL_RATES else "count",
            target=by_kpi[key].target,
            actual=by_kpi[key].value,
            achievement=by_kpi[key].achievement,  # actual / target, in SQL (NULL on a 0 target)
            hint=STAGE_HINTS.get(key),
            pace_target=by_kpi[key].pace_target,  # a running month's count stages only
            pace_achievement=by_kpi[key].pace_achievement,
        )
        for key in FUNNEL_STAGES
    )
    return diagnose(first, scope, member_id, member_name, stages)


def diagnose(
    start: date, scope: str, scope_id: str, scope_name: str, stages: tuple[FunnelStage, ...]
) -> Funnel:
    """The bottleneck and cause of funnel stages (in FUNNEL_STAGES order), as docs/targets.md describes."""
    short = [s for s in stages if s.kind == "rate" and s.below_target]
    # min() keeps the first of equals: the earlier stage in the funnel wins a tie.
    worst = min(short, key=lambda s: s.achievement or 0.0) if short else None
    calls = stages[0]
    cause: Cause | None
    if calls.below_target:
        cause = "volume"
    elif any(s.below_target for s in stages):
        cause = "quality"
    else:
        cause = None
    hint = calls.hint if cause == "volume" else (worst.hint if worst is not None else None)
    return Funnel(
        month=start,
        scope=scope,
        scope_id=scope_id,
        scope_name=scope_name,
        stages=stages,
        bottleneck=None if worst is None else worst.stage,
        bottleneck_achievement=None if worst is None else worst.achievement,
        cause=cause,
        hint=hint,
        approach=None if cause is None else CAUSE_APPROACHES[cause],
    )


# --- target suggestion --------------------------------------------------------------------------


def suggest_targets(
    bind: Connection | Engine,
    ctx: KpiContext,
    *,
    kpi: str,
    scope: Scope = "org",
    scope_id: str | None = None,
    as_of: date | None = None,
    factors: tuple[float, float, float] = (0.90, 1.00, 1.10),
    grain: Grain = "month",
    period_start: date | None = None,
) -> list[Suggestion]:
    """Minimum, achievement and stretch targets per scope id from the trailing months' pace.

    The target period is the ``grain`` period starting on ``period_start`` (default: the
    one containing as_of). One suggestion for the org or for the scope id given; one per
    rep or team when a rep or team scope has no id. Months before the scope id's first
    activity are left out; with none left, the suggestion is null.
    """
    spec = select_specs([kpi])[0]  # raises naming "kpi" for an unknown key
    if len(factors) != 3:
        raise KpiRequestError("factors", "three factors: minimum, achievement, stretch")
    for factor in factors:
        if (
            isinstance(factor, bool)
            or not isinstance(factor, int | float)
            or not math.isfinite(factor)
            or factor <= 0
        ):
            raise KpiRequestError("factors", f"finite numbers above 0, not {factor!r}")
    _check_day("as_of", as_of)
    _check_day("period_start", period_start)
    if grain not in GRAINS:
        raise KpiRequestError("grain", f"unknown grain {grain!r}; one of {', '.join(GRAINS)}")
    day = as_of or ctx.today()
    target_start = period_start or first_of_period(day, grain)
    if first_of_period(target_start, grain) != target_start:
        raise KpiRequestError("period_start", f"{target_start} does not start a {grain}")
    window = trailing_months(day)
    calendar = BusinessCalendar(ctx.holidays)
    month_days = {m: calendar.count(m, next_period(m, "month")) for m in window}
    target_days = calendar.count(target_start, next_period(target_start, grain))
    with _connection(bind) as conn:
        rows = compute(
            conn,
            ctx,
            kpis=[kpi],
            grain="month",
            start=window[0],
            end=window[-1],
            scope=scope,
            scope_id=scope_id,
            as_of=day,
            max_rows=None,
        )
        firsts = first_activity(conn, ctx, scope, as_of=day)
    per_member: dict[tuple[str, str], dict[date, KpiRow]] = {}
    for row in rows:
        per_member.setdefault((row.scope_id, row.scope_name), {})[row.period_start] = row
    additive = spec.kind in ("count", "sum")
    whole = spec.unit in ("count", "amount")
    minimum_f, achievement_f, stretch_f = (float(f) for f in factors)
    out: list[Suggestion] = []
    for (member_id, member_name), by_month in per_member.items():
        started = firsts.get(member_id)
        months = tuple(
            SuggestionMonth(
                month=m,
                value=_float(by_month[m].value) if m in by_month else None,
                numerator=_float(by_month[m].numerator) if m in by_month else None,
                denominator=_float(by_month[m].denominator) if m in by_month else None,
                business_days=month_days[m],
                # The month of the first activity counts; the ones wholly before it do not.
                included=started is not None and next_period(m, "month") > started,
            )
            for m in window
        )
        used = [m for m in months if m.included]
        base: float | None = None
        per_day: float | None = None
        method: Literal["pace", "pooled", "mean"]
        if additive:
            method = "pace"
            days_used = sum(m.business_days for m in used)
            if used and days_used:
                total = sum(m.value or 0.0 for m in used)
                per_day = total / days_used
                base = per_day * target_days
        elif spec.kind == "ratio":
            method = "pooled"
            denominator = sum(m.denominator or 0.0 for m in used)
            if denominator:
                base = sum(m.numerator or 0.0 for m in used) / denominator
        else:
            method = "mean"
            present = [m.value for m in used if m.value is not None]
            base = sum(present) / len(present) if present else None

        def level(factor: float, base: float | None = base) -> float | None:
            if base is None:
                return None
            if whole:  # a count or amount target is whole (kpi.targets.check_target_value)
                return float(Decimal(repr(base * factor)).quantize(Decimal(1), ROUND_HALF_UP))
            return round(base * factor, 6)

        out.append(
            Suggestion(
                kpi=kpi,
                as_of=day,
                scope=scope,
                scope_id=member_id,
                scope_name=member_name,
                grain=grain,
                period_start=target_start,
                business_days=target_days,
                months=months,
                first_activity=started,
                method=method,
                per_business_day=None if per_day is None else round(per_day, 6),
                base=None if base is None else round(base, 6),
                factors=(minimum_f, achievement_f, stretch_f),
                minimum=level(minimum_f),
                achievement=level(achievement_f),
                stretch=level(stretch_f),
            )
        )
    return out


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)
