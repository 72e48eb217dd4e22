"""A response cache for /v1/kpis, keyed on the request and the store's data version.

BI tools poll the same queries all day, and the numbers only change when a
sync stores a page or someone enters a target or a cost. Every such write
moves the data version (the newest cursor save, run, snapshot, target and
cost), read with one cheap query per request, so a cached answer is never
stale: a sync mid-way moves the version with each page it commits.

Concurrent requests for the same uncached answer compute it once (single
flight); the rest wait for it. Bodies are kept with a gzip copy, least
recently used first out, within a byte budget.
"""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

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
    gzipped = gzip.compress(body, compresslevel=5) if len(body) >= GZIP_MIN_BYTES else None
    return CachedBody(body, gzipped)
