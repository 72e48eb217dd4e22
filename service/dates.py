"""The dates the API accepts: every date and month parameter is one of these two types.

A day or month outside FIRST_DAY … LAST_DAY is a 422 naming the parameter, answered while
the request is parsed, before any computation: an ``as_of`` in the year 9990 once cost two
minutes of computing business days, and year 1 or 9999 a 500 (a period past the calendar).

Use them as a parameter's type, in a query or a body::

    as_of: Annotated[BoundedDate | None, Query(description=...)] = None
    month: BoundedMonth | None = Field(default=None, description="YYYY-MM")
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2100, 12, 31)
MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
BOUNDS = f"{FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}"


def _day_in_bounds(value: date) -> date:
    if not FIRST_DAY <= value <= LAST_DAY:
        raise ValueError(f"{value.isoformat()} is outside the dates served ({BOUNDS})")
    return value


def _month_in_bounds(value: str) -> str:
    if not FIRST_DAY.year <= int(value[:4]) <= LAST_DAY.year:
        raise ValueError(
            f"{value} is outside the months served ({FIRST_DAY:%Y-%m} to {LAST_DAY:%Y-%m})"
        )
    return value


BoundedDate = Annotated[
    date,
    AfterValidator(_day_in_bounds),
]
"""A ``YYYY-MM-DD`` day from FIRST_DAY to LAST_DAY."""

BoundedMonth = Annotated[
    str,
    StringConstraints(pattern=MONTH_PATTERN),
    AfterValidator(_month_in_bounds),
]
"""A ``YYYY-MM`` month from FIRST_DAY's to LAST_DAY's (kept as the string; see month_start)."""


def month_start(value: str) -> date:
    """A BoundedMonth's first day."""
    return date(int(value[:4]), int(value[5:7]), 1)
