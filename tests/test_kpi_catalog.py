"""The catalog of docs/kpi-catalog.md as data: all 36 KPIs, the seed's bands and phase stars, and the
shape the compiler gives each KPI's SQL on both engines."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from kpi import CATALOG, KPIS, PHASE_GAPS, KpiContext, catalog
from kpi.compiler import ESCAPE_HATCHES, MEASURE_FACT, Request, compile_rows

CONTRACT_TABLE = [
    # (key, tier, 日本語) in docs/kpi-catalog.md's order, within each tier (the catalog groups by tier)
    ("calls", "behavioral", "架電数"),
    ("call_reach_rate", "behavioral", "着電率"),
    ("connect_rate", "behavioral", "接続率"),
    ("effective_contacts", "behavioral", "有効コンタクト数"),
    ("effective_contact_rate", "behavioral", "コネクト率"),
    ("avg_talk_seconds", "behavioral", "通話時間"),
    ("emails_sent", "behavioral", "メール送信数"),
    ("email_open_rate", "behavioral", "開封率"),
    ("email_click_rate", "behavioral", "クリック率"),
    ("email_reply_rate", "behavioral", "返信率"),
    ("follow_up_rate", "behavioral", "フォローアップ実行率"),
    ("list_consumption_rate", "behavioral", "リスト消化率"),
    ("meetings_set", "tactical", "商談設定数"),
    ("meeting_conversion_rate", "tactical", "商談化率"),
    ("valid_meetings", "tactical", "有効商談数"),
    ("appointment_set_rate", "tactical", "アポイント設定率"),
    ("meeting_cancel_rate", "tactical", "商談キャンセル率"),
    ("deals_created", "tactical", "商談創出数"),
    ("sql_count", "tactical", "SQL数"),
    ("bant_rate", "tactical", "BANT取得率"),
    ("handoff_win_rate", "tactical", "引継ぎ後成約率"),
    ("won_count", "strategic", "受注件数"),
    ("won_amount", "strategic", "受注金額"),
    ("win_rate", "strategic", "受注率"),
    ("is_won_amount", "strategic", "受注貢献額"),
    ("meeting_win_rate", "strategic", "商談受注率"),
    ("avg_deal_size", "strategic", "平均受注単価"),
    ("ltv", "strategic", "LTV"),
    ("cac", "strategic", "CAC"),
    ("forecast_accuracy", "strategic", "パイプライン予測精度"),
    ("lead_supply", "efficiency", "リード供給数"),
    ("lead_quality_score", "efficiency", "リード品質スコア"),
    ("lead_response_minutes", "efficiency", "リード対応時間"),
    ("deal_lead_time_days", "efficiency", "商談リードタイム"),
    ("handoff_bant_score", "efficiency", "引継ぎ商談品質スコア"),
    ("handoff_rating", "efficiency", "引継ぎ品質スコア"),
]


def test_all_36_kpis_of_the_spec_table() -> None:
    assert [(s.key, s.tier, s.name_ja) for s in CATALOG] == CONTRACT_TABLE
    assert len(KPIS) == 36
    for spec in CATALOG:
        assert spec.name_en and spec.formula
        for measure in (spec.numerator, spec.denominator):
            assert measure is None or measure in MEASURE_FACT, (spec.key, measure)
        assert (spec.denominator is not None) == (spec.kind in ("ratio", "custom"))
        assert (spec.kind == "custom") == (spec.key in ESCAPE_HATCHES)


def test_bands_are_the_seeds() -> None:
    bands = {s.key: s.band for s in CATALOG if s.band}
    assert {k: (b.low, b.high, b.per_rep_day) for k, b in bands.items()} == {
        "calls": (80, 120, True),  # 80–120件/日
        "call_reach_rate": (0.85, 0.95, False),
        "connect_rate": (0.20, 0.35, False),
        "effective_contact_rate": (0.15, 0.25, False),
        "avg_talk_seconds": (180, 300, False),  # 3–5分
        "emails_sent": (30, 50, True),
        "email_open_rate": (0.20, 0.35, False),
        "email_click_rate": (0.03, 0.08, False),
        "email_reply_rate": (0.05, 0.15, False),
        "meeting_conversion_rate": (0.05, 0.15, False),
        "appointment_set_rate": (0.80, 0.90, False),
        "meeting_cancel_rate": (None, 0.10, False),  # 10%以下
        "bant_rate": (0.70, 0.85, False),
        "win_rate": (0.20, 0.35, False),
        "meeting_win_rate": (0.20, 0.35, False),
        "lead_response_minutes": (None, 5, False),  # 5分以内
        "deal_lead_time_days": (7, 14, False),
        "handoff_rating": (4.0, None, False),  # 4.0/5.0以上
    }


def test_phase_stars_are_the_seeds() -> None:
    def ranked(phase: str) -> list[tuple[str, int]]:
        return [(s.key, s.priority(phase)) for s in catalog(phase=phase)]

    # 立ち上げ期: 架電数 ★★★, リスト消化率 ★★★, 接続率 ★★, 商談設定数 ★★, 商談化率 ★
    assert ranked("launch") == [
        ("calls", 3),
        ("list_consumption_rate", 3),
        ("connect_rate", 2),
        ("meetings_set", 2),
        ("meeting_conversion_rate", 1),
    ]
    assert KPIS["meeting_conversion_rate"].as_dict()["phase_notes"] == {"launch": "measure only"}
    assert PHASE_GAPS == ()  # call lists closed the last gap
    # 成長期: 商談化率 ★★★, 有効商談数 ★★★, BANT取得率 ★★, 引継ぎ品質スコア ★★, 受注貢献額 ★
    assert ranked("growth") == [
        ("meeting_conversion_rate", 3),
        ("valid_meetings", 3),
        ("bant_rate", 2),
        ("handoff_rating", 2),
        ("is_won_amount", 1),
    ]
    # 成熟期: 受注貢献額 ★★★, 受注率 ★★★, LTV ★★, CAC ★★, パイプライン予測精度 ★
    # (equal stars keep the catalog's order)
    assert ranked("mature") == [
        ("win_rate", 3),
        ("is_won_amount", 3),
        ("ltv", 2),
        ("cac", 2),
        ("forecast_accuracy", 1),
    ]
    assert [s.key for s in catalog(tier="efficiency")] == [
        "lead_supply",
        "lead_quality_score",
        "lead_response_minutes",
        "deal_lead_time_days",
        "handoff_bant_score",
        "handoff_rating",
    ]


def test_catalog_entry_shape() -> None:
    assert KPIS["calls"].as_dict() == {
        "key": "calls",
        "tier": "behavioral",
        "names": {"en": "Calls", "ja": "架電数"},
        "formula": "outbound calls, by occurred at",
        "unit": "count",
        "numerator": "calls",
        "denominator": None,
        "band": {"low": 80, "high": 120, "per": "rep_business_day"},
        "phase_priority": {"launch": 3},
        "phase_notes": {},
        "grains": ["day", "week", "month", "quarter", "fiscal_year"],
    }


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()])
def test_ratios_compile_to_cast_over_nullif(dialect: object) -> None:
    req = Request(
        ctx=KpiContext(timezone="Asia/Tokyo"),
        dialect=dialect.name,  # type: ignore[attr-defined]
        grain="month",
        periods=(date(2026, 10, 1),),
    )
    sql = str(compile_rows([KPIS["connect_rate"]], req).statement.compile(dialect=dialect))  # type: ignore[arg-type]
    assert "CAST(w.calls_connected AS FLOAT) / nullif(w.calls," in sql
    # Rollups answer it: the raw calls table is not read.
    assert "kpi_daily_calls" in sql and "FROM calls" not in sql
