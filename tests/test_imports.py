"""The import graph: no cycles anywhere, and each layer imports only what STYLE.md allows.

Imports are read from the source (ast), not by importing it: every ``import`` and ``from``
statement counts, at module level, under ``if TYPE_CHECKING:`` and inside functions, since
a function-level import that closes a cycle is a cycle deferred, not a cycle removed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("connectors", "models", "kpi", "service", "simulators", "migrations")
PRODUCT = frozenset({"connectors", "models", "kpi", "service", "migrations"})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    """Every module of the packages, by dotted name."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _resolve(name: str) -> str | None:
    """The module of ours a dotted name lands in (``a.b.func`` → ``a.b``); None if not ours."""
    modules = _modules()
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _imported_names(module: str, path: Path) -> Iterator[str]:
    """The dotted names one module imports, relative imports made absolute."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name``
                # imports mod (resolved below).
                yield f"{base}.{alias.name}" if alias.name != "*" else base


@cache
def _graph() -> dict[str, frozenset[str]]:
    """Module → the modules of ours it imports."""
    graph: dict[str, frozenset[str]] = {}
    for module, path in _modules().items():
        targets = {_resolve(name) for name in _imported_names(module, path)}
        graph[module] = frozenset(t for t in targets if t is not None and t != module)
    return graph


def _cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """One cycle (as a closed path) per strongly connected component larger than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0

    def strongconnect(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                strongconnect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)

    cycles: list[list[str]] = []
    for component in components:
        start = min(component)
        # Breadth-first from start back to start, inside the component: the shortest cycle.
        paths: dict[str, list[str]] = {start: [start]}
        frontier = [start]
        cycle: list[str] | None = None
        while frontier and cycle is None:
            following: list[str] = []
            for node in frontier:
                for target in sorted(graph[node] & component):
                    if target == start:
                        cycle = [*paths[node], start]
                        break
                    if target not in paths:
                        paths[target] = [*paths[node], target]
                        following.append(target)
                if cycle is not None:
                    break
            frontier = following
        assert cycle is not None
        cycles.append(cycle)
    return cycles


def _violations(layer: str, forbidden: frozenset[str]) -> list[str]:
    """``module -> imported`` for each import from ``layer`` into a forbidden top-level package."""
    out: list[str] = []
    for module, targets in sorted(_graph().items()):
        if module.split(".")[0] != layer:
            continue
        out.extend(f"{module} -> {t}" for t in sorted(targets) if t.split(".")[0] in forbidden)
    return out


def test_the_import_graph_sees_every_package() -> None:
    graph = _graph()
    for package in PACKAGES:
        assert package in graph, f"{package} has no __init__.py"
    # A known edge, so a resolver that finds nothing cannot pass the tests below vacuously.
    assert "simulators.hubspot.wire" in graph["simulators.hubspot.seed"]
    assert "connectors.errors" in graph["connectors.salesforce.client"]


def test_no_import_cycles() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_names_a_cycle() -> None:
    graph = {
        "a": frozenset({"b"}),
        "b": frozenset({"c"}),
        "c": frozenset({"a"}),
        "d": frozenset({"a"}),
    }
    assert _cycles(graph) == [["a", "b", "c", "a"]]


def test_simulators_import_nothing_of_the_product() -> None:
    assert _violations("simulators", PRODUCT) == []


def test_models_import_neither_connectors_nor_anything_above() -> None:
    assert _violations("models", frozenset({"connectors", "kpi", "service", "simulators"})) == []


def test_connectors_import_neither_models_nor_anything_above() -> None:
    assert _violations("connectors", frozenset({"models", "kpi", "service", "simulators"})) == []


def test_kpi_imports_only_models_of_the_product() -> None:
    assert (
        _violations("kpi", frozenset({"connectors", "service", "simulators", "migrations"})) == []
    )


@pytest.mark.parametrize("package", ["simulators", "connectors", "models", "kpi"])
def test_lower_layers_never_import_tests_or_bench(package: str) -> None:
    imported = {
        name.split(".")[0]
        for module, path in _modules().items()
        if module.split(".")[0] == package
        for name in _imported_names(module, path)
    }
    assert not imported & {"tests", "bench"}
