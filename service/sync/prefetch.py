"""Pull the next pages while the current one is being stored.

Fetching waits on the network and storing waits on the database; overlapping
the two keeps the store from ever being the bottleneck of a sync. The queue is
short, so memory stays flat however long the stream is.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _put(items: queue.Queue[object], stop: threading.Event, item: object) -> bool:
    # Give up once the consumer has gone, instead of blocking on a full queue forever.
    while not stop.is_set():
        try:
            items.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _produce(source: Iterator[object], items: queue.Queue[object], stop: threading.Event) -> None:
    try:
        for item in source:
            if not _put(items, stop, item):
                return
        _put(items, stop, _DONE)
    except BaseException as exc:  # handed to the consumer, which re-raises it
        _put(items, stop, _Failed(exc))


class Prefetched(Iterator[T]):
    """The items of a source pulled in a background thread; ``ready`` says if one is waiting."""

    def __init__(self, source: Iterator[T], depth: int) -> None:
        self._items: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        # The thread holds the queue, not this object: dropped unclosed, it still stops it.
        self._worker = threading.Thread(
            target=_produce,
            args=(source, self._items, self._stop),
            name="sync-prefetch",
            daemon=True,
        )
        self._worker.start()
        self._consumer = self._consume()

    def _consume(self) -> Generator[T, None, None]:
        try:
            while True:
                item = self._items.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item  # type: ignore[misc]
        finally:
            self._stop.set()
            self._worker.join(timeout=5)

    def __next__(self) -> T:
        return next(self._consumer)

    def ready(self) -> bool:
        """Whether the next item (or the end) is already waiting: taking it will not block."""
        return not self._items.empty()

    def close(self) -> None:
        """Stop the producer (the consumer is done, or failed)."""
        self._consumer.close()
        self._stop.set()

    def __del__(self) -> None:
        self._stop.set()


def prefetched(source: Iterator[T], depth: int = 2) -> Prefetched[T]:
    """Iterate ``source`` in a background thread, at most ``depth`` items ahead."""
    return Prefetched(source, depth)
