"""`iskpi sync`, `serve` and `migrate`: the store, filled from the CRMs, served.

Each command imports what it needs when it runs (FastAPI, the connectors, Alembic, the
KPI engine), so `iskpi --help` answers at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from service.cli.common import (
    ConfigError,
    check_mapping,
    console,
    err_console,
    log,
    open_store,
    setup_logging,
)

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID
    from sqlalchemy import Engine

    from connectors.base import Page, SourceConnector
    from kpi import KpiContext
    from service.alerts.dispatch import AlertConfig
    from service.settings import Settings
    from service.sync.run import SyncReport


class TerminalProgress:
    """A progress bar per stream on a terminal; plain log lines otherwise."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}
        self.counts: dict[str, int] = {}

    def stream_started(self, stream: str) -> None:
        self.counts[stream] = 0
        if self.progress is not None:
            self.tasks[stream] = self.progress.add_task(stream, total=None)

    def page_stored(self, stream: str, page: Page) -> None:
        self.counts[stream] += len(page.records) + len(page.rejected)
        if self.progress is not None:
            self.progress.update(
                self.tasks[stream], completed=self.counts[stream], total=page.total
            )

    def stream_finished(self, stream: str) -> None:
        if self.progress is not None:
            task = self.tasks[stream]
            self.progress.update(task, total=self.counts[stream], completed=self.counts[stream])
        else:
            log.info("%s: %d records", stream, self.counts[stream])


@contextmanager
def sync_progress() -> Iterator[TerminalProgress]:
    """Progress bars on a terminal, log lines elsewhere."""
    if not console.is_terminal:
        yield TerminalProgress(None)
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        yield TerminalProgress(progress)


def print_report(report: SyncReport, trigger: str) -> None:
    """A run's figures as a table, and its error."""
    from rich.table import Table

    table = Table(
        title=f"{report.source} sync #{report.run_id}: {report.status}",
        caption=f"trigger: {trigger}",
    )
    table.add_column("stream")
    table.add_column("records", justify="right")
    for stream, count in report.records.items():
        table.add_row(stream, f"{count:,}")
    table.add_row(
        "quarantined", f"{report.quarantined:,}", style="yellow" if report.quarantined else None
    )
    table.add_row("API calls", f"{report.api_calls:,}")
    table.add_row("seconds", f"{report.seconds:.1f}")
    console.print(table)
    if report.error:
        err_console.print(f"[red]error:[/red] {report.error}")


def sync_all(
    engine: Engine,
    connectors: list[SourceConnector],
    *,
    full: bool,
    trigger: str,
    kpi: KpiContext | None = None,
    alerts: AlertConfig | None = None,
) -> bool:
    """Sync each connector with progress and a summary, then the due alerts; True when all ended ok."""
    from service.alerts.dispatch import after_sync_pass
    from service.errors import SyncLocked
    from service.sync.run import run_sync

    ok = True
    reports: list[SyncReport] = []
    for connector in connectors:
        try:
            with sync_progress() as progress:
                report = run_sync(
                    engine, connector, trigger=trigger, full=full, progress=progress, kpi=kpi
                )
        except SyncLocked as exc:
            err_console.print(f"[red]{exc}[/red]")
            ok = False
            continue
        print_report(report, trigger)
        reports.append(report)
        ok = ok and report.status == "ok"
    after_sync_pass(engine, kpi, alerts, reports)
    return ok


def migrate_command() -> None:
    """Upgrade the store to the latest schema (alembic upgrade head)."""
    from service.db import safe_url
    from service.settings import get_settings

    setup_logging()
    engine = open_store(get_settings())
    console.print(f"migrated {safe_url(engine)}")


def sync_command(
    source: Annotated[str, typer.Option(help="hubspot, salesforce or all")] = "all",
    full: Annotated[
        bool, typer.Option("--full", help="ignore saved cursors and pull everything")
    ] = False,
) -> None:
    """Sync now; progress on a terminal; exit 1 on failure."""
    from service.alerts.dispatch import alert_config
    from service.errors import SourceNotConfigured
    from service.settings import get_settings, kpi_context
    from service.sync.sources import build_connectors

    setup_logging()
    settings = get_settings()
    check_mapping(settings)
    try:
        build_connectors(settings, source)  # the settings checked before the store is opened
    except SourceNotConfigured as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    engine = open_store(settings)
    # Built again with the store, which keeps a rotated Salesforce refresh token.
    connectors = build_connectors(settings, source, engine)
    # A --full sync re-reads everything in the configured zone: it may change the store's.
    check_timezone(engine, settings.timezone, full=full)
    ok = sync_all(
        engine,
        connectors,
        full=full,
        trigger="cli",
        kpi=kpi_context(settings),
        alerts=alert_config(settings),
    )
    if full and ok and source == "all":  # every configured CRM re-read in this zone
        from service import store_meta

        store_meta.write(engine, store_meta.SYNC_TIMEZONE, settings.timezone)
    if not ok:
        raise typer.Exit(1)


def check_timezone(engine: Engine, timezone: str, *, full: bool = False) -> None:
    """Refuse to serve or sync a store synced in another zone (a --full sync may change it)."""
    from service import store_meta

    stored = store_meta.timezone_mismatch(engine, timezone)
    if stored is None:
        return
    if full:
        log.warning("the store was synced in %s; re-reading everything in %s", stored, timezone)
        return
    raise ConfigError(
        "ISKPI_TIMEZONE",
        f"{timezone} differs from {stored}, the zone the store was synced in "
        f"(its date-only CRM fields are midnights there): run `iskpi sync --full` "
        f"to re-read it in {timezone}, or set ISKPI_TIMEZONE={stored}",
    )


def serve(
    settings: Settings,
    engine: Engine,
    connectors: Callable[[], list[SourceConnector]] | None,
    host: str,
    port: int,
) -> None:
    """Serve the API (and the scheduled sync, with ``connectors``) until interrupted."""
    import uvicorn

    from service import access_log
    from service.app import create_app
    from service.limits import MAX_HEADER_BYTES

    api = create_app(settings, engine, connectors=connectors)
    # h11, not httptools: h11 bounds the request line and headers (a larger head is a 400).
    config = uvicorn.Config(
        api,
        host=host,
        port=port,
        log_level="info",
        http="h11",
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )
    access_log.install()  # uvicorn.Config has configured logging by now
    uvicorn.Server(config).run()


def serve_command(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Serve the API and run the scheduled syncs (ISKPI_SYNC_CRON, ISKPI_SYNC_INTRADAY_MINUTES)."""
    from service.errors import SourceNotConfigured
    from service.settings import get_settings
    from service.sync.scheduler import cron_trigger
    from service.sync.sources import build_connectors

    setup_logging()
    settings = get_settings()
    try:
        cron_trigger(settings.sync_cron, settings.tz)
    except ValueError as exc:
        message = str(exc).removeprefix("ISKPI_SYNC_CRON: ")
        raise ConfigError("ISKPI_SYNC_CRON", f"{message} (five crontab fields)") from None
    check_mapping(settings)
    engine = open_store(settings)
    check_timezone(engine, settings.timezone)

    warned: list[bool] = []  # intraday slots come every few minutes: say it once, not all day

    def connectors() -> list[SourceConnector]:
        try:
            return build_connectors(settings, "all", engine)
        except SourceNotConfigured as exc:
            if not warned:
                log.warning("scheduled sync has nothing to do: %s", exc)
                warned.append(True)
            return []

    serve(settings, engine, connectors, host, port)
