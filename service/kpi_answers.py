"""The answer to GET /v1/kpis: computed once per version of what it reads, cached, JSON, CSV or XLSX.

A cached answer is served from the event loop; computing one runs in a worker thread.
CSV is UTF-8 with a byte-order mark (Excel then reads Japanese names as they are), and a
text cell that a spreadsheet would run as a formula gets a leading ``'``; the workbook
stores such text as text. JSON and CSV are sent gzipped when the client accepts it.
"""

from __future__ import annotations

import calendar
import csv
import gc
import io
import re
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import orjson
from fastapi import Response
from fastapi.concurrency import run_in_threadpool
from openpyxl import Workbook
from openpyxl.cell import Cell, WriteOnlyCell
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from sqlalchemy import Connection, Engine

from kpi import By, Grain, KpiContext, KpiRow, Scope, catalog, compute, reads_for
from kpi.engine import select_specs
from service.cache import DataVersionClock, ResponseCache, answer_key, versioned_build
from service.limits import BIG_ANSWER_ROWS, BuildGate, estimated_rows
from service.routers.common import freshness

# CSV and XLSX columns: the JSON row's keys, with the band and targets flattened the way
# pandas.json_normalize names them.
CSV_COLUMNS = (
    "kpi",
    "tier",
    "grain",
    "period_start",
    "scope",
    "scope_id",
    "scope_name",
    "by",
    "by_value",
    "value",
    "numerator",
    "denominator",
    "target",
    "achievement",
    "band.low",
    "band.high",
    "status",
    "targets.minimum",
    "targets.achievement",
    "targets.stretch",
    "pace_target",
    "pace_achievement",
)


Format = Literal["json", "csv", "xlsx"]
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": XLSX_MEDIA_TYPE,
}
# What a spreadsheet reads as the start of a formula (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class KpiQuery:
    """The parameters of GET /v1/kpis as the route parsed them."""

    kpi: str | None
    grain: Grain
    from_: date | None
    to: date | None
    scope: Scope
    id: str | None
    by: By | None
    tier: str | None
    format: Format
    as_of: date | None = None


def _trailing_month_start(end: date) -> date:
    """The first day of the month that ends on ``end`` (28 Nov → 29 Oct)."""
    month_before = (end.replace(day=1) - timedelta(days=1)).replace(day=1)
    last = calendar.monthrange(month_before.year, month_before.month)[1]
    return month_before.replace(day=min(end.day, last)) + timedelta(days=1)


def _keys(kpi: str | None) -> list[str] | None:
    keys = [k.strip() for k in (kpi or "").split(",") if k.strip()]
    return keys or None


def _flat(row: KpiRow) -> tuple[Any, ...]:
    """The row's cells in CSV_COLUMNS order."""
    return (
        *row[:14],
        row.band.low,
        row.band.high,
        row.status,
        *row.targets,
        row.pace_target,
        row.pace_achievement,
    )


def csv_safe(value: object) -> object:
    """A text cell a spreadsheet would run as a formula, with a leading ``'``; numbers as they are.

    ``=HYPERLINK(...)`` becomes ``'=HYPERLINK(...)``; ``-5`` (text or number) stays ``-5``.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not NUMBER.fullmatch(value):
        return "'" + value
    return value


def _csv(rows: Sequence[KpiRow]) -> bytes:
    out = io.StringIO()
    out.write("\ufeff")  # the byte-order mark: Excel reads the file as UTF-8
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(tuple(csv_safe(cell) for cell in _flat(row)) for row in rows)
    return out.getvalue().encode("utf-8")


def _text_cell(sheet: WriteOnlyWorksheet, value: str) -> Cell:
    cell = WriteOnlyCell(sheet, value)
    cell.data_type = "s"  # openpyxl takes "=…" for a formula: this one is text
    return cell


def _xlsx(rows: Sequence[KpiRow]) -> bytes:
    """The rows as one sheet: a header row, numbers as numbers, period_start as a date.

    Text is stored as text whatever it starts with (openpyxl would take ``=…`` for a
    formula), so a rep named ``=HYPERLINK(...)`` shows as that name and runs nothing.
    """
    book = Workbook(write_only=True)
    sheet = book.create_sheet("kpis")
    assert isinstance(sheet, WriteOnlyWorksheet)
    sheet.append(CSV_COLUMNS)
    for row in rows:
        cells = _flat(row)
        if any(isinstance(value, str) and value.startswith("=") for value in cells):
            cells = tuple(_text_cell(sheet, v) if isinstance(v, str) else v for v in cells)
        sheet.append(cells)  # a date gets the yyyy-mm-dd format
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _json_rows(rows: Sequence[KpiRow]) -> list[dict[str, Any]]:
    """The rows as dicts for orjson, with the cyclic GC paused (they hold no cycles, and a
    collection pass over 200,000 fresh dicts would cost more than building them)."""
    fields = KpiRow._fields
    collecting = gc.isenabled()
    gc.disable()
    try:
        out = []
        for row in rows:
            item: dict[str, Any] = dict(zip(fields, row, strict=True))
            item["band"] = {"low": row.band.low, "high": row.band.high}
            item["targets"] = row.targets._asdict()
            out.append(item)
        return out
    finally:
        if collecting:
            gc.enable()


async def answer_kpis(
    engine: Engine,
    ctx: KpiContext,
    cache: ResponseCache,
    clock: DataVersionClock,
    query: KpiQuery,
    *,
    gzip_ok: bool,
    builds: BuildGate | None = None,
) -> Response:
    """The rows for ``query``, from the cache when the store has not moved since."""
    end = query.to or query.as_of or ctx.today()
    start = query.from_ or _trailing_month_start(end)
    keys = _keys(query.kpi)
    request_key = (
        tuple(keys or ()),
        query.grain,
        start,
        end,
        query.scope,
        query.id,
        query.by,
        query.tier,
        query.format,
        query.as_of,
        ctx.today(),  # the running period's pace moves with the day
    )

    def render(conn: Connection) -> bytes:
        rows = compute(
            conn,
            ctx,
            kpis=keys,
            grain=query.grain,
            start=start,
            end=end,
            scope=query.scope,
            scope_id=query.id,
            by=query.by,
            tier=query.tier,
            as_of=query.as_of,
        )
        if query.format == "csv":
            return _csv(rows)
        if query.format == "xlsx":
            return _xlsx(rows)
        meta = {
            **freshness(engine, ctx).model_dump(mode="json"),
            "grain": query.grain,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "scope": query.scope,
            "id": query.id,
            "by": query.by,
            "as_of": None if query.as_of is None else query.as_of.isoformat(),
            "kpis": sorted({row.kpi for row in rows}),
            "rows": len(rows),
        }
        return orjson.dumps({"data": _json_rows(rows), "meta": meta})

    # An answer follows the changes of the days its periods cover, not every page.
    reads = reads_for(
        select_specs(keys, query.tier), query.grain, start, end, ctx.fiscal_year_start_month
    )
    key = await answer_key(clock, request_key, reads)
    entry = cache.lookup(key)
    if entry is None:
        size = estimated_rows(
            len(keys) if keys else len(catalog()),
            query.grain,
            (end - start).days,
            query.scope,
            query.id is not None,
            query.by,
        )
        big = builds is not None and size > BIG_ANSWER_ROWS
        async with builds.turn(big) if builds is not None else nullcontext():
            build = versioned_build(engine, clock, request_key, reads, render)
            entry = await run_in_threadpool(cache.get_or_build, key, build, flight=request_key)
    headers = {"Vary": "Accept-Encoding"}
    media_type = MEDIA_TYPES[query.format]
    if query.format == "csv":
        headers["Content-Disposition"] = 'inline; filename="kpis.csv"'
    elif query.format == "xlsx":
        headers["Content-Disposition"] = 'attachment; filename="kpis.xlsx"'
    # A workbook is a zip already: it goes as it is.
    if entry.gzipped is not None and gzip_ok and query.format != "xlsx":
        headers["Content-Encoding"] = "gzip"
        return Response(entry.gzipped, media_type=media_type, headers=headers)
    return Response(entry.body, media_type=media_type, headers=headers)
