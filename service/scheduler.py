"""The nightly sync: APScheduler on ISKPI_SYNC_CRON in the business time zone."""

from __future__ import annotations

import logging
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from connectors.base import SourceConnector
from service.locks import SyncLocked
from service.settings import Settings
from service.sync import run_sync

log = logging.getLogger(__name__)

# A run missed while the process was down still happens if it restarts within this.
MISFIRE_GRACE_SECONDS = 6 * 3600


def scheduled_sync(engine: Engine, connectors: Callable[[], list[SourceConnector]]) -> None:
    """One scheduled pass over every configured source; a source locked elsewhere is skipped."""
    for connector in connectors():
        try:
            report = run_sync(engine, connector, trigger="schedule")
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
        CronTrigger.from_crontab(settings.sync_cron, timezone=settings.tz),
        args=(engine, connectors),
        id="sync",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=MISFIRE_GRACE_SECONDS,
        replace_existing=True,
    )
    scheduler.start()
    log.info("sync scheduled on %r (%s)", settings.sync_cron, settings.timezone)
    return scheduler
