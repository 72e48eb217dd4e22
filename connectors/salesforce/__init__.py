"""The Salesforce connector: a client, a source and a writer sharing it (docs/sync.md, docs/writeback.md).

    client.py     SalesforceClient: session id or OAuth refresh, the quota guard, retries, errors
    source.py     SalesforceSource: the streams and their cursors (the SourceConnector side)
    writer.py     SalesforceWriter: targets into User fields and quotas (the TargetWriter side)
    normalize.py  Salesforce records → normalized records, and SOQL literals; no I/O

:class:`SalesforceConnector` is both sides on one client, for callers that pull and push
through one object and count its requests together (the service, the demo, tests, the bench).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, timedelta, tzinfo

from connectors.mapping import Mapping
from connectors.salesforce.client import OAuthApp, SalesforceClient
from connectors.salesforce.source import SalesforceSource
from connectors.salesforce.writer import SalesforceWriter

__all__ = [
    "OAuthApp",
    "SalesforceClient",
    "SalesforceConnector",
    "SalesforceSource",
    "SalesforceWriter",
]


class SalesforceConnector(SalesforceSource, SalesforceWriter):
    """A Salesforce source and writer on one client, built from the credentials and options."""

    def __init__(
        self,
        instance_url: str,
        *,
        session_id: str | None = None,
        oauth: OAuthApp | None = None,
        api_version: str = "59.0",
        mapping: Mapping | None = None,
        lookback: timedelta = timedelta(minutes=10),
        page_size: int = 2_000,
        store_page_size: int = 1_000,
        bulk_threshold: int = 200_000,
        bulk_page_size: int = 50_000,
        bulk_poll_seconds: float = 2.0,
        bulk_timeout: timedelta = timedelta(hours=2),
        quota_share: float = 0.25,
        max_retries: int = 6,
        timeout: float = 60.0,
        verify: bool | str = True,
        timezone: tzinfo = UTC,
        sleep: Callable[[float], None] = time.sleep,
        on_request: Callable[[], None] | None = None,
        on_refresh_token: Callable[[str], None] | None = None,
    ) -> None:
        client = SalesforceClient(
            instance_url,
            session_id=session_id,
            oauth=oauth,
            api_version=api_version,
            page_size=page_size,
            quota_share=quota_share,
            max_retries=max_retries,
            timeout=timeout,
            verify=verify,
            sleep=sleep,
            on_request=on_request,
            on_refresh_token=on_refresh_token,
        )
        SalesforceSource.__init__(
            self,
            client,
            mapping=mapping,
            lookback=lookback,
            store_page_size=store_page_size,
            bulk_threshold=bulk_threshold,
            bulk_page_size=bulk_page_size,
            bulk_poll_seconds=bulk_poll_seconds,
            bulk_timeout=bulk_timeout,
            timezone=timezone,
            sleep=sleep,
        )
        SalesforceWriter.__init__(self, client, mapping=mapping)
