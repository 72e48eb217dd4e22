"""HubSpot CRM search: filter groups, one sort and the free-text query, evaluated on the store."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulators.hubspot.store import ObjectStore, Record
from simulators.hubspot.wire import (
    FILTER_OPERATORS,
    SEARCH_MAX_FILTERS,
    SEARCH_MAX_FILTERS_PER_GROUP,
    SEARCH_MAX_GROUPS,
    ApiError,
    PropertyKind,
    Value,
    as_number,
    parse_datetime_value,
)


@dataclass
class FilterGroup:
    """One compiled filter group: all its filters must hold."""

    test: Callable[[Record], bool]
    # Set when every filter is a range on the created/modified date: (slot, lo, hi) inclusive.
    slot_range: tuple[str, int, int] | None


_BIG = 1 << 62


def _normalizer(kind: PropertyKind) -> Callable[[Value], Any]:
    """Stored value -> the comparable HubSpot compares (None: no usable value)."""
    if kind == "datetime":
        return lambda v: v if isinstance(v, int) else None
    if kind == "number":
        return as_number
    if kind == "enumeration":
        return lambda v: v if isinstance(v, str) and v != "" else None
    return lambda v: v.lower() if isinstance(v, str) and v != "" else None


def _filter_value(kind: PropertyKind, raw: object, name: str) -> Any:
    """A filter's value as a comparable; 400 when it cannot be read as the property's type."""
    if raw is None:
        raise ApiError(400, f"Filter on {name!r} needs a value")
    text = str(raw).lower() if isinstance(raw, bool) else str(raw)
    if kind == "datetime":
        parsed = parse_datetime_value(text)
        if parsed is None:
            raise ApiError(
                400,
                f"{text!r} is not a valid datetime value for {name!r}: "
                "use epoch milliseconds or an ISO 8601 string",
            )
        return parsed
    if kind == "number":
        number = as_number(text)
        if number is None:
            raise ApiError(400, f"{text!r} is not a valid number for {name!r}")
        return number
    if kind == "enumeration":
        return text
    return text.lower()


def _token_matcher(pattern: str) -> Callable[[str], bool]:
    regex = re.compile(
        "^" + ".*".join(re.escape(part) for part in pattern.lower().split("*")) + "$"
    )
    return lambda value: any(regex.match(token) for token in [value, *value.split()])


def _compile_filter(store: ObjectStore, raw: object) -> tuple[Callable[[Record], bool], Any]:
    """One filter as a predicate, plus its (slot, lo, hi) range when it is a simple date range."""
    if not isinstance(raw, dict):
        raise ApiError(400, "each filter must be an object")
    name = raw.get("propertyName")
    operator = raw.get("operator", "EQ")
    if operator not in FILTER_OPERATORS:
        raise ApiError(400, f"Invalid filter operator {operator!r}")
    if not isinstance(name, str) or name not in store.kinds:
        raise ApiError(
            400,
            f"Invalid filter: property {name!r} does not exist on {store.spec.name}",
            errors=[{"message": f"Property {name!r} does not exist", "in": "propertyName"}],
        )
    kind = store.kinds[name]
    get = store.raw_getter(name)
    norm = _normalizer(kind)
    slot = {
        store.spec.created_property: "created_ms",
        store.spec.modified_property: "modified_ms",
    }.get(name)

    if operator == "HAS_PROPERTY":
        return (lambda o: get(o) not in (None, "")), None
    if operator == "NOT_HAS_PROPERTY":
        return (lambda o: get(o) in (None, "")), None
    if operator in ("IN", "NOT_IN"):
        values = raw.get("values")
        if not isinstance(values, list) or not values:
            raise ApiError(400, f"Filter {operator} on {name!r} needs a non-empty 'values' list")
        # For string properties HubSpot wants the values lowercase already; they are not folded.
        wanted = {str(v) if kind == "string" else _filter_value(kind, v, name) for v in values}
        if operator == "IN":
            return (lambda o: norm(get(o)) in wanted), None
        return (lambda o: norm(get(o)) not in wanted), None
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        matcher = _token_matcher(str(raw.get("value", "")))
        contains = operator == "CONTAINS_TOKEN"

        def token_test(o: Record) -> bool:
            value = get(o)
            found = isinstance(value, str) and matcher(value.lower())
            return found if contains else not found

        return token_test, None

    v = _filter_value(kind, raw.get("value"), name)
    if operator == "BETWEEN":
        hv = _filter_value(kind, raw.get("highValue"), name)
        rng = (slot, v, hv) if slot else None
        return (lambda o: (s := norm(get(o))) is not None and v <= s <= hv), rng
    if operator == "NEQ":
        return (lambda o: (s := norm(get(o))) is None or s != v), None
    if operator == "EQ":
        return (lambda o: norm(get(o)) == v), ((slot, v, v) if slot else None)
    if operator == "LT":
        return (
            (lambda o: (s := norm(get(o))) is not None and s < v),
            (slot, -_BIG, v - 1) if slot else None,
        )
    if operator == "LTE":
        return (
            (lambda o: (s := norm(get(o))) is not None and s <= v),
            (slot, -_BIG, v) if slot else None,
        )
    if operator == "GT":
        return (
            (lambda o: (s := norm(get(o))) is not None and s > v),
            (slot, v + 1, _BIG) if slot else None,
        )
    return (
        (lambda o: (s := norm(get(o))) is not None and s >= v),
        (slot, v, _BIG) if slot else None,
    )


def _compile_group(store: ObjectStore, filters: list[Any]) -> FilterGroup:
    compiled = [_compile_filter(store, f) for f in filters]
    tests = [test for test, _ in compiled]
    ranges = [rng for _, rng in compiled]
    slot_range: tuple[str, int, int] | None = None
    if ranges and all(r is not None for r in ranges) and len({r[0] for r in ranges}) == 1:
        slot_range = (ranges[0][0], max(r[1] for r in ranges), min(r[2] for r in ranges))
    if not tests:
        return FilterGroup(lambda o: True, None)
    if len(tests) == 1:
        return FilterGroup(tests[0], slot_range)
    if len(tests) == 2:
        first, second = tests
        return FilterGroup(lambda o: first(o) and second(o), slot_range)

    def test_all(o: Record) -> bool:
        return all(t(o) for t in tests)

    return FilterGroup(test_all, slot_range)


def match(store: ObjectStore, groups: list[FilterGroup], query: str | None) -> list[Record]:
    """The live records matching any of the groups and the free-text query, in id order."""
    rows = store.rows
    if len(groups) == 1 and groups[0].slot_range is not None and not query:
        slot, lo, hi = groups[0].slot_range
        if slot == "modified_ms":
            return [o for o in rows if o.archived_ms is None and lo <= o.modified_ms <= hi]
        return [o for o in rows if o.archived_ms is None and lo <= o.created_ms <= hi]
    live = [o for o in rows if o.archived_ms is None]
    if len(groups) == 1:
        test = groups[0].test
        live = [o for o in live if test(o)]
    elif groups:
        tests = [g.test for g in groups]
        live = [o for o in live if any(t(o) for t in tests)]
    if query:
        needle = query.lower().strip("*")
        getters = [store.raw_getter(n) for n in store.spec.searchable if n in store.kinds]

        def hit(o: Record) -> bool:
            for get in getters:
                value = get(o)
                if isinstance(value, str) and needle in value.lower():
                    return True
            return False

        live = [o for o in live if hit(o)]
    return live


def compile_groups(store: ObjectStore, raw: object) -> list[FilterGroup]:
    """A request's ``filterGroups``, checked against HubSpot's limits and compiled."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ApiError(400, "filterGroups must be a list")
    if len(raw) > SEARCH_MAX_GROUPS:
        raise ApiError(400, f"Too many filterGroups: at most {SEARCH_MAX_GROUPS} are allowed")
    total = 0
    groups: list[FilterGroup] = []
    for group in raw:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list):
            raise ApiError(400, "each filterGroup needs a list of filters")
        if len(filters) > SEARCH_MAX_FILTERS_PER_GROUP:
            raise ApiError(
                400, f"Too many filters in a group: at most {SEARCH_MAX_FILTERS_PER_GROUP}"
            )
        total += len(filters)
        groups.append(_compile_group(store, filters))
    if total > SEARCH_MAX_FILTERS:
        raise ApiError(400, f"Too many filters: at most {SEARCH_MAX_FILTERS} in all")
    return groups


def compile_sort(
    store: ObjectStore, raw: object
) -> tuple[Callable[[Record], tuple[int, Any]], bool] | None:
    """A request's ``sorts`` (at most one) as (sort key, descending); None when unsorted."""
    if raw is None or raw == []:
        return None
    if not isinstance(raw, list):
        raise ApiError(400, "sorts must be a list")
    if len(raw) > 1:
        raise ApiError(400, "Only one sort is allowed per search")
    sort = raw[0]
    if not isinstance(sort, dict):
        # The client's model types sorts as list[str]; the API wants objects.
        raise ApiError(
            400, f'Invalid sort {sort!r}: expected {{"propertyName": ..., "direction": ...}}'
        )
    name = sort.get("propertyName")
    direction = sort.get("direction", "ASCENDING")
    if direction not in ("ASCENDING", "DESCENDING"):
        raise ApiError(400, f"Invalid sort direction {direction!r}")
    if not isinstance(name, str) or name not in store.kinds:
        raise ApiError(
            400,
            f"Cannot sort on unknown property {name!r}",
            errors=[{"message": f"Property {name!r} does not exist"}],
        )
    normalize = _normalizer(store.kinds[name])
    get = store.raw_getter(name)

    def key(o: Record) -> tuple[int, Any]:
        value = normalize(get(o))
        return (0, 0) if value is None else (1, value)

    return key, direction == "DESCENDING"
