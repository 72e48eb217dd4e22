"""Which CRM connectors the settings enable, built with their credentials and mappings."""

from __future__ import annotations

from datetime import timedelta

from connectors.hubspot import HubSpotConnector
from connectors.mapping import load_mapping

from connectors.base import SourceConnector
from service.settings import Settings

SOURCES = ("hubspot", "salesforce")


class SourceNotConfigured(ValueError):
    """The requested source has no credentials in the settings."""


def build_connectors(settings: Settings, which: str = "all") -> list[SourceConnector]:
    """The connectors to sync for ``which`` (hubspot, salesforce or all configured)."""
    if which not in (*SOURCES, "all"):
        raise SourceNotConfigured(f"unknown source {which!r}: use hubspot, salesforce or all")
    mapping = load_mapping(settings.mapping_file)
    lookback = timedelta(minutes=settings.sync_lookback_minutes)
    connectors: list[SourceConnector] = []
    if which in ("hubspot", "all") and settings.hubspot_access_token is not None:
        connectors.append(
            HubSpotConnector(
                settings.hubspot_access_token.get_secret_value(),
                host=settings.hubspot_base_url,
                mapping=mapping,
                lookback=lookback,
            )
        )
    if which == "salesforce":
        # The Salesforce connector is its own piece of work (issue 3); until it lands,
        # say so rather than sync nothing.
        raise SourceNotConfigured("the Salesforce connector is not available in this version")
    if which == "hubspot" and not connectors:
        raise SourceNotConfigured("HubSpot is not configured: set ISKPI_HUBSPOT_ACCESS_TOKEN")
    if which == "all" and not connectors:
        raise SourceNotConfigured(
            "no CRM is configured: set ISKPI_HUBSPOT_ACCESS_TOKEN or ISKPI_SALESFORCE_INSTANCE_URL "
            "(or try `iskpi demo`)"
        )
    return connectors
