"""After a sync pass: claim the alerts now due, post the pending ones, and never fail the sync.

Every kind of pass calls ``after_sync_pass`` (the nightly and intraday schedules,
``POST /v1/sync``, ``iskpi sync``): a pass that stored something makes the due alerts
reflect it. Each due alert is composed once, by the process whose insert claims it
(service.alerts.outbox), and posted; a failed post stays pending, and the next pass that
finds it still due posts it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from pydantic import SecretStr
from sqlalchemy import Engine

from kpi import KpiContext
from service.alerts import outbox, webhook
from service.alerts.due import AlertKey, due_alerts
from service.alerts.figures import pace_check, week_digest
from service.alerts.messages import digest_text, pacing_text
from service.settings import Settings
from service.sync.run import SyncReport, log_failure
from service.workday import BusinessHours

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertConfig:
    """Where alerts go, and the business hours that time them."""

    webhook_url: SecretStr  # repr shows '**********'
    hours: BusinessHours


def alert_config(settings: Settings) -> AlertConfig | None:
    """The alerts' settings, or None when ISKPI_ALERT_WEBHOOK_URL is unset."""
    if settings.alert_webhook_url is None:
        return None
    return AlertConfig(settings.alert_webhook_url, settings.hours)


def compose(engine: Engine, ctx: KpiContext, key: AlertKey) -> str | None:
    """The alert's text; None for a pacing check without any rep with a call target."""
    if key.kind == "weekly_digest":
        return digest_text(week_digest(engine, ctx, key.period_start))
    check = pace_check(engine, ctx, key.period_start, key.kind)
    return pacing_text(check) if check.reps_with_target else None


def send_due_alerts(
    engine: Engine,
    ctx: KpiContext,
    config: AlertConfig,
    at: datetime,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[AlertKey]:
    """Claim and post the alerts due at ``at``; returns the ones this call delivered.

    ``clock`` times the records (claims, attempts, sends); ``at`` decides what is due.
    """
    ctx = replace(ctx, now=at)  # the figures as of the pass: its day, its week's pace
    local = at.astimezone(ctx.zone)
    due = due_alerts(local.date(), local.time(), ctx, config.hours)
    expired = outbox.expire(engine, due, clock())
    if expired:
        log.warning("%d alert(s) not delivered while they were due: marked failed", expired)
    have = outbox.recorded(engine, due)
    for key in due:
        if key in have:
            continue
        text = compose(engine, ctx, key)
        if text is not None and outbox.claim(engine, key, text, clock()):
            log.info("alert %s of %s recorded", key.kind, key.period_start)
    delivered: list[AlertKey] = []
    for alert_id, key, text in outbox.pending(engine, due):
        if not outbox.start_attempt(engine, alert_id, clock()):
            continue  # another process is posting it
        error = webhook.post(config.webhook_url, text)
        outbox.finish_attempt(engine, alert_id, error, clock())
        if error is None:
            delivered.append(key)
            log.info("alert %s of %s sent", key.kind, key.period_start)
        else:
            log.warning(
                "alert %s of %s not delivered (%s): retried at the next sync",
                key.kind,
                key.period_start,
                error,
            )
    return delivered


def after_sync_pass(
    engine: Engine,
    ctx: KpiContext | None,
    config: AlertConfig | None,
    reports: Sequence[SyncReport],
) -> None:
    """Send the due alerts after a pass in which a sync stored something; logs, never raises."""
    if config is None or ctx is None or not any(r.status in ("ok", "partial") for r in reports):
        return
    try:
        send_due_alerts(engine, ctx, config, ctx.current_time())
    except Exception as exc:
        log_failure("alerts not sent", exc)
