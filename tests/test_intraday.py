"""The intraday sync schedule, on a frozen clock: business hours on business days, JP holidays.

Asia/Tokyo is UTC+9 all year. Thu 3 Dec 2026 and Fri 4 Dec are business days; Sat 5 Dec
is not; Mon 23 Nov 2026 is Labour Thanksgiving Day (勤労感謝の日), a JP holiday.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import Engine, select

from connectors.base import SourceConnector
from connectors.hubspot import HubSpotConnector
from kpi import KpiContext
from models import SyncRun
from service.settings import Settings, settings_errors
from service.sync.scheduler import intraday_sync, intraday_trigger, start_scheduler
from service.workday import BusinessHours, is_intraday_slot, latest_slot, slot_times
from simulators.hubspot.portal import RunningPortal
from tests.support.hubspot import TOKEN, small_portal

CTX = KpiContext(timezone="Asia/Tokyo", holidays="JP")
HOURS = BusinessHours(time(8, 0), time(20, 0))


def jst(text: str) -> datetime:
    """A Tokyo wall-clock time as an aware UTC instant (JST is UTC+9)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC) - timedelta(hours=9)


@pytest.mark.parametrize(
    ("instant", "every", "slot"),
    [
        ("2026-12-03T10:00", 15, True),  # a Thursday morning
        ("2026-12-03T10:00:42", 15, True),  # the minute counts, not the second
        ("2026-12-03T10:15", 15, True),
        ("2026-12-03T10:07", 15, False),  # between two slots
        ("2026-12-03T08:00", 1, True),  # business hours open at 08:00 …
        ("2026-12-03T07:59", 1, False),
        ("2026-12-03T20:00", 1, True),  # … and the 20:00 slot is the day's last
        ("2026-12-03T20:01", 1, False),
        ("2026-12-05T10:00", 15, False),  # Saturday
        ("2026-11-23T10:00", 15, False),  # Labour Thanksgiving Day, a Monday
        ("2026-12-03T10:00", 0, False),  # 0: the nightly sync only
    ],
)
def test_an_instant_is_an_intraday_slot_on_business_days_within_business_hours(
    instant: str, every: int, slot: bool
) -> None:
    assert is_intraday_slot(jst(instant), CTX, HOURS, every) is slot


def test_the_business_time_zone_decides_the_day_and_the_hour() -> None:
    # 01:00 UTC on Thursday is 10:00 in Tokyo but 01:00 in UTC, before business hours there.
    thursday_1am_utc = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
    assert is_intraday_slot(thursday_1am_utc, CTX, HOURS, 15)
    assert not is_intraday_slot(thursday_1am_utc, KpiContext(timezone="UTC"), HOURS, 15)
    # 23:00 UTC on Friday is 08:00 on Saturday in Tokyo: no slot, though Friday in UTC.
    assert not is_intraday_slot(datetime(2026, 12, 4, 23, 0, tzinfo=UTC), CTX, HOURS, 15)


def test_slots_are_counted_from_the_start_of_business_hours() -> None:
    # 08:00 + 45 min × k up to 20:00: 12 h = 720 min = 16 × 45, so k = 0 … 16.
    times = slot_times(HOURS, 45)
    assert len(times) == 17
    assert times[:4] == (time(8, 0), time(8, 45), time(9, 30), time(10, 15))
    assert times[-1] == time(20, 0)
    assert slot_times(BusinessHours(time(9, 30), time(10, 0)), 20) == (time(9, 30), time(9, 50))


def test_the_latest_slot_names_the_slot_replicas_share() -> None:
    assert latest_slot(jst("2026-12-03T10:07:30"), CTX, HOURS, 15) == jst("2026-12-03T10:00")
    assert latest_slot(jst("2026-12-03T21:30"), CTX, HOURS, 15) == jst("2026-12-03T20:00")
    assert latest_slot(jst("2026-12-03T07:59"), CTX, HOURS, 15) is None
    assert latest_slot(jst("2026-11-23T10:07"), CTX, HOURS, 15) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("8-20", "'8-20' is not HH:MM-HH:MM (e.g. 08:00-20:00)"),
        ("20:00-08:00", "'20:00-08:00': the end must be after the start on the same day"),
        ("08:00-24:00", "'08:00-24:00': hours are 00-23 and minutes 00-59"),
    ],
)
def test_bad_business_hours_are_one_line_naming_the_variable(value: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Settings(business_hours=value)
    assert settings_errors(caught.value) == [f"ISKPI_BUSINESS_HOURS: {message}"]


def fires(trigger: object, after: datetime, count: int) -> list[str]:
    """The next ``count`` fire times of an APScheduler trigger, as ISO text."""
    out: list[str] = []
    previous = None
    now = after
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)  # type: ignore[attr-defined]
        out.append(fire.isoformat())
        previous, now = fire, fire + timedelta(microseconds=1)
    return out


def test_the_scheduler_runs_the_nightly_and_the_intraday_sync() -> None:
    settings = Settings(timezone="Asia/Tokyo", holidays="JP", sync_cron="0 2 * * *")
    scheduler = start_scheduler(settings, engine=None, connectors=lambda: [])  # type: ignore[arg-type]
    try:
        nightly, intraday = scheduler.get_job("nightly"), scheduler.get_job("intraday")
        assert nightly.kwargs["trigger"] == "nightly"
        assert intraday.func is intraday_sync
        assert intraday.args[3:5] == (HOURS, 15)
        assert intraday.max_instances == 1 and intraday.coalesce is True
        assert intraday.misfire_grace_time == 15 * 60
        # Friday 19:40 in Tokyo: 19:45 and 20:00, then Monday 08:00 (the weekend has no slot).
        assert fires(intraday.trigger, jst("2026-12-04T19:40"), 4) == [
            "2026-12-04T19:45:00+09:00",
            "2026-12-04T20:00:00+09:00",
            "2026-12-07T08:00:00+09:00",
            "2026-12-07T08:15:00+09:00",
        ]
        assert fires(nightly.trigger, jst("2026-12-04T19:40"), 1) == ["2026-12-05T02:00:00+09:00"]
    finally:
        scheduler.shutdown(wait=False)


def test_no_intraday_job_at_zero_minutes() -> None:
    settings = Settings(timezone="Asia/Tokyo", sync_intraday_minutes=0)
    scheduler = start_scheduler(settings, engine=None, connectors=lambda: [])  # type: ignore[arg-type]
    try:
        assert [job.id for job in scheduler.get_jobs()] == ["nightly"]
    finally:
        scheduler.shutdown(wait=False)


def test_an_interval_that_does_not_divide_the_hour_fires_at_the_slot_times() -> None:
    trigger = intraday_trigger(HOURS, 45, CTX.zone)
    expected = [f"2026-12-03T{t:%H:%M}:00+09:00" for t in slot_times(HOURS, 45)]
    assert fires(trigger, jst("2026-12-03T07:00"), 17) == expected


@pytest.fixture
def portal() -> Iterator[RunningPortal]:
    with small_portal() as running:
        yield running


def intraday_runs(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [
            (trigger, status)
            for trigger, status in conn.execute(select(SyncRun.trigger, SyncRun.status))
        ]


def test_two_replicas_firing_the_same_slot_sync_once_and_holidays_not_at_all(
    engine: Engine, portal: RunningPortal
) -> None:
    def connectors() -> list[SourceConnector]:
        return [HubSpotConnector(TOKEN, host=portal.url, sleep=lambda _: None)]

    holiday = jst("2026-11-23T10:00")
    intraday_sync(engine, connectors, CTX, HOURS, 15, clock=lambda: holiday)
    assert intraday_runs(engine) == []
    # Two replicas fire the 10:00 slot, one a few seconds after the other.
    for fired in (jst("2026-12-03T10:00:00.010"), jst("2026-12-03T10:00:03")):
        intraday_sync(engine, connectors, CTX, HOURS, 15, clock=lambda at=fired: at)
    assert intraday_runs(engine) == [("intraday", "ok")]
