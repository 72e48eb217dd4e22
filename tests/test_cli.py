"""The `iskpi` command line as a user runs it: sync with progress and summary, exit codes, no secrets."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.settings import Settings
from service.sync.scheduler import MISFIRE_GRACE_SECONDS, cron_trigger, start_scheduler
from simulators.hubspot.portal import HubSpotPortal, RunningPortal, serve_portal
from simulators.hubspot.seed import generate_dataset

TOKEN = "pat-na1-secret-cli-token"


@pytest.fixture(scope="module")
def portal() -> Iterator[RunningPortal]:
    hub = HubSpotPortal(TOKEN)
    hub.load(
        generate_dataset(
            seed=5,
            teams=1,
            reps_per_team=2,
            months=1,
            end=datetime(2026, 10, 31, tzinfo=UTC),
            calls_per_rep_day=5,
        )
    )
    running = serve_portal(hub)
    yield running
    running.stop()


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISKPI_")}
    env["ISKPI_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    env.update(extra)
    return env


def iskpi(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sync_prints_a_summary_and_exits_0(portal: RunningPortal, tmp_path: Path) -> None:
    env = env_for(tmp_path, ISKPI_HUBSPOT_ACCESS_TOKEN=TOKEN, ISKPI_HUBSPOT_BASE_URL=portal.url)
    result = iskpi("sync", "--source", "hubspot", env=env)
    assert result.returncode == 0, result.stderr
    assert "hubspot sync #1: ok" in result.stdout
    assert "trigger: cli" in result.stdout
    calls = portal.portal.count("calls") + portal.portal.count("calls", archived=True)
    assert f"calls       │ {calls:>7,}" in result.stdout or f"{calls:,}" in result.stdout
    assert "API calls" in result.stdout and "quarantined" in result.stdout
    assert TOKEN not in result.stdout + result.stderr


def test_sync_with_a_bad_token_exits_1_with_the_reason_and_no_secret(
    portal: RunningPortal, tmp_path: Path
) -> None:
    env = env_for(
        tmp_path, ISKPI_HUBSPOT_ACCESS_TOKEN="pat-wrong-token", ISKPI_HUBSPOT_BASE_URL=portal.url
    )
    result = iskpi("sync", env=env)
    assert result.returncode == 1
    assert "failed" in result.stdout
    assert "401" in result.stderr or "token" in result.stderr.lower()
    assert "pat-wrong-token" not in result.stdout + result.stderr


def test_sync_with_nothing_configured_says_what_to_set(tmp_path: Path) -> None:
    result = iskpi("sync", env=env_for(tmp_path))
    assert result.returncode == 1
    assert "ISKPI_HUBSPOT_ACCESS_TOKEN" in result.stderr


def test_sync_on_a_terminal_shows_a_progress_bar_per_stream(
    portal: RunningPortal, tmp_path: Path
) -> None:
    env = env_for(
        tmp_path,
        ISKPI_HUBSPOT_ACCESS_TOKEN=TOKEN,
        ISKPI_HUBSPOT_BASE_URL=portal.url,
        COLUMNS="120",
        TERM="xterm",
    )
    pid, fd = pty.fork()
    if pid == 0:  # the child: iskpi with its stdout on the pseudo-terminal
        os.execve(sys.executable, [sys.executable, "-m", "service", "sync"], env)
    output = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    for stream in ("owners", "contacts", "calls", "emails", "meetings", "tasks", "deals"):
        assert stream in text
    assert "━" in text  # rich's bar


def test_the_scheduler_runs_the_sync_on_the_cron_in_the_business_time_zone() -> None:
    settings = Settings(sync_cron="30 2 * * 1-5", timezone="Asia/Tokyo")
    scheduler = start_scheduler(settings, engine=None, connectors=lambda: [])  # type: ignore[arg-type]
    try:
        job = scheduler.get_job("nightly")
        assert job.max_instances == 1 and job.coalesce is True
        assert job.misfire_grace_time == MISFIRE_GRACE_SECONDS
        assert str(job.trigger.timezone) == "Asia/Tokyo"
        # Friday 2026-11-27 03:00 in Tokyo → the next run is Monday 02:30 Tokyo time.
        after = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)
        fire = job.trigger.get_next_fire_time(None, after)
        assert fire.isoformat() == "2026-11-30T02:30:00+09:00"
    finally:
        scheduler.shutdown(wait=False)


@pytest.mark.parametrize(
    ("expression", "fires"),
    [
        # From Friday 2026-11-27 03:00 UTC: weekdays in crontab's numbering (1-5 = Mon–Fri).
        ("0 2 * * 1-5", ["2026-11-30T02:00:00+00:00", "2026-12-01T02:00:00+00:00"]),
        ("0 2 * * 0", ["2026-11-29T02:00:00+00:00", "2026-12-06T02:00:00+00:00"]),
        ("0 2 * * 7", ["2026-11-29T02:00:00+00:00", "2026-12-06T02:00:00+00:00"]),
        ("0 2 * * 0-1", ["2026-11-29T02:00:00+00:00", "2026-11-30T02:00:00+00:00"]),
        ("0 2 * * 5,6", ["2026-11-27T02:00:00+00:00", "2026-11-28T02:00:00+00:00"]),
        ("15 */12 * * *", ["2026-11-27T12:15:00+00:00", "2026-11-28T00:15:00+00:00"]),
    ],
)
def test_crontab_expressions_mean_what_cron_means(expression: str, fires: list[str]) -> None:
    trigger = cron_trigger(expression, UTC)
    start = (
        datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
        if "5,6" not in expression
        else datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    )
    first = trigger.get_next_fire_time(None, start)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    assert [first.isoformat(), second.isoformat()] == fires


@pytest.mark.parametrize("expression", ["0 2 * *", "0 2 * * 8", "0 2 * * 5-1"])
def test_a_bad_cron_expression_is_refused_with_its_text(expression: str) -> None:
    with pytest.raises(ValueError, match="ISKPI_SYNC_CRON"):
        cron_trigger(expression, UTC)
