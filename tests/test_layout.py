"""The tests' own layout: shared fixtures and helpers live in tests/support/, never in a test.

A test module that imports another runs that module's fixtures and module-level setup in
a place nobody looks for them, and moving or renaming a test breaks unrelated ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
TEST_MODULES = sorted(TESTS.glob("test_*.py"))
SUPPORT_MODULES = sorted((TESTS / "support").glob("*.py"))


def is_test_module(name: str) -> bool:
    """Whether a dotted module name (absolute, or relative to tests/) names a test module."""
    parts = name.split(".")
    if parts[0] == "tests":
        parts = parts[1:]
    return bool(parts) and (parts[0].startswith("test_") or parts[0] == "conftest")


def imported_test_modules(path: Path) -> list[str]:
    """The test modules (and conftest) that ``path`` imports, as ``line: module``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            # `from tests import test_x` and `from . import test_x` name the module in names.
            if node.level or base == "tests" or not base:
                names = [base] if base else []
                names += [alias.name for alias in node.names]
            else:
                names = [base]
        else:
            continue
        found += [f"{node.lineno}: {name}" for name in names if name and is_test_module(name)]
    return found


def test_the_layout_is_found() -> None:
    # So a moved tests/ folder cannot pass the tests below vacuously.
    assert len(TEST_MODULES) > 20
    assert (TESTS / "support" / "__init__.py").exists()
    assert {p.stem for p in SUPPORT_MODULES} >= {"db", "salesforce"}


@pytest.mark.parametrize(
    "path", TEST_MODULES + SUPPORT_MODULES, ids=lambda p: str(p.relative_to(TESTS))
)
def test_no_module_imports_a_test_module_or_conftest(path: Path) -> None:
    imported = imported_test_modules(path)
    assert not imported, (
        f"{path.relative_to(TESTS)} imports test modules (move what it needs to tests/support/): "
        + ", ".join(imported)
    )


def test_support_holds_no_tests() -> None:
    # pytest would collect a tests/support/test_*.py, and run its imported fixtures twice.
    assert not [p.name for p in SUPPORT_MODULES if p.name.startswith("test_")]


def test_the_check_sees_every_import_form(tmp_path: Path) -> None:
    source = tmp_path / "test_sample.py"
    source.write_text(
        "import tests.test_a\n"
        "from tests.test_b import x\n"
        "from tests import test_c\n"
        "from . import test_d\n"
        "from .test_e import y\n"
        "from tests.conftest import z\n"
        "from tests.support.db import truncate\n"
        "from tests import support\n"
        "import testing_helpers\n",
        encoding="utf-8",
    )
    assert imported_test_modules(source) == [
        "1: tests.test_a",
        "2: tests.test_b",
        "3: test_c",
        "4: test_d",
        "5: test_e",
        "6: tests.conftest",
    ]
