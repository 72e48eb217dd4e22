"""The demo's Salesforce source: the simulated org, and the real connector pointed at it.

``iskpi demo --source salesforce`` (or ``both``) calls :func:`start_salesforce_demo` and syncs
from it through the real connector, trusting the org's certificate by the CA bundle the org
was served with (never by turning verification off).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from connectors.mapping import Mapping
from connectors.salesforce import SalesforceConnector
from simulators.salesforce.org import DemoOrg, start_demo_org


@dataclass
class SalesforceDemo(DemoOrg):
    """A running demo org, and the real connector to sync from it."""

    def connector(
        self, *, mapping: Mapping | None = None, timezone: tzinfo = UTC, **options: Any
    ) -> SalesforceConnector:
        """The real Salesforce connector pointed at the demo org."""
        return SalesforceConnector(
            self.url,
            session_id=self.session_id,
            mapping=mapping,
            timezone=timezone,
            verify=str(self.ca_bundle),
            **options,
        )


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
    demo = start_demo_org(
        months=months,
        end=end,
        seed=seed,
        teams=teams,
        reps_per_team=reps_per_team,
        calls_per_rep_day=calls_per_rep_day,
    )
    return SalesforceDemo(demo.running, demo.url, demo.ca_bundle, demo.session_id, demo.counts)
