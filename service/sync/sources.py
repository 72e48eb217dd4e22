"""Which CRM connectors the settings enable, built with their credentials and mappings."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from connectors.base import SourceConnector
from connectors.hubspot import HubSpotClient, HubSpotSource
from connectors.mapping import load_mapping
from service.errors import SourceNotConfigured
from service.settings import Settings

if TYPE_CHECKING:
    from connectors.salesforce import SalesforceClient

SOURCES = ("hubspot", "salesforce")

# A connected app with refresh token rotation invalidates a refresh token once it is used: the
# newest one is kept here for the life of the process (every scheduled run builds a new
# connector), keyed by a digest of the configured token, never the token itself.
_rotated_refresh_tokens: dict[str, str] = {}
_rotated_lock = threading.Lock()


def _token_key(settings: Settings) -> str:
    configured = settings.salesforce_refresh_token
    raw = "|".join(
        (
            settings.salesforce_login_url,
            settings.salesforce_client_id or "",
            configured.get_secret_value() if configured else "",
        )
    )
    return hashlib.sha256(raw.encode()).hexdigest()


def hubspot_client(settings: Settings) -> HubSpotClient:
    """The HubSpot client of SPEC §2: the private-app token and the base URL."""
    if settings.hubspot_access_token is None:
        raise SourceNotConfigured("HubSpot is not configured: set ISKPI_HUBSPOT_ACCESS_TOKEN")
    return HubSpotClient(
        settings.hubspot_access_token.get_secret_value(), host=settings.hubspot_base_url
    )


def salesforce_client(settings: Settings) -> SalesforceClient:
    """The Salesforce client of SPEC §2: a session id, an OAuth connected app, or both."""
    # Imported when Salesforce is used: simple-salesforce costs a HubSpot-only run its start-up.
    from connectors.salesforce import OAuthApp, SalesforceClient

    instance_url = settings.salesforce_instance_url
    if not instance_url:
        raise SourceNotConfigured(
            "Salesforce is not configured: set ISKPI_SALESFORCE_INSTANCE_URL (e.g. "
            "https://acme.my.salesforce.com)"
        )
    oauth_parts = {
        "ISKPI_SALESFORCE_CLIENT_ID": settings.salesforce_client_id,
        "ISKPI_SALESFORCE_CLIENT_SECRET": settings.salesforce_client_secret,
        "ISKPI_SALESFORCE_REFRESH_TOKEN": settings.salesforce_refresh_token,
    }
    given = [name for name, value in oauth_parts.items() if value]
    session_id = (
        settings.salesforce_session_id.get_secret_value()
        if settings.salesforce_session_id is not None
        else None
    )
    if given and len(given) < len(oauth_parts):
        missing = [name for name in oauth_parts if name not in given]
        raise SourceNotConfigured(
            f"the Salesforce connected app is half configured: set {', '.join(missing)}"
        )
    if not given and not session_id:
        raise SourceNotConfigured(
            "Salesforce has no credentials: set ISKPI_SALESFORCE_SESSION_ID (an access token), "
            "or the OAuth connected app (ISKPI_SALESFORCE_CLIENT_ID, _CLIENT_SECRET, "
            "_REFRESH_TOKEN)"
        )
    oauth: OAuthApp | None = None
    key = _token_key(settings)
    if given:
        assert settings.salesforce_client_id is not None
        assert settings.salesforce_client_secret is not None
        assert settings.salesforce_refresh_token is not None
        with _rotated_lock:
            refresh_token = _rotated_refresh_tokens.get(
                key, settings.salesforce_refresh_token.get_secret_value()
            )
        oauth = OAuthApp(
            client_id=settings.salesforce_client_id,
            client_secret=settings.salesforce_client_secret.get_secret_value(),
            refresh_token=refresh_token,
            login_url=settings.salesforce_login_url,
        )

    def keep(rotated: str) -> None:
        with _rotated_lock:
            _rotated_refresh_tokens[key] = rotated

    return SalesforceClient(
        instance_url,
        session_id=session_id,
        oauth=oauth,
        api_version=settings.salesforce_api_version,
        quota_share=settings.salesforce_quota_share,
        on_refresh_token=keep,
    )


def build_connectors(settings: Settings, which: str = "all") -> list[SourceConnector]:
    """The connectors to sync for ``which`` (hubspot, salesforce or all configured)."""
    if which not in (*SOURCES, "all"):
        raise SourceNotConfigured(f"unknown source {which!r}: use hubspot, salesforce or all")
    mapping = load_mapping(settings.mapping_file)
    lookback = timedelta(minutes=settings.sync_lookback_minutes)
    connectors: list[SourceConnector] = []
    if which in ("hubspot", "all") and settings.hubspot_access_token is not None:
        connectors.append(
            HubSpotSource(hubspot_client(settings), mapping=mapping, lookback=lookback)
        )
    if which == "salesforce" or (which == "all" and settings.salesforce_enabled):
        from connectors.salesforce import SalesforceSource

        connectors.append(
            SalesforceSource(
                salesforce_client(settings),
                mapping=mapping,
                lookback=lookback,
                timezone=settings.tz,
                bulk_threshold=settings.salesforce_bulk_threshold,
            )
        )
    if which == "hubspot" and not connectors:
        raise SourceNotConfigured("HubSpot is not configured: set ISKPI_HUBSPOT_ACCESS_TOKEN")
    if which == "all" and not connectors:
        raise SourceNotConfigured(
            "no CRM is configured: set ISKPI_HUBSPOT_ACCESS_TOKEN or ISKPI_SALESFORCE_INSTANCE_URL "
            "(or try `iskpi demo`)"
        )
    return connectors
