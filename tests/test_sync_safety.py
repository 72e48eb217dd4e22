"""What a failed sync leaves behind: its error's class, never the record values in it.

A database error's message carries the statement's parameters and the offending value
(CRM data: a company name, an email); the stored run and the log keep neither.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import DataError

from connectors.base import Page, StreamSpec, StreamState
from connectors.records import Call
from models import SyncRun
from service.sync import run as sync_run
from service.sync.run import run_sync

CRM_VALUE = "Kabushiki-Kaisha-Secret-Customer"


class OnePageConnector:
    """A connector with one stream and one empty page."""

    source = "hubspot"

    @property
    def api_calls(self) -> int:
        return 1

    @property
    def streams(self) -> Sequence[StreamSpec]:
        return [StreamSpec("calls", Call, "hs_lastmodifieddate")]

    def pull(self, stream: str, state: StreamState | None, *, until: datetime) -> Iterator[Page]:
        yield Page(stream=stream, records=[], rejected=[], state={"cursor": "x"}, api_calls=1)


class PgDataError(Exception):
    sqlstate = "22P02"


def test_a_store_error_keeps_its_class_but_no_record_value(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise DataError(
            "INSERT INTO calls (title) VALUES (%(title)s)",
            {"title": CRM_VALUE},
            PgDataError(f'invalid input syntax for type integer: "{CRM_VALUE}"'),
        )

    monkeypatch.setattr(sync_run.store, "save_state", refuse)
    caplog.set_level(logging.DEBUG)
    report = run_sync(engine, OnePageConnector())  # type: ignore[arg-type]
    assert report.status == "failed"
    assert report.error is not None
    assert report.error.startswith("DataError: a store statement failed")
    assert "PgDataError" in report.error and "SQLSTATE 22P02" in report.error
    with engine.connect() as conn:
        stored = conn.execute(select(SyncRun.error)).scalar_one()
    assert stored == report.error
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "sync of hubspot failed: DataError" in logged
    for text in (stored, logged, caplog.text):
        assert CRM_VALUE not in text


def test_the_engine_hides_statement_parameters(engine: Engine) -> None:
    from sqlalchemy import text

    with pytest.raises(Exception) as caught, engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table WHERE x = :x"), {"x": CRM_VALUE})
    assert CRM_VALUE not in str(caught.value)
