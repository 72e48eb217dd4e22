"""A seeded inside-sales team in Salesforce's own objects and fields (docs/sync.md), for the demo org.

The team, its leads and its activity come from the HubSpot generator (simulators/hubspot/seed.py)
with the same seed, so every distribution — volumes, connect and conversion rates, talk time,
opens, meetings, BANT, win rates, per-rep differences, Tokyo office hours — is the same; this
module writes them as an org would hold them:

- UserRole per team (and Field Sales), User per owner (a deactivated one for the rep who left,
  and an Automated Process user that is not a rep);
- Lead per contact: LeadSource, Industry, NumberOfEmployees (a number in the contact's
  company-size bucket), Status; a lead that became SQL is converted on that day, into a Contact
  (and Account) and, when a deal came of it, its Opportunity (ConvertedOpportunityId);
- Task per call (TaskSubtype Call, or TaskSubtype Task with Type Call as a CTI app logs it),
  CallType, CallDisposition labels, CallDurationInSeconds;
- Task per sent email (TaskSubtype Email) with its EmailMessage: IsTracked, FirstOpenedDate,
  FirstLinkClickedDate, HasReply, IsBounced; opens arrive after the send, so the message's
  SystemModstamp moves later than its Task's;
- Event per meeting with Meeting_Outcome__c and WhatId = the opportunity it produced;
- Task per follow-up (TaskSubtype Task, due on ActivityDate);
- Opportunity per deal: StageName, Probability, Amount, CloseDate, OwnerId (field sales),
  IS_Rep__c, BANT_*__c, Handoff_Rating__c, LeadSource, ContactId, Type (New Customer or
  Existing Customer - …, from the deal's dealtype);
- three deleted records of every object (IsDeleted, still returned by queryAll).

Activity after a lead's conversion is logged on its Contact (WhoId), as in a real org; the
connector maps it back to the lead. The same arguments always give the same dataset.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from simulators.hubspot.seed import CALL_DISPOSITIONS, generate_dataset
from simulators.hubspot.store import PortalDataset, gc_paused
from simulators.salesforce.ids import salesforce_id
from simulators.salesforce.schema import EXISTING_CUSTOMER_TYPES
from simulators.salesforce.store import OrgDataset, OrgRecord
from simulators.salesforce.wire import EPOCH

MINUTE = 60_000

LEAD_SOURCES: dict[str, str] = {
    "ORGANIC_SEARCH": "Organic Search",
    "PAID_SEARCH": "Paid Search",
    "EMAIL_MARKETING": "Email Campaign",
    "SOCIAL_MEDIA": "Social Media",
    "REFERRALS": "Partner Referral",
    "OTHER_CAMPAIGNS": "Webinar",
    "DIRECT_TRAFFIC": "Web",
    "OFFLINE": "Trade Show",
}
INDUSTRIES: dict[str, str] = {
    "COMPUTER_SOFTWARE": "Technology",
    "INFORMATION_TECHNOLOGY_AND_SERVICES": "Consulting",
    "MARKETING_AND_ADVERTISING": "Media",
    "FINANCIAL_SERVICES": "Finance",
    "HOSPITAL_HEALTH_CARE": "Healthcare",
    "LOGISTICS_AND_SUPPLY_CHAIN": "Transportation",
    "REAL_ESTATE": "Real Estate",
    "RETAIL": "Retail",
    "MACHINERY": "Machinery",
    "STAFFING_AND_RECRUITING": "Recruiting",
    "CONSTRUCTION": "Construction",
    "EDUCATION_MANAGEMENT": "Education",
}
# HubSpot's numemployees ranges → the NumberOfEmployees range drawn from (same size bucket).
EMPLOYEES: dict[str, tuple[int, int]] = {
    "1-5": (1, 9),
    "5-25": (1, 9),
    "25-50": (10, 49),
    "50-100": (50, 249),
    "100-500": (50, 249),
    "500-1000": (250, 999),
    "1000+": (1000, 20_000),
}
DISPOSITION_LABELS: dict[str, str] = {
    CALL_DISPOSITIONS["connected"]: "Connected",
    CALL_DISPOSITIONS["no_answer"]: "No Answer",
    CALL_DISPOSITIONS["voicemail"]: "Left Voicemail",
    CALL_DISPOSITIONS["live_message"]: "Left Message",
    CALL_DISPOSITIONS["wrong_number"]: "Wrong Number",
    CALL_DISPOSITIONS["busy"]: "Busy",
}
STATUS_LABELS: dict[str, str] = {"BUSY": "Busy", "NO_ANSWER": "No Answer", "FAILED": "Failed"}
MEETING_OUTCOMES: dict[str, str] = {
    "SCHEDULED": "Scheduled",
    "COMPLETED": "Completed",
    "RESCHEDULED": "Rescheduled",
    "NO_SHOW": "No Show",
    "CANCELED": "Canceled",
}
TASK_STATUSES: dict[str, str] = {
    "NOT_STARTED": "Not Started",
    "IN_PROGRESS": "In Progress",
    "COMPLETED": "Completed",
    "WAITING": "Waiting on someone else",
    "DEFERRED": "Deferred",
}
# HubSpot deal stage → (StageName, Probability %).
STAGES: dict[str, tuple[str, float]] = {
    "appointmentscheduled": ("Qualification", 20.0),
    "qualifiedtobuy": ("Needs Analysis", 40.0),
    "presentationscheduled": ("Value Proposition", 60.0),
    "decisionmakerboughtin": ("Id. Decision Makers", 80.0),
    "contractsent": ("Negotiation/Review", 90.0),
    "closedwon": ("Closed Won", 100.0),
    "closedlost": ("Closed Lost", 0.0),
}
CONVERTED_STAGES = frozenset({"salesqualifiedlead", "opportunity", "customer"})


def _day(ms: int) -> date:
    return (EPOCH + timedelta(milliseconds=ms)).date()


class _Ids:
    def __init__(self) -> None:
        self.serials: Counter[str] = Counter()

    def next(self, prefix: str) -> str:
        self.serials[prefix] += 1
        return salesforce_id(prefix, self.serials[prefix])


def generate_org_dataset(
    *,
    seed: int = 8,
    teams: int = 3,
    reps_per_team: int = 4,
    months: int = 6,
    end: datetime | None = None,
    calls_per_rep_day: float = 60.0,
    total_calls: int | None = None,
) -> OrgDataset:
    """A deterministic demo org: the HubSpot generator's team, written as Salesforce records."""
    portal = generate_dataset(
        seed=seed,
        teams=teams,
        reps_per_team=reps_per_team,
        months=months,
        end=end,
        calls_per_rep_day=calls_per_rep_day,
        total_calls=total_calls,
    )
    with gc_paused():
        return _Translator(portal, random.Random(seed * 7919 + 1)).run()


def _opportunity_type(dealtype: object, deal_id: int) -> str | None:
    """The Opportunity Type of a deal's dealtype (the kind of existing business by its id)."""
    if dealtype == "newbusiness":
        return "New Customer"
    if dealtype == "existingbusiness":
        return EXISTING_CUSTOMER_TYPES[deal_id % len(EXISTING_CUSTOMER_TYPES)]
    return None


class _Translator:
    """Turns a generated HubSpot portal into the records of an org."""

    def __init__(self, portal: PortalDataset, rng: random.Random) -> None:
        self.portal = portal
        self.rng = rng
        self.ids = _Ids()
        self.out = OrgDataset(seed=portal.seed, start=portal.start, end=portal.end)
        self.user: dict[str, str] = {}  # HubSpot owner id → User Id
        self.lead: dict[int, str] = {}  # contact id → Lead Id
        self.contact: dict[int, tuple[str, int]] = {}  # contact id → (Contact Id, converted ms)
        self.opportunity: dict[int, str] = {}  # deal id → Opportunity Id
        self.accounts: dict[int, str] = {}  # contact id → Account Id (converted leads)
        self.first_deal: dict[int, int] = {}  # contact id → its first IS deal
        self.end_ms = int((portal.end - EPOCH) / timedelta(milliseconds=1))

    def add(
        self,
        sobject: str,
        prefix: str,
        fields: dict[str, Any],
        created: int,
        modified: int,
        deleted: int | None = None,
        record_id: str | None = None,
    ) -> str:
        record_id = record_id or self.ids.next(prefix)
        self.out.records.append(
            OrgRecord(sobject, record_id, fields, created, max(created, modified), deleted)
        )
        return record_id

    def run(self) -> OrgDataset:
        self.users()
        self.conversions()
        self.leads()
        self.opportunities()
        self.calls()
        self.emails()
        self.meetings()
        self.follow_ups()
        self.campaigns()
        # Load order: parents first; within an object, Id order.
        order = [
            "UserRole",
            "User",
            "Account",
            "Contact",
            "Lead",
            "Opportunity",
            "Task",
            "Event",
            "EmailMessage",
            "Campaign",
            "CampaignMember",
        ]
        self.out.records.sort(key=lambda r: (order.index(r.sobject), r.id[:15]))
        return self.out

    # -- users and roles --------------------------------------------------------------------

    def users(self) -> None:
        role_ids: dict[str, str] = {}
        oldest = min(
            int((o.created_at - EPOCH) / timedelta(milliseconds=1)) for o in self.portal.owners
        )
        for owner in self.portal.owners:
            for team_id, team_name, primary in owner.teams:
                if primary and team_id not in role_ids:
                    role_ids[team_id] = self.add(
                        "UserRole",
                        "00E",
                        {"Name": team_name, "DeveloperName": team_name.replace(" ", "_")},
                        oldest,
                        oldest,
                    )
        self.add(
            "User",
            "005",
            {
                "FirstName": None,
                "LastName": "Automated Process",
                "Email": "autoproc@example.com",
                "Username": "autoproc@iskpi-demo.example.com",
                "IsActive": True,
                "UserType": "AutomatedProcess",
            },
            oldest,
            oldest,
        )
        for owner in self.portal.owners:
            created = int((owner.created_at - EPOCH) / timedelta(milliseconds=1))
            team = next((t for t, _, p in owner.teams if p), None)
            self.user[owner.id] = self.add(
                "User",
                "005",
                {
                    "FirstName": owner.first_name,
                    "LastName": owner.last_name,
                    "Email": owner.email,
                    "Username": owner.email + ".demo",
                    "IsActive": not owner.archived,
                    "UserType": "Standard",
                    "UserRoleId": role_ids.get(team) if team else None,
                },
                created,
                created,
            )

    # -- leads, conversions -------------------------------------------------------------------

    def conversions(self) -> None:
        """Leads that became SQL are converted that day: an Account and a Contact each."""
        table = self.portal.objects["contacts"]
        stage = table.columns["lifecyclestage"]
        sql = table.columns["hs_lifecyclestage_salesqualifiedlead_date"]
        owner = table.columns["hubspot_owner_id"]
        for i, contact_id in enumerate(table.ids):
            converted = sql[i]
            if stage[i] not in CONVERTED_STAGES or not isinstance(converted, int):
                continue
            user = self.user.get(str(owner[i]))
            account = self.add(
                "Account",
                "001",
                {
                    "Name": table.columns["company"][i],
                    "OwnerId": user,
                    "Industry": INDUSTRIES.get(str(table.columns["industry"][i])),
                },
                converted,
                converted,
            )
            contact = self.add(
                "Contact",
                "003",
                {
                    "FirstName": table.columns["firstname"][i],
                    "LastName": table.columns["lastname"][i],
                    "Email": table.columns["email"][i],
                    "AccountId": account,
                    "OwnerId": user,
                },
                converted,
                converted,
            )
            self.contact[contact_id] = (contact, converted)
            self.accounts[contact_id] = account
            self.lead[contact_id] = self.ids.next("00Q")

    def leads(self) -> None:
        table = self.portal.objects["contacts"]
        cols = table.columns
        deals = self.portal.objects["deals"]
        for i, deal_id in enumerate(deals.ids):
            contact_id = deals.associations["contacts"][i]
            if deals.columns["is_rep_owner_id"][i] and contact_id not in self.first_deal:
                self.first_deal[contact_id] = deal_id
        for i, contact_id in enumerate(table.ids):
            converted = self.contact.get(contact_id)
            size = cols["numemployees"][i]
            low, high = EMPLOYEES.get(str(size), (0, 0))
            fields: dict[str, Any] = {
                "FirstName": cols["firstname"][i],
                "LastName": cols["lastname"][i],
                "Company": cols["company"][i],
                "Email": cols["email"][i],
                "LeadSource": LEAD_SOURCES.get(str(cols["hs_analytics_source"][i])),
                "Industry": INDUSTRIES.get(str(cols["industry"][i]))
                if cols["industry"][i]
                else None,
                "NumberOfEmployees": self.rng.randint(low, high) if size else None,
                "OwnerId": self.user.get(str(cols["hubspot_owner_id"][i])),
                "Status": "Open - Not Contacted",
            }
            if converted is not None:
                contact, at = converted
                fields.update(
                    {
                        "Status": "Closed - Converted",
                        "IsConverted": True,
                        "ConvertedDate": _day(at),
                        "ConvertedContactId": contact,
                        "ConvertedAccountId": self.accounts[contact_id],
                    }
                )
            elif cols["lifecyclestage"][i] == "lead":
                fields["Status"] = "Working - Contacted"
            archived = table.archived_ms.get(i)
            lead_id = self.lead.get(contact_id) or self.ids.next("00Q")
            self.lead[contact_id] = lead_id
            self.add(
                "Lead",
                "00Q",
                fields,
                table.created_ms[i],
                table.modified_ms[i],
                archived,
                record_id=lead_id,
            )

    def campaigns(self) -> None:
        """The portal's call lists as Telemarketing campaigns, and one webinar that is not one.

        A member added after its lead was converted is the Contact (ContactId only), as a
        campaign member added from a contact is; before that, the Lead.
        """
        owner = next(iter(self.user.values()), None)
        for generated in self.portal.lists:
            campaign = self.add(
                "Campaign",
                "701",
                {
                    "Name": generated.name,
                    "Type": "Telemarketing",
                    "Status": "In Progress",
                    "IsActive": True,
                    "StartDate": _day(generated.created_ms),
                    "OwnerId": owner,
                },
                generated.created_ms,
                generated.created_ms,
            )
            for contact_id, added in sorted(generated.members.items(), key=lambda m: (m[1], m[0])):
                who = self.who(contact_id, added)
                if who is None:
                    continue
                field = "ContactId" if who.startswith("003") else "LeadId"
                self.add(
                    "CampaignMember",
                    "00v",
                    {
                        "CampaignId": campaign,
                        field: who,
                        "LeadOrContactId": who,
                        "Status": "Sent",
                        "HasResponded": False,
                    },
                    added,
                    added,
                )
        webinar = self.add(
            "Campaign",
            "701",
            {"Name": "Product webinar", "Type": "Webinar", "IsActive": True, "OwnerId": owner},
            self.end_ms - 30 * 86_400_000,
            self.end_ms - 30 * 86_400_000,
        )
        for lead_id in list(self.lead.values())[:5]:
            self.add(
                "CampaignMember",
                "00v",
                {"CampaignId": webinar, "LeadId": lead_id, "LeadOrContactId": lead_id},
                self.end_ms - 29 * 86_400_000,
                self.end_ms - 29 * 86_400_000,
            )

    def who(self, contact_id: int, at: int) -> str | None:
        """The WhoId of an activity: the Contact once the lead is converted, else the Lead."""
        if not contact_id:
            return None
        converted = self.contact.get(contact_id)
        if converted is not None and at >= converted[1]:
            return converted[0]
        return self.lead.get(contact_id)

    # -- opportunities ------------------------------------------------------------------------

    def opportunities(self) -> None:
        deals = self.portal.objects["deals"]
        cols = deals.columns
        contacts = self.portal.objects["contacts"]
        source_of = dict(zip(contacts.ids, contacts.columns["hs_analytics_source"], strict=True))
        converted_into: dict[str, str] = {}
        for i, deal_id in enumerate(deals.ids):
            contact_id = deals.associations["contacts"][i]
            stage, probability = STAGES[str(cols["dealstage"][i])]
            close = cols["closedate"][i]
            rating = cols["handoff_rating"][i]
            fields: dict[str, Any] = {
                "Name": cols["dealname"][i],
                "StageName": stage,
                "Probability": probability,
                "Amount": float(str(cols["amount"][i])) if cols["amount"][i] else None,
                "CloseDate": _day(close) if isinstance(close, int) else None,
                "OwnerId": self.user.get(str(cols["hubspot_owner_id"][i])),
                "IS_Rep__c": self.user.get(str(cols["is_rep_owner_id"][i]))
                if cols["is_rep_owner_id"][i]
                else None,
                "LeadSource": LEAD_SOURCES.get(str(source_of.get(contact_id))),
                "ContactId": self.contact[contact_id][0] if contact_id in self.contact else None,
                "AccountId": self.accounts.get(contact_id),
                "Handoff_Rating__c": float(str(rating)) if rating else None,
                "Type": _opportunity_type(cols["dealtype"][i], deal_id)
                if "dealtype" in cols
                else None,
            }
            for name in ("bant_budget", "bant_authority", "bant_need", "bant_timing"):
                value = cols[name][i]
                fields["BANT_" + name[5:].title() + "__c"] = value or None
            opportunity = self.add(
                "Opportunity",
                "006",
                fields,
                deals.created_ms[i],
                deals.modified_ms[i],
                deals.archived_ms.get(i),
            )
            self.opportunity[deal_id] = opportunity
            if self.first_deal.get(contact_id) == deal_id:
                converted_into[self.lead[contact_id]] = opportunity
        # The lead converted into the opportunity its first IS deal became.
        for n, record in enumerate(self.out.records):
            if (
                record.sobject == "Lead"
                and record.id in converted_into
                and record.fields.get("IsConverted")
            ):
                fields = dict(record.fields, ConvertedOpportunityId=converted_into[record.id])
                self.out.records[n] = OrgRecord(
                    record.sobject,
                    record.id,
                    fields,
                    record.created_ms,
                    record.modified_ms,
                    record.deleted_ms,
                )

    # -- activities ---------------------------------------------------------------------------

    def calls(self) -> None:
        table = self.portal.objects["calls"]
        cols = table.columns
        contacts = table.associations["contacts"]
        for i in range(len(table.ids)):
            at = int(str(cols["hs_timestamp"][i]))
            direction = cols["hs_call_direction"][i]
            disposition = cols["hs_call_disposition"][i]
            label = (
                DISPOSITION_LABELS.get(str(disposition))
                if disposition
                else STATUS_LABELS.get(str(cols["hs_call_status"][i]))
            )
            cti = self.rng.random() < 0.1  # logged by a CTI app: TaskSubtype Task, Type Call
            self.add(
                "Task",
                "00T",
                {
                    "Subject": cols["hs_call_title"][i],
                    "TaskSubtype": "Task" if cti else "Call",
                    "Type": "Call",
                    "Status": "Completed",
                    "Priority": "Normal",
                    "CallType": {"OUTBOUND": "Outbound", "INBOUND": "Inbound"}.get(str(direction)),
                    "CallDisposition": label,
                    "CallDurationInSeconds": int(str(cols["hs_call_duration"][i])) // 1000,
                    "CompletedDateTime": at,
                    "ActivityDate": _day(at),
                    "OwnerId": self.user.get(str(cols["hubspot_owner_id"][i])),
                    "WhoId": self.who(contacts[i], at),
                },
                table.created_ms[i],
                table.modified_ms[i],
                table.archived_ms.get(i),
            )

    def emails(self) -> None:
        table = self.portal.objects["emails"]
        cols = table.columns
        contacts = table.associations["contacts"]
        for i in range(len(table.ids)):
            if cols["hs_email_direction"][i] != "EMAIL":
                continue  # incoming mail is not an email Task here
            at = int(str(cols["hs_timestamp"][i]))
            created, modified = table.created_ms[i], table.modified_ms[i]
            archived = table.archived_ms.get(i)
            task = self.add(
                "Task",
                "00T",
                {
                    "Subject": "Email: " + str(cols["hs_email_subject"][i]),
                    "TaskSubtype": "Email",
                    "Type": "Email",
                    "Status": "Completed",
                    "Priority": "Normal",
                    "CompletedDateTime": at,
                    "ActivityDate": _day(at),
                    "OwnerId": self.user.get(str(cols["hubspot_owner_id"][i])),
                    "WhoId": self.who(contacts[i], at),
                },
                created,
                created,
                archived,
            )
            opens, clicks, replies = (
                cols["hs_email_open_count"][i],
                cols["hs_email_click_count"][i],
                cols["hs_email_reply_count"][i],
            )
            status = cols["hs_email_status"][i]
            opened = opens is not None and int(str(opens)) > 0
            first_open = min(self.end_ms - 1, at + int(self.rng.uniform(2, 600) * MINUTE))
            clicked = clicks is not None and int(str(clicks)) > 0
            if opened:  # the open (and click) is what changed the message last
                modified = min(self.end_ms - 1, max(modified, first_open + MINUTE))
            self.add(
                "EmailMessage",
                "02s",
                {
                    "ActivityId": task,
                    "Subject": cols["hs_email_subject"][i],
                    "MessageDate": at,
                    "Status": "3",
                    "Incoming": False,
                    "IsTracked": opens is not None,
                    "IsBounced": status in ("BOUNCED", "FAILED"),
                    "FirstOpenedDate": first_open if opened else None,
                    "LastOpenedDate": first_open if opened else None,
                    "FirstLinkClickedDate": min(self.end_ms - 1, first_open + MINUTE)
                    if clicked
                    else None,
                    "HasReply": replies is not None and int(str(replies)) > 0,
                },
                created,
                modified,
                archived,
            )

    def meetings(self) -> None:
        table = self.portal.objects["meetings"]
        cols = table.columns
        contacts = table.associations["contacts"]
        deals = table.associations["deals"]
        for i in range(len(table.ids)):
            booked = table.created_ms[i]
            start = cols["hs_meeting_start_time"][i]
            finish = cols["hs_meeting_end_time"][i]
            self.add(
                "Event",
                "00U",
                {
                    "Subject": cols["hs_meeting_title"][i],
                    "Type": "Meeting",
                    "StartDateTime": start,
                    "EndDateTime": finish,
                    "ActivityDateTime": start,
                    "ActivityDate": _day(start) if isinstance(start, int) else None,
                    "DurationInMinutes": (int(str(finish)) - int(str(start))) // MINUTE
                    if isinstance(start, int) and isinstance(finish, int)
                    else None,
                    "Meeting_Outcome__c": MEETING_OUTCOMES.get(str(cols["hs_meeting_outcome"][i])),
                    "OwnerId": self.user.get(str(cols["hubspot_owner_id"][i])),
                    "WhoId": self.who(contacts[i], booked),
                    "WhatId": self.opportunity.get(deals[i]) if deals[i] else None,
                },
                booked,
                table.modified_ms[i],
                table.archived_ms.get(i),
            )

    def follow_ups(self) -> None:
        table = self.portal.objects["tasks"]
        cols = table.columns
        contacts = table.associations["contacts"]
        for i in range(len(table.ids)):
            due = int(str(cols["hs_timestamp"][i]))
            status = TASK_STATUSES.get(str(cols["hs_task_status"][i]), "Not Started")
            created = table.created_ms[i]
            self.add(
                "Task",
                "00T",
                {
                    "Subject": cols["hs_task_subject"][i],
                    "TaskSubtype": "Task",
                    # A follow-up is never Type Call: that would make it a call (docs/sync.md).
                    "Type": "Email" if cols["hs_task_type"][i] == "EMAIL" else "Other",
                    "Status": status,
                    "Priority": "Normal",
                    "ActivityDate": _day(due),
                    "CompletedDateTime": cols["hs_task_completion_date"][i],
                    "OwnerId": self.user.get(str(cols["hubspot_owner_id"][i])),
                    "WhoId": self.who(contacts[i], created),
                },
                created,
                table.modified_ms[i],
                table.archived_ms.get(i),
            )
