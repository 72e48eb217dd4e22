"""The sheets as Excel workbooks laid out like the seed's templates (openpyxl).

One worksheet: a title row (the sheet, its period and scope), the KPI table, then the notes
(and, on the weekly sheet, the funnel and the actions). The numbers are the JSON's, unrounded;
text is stored as text whatever it starts with, so a note ``=HYPERLINK(...)`` runs nothing.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

TITLES = {
    "daily": "日報 Daily sheet",
    "weekly": "週報 Weekly sheet",
    "monthly": "月報 Monthly sheet",
}
DAILY_COLUMNS = (
    "kpi",
    "target",
    "midday actual",
    "midday target",
    "midday progress",
    "end-of-day actual",
    "end-of-day progress",
)
RATE_COLUMNS = ("kpi", "value", "numerator", "denominator", "target", "achievement")
WEEKLY_COLUMNS = (
    "kpi",
    "target",
    "actual",
    "achievement",
    "previous week",
    "pace target",
    "pace achievement",
)
FUNNEL_COLUMNS = ("stage", "target", "actual", "achievement", "pace target", "pace achievement")
ACTION_COLUMNS = ("id", "title", "owner", "due", "kpi", "status", "overdue", "result")
MONTHLY_COLUMNS = (
    "kpi",
    "target",
    "actual",
    "achievement",
    "pace target",
    "pace achievement",
    "status",
)
FORECAST_COLUMNS = ("kpi", "actual", "forecast", "pipeline", "target", "achievement")
BOLD = Font(bold=True)


class _Writer:
    def __init__(self, sheet: Worksheet) -> None:
        self.sheet = sheet
        self.row = 1

    def line(self, values: Sequence[Any], *, bold: bool = False) -> None:
        for column, value in enumerate(values, start=1):
            cell = self.sheet.cell(row=self.row, column=column, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # openpyxl takes "=…" for a formula: this is text
            if bold:
                cell.font = BOLD
        self.row += 1

    def gap(self) -> None:
        self.row += 1

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.line([title], bold=True)
        self.line(columns, bold=True)
        for values in rows:
            self.line(values)
        self.gap()

    def notes(self, notes: dict[str, Any]) -> None:
        self.line(["notes"], bold=True)
        for field, text in notes.items():
            if isinstance(text, dict):
                for rep_id, rep_text in text.items():
                    self.line([f"{field}: {rep_id}", rep_text])
            else:
                self.line([field, text])
        self.gap()


def sheet_workbook(sheet: dict[str, Any]) -> bytes:
    """The workbook of a sheet as ``service.sheets.numbers`` answers it."""
    book = Workbook()
    ws = book.active
    assert isinstance(ws, Worksheet)
    ws.title = sheet["kind"]
    out = _Writer(ws)
    out.line(
        [f"{TITLES[sheet['kind']]} {sheet['period']} {sheet['scope']} {sheet['scope_name']}"],
        bold=True,
    )
    out.line(["period", sheet["period_start"], sheet["period_end"]])
    out.line(["scope", sheet["scope"], sheet["scope_id"], sheet["scope_name"]])
    out.gap()
    if sheet["kind"] == "daily":
        out.table(
            "counts",
            DAILY_COLUMNS,
            [
                (
                    c["kpi"],
                    c["target"],
                    c["midday"]["actual"],
                    c["midday"]["target"],
                    c["midday"]["progress"],
                    c["end_of_day"]["actual"],
                    c["end_of_day"]["progress"],
                )
                for c in sheet["counts"]
            ],
        )
        out.table(
            "rates", RATE_COLUMNS, [tuple(r[k] for k in RATE_COLUMNS) for r in sheet["rates"]]
        )
    elif sheet["kind"] == "weekly":
        keys = (
            "kpi",
            "target",
            "actual",
            "achievement",
            "previous_actual",
            "pace_target",
            "pace_achievement",
        )
        out.table("kpis", WEEKLY_COLUMNS, [tuple(r[k] for k in keys) for r in sheet["kpis"]])
        funnel = sheet["funnel"]
        stage_keys = ("stage", "target", "actual", "achievement", "pace_target", "pace_achievement")
        out.table(
            "funnel", FUNNEL_COLUMNS, [tuple(s[k] for k in stage_keys) for s in funnel["stages"]]
        )
        out.line(["bottleneck", funnel["bottleneck"], funnel["bottleneck_achievement"]])
        out.line(["cause", funnel["cause"]])
        out.gap()
    else:
        keys = (
            "kpi",
            "target",
            "actual",
            "achievement",
            "pace_target",
            "pace_achievement",
            "status",
        )
        out.table("kpis", MONTHLY_COLUMNS, [tuple(r[k] for k in keys) for r in sheet["kpis"]])
        forecast = sheet["forecast"]
        out.table(
            "landing forecast",
            FORECAST_COLUMNS,
            [tuple(r[k] for k in FORECAST_COLUMNS) for r in forecast["rows"]],
        )
        basis = forecast["basis"]
        out.line(["as of", basis["as_of"]])
        out.line(["business days", basis["business_days"], basis["business_days_elapsed"]])
        out.gap()
        rep_kpis = sorted({k for rep in sheet["reps"] for k in rep["kpis"]})
        out.table(
            "reps",
            ["rep", "name", *rep_kpis],
            [
                (rep["rep_id"], rep["name"], *(rep["kpis"][k]["actual"] for k in rep_kpis))
                for rep in sheet["reps"]
            ],
        )
    out.notes(sheet["notes"])
    if sheet["kind"] == "weekly":
        out.table(
            "actions",
            ACTION_COLUMNS,
            [tuple(a[k] for k in ACTION_COLUMNS) for a in sheet["actions"]],
        )
    ws.column_dimensions["A"].width = 28
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
