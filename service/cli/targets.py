"""`iskpi targets push`: write the month's targets into the mapped CRM fields (SPEC §3, §9).

service/cli/__init__.py adds the ``targets`` command group with ``targets.register(app)``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from service.writeback.push import PushReport

targets_app = typer.Typer(help="KPI targets in the CRM", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)
log = logging.getLogger("iskpi")

MAX_ROWS_SHOWN = 200
RESULT_STYLE = {
    "written": "green",
    "failed": "red",
    "not_sent": "red",
    "conflict": "yellow",
    "skipped": "dim",
}


def cli_user() -> str:
    """Who runs the command, for the push's audit record: ``user@host``."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's arbitrary user)
        user = "uid-unknown"
    return f"{user}@{socket.gethostname()}"[:128]


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.6f}".rstrip("0").rstrip(".")


def print_push(report: PushReport) -> None:
    """The plan (or its results) as a table, then the figures of the push."""
    from rich.table import Table

    what = "dry run" if report.dry_run else "push"
    title = (
        f"{report.source} {what} #{report.push_id} of {report.period_start:%Y-%m} targets: "
        f"{report.status}"
    )
    shown = report.rows[:MAX_ROWS_SHOWN]
    table = Table(title=title)
    for name, justify in (
        ("rep", "left"),
        ("KPI", "left"),
        ("field", "left"),
        ("record", "left"),
        ("CRM now", "right"),
        ("new", "right"),
        ("reason", "left"),
        ("result", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in shown:
        result = row.status if row.error is None else f"{row.status}: {row.error}"
        table.add_row(
            row.rep_id,
            row.kpi,
            f"{row.ref.crm_object}.{row.ref.field}",
            row.record_id or "—",
            _number(row.crm_value),
            _number(row.new_value),
            row.reason,
            result,
            style=RESULT_STYLE.get(row.status),
        )
    if report.rows:
        console.print(table)
    if len(report.rows) > len(shown):
        console.print(
            f"… and {len(report.rows) - len(shown):,} more rows "
            f"(GET /v1/targets/pushes lists them all)"
        )
    summary = Table(title=f"{report.source} {what} #{report.push_id}", show_header=False)
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    figures: list[tuple[str, str]] = [
        ("field updates planned", f"{report.planned:,}"),
        ("records to write", f"{report.records:,}"),
        (
            "write requests needed",
            f"{report.expected_write_requests:,} ({report.batch_size} records a request)",
        ),
        ("conflicts held back", f"{report.conflicts:,}"),
        ("unchanged", f"{report.unchanged:,}"),
        ("skipped", f"{report.skipped:,}"),
    ]
    if not report.dry_run:
        figures += [("written", f"{report.written:,}"), ("failed", f"{report.failed:,}")]
    if report.missing_fields:
        figures.append(("fields to create", ", ".join(report.missing_fields)))
    if report.created_fields:
        figures.append(("fields created", ", ".join(report.created_fields)))
    figures += [
        ("API calls", f"{report.api_calls:,}"),
        ("write requests", f"{report.write_requests:,}"),
        ("seconds", f"{report.seconds:.1f}"),
    ]
    for name, value in figures:
        summary.add_row(name, value)
    console.print(summary)
    if report.conflicts:
        err_console.print(
            f"[yellow]{report.conflicts} field(s) were changed in the CRM since the last push "
            "and were not overwritten; rerun with --force to overwrite them[/yellow]"
        )
    if report.error:
        err_console.print(f"[red]error:[/red] {report.error}")


@targets_app.command("push")
def push_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show the plan of field changes, write nothing")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="overwrite fields changed in the CRM since the last push"),
    ] = False,
    source: Annotated[str, typer.Option(help="hubspot, salesforce or all")] = "all",
) -> None:
    """Write the current month's rep targets into the mapped CRM fields; exit 1 on failure."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from service.db import make_engine, migrate
    from service.settings import get_settings, kpi_context
    from service.writeback.push import PushStopped, push_each

    settings = get_settings()
    engine = make_engine(settings.database_url)
    migrate(engine)
    ok = True
    for outcome in push_each(
        engine,
        settings,
        kpi_context(settings),
        which=source,
        requested_by=cli_user(),
        trigger="cli",
        dry_run=dry_run,
        force=force,
    ):
        if isinstance(outcome, PushStopped):
            ok = False
            if outcome.report is not None:
                print_push(outcome.report)
            else:
                err_console.print(f"[red]{outcome.message}[/red]")
            continue
        print_push(outcome)
        ok = ok and outcome.failed == 0
    if not ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``targets`` command group to the CLI."""
    app.add_typer(targets_app, name="targets")
