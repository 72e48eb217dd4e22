"""The KPI engine: the three-tier catalog as data, compiled to SQL (SPEC §5, §6, §7, §10).

    from kpi import KpiContext, compute
    rows = compute(engine, KpiContext(timezone="Asia/Tokyo", holidays="JP"),
                   grain="month", start=date(2026, 10, 1), end=date(2026, 10, 31), scope="rep")

The sync keeps the daily rollups current: ``ensure_rollups`` at the start of a run,
``RollupMaintainer`` around each page's writes, ``flush_rollups`` at the end, then
``store_forecast_snapshot`` for the landing forecast's history.
"""

from kpi.catalog import (
    CATALOG,
    KPIS,
    PHASE_GAPS,
    PHASES,
    TIERS,
    Band,
    KpiSpec,
    PhasePriority,
    catalog,
)
from kpi.compiler import BYS, SCOPES, By, Scope
from kpi.engine import (
    MAX_ROWS,
    KpiRequestError,
    KpiRow,
    RowBand,
    Target,
    compute,
    list_costs,
    list_targets,
    put_cost,
    put_targets,
)
from kpi.forecast import FORECAST_KPIS, ForecastRow, landing_forecast, store_forecast_snapshot
from kpi.periods import GRAINS, BusinessCalendar, Grain, KpiContext
from kpi.planning import (
    FUNNEL_STAGES,
    PLAN_RATES,
    Funnel,
    FunnelStage,
    Hint,
    Plan,
    PlanRate,
    PlanStep,
    Suggestion,
    SuggestionMonth,
    funnel,
    plan,
    suggest_targets,
)
from kpi.rollups import (
    RollupMaintainer,
    RollupToken,
    ensure_rollups,
    flush_rollups,
    rebuild_rollups,
    rollups_current,
)

__all__ = [
    "BYS",
    "CATALOG",
    "FORECAST_KPIS",
    "FUNNEL_STAGES",
    "GRAINS",
    "KPIS",
    "MAX_ROWS",
    "PHASES",
    "PHASE_GAPS",
    "PLAN_RATES",
    "SCOPES",
    "TIERS",
    "Band",
    "BusinessCalendar",
    "By",
    "ForecastRow",
    "Funnel",
    "FunnelStage",
    "Grain",
    "Hint",
    "KpiContext",
    "KpiRequestError",
    "KpiRow",
    "KpiSpec",
    "PhasePriority",
    "Plan",
    "PlanRate",
    "PlanStep",
    "RollupMaintainer",
    "RollupToken",
    "RowBand",
    "Scope",
    "Suggestion",
    "SuggestionMonth",
    "Target",
    "catalog",
    "compute",
    "ensure_rollups",
    "flush_rollups",
    "funnel",
    "landing_forecast",
    "list_costs",
    "list_targets",
    "plan",
    "put_cost",
    "put_targets",
    "rebuild_rollups",
    "rollups_current",
    "store_forecast_snapshot",
    "suggest_targets",
]
