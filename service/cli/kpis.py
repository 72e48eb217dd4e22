"""`iskpi kpis`: KPI rows on the terminal, one table per scope id.

service/cli/__init__.py adds the command with ``kpis.register(app)``. The KPI engine is
imported when the command runs, so `iskpi --help` stays fast.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from kpi import KpiRow, RowBand

# The engine's GRAINS, SCOPES and BYS, spelled out so the help needs no KPI import
# (tests/test_cli_help.py checks they agree).
GRAINS_HELP = "day | week | month | quarter | fiscal_year"
SCOPES_HELP = "org | team | rep"
BYS_HELP = "rep | team | channel | industry | company_size | weekday | hour | deal_type"

STATUS_STYLE = {"below": "red", "within": "green", "above": "cyan"}


def _month_range(month: str) -> tuple[date, date]:
    try:
        year, number = (int(part) for part in month.split("-"))
        first = date(year, number, 1)
    except ValueError as exc:
        raise typer.BadParameter(f"{month!r} is not YYYY-MM", param_hint="--month") from exc
    return first, first.replace(day=calendar.monthrange(year, number)[1])


def _date(value: str, hint: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not YYYY-MM-DD", param_hint=hint) from exc


def format_value(value: float | None, unit: str) -> str:
    """A KPI figure the way a sales manager reads it: 31.2%, 1,234, 185 s."""
    if value is None:
        return "—"
    if unit == "ratio":
        return f"{100 * value:.1f}%"
    if unit == "count":
        return f"{value:,.0f}"
    if unit == "amount":
        return f"{value:,.0f}"
    suffix = {"seconds": " s", "minutes": " min", "days": " d"}.get(unit, "")
    return f"{value:,.2f}{suffix}"


def format_band(band: RowBand, unit: str) -> str:
    if band.low is None and band.high is None:
        return ""
    if band.low is None:
        return f"≤ {format_value(band.high, unit)}"
    if band.high is None:
        return f"≥ {format_value(band.low, unit)}"
    return f"{format_value(band.low, unit)} – {format_value(band.high, unit)}"


def render(console: Console, rows: Sequence[KpiRow]) -> None:
    """One table per scope id: KPIs in catalog order, then periods and breakdown values."""
    from rich.table import Table

    from kpi import KPIS

    order = {key: i for i, key in enumerate(KPIS)}
    by_scope: dict[str, list[KpiRow]] = {}
    for row in rows:
        by_scope.setdefault(row.scope_id, []).append(row)
    for scope_rows in by_scope.values():
        first = scope_rows[0]
        breakdown = first.by is not None
        table = Table(title=f"{first.scope_name} ({first.scope_id})", title_justify="left")
        table.add_column("KPI")
        table.add_column("period")
        if breakdown:
            table.add_column(first.by or "")
        for name in ("value", "target", "achievement"):
            table.add_column(name, justify="right")
        table.add_column("band", justify="right")
        table.add_column("status")
        scope_rows.sort(
            key=lambda r: (order[r.kpi], r.period_start, r.by_value is None, str(r.by_value))
        )
        for row in scope_rows:
            spec = KPIS[row.kpi]
            cells: list[Any] = [
                f"{spec.name_ja} [dim]{row.kpi}[/dim]",
                row.period_start.isoformat(),
            ]
            if breakdown:
                cells.append("—" if row.by_value is None else str(row.by_value))
            status = row.status or ""
            cells += [
                format_value(row.value, spec.unit),
                format_value(row.target, spec.unit) if row.target is not None else "",
                f"{100 * row.achievement:.0f}%" if row.achievement is not None else "",
                format_band(row.band, spec.unit),
                f"[{STATUS_STYLE[status]}]{status}[/]" if status else "",
            ]
            table.add_row(*cells)
        console.print(table)


def register(app: typer.Typer) -> None:
    """Add the `kpis` command to the `iskpi` application."""

    @app.command("kpis")
    def kpis_command(
        month: Annotated[str | None, typer.Option(help="a month, YYYY-MM")] = None,
        from_: Annotated[
            str | None, typer.Option("--from", help="first day, YYYY-MM-DD (with --to)")
        ] = None,
        to: Annotated[str | None, typer.Option("--to", help="last day, YYYY-MM-DD")] = None,
        grain: Annotated[str, typer.Option(help=GRAINS_HELP)] = "month",
        scope: Annotated[str, typer.Option(help=SCOPES_HELP)] = "org",
        id_: Annotated[
            str | None, typer.Option("--id", help="one rep or team: <source>:<crm id>")
        ] = None,
        by: Annotated[str | None, typer.Option(help="breakdown: " + BYS_HELP)] = None,
        kpi: Annotated[
            list[str] | None, typer.Option(help="KPI keys (repeat or comma-separate); default all")
        ] = None,
        tier: Annotated[str | None, typer.Option(help="only one tier's KPIs")] = None,
    ) -> None:
        """KPIs for a month or a date range, per org, team or rep, as tables."""
        if month is not None:
            if from_ is not None or to is not None:
                raise typer.BadParameter("give --month or --from/--to, not both")
            start, end = _month_range(month)
        elif from_ is not None and to is not None:
            start, end = _date(from_, "--from"), _date(to, "--to")
        else:
            raise typer.BadParameter("give --month YYYY-MM or both --from and --to")
        from kpi import KpiRequestError, compute
        from service.db import make_engine, migrate
        from service.settings import get_settings, kpi_context

        keys = [k.strip() for item in kpi or [] for k in item.split(",") if k.strip()]
        settings = get_settings()
        engine = make_engine(settings.database_url)
        console = Console()
        try:
            migrate(engine)
            rows = compute(
                engine,
                kpi_context(settings),
                kpis=keys or None,
                grain=grain,  # type: ignore[arg-type]
                start=start,
                end=end,
                scope=scope,  # type: ignore[arg-type]
                scope_id=id_,
                by=by,  # type: ignore[arg-type]
                tier=tier,
            )
        except KpiRequestError as exc:
            Console(stderr=True).print(f"[red]{exc.param}: {exc.message}[/red]")
            raise typer.Exit(2) from exc
        finally:
            engine.dispose()
        if not rows:
            console.print("no rows: no known rep or team in that scope")
            return
        render(console, rows)
