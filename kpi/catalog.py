"""The KPI catalog (docs/kpi-catalog.md) as data: one frozen spec per KPI, in the seed's three tiers.

Numerators and denominators name measures: additive counts and sums over
the store's records, which kpi/compiler.py turns into SQL. A KPI is a
count or sum (``numerator`` only), a ratio (``numerator / denominator``; a mean is
a ratio of a sum to a count, as lead_quality_score and handoff_rating are), or — for
the two KPIs that are neither, the
median response time and the forecast accuracy — ``kind="custom"``, which the
compiler resolves through one explicit escape hatch.

Bands and phase stars are the seed article's (SalesGrid, インサイドセールスの目標設定と
進捗管理シート): 架電数 80–120件/日, 接続率 20–35 %, … and its 立ち上げ期 / 成長期 / 成熟期
tables of ★★★ to ★☆☆ priorities.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

Tier = Literal["behavioral", "tactical", "strategic", "efficiency"]
TIERS: tuple[str, ...] = get_args(Tier)
Phase = Literal["launch", "growth", "mature"]
PHASES: tuple[str, ...] = get_args(Phase)
Unit = Literal["count", "ratio", "seconds", "minutes", "days", "amount", "score", "rating"]
Kind = Literal["count", "sum", "ratio", "custom"]


@dataclass(frozen=True)
class Band:
    """The seed's benchmark range; ``None`` is an open side (≤ 0.10 has no low)."""

    low: float | None
    high: float | None
    # True: the band is per rep per business day, scaled to a row by business days × reps in scope.
    per_rep_day: bool = False


@dataclass(frozen=True)
class PhasePriority:
    phase: Phase
    stars: int  # 3, 2 or 1, the seed's ★★★ / ★★☆ / ★☆☆
    note: str = ""


@dataclass(frozen=True)
class KpiSpec:
    """One KPI: what it is called, how it is computed, and what good looks like."""

    key: str
    tier: Tier
    name_en: str
    name_ja: str
    formula: str
    unit: Unit
    kind: Kind
    numerator: str  # a measure name (kpi/compiler.py MEASURES)
    denominator: str | None = None
    # The numerator is multiplied by ``multiply_by`` (a number, or a KpiContext field name)
    # and divided by ``divide_by`` before the ratio: ms → s, BANT fields → a 0–1 score, LTV months.
    multiply_by: float | str = 1
    divide_by: float = 1
    band: Band | None = None
    phases: tuple[PhasePriority, ...] = ()
    # Costs are entered for the whole organization: CAC has no team, rep or breakdown value.
    org_only: bool = False
    # Grains the KPI has a value at.
    grains: tuple[str, ...] = ("day", "week", "month", "quarter", "fiscal_year")

    def priority(self, phase: str) -> int:
        """The seed's stars for ``phase`` (0 when the KPI is not one of the phase's focus KPIs)."""
        return next((p.stars for p in self.phases if p.phase == phase), 0)

    def as_dict(self) -> dict[str, Any]:
        """The catalog entry as /v1/kpis/catalog serves it."""
        return {
            "key": self.key,
            "tier": self.tier,
            "names": {"en": self.name_en, "ja": self.name_ja},
            "formula": self.formula,
            "unit": self.unit,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "band": (
                None
                if self.band is None
                else {
                    "low": self.band.low,
                    "high": self.band.high,
                    "per": "rep_business_day" if self.band.per_rep_day else None,
                }
            ),
            "phase_priority": {p.phase: p.stars for p in self.phases},
            "phase_notes": {p.phase: p.note for p in self.phases if p.note},
            "grains": list(self.grains),
        }


def _p(phase: Phase, stars: int, note: str = "") -> PhasePriority:
    return PhasePriority(phase, stars, note)


CATALOG: tuple[KpiSpec, ...] = (
    # --- behavioral (行動KPI) ---------------------------------------------------------------
    KpiSpec(
        key="calls",
        tier="behavioral",
        name_en="Calls",
        name_ja="架電数",
        formula="outbound calls, by occurred at",
        unit="count",
        kind="count",
        numerator="calls",
        band=Band(80, 120, per_rep_day=True),
        phases=(_p("launch", 3),),
    ),
    KpiSpec(
        key="call_reach_rate",
        tier="behavioral",
        name_en="Call reach rate",
        name_ja="着電率",
        formula="reached calls / calls",
        unit="ratio",
        kind="ratio",
        numerator="calls_reached",
        denominator="calls",
        band=Band(0.85, 0.95),
    ),
    KpiSpec(
        key="connect_rate",
        tier="behavioral",
        name_en="Connect rate",
        name_ja="接続率",
        formula="connected calls / calls",
        unit="ratio",
        kind="ratio",
        numerator="calls_connected",
        denominator="calls",
        band=Band(0.20, 0.35),
        phases=(_p("launch", 2),),
    ),
    KpiSpec(
        key="effective_contacts",
        tier="behavioral",
        name_en="Effective contacts",
        name_ja="有効コンタクト数",
        formula="connected outbound calls lasting >= ISKPI_EFFECTIVE_CALL_SECONDS",
        unit="count",
        kind="count",
        numerator="calls_effective",
    ),
    KpiSpec(
        key="effective_contact_rate",
        tier="behavioral",
        name_en="Effective contact rate",
        name_ja="コネクト率",
        formula="effective_contacts / calls",
        unit="ratio",
        kind="ratio",
        numerator="calls_effective",
        denominator="calls",
        band=Band(0.15, 0.25),
    ),
    KpiSpec(
        key="avg_talk_seconds",
        tier="behavioral",
        name_en="Average talk time",
        name_ja="通話時間",
        formula="sum of connected calls' durations / connected calls",
        unit="seconds",
        kind="ratio",
        numerator="talk_ms",
        denominator="calls_connected",
        divide_by=1000,
        band=Band(180, 300),
    ),
    KpiSpec(
        key="emails_sent",
        tier="behavioral",
        name_en="Emails sent",
        name_ja="メール送信数",
        formula="sent outbound emails, by sent at",
        unit="count",
        kind="count",
        numerator="emails_sent",
        band=Band(30, 50, per_rep_day=True),
    ),
    KpiSpec(
        key="email_open_rate",
        tier="behavioral",
        name_en="Email open rate",
        name_ja="開封率",
        formula="of tracked emails sent in the period, opened / tracked sent",
        unit="ratio",
        kind="ratio",
        numerator="emails_opened",
        denominator="emails_tracked",
        band=Band(0.20, 0.35),
    ),
    KpiSpec(
        key="email_click_rate",
        tier="behavioral",
        name_en="Email click rate",
        name_ja="クリック率",
        formula="clicked / tracked sent (same cohort)",
        unit="ratio",
        kind="ratio",
        numerator="emails_clicked",
        denominator="emails_tracked",
        band=Band(0.03, 0.08),
    ),
    KpiSpec(
        key="email_reply_rate",
        tier="behavioral",
        name_en="Email reply rate",
        name_ja="返信率",
        formula="replied / tracked sent (same cohort)",
        unit="ratio",
        kind="ratio",
        numerator="emails_replied",
        denominator="emails_tracked",
        band=Band(0.05, 0.15),
    ),
    KpiSpec(
        key="follow_up_rate",
        tier="behavioral",
        name_en="Follow-up rate",
        name_ja="フォローアップ実行率",
        formula=(
            "tasks due in the period completed by the end of their due day / tasks due in the period"
        ),
        unit="ratio",
        kind="ratio",
        numerator="tasks_on_time",
        denominator="tasks_due",
    ),
    KpiSpec(
        key="list_consumption_rate",
        tier="behavioral",
        name_en="List consumption rate",
        name_ja="リスト消化率",
        formula=(
            "call-list members added in the period that got an outbound call or sent email "
            "after joining, by the period's end / members added in the period"
        ),
        unit="ratio",
        kind="ratio",
        numerator="list_members_worked",
        denominator="list_members_added",
        phases=(_p("launch", 3),),
    ),
    # --- tactical (戦術KPI) ----------------------------------------------------------------
    KpiSpec(
        key="meetings_set",
        tier="tactical",
        name_en="Meetings set",
        name_ja="商談設定数",
        formula="meetings booked in the period, by booked at",
        unit="count",
        kind="count",
        numerator="meetings_booked",
        phases=(_p("launch", 2),),
    ),
    KpiSpec(
        key="meeting_conversion_rate",
        tier="tactical",
        name_en="Meeting conversion rate",
        name_ja="商談化率",
        formula="meetings_set / effective_contacts",
        unit="ratio",
        kind="ratio",
        numerator="meetings_booked",
        denominator="calls_effective",
        band=Band(0.05, 0.15),
        phases=(_p("launch", 1, "measure only"), _p("growth", 3)),
    ),
    KpiSpec(
        key="valid_meetings",
        tier="tactical",
        name_en="Valid meetings",
        name_ja="有効商談数",
        formula="meetings booked in the period whose outcome is completed",
        unit="count",
        kind="count",
        numerator="meetings_completed",
        phases=(_p("growth", 3),),
    ),
    KpiSpec(
        key="appointment_set_rate",
        tier="tactical",
        name_en="Appointment set rate",
        name_ja="アポイント設定率",
        formula="meetings booked in the period with a start time / meetings booked",
        unit="ratio",
        kind="ratio",
        numerator="meetings_with_start",
        denominator="meetings_booked",
        band=Band(0.80, 0.90),
    ),
    KpiSpec(
        key="meeting_cancel_rate",
        tier="tactical",
        name_en="Meeting cancel rate",
        name_ja="商談キャンセル率",
        formula="booked in the period and canceled / booked",
        unit="ratio",
        kind="ratio",
        numerator="meetings_canceled",
        denominator="meetings_booked",
        band=Band(None, 0.10),
    ),
    KpiSpec(
        key="deals_created",
        tier="tactical",
        name_en="Deals created",
        name_ja="商談創出数",
        formula="IS-sourced deals, by created at",
        unit="count",
        kind="count",
        numerator="deals_created_is",
    ),
    KpiSpec(
        key="sql_count",
        tier="tactical",
        name_en="SQLs",
        name_ja="SQL数",
        formula="leads whose SQL at is in the period",
        unit="count",
        kind="count",
        numerator="leads_sql",
    ),
    KpiSpec(
        key="bant_rate",
        tier="tactical",
        name_en="BANT rate",
        name_ja="BANT取得率",
        formula=(
            "IS-sourced deals created in the period with all four BANT fields "
            "/ IS-sourced deals created"
        ),
        unit="ratio",
        kind="ratio",
        numerator="deals_bant_complete_is",
        denominator="deals_created_is",
        band=Band(0.70, 0.85),
        phases=(_p("growth", 2),),
    ),
    KpiSpec(
        key="handoff_win_rate",
        tier="tactical",
        name_en="Handoff win rate",
        name_ja="引継ぎ後成約率",
        formula="IS-sourced deals closed won / IS-sourced deals closed, by close date",
        unit="ratio",
        kind="ratio",
        numerator="deals_won_is",
        denominator="deals_closed_is",
    ),
    # --- strategic (戦略KPI) ---------------------------------------------------------------
    KpiSpec(
        key="won_count",
        tier="strategic",
        name_en="Deals won",
        name_ja="受注件数",
        formula="deals closed won, by close date",
        unit="count",
        kind="count",
        numerator="deals_won",
    ),
    KpiSpec(
        key="won_amount",
        tier="strategic",
        name_en="Won amount",
        name_ja="受注金額",
        formula="sum of amount of deals closed won, by close date",
        unit="amount",
        kind="sum",
        numerator="won_amount",
    ),
    KpiSpec(
        key="win_rate",
        tier="strategic",
        name_en="Win rate",
        name_ja="受注率",
        formula="deals closed won / deals closed, by close date",
        unit="ratio",
        kind="ratio",
        numerator="deals_won",
        denominator="deals_closed",
        band=Band(0.20, 0.35),
        phases=(_p("mature", 3),),
    ),
    KpiSpec(
        key="is_won_amount",
        tier="strategic",
        name_en="IS-sourced won amount",
        name_ja="受注貢献額",
        formula="sum of amount of IS-sourced deals closed won, by close date",
        unit="amount",
        kind="sum",
        numerator="won_amount_is",
        # The seed's phase tables rank 受注貢献額 (IS起点の受注金額), not the org's won amount.
        phases=(_p("growth", 1), _p("mature", 3)),
    ),
    KpiSpec(
        key="meeting_win_rate",
        tier="strategic",
        name_en="Meeting win rate",
        name_ja="商談受注率",
        formula="IS-sourced deals closed won / meetings_set, same period",
        unit="ratio",
        kind="ratio",
        numerator="deals_won_is",
        denominator="meetings_booked",
        band=Band(0.20, 0.35),
    ),
    KpiSpec(
        key="avg_deal_size",
        tier="strategic",
        name_en="Average deal size",
        name_ja="平均受注単価",
        formula="won_amount / won_count",
        unit="amount",
        kind="ratio",
        numerator="won_amount",
        denominator="deals_won",
    ),
    KpiSpec(
        key="ltv",
        tier="strategic",
        name_en="LTV",
        name_ja="LTV",
        formula="avg_deal_size × ISKPI_LTV_MONTHS",
        unit="amount",
        kind="ratio",
        numerator="won_amount",
        denominator="deals_won",
        multiply_by="ltv_months",
        phases=(_p("mature", 2),),
    ),
    KpiSpec(
        key="cac",
        tier="strategic",
        name_en="CAC",
        name_ja="CAC",
        formula="costs entered for the period / won_count",
        unit="amount",
        kind="ratio",
        numerator="costs",
        denominator="deals_won",
        org_only=True,
        phases=(_p("mature", 2),),
    ),
    KpiSpec(
        key="forecast_accuracy",
        tier="strategic",
        name_en="Forecast accuracy",
        name_ja="パイプライン予測精度",
        formula=(
            "per month: 1 − abs(forecast − actual won_amount) / actual, clipped to [0,1], "
            "forecast = the landing forecast snapshot taken on the month's 15th"
        ),
        unit="ratio",
        kind="custom",
        numerator="forecast_won_amount",
        denominator="won_amount",
        grains=("month",),
        phases=(_p("mature", 1),),
    ),
    # --- efficiency (効率性・品質) -----------------------------------------------------------
    KpiSpec(
        key="lead_supply",
        tier="efficiency",
        name_en="Lead supply",
        name_ja="リード供給数",
        formula="leads created in the period",
        unit="count",
        kind="count",
        numerator="leads_created",
    ),
    KpiSpec(
        key="lead_quality_score",
        tier="efficiency",
        name_en="Lead quality score",
        name_ja="リード品質スコア",
        formula="mean lead score of the leads created in the period that have one",
        unit="score",
        kind="ratio",
        numerator="lead_score_sum",
        denominator="leads_scored",
    ),
    KpiSpec(
        key="lead_response_minutes",
        tier="efficiency",
        name_en="Lead response time",
        name_ja="リード対応時間",
        formula=(
            "median minutes from lead created to its first outbound call or email, "
            "over leads created in the period that were touched"
        ),
        unit="minutes",
        kind="custom",
        numerator="lead_response_median",
        denominator="leads_touched",
        band=Band(None, 5),
    ),
    KpiSpec(
        key="deal_lead_time_days",
        tier="efficiency",
        name_en="Deal lead time",
        name_ja="商談リードタイム",
        formula=(
            "mean days from the deal's contact created to the deal created, "
            "over IS-sourced deals created in the period"
        ),
        unit="days",
        kind="ratio",
        numerator="lead_time_days",
        denominator="lead_time_deals",
        band=Band(7, 14),
    ),
    KpiSpec(
        key="handoff_bant_score",
        tier="efficiency",
        name_en="Handoff BANT score",
        name_ja="引継ぎ商談品質スコア",
        formula="mean of (BANT fields acquired / 4) over IS-sourced deals created in the period",
        unit="score",
        kind="ratio",
        numerator="bant_fields_is",
        denominator="deals_created_is",
        divide_by=4,
    ),
    KpiSpec(
        key="handoff_rating",
        tier="efficiency",
        name_en="Handoff rating",
        name_ja="引継ぎ品質スコア",
        formula="mean handoff_rating (1–5) over deals created in the period that have one",
        unit="rating",
        kind="ratio",
        numerator="rating_sum",
        denominator="rating_count",
        band=Band(4.0, None),
        phases=(_p("growth", 2),),
    ),
)

KPIS: Mapping[str, KpiSpec] = {spec.key: spec for spec in CATALOG}


@dataclass(frozen=True)
class CatalogGap:
    """A seed phase item with no KPI in the catalog, and why."""

    phase: Phase
    stars: int
    name_ja: str
    reason: str = field(default="")


# Seed phase items the catalog has no KPI for (none since call lists brought リスト消化率).
PHASE_GAPS: tuple[CatalogGap, ...] = ()


def catalog(*, phase: str | None = None, tier: str | None = None) -> list[KpiSpec]:
    """The catalog in its order; with ``phase``, only that phase's KPIs, most stars first."""
    specs = [s for s in CATALOG if tier is None or s.tier == tier]
    if phase is None:
        return specs
    ranked = [s for s in specs if s.priority(phase)]
    return sorted(ranked, key=lambda s: -s.priority(phase))  # stable: catalog order within stars
