"""What a silly date or an oversized request costs the API: a quick 4xx, nothing more.

- Every date and month parameter outside 2000-01-01 … 2100-12-31 is a 422 naming it,
  answered in milliseconds (as_of=9990-06-15 once took two minutes; year 1 a 500).
- A body without a token is a 401 before it is read; bodies have per-route limits.
- Big /v1/kpis builds wait their turn; audit names are HMACs, stable across restarts.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from service.app import create_app
from service.errors import Busy
from service.limits import DEFAULT_BODY_BYTES, MAX_TARGETS, BuildGate
from service.settings import Settings

READ = "read-token-for-limits"
ADMIN = "admin-token-for-limits"
# "Quick": a refused request takes about 10 ms; the bad dates took 10 s to 2 minutes.
QUICK = 2.0
NOW = datetime.fromisoformat("2026-11-15T12:00:00+09:00")


def limits_settings(**kw: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": "sqlite://",
        "timezone": "Asia/Tokyo",
        "read_tokens": [SecretStr(READ)],
        "admin_tokens": [SecretStr(ADMIN)],
        "now": NOW,
    }
    return Settings(**{**values, **kw})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(limits_settings(), engine)) as test_client:
        yield test_client


TARGET = {"kpi": "calls", "grain": "month", "scope": "org", "value": 1}

# (method, path, query, body, where the bad value is)
BAD_DATES: list[tuple[str, str, dict[str, str], Any, list[str | int]]] = [
    ("GET", "/v1/forecast", {"as_of": "9990-06-15"}, None, ["query", "as_of"]),
    ("GET", "/v1/forecast", {"as_of": "0001-01-01"}, None, ["query", "as_of"]),
    ("GET", "/v1/forecast", {"month": "9999-12"}, None, ["query", "month"]),
    ("GET", "/v1/funnel", {"month": "7267-07"}, None, ["query", "month"]),
    ("GET", "/v1/funnel", {"month": "0000-01"}, None, ["query", "month"]),
    (
        "GET",
        "/v1/targets/suggest",
        {"kpi": "calls", "as_of": "9999-12-31"},
        None,
        ["query", "as_of"],
    ),
    (
        "GET",
        "/v1/targets/suggest",
        {"kpi": "calls", "as_of": "1999-12-31"},
        None,
        ["query", "as_of"],
    ),
    ("POST", "/v1/plan", {}, {"won_target": 10, "month": "0000-01"}, ["body", "month"]),
    ("POST", "/v1/plan", {"as_of": "9990-06-15"}, {"won_target": 10}, ["query", "as_of"]),
    ("GET", "/v1/kpis", {"to": "9999-12-31"}, None, ["query", "to"]),
    ("GET", "/v1/kpis", {"from": "0001-01-01", "to": "2026-11-30"}, None, ["query", "from"]),
    ("GET", "/v1/kpis", {"to": "2101-01-01"}, None, ["query", "to"]),
    ("GET", "/v1/targets", {"from": "0001-01-01"}, None, ["query", "from"]),
    (
        "PUT",
        "/v1/targets",
        {},
        [{**TARGET, "period_start": "9999-12-01"}],
        ["body", 0, "period_start"],
    ),
    ("PUT", "/v1/costs", {}, {"month": "0000-12", "amount": 1}, ["body", "month"]),
]


@pytest.mark.parametrize(("method", "path", "query", "body", "loc"), BAD_DATES)
def test_a_date_outside_the_bounds_is_a_quick_422_naming_it(
    client: TestClient,
    method: str,
    path: str,
    query: dict[str, str],
    body: Any,
    loc: list[str | int],
) -> None:
    began = time.perf_counter()
    response = client.request(method, path, params=query, json=body, headers=bearer(ADMIN))
    elapsed = time.perf_counter() - began
    assert response.status_code == 422, response.text
    items = response.json()["detail"]
    assert [item["loc"] for item in items] == [loc]
    assert "2000-01" in items[0]["msg"] and "2100-12" in items[0]["msg"]
    assert elapsed < QUICK, elapsed  # ~10 ms; generous for a shared, busy machine


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/forecast", {"as_of": "2100-12-31"}),
        ("/v1/forecast", {"as_of": "2000-01-01"}),
        ("/v1/funnel", {"month": "2100-12"}),
        ("/v1/targets/suggest", {"kpi": "calls", "as_of": "2000-01-01"}),
        ("/v1/kpis", {"to": "2100-12-31"}),
    ],
)
def test_the_bounds_themselves_are_answered(
    client: TestClient, path: str, query: dict[str, str]
) -> None:
    began = time.perf_counter()
    response = client.get(path, params=query, headers=bearer(READ))
    assert response.status_code == 200, response.text
    assert time.perf_counter() - began < 10


# --- requests -------------------------------------------------------------------------------


def test_a_big_body_without_a_token_is_a_401_before_it_is_read(client: TestClient) -> None:
    read: list[int] = []

    def body() -> Iterator[bytes]:  # streamed: counts what the server pulled
        for _ in range(20):
            read.append(1)
            yield b" " * 2**20

    began = time.perf_counter()
    response = client.put(
        "/v1/targets", content=body(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert time.perf_counter() - began < QUICK
    # With a wrong token too; and announced, not streamed.
    response = client.put(
        "/v1/targets",
        content=b"[" + b" " * 20 * 2**20 + b"]",
        headers={**bearer("not-a-token"), "Content-Type": "application/json"},
    )
    assert response.status_code == 401


def test_bodies_have_small_limits_per_route(client: TestClient) -> None:
    big_plan = {"won_target": 10, "id": "x" * (DEFAULT_BODY_BYTES + 1)}
    response = client.post("/v1/plan", json=big_plan, headers=bearer(READ))
    assert response.status_code == 413
    response = client.put("/v1/costs", content=b" " * 70_000, headers=bearer(ADMIN))
    assert response.status_code == 413
    # PUT /v1/targets takes more, up to MAX_TARGETS targets.
    target = {**TARGET, "period_start": "2026-11-01"}
    response = client.put("/v1/targets", json=[target] * 1_000, headers=bearer(ADMIN))
    assert response.status_code == 200, response.text
    response = client.put("/v1/targets", json=[target] * (MAX_TARGETS + 1), headers=bearer(ADMIN))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]


def test_big_kpi_answers_wait_their_turn_then_get_503(engine: Engine) -> None:
    app = create_app(limits_settings(api_kpi_builds=1, api_kpi_build_wait_seconds=0.2), engine)
    gate = app.state.kpi_builds
    assert isinstance(gate, BuildGate)
    gate._semaphore = asyncio.Semaphore(0)  # every slot taken by builds still running
    with TestClient(app) as test_client:
        big = {"grain": "day", "scope": "rep", "from": "2026-01-01", "to": "2026-11-30"}
        response = test_client.get("/v1/kpis", params=big, headers=bearer(READ))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        # A small answer does not queue behind the big ones.
        small = {"kpi": "calls", "from": "2026-11-01", "to": "2026-11-30"}
        response = test_client.get("/v1/kpis", params=small, headers=bearer(READ))
        assert response.status_code == 200
        gate._semaphore.release()
        response = test_client.get("/v1/kpis", params=big, headers=bearer(READ))
        assert response.status_code == 200


def test_the_build_gate_lets_slots_through_and_times_out_the_rest() -> None:
    async def scenario() -> list[str]:
        gate = BuildGate(2, 0.05)
        release = asyncio.Event()
        events: list[str] = []

        async def build(name: str) -> None:
            try:
                async with gate.turn(big=True):
                    events.append(f"{name} built")
                    await release.wait()
            except Busy:
                events.append(f"{name} busy")

        tasks = [asyncio.create_task(build(n)) for n in ("a", "b", "c")]
        await asyncio.sleep(0.2)
        release.set()
        await asyncio.gather(*tasks)
        async with gate.turn(big=True):
            events.append("d built")
        return events

    assert sorted(asyncio.run(scenario())) == ["a built", "b built", "c busy", "d built"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_iskpi_serve_bounds_headers_and_redacts_tokens_in_the_access_log(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISKPI_")}
    env["ISKPI_DATABASE_URL"] = f"sqlite:///{tmp_path / 'serve.db'}"
    env["ISKPI_READ_TOKENS"] = READ
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=out,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120  # start-up on a loaded 2-core machine
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "iskpi serve did not answer /healthz"
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        # Refused either way: uvicorn's parser drops the connection when the header arrives in
        # pieces past its limit; arriving whole, it reaches the app, which answers 431.
        try:
            response = httpx.get(f"{base}/healthz", headers={"X-Big": "x" * 100_000}, timeout=10)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            pass
        else:
            assert response.status_code in (400, 431)
        assert process.poll() is None, "iskpi serve died on a large header"
        secret = "tok-in-the-url-0123456789"
        response = httpx.get(f"{base}/healthz", params={"token": secret, "x": "1"}, timeout=10)
        assert response.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
    text = log.read_text()
    assert "/healthz?token=***&x=1" in text, text
    assert secret not in text


def test_a_huge_header_is_a_431(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Big": "x" * 100_000})
    assert response.status_code == 431
    response = client.get("/v1/kpis", params={"kpi": "x" * 20_000}, headers=bearer(READ))
    assert response.status_code == 431


# --- audit names ------------------------------------------------------------------------------


def caller_name(app: Any) -> str:
    with TestClient(app) as test_client:
        response = test_client.post(
            "/v1/targets/push", params={"dry_run": "true"}, headers=bearer(ADMIN)
        )
    # No CRM is configured: the push is refused, but the name is what the app computes.
    assert response.status_code in (200, 409), response.text
    from service.auth import audit_key, audit_name

    class Req:
        def __init__(self, a: Any) -> None:
            self.app = a

    return audit_name("admin", 1, ADMIN, audit_key(Req(app)))  # type: ignore[arg-type]


def test_audit_names_are_hmacs_stable_across_restarts(engine: Engine) -> None:
    first = caller_name(create_app(limits_settings(), engine))
    second = caller_name(create_app(limits_settings(), engine))
    assert first == second
    assert first.startswith("admin#1 (hmac:")
    assert ADMIN not in first
    plain = hashlib.sha256(ADMIN.encode()).hexdigest()
    for length in range(6, 17):
        assert plain[:length] not in first
    # A configured secret names callers by it instead.
    configured = caller_name(
        create_app(limits_settings(audit_secret=SecretStr("s3cret-for-audit")), engine)
    )
    assert configured != first and configured.startswith("admin#1 (hmac:")


def test_cli_pushes_are_audited_as_user_at_host() -> None:
    from service.cli.targets import cli_user

    name = cli_user()
    assert name == f"{getpass.getuser()}@{socket.gethostname()}"


def test_every_date_parameter_of_the_openapi_document_is_bounded(client: TestClient) -> None:
    """A guard for routes to come: any query date or month far out is a quick 422 naming it."""
    spec = client.get("/openapi.json").json()
    checked = 0
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            for parameter in operation.get("parameters", []):
                schema = str(parameter.get("schema"))
                if "'format': 'date'" in schema:
                    far = "9990-06-15"
                elif "(0[1-9]|1[0-2])" in schema:
                    far = "9990-06"
                else:
                    continue
                params = {parameter["name"]: far}
                if path == "/v1/targets/suggest":
                    params["kpi"] = "calls"
                body = {"won_target": 1} if path == "/v1/plan" else None
                began = time.perf_counter()
                response = client.request(
                    method.upper(), path, params=params, json=body, headers=bearer(ADMIN)
                )
                assert response.status_code == 422, (method, path, parameter["name"])
                locs = [item["loc"] for item in response.json()["detail"]]
                assert ["query", parameter["name"]] in locs, (path, locs)
                assert time.perf_counter() - began < QUICK
                checked += 1
    assert checked >= 9


def test_labelled_tokens_are_named_by_their_label(engine: Engine) -> None:
    from service.auth import split_label, token_access

    settings = limits_settings(
        admin_tokens=[SecretStr("looker:tok-looker-0123456789"), SecretStr("plain:with:colons")]
    )
    assert split_label("looker:tok") == ("looker", "tok")
    assert split_label("no label here") == (None, "no label here")
    assert token_access(settings, "tok-looker-0123456789") == ("admin", 1, "looker")
    assert token_access(settings, "looker:tok-looker-0123456789") == ("admin", 1, "looker")
    # A plain token containing colons still works, whole.
    assert token_access(settings, "plain:with:colons") == ("admin", 2, "plain")
    assert token_access(settings, "nope") is None
    with TestClient(create_app(settings, engine)) as test_client:
        response = test_client.get("/v1/targets", headers=bearer("tok-looker-0123456789"))
        assert response.status_code == 200
