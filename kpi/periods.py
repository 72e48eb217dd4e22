"""Grains, business-time-zone bucketing in SQL, and business days.

Periods are cut in the business time zone (docs/configuration.md): a record belongs to the
local day of its timestamp; weeks are ISO weeks starting on Monday; months are
calendar months; quarters and fiscal years start in the fiscal year's first
month (``KpiContext.fiscal_year_start_month``), so an April year's quarters
start in April, July, October and January. A period is named by its first day. PostgreSQL converts with ``AT TIME ZONE``; SQLite has no zone
database, so its timestamps (naive UTC text) are shifted by an offset picked
from a CASE over the zone's UTC offset segments in the queried window, taken
from zoneinfo (a few segments a year, searched by bisection in the CASE).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib
from sqlalchemy import Date, Integer, String, case, cast, extract, func, literal_column
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TIMESTAMP

Grain = Literal["day", "week", "month", "quarter", "fiscal_year"]
GRAINS: tuple[str, ...] = get_args(Grain)

SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # how models.base.UTCDateTime stores a timestamp on SQLite


@dataclass(frozen=True)
class KpiContext:
    """The settings the KPI engine reads; service/ builds it from its Settings."""

    timezone: str = "UTC"
    holidays: str = ""  # a `holidays` country code (e.g. "JP"); business days = Mon–Fri minus these
    effective_call_seconds: int = 60
    ltv_months: int = 12
    now: datetime | None = None  # fixes "now" for forecasts and replays
    fiscal_year_start_month: int = 1  # 4 for an April year: the quarter and fiscal_year grains
    # Teams (names, CRM ids or "<source>:<crm id>") whose reps are field sales, not inside sales.
    field_sales_teams: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.field_sales_teams, str):
            names: Iterable[str] = self.field_sales_teams.split(",")
        else:
            names = self.field_sales_teams
        # Frozen, and hashable (contexts key caches): kept as a tuple of stripped names.
        cleaned = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
        object.__setattr__(self, "field_sales_teams", cleaned)
        month = self.fiscal_year_start_month
        if isinstance(month, bool) or not isinstance(month, int) or not 1 <= month <= 12:
            raise ValueError("fiscal_year_start_month must be a month number 1-12")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        if self.holidays:
            _country_holidays(self.holidays, 2000)  # raises on an unknown country code
        if self.effective_call_seconds < 0:
            raise ValueError("effective_call_seconds must be >= 0")
        if self.ltv_months < 1:
            raise ValueError("ltv_months must be >= 1")
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError("now must be timezone-aware")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def rollup_fingerprint(self) -> str:
        """What the daily rollups depend on; they are rebuilt when it changes."""
        return f"v1|tz={self.timezone}|effective={self.effective_call_seconds}"

    def current_time(self) -> datetime:
        return self.now if self.now is not None else datetime.now(UTC)

    def today(self) -> date:
        """Today in the business time zone (of ``now`` when it is fixed)."""
        return self.current_time().astimezone(self.zone).date()


# --- periods in Python --------------------------------------------------------------------------


# Months in a period of a month-based grain.
GRAIN_MONTHS: dict[str, int] = {"month": 1, "quarter": 3, "fiscal_year": 12}


def add_months(first_of_month: date, months: int) -> date:
    """The first day of the month ``months`` after (or before) the month of ``first_of_month``."""
    index = first_of_month.year * 12 + first_of_month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def period_start(day: date, grain: Grain, fiscal_year_start_month: int = 1) -> date:
    """The first day of the period ``day`` falls in (quarters and years from the fiscal start)."""
    if grain == "day":
        return day
    if grain == "week":
        return day - timedelta(days=day.weekday())
    size = GRAIN_MONTHS[grain]
    # Months since the fiscal year's first month, then back to the period's first month.
    since = (day.month - fiscal_year_start_month) % 12
    return add_months(day.replace(day=1), -(since % size))


def next_period(start: date, grain: Grain) -> date:
    """The first day of the period after the one starting on ``start``."""
    if grain == "day":
        return start + timedelta(days=1)
    if grain == "week":
        return start + timedelta(days=7)
    return add_months(start.replace(day=1), GRAIN_MONTHS[grain])


def period_starts(
    grain: Grain, first: date, last: date, fiscal_year_start_month: int = 1
) -> list[date]:
    """Starts of the periods overlapping [first, last] (both inclusive)."""
    out: list[date] = []
    current = period_start(first, grain, fiscal_year_start_month)
    while current <= last:
        out.append(current)
        current = next_period(current, grain)
    return out


def month_days(month: date) -> int:
    return calendar.monthrange(month.year, month.month)[1]


def days(first: date, end: date) -> Iterable[date]:
    """Days from ``first`` up to ``end`` (exclusive)."""
    current = first
    while current < end:
        yield current
        current += timedelta(days=1)


# --- business days -------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _country_holidays(country: str, year: int) -> frozenset[date]:
    try:
        calendar_ = holidays_lib.country_holidays(country, years=year)
    except NotImplementedError as exc:
        raise ValueError(f"unknown holidays country code {country!r}") from exc
    return frozenset(calendar_.keys())


class BusinessCalendar:
    """Business days: Monday to Friday minus the holidays of a country (none when empty)."""

    def __init__(self, country: str) -> None:
        self.country = country.strip()

    def is_business_day(self, day: date) -> bool:
        if day.weekday() >= 5:
            return False
        return not (self.country and day in _country_holidays(self.country, day.year))

    def count(self, first: date, end: date, weekday: int | None = None) -> int:
        """Business days in [first, end); only those on ISO ``weekday`` (1–7) when given."""
        return sum(
            1
            for day in days(first, end)
            if (weekday is None or day.isoweekday() == weekday) and self.is_business_day(day)
        )


# --- instants and local days --------------------------------------------------------------------


def local_date(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def day_start_utc(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of the local ``day``, in UTC.

    A nonexistent local midnight (a DST gap at 00:00) maps, with fold=0, to the
    transition itself, which is the day's first instant.
    """
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def offset_segments(
    zone: ZoneInfo, lo: datetime, hi: datetime, step: timedelta = timedelta(hours=6)
) -> list[tuple[datetime, int]]:
    """The zone's UTC offset over [lo, hi]: (segment start, offset seconds), first at ``lo``.

    ``step`` must be shorter than any two offset changes are apart.
    """

    def offset(at: datetime) -> int:
        delta = at.astimezone(zone).utcoffset()
        assert delta is not None
        return int(delta.total_seconds())

    segments = [(lo, offset(lo))]
    current = lo
    while current < hi:
        nxt = min(current + step, hi)
        if offset(nxt) != segments[-1][1]:
            a, b = current, nxt  # the change is in (a, b]: bisect to the microsecond
            while b - a > timedelta(microseconds=1):
                mid = a + (b - a) / 2
                if offset(mid) == segments[-1][1]:
                    a = mid
                else:
                    b = mid
            segments.append((b, offset(b)))
        current = nxt
    return segments


# The span whose offsets statements over arbitrary stored timestamps (the rollup marks) know.
WIDE_WINDOW = (datetime(1990, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
# The most a window's offset table covers (a timestamp outside takes the nearest offset).
OFFSET_SPAN = (datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))


@lru_cache(maxsize=32)
def wide_segments(zone_name: str) -> tuple[tuple[datetime, int], ...]:
    """The zone's offset segments over WIDE_WINDOW (a week's step: changes are months apart)."""
    return tuple(offset_segments(ZoneInfo(zone_name), *WIDE_WINDOW, step=timedelta(days=7)))


def _day_start_offset(day: date, zone: ZoneInfo) -> int:
    # The offset that turns the day's first instant into local midnight (docs/kpi-catalog.md: days are
    # cut in the business time zone; a skipped midnight starts the day at the transition).
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return int((midnight - day_start_utc(day, zone)).total_seconds())


@lru_cache(maxsize=32)
def midnight_offsets(zone_name: str) -> tuple[tuple[date, int], ...]:
    """(first local date, offset at the start of each local day from it) over WIDE_WINDOW."""
    zone = ZoneInfo(zone_name)
    # The offset at a day's start can only change on the days around a transition.
    candidates = {WIDE_WINDOW[0].date()}
    for at, _ in wide_segments(zone_name)[1:]:
        local = at.astimezone(zone).date()
        candidates.update(local + timedelta(days=k) for k in (-1, 0, 1, 2))
    out: list[tuple[date, int]] = []
    for day in sorted(candidates):
        offset = _day_start_offset(day, zone)
        if not out or out[-1][1] != offset:
            out.append((day, offset))
    return tuple(out)


def sqlite_timestamp(at: datetime) -> str:
    """A UTC instant as SQLite stores it (naive UTC text), for comparisons in SQL."""
    return at.astimezone(UTC).replace(tzinfo=None).strftime(SQLITE_FORMAT)


def sql_text(value: str) -> ColumnElement[Any]:
    """A string constant rendered inline.

    PostgreSQL binds each parameter separately, so an expression with a bound
    constant in SELECT never matches the same expression in GROUP BY; inline
    constants keep grouped expressions identical.
    """
    return literal_column("'" + value.replace("'", "''") + "'", String)


def sql_int(value: int) -> ColumnElement[int]:
    return literal_column(str(int(value)), Integer)


# --- bucketing in SQL ---------------------------------------------------------------------------


class TimeBuckets:
    """SQL expressions that cut UTC timestamps into local days, weeks, months, hours."""

    def __init__(
        self,
        dialect: str,
        zone: ZoneInfo,
        window: tuple[datetime, datetime] | None = None,
        *,
        wide: bool = False,
    ) -> None:
        """``window``: the instants the query reads (SQLite needs their offsets); ``wide``:
        any instant from 1990 to 2100 (for statements over arbitrary stored rows)."""
        if dialect not in ("postgresql", "sqlite"):
            raise NotImplementedError(f"no KPI engine for dialect {dialect}")
        self.dialect = dialect
        self.zone = zone
        self.zone_name = str(zone.key)
        if wide:
            self.segments = list(wide_segments(self.zone_name))
            return
        lo, hi = (
            window
            if window
            else (datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 2, tzinfo=UTC))
        )
        # A stored timestamp at the ends of time (the epoch, the year 9999) must not make the
        # table span millennia (or overflow): outside OFFSET_SPAN the nearest offset stands.
        lo, hi = max(lo, OFFSET_SPAN[0]), min(hi, OFFSET_SPAN[1])
        self.segments = offset_segments(
            zone, min(lo, hi) - timedelta(days=2), max(lo, hi) + timedelta(days=2)
        )

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def _sqlite_modifier(self, column: Any) -> ColumnElement[str] | None:
        if all(off == 0 for _, off in self.segments):
            return None

        def modifier(offset: int) -> ColumnElement[str]:
            return sql_text(f"{offset:+d} seconds")

        def search(segments: Sequence[tuple[datetime, int]]) -> ColumnElement[str]:
            if len(segments) == 1:
                return modifier(segments[0][1])
            mid = len(segments) // 2
            # Segment `mid` starts at segments[mid][0]; earlier instants fall left of it.
            return case(
                (column < sql_text(sqlite_timestamp(segments[mid][0])), search(segments[:mid])),
                else_=search(segments[mid:]),
            )

        return search(self.segments)

    @staticmethod
    def _sqlite_text(column: Any) -> ColumnElement[Any]:
        # SQLite's date functions round to the millisecond, which would carry 23:59:59.9996
        # into the next day: truncate the stored text to milliseconds first.
        return func.substr(column, sql_int(1), sql_int(23))

    def _local_timestamp(self, column: Any) -> ColumnElement[Any]:
        # PostgreSQL: timestamptz AT TIME ZONE zone -> the local wall-clock timestamp.
        return func.timezone(sql_text(self.zone_name), column)

    def local_day(self, column: Any) -> ColumnElement[date]:
        """The business-time-zone date of a UTC timestamp column."""
        if self.is_postgres:
            return cast(self._local_timestamp(column), Date)
        mod = self._sqlite_modifier(column)
        text = self._sqlite_text(column)
        expr = func.date(text) if mod is None else func.date(text, mod)
        return expr  # SQLite: 'YYYY-MM-DD' text, the way the Date type stores dates

    def local_hour(self, column: Any) -> ColumnElement[int]:
        """The business-time-zone hour (0–23) of a UTC timestamp column."""
        if self.is_postgres:
            return cast(extract("hour", self._local_timestamp(column)), Integer)
        mod = self._sqlite_modifier(column)
        fmt = sql_text("%H")
        text = self._sqlite_text(column)
        expr = func.strftime(fmt, text) if mod is None else func.strftime(fmt, text, mod)
        return cast(expr, Integer)

    def day_start(self, day: Any) -> ColumnElement[datetime]:
        """The UTC instant a local date expression starts at (as the store keeps timestamps)."""
        if self.is_postgres:
            return func.timezone(sql_text(self.zone_name), cast(day, TIMESTAMP))
        offsets = midnight_offsets(self.zone_name)
        if all(off == 0 for _, off in offsets):
            return day + sql_text(" 00:00:00.000000")  # type: ignore[no-any-return]

        def search(segments: Sequence[tuple[date, int]]) -> ColumnElement[str]:
            if len(segments) == 1:
                return sql_text(f"{-segments[0][1]:+d} seconds")
            mid = len(segments) // 2
            return case(
                (day < sql_text(segments[mid][0].isoformat()), search(segments[:mid])),
                else_=search(segments[mid:]),
            )

        shifted = func.strftime(sql_text("%Y-%m-%d %H:%M:%S"), day, search(offsets))
        return shifted + sql_text(".000000")

    def weekday(self, day: Any) -> ColumnElement[int]:
        """ISO weekday (1 = Monday … 7 = Sunday) of a date expression."""
        if self.is_postgres:
            return cast(extract("isodow", day), Integer)
        sunday_zero = cast(func.strftime(sql_text("%w"), day), Integer)
        return (sunday_zero + sql_int(6)) % sql_int(7) + sql_int(1)

    def period(
        self, day: Any, grain: Grain, fiscal_year_start_month: int = 1
    ) -> ColumnElement[date]:
        """The start of the ``grain`` period of a date expression."""
        if grain == "day":
            return day  # type: ignore[no-any-return]
        if grain in ("quarter", "fiscal_year"):
            return self._fiscal_period(day, grain, fiscal_year_start_month)
        if self.is_postgres:
            unit = "week" if grain == "week" else "month"  # date_trunc weeks start on Monday
            return cast(func.date_trunc(sql_text(unit), cast(day, TIMESTAMP)), Date)
        if grain == "week":
            return func.date(day, sql_text("weekday 0"), sql_text("-6 days"))
        return func.date(day, sql_text("start of month"))

    def _fiscal_period(self, day: Any, grain: Grain, start_month: int) -> ColumnElement[date]:
        # Shifted back by the fiscal year's offset, a fiscal quarter or year is a calendar
        # one: truncate there, then shift forward again (only the month matters, so a
        # clamped day of month, 31 May - 3 months = 28 Feb, changes nothing).
        shift = start_month - 1
        if self.is_postgres:
            unit = "quarter" if grain == "quarter" else "year"
            back = cast(day, TIMESTAMP) - literal_column(f"INTERVAL '{shift} months'")
            truncated = func.date_trunc(sql_text(unit), back)
            return cast(truncated + literal_column(f"INTERVAL '{shift} months'"), Date)
        month_start = func.date(day, sql_text("start of month"), sql_text(f"-{shift} months"))
        if grain == "fiscal_year":
            return func.date(month_start, sql_text("start of year"), sql_text(f"+{shift} months"))
        month = cast(func.strftime(sql_text("%m"), month_start), Integer)
        into_quarter = (month - sql_int(1)) % sql_int(3)
        back_to_quarter = sql_text("-") + cast(into_quarter, String) + sql_text(" months")
        return func.date(month_start, back_to_quarter, sql_text(f"+{shift} months"))

    def millis_between(self, earlier: Any, later: Any) -> ColumnElement[float]:
        """Milliseconds between two timestamps truncated to the millisecond, the same on both engines."""
        seconds: ColumnElement[Any]
        if self.is_postgres:
            ms = sql_text("milliseconds")
            seconds = extract("epoch", func.date_trunc(ms, later) - func.date_trunc(ms, earlier))
        else:
            seconds = (
                func.julianday(self._sqlite_text(later))
                - func.julianday(self._sqlite_text(earlier))
            ) * sql_int(86400)
        # julianday is a double with ~40 µs resolution: rounding to the millisecond makes it exact.
        return func.round(seconds * sql_int(1000))
