"""Start the demo's simulated Salesforce org: generated data, a test CA, HTTPS on 127.0.0.1.

``iskpi demo --source salesforce`` (or ``both``) calls :func:`start_salesforce_demo` and syncs
from it through the real connector, trusting the org's certificate by the CA bundle returned
here (never by turning verification off).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from connectors.demo.salesforce_dataset import generate_org_dataset
from connectors.demo.salesforce_org import RunningOrg, SalesforceOrg, serve_org
from connectors.mapping import Mapping
from connectors.salesforce import SalesforceConnector


@dataclass
class SalesforceDemo:
    """A running demo org and what a client needs to reach it."""

    running: RunningOrg
    url: str  # the instance URL (https://127.0.0.1:<port>)
    ca_bundle: Path  # PEM of the demo CA: the connector's ``verify`` (or REQUESTS_CA_BUNDLE)
    session_id: str  # an access token the org accepts
    counts: dict[str, int]  # records generated per object

    @property
    def org(self) -> SalesforceOrg:
        return self.running.org

    def connector(
        self, *, mapping: Mapping | None = None, timezone: tzinfo = UTC, **options: Any
    ) -> SalesforceConnector:
        """The real Salesforce connector pointed at the demo org."""
        return SalesforceConnector(
            self.url, session_id=self.session_id, mapping=mapping, timezone=timezone,
            verify=str(self.ca_bundle), **options,
        )

    def stop(self) -> None:
        """Stop the org's server and remove its certificate files."""
        self.running.stop()


def start_salesforce_demo(
    *,
    months: int = 6,
    end: datetime | None = None,
    seed: int = 8,
    teams: int = 3,
    reps_per_team: int = 4,
    calls_per_rep_day: float = 60.0,
) -> SalesforceDemo:
    """Generate the demo team as a Salesforce org and serve it over HTTPS with a fresh test CA."""
    import trustme  # the demo's TLS: a throwaway CA, so verification stays on

    if end is None:
        end = datetime.now(UTC)  # every record is modified before the first sync starts
    dataset = generate_org_dataset(seed=seed, teams=teams, reps_per_team=reps_per_team,
                                   months=months, end=end, calls_per_rep_day=calls_per_rep_day)
    org = SalesforceOrg(daily_api_limit=1_000_000)
    org.load(dataset)
    running = serve_org(org, tls=trustme.CA())
    return SalesforceDemo(running, running.url, running.ca_bundle, org.issue_session(),
                          dataset.counts())
