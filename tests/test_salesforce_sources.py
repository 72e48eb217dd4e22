"""Building the Salesforce connector from the settings of docs/configuration.md, and the demo's org."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trustme

from connectors.salesforce import SalesforceSource
from service.demo import start_salesforce_demo
from service.errors import SourceNotConfigured
from service.settings import Settings
from service.sync.sources import build_connectors
from tests.support.salesforce import (
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    T0,
    Org,
    ca,
    fill,
    org,
    pull,
)

__all__ = ["ca", "org"]


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_salesforce_is_built_from_a_session_id_or_an_oauth_app() -> None:
    session = settings(
        salesforce_instance_url="https://acme.my.salesforce.com",
        salesforce_session_id="00Dxx!session",
    )
    [connector] = build_connectors(session, "salesforce")
    assert isinstance(connector, SalesforceSource) and connector.source == "salesforce"
    assert [s.name for s in connector.streams][:2] == ["roles", "users"]
    oauth = settings(
        salesforce_instance_url="https://acme.my.salesforce.com",
        salesforce_client_id=CLIENT_ID,
        salesforce_client_secret=CLIENT_SECRET,
        salesforce_refresh_token=REFRESH_TOKEN,
        salesforce_login_url="https://test.salesforce.com",
        timezone="Asia/Tokyo",
        hubspot_access_token="pat-na1-x",
    )
    sources = {c.source for c in build_connectors(oauth, "all")}
    assert sources == {"hubspot", "salesforce"}
    assert CLIENT_SECRET not in repr(build_connectors(oauth, "salesforce"))


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({}, "ISKPI_SALESFORCE_INSTANCE_URL"),
        (
            {"salesforce_instance_url": "https://acme.my.salesforce.com"},
            "ISKPI_SALESFORCE_SESSION_ID",
        ),
        (
            {
                "salesforce_instance_url": "https://acme.my.salesforce.com",
                "salesforce_client_id": CLIENT_ID,
            },
            "ISKPI_SALESFORCE_CLIENT_SECRET, ISKPI_SALESFORCE_REFRESH_TOKEN",
        ),
    ],
)
def test_missing_salesforce_settings_are_named(values: dict[str, str], says: str) -> None:
    with pytest.raises(SourceNotConfigured, match=says):
        build_connectors(settings(**values), "salesforce")


def test_all_skips_salesforce_when_no_instance_is_set() -> None:
    assert (
        build_connectors(settings(hubspot_access_token="pat-na1-x"), "all")[0].source == "hubspot"
    )


def test_a_rotated_refresh_token_is_kept_for_the_next_run(
    org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(org)
    org.org.add_connected_app(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, rotate=True)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", org.ca_bundle)
    configured = settings(
        salesforce_instance_url=org.url,
        salesforce_client_id=CLIENT_ID,
        salesforce_client_secret=CLIENT_SECRET,
        salesforce_refresh_token=REFRESH_TOKEN,
        salesforce_login_url=org.url,
    )
    for run in range(3):  # each scheduled run builds its connector anew
        [connector] = build_connectors(configured, "salesforce")
        assert isinstance(connector, SalesforceSource)
        leads = pull(connector, "leads", None, T0 + timedelta(minutes=run))
        assert len(leads.records) == 12
    assert org.org.apps[CLIENT_ID].refreshes == 3  # the token from the configuration worked once


def test_the_demo_org_starts_with_a_ca_and_a_session(ca: trustme.CA) -> None:
    demo = start_salesforce_demo(months=1, teams=1, reps_per_team=2, calls_per_rep_day=5)
    try:
        assert demo.url.startswith("https://127.0.0.1:") and demo.ca_bundle.exists()
        assert demo.counts["Task"] > 0 and demo.org.count("Lead") > 0
        users = pull(demo.connector(), "users", None, datetime.now(UTC))
        # Two inside-sales reps, two field-sales reps and the rep who left (deactivated);
        # the Automated Process user is not a rep.
        assert len(users.records) == 5
        assert sum(r.deleted for r in users.records) == 1
    finally:
        demo.stop()
    assert not demo.ca_bundle.exists()
