"""Grains, business days, and cutting UTC timestamps into local days in SQL on both engines."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from connectors.records import Call
from kpi import BusinessCalendar, KpiContext
from kpi.periods import (
    TimeBuckets,
    day_start_utc,
    next_period,
    offset_segments,
    period_start,
    period_starts,
)
from models import Call as CallRow
from tests.support.kpi_records import put

NY = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")


def test_periods() -> None:
    thursday = date(2026, 10, 1)
    assert period_start(thursday, "day") == thursday
    assert period_start(thursday, "week") == date(2026, 9, 28)  # ISO weeks start on Monday
    assert period_start(date(2026, 10, 4), "week") == date(2026, 9, 28)  # a Sunday
    assert period_start(date(2026, 10, 31), "month") == thursday
    assert next_period(date(2026, 12, 1), "month") == date(2027, 1, 1)
    assert period_starts("month", date(2026, 10, 15), date(2026, 12, 1)) == [
        date(2026, 10, 1),
        date(2026, 11, 1),
        date(2026, 12, 1),
    ]
    assert period_starts("week", date(2026, 10, 1), date(2026, 10, 5)) == [
        date(2026, 9, 28),
        date(2026, 10, 5),
    ]


def test_business_days() -> None:
    jp = BusinessCalendar("JP")
    # October 2026: 22 weekdays, minus Sports Day (Mon 12 Oct).
    assert jp.count(date(2026, 10, 1), date(2026, 11, 1)) == 21
    # May 2026: 21 weekdays, minus Golden Week's Mon 4, Tue 5 and Wed 6 (the substitute
    # holiday for Constitution Day, which fell on Sunday 3 May).
    assert jp.count(date(2026, 5, 1), date(2026, 6, 1)) == 18
    assert jp.count(date(2026, 10, 1), date(2026, 11, 1), weekday=1) == 3  # Mondays 5, 19, 26
    assert BusinessCalendar("").count(date(2026, 10, 1), date(2026, 11, 1)) == 22
    assert not jp.is_business_day(date(2026, 10, 12))
    with pytest.raises(ValueError, match="holidays"):
        KpiContext(holidays="XX")
    with pytest.raises(ValueError, match="time zone"):
        KpiContext(timezone="Mars/Olympus")


def test_local_day_bounds_and_offsets() -> None:
    assert day_start_utc(date(2026, 9, 1), TOKYO) == datetime(2026, 8, 31, 15, tzinfo=UTC)
    assert day_start_utc(date(2026, 3, 8), NY) == datetime(2026, 3, 8, 5, tzinfo=UTC)  # EST
    assert day_start_utc(date(2026, 3, 9), NY) == datetime(2026, 3, 9, 4, tzinfo=UTC)  # EDT
    segments = offset_segments(
        NY, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC)
    )
    assert segments == [
        (datetime(2026, 1, 1, tzinfo=UTC), -5 * 3600),
        (datetime(2026, 3, 8, 7, tzinfo=UTC), -4 * 3600),  # 2:00 EST → 3:00 EDT
        (datetime(2026, 11, 1, 6, tzinfo=UTC), -5 * 3600),  # 2:00 EDT → 1:00 EST
    ]
    assert offset_segments(
        TOKYO, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    ) == [(datetime(2026, 1, 1, tzinfo=UTC), 9 * 3600)]


@pytest.mark.parametrize(
    ("zone", "instant", "day", "hour", "weekday", "week", "month"),
    [
        # The example: 31 Aug 15:30 UTC is 1 Sep 00:30 in Tokyo, a Tuesday.
        (TOKYO, "2026-08-31T15:30", date(2026, 9, 1), 0, 2, date(2026, 8, 31), date(2026, 9, 1)),
        (
            TOKYO,
            "2026-08-31T14:59:59.999999",
            date(2026, 8, 31),
            23,
            1,
            date(2026, 8, 31),
            date(2026, 8, 1),
        ),
        # New York around the DST start (8 Mar 2026, 07:00 UTC).
        (NY, "2026-03-08T06:59", date(2026, 3, 8), 1, 7, date(2026, 3, 2), date(2026, 3, 1)),
        (NY, "2026-03-08T07:00", date(2026, 3, 8), 3, 7, date(2026, 3, 2), date(2026, 3, 1)),
        (NY, "2026-03-09T03:59", date(2026, 3, 8), 23, 7, date(2026, 3, 2), date(2026, 3, 1)),
        (NY, "2026-03-09T04:00", date(2026, 3, 9), 0, 1, date(2026, 3, 9), date(2026, 3, 1)),
        # …and its end (1 Nov 2026, 06:00 UTC): 05:30 is 1:30 EDT, 06:30 is 1:30 EST.
        (NY, "2026-11-01T05:30", date(2026, 11, 1), 1, 7, date(2026, 10, 26), date(2026, 11, 1)),
        (NY, "2026-11-01T06:30", date(2026, 11, 1), 1, 7, date(2026, 10, 26), date(2026, 11, 1)),
        (NY, "2026-11-01T04:59", date(2026, 11, 1), 0, 7, date(2026, 10, 26), date(2026, 11, 1)),
        (NY, "2026-11-01T03:59", date(2026, 10, 31), 23, 6, date(2026, 10, 26), date(2026, 10, 1)),
    ],
)
def test_bucketing_in_sql(
    engine: Engine,
    zone: ZoneInfo,
    instant: str,
    day: date,
    hour: int,
    weekday: int,
    week: date,
    month: date,
) -> None:
    when = datetime.fromisoformat(instant).replace(tzinfo=UTC)
    put(engine, [Call(source="hubspot", crm_id="c", occurred_at=when, outcome="connected")])
    window = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC))
    b = TimeBuckets(engine.dialect.name, zone, window)
    ts = CallRow.__table__.c.occurred_at
    local_day = b.local_day(ts)
    with engine.connect() as conn:
        got = conn.execute(
            select(
                local_day,
                b.local_hour(ts),
                b.weekday(local_day),
                b.period(local_day, "week"),
                b.period(local_day, "month"),
            )
        ).one()
    as_date = [
        d if isinstance(d, date) else date.fromisoformat(d) for d in (got[0], got[3], got[4])
    ]
    assert (as_date[0], got[1], got[2], as_date[1], as_date[2]) == (day, hour, weekday, week, month)
