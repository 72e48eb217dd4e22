"""Shared pieces of the Salesforce tests: a test CA, the simulated org over HTTPS, a small org.

Imported by the Salesforce, fault and hostile-payload tests; a test module that needs the
fixtures ``ca`` or ``org`` imports them by name. The org's clock is fixed by each test, so
SystemModstamps and ``until`` are exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import trustme

from connectors.base import Page
from connectors.records import Record, Rejected
from connectors.salesforce import OAuthApp, SalesforceConnector
from simulators.salesforce.org import RunningOrg, SalesforceOrg, serve_org

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
OLD = T0 - timedelta(days=2)
CLIENT_ID = "3MVG9test.client.id"
CLIENT_SECRET = "test-client-secret-0123456789"
REFRESH_TOKEN = "5Aep861test.refresh.token.ABCDEFG"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@dataclass
class Org:
    """A served org, its clock, and what tests remember about the records they made."""

    running: RunningOrg
    clock: Clock
    sleeps: list[float] = field(default_factory=list)
    ids: dict[str, list[str]] = field(default_factory=dict)  # name → ids, in creation order

    @property
    def org(self) -> SalesforceOrg:
        return self.running.org

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def ca_bundle(self) -> str:
        return str(self.running.ca_bundle)

    def connector(self, *, session_id: str | None = None, **options: Any) -> SalesforceConnector:
        options.setdefault("sleep", self.sleeps.append)
        options.setdefault("verify", self.ca_bundle)
        if session_id is None and "oauth" not in options:
            session_id = self.org.issue_session()
        return SalesforceConnector(self.url, session_id=session_id, **options)

    def oauth(self, *, rotate: bool = False) -> OAuthApp:
        self.org.add_connected_app(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, rotate=rotate)
        return OAuthApp(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, login_url=self.url)


def serve(ca: trustme.CA, clock: Clock | None = None, **options: Any) -> Org:
    clock = clock or Clock(T0)
    org = SalesforceOrg(clock=clock, **options)
    return Org(serve_org(org, tls=ca), clock)


@pytest.fixture
def org(ca: trustme.CA) -> Iterator[Org]:
    served = serve(ca)
    try:
        yield served
    finally:
        served.running.stop()


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

    @property
    def missing(self) -> list[str]:
        return [i for page in self.pages for i in page.missing_crm_ids]

    def by_id(self) -> dict[str, Record]:
        return {r.crm_id: r for r in self.records}


def pull(
    connector: SalesforceConnector, stream: str, state: dict[str, Any] | None, until: datetime
) -> Pulled:
    return Pulled(list(connector.pull(stream, state, until=until)))


def sync_all(
    connector: SalesforceConnector, states: dict[str, dict[str, Any] | None], until: datetime
) -> dict[str, Pulled]:
    out = {}
    for spec in connector.streams:
        out[spec.name] = pulled = pull(connector, spec.name, states.get(spec.name), until)
        states[spec.name] = pulled.state
    return out


def fill(o: Org, *, calls: int = 30) -> None:
    """A small org: 2 roles, 3 users (one deactivated, one not a rep), leads (one converted),
    calls (one CTI-logged, one deleted), emails with tracking, events, follow-ups, opportunities."""
    org = o.org
    east = org.create("UserRole", {"Name": "IS East"}, created_at=OLD, modified_at=OLD)
    field_role = org.create("UserRole", {"Name": "Field Sales"}, created_at=OLD, modified_at=OLD)
    aiko = org.create(
        "User",
        {
            "FirstName": "Aiko",
            "LastName": "Tanaka",
            "Email": "aiko@example.jp",
            "Username": "aiko@example.jp.demo",
            "IsActive": True,
            "UserType": "Standard",
            "UserRoleId": east,
        },
        created_at=OLD,
        modified_at=OLD,
    )
    kenji = org.create(
        "User",
        {
            "FirstName": "Kenji",
            "LastName": "Sato",
            "Email": "kenji@example.jp",
            "Username": "kenji@example.jp.demo",
            "IsActive": True,
            "UserType": "Standard",
            "UserRoleId": field_role,
            "ManagerId": aiko,
        },
        created_at=OLD,
        modified_at=OLD,
    )
    gone = org.create(
        "User",
        {
            "FirstName": "Haruto",
            "LastName": "Ito",
            "Email": "haruto@example.jp",
            "Username": "haruto@example.jp.demo",
            "IsActive": False,
            "UserType": "Standard",
            "UserRoleId": east,
        },
        created_at=OLD,
        modified_at=OLD,
    )
    org.create(
        "User",
        {
            "LastName": "Automated Process",
            "Email": "auto@example.com",
            "Username": "auto@example.com",
            "IsActive": True,
            "UserType": "AutomatedProcess",
        },
        created_at=OLD,
        modified_at=OLD,
    )
    o.ids["users"] = [aiko, kenji, gone]
    o.ids["roles"] = [east, field_role]
    account = org.create(
        "Account", {"Name": "Aozora Systems", "OwnerId": aiko}, created_at=OLD, modified_at=OLD
    )
    contact = org.create(
        "Contact",
        {"FirstName": "Mio", "LastName": "Mori", "AccountId": account, "OwnerId": aiko},
        created_at=OLD + timedelta(hours=5),
        modified_at=OLD + timedelta(hours=5),
    )
    leads = []
    for i in range(12):
        leads.append(
            org.create(
                "Lead",
                {
                    "FirstName": f"Lead{i}",
                    "LastName": "Kimura",
                    "Company": f"Company {i}",
                    "LeadSource": ("Web", "Partner Referral")[i % 2],
                    "Industry": "Technology",
                    "NumberOfEmployees": (3, 30, 120, 600, 5000, None)[i % 6],
                    "Status": "Working - Contacted",
                    "OwnerId": aiko,
                },
                created_at=OLD + timedelta(minutes=i),
                modified_at=OLD + timedelta(minutes=i),
            )
        )
    o.ids["leads"] = leads
    converted = leads[0]
    opp = org.create(
        "Opportunity",
        {
            "Name": "Aozora - Cloud CRM",
            "StageName": "Closed Won",
            "Amount": 1500000.0,
            "CloseDate": date(2024, 3, 1),
            "OwnerId": kenji,
            "IS_Rep__c": aiko,
            "BANT_Budget__c": "Approved",
            "BANT_Authority__c": "CTO",
            "BANT_Need__c": "Pipeline",
            "BANT_Timing__c": "This quarter",
            "Handoff_Rating__c": 4.0,
            "LeadSource": "Web",
            "ContactId": contact,
            "AccountId": account,
        },
        created_at=OLD + timedelta(hours=6),
        modified_at=OLD + timedelta(hours=6),
    )
    open_opp = org.create(
        "Opportunity",
        {
            "Name": "Kawa - Support Plan",
            "StageName": "Proposal/Price Quote",
            "Amount": 300000.0,
            "CloseDate": date(2024, 3, 29),
            "OwnerId": kenji,
            "IS_Rep__c": aiko,
            "BANT_Budget__c": None,
            "BANT_Need__c": "Churn",
            "LeadSource": "Partner Referral",
        },
        created_at=OLD + timedelta(hours=7),
        modified_at=OLD + timedelta(hours=7),
    )
    field_opp = org.create(
        "Opportunity",
        {
            "Name": "Field's own",
            "StageName": "Closed Lost",
            "Amount": 90000.0,
            "CloseDate": date(2024, 3, 2),
            "OwnerId": kenji,
        },
        created_at=OLD + timedelta(hours=8),
        modified_at=OLD + timedelta(hours=8),
    )
    o.ids["opportunities"] = [opp, open_opp, field_opp]
    org.update(
        "Lead",
        converted,
        {
            "IsConverted": True,
            "ConvertedDate": date(2024, 3, 2),
            "ConvertedContactId": contact,
            "ConvertedAccountId": account,
            "ConvertedOpportunityId": opp,
            "Status": "Closed - Converted",
        },
        modified_at=OLD + timedelta(hours=5),
    )
    o.ids["contacts"] = [contact]
    calls_made = []
    dispositions = ("Connected", "no answer", "Left Voicemail", "Busy", None)
    for i in range(calls):
        at = OLD + timedelta(hours=1, minutes=3 * i)
        calls_made.append(
            org.create(
                "Task",
                {
                    "Subject": "Call",
                    "TaskSubtype": "Task" if i == 1 else "Call",
                    "Type": "Call",
                    "Status": "Completed",
                    "Priority": "Normal",
                    "CallType": "Inbound" if i == 2 else "Outbound",
                    "CallDisposition": dispositions[i % 5],
                    "CallDurationInSeconds": 60 + i,
                    "CompletedDateTime": at,
                    "ActivityDate": at.date(),
                    "OwnerId": aiko,
                    "WhoId": contact if i == 3 else leads[i % len(leads)],
                },
                created_at=at,
                modified_at=at + timedelta(seconds=30),
            )
        )
    org.delete("Task", calls_made[4], at=OLD + timedelta(hours=9))
    o.ids["calls"] = calls_made
    emails, messages = [], []
    for i in range(4):
        at = OLD + timedelta(hours=2, minutes=10 * i)
        task = org.create(
            "Task",
            {
                "Subject": "Email: hello",
                "TaskSubtype": "Email",
                "Type": "Email",
                "Status": "Completed",
                "Priority": "Normal",
                "CompletedDateTime": at,
                "ActivityDate": at.date(),
                "OwnerId": aiko,
                "WhoId": leads[i],
            },
            created_at=at,
            modified_at=at,
        )
        emails.append(task)
        if i < 3:  # the fourth has no EmailMessage
            messages.append(
                org.create(
                    "EmailMessage",
                    {
                        "ActivityId": task,
                        "Subject": "hello",
                        "MessageDate": at,
                        "Status": "3",
                        "IsTracked": i != 1,
                        "IsBounced": i == 2,
                        "FirstOpenedDate": at + timedelta(minutes=30) if i == 0 else None,
                        "FirstLinkClickedDate": at + timedelta(minutes=31) if i == 0 else None,
                        "HasReply": False,
                    },
                    created_at=at,
                    modified_at=at + timedelta(minutes=31),
                )
            )
    o.ids["emails"], o.ids["messages"] = emails, messages
    events = [
        org.create(
            "Event",
            {
                "Subject": "Discovery",
                "StartDateTime": OLD + timedelta(days=1, hours=1),
                "EndDateTime": OLD + timedelta(days=1, hours=2),
                "Meeting_Outcome__c": "Completed",
                "OwnerId": aiko,
                "WhoId": contact,
                "WhatId": opp,
            },
            created_at=OLD + timedelta(hours=3),
            modified_at=OLD + timedelta(days=1, hours=3),
        ),
        org.create(
            "Event",
            {
                "Subject": "Intro",
                "StartDateTime": OLD + timedelta(days=1, hours=4),
                "Meeting_Outcome__c": "No Show",
                "OwnerId": aiko,
                "WhoId": leads[5],
                "WhatId": account,
            },
            created_at=OLD + timedelta(hours=4),
            modified_at=OLD + timedelta(hours=4),
        ),
    ]
    o.ids["meetings"] = events
    tasks = [
        org.create(
            "Task",
            {
                "Subject": "Send proposal",
                "TaskSubtype": "Task",
                "Type": "Other",
                "Status": "Completed",
                "ActivityDate": date(2024, 3, 3),
                "CompletedDateTime": OLD + timedelta(days=1, hours=2),
                "OwnerId": aiko,
                "WhoId": leads[6],
            },
            created_at=OLD,
            modified_at=OLD + timedelta(days=1, hours=2),
        ),
        org.create(
            "Task",
            {
                "Subject": "Call back",
                "TaskSubtype": "Task",
                "Type": "Other",
                "Status": "Not Started",
                "ActivityDate": date(2024, 3, 5),
                "OwnerId": aiko,
                "WhoId": contact,
            },
            created_at=OLD,
            modified_at=OLD + timedelta(hours=1),
        ),
        org.create(
            "Task",
            {
                "Subject": "No due date",
                "TaskSubtype": "Task",
                "Status": "Not Started",
                "OwnerId": aiko,
            },
            created_at=OLD,
            modified_at=OLD + timedelta(hours=1),
        ),
    ]
    o.ids["tasks"] = tasks
