"""Configuration mistakes stop `iskpi` at start with one line naming the variable, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.sync.scheduler import cron_trigger


def run(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISKPI_")}
    env["ISKPI_DATABASE_URL"] = f"sqlite:///{tmp_path / 'config.db'}"
    env["ISKPI_HUBSPOT_ACCESS_TOKEN"] = "pat-test"
    env["ISKPI_HUBSPOT_BASE_URL"] = "http://127.0.0.1:1"
    env.update(extra)
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def one_line(result: subprocess.CompletedProcess[str], variable: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    # Start-up log lines (migrations at INFO) may come first; the error is one line.
    lines = [line for line in result.stderr.splitlines() if line.strip() and " INFO " not in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {variable}: "), lines
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["serve", "sync", "migrate"])
def test_a_postgres_url_is_one_line(tmp_path: Path, command: str) -> None:
    result = run(tmp_path, command, ISKPI_DATABASE_URL="postgres://u@localhost/db")
    assert "postgresql+psycopg://" in one_line(result, "ISKPI_DATABASE_URL")


def test_a_bad_setting_is_one_line(tmp_path: Path) -> None:
    result = run(tmp_path, "serve", ISKPI_TIMEZONE="Mars/Olympus")
    assert "Mars/Olympus" in one_line(result, "ISKPI_TIMEZONE")


@pytest.mark.parametrize("cron", ["0 2 * *", "0 25 * * *", "0 2 * * 8"])
def test_a_bad_cron_stops_serve_with_one_line(tmp_path: Path, cron: str) -> None:
    one_line(run(tmp_path, "serve", ISKPI_SYNC_CRON=cron), "ISKPI_SYNC_CRON")


def test_bad_business_hours_stop_serve_with_one_line(tmp_path: Path) -> None:
    line = one_line(run(tmp_path, "serve", ISKPI_BUSINESS_HOURS="9-18"), "ISKPI_BUSINESS_HOURS")
    assert "HH:MM-HH:MM" in line


def test_a_bad_webhook_url_is_one_line_without_the_url(tmp_path: Path) -> None:
    url = "hooks.slack.com/services/T0/B0/secret-path-token"
    line = one_line(run(tmp_path, "serve", ISKPI_ALERT_WEBHOOK_URL=url), "ISKPI_ALERT_WEBHOOK_URL")
    assert line == "error: ISKPI_ALERT_WEBHOOK_URL: not an http:// or https:// URL with a host"


@pytest.mark.parametrize("command", ["serve", "sync"])
def test_a_bad_mapping_file_stops_at_start_naming_the_key(tmp_path: Path, command: str) -> None:
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[hubspot.fields.call]\nno_such_field = "x"\n')
    line = one_line(run(tmp_path, command, ISKPI_MAPPING_FILE=str(mapping)), "ISKPI_MAPPING_FILE")
    assert "no_such_field" in line


def test_a_changed_time_zone_is_refused_until_a_full_sync(tmp_path: Path) -> None:
    first = run(tmp_path, "migrate", ISKPI_TIMEZONE="Asia/Tokyo")
    assert first.returncode == 0, first.stderr
    # The first sync records the store's zone (it fails: the CRM is unreachable).
    synced = run(tmp_path, "sync", ISKPI_TIMEZONE="Asia/Tokyo")
    assert synced.returncode == 1
    assert "cannot be reached at 127.0.0.1" in synced.stderr + synced.stdout
    for command in ("serve", "sync"):
        line = one_line(run(tmp_path, command, ISKPI_TIMEZONE="UTC"), "ISKPI_TIMEZONE")
        assert "Asia/Tokyo" in line and "iskpi sync --full" in line
    # A --full sync is allowed to start in the new zone.
    full = run(tmp_path, "sync", "--full", ISKPI_TIMEZONE="UTC")
    assert full.returncode == 1 and "error: ISKPI_TIMEZONE" not in full.stderr


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("*/2", ["Sun", "Tue", "Thu", "Sat"]),
        ("1-5/2", ["Mon", "Wed", "Fri"]),
        ("5-7", ["Fri", "Sat", "Sun"]),
        ("mon-wed", ["Mon", "Tue", "Wed"]),
    ],
)
def test_day_of_week_steps_mean_what_crontab_means(field: str, days: list[str]) -> None:
    trigger = cron_trigger(f"0 2 * * {field}", UTC)
    at = datetime(2026, 11, 29, 0, 0, tzinfo=UTC)  # a Sunday
    seen: list[str] = []
    fire = None
    for _ in range(len(days)):
        fire = trigger.get_next_fire_time(fire, at)
        assert fire is not None
        seen.append(f"{fire:%a}")
        at = fire + timedelta(seconds=1)
    assert sorted(seen) == sorted(days)


def test_a_full_sync_in_the_new_zone_moves_the_store_to_it(tmp_path: Path) -> None:
    from simulators.hubspot.portal import HubSpotPortal, serve_portal

    running = serve_portal(HubSpotPortal("pat-zone"))  # an empty portal: syncs are quick
    try:
        crm = {"ISKPI_HUBSPOT_ACCESS_TOKEN": "pat-zone", "ISKPI_HUBSPOT_BASE_URL": running.url}
        assert run(tmp_path, "sync", ISKPI_TIMEZONE="Asia/Tokyo", **crm).returncode == 0
        one_line(run(tmp_path, "sync", ISKPI_TIMEZONE="UTC", **crm), "ISKPI_TIMEZONE")
        full = run(tmp_path, "sync", "--full", ISKPI_TIMEZONE="UTC", **crm)
        assert full.returncode == 0, full.stderr
        again = run(tmp_path, "sync", ISKPI_TIMEZONE="UTC", **crm)
        assert again.returncode == 0, again.stderr
        one_line(run(tmp_path, "sync", ISKPI_TIMEZONE="Asia/Tokyo", **crm), "ISKPI_TIMEZONE")
    finally:
        running.stop()
