"""The Salesforce mapping functions on recorded, real-shaped payloads (no I/O).

The payloads in tests/payloads/salesforce are REST query/queryAll, composite, describe, limits,
token and Bulk API 2.0 responses as the org returns them (field names, ``attributes``,
``2024-03-02T10:00:30.000+0000`` datetimes, JSON numbers and booleans, error arrays).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.errors import RecordRejected
from connectors.mapping import MappingError, default_mapping, load_mapping
from connectors.salesforce.client import body_detail
from connectors.salesforce.normalize import (
    LeadLinks,
    company_size,
    is_call,
    map_call,
    map_email,
    map_event,
    map_lead,
    map_opportunity,
    map_role,
    map_task,
    map_user,
    parse_datetime,
    soql_datetime,
    soql_string,
    start_of_day,
    typed_row,
)

PAYLOADS = Path(__file__).parent / "payloads" / "salesforce"
SF = default_mapping().salesforce
TOKYO = ZoneInfo("Asia/Tokyo")
NO_LINKS = LeadLinks()


def payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def records(name: str) -> list[dict[str, Any]]:
    data = payload(name)
    return list(data["records"])


def test_roles_and_users() -> None:
    roles = [map_role(r, SF) for r in records("userroles_query.json")]
    assert [(t.source, t.name) for t in roles] == [
        ("salesforce", "IS East"),
        ("salesforce", "Field Sales"),
    ]
    users = {u.name: u for u in (map_user(r, SF) for r in records("users_query.json"))}
    assert set(users) == {"Aiko Tanaka", "Kenji Sato", "Haruto Ito"}
    kenji = users["Kenji Sato"]
    assert (kenji.email, kenji.team_crm_id, kenji.manager_crm_id, kenji.active, kenji.deleted) == (
        "kenji@example.jp",
        roles[1].crm_id,
        users["Aiko Tanaka"].crm_id,
        True,
        False,
    )
    assert kenji.user_id == kenji.crm_id and len(kenji.crm_id) == 18
    assert kenji.modified_at == datetime(2024, 3, 2, 9, tzinfo=UTC)
    assert (users["Haruto Ito"].active, users["Haruto Ito"].deleted) == (False, True)
    # User.CreatedDate: the rep's tenure in the CRM (None when the field is not read).
    assert users["Aiko Tanaka"].crm_created_at == datetime(2023, 4, 10, 2, 11, 5, tzinfo=UTC)
    assert users["Haruto Ito"].crm_created_at is None


def test_leads_company_size_and_the_conversion_day() -> None:
    rows = records("leads_queryall.json")
    assert len(rows) == 12
    row = next(r for r in rows if r["IsConverted"])
    converted = map_lead(row, SF, TOKYO)
    assert (converted.channel, converted.industry, converted.company_size, converted.status) == (
        "Web",
        "Technology",
        "1-9",
        "Closed - Converted",
    )
    assert converted.created_at == datetime(2024, 3, 2, 9, tzinfo=UTC)
    # ConvertedDate is a date: the SQL moment is the start of that day in the business zone.
    assert converted.sql_at == datetime(2024, 3, 1, 15, tzinfo=UTC)
    other = next(r for r in rows if r["NumberOfEmployees"] == 30)
    assert map_lead(other, SF, UTC).sql_at is None
    assert map_lead(other, SF, UTC).company_size == "10-49"
    assert converted.score is None and converted.rep_crm_id == row["OwnerId"]
    assert [map_lead(r, SF, UTC).company_size for r in rows if r["NumberOfEmployees"] is None] == [
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("employees", "bucket"),
    [
        (None, None),
        (0, None),
        (1, "1-9"),
        (9, "1-9"),
        (10, "10-49"),
        (49, "10-49"),
        (50, "50-249"),
        (249, "50-249"),
        (250, "250-999"),
        (999, "250-999"),
        (1000, "1000+"),
    ],
)
def test_company_size_buckets(employees: int | None, bucket: str | None) -> None:
    assert company_size(employees) == bucket


def test_calls_outcome_direction_duration_and_the_cti_call() -> None:
    rows = records("tasks_calls_queryall.json")
    calls = [map_call(r, SF, NO_LINKS) for r in rows]  # in SystemModstamp order
    assert [(c.direction, c.outcome, c.duration_ms, c.deleted) for c in calls] == [
        ("outbound", "connected", 60_000, False),
        ("inbound", "voicemail", 62_000, False),
        ("outbound", "busy", 63_000, False),
        ("outbound", "connected", 65_000, False),
        ("outbound", "unknown", 64_000, True),
        ("outbound", "no_answer", 61_000, False),
    ]
    cti = next(r for r in rows if r["TaskSubtype"] == "Task")
    assert is_call(cti, SF) and map_call(cti, SF, NO_LINKS).outcome == "no_answer"  # "no answer"
    assert calls[0].occurred_at == datetime(2024, 3, 2, 10, tzinfo=UTC)
    no_completion = dict(rows[0], CompletedDateTime=None)
    assert map_call(no_completion, SF, NO_LINKS).occurred_at == datetime(2024, 3, 2, 10, tzinfo=UTC)
    assert map_call(dict(rows[0], CallType=None), SF, NO_LINKS).direction is None


@pytest.mark.parametrize(
    ("label", "outcome"),
    [
        ("Connected", "connected"),
        ("No Answer", "no_answer"),
        ("LEFT VOICEMAIL", "voicemail"),
        ("left message", "live_message"),
        ("Wrong Number", "wrong_number"),
        ("Busy", "busy"),
        ("Failed", "failed"),
        ("Gatekeeper", "unknown"),
        (None, "unknown"),
    ],
)
def test_call_disposition_labels_map_case_insensitively(label: str | None, outcome: str) -> None:
    row = dict(records("tasks_calls_queryall.json")[0], CallDisposition=label)
    assert map_call(row, SF, NO_LINKS).outcome == outcome


def test_a_contact_who_id_reaches_the_converted_lead() -> None:
    row = next(r for r in records("tasks_calls_queryall.json") if r["WhoId"].startswith("003"))
    links = LeadLinks(contact_lead={row["WhoId"]: "00QHp0000000001MAA"})
    assert map_call(row, SF, links).contact_crm_id == "00QHp0000000001MAA"
    assert map_call(row, SF, NO_LINKS).contact_crm_id == row["WhoId"]  # no lead: kept as is


def test_emails_take_tracking_from_their_email_message() -> None:
    tasks = records("tasks_emails_queryall.json")
    composite = payload("emailmessages_composite.json")["compositeResponse"][0]
    assert composite["httpStatusCode"] == 200
    messages = {m["ActivityId"]: m for m in composite["body"]["records"]}
    emails = [map_email(t, messages.get(t["Id"]), SF, NO_LINKS) for t in tasks]
    assert [(e.tracked, e.opened, e.clicked, e.replied, e.sent, e.status) for e in emails] == [
        (True, True, True, False, True, "SENT"),
        (False, None, None, None, True, "SENT"),  # IsTracked false: unknown, not "no"
        (True, False, False, False, False, "BOUNCED"),
        (False, None, None, None, True, "SENT"),  # no EmailMessage at all
    ]
    assert {e.direction for e in emails} == {"outbound"}
    # A field the org lacks (no link tracking) is unknown, not false.
    without_clicks = {
        k: v for k, v in messages[tasks[0]["Id"]].items() if k != "FirstLinkClickedDate"
    }
    assert map_email(tasks[0], without_clicks, SF, NO_LINKS).clicked is None


def test_events_outcomes_and_opportunity_what_ids() -> None:
    rows = records("events_queryall.json")
    meetings = [map_event(r, SF, NO_LINKS) for r in rows]
    assert [(m.outcome, m.deal_crm_id is not None) for m in meetings] == [
        ("no_show", False),
        ("completed", True),
    ]  # the first WhatId is an Account
    assert meetings[1].booked_at == datetime(2024, 3, 2, 12, tzinfo=UTC)
    assert meetings[1].start_at == datetime(2024, 3, 3, 10, tzinfo=UTC)
    assert map_event(dict(rows[0], Meeting_Outcome__c=None), SF, NO_LINKS).outcome is None
    with pytest.raises(RecordRejected, match="Postponed"):
        map_event(dict(rows[0], Meeting_Outcome__c="Postponed"), SF, NO_LINKS)


def test_follow_ups_are_due_on_their_day_and_calls_never_are() -> None:
    rows = records("tasks_followups_queryall.json")
    mapped = [map_task(r, SF, NO_LINKS, TOKYO) for r in rows]
    follow_ups = [t for t in mapped if t is not None]
    assert len(follow_ups) == 2
    done = next(t for t in follow_ups if t.status == "COMPLETED")
    assert done.due_at == datetime(2024, 3, 2, 15, tzinfo=UTC)  # 2024-03-03 00:00 in Tokyo
    assert done.completed_at == datetime(2024, 3, 3, 11, tzinfo=UTC)
    assert {t.status for t in follow_ups} == {"COMPLETED", "NOT_STARTED"}
    undated = next(r for r in rows if r["ActivityDate"] is None)
    assert map_task(undated, SF, NO_LINKS, UTC) is None
    assert map_task(dict(rows[0], Type="Call"), SF, NO_LINKS, UTC) is None
    reopened = dict(rows[0], IsClosed=False)
    assert map_task(reopened, SF, NO_LINKS, UTC).completed_at is None  # type: ignore[union-attr]
    custom = dict(rows[0], Status="Blocked by legal")
    assert map_task(custom, SF, NO_LINKS, UTC).status == "Blocked by legal"  # type: ignore[union-attr]


def test_opportunities_is_rep_bant_probability_and_the_converted_lead() -> None:
    rows = records("opportunities_queryall.json")
    links = LeadLinks(deal_lead={rows[0]["Id"]: "00QHp0000000001MAA"})
    won, open_deal, field = (map_opportunity(r, SF, links, UTC) for r in rows)
    assert (won.is_closed, won.is_won, won.probability, won.amount) == (
        True,
        True,
        1.0,
        Decimal("1500000.0"),
    )
    assert (won.bant_budget, won.bant_authority, won.bant_need, won.bant_timing) == (
        "Approved",
        "CTO",
        "Pipeline",
        "This quarter",
    )
    assert won.handoff_rating == 4.0 and won.lead_source == "Web"
    assert won.rep_crm_id == rows[0]["IS_Rep__c"] and won.owner_crm_id == rows[0]["OwnerId"]
    assert won.contact_crm_id == "00QHp0000000001MAA"
    assert won.closed_at == datetime(2024, 3, 1, tzinfo=UTC)
    assert (open_deal.probability, open_deal.is_closed, open_deal.bant_budget) == (
        0.75,
        False,
        None,
    )
    assert field.rep_crm_id is None and field.pipeline is None
    # Type: New Customer → new, every "Existing Customer…" → existing, anything else unknown.
    assert (won.deal_type, open_deal.deal_type, field.deal_type) == ("new", "existing", None)
    for raw, expected in (
        ("Existing Customer - Downgrade", "existing"),
        ("existing customer - replacement", "existing"),
        ("new customer", "new"),
        (None, None),
    ):
        assert map_opportunity(dict(rows[0], Type=raw), SF, links, UTC).deal_type == expected
    with pytest.raises(RecordRejected, match="Probability"):
        map_opportunity(dict(rows[0], Probability=250), SF, NO_LINKS, UTC)
    with pytest.raises(RecordRejected, match="Amount"):
        map_opportunity(dict(rows[0], Amount="lots"), SF, NO_LINKS, UTC)
    with pytest.raises(RecordRejected, match="CreatedDate"):
        map_opportunity(dict(rows[0], CreatedDate=None), SF, NO_LINKS, UTC)


def test_deal_type_and_lead_score_mappings_from_the_file(tmp_path: Path) -> None:
    file = tmp_path / "mapping.toml"
    file.write_text(
        '[salesforce.fields.lead]\nscore = "Lead_Score__c"\n\n'
        '[salesforce.values.deal_type]\n"Upsell" = "existing"\n"Partner - New*" = "new"\n'
        '"New Customer" = "existing"\n'
    )
    mapping = load_mapping(file).salesforce
    opportunity = records("opportunities_queryall.json")[0]
    for raw, expected in (
        ("Upsell", "existing"),
        ("Partner - New Logo", "new"),
        ("New Customer", "existing"),  # an entry of the default map, changed
        ("Existing Customer - Upgrade", "existing"),  # the default's prefix entry kept
    ):
        deal = map_opportunity(dict(opportunity, Type=raw), mapping, NO_LINKS, UTC)
        assert deal.deal_type == expected, raw
    lead = records("leads_queryall.json")[0]
    assert map_lead(lead, SF, UTC).score is None  # not mapped by default
    assert map_lead(dict(lead, Lead_Score__c=87.5), mapping, UTC).score == 87.5
    assert map_lead(dict(lead, Lead_Score__c="42"), mapping, UTC).score == 42.0  # Bulk CSV
    with pytest.raises(RecordRejected, match="Lead_Score__c: not a number"):
        map_lead(dict(lead, Lead_Score__c="hot"), mapping, UTC)
    file.write_text('[salesforce.values.deal_type]\n"Renewal" = "renewal"\n')
    with pytest.raises(MappingError, match="deal_type.Renewal.*new, existing"):
        load_mapping(file)


def test_bulk_csv_rows_get_the_rest_types() -> None:
    job = payload("bulk_query_job.json")
    assert (job["create"]["state"], job["complete"]["state"]) == ("UploadComplete", "JobComplete")
    types = {"IsDeleted": "boolean", "CallDurationInSeconds": "int"}
    rows = [typed_row(r, types) for r in csv.DictReader(io.StringIO(job["results"]["csv"]))]
    assert len(rows) == job["results"]["Sforce-NumberOfRecords"] == 4
    assert rows[0]["IsDeleted"] is False and rows[0]["CallDurationInSeconds"] == 60
    rest = records("tasks_calls_queryall.json")[0]
    from_bulk = map_call(rows[0], SF, NO_LINKS)
    assert from_bulk == map_call(rest, SF, NO_LINKS)


def test_error_bodies_name_their_code_and_reason() -> None:
    errors = payload("errors.json")
    code, message = body_detail(errors["INVALID_FIELD"])
    assert code == "INVALID_FIELD" and message.startswith("No such column 'BANT_Score__c'")
    assert body_detail(errors["REQUEST_LIMIT_EXCEEDED"]) == (
        "REQUEST_LIMIT_EXCEEDED",
        "TotalRequests Limit exceeded.",
    )
    assert body_detail("<html><body>Service Unavailable</body></html>") == (
        "",
        "Service Unavailable",
    )
    assert payload("limits.json")["DailyApiRequests"]["Max"] == 15_000
    token = payload("token_refresh.json")
    assert token["token_type"] == "Bearer" and "refresh_token" in token
    describe = payload("opportunity_describe.json")
    assert {f["name"]: f["type"] for f in describe["fields"]}["CloseDate"] == "date"


def test_value_parsing_and_soql_literals() -> None:
    assert parse_datetime("2024-03-02T10:00:30.000+0000", "x") == datetime(
        2024, 3, 2, 10, 0, 30, tzinfo=UTC
    )
    assert parse_datetime("2024-03-02T10:00:30.000Z", "x") == datetime(
        2024, 3, 2, 10, 0, 30, tzinfo=UTC
    )
    with pytest.raises(RecordRejected):
        parse_datetime(12, "x")
    assert start_of_day(date(2024, 3, 5), TOKYO) == datetime(2024, 3, 4, 15, tzinfo=UTC)
    assert (
        soql_datetime(datetime(2024, 3, 4, 9, 0, 0, 500_000, tzinfo=UTC)) == "2024-03-04T09:00:00Z"
    )
    assert soql_string("O'Brien \\ Co") == "'O\\'Brien \\\\ Co'"


def test_the_mapping_file_overrides_salesforce_fields_values_and_sets(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text(
        '[salesforce.fields.deal]\nrep_crm_id = "Inside_Sales_Rep__c"\n'
        '[salesforce.values.meeting_outcome]\n"Held" = "completed"\n'
        '[salesforce.values]\ncall_types = ["Call", "Outbound Call"]\n'
    )
    mapping = load_mapping(path).salesforce
    assert mapping.crm_field("deal", "rep_crm_id") == "Inside_Sales_Rep__c"
    assert mapping.value("meeting_outcome", "held") == "completed"
    assert mapping.value("meeting_outcome", "No Show") == "no_show"  # defaults kept
    assert mapping.sets["call_types"] == ("Call", "Outbound Call")
    assert default_mapping().hubspot.crm_field("deal", "rep_crm_id") == "is_rep_owner_id"
    for bad, named in [
        ('[salesforce.fields.deal]\nrep = "x"\n', "salesforce.fields.deal.rep"),
        (
            '[salesforce.values.meeting_outcome]\nHeld = "done"\n',
            "salesforce.values.meeting_outcome.Held",
        ),
        ('[salesforce.associations.call]\nx = "y"\n', "salesforce.associations.call"),
    ]:
        path.write_text(bad)
        with pytest.raises(MappingError) as error:
            load_mapping(path)
        assert named in str(error.value)
