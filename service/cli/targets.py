"""`iskpi targets push` and `iskpi targets allocate` (docs/cli.md, docs/writeback.md, docs/targets.md).

- ``push``: the plan of field changes for the month's rep targets; ``--apply`` writes them.
- ``allocate``: split a team or org target over its inside-sales reps; ``--apply`` writes
  the rep targets (drafts, or confirmed with ``--confirm``).

Both are dry runs unless ``--apply``. service/cli/__init__.py adds the ``targets`` command
group with ``targets.register(app)``; the store and the KPI engine load when a command runs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from kpi import Allocation
    from service.writeback.push import PushReport

targets_app = typer.Typer(help="KPI targets in the CRM", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)
log = logging.getLogger("iskpi")

MAX_ROWS_SHOWN = 200
LEVELS_HELP = "minimum | achievement | stretch"
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
    summary = Table(
        title=f"{report.source} {what} #{report.push_id}, {report.level} targets",
        show_header=False,
    )
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
    apply: Annotated[
        bool, typer.Option("--apply", help="write the changes (without it: the plan only)")
    ] = False,
    level: Annotated[str, typer.Option(help=f"the target level to push: {LEVELS_HELP}")] = (
        "achievement"
    ),
    force: Annotated[
        bool,
        typer.Option("--force", help="overwrite fields changed in the CRM since the last push"),
    ] = False,
    source: Annotated[str, typer.Option(help="hubspot, salesforce or all")] = "all",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", hidden=True, help="the default: the plan only")
    ] = False,
) -> None:
    """Show the plan of field changes for the month's rep targets; --apply writes them.

    Exit 1 when a push fails.
    """
    if apply and dry_run:
        raise typer.BadParameter(
            "--apply writes, --dry-run does not: give one", param_hint="--apply"
        )
    if level not in LEVELS_HELP.split(" | "):
        raise typer.BadParameter(f"{level!r}: one of {LEVELS_HELP}", param_hint="--level")
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
        dry_run=not apply,
        force=force,
        level=level,  # type: ignore[arg-type]
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
    if not apply and ok:
        console.print("a dry run: nothing was written; --apply writes these changes")
    if not ok:
        raise typer.Exit(1)


def print_allocation(allocation: Allocation) -> None:
    """The split as a table (rep, name, level, weight, share, value), then what was written."""
    from rich.table import Table

    what = "dry run" if allocation.dry_run else "allocation"
    title = (
        f"{allocation.kpi} {allocation.level} {allocation.grain} "
        f"{allocation.period_start:%Y-%m-%d}, {allocation.scope} {allocation.scope_id}: "
        f"{_number(allocation.value)} ({allocation.value_source}) by {allocation.method} — {what}"
    )
    table = Table(title=title)
    for name, justify in (
        ("rep", "left"),
        ("name", "left"),
        ("level", "left"),
        ("weight", "right"),
        ("share", "right"),
        ("value", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for rep in allocation.reps:
        table.add_row(
            rep.rep_id,
            rep.name,
            rep.level,
            _number(rep.weight),
            "—" if rep.share is None else f"{rep.share:.1%}",
            _number(rep.value),
        )
    console.print(table)
    total = sum(rep.value for rep in allocation.reps)
    if allocation.mode == "split":
        console.print(f"{len(allocation.reps)} reps, total {_number(total)}")
    else:
        console.print(f"{allocation.kpi} is a rate: copied to each of {len(allocation.reps)} reps")
    if allocation.fallback == "equal":
        console.print("no history in the trailing three months: split equally")
    if allocation.dry_run:
        console.print("a dry run: nothing was written; --apply writes these rep targets")
    else:
        console.print(f"{allocation.written} rep targets written as {allocation.status}")


def _weights(text: str | None) -> dict[str, float] | None:
    """``junior=0.7,mid=1,senior=1.3`` as a mapping (the engine checks the levels)."""
    if text is None:
        return None
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, weight = item.partition("=")
        try:
            out[name.strip()] = float(weight)
        except ValueError:
            sep = ""
        if not sep:
            raise typer.BadParameter(
                f"{item!r}: level=weight, comma-separated", param_hint="--weights"
            )
    return out


@targets_app.command("allocate")
def allocate_command(
    kpi: Annotated[str, typer.Option(help="the KPI, e.g. meetings_set")],
    id_: Annotated[
        str | None, typer.Option("--id", help="the team: <source>:<crm id> (not for the org)")
    ] = None,
    scope: Annotated[str, typer.Option(help="team | org")] = "team",
    month: Annotated[
        str | None, typer.Option(help="the month, YYYY-MM (or --grain and --period-start)")
    ] = None,
    grain: Annotated[str | None, typer.Option(help="the target's grain (with --period-start)")] = (
        None
    ),
    period_start: Annotated[
        str | None, typer.Option("--period-start", help="the period's first day, YYYY-MM-DD")
    ] = None,
    method: Annotated[str, typer.Option(help="equal | history | skill")] = "equal",
    level: Annotated[str, typer.Option(help=LEVELS_HELP)] = "achievement",
    value: Annotated[
        float | None, typer.Option(help="the value to split; default the stored target")
    ] = None,
    weights: Annotated[
        str | None, typer.Option(help="skill weights, e.g. junior=0.7,mid=1,senior=1.2")
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="write the rep targets (without it: a dry run)")
    ] = False,
    confirm: Annotated[
        bool, typer.Option("--confirm", help="write them confirmed, not as drafts")
    ] = False,
    reason: Annotated[
        str | None, typer.Option(help="why (needed to change confirmed rep targets)")
    ] = None,
) -> None:
    """Split a team or org target over its inside-sales reps; a dry run unless --apply.

    Exit 2 on a bad option.
    """
    from datetime import date

    if month is not None:
        if grain is not None or period_start is not None:
            raise typer.BadParameter(
                "give --month or --grain and --period-start, not both", param_hint="--month"
            )
        try:
            year, number = (int(part) for part in month.split("-"))
            start = date(year, number, 1)
        except ValueError as exc:
            raise typer.BadParameter(f"{month!r} is not YYYY-MM", param_hint="--month") from exc
        grain = "month"
    elif grain is not None and period_start is not None:
        try:
            start = date.fromisoformat(period_start)
        except ValueError as exc:
            raise typer.BadParameter(
                f"{period_start!r} is not YYYY-MM-DD", param_hint="--period-start"
            ) from exc
    else:
        raise typer.BadParameter(
            "give --month YYYY-MM, or --grain and --period-start", param_hint="--month"
        )
    split_weights = _weights(weights)
    from kpi import KpiRequestError, allocate
    from service.cli.common import open_store
    from service.settings import get_settings, kpi_context

    settings = get_settings()
    engine = open_store(settings)
    try:
        result = allocate(
            engine,
            kpi_context(settings),
            kpi=kpi,
            grain=grain,
            period_start=start,
            scope=scope,  # type: ignore[arg-type]
            scope_id=id_,
            level=level,  # type: ignore[arg-type]
            value=value,
            method=method,  # type: ignore[arg-type]
            weights=split_weights,
            dry_run=not apply,
            confirm=confirm,
            reason=reason,
            who="cli",
        )
    except KpiRequestError as exc:
        err_console.print(f"[red]{exc.param}: {exc.message}[/red]")
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    print_allocation(result)


def register(app: typer.Typer) -> None:
    """Add the ``targets`` command group to the CLI."""
    app.add_typer(targets_app, name="targets")
