"""The contract between a CRM connector and the sync that drives it.

A connector knows its CRM's wire format and nothing about the database: it
turns a stream's saved state into pages of normalized records, each page
carrying the state to save once that page is stored. The sync (service/)
stores the page and the state in one transaction, so a killed run resumes
from its last stored page.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from connectors.records import Record, Rejected

# A stream's saved position, JSON-serializable. Its shape is the connector's own
# business; the sync stores it verbatim and hands it back on the next run.
StreamState = Mapping[str, Any]


@dataclass(frozen=True)
class StreamSpec:
    """One stream a connector pulls, declared once: its record type and its cursor."""

    name: str  # "calls", "emails", ... (the store's stream name)
    record_type: type[Record]
    cursor_field: str  # the CRM's last-modified field the incremental cursor follows
    lookback: timedelta = timedelta(minutes=10)


@dataclass
class Page:
    """One page of a stream: records to upsert, records to quarantine, and the state after it."""

    stream: str
    records: list[Record]
    rejected: list[Rejected]
    state: dict[str, Any]
    api_calls: int = 0  # requests this page cost, including retries and side look-ups
    total: int | None = None  # the stream's expected record count, when the CRM tells it
    # Records of this stream's type that the CRM no longer lists at all (e.g. a
    # deactivated owner); the store flags them deleted.
    missing_crm_ids: list[str] = field(default_factory=list)


class SourceConnector(Protocol):
    """Pulls pages of normalized records from one CRM."""

    source: str
    api_calls: int  # HTTP requests made so far, retries included

    @property
    def streams(self) -> Sequence[StreamSpec]:
        """The streams in the order they should be synced."""
        ...

    def pull(self, stream: str, state: StreamState | None, *, until: datetime) -> Iterator[Page]:
        """Yield the stream's pages from ``state`` (None: a full sync) up to ``until``."""
        ...
