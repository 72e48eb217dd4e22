"""Which alerts are due at an instant, in the business time zone (docs/operations.md#alerts).

- ``midday``: on a business day from 12:00 until the end of business hours;
- ``end_of_day``: on a business day from the end of business hours until the next
  morning's start (so the nightly sync sends it if no sync ran in the evening);
- ``weekly_digest`` of the last ISO week: from Monday 09:00 to the end of the week's first
  business day (on a holiday Monday, the syncs of Tuesday send it).

An alert stays due for its whole window: the first sync in it sends the alert, and a
failed delivery is retried by the next ones while the window lasts.
"""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Literal, NamedTuple

from kpi import BusinessCalendar, KpiContext
from models.alerts import AlertKind
from service.sheets.numbers import MIDDAY_HOUR
from service.workday import BusinessHours

PacingCheck = Literal["midday", "end_of_day"]

MIDDAY = time(MIDDAY_HOUR)  # the daily sheet's midday check
DIGEST_FROM = time(9, 0)  # Monday morning


class AlertKey(NamedTuple):
    """One alert: its kind and the first day of its period (the day, or the week's Monday)."""

    kind: AlertKind
    period_start: date


def due_alerts(day: date, clock: time, ctx: KpiContext, hours: BusinessHours) -> list[AlertKey]:
    """The alerts due at the local ``clock`` time of the local ``day``."""
    calendar = BusinessCalendar(ctx.holidays)
    due: list[AlertKey] = []
    if calendar.is_business_day(day):
        if MIDDAY <= clock < hours.end:
            due.append(AlertKey("midday", day))
        if clock >= hours.end:
            due.append(AlertKey("end_of_day", day))
    yesterday = day - timedelta(days=1)
    if clock < hours.start and calendar.is_business_day(yesterday):
        due.append(AlertKey("end_of_day", yesterday))
    monday = day - timedelta(days=day.weekday())
    week = [monday + timedelta(days=i) for i in range(7)]
    first_business_day = next((d for d in week if calendar.is_business_day(d)), week[-1])
    if (day > monday or clock >= DIGEST_FROM) and day <= first_business_day:
        due.append(AlertKey("weekly_digest", monday - timedelta(days=7)))
    return due
