"""`iskpi --help` loads only the command line: the heavy libraries load when a command runs."""

from __future__ import annotations

import subprocess
import sys

from kpi import BYS, GRAINS, SCOPES
from service.cli import kpis

HEAVY = ("fastapi", "sqlalchemy", "alembic", "hubspot", "simple_salesforce", "kpi", "uvicorn")


def test_the_cli_imports_none_of_the_heavy_libraries() -> None:
    probe = f"import sys, service.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []


def test_the_kpis_help_names_what_the_engine_accepts() -> None:
    assert kpis.GRAINS_HELP == " | ".join(GRAINS)
    assert kpis.SCOPES_HELP == " | ".join(SCOPES)
    assert kpis.BYS_HELP == " | ".join(BYS)
