"""Salesforce's wire format: timestamps, value rendering (JSON and CSV), locators and error bodies."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from simulators.salesforce.schema import FieldType

# A stored value: datetimes as epoch milliseconds, dates as date, the rest as JSON has them.
Value = str | int | float | bool | date | None

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

QUERY_BATCH_DEFAULT, QUERY_BATCH_MIN, QUERY_BATCH_MAX = 2_000, 200, 2_000


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(milliseconds=1)


def as_ms(moment: datetime | int) -> int:
    """Epoch milliseconds of a datetime, or the milliseconds themselves."""
    return moment if isinstance(moment, int) else to_ms(moment)


def rest_datetime(ms: int) -> str:
    """Salesforce's REST rendering of a dateTime: ``2024-01-17T19:55:04.000+0000``."""
    moment = EPOCH + timedelta(milliseconds=ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}+0000"


def bulk_datetime(ms: int) -> str:
    """Bulk API 2.0's CSV rendering of a dateTime: ``2024-01-17T19:55:04.000Z``."""
    moment = EPOCH + timedelta(milliseconds=ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def parse_datetime_literal(text: str) -> int | None:
    """Epoch millis of a SOQL dateTime literal (or an ISO datetime); None if it is not one."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_ms(moment)


def json_value(kind: FieldType, value: Value) -> Any:
    """A stored value as the REST API renders it in JSON."""
    if value is None:
        return None
    if kind == "datetime" and isinstance(value, int):
        return rest_datetime(value)
    if kind == "date" and isinstance(value, date):
        return value.isoformat()
    return value


def csv_value(kind: FieldType, value: Value) -> str:
    """A stored value as Bulk API 2.0 renders it in CSV."""
    if value is None:
        return ""
    if kind == "datetime" and isinstance(value, int):
        return bulk_datetime(value)
    if kind == "date" and isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------------------------------
# Errors, batch sizes and locators
# ---------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answered in Salesforce's format: ``[{"message": ..., "errorCode": ...}]``."""

    def __init__(self, status: int, code: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields)

    def body(self) -> list[dict[str, Any]]:
        out: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields:
            out["fields"] = self.fields
        return [out]


def not_found() -> ApiError:
    """Salesforce's 404 for an unknown resource."""
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def batch_size(options: str) -> int:
    """The page size a ``Sforce-Query-Options`` header asks for, within Salesforce's bounds."""
    match = re.search(r"batchSize\s*=\s*(\d+)", options, re.I)
    if match is None:
        return QUERY_BATCH_DEFAULT
    return min(QUERY_BATCH_MAX, max(QUERY_BATCH_MIN, int(match.group(1))))


def encode_locator(offset: int) -> str:
    """A Bulk API 2.0 results locator for a row offset."""
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def decode_locator(locator: str) -> int:
    """The row offset of a results locator; 400 INVALIDLOCATOR when it is not one."""
    try:
        padded = locator + "=" * (-len(locator) % 4)
        return int(base64.b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "INVALIDLOCATOR", f"invalid locator: {locator}") from None
