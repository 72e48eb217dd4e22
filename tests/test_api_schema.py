"""Schemathesis over the whole OpenAPI document: no 5xx, no response outside the schema.

Runs against the app in process (ASGI) on the KPI engine's hand-worked fixture,
with an admin token, so every operation is reached past its auth check.
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine

from service.app import create_app
from tests.support.api import ADMIN, settings_for
from tests.support.kpi_records import FIXTURE, put

EXAMPLES = 30  # per operation
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_api_conforms_to_its_openapi_document(engine: Engine) -> None:
    put(engine, FIXTURE)
    app = create_app(settings_for(), engine)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    headers = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(app):  # runs the lifespan
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
            )
            def conforms(case: schemathesis.Case) -> None:
                case.call_and_validate(headers=headers, checks=CHECKS)

            conforms()
