"""What a silly date or an oversized request costs the API: a quick 4xx, nothing more.

- Every date and month parameter outside 2000-01-01 … 2100-12-31 is a 422 naming it,
  answered in milliseconds (as_of=9990-06-15 once took two minutes; year 1 a 500).
- A body without a token is a 401 before it is read; bodies have per-route limits.
- Big /v1/kpis builds wait their turn; audit names are HMACs, stable across restarts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from service.app import create_app
from service.settings import Settings

READ = "read-token-for-limits"
ADMIN = "admin-token-for-limits"
NOW = datetime.fromisoformat("2026-11-15T12:00:00+09:00")


def limits_settings(**kw: Any) -> Settings:
    return Settings(
        database_url="sqlite://",
        timezone="Asia/Tokyo",
        read_tokens=[SecretStr(READ)],
        admin_tokens=[SecretStr(ADMIN)],
        now=NOW,
        **kw,
    )


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
    assert elapsed < 0.5, elapsed


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
