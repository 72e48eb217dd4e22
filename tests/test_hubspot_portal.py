"""The simulated HubSpot portal, driven by the real hubspot-api-client (and raw httpx).

The portal is the demo source and the connector tests' double, so these tests pin its
wire format to what HubSpot documents and its data to the seed article's bands.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.objects import Filter, FilterGroup, PublicObjectSearchRequest
from hubspot.crm.objects.exceptions import ApiException as ObjectsApiException
from hubspot.crm.owners.exceptions import ApiException as OwnersApiException

from simulators.hubspot.portal import FaultPlan, HubSpotPortal, RunningPortal, serve_portal
from simulators.hubspot.seed import CALL_DISPOSITIONS, generate_dataset
from simulators.hubspot.store import PortalDataset
from simulators.hubspot.wire import iso_ms, to_ms

END = datetime(2025, 7, 1, tzinfo=UTC)
TOKEN = "test-token"


@pytest.fixture(scope="module")
def small() -> PortalDataset:
    return generate_dataset(
        seed=11, teams=2, reps_per_team=2, months=2, end=END, calls_per_rep_day=15
    )


@pytest.fixture
def running(small: PortalDataset) -> Iterator[RunningPortal]:
    portal = HubSpotPortal(TOKEN, enforce_search_rate_limit=False)
    portal.load(small)
    with serve_portal(portal) as run:
        yield run


def client_for(run: RunningPortal, token: str = TOKEN) -> HubSpot:
    # hubspot-api-client copies every config key onto each API's Configuration: host= works.
    return HubSpot(access_token=token, host=run.url)


def raw(run: RunningPortal, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKEN}", **kwargs.pop("headers", {})}
    return httpx.request(method, run.url + path, headers=headers, timeout=10, **kwargs)


def by_id(dataset: PortalDataset, object_type: str) -> dict[str, Any]:
    return {r.id: r for r in dataset.records(object_type)}


# -- owners ----------------------------------------------------------------------------


def test_owners_page_through_with_the_real_client(
    running: RunningPortal, small: PortalDataset
) -> None:
    api = client_for(running).crm.owners.owners_api
    seen: list[Any] = []
    after: str | None = None
    pages = 0
    while True:
        page = api.get_page(limit=2, after=after)
        seen.extend(page.results)
        pages += 1
        if page.paging is None:
            break
        after = page.paging.next.after
        assert after == str(int(seen[-1].id) + 1)  # the cursor is the next owner's id
        assert f"after={after}" in page.paging.next.link
    live = [o for o in small.owners if not o.archived]
    assert [o.id for o in seen] == [o.id for o in live]
    assert pages == (len(live) + 1) // 2
    first = seen[0]
    assert first.email == live[0].email and first.first_name == live[0].first_name
    assert first.user_id == live[0].user_id and first.type == "PERSON"
    assert [(t.id, t.name, t.primary) for t in first.teams] == live[0].teams
    field_sales = [o for o in seen if o.teams[0].name == "Field Sales"]
    assert len(field_sales) == 2

    gone = api.get_page(archived=True).results
    assert len(gone) == 1 and gone[0].archived is True
    assert gone[0].user_id is None and gone[0].user_id_including_inactive is not None

    one = api.get_page(email=live[1].email.upper()).results
    assert [o.id for o in one] == [live[1].id]


def test_owners_reject_a_limit_over_500(running: RunningPortal) -> None:
    with pytest.raises(OwnersApiException) as err:
        client_for(running).crm.owners.owners_api.get_page(limit=501)
    assert err.value.status == 400
    assert json.loads(err.value.body)["category"] == "VALIDATION_ERROR"
    assert raw(running, "GET", "/crm/v3/owners").status_code == 200  # no trailing slash too


# -- listing objects ---------------------------------------------------------------------


def test_calls_list_pages_by_id_with_properties_and_associations(
    running: RunningPortal, small: PortalDataset
) -> None:
    api = client_for(running).crm.objects.basic_api
    expected = {i: r for i, r in by_id(small, "calls").items() if r.archived_at is None}
    # Associations with archived (deleted) records are not served.
    live_contacts = {r.id for r in small.records("contacts") if r.archived_at is None}
    wanted = [
        "hs_timestamp",
        "hs_call_direction",
        "hs_call_disposition",
        "hs_call_duration",
        "hubspot_owner_id",
        "hs_email_open_count",
    ]  # the last is not a call property
    got: list[Any] = []
    after: str | None = None
    while True:
        page = api.get_page(
            "calls", limit=100, after=after, properties=wanted, associations=["contacts"]
        )
        got.extend(page.results)
        if page.paging is None:
            break
        after = page.paging.next.after
    assert [c.id for c in got] == sorted(expected, key=int)
    for call in got[:300]:
        record = expected[call.id]
        props = call.properties
        assert set(props) == {
            "hs_timestamp",
            "hs_call_direction",
            "hs_call_disposition",
            "hs_call_duration",
            "hubspot_owner_id",
            "hs_createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
        }
        assert props["hs_timestamp"] == record.properties["hs_timestamp"]
        assert props["hs_call_duration"] == record.properties["hs_call_duration"]
        assert props["hs_call_disposition"] == record.properties.get("hs_call_disposition")
        assert props["hs_object_id"] == call.id
        assert call.updated_at == record.modified_at and call.archived is False
        if record.associations.get("contacts", ["gone"])[0] in live_contacts:
            links = call.associations["contacts"].results
            assert [(a.id, a.type) for a in links] == [
                (record.associations["contacts"][0], "call_to_contact")
            ]


def test_list_defaults_archived_and_limits(running: RunningPortal, small: PortalDataset) -> None:
    api = client_for(running).crm.objects.basic_api
    plain = api.get_page("calls", limit=1).results[0]
    assert set(plain.properties) == {"hs_createdate", "hs_lastmodifieddate", "hs_object_id"}
    assert plain.associations is None

    contact = api.get_page("contacts", limit=1).results[0]
    assert set(contact.properties) == {
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    }

    archived = api.get_page("calls", archived=True, properties=["hs_timestamp"]).results
    expected = [r for r in small.records("calls") if r.archived_at is not None]
    assert [c.id for c in archived] == [r.id for r in expected] and len(archived) == 3
    assert all(
        c.archived and c.archived_at == r.archived_at
        for c, r in zip(archived, expected, strict=True)
    )

    with pytest.raises(ObjectsApiException) as err:
        api.get_page("calls", limit=101)
    assert err.value.status == 400

    unknown = raw(running, "GET", "/crm/v3/objects/widgets")
    assert unknown.status_code == 400
    assert unknown.json()["message"] == "Unable to infer object type from: widgets"
    assert raw(running, "GET", "/crm/v3/objects/calls/1").json()["category"] == "OBJECT_NOT_FOUND"


# -- search -----------------------------------------------------------------------------


def _window(small: PortalDataset) -> tuple[int, int, list[Any]]:
    lo = to_ms(END - timedelta(days=20))
    hi = to_ms(END - timedelta(days=10))
    inside = sorted(
        (
            r
            for r in small.records("calls")
            if r.archived_at is None and lo <= to_ms(r.modified_at) < hi
        ),
        key=lambda r: (r.modified_at, int(r.id)),
    )
    return lo, hi, inside


def test_search_by_modified_window_sorted_and_paged(
    running: RunningPortal, small: PortalDataset
) -> None:
    api = client_for(running).crm.objects.search_api
    lo, hi, inside = _window(small)
    got: list[Any] = []
    after: str | None = None
    while True:
        request = PublicObjectSearchRequest(
            filter_groups=[
                FilterGroup(
                    filters=[
                        Filter(property_name="hs_lastmodifieddate", operator="GTE", value=str(lo)),
                        Filter(
                            property_name="hs_lastmodifieddate", operator="LT", value=iso_ms(hi)
                        ),
                    ]
                )
            ],
            sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            properties=["hs_call_duration"],
            limit=200,
            after=after,
        )
        page = api.do_search("calls", request)
        assert page.total == len(inside)
        got.extend(page.results)
        if page.paging is None:
            break
        after = page.paging.next.after
        assert after == str(len(got))  # search cursors are offsets
    assert [c.id for c in got] == [r.id for r in inside]
    assert all("associations" not in c.to_dict() for c in got)  # search has no associations
    assert set(got[0].properties) == {
        "hs_call_duration",
        "hs_createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    }


def test_search_operators_compare_like_hubspot(
    running: RunningPortal, small: PortalDataset
) -> None:
    api = client_for(running).crm.objects.search_api
    calls = [r for r in small.records("calls") if r.archived_at is None]

    def total(object_type: str, *groups: list[Filter]) -> int:
        request = PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=g) for g in groups], limit=1
        )
        return int(api.do_search(object_type, request).total)

    long_calls = [r for r in calls if int(r.properties["hs_call_duration"]) > 60_000]
    assert total(
        "calls", [Filter(property_name="hs_call_duration", operator="GT", value="60000")]
    ) == len(long_calls)
    connected = CALL_DISPOSITIONS["connected"]
    outbound_connected = [
        r
        for r in calls
        if r.properties.get("hs_call_direction") == "OUTBOUND"
        and r.properties.get("hs_call_disposition") == connected
    ]
    assert total(
        "calls",
        [
            Filter(property_name="hs_call_direction", operator="EQ", value="OUTBOUND"),
            Filter(property_name="hs_call_disposition", operator="EQ", value=connected),
        ],
    ) == len(outbound_connected)
    # OR across groups; IN on an enumeration is exact (case-sensitive).
    no_dispo = [r for r in calls if "hs_call_disposition" not in r.properties]
    busy_or_failed = [r for r in no_dispo if r.properties["hs_call_status"] in ("BUSY", "FAILED")]
    assert total(
        "calls",
        [
            Filter(property_name="hs_call_disposition", operator="NOT_HAS_PROPERTY"),
            Filter(property_name="hs_call_status", operator="IN", values=["BUSY", "FAILED"]),
        ],
    ) == len(busy_or_failed)
    assert (
        total("calls", [Filter(property_name="hs_call_status", operator="IN", values=["busy"])])
        == 0
    )
    assert total(
        "calls",
        [Filter(property_name="hs_call_disposition", operator="NOT_HAS_PROPERTY")],
        [Filter(property_name="hs_call_direction", operator="EQ", value="INBOUND")],
    ) == len(
        [
            r
            for r in calls
            if "hs_call_disposition" not in r.properties
            or r.properties.get("hs_call_direction") == "INBOUND"
        ]
    )
    # Tracked emails carry the counts; untracked ones lack the properties.
    emails = [r for r in small.records("emails") if r.archived_at is None]
    assert total(
        "emails", [Filter(property_name="hs_email_open_count", operator="HAS_PROPERTY")]
    ) == len([r for r in emails if "hs_email_open_count" in r.properties])
    # Datetime values: ISO dates and epoch millis mean the same instant; BETWEEN is inclusive.
    day = END - timedelta(days=7)
    after_day = [r for r in calls if r.properties["hs_timestamp"] >= day.strftime("%Y-%m-%d")]
    assert total(
        "calls",
        [Filter(property_name="hs_timestamp", operator="GTE", value=day.strftime("%Y-%m-%d"))],
    ) == len(after_day)
    assert total(
        "calls",
        [
            Filter(
                property_name="hs_timestamp",
                operator="BETWEEN",
                value=str(to_ms(day)),
                high_value=str(to_ms(END)),
            )
        ],
    ) == len(after_day)
    # Archived records never appear in search.
    assert total("calls") == len(calls)


def test_search_rejects_what_hubspot_rejects(running: RunningPortal) -> None:
    api = client_for(running).crm.objects.search_api

    def status(request: PublicObjectSearchRequest) -> tuple[int, dict[str, Any]]:
        with pytest.raises(ObjectsApiException) as err:
            api.do_search("calls", request)
        return err.value.status, json.loads(err.value.body)

    code, body = status(
        PublicObjectSearchRequest(
            filter_groups=[
                FilterGroup(
                    filters=[Filter(property_name="no_such_property", operator="EQ", value="x")]
                )
            ]
        )
    )
    assert code == 400 and body["category"] == "VALIDATION_ERROR" and body["correlationId"]
    assert "no_such_property" in body["message"]
    code, _ = status(PublicObjectSearchRequest(limit=201))
    assert code == 400
    code, _ = status(PublicObjectSearchRequest(sorts=["hs_timestamp"]))  # the model's list[str]
    assert code == 400
    code, _ = status(
        PublicObjectSearchRequest(
            sorts=[{"propertyName": "hs_timestamp"}, {"propertyName": "hs_object_id"}]
        )
    )
    assert code == 400
    code, _ = status(
        PublicObjectSearchRequest(
            filter_groups=[
                FilterGroup(
                    filters=[Filter(property_name="hs_timestamp", operator="GT", value="yesterday")]
                )
            ]
        )
    )
    assert code == 400
    code, _ = status(
        PublicObjectSearchRequest(
            filter_groups=[
                FilterGroup(filters=[Filter(property_name="hs_object_id", operator="HAS_PROPERTY")])
                for _ in range(6)
            ]
        )
    )
    assert code == 400


def test_search_stops_at_ten_thousand_results() -> None:
    dataset = generate_dataset(
        seed=5, teams=1, reps_per_team=2, months=1, end=END, total_calls=10_250
    )
    assert dataset.count("calls") == 10_250
    portal = HubSpotPortal(TOKEN, enforce_search_rate_limit=False)
    portal.load(dataset)
    with serve_portal(portal) as run:
        api = client_for(run).crm.objects.search_api
        page = api.do_search("calls", PublicObjectSearchRequest(limit=100, after="9900"))
        assert page.total == 10_247 and len(page.results) == 100
        assert page.paging.next.after == "10000"
        with pytest.raises(ObjectsApiException) as err:
            api.do_search("calls", PublicObjectSearchRequest(limit=100, after="10000"))
        assert err.value.status == 400
        body = json.loads(err.value.body)
        assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
        assert "10000" in body["message"]
        partly = raw(
            run, "POST", "/crm/v3/objects/calls/search", json={"limit": 200, "after": "9900"}
        )
        assert partly.status_code == 400


def test_search_allows_five_requests_a_second(small: PortalDataset) -> None:
    portal = HubSpotPortal(TOKEN)  # enforcement on, as in the demo
    portal.load(small)
    with serve_portal(portal) as run:
        answers = [
            raw(run, "POST", "/crm/v3/objects/calls/search", json={"limit": 1}) for _ in range(6)
        ]
        assert [a.status_code for a in answers[:5]] == [200] * 5
        limited = answers[5]
        assert limited.status_code == 429
        body = limited.json()
        assert body["policyName"] == "SECONDLY" and body["errorType"] == "RATE_LIMIT"
        assert body["message"] == "You have reached your secondly limit."
        assert raw(run, "GET", "/crm/v3/objects/calls").status_code == 200  # lists are not
        time.sleep(1.05)
        assert raw(run, "POST", "/crm/v3/objects/calls/search", json={}).status_code == 200


# -- associations and pipelines ------------------------------------------------------------


def test_associations_batch_read_v4(running: RunningPortal, small: PortalDataset) -> None:
    api = client_for(running).crm.associations.v4.batch_api
    calls = [
        r
        for r in small.records("calls")
        if r.archived_at is None and r.associations.get("contacts")
    ][:3]
    request = BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[PublicFetchAssociationsBatchRequest(id=c.id) for c in calls]
    )
    answer = api.get_page("calls", "contacts", request)
    assert answer.status == "COMPLETE"
    assert [(r._from.id, [t.to_object_id for t in r.to]) for r in answer.results] == [
        (c.id, c.associations["contacts"]) for c in calls
    ]
    kind = answer.results[0].to[0].association_types[0]
    assert (kind.category, kind.type_id, kind.label) == ("HUBSPOT_DEFINED", 194, None)

    contact_id = calls[0].associations["contacts"][0]
    reverse = api.get_page(
        "contacts",
        "calls",
        BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[
                PublicFetchAssociationsBatchRequest(id=contact_id),
                PublicFetchAssociationsBatchRequest(id="999"),
            ]
        ),
    )
    expected = sorted(
        (
            r.id
            for r in small.records("calls")
            if r.archived_at is None and r.associations.get("contacts") == [contact_id]
        ),
        key=int,
    )
    assert [t.to_object_id for t in reverse.results[0].to] == expected
    assert reverse.results[0].to[0].association_types[0].type_id == 193
    assert reverse.num_errors == 1  # a 207: the unknown id is reported, not fatal
    error = reverse.errors[0]
    assert error.sub_category == "crm.associations.NO_ASSOCIATIONS_FOUND"
    assert error.context == {
        "fromObjectId": ["999"],
        "fromObjectType": ["contact"],
        "toObjectType": ["call"],
    }

    status = raw(
        running,
        "POST",
        "/crm/v4/associations/contacts/calls/batch/read",
        json={"inputs": [{"id": "999"}]},
    )
    assert status.status_code == 207
    assert isinstance(status.json()["results"], list)


def test_deal_pipeline_stages(running: RunningPortal) -> None:
    api = client_for(running).crm.pipelines.pipelines_api
    pipeline = api.get_all("deals").results[0]
    assert pipeline.id == "default"
    stages = [(s.id, s.metadata["probability"], s.metadata["isClosed"]) for s in pipeline.stages]
    assert stages == [
        ("appointmentscheduled", "0.2", "false"),
        ("qualifiedtobuy", "0.4", "false"),
        ("presentationscheduled", "0.6", "false"),
        ("decisionmakerboughtin", "0.8", "false"),
        ("contractsent", "0.9", "false"),
        ("closedwon", "1.0", "true"),
        ("closedlost", "0.0", "true"),
    ]
    running.portal.set_pipeline_stages(
        [("new", "New", 0.1, False, False), ("won", "Won", 1.0, True, True)]
    )
    again = api.get_all("deals").results[0]
    assert [(s.id, s.metadata["probability"]) for s in again.stages] == [
        ("new", "0.1"),
        ("won", "1.0"),
    ]
    assert raw(running, "GET", "/crm/v3/pipelines/contacts").status_code == 400


# -- auth, limits, faults ---------------------------------------------------------------------


def test_bad_or_expired_token_is_401(running: RunningPortal) -> None:
    with pytest.raises(ObjectsApiException) as err:
        client_for(running, token="wrong").crm.objects.basic_api.get_page("calls")
    assert err.value.status == 401
    body = json.loads(err.value.body)
    assert body["category"] == "INVALID_AUTHENTICATION" and body["status"] == "error"
    assert body["correlationId"] and body["message"].startswith("Authentication credentials")
    assert httpx.get(running.url + "/crm/v3/owners/").status_code == 401

    running.portal.faults.fail_auth = True
    expired = raw(running, "GET", "/crm/v3/owners/")
    assert expired.status_code == 401
    assert expired.json()["category"] == "EXPIRED_AUTHENTICATION"


def test_every_answer_carries_rate_limit_headers(running: RunningPortal) -> None:
    first = raw(running, "GET", "/crm/v3/objects/deals")
    second = raw(running, "GET", "/crm/v3/objects/deals")
    for answer in (first, second):
        assert answer.headers["X-HubSpot-RateLimit-Max"] == "190"
        assert answer.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert answer.headers["X-HubSpot-RateLimit-Daily"] == "1000000"
        assert answer.headers["X-HubSpot-Correlation-Id"]
        assert answer.headers["content-type"].startswith("application/json")
    assert (
        int(second.headers["X-HubSpot-RateLimit-Remaining"])
        == int(first.headers["X-HubSpot-RateLimit-Remaining"]) - 1
    )
    assert (
        int(second.headers["X-HubSpot-RateLimit-Daily-Remaining"])
        == int(first.headers["X-HubSpot-RateLimit-Daily-Remaining"]) - 1
    )


def test_rate_limit_fault_then_recovery(running: RunningPortal) -> None:
    running.portal.faults = FaultPlan(rate_limit_every=2, rate_limit_for_seconds=0.8)
    answers = [raw(running, "GET", "/crm/v3/objects/calls") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 429, 200, 429]
    limited = answers[3]
    body = limited.json()
    assert (body["policyName"], body["errorType"]) == ("TEN_SECONDLY_ROLLING", "RATE_LIMIT")
    assert limited.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    time.sleep(0.85)
    assert [raw(running, "GET", "/crm/v3/objects/calls").status_code for _ in range(4)] == [200] * 4


def test_server_error_faults(running: RunningPortal) -> None:
    running.portal.faults = FaultPlan(server_error_burst=2)
    codes = [raw(running, "GET", "/crm/v3/owners/").status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    running.portal.faults = FaultPlan(server_error_every=2)
    codes = [raw(running, "GET", "/crm/v3/owners/").status_code for _ in range(6)]
    assert codes == [200, 502, 200, 503, 200, 500]


def test_delay_fault_provokes_client_timeouts(running: RunningPortal) -> None:
    running.portal.faults = FaultPlan(delay_seconds=0.5, delay_every=2)
    assert raw(running, "GET", "/crm/v3/owners/").status_code == 200
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(
            running.url + "/crm/v3/owners/",
            timeout=0.1,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )


def test_malformed_values_are_served_as_they_are(
    running: RunningPortal, small: PortalDataset
) -> None:
    first = next(r for r in small.records("calls") if r.archived_at is None)
    running.portal.faults.malformed[("calls", first.id)] = {"hs_timestamp": "not-a-date"}
    page = client_for(running).crm.objects.basic_api.get_page(
        "calls", limit=1, properties=["hs_timestamp"]
    )
    assert page.results[0].id == first.id
    assert page.results[0].properties["hs_timestamp"] == "not-a-date"
    assert ("GET", "/crm/v3/objects/calls") in running.portal.request_log


# -- the Python API -----------------------------------------------------------------------


def test_create_update_archive_through_the_python_api() -> None:
    now = [datetime(2025, 6, 2, 3, 0, tzinfo=UTC)]
    portal = HubSpotPortal(TOKEN, clock=lambda: now[0], enforce_search_rate_limit=False)
    rep = portal.add_owner(
        email="a@x.example", first_name="A", last_name="B", teams=[("1", "IS", True)]
    )
    contact = portal.create("contacts", {"firstname": "Ken", "hubspot_owner_id": rep})
    call = portal.create(
        "calls",
        {
            "hs_timestamp": "2025-06-02T02:55:00Z",
            "hs_call_direction": "OUTBOUND",
            "hs_call_duration": "61000",
            "hubspot_owner_id": rep,
        },
        associations={"contacts": [contact]},
    )
    deal = portal.create(
        "deals", {"dealname": "X", "dealstage": "contractsent", "pipeline": "default"}
    )
    assert portal.get("calls", call)["hs_createdate"] == "2025-06-02T03:00:00.000Z"
    assert portal.get("deals", deal)["hs_is_closed"] == "false"
    now[0] += timedelta(hours=1)
    portal.update("deals", deal, {"dealstage": "closedwon"})
    won = portal.get("deals", deal)
    assert (won["hs_is_closed"], won["hs_is_closed_won"], won["hs_lastmodifieddate"]) == (
        "true",
        "true",
        "2025-06-02T04:00:00.000Z",
    )
    portal.update(
        "calls",
        call,
        {"hs_call_duration": "59999"},
        modified_at=datetime(2025, 6, 2, 5, 0, tzinfo=UTC),
    )
    with serve_portal(portal) as run:
        found = client_for(run).crm.objects.search_api.do_search(
            "calls",
            PublicObjectSearchRequest(
                filter_groups=[
                    FilterGroup(
                        filters=[
                            Filter(
                                property_name="hs_lastmodifieddate",
                                operator="GTE",
                                value="2025-06-02T05:00:00Z",
                            )
                        ]
                    )
                ],
                properties=["hs_call_duration"],
            ),
        )
        assert [(c.id, c.properties["hs_call_duration"]) for c in found.results] == [
            (call, "59999")
        ]
        portal.archive("calls", call, at=datetime(2025, 6, 3, tzinfo=UTC))
        assert portal.count("calls") == 0 and portal.count("calls", archived=True) == 1
        listed = raw(run, "GET", "/crm/v3/objects/calls", params={"archived": "true"}).json()
        assert listed["results"][0]["archivedAt"] == "2025-06-03T00:00:00.000Z"
        contacts = raw(
            run, "GET", "/crm/v3/objects/contacts", params={"associations": "calls"}
        ).json()["results"]
        assert "associations" not in contacts[0]  # archived records drop out of associations
    assert [method for method, _ in portal.request_log] == ["POST", "GET", "GET"]


# -- the dataset -------------------------------------------------------------------------


def test_dataset_is_deterministic_for_a_seed(small: PortalDataset) -> None:
    again = generate_dataset(
        seed=11, teams=2, reps_per_team=2, months=2, end=END, calls_per_rep_day=15
    )
    assert again.owners == small.owners
    for name, table in small.objects.items():
        other = again.objects[name]
        assert (
            other.ids,
            other.created_ms,
            other.modified_ms,
            other.columns,
            other.associations,
            other.archived_ms,
        ) == (
            table.ids,
            table.created_ms,
            table.modified_ms,
            table.columns,
            table.associations,
            table.archived_ms,
        ), name
    different = generate_dataset(
        seed=12, teams=2, reps_per_team=2, months=2, end=END, calls_per_rep_day=15
    )
    assert different.objects["calls"].columns != small.objects["calls"].columns
    exact = generate_dataset(
        seed=11, teams=2, reps_per_team=2, months=1, end=END, total_calls=4_321
    )
    assert exact.count("calls") == 4_321


@pytest.fixture(scope="module")
def team() -> PortalDataset:
    return generate_dataset(seed=7, months=3, end=END)


def test_dataset_rates_land_in_the_seed_articles_bands(team: PortalDataset) -> None:
    reps = team.owner_ids("inside_sales")
    assert len(reps) == 12 and len(team.owner_ids("field_sales")) == 3
    outcome_of = {guid: label for label, guid in CALL_DISPOSITIONS.items()}
    calls = [r.properties for r in team.records("calls")]
    directions = Counter(c.get("hs_call_direction") for c in calls)
    assert 0.88 < directions["OUTBOUND"] / len(calls) < 0.97 and directions[None] > 0
    outbound = [c for c in calls if c.get("hs_call_direction") == "OUTBOUND"]
    outcomes = Counter(
        outcome_of.get(c.get("hs_call_disposition", ""), c["hs_call_status"]) for c in outbound
    )
    n = len(outbound)
    reached = (
        sum(
            outcomes[k]
            for k in (
                "connected",
                "no_answer",
                "voicemail",
                "live_message",
                "wrong_number",
                "NO_ANSWER",
            )
        )
        / n
    )
    assert 0.85 <= reached <= 0.95
    assert 0.20 <= outcomes["connected"] / n <= 0.35
    assert {"BUSY", "NO_ANSWER", "FAILED", "COMPLETED"} <= set(outcomes)  # no disposition
    durations = [
        int(c["hs_call_duration"])
        for c in outbound
        if c.get("hs_call_disposition") == CALL_DISPOSITIONS["connected"]
    ]
    assert 0.15 <= sum(d >= 60_000 for d in durations) / n <= 0.25
    assert 180 <= statistics.mean(durations) / 1000 <= 300
    assert 59_999 in durations and 60_000 in durations
    assert min(durations) >= 30_000 and max(durations) <= 900_000
    hours = Counter(int(c["hs_timestamp"][11:13]) for c in calls)
    assert set(hours) <= set(range(10))  # 9:00-19:00 Tokyo
    weekdays = {datetime.fromisoformat(c["hs_timestamp"][:10]).weekday() for c in calls}
    assert weekdays == {0, 1, 2, 3, 4}
    per_rep = Counter(c["hubspot_owner_id"] for c in outbound)
    assert set(per_rep) == set(reps) and max(per_rep.values()) > 1.15 * min(per_rep.values())

    emails = [r.properties for r in team.records("emails")]
    sent = [
        e
        for e in emails
        if e["hs_email_direction"] == "EMAIL" and e["hs_email_status"] not in ("BOUNCED", "FAILED")
    ]
    tracked = [e for e in sent if "hs_email_open_count" in e]
    assert 0.6 < len(tracked) / len(sent) < 0.95

    def rate(key: str) -> float:
        return sum(int(e[key]) > 0 for e in tracked) / len(tracked)

    assert 0.20 <= rate("hs_email_open_count") <= 0.35
    assert 0.03 <= rate("hs_email_click_count") <= 0.08
    assert 0.05 <= rate("hs_email_reply_count") <= 0.15

    meetings = [r.properties for r in team.records("meetings")]
    assert 0.05 <= len(meetings) / sum(d >= 60_000 for d in durations) <= 0.15
    assert 0.80 <= sum("hs_meeting_start_time" in m for m in meetings) / len(meetings) <= 0.90
    assert sum(m["hs_meeting_outcome"] == "CANCELED" for m in meetings) / len(meetings) <= 0.10

    deals = list(team.records("deals"))
    props = [d.properties for d in deals]
    closed = [d for d in props if d["hs_is_closed"] == "true"]
    assert 0.20 <= sum(d["hs_is_closed_won"] == "true" for d in closed) / len(closed) <= 0.35
    bant = ("bant_budget", "bant_authority", "bant_need", "bant_timing")
    assert 0.70 <= sum(all(d.get(k) for k in bant) for d in props) / len(props) <= 0.85
    ratings = [int(d["handoff_rating"]) for d in props if "handoff_rating" in d]
    assert statistics.mean(ratings) >= 4.0 and len(ratings) < len(props)
    assert {d.get("is_rep_owner_id") for d in props} - {None} <= set(reps)
    assert any("is_rep_owner_id" not in d for d in props)
    assert {d["hubspot_owner_id"] for d in props} <= set(team.owner_ids("field_sales"))
    contacts = {r.id: r for r in team.records("contacts")}
    lead_days = [
        (d.created_at - contacts[d.associations["contacts"][0]].created_at).days
        for d in deals
        if "is_rep_owner_id" in d.properties
    ]
    assert 7 <= statistics.mean(lead_days) <= 14

    leads = [c.properties for c in contacts.values()]
    assert {c["numemployees"] for c in leads if "numemployees" in c} == {
        "1-5",
        "5-25",
        "25-50",
        "50-100",
        "100-500",
        "500-1000",
        "1000+",
    }
    assert {c["hs_analytics_source"] for c in leads} >= {
        "ORGANIC_SEARCH",
        "PAID_SEARCH",
        "REFERRALS",
        "OFFLINE",
    }
    assert any("hs_lifecyclestage_salesqualifiedlead_date" in c for c in leads)
    for name in team.objects:
        assert team.count(name, archived=True) == 3
