"""Write the generated pages of docs/ from the code: `python docs/generate.py`.

- docs/configuration.md from the settings model (service/settings.py);
- docs/kpi-catalog.md from the KPI catalog (kpi/catalog.py).

tests/test_docs.py renders the same pages in memory and fails when a committed page
differs. Nothing in the product imports this file.
"""

from __future__ import annotations

import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402
from pydantic.fields import FieldInfo  # noqa: E402

from kpi.catalog import CATALOG, PHASE_GAPS, PHASES, TIERS, Band, KpiSpec  # noqa: E402
from service.settings import Settings  # noqa: E402

COMMAND = "python docs/generate.py"


def _banner(source: str) -> str:
    return (
        f"<!-- generated from {source} by `{COMMAND}` — do not edit; "
        "edit the code and regenerate -->\n"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# --- configuration.md -----------------------------------------------------------------------------


def _type_name(annotation: Any) -> tuple[str, bool]:
    """A reader's name for a settings type, and whether the value is a secret."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        return _type_name(args[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _type_name(inner[0])
    if typing.get_origin(annotation) is list:
        _, secret = _type_name(args[0])
        return "comma-separated list", secret
    names = {
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        Path: "file path",
        SecretStr: "string",
    }
    if annotation.__name__ == "datetime":
        return "ISO datetime", False
    return names.get(annotation, annotation.__name__), annotation is SecretStr


def _bounds(info: FieldInfo) -> str:
    parts = []
    for item in info.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{sign} {value:g}" if isinstance(value, float) else f"{sign} {value}")
    return ", ".join(parts)


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return "empty"
    value = info.default
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"
    return f"`{value}`"


def configuration_page() -> str:
    """docs/configuration.md: every ISKPI_ variable of the settings model."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    lines = [
        _banner("service/settings.py (the `Settings` model)"),
        "# Configuration",
        "",
        "For RevOps engineers setting up a deployment. iskpi reads its configuration from",
        f"environment variables with the prefix `{prefix}`; a `.env` file in the working",
        "directory is read too (environment variables win). Unknown variables are ignored.",
        "An invalid value (an unknown time zone, a number out of range) stops the process at",
        "start with one line per bad value, naming the variable (exit status 2):",
        "`iskpi: ISKPI_FISCAL_YEAR_START_MONTH=13: Input should be less than or equal to 12`.",
        "",
        "Secrets (marked 🔒) are held as secret strings: they are never logged, printed or",
        "returned by the API.",
        "",
        "| variable | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, info in Settings.model_fields.items():
        type_name, secret = _type_name(info.annotation)
        bounds = _bounds(info)
        if bounds:
            type_name = f"{type_name} ({bounds})"
        variable = f"`{prefix}{name.upper()}`" + (" 🔒" if secret else "")
        description = info.description or ""
        lines.append(
            f"| {variable} | {_cell(type_name)} | {_default(info)} | {_cell(description)} |"
        )
    lines += [
        "",
        "HubSpot is synced when `ISKPI_HUBSPOT_ACCESS_TOKEN` is set, Salesforce when",
        "`ISKPI_SALESFORCE_INSTANCE_URL` is set (with either `ISKPI_SALESFORCE_SESSION_ID` or",
        "all three of `_CLIENT_ID`, `_CLIENT_SECRET` and `_REFRESH_TOKEN`). TLS to Salesforce is",
        "always verified; behind a TLS-inspecting proxy set the standard `REQUESTS_CA_BUNDLE`.",
        "",
        "Tests read `ISKPI_TEST_POSTGRES_URL` (the PostgreSQL store of the test suite) and",
        "`ISKPI_TEST_ARTIFACTS` (where the dashboard tests save screenshots); the service",
        "itself does not.",
        "",
        "See also: [the mapping file](sync.md#field-and-value-mappings),",
        "[operations](operations.md), [the API's tokens](api.md#authentication).",
        "",
    ]
    return "\n".join(lines)


# --- kpi-catalog.md ------------------------------------------------------------------------------

TIER_JA = {
    "behavioral": "行動KPI",
    "tactical": "戦術KPI",
    "strategic": "戦略KPI",
    "efficiency": "効率性・品質",
}
PHASE_JA = {"launch": "立ち上げ期", "growth": "成長期", "mature": "成熟期"}
UNIT_JA = {
    "count": "件数",
    "ratio": "比率",
    "seconds": "秒",
    "minutes": "分",
    "days": "日",
    "amount": "金額",
    "score": "スコア",
    "rating": "評価",
}


def _number(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value:.2f}"
    return f"{value:g}"


def _band(band: Band | None, unit: str, per_day: str) -> str:
    if band is None:
        return ""
    low = None if band.low is None else _number(band.low, unit)
    high = None if band.high is None else _number(band.high, unit)
    if low is None:
        text = f"≤ {high}"
    elif high is None:
        text = f"≥ {low}"
    else:
        text = f"{low}–{high}"
    return f"{text} {per_day}" if band.per_rep_day else text


def _stars(spec: KpiSpec, names: dict[str, str]) -> str:
    parts = []
    for p in spec.phases:
        stars = "★" * p.stars + "☆" * (3 - p.stars)
        note = f" ({p.note})" if p.note else ""
        parts.append(f"{names[p.phase]} {stars}{note}")
    return ", ".join(parts)


def _formula(spec: KpiSpec) -> str:
    text = (
        f"`{spec.numerator}`"
        if spec.denominator is None
        else (f"`{spec.numerator}` / `{spec.denominator}`")
    )
    return _cell(text)


def _table(
    specs: list[KpiSpec],
    header: str,
    per_day: str,
    phases: dict[str, str],
    units: dict[str, str],
) -> list[str]:
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for spec in specs:
        cells = [
            f"`{spec.key}`",
            spec.name_ja,
            spec.name_en,
            _cell(spec.formula),
            units.get(spec.unit, spec.unit),
            _band(spec.band, spec.unit, per_day),
            _stars(spec, phases),
            ", ".join(spec.grains) if spec.grains != ("day", "week", "month") else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def catalog_page() -> str:
    """docs/kpi-catalog.md: the catalog as tables, in Japanese and English."""
    counts = {tier: sum(s.tier == tier for s in CATALOG) for tier in TIERS}
    lines = [
        _banner("kpi/catalog.py (`CATALOG`, `PHASE_GAPS`)"),
        "# KPI catalog / KPIカタログ",
        "",
        f"{len(CATALOG)} KPIs: "
        + ", ".join(f"{tier} ({TIER_JA[tier]}) {counts[tier]}" for tier in TIERS)
        + ". The same catalog is served by `GET /v1/kpis/catalog` ([API](api.md#get-v1kpiscatalog)).",
        "",
        "## 日本語",
        "",
        "インサイドセールスのKPIを、行動・戦術・戦略と効率性・品質の4層で定義します。"
        "比率は小数（0.31 = 31%）で、分母が0のときは null です。"
        "期間は `ISKPI_TIMEZONE` で区切ります。"
        "ベンチマーク帯（目安）は元記事のもので、「/営業日・人」の帯は営業日数 × 活動した担当者数で期間に換算します。"
        "フェーズ別の重要度は元記事の立ち上げ期・成長期・成熟期の★です。",
        "",
    ]
    for tier in TIERS:
        lines += [f"### {TIER_JA[tier]} ({tier})", ""]
        lines += _table(
            [s for s in CATALOG if s.tier == tier],
            "| キー | 日本語 | English | 定義 (formula) | 単位 | 目安 | フェーズ別重要度 | 粒度 |",
            "/営業日・人",
            PHASE_JA,
            UNIT_JA,
        )
        lines.append("")
    lines += [
        "元記事のフェーズ別項目のうち、カタログにKPIがないもの:",
        "",
    ]
    for gap in PHASE_GAPS:
        lines.append(
            f"- {PHASE_JA[gap.phase]} {'★' * gap.stars}{'☆' * (3 - gap.stars)} "
            f"{gap.name_ja}: {gap.reason}"
        )
    lines += [
        "",
        "## English",
        "",
        "Rates are fractions (0.31 is 31 %) and null when the denominator is 0. Periods are cut",
        "in `ISKPI_TIMEZONE`. Bands are the seed article's benchmark ranges; a band",
        '"per rep per business day" is scaled to a row by business days × the reps with',
        "activity in the scope. Phase priority is the seed's stars for the launch, growth",
        "and mature phases (`GET /v1/kpis/catalog?phase=launch` lists that phase's KPIs,",
        "most stars first). The grain column is empty for KPIs with a value at day, week",
        "and month.",
        "",
    ]
    for tier in TIERS:
        lines += [f"### {tier.capitalize()} ({TIER_JA[tier]})", ""]
        lines += _table(
            [s for s in CATALOG if s.tier == tier],
            "| key | 日本語 | English | formula | unit | band | phase priority | grains |",
            "per rep per business day",
            {p: p for p in PHASES},
            {},
        )
        lines.append("")
    lines += ["Seed phase items that no KPI in the catalog measures:", ""]
    for gap in PHASE_GAPS:
        lines.append(f"- {gap.phase} {'★' * gap.stars} {gap.name_ja}: {gap.reason}")
    lines += [
        "",
        "## Measures",
        "",
        "Each KPI is a count or a sum of one measure, or a ratio of two; the measures are",
        "compiled to SQL in `kpi/compiler.py` (`MEASURES`). Two KPIs are neither",
        "(`lead_response_minutes`, a median; `forecast_accuracy`) and are computed by one",
        "explicit escape hatch there.",
        "",
        "| key | kind | numerator / denominator |",
        "|---|---|---|",
    ]
    for spec in CATALOG:
        lines.append(f"| `{spec.key}` | {spec.kind} | {_formula(spec)} |")
    lines.append("")
    return "\n".join(lines)


# --- the pages ------------------------------------------------------------------------------------

PAGES: dict[str, Callable[[], str]] = {
    "configuration.md": configuration_page,
    "kpi-catalog.md": catalog_page,
}


def render() -> dict[Path, str]:
    """Every generated page: path → content."""
    return {DOCS / name: build() for name, build in PAGES.items()}


def main() -> None:
    for path, text in render().items():
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
        else:
            print(f"{path.relative_to(ROOT)} is current")


if __name__ == "__main__":
    main()
