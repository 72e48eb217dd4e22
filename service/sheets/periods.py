"""The sheets' periods: a day, an ISO week (``YYYY-Www``) or a month (``YYYY-MM``), and their checks."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Literal, get_args

from service.dates import BOUNDS, FIRST_DAY, LAST_DAY

SheetKind = Literal["daily", "weekly", "monthly"]
SHEET_KINDS: tuple[str, ...] = get_args(SheetKind)

WEEK = re.compile(r"(\d{4})-W(\d{2})")
MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


class PeriodError(ValueError):
    """A period that is not one of its kind; the message says what it should be."""


def parse_week(value: str) -> date:
    """``2026-W49`` as its Monday; 2026-W60 (or W53 of a 52-week year) is refused."""
    match = WEEK.fullmatch(value)
    if match is None:
        raise PeriodError(f"{value!r} is not an ISO week (YYYY-Www)")
    year, week = int(match[1]), int(match[2])
    try:
        return date.fromisocalendar(year, week, 1)
    except ValueError:
        weeks = date(year, 12, 28).isocalendar().week
        raise PeriodError(f"{value!r}: {year} has ISO weeks 01 to {weeks}") from None


def week_name(monday: date) -> str:
    iso = monday.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def parse_month(value: str) -> date:
    match = MONTH.fullmatch(value)
    if match is None:
        raise PeriodError(f"{value!r} is not a month (YYYY-MM)")
    return date(int(match[1]), int(match[2]), 1)


def parse_day(value: str) -> date:
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise PeriodError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def parse_period(kind: SheetKind, value: str) -> date:
    """The first day of the sheet's period named by ``value``, within the dates served."""
    if kind == "daily":
        start = parse_day(value)
    elif kind == "weekly":
        start = parse_week(value)
    else:
        start = parse_month(value)
    return in_bounds(start, value)


def in_bounds(start: date, value: str) -> date:
    if not FIRST_DAY <= start <= LAST_DAY:
        raise PeriodError(f"{value!r} is outside the dates served ({BOUNDS})")
    return start


def period_name(kind: SheetKind, start: date) -> str:
    if kind == "daily":
        return start.isoformat()
    if kind == "weekly":
        return week_name(start)
    return f"{start:%Y-%m}"


def week_days(monday: date) -> list[date]:
    return [monday + timedelta(days=i) for i in range(7)]
