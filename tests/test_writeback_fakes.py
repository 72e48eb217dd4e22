"""The simulated CRMs refuse the writes the real APIs refuse, through the real clients.

HubSpot: the users object, the properties API (groups first, then properties), batch update of
at most 100 inputs, PROPERTY_DOESNT_EXIST / INVALID_FLOAT / READ_ONLY_VALUE refusing the whole
batch, missing records as 207 multi-status, 403 MISSING_SCOPES naming the scope. Salesforce:
sObject Collections of at most 200 records, per-record SaveResults, a body of the wrong JSON
type refused whole, MIXED_DML_OPERATION, numbers rounded to the field's scale, quotas.
Both count every write request, so the write-back tests can assert that none was sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import trustme
from hubspot import HubSpot
from hubspot.crm.objects.exceptions import ApiException as ObjectsApiException
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from simulators.hubspot.portal import HubSpotPortal, RunningPortal, serve_portal
from simulators.salesforce.org import RunningOrg, SalesforceOrg, serve_org

TOKEN = "pat-na1-fake-writeback"


# --- HubSpot --------------------------------------------------------------------------------------


@pytest.fixture
def portal() -> Iterator[RunningPortal]:
    hub = HubSpotPortal(TOKEN, enforce_search_rate_limit=False)
    for i in range(3):
        hub.add_owner(email=f"rep{i}@example.jp", first_name="Rep", last_name=str(i))
    hub.add_owner(email="gone@example.jp", first_name="Gone", last_name="Rep", archived=True)
    with serve_portal(hub) as running:
        yield running


def hub_client(running: RunningPortal) -> HubSpot:
    return HubSpot(access_token=TOKEN, host=running.url)


def body_of(exc: pytest.ExceptionInfo[Any]) -> dict[str, Any]:
    parsed = json.loads(exc.value.body)
    assert isinstance(parsed, dict)
    return parsed


def test_hubspot_users_object_holds_one_record_per_active_owner(portal: RunningPortal) -> None:
    hub = portal.portal
    client = hub_client(portal)
    page = client.crm.objects.basic_api.get_page(
        "users", limit=100, properties=["hs_internal_user_id"]
    )
    user_ids = sorted(r.properties["hs_internal_user_id"] for r in page.results)
    owners = [hub._owners[o] for o in hub.owner_ids()]
    assert user_ids == sorted(str(o.user_id) for o in owners)  # the archived owner has none
    # Found by hs_internal_user_id with an IN search, as the connector does.
    found = client.crm.objects.search_api.do_search(
        "users",
        {
            "filterGroups": [
                {
                    "filters": [
                        {
                            "propertyName": "hs_internal_user_id",
                            "operator": "IN",
                            "values": [str(owners[1].user_id)],
                        }
                    ]
                }
            ],
            "properties": ["hs_internal_user_id"],
        },
    )
    assert [r.id for r in found.results] == [hub.user_record_id(owners[1].user_id)]


def test_hubspot_properties_need_their_group_and_are_unique(portal: RunningPortal) -> None:
    props = hub_client(portal).crm.properties
    prop = {
        "name": "iskpi_target_calls",
        "label": "Target calls",
        "type": "number",
        "fieldType": "number",
        "groupName": "iskpi",
    }
    with pytest.raises(PropertiesApiException) as no_group:
        props.core_api.create("user", prop)
    assert no_group.value.status == 400 and "iskpi" in body_of(no_group)["message"]
    created = props.groups_api.create("user", {"name": "iskpi", "label": "iskpi targets"})
    assert created.name == "iskpi"
    made = props.core_api.create("user", prop)
    assert (made.name, made.type, made.group_name, made.hubspot_defined) == (
        "iskpi_target_calls",
        "number",
        "iskpi",
        False,
    )
    with pytest.raises(PropertiesApiException) as twice:
        props.core_api.create("user", prop)
    assert twice.value.status == 409 and body_of(twice)["category"] == "OBJECT_ALREADY_EXISTS"
    with pytest.raises(PropertiesApiException) as bad_type:
        props.core_api.create("user", {**prop, "name": "iskpi_x", "fieldType": "text"})
    assert bad_type.value.status == 400
    read = props.batch_api.read(
        "user",
        {"archived": False, "inputs": [{"name": "iskpi_target_calls"}, {"name": "iskpi_nope"}]},
    )
    assert [p.name for p in read.results] == ["iskpi_target_calls"]
    assert read.errors[0].category == "OBJECT_NOT_FOUND"
    # Every request to a write endpoint is logged, the refused ones too.
    assert [kind for kind, _, _ in portal.portal.write_log] == ["schema"] * 5


def test_hubspot_batch_update_validates_like_hubspot(portal: RunningPortal) -> None:
    hub = portal.portal
    hub.create_property("users", "iskpi_target_calls", group="iskpi")
    batch = hub_client(portal).crm.objects.batch_api
    ids = hub.ids("users")
    ok = batch.update(
        "users", {"inputs": [{"id": ids[0], "properties": {"iskpi_target_calls": "120"}}]}
    )
    assert ok.status == "COMPLETE" and ok.results[0].properties["iskpi_target_calls"] == "120"
    assert hub.get("users", ids[0])["iskpi_target_calls"] == "120"

    def refused(inputs: list[dict[str, Any]]) -> dict[str, Any]:
        with pytest.raises(ObjectsApiException) as exc:
            batch.update("users", {"inputs": inputs})
        assert exc.value.status == 400
        return body_of(exc)

    unknown = refused(
        [
            {"id": ids[0], "properties": {"iskpi_target_calls": "1"}},
            {"id": ids[1], "properties": {"iskpi_target_nope": "1"}},
        ]
    )
    assert unknown["category"] == "VALIDATION_ERROR"
    assert unknown["message"].startswith("Property values were not valid: ")
    detail = json.loads(unknown["message"].removeprefix("Property values were not valid: "))
    assert detail[0]["error"] == "PROPERTY_DOESNT_EXIST"
    assert detail[0]["name"] == "iskpi_target_nope"
    # The whole batch was refused: the valid input was not written either.
    assert hub.get("users", ids[0])["iskpi_target_calls"] == "120"
    not_number = refused([{"id": ids[0], "properties": {"iskpi_target_calls": "lots"}}])
    assert "INVALID_FLOAT" in not_number["message"]
    read_only = refused([{"id": ids[0], "properties": {"hs_internal_user_id": "5"}}])
    assert "READ_ONLY_VALUE" in read_only["message"]
    too_many = refused([{"id": ids[0], "properties": {"iskpi_target_calls": "1"}}] * 101)
    assert "100" in too_many["message"]
    by_other_id = refused(
        [
            {
                "id": "rep0@example.jp",
                "idProperty": "hs_email",
                "properties": {"iskpi_target_calls": "1"},
            }
        ]
    )
    assert "non-unique" in by_other_id["message"]

    partly = batch.update(
        "users",
        {
            "inputs": [
                {"id": ids[1], "properties": {"iskpi_target_calls": "80"}},
                {"id": "99999999", "properties": {"iskpi_target_calls": "80"}},
            ]
        },
    )
    assert partly.status == "COMPLETE" and [r.id for r in partly.results] == [ids[1]]
    assert partly.errors[0].category == "OBJECT_NOT_FOUND"
    assert partly.errors[0].context == {"ids": ["99999999"]}
    assert sum(kind == "records" for kind, _, _ in hub.write_log) == 7


def test_hubspot_missing_scopes_answer_403_naming_the_scope(portal: RunningPortal) -> None:
    hub = portal.portal
    hub.missing_scopes = {"crm.schemas.users.write", "crm.objects.users.write"}
    client = hub_client(portal)
    with pytest.raises(PropertiesApiException) as exc:
        client.crm.properties.groups_api.create("user", {"name": "iskpi", "label": "iskpi"})
    body = body_of(exc)
    assert exc.value.status == 403 and body["category"] == "MISSING_SCOPES"
    assert body["errors"][0]["context"]["requiredGranularScopes"] == ["crm.schemas.users.write"]
    with pytest.raises(ObjectsApiException) as update:
        client.crm.objects.batch_api.update(
            "users", {"inputs": [{"id": hub.ids("users")[0], "properties": {"hs_job_title": "IS"}}]}
        )
    assert update.value.status == 403
    assert body_of(update)["errors"][0]["context"]["requiredGranularScopes"] == [
        "crm.objects.users.write"
    ]
    # Reads need only the read scopes.
    assert client.crm.objects.basic_api.get_page("users").results


def test_hubspot_write_faults_hit_writes_only(portal: RunningPortal) -> None:
    hub = portal.portal
    hub.create_property("users", "iskpi_target_calls", group="iskpi")
    hub.faults.write_fault_after = 1
    hub.faults.write_fault_status = 429
    hub.faults.write_fault_times = 1
    batch = hub_client(portal).crm.objects.batch_api
    update = {"inputs": [{"id": hub.ids("users")[0], "properties": {"iskpi_target_calls": "1"}}]}
    batch.update("users", update)
    with pytest.raises(ObjectsApiException) as limited:
        batch.update("users", update)
    assert limited.value.status == 429 and body_of(limited)["policyName"] == "TEN_SECONDLY_ROLLING"
    batch.read("users", {"inputs": [{"id": hub.ids("users")[0]}], "properties": []})
    batch.update("users", update)  # the one fault is spent
    assert [n for _, _, n in hub.write_log] == [1, 1, 1]


# --- Salesforce -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def served(tls: trustme.CA) -> Iterator[RunningOrg]:
    org = SalesforceOrg()
    for i in range(3):
        org.create(
            "User",
            {
                "Username": f"u{i}@x.jp",
                "LastName": f"U{i}",
                "Email": f"u{i}@x.jp",
                "IsActive": True,
                "UserType": "Standard",
            },
        )
    with serve_org(org, tls=tls) as running:
        yield running


@pytest.fixture
def sf(served: RunningOrg) -> Iterator[Any]:
    session = requests.Session()
    session.verify = str(served.ca_bundle)
    session.trust_env = False
    yield Salesforce(
        instance_url=served.url,
        session_id=served.org.issue_session(),
        session=session,
        version="59.0",
    )
    session.close()


def sf_error(exc: pytest.ExceptionInfo[SalesforceMalformedRequest]) -> dict[str, Any]:
    content: Any = exc.value.content
    assert isinstance(content, list)
    return dict(content[0])


def test_salesforce_collection_update_checks_fields_types_and_size(
    served: RunningOrg, sf: Any
) -> None:
    org = served.org
    users = org.ids("User")

    def patch(records: list[dict[str, Any]]) -> Any:
        return sf.restful(
            "composite/sobjects", method="PATCH", json={"allOrNone": False, "records": records}
        )

    results = patch(
        [
            {"attributes": {"type": "User"}, "id": users[0], "IS_Target_Won_Amount__c": 1234.567},
            {"attributes": {"type": "User"}, "id": users[1], "Name": "Renamed"},
            {"attributes": {"type": "User"}, "id": users[2], "IS_Target_Calls__c": 1e17},
            {"attributes": {"type": "User"}, "id": "005Hp0000000zzzAAA", "IS_Target_Calls__c": 1},
        ]
    )
    assert [r["success"] for r in results] == [True, False, False, False]
    assert [r["errors"][0]["statusCode"] for r in results[1:]] == [
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "NUMBER_OUTSIDE_VALID_RANGE",
        "INVALID_CROSS_REFERENCE_KEY",
    ]
    # A currency field keeps 2 decimals: 1234.567 is saved as 1234.57.
    assert org.get("User", users[0])["IS_Target_Won_Amount__c"] == 1234.57
    with pytest.raises(SalesforceMalformedRequest) as wrong_type:
        patch([{"attributes": {"type": "User"}, "id": users[0], "IS_Target_Calls__c": "many"}])
    assert sf_error(wrong_type)["errorCode"] == "JSON_PARSER_ERROR"
    with pytest.raises(SalesforceMalformedRequest) as too_many:
        patch([{"attributes": {"type": "User"}, "id": users[0], "IS_Target_Calls__c": 1}] * 201)
    assert sf_error(too_many)["errorCode"] == "EXCEEDED_ID_LIMIT"
    org.faults.reject_records[users[1]] = "Targets are locked this month"
    locked = patch([{"attributes": {"type": "User"}, "id": users[1], "IS_Target_Calls__c": 5}])
    assert locked[0]["errors"][0] == {
        "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "message": "Targets are locked this month",
        "fields": [],
    }
    assert [n for kind, _, n in org.write_log if kind == "records"] == [4, 1, 201, 1]


def test_salesforce_quotas_are_created_once_per_owner_period_and_type(
    served: RunningOrg, sf: Any
) -> None:
    org = served.org
    users = org.ids("User")
    kind = sf.query(
        "SELECT Id FROM ForecastingType WHERE DeveloperName = 'OpportunityRevenue' "
        "AND IsActive = TRUE"
    )["records"][0]["Id"]
    quota = {
        "attributes": {"type": "ForecastingQuota"},
        "QuotaOwnerId": users[0],
        "StartDate": "2026-11-01",
        "ForecastingTypeId": kind,
        "QuotaAmount": 5_000_000,
    }
    created = sf.restful(
        "composite/sobjects",
        method="POST",
        json={"allOrNone": False, "records": [quota, {**quota}]},
    )
    assert created[0]["success"] and created[0]["id"].startswith("0J9")
    assert created[1]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    missing = sf.restful(
        "composite/sobjects",
        method="POST",
        json={"records": [{"attributes": {"type": "ForecastingQuota"}, "QuotaAmount": 1}]},
    )
    assert missing[0]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    mixed = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "records": [
                {"attributes": {"type": "User"}, "id": users[0], "IS_Target_Calls__c": 1},
                {
                    "attributes": {"type": "ForecastingQuota"},
                    "id": created[0]["id"],
                    "QuotaAmount": 2,
                },
            ]
        },
    )
    assert {r["errors"][0]["statusCode"] for r in mixed} == {"MIXED_DML_OPERATION"}


def test_salesforce_write_faults_hit_writes_only(served: RunningOrg, sf: Any) -> None:
    org = served.org
    org.faults.write_fault_after = 0
    org.faults.write_fault_status = 403
    with pytest.raises(Exception) as refused:
        sf.restful(
            "composite/sobjects",
            method="PATCH",
            json={
                "records": [
                    {
                        "attributes": {"type": "User"},
                        "id": org.ids("User")[0],
                        "IS_Target_Calls__c": 1,
                    }
                ]
            },
        )
    assert "REQUEST_LIMIT_EXCEEDED" in str(refused.value)
    assert sf.query("SELECT Id FROM User")["totalSize"] == 3  # reads still answer
