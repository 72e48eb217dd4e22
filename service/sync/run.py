"""The sync loop: pull page → map → upsert → advance cursor, one transaction per page.

A run holds the source's lock, records itself in sync_runs, and for each
stream of the connector stores every page together with the stream state the
page ends at. A run killed at any point therefore resumes from its last stored
page; upserts on (source, crm_id) make re-reading a page harmless. Pages already
fetched may share one transaction (up to BATCH_PAGES), which then ends with the
state of its last page: one commit for them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from connectors.base import Page, SourceConnector, StreamSpec
from connectors.errors import AuthError, ConnectorError, QuotaExhausted
from connectors.records import Rejected
from kpi import (
    KpiContext,
    RollupMaintainer,
    ensure_rollups,
    flush_rollups,
    newest_change,
    record_all,
    snapshot_taken,
    store_forecast_snapshot,
)
from models import TABLE_BY_KIND, QuarantinedRecord, SyncRun, store
from service.errors import SyncAlreadyRan
from service.sync.locks import SourceLock, source_lock
from service.sync.prefetch import Prefetched, prefetched

log = logging.getLogger(__name__)

CRM_ID_LENGTH = QuarantinedRecord.__table__.c.crm_id.type.length  # type: ignore[attr-defined]


class SyncProgress(Protocol):
    """What a sync reports while it runs (a terminal progress bar, a log)."""

    def stream_started(self, stream: str) -> None: ...

    def page_stored(self, stream: str, page: Page) -> None: ...

    def stream_finished(self, stream: str) -> None: ...


@dataclass
class SyncReport:
    """How one run went: the figures `iskpi sync` prints and sync_runs keeps."""

    run_id: int
    source: str
    status: str  # ok, partial, failed
    records: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    api_calls: int = 0
    seconds: float = 0.0
    error: str | None = None


def safe_error(exc: BaseException) -> str:
    """What a failed run keeps and logs: the error's class and a message without record values.

    A database error's message holds the statement's parameters and often the offending
    value (``invalid input syntax ...: "<a CRM value>"``): it is named by its classes and
    SQLSTATE only. Other errors keep their message (they come from code, not from records).
    """
    if isinstance(exc, SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        parts = [type(exc).__name__]
        if orig is not None:
            parts.append(f"{type(orig).__module__}.{type(orig).__name__}")
        code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if code:
            parts.append(f"SQLSTATE {code}")
        return f"{parts[0]}: a store statement failed ({', '.join(parts[1:]) or 'no detail'})"
    return f"{type(exc).__name__}: {exc}"


def log_failure(what: str, exc: BaseException) -> None:
    """Log a failure by its safe message and its traceback's frames (no exception text)."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("%s: %s\nTraceback (frames only):\n%s", what, safe_error(exc), frames.rstrip())


def _payload_key(payload: dict[str, object]) -> str:
    # A record rejected before its id could be read is keyed by its content instead.
    return (
        "?"
        + hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
    )


def _quarantine_key(crm_id: str | None, payload: dict[str, object]) -> str:
    # An id the quarantine's key column cannot hold is no better than none.
    if crm_id and len(crm_id) <= CRM_ID_LENGTH and "\x00" not in crm_id:
        return crm_id
    return _payload_key(payload)


def _store_page(
    conn: Connection,
    source: str,
    spec: StreamSpec,
    page: Page,
    run_id: int,
    report: SyncReport,
    at: datetime,
    rollups: RollupMaintainer | None,
    held: bool,
) -> bool:
    """Store one page, its state and the run's figures in the caller's transaction.

    ``held``: whether the quarantine may hold records of the stream; returns it after the
    page. A page releases from the quarantine only then, not with a DELETE every page.
    """
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    rejected = list(page.rejected)
    kept: list[str] = []
    for record in page.records:
        row = record.as_row()
        # A value the store cannot hold is quarantined, not left to fail the page forever.
        reason = store.unfit(TABLE_BY_KIND[record.kind], row)
        if reason is None:
            by_kind[record.kind].append(row)
            kept.append(record.crm_id)
        else:
            payload = json.loads(json.dumps(row, default=str))
            rejected.append(Rejected(record.crm_id, payload, reason))
    stored = 0
    for kind, rows in by_kind.items():
        # The KPI rollups note the (rep, day) keys these rows had and get, so the
        # end of the run recomputes exactly those days.
        token = (
            rollups.before_upsert(conn, kind, source, [r["crm_id"] for r in rows])
            if rollups
            else None
        )
        stored += store.upsert_records(conn, TABLE_BY_KIND[kind], rows, at)
        if rollups and token is not None:
            rollups.after_upsert(conn, token)
    if page.missing_crm_ids:
        kind = spec.record_type.kind
        token = rollups.before_upsert(conn, kind, source, page.missing_crm_ids) if rollups else None
        store.flag_deleted(
            conn,
            TABLE_BY_KIND[kind],
            source,
            page.missing_crm_ids,
            at,
            within=page.missing_within or None,
        )
        if rollups and token is not None:
            rollups.after_upsert(conn, token)
    if page.merged_crm_ids:
        _follow_merges(conn, source, spec, page.merged_crm_ids, at, rollups)
    if held:
        store.release_from_quarantine(conn, source, page.stream, kept)
    if rejected:
        store.quarantine(
            conn,
            source,
            page.stream,
            [
                {
                    "crm_id": _quarantine_key(r.crm_id, r.payload),
                    "payload": r.payload,
                    "reason": r.reason,
                }
                for r in rejected
            ],
            run_id,
        )
    if rollups is None:
        # Without a KPI context the pages' days are not worked out: the change log says
        # anything of the source may have changed, so no cached answer outlives the page.
        record_all(conn, source)
    store.save_state(conn, source, page.stream, page.state, at)
    report.records[page.stream] = report.records.get(page.stream, 0) + stored
    report.quarantined += len(rejected)
    report.api_calls += page.api_calls
    return held or bool(rejected)


# The run's figures after each page, built once (constructing it cost more than running it).
_PROGRESS = (
    update(SyncRun)
    .where(SyncRun.id == bindparam("run_id"))
    .values(
        records=bindparam("p_records", type_=SyncRun.__table__.c.records.type),
        quarantined=bindparam("p_quarantined"),
        api_calls=bindparam("p_api_calls"),
    )
)


# A transaction takes up to this many pages, or pages for this long, while the store is
# behind the fetch (the next page already waits); a page whose successor is not fetched yet
# is committed at once, so a sync that keeps up still commits every page. Ten: on PostgreSQL
# a commit waits for the WAL to reach the disk, and writing pre-fetched pages ten a commit
# took 0.5-0.6x the time of one a commit (2026-12-06, docs/benchmarks.md).
BATCH_PAGES = 10
BATCH_SECONDS = 0.5


def _store_stream(
    engine: Engine,
    source: str,
    spec: StreamSpec,
    pages: Prefetched[Page],
    run_id: int,
    report: SyncReport,
    clock: Callable[[], datetime],
    rollups: RollupMaintainer | None,
    lock: SourceLock,
    held: bool,
    progress: SyncProgress | None,
) -> None:
    """Store a stream's pages, one commit for each page or for the few pages already fetched.

    Each transaction ends with the state of its last page, the run's figures and the lock's
    renewal, so a run killed at any point resumes after the last committed page. A fetch
    failure commits the pages stored before it, then propagates.
    """
    failure: Exception | None = None
    done = False
    while not done and failure is None:
        batch: list[Page] = []
        before = (dict(report.records), report.quarantined, report.api_calls)
        try:
            with engine.begin() as conn:
                began = time.monotonic()
                while True:
                    try:
                        page = next(pages)
                    except StopIteration:
                        done = True
                        break
                    except Exception as exc:  # the fetch failed: keep what is stored
                        failure = exc
                        break
                    held = _store_page(
                        conn, source, spec, page, run_id, report, clock(), rollups, held
                    )
                    batch.append(page)
                    if (
                        len(batch) >= BATCH_PAGES
                        or time.monotonic() - began >= BATCH_SECONDS
                        or not pages.ready()
                    ):
                        break
                if batch:
                    conn.execute(
                        _PROGRESS,
                        {
                            "run_id": run_id,
                            "p_records": dict(report.records),
                            "p_quarantined": report.quarantined,
                            "p_api_calls": report.api_calls,
                        },
                    )
                    # Extended (SQLite) or checked (PostgreSQL) before the commit: pages are
                    # never committed by a run that lost its lock.
                    lock.renew(conn)
        except BaseException:
            report.records, report.quarantined, report.api_calls = before
            raise
        if progress:
            for page in batch:
                progress.page_stored(spec.name, page)
    if failure is not None:
        raise failure


# The record kinds that reference a lead (their ``contact_crm_id``), re-pointed when leads merge.
CONTACT_REFERENCES: tuple[str, ...] = ("call", "email", "meeting", "task", "deal")


def _follow_merges(
    conn: Connection,
    source: str,
    spec: StreamSpec,
    survivors: dict[str, str],
    at: datetime,
    rollups: RollupMaintainer | None,
) -> None:
    """Merged records: flagged deleted, and whatever referenced them follows the survivor.

    A CRM moves a merged contact's activities to the contact it became without changing
    them, so an incremental sync would never re-read them; the survivor's list of merged ids
    is what tells. Breakdowns and response times then follow the survivor at once.
    """
    kind = spec.record_type.kind
    merged = sorted(survivors)
    if kind == "lead":
        for referrer in CONTACT_REFERENCES:
            model = TABLE_BY_KIND[referrer]
            ids = store.referencing(conn, model, source, "contact_crm_id", merged)
            if not ids:
                continue
            token = rollups.before_upsert(conn, referrer, source, ids) if rollups else None
            store.repoint(conn, model, source, "contact_crm_id", survivors, at)
            if rollups and token is not None:
                rollups.after_upsert(conn, token)
    token = rollups.before_upsert(conn, kind, source, merged) if rollups else None
    store.flag_deleted(conn, TABLE_BY_KIND[kind], source, merged, at)
    if rollups and token is not None:
        rollups.after_upsert(conn, token)


def _own_states(pages: Iterator[Page]) -> Iterator[Page]:
    """Each page with a copy of its state, taken the moment the connector yields it.

    Pages are pulled ahead (service.sync.prefetch) while earlier ones are stored: a connector
    that goes on mutating a state it handed over would otherwise have the next page's
    position saved with this page, and a run resumed from it would skip that page.
    """
    for page in pages:
        # A JSON round trip: the state is stored as JSON anyway, and it is cheaper than deepcopy.
        yield replace(page, state=json.loads(json.dumps(page.state)))


def _close_interrupted_runs(engine: Engine, source: str) -> None:
    # We hold the source's lock, so any run of it still marked running was killed.
    with engine.begin() as conn:
        conn.execute(
            update(SyncRun)
            .where(SyncRun.source == source, SyncRun.status == "running")
            .values(status="failed", finished_at=datetime.now(UTC), error="interrupted")
        )


def _finish_kpis(engine: Engine, kpi: KpiContext, source: str, changes_before: int) -> None:
    """Recompute the rollup days the run touched, then snapshot the landing forecast.

    A run during which nothing changed (no change recorded since it started, by it or any
    other writer) keeps today's snapshot as it is: the forecast of the same data on the
    same day is the same, and computing it is most of an intraday no-change run's work.
    """
    try:
        with engine.begin() as conn:
            flush_rollups(conn, kpi, source)
        with engine.begin() as conn:
            if newest_change(conn) == changes_before and snapshot_taken(conn, kpi.today()):
                return
            store_forecast_snapshot(conn, kpi)
    except Exception as exc:
        # KPIs stay exact without the flush (unflushed days are read from raw rows);
        # the next run flushes them.
        log_failure(f"KPI rollups of {source} not flushed", exc)


def run_sync(
    engine: Engine,
    connector: SourceConnector,
    *,
    trigger: str = "cli",
    full: bool = False,
    progress: SyncProgress | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    kpi: KpiContext | None = None,
    once_since: datetime | None = None,
) -> SyncReport:
    """Sync every stream of one connector into the store; raises SyncLocked if one is running.

    With ``kpi`` the run also keeps the KPI engine's daily rollups current and
    stores a landing-forecast snapshot at its end. With ``once_since`` it raises
    SyncAlreadyRan instead when a run with the same trigger started at or after
    that time: replicas firing the same scheduled minute sync once between them,
    however quickly the first one finishes.
    """
    source = connector.source
    with source_lock(engine, source) as lock:
        _close_interrupted_runs(engine, source)
        if once_since is not None:
            with engine.connect() as conn:
                earlier = conn.execute(
                    select(SyncRun.id).where(
                        SyncRun.source == source,
                        SyncRun.trigger == trigger,
                        SyncRun.started_at >= once_since,
                    )
                ).first()
            if earlier is not None:
                raise SyncAlreadyRan(
                    f"{source}: run #{earlier[0]} already synced for the {trigger} of {once_since:%Y-%m-%d %H:%M} UTC"
                )
        started_at = clock()
        began = time.monotonic()
        calls_before = connector.api_calls
        with engine.begin() as conn:
            if full:
                store.clear_state(conn, source)
            changes_before = newest_change(conn)
            run_id = conn.execute(
                insert(SyncRun)
                .values(
                    source=source,
                    trigger=trigger,
                    full=full,
                    started_at=started_at,
                    status="running",
                    records={},
                    quarantined=0,
                    api_calls=0,
                )
                .returning(SyncRun.id)
            ).scalar_one()
        report = SyncReport(run_id=run_id, source=source, status="running")
        failures: list[str] = []
        rollups: RollupMaintainer | None = None
        try:
            if kpi is not None:
                with engine.begin() as conn:
                    # A changed time zone or threshold rebuilds; a dead run's marks are
                    # flushed; a first or --full sync marks the whole source.
                    ensure_rollups(conn, kpi, source, whole=True if full else None)
                rollups = RollupMaintainer(kpi)
            for spec in connector.streams:
                report.records.setdefault(spec.name, 0)
                if progress:
                    progress.stream_started(spec.name)
                with engine.connect() as conn:
                    state = store.load_state(conn, source, spec.name)
                    held = store.has_quarantined(conn, source, spec.name)
                try:
                    pages = prefetched(
                        _own_states(connector.pull(spec.name, state, until=started_at))
                    )
                    try:
                        _store_stream(
                            engine,
                            source,
                            spec,
                            pages,
                            run_id,
                            report,
                            clock,
                            rollups,
                            lock,
                            held,
                            progress,
                        )
                    finally:
                        pages.close()
                except (AuthError, QuotaExhausted):
                    raise
                except ConnectorError as exc:
                    # One stream's outage should not cost the others their sync.
                    log.warning("sync of %s %s failed: %s", source, spec.name, exc)
                    failures.append(f"{spec.name}: {exc}")
                finally:
                    if progress:
                        progress.stream_finished(spec.name)
            if not failures:
                report.status = "ok"
            else:
                report.status = "partial" if len(failures) < len(connector.streams) else "failed"
                report.error = "; ".join(failures)
        except QuotaExhausted as exc:
            report.status, report.error = "partial", str(exc)
        except AuthError as exc:
            report.status, report.error = "failed", str(exc)
        except Exception as exc:
            report.status, report.error = "failed", safe_error(exc)
            log_failure(f"sync of {source} failed", exc)
        if kpi is not None:
            _finish_kpis(engine, kpi, source, changes_before)
        if report.error:
            # A CRM's error text may quote a value with a NUL, which PostgreSQL cannot store.
            report.error = report.error.replace("\x00", "")
        report.api_calls = connector.api_calls - calls_before
        report.seconds = time.monotonic() - began
        with engine.begin() as conn:
            conn.execute(
                update(SyncRun)
                .where(SyncRun.id == run_id)
                .values(
                    status=report.status,
                    finished_at=clock(),
                    records=dict(report.records),
                    quarantined=report.quarantined,
                    api_calls=report.api_calls,
                    error=report.error,
                )
            )
        return report
