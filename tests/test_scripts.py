"""The README's demo command, run as a user runs it: scripts/demo.sh with its flags.

The script is run for real (it reuses the project's .venv, so it is quick once that
exists). Every argument must reach `iskpi demo`: `--no-serve` stops after the sync,
`--port` serves the dashboard and the API there. The store goes to a temporary file
(`--database`) so a run never touches ./iskpi-demo.db, and ISKPI_* variables from the
caller's environment are dropped so the demo uses its documented defaults.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "scripts" / "demo.sh"
DEMO_READ_TOKEN = "demo-read"  # the README's documented read token of the demo


def demo_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ISKPI_")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_demo_no_serve_syncs_and_exits(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'demo.db'}"
    run = subprocess.run(
        ["bash", str(DEMO), "--no-serve", "--months", "1", "--database", database],
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # The sync summary: one table per source with its status, records per stream, API calls.
    assert "hubspot sync #1: ok" in run.stdout, run.stdout
    for row in ("calls", "deals", "API calls"):
        assert row in run.stdout, run.stdout
    assert (tmp_path / "demo.db").stat().st_size > 0
    assert "dashboard at" not in run.stdout  # --no-serve: nothing served
    _check_demo_targets(database)


def _check_demo_targets(database: str) -> None:
    """This month's targets: the suggestion's three levels, confirmed by "demo", per scope."""
    from kpi import list_revisions, list_targets, suggest_targets
    from kpi.periods import period_start
    from service.db import make_engine
    from service.settings import Settings, kpi_context

    engine = make_engine(database)
    try:
        ctx = kpi_context(Settings(database_url=database, timezone="Asia/Tokyo", holidays="JP"))
        month = period_start(ctx.today(), "month")
        stored = list_targets(engine, grain="month", start=month, end=month, level=None)
        by_key = {(t.kpi, t.scope, t.scope_id, t.level): t for t in stored}
        assert {t.scope for t in stored} == {"org", "team", "rep"}
        assert {t.status for t in stored} == {"confirmed"}
        for scope in ("org", "team", "rep"):
            for kpi in ("calls", "meetings_set", "connect_rate"):
                for s in suggest_targets(engine, ctx, kpi=kpi, scope=scope):
                    for level in ("minimum", "achievement", "stretch"):
                        value = getattr(s, level)
                        if value:
                            got = by_key[kpi, scope, s.scope_id, level].value
                            assert got == value, (kpi, scope, level)
        calls = by_key["calls", "org", "org", "minimum"].value
        assert calls < by_key["calls", "org", "org", "stretch"].value
        revisions = list_revisions(engine, period_start=month, limit=None)
        assert len(revisions) == len(stored) and {r.who for r in revisions} == {"demo"}
    finally:
        engine.dispose()


def test_demo_port_serves_the_dashboard_and_the_api(tmp_path: Path) -> None:
    port = free_port()
    database = f"sqlite:///{tmp_path / 'demo.db'}"
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        demo = subprocess.Popen(
            ["bash", str(DEMO), "--port", str(port), "--months", "1", "--database", database],
            env=demo_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one below
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert demo.poll() is None, f"demo.sh exited {demo.returncode}:\n{log.read_text()}"
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no answer on {base}/healthz within 240 s:\n{log.read_text()}")
            time.sleep(0.5)
        headers = {"Authorization": f"Bearer {DEMO_READ_TOKEN}"}
        # The demo serves at once and syncs in the background: its calls arrive page by page.
        while True:
            kpis = httpx.get(
                f"{base}/v1/kpis",
                params={"kpi": "calls", "scope": "org"},
                headers=headers,
                timeout=30,
            )
            assert kpis.status_code == 200, kpis.text
            rows = kpis.json()["data"]
            if sum(row["value"] or 0 for row in rows) > 0:
                break  # the synced calls are there
            if time.monotonic() > deadline:
                pytest.fail(f"no calls on {base}/v1/kpis within 240 s:\n{log.read_text()}")
            time.sleep(0.5)
        assert httpx.get(f"{base}/v1/kpis", timeout=10).status_code == 401  # tokens are on
        assert httpx.get(f"{base}/", timeout=10).status_code == 200  # the dashboard page
        assert f"dashboard at http://127.0.0.1:{port}/" in log.read_text()
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
            try:
                demo.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait()
