"""The review sheets and improvement actions (docs/sheets.md): read them, write notes and actions.

Reading needs a read token; writing notes and actions a write (member) or admin token.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from kpi import Scope
from service.auth import ReadAccess, WriteAccess
from service.dates import BoundedDate, BoundedMonth, month_start
from service.deps import EngineDep, KpiContextDep
from service.errors import Unprocessable
from service.kpi_answers import XLSX_MEDIA_TYPE
from service.routers.common import READ_RESPONSES, ErrorOut
from service.sheets.notes import (
    ACTION_STATUSES,
    ActionIn,
    ActionStatus,
    create_action,
    list_actions,
    update_action,
    write_notes,
)
from service.sheets.numbers import daily_sheet, monthly_sheet, weekly_sheet
from service.sheets.periods import PeriodError, SheetKind, in_bounds, parse_week
from service.sheets.workbook import sheet_workbook

router = APIRouter(tags=["sheets"], responses=READ_RESPONSES)

WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "a read token on a write route"}
}
SHEET_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        "description": "the sheet as JSON; with format=xlsx an Excel workbook of it",
    }
}
ScopeQuery = Annotated[Scope, Query(description="org, team or rep")]
IdQuery = Annotated[
    str | None, Query(description="one team or rep: <source>:<crm id>", examples=["hubspot:2001"])
]
SheetFormat = Annotated[Literal["json", "xlsx"], Query(description="json or xlsx")]


def _week(value: str | None, default: date) -> date:
    if value is None:
        return default
    try:
        return in_bounds(parse_week(value), value)
    except PeriodError as exc:
        raise Unprocessable("query", "week", message=str(exc)) from None


def _answer(sheet: dict[str, Any], format: str) -> Any:
    if format == "xlsx":
        name = f"{sheet['kind']}-{sheet['period']}.xlsx"
        return Response(
            sheet_workbook(sheet),
            media_type=XLSX_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return sheet


@router.get("/v1/sheets/daily", responses=SHEET_RESPONSES)
def get_daily_sheet(
    _: ReadAccess,
    engine: EngineDep,
    ctx: KpiContextDep,
    date_: Annotated[
        BoundedDate | None, Query(alias="date", description="YYYY-MM-DD; default today")
    ] = None,
    scope: ScopeQuery = "org",
    id: IdQuery = None,
    format: SheetFormat = "json",
) -> Any:
    """The daily sheet: calls, emails, connects, effective contacts, meetings at 12:00 and day's end."""
    day = date_ or ctx.today()
    return _answer(daily_sheet(engine, ctx, day=day, scope=scope, scope_id=id), format)


@router.get("/v1/sheets/weekly", responses=SHEET_RESPONSES)
def get_weekly_sheet(
    _: ReadAccess,
    engine: EngineDep,
    ctx: KpiContextDep,
    week: Annotated[
        str | None, Query(description="ISO week YYYY-Www; default this week", examples=["2026-W49"])
    ] = None,
    scope: ScopeQuery = "org",
    id: IdQuery = None,
    format: SheetFormat = "json",
) -> Any:
    """The weekly sheet: KPIs against the week's targets, the week's funnel, notes, actions."""
    today = ctx.today()
    monday = _week(week, date.fromordinal(today.toordinal() - today.weekday()))
    return _answer(weekly_sheet(engine, ctx, monday=monday, scope=scope, scope_id=id), format)


@router.get("/v1/sheets/monthly", responses=SHEET_RESPONSES)
def get_monthly_sheet(
    _: ReadAccess,
    engine: EngineDep,
    ctx: KpiContextDep,
    month: Annotated[
        BoundedMonth | None, Query(description="YYYY-MM; default this month", examples=["2026-11"])
    ] = None,
    scope: ScopeQuery = "org",
    id: IdQuery = None,
    format: SheetFormat = "json",
) -> Any:
    """The monthly sheet: every KPI, the landing forecast and its basis, per-rep rows, notes."""
    first = month_start(month) if month is not None else ctx.today().replace(day=1)
    return _answer(monthly_sheet(engine, ctx, month=first, scope=scope, scope_id=id), format)


class NotesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: str = Field(
        description="daily: YYYY-MM-DD; weekly: YYYY-Www; monthly: YYYY-MM",
        examples=["2026-W49"],
    )
    scope: Scope = "org"
    id: str | None = Field(default=None, description="the team or rep: <source>:<crm id>")
    notes: dict[str, str | dict[str, str]] = Field(
        description="field → text (at most 10,000 characters); monthly rep_notes: {rep id: text}",
        examples=[{"hypotheses": "the connect rate drops after 17:00"}],
    )


class ActionOut(BaseModel):
    id: int
    title: str
    owner: str = Field(description="the rep who owns it")
    due: date
    kpi: str | None
    week: str | None = Field(description="YYYY-Www")
    scope: Scope
    scope_id: str
    status: ActionStatus
    result: str | None
    overdue: bool = Field(description="open and due before today")
    created_at: datetime
    created_by: str = Field(description="the caller's audit name")
    updated_at: datetime
    updated_by: str


class ActionsOut(BaseModel):
    data: list[ActionOut]


class NoteUpdate(BaseModel):
    at: datetime
    by: str = Field(description="the caller's audit name")


class NotesOut(BaseModel):
    kind: SheetKind
    period: str
    period_start: date
    scope: Scope
    scope_id: str
    notes: dict[str, str | dict[str, str] | None] = Field(
        description="every field of the sheet, null when never written; rep_notes {rep id: text}"
    )
    updated: dict[str, NoteUpdate] = Field(
        description="per field (rep_notes.<rep id> for a rep's note), who wrote it last and when"
    )


@router.put(
    "/v1/sheets/{kind}/notes",
    responses=WRITE_RESPONSES,
)
def put_sheet_notes(
    caller: WriteAccess,
    engine: EngineDep,
    kind: Annotated[SheetKind, Path(description="daily, weekly or monthly")],
    body: NotesIn,
) -> NotesOut:
    """Write some of a sheet's notes: the last writer wins per field; every write is audited."""
    written = write_notes(
        engine,
        kind,
        period=body.period,
        scope=body.scope,
        scope_id=body.id,
        notes=dict(body.notes),
        who=caller.name,
    )
    return NotesOut.model_validate(written)


class ActionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(examples=["move calling to 10:00–12:00"])
    owner: str = Field(description="the rep who owns it: <source>:<crm id>")
    due: BoundedDate = Field(description="not before today")
    kpi: str | None = Field(default=None, description="the KPI it should move")
    week: str | None = Field(default=None, description="the ISO week it belongs to (YYYY-Www)")
    scope: Scope = "org"
    id: str | None = Field(default=None, description="the team or rep whose sheet lists it")


class ActionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: ActionStatus
    result: str | None = Field(default=None, description="what came of it")


@router.post("/v1/actions", status_code=201, responses=WRITE_RESPONSES)
def post_action(
    caller: WriteAccess, engine: EngineDep, ctx: KpiContextDep, body: ActionCreate
) -> ActionOut:
    """A new improvement action, open."""
    action = ActionIn(body.title, body.owner, body.due, body.kpi, body.week, body.scope, body.id)
    return ActionOut.model_validate(create_action(engine, ctx, action, who=caller.name))


@router.patch(
    "/v1/actions/{action_id}",
    responses={**WRITE_RESPONSES, 404: {"model": ErrorOut, "description": "no such action"}},
)
def patch_action(
    caller: WriteAccess,
    engine: EngineDep,
    ctx: KpiContextDep,
    action_id: Annotated[int, Path(ge=1, le=2**31 - 1, description="the action's id")],
    body: ActionPatch,
) -> ActionOut:
    """Set an action's status (open, done, dropped) and its result."""
    return ActionOut.model_validate(
        update_action(
            engine, ctx, action_id, status=body.status, result=body.result, who=caller.name
        )
    )


@router.get("/v1/actions")
def get_actions(
    _: ReadAccess,
    engine: EngineDep,
    ctx: KpiContextDep,
    status: Annotated[
        ActionStatus | None, Query(description=f"one of {', '.join(ACTION_STATUSES)}")
    ] = None,
    owner: Annotated[str | None, Query(description="a rep id")] = None,
    overdue: Annotated[bool, Query(description="only open actions due before today")] = False,
) -> ActionsOut:
    """Improvement actions by due date."""
    return ActionsOut.model_validate(
        {"data": list_actions(engine, ctx, status=status, owner=owner, overdue=overdue)}
    )
