"""The HubSpot connector against the simulated portal, through the real hubspot-api-client.

Only the connector is exercised (no store): each test iterates ``pull()`` and looks at
the pages. The portal's clock is fixed by the test, so modified times and ``until``
are exact; its search rate limit is off except where pacing itself is tested.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Page
from connectors.errors import AuthError, QuotaExhausted, RateLimited, TransientError
from connectors.hubspot import HubSpotConnector
from connectors.mapping import load_mapping
from connectors.records import Call, Deal, Email, Lead, Meeting, Record, Rejected, Rep, Team
from simulators.hubspot.portal import HubSpotPortal, RunningPortal, serve_portal

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
OLD = T0 - timedelta(days=1)
OBJECT_STREAMS = ("contacts", "calls", "emails", "meetings", "tasks", "deals")
STREAM_TYPES = {
    "contacts": "contacts",
    "calls": "calls",
    "emails": "emails",
    "meetings": "meetings",
    "tasks": "tasks",
    "deals": "deals",
}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Portal:
    running: RunningPortal
    clock: Clock
    sleeps: list[float] = field(default_factory=list)
    contact_of: dict[str, str] = field(default_factory=dict)  # engagement/deal id → contact id
    deal_of: dict[str, str] = field(default_factory=dict)  # meeting id → deal id
    archived: dict[str, set[str]] = field(default_factory=dict)
    ids: dict[str, list[str]] = field(default_factory=dict)  # object type → ids, in order

    def live(self, object_type: str) -> list[str]:
        return [i for i in self.ids[object_type] if i not in self.archived.get(object_type, ())]

    @property
    def hubspot(self) -> HubSpotPortal:
        return self.running.portal

    def connector(self, **options: Any) -> HubSpotConnector:
        options.setdefault("sleep", self.sleeps.append)
        options.setdefault("searches_per_second", None)  # this portal does not enforce it
        return HubSpotConnector(TOKEN, host=self.running.url, **options)


@dataclass
class Pulled:
    pages: list[Page]

    @property
    def records(self) -> list[Record]:
        return [r for page in self.pages for r in page.records]

    @property
    def rejected(self) -> list[Rejected]:
        return [r for page in self.pages for r in page.rejected]

    @property
    def state(self) -> dict[str, Any]:
        return self.pages[-1].state

    @property
    def api_calls(self) -> int:
        return sum(page.api_calls for page in self.pages)

    def by_id(self) -> dict[str, Record]:
        return {r.crm_id: r for r in self.records}


def pull(
    connector: HubSpotConnector, stream: str, state: dict[str, Any] | None, until: datetime
) -> Pulled:
    return Pulled(list(connector.pull(stream, state, until=until)))


def sync_all(
    connector: HubSpotConnector, states: dict[str, dict[str, Any] | None], until: datetime
) -> dict[str, Pulled]:
    out = {}
    for spec in connector.streams:
        out[spec.name] = pulled = pull(connector, spec.name, states.get(spec.name), until)
        states[spec.name] = pulled.state
    return out


def fill(portal: Portal) -> None:
    """A small portal: 3 owners (1 archived), 2 teams, every object type, some archived."""
    hs = portal.hubspot
    east = hs.add_owner(
        email="aiko@example.jp",
        first_name="Aiko",
        last_name="Tanaka",
        teams=[("7001", "IS East", True), ("7009", "All Sales", False)],
        created_at=OLD,
    )
    west = hs.add_owner(
        email="kenji@example.jp",
        first_name="Kenji",
        last_name="Sato",
        teams=[("7002", "IS West", True)],
        created_at=OLD,
    )
    hs.add_owner(
        email="haruto@example.jp",
        first_name="Haruto",
        last_name="Ito",
        teams=[("7001", "IS East", True)],
        archived=True,
        created_at=OLD,
    )
    owners = [east, west]
    contacts = []
    for i in range(30):
        contacts.append(
            hs.create(
                "contacts",
                {
                    "createdate": "2024-02-01T00:00:00Z",
                    "numemployees": "25-50",
                    "hs_analytics_source": "ORGANIC_SEARCH",
                    "hubspot_owner_id": owners[i % 2],
                    "lifecyclestage": "lead",
                },
                modified_at=OLD,
            )
        )
    for i in range(134):
        contact = contacts[i % len(contacts)]
        call = hs.create(
            "calls",
            {
                "hs_timestamp": f"2024-03-0{1 + i % 3}T0{i % 9}:00:00Z",
                "hs_call_direction": "OUTBOUND",
                "hs_call_disposition": "f240bbac-87c9-4f6e-bf70-924b57d47db7",
                "hs_call_duration": str(60_000 + i),
                "hubspot_owner_id": owners[i % 2],
            },
            associations={"contacts": [contact]},
            modified_at=OLD,
        )
        portal.contact_of[call] = contact
        portal.ids.setdefault("calls", []).append(call)
    for i in range(21):
        contact = contacts[(i * 7) % len(contacts)]
        email = hs.create(
            "emails",
            {
                "hs_timestamp": "2024-03-02T01:00:00Z",
                "hs_email_direction": "EMAIL",
                "hs_email_status": "SENT",
                "hs_email_open_count": str(i % 3),
                "hubspot_owner_id": owners[i % 2],
            },
            associations={"contacts": [contact]},
            modified_at=OLD,
        )
        portal.contact_of[email] = contact
        portal.ids.setdefault("emails", []).append(email)
    deals = []
    for i in range(9):
        contact = contacts[i]
        deal = hs.create(
            "deals",
            {
                "createdate": "2024-02-20T00:00:00Z",
                "dealstage": "qualifiedtobuy",
                "pipeline": "default",
                "amount": str(10_000 * (i + 1)),
                "is_rep_owner_id": east,
                "hubspot_owner_id": west,
                "bant_budget": "yes",
            },
            associations={"contacts": [contact]},
            modified_at=OLD,
        )
        portal.contact_of[deal] = contact
        deals.append(deal)
    portal.ids["deals"] = list(deals)
    for i in range(12):
        contact, deal = contacts[i], deals[1 + i % (len(deals) - 1)]  # deals[0] is archived
        meeting = hs.create(
            "meetings",
            {
                "hs_timestamp": "2024-03-05T01:00:00Z",
                "hs_meeting_start_time": "2024-03-05T01:00:00Z",
                "hs_meeting_outcome": "SCHEDULED",
                "hubspot_owner_id": east,
            },
            associations={"contacts": [contact], "deals": [deal]},
            modified_at=OLD,
        )
        portal.contact_of[meeting] = contact
        portal.deal_of[meeting] = deal
    for i in range(15):
        contact = contacts[i]
        task = hs.create(
            "tasks",
            {
                "hs_timestamp": "2024-03-05T00:00:00Z",
                "hs_task_status": "NOT_STARTED",
                "hubspot_owner_id": west,
            },
            associations={"contacts": [contact]},
            modified_at=OLD,
        )
        portal.contact_of[task] = contact
    for object_type, count in (("calls", 4), ("emails", 1), ("deals", 1)):
        ids = portal.ids[object_type][:count]
        for crm_id in ids:
            hs.archive(object_type, crm_id, at=OLD)
        portal.archived[object_type] = set(ids)


@pytest.fixture
def portal() -> Iterator[Portal]:
    clock = Clock(T0)
    hubspot = HubSpotPortal(TOKEN, clock=clock, enforce_search_rate_limit=False)
    with serve_portal(hubspot) as running:
        env = Portal(running, clock)
        fill(env)
        yield env


def total(hs: HubSpotPortal, object_type: str) -> int:
    return hs.count(object_type) + hs.count(object_type, archived=True)


def pages_of(count: int, size: int = 100) -> int:
    return max(1, -(-count // size))


# --- full sync ---------------------------------------------------------------------------------


def test_full_sync_reads_every_stream_with_associations_and_archived(portal: Portal) -> None:
    hs = portal.hubspot
    connector = portal.connector()
    states: dict[str, dict[str, Any] | None] = {}
    pulled = sync_all(connector, states, until=T0)

    for stream in OBJECT_STREAMS:
        records = pulled[stream].by_id()
        object_type = STREAM_TYPES[stream]
        assert len(pulled[stream].records) == len(records) == total(hs, object_type), stream
        assert {r.crm_id for r in records.values() if r.deleted} == portal.archived.get(
            object_type, set()
        ), stream
        assert pulled[stream].rejected == []
        assert states[stream] is not None and states[stream]["mode"] == "incremental"

    calls = pulled["calls"].by_id()
    for crm_id, call in calls.items():
        assert isinstance(call, Call)
        assert call.contact_crm_id == portal.contact_of[crm_id]
        assert (call.direction, call.outcome) == ("outbound", "connected")
    meetings = pulled["meetings"].records
    assert all(
        isinstance(m, Meeting)
        and m.deal_crm_id == portal.deal_of[m.crm_id]
        and m.contact_crm_id == portal.contact_of[m.crm_id]
        for m in meetings
    )
    deals = pulled["deals"].records
    assert all(
        isinstance(d, Deal) and d.probability == 0.4 and d.rep_crm_id is not None for d in deals
    )
    emails = pulled["emails"].records
    assert all(isinstance(e, Email) and e.tracked and e.contact_crm_id for e in emails)
    leads = pulled["contacts"].records
    assert all(isinstance(lead, Lead) and lead.company_size == "10-49" for lead in leads)

    owners = pulled["owners"].records
    reps = [r for r in owners if isinstance(r, Rep)]
    teams = {r.crm_id: r.name for r in owners if isinstance(r, Team)}
    assert teams == {"7001": "IS East", "7002": "IS West", "7009": "All Sales"}
    assert sorted((r.name, r.team_crm_id, r.active, r.deleted) for r in reps) == [
        ("Aiko Tanaka", "7001", True, False),
        ("Haruto Ito", "7001", False, True),
        ("Kenji Sato", "7002", True, False),
    ]

    # One request per list page (associations included), plus the pipelines once.
    # owners active + archived; deal pipelines; one list search per call-list stream
    expected = 2 + 1 + 2
    for object_type in STREAM_TYPES.values():
        expected += pages_of(hs.count(object_type)) + pages_of(hs.count(object_type, archived=True))
    assert connector.api_calls == expected == len(hs.request_log)
    assert sum(p.api_calls for stream in pulled.values() for p in stream.pages) == expected
    assert hs.request_log.count(("GET", "/crm/v3/pipelines/deals")) == 1
    json.dumps(states)  # the sync saves states as JSON


def test_full_sync_costs_about_one_request_per_hundred_records() -> None:
    clock = Clock(T0)
    hubspot = HubSpotPortal(TOKEN, clock=clock, enforce_search_rate_limit=False)
    contact = hubspot.create("contacts", {"createdate": "2024-02-01T00:00:00Z"}, modified_at=OLD)
    for i in range(2_000):
        hubspot.create(
            "calls",
            {
                "hs_timestamp": "2024-03-01T00:00:00Z",
                "hs_call_status": "BUSY",
                "hs_call_duration": str(i),
            },
            associations={"contacts": [contact]},
            modified_at=OLD,
        )
    with serve_portal(hubspot) as running:
        connector = HubSpotConnector(TOKEN, host=running.url, sleep=lambda _: None)
        pulled = pull(connector, "calls", None, until=T0)
    assert len(pulled.records) == 2_000
    assert all(isinstance(c, Call) and c.contact_crm_id == contact for c in pulled.records)
    assert pulled.api_calls == 20 + 1  # 20 list pages, and one (empty) archived page
    assert pulled.api_calls / (2_000 / 100) <= 1.05


# --- incremental ------------------------------------------------------------------------------


def test_incremental_fetches_only_the_changes(portal: Portal) -> None:
    hs = portal.hubspot
    connector = portal.connector()
    states: dict[str, dict[str, Any] | None] = {}
    sync_all(connector, states, until=T0)

    portal.clock.now = T0 + timedelta(hours=1)
    calls = portal.live("calls")
    contact = next(iter(portal.contact_of.values()))
    new_call = hs.create(
        "calls",
        {
            "hs_timestamp": "2024-03-04T09:30:00Z",
            "hs_call_direction": "OUTBOUND",
            "hs_call_status": "BUSY",
        },
        associations={"contacts": [contact]},
    )
    hs.update("calls", calls[10], {"hs_call_disposition": "73a0d17f-1163-4015-bdd5-ec830791da20"})
    hs.archive("calls", calls[20])
    hs.update("deals", next(iter(portal.deal_of.values())), {"dealstage": "contractsent"})
    new_meeting = hs.create(
        "meetings", {"hs_meeting_outcome": "COMPLETED"}, associations={"contacts": [contact]}
    )

    hs.request_log.clear()
    pulled = sync_all(connector, states, until=T0 + timedelta(hours=2))
    changed = {
        stream: sorted((r.crm_id, r.deleted) for r in p.records)
        for stream, p in pulled.items()
        if stream != "owners"
    }
    deal_id = next(iter(portal.deal_of.values()))
    assert changed == {
        "contacts": [],
        "emails": [],
        "tasks": [],
        "calls": sorted([(new_call, False), (calls[10], False), (calls[20], True)]),
        "meetings": [(new_meeting, False)],
        "deals": [(deal_id, False)],
        "call_lists": [],
        "call_list_members": [],
    }
    records = pulled["calls"].by_id()
    assert isinstance(records[new_call], Call) and records[new_call].contact_crm_id == contact
    assert isinstance(records[calls[10]], Call) and records[calls[10]].outcome == "no_answer"
    deal = pulled["deals"].records[0]
    assert isinstance(deal, Deal) and deal.probability == 0.9 and deal.stage == "contractsent"
    # Searches, association reads only for pages with changes, one pipelines read,
    # and an archived sweep per object stream.
    assert Counter(hs.request_log) == Counter(
        {
            ("GET", "/crm/v3/owners/"): 1,
            **{("POST", f"/crm/v3/objects/{t}/search"): 1 for t in STREAM_TYPES.values()},
            **{("GET", f"/crm/v3/objects/{t}"): 1 for t in STREAM_TYPES.values()},
            ("POST", "/crm/v4/associations/calls/contacts/batch/read"): 1,
            ("POST", "/crm/v4/associations/meetings/contacts/batch/read"): 1,
            ("POST", "/crm/v4/associations/meetings/deals/batch/read"): 1,
            ("POST", "/crm/v4/associations/deals/contacts/batch/read"): 1,
            ("GET", "/crm/v3/pipelines/deals"): 1,
            ("POST", "/crm/v3/lists/search"): 2,
        }
    )

    # A run with no changes: one search per object stream, the owners page, the sweeps.
    portal.clock.now = T0 + timedelta(hours=4)
    hs.request_log.clear()
    quiet = sync_all(connector, states, until=T0 + timedelta(hours=4))
    assert all(p.records == [] for s, p in quiet.items() if s != "owners")
    assert Counter(hs.request_log) == Counter(
        {
            ("GET", "/crm/v3/owners/"): 1,
            **{("POST", f"/crm/v3/objects/{t}/search"): 1 for t in STREAM_TYPES.values()},
            **{("GET", f"/crm/v3/objects/{t}"): 1 for t in STREAM_TYPES.values()},
            ("POST", "/crm/v3/lists/search"): 2,
        }
    )
    assert sum(p.api_calls for p in quiet.values()) == 15

    # With the sweep throttled, exactly one request per stream.
    throttled = portal.connector(archived_sweep_interval=timedelta(hours=6))
    portal.clock.now = T0 + timedelta(hours=5)
    hs.request_log.clear()
    sync_all(throttled, states, until=T0 + timedelta(hours=5))
    assert len(hs.request_log) == throttled.api_calls == 9
    assert sorted(hs.request_log) == sorted(
        [("GET", "/crm/v3/owners/")]
        + [("POST", f"/crm/v3/objects/{t}/search") for t in STREAM_TYPES.values()]
        + [("POST", "/crm/v3/lists/search")] * 2
    )


def test_the_lookback_rereads_recent_changes_but_yields_them_once(portal: Portal) -> None:
    hs = portal.hubspot
    connector = portal.connector()
    states: dict[str, dict[str, Any] | None] = {"calls": None}
    states["calls"] = pull(connector, "calls", None, until=T0).state
    calls = portal.live("calls")
    until = T0 + timedelta(hours=1)
    hs.update(
        "calls", calls[5], {"hs_call_status": "BUSY"}, modified_at=until - timedelta(minutes=2)
    )
    first = pull(connector, "calls", states["calls"], until=until)
    assert [r.crm_id for r in first.records] == [calls[5]]
    # The next run searches from its start minus the lookback: the call is read again
    # (one search) but not yielded, and costs no association read.
    hs.request_log.clear()
    late = hs.create(
        "calls", {"hs_timestamp": "2024-03-04T09:59:00Z"}, modified_at=until - timedelta(minutes=1)
    )  # indexed late, say
    second = pull(connector, "calls", first.state, until=until + timedelta(hours=1))
    assert [r.crm_id for r in second.records] == [late]
    assert hs.request_log.count(("POST", "/crm/v3/objects/calls/search")) == 1


def test_owners_gone_from_the_active_list_are_reported_missing(portal: Portal) -> None:
    connector = portal.connector()
    state = pull(connector, "owners", None, until=T0).state
    known = sorted([*state["owner_ids"], "40999999"])
    page = pull(connector, "owners", {**state, "owner_ids": known}, until=T0).pages[0]
    assert page.missing_crm_ids == ["40999999"]
    assert isinstance(page.records[0], Rep)  # the store flags missing ids by the first kind


# --- the 10,000-result cap ---------------------------------------------------------------------


def test_the_search_cap_is_passed_by_restarting_and_by_paging_one_timestamp_by_id() -> None:
    clock = Clock(T0)
    hubspot = HubSpotPortal(TOKEN, clock=clock, enforce_search_rate_limit=False)
    contact = hubspot.create("contacts", {"createdate": "2024-02-01T00:00:00Z"}, modified_at=OLD)
    crowded = T0 + timedelta(minutes=30)
    ids = []
    for i in range(500):  # distinct times before the crowded millisecond
        ids.append(
            hubspot.create(
                "calls",
                {"hs_timestamp": "2024-03-04T09:00:00Z"},
                modified_at=T0 + timedelta(seconds=i),
            )
        )
    for _ in range(10_150):  # more than the cap in one millisecond
        ids.append(
            hubspot.create(
                "calls",
                {"hs_timestamp": "2024-03-04T09:00:00Z"},
                associations={"contacts": [contact]},
                modified_at=crowded,
            )
        )
    for i in range(50):
        ids.append(
            hubspot.create(
                "calls",
                {"hs_timestamp": "2024-03-04T09:00:00Z"},
                modified_at=crowded + timedelta(seconds=i + 1),
            )
        )
    with serve_portal(hubspot) as running:
        connector = HubSpotConnector(
            TOKEN,
            host=running.url,
            search_page_size=200,
            sleep=lambda _: None,
            searches_per_second=None,
        )
        state = {
            "mode": "incremental",
            "cursor": {"modified_at": T0.isoformat()},
            "lookback": False,
            "swept_at": (T0 + timedelta(hours=2)).isoformat(),
        }
        started = time.monotonic()
        pulled = pull(connector, "calls", state, until=T0 + timedelta(hours=1))
        elapsed = time.monotonic() - started
    got = [r.crm_id for r in pulled.records]
    assert sorted(got) == sorted(ids)  # every record once: boundary re-reads are dropped
    searches = [r for r in hubspot.request_log if r[1].endswith("/search")]
    # 50 pages to the cap (500 + 9,500 crowded), the crowded millisecond by id in 51
    # pages (10,150), then the 50 after it in one.
    assert len(searches) == 50 + 51 + 1
    crowded_calls = [r for r in pulled.records if r.modified_at == crowded]
    assert all(isinstance(c, Call) and c.contact_crm_id == contact for c in crowded_calls)
    assert pulled.state["cursor"]["modified_at"].startswith("2024-03-04T10:00:00")
    assert elapsed < 30


# --- failures -----------------------------------------------------------------------------------


def _snapshot(pulled: dict[str, Pulled]) -> dict[str, list[Record]]:
    return {s: sorted(p.records, key=lambda r: (r.kind, r.crm_id)) for s, p in pulled.items()}


def test_rate_limits_and_server_errors_are_retried_to_the_same_result(portal: Portal) -> None:
    hs = portal.hubspot
    clean = _snapshot(sync_all(portal.connector(), {}, until=T0))
    hs.faults.rate_limit_every = 4
    hs.faults.server_error_every = 7
    requests: list[None] = []
    connector = portal.connector(on_request=lambda: requests.append(None))
    hs.request_log.clear()
    faulty = _snapshot(sync_all(connector, {}, until=T0))
    assert faulty == clean
    assert connector.api_calls == len(requests) == len(hs.request_log) > 20
    # The 429s carry the portal's 10-second window; the waits honour it.
    assert sum(1 for s in portal.sleeps if s >= 10.0) >= 3
    assert all(s < 40 for s in portal.sleeps)


def test_timeouts_are_retried() -> None:
    hubspot = HubSpotPortal(TOKEN, clock=Clock(T0), enforce_search_rate_limit=False)
    hubspot.create("contacts", {"createdate": "2024-02-01T00:00:00Z"}, modified_at=OLD)
    hubspot.faults.delay_seconds = 1.0
    hubspot.faults.delay_every = 2
    with serve_portal(hubspot) as running:
        connector = HubSpotConnector(TOKEN, host=running.url, timeout=0.3, sleep=lambda _: None)
        pulled = pull(connector, "contacts", None, until=T0)
    assert len(pulled.records) == 1
    assert connector.api_calls == 3  # active page, a timed-out archived page, its retry


def test_persistent_failures_raise_after_the_retries(portal: Portal) -> None:
    hs = portal.hubspot
    hs.faults.server_error_burst = 100
    connector = portal.connector(max_retries=2)
    with pytest.raises(TransientError, match="503"):
        pull(connector, "contacts", None, until=T0)
    assert connector.api_calls == 3
    hs.faults.server_error_burst = 0
    hs.faults.rate_limit_every = 1
    connector = portal.connector(max_retries=3)
    with pytest.raises(RateLimited) as limited:
        pull(connector, "calls", None, until=T0)
    assert limited.value.retry_after == 10.0
    assert connector.api_calls == 4


def test_the_daily_limit_stops_the_run_without_retrying(portal: Portal) -> None:
    portal.hubspot.daily_limit = 2
    connector = portal.connector()
    with pytest.raises(QuotaExhausted, match="daily"):
        sync_all(connector, {}, until=T0)
    assert connector.api_calls == 3


def test_a_refused_token_raises_auth_error_without_the_token() -> None:
    hubspot = HubSpotPortal(TOKEN, clock=Clock(T0))
    with serve_portal(hubspot) as running:
        wrong = "pat-na1-99999999-8888-7777-6666-000000000000"
        connector = HubSpotConnector(wrong, host=running.url, sleep=lambda _: None)
        with pytest.raises(AuthError) as refused:
            pull(connector, "contacts", None, until=T0)
        hubspot.faults.fail_auth = True
        with pytest.raises(AuthError) as expired:
            pull(HubSpotConnector(TOKEN, host=running.url), "owners", None, until=T0)
    for error, token in ((refused.value, wrong), (expired.value, TOKEN)):
        assert "401" in str(error)
        text = f"{error!s} {error!r} {error.__cause__!r} {error.__context__!r}"
        assert token not in text
        assert error.__suppress_context__
    assert connector.api_calls == 1  # no retries for a refused token


# --- quarantine and resume ---------------------------------------------------------------------


def test_malformed_records_are_quarantined_and_the_page_goes_on(portal: Portal) -> None:
    hs = portal.hubspot
    calls = portal.live("calls")
    hs.faults.malformed[("calls", calls[3])] = {"hs_timestamp": "yesterday"}
    hs.faults.malformed[("calls", calls[50])] = {"hs_call_duration": "one minute"}
    hs.faults.malformed[("meetings", next(iter(portal.deal_of)))] = {"hs_meeting_outcome": "HELD"}
    connector = portal.connector()
    pulled = pull(connector, "calls", None, until=T0)
    assert sorted(r.crm_id for r in pulled.rejected) == sorted([calls[3], calls[50]])
    reasons = {r.crm_id: r.reason for r in pulled.rejected}
    assert "hs_timestamp" in reasons[calls[3]] and "hs_call_duration" in reasons[calls[50]]
    assert all(r.payload["id"] == r.crm_id for r in pulled.rejected)
    assert len(pulled.records) == total(hs, "calls") - 2
    first_page = pulled.pages[0]
    assert len(first_page.records) + len(first_page.rejected) == 100
    meetings = pull(connector, "meetings", None, until=T0)
    assert [r.reason for r in meetings.rejected] == [
        "hs_meeting_outcome: unknown meeting outcome 'HELD' "
        "(map it under [hubspot.values.meeting_outcome] in the mapping file)"
    ]


def test_a_saved_full_sync_state_resumes_with_exactly_the_remaining_records(
    portal: Portal,
) -> None:
    connector = portal.connector(page_size=10)
    whole = pull(connector, "calls", None, until=T0)
    assert len(whole.pages) == 13 + 1  # 130 active in pages of 10, then 4 archived
    for cut in (2, 12, 13):
        resumed = pull(connector, "calls", whole.pages[cut - 1].state, until=T0)
        remaining = [r for page in whole.pages[cut:] for r in page.records]
        assert resumed.records == remaining
        assert resumed.state == whole.state


def test_a_saved_incremental_state_resumes_with_exactly_the_remaining_records(
    portal: Portal,
) -> None:
    hs = portal.hubspot
    connector = portal.connector(search_page_size=7)
    state = pull(connector, "calls", None, until=T0).state
    calls = portal.live("calls")
    for i, crm_id in enumerate(calls[:30]):
        hs.update(
            "calls", crm_id, {"hs_call_status": "BUSY"}, modified_at=T0 + timedelta(minutes=i // 3)
        )  # three share each minute
    until = T0 + timedelta(hours=1)
    whole = pull(connector, "calls", state, until=until)
    assert sorted(r.crm_id for r in whole.records) == sorted(calls[:30])
    for cut in (1, 2, 4):
        resumed = pull(connector, "calls", whole.pages[cut - 1].state, until=until)
        assert [r.crm_id for r in resumed.records] == [
            r.crm_id for page in whole.pages[cut:] for r in page.records
        ]


# --- mapping, pacing ----------------------------------------------------------------------------


def test_a_mapping_file_changes_what_is_read(portal: Portal, tmp_path: Path) -> None:
    hs = portal.hubspot
    deal = hs.create(
        "deals",
        {
            "createdate": "2024-02-25T00:00:00Z",
            "dealstage": "closedwon",
            "pipeline": "default",
            "inside_sales_rep": "41000002",
        },
        modified_at=OLD,
    )
    path = tmp_path / "mapping.toml"
    path.write_text('[hubspot.fields.deal]\nrep_crm_id = "inside_sales_rep"\n')
    connector = portal.connector(mapping=load_mapping(path))
    records = pull(connector, "deals", None, until=T0).by_id()
    assert isinstance(records[deal], Deal) and records[deal].rep_crm_id == "41000002"
    assert records[deal].is_won is True and records[deal].probability == 1.0
    others = [r for r in records.values() if r.crm_id != deal]
    assert others and all(isinstance(r, Deal) and r.rep_crm_id is None for r in others)
    assert portal.connector().streams[1].cursor_field == "lastmodifieddate"


def test_searches_are_paced_under_the_portal_search_limit() -> None:
    clock = Clock(T0)
    hubspot = HubSpotPortal(TOKEN, clock=clock)  # enforces 5 searches a second
    with serve_portal(hubspot) as running:
        # An instant ``sleep``: the pacing waits in real time regardless.
        connector = HubSpotConnector(TOKEN, host=running.url, sleep=lambda _: None)
        states: dict[str, dict[str, Any] | None] = {}
        sync_all(connector, states, until=T0)
        hubspot.request_log.clear()
        for hour in (1, 2):
            sync_all(connector, states, until=T0 + timedelta(hours=hour))
    # The CRM search endpoints (the lists search is not one of them).
    searches = [
        r
        for r in hubspot.request_log
        if r[1].startswith("/crm/v3/objects/") and r[1].endswith("/search")
    ]
    assert len(searches) == 12  # no search was refused and repeated
