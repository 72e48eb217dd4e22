"""`iskpi kpis`: the terminal table, through typer, on both engines."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner

from service.cli import kpis as kpi_cli
from service.settings import get_settings
from tests.support.db import POSTGRES_URL
from tests.support.kpi_records import FIXTURE, put


@pytest.fixture
def cli(
    engine: Engine, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[typer.Typer]:
    if engine.dialect.name == "sqlite":
        url = engine.url.render_as_string(hide_password=False)
    else:
        schema = request.getfixturevalue("postgres_schema")
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    monkeypatch.setenv("ISKPI_DATABASE_URL", url)
    monkeypatch.setenv("ISKPI_TIMEZONE", "Asia/Tokyo")
    monkeypatch.setenv("ISKPI_HOLIDAYS", "JP")
    get_settings.cache_clear()
    put(engine, FIXTURE)
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """iskpi"""

    kpi_cli.register(app)
    yield app
    get_settings.cache_clear()


def test_kpis_month_by_rep(cli: typer.Typer) -> None:
    result = CliRunner().invoke(
        cli,
        ["kpis", "--month", "2026-10", "--scope", "rep", "--kpi", "calls,connect_rate"],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    out = result.output
    # One table per rep, the no-activity rep included; r1: 5 calls, 3 of 5 connected.
    for title in ("Aiko (hubspot:r1)", "Ben (hubspot:r2)", "Chie (hubspot:r3)", "Dai (hubspot:r5)"):
        assert title in out
    aiko = out.split("Aiko (hubspot:r1)")[1].split("Ben (hubspot:r2)")[0]
    assert "架電数" in aiko and "2026-10-01" in aiko
    assert "1,680 – 2,520" in aiko and "below" in aiko  # 80–120 × 21 business days × 1 rep
    assert "60.0%" in aiko and "above" in aiko


def test_kpis_date_range_with_breakdown_and_errors(cli: typer.Typer) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "kpis",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-31",
            "--kpi",
            "lead_supply",
            "--by",
            "channel",
        ],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    assert "web" in result.output and "channel" in result.output
    bad = runner.invoke(cli, ["kpis", "--month", "2026-10", "--kpi", "nope"])
    assert bad.exit_code == 2 and "kpi: unknown KPI 'nope'" in bad.output
    assert runner.invoke(cli, ["kpis", "--month", "October"]).exit_code == 2
    assert runner.invoke(cli, ["kpis"]).exit_code == 2
