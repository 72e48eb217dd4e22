"""Hostile input to the API, and a scan of every log line and answer for secrets.

- SQL-looking strings in every query parameter and body field of every operation
  of the OpenAPI document: never a 5xx, and the store is intact afterwards.
- Oversized bodies: refused with 413 before they are read, announced or streamed.
- Odd tokens (empty, huge, non-ASCII, another scheme): 401 everywhere.
- A HubSpot sync, a Salesforce sync through an OAuth connected app (with a forced
  session expiry and refresh), and API calls with read and admin tokens, all logged
  at DEBUG: no token, session id, client secret or refresh token appears in any log
  record, API answer or stored sync run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from connectors.hubspot import HubSpotConnector
from connectors.salesforce import OAuthApp, SalesforceConnector
from kpi import KpiContext
from models import Call, SyncRun
from service.app import create_app
from service.demo import start_salesforce_demo
from service.limits import MAX_BODY_BYTES, MAX_HEADER_BYTES
from service.sync.run import run_sync
from simulators.hubspot.portal import HubSpotPortal, serve_portal
from tests.support.api import ADMIN, READ, auth, settings_for
from tests.support.hubspot import TOKEN, small_dataset
from tests.support.kpi_records import FIXTURE, put

INJECTIONS = (
    "1' OR '1'='1",
    "'; DROP TABLE calls; --",
    "hubspot:r1' UNION SELECT crm_id FROM reps --",
    '" OR ""="',
    "%' AND 1=1 --",
)


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    put(engine, FIXTURE)
    with TestClient(create_app(settings_for(), engine)) as test_client:
        yield test_client


def call_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Call)).scalar_one())


def operations(client: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    spec = client.get("/openapi.json").json()
    return [
        (method.upper(), path, operation)
        for path, methods in spec["paths"].items()
        if path.startswith("/v1/")
        for method, operation in methods.items()
    ]


def test_sql_looking_strings_in_every_parameter_never_break_anything(
    client: TestClient, engine: Engine
) -> None:
    before = call_count(engine)
    sent = 0
    for method, path, operation in operations(client):
        for parameter in operation.get("parameters", []):
            for value in INJECTIONS:
                response = client.request(
                    method, path, params={parameter["name"]: value}, headers=auth(ADMIN)
                )
                assert response.status_code < 500, (method, path, parameter["name"], value)
                sent += 1
        if "requestBody" in operation:
            for value in INJECTIONS:
                for body in (
                    {"kpi": value, "month": value, "won_target": 1, "scope": value, "id": value},
                    [
                        {
                            "kpi": value,
                            "grain": "month",
                            "period_start": "2026-10-01",
                            "scope": "rep",
                            "id": value,
                            "value": 1,
                        }
                    ],
                ):
                    response = client.request(method, path, json=body, headers=auth(ADMIN))
                    assert response.status_code < 500, (method, path, body)
                    sent += 1
    assert sent > 100
    assert call_count(engine) == before
    # An injected id is just an unknown id: a 422 naming it.
    response = client.get(
        "/v1/kpis", params={"scope": "rep", "id": INJECTIONS[2]}, headers=auth(READ)
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "id"]


def test_oversized_bodies_are_refused_with_413(client: TestClient) -> None:
    huge = b"[" + b" " * (MAX_BODY_BYTES + 1) + b"]"
    response = client.put(
        "/v1/targets",
        content=huge,
        headers={**auth(ADMIN), "Content-Type": "application/json"},
    )
    assert response.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b"["
        for _ in range(MAX_BODY_BYTES // 2**20 + 2):
            yield b" " * 2**20
        yield b"]"

    response = client.put(
        "/v1/targets",
        content=chunks(),
        headers={**auth(ADMIN), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    # A deep or wide but small body is an ordinary 422.
    response = client.post("/v1/plan", json={"won_target": [[[[[1]]]]]}, headers=auth(READ))
    assert response.status_code == 422


@pytest.mark.parametrize(
    "header",
    [
        "Bearer ",
        "Bearer " + "x" * 100_000,
        "Bearer tökén",
        f"Basic {ADMIN}",
        f"bearer{ADMIN}",
        f"Bearer {ADMIN} extra",
        f"Bearer {READ[:-1]}",
    ],
)
def test_odd_tokens_are_401_on_every_route(client: TestClient, header: str) -> None:
    for method, path, _ in operations(client):
        # Raw bytes: httpx would refuse to encode a non-ASCII str, a raw client does not.
        response = client.request(method, path, headers={"Authorization": header.encode()})
        # A header past the head's limit is refused before any token is looked at.
        expected = 431 if len(header) > MAX_HEADER_BYTES else 401
        assert response.status_code == expected, (method, path, header[:20])


def test_no_secret_ever_reaches_a_log_an_answer_or_a_stored_run(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ctx = KpiContext(timezone="Asia/Tokyo")
    hub = HubSpotPortal(TOKEN)
    hub.load(small_dataset())
    portal = serve_portal(hub)
    org = start_salesforce_demo(months=1, teams=1, reps_per_team=2, calls_per_rep_day=5)
    client_secret, refresh_token = "cs-" + "s3cr3t" * 6, "rt-" + "r3fr3sh" * 6
    org.org.add_connected_app("iskpi-app", client_secret, refresh_token)
    secrets = [TOKEN, org.session_id, client_secret, refresh_token, READ, ADMIN]
    try:
        assert (
            run_sync(
                engine, HubSpotConnector(TOKEN, host=portal.url, sleep=lambda _: None), kpi=ctx
            ).status
            == "ok"
        )
        salesforce = SalesforceConnector(
            org.url,
            oauth=OAuthApp("iskpi-app", client_secret, refresh_token, login_url=org.url),
            verify=str(org.ca_bundle),
        )
        assert run_sync(engine, salesforce, kpi=ctx).status == "ok"
        org.org.expire_sessions()  # the next run refreshes its access token
        assert run_sync(engine, salesforce, kpi=ctx).status == "ok"
        # A failing run stores its error: with a wrong token, nothing of the token is kept.
        wrong = "pat-na1-" + "w" * 30
        secrets.append(wrong)
        assert (
            run_sync(engine, HubSpotConnector(wrong, host=portal.url), kpi=ctx).status == "failed"
        )
        answers: list[str] = []
        with TestClient(create_app(settings_for(), engine)) as api:
            for method, path, _ in operations(api):
                for token in (READ, ADMIN, "wrong"):
                    answers.append(api.request(method, path, headers=auth(token)).text)
            answers.append(api.get("/healthz").text)
            answers.append(api.get("/openapi.json").text)
        with engine.connect() as conn:
            stored = [str(row) for row in conn.execute(select(SyncRun.error, SyncRun.records))]
    finally:
        portal.stop()
        org.stop()
    logged = (
        "\n".join(
            f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
            for record in caplog.records
        )
        + caplog.text
    )
    assert len(caplog.records) > 50  # the scan saw the runs
    for secret in secrets:
        assert secret not in logged
        assert all(secret not in answer for answer in answers)
        assert all(secret not in row for row in stored)
