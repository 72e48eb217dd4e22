"""Hostile CRM payloads: each quarantined or handled, never a crash, never a silently wrong KPI.

A small month of clean activity is entered by hand in each simulated CRM (rep A), beside records
whose served JSON is hostile: wrong types, missing required fields, megabyte strings, values the
mapping does not know, dates in the year 9999 and at the epoch, records without an id or without
properties, and ids repeated on a page. The fakes serve them through their fault hooks
(``FaultPlan.malformed`` overrides a record's values as served, ``FaultPlan.rewrite`` rewrites or
repeats a record's JSON on its page). After the sync (which must end ``ok``):

- every hostile record is either in quarantine with a reason naming the field, or stored as the
  docs say (a date outside the month, an unknown disposition as outcome ``unknown``);
- the KPIs of rep A, from the rollups and from the raw rows, equal those of the clean records
  alone, worked out by hand below; rep B holds the calls with values the mapping does not know,
  counted as docs/sync.md says (a call, not reached).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trustme
from sqlalchemy import Engine, func, select

from connectors.hubspot import HubSpotConnector
from kpi import KpiContext, compute
from models import Call, Deal, Lead, QuarantinedRecord, Rep
from service.sync.run import SyncReport, run_sync
from simulators.hubspot.portal import HubSpotPortal, serve_portal
from simulators.salesforce.org import SalesforceOrg, serve_org
from tests.support.salesforce import Clock, Org, ca

__all__ = ["ca"]

TOKEN = "hostile-test-token"
TOKYO = ZoneInfo("Asia/Tokyo")
CTX = KpiContext(timezone="Asia/Tokyo", now=datetime(2026, 11, 1, tzinfo=UTC))
OCTOBER = (date(2026, 10, 1), date(2026, 10, 31))
MEGABYTE = 1_048_576


def at(day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A moment in October 2026, Tokyo time."""
    return datetime(2026, 10, day, hour, minute, tzinfo=TOKYO).astimezone(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# Rep A's clean month, and its KPIs worked out by hand (October 2026, Tokyo):
#   calls: 120 s connected, no answer, 59.999 s connected (outbound), one inbound (not counted)
#     calls 3; reached 3/3; connected 2/3; effective (>= 60 s) 1, 1/3; talk (120 + 59.999) / 2
#   emails: sent and tracked (opened once), sent untracked: sent 2; opened 1/1 of tracked
#   a meeting booked on the 5th, held: set 1, valid 1; conversion 1 / 1 effective contact
#   a deal created the 3rd, won the 20th, 1,000, all four BANT fields, handoff rated 4
#   a lead created the 1st at 09:00, first called at 10:00: supply 1, response 60 minutes
EXPECTED_A: dict[str, float | None] = {
    "calls": 3,
    "call_reach_rate": 1.0,
    "connect_rate": 2 / 3,
    "effective_contacts": 1,
    "effective_contact_rate": 1 / 3,
    "avg_talk_seconds": (120 + 59.999) / 2,
    "emails_sent": 2,
    "email_open_rate": 1.0,
    "email_click_rate": 0.0,
    "meetings_set": 1,
    "valid_meetings": 1,
    "meeting_conversion_rate": 1.0,
    "meeting_cancel_rate": 0.0,
    "deals_created": 1,
    "bant_rate": 1.0,
    "handoff_win_rate": 1.0,
    "won_count": 1,
    "won_amount": 1000,
    "win_rate": 1.0,
    "avg_deal_size": 1000,
    "handoff_rating": 4.0,
    "handoff_bant_score": 1.0,
    "lead_supply": 1,
    "lead_response_minutes": 60.0,
}
# Rep B: one outbound call with a disposition and status the mapping does not know (outcome
# unknown: a call, not reached), one with an unknown direction (not outbound: not counted).
EXPECTED_B: dict[str, float | None] = {
    "calls": 1,
    "call_reach_rate": 0.0,
    "connect_rate": 0.0,
    "effective_contacts": 0,
}


def kpis_by_rep(engine: Engine, *, use_rollups: bool = True) -> dict[str, dict[str, Any]]:
    """scope id → kpi → value, for October."""
    start, end = OCTOBER
    rows = compute(
        engine, CTX, grain="month", start=start, end=end, scope="rep", use_rollups=use_rollups
    )
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        out.setdefault(row.scope_id, {})[row.kpi] = row.value
    return out


def assert_kpis(engine: Engine, rep: str, expected: dict[str, float | None]) -> None:
    for use_rollups in (True, False):
        got = kpis_by_rep(engine, use_rollups=use_rollups)[rep]
        for kpi, value in expected.items():
            assert got[kpi] == pytest.approx(value), (kpi, use_rollups)


def quarantined(engine: Engine, source: str) -> dict[str, str]:
    """crm id → reason, of the source's quarantined records."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(QuarantinedRecord.crm_id, QuarantinedRecord.reason).where(
                QuarantinedRecord.source == source
            )
        )
        return {row.crm_id: row.reason for row in rows}


def stored(engine: Engine, model: Any, crm_id: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(model).where(model.crm_id == crm_id)
            ).scalar_one()
        )


def rewrite_for(
    rules: dict[tuple[str, str], Callable[[dict[str, Any]], list[dict[str, Any]]]],
) -> Callable[[str, dict[str, Any]], list[dict[str, Any]]]:
    """A FaultPlan.rewrite applying per-record rules, keyed (object type, id)."""

    def rewrite(object_type: str, record: dict[str, Any]) -> list[dict[str, Any]]:
        rule = rules.get((object_type, str(record.get("id") or record.get("Id"))))
        return rule(record) if rule is not None else [record]

    return rewrite


# --- HubSpot ----------------------------------------------------------------------------------

CONNECTED = "f240bbac-87c9-4f6e-bf70-924b57d47db7"
NO_ANSWER = "73a0d17f-1163-4015-bdd5-ec830791da20"


class HubSpotMonth:
    """Rep A's clean month, rep B's odd calls, and the hostile records, in a portal."""

    def __init__(self) -> None:
        hub = self.hub = HubSpotPortal(TOKEN, enforce_search_rate_limit=False)
        hub.set_pipeline_stages([("closedwon", "Closed Won", 1.0, True, True)])
        self.a = hub.add_owner(
            email="a@example.jp", first_name="A", last_name="Rep", teams=[("1", "IS", True)]
        )
        self.b = hub.add_owner(
            email="b@example.jp", first_name="B", last_name="Rep", teams=[("1", "IS", True)]
        )
        self.lead = hub.create(
            "contacts",
            {
                "createdate": iso(at(1, 9)),
                "hs_analytics_source": "ORGANIC_SEARCH",
                "hubspot_owner_id": self.a,
            },
        )
        self.calls = [
            self.call(at(1, 10), "OUTBOUND", CONNECTED, "120000"),
            self.call(at(2), "OUTBOUND", NO_ANSWER, "0"),
            self.call(at(3), "OUTBOUND", CONNECTED, "59999"),
            self.call(at(4), "INBOUND", CONNECTED, "300000"),
        ]
        self.email({"hs_email_open_count": "1", "hs_email_click_count": "0"})
        self.email({})
        deal = self.deal_id = self.deal()
        hub.create(
            "meetings",
            {
                "hs_createdate": iso(at(5)),
                "hs_meeting_start_time": iso(at(6)),
                "hs_meeting_outcome": "COMPLETED",
                "hubspot_owner_id": self.a,
            },
            associations={"contacts": [self.lead], "deals": [deal]},
        )
        # Rep B: values the mapping does not know (stored as docs/sync.md says).
        self.b_unknown = self.call(at(7), "OUTBOUND", "zzz-not-a-disposition", "0", owner=self.b)
        self.hub.update("calls", self.b_unknown, {"hs_call_status": "TELEPORTED"})
        self.b_sideways = self.call(at(7, 11), "SIDEWAYS", CONNECTED, "90000", owner=self.b)

        # Hostile records: clean when made, served hostile. id → the field the reason names.
        self.expect_quarantined: dict[str, str] = {}
        self.expect_stored: list[tuple[Any, str]] = []
        plan = hub.faults
        rules: dict[tuple[str, str], Callable[[dict[str, Any]], list[dict[str, Any]]]] = {}

        def hostile_call(overrides: dict[str, Any], reason: str) -> str:
            crm_id = self.call(at(8), "OUTBOUND", CONNECTED, "120000")
            plan.malformed[("calls", crm_id)] = overrides
            self.expect_quarantined[crm_id] = reason
            return crm_id

        # wrong types
        hostile_call({"hs_call_duration": "abc"}, "hs_call_duration")
        hostile_call({"hs_call_duration": {"ms": 5}}, "hs_call_duration")
        hostile_call({"hs_call_duration": True}, "hs_call_duration")
        hostile_call({"hs_call_duration": "12.5"}, "hs_call_duration")
        hostile_call({"hs_call_duration": "99999999999999"}, "duration_ms")  # 3,000 years
        hostile_call({"hs_call_duration": "-60000"}, "hs_call_duration: negative duration")
        # missing required fields
        hostile_call({"hs_timestamp": None}, "hs_timestamp")
        hostile_call({"hs_timestamp": ""}, "hs_timestamp")
        hostile_call({"hs_timestamp": "yesterday"}, "hs_timestamp")
        hostile_call({"hs_timestamp": "253402300800000"}, "hs_timestamp")  # the year 10000
        # a megabyte where an owner id goes
        hostile_call({"hubspot_owner_id": "9" * MEGABYTE}, "rep_crm_id")
        # no properties object, no id
        no_props = hostile_call({}, "properties")
        rules[("calls", no_props)] = lambda r: [{**r, "properties": "garbage"}]
        no_id = self.call(at(8), "OUTBOUND", CONNECTED, "120000")
        rules[("calls", no_id)] = lambda r: [{k: v for k, v in r.items() if k != "id"}]
        self.no_id = no_id
        # a call in the year 9999 (no business day can hold it: quarantined) and at the epoch
        # (stored, outside every month measured here)
        hostile_call({"hs_timestamp": "9999-12-31T23:59:59.999Z"}, "occurred_at")
        for moment in ("1970-01-01T00:00:00.000Z", "0"):
            crm_id = self.call(at(8), "OUTBOUND", CONNECTED, "120000")
            plan.malformed[("calls", crm_id)] = {"hs_timestamp": moment}
            self.expect_stored.append((Call, crm_id))
        # the same call twice on its page: stored once
        rules[("calls", self.calls[0])] = lambda r: [r, r]
        # a lead repeated on its page with a newer copy: stored once, the later copy
        rules[("contacts", self.lead)] = lambda r: [
            r,
            {**r, "properties": {**r["properties"], "hs_analytics_source": "REFERRALS"}},
        ]

        def hostile(
            object_type: str,
            props: dict[str, str],
            overrides: dict[str, Any],
            reason: str,
            **associations: list[str],
        ) -> None:
            crm_id = hub.create(object_type, props, associations=associations or None)
            plan.malformed[(object_type, crm_id)] = overrides
            self.expect_quarantined[crm_id] = reason

        lead = {"createdate": iso(at(2)), "hubspot_owner_id": self.a}
        hostile("contacts", lead, {"industry": "x" * MEGABYTE}, "industry")
        hostile("contacts", lead, {"createdate": None}, "createdate")
        hostile("contacts", lead, {"hubspotscore": "1e400"}, "score")
        deal_props = self.deal_props()
        hostile("deals", deal_props, {"amount": "lots"}, "amount")
        hostile("deals", deal_props, {"amount": "1e30"}, "amount")
        hostile("deals", deal_props, {"amount": "NaN"}, "amount")
        hostile("deals", deal_props, {"amount": "-1000"}, "amount: negative amount")
        hostile("deals", deal_props, {"handoff_rating": "1e400"}, "handoff_rating")
        hostile("deals", deal_props, {"bant_budget": "y" * MEGABYTE}, "bant_budget")
        hostile("deals", deal_props, {"hs_is_closed_won": "maybe"}, "hs_is_closed_won")
        hostile("deals", deal_props, {"createdate": None}, "createdate")
        # created at the epoch, closed in the year 9999: stored, in neither month
        future = hub.create(
            "deals",
            {
                **deal_props,
                "createdate": "1970-01-01T00:00:00.000Z",
                "closedate": "9999-12-31T00:00:00.000Z",
            },
        )
        self.expect_stored.append((Deal, future))
        meeting = {"hs_createdate": iso(at(9)), "hubspot_owner_id": self.a}
        hostile("meetings", meeting, {"hs_meeting_outcome": "ABDUCTED"}, "hs_meeting_outcome")
        email = {
            "hs_timestamp": iso(at(9)),
            "hs_email_direction": "EMAIL",
            "hs_email_status": "SENT",
            "hubspot_owner_id": self.a,
        }
        hostile("emails", email, {"hs_email_open_count": "many"}, "hs_email_open_count")
        hostile("emails", email, {"hs_email_status": "S" * MEGABYTE}, "status")
        plan.rewrite = rewrite_for(rules)

    def call(
        self, when: datetime, direction: str, disposition: str, ms: str, *, owner: str | None = None
    ) -> str:
        return self.hub.create(
            "calls",
            {
                "hs_timestamp": iso(when),
                "hs_call_direction": direction,
                "hs_call_disposition": disposition,
                "hs_call_status": "COMPLETED",
                "hs_call_duration": ms,
                "hubspot_owner_id": owner or self.a,
            },
            associations={"contacts": [self.lead]},
        )

    def email(self, counts: dict[str, str]) -> str:
        return self.hub.create(
            "emails",
            {
                "hs_timestamp": iso(at(4, 11)),
                "hs_email_direction": "EMAIL",
                "hs_email_status": "SENT",
                "hubspot_owner_id": self.a,
                **counts,
            },
            associations={"contacts": [self.lead]},
        )

    def deal_props(self) -> dict[str, str]:
        return {
            "createdate": iso(at(3)),
            "closedate": iso(at(20)),
            "amount": "1000",
            "dealstage": "closedwon",
            "is_rep_owner_id": self.a,
            "bant_budget": "yes",
            "bant_authority": "cfo",
            "bant_need": "need",
            "bant_timing": "q4",
            "handoff_rating": "4",
        }

    def deal(self) -> str:
        return self.hub.create("deals", self.deal_props(), associations={"contacts": [self.lead]})


@pytest.fixture
def hubspot() -> Iterator[tuple[HubSpotMonth, str]]:
    month = HubSpotMonth()
    running = serve_portal(month.hub)
    try:
        yield month, running.url
    finally:
        running.stop()


def sync_hubspot(engine: Engine, url: str) -> SyncReport:
    connector = HubSpotConnector(TOKEN, host=url, sleep=lambda _: None, searches_per_second=None)
    return run_sync(engine, connector, kpi=CTX)


def test_hostile_hubspot_payloads_are_quarantined_or_handled(
    engine: Engine, hubspot: tuple[HubSpotMonth, str]
) -> None:
    month, url = hubspot
    report = sync_hubspot(engine, url)
    assert report.status == "ok", report.error
    held = quarantined(engine, "hubspot")
    for crm_id, field_name in month.expect_quarantined.items():
        assert crm_id in held, (crm_id, field_name)
        assert field_name in held[crm_id], (crm_id, held[crm_id][:300])
        assert stored(engine, Call, crm_id) == 0
    no_id = [k for k in held if k.startswith("?")]
    assert len(no_id) == 1 and "no id" in held[no_id[0]]
    extra = {k: v[:200] for k, v in held.items() if k not in month.expect_quarantined}
    assert len(extra) == 1, extra
    for model, crm_id in month.expect_stored:
        assert stored(engine, model, crm_id) == 1
    assert stored(engine, Call, month.calls[0]) == 1
    with engine.connect() as conn:
        channel = conn.execute(select(Lead.channel).where(Lead.crm_id == month.lead)).scalar_one()
    assert channel == "REFERRALS"  # the later copy on the page
    assert_kpis(engine, f"hubspot:{month.a}", EXPECTED_A)
    assert_kpis(engine, f"hubspot:{month.b}", EXPECTED_B)
    # The next run (incremental) changes none of it; the hostile records stay in quarantine.
    again = sync_hubspot(engine, url)
    assert again.status == "ok", again.error
    assert set(quarantined(engine, "hubspot")) == set(held)
    assert_kpis(engine, f"hubspot:{month.a}", EXPECTED_A)


def with_nul_id(plan: Any, object_type: str, crm_id: str, id_key: str) -> None:
    """Serve one record with a NUL byte in its id (on top of the plan's other rewrites)."""
    earlier = plan.rewrite

    def rewrite(kind: str, record: dict[str, Any]) -> list[dict[str, Any]]:
        out = earlier(kind, record) if earlier is not None else [record]
        if kind == object_type and str(record.get(id_key)) == crm_id:
            return [{**r, id_key: f"{crm_id}\x00"} for r in out]
        return out

    plan.rewrite = rewrite


def stored_text(engine: Engine, column: Any, crm_id: str) -> Any:
    with engine.connect() as conn:
        model = column.class_
        return conn.execute(select(column).where(model.crm_id == crm_id)).scalar_one()


def test_nul_bytes_in_hubspot_text_are_stripped(
    engine: Engine, hubspot: tuple[HubSpotMonth, str]
) -> None:
    """U+0000 in free text (PostgreSQL refuses it) is stripped; a NUL in an id is quarantined."""
    month, url = hubspot
    plan = month.hub.faults
    plan.malformed[("contacts", month.lead)] = {"firstname": "Ta\x00ro", "industry": "Soft\x00ware"}
    plan.malformed[("calls", month.calls[0])] = {
        "hs_call_body": "Hello\x00, is this\x00 a good time?",
        "hs_call_direction": "OUT\x00BOUND",
    }
    plan.malformed[("deals", month.deal_id)] = {"dealname": "Big\x00 deal", "bant_need": "ne\x00ed"}
    nul_id = month.call(at(9), "OUTBOUND", CONNECTED, "120000")
    with_nul_id(plan, "calls", nul_id, "id")
    for run in range(2):  # the first run, and an incremental one over the same records
        report = sync_hubspot(engine, url)
        assert report.status == "ok", (run, report.error)
        held = quarantined(engine, "hubspot")
        assert set(month.expect_quarantined) <= set(held)
        assert "NUL" in held[nul_id]
        assert stored(engine, Call, nul_id) == 0
        assert stored_text(engine, Lead.industry, month.lead) == "Software"
        assert stored_text(engine, Call.direction, month.calls[0]) == "outbound"
        assert stored_text(engine, Deal.bant_need, month.deal_id) == "need"
        assert_kpis(engine, f"hubspot:{month.a}", EXPECTED_A)
        assert_kpis(engine, f"hubspot:{month.b}", EXPECTED_B)


# --- Salesforce -------------------------------------------------------------------------------

RUN = datetime(2026, 11, 1, tzinfo=UTC)


class SalesforceMonth:
    """The same month in an org: rep A's clean records, rep B's odd calls, hostile records."""

    def __init__(self, org: SalesforceOrg) -> None:
        self.org = sf = org
        created = at(1, 8)
        role = sf.create("UserRole", {"Name": "IS"}, created_at=created, modified_at=created)
        self.a, self.b = (
            sf.create(
                "User",
                {
                    "LastName": name,
                    "Username": name,
                    "Email": f"{name}@example.jp",
                    "IsActive": True,
                    "UserType": "Standard",
                    "UserRoleId": role,
                },
                created_at=created,
                modified_at=created,
            )
            for name in ("a", "b")
        )
        self.lead = sf.create(
            "Lead",
            {
                "LastName": "L",
                "Company": "K",
                "LeadSource": "Web",
                "Status": "Open",
                "OwnerId": self.a,
            },
            created_at=at(1, 9),
            modified_at=at(1, 9),
        )
        self.calls = [
            self.call(at(1, 10), "Outbound", "Connected", 120),
            self.call(at(2), "Outbound", "No Answer", 0),
            self.call(at(3), "Outbound", "Connected", 59),
            self.call(at(4), "Inbound", "Connected", 300),
        ]
        for tracked, opened in ((True, True), (False, False)):
            task = sf.create(
                "Task",
                {
                    "TaskSubtype": "Email",
                    "Type": "Email",
                    "Status": "Completed",
                    "CompletedDateTime": at(4, 11),
                    "OwnerId": self.a,
                    "WhoId": self.lead,
                },
                created_at=at(4, 11),
                modified_at=at(4, 11),
            )
            sf.create(
                "EmailMessage",
                {
                    "ActivityId": task,
                    "MessageDate": at(4, 11),
                    "Status": "3",
                    "IsTracked": tracked,
                    "IsBounced": False,
                    "HasReply": False,
                    "FirstOpenedDate": at(4, 12) if opened else None,
                },
                created_at=at(4, 11),
                modified_at=at(4, 11),
            )
        deal = self.deal_id = self.deal()
        sf.create(
            "Event",
            {
                "StartDateTime": at(6),
                "Meeting_Outcome__c": "Completed",
                "OwnerId": self.a,
                "WhoId": self.lead,
                "WhatId": deal,
            },
            created_at=at(5),
            modified_at=at(5),
        )
        self.b_unknown = self.call(at(7), "Outbound", "Teleported", 0, owner=self.b)
        self.b_sideways = self.call(at(7, 11), "Sideways", "Connected", 90, owner=self.b)

        self.expect_quarantined: dict[str, str] = {}
        plan = sf.faults
        rules: dict[tuple[str, str], Callable[[dict[str, Any]], list[dict[str, Any]]]] = {}

        def hostile(sobject: str, record_id: str, overrides: dict[str, Any], reason: str) -> None:
            plan.malformed[(sobject, record_id)] = overrides
            self.expect_quarantined[record_id] = reason

        def call() -> str:
            return self.call(at(8), "Outbound", "Connected", 120)

        hostile("Task", call(), {"CallDurationInSeconds": "abc"}, "CallDurationInSeconds")
        hostile("Task", call(), {"CallDurationInSeconds": {"s": 5}}, "CallDurationInSeconds")
        hostile("Task", call(), {"CallDurationInSeconds": 10**12}, "duration_ms")
        hostile("Task", call(), {"CallDurationInSeconds": -60}, "negative duration")
        hostile("Task", call(), {"CompletedDateTime": 12345, "CreatedDate": 12345}, "Date")
        hostile("Task", call(), {"CompletedDateTime": None, "CreatedDate": None}, "CreatedDate")
        hostile("Task", call(), {"OwnerId": "0" * MEGABYTE}, "rep_crm_id")
        no_id = call()
        rules[("Task", no_id)] = lambda r: [{k: v for k, v in r.items() if k != "Id"}]
        hostile(
            "Task", call(), {"CompletedDateTime": "9999-12-31T23:59:59.000+0000"}, "occurred_at"
        )
        epoch = call()
        plan.malformed[("Task", epoch)] = {"CompletedDateTime": "1970-01-01T00:00:00.000+0000"}
        self.expect_stored = [epoch]
        # an open opportunity made in September, to close on 9999-12-31 (a placeholder):
        # stored, and in none of October's figures
        self.placeholder = sf.create(
            "Opportunity",
            {
                "Name": "P",
                "StageName": "Prospecting",
                "CloseDate": date(9999, 12, 31),
                "Amount": 5000.0,
                "OwnerId": self.a,
                "IS_Rep__c": self.a,
            },
            created_at=datetime(2026, 9, 15, tzinfo=UTC),
            modified_at=datetime(2026, 9, 15, tzinfo=UTC),
        )
        rules[("Task", self.calls[0])] = lambda r: [r, r]
        rules[("Lead", self.lead)] = lambda r: [r, {**r, "LeadSource": "Referral"}]

        def lead() -> str:
            return sf.create(
                "Lead",
                {"LastName": "H", "Company": "K", "OwnerId": self.a},
                created_at=at(2),
                modified_at=at(2),
            )

        hostile("Lead", lead(), {"LeadSource": "x" * MEGABYTE}, "channel")
        hostile("Lead", lead(), {"CreatedDate": None}, "CreatedDate")
        hostile("Lead", lead(), {"NumberOfEmployees": "lots"}, "NumberOfEmployees")
        hostile("Opportunity", self.deal(), {"Amount": "lots"}, "Amount")
        hostile("Opportunity", self.deal(), {"Amount": 1e30}, "amount")
        hostile("Opportunity", self.deal(), {"Amount": -1000.0}, "Amount: negative amount")
        hostile("Opportunity", self.deal(), {"Handoff_Rating__c": 1e400}, "Handoff_Rating__c")
        hostile("Opportunity", self.deal(), {"BANT_Budget__c": "y" * MEGABYTE}, "bant_budget")
        hostile("Opportunity", self.deal(), {"IsWon": "maybe"}, "IsWon")
        hostile("Opportunity", self.deal(), {"Probability": 250}, "Probability")
        event = sf.create(
            "Event",
            {"StartDateTime": at(10), "OwnerId": self.a, "WhoId": self.lead},
            created_at=at(9),
            modified_at=at(9),
        )
        hostile("Event", event, {"Meeting_Outcome__c": "Abducted"}, "Meeting_Outcome__c")
        plan.rewrite = rewrite_for(rules)

    def call(
        self, when: datetime, kind: str, disposition: str, seconds: int, *, owner: str | None = None
    ) -> str:
        return self.org.create(
            "Task",
            {
                "TaskSubtype": "Call",
                "Type": "Call",
                "Status": "Completed",
                "CallType": kind,
                "CallDisposition": disposition,
                "CallDurationInSeconds": seconds,
                "CompletedDateTime": when,
                "OwnerId": owner or self.a,
                "WhoId": self.lead,
            },
            created_at=when,
            modified_at=when,
        )

    def deal(self) -> str:
        return self.org.create(
            "Opportunity",
            {
                "Name": "D",
                "StageName": "Closed Won",
                "Probability": 100.0,
                "CloseDate": date(2026, 10, 20),
                "Amount": 1000.0,
                "OwnerId": self.a,
                "IS_Rep__c": self.a,
                "BANT_Budget__c": "yes",
                "BANT_Authority__c": "cfo",
                "BANT_Need__c": "need",
                "BANT_Timing__c": "q4",
                "Handoff_Rating__c": 4.0,
            },
            created_at=at(3),
            modified_at=at(3),
        )


@pytest.fixture
def salesforce(ca: trustme.CA) -> Iterator[tuple[SalesforceMonth, Org]]:
    org = SalesforceOrg(clock=lambda: RUN)
    month = SalesforceMonth(org)
    served = Org(serve_org(org, tls=ca), Clock(RUN))
    try:
        yield month, served
    finally:
        served.running.stop()


def sync_salesforce(engine: Engine, served: Org, when: datetime) -> SyncReport:
    connector = served.connector(timezone=TOKYO, page_size=200, store_page_size=200)
    return run_sync(engine, connector, kpi=CTX, clock=lambda: when)


def test_hostile_salesforce_payloads_are_quarantined_or_handled(
    engine: Engine, salesforce: tuple[SalesforceMonth, Org]
) -> None:
    month, served = salesforce
    report = sync_salesforce(engine, served, RUN)
    assert report.status == "ok", report.error
    held = quarantined(engine, "salesforce")
    for crm_id, field_name in month.expect_quarantined.items():
        assert crm_id in held, (crm_id, field_name)
        assert field_name in held[crm_id], (crm_id, held[crm_id][:300])
    no_id = [k for k in held if k.startswith("?")]
    assert len(no_id) == 1
    extra = {k: v[:200] for k, v in held.items() if k not in month.expect_quarantined}
    assert len(extra) == 1, extra
    for crm_id in month.expect_stored:
        assert stored(engine, Call, crm_id) == 1
    assert stored(engine, Deal, month.placeholder) == 1
    assert stored(engine, Call, month.calls[0]) == 1
    with engine.connect() as conn:
        channel = conn.execute(select(Lead.channel).where(Lead.crm_id == month.lead)).scalar_one()
    assert channel == "Referral"
    assert_kpis(engine, f"salesforce:{month.a}", {**EXPECTED_A, "avg_talk_seconds": (120 + 59) / 2})
    assert_kpis(engine, f"salesforce:{month.b}", EXPECTED_B)
    again = sync_salesforce(engine, served, RUN + timedelta(hours=1))
    assert again.status == "ok", again.error
    assert set(quarantined(engine, "salesforce")) == set(held)


def test_nul_bytes_in_salesforce_text_are_stripped(
    engine: Engine, salesforce: tuple[SalesforceMonth, Org]
) -> None:
    """The same in an org: names, call fields, deal fields with U+0000; an Id with one."""
    month, served = salesforce
    plan = month.org.faults
    plan.malformed[("User", month.a)] = {"Name": "A\x00 Rep"}
    plan.malformed[("Lead", month.lead)] = {"Industry": "Soft\x00ware", "Status": "Op\x00en"}
    plan.malformed[("Task", month.calls[0])] = {"CallType": "Out\x00bound"}
    plan.malformed[("Opportunity", month.deal_id)] = {
        "Name": "Big\x00 deal",
        "BANT_Need__c": "ne\x00ed",
    }
    nul_id = month.call(at(9), "Outbound", "Connected", 120)
    with_nul_id(plan, "Task", nul_id, "Id")
    for run, when in enumerate((RUN, RUN + timedelta(hours=1))):
        report = sync_salesforce(engine, served, when)
        assert report.status == "ok", (run, report.error)
        held = quarantined(engine, "salesforce")
        assert set(month.expect_quarantined) <= set(held)
        assert "NUL" in held[nul_id]
        assert stored(engine, Call, nul_id) == 0
        assert stored_text(engine, Rep.name, month.a) == "A Rep"
        assert stored_text(engine, Lead.industry, month.lead) == "Software"
        assert stored_text(engine, Call.direction, month.calls[0]) == "outbound"
        assert stored_text(engine, Deal.bant_need, month.deal_id) == "need"
        expected = {**EXPECTED_A, "avg_talk_seconds": (120 + 59) / 2}
        assert_kpis(engine, f"salesforce:{month.a}", expected)
        assert_kpis(engine, f"salesforce:{month.b}", EXPECTED_B)


# --- a rep who leaves -------------------------------------------------------------------------

ADDITIVE = ("calls", "effective_contacts", "emails_sent", "meetings_set", "deals_created")
OCT_NOV = (date(2026, 10, 1), date(2026, 11, 30))


def assert_leaver_keeps_its_rows(engine: Engine, leaver: str, stayer: str) -> None:
    """The leaver's October rows (where it worked) stay, it has no November row, and each
    team's total is the sum of its reps' rows, the leaver's included."""
    start, end = OCT_NOV
    for use_rollups in (True, False):
        reps = compute(
            engine, CTX, grain="month", start=start, end=end, scope="rep", use_rollups=use_rollups
        )
        by_rep = {(r.kpi, r.scope_id, r.period_start): r.value for r in reps}
        for kpi, value in EXPECTED_B.items():
            assert by_rep[(kpi, leaver, start)] == pytest.approx(value), (kpi, use_rollups)
        assert not [k for k in by_rep if k[1] == leaver and k[2] != start], use_rollups
        assert ("calls", stayer, date(2026, 11, 1)) in by_rep  # dense for the reps who stay
        teams = compute(
            engine, CTX, grain="month", start=start, end=end, scope="team", use_rollups=use_rollups
        )
        assert teams
        for row in teams:
            if row.kpi in ADDITIVE:
                summed = sum(
                    v
                    for (kpi, _, period), v in by_rep.items()
                    if kpi == row.kpi and period == row.period_start
                )
                assert row.value == summed, (row.kpi, row.period_start, use_rollups)
        # Asked for by its id, the leaver has its October rows too.
        alone = compute(
            engine,
            CTX,
            grain="month",
            start=start,
            end=end,
            scope="rep",
            scope_id=leaver,
            kpis=["calls"],
            use_rollups=use_rollups,
        )
        assert [(r.period_start, r.value) for r in alone] == [(start, EXPECTED_B["calls"])]


def test_a_hubspot_owner_deactivated_mid_month_keeps_its_rows(
    engine: Engine, hubspot: tuple[HubSpotMonth, str]
) -> None:
    month, url = hubspot
    assert sync_hubspot(engine, url).status == "ok"
    month.hub.archive_owner(month.b)  # after its calls of the 7th
    report = sync_hubspot(engine, url)
    assert report.status == "ok", report.error
    with engine.connect() as conn:
        deleted = conn.execute(select(Rep.deleted).where(Rep.crm_id == month.b)).scalar_one()
    assert deleted
    assert_leaver_keeps_its_rows(engine, f"hubspot:{month.b}", f"hubspot:{month.a}")


def test_a_salesforce_user_deactivated_mid_month_keeps_its_rows(
    engine: Engine, salesforce: tuple[SalesforceMonth, Org]
) -> None:
    month, served = salesforce
    assert sync_salesforce(engine, served, RUN).status == "ok"
    month.org.update("User", month.b, {"IsActive": False}, modified_at=at(15))
    report = sync_salesforce(engine, served, RUN + timedelta(hours=1))
    assert report.status == "ok", report.error
    with engine.connect() as conn:
        deleted = conn.execute(select(Rep.deleted).where(Rep.crm_id == month.b)).scalar_one()
    assert deleted
    assert_leaver_keeps_its_rows(engine, f"salesforce:{month.b}", f"salesforce:{month.a}")
