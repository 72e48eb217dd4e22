"""A response cache for /v1/kpis, /v1/funnel, /v1/plan and /v1/forecast, keyed on the
request and the version of what the answer reads.

BI tools poll the same queries all day, and the numbers only change when a
sync stores a page or someone enters a target or a cost. A sync page records in the
change log which local days of its source it changed (kpi/changes.py: a call moved
from July to today changes both); an answer's version is that of the changes its
periods overlap, with the version every answer shares (targets, costs, rep levels,
finished runs, forecast snapshots, store facts). So an answer about July stays cached
while a sync writes today's calls, and an answer about today follows every page.

The versions are read with two small queries, at most once per ``check_seconds``
(default 1 s), and at once after any write request this process served; so an answer
is at most that long behind a sync running in another process, and never mixes two
versions (each answer is computed from one snapshot, and a sync commits a page with its
changes and its cursor in one transaction). ``data_version`` is the store's single
version, which any write moves (GET /v1/meta).

Concurrent requests for the same uncached answer compute it once (single
flight); the rest wait for it. Bodies are kept with a gzip copy, least
recently used first out, within a byte budget.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Connection, Engine, func, select
from starlette.types import ASGIApp, Receive, Scope, Send

from kpi import ChangeGroup, Reads, change_groups, version_of
from models import DataChange, ImprovementAction, SheetNote, StoreMeta, SyncRun, SyncState
from models.kpi import ForecastSnapshot, KpiCost, KpiTarget

# Bodies smaller than this are sent as they are: compressing them saves little.
GZIP_MIN_BYTES = 1024


@dataclass(frozen=True)
class CachedBody:
    body: bytes
    gzipped: bytes | None  # None for small bodies

    @property
    def size(self) -> int:
        return len(self.body) + len(self.gzipped or b"")


# What every answer reads besides activity and deals: its targets, the costs CAC divides,
# the last sync per source its meta shows, the forecast snapshots, the store's own facts.
_SHARED = (
    select(func.max(SyncRun.finished_at)).scalar_subquery(),
    select(func.max(ForecastSnapshot.id)).scalar_subquery(),
    select(func.max(ForecastSnapshot.taken_at)).scalar_subquery(),
    select(func.max(KpiTarget.updated_at)).scalar_subquery(),
    select(func.count()).select_from(KpiTarget).scalar_subquery(),
    select(func.max(KpiCost.updated_at)).scalar_subquery(),
    select(func.count()).select_from(KpiCost).scalar_subquery(),
    select(func.max(StoreMeta.updated_at)).scalar_subquery(),
    select(func.count()).select_from(StoreMeta).scalar_subquery(),
)
# Besides those, what moves with every page or run, and the review sheets' notes and
# actions (no KPI reads them, but a dashboard showing them refreshes on this version).
_EVERY_WRITE = (
    select(func.count(SyncRun.id)).scalar_subquery(),
    select(func.max(SyncState.updated_at)).scalar_subquery(),
    select(func.max(DataChange.id)).scalar_subquery(),
    select(func.max(SheetNote.updated_at)).scalar_subquery(),
    select(func.max(ImprovementAction.updated_at)).scalar_subquery(),
    select(func.count()).select_from(ImprovementAction).scalar_subquery(),
)


@dataclass(frozen=True)
class StoreVersions:
    """The store's versions read in one snapshot."""

    data: tuple[object, ...]  # data_version: any write moves it
    shared: tuple[object, ...]  # what every answer reads (targets, costs, runs, …)
    changes: tuple[ChangeGroup, ...]  # the change log, grouped by kind and days

    def of(self, reads: Reads) -> Hashable:
        """The version of what an answer reading ``reads`` depends on."""
        return (self.shared, version_of(self.changes, reads))


def store_versions(conn: Connection) -> StoreVersions:
    """The data version, the shared version and the change log, in two round trips."""
    row = tuple(conn.execute(select(*_SHARED, *_EVERY_WRITE)).one())
    return StoreVersions(row, row[: len(_SHARED)], change_groups(conn))


def data_version(conn: Connection) -> tuple[object, ...]:
    """What every KPI answer depends on, in one round trip; any write moves it."""
    return tuple(conn.execute(select(*_SHARED, *_EVERY_WRITE)).one())


class DataVersionClock:
    """The store's versions, re-read at most every ``check_seconds`` unless invalidated."""

    def __init__(self, engine: Engine, check_seconds: float) -> None:
        self.engine = engine
        self.check_seconds = check_seconds
        self._versions: StoreVersions | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()
        self._reading = threading.Lock()

    def fresh_versions(self) -> StoreVersions | None:
        """The versions if they were read recently enough, without touching the database."""
        with self._lock:
            if self._versions is not None and time.monotonic() - self._read_at < self.check_seconds:
                return self._versions
            return None

    def read_versions(self) -> StoreVersions:
        """Read the versions from the store now (blocking; call from a worker thread).

        One read at a time: requests that find the versions stale together wait for the
        first one's read instead of each sending their own.
        """
        with self._reading:
            began = time.monotonic()
            if began - self._read_at < self.check_seconds and self._versions is not None:
                return self._versions  # read while this one waited
            with self.engine.connect() as conn:
                versions = store_versions(conn)
            self.observe(versions, began)
            return versions

    def fresh(self) -> tuple[object, ...] | None:
        """The data version if it was read recently enough, without touching the database."""
        versions = self.fresh_versions()
        return None if versions is None else versions.data

    def read(self) -> tuple[object, ...]:
        """Read the data version from the store now (blocking; call from a worker thread)."""
        return self.read_versions().data

    def observe(self, versions: StoreVersions, read_at: float) -> None:
        """Remember versions read at ``read_at`` (monotonic), unless a later read is known:
        two overlapping reads never leave the older versions behind."""
        with self._lock:
            if read_at >= self._read_at:
                self._versions, self._read_at = versions, read_at

    def invalidate(self) -> None:
        with self._lock:
            self._versions = None
            self._read_at = time.monotonic()


async def answer_key(clock: DataVersionClock, request_key: Hashable, reads: Reads) -> Hashable:
    """The cache key of an answer to ``request_key`` as the store stands (at most
    ``check_seconds`` ago)."""
    versions = clock.fresh_versions()
    if versions is None:
        versions = await run_in_threadpool(clock.read_versions)
    return (request_key, versions.of(reads))


def versioned_build(
    engine: Engine,
    clock: DataVersionClock,
    request_key: Hashable,
    reads: Reads,
    render: Callable[[Connection], bytes],
) -> Callable[[], tuple[bytes, Hashable | None]]:
    """A build for ``ResponseCache.get_or_build``: the body ``render`` makes, with the key of
    the version it was computed from.

    The versions are read before and after in one snapshot (PostgreSQL: REPEATABLE READ);
    if what the answer reads moved in between (SQLite reads statement by statement), the
    answer is served but not cached.
    """

    def build() -> tuple[bytes, Hashable | None]:
        began = time.monotonic()
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            before = store_versions(conn)
            body = render(conn)
            after = store_versions(conn)
        if before.of(reads) != after.of(reads):
            return body, None
        clock.observe(after, began)
        return body, (request_key, after.of(reads))

    return build


async def cached_answer(
    engine: Engine,
    cache: ResponseCache,
    clock: DataVersionClock,
    request_key: Hashable,
    reads: Reads,
    render: Callable[[Connection], bytes],
) -> CachedBody:
    """The body for ``request_key`` from the cache, or rendered once and cached."""
    key = await answer_key(clock, request_key, reads)
    entry = cache.lookup(key)
    if entry is not None:
        return entry
    build = versioned_build(engine, clock, request_key, reads, render)
    return await run_in_threadpool(cache.get_or_build, key, build, flight=request_key)


@dataclass
class _Flight:
    """One build in progress, and what it produced for those who waited on it."""

    done: threading.Event = field(default_factory=threading.Event)
    entry: CachedBody | None = None


class ResponseCache:
    """Serialized responses by (request, data version), LRU within ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, CachedBody] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._inflight: dict[Hashable, _Flight] = {}
        self.hits = 0
        self.misses = 0

    def lookup(self, key: Hashable) -> CachedBody | None:
        """The cached body for ``key``, if there is one (never blocks on a build)."""
        with self._lock:
            return self._take(key)

    def get_or_build(
        self,
        key: Hashable,
        build: Callable[[], tuple[bytes, Hashable | None]],
        *,
        flight: Hashable | None = None,
    ) -> CachedBody:
        """The cached body for ``key``, built once however many ask at the same time.

        ``build`` returns the body and the key it is true for (the data version it was
        computed from may be newer than the one asked for), or None to keep it uncached.
        Requests with the same ``flight`` (the request without its version) share one
        build: while a sync moves the version page by page, a question asked again
        during a computation waits for that computation instead of starting another, so
        an answer is at most one computation's time behind instead of piling up work.
        """
        if self.max_bytes <= 0:
            return _entry(build()[0])
        flight_key = key if flight is None else flight
        with self._lock:
            found = self._take(key)
            if found is not None:
                return found
            running = self._inflight.get(flight_key)
            if running is None:
                running = self._inflight[flight_key] = _Flight()
                owner = True
            else:
                owner = False
        if not owner:
            running.done.wait()
            if running.entry is not None:
                with self._lock:
                    self.hits += 1
                return running.entry
            return self._build(build)  # the build failed: this request finds out why itself
        try:
            running.entry = self._build(build)
            return running.entry
        finally:
            with self._lock:
                self._inflight.pop(flight_key, None)
            running.done.set()

    def _build(self, build: Callable[[], tuple[bytes, Hashable | None]]) -> CachedBody:
        body, true_key = build()
        entry = _entry(body)
        with self._lock:
            self.misses += 1
            if true_key is not None and entry.size <= self.max_bytes:
                if true_key not in self._entries:
                    self._entries[true_key] = entry
                    self._bytes += entry.size
                while self._bytes > self.max_bytes:
                    _, dropped = self._entries.popitem(last=False)
                    self._bytes -= dropped.size
        return entry

    def _take(self, key: Hashable) -> CachedBody | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return found


def _entry(body: bytes) -> CachedBody:
    # Level 1: most of the size gain (the rows repeat their keys) at a third of level 6's time.
    gzipped = gzip.compress(body, compresslevel=1) if len(body) >= GZIP_MIN_BYTES else None
    return CachedBody(body, gzipped)


# POSTs that only read: they must not make every next answer re-read the version.
READ_ONLY_POSTS = frozenset({("POST", "/v1/plan")})


class WritesInvalidate:
    """ASGI middleware: after any request that may write (not GET, HEAD, OPTIONS), re-read
    the data version on the next answer, so a target put through the API shows at once."""

    def __init__(self, app: ASGIApp, clock: DataVersionClock) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if (
                scope["type"] == "http"
                and scope["method"] not in ("GET", "HEAD", "OPTIONS")
                and (scope["method"], scope["path"]) not in READ_ONLY_POSTS
            ):
                self.clock.invalidate()
