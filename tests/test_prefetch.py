"""The page prefetcher: order kept, errors handed over, producer stopped when the consumer stops."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.sync.prefetch import prefetched


def test_items_arrive_in_order() -> None:
    assert list(prefetched(iter(range(100)), depth=2)) == list(range(100))


def test_a_producer_error_reaches_the_consumer_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise RuntimeError("CRM went away")

    seen: list[int] = []
    with pytest.raises(RuntimeError, match="CRM went away"):
        for item in prefetched(source()):
            seen.append(item)
    assert seen == [1, 2]


def test_the_producer_stays_at_most_depth_ahead_and_stops_with_the_consumer() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    iterator = prefetched(source(), depth=2)
    assert next(iterator) == 0
    iterator.close()  # the consumer stops (e.g. the store failed)
    assert len(produced) <= 5  # one being consumed, two queued, one waiting to be put
    assert len(produced) < 1000
