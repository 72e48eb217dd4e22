"""The alerts' text: short Japanese lines a sales team reads in Slack, with the KPI keys beside.

Plain text with Slack's ``*bold*`` headline; counts with thousands separators, a target
that a month's pro-rating left fractional to one decimal, achievements in whole percent.
"""

from __future__ import annotations

from datetime import timedelta

from kpi import KPIS
from service.alerts.figures import BEHIND_PACE, Digest, PaceCheck
from service.sheets.numbers import MIDDAY_HOUR
from service.sheets.periods import week_name

WEEKDAYS_JA = "月火水木金土日"
CAUSES_JA = {"volume": "量 (架電数が目標に届いていない)", "quality": "質 (率が目標に届いていない)"}


def number(value: float | None) -> str:
    """``1,234``, or ``95.2`` for a fractional value (``19`` for 19.04); ``-`` for none."""
    if value is None:
        return "-"
    rounded = round(float(value), 1)
    if rounded.is_integer():
        return f"{int(rounded):,}"
    return f"{rounded:,.1f}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def pacing_text(check: PaceCheck) -> str:
    """The midday or end-of-day message: the reps below 80 % of their call pace."""
    day = f"{check.day:%Y-%m-%d} ({WEEKDAYS_JA[check.day.weekday()]})"
    if check.check == "midday":
        title = f"*昼の架電ペース* {day} {MIDDAY_HOUR}:00 時点"
        basis = "目標 = 日次の架電目標の半分"
    else:
        title = f"*終業時の架電ペース* {day}"
        basis = "目標 = 日次の架電目標"
    share = f"{BEHIND_PACE:.0%}"
    if not check.behind:
        return (
            f"{title}\n架電目標のある {check.reps_with_target} 名全員が目標ペースの {share} 以上です。"
            f"\n({basis})"
        )
    lines = [
        title,
        f"目標ペースの {share} に届いていない担当者: "
        f"{len(check.behind)} 名 / 架電目標のある {check.reps_with_target} 名",
    ]
    lines += [
        f"• {rep.name}: 架電 {number(rep.actual)} 件 / 目標 {number(rep.target)} 件 "
        f"({percent(rep.pace)})"
        for rep in check.behind
    ]
    lines.append(f"({basis})")
    return "\n".join(lines)


def _kpi_name(key: str) -> str:
    return KPIS[key].name_ja if key in KPIS else key


def digest_text(digest: Digest) -> str:
    """The Monday digest: last week's org figures against target, and the week's bottleneck."""
    sunday = digest.monday + timedelta(days=6)
    lines = [
        f"*週次ダイジェスト* {week_name(digest.monday)} "
        f"({digest.monday:%m/%d}〜{sunday:%m/%d}) 組織全体"
    ]
    for line in digest.lines:
        against = (
            "目標なし"
            if line.target is None
            else f"目標 {number(line.target)} (達成率 {percent(line.achievement)})"
        )
        lines.append(f"• {_kpi_name(line.kpi)} ({line.kpi}): {number(line.actual)} / {against}")
    funnel = digest.funnel
    cause = funnel.get("cause")
    if cause is None:
        targeted = any(stage["target"] is not None for stage in funnel["stages"])
        lines.append(
            "ファネル診断: すべての段階が目標以上です"
            if targeted
            else "ファネル診断: 週の目標がないため診断できません"
        )
        return "\n".join(lines)
    bottleneck = funnel.get("bottleneck")
    if bottleneck is not None:
        lines.append(
            f"ボトルネック: {_kpi_name(bottleneck)} ({bottleneck}) "
            f"達成率 {percent(funnel.get('bottleneck_achievement'))}"
        )
    else:
        lines.append("ボトルネック: 率はすべて目標以上")
    lines.append(f"原因: {CAUSES_JA.get(cause, cause)}")
    hint, approach = funnel.get("hint"), funnel.get("approach")
    if hint:
        lines.append(f"見直す点: {hint['ja']}")
    if approach:
        lines.append(f"打ち手: {approach['ja']}")
    return "\n".join(lines)
