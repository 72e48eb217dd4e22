"""Field and value mappings from CRM payloads to normalized records (docs/sync.md), as data.

A mapping has one part per source (``hubspot``, ``salesforce``), each with:

``fields``
    per record kind (``lead``, ``call``, ``email``, ``meeting``, ``task``, ``deal``; Salesforce
    also ``rep``, ``team`` and ``email_message``): normalized field → the CRM field (HubSpot
    property, Salesforce field) it is read from. ``modified_at`` names the CRM's last-modified
    field, which the incremental cursor follows.
``associations``
    per record kind: normalized reference field → the object type it is associated with
    (HubSpot only; Salesforce references are plain fields such as ``WhoId``).
``writeback``
    where KPI targets are written back (docs/writeback.md): per grain (``month``), KPI key → the
    destination ``"Object.Field"`` (or a list of them; ``""`` writes nothing), plus options.
``values``
    named value maps (CRM value → normalized value; looked up case-insensitively) and
    value sets (CRM values with one meaning, e.g. the email statuses that are not "sent").

The defaults below are docs/sync.md. ``ISKPI_MAPPING_FILE`` names a TOML file merged over them
by :func:`load_mapping`; any field name or value map can be overridden:

.. code-block:: toml

    # iskpi mapping overrides (ISKPI_MAPPING_FILE)

    [hubspot.fields.deal]
    rep_crm_id = "inside_sales_rep"       # the deal property holding the IS rep's owner id
    handoff_rating = "handoff_score"

    [hubspot.fields.lead]
    channel = "lead_channel"

    [hubspot.associations.meeting]
    deal_crm_id = "deals"

    [hubspot.values.call_disposition]     # merged into the default map: adds or changes entries
    "0d2e7a4c-5b1e-4f0e-9a53-3c1c2f0f6b11" = "connected"   # a custom "Demo booked" outcome

    [hubspot.values.meeting_outcome]
    DEMO_HELD = "completed"

    [hubspot.values]
    email_not_sent = ["BOUNCED", "FAILED"]  # a value set replaces the default list
    call_outbound = ["OUTBOUND", "OUTBOUND_DIALER"]
    call_lists = ["123", "October calling"]   # contact lists by listId or name

    [salesforce.fields.deal]
    rep_crm_id = "Inside_Sales_Rep__c"    # the Opportunity lookup holding the IS rep
    pipeline = "RecordTypeId"             # unmapped by default

    [salesforce.fields.lead]
    score = "Lead_Score__c"

    [salesforce.values.call_disposition]
    "Reached - Demo Booked" = "connected"

    [salesforce.values.deal_type]
    "Upsell" = "existing"                 # a custom Opportunity Type
    "Partner - New*" = "new"              # a trailing * matches every value starting so

    [salesforce.values]
    call_types = ["Call", "Outbound Call"]
    call_lists = ["Q4 Tokyo calling", "701A000000abcdEIAQ"]   # campaigns by Name or Id

    [salesforce.writeback.month]
    calls = "IS_Target_Calls__c"          # a field of User (the default object)
    valid_meetings = "User.IS_Target_Valid_Meetings__c"   # a KPI the defaults do not write
    meetings_set = ""                     # not written back
    won_amount = ["User.IS_Target_Won_Amount__c", "ForecastingQuota.QuotaAmount"]

    [salesforce.writeback]
    forecasting_type = "OpportunityRevenue"   # the ForecastingType (DeveloperName) of quotas

    [hubspot.writeback.month]
    won_amount = "iskpi_target_revenue"   # a property of the users object

Rules: a field or association override replaces that one entry; a value map table is
merged entry by entry into the default map (to neutralize a default entry, map it to
another value); a value set (a TOML array) replaces the default set. Normalized values
are checked (call outcomes, meeting outcomes, company-size buckets). Any key the defaults
do not have — an unknown source, section, record kind, field or value map — is an error
naming the key, so a typo never silently falls back to a default. A ``writeback`` entry
replaces that KPI's destinations; any KPI key may be added (the service checks it is in the
catalog). Destination objects: Salesforce ``User`` (the rep's user record) and
``ForecastingQuota`` (the rep's quota for the period, fields ``QuotaAmount`` or
``QuotaQuantity``, created when missing); HubSpot ``users`` (the users-object record of the
owner's user; properties missing there are created in the group ``property_group``, default
``iskpi``). Only the ``month`` grain is written back.

HubSpot value maps and sets: ``call_disposition`` (disposition id → call outcome),
``call_status`` (hs_call_status → call outcome, used when there is no known disposition),
``meeting_outcome`` (hs_meeting_outcome → meeting outcome), ``company_size`` (numemployees
range → company-size bucket), ``email_not_sent`` (hs_email_status values that are not
sent), ``call_outbound`` and ``email_outbound`` (direction values that are outbound),
``deal_type`` (dealtype → ``new`` or ``existing``; another value leaves it unknown).
``list_processing_types`` (the contact lists synced as call lists, by ``processingType``:
MANUAL and SNAPSHOT) and ``call_lists`` (list ids or names: when set, exactly these lists are
synced, whatever their processing type).

Salesforce value maps: ``call_disposition`` (CallDisposition label → call outcome),
``meeting_outcome`` (Meeting_Outcome__c label → meeting outcome), ``task_status`` (Task
Status → the follow-up status vocabulary HubSpot uses; unlisted statuses pass unchanged),
``deal_type`` (Opportunity Type → ``new`` or ``existing``; ``"Existing Customer*"`` matches
every type starting so; another value leaves it unknown).
Value sets: ``call_outbound`` (CallType values that are outbound), ``call_subtypes`` and
``call_types`` (a Task is a call when its TaskSubtype or its Type is listed; a call is never
a follow-up), ``email_subtypes``, ``task_subtypes``, ``user_types`` (User.UserType values
synced as reps), the Id key prefixes ``deal_id_prefixes``, ``lead_id_prefixes`` and
``contact_id_prefixes``, ``campaign_types`` (the Campaign Types synced as call lists:
Telemarketing) and ``call_lists`` (Campaign Ids or Names: when set, exactly these campaigns
are synced, whatever their Type). A Salesforce field mapped to ``""`` is not read; the connector also
leaves empty any mapped field the org does not have (it describes the objects first).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from connectors.base import FieldRef
from connectors.records import CALL_OUTCOMES, COMPANY_SIZES, DEAL_TYPES, MEETING_OUTCOMES

T = TypeVar("T")
SOURCES: tuple[str, ...] = ("hubspot", "salesforce")
SECTIONS: tuple[str, ...] = ("fields", "associations", "values", "writeback")
WRITEBACK_GRAINS: tuple[str, ...] = ("month",)


class MappingError(ValueError):
    """The mapping file cannot be used; the message names the offending key."""


@dataclass(frozen=True)
class SourceMapping:
    """One CRM's part of the mapping: field names, associations, value maps and value sets."""

    fields: dict[str, dict[str, str]] = field(default_factory=dict)
    associations: dict[str, dict[str, str]] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    sets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # grain → KPI key → destinations ("Object.Field"); an empty tuple writes nothing.
    writeback: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    writeback_options: dict[str, str] = field(default_factory=dict)

    def destinations(self, grain: str = "month") -> dict[str, list[FieldRef]]:
        """KPI key → the fields its targets of ``grain`` are written to (KPIs written only)."""
        out: dict[str, list[FieldRef]] = {}
        for kpi, targets in self.writeback.get(grain, {}).items():
            refs = []
            for target in targets:
                crm_object, _, name = target.partition(".")
                refs.append(FieldRef(crm_object, name))
            if refs:
                out[kpi] = refs
        return out

    def crm_field(self, kind: str, name: str) -> str:
        """The CRM field a normalized field of a record kind is read from."""
        return self.fields[kind][name]

    def properties(self, kind: str) -> list[str]:
        """Every CRM field a record kind needs, in a stable order, without duplicates."""
        return sorted(set(self.fields.get(kind, {}).values()))

    def value(self, name: str, raw: str | None) -> str | None:
        """Look a CRM value up in a value map (case-insensitively); None when absent.

        A key ending in ``*`` matches the values that start with the rest of it, when no key
        matches exactly (the longest such key wins).
        """
        if raw is None:
            return None
        wanted = raw.strip().casefold()
        prefixed: list[tuple[str, str]] = []
        for key, normalized in self.values[name].items():
            folded = key.casefold()
            if folded == wanted:
                return normalized
            if folded.endswith("*"):
                prefixed.append((folded[:-1], normalized))
        for prefix, normalized in sorted(prefixed, key=lambda item: -len(item[0])):
            if wanted.startswith(prefix):
                return normalized
        return None

    def contains(self, name: str, raw: str | None) -> bool:
        """Whether a CRM value is in a value set (case-insensitively)."""
        if raw is None:
            return False
        wanted = raw.strip().casefold()
        return any(item.casefold() == wanted for item in self.sets[name])


@dataclass(frozen=True)
class Mapping:
    """The field and value mappings of every source."""

    sources: dict[str, SourceMapping]

    @property
    def hubspot(self) -> SourceMapping:
        return self.sources["hubspot"]

    @property
    def salesforce(self) -> SourceMapping:
        return self.sources["salesforce"]


# --- HubSpot (CRM v3 object properties) -------------------------------------------------

HUBSPOT_FIELDS: dict[str, dict[str, str]] = {
    "lead": {  # contacts
        "created_at": "createdate",
        "channel": "hs_analytics_source",
        "industry": "industry",
        "company_size": "numemployees",
        "status": "lifecyclestage",
        "sql_at": "hs_lifecyclestage_salesqualifiedlead_date",
        "score": "hubspotscore",
        "rep_crm_id": "hubspot_owner_id",
        # The ids merged into this contact (";"-separated): their activities follow it.
        "merged_crm_ids": "hs_merged_object_ids",
        "modified_at": "lastmodifieddate",
    },
    "call": {
        "occurred_at": "hs_timestamp",
        "direction": "hs_call_direction",
        "outcome": "hs_call_disposition",
        "outcome_status": "hs_call_status",  # the fallback when there is no known disposition
        "duration_ms": "hs_call_duration",
        "rep_crm_id": "hubspot_owner_id",
        "modified_at": "hs_lastmodifieddate",
    },
    "email": {
        "sent_at": "hs_timestamp",
        "direction": "hs_email_direction",
        "status": "hs_email_status",
        "opened": "hs_email_open_count",  # its presence also means the email is tracked
        "clicked": "hs_email_click_count",
        "replied": "hs_email_reply_count",
        "rep_crm_id": "hubspot_owner_id",
        "modified_at": "hs_lastmodifieddate",
    },
    "meeting": {
        "booked_at": "hs_createdate",
        "start_at": "hs_meeting_start_time",
        "outcome": "hs_meeting_outcome",
        "rep_crm_id": "hubspot_owner_id",
        "modified_at": "hs_lastmodifieddate",
    },
    "task": {
        "due_at": "hs_timestamp",
        "status": "hs_task_status",
        "completed_at": "hs_task_completion_date",
        "rep_crm_id": "hubspot_owner_id",
        "modified_at": "hs_lastmodifieddate",
    },
    "deal": {
        "created_at": "createdate",
        "closed_at": "closedate",
        "amount": "amount",
        "stage": "dealstage",
        "pipeline": "pipeline",
        "is_closed": "hs_is_closed",
        "is_won": "hs_is_closed_won",
        "owner_crm_id": "hubspot_owner_id",  # field sales
        "rep_crm_id": "is_rep_owner_id",  # the IS rep
        "bant_budget": "bant_budget",
        "bant_authority": "bant_authority",
        "bant_need": "bant_need",
        "bant_timing": "bant_timing",
        "handoff_rating": "handoff_rating",
        "lead_source": "hs_analytics_source",
        "deal_type": "dealtype",  # through the ``deal_type`` value map
        "modified_at": "hs_lastmodifieddate",
    },
}

HUBSPOT_ASSOCIATIONS: dict[str, dict[str, str]] = {
    "lead": {},
    "call": {"contact_crm_id": "contacts"},
    "email": {"contact_crm_id": "contacts"},
    "meeting": {"contact_crm_id": "contacts", "deal_crm_id": "deals"},
    "task": {"contact_crm_id": "contacts"},
    "deal": {"contact_crm_id": "contacts"},
}

HUBSPOT_VALUES: dict[str, dict[str, str]] = {
    # HubSpot's default call outcomes (disposition ids).
    "call_disposition": {
        "f240bbac-87c9-4f6e-bf70-924b57d47db7": "connected",
        "73a0d17f-1163-4015-bdd5-ec830791da20": "no_answer",
        "b2cf5968-551e-4856-9783-52b3da59a7d0": "voicemail",
        "a4c4c377-d246-4b32-a13b-75a56a4cd0ff": "live_message",
        "17b47fee-58de-441e-a44c-c6300d46f273": "wrong_number",
        "9d9162e7-6cf3-4944-bf63-4dff82258764": "busy",
    },
    "call_status": {
        "BUSY": "busy",
        "NO_ANSWER": "no_answer",
        "FAILED": "failed",
        "CANCELED": "failed",
    },
    "meeting_outcome": {
        "SCHEDULED": "scheduled",
        "COMPLETED": "completed",
        "RESCHEDULED": "rescheduled",
        "NO_SHOW": "no_show",
        "CANCELED": "canceled",
    },
    # numemployees is an enumeration of ranges, bucketed by its lower bound.
    "company_size": {
        "1-5": "1-9",
        "5-25": "1-9",
        "25-50": "10-49",
        "50-100": "50-249",
        "100-500": "50-249",
        "500-1000": "250-999",
        "1000+": "1000+",
    },
    # dealtype's default options; another value leaves the deal's type unknown.
    "deal_type": {
        "newbusiness": "new",
        "existingbusiness": "existing",
    },
}

HUBSPOT_SETS: dict[str, tuple[str, ...]] = {
    "email_not_sent": ("BOUNCED", "FAILED", "SCHEDULED", "SENDING"),
    "call_outbound": ("OUTBOUND",),
    "email_outbound": ("EMAIL",),
    # Contact lists synced as call lists: these processing types (DYNAMIC lists are segments,
    # not lists to work), unless ``call_lists`` names the lists (by list id or name).
    "list_processing_types": ("MANUAL", "SNAPSHOT"),
    "call_lists": (),
}

# Write-back (docs/writeback.md): the rep's user record. HubSpot: the users object (0-115) behind the
# owner's userId, properties created in the group below when missing.
HUBSPOT_WRITEBACK: dict[str, dict[str, tuple[str, ...]]] = {
    "month": {
        "calls": ("users.iskpi_target_calls",),
        "meetings_set": ("users.iskpi_target_meetings",),
        "won_amount": ("users.iskpi_target_won_amount",),
    },
}
HUBSPOT_WRITEBACK_OPTIONS: dict[str, str] = {"property_group": "iskpi"}
HUBSPOT_WRITEBACK_OBJECTS: dict[str, str] = {"users": "users", "user": "users", "0-115": "users"}

# --- Salesforce (SObject fields, REST/Bulk API field names) ------------------------------
# Salesforce references are plain fields (WhoId, WhatId, OwnerId), so there are no
# associations. An empty field name means "not mapped by default" (a mapping file may point
# it at a field the org has, e.g. a lead score). The connector describes each object first
# and leaves a mapped field empty when the org does not have it, instead of failing the query.

SALESFORCE_FIELDS: dict[str, dict[str, str]] = {
    "team": {  # UserRole
        "name": "Name",
        "modified_at": "SystemModstamp",
    },
    "rep": {  # User
        "name": "Name",
        "email": "Email",
        "team_crm_id": "UserRoleId",
        "manager_crm_id": "ManagerId",
        "active": "IsActive",
        "user_type": "UserType",  # only the user types in the ``user_types`` set are reps
        "crm_created_at": "CreatedDate",
        "modified_at": "SystemModstamp",
    },
    "lead": {  # Lead
        "created_at": "CreatedDate",
        "channel": "LeadSource",
        "industry": "Industry",
        "company_size": "NumberOfEmployees",  # a number, bucketed into the company sizes
        "status": "Status",
        "is_converted": "IsConverted",
        "sql_at": "ConvertedDate",  # a date: the day the lead was converted
        "score": "",
        "rep_crm_id": "OwnerId",
        "converted_contact": "ConvertedContactId",  # activities on this contact reach the lead
        "converted_deal": "ConvertedOpportunityId",  # the opportunity the lead became
        "modified_at": "SystemModstamp",
    },
    "call": {  # Task with TaskSubtype in ``call_subtypes`` or Type in ``call_types``
        "occurred_at": "CompletedDateTime",
        "created_at": "CreatedDate",  # occurred at when the call has no completion time
        "direction": "CallType",
        "outcome": "CallDisposition",
        "duration_seconds": "CallDurationInSeconds",
        "rep_crm_id": "OwnerId",
        "contact_crm_id": "WhoId",
        "subtype": "TaskSubtype",
        "type": "Type",
        "modified_at": "SystemModstamp",
    },
    "email": {  # Task with TaskSubtype in ``email_subtypes``
        "sent_at": "CompletedDateTime",
        "created_at": "CreatedDate",  # sent at when the task has no completion time
        "rep_crm_id": "OwnerId",
        "contact_crm_id": "WhoId",
        "subtype": "TaskSubtype",
        "type": "Type",
        "modified_at": "SystemModstamp",
    },
    "email_message": {  # EmailMessage, joined to its email Task by ActivityId
        "activity": "ActivityId",
        "tracked": "IsTracked",
        "opened": "FirstOpenedDate",
        "clicked": "FirstLinkClickedDate",
        "replied": "HasReply",
        "bounced": "IsBounced",
        "modified_at": "SystemModstamp",
    },
    "meeting": {  # Event
        "booked_at": "CreatedDate",
        "start_at": "StartDateTime",
        "outcome": "Meeting_Outcome__c",
        "rep_crm_id": "OwnerId",
        "contact_crm_id": "WhoId",
        "deal_crm_id": "WhatId",  # kept when it is an opportunity (``deal_id_prefixes``)
        "modified_at": "SystemModstamp",
    },
    "task": {  # Task with TaskSubtype in ``task_subtypes`` that is not a call
        "due_at": "ActivityDate",  # a date: the task is due that day
        "status": "Status",
        "is_closed": "IsClosed",
        "completed_at": "CompletedDateTime",
        "rep_crm_id": "OwnerId",
        "contact_crm_id": "WhoId",
        "subtype": "TaskSubtype",
        "type": "Type",
        "modified_at": "SystemModstamp",
    },
    "deal": {  # Opportunity
        "created_at": "CreatedDate",
        "closed_at": "CloseDate",  # a date
        "amount": "Amount",
        "stage": "StageName",
        "pipeline": "",
        "is_closed": "IsClosed",
        "is_won": "IsWon",
        "probability": "Probability",  # a percentage: divided by 100
        "owner_crm_id": "OwnerId",  # field sales
        "rep_crm_id": "IS_Rep__c",  # the IS rep (a User lookup)
        "bant_budget": "BANT_Budget__c",
        "bant_authority": "BANT_Authority__c",
        "bant_need": "BANT_Need__c",
        "bant_timing": "BANT_Timing__c",
        "handoff_rating": "Handoff_Rating__c",
        "lead_source": "LeadSource",
        "contact_crm_id": "ContactId",  # the primary contact, when no lead was converted into it
        "deal_type": "Type",  # through the ``deal_type`` value map
        "modified_at": "SystemModstamp",
    },
    "call_list": {  # Campaign of a Type in ``campaign_types`` (or named in ``call_lists``)
        "name": "Name",
        "list_kind": "Type",
        "modified_at": "SystemModstamp",
    },
    "call_list_member": {  # CampaignMember of such a campaign
        "list_crm_id": "CampaignId",
        "lead_crm_id": "LeadId",
        "contact_crm_id": "ContactId",  # mapped to the Lead converted into it, like a WhoId
        "added_at": "CreatedDate",
        "modified_at": "SystemModstamp",
    },
}
SALESFORCE_ASSOCIATIONS: dict[str, dict[str, str]] = {}

SALESFORCE_VALUES: dict[str, dict[str, str]] = {
    # Task.CallDisposition is free text; these labels are looked up case-insensitively.
    "call_disposition": {
        "Connected": "connected",
        "No Answer": "no_answer",
        "Left Voicemail": "voicemail",
        "Left Message": "live_message",
        "Wrong Number": "wrong_number",
        "Busy": "busy",
        "Failed": "failed",
    },
    # Event.Meeting_Outcome__c picklist labels.
    "meeting_outcome": {
        "Scheduled": "scheduled",
        "Completed": "completed",
        "Rescheduled": "rescheduled",
        "No Show": "no_show",
        "No-Show": "no_show",
        "Canceled": "canceled",
        "Cancelled": "canceled",
    },
    # The default Task Status picklist, in the follow-up status vocabulary both CRMs share
    # (HubSpot's hs_task_status); a status not listed here is kept as Salesforce has it.
    "task_status": {
        "Not Started": "NOT_STARTED",
        "In Progress": "IN_PROGRESS",
        "Completed": "COMPLETED",
        "Waiting on someone else": "WAITING",
        "Deferred": "DEFERRED",
    },
    # Opportunity Type's default picklist: "New Customer", "Existing Customer - Upgrade", ...
    # (a key ending in ``*`` matches every value that starts with the rest of it).
    "deal_type": {
        "New Customer": "new",
        "Existing Customer*": "existing",
    },
}

SALESFORCE_SETS: dict[str, tuple[str, ...]] = {
    "call_outbound": ("Outbound",),  # CallType values that are outbound
    "call_subtypes": ("Call",),  # TaskSubtype values of calls
    "call_types": ("Call",),  # Type values of calls (as CTI apps log them)
    "email_subtypes": ("Email", "ListEmail"),
    "task_subtypes": ("Task",),
    "user_types": ("Standard",),  # User.UserType values synced as reps
    "deal_id_prefixes": ("006",),  # key prefix of Opportunity ids (for Event.WhatId)
    "lead_id_prefixes": ("00Q",),  # key prefix of Lead ids (WhoId)
    "contact_id_prefixes": ("003",),  # key prefix of Contact ids (WhoId, mapped to the lead)
    # Campaigns synced as call lists: these Types, unless ``call_lists`` names the campaigns
    # (by Id or Name).
    "campaign_types": ("Telemarketing",),
    "call_lists": (),
}

# Write-back: custom fields on User; ForecastingQuota (the standard quota object, one record
# per owner, period and forecasting type) only when the mapping file adds it.
SALESFORCE_WRITEBACK: dict[str, dict[str, tuple[str, ...]]] = {
    "month": {
        "calls": ("User.IS_Target_Calls__c",),
        "meetings_set": ("User.IS_Target_Meetings__c",),
        "won_amount": ("User.IS_Target_Won_Amount__c",),
    },
}
SALESFORCE_WRITEBACK_OPTIONS: dict[str, str] = {"forecasting_type": "OpportunityRevenue"}
SALESFORCE_WRITEBACK_OBJECTS: dict[str, str] = {
    "user": "User",
    "forecastingquota": "ForecastingQuota",
}
QUOTA_FIELDS: tuple[str, ...] = ("QuotaAmount", "QuotaQuantity")

# The normalized values a value map may produce; maps not listed here are free-form.
VALUE_DOMAINS: dict[str, tuple[str, ...]] = {
    "call_disposition": CALL_OUTCOMES,
    "call_status": CALL_OUTCOMES,
    "meeting_outcome": MEETING_OUTCOMES,
    "company_size": COMPANY_SIZES,
    "deal_type": DEAL_TYPES,
}


def default_mapping() -> Mapping:
    """The docs/sync.md defaults (a fresh copy: callers may not share mutable state)."""

    def copy_nested(table: dict[str, dict[str, T]]) -> dict[str, dict[str, T]]:
        return {key: dict(inner) for key, inner in table.items()}

    return Mapping(
        sources={
            "hubspot": SourceMapping(
                fields=copy_nested(HUBSPOT_FIELDS),
                associations=copy_nested(HUBSPOT_ASSOCIATIONS),
                values=copy_nested(HUBSPOT_VALUES),
                sets=dict(HUBSPOT_SETS),
                writeback=copy_nested(HUBSPOT_WRITEBACK),
                writeback_options=dict(HUBSPOT_WRITEBACK_OPTIONS),
            ),
            "salesforce": SourceMapping(
                fields=copy_nested(SALESFORCE_FIELDS),
                associations=copy_nested(SALESFORCE_ASSOCIATIONS),
                values=copy_nested(SALESFORCE_VALUES),
                sets=dict(SALESFORCE_SETS),
                writeback=copy_nested(SALESFORCE_WRITEBACK),
                writeback_options=dict(SALESFORCE_WRITEBACK_OPTIONS),
            ),
        }
    )


def _known(key: str, options: Any) -> str:
    names = sorted(options)
    return f"unknown key {key!r} (known: {', '.join(names) if names else 'none yet'})"


def _table(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MappingError(f"{key!r} must be a table, got {type(value).__name__}")
    return value


def _merge_names(
    defaults: dict[str, dict[str, str]], overrides: dict[str, Any], key: str
) -> dict[str, dict[str, str]]:
    merged = {kind: dict(names) for kind, names in defaults.items()}
    for kind, names in overrides.items():
        kind_key = f"{key}.{kind}"
        if kind not in defaults:
            raise MappingError(_known(kind_key, defaults))
        for name, crm_name in _table(names, kind_key).items():
            name_key = f"{kind_key}.{name}"
            if name not in defaults[kind]:
                raise MappingError(_known(name_key, defaults[kind]))
            if not isinstance(crm_name, str) or not crm_name.strip():
                raise MappingError(f"{name_key!r} must be a non-empty string")
            merged[kind][name] = crm_name.strip()
    return merged


def _merge_values(
    base: SourceMapping, overrides: dict[str, Any], key: str
) -> tuple[dict[str, dict[str, str]], dict[str, tuple[str, ...]]]:
    values = {name: dict(table) for name, table in base.values.items()}
    sets = dict(base.sets)
    for name, override in overrides.items():
        name_key = f"{key}.{name}"
        if name in base.values:
            domain = VALUE_DOMAINS.get(name)
            for crm_value, normalized in _table(override, name_key).items():
                entry_key = f"{name_key}.{crm_value}"
                if not isinstance(normalized, str):
                    raise MappingError(f"{entry_key!r} must be a string")
                if domain is not None and normalized not in domain:
                    raise MappingError(
                        f"{entry_key!r}: {normalized!r} is not one of {', '.join(domain)}"
                    )
                # Replace an entry that differs only in case rather than keep both.
                for existing in [k for k in values[name] if k.casefold() == crm_value.casefold()]:
                    del values[name][existing]
                values[name][crm_value] = normalized
        elif name in base.sets:
            if not isinstance(override, list) or not all(isinstance(v, str) for v in override):
                raise MappingError(f"{name_key!r} must be a list of strings")
            sets[name] = tuple(override)
        else:
            raise MappingError(_known(name_key, [*base.values, *base.sets]))
    return values, sets


_KPI_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_CRM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _destination(source: str, raw: Any, key: str) -> str:
    """One ``"Object.Field"`` destination, the object checked and spelled canonically."""
    if not isinstance(raw, str) or not raw.strip():
        raise MappingError(f'{key!r}: a destination is a non-empty "Object.Field" string')
    text = raw.strip()
    objects = HUBSPOT_WRITEBACK_OBJECTS if source == "hubspot" else SALESFORCE_WRITEBACK_OBJECTS
    default_object = "users" if source == "hubspot" else "User"
    crm_object, dot, name = text.partition(".")
    if not dot:
        crm_object, name = default_object, text
    canonical = objects.get(crm_object.lower())
    if canonical is None:
        known = sorted(set(objects.values()))
        raise MappingError(
            f"{key!r}: {crm_object!r} is not an object targets can be written to on {source} "
            f"(one of {', '.join(known)}: the record that belongs to the rep's user)"
        )
    if not _CRM_NAME.match(name):
        raise MappingError(f"{key!r}: {name!r} is not a field name")
    if canonical == "ForecastingQuota" and name not in QUOTA_FIELDS:
        raise MappingError(f"{key!r}: ForecastingQuota takes {' or '.join(QUOTA_FIELDS)}")
    return f"{canonical}.{name}"


def _merge_writeback(
    source: str, base: SourceMapping, overrides: dict[str, Any], key: str
) -> tuple[dict[str, dict[str, tuple[str, ...]]], dict[str, str]]:
    writeback = {grain: dict(kpis) for grain, kpis in base.writeback.items()}
    options = dict(base.writeback_options)
    for name, value in overrides.items():
        name_key = f"{key}.{name}"
        if name in base.writeback_options:
            if not isinstance(value, str) or not value.strip():
                raise MappingError(f"{name_key!r} must be a non-empty string")
            options[name] = value.strip()
            continue
        if name not in WRITEBACK_GRAINS:
            raise MappingError(
                _known(name_key, [*WRITEBACK_GRAINS, *base.writeback_options])
                + " (only month targets are written back)"
            )
        grain = writeback.setdefault(name, {})
        for kpi, targets in _table(value, name_key).items():
            kpi_key = f"{name_key}.{kpi}"
            if not _KPI_KEY.match(kpi):
                raise MappingError(f"{kpi_key!r}: not a KPI key")
            raw = targets if isinstance(targets, list) else [targets]
            if raw in ([""], []):
                grain[kpi] = ()
                continue
            chosen = [_destination(source, item, kpi_key) for item in raw]
            grain[kpi] = tuple(dict.fromkeys(chosen))
    return writeback, options


def merge_mapping(base: Mapping, overrides: dict[str, Any]) -> Mapping:
    """A new mapping: ``overrides`` (the parsed TOML document) merged over ``base``."""
    sources = dict(base.sources)
    for source, parts in overrides.items():
        if source not in base.sources:
            raise MappingError(_known(source, base.sources))
        current = base.sources[source]
        fields, associations = current.fields, current.associations
        values, sets = current.values, current.sets
        writeback, writeback_options = current.writeback, current.writeback_options
        for section, table in _table(parts, source).items():
            key = f"{source}.{section}"
            table = _table(table, key)
            if section == "fields":
                fields = _merge_names(current.fields, table, key)
            elif section == "associations":
                associations = _merge_names(current.associations, table, key)
            elif section == "values":
                values, sets = _merge_values(current, table, key)
            elif section == "writeback":
                writeback, writeback_options = _merge_writeback(source, current, table, key)
            else:
                raise MappingError(_known(key, SECTIONS))
        sources[source] = SourceMapping(
            fields=fields,
            associations=associations,
            values=values,
            sets=sets,
            writeback=writeback,
            writeback_options=writeback_options,
        )
    return Mapping(sources=sources)


def load_mapping(path: Path | None) -> Mapping:
    """The default mapping, with the TOML file at ``path`` (ISKPI_MAPPING_FILE) merged over it."""
    mapping = default_mapping()
    if path is None:
        return mapping
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise MappingError(f"mapping file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"mapping file {str(path)!r} is not valid TOML: {exc}") from None
    try:
        return merge_mapping(mapping, document)
    except MappingError as exc:
        raise MappingError(f"mapping file {str(path)!r}: {exc}") from None
