"""Two `iskpi serve` replicas scheduled at the same minute sync once between them.

Each store (a SQLite file, a PostgreSQL schema) gets two real `iskpi serve`
processes with ISKPI_SYNC_CRON="* * * * *" against one simulated HubSpot portal.
At the first whole minute after all four are up, every replica fires; for each
store exactly one scheduled run may exist for that minute, and the other replica
must have logged that it skipped.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
from sqlalchemy import select, text

from models import SyncRun
from service.db import make_engine, migrate
from simulators.hubspot.portal import HubSpotPortal, serve_portal
from tests.support.db import POSTGRES_URL
from tests.support.hubspot import TOKEN, small_dataset


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_two_replicas_firing_the_same_minute_sync_once(tmp_path: Path) -> None:
    hub = HubSpotPortal(TOKEN)
    hub.load(small_dataset())
    portal = serve_portal(hub)
    schema = f"iskpi_replicas_{uuid.uuid4().hex[:8]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    stores = {
        "sqlite": f"sqlite:///{tmp_path / 'replicas.db'}",
        "postgresql": f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema}')}",
    }
    for url in stores.values():  # migrated up front, so the replicas start alike
        migrate(make_engine(url))
    iskpi = str(Path(sys.executable).with_name("iskpi"))
    replicas: list[tuple[str, subprocess.Popen[bytes], Path, int]] = []
    try:
        for name, url in stores.items():
            for replica in (1, 2):
                port = free_port()
                log = tmp_path / f"{name}-{replica}.log"
                env = {
                    **os.environ,
                    "ISKPI_DATABASE_URL": url,
                    "ISKPI_HUBSPOT_ACCESS_TOKEN": TOKEN,
                    "ISKPI_HUBSPOT_BASE_URL": portal.url,
                    "ISKPI_SYNC_CRON": "* * * * *",
                    "ISKPI_SYNC_INTRADAY_MINUTES": "0",  # the nightly schedule alone
                    "ISKPI_TIMEZONE": "UTC",
                }
                with log.open("wb") as out:
                    process = subprocess.Popen(
                        [iskpi, "serve", "--port", str(port)], env=env, stdout=out, stderr=out
                    )
                replicas.append((name, process, log, port))
        for _, process, log, port in replicas:
            for _ in range(300):
                assert process.poll() is None, log.read_text()
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
        ready = datetime.now(UTC)
        minute = ready.replace(second=0, microsecond=0) + timedelta(minutes=1)
        if (minute - ready).total_seconds() < 2:  # too close to call: take the next one
            minute += timedelta(minutes=1)
        deadline = minute + timedelta(seconds=90)
        runs: dict[str, list[tuple[int, str]]] = {}
        while datetime.now(UTC) < deadline:
            time.sleep(1)
            if datetime.now(UTC) < minute + timedelta(seconds=3):
                continue
            for name, url in stores.items():
                engine = make_engine(url)
                with engine.connect() as conn:
                    runs[name] = [
                        (run_id, status)
                        for run_id, status in conn.execute(
                            select(SyncRun.id, SyncRun.status).where(
                                SyncRun.trigger == "nightly",
                                SyncRun.started_at >= minute,
                                SyncRun.started_at < minute + timedelta(minutes=1),
                            )
                        )
                    ]
                engine.dispose()
            if all(rows and all(s != "running" for _, s in rows) for rows in runs.values()):
                break
        for name in stores:
            assert [status for _, status in runs[name]] == ["ok"], (name, runs)
            logs = [log.read_text() for store, _, log, _ in replicas if store == name]
            assert sum("scheduled sync skipped" in text_ for text_ in logs) == 1, logs
    finally:
        for _, process, _, _ in replicas:
            process.terminate()
        for _, process, _, _ in replicas:
            process.wait(timeout=30)
        portal.stop()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
