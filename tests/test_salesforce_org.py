"""The simulated org is strict where Salesforce is strict: checked through the real clients.

simple-salesforce (REST, composite, Bulk API 2.0) and httpx (the OAuth token endpoint) talk
to the org over HTTPS with the test CA. Each test pins a wire format of Salesforce's REST API
developer guide: query/queryAll with nextRecordsUrl, error bodies, describe, limits and the
Sforce-Limit-Info header, composite, Bulk API 2.0 query jobs, the refresh token flow.
"""

from __future__ import annotations

import csv
import io
import ssl
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
import requests
import trustme
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from simulators.salesforce.ids import id_checksum, salesforce_id
from tests.support.salesforce import (
    CLIENT_ID,
    CLIENT_SECRET,
    OLD,
    REFRESH_TOKEN,
    Org,
    ca,
    fill,
    org,
)

__all__ = ["ca", "org"]


@pytest.fixture
def sf(org: Org) -> Iterator[Any]:  # simple-salesforce's attribute API is dynamic
    session = requests.Session()
    session.verify = org.ca_bundle
    session.trust_env = False  # only the test CA
    yield Salesforce(
        instance_url=org.url, session_id=org.org.issue_session(), session=session, version="59.0"
    )
    session.close()


def error_of(exc: pytest.ExceptionInfo[Exception]) -> dict[str, str]:
    content = exc.value.content  # type: ignore[attr-defined]
    assert isinstance(content, list) and set(content[0]) >= {"message", "errorCode"}
    return dict(content[0])


def test_ids_are_18_characters_with_the_case_checksum() -> None:
    assert id_checksum("001A0000006Vm9r") == "IAC"  # Salesforce's documented example
    record_id = salesforce_id("00Q", 1)
    assert len(record_id) == 18 and record_id.startswith("00Q")


def test_query_pages_through_next_records_url_and_query_all_adds_deleted(org: Org, sf: Any) -> None:
    fill(org, calls=450)
    soql = "SELECT Id, CallDurationInSeconds FROM Task WHERE TaskSubtype = 'Call' ORDER BY Id"
    first = sf.query(soql, headers={"Sforce-Query-Options": "batchSize=200"})
    assert (first["totalSize"], first["done"], len(first["records"])) == (448, False, 200)
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    assert first["records"][0]["attributes"]["type"] == "Task"
    assert first["records"][0]["attributes"]["url"].startswith(
        "/services/data/v59.0/sobjects/Task/"
    )
    assert len(list(sf.query_all_iter(soql))) == 448  # the deleted call is not in query
    all_rows = list(sf.query_all_iter(soql.replace("ORDER BY Id", ""), include_deleted=True))
    assert len(all_rows) == 449
    assert sf.api_usage["api-usage"].used == len(org.org.request_log)
    assert sf.api_usage["api-usage"].total == 15_000


def test_typed_filters_ordering_limit_and_values(org: Org, sf: Any) -> None:
    fill(org)
    rows = sf.query(
        "SELECT Id, Amount, CloseDate, IsWon, Probability, CreatedDate FROM Opportunity "
        "WHERE CloseDate >= 2024-03-01 AND (IsWon = TRUE OR Amount < 100000) "
        "ORDER BY Amount DESC NULLS LAST LIMIT 5"
    )["records"]
    assert [(r["Amount"], r["CloseDate"], r["IsWon"], r["Probability"]) for r in rows] == [
        (1500000.0, "2024-03-01", True, 100.0),
        (90000.0, "2024-03-02", False, 0.0),
    ]
    assert rows[0]["CreatedDate"] == "2024-03-02T15:00:00.000+0000"
    after = sf.query(
        f"SELECT Id FROM Lead WHERE CreatedDate > {(OLD + timedelta(minutes=9)).strftime('%Y-%m-%dT%H:%M:%SZ')}"
        " AND LeadSource IN ('web') AND Id != null"
    )
    assert after["totalSize"] == 1  # string comparison is case-insensitive, as in SOQL
    assert sf.query("SELECT COUNT() FROM Lead WHERE NumberOfEmployees = null")["totalSize"] == 2


@pytest.mark.parametrize(
    ("soql", "code", "says"),
    [
        (
            "SELECT Id, Foo__c FROM Opportunity",
            "INVALID_FIELD",
            "No such column 'Foo__c' on entity 'Opportunity'",
        ),
        ("SELECT Id FROM Opportunity WHERE Bar = 1", "INVALID_FIELD", "No such column 'Bar'"),
        ("SELECT Id FROM Widget__c", "INVALID_TYPE", "sObject type 'Widget__c' is not supported"),
        ("SELECT Id FORM Lead", "MALFORMED_QUERY", "unexpected token"),
        (
            "SELECT Id FROM Lead WHERE IsDeleted = TRUE AND Status = 'x' OR Status = 'y'",
            "MALFORMED_QUERY",
            "use parentheses",
        ),
        (
            "SELECT Id FROM Lead WHERE CreatedDate > '2024-01-01T00:00:00Z'",
            "INVALID_FIELD",
            "must be of type dateTime and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Lead WHERE ConvertedDate > 2024-01-01T00:00:00Z",
            "INVALID_FIELD",
            "must be of type date",
        ),
        (
            "SELECT Id FROM Lead WHERE Id > 'not-an-id'",
            "INVALID_QUERY_FILTER_OPERATOR",
            "invalid ID field",
        ),
        ("SELECT Id, Id FROM Lead", "MALFORMED_QUERY", "duplicate field selected: Id"),
        ("SELECT Id FROM Task WHERE Description = 'x'", "INVALID_FIELD", "can not be filtered"),
    ],
)
def test_bad_soql_is_refused_as_salesforce_refuses_it(
    org: Org, sf: Any, soql: str, code: str, says: str
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query(soql)
    error = error_of(exc)
    assert error["errorCode"] == code and says in error["message"]
    if code == "INVALID_FIELD" and "No such column" in says:
        assert "ERROR at Row:1:Column:" in error["message"]


def test_describe_reports_fields_and_missing_custom_fields(org: Org, sf: Any) -> None:
    described = sf.Opportunity.describe()
    fields = {f["name"]: f for f in described["fields"]}
    assert described["keyPrefix"] == "006" and described["queryable"] is True
    assert fields["IS_Rep__c"]["custom"] is True and fields["IS_Rep__c"]["referenceTo"] == ["User"]
    assert fields["CloseDate"]["type"] == "date" and fields["Amount"]["soapType"] == "xsd:double"
    org.org.drop_field("Opportunity", "BANT_Need__c")
    assert "BANT_Need__c" not in {f["name"] for f in sf.Opportunity.describe()["fields"]}
    with pytest.raises(SalesforceMalformedRequest):
        sf.query("SELECT BANT_Need__c FROM Opportunity")
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert {"Task", "Event", "EmailMessage", "UserRole"} <= names
    org.org.drop_object("EmailMessage")
    with pytest.raises(SalesforceResourceNotFound):
        sf.EmailMessage.describe()


def test_limits_and_the_limit_header(org: Org, sf: Any) -> None:
    org.org.daily_api_used = 100
    limits = sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 15_000, "Remaining": 14_899}
    assert sf.api_usage["api-usage"].used == 101


def test_composite_runs_subrequests_as_one_call_within_salesforce_limits(org: Org, sf: Any) -> None:
    fill(org)
    base = "/services/data/v59.0"
    body = {
        "allOrNone": False,
        "compositeRequest": [
            {"method": "GET", "url": f"{base}/sobjects/Task/describe", "referenceId": "task"},
            {
                "method": "GET",
                "url": f"{base}/query/?q=SELECT+Id+FROM+Lead",
                "referenceId": "leads",
            },
            {
                "method": "GET",
                "url": f"{base}/query/?q=SELECT+Nope+FROM+Lead",
                "referenceId": "bad",
            },
        ],
    }
    used = org.org.daily_api_used
    result = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert org.org.daily_api_used == used + 1
    assert [(r["referenceId"], r["httpStatusCode"]) for r in result] == [
        ("task", 200),
        ("leads", 200),
        ("bad", 400),
    ]
    assert result[1]["body"]["totalSize"] == 12
    assert result[2]["body"][0]["errorCode"] == "INVALID_FIELD"
    too_many = {
        "compositeRequest": [
            {"method": "GET", "url": f"{base}/query/?q=SELECT+Id+FROM+Lead", "referenceId": f"q{i}"}
            for i in range(6)
        ]
    }
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.restful("composite", method="POST", json=too_many)
    assert "5 query" in error_of(exc)["message"]
    too_long = {
        "compositeRequest": [
            {"method": "GET", "url": f"{base}/sobjects/Lead/describe", "referenceId": f"d{i}"}
            for i in range(26)
        ]
    }
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("composite", method="POST", json=too_long)


def test_collection_update_writes_fields_and_reports_per_record(org: Org, sf: Any) -> None:
    fill(org)
    aiko = org.ids["users"][0]
    results = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "User"}, "id": aiko, "IS_Target_Calls__c": 1800},
                {"attributes": {"type": "User"}, "id": aiko, "Not_A_Field__c": 1},
            ],
        },
    )
    assert [r["success"] for r in results] == [True, False]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert org.org.get("User", aiko)["IS_Target_Calls__c"] == 1800.0


def test_bulk_api_2_query_jobs_through_simple_salesforce(org: Org, sf: Any) -> None:
    fill(org, calls=450)
    sets = list(
        sf.bulk2.Task.query_all(
            "SELECT Id, CallDurationInSeconds, IsDeleted, CompletedDateTime, ActivityDate "
            "FROM Task WHERE TaskSubtype = 'Call'",
            max_records=200,
            wait=0,
        )
    )
    assert len(sets) == 3
    rows = [row for text in sets for row in csv.DictReader(io.StringIO(text))]
    assert len(rows) == 449 and sum(r["IsDeleted"] == "true" for r in rows) == 1
    assert rows[0]["CompletedDateTime"] == "2024-03-02T10:00:00.000Z"
    assert rows[0]["ActivityDate"] == "2024-03-02"
    assert (
        sets[0].splitlines()[0]
        == '"Id","CallDurationInSeconds","IsDeleted","CompletedDateTime","ActivityDate"'
    )
    job = sf.bulk2.Lead._client.create_job("query", "SELECT Id FROM Lead")
    assert (job["state"], job["jobType"], job["operation"]) == (
        "UploadComplete",
        "V2Query",
        "query",
    )
    with pytest.raises(Exception) as not_done:
        sf.bulk2.Lead._client.get_query_results(job["id"])
    assert "JOB_NOT_COMPLETE" in str(not_done.value)
    with pytest.raises(SalesforceMalformedRequest):
        sf.bulk2.Lead._client.create_job("query", "SELECT COUNT() FROM Lead")


def test_the_refresh_token_flow_and_rotation(org: Org) -> None:
    org.org.add_connected_app(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, rotate=True)
    url = org.url + "/services/oauth2/token"
    with httpx.Client(verify=trustme_context(org)) as http:
        form = {
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
        }
        token = http.post(url, data=form).json()
        assert set(token) >= {
            "access_token",
            "instance_url",
            "id",
            "token_type",
            "issued_at",
            "signature",
            "refresh_token",
        }
        assert token["instance_url"] == org.url and token["token_type"] == "Bearer"
        reused = http.post(url, data=form)  # rotation invalidated the old refresh token
        assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
        wrong = http.post(url, data={**form, "client_secret": "nope"})
        assert wrong.json() == {
            "error": "invalid_client",
            "error_description": "invalid client credentials",
        }
    sf: Any = Salesforce(
        instance_url=org.url, session_id=token["access_token"], session=verified_session(org)
    )
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0


def test_expired_sessions_and_spent_allowances(org: Org, sf: Any) -> None:
    org.org.faults.expire_sessions_after = 1
    sf.query("SELECT Id FROM Lead")  # this one still works
    with pytest.raises(SalesforceExpiredSession) as expired:
        sf.query("SELECT Id FROM Lead")
    assert error_of(expired) == {
        "message": "Session expired or invalid",
        "errorCode": "INVALID_SESSION_ID",
    }
    fresh: Any = Salesforce(
        instance_url=org.url, session_id=org.org.issue_session(), session=verified_session(org)
    )
    org.org.daily_api_used = org.org.daily_api_limit
    with pytest.raises(SalesforceRefusedRequest) as refused:
        fresh.query("SELECT Id FROM Lead")
    assert error_of(refused) == {
        "message": "TotalRequests Limit exceeded.",
        "errorCode": "REQUEST_LIMIT_EXCEEDED",
    }


def test_untrusted_clients_cannot_connect(org: Org) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(org.url + "/services/data/", verify=str(other_ca_bundle(org)), timeout=5)
    assert date(2024, 3, 4) > OLD.date()


def verified_session(org: Org) -> requests.Session:
    session = requests.Session()
    session.verify = org.ca_bundle
    session.trust_env = False
    return session


def trustme_context(org: Org) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=org.ca_bundle)


def other_ca_bundle(org: Org) -> str:
    path = org.running.ca_bundle.parent / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)
