"""Write targets back into CRM fields (docs/writeback.md): plan, dry run, batched push, audit.

A push, per source:

1. **Due targets**: month grain, rep scope, the current month (``KpiContext.today()``, so
   ISKPI_NOW replays), for the KPIs the mapping writes back (default calls, meetings_set,
   won_amount).
2. **Fields**: the connector checks the destination fields (HubSpot creates missing users
   properties, group ``iskpi`` first; not in a dry run) and says how many decimals each keeps.
3. **Plan**: the current CRM values of those fields for the reps' users (a search and a batch
   read per 100 users on HubSpot, SOQL on Salesforce), compared with the targets (rounded as
   the field stores them) and with what was last pushed (``writeback_state``). Each field is:

   - *unchanged*: the CRM holds the target already (not listed; the value is remembered);
   - *write*, reason ``new`` (never pushed), ``changed target`` (pushed before, the target
     moved), ``retry of failed`` (the last attempt failed) or ``forced over a CRM change``;
   - *conflict*: the CRM value differs from the value we last pushed, so someone changed it
     there since. It is reported and not overwritten, unless ``force``;
   - *skip*: no record to write to (an unknown rep, an owner without a user, a user the CRM
     does not have).
4. **Dry run** stops here: the plan is stored and returned, nothing is sent to the CRM.
5. **Apply**: the writes go out in batches (HubSpot 100 records a request, Salesforce 200,
   ``allOrNone: false``). After each batch its rows' results and the last-pushed values are
   committed, so a push stopped by a permission error, a 429 or a 5xx that outlived its
   retries keeps the rows already written recorded as written; the rest are recorded as not
   sent (and failed, so the next push retries them). A push with nothing changed sends no
   write request at all.

Every push, dry runs included, is audited in ``writeback_pushes`` (who, when, the month, the
status, counts, API requests and write requests) with its plan and per-row results in
``writeback_push_rows``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http import HTTPStatus
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from connectors.base import CurrentValue, FieldRef, FieldUpdate, TargetWriter, UpdateResult
from connectors.errors import ConnectorError, DestinationMissing, PermissionDenied
from connectors.hubspot import HubSpotWriter
from connectors.mapping import Mapping, MappingError, SourceMapping, load_mapping
from connectors.salesforce import SalesforceWriter
from kpi import KPIS, KpiContext, Level, list_targets
from kpi.periods import period_start
from models import Rep, WritebackPush, WritebackPushRow, WritebackState
from models.store import table_of
from service.errors import AppError, PushLocked, SourceNotConfigured, SyncLocked
from service.settings import Settings
from service.sync.locks import source_lock
from service.sync.sources import SOURCES, hubspot_client, salesforce_client
from service.writeback.schema import PushOut, PushRowOut

log = logging.getLogger(__name__)

NEW = "new"
CHANGED = "changed target"
RETRY = "retry of failed"
FORCED = "forced over a CRM change"
CONFLICT = "changed in the CRM since the last push"


@dataclass
class PlanRow:
    """One field of the plan: where, the CRM value now, the new value, why, and the result."""

    seq: int
    rep_id: str
    user_id: str | None
    kpi: str
    ref: FieldRef
    record_id: str | None
    crm_value: float | None
    new_value: float
    last_pushed: float | None
    reason: str
    action: str  # write, conflict, skip
    status: str  # planned, written, failed, not_sent, conflict, skipped
    error: str | None = None
    row_id: int | None = None  # its writeback_push_rows id, once stored


@dataclass
class PushReport:
    """One push (or dry run) to one CRM: the plan, the results and what it cost."""

    push_id: int
    source: str
    requested_by: str
    trigger: str
    dry_run: bool
    force: bool
    period_start: date
    started_at: datetime
    status: str = "running"
    rows: list[PlanRow] = field(default_factory=list)
    unchanged: int = 0
    records: int = 0
    expected_write_requests: int = 0
    written: int = 0
    failed: int = 0
    api_calls: int = 0
    write_requests: int = 0
    batch_size: int = 0
    missing_fields: list[str] = field(default_factory=list)  # to be created (dry run)
    created_fields: list[str] = field(default_factory=list)
    finished_at: datetime | None = None
    seconds: float = 0.0
    error: str | None = None
    level: Level = "achievement"  # the target level pushed (drafts and confirmed alike)

    @property
    def planned(self) -> int:
        return sum(r.action == "write" for r in self.rows)

    @property
    def conflicts(self) -> int:
        return sum(r.action == "conflict" for r in self.rows)

    @property
    def skipped(self) -> int:
        return sum(r.action == "skip" for r in self.rows)


# --- a push that stopped ------------------------------------------------------------------------


def _not_set_up(cause: BaseException) -> bool:
    return isinstance(cause, DestinationMissing | PermissionDenied)


class PushFailed(AppError):
    """A push the CRM stopped; ``report`` is what was recorded (rows already written included)."""

    status_code = HTTPStatus.BAD_GATEWAY

    def __init__(self, message: str, report: PushReport, cause: ConnectorError) -> None:
        super().__init__(message)
        self.report = report
        self.cause = cause

    @property
    def status(self) -> int:
        return HTTPStatus.CONFLICT if _not_set_up(self.cause) else self.status_code


class PushStopped(AppError):
    """A push request that stopped: why (``cause``), at which CRM, and what was done before.

    ``push`` and ``completed`` are the audited pushes as the API shows them (JSON objects).
    """

    def __init__(
        self,
        cause: Exception,
        *,
        source: str | None,
        report: PushReport | None = None,
        push: dict[str, Any] | None = None,
        completed: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.source = source
        self.report = report
        self.push = push
        self.completed = completed or []

    @property
    def status(self) -> int:
        # A bad mapping (connectors' MappingError) is the CRM set up wrong: a conflict.
        if isinstance(self.cause, AppError):
            return self.cause.status
        return HTTPStatus.CONFLICT

    @property
    def detail(self) -> Any:
        out: dict[str, Any] = {"message": self.message, "source": self.source}
        if self.push is not None:
            out["push"] = self.push
        if self.completed:
            out["completed"] = self.completed
        return out


# --- a push as the API shows it ----------------------------------------------------------------


def row_out(row: PlanRow) -> PushRowOut:
    """One row of a push's plan and its result."""
    return PushRowOut(
        seq=row.seq,
        rep_id=row.rep_id,
        kpi=row.kpi,
        object=row.ref.crm_object,
        record_id=row.record_id,
        field=row.ref.field,
        crm_value=row.crm_value,
        new_value=row.new_value,
        last_pushed=row.last_pushed,
        reason=row.reason,
        action=row.action,
        status=row.status,
        error=row.error,
    )


def report_out(report: PushReport) -> PushOut:
    """A push as the API returns it, with its rows."""
    return PushOut(
        id=report.push_id,
        source=report.source,
        requested_by=report.requested_by,
        trigger=report.trigger,
        dry_run=report.dry_run,
        force=report.force,
        period_start=report.period_start,
        started_at=report.started_at,
        finished_at=report.finished_at,
        status=report.status,
        planned=report.planned,
        records=report.records,
        conflicts=report.conflicts,
        unchanged=report.unchanged,
        skipped=report.skipped,
        written=report.written,
        failed=report.failed,
        api_calls=report.api_calls,
        write_requests=report.write_requests,
        batch_size=report.batch_size,
        created_fields=report.created_fields,
        error=report.error,
        level=report.level,
        rows=[row_out(r) for r in report.rows],
    )


def report_json(report: PushReport) -> dict[str, Any]:
    """A push with its rows as the JSON the API answers with."""
    return report_out(report).model_dump(mode="json")


# --- destinations and due targets ---------------------------------------------------------------


def destinations(mapping: SourceMapping, source: str) -> dict[str, list[FieldRef]]:
    """KPI → fields of the month's targets; MappingError for an unknown KPI or a shared field."""
    out = mapping.destinations("month")
    owner: dict[FieldRef, str] = {}
    for kpi, refs in out.items():
        if kpi not in KPIS:
            raise MappingError(
                f"{source}.writeback.month.{kpi}: {kpi!r} is not a KPI of the catalog"
            )
        for ref in refs:
            if ref in owner:
                raise MappingError(
                    f"{source}.writeback.month.{kpi}: {ref.crm_object}.{ref.field} already "
                    f"receives {owner[ref]}'s target; a field holds one KPI's target"
                )
            owner[ref] = kpi
    return out


def month_due(ctx: KpiContext) -> date:
    """The month whose targets are due: the current one in the business time zone."""
    return period_start(ctx.today(), "month")


@dataclass(frozen=True)
class _Rep:
    rep_id: str
    user_id: str | None
    deleted: bool


def _reps(conn: Connection, source: str) -> dict[str, _Rep]:
    rows = conn.execute(
        select(Rep.crm_id, Rep.user_id, Rep.deleted).where(Rep.source == source)
    ).all()
    return {
        f"{source}:{crm_id}": _Rep(f"{source}:{crm_id}", user_id, bool(deleted))
        for crm_id, user_id, deleted in rows
    }


def _states(conn: Connection, source: str) -> dict[tuple[str, str, str], Any]:
    table = table_of(WritebackState)
    rows = conn.execute(select(table).where(table.c.source == source)).all()
    return {(r.crm_object, r.record_id, r.field): r for r in rows}


# --- the plan ------------------------------------------------------------------------------------


def _rounded(value: float, decimals: int | None) -> float:
    return value if decimals is None else round(value, decimals)


def same(a: float | None, b: float | None) -> bool:
    """Whether two field values are equal as numbers (a tolerance for float noise)."""
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def plan_rows(
    targets: Sequence[tuple[str, str, float]],
    dests: dict[str, list[FieldRef]],
    reps: dict[str, _Rep],
    current: dict[tuple[str, FieldRef], CurrentValue],
    states: dict[tuple[str, str, str], Any],
    decimals: dict[FieldRef, int | None],
    *,
    force: bool,
) -> tuple[list[PlanRow], list[tuple[PlanRow, CurrentValue]]]:
    """The plan for (rep id, kpi, value) targets; also the unchanged fields (not listed)."""
    rows: list[PlanRow] = []
    unchanged: list[tuple[PlanRow, CurrentValue]] = []
    for rep_id, kpi, raw_value in sorted(targets):
        rep = reps.get(rep_id)
        for ref in dests[kpi]:
            value = _rounded(raw_value, decimals.get(ref))
            row = PlanRow(
                len(rows),
                rep_id,
                rep.user_id if rep else None,
                kpi,
                ref,
                None,
                None,
                value,
                None,
                "",
                "skip",
                "skipped",
            )
            if rep is None or rep.deleted or not rep.user_id:
                row.reason = (
                    "the rep is not in the store (sync first)"
                    if rep is None
                    else "the rep is deleted or inactive in the CRM"
                    if rep.deleted
                    else "the rep has no CRM user"
                )
                rows.append(row)
                continue
            now = current.get((rep.user_id, ref))
            if now is None or now.missing_reason is not None:
                row.reason = now.missing_reason if now and now.missing_reason else "no record"
                rows.append(row)
                continue
            row.record_id, row.crm_value = now.record_id, now.value
            state = (
                states.get((ref.crm_object, now.record_id, ref.field)) if now.record_id else None
            )
            base = state.pushed_value if state is not None else None
            row.last_pushed = base
            changed_in_crm = state is not None and base is not None and not same(now.value, base)
            if same(now.value, value):
                unchanged.append((row, now))
                continue
            if changed_in_crm and not force:
                row.reason, row.action, row.status = CONFLICT, "conflict", "conflict"
            else:
                row.action, row.status = "write", "planned"
                row.reason = (
                    FORCED
                    if changed_in_crm
                    else RETRY
                    if state is not None and state.last_status == "failed"
                    else NEW
                    if state is None or base is None and state.last_status != "failed"
                    else CHANGED
                )
            rows.append(row)
    for seq, row in enumerate(rows):
        row.seq = seq
    return rows, unchanged


def _record_groups(rows: Sequence[PlanRow]) -> dict[tuple[str, bool], set[str]]:
    """Records written per (object, created): Salesforce never mixes objects in a request."""
    groups: dict[tuple[str, bool], set[str]] = {}
    for row in rows:
        if row.action == "write":
            key = row.record_id if row.record_id is not None else f"new:{row.user_id}"
            groups.setdefault((row.ref.crm_object, row.record_id is None), set()).add(key)
    return groups


# --- the store: audit rows and last-pushed values ------------------------------------------------


def _upsert_states(conn: Connection, values: list[dict[str, Any]]) -> None:
    if not values:
        return
    table = table_of(WritebackState)
    stmt = postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
    key = ("source", "crm_object", "record_id", "field")
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={name: stmt.excluded[name] for name in values[0] if name not in key},
    )
    conn.execute(stmt, values)


def _state(
    source: str,
    row: PlanRow,
    period: date,
    at: datetime,
    push_id: int,
    *,
    ok: bool,
    pushed: float | None,
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "source": source,
        "crm_object": row.ref.crm_object,
        "record_id": row.record_id,
        "field": row.ref.field,
        "rep_id": row.rep_id,
        "kpi": row.kpi,
        "period_start": period,
        "pushed_value": pushed,
        "pushed_at": at if ok else None,
        "last_status": "ok" if ok else "failed",
        "attempted_value": row.new_value,
        "last_error": error,
        "last_push_id": push_id,
        "updated_at": at,
    }


def _push_values(report: PushReport) -> dict[str, Any]:
    return {
        "status": report.status,
        "finished_at": report.finished_at,
        "planned": report.planned,
        "records": report.records,
        "conflicts": report.conflicts,
        "unchanged": report.unchanged,
        "skipped": report.skipped,
        "written": report.written,
        "failed": report.failed,
        "api_calls": report.api_calls,
        "write_requests": report.write_requests,
        "batch_size": report.batch_size,
        "created_fields": list(report.created_fields),
        "error": report.error,
    }


def _store_rows(conn: Connection, report: PushReport) -> None:
    if not report.rows:
        return
    table = table_of(WritebackPushRow)
    ids = (
        conn.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True),
            [
                {
                    "push_id": report.push_id,
                    "seq": r.seq,
                    "rep_id": r.rep_id,
                    "kpi": r.kpi,
                    "crm_object": r.ref.crm_object,
                    "record_id": r.record_id,
                    "field": r.ref.field,
                    "crm_value": r.crm_value,
                    "new_value": r.new_value,
                    "last_pushed": r.last_pushed,
                    "reason": r.reason,
                    "action": r.action,
                    "status": r.status,
                    "error": r.error,
                }
                for r in report.rows
            ],
        )
        .scalars()
        .all()
    )
    for row, row_id in zip(report.rows, ids, strict=True):
        row.row_id = row_id


def _update_rows(conn: Connection, rows: Sequence[PlanRow]) -> None:
    if not rows:
        return
    table = table_of(WritebackPushRow)
    conn.execute(
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values(
            status=bindparam("new_status"),
            error=bindparam("new_error"),
            record_id=bindparam("new_record"),
        ),
        [
            {
                "row_id": r.row_id,
                "new_status": r.status,
                "new_error": r.error,
                "new_record": r.record_id,
            }
            for r in rows
        ],
    )


def _finish(
    engine: Engine,
    report: PushReport,
    writer: TargetWriter,
    calls: int,
    writes: int,
    began: float,
    clock: Callable[[], datetime],
) -> None:
    report.api_calls = writer.api_calls - calls
    report.write_requests = writer.write_requests - writes
    report.finished_at = clock()
    report.seconds = time.monotonic() - began
    with engine.begin() as conn:
        conn.execute(
            update(WritebackPush)
            .where(WritebackPush.id == report.push_id)
            .values(**_push_values(report))
        )


# --- running a push ------------------------------------------------------------------------------


def run_push(
    engine: Engine,
    writer: TargetWriter,
    mapping: SourceMapping,
    ctx: KpiContext,
    *,
    requested_by: str,
    trigger: str = "cli",
    dry_run: bool = False,
    force: bool = False,
    level: Level = "achievement",
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> PushReport:
    """Plan and (unless ``dry_run``) apply one CRM's due targets at ``level``; the audited report.

    Every target of the level is pushed, draft or confirmed.

    Raises PushFailed (with the recorded report) when the CRM stops the push, PushLocked when
    another push to the CRM runs, MappingError for a destination naming an unknown KPI.
    """
    source = writer.source
    dests = destinations(mapping, source)
    period = month_due(ctx)
    if dry_run:
        return _run(
            engine,
            writer,
            dests,
            period,
            requested_by=requested_by,
            trigger=trigger,
            dry_run=True,
            force=force,
            level=level,
            clock=clock,
        )
    try:
        with source_lock(engine, f"push:{source}"):
            return _run(
                engine,
                writer,
                dests,
                period,
                requested_by=requested_by,
                trigger=trigger,
                dry_run=False,
                force=force,
                level=level,
                clock=clock,
            )
    except SyncLocked:
        raise PushLocked(f"a push to {source} is already running") from None


def _run(
    engine: Engine,
    writer: TargetWriter,
    dests: dict[str, list[FieldRef]],
    period: date,
    *,
    requested_by: str,
    trigger: str,
    dry_run: bool,
    force: bool,
    level: Level,
    clock: Callable[[], datetime],
) -> PushReport:
    source = writer.source
    began = time.monotonic()
    calls, writes = writer.api_calls, writer.write_requests
    started = clock()
    with engine.begin() as conn:
        push_id = conn.execute(
            insert(WritebackPush)
            .values(
                source=source,
                requested_by=requested_by,
                trigger=trigger,
                dry_run=dry_run,
                force=force,
                period_start=period,
                started_at=started,
                status="running",
                planned=0,
                records=0,
                conflicts=0,
                unchanged=0,
                skipped=0,
                written=0,
                failed=0,
                api_calls=0,
                write_requests=0,
                batch_size=writer.batch_size,
                created_fields=[],
            )
            .returning(WritebackPush.id)
        ).scalar_one()
    report = PushReport(
        push_id,
        source,
        requested_by,
        trigger,
        dry_run,
        force,
        period,
        started,
        batch_size=writer.batch_size,
        level=level,
    )
    try:
        _plan(engine, writer, dests, report)
        if not dry_run:
            _apply(engine, writer, report, clock)
    except ConnectorError as exc:
        report.status, report.error = "failed", str(exc)
        _not_sent(engine, report, str(exc), clock)
        _finish(engine, report, writer, calls, writes, began, clock)
        log.warning("push to %s failed: %s", source, exc)
        raise PushFailed(str(exc), report, exc) from exc
    except BaseException as exc:
        report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
        _finish(engine, report, writer, calls, writes, began, clock)
        raise
    if dry_run:
        report.status = "planned"
    else:
        report.status = "partial" if report.failed else "ok"
    _finish(engine, report, writer, calls, writes, began, clock)
    return report


def _plan(
    engine: Engine, writer: TargetWriter, dests: dict[str, list[FieldRef]], report: PushReport
) -> None:
    source, period = writer.source, report.period_start
    refs = list(dict.fromkeys(ref for refs in dests.values() for ref in refs))
    targets = [
        (t.scope_id, t.kpi, t.value)
        for t in list_targets(
            engine, grain="month", scope="rep", start=period, end=period, level=report.level
        )
        if t.kpi in dests and t.scope_id.startswith(f"{source}:")
    ]
    with engine.connect() as conn:
        reps = _reps(conn, source)
        states = _states(conn, source)
    current: dict[tuple[str, FieldRef], CurrentValue] = {}
    if targets and refs:
        check = writer.prepare_fields(refs, create=not report.dry_run)
        report.missing_fields = [
            f"{r.crm_object}.{r.field}" for r in check.missing if r not in check.created
        ]
        report.created_fields = [f"{r.crm_object}.{r.field}" for r in check.created]
        decimals = check.decimals
        user_ids = sorted(
            {
                reps[rep_id].user_id or ""
                for rep_id, _, _ in targets
                if rep_id in reps and reps[rep_id].user_id and not reps[rep_id].deleted
            }
        )
        wanted = sorted(
            {ref for rep_id, kpi, _ in targets for ref in dests[kpi]},
            key=lambda r: (r.crm_object, r.field),
        )
        if user_ids:
            for value in writer.read_values(user_ids, wanted, period):
                current[(value.user_id, value.ref)] = value
    else:
        decimals = {}
    rows, unchanged = plan_rows(targets, dests, reps, current, states, decimals, force=report.force)
    report.rows = rows
    report.unchanged = len(unchanged)
    groups = _record_groups(rows)
    report.records = sum(len(keys) for keys in groups.values())
    report.expected_write_requests = sum(
        math.ceil(len(keys) / writer.batch_size) for keys in groups.values()
    )
    with engine.begin() as conn:
        _store_rows(conn, report)
        if not report.dry_run:
            # Values found in place are remembered, so a later change in the CRM is noticed.
            at = datetime.now(UTC)
            adopted = []
            for row, now in unchanged:
                state = states.get((row.ref.crm_object, str(now.record_id), row.ref.field))
                if (
                    state is None
                    or state.last_status != "ok"
                    or not same(state.pushed_value, now.value)
                ):
                    adopted.append(
                        _state(source, row, period, at, report.push_id, ok=True, pushed=now.value)
                    )
            _upsert_states(conn, adopted)
        conn.execute(
            update(WritebackPush)
            .where(WritebackPush.id == report.push_id)
            .values(**_push_values(report))
        )


def _apply(
    engine: Engine, writer: TargetWriter, report: PushReport, clock: Callable[[], datetime]
) -> None:
    to_write = [r for r in report.rows if r.action == "write"]
    if not to_write:
        return
    by_update: dict[FieldUpdate, PlanRow] = {}
    for row in to_write:
        assert row.user_id is not None
        by_update[
            FieldUpdate(row.user_id, row.ref, row.record_id, row.new_value, report.period_start)
        ] = row
    for batch in writer.push(list(by_update)):
        _record_batch(engine, report, by_update, batch.results, clock())


def _record_batch(
    engine: Engine,
    report: PushReport,
    by_update: dict[FieldUpdate, PlanRow],
    results: Sequence[UpdateResult],
    at: datetime,
) -> None:
    """Commit one batch's results: rows, last-pushed values and the audit's counts."""
    rows: list[PlanRow] = []
    states: list[dict[str, Any]] = []
    for result in results:
        row = by_update[result.update]
        row.record_id = result.record_id or row.record_id
        row.status = "written" if result.ok else "failed"
        row.error = result.error
        if result.ok:
            report.written += 1
        else:
            report.failed += 1
        rows.append(row)
        if row.record_id is not None:
            states.append(
                _state(
                    report.source,
                    row,
                    report.period_start,
                    at,
                    report.push_id,
                    ok=result.ok,
                    pushed=row.new_value if result.ok else row.last_pushed,
                    error=result.error,
                )
            )
    with engine.begin() as conn:
        _update_rows(conn, rows)
        _upsert_states(conn, states)
        conn.execute(
            update(WritebackPush)
            .where(WritebackPush.id == report.push_id)
            .values(written=report.written, failed=report.failed)
        )


def _not_sent(
    engine: Engine, report: PushReport, message: str, clock: Callable[[], datetime]
) -> None:
    """After a push stopped: its unsent rows failed (retried next time), with the reason."""
    rows = [r for r in report.rows if r.action == "write" and r.status == "planned"]
    if report.dry_run or not rows:
        return
    at = clock()
    states = []
    for row in rows:
        row.status, row.error = "not_sent", f"not sent: {message[:500]}"
        report.failed += 1
        if row.record_id is not None:
            states.append(
                _state(
                    report.source,
                    row,
                    report.period_start,
                    at,
                    report.push_id,
                    ok=False,
                    pushed=row.last_pushed,
                    error=row.error,
                )
            )
    with engine.begin() as conn:
        _update_rows(conn, rows)
        _upsert_states(conn, states)


# --- the writers the settings enable ---------------------------------------------------------------


def build_writers(
    settings: Settings, which: str = "all", engine: Engine | None = None
) -> list[tuple[TargetWriter, Mapping]]:
    """The CRMs to push to for ``which`` (hubspot, salesforce or all configured), with mappings.

    Each writer shares its CRM client's construction with the sync (service.sync.sources),
    the store's latest Salesforce refresh token included.
    """
    if which not in (*SOURCES, "all"):
        raise SourceNotConfigured(f"unknown source {which!r}: use hubspot, salesforce or all")
    mapping = load_mapping(settings.mapping_file)
    writers: list[tuple[TargetWriter, Mapping]] = []
    if which in ("hubspot", "all") and settings.hubspot_access_token is not None:
        writers.append((HubSpotWriter(hubspot_client(settings), mapping=mapping), mapping))
    if which == "salesforce" or (which == "all" and settings.salesforce_enabled):
        client = salesforce_client(settings, engine)
        writers.append((SalesforceWriter(client, mapping=mapping), mapping))
    if which == "hubspot" and not writers:
        raise SourceNotConfigured("HubSpot is not configured: set ISKPI_HUBSPOT_ACCESS_TOKEN")
    if not writers:
        raise SourceNotConfigured(
            "no CRM is configured: set ISKPI_HUBSPOT_ACCESS_TOKEN or ISKPI_SALESFORCE_INSTANCE_URL"
        )
    return writers


def push_each(
    engine: Engine,
    settings: Settings,
    ctx: KpiContext,
    *,
    which: str = "all",
    requested_by: str,
    trigger: str,
    dry_run: bool = False,
    force: bool = False,
    level: Level = "achievement",
) -> Iterator[PushReport | PushStopped]:
    """Push (or plan) each configured CRM in turn: the one write-back loop, API and CLI.

    Yields each CRM's report, or a PushStopped (with the pushes finished before it) for a
    CRM that stopped its push, or for settings that name no CRM to push to.
    """
    done: list[PushReport] = []

    def stopped(cause: Exception, source: str | None, report: PushReport | None) -> PushStopped:
        return PushStopped(
            cause,
            source=source,
            report=report,
            push=report_json(report) if report is not None else None,
            completed=[report_json(r) for r in done],
        )

    try:
        writers = build_writers(settings, which, engine)
    except (SourceNotConfigured, MappingError) as exc:
        yield stopped(exc, None, None)
        return
    for writer, mapping in writers:
        try:
            report = run_push(
                engine,
                writer,
                mapping.sources[writer.source],
                ctx,
                requested_by=requested_by,
                trigger=trigger,
                dry_run=dry_run,
                force=force,
                level=level,
            )
        except PushFailed as exc:
            yield stopped(exc, writer.source, exc.report)
            continue
        except (PushLocked, MappingError) as exc:
            yield stopped(exc, writer.source, None)
            continue
        done.append(report)
        yield report


def push_targets(
    engine: Engine,
    settings: Settings,
    ctx: KpiContext,
    *,
    which: str = "all",
    requested_by: str,
    trigger: str,
    dry_run: bool = False,
    force: bool = False,
    level: Level = "achievement",
) -> list[PushReport]:
    """Every configured CRM's push (or plan); the first that stops raises its PushStopped."""
    reports: list[PushReport] = []
    for outcome in push_each(
        engine,
        settings,
        ctx,
        which=which,
        requested_by=requested_by,
        trigger=trigger,
        dry_run=dry_run,
        force=force,
        level=level,
    ):
        if isinstance(outcome, PushStopped):
            raise outcome from outcome.cause
        reports.append(outcome)
    return reports


# --- reading the audit ------------------------------------------------------------------------------


def list_pushes(
    engine: Engine, *, source: str | None = None, limit: int = 50, with_rows: bool = False
) -> list[tuple[WritebackPush, list[WritebackPushRow]]]:
    """Recent pushes, newest first, each with its rows when asked."""
    query = select(WritebackPush).order_by(WritebackPush.id.desc()).limit(limit)
    if source is not None:
        query = query.where(WritebackPush.source == source)
    with Session(engine) as session:
        pushes = list(session.scalars(query))
        rows: dict[int, list[WritebackPushRow]] = {p.id: [] for p in pushes}
        if with_rows and pushes:
            for row in session.scalars(
                select(WritebackPushRow)
                .where(WritebackPushRow.push_id.in_(list(rows)))
                .order_by(WritebackPushRow.push_id, WritebackPushRow.seq)
            ):
                rows[row.push_id].append(row)
        session.expunge_all()
    return [(p, rows[p.id]) for p in pushes]
