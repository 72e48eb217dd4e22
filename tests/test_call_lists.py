"""Call lists end to end: mapping on recorded payloads, the syncs through the simulated CRMs over
real HTTP (both engines), membership removal, and リスト消化率 over the synced store.

HubSpot: contact lists (Lists API v3) and their memberships by join order. Salesforce:
Telemarketing Campaigns and their CampaignMembers (queryAll on SystemModstamp, over TLS).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from sqlalchemy import Engine, select

from connectors.errors import RecordRejected
from connectors.hubspot import HubSpotConnector
from connectors.hubspot.lists import (
    is_call_list,
    list_changed_at,
    list_size,
    map_list,
    map_membership,
)
from connectors.mapping import default_mapping, merge_mapping
from connectors.records import CallList, CallListMember
from connectors.salesforce import SalesforceConnector
from connectors.salesforce.campaigns import (
    campaign_condition,
    map_campaign,
    map_campaign_member,
    member_filter,
)
from connectors.salesforce.normalize import LeadLinks
from kpi import KpiContext, compute
from models import CallList as CallListRow
from models import CallListMember as MemberRow
from service.sync.run import run_sync
from simulators.hubspot.portal import HubSpotPortal, RunningPortal, serve_portal
from simulators.salesforce.org import RunningOrg, SalesforceOrg, serve_org

PAYLOADS = Path(__file__).parent / "payloads"
TOKEN = "lists-token"
CONNECTED = "f240bbac-87c9-4f6e-bf70-924b57d47db7"
OCT_1 = date(2026, 10, 1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# --- mapping on recorded payloads -------------------------------------------------------------


def test_hubspot_lists_map_and_only_static_contact_lists_are_call_lists() -> None:
    lists = load("hubspot/lists_search.json")["lists"]
    mapping = default_mapping().hubspot
    assert [p["listId"] for p in lists if is_call_list(p, mapping)] == ["123", "124"]
    first = map_list(lists[0])
    assert first == CallList(
        source="hubspot",
        crm_id="123",
        name="October calling",
        list_kind="MANUAL",
        modified_at=at("2024-09-28T22:03:37.005"),
    )
    assert first.as_row()["kind"] == "MANUAL" and "list_kind" not in first.as_row()
    # The later of updatedAt and the last addition; the size from the additional properties.
    assert list_changed_at(lists[0]) == at("2024-10-02T01:00:00")
    assert list_changed_at(lists[1]) == at("2024-10-02T08:15:00")
    assert (list_size(lists[0]), list_size(lists[3])) == (3, 812)
    # The mapping file can name lists (by id or name), whatever their processing type.
    named = merge_mapping(
        default_mapping(), {"hubspot": {"values": {"call_lists": ["tokyo leads (active)", "124"]}}}
    ).hubspot
    assert [p["listId"] for p in lists if is_call_list(p, named)] == ["124", "126"]


def test_hubspot_memberships_map_with_the_time_each_joined() -> None:
    results = load("hubspot/list_memberships_join_order.json")["results"]
    member = map_membership("123", results[1])
    assert member == CallListMember(
        source="hubspot",
        crm_id="502",
        list_crm_id="123",
        contact_crm_id="502",
        added_at=at("2024-10-01T00:40:00.123"),
        modified_at=at("2024-10-01T00:40:00.123"),
    )
    with pytest.raises(RecordRejected, match="membershipTimestamp"):
        map_membership("123", results[2])


def test_salesforce_campaigns_and_members_map() -> None:
    mapping = default_mapping().salesforce
    campaigns = load("salesforce/campaigns_queryall.json")["records"]
    mapped = [map_campaign(p, mapping) for p in campaigns]
    assert mapped[0] == CallList(
        source="salesforce",
        crm_id="701Hp0000000001IAA",
        name="Q4 Tokyo calling",
        list_kind="Telemarketing",
        modified_at=at("2024-10-01T00:00:00"),
    )
    assert mapped[1] is None  # a webinar is not a call list
    assert mapped[2] is not None and mapped[2].deleted
    members = load("salesforce/campaign_members_queryall.json")["records"]
    links = LeadLinks(contact_lead={"003Hp0000000001MAA": "00QHp0000000002MAA"})
    by_lead = map_campaign_member(members[0], mapping, links)
    assert (by_lead.list_crm_id, by_lead.contact_crm_id, by_lead.added_at) == (
        "701Hp0000000001IAA",
        "00QHp0000000001MAA",
        at("2024-10-01T00:10:00"),
    )
    # A Contact member reaches the Lead converted into it, as activities' WhoIds do.
    assert map_campaign_member(members[1], mapping, links).contact_crm_id == "00QHp0000000002MAA"
    assert map_campaign_member(members[2], mapping, links).deleted
    with pytest.raises(RecordRejected, match="CampaignId"):
        map_campaign_member(members[3], mapping, links)
    # The members' filter is one semi-join on the campaigns' Type, or on the named campaigns.
    condition = campaign_condition(mapping, "Type", "Name")
    assert member_filter(mapping, "CampaignId", condition) == (
        "CampaignId IN (SELECT Id FROM Campaign WHERE Type IN ('Telemarketing'))"
    )
    named = merge_mapping(
        default_mapping(),
        {"salesforce": {"values": {"call_lists": ["Q4 Tokyo calling", "701Hp0000000002IAA"]}}},
    ).salesforce
    assert campaign_condition(named, "Type", "Name") == (
        "(Name IN ('Q4 Tokyo calling', '701Hp0000000002IAA') OR Id IN ('701Hp0000000002IAA'))"
    )
    assert [c is not None for c in (map_campaign(p, named) for p in campaigns)] == [
        True,
        True,
        False,
    ]


# --- HubSpot over HTTP --------------------------------------------------------------------------


class Portal:
    """A served portal with one rep, four leads, their activities and two call lists."""

    def __init__(self, running: RunningPortal, clock: Clock) -> None:
        self.running = running
        self.clock = clock
        hub = self.hub
        self.owner = hub.add_owner(
            email="aiko@example.jp",
            first_name="Aiko",
            last_name="Tanaka",
            teams=[("7001", "IS East", True)],
            created_at=at("2026-01-01T00:00"),
        )
        self.leads = [
            hub.create(
                "contacts",
                {"createdate": "2026-09-25T00:00:00Z", "hubspot_owner_id": self.owner},
            )
            for _ in range(4)
        ]
        l1, l2, l3, _ = self.leads
        self.activity("calls", "2026-10-01T01:00:00Z", l1, hs_call_direction="OUTBOUND")
        # Before L2 joined: not a touch from the list.
        self.activity("calls", "2026-10-01T12:00:00Z", l2, hs_call_direction="OUTBOUND")
        self.activity(
            "emails",
            "2026-10-05T00:00:00Z",
            l2,
            hs_email_direction="EMAIL",
            hs_email_status="SENT",
        )
        self.activity("calls", "2026-10-04T00:00:00Z", l3, hs_call_direction="INBOUND")
        # After the month's end: not by the period's end.
        self.activity(
            "emails",
            "2026-11-02T00:00:00Z",
            l3,
            hs_email_direction="EMAIL",
            hs_email_status="SENT",
        )
        self.october = hub.create_list("October calling", at=at("2026-09-30T00:00"))
        self.other = hub.create_list(
            "Follow-ups", processing_type="SNAPSHOT", at=at("2026-09-30T00:00")
        )
        hub.create_list("Everyone in Tokyo", processing_type="DYNAMIC", at=at("2026-09-30T00:00"))
        hub.add_to_list(self.october, [l1], at=at("2026-10-01T00:10"))
        hub.add_to_list(self.october, [l2], at=at("2026-10-02T00:00"))
        hub.add_to_list(self.october, [l3], at=at("2026-10-03T00:00"))
        hub.add_to_list(self.october, [self.leads[3]], at=at("2026-09-20T00:00"))  # September
        hub.add_to_list(self.other, [l1, l3], at=at("2026-09-30T06:00"))

    @property
    def hub(self) -> HubSpotPortal:
        return self.running.portal

    def activity(self, kind: str, when: str, contact: str, **props: str) -> str:
        props.setdefault("hubspot_owner_id", self.owner)
        if kind == "calls":
            props.setdefault("hs_call_disposition", CONNECTED)
        return self.hub.create(
            kind, {"hs_timestamp": when, **props}, associations={"contacts": [contact]}
        )

    def connector(self, **options: Any) -> HubSpotConnector:
        return HubSpotConnector(TOKEN, host=self.running.url, sleep=lambda _: None, **options)

    def sync(self, engine: Engine, when: datetime) -> Any:
        self.clock.now = when
        return run_sync(engine, self.connector(), clock=lambda: when)


@pytest.fixture
def portal() -> Iterator[Portal]:
    clock = Clock(at("2026-09-30T00:00"))
    hub = HubSpotPortal(TOKEN, clock=clock)
    running = serve_portal(hub)
    try:
        yield Portal(running, clock)
    finally:
        running.stop()


def members(engine: Engine, source: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                MemberRow.list_crm_id,
                MemberRow.crm_id,
                MemberRow.contact_crm_id,
                MemberRow.added_at,
                MemberRow.deleted,
            ).where(MemberRow.source == source)
        ).all()
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}


def lists_of(engine: Engine, source: str) -> dict[str, tuple[str, str | None, bool]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                CallListRow.crm_id, CallListRow.name, CallListRow.kind, CallListRow.deleted
            ).where(CallListRow.source == source)
        ).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def consumption(engine: Engine, **kw: Any) -> tuple[Any, Any, Any]:
    rows = compute(
        engine,
        KpiContext(timezone="UTC"),
        kpis=["list_consumption_rate"],
        grain="month",
        start=OCT_1,
        end=date(2026, 10, 31),
        **kw,
    )
    row = rows[0]
    return row.numerator, row.denominator, row.value


def test_hubspot_lists_sync_first_then_incrementally(engine: Engine, portal: Portal) -> None:
    hub = portal.hub
    l1, l2, l3, l4 = portal.leads
    first = portal.sync(engine, at("2026-11-01T00:00"))
    assert first.status == "ok", first.error
    assert lists_of(engine, "hubspot") == {
        portal.october: ("October calling", "MANUAL", False),
        portal.other: ("Follow-ups", "SNAPSHOT", False),
    }  # the DYNAMIC list is a segment, not a call list
    stored = members(engine, "hubspot")
    assert stored == {
        (portal.october, l1): (l1, at("2026-10-01T00:10"), False),
        (portal.october, l2): (l2, at("2026-10-02T00:00"), False),
        (portal.october, l3): (l3, at("2026-10-03T00:00"), False),
        (portal.october, l4): (l4, at("2026-09-20T00:00"), False),
        (portal.other, l1): (l1, at("2026-09-30T06:00"), False),
        (portal.other, l3): (l3, at("2026-09-30T06:00"), False),
    }
    # Worked out by hand: October's joiners are L1, L2, L3 (L4 joined in September); L1 was
    # called after joining, L2 emailed on 5 Oct (its call on 1 Oct came before it joined); L3
    # had an inbound call, and its email came in November. The second list's joiners are in
    # September.
    assert consumption(engine) == (2, 3, pytest.approx(2 / 3))
    assert consumption(engine, scope="rep") == (2, 3, pytest.approx(2 / 3))

    # L2 leaves the October list and L4 joins the follow-ups; the October list is renamed.
    hub.remove_from_list(portal.october, [l2])
    hub.add_to_list(portal.other, [l4], at=at("2026-11-01T06:00"))
    log_start = len(hub.request_log)
    second = portal.sync(engine, at("2026-11-02T00:00"))
    assert second.status == "ok", second.error
    # Both lists re-read whole (one shrank, one grew): 3 members each.
    assert second.records["call_list_members"] == 6
    requests = hub.request_log[log_start:]
    list_requests = [r for r in requests if r[1].startswith("/crm/v3/lists")]
    assert sorted(list_requests) == sorted(
        [("POST", "/crm/v3/lists/search")] * 2
        + [
            ("GET", f"/crm/v3/lists/{portal.october}/memberships/join-order"),
            ("GET", f"/crm/v3/lists/{portal.other}/memberships/join-order"),
        ]
    )
    stored = members(engine, "hubspot")
    assert stored[(portal.october, l2)][2] is True  # removed: flagged deleted
    assert stored[(portal.other, l4)] == (l4, at("2026-11-01T06:00"), False)
    assert sum(1 for v in stored.values() if v[2]) == 1
    assert consumption(engine) == (1, 2, 0.5)

    # Nothing changed: two list searches and no membership read.
    start = len(hub.request_log)
    quiet = portal.sync(engine, at("2026-11-03T00:00"))
    assert quiet.status == "ok"
    assert [r for r in hub.request_log[start:] if r[1].startswith("/crm/v3/lists")] == [
        ("POST", "/crm/v3/lists/search")
    ] * 2

    # A list renamed is stored again; a deleted list is flagged deleted, and leaves the KPI.
    hub.rename_list(portal.other, "Follow-ups (Nov)", at=at("2026-11-03T01:00"))
    hub.delete_list(portal.october)
    later = portal.sync(engine, at("2026-11-04T00:00"))
    assert later.status == "ok"
    assert lists_of(engine, "hubspot") == {
        portal.october: ("October calling", "MANUAL", True),
        portal.other: ("Follow-ups (Nov)", "SNAPSHOT", False),
    }
    assert consumption(engine) == (0, 0, None)


def test_hubspot_lists_without_the_scope_fail_only_their_streams(
    engine: Engine, portal: Portal
) -> None:
    portal.hub.missing_scopes = {"crm.lists.read"}
    report = portal.sync(engine, at("2026-11-01T00:00"))
    assert report.status == "partial"
    assert report.error is not None and "crm.lists.read" in report.error
    assert "call_lists" in report.error and "call_list_members" in report.error
    assert report.records["calls"] == 3 and report.records["emails"] == 2


def test_hubspot_memberships_page_by_the_after_token(engine: Engine, portal: Portal) -> None:
    hub = portal.hub
    big = hub.create_list("Big list", at=at("2026-10-01T00:00"))
    ids = [hub.create("contacts", {"hubspot_owner_id": portal.owner}) for _ in range(260)]
    for n, crm_id in enumerate(ids):
        hub.add_to_list(big, [crm_id], at=at("2026-10-01T00:00") + timedelta(minutes=n))
    report = portal.sync(engine, at("2026-11-01T00:00"))
    assert report.status == "ok", report.error
    pages = [r for r in hub.request_log if r[1] == f"/crm/v3/lists/{big}/memberships/join-order"]
    assert len(pages) == 2  # 250 a page
    stored = members(engine, "hubspot")
    assert {k[1] for k in stored if k[0] == big} == set(ids)


# --- Salesforce over HTTPS ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def org(ca: trustme.CA) -> Iterator[tuple[RunningOrg, Clock]]:
    clock = Clock(at("2026-09-30T00:00"))
    running = serve_org(SalesforceOrg(clock=clock), tls=ca)
    try:
        yield running, clock
    finally:
        running.stop()


def test_salesforce_campaigns_sync_first_then_incrementally(
    engine: Engine, org: tuple[RunningOrg, Clock]
) -> None:
    running, clock = org
    sf = running.org
    old = at("2026-09-30T00:00")
    user = sf.create(
        "User",
        {
            "LastName": "Tanaka",
            "Email": "aiko@example.jp",
            "Username": "aiko@example.jp.demo",
            "IsActive": True,
            "UserType": "Standard",
        },
        created_at=old,
        modified_at=old,
    )
    contact = sf.create("Contact", {"LastName": "Sato"}, created_at=old, modified_at=old)
    lead_fields = {"Company": "Aozora", "Status": "Open - Not Contacted", "OwnerId": user}
    lead = sf.create("Lead", {"LastName": "Ito", **lead_fields}, created_at=old, modified_at=old)
    converted = sf.create(
        "Lead",
        {
            "LastName": "Sato",
            **lead_fields,
            "IsConverted": True,
            "ConvertedContactId": contact,
            "Status": "Closed - Converted",
        },
        created_at=old,
        modified_at=old,
    )
    calling = sf.create(
        "Campaign",
        {"Name": "Q4 calling", "Type": "Telemarketing", "IsActive": True, "OwnerId": user},
        created_at=old,
        modified_at=old,
    )
    webinar = sf.create(
        "Campaign",
        {"Name": "Webinar", "Type": "Webinar", "IsActive": True, "OwnerId": user},
        created_at=old,
        modified_at=old,
    )
    added = at("2026-10-01T00:10")
    by_lead = sf.create(
        "CampaignMember",
        {"CampaignId": calling, "LeadId": lead},
        created_at=added,
        modified_at=added,
    )
    by_contact = sf.create(
        "CampaignMember",
        {"CampaignId": calling, "ContactId": contact},
        created_at=added,
        modified_at=added,
    )
    webinar_member = sf.create(
        "CampaignMember",
        {"CampaignId": webinar, "LeadId": lead},
        created_at=added,
        modified_at=added,
    )
    # A call logged on the converted lead's Contact after it joined: it works that member.
    called = at("2026-10-02T01:00")
    sf.create(
        "Task",
        {
            "Subject": "Call",
            "Status": "Completed",
            "Priority": "Normal",
            "TaskSubtype": "Call",
            "CallType": "Outbound",
            "CallDisposition": "Connected",
            "CompletedDateTime": called,
            "WhoId": contact,
            "OwnerId": user,
        },
        created_at=called,
        modified_at=called,
    )

    def connector() -> SalesforceConnector:
        return SalesforceConnector(
            running.url,
            session_id=sf.issue_session(),
            verify=str(running.ca_bundle),
            sleep=lambda _: None,
        )

    def sync(when: datetime) -> Any:
        clock.now = when
        return run_sync(engine, connector(), clock=lambda: when)

    first = sync(at("2026-11-01T00:00"))
    assert first.status == "ok", first.error
    assert lists_of(engine, "salesforce") == {calling: ("Q4 calling", "Telemarketing", False)}
    assert members(engine, "salesforce") == {
        (calling, by_lead): (lead, added, False),
        (calling, by_contact): (converted, added, False),  # the Contact's lead
    }
    # By hand: two members joined in October; the Contact's lead was called after joining.
    assert consumption(engine) == (1, 2, 0.5)
    member_queries = [q for q in sf.soql_log if "FROM CampaignMember" in q]
    assert member_queries and all(
        "CampaignId IN (SELECT Id FROM Campaign WHERE Type IN ('Telemarketing'))" in q
        for q in member_queries
    )

    # A member removed (deleted: queryAll returns it with IsDeleted), a lead added, and the
    # webinar turned into a telemarketing campaign.
    clock.now = at("2026-11-01T03:00")
    sf.delete("CampaignMember", by_lead)
    newcomer = sf.create("CampaignMember", {"CampaignId": calling, "LeadId": converted})
    sf.update("Campaign", webinar, {"Type": "Telemarketing"})
    second = sync(at("2026-11-02T00:00"))
    assert second.status == "ok", second.error
    # The removal, the newcomer, and the older member of the campaign new to the call lists.
    assert second.records["campaign_members"] == 3 and second.records["campaigns"] == 1
    stored = members(engine, "salesforce")
    assert stored[(calling, by_lead)][2] is True
    assert stored[(calling, newcomer)] == (converted, at("2026-11-01T03:00"), False)
    assert lists_of(engine, "salesforce")[webinar] == ("Webinar", "Telemarketing", False)
    assert stored[(webinar, webinar_member)] == (lead, added, False)
    backfill = [q for q in sf.soql_log if f"CampaignId IN ('{webinar}')" in q]
    assert len(backfill) == 1 and "SystemModstamp >=" not in backfill[0]
    # The removed member leaves October's count; the webinar's member (never called) joins it.
    assert consumption(engine) == (1, 2, 0.5)

    # A campaign whose Type changes away from Telemarketing stops being a call list.
    clock.now = at("2026-11-02T03:00")
    sf.update("Campaign", webinar, {"Type": "Email"})
    third = sync(at("2026-11-03T00:00"))
    assert third.status == "ok"
    assert lists_of(engine, "salesforce")[webinar][2] is True
    assert consumption(engine) == (1, 1, 1.0)


def test_the_portal_refuses_what_hubspot_refuses(portal: Portal) -> None:
    """Limits over the maximum, unknown lists and processing types answer as HubSpot does."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    base = portal.running.url
    with httpx.Client(base_url=base, headers=headers) as http:
        join = f"/crm/v3/lists/{portal.october}/memberships/join-order"
        assert http.get(join, params={"limit": 251}).status_code == 400
        assert http.get("/crm/v3/lists/999/memberships/join-order").status_code == 404
        assert http.post("/crm/v3/lists/search", json={"count": 501}).status_code == 400
        refused = http.post("/crm/v3/lists/search", json={"processingTypes": ["STATIC"]})
        assert refused.status_code == 400
        page = http.get(join, params={"limit": 2}).json()
        assert [r["recordId"] for r in page["results"]] == [portal.leads[3], portal.leads[0]]
        rest = http.get(join, params={"limit": 2, "after": page["paging"]["next"]["after"]})
        assert [r["recordId"] for r in rest.json()["results"]] == portal.leads[1:3]
        assert "paging" not in rest.json()
        got = http.get(f"/crm/v3/lists/{portal.october}").json()["list"]
        assert (got["name"], got["size"], got["processingType"]) == ("October calling", 4, "MANUAL")
