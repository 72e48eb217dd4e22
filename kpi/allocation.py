"""Top-down allocation (docs/targets.md POST /v1/targets/allocate): a team or org target split over its IS reps.

Counts and sums are split so the rep targets add up exactly to the parent: each
rep's exact quota (parent × weight ÷ Σ weights, in exact fractions) is floored to
a whole number (whole currency units for amounts), and the units left go one
each to the largest remainders, ties to the smaller rep id. Rates and other
non-additive KPIs (means, medians) are copied to every rep. Methods:

- ``equal``: the same weight each;
- ``history``: each rep's actual over the trailing three complete months (no
  history: 0; all 0: equal, and the result says so);
- ``skill``: level weights (junior 0.7, mid 1.0, senior 1.2 unless given).

Unless a dry run, the rep targets are written through ``put_targets`` in one
transaction (drafts, or confirmed when asked), with its revisions and its rule
that a confirmed value changes only with a reason.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any, Literal, get_args

from sqlalchemy import Connection, Engine

from kpi.catalog import KPIS
from kpi.compiler import Scope
from kpi.engine import KpiRequestError, _connection, compute
from kpi.periods import KpiContext
from kpi.planning import trailing_months
from kpi.reps import SKILL_LEVELS, SkillLevel, is_reps, rep_levels
from kpi.targets import (
    LEVELS,
    Level,
    Status,
    Target,
    check_name,
    check_target_value,
    put_targets,
    stored_target,
    validate_target,
)

Method = Literal["equal", "history", "skill"]
METHODS: tuple[str, ...] = get_args(Method)
Mode = Literal["split", "copied"]

DEFAULT_SKILL_WEIGHTS: Mapping[str, float] = {"junior": 0.7, "mid": 1.0, "senior": 1.2}


@dataclass(frozen=True)
class RepShare:
    """One rep's part of an allocation."""

    rep_id: str
    name: str
    level: SkillLevel
    weight: float | None  # equal: 1; history: the trailing actual; skill: the level's; copied: None
    share: float | None  # weight ÷ Σ weights (6 decimals); copied: None
    value: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.rep_id,
            "name": self.name,
            "level": self.level,
            "weight": self.weight,
            "share": self.share,
            "value": self.value,
        }


@dataclass(frozen=True)
class Allocation:
    """The split of a parent target over the IS reps in scope, and what was written."""

    kpi: str
    grain: str
    period_start: date
    scope: str
    scope_id: str
    level: Level
    value: float  # the parent's
    value_source: Literal["stored", "given"]
    method: Method
    mode: Mode
    fallback: Literal["equal"] | None  # history with no history at all: split equally
    weights: Mapping[str, float] | None  # skill: the level weights used
    trailing_months: tuple[date, ...] | None  # history: the months read
    field_sales_team_ids: tuple[str, ...]  # teams left out as field sales
    reps: tuple[RepShare, ...]  # by rep id
    dry_run: bool
    status: Status  # what was (or, on a dry run, would be) written
    written: int

    def as_dict(self) -> dict[str, Any]:
        """The allocation as POST /v1/targets/allocate answers it."""
        return {
            "kpi": self.kpi,
            "grain": self.grain,
            "period_start": self.period_start.isoformat(),
            "scope": self.scope,
            "id": self.scope_id,
            "level": self.level,
            "value": self.value,
            "value_source": self.value_source,
            "method": self.method,
            "mode": self.mode,
            "fallback": self.fallback,
            "weights": None if self.weights is None else dict(self.weights),
            "trailing_months": (
                None
                if self.trailing_months is None
                else [m.isoformat() for m in self.trailing_months]
            ),
            "field_sales_team_ids": list(self.field_sales_team_ids),
            "reps": [r.as_dict() for r in self.reps],
            "dry_run": self.dry_run,
            "status": self.status,
            "written": self.written,
        }


def largest_remainder(total: int, weights: Sequence[tuple[str, Fraction]]) -> dict[str, int]:
    """Whole parts of ``total`` in proportion to the weights, summing exactly to it.

    Floors of the exact quotas, then one more to each of the largest remainders; equal
    remainders go to the smaller id first. All weights 0 is the caller's to avoid.
    """
    whole = sum((w for _, w in weights), Fraction(0))
    if whole <= 0:
        raise ValueError("weights sum to 0")
    quotas = {rep: Fraction(total) * w / whole for rep, w in weights}
    parts = {rep: math.floor(q) for rep, q in quotas.items()}
    left = total - sum(parts.values())
    order = sorted(quotas, key=lambda rep: (-(quotas[rep] - parts[rep]), rep.encode()))
    for rep in order[:left]:
        parts[rep] += 1
    return parts


def _check_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    chosen = dict(DEFAULT_SKILL_WEIGHTS)
    if weights is None:
        return chosen
    if not isinstance(weights, Mapping):
        raise KpiRequestError("weights", "an object of level → weight")
    for name, weight in weights.items():
        if name not in SKILL_LEVELS:
            raise KpiRequestError(
                "weights", f"unknown level {name!r}; one of {', '.join(SKILL_LEVELS)}"
            )
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight <= 0
        ):
            raise KpiRequestError("weights", f"finite numbers above 0, not {weight!r}")
        chosen[name] = float(weight)
    return chosen


def allocate(
    bind: Connection | Engine,
    ctx: KpiContext,
    *,
    kpi: str,
    grain: str,
    period_start: date,
    scope: Scope,
    scope_id: str | None = None,
    level: Level = "achievement",
    value: float | None = None,
    method: Method = "equal",
    weights: Mapping[str, float] | None = None,
    dry_run: bool = False,
    confirm: bool = False,
    reason: str | None = None,
    who: str = "system",
    as_of: date | None = None,
    field_sales_team_ids: Collection[str] = (),
) -> Allocation:
    """Split a team or org target (stored at ``level``, or ``value``) over its IS reps.

    The reps of ``ctx``'s field-sales teams are left out (and those of
    ``field_sales_team_ids``, for a caller without them in its context).

    Writes the rep targets (drafts; confirmed with ``confirm``) all or nothing unless
    ``dry_run``. Raises KpiRequestError naming the parameter at fault (``reason`` when
    a confirmed rep target would change without one).
    """
    if scope not in ("org", "team"):
        raise KpiRequestError("scope", "org or team: a rep target is not split further")
    if method not in METHODS:
        raise KpiRequestError("method", f"unknown method {method!r}; one of {', '.join(METHODS)}")
    if level not in LEVELS:
        raise KpiRequestError("level", f"unknown level {level!r}; one of {', '.join(LEVELS)}")
    if weights is not None and method != "skill":
        raise KpiRequestError("weights", "weights are for method skill")
    skill_weights = _check_weights(weights) if method == "skill" else None
    if reason is not None:
        reason = check_name("reason", reason, 2000)
    who = check_name("who", who)
    parent_id = "org" if scope == "org" else (scope_id or "")
    status: Status = "confirmed" if confirm else "draft"
    day = as_of or ctx.today()
    with _connection(bind, write=not dry_run) as conn:
        # The parent's own checks (kpi, grain, period start, id), as a target of its own.
        validate_target(
            conn, Target(kpi, grain, period_start, scope, parent_id, value, level=level), ctx
        )
        spec = KPIS[kpi]
        if value is None:
            stored = stored_target(
                conn,
                kpi=kpi,
                grain=grain,
                period_start=period_start,
                scope=scope,
                scope_id=parent_id,
                level=level,
            )
            if stored is None:
                raise KpiRequestError(
                    "value",
                    f"no {level} target of {kpi} is stored for {parent_id} {grain} "
                    f"{period_start}; give value",
                )
            total, value_source = stored[0], "stored"
        else:
            total, value_source = check_target_value(spec, value), "given"
        splits = spec.kind in ("count", "sum")
        if splits and not float(total).is_integer():
            raise KpiRequestError(
                "value", f"{total:g} is split into whole units: give a whole number"
            )
        members = is_reps(conn, scope, scope_id, ctx=ctx, field_sales_team_ids=field_sales_team_ids)
        if not members:
            raise KpiRequestError("id", f"no active inside-sales reps in {parent_id}")
        levels = {
            r.rep_id: r.level
            for r in rep_levels(conn, ctx, as_of=day, scope=scope, scope_id=scope_id)
        }
        fallback: Literal["equal"] | None = None
        window: tuple[date, ...] | None = None
        raw: dict[str, Fraction] = {rep: Fraction(1) for rep, _ in members}
        shown: dict[str, float] = {rep: 1.0 for rep, _ in members}
        if splits and method == "history":
            window = trailing_months(day)
            actual = _history(conn, ctx, kpi, window, day)
            shown = {rep: actual.get(rep, 0.0) for rep, _ in members}
            if any(shown.values()):
                raw = {rep: Fraction(str(v)) for rep, v in shown.items()}
            else:
                fallback = "equal"
                raw = {rep: Fraction(1) for rep, _ in members}
        elif splits and method == "skill":
            assert skill_weights is not None
            shown = {rep: skill_weights[levels.get(rep, "junior")] for rep, _ in members}
            raw = {rep: Fraction(str(w)) for rep, w in shown.items()}
        whole = sum(raw.values(), Fraction(0))
        if splits:
            parts = largest_remainder(int(total), sorted(raw.items(), key=lambda x: x[0].encode()))
        shares = tuple(
            RepShare(
                rep_id=rep,
                name=name,
                level=levels.get(rep, "junior"),
                weight=shown[rep] if splits else None,
                share=round(float(raw[rep] / whole), 6) if splits else None,
                value=float(parts[rep]) if splits else float(total),
            )
            for rep, name in members
        )
        written = 0
        if not dry_run:
            written = put_targets(
                conn,
                [
                    Target(
                        kpi,
                        grain,
                        period_start,
                        "rep",
                        s.rep_id,
                        s.value,
                        level=level,
                        status=status,
                        reason=reason,
                    )
                    for s in shares
                ],
                ctx,
                who=who,
            )
    return Allocation(
        kpi=kpi,
        grain=grain,
        period_start=period_start,
        scope=scope,
        scope_id=parent_id,
        level=level,
        value=float(total),
        value_source=value_source,  # type: ignore[arg-type]
        method=method,
        mode="split" if splits else "copied",
        fallback=fallback,
        weights=skill_weights,
        trailing_months=window,
        field_sales_team_ids=tuple(sorted(field_sales_team_ids)),
        reps=shares,
        dry_run=dry_run,
        status=status,
        written=written,
    )


def _history(
    conn: Connection,
    ctx: KpiContext,
    kpi: str,
    window: tuple[date, ...],
    as_of: date,
) -> dict[str, float]:
    """Each rep's actual of ``kpi`` summed over the trailing months (from the engine's SQL)."""
    rows = compute(
        conn,
        ctx,
        kpis=[kpi],
        grain="month",
        start=window[0],
        end=window[-1],
        scope="rep",
        as_of=as_of,
        max_rows=None,
    )
    out: dict[str, float] = {}
    for row in rows:  # a KPI row per rep and month, three months
        out[row.scope_id] = out.get(row.scope_id, 0.0) + float(row.value or 0)
    return out
