"""A response cache for /v1/kpis, keyed on the request and the store's data version.

BI tools poll the same queries all day, and the numbers only change when a
sync stores a page or someone enters a target or a cost. Every such write
moves the data version (the newest cursor save, run, snapshot, target and
cost). The version is read with one small query, at most once per
``check_seconds`` (default 1 s), and at once after any write request this
process served; so an answer is at most that long behind a sync running in
another process, and never mixes two versions (each answer is computed from
one version, and a sync commits a page with its cursor in one transaction).

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

from sqlalchemy import Connection, Engine, func, select
from starlette.types import ASGIApp, Receive, Scope, Send

from models import SyncRun, SyncState
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


def data_version(conn: Connection) -> tuple[object, ...]:
    """What every KPI answer depends on, in one round trip; any write moves it."""
    query = select(
        select(func.max(SyncState.updated_at)).scalar_subquery(),
        select(func.max(SyncRun.finished_at)).scalar_subquery(),
        select(func.count(SyncRun.id)).scalar_subquery(),
        select(func.max(ForecastSnapshot.id)).scalar_subquery(),
        select(func.max(KpiTarget.updated_at)).scalar_subquery(),
        select(func.count()).select_from(KpiTarget).scalar_subquery(),
        select(func.max(KpiCost.updated_at)).scalar_subquery(),
        select(func.count()).select_from(KpiCost).scalar_subquery(),
    )
    return tuple(conn.execute(query).one())


class DataVersionClock:
    """The data version, re-read at most every ``check_seconds`` unless invalidated."""

    def __init__(self, engine: Engine, check_seconds: float) -> None:
        self.engine = engine
        self.check_seconds = check_seconds
        self._version: tuple[object, ...] | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def fresh(self) -> tuple[object, ...] | None:
        """The version if it was read recently enough, without touching the database."""
        with self._lock:
            if self._version is not None and time.monotonic() - self._read_at < self.check_seconds:
                return self._version
            return None

    def read(self) -> tuple[object, ...]:
        """Read the version from the store now (blocking; call from a worker thread)."""
        began = time.monotonic()
        with self.engine.connect() as conn:
            version = data_version(conn)
        self.observe(version, began)
        return version

    def observe(self, version: tuple[object, ...], read_at: float) -> None:
        """Remember a version read at ``read_at`` (monotonic), unless a later read is known:
        two overlapping reads never leave the older version behind."""
        with self._lock:
            if read_at >= self._read_at:
                self._version, self._read_at = version, read_at

    def invalidate(self) -> None:
        with self._lock:
            self._version = None
            self._read_at = time.monotonic()


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
