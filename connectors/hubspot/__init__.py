"""The HubSpot connector: a client, a source and a writer sharing it (docs/sync.md, docs/writeback.md).

    client.py     HubSpotClient: the token, pacing, rate limits, retries, error classification
    source.py     HubSpotSource: the streams and their cursors (the SourceConnector side)
    writer.py     HubSpotWriter: targets into users-object properties (the TargetWriter side)
    normalize.py  HubSpot JSON → normalized records, no I/O

:class:`HubSpotConnector` is both sides on one client, for callers (the demo, tests, the
bench) that pull and push through one object and count its requests together.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from connectors.hubspot.client import SEARCH_PER_SECOND, HubSpotClient
from connectors.hubspot.source import HubSpotSource
from connectors.hubspot.writer import HubSpotWriter
from connectors.mapping import Mapping

__all__ = ["HubSpotClient", "HubSpotConnector", "HubSpotSource", "HubSpotWriter"]


class HubSpotConnector(HubSpotSource, HubSpotWriter):
    """A HubSpot source and writer on one client, built from the token and the options."""

    def __init__(
        self,
        access_token: str,
        *,
        host: str = "https://api.hubapi.com",
        mapping: Mapping | None = None,
        page_size: int = 100,
        search_page_size: int = 100,
        lookback: timedelta = timedelta(minutes=10),
        max_retries: int = 6,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        on_request: Callable[[], None] | None = None,
        archived_sweep_interval: timedelta = timedelta(0),
        searches_per_second: int | None = SEARCH_PER_SECOND,
    ) -> None:
        client = HubSpotClient(
            access_token,
            host=host,
            max_retries=max_retries,
            timeout=timeout,
            sleep=sleep,
            on_request=on_request,
            searches_per_second=searches_per_second,
        )
        HubSpotSource.__init__(
            self,
            client,
            mapping=mapping,
            page_size=page_size,
            search_page_size=search_page_size,
            lookback=lookback,
            archived_sweep_interval=archived_sweep_interval,
        )
        HubSpotWriter.__init__(self, client, mapping=mapping)
