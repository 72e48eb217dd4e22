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
from dataclasses import dataclass

from sqlalchemy import Engine, func, select
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


def data_version(engine: Engine) -> tuple[object, ...]:
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
    with engine.connect() as conn:
        row = conn.execute(query).one()
    return tuple(row)


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
        version = data_version(self.engine)
        with self._lock:
            self._version, self._read_at = version, began
        return version

    def invalidate(self) -> None:
        with self._lock:
            self._version = None


class ResponseCache:
    """Serialized responses by (request, data version), LRU within ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, CachedBody] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._inflight: dict[Hashable, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def lookup(self, key: Hashable) -> CachedBody | None:
        """The cached body for ``key``, if there is one (never blocks on a build)."""
        with self._lock:
            return self._take(key)

    def get_or_build(self, key: Hashable, build: Callable[[], bytes]) -> CachedBody:
        """The cached body for ``key``, building it once however many ask at the same time."""
        if self.max_bytes <= 0:
            return _entry(build())
        with self._lock:
            found = self._take(key)
            if found is not None:
                return found
            flight = self._inflight.setdefault(key, threading.Lock())
        with flight:
            with self._lock:
                found = self._take(key)
                if found is not None:
                    return found
            try:
                entry = _entry(build())
            finally:
                with self._lock:
                    self._inflight.pop(key, None)
            with self._lock:
                self.misses += 1
                if entry.size <= self.max_bytes:
                    self._entries[key] = entry
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
            if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
                self.clock.invalidate()
