"""The `iskpi` command line (SPEC §3)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer
import uvicorn
from pydantic import SecretStr
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy import Engine

from connectors.base import Page, SourceConnector
from kpi import KpiContext
from service import kpi_cli, push_cli
from service.app import create_app
from service.db import make_engine, migrate, safe_url
from service.locks import SyncLocked
from service.settings import Settings, get_settings, kpi_context
from service.sources import SourceNotConfigured, build_connectors
from service.sync import SyncReport, run_sync

app = typer.Typer(help="iskpi: inside-sales KPIs from HubSpot and Salesforce", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)
log = logging.getLogger("iskpi")

# Tokens of the demo's API when none are configured; never used outside `iskpi demo`.
DEMO_READ_TOKEN = "demo-read"
DEMO_ADMIN_TOKEN = "demo-admin"


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
    if not console.is_terminal:
        yield TerminalProgress(None)
        return
    progress = Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        yield TerminalProgress(progress)


def print_report(report: SyncReport) -> None:
    table = Table(title=f"{report.source} sync #{report.run_id}: {report.status}")
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
) -> bool:
    """Sync each connector with progress and a summary; True when all ended ok."""
    ok = True
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
        print_report(report)
        ok = ok and report.status == "ok"
    return ok


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _engine(settings: Settings) -> Engine:
    engine = make_engine(settings.database_url)
    migrate(engine)
    return engine


@app.command("migrate")
def migrate_command() -> None:
    """Upgrade the store to the latest schema (alembic upgrade head)."""
    _setup_logging()
    settings = get_settings()
    engine = make_engine(settings.database_url)
    migrate(engine)
    console.print(f"migrated {safe_url(engine)}")


@app.command("sync")
def sync_command(
    source: Annotated[str, typer.Option(help="hubspot, salesforce or all")] = "all",
    full: Annotated[
        bool, typer.Option("--full", help="ignore saved cursors and pull everything")
    ] = False,
) -> None:
    """Sync now; progress on a terminal; exit 1 on failure."""
    _setup_logging()
    settings = get_settings()
    try:
        connectors = build_connectors(settings, source)
    except SourceNotConfigured as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    engine = _engine(settings)
    if not sync_all(engine, connectors, full=full, trigger="cli", kpi=kpi_context(settings)):
        raise typer.Exit(1)


def _serve(
    settings: Settings,
    engine: Engine,
    connectors: Callable[[], list[SourceConnector]] | None,
    host: str,
    port: int,
) -> None:
    api = create_app(settings, engine, connectors=connectors)
    uvicorn.run(api, host=host, port=port, log_level="info")


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Serve the API and run the scheduled sync (ISKPI_SYNC_CRON)."""
    _setup_logging()
    settings = get_settings()
    engine = _engine(settings)

    def connectors() -> list[SourceConnector]:
        try:
            return build_connectors(settings, "all")
        except SourceNotConfigured as exc:
            log.warning("scheduled sync has nothing to do: %s", exc)
            return []

    _serve(settings, engine, connectors, host, port)


@app.command("demo")
def demo_command(
    port: Annotated[int, typer.Option(help="port to serve on")] = 8000,
    database: Annotated[str, typer.Option(help="store for the demo")] = "sqlite:///./iskpi-demo.db",
    serve: Annotated[bool, typer.Option(help="serve after the sync")] = True,
    months: Annotated[int, typer.Option(help="months of simulated history", min=1, max=24)] = 6,
    source: Annotated[
        str, typer.Option(help="the simulated CRM: hubspot, salesforce or both")
    ] = "hubspot",
) -> None:
    """Start simulated CRMs, sync them through the real connectors into SQLite, serve it."""
    from connectors.hubspot import HubSpotConnector
    from connectors.mapping import load_mapping
    from service.demo import SalesforceDemo, start_salesforce_demo
    from simulators.hubspot.portal import HubSpotPortal, RunningPortal, serve_portal
    from simulators.hubspot.seed import generate_dataset

    if source not in ("hubspot", "salesforce", "both"):
        err_console.print(f"[red]unknown source {source!r}: use hubspot, salesforce or both[/red]")
        raise typer.Exit(2)
    _setup_logging()
    settings = get_settings().model_copy(update={"database_url": database})
    demo_token = "demo-token"
    portal_running: RunningPortal | None = None
    salesforce: SalesforceDemo | None = None
    if source in ("hubspot", "both"):
        portal = HubSpotPortal(demo_token)
        # A generous simulated rate limit: the connector paces itself by the portal's
        # rate-limit headers, and the demo should not take minutes.
        portal.burst_limit = 2_000
        console.print(f"generating the demo HubSpot portal (3 teams, 12 reps, {months} months)…")
        portal.load(generate_dataset(end=datetime.now(UTC), months=months))
        portal_running = serve_portal(portal)
        console.print(f"simulated HubSpot portal at {portal_running.url}")
    if source in ("salesforce", "both"):
        console.print(f"generating the demo Salesforce org (3 teams, 12 reps, {months} months)…")
        salesforce = start_salesforce_demo(months=months)
        # Served over HTTPS with a throwaway CA: the connector trusts that CA (verification
        # stays on); REQUESTS_CA_BUNDLE=<this file> does the same for other clients.
        console.print(f"simulated Salesforce org at {salesforce.url} (CA: {salesforce.ca_bundle})")
    if not settings.read_tokens and not settings.admin_tokens:
        # The demo is for looking around: give it tokens the user can see.
        settings = settings.model_copy(
            update={
                "read_tokens": [SecretStr(DEMO_READ_TOKEN)],
                "admin_tokens": [SecretStr(DEMO_ADMIN_TOKEN)],
            }
        )
        console.print(f"demo API tokens: read {DEMO_READ_TOKEN!r}, admin {DEMO_ADMIN_TOKEN!r}")
    engine = _engine(settings)
    mapping = load_mapping(settings.mapping_file)

    def connectors() -> list[SourceConnector]:
        out: list[SourceConnector] = []
        if portal_running is not None:
            out.append(HubSpotConnector(demo_token, host=portal_running.url, mapping=mapping))
        if salesforce is not None:
            out.append(salesforce.connector(mapping=mapping, timezone=settings.tz))
        return out

    try:
        ok = sync_all(engine, connectors(), full=True, trigger="demo", kpi=kpi_context(settings))
        if not ok:
            raise typer.Exit(1)
        if serve:
            console.print(f"dashboard at http://127.0.0.1:{port}/  (API docs at /docs)")
            _serve(settings, engine, connectors, "127.0.0.1", port)
    finally:
        if portal_running is not None:
            portal_running.stop()
        if salesforce is not None:
            salesforce.stop()


kpi_cli.register(app)
push_cli.register(app)


def main() -> None:
    app()
