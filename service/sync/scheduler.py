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


_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _crontab_weekdays(field: str) -> str:
    """Crontab's day-of-week (0 or 7 = Sunday) in APScheduler's names.

    APScheduler numbers weekdays from Monday = 0, and its ``from_crontab`` passes
    numbers through unchanged, so "1-5" would mean Tuesday to Saturday. Names
    are unambiguous.
    """
    parts: list[str] = []
    for item in field.split(","):
        body, _, step = item.partition("/")
        suffix = f"/{step}" if step else ""
        low, _, high = body.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            parts.append(item)  # "*", names, or "*/2": the same in both dialects
            continue
        first, last = int(low), int(high) if high else None
        if first > 7 or (last is not None and (last > 7 or last < first)):
            raise ValueError(f"bad day of week {item!r} in ISKPI_SYNC_CRON")
        if last is None:
            parts.append(_CRON_DAYS[first] + suffix)
        elif first == 0 and not step:
            # Sunday first: APScheduler's ranges end on Sunday, so split it off.
            parts.append("sun")
            if last >= 1:
                parts.append(f"mon-{_CRON_DAYS[last]}" if last < 7 else "mon-sun")
        elif first == 0:
            raise ValueError(f"a stepped range from Sunday ({item!r}) is not supported; use 7")
        else:
            parts.append(f"{_CRON_DAYS[first]}-{_CRON_DAYS[last]}{suffix}")
    return ",".join(parts)


def cron_trigger(expression: str, timezone: tzinfo) -> CronTrigger:
    """A standard five-field crontab expression as a trigger in the given time zone."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"ISKPI_SYNC_CRON needs five fields, got {expression!r}")
    minute, hour, day, month, day_of_week = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_crontab_weekdays(day_of_week),
        timezone=timezone,
    )


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
