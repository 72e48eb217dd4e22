"""The Salesforce connector against the simulated org, through the real simple-salesforce client.

Only the connector is exercised (no store): each test iterates ``pull()`` and looks at the
pages, the saved states and the org's request and SOQL logs. The org speaks HTTPS with a test
CA, as Salesforce does; its clock is fixed, so SystemModstamps and ``until`` are exact.
"""

from __future__ import annotations

import json
from datetime import UTC, date, timedelta
from typing import Any

import pytest
import trustme

from connectors.errors import AuthError, QuotaExhausted, TransientError
from connectors.mapping import load_mapping
from connectors.records import Call, Deal, Email, FollowUpTask, Lead, Meeting, Rep, Team
from connectors.salesforce import SalesforceConnector
from simulators.salesforce.schema import FieldSpec
from tests.support.salesforce import (
    CLIENT_SECRET,
    OLD,
    REFRESH_TOKEN,
    T0,
    Org,
    Pulled,
    ca,
    fill,
    org,
    pull,
    serve,
    sync_all,
)

__all__ = ["ca", "org"]  # fixtures used here

STREAMS = (
    "roles",
    "users",
    "leads",
    "calls",
    "emails",
    "meetings",
    "tasks",
    "opportunities",
    "campaigns",
    "campaign_members",
)


def rows_of(o: Org, sobject: str, *, deleted: bool | None = None) -> int:
    live = o.org.count(sobject)
    gone = o.org.count(sobject, deleted=True)
    return live + gone if deleted is None else (gone if deleted else live)


# --- first sync -----------------------------------------------------------------------------


def test_first_sync_maps_every_object_with_only_the_fields_it_needs(org: Org) -> None:
    fill(org)
    connector = org.connector()
    out = sync_all(connector, {}, T0)
    assert [s.name for s in connector.streams] == list(STREAMS)

    roles = out["roles"].by_id()
    assert {r.name for r in roles.values() if isinstance(r, Team)} == {"IS East", "Field Sales"}
    users = out["users"].by_id()
    aiko, kenji, gone = org.ids["users"]
    assert set(users) == {aiko, kenji, gone}  # the Automated Process user is not a rep
    rep = users[kenji]
    assert isinstance(rep, Rep)
    assert (rep.name, rep.email, rep.team_crm_id, rep.manager_crm_id, rep.active) == (
        "Kenji Sato",
        "kenji@example.jp",
        org.ids["roles"][1],
        aiko,
        True,
    )
    assert rep.user_id == kenji and len(kenji) == 18
    left = users[gone]
    assert isinstance(left, Rep) and left.deleted and not left.active

    leads = out["leads"].by_id()
    assert len(leads) == 12
    sizes = [leads[i].company_size for i in org.ids["leads"][:6]]  # type: ignore[attr-defined]
    assert sizes == ["1-9", "10-49", "50-249", "250-999", "1000+", None]
    converted = leads[org.ids["leads"][0]]
    assert isinstance(converted, Lead)
    assert (
        converted.sql_at is not None and converted.sql_at.isoformat() == "2024-03-02T00:00:00+00:00"
    )
    assert (converted.channel, converted.industry, converted.status, converted.rep_crm_id) == (
        "Web",
        "Technology",
        "Closed - Converted",
        aiko,
    )

    calls = out["calls"].by_id()
    assert len(calls) == 30  # TaskSubtype Call, and the CTI call (Task with Type Call)
    first = calls[org.ids["calls"][0]]
    assert isinstance(first, Call)
    assert (first.direction, first.outcome, first.duration_ms) == ("outbound", "connected", 60_000)
    assert first.occurred_at == OLD + timedelta(hours=1)
    assert calls[org.ids["calls"][1]].outcome == "no_answer"  # type: ignore[attr-defined]
    assert calls[org.ids["calls"][2]].direction == "inbound"  # type: ignore[attr-defined]
    assert calls[org.ids["calls"][4]].deleted  # deleted: queryAll still returns it
    assert calls[org.ids["calls"][9]].outcome == "unknown"  # type: ignore[attr-defined]
    # A call on the converted lead's Contact reaches the lead.
    assert calls[org.ids["calls"][3]].contact_crm_id == org.ids["leads"][0]  # type: ignore[attr-defined]

    emails = out["emails"].by_id()
    tracked, untracked, bounced, bare = (emails[i] for i in org.ids["emails"])
    assert isinstance(tracked, Email)
    assert (
        tracked.tracked,
        tracked.opened,
        tracked.clicked,
        tracked.replied,
        tracked.sent,
        tracked.direction,
        tracked.status,
    ) == (True, True, True, False, True, "outbound", "SENT")
    assert (untracked.tracked, untracked.opened) == (False, None)  # type: ignore[attr-defined]
    assert (bounced.sent, bounced.status) == (False, "BOUNCED")  # type: ignore[attr-defined]
    assert (bare.tracked, bare.sent) == (False, True)  # type: ignore[attr-defined]

    meetings = out["meetings"].by_id()
    discovery, intro = (meetings[i] for i in org.ids["meetings"])
    assert isinstance(discovery, Meeting)
    assert (discovery.outcome, discovery.deal_crm_id, discovery.contact_crm_id) == (
        "completed",
        org.ids["opportunities"][0],
        org.ids["leads"][0],
    )
    assert (intro.outcome, intro.deal_crm_id) == ("no_show", None)  # type: ignore[attr-defined]

    tasks = out["tasks"]
    assert set(tasks.by_id()) == set(org.ids["tasks"][:2])
    done = tasks.by_id()[org.ids["tasks"][0]]
    assert isinstance(done, FollowUpTask)
    assert (done.due_at.isoformat(), done.status) == ("2024-03-03T00:00:00+00:00", "COMPLETED")
    # The CTI call and the Task without a due date are not follow-ups.
    assert set(tasks.missing) == {org.ids["calls"][1], org.ids["tasks"][2]}

    deals = out["opportunities"].by_id()
    won = deals[org.ids["opportunities"][0]]
    assert isinstance(won, Deal)
    assert (won.is_closed, won.is_won, won.probability, won.rep_crm_id, won.owner_crm_id) == (
        True,
        True,
        1.0,
        aiko,
        kenji,
    )
    assert str(won.amount) == "1500000.0" and won.handoff_rating == 4.0
    assert won.contact_crm_id == org.ids["leads"][0]  # the lead converted into it
    assert won.closed_at is not None and won.closed_at.date() == date(2024, 3, 1)
    assert deals[org.ids["opportunities"][1]].probability == 0.75  # type: ignore[attr-defined]

    # Only the fields the mapping needs were selected, by queryAll, in keyset order.
    task_query = next(q for q in org.org.soql_log if q.startswith("SELECT") and "CallType" in q)
    assert task_query == (
        "SELECT Id, IsDeleted, SystemModstamp, CompletedDateTime, CreatedDate, CallType, "
        "CallDisposition, CallDurationInSeconds, OwnerId, WhoId, TaskSubtype, Type FROM Task "
        "WHERE (TaskSubtype IN ('Call') OR Type IN ('Call')) AND SystemModstamp <= "
        "2024-03-04T09:00:00Z ORDER BY SystemModstamp ASC, Id ASC"
    )
    assert ("GET", "/services/data/v59.0/queryAll/") in org.org.request_log
    # 1 describe, 8 stream queries, the EmailMessage pass, the converted leads (read once on
    # a first sync instead of a look-up a page) and the email tracking look-up (a composite).
    # and the call-list streams: campaigns, the call-list campaigns' Ids, their members
    assert connector.api_calls == 12 + 3
    assert sum(p.api_calls for p in out.values()) == 15
    assert any(q.endswith("FROM Lead WHERE IsConverted = TRUE") for q in org.org.soql_log)


def test_pages_follow_next_records_url_and_every_page_carries_its_cursor(org: Org) -> None:
    fill(org, calls=450)
    connector = org.connector(page_size=200, store_page_size=90)
    pulled = pull(connector, "calls", None, T0)
    requests = [p for m, p in org.org.request_log if m == "GET" and "/query" in p]
    assert requests[0] == "/services/data/v59.0/queryAll/"
    assert len([p for p in requests if p.startswith("/services/data/v59.0/query/01g")]) == 2
    ids = [r.crm_id for r in pulled.records]
    assert len(ids) == len(set(ids)) == 450
    assert pulled.pages[0].total == 450
    assert max(len(p.records) for p in pulled.pages) == 90
    for page in pulled.pages[:-1]:
        cursor = page.state["cursor"]
        assert page.state["resume"] is True and cursor["crm_id"] == page.records[-1].crm_id
    assert pulled.state["resume"] is False
    assert pulled.state["cursor"] == {
        "modified_at": "2024-03-04T09:00:00.000+00:00",
        "crm_id": None,
    }


def test_a_stopped_pass_resumes_after_its_last_row_even_within_one_timestamp(org: Org) -> None:
    stamp = OLD + timedelta(hours=3)
    owner = org.org.create(
        "User",
        {
            "LastName": "Rep",
            "Email": "r@example.jp",
            "Username": "r",
            "IsActive": True,
            "UserType": "Standard",
        },
    )
    for i in range(500):  # a mass update: every row has the same SystemModstamp
        org.org.create(
            "Task",
            {
                "TaskSubtype": "Call",
                "Status": "Completed",
                "OwnerId": owner,
                "CompletedDateTime": stamp,
                "CallDurationInSeconds": i,
            },
            created_at=stamp,
            modified_at=stamp,
        )
    connector = org.connector(page_size=200, store_page_size=100)
    pages = connector.pull("calls", None, until=T0)
    first = [next(pages), next(pages), next(pages)]  # then the run is stopped
    del pages  # the run stops here
    state = first[-1].state
    assert state["resume"] and state["cursor"]["modified_at"].startswith("2024-03-02T12:00:00")
    rest = pull(org.connector(page_size=200), "calls", state, T0)
    assert (
        "SystemModstamp >= 2024-03-02T12:00:00Z AND (SystemModstamp > 2024-03-02T12:00:00Z OR Id > "
        f"'{state['cursor']['crm_id']}')" in org.org.soql_log[-1]
    )
    seen = [r.crm_id for p in first for r in p.records] + [r.crm_id for r in rest.records]
    assert len(seen) == len(set(seen)) == 500


def test_incremental_reads_changes_and_deletes_and_a_quiet_run_costs_ten_requests(org: Org) -> None:
    fill(org)
    states: dict[str, Any] = {}
    sync_all(org.connector(), states, T0)
    later = T0 + timedelta(hours=1)
    org.clock.now = later
    aiko = org.ids["users"][0]
    new_call = org.org.create(
        "Task",
        {
            "TaskSubtype": "Call",
            "Type": "Call",
            "Status": "Completed",
            "CallType": "Outbound",
            "CallDisposition": "Connected",
            "CallDurationInSeconds": 61,
            "CompletedDateTime": later - timedelta(minutes=5),
            "OwnerId": aiko,
            "WhoId": org.ids["contacts"][0],
        },
        created_at=later - timedelta(minutes=5),
    )
    changed = org.ids["calls"][6]
    org.org.update("Task", changed, {"CallDurationInSeconds": 59})
    gone = org.ids["opportunities"][2]
    org.org.delete("Opportunity", gone)
    connector = org.connector()
    before = len(org.org.request_log)
    out = sync_all(connector, states, later)
    calls = out["calls"].by_id()
    assert set(calls) == {new_call, changed}
    assert calls[changed].duration_ms == 59_000  # type: ignore[attr-defined]
    # On an incremental run the Contact is looked up (one query, in a composite request).
    assert calls[new_call].contact_crm_id == org.ids["leads"][0]  # type: ignore[attr-defined]
    assert any(f"ConvertedContactId IN ('{org.ids['contacts'][0]}')" in q for q in org.org.soql_log)
    assert out["opportunities"].by_id()[gone].deleted
    # The lower bound is closed and looks back ten minutes before the last run's start.
    opportunity_query = [q for q in org.org.soql_log if "FROM Opportunity" in q][-1]
    assert "SystemModstamp >= 2024-03-04T08:50:00Z" in opportunity_query
    # 13 queries and the describe, and the look-ups: the new call's Contact, and the lead of
    # the deleted opportunity.
    assert len(org.org.request_log) - before == connector.api_calls == 15

    # The next run reads those again (they are in the lookback window before the last run's
    # start; stored again, unchanged). Then nothing changed: one describe and one query per
    # stream (two for emails).
    again = sync_all(org.connector(), states, later + timedelta(minutes=30))
    assert set(again["calls"].by_id()) == {new_call, changed}
    quiet = org.connector()
    out = sync_all(quiet, states, later + timedelta(hours=1))
    assert quiet.api_calls == 13
    assert sum(len(out[s].records) for s in STREAMS[2:]) == 0


def test_the_lookback_catches_a_row_committed_late_and_drops_ones_already_read(org: Org) -> None:
    fill(org)
    states: dict[str, Any] = {}
    sync_all(org.connector(), states, T0)
    # Written with a SystemModstamp just before the last run's start, committed after it.
    late = org.org.create(
        "Lead",
        {"LastName": "Late", "Company": "Slow Commit", "Status": "x"},
        created_at=T0 - timedelta(minutes=3),
        modified_at=T0 - timedelta(minutes=3),
    )
    org.org.update(
        "Lead",
        org.ids["leads"][3],
        {"Status": "Closed - Not Converted"},
        modified_at=T0 - timedelta(minutes=1),
    )
    states2 = dict(states)
    out = pull(org.connector(), "leads", states2["leads"], T0 + timedelta(hours=1))
    assert set(out.by_id()) == {late, org.ids["leads"][3]}
    again = pull(org.connector(), "leads", out.state, T0 + timedelta(hours=1, minutes=5))
    assert again.records == []  # re-read in the lookback window, already stored


def test_email_opens_that_arrive_later_are_picked_up_from_the_email_message(org: Org) -> None:
    fill(org)
    states: dict[str, Any] = {}
    sync_all(org.connector(), states, T0)
    later = T0 + timedelta(hours=2)
    org.clock.now = later
    untracked_task = org.ids["emails"][2]  # tracked and bounced; now: opened and replied
    org.org.update(
        "EmailMessage",
        org.ids["messages"][2],
        {"IsBounced": False, "FirstOpenedDate": later - timedelta(minutes=20), "HasReply": True},
    )
    out = pull(org.connector(), "emails", states["emails"], later)
    email = out.by_id()[untracked_task]
    assert isinstance(email, Email)
    assert (email.opened, email.replied, email.sent, email.clicked) == (True, True, True, False)
    assert out.state["phase"] == "tasks"


def test_missing_custom_fields_and_objects_are_left_empty_not_failed(ca: trustme.CA) -> None:
    o = serve(ca)
    try:
        fill(o)
        for name in ("BANT_Budget__c", "Handoff_Rating__c"):
            o.org.drop_field("Opportunity", name)
        o.org.drop_field("Event", "Meeting_Outcome__c")
        o.org.drop_object("EmailMessage")
        connector = o.connector()
        out = sync_all(connector, {}, T0)
        won = out["opportunities"].by_id()[o.ids["opportunities"][0]]
        assert isinstance(won, Deal)
        assert (won.bant_budget, won.handoff_rating, won.bant_authority) == (None, None, "CTO")
        assert {m.outcome for m in out["meetings"].records} == {None}  # type: ignore[attr-defined]
        assert {(e.tracked, e.opened) for e in out["emails"].records} == {(False, None)}  # type: ignore[attr-defined]
        assert not any("BANT_Budget__c" in q or "EmailMessage" in q for q in o.org.soql_log)
        assert all(not p.rejected for p in out.values())
    finally:
        o.running.stop()


# --- auth -----------------------------------------------------------------------------------


def test_an_expired_token_mid_sync_is_refreshed_once_and_the_sync_goes_on(org: Org) -> None:
    fill(org, calls=450)
    oauth = org.oauth(rotate=True)
    kept: list[str] = []
    clean = sync_all(org.connector(page_size=200), {}, T0)
    connector = org.connector(oauth=oauth, page_size=200, on_refresh_token=kept.append)
    org.org.faults.expire_sessions_after = 4
    out = sync_all(connector, {}, T0)
    assert connector.token_refreshes == 2  # the first token, then one refresh mid-sync
    assert org.org.apps[oauth.client_id].refreshes == 2
    for stream in STREAMS:
        assert out[stream].by_id() == clean[stream].by_id(), stream
    # Rotation: the connected app issued a new refresh token each time; the latest is kept.
    assert len(kept) == 2 and connector.refresh_token == kept[-1] != REFRESH_TOKEN
    assert org.org.apps[oauth.client_id].refresh_token == kept[-1]
    token_posts = [p for m, p in org.org.request_log if p == "/services/oauth2/token"]
    assert len(token_posts) == 2


def test_a_refused_refresh_token_is_a_clear_auth_error_without_secrets(org: Org) -> None:
    oauth = org.oauth()
    org.org.apps[oauth.client_id].refresh_token = "revoked"
    connector = org.connector(oauth=oauth)
    with pytest.raises(AuthError) as error:
        pull(connector, "roles", None, T0)
    message = str(error.value)
    assert "invalid_grant" in message and "ISKPI_SALESFORCE_REFRESH_TOKEN" in message
    assert REFRESH_TOKEN not in message and CLIENT_SECRET not in message


def test_with_only_a_session_an_expired_one_stops_with_a_resumable_state(org: Org) -> None:
    fill(org, calls=450)
    session = org.org.issue_session()
    connector = org.connector(session_id=session, page_size=200, store_page_size=100)
    pages = []
    # The describe, the first query page and its WhoId look-up succeed; then it expires.
    org.org.faults.expire_sessions_after = 3
    with pytest.raises(AuthError) as error:
        for page in connector.pull("calls", None, until=T0):
            pages.append(page)
    message = str(error.value)
    assert "INVALID_SESSION_ID" in message and "ISKPI_SALESFORCE_SESSION_ID" in message
    assert session not in message
    assert len(pages) == 2 and pages[-1].state["resume"] is True
    rest = pull(org.connector(page_size=200), "calls", pages[-1].state, T0)
    ids = [r.crm_id for p in pages for r in p.records] + [r.crm_id for r in rest.records]
    assert len(ids) == len(set(ids)) == 450


# --- quota ------------------------------------------------------------------------------------


def test_the_quota_guard_stops_at_the_runs_share_and_the_next_run_resumes(ca: trustme.CA) -> None:
    o = serve(ca, daily_api_limit=200)
    try:
        fill(o, calls=900)
        o.org.daily_api_used = 168  # 32 left: this run may use 25% of them, 8 requests
        connector = o.connector(page_size=200, store_page_size=200)
        states: dict[str, Any] = {}
        with pytest.raises(QuotaExhausted) as error:
            for spec in connector.streams:
                for page in connector.pull(spec.name, states.get(spec.name), until=T0):
                    states[spec.name] = page.state
        assert connector.api_calls == 8 and o.org.daily_api_used == 176
        message = str(error.value)
        assert "quota guard" in message and "25%" in message and "32 daily API" in message
        assert "calls" in states and states["calls"]["resume"] is True  # stopped mid-pass
        o.org.daily_api_used = 0  # a new day
        resumed = o.connector(page_size=200)
        sync_all(resumed, states, T0)
        clean = o.connector(page_size=200)
        # The resumed run did only what was left: fewer requests than a clean full sync.
        before = clean.api_calls
        sync_all(clean, {}, T0)
        assert resumed.api_calls < clean.api_calls - before
    finally:
        o.running.stop()


def test_the_quota_guard_asks_limits_when_the_header_is_missing(ca: trustme.CA) -> None:
    o = serve(ca, daily_api_limit=100)
    try:
        fill(o)
        o.org.faults.omit_limit_header = True
        o.org.daily_api_used = 84  # 16 left: a budget of 4
        connector = o.connector()
        with pytest.raises(QuotaExhausted):
            sync_all(connector, {}, T0)
        assert ("GET", "/services/data/v59.0/limits/") in o.org.request_log
        assert connector.api_calls == 4
    finally:
        o.running.stop()


def test_request_limit_exceeded_stops_cleanly_as_quota(org: Org) -> None:
    fill(org)
    org.org.faults.request_limit_exceeded = True
    with pytest.raises(QuotaExhausted, match="REQUEST_LIMIT_EXCEEDED"):
        pull(org.connector(), "leads", None, T0)


# --- failures -------------------------------------------------------------------------------


def test_server_errors_and_timeouts_are_retried_with_backoff(org: Org) -> None:
    fill(org)
    clean = sync_all(org.connector(), {}, T0)
    org.org.faults.server_error_every = 3
    connector = org.connector()
    out = sync_all(connector, {}, T0)
    assert {s: out[s].by_id() for s in STREAMS} == {s: clean[s].by_id() for s in STREAMS}
    assert org.sleeps and all(0 < s <= 30 for s in org.sleeps)
    org.org.faults.server_error_every = None
    org.org.faults.delay_seconds, org.org.faults.delay_every = 1.0, 2
    slow = org.connector(timeout=0.3)
    assert pull(slow, "leads", None, T0).by_id() == clean["leads"].by_id()
    assert slow.api_calls > 2  # the timed-out request was sent again
    org.org.faults.delay_seconds = 0.0
    org.org.faults.server_error_burst = 10
    with pytest.raises(TransientError, match="HTTP 503 after 4 attempts"):
        pull(org.connector(max_retries=3), "leads", None, T0)


def test_an_expired_query_locator_restarts_the_query_from_the_cursor(org: Org) -> None:
    fill(org, calls=450)
    connector = org.connector(page_size=200)
    pages = connector.pull("calls", None, until=T0)
    first = next(pages)
    org.org.faults.expire_query_locators = True
    second = next(pages)  # nextRecordsUrl fails: the query is sent again from the cursor
    org.org.faults.expire_query_locators = False
    rest = list(pages)
    ids = [r.crm_id for p in [first, second, *rest] for r in p.records]
    assert len(ids) == len(set(ids)) == 450


def test_malformed_records_are_quarantined_with_the_reason(org: Org) -> None:
    fill(org)
    bad_lead, bad_event = org.ids["leads"][4], org.ids["meetings"][1]
    org.org.faults.malformed[("Lead", bad_lead)] = {"CreatedDate": "last tuesday"}
    org.org.faults.malformed[("Lead", org.ids["leads"][5])] = {"NumberOfEmployees": "many"}
    org.org.update("Event", bad_event, {"Meeting_Outcome__c": "Postponed"})
    connector = org.connector()
    leads = pull(connector, "leads", None, T0)
    reasons = {r.crm_id: r.reason for r in leads.rejected}
    assert "CreatedDate" in reasons[bad_lead] and "last tuesday" in reasons[bad_lead]
    assert "NumberOfEmployees" in reasons[org.ids["leads"][5]]
    assert len(leads.records) == 10
    meetings = pull(connector, "meetings", None, T0)
    assert [r.crm_id for r in meetings.rejected] == [bad_event]
    assert "Postponed" in meetings.rejected[0].reason
    assert meetings.rejected[0].payload["Meeting_Outcome__c"] == "Postponed"


# --- Bulk API 2.0 -----------------------------------------------------------------------------


def test_a_large_first_sync_goes_through_a_bulk_job_and_resumes_within_it(org: Org) -> None:
    fill(org, calls=700)
    rest = pull(org.connector(), "calls", None, T0).by_id()
    connector = org.connector(bulk_threshold=500, bulk_page_size=300, store_page_size=100)
    pages = connector.pull("calls", None, until=T0)
    taken = [next(pages) for _ in range(4)]  # 3 pages of the first result set, 1 of the next
    del pages  # the run stops here
    state = taken[-1].state
    assert state["mode"] == "bulk" and state["locator"] and state["offset"] == 100
    bulk_queries = [q for q in org.org.soql_log if "ORDER BY" not in q and "FROM Task" in q]
    assert len(bulk_queries) == 1 and "SystemModstamp <= 2024-03-04T09:00:00Z" in bulk_queries[0]
    assert ("POST", "/services/data/v59.0/jobs/query") in org.org.request_log
    resumed = org.connector(bulk_threshold=500, bulk_page_size=300, store_page_size=100)
    rest_of_it = pull(resumed, "calls", state, T0)
    got = {r.crm_id: r for p in taken for r in p.records} | rest_of_it.by_id()
    assert len([r for p in taken for r in p.records]) + len(rest_of_it.records) == 700
    assert got == rest  # the same normalized records as the REST path
    assert rest_of_it.state["mode"] == "incremental"
    assert rest_of_it.state["cursor"]["modified_at"].startswith("2024-03-04T09:00:00")
    assert len([1 for m, p in org.org.request_log if m == "POST" and p.endswith("jobs/query")]) == 1


# --- TLS --------------------------------------------------------------------------------------


def test_tls_is_verified_and_requests_ca_bundle_is_honoured(
    org: Org, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    fill(org)
    oauth = org.oauth()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", org.ca_bundle)
    trusting = SalesforceConnector(org.url, oauth=oauth, sleep=lambda _: None)
    assert len(pull(trusting, "leads", None, T0).records) == 12
    assert trusting.token_refreshes == 1  # the token endpoint was verified with it too
    other = trustme.CA()
    bundle = tmp_path / "other.pem"
    other.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    distrusting = SalesforceConnector(
        org.url, session_id=org.org.issue_session(), sleep=lambda _: None
    )
    with pytest.raises(AuthError, match="TLS verification"):
        pull(distrusting, "leads", None, T0)


def test_a_mapping_file_changes_fields_values_and_filters(org: Org, tmp_path: Any) -> None:
    fill(org)
    org.org.add_field("Lead", FieldSpec("Lead_Score__c", "double", custom=True))
    org.org.update("Lead", org.ids["leads"][0], {"Lead_Score__c": 87.5})
    path = tmp_path / "mapping.toml"
    path.write_text(
        '[salesforce.fields.lead]\nscore = "Lead_Score__c"\n'
        '[salesforce.values.call_disposition]\n"Busy" = "no_answer"\n'
        "[salesforce.values]\ncall_types = []\n"
    )
    connector = org.connector(mapping=load_mapping(path))
    leads = pull(connector, "leads", None, T0).by_id()
    assert leads[org.ids["leads"][0]].score == 87.5  # type: ignore[attr-defined]
    calls = pull(connector, "calls", None, T0)
    assert org.ids["calls"][1] not in calls.by_id()  # Type Call no longer makes a call
    assert calls.by_id()[org.ids["calls"][3]].outcome == "no_answer"  # type: ignore[attr-defined]
    assert any("WHERE TaskSubtype IN ('Call') AND SystemModstamp" in q for q in org.org.soql_log)


def test_states_are_json(org: Org) -> None:
    fill(org)
    states: dict[str, Any] = {}
    sync_all(org.connector(), states, T0)
    for state in states.values():
        assert json.loads(json.dumps(state)) == state
    assert states["users"] == {"mode": "listing", "ids": sorted(org.ids["users"])}


def test_unknown_stream_and_bad_settings_are_refused(org: Org) -> None:
    with pytest.raises(ValueError, match="unknown Salesforce stream"):
        list(org.connector().pull("owners", None, until=T0))
    with pytest.raises(AuthError, match="ISKPI_SALESFORCE_SESSION_ID"):
        SalesforceConnector(org.url)
    with pytest.raises(ValueError, match="page_size"):
        org.connector(page_size=5000)
    assert T0.tzinfo is UTC and isinstance(Pulled([]), Pulled)
