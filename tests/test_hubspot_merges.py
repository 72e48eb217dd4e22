"""HubSpot contact merges, deal types, lead scores and reps' created dates, end to end.

The real hubspot-api-client against the simulated portal over HTTP, ``run_sync`` into both
stores. A merge is made the way a user's integration makes one (POST
/crm/v3/objects/contacts/merge through the client): HubSpot creates a new contact listing both
ids in ``hs_merged_object_ids``, archives the two and moves their activities to it without
modifying them, so only the survivor's list tells the sync where they went.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import ApiException, PublicMergeInput
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from connectors.hubspot import HubSpotConnector
from kpi import KpiContext, compute
from models import Call, Deal, Email, Lead, Meeting, Rep
from service.settings import Settings
from service.sync.run import run_sync
from service.sync.sources import build_connectors
from simulators.hubspot.portal import HubSpotPortal, RunningPortal, serve_portal
from simulators.hubspot.seed import generate_dataset

TOKEN = "test-token"
END = datetime(2026, 10, 31, 12, tzinfo=UTC)
CTX = KpiContext(timezone="Asia/Tokyo", now=END)
MONTH = {"grain": "month", "start": date(2026, 10, 1), "end": date(2026, 10, 31)}


@pytest.fixture
def portal() -> Iterator[RunningPortal]:
    hub = HubSpotPortal(TOKEN)
    hub.load(
        generate_dataset(seed=11, teams=2, reps_per_team=2, months=1, end=END, calls_per_rep_day=8)
    )
    running = serve_portal(hub)
    try:
        yield running
    finally:
        running.stop()


def connector(running: RunningPortal, **kwargs: Any) -> HubSpotConnector:
    kwargs.setdefault("archived_sweep_interval", timedelta(days=1))
    return HubSpotConnector(TOKEN, host=running.url, sleep=lambda _: None, **kwargs)


def merge(running: RunningPortal, primary: str, other: str) -> str:
    """Merge two contacts through the HubSpot client, as an integration would; the new id."""
    client = HubSpot(access_token=TOKEN, host=running.url)
    merged = client.crm.contacts.basic_api.merge(
        public_merge_input=PublicMergeInput(primary_object_id=primary, object_id_to_merge=other)
    )
    return str(merged.id)


def contact_of(engine: Engine, model: Any) -> dict[str, str | None]:
    with Session(engine) as session:
        return {r.crm_id: r.contact_crm_id for r in session.scalars(select(model))}


def leads(engine: Engine) -> dict[str, Lead]:
    with Session(engine) as session:
        return {r.crm_id: r for r in session.scalars(select(Lead))}


def by_channel(engine: Engine, kpi: str) -> dict[str | None, float]:
    rows = compute(engine, CTX, kpis=[kpi], by="channel", **MONTH)  # type: ignore[arg-type]
    assert rows == compute(engine, CTX, kpis=[kpi], by="channel", use_rollups=False, **MONTH)  # type: ignore[arg-type]
    return {r.by_value: r.value or 0 for r in rows}  # type: ignore[misc]


def org_value(engine: Engine, kpi: str) -> float | None:
    rows = compute(engine, CTX, kpis=[kpi], **MONTH)  # type: ignore[arg-type]
    assert rows == compute(engine, CTX, kpis=[kpi], use_rollups=False, **MONTH)  # type: ignore[arg-type]
    return rows[0].value


def outbound_calls(hub: HubSpotPortal) -> dict[str, list[str]]:
    """Each contact's outbound calls, as the portal associates them."""
    out: dict[str, list[str]] = {}
    for call in hub.ids("calls"):
        if hub.get("calls", call).get("hs_call_direction") == "OUTBOUND":
            for contact in hub._linked("calls", int(call), "contacts"):
                out.setdefault(str(contact), []).append(call)
    return out


def test_a_contact_merge_is_followed_through_two_incremental_syncs(
    engine: Engine, portal: RunningPortal
) -> None:
    hub = portal.portal
    assert run_sync(engine, connector(portal), kpi=CTX).status == "ok"
    assert run_sync(engine, connector(portal), kpi=CTX).status == "ok"  # incremental, no change
    stored = leads(engine)
    calls_of = outbound_calls(hub)
    # Two leads with outbound calls from different channels, both created in the month.
    candidates = [
        c
        for c, calls in calls_of.items()
        if calls and stored[c].channel and stored[c].created_at >= datetime(2026, 10, 1, tzinfo=UTC)
    ]
    primary = candidates[0]
    other = next(c for c in candidates if stored[c].channel != stored[primary].channel)
    third = next(
        c
        for c in candidates
        if stored[c].channel not in (stored[primary].channel, None) and c not in (primary, other)
    )
    channels_before = by_channel(engine, "calls")
    supply_before = org_value(engine, "lead_supply")

    # First merge: `other` into `primary`; the portal makes a new contact of the two.
    survivor = merge(portal, primary, other)
    assert survivor not in (primary, other)
    assert hub.get("contacts", survivor)["hs_merged_object_ids"] == ";".join(
        sorted([primary, other], key=int)
    )
    moved = calls_of[other]
    report = run_sync(engine, connector(portal), kpi=CTX)
    assert report.status == "ok", report.error
    assert report.records["calls"] == 0  # no call changed in the CRM ...
    calls = contact_of(engine, Call)
    # ... yet every call of either contact now reaches the survivor.
    assert {calls[c] for c in calls_of[primary] + moved} == {survivor}
    assert all(calls[c] not in (primary, other) for c in calls)
    now = leads(engine)
    assert now[primary].deleted and now[other].deleted  # flagged without the archived sweep
    assert now[survivor].channel == stored[primary].channel  # the primary's values win
    assert now[survivor].created_at == min(stored[primary].created_at, stored[other].created_at)
    # The breakdown follows the survivor: the other lead's calls moved to the primary's channel.
    channels = by_channel(engine, "calls")
    assert channels[stored[other].channel] == channels_before[stored[other].channel] - len(moved)
    assert channels[stored[primary].channel] == (
        channels_before[stored[primary].channel] + len(moved)
    )
    assert org_value(engine, "lead_supply") == (supply_before or 0) - 1  # two leads became one
    emails, meetings = contact_of(engine, Email), contact_of(engine, Meeting)
    assert not {primary, other} & (set(emails.values()) | set(meetings.values()))
    assert not {primary, other} & set(contact_of(engine, Deal).values())

    # Second merge: the survivor merged again; one of its calls changes in the CRM meanwhile.
    hub.update("calls", moved[0], {"hs_call_duration": "61000"}, modified_at=datetime.now(UTC))
    final = merge(portal, third, survivor)
    report = run_sync(engine, connector(portal), kpi=CTX)
    assert report.status == "ok", report.error
    assert report.records["calls"] == 1  # the changed call, read with its new association
    calls = contact_of(engine, Call)
    assert {calls[c] for c in calls_of[primary] + moved + calls_of[third]} == {final}
    now = leads(engine)
    assert now[survivor].deleted and now[third].deleted and not now[final].deleted
    channels = by_channel(engine, "calls")
    gained = len(calls_of[primary]) + len(moved)
    assert channels[stored[third].channel] == channels_before[stored[third].channel] + gained
    assert channels[stored[primary].channel] == (
        channels_before[stored[primary].channel] - len(calls_of[primary])
    )
    # The response times follow the merged lead too, as a clean full sync of the portal has it.
    response = org_value(engine, "lead_response_minutes")
    run_sync(engine, connector(portal), kpi=CTX, full=True)
    assert org_value(engine, "lead_response_minutes") == response
    assert by_channel(engine, "calls") == channels


def test_deal_types_lead_scores_and_reps_created_dates_reach_the_store(
    engine: Engine, portal: RunningPortal
) -> None:
    hub = portal.portal
    assert run_sync(engine, connector(portal)).status == "ok"
    kinds = {"newbusiness": "new", "existingbusiness": "existing"}
    expected = Counter(kinds.get(hub.get("deals", d).get("dealtype", "")) for d in hub.ids("deals"))
    with Session(engine) as session:
        stored = Counter(
            d.deal_type for d in session.scalars(select(Deal).where(Deal.deleted.is_(False)))
        )
        reps = {r.crm_id: r.crm_created_at for r in session.scalars(select(Rep))}
        scores = {lead.crm_id: lead.score for lead in session.scalars(select(Lead))}
    assert stored == expected and stored["new"] > stored["existing"] > 0
    for owner in hub.owner_ids():
        created = hub._owners[owner].created_ms
        assert reps[owner] == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=created)
    for contact in hub.ids("contacts")[:50]:
        assert scores[contact] == float(hub.get("contacts", contact)["hubspotscore"])
    rows = compute(engine, CTX, kpis=["deals_created"], by="deal_type", **MONTH)  # type: ignore[arg-type]
    assert "new" in {r.by_value for r in rows} <= {"new", "existing", None}


def test_the_archived_sweep_interval_is_a_setting(engine: Engine, portal: RunningPortal) -> None:
    hub = portal.portal

    def sweeps(minutes: int) -> int:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            hubspot_access_token=TOKEN,
            hubspot_base_url=portal.url,
            hubspot_archived_sweep_minutes=minutes,
        )
        (source,) = build_connectors(settings, "hubspot")
        before = len(hub.request_log)
        assert run_sync(engine, source).status == "ok"
        return sum(
            1
            for method, path in hub.request_log[before:]
            if method == "GET" and path.startswith("/crm/v3/objects/")
        )

    assert sweeps(0) > 0  # the first, full sync lists everything
    assert sweeps(0) == 6  # every run sweeps: one archived page per object stream
    assert sweeps(60) == 0  # the last sweep is minutes old
    assert Settings(_env_file=None).hubspot_archived_sweep_minutes == 60  # type: ignore[call-arg]


def test_the_portal_merges_contacts_as_hubspot_does(portal: RunningPortal) -> None:
    hub = portal.portal
    client = HubSpot(access_token=TOKEN, host=portal.url)
    first, second = hub.ids("contacts")[:2]
    calls = {c: hub_contacts_of(hub, c) for c in hub.ids("calls")}
    theirs = sorted(c for c, contacts in calls.items() if {first, second} & set(contacts))
    modified = {c: hub.get("calls", c)["hs_lastmodifieddate"] for c in theirs}
    merged = merge(portal, first, second)
    props = hub.get("contacts", merged)
    assert props["hs_merged_object_ids"] == f"{first};{second}"
    assert props["createdate"] == min(
        hub.get("contacts", first)["createdate"], hub.get("contacts", second)["createdate"]
    )
    assert {first, second} <= set(hub.ids("contacts", archived=True))
    # The activities follow the new contact, unmodified; an original id answers the new contact.
    assert theirs and all(hub_contacts_of(hub, c) == [merged] for c in theirs)
    assert {c: hub.get("calls", c)["hs_lastmodifieddate"] for c in theirs} == modified
    assert client.crm.contacts.basic_api.get_by_id(first).id == merged
    # What HubSpot refuses, the portal refuses.
    api = client.crm.contacts.basic_api
    for primary, other, status in ((merged, merged, 400), (merged, "999999999", 404)):
        with pytest.raises(ApiException) as refused:
            api.merge(
                public_merge_input=PublicMergeInput(
                    primary_object_id=primary, object_id_to_merge=other
                )
            )
        assert refused.value.status == status


def hub_contacts_of(hub: HubSpotPortal, call: str) -> list[str]:
    return [str(c) for c in hub._linked("calls", int(call), "contacts")]
