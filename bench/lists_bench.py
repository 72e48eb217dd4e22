"""Call-list sync benchmark: requests per 100 list members, first and incremental, both CRMs.

    .venv/bin/python -m bench.lists_bench [--lists 4] [--members 2500] [--change 0.01]

Builds a simulated HubSpot portal (contact lists) and a simulated Salesforce org (Telemarketing
campaigns, over TLS) with ``--lists`` lists of ``--members`` members each, and pulls only the
two call-list streams through the real connectors:

- first: no saved state;
- quiet: an incremental run right after, nothing changed;
- incr:  an incremental run after ``--change`` of one list's members were replaced (removed,
  and as many added).

Counts the requests those streams cost (Salesforce's describe, which every run makes once for
all streams, is not counted) and prints them per 100 members of all lists.
"""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import trustme

from connectors.hubspot import HubSpotConnector
from connectors.salesforce import SalesforceConnector
from simulators.hubspot.portal import HubSpotPortal, serve_portal
from simulators.salesforce.org import SalesforceOrg, serve_org

T0 = datetime(2026, 11, 1, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def pull(connector: Any, streams: tuple[str, ...], states: dict[str, Any], until: datetime) -> int:
    """Pull the streams from their saved states; the requests their pages cost."""
    cost = 0
    for stream in streams:
        for page in connector.pull(stream, states.get(stream), until=until):
            cost += page.api_calls
            states[stream] = page.state
    return cost


def bench_hubspot(lists: int, members: int, change: float) -> dict[str, int]:
    clock = Clock(T0 - timedelta(days=30))
    hub = HubSpotPortal("bench", clock=clock)
    ids = []
    for n in range(lists):
        list_id = hub.create_list(f"Call list {n + 1}")
        batch = [1_000_000 + n * members + m for m in range(members)]
        hub.add_to_list(list_id, batch)
        ids.append((list_id, batch))
    streams = ("call_lists", "call_list_members")
    with serve_portal(hub) as running:
        connector = HubSpotConnector("bench", host=running.url, sleep=lambda _: None)
        states: dict[str, Any] = {}
        first = pull(connector, streams, states, T0)
        quiet = pull(connector, streams, states, T0 + timedelta(hours=1))
        clock.now = T0 + timedelta(hours=1, minutes=30)
        list_id, batch = ids[0]
        k = max(1, math.ceil(members * change))
        hub.remove_from_list(list_id, batch[:k])
        hub.add_to_list(list_id, [9_000_000 + m for m in range(k)])
        incr = pull(connector, streams, states, T0 + timedelta(hours=2))
    return {"first": first, "quiet": quiet, "incr": incr}


def bench_salesforce(lists: int, members: int, change: float) -> dict[str, int]:
    clock = Clock(T0 - timedelta(days=30))
    org = SalesforceOrg(clock=clock)
    user = org.create(
        "User",
        {
            "LastName": "Bench",
            "Email": "bench@example.jp",
            "Username": "bench@example.jp.demo",
            "IsActive": True,
            "UserType": "Standard",
        },
    )
    campaigns: list[tuple[str, list[str]]] = []
    for n in range(lists):
        campaign = org.create(
            "Campaign",
            {
                "Name": f"Call list {n + 1}",
                "Type": "Telemarketing",
                "IsActive": True,
                "OwnerId": user,
            },
        )
        made = []
        for m in range(members):
            lead = org.create(
                "Lead",
                {"LastName": f"L{n}-{m}", "Company": "Bench", "Status": "Open - Not Contacted"},
            )
            made.append(org.create("CampaignMember", {"CampaignId": campaign, "LeadId": lead}))
        campaigns.append((campaign, made))
    streams = ("campaigns", "campaign_members")
    ca = trustme.CA()
    with serve_org(org, tls=ca) as running:

        def connector() -> SalesforceConnector:
            return SalesforceConnector(
                running.url,
                session_id=org.issue_session(),
                verify=str(running.ca_bundle),
                sleep=lambda _: None,
            )

        states: dict[str, Any] = {}
        # Minus one: the describe every run makes once, for all streams.
        first = pull(connector(), streams, states, T0) - 1
        clock.now = T0 + timedelta(minutes=30)
        quiet = pull(connector(), streams, states, T0 + timedelta(hours=1)) - 1
        clock.now = T0 + timedelta(hours=1, minutes=30)
        campaign, made = campaigns[0]
        k = max(1, math.ceil(members * change))
        for member in made[:k]:
            org.delete("CampaignMember", member)
        for m in range(k):
            lead = org.create(
                "Lead",
                {"LastName": f"New-{m}", "Company": "Bench", "Status": "Open - Not Contacted"},
            )
            org.create("CampaignMember", {"CampaignId": campaign, "LeadId": lead})
        incr = pull(connector(), streams, states, T0 + timedelta(hours=2)) - 1
    return {"first": first, "quiet": quiet, "incr": incr}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", type=int, default=4)
    parser.add_argument("--members", type=int, default=2_500, help="members per list")
    parser.add_argument("--change", type=float, default=0.01, help="share of one list replaced")
    args = parser.parse_args()
    total = args.lists * args.members
    print(f"{args.lists} lists x {args.members:,} members = {total:,} members")
    print(f"{'CRM':<11} {'run':<6} {'requests':>9} {'per 100 members':>16}")
    for name, bench in (("HubSpot", bench_hubspot), ("Salesforce", bench_salesforce)):
        figures = bench(args.lists, args.members, args.change)
        for run, requests in figures.items():
            print(f"{name:<11} {run:<6} {requests:>9} {100 * requests / total:>16.3f}")


if __name__ == "__main__":
    main()
