"""The working day: business hours on business days, and the intraday sync's slots in them.

Everything here is a pure function of an instant and the settings, so the schedule is
tested with a frozen clock. Business days are the KPI engine's (Monday to Friday minus
the ISKPI_HOLIDAYS country's holidays); hours are local to the business time zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time

from kpi import BusinessCalendar, KpiContext

_HOURS = re.compile(r"\s*(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})\s*")


@dataclass(frozen=True)
class BusinessHours:
    """The local opening and closing time of a business day (both inclusive)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> BusinessHours:
        """``08:00-20:00``; raises ValueError saying what a good value looks like."""
        match = _HOURS.fullmatch(text)
        if match is None:
            raise ValueError(f"{text!r} is not HH:MM-HH:MM (e.g. 08:00-20:00)")
        try:
            start = time(int(match[1]), int(match[2]))
            end = time(int(match[3]), int(match[4]))
        except ValueError:
            raise ValueError(f"{text!r}: hours are 00-23 and minutes 00-59") from None
        if end <= start:
            raise ValueError(f"{text!r}: the end must be after the start on the same day")
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def local(at: datetime, ctx: KpiContext) -> datetime:
    """``at`` on the business time zone's clock."""
    return at.astimezone(ctx.zone)


def is_business_day(at: datetime, ctx: KpiContext) -> bool:
    """Whether ``at`` falls on a business day in the business time zone."""
    return BusinessCalendar(ctx.holidays).is_business_day(local(at, ctx).date())


def slot_times(hours: BusinessHours, every_minutes: int) -> tuple[time, ...]:
    """The local times of a business day's intraday syncs: the start, every N minutes, to the end."""
    if every_minutes <= 0:
        return ()
    first = hours.start.hour * 60 + hours.start.minute
    last = hours.end.hour * 60 + hours.end.minute
    return tuple(time(m // 60, m % 60) for m in range(first, last + 1, every_minutes))


def is_intraday_slot(
    at: datetime, ctx: KpiContext, hours: BusinessHours, every_minutes: int
) -> bool:
    """Whether the minute of ``at`` is an intraday sync slot: a slot time on a business day."""
    clock = local(at, ctx)
    return is_business_day(at, ctx) and time(clock.hour, clock.minute) in slot_times(
        hours, every_minutes
    )


def latest_slot(
    at: datetime, ctx: KpiContext, hours: BusinessHours, every_minutes: int
) -> datetime | None:
    """The last intraday slot at or before ``at`` on its local day, in UTC; None when there is none.

    Replicas whose jobs fire a little apart (or one that fires late) name the same slot.
    """
    if not is_business_day(at, ctx):
        return None
    clock = local(at, ctx)
    earlier = [t for t in slot_times(hours, every_minutes) if t <= clock.time()]
    if not earlier:
        return None
    slot = datetime.combine(clock.date(), earlier[-1], tzinfo=ctx.zone)
    return slot.astimezone(UTC)
