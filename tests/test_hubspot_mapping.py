"""HubSpot mapping functions and the mapping file, on recorded, real-shaped payloads.

The payloads in tests/payloads/hubspot/ follow the shapes of developers.hubspot.com
(CRM v3 list and search responses, v4 association batch reads, owners, pipelines):
every property value a string, datetimes as ISO strings or epoch milliseconds.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import RecordRejected
from connectors.hubspot.normalize import (
    attach_associations,
    call_outcome,
    company_size,
    map_call,
    map_contact,
    map_deal,
    map_email,
    map_meeting,
    map_owner,
    map_task,
    merged_ids,
    parse_datetime,
    stage_probabilities,
)
from connectors.mapping import MappingError, default_mapping, load_mapping
from connectors.records import Call, Deal, Email, Lead, Meeting

PAYLOADS = Path(__file__).parent / "payloads" / "hubspot"
HUBSPOT = default_mapping().hubspot


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return data


def results(name: str) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in payload(name)["results"]}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- values --------------------------------------------------------------------------------


def test_datetimes_arrive_as_iso_strings_dates_or_epoch_millis() -> None:
    assert parse_datetime("2024-03-04T01:09:00Z", "x") == at("2024-03-04T01:09:00")
    assert parse_datetime("2024-03-04T01:09:00.123Z", "x") == at("2024-03-04T01:09:00.123")
    assert parse_datetime("1709515200000", "x") == at("2024-03-04T01:20:00")
    assert parse_datetime("1709515200001", "x") == at("2024-03-04T01:20:00.001")
    assert parse_datetime("2024-03-04", "x") == at("2024-03-04T00:00:00")
    assert parse_datetime("2024-03-04T10:00:00+09:00", "x") == at("2024-03-04T01:00:00")
    assert parse_datetime(None, "x") is None
    assert parse_datetime("", "x") is None
    with pytest.raises(RecordRejected, match="hs_timestamp"):
        parse_datetime("yesterday", "hs_timestamp")


@pytest.mark.parametrize(
    ("raw", "bucket"),
    [
        ("1-5", "1-9"),
        ("5-25", "1-9"),
        ("25-50", "10-49"),
        ("50-100", "50-249"),
        ("100-500", "50-249"),
        ("500-1000", "250-999"),
        ("1000+", "1000+"),
        ("61", "50-249"),
        ("9", "1-9"),
        ("10", "10-49"),
        ("1000", "1000+"),
        (None, None),
        ("a few", None),
        ("0", None),
    ],
)
def test_numemployees_is_bucketed_by_its_lower_bound(raw: str | None, bucket: str | None) -> None:
    assert company_size(raw, HUBSPOT) == bucket


@pytest.mark.parametrize(
    ("disposition", "status", "outcome"),
    [
        ("f240bbac-87c9-4f6e-bf70-924b57d47db7", "COMPLETED", "connected"),
        ("73a0d17f-1163-4015-bdd5-ec830791da20", "COMPLETED", "no_answer"),
        ("b2cf5968-551e-4856-9783-52b3da59a7d0", None, "voicemail"),
        ("a4c4c377-d246-4b32-a13b-75a56a4cd0ff", None, "live_message"),
        ("17b47fee-58de-441e-a44c-c6300d46f273", None, "wrong_number"),
        ("9d9162e7-6cf3-4944-bf63-4dff82258764", None, "busy"),
        (None, "BUSY", "busy"),
        (None, "NO_ANSWER", "no_answer"),
        (None, "FAILED", "failed"),
        (None, "CANCELED", "failed"),
        (None, "COMPLETED", "unknown"),
        (None, None, "unknown"),
        ("3e1f8c8a-7d7e-4b8e-9e6e-1c1c2f0f6b11", "BUSY", "busy"),  # a custom disposition
    ],
)
def test_call_outcome_from_disposition_then_status(
    disposition: str | None, status: str | None, outcome: str
) -> None:
    assert call_outcome(disposition, status, HUBSPOT) == outcome


# --- records -------------------------------------------------------------------------------


def test_contacts_map_to_leads() -> None:
    contacts = results("contacts_list")
    lead = map_contact(contacts["151"], HUBSPOT)
    assert lead == Lead(
        source="hubspot",
        crm_id="151",
        modified_at=at("2024-03-06T05:30:12.884"),
        created_at=at("2024-03-04T00:12:41.309"),
        channel="ORGANIC_SEARCH",
        industry="COMPUTER_SOFTWARE",
        company_size="10-49",
        status="salesqualifiedlead",
        sql_at=at("2024-03-06T05:30:00"),
        score=45.0,
        rep_crm_id="52550153",
    )
    epoch = map_contact(contacts["152"], HUBSPOT)
    assert epoch.created_at == at("2024-03-04T00:32:41.309")  # epoch millis
    assert (epoch.rep_crm_id, epoch.sql_at, epoch.industry) == (None, None, None)
    assert epoch.company_size == "1000+"
    blank = map_contact(contacts["153"], HUBSPOT)
    assert (blank.sql_at, blank.score, blank.company_size) == (None, None, None)


def test_a_contact_with_a_bad_create_date_is_rejected() -> None:
    with pytest.raises(RecordRejected, match="createdate"):
        map_contact(results("contacts_list")["154"], HUBSPOT)


def test_calls_map_with_direction_outcome_duration_and_contact() -> None:
    calls = results("calls_list")
    connected = map_call(calls["25830446330"], HUBSPOT)
    assert connected == Call(
        source="hubspot",
        crm_id="25830446330",
        modified_at=at("2024-03-04T01:15:22.120"),
        occurred_at=at("2024-03-04T01:09:00"),
        direction="outbound",
        outcome="connected",
        duration_ms=185000,
        rep_crm_id="52550153",
        contact_crm_id="151",  # the lowest of the associated contacts
    )
    no_answer = map_call(calls["25830446331"], HUBSPOT)
    assert (no_answer.outcome, no_answer.occurred_at) == ("no_answer", at("2024-03-04T01:20:00"))
    inbound = map_call(calls["25830446332"], HUBSPOT)
    assert (inbound.direction, inbound.outcome, inbound.duration_ms) == (
        "inbound",
        "voicemail",
        59999,
    )
    assert inbound.contact_crm_id is None
    undirected = map_call(calls["25830446333"], HUBSPOT)
    assert (undirected.direction, undirected.outcome, undirected.duration_ms) == (
        None,
        "failed",
        None,
    )


def test_calls_that_cannot_be_mapped_are_rejected_with_a_reason() -> None:
    calls = results("calls_list")
    with pytest.raises(RecordRejected, match="hs_call_duration"):
        map_call(calls["25830446334"], HUBSPOT)
    with pytest.raises(RecordRejected, match="missing hs_timestamp"):
        map_call(calls["25830446335"], HUBSPOT)


def test_archived_records_are_flagged_deleted() -> None:
    call = map_call(payload("calls_archived_list")["results"][0], HUBSPOT)
    assert call.deleted is True
    assert call.outcome == "no_answer"


def test_emails_from_search_with_v4_associations() -> None:
    found = payload("emails_search")["results"]
    attach_associations(found, "contacts", payload("associations_emails_contacts"))
    emails = {e.crm_id: e for e in (map_email(r, HUBSPOT) for r in found)}
    assert emails["31000000101"] == Email(
        source="hubspot",
        crm_id="31000000101",
        modified_at=at("2024-03-05T07:45:10.331"),
        sent_at=at("2024-03-04T01:00:00"),
        direction="outbound",
        status="SENT",
        sent=True,
        tracked=True,
        opened=True,
        clicked=True,
        replied=False,
        rep_crm_id="52550153",
        contact_crm_id="151",
    )
    untracked = emails["31000000102"]
    assert (untracked.tracked, untracked.opened, untracked.clicked, untracked.replied) == (
        False,
        None,
        None,
        None,
    )
    assert untracked.contact_crm_id is None  # in the batch read's errors: no associations
    bounced = emails["31000000103"]
    assert (bounced.sent, bounced.tracked, bounced.opened) == (False, True, False)
    assert bounced.contact_crm_id == "152"
    incoming = emails["31000000104"]
    assert (incoming.direction, incoming.sent, incoming.tracked) == ("inbound", True, True)
    assert (incoming.clicked, incoming.replied) == (None, None)  # absent means unknown
    assert emails["31000000105"].sent is False  # SCHEDULED


def test_meetings_map_outcomes_and_associations() -> None:
    meetings = results("meetings_list")
    completed = map_meeting(meetings["52000000201"], HUBSPOT)
    assert completed == Meeting(
        source="hubspot",
        crm_id="52000000201",
        modified_at=at("2024-03-07T06:00:00"),
        booked_at=at("2024-03-04T02:15:00"),
        start_at=at("2024-03-07T05:00:00"),
        outcome="completed",
        rep_crm_id="52550153",
        contact_crm_id="151",
        deal_crm_id="9123456001",
    )
    no_show = map_meeting(meetings["52000000202"], HUBSPOT)
    assert (no_show.outcome, no_show.start_at, no_show.deal_crm_id) == ("no_show", None, None)
    assert map_meeting(meetings["52000000203"], HUBSPOT).outcome is None
    with pytest.raises(RecordRejected, match="DEMO_HELD"):
        map_meeting(meetings["52000000204"], HUBSPOT)


def test_tasks_map_to_follow_ups() -> None:
    tasks = results("tasks_list")
    done = map_task(tasks["71000000301"], HUBSPOT)
    assert (done.due_at, done.completed_at, done.status, done.contact_crm_id) == (
        at("2024-03-05T00:00:00"),
        at("2024-03-05T01:02:03.004"),
        "COMPLETED",
        "151",
    )
    open_task = map_task(tasks["71000000302"], HUBSPOT)
    assert (open_task.completed_at, open_task.status) == (None, "NOT_STARTED")


def test_deals_map_amounts_owners_bant_and_stage_probability() -> None:
    deals = results("deals_list")
    probabilities = stage_probabilities(payload("pipelines_deals"))
    assert probabilities[("default", "presentationscheduled")] == 0.6
    assert probabilities[("14889012", "40115872")] == 0.5
    open_deal = map_deal(deals["9123456001"], HUBSPOT, probabilities)
    assert open_deal == Deal(
        source="hubspot",
        crm_id="9123456001",
        modified_at=at("2024-03-08T00:00:00"),
        created_at=at("2024-03-07T06:10:00"),
        closed_at=at("2024-04-30T00:00:00"),
        amount=Decimal("61000"),
        stage="presentationscheduled",
        pipeline="default",
        is_closed=False,
        is_won=False,
        probability=0.6,
        owner_crm_id="61000001",
        rep_crm_id="52550153",
        bant_budget="approved for Q2",
        bant_authority="VP Sales signs",
        bant_need=None,  # empty is not acquired
        bant_timing="April",
        handoff_rating=4.0,
        lead_source="ORGANIC_SEARCH",
        contact_crm_id="151",
        deal_type="new",  # dealtype newbusiness
    )
    won = map_deal(deals["9123456002"], HUBSPOT, probabilities)
    assert (won.amount, won.is_closed, won.is_won, won.probability, won.rep_crm_id) == (
        Decimal("1250000.50"),
        True,
        True,
        1.0,
        None,
    )
    with pytest.raises(RecordRejected, match="amount"):
        map_deal(deals["9123456003"], HUBSPOT, probabilities)


def test_dealtype_maps_to_new_or_existing_else_unknown() -> None:
    deals = results("deals_list")
    probabilities = stage_probabilities(payload("pipelines_deals"))
    assert map_deal(deals["9123456002"], HUBSPOT, probabilities).deal_type == "existing"
    untyped = deals["9123456001"]
    for raw, expected in (
        (None, None),
        ("", None),
        ("NewBusiness", "new"),  # looked up case-insensitively
        ("renewal", None),  # a custom option the mapping does not know: unknown, not rejected
    ):
        props = dict(untyped["properties"], dealtype=raw)
        deal = map_deal(dict(untyped, properties=props), HUBSPOT, probabilities)
        assert deal.deal_type == expected, raw


def test_a_contact_names_the_contacts_merged_into_it() -> None:
    contacts = results("contacts_list")
    assert merged_ids(contacts["152"], HUBSPOT) == ["160", "161"]
    assert merged_ids(contacts["151"], HUBSPOT) == []
    # Itself (an older merge kept the primary's id), blanks and junk are left out.
    props = dict(contacts["151"]["properties"], hs_merged_object_ids="151; 9;x;;1000")
    assert merged_ids(dict(contacts["151"], properties=props), HUBSPOT) == ["9", "1000"]
    # An archived contact is not a survivor.
    assert merged_ids(dict(contacts["152"], archived=True), HUBSPOT) == []


def test_lead_scores_are_numbers_and_a_non_numeric_one_rejects_the_contact() -> None:
    contact = results("contacts_list")["151"]
    assert map_contact(contact, HUBSPOT).score == 45.0
    fractional = dict(contact, properties=dict(contact["properties"], hubspotscore="12.5"))
    assert map_contact(fractional, HUBSPOT).score == 12.5
    # As for every number (amount, handoff_rating): a value that is not one rejects the record.
    junk = dict(contact, properties=dict(contact["properties"], hubspotscore="high"))
    with pytest.raises(RecordRejected, match="hubspotscore: not a number"):
        map_contact(junk, HUBSPOT)


def test_owners_map_to_reps_with_their_primary_team() -> None:
    owners = payload("owners_list")["results"]
    rep, teams = map_owner(owners[0])
    assert (rep.crm_id, rep.name, rep.email, rep.team_crm_id, rep.user_id, rep.active) == (
        "52550153",
        "Aiko Tanaka",
        "aiko.tanaka@example.co.jp",
        "4417201",
        "7391208",
        True,
    )
    assert rep.crm_created_at == at("2023-04-10T02:11:05.120")  # the owner's createdAt
    assert {(t.crm_id, t.name) for t in teams} == {
        ("4417201", "IS Team East"),
        ("4417209", "All Sales"),
    }
    no_primary, _ = map_owner(owners[1])
    assert no_primary.team_crm_id == "4417209"
    nameless, no_teams = map_owner(owners[2])
    assert (nameless.name, nameless.team_crm_id, no_teams) == ("fs.owner@example.co.jp", None, [])
    former, _ = map_owner(payload("owners_archived_list")["results"][0])
    assert (former.deleted, former.active, former.user_id) == (True, False, None)


# --- the mapping file ----------------------------------------------------------------------


def test_defaults_follow_the_spec() -> None:
    mapping = load_mapping(None).hubspot
    assert mapping.crm_field("deal", "rep_crm_id") == "is_rep_owner_id"
    assert mapping.crm_field("deal", "owner_crm_id") == "hubspot_owner_id"
    assert mapping.crm_field("lead", "modified_at") == "lastmodifieddate"
    assert mapping.crm_field("call", "modified_at") == "hs_lastmodifieddate"
    assert mapping.associations["meeting"] == {"contact_crm_id": "contacts", "deal_crm_id": "deals"}
    assert mapping.sets["email_not_sent"] == ("BOUNCED", "FAILED", "SCHEDULED", "SENDING")
    assert mapping.value("meeting_outcome", "no_show") == "no_show"
    assert "hs_call_disposition" in mapping.properties("call")


def test_a_toml_file_overrides_fields_and_value_maps(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text(
        """
[hubspot.fields.deal]
rep_crm_id = "inside_sales_rep"

[hubspot.values.call_disposition]
"3e1f8c8a-7d7e-4b8e-9e6e-1c1c2f0f6b11" = "connected"

[hubspot.values.meeting_outcome]
DEMO_HELD = "completed"

[hubspot.values]
email_not_sent = ["BOUNCED"]
"""
    )
    mapping = load_mapping(path).hubspot
    assert mapping.crm_field("deal", "rep_crm_id") == "inside_sales_rep"
    assert mapping.crm_field("deal", "owner_crm_id") == "hubspot_owner_id"  # untouched
    calls = results("calls_list")
    assert map_call(calls["25830446333"], mapping).outcome == "connected"
    assert map_call(calls["25830446330"], mapping).outcome == "connected"  # defaults kept
    assert map_meeting(results("meetings_list")["52000000204"], mapping).outcome == "completed"
    scheduled = payload("emails_search")["results"][4]
    assert map_email(scheduled, mapping).sent is True
    deal = dict(results("deals_list")["9123456001"])
    deal["properties"] = {**deal["properties"], "inside_sales_rep": "52550160"}
    assert map_deal(deal, mapping, {}).rep_crm_id == "52550160"
    assert load_mapping(None).hubspot.crm_field("deal", "rep_crm_id") == "is_rep_owner_id"


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ("[hubspot.fields.call]\noutcom = 'x'\n", "hubspot.fields.call.outcom"),
        ("[hubspot.fields.opportunity]\namount = 'x'\n", "hubspot.fields.opportunity"),
        ("[hubspot.labels]\nx = 'y'\n", "hubspot.labels"),
        ("[pipedrive.fields.call]\nx = 'y'\n", "pipedrive"),
        (
            "[hubspot.values.call_dispositions]\nx = 'connected'\n",
            "hubspot.values.call_dispositions",
        ),
        ("[hubspot.values.call_status]\nBUSY = 'engaged'\n", "hubspot.values.call_status.BUSY"),
        ("[hubspot.values]\nemail_not_sent = 'BOUNCED'\n", "hubspot.values.email_not_sent"),
        ("[hubspot.fields.call]\noutcome = 3\n", "hubspot.fields.call.outcome"),
    ],
)
def test_unknown_keys_and_bad_values_in_the_file_are_errors_naming_them(
    tmp_path: Path, document: str, named: str
) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text(document)
    with pytest.raises(MappingError) as error:
        load_mapping(path)
    assert named in str(error.value)


def test_a_missing_or_broken_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="does not exist"):
        load_mapping(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[hubspot.fields\n")
    with pytest.raises(MappingError, match="not valid TOML"):
        load_mapping(broken)


def test_the_documented_example_loads(tmp_path: Path) -> None:
    import connectors.mapping as module

    doc = module.__doc__ or ""
    example = doc.split(".. code-block:: toml", 1)[1].split("\nRules:", 1)[0]
    path = tmp_path / "example.toml"
    path.write_text("\n".join(line[4:] for line in example.splitlines()))
    mapping = load_mapping(path).hubspot
    assert mapping.crm_field("deal", "rep_crm_id") == "inside_sales_rep"
    assert mapping.value("meeting_outcome", "DEMO_HELD") == "completed"
    assert mapping.sets["call_outbound"] == ("OUTBOUND", "OUTBOUND_DIALER")
