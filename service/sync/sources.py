"""Which CRM connectors the settings enable, built with their credentials and mappings."""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from connectors.base import SourceConnector
from connectors.hubspot import HubSpotClient, HubSpotSource
from connectors.mapping import load_mapping
from models.credentials import load_refresh_token, save_refresh_token
from service.errors import SourceNotConfigured
from service.settings import Settings

if TYPE_CHECKING:
    from connectors.salesforce import SalesforceClient

log = logging.getLogger(__name__)

SOURCES = ("hubspot", "salesforce")

# A connected app with refresh token rotation invalidates a refresh token once it is used: the
# newest one is kept in the store (models.credentials), for the next process and the other
# replicas, and here for the life of the process (every scheduled run builds a new connector),
# keyed by a digest of the configured token, never the token itself. A changed configured
# token has another digest, so it wins over what was kept for the old one.
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
    """The HubSpot client of docs/configuration.md: the private-app token and the base URL."""
    if settings.hubspot_access_token is None:
        raise SourceNotConfigured("HubSpot is not configured: set ISKPI_HUBSPOT_ACCESS_TOKEN")
    return HubSpotClient(
        settings.hubspot_access_token.get_secret_value(), host=settings.hubspot_base_url
    )


def _stored_refresh_token(engine: Engine | None, key: str) -> str | None:
    if engine is None:
        return None
    try:
        with engine.connect() as conn:
            return load_refresh_token(conn, "salesforce", key)
    except SQLAlchemyError as exc:
        # The error's text may quote its statement's parameters: name its type only.
        log.warning(
            "the stored Salesforce refresh token could not be read (%s)", type(exc).__name__
        )
        return None


def _store_refresh_token(engine: Engine | None, key: str, token: str) -> None:
    if engine is None:
        return
    try:
        with engine.begin() as conn:
            save_refresh_token(conn, "salesforce", key, token, datetime.now(UTC))
    except SQLAlchemyError as exc:
        log.warning(
            "the rotated Salesforce refresh token could not be stored (%s); this process "
            "keeps it, a restart needs the latest token in ISKPI_SALESFORCE_REFRESH_TOKEN",
            type(exc).__name__,
        )


def salesforce_client(settings: Settings, engine: Engine | None = None) -> SalesforceClient:
    """The Salesforce client of docs/configuration.md: a session id, an OAuth connected app, or both.

    With ``engine``, a refresh token the connected app rotated is read from and kept in the
    store, so every process uses the latest one.
    """
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
            in_process = _rotated_refresh_tokens.get(key)
        refresh_token = (
            _stored_refresh_token(engine, key)
            or in_process
            or settings.salesforce_refresh_token.get_secret_value()
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
        _store_refresh_token(engine, key, rotated)

    return SalesforceClient(
        instance_url,
        session_id=session_id,
        oauth=oauth,
        api_version=settings.salesforce_api_version,
        quota_share=settings.salesforce_quota_share,
        on_refresh_token=keep,
        # Another replica may have rotated the token this client holds: it asks the store.
        latest_refresh_token=lambda: _stored_refresh_token(engine, key),
    )


def configured_sources(settings: Settings) -> list[str]:
    """The CRMs the settings enable, as build_connectors("all") builds them."""
    enabled = {"hubspot": settings.hubspot_enabled, "salesforce": settings.salesforce_enabled}
    return [source for source in SOURCES if enabled[source]]


def build_connectors(
    settings: Settings, which: str = "all", engine: Engine | None = None
) -> list[SourceConnector]:
    """The connectors to sync for ``which`` (hubspot, salesforce or all configured).

    ``engine``: the store, which keeps a rotated Salesforce refresh token for the next process.
    """
    if which not in (*SOURCES, "all"):
        raise SourceNotConfigured(f"unknown source {which!r}: use hubspot, salesforce or all")
    mapping = load_mapping(settings.mapping_file)
    lookback = timedelta(minutes=settings.sync_lookback_minutes)
    connectors: list[SourceConnector] = []
    if which in ("hubspot", "all") and settings.hubspot_access_token is not None:
        connectors.append(
            HubSpotSource(
                hubspot_client(settings),
                mapping=mapping,
                lookback=lookback,
                archived_sweep_interval=timedelta(minutes=settings.hubspot_archived_sweep_minutes),
            )
        )
    if which == "salesforce" or (which == "all" and settings.salesforce_enabled):
        from connectors.salesforce import SalesforceSource

        connectors.append(
            SalesforceSource(
                salesforce_client(settings, engine),
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
