"""The scheduled syncs: nightly on ISKPI_SYNC_CRON, and intraday every
ISKPI_SYNC_INTRADAY_MINUTES within ISKPI_BUSINESS_HOURS on business days, with APScheduler
in the business time zone. Each run records its schedule as its trigger (``nightly`` or
``intraday``); the pacing alerts and the digest follow each pass.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Literal

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from connectors.base import SourceConnector
from kpi import KpiContext
from service.alerts.dispatch import AlertConfig, after_sync_pass, alert_config
from service.errors import SyncLocked
from service.settings import Settings, kpi_context
from service.sync.run import SyncReport, run_sync
from service.workday import BusinessHours, latest_slot, slot_times

log = logging.getLogger(__name__)

# The trigger a scheduled run records (sync_runs.trigger).
ScheduleTrigger = Literal["nightly", "intraday"]

# A nightly run missed while the process was down still happens if it restarts within this.
MISFIRE_GRACE_SECONDS = 6 * 3600


_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _cron_day(text: str, item: str) -> int:
    """One crontab day: 0-7 (0 and 7 are Sunday) or a name (sun, mon, ...)."""
    name = text.lower()[:3]
    if name in _CRON_DAYS:
        return _CRON_DAYS.index(name)
    if text.isdigit() and int(text) <= 7:
        return int(text) % 7
    raise ValueError(f"ISKPI_SYNC_CRON: bad day of week {item!r} (0-7 or sun-sat)")


def _crontab_weekdays(field: str) -> str:
    """Crontab's day-of-week field as the explicit list of APScheduler day names.

    APScheduler numbers weekdays from Monday = 0 and steps over its own numbering, so
    "1-5" would mean Tuesday to Saturday and "*/2" Monday, Wednesday, Friday, Sunday.
    Crontab's days (0 or 7 = Sunday) are expanded here, steps included ("*/2" is Sunday,
    Tuesday, Thursday, Saturday), and handed over by name.
    """
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.split(","):
        body, _, step_text = item.partition("/")
        if step_text and not (step_text.isdigit() and int(step_text) > 0):
            raise ValueError(f"ISKPI_SYNC_CRON: bad step in day of week {item!r}")
        step = int(step_text) if step_text else 1
        if body == "*":
            first, last = 0, 6
        else:
            low, dash, high = body.partition("-")
            first = _cron_day(low, item)
            last = _cron_day(high, item) if dash else (6 if step_text else first)
            if dash and high.strip() == "7":
                last = 7  # "5-7": Friday to Sunday
            if last < first:
                raise ValueError(f"ISKPI_SYNC_CRON: backwards day-of-week range {item!r}")
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_CRON_DAYS[day] for day in sorted(days))


def cron_trigger(expression: str, timezone: tzinfo) -> CronTrigger:
    """A standard five-field crontab expression as a trigger in the given time zone."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"ISKPI_SYNC_CRON needs five fields, got {expression!r}")
    minute, hour, day, month, day_of_week = fields
    try:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_crontab_weekdays(day_of_week),
            timezone=timezone,
        )
    except ValueError as exc:
        if str(exc).startswith("ISKPI_SYNC_CRON"):
            raise
        raise ValueError(f"ISKPI_SYNC_CRON: {exc} in {expression!r}") from None


def scheduled_sync(
    engine: Engine,
    connectors: Callable[[], list[SourceConnector]],
    kpi: KpiContext | None = None,
    *,
    trigger: ScheduleTrigger = "nightly",
    slot: datetime | None = None,
    alerts: AlertConfig | None = None,
) -> None:
    """One scheduled pass over every configured source; a source locked elsewhere is skipped.

    The pass claims its ``slot`` (by default the minute it fires in), so a replica firing
    the same slot skips a source another replica has synced in it already. The due
    alerts follow the pass.
    """
    slot = slot or datetime.now(UTC).replace(second=0, microsecond=0)
    reports: list[SyncReport] = []
    for connector in connectors():
        try:
            report = run_sync(engine, connector, trigger=trigger, kpi=kpi, once_since=slot)
        except SyncLocked as exc:
            log.info("scheduled sync skipped: %s", exc)
            continue
        reports.append(report)
        log.info(
            "%s sync of %s: %s, %d records, %d quarantined, %d API calls, %.1f s",
            trigger,
            report.source,
            report.status,
            sum(report.records.values()),
            report.quarantined,
            report.api_calls,
            report.seconds,
        )
    after_sync_pass(engine, kpi, alerts, reports)


def intraday_sync(
    engine: Engine,
    connectors: Callable[[], list[SourceConnector]],
    kpi: KpiContext,
    hours: BusinessHours,
    every_minutes: int,
    alerts: AlertConfig | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """The intraday pass of the slot it is time for; nothing on a holiday."""
    slot = latest_slot(clock(), kpi, hours, every_minutes)
    if slot is None:
        log.info("intraday sync skipped: no slot now (a holiday in %s)", kpi.timezone)
        return
    scheduled_sync(engine, connectors, kpi, trigger="intraday", slot=slot, alerts=alerts)


def intraday_trigger(hours: BusinessHours, every_minutes: int, timezone: tzinfo) -> BaseTrigger:
    """Monday to Friday at each slot time (holidays are left to the job, which skips them).

    Slot times are counted from the start of business hours, so every N minutes need not
    divide an hour: the hours sharing the same minutes get one cron trigger each.
    """
    minutes_by_hour: dict[int, list[int]] = defaultdict(list)
    for slot in slot_times(hours, every_minutes):
        minutes_by_hour[slot.hour].append(slot.minute)
    hours_by_minutes: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for hour, minutes in minutes_by_hour.items():
        hours_by_minutes[tuple(minutes)].append(hour)
    triggers = [
        CronTrigger(
            day_of_week="mon-fri",
            hour=",".join(map(str, hour_list)),
            minute=",".join(map(str, minutes)),
            timezone=timezone,
        )
        for minutes, hour_list in hours_by_minutes.items()
    ]
    return triggers[0] if len(triggers) == 1 else OrTrigger(triggers)


def start_scheduler(
    settings: Settings, engine: Engine, connectors: Callable[[], list[SourceConnector]]
) -> BackgroundScheduler:
    """Start the background scheduler with the nightly and intraday syncs; the caller shuts it down."""
    ctx = kpi_context(settings)
    alerts = alert_config(settings)
    scheduler = BackgroundScheduler(timezone=settings.tz)
    scheduler.add_job(
        scheduled_sync,
        cron_trigger(settings.sync_cron, settings.tz),
        args=(engine, connectors, ctx),
        kwargs={"trigger": "nightly", "alerts": alerts},
        id="nightly",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=MISFIRE_GRACE_SECONDS,
        replace_existing=True,
    )
    every = settings.sync_intraday_minutes
    if every:
        scheduler.add_job(
            intraday_sync,
            intraday_trigger(settings.hours, every, settings.tz),
            args=(engine, connectors, ctx, settings.hours, every, alerts),
            id="intraday",
            max_instances=1,
            coalesce=True,
            # A slot missed by more than its interval is the next slot's to run.
            misfire_grace_time=every * 60,
            replace_existing=True,
        )
    scheduler.start()
    log.info(
        "sync scheduled nightly on %r and %s, in %s",
        settings.sync_cron,
        f"every {every} minutes within {settings.hours} on business days"
        if every
        else "no intraday",
        settings.timezone,
    )
    return scheduler
