"""The answer to GET /v1/meta: the data version, each source's last sync, the freshness.

Dashboards poll it every few seconds, so it must cost the store next to nothing. The
data version is the one the /v1/kpis cache reads (a DataVersionClock: one small query at
most every ISKPI_API_CACHE_CHECK_SECONDS per process, and at once after a write through
this process's API), and the summary of the run history is re-read only when that
version moves: a run's start (a new row) and its end (its finish time) both move it.
Freshness is counted on the wall clock, not ISKPI_NOW: it says how old the data is now.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, cast

from sqlalchemy import Connection, Engine, case, func, select

from models import SyncRun

FinishedStatus = Literal["ok", "partial", "failed"]
# A partial run stored the pages it read: its data is as fresh as its end.
FRESH_STATUSES = ("ok", "partial")
# A run still marked running after this long was killed; its source's next run closes it.
RUNNING_FOR_AT_MOST = timedelta(hours=6)


@dataclass(frozen=True)
class SourceRuns:
    """One source's place in the run history."""

    source: str
    finished_at: datetime | None  # the end of its last finished run
    status: FinishedStatus | None  # how that run ended
    last_success_at: datetime | None  # the end of its last run that ended ok or partial
    running_since: datetime | None  # the start of a run still marked running


def version_digest(version: tuple[object, ...]) -> str:
    """The data version as an opaque string, the same in every replica of one store."""
    return hashlib.sha256(repr(version).encode()).hexdigest()[:20]


def source_runs(conn: Connection, sources: Iterable[str]) -> list[SourceRuns]:
    """Every source of ``sources`` or of the run history, by name, in one query."""
    per_source = (
        select(
            SyncRun.source,
            func.max(case((SyncRun.finished_at.is_not(None), SyncRun.id))).label("last_id"),
            func.max(case((SyncRun.status.in_(FRESH_STATUSES), SyncRun.finished_at))).label(
                "last_success_at"
            ),
            func.max(case((SyncRun.status == "running", SyncRun.started_at))).label(
                "running_since"
            ),
        )
        .group_by(SyncRun.source)
        .subquery()
    )
    rows = conn.execute(
        select(
            per_source.c.source,
            SyncRun.finished_at,
            SyncRun.status,
            per_source.c.last_success_at,
            per_source.c.running_since,
        ).outerjoin(SyncRun, SyncRun.id == per_source.c.last_id)
    ).all()
    found = {
        source: SourceRuns(
            source,
            finished_at,
            cast(FinishedStatus | None, status),
            last_success_at,
            running_since,
        )
        for source, finished_at, status, last_success_at, running_since in rows
    }
    for source in sources:
        found.setdefault(source, SourceRuns(source, None, None, None, None))
    return [found[source] for source in sorted(found)]


def freshness_seconds(runs: Iterable[SourceRuns], now: datetime) -> int | None:
    """Whole seconds since the newest run that ended ok or partial; None before any."""
    ends = [run.last_success_at for run in runs if run.last_success_at is not None]
    if not ends:
        return None
    # Never negative, should a replica's clock run behind the one that finished the run.
    return max(0, int((now - max(ends)).total_seconds()))


def running(run: SourceRuns, now: datetime) -> bool:
    """Whether the source is syncing now (a run marked running, and not for hours)."""
    return run.running_since is not None and now - run.running_since < RUNNING_FOR_AT_MOST


class RunSummaries:
    """The per-source run summary, read from the store once per data version."""

    def __init__(
        self,
        engine: Engine,
        sources: Iterable[str],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.sources = tuple(sources)  # the configured ones, listed before their first run
        self.now = now
        self._version: tuple[object, ...] | None = None
        self._runs: list[SourceRuns] = []
        self._lock = threading.Lock()

    def known(self, version: tuple[object, ...]) -> list[SourceRuns] | None:
        """The summary read at ``version``, without touching the store; None if not read."""
        with self._lock:
            return self._runs if self._version == version else None

    def read(self, version: tuple[object, ...]) -> list[SourceRuns]:
        """Read the summary now and keep it for ``version`` (blocking: a worker thread's).

        Read after the version, it is at least as new: labelled with an older version, it
        is only read once more when the next version is seen.
        """
        with self.engine.connect() as conn:
            runs = source_runs(conn, self.sources)
        with self._lock:
            self._version, self._runs = version, runs
        return runs
