"""The sheets' notes and the improvement actions: validated whole, then written in one transaction.

Notes: the last writer wins per field; every write is appended to the audit log with the
caller's audit name and the time. Actions: open → done or dropped (and back), with a result.
A refusal is an ``Unprocessable`` naming the body field, raised before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, get_args

from sqlalchemy import Connection, Engine, and_, or_, select

from kpi import KPIS, KpiContext, KpiRequestError
from kpi.engine import _connection, parse_scope_id, scope_members
from models.sheets import ImprovementAction, SheetNote, SheetNoteWrite
from models.store import table_of, upsert
from service.errors import NotFound, Unprocessable
from service.sheets.periods import PeriodError, SheetKind, parse_period, parse_week, week_name

MAX_NOTE = 10_000
MAX_TITLE = 500
NOTE_FIELDS: dict[str, tuple[str, ...]] = {
    # the seed's 気づき (went well / issues) and 翌日の行動計画
    "daily": ("went_well", "issues", "tomorrow"),
    # bottleneck hypotheses, what worked (lists, scripts), next week's focus
    "weekly": ("hypotheses", "successes", "next_focus"),
    # What / Why / So What / Now What, MKT and FS collaboration, next month, a note per rep
    "monthly": (
        "what",
        "why",
        "so_what",
        "now_what",
        "collaboration",
        "next_month",
        "rep_notes",
    ),
}
REP_NOTES = "rep_notes"

ActionStatus = Literal["open", "done", "dropped"]
ACTION_STATUSES: tuple[str, ...] = get_args(ActionStatus)


def check_scope(
    conn: Connection, scope: str, scope_id: str | None, where: str = "query"
) -> tuple[str, str]:
    """(scope id, name) of the one org, team or rep a sheet is for; a 422 naming scope or id."""
    if scope_id is not None and "\x00" in scope_id:
        raise Unprocessable(where, "id", message="an id holds no NUL character")
    try:
        key = parse_scope_id(scope, scope_id)
    except KpiRequestError as exc:
        raise Unprocessable(where, exc.param, message=exc.message) from None
    if scope != "org" and key is None:
        raise Unprocessable(where, "id", message=f"a {scope} sheet needs an id")
    members = scope_members(conn, scope, key)
    if not members:
        raise Unprocessable(where, "id", message=f"no {scope} with id {scope_id!r}")
    return members[0]


def _rep_exists(conn: Connection, rep_id: str) -> bool:
    if "\x00" in rep_id:
        return False
    try:
        key = parse_scope_id("rep", rep_id)
    except KpiRequestError:
        return False
    return bool(scope_members(conn, "rep", key))


# --- notes ----------------------------------------------------------------------------------


def read_notes(
    conn: Connection, kind: SheetKind, start: date, scope: str, scope_id: str
) -> dict[str, Any]:
    """The sheet's notes: every field (None when never written), rep_notes as {rep id: text}."""
    table = table_of(SheetNote)
    rows = conn.execute(
        select(table.c.field, table.c.subject, table.c.text, table.c.updated_at, table.c.updated_by)
        .where(
            table.c.kind == kind,
            table.c.period_start == start,
            table.c.scope == scope,
            table.c.scope_id == scope_id,
        )
        .order_by(table.c.field, table.c.subject)
    ).all()
    notes: dict[str, Any] = dict.fromkeys(NOTE_FIELDS[kind])
    if REP_NOTES in notes:
        notes[REP_NOTES] = {}
    for field, subject, text, _, _ in rows:
        if field == REP_NOTES:
            notes[REP_NOTES][subject] = text
        elif field in notes:
            notes[field] = text
    return notes


def note_updates(
    conn: Connection, kind: SheetKind, start: date, scope: str, scope_id: str
) -> dict[str, dict[str, Any]]:
    """Who wrote each field last and when (``rep_notes.<rep id>`` for the per-rep notes)."""
    table = table_of(SheetNote)
    rows = conn.execute(
        select(table.c.field, table.c.subject, table.c.updated_at, table.c.updated_by).where(
            table.c.kind == kind,
            table.c.period_start == start,
            table.c.scope == scope,
            table.c.scope_id == scope_id,
        )
    ).all()
    return {
        (f"{field}.{subject}" if subject else field): {"at": at.isoformat(), "by": by}
        for field, subject, at, by in rows
    }


def _check_text(value: object, *loc: str) -> str:
    if not isinstance(value, str):
        raise Unprocessable("body", *loc, message="a text")
    if "\x00" in value:  # PostgreSQL text holds no NUL
        raise Unprocessable("body", *loc, message="a text without NUL characters")
    if len(value) > MAX_NOTE:
        raise Unprocessable(
            "body", *loc, message=f"at most {MAX_NOTE:,} characters, not {len(value):,}"
        )
    return value


def write_notes(
    engine: Engine,
    kind: SheetKind,
    *,
    period: str,
    scope: str,
    scope_id: str | None,
    notes: dict[str, Any],
    who: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Validate every field, then write them all in one transaction; the sheet's notes after."""
    try:
        start = parse_period(kind, period)
    except PeriodError as exc:
        raise Unprocessable("body", "period", message=str(exc)) from None
    allowed = NOTE_FIELDS[kind]
    writes: list[tuple[str, str, str]] = []  # (field, subject, text)
    with engine.begin() as conn:
        member_id, _ = check_scope(conn, scope, scope_id, where="body")
        for field, value in notes.items():
            if field not in allowed:
                raise Unprocessable(
                    "body",
                    "notes",
                    field,
                    message=f"unknown {kind} note {field!r}; one of {', '.join(allowed)}",
                )
            if field == REP_NOTES:
                if not isinstance(value, dict):
                    raise Unprocessable("body", "notes", field, message="{rep id: text}")
                for rep_id, text in value.items():
                    if not _rep_exists(conn, rep_id):
                        raise Unprocessable(
                            "body", "notes", field, rep_id, message=f"no rep with id {rep_id!r}"
                        )
                    writes.append((field, rep_id, _check_text(text, "notes", field, rep_id)))
            else:
                writes.append((field, "", _check_text(value, "notes", field)))
        at = now or datetime.now(UTC)
        table, log = table_of(SheetNote), table_of(SheetNoteWrite)
        key = {"kind": kind, "period_start": start, "scope": scope, "scope_id": member_id}
        for field, subject, text in writes:
            where = and_(
                *(table.c[k] == v for k, v in key.items()),
                table.c.field == field,
                table.c.subject == subject,
            )
            old = conn.execute(select(table.c.text).where(where)).first()
            # An upsert: two first writes of one field at once never collide; the last wins.
            stmt = upsert(conn, table).values(
                **key, field=field, subject=subject, text=text, updated_at=at, updated_by=who
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[*key, "field", "subject"],
                    set_={
                        "text": stmt.excluded.text,
                        "updated_at": stmt.excluded.updated_at,
                        "updated_by": stmt.excluded.updated_by,
                    },
                )
            )
            conn.execute(
                log.insert().values(
                    **key,
                    field=field,
                    subject=subject,
                    old_text=None if old is None else old.text,
                    new_text=text,
                    written_by=who,
                    written_at=at,
                )
            )
        return {
            "kind": kind,
            "period": period,
            "period_start": start.isoformat(),
            "scope": scope,
            "scope_id": member_id,
            "notes": read_notes(conn, kind, start, scope, member_id),
            "updated": note_updates(conn, kind, start, scope, member_id),
        }


def note_log(
    bind: Engine | Connection, kind: SheetKind, start: date, scope: str, scope_id: str
) -> list[dict[str, Any]]:
    """The audit log of a sheet's notes, oldest first."""
    log = table_of(SheetNoteWrite)
    with _connection(bind) as conn:
        rows = conn.execute(
            select(log)
            .where(
                log.c.kind == kind,
                log.c.period_start == start,
                log.c.scope == scope,
                log.c.scope_id == scope_id,
            )
            .order_by(log.c.id)
        ).mappings()
        return [dict(r) for r in rows]


# --- actions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionIn:
    """POST /v1/actions as parsed."""

    title: str
    owner: str
    due: date
    kpi: str | None = None
    week: str | None = None
    scope: str = "org"
    scope_id: str | None = None


def _action_dict(row: Any, today: date) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "owner": row.owner_id,
        "due": row.due.isoformat(),
        "kpi": row.kpi,
        "week": None if row.week_start is None else week_name(row.week_start),
        "scope": row.scope,
        "scope_id": row.scope_id,
        "status": row.status,
        "result": row.result,
        "overdue": row.status == "open" and row.due < today,
        "created_at": row.created_at.isoformat(),
        "created_by": row.created_by,
        "updated_at": row.updated_at.isoformat(),
        "updated_by": row.updated_by,
    }


def create_action(engine: Engine, ctx: KpiContext, action: ActionIn, *, who: str) -> dict[str, Any]:
    """A new open action; a 422 naming the field (title, owner, due, kpi, week, scope, id)."""
    title = action.title.strip()
    if "\x00" in title:
        raise Unprocessable("body", "title", message="a text without NUL characters")
    if not title:
        raise Unprocessable("body", "title", message="a title is required")
    if len(title) > MAX_TITLE:
        raise Unprocessable("body", "title", message=f"at most {MAX_TITLE} characters")
    today = ctx.today()
    if action.due < today:
        raise Unprocessable(
            "body", "due", message=f"{action.due} is before the action's creation day, {today}"
        )
    if action.kpi is not None and action.kpi not in KPIS:  # (a NUL is no KPI key)
        raise Unprocessable("body", "kpi", message=f"unknown KPI {action.kpi!r}")
    week_start: date | None = None
    if action.week is not None:
        try:
            week_start = parse_week(action.week)
        except PeriodError as exc:
            raise Unprocessable("body", "week", message=str(exc)) from None
    at = ctx.current_time()
    table = table_of(ImprovementAction)
    with engine.begin() as conn:
        if not _rep_exists(conn, action.owner):
            raise Unprocessable("body", "owner", message=f"no rep with id {action.owner!r}")
        member_id, _ = check_scope(conn, action.scope, action.scope_id, where="body")
        new_id = conn.execute(
            table.insert()
            .values(
                title=title,
                owner_id=action.owner,
                due=action.due,
                kpi=action.kpi,
                week_start=week_start,
                scope=action.scope,
                scope_id=member_id,
                status="open",
                result=None,
                created_at=at,
                created_by=who,
                updated_at=at,
                updated_by=who,
            )
            .returning(table.c.id)
        ).scalar_one()
        row = conn.execute(select(table).where(table.c.id == new_id)).one()
        return _action_dict(row, today)


def update_action(
    engine: Engine,
    ctx: KpiContext,
    action_id: int,
    *,
    status: ActionStatus,
    result: str | None,
    who: str,
) -> dict[str, Any]:
    """Set an action's status (and result); 404 for an unknown id."""
    if status not in ACTION_STATUSES:
        raise Unprocessable("body", "status", message=f"one of {', '.join(ACTION_STATUSES)}")
    values: dict[str, Any] = {"status": status, "updated_at": ctx.current_time(), "updated_by": who}
    if result is not None:
        values["result"] = _check_text(result, "result")
    table = table_of(ImprovementAction)
    with engine.begin() as conn:
        done = conn.execute(table.update().where(table.c.id == action_id).values(**values))
        if done.rowcount == 0:
            raise NotFound(f"no action with id {action_id}")
        row = conn.execute(select(table).where(table.c.id == action_id)).one()
        return _action_dict(row, ctx.today())


def list_actions(
    bind: Engine | Connection,
    ctx: KpiContext,
    *,
    status: str | None = None,
    owner: str | None = None,
    overdue: bool = False,
    week_start: date | None = None,
    scope: str | None = None,
    scope_id: str | None = None,
) -> list[dict[str, Any]]:
    """Actions by due date then id. With ``week_start`` (a sheet's week): that week's
    actions and every overdue one, of the sheet's scope id (and, for a rep, those it owns)."""
    if status is not None and status not in ACTION_STATUSES:
        raise Unprocessable("query", "status", message=f"one of {', '.join(ACTION_STATUSES)}")
    if owner is not None and "\x00" in owner:
        raise Unprocessable("query", "owner", message="a rep id holds no NUL character")
    today = ctx.today()
    table = table_of(ImprovementAction)
    late = and_(table.c.status == "open", table.c.due < today)
    where: list[Any] = []
    if status is not None:
        where.append(table.c.status == status)
    if owner is not None:
        where.append(table.c.owner_id == owner)
    if overdue:
        where.append(late)
    if scope is not None and scope_id is not None:
        mine = and_(table.c.scope == scope, table.c.scope_id == scope_id)
        where.append(or_(mine, table.c.owner_id == scope_id) if scope == "rep" else mine)
    if week_start is not None:
        where.append(or_(table.c.week_start == week_start, late))
    with _connection(bind) as conn:
        rows = conn.execute(select(table).where(*where).order_by(table.c.due, table.c.id)).all()
    return [_action_dict(r, today) for r in rows]
