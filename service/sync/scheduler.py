"""The nightly sync: APScheduler on ISKPI_SYNC_CRON in the business time zone."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from connectors.base import SourceConnector
from kpi import KpiContext
from service.errors import SyncLocked
from service.settings import Settings, kpi_context
from service.sync.run import run_sync

log = logging.getLogger(__name__)

# A run missed while the process was down still happens if it restarts within this.
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
) -> None:
    """One scheduled pass over every configured source; a source locked elsewhere is skipped.

    The cron fires on whole minutes: the pass claims its minute, so a replica firing
    the same minute skips a source another replica has synced in it already.
    """
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    for connector in connectors():
        try:
            report = run_sync(engine, connector, trigger="schedule", kpi=kpi, once_since=minute)
        except SyncLocked as exc:
            log.info("scheduled sync skipped: %s", exc)
            continue
        log.info(
            "scheduled sync of %s: %s, %d records, %d quarantined, %d API calls, %.1f s",
            report.source,
            report.status,
            sum(report.records.values()),
            report.quarantined,
            report.api_calls,
            report.seconds,
        )


def start_scheduler(
    settings: Settings, engine: Engine, connectors: Callable[[], list[SourceConnector]]
) -> BackgroundScheduler:
    """Start the background scheduler with the sync job; the caller shuts it down."""
    scheduler = BackgroundScheduler(timezone=settings.tz)
    scheduler.add_job(
        scheduled_sync,
        cron_trigger(settings.sync_cron, settings.tz),
        args=(engine, connectors, kpi_context(settings)),
        id="sync",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=MISFIRE_GRACE_SECONDS,
        replace_existing=True,
    )
    scheduler.start()
    log.info("sync scheduled on %r (%s)", settings.sync_cron, settings.timezone)
    return scheduler
