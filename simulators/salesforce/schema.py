"""The simulated org's schema: SObjects and their fields, and how describe reports them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

FieldType = Literal[
    "id",
    "reference",
    "string",
    "picklist",
    "textarea",
    "email",
    "phone",
    "boolean",
    "datetime",
    "date",
    "int",
    "double",
    "currency",
    "percent",
]


@dataclass(frozen=True)
class FieldSpec:
    """One field of an SObject as describe reports it."""

    name: str
    type: FieldType
    label: str = ""
    reference_to: tuple[str, ...] = ()
    length: int = 0
    nillable: bool = True
    custom: bool = False
    picklist: tuple[str, ...] = ()

    @property
    def filterable(self) -> bool:
        return self.type != "textarea"


@dataclass
class SObjectSpec:
    """One SObject: its name, key prefix and fields."""

    name: str
    label: str
    key_prefix: str
    fields: list[FieldSpec]
    archivable: bool = False  # activities: archived rows only reach queryAll

    def field(self, name: str) -> FieldSpec | None:
        wanted = name.lower()
        for spec in self.fields:
            if spec.name.lower() == wanted:
                return spec
        return None


def _f(
    name: str,
    type_: FieldType,
    *,
    ref: Sequence[str] = (),
    custom: bool = False,
    nillable: bool = True,
    picklist: Sequence[str] = (),
) -> FieldSpec:
    length = {
        "id": 18,
        "reference": 18,
        "string": 255,
        "picklist": 255,
        "textarea": 32000,
        "email": 80,
        "phone": 40,
    }.get(type_, 0)
    label = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name.removesuffix("__c").replace("_", " "))
    return FieldSpec(name, type_, label, tuple(ref), length, nillable, custom, tuple(picklist))


def _system(deletable: bool = True) -> list[FieldSpec]:
    out = [_f("Id", "id", nillable=False)]
    if deletable:
        out.append(_f("IsDeleted", "boolean", nillable=False))
    out += [
        _f("CreatedDate", "datetime", nillable=False),
        _f("CreatedById", "reference", ref=("User",), nillable=False),
        _f("LastModifiedDate", "datetime", nillable=False),
        _f("SystemModstamp", "datetime", nillable=False),
    ]
    return out


TASK_SUBTYPES = ("Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn")
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
CLOSED_TASK_STATUSES = frozenset({"completed"})
# The default opportunity stages: (StageName, probability %, closed, won).
DEFAULT_STAGES: tuple[tuple[str, float, bool, bool], ...] = (
    ("Prospecting", 10.0, False, False),
    ("Qualification", 20.0, False, False),
    ("Needs Analysis", 25.0, False, False),
    ("Value Proposition", 50.0, False, False),
    ("Id. Decision Makers", 60.0, False, False),
    ("Perception Analysis", 70.0, False, False),
    ("Proposal/Price Quote", 75.0, False, False),
    ("Negotiation/Review", 90.0, False, False),
    ("Closed Won", 100.0, True, True),
    ("Closed Lost", 0.0, True, False),
)
MEETING_OUTCOMES = ("Scheduled", "Completed", "Rescheduled", "No Show", "Canceled")
# Opportunity Type's default picklist.
EXISTING_CUSTOMER_TYPES = (
    "Existing Customer - Upgrade",
    "Existing Customer - Replacement",
    "Existing Customer - Downgrade",
)
OPPORTUNITY_TYPES = ("New Customer", *EXISTING_CUSTOMER_TYPES)

# The default Campaign Type picklist.
CAMPAIGN_TYPES = (
    "Advertisement",
    "Banner Ads",
    "Conference",
    "Direct Mail",
    "Email",
    "Partners",
    "Public Relations",
    "Referral Program",
    "Telemarketing",
    "Trade Show",
    "Webinar",
    "Other",
)


def standard_schema() -> dict[str, SObjectSpec]:
    """The objects an inside-sales org has, with the custom fields of docs/sync.md and docs/writeback.md."""
    specs = [
        SObjectSpec(
            "UserRole",
            "Role",
            "00E",
            [
                _f("Id", "id", nillable=False),
                _f("Name", "string", nillable=False),
                _f("DeveloperName", "string"),
                _f("ParentRoleId", "reference", ref=("UserRole",)),
                _f("LastModifiedDate", "datetime", nillable=False),
                _f("SystemModstamp", "datetime", nillable=False),
            ],
        ),
        SObjectSpec(
            "User",
            "User",
            "005",
            [
                *_system(deletable=False),
                _f("Username", "string", nillable=False),
                _f("FirstName", "string"),
                _f("LastName", "string", nillable=False),
                _f("Name", "string", nillable=False),
                _f("Email", "email", nillable=False),
                _f("IsActive", "boolean", nillable=False),
                _f(
                    "UserType",
                    "picklist",
                    picklist=("Standard", "PowerPartner", "CsnOnly", "AutomatedProcess", "Guest"),
                ),
                _f("UserRoleId", "reference", ref=("UserRole",)),
                _f("ManagerId", "reference", ref=("User",)),
                _f("IS_Target_Calls__c", "double", custom=True),
                _f("IS_Target_Meetings__c", "double", custom=True),
                _f("IS_Target_Won_Amount__c", "currency", custom=True),
            ],
        ),
        SObjectSpec(
            "Account",
            "Account",
            "001",
            [
                *_system(),
                _f("Name", "string", nillable=False),
                _f("Industry", "picklist"),
                _f("NumberOfEmployees", "int"),
                _f("OwnerId", "reference", ref=("User",)),
            ],
        ),
        SObjectSpec(
            "Contact",
            "Contact",
            "003",
            [
                *_system(),
                _f("FirstName", "string"),
                _f("LastName", "string", nillable=False),
                _f("Name", "string", nillable=False),
                _f("Email", "email"),
                _f("AccountId", "reference", ref=("Account",)),
                _f("OwnerId", "reference", ref=("User",)),
            ],
        ),
        SObjectSpec(
            "Lead",
            "Lead",
            "00Q",
            [
                *_system(),
                _f("FirstName", "string"),
                _f("LastName", "string", nillable=False),
                _f("Name", "string", nillable=False),
                _f("Company", "string", nillable=False),
                _f("Email", "email"),
                _f("Phone", "phone"),
                _f(
                    "Status",
                    "picklist",
                    nillable=False,
                    picklist=(
                        "Open - Not Contacted",
                        "Working - Contacted",
                        "Closed - Converted",
                        "Closed - Not Converted",
                    ),
                ),
                _f("LeadSource", "picklist"),
                _f("Industry", "picklist"),
                _f("NumberOfEmployees", "int"),
                _f("OwnerId", "reference", ref=("User", "Group")),
                _f("IsConverted", "boolean", nillable=False),
                _f("ConvertedDate", "date"),
                _f("ConvertedAccountId", "reference", ref=("Account",)),
                _f("ConvertedContactId", "reference", ref=("Contact",)),
                _f("ConvertedOpportunityId", "reference", ref=("Opportunity",)),
            ],
        ),
        SObjectSpec(
            "Task",
            "Task",
            "00T",
            [
                *_system(),
                _f("IsArchived", "boolean", nillable=False),
                _f("Subject", "string"),
                _f("Status", "picklist", nillable=False, picklist=TASK_STATUSES),
                _f("Priority", "picklist", nillable=False, picklist=("High", "Normal", "Low")),
                _f("IsClosed", "boolean", nillable=False),
                _f("ActivityDate", "date"),
                _f("CompletedDateTime", "datetime"),
                _f("TaskSubtype", "picklist", picklist=TASK_SUBTYPES),
                _f("Type", "picklist", picklist=("Call", "Email", "Meeting", "Other")),
                _f("CallType", "picklist", picklist=("Internal", "Inbound", "Outbound")),
                _f("CallDisposition", "string"),
                _f("CallDurationInSeconds", "int"),
                _f("CallObject", "string"),
                _f("Description", "textarea"),
                _f("WhoId", "reference", ref=("Contact", "Lead")),
                _f("WhatId", "reference", ref=("Account", "Opportunity")),
                _f("OwnerId", "reference", ref=("User",), nillable=False),
            ],
            archivable=True,
        ),
        SObjectSpec(
            "Event",
            "Event",
            "00U",
            [
                *_system(),
                _f("IsArchived", "boolean", nillable=False),
                _f("Subject", "string"),
                _f("Type", "picklist", picklist=("Call", "Email", "Meeting", "Other")),
                _f("EventSubtype", "picklist", picklist=("Event",)),
                _f("StartDateTime", "datetime"),
                _f("EndDateTime", "datetime"),
                _f("ActivityDateTime", "datetime"),
                _f("ActivityDate", "date"),
                _f("IsAllDayEvent", "boolean", nillable=False),
                _f("DurationInMinutes", "int"),
                _f("Description", "textarea"),
                _f("WhoId", "reference", ref=("Contact", "Lead")),
                _f("WhatId", "reference", ref=("Account", "Opportunity")),
                _f("OwnerId", "reference", ref=("User",), nillable=False),
                _f("Meeting_Outcome__c", "picklist", custom=True, picklist=MEETING_OUTCOMES),
            ],
            archivable=True,
        ),
        SObjectSpec(
            "Opportunity",
            "Opportunity",
            "006",
            [
                *_system(),
                _f("Name", "string", nillable=False),
                _f("AccountId", "reference", ref=("Account",)),
                _f("ContactId", "reference", ref=("Contact",)),
                _f(
                    "StageName",
                    "picklist",
                    nillable=False,
                    picklist=tuple(s[0] for s in DEFAULT_STAGES),
                ),
                _f("Amount", "currency"),
                _f("Probability", "percent"),
                _f("CloseDate", "date", nillable=False),
                _f("Type", "picklist", picklist=OPPORTUNITY_TYPES),
                _f("LeadSource", "picklist"),
                _f("IsClosed", "boolean", nillable=False),
                _f("IsWon", "boolean", nillable=False),
                _f("ForecastCategory", "picklist"),
                _f("OwnerId", "reference", ref=("User",), nillable=False),
                _f("IS_Rep__c", "reference", ref=("User",), custom=True),
                _f("BANT_Budget__c", "string", custom=True),
                _f("BANT_Authority__c", "string", custom=True),
                _f("BANT_Need__c", "string", custom=True),
                _f("BANT_Timing__c", "string", custom=True),
                _f("Handoff_Rating__c", "double", custom=True),
            ],
        ),
        SObjectSpec(
            "EmailMessage",
            "Email Message",
            "02s",
            [
                *_system(),
                _f("ActivityId", "reference", ref=("Task",)),
                _f("ParentId", "reference", ref=("Case",)),
                _f("Subject", "string"),
                _f("FromAddress", "email"),
                _f("ToAddress", "string"),
                _f("MessageDate", "datetime"),
                _f("Status", "picklist", nillable=False, picklist=("0", "1", "2", "3", "4", "5")),
                _f("Incoming", "boolean", nillable=False),
                _f("IsTracked", "boolean", nillable=False),
                _f("IsBounced", "boolean", nillable=False),
                _f("IsClientManaged", "boolean"),
                _f("FirstOpenedDate", "datetime"),
                _f("LastOpenedDate", "datetime"),
                _f("FirstLinkClickedDate", "datetime"),
                _f("HasReply", "boolean"),
            ],
        ),
        # Campaigns (telemarketing campaigns are the org's call lists) and their members.
        SObjectSpec(
            "Campaign",
            "Campaign",
            "701",
            [
                *_system(),
                _f("Name", "string", nillable=False),
                _f("Type", "picklist", picklist=CAMPAIGN_TYPES),
                _f(
                    "Status",
                    "picklist",
                    picklist=("Planned", "In Progress", "Completed", "Aborted"),
                ),
                _f("IsActive", "boolean", nillable=False),
                _f("StartDate", "date"),
                _f("EndDate", "date"),
                _f("ParentId", "reference", ref=("Campaign",)),
                _f("OwnerId", "reference", ref=("User",), nillable=False),
            ],
        ),
        SObjectSpec(
            "CampaignMember",
            "Campaign Member",
            "00v",
            [
                *_system(),
                _f("CampaignId", "reference", ref=("Campaign",), nillable=False),
                _f("LeadId", "reference", ref=("Lead",)),
                _f("ContactId", "reference", ref=("Contact",)),
                _f("LeadOrContactId", "reference", ref=("Lead", "Contact")),
                _f("Status", "picklist", picklist=("Planned", "Sent", "Responded")),
                _f("HasResponded", "boolean", nillable=False),
                _f("FirstRespondedDate", "date"),
            ],
        ),
        # Collaborative Forecasts: a forecast type, and a quota per owner, type and period.
        SObjectSpec(
            "ForecastingType",
            "Forecasting Type",
            "0Db",
            [
                _f("Id", "id", nillable=False),
                _f("DeveloperName", "string", nillable=False),
                _f("MasterLabel", "string", nillable=False),
                _f("IsActive", "boolean", nillable=False),
                _f("IsAmount", "boolean", nillable=False),
                _f("IsQuantity", "boolean", nillable=False),
                _f("LastModifiedDate", "datetime", nillable=False),
                _f("SystemModstamp", "datetime", nillable=False),
            ],
        ),
        SObjectSpec(
            "ForecastingQuota",
            "Forecasting Quota",
            "0J9",
            [
                *_system(deletable=False),
                _f("QuotaOwnerId", "reference", ref=("User",), nillable=False),
                _f("StartDate", "date", nillable=False),
                _f("QuotaAmount", "currency"),
                _f("QuotaQuantity", "double"),
                _f("ForecastingTypeId", "reference", ref=("ForecastingType",)),
                _f("IsAmount", "boolean", nillable=False),
                _f("IsQuantity", "boolean", nillable=False),
            ],
        ),
    ]
    return {spec.name: spec for spec in specs}


# Fields the platform sets: describe reports them neither createable nor updateable.
READ_ONLY_FIELDS = frozenset(
    {
        "Id",
        "IsDeleted",
        "CreatedDate",
        "LastModifiedDate",
        "SystemModstamp",
        "CreatedById",
        "Name",
        "IsClosed",
        "IsWon",
        "IsArchived",
        "IsAmount",
        "IsQuantity",
    }
)
# Setup objects cannot share a DML call with other objects (MIXED_DML_OPERATION).
SETUP_OBJECTS = frozenset({"User", "UserRole"})
NUMBER_PRECISION, NUMBER_SCALE = 18, 2  # what describe reports for double, currency, percent


# ---------------------------------------------------------------------------------------
# Describe
# ---------------------------------------------------------------------------------------


_SOAP_TYPES: dict[str, str] = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "datetime": "xsd:dateTime",
    "date": "xsd:date",
    "int": "xsd:int",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
}


def _field_describe(spec: FieldSpec) -> dict[str, Any]:
    numeric = spec.type in ("int", "double", "currency", "percent")
    return {
        "aggregatable": spec.type != "textarea",
        "autoNumber": False,
        "byteLength": spec.length * 3,
        "calculated": False,
        "createable": spec.name
        not in (
            "Id",
            "IsDeleted",
            "CreatedDate",
            "LastModifiedDate",
            "SystemModstamp",
            "CreatedById",
            "Name",
            "IsClosed",
            "IsWon",
            "IsArchived",
        ),
        "custom": spec.custom,
        "defaultValue": None,
        "digits": 9 if spec.type == "int" else 0,
        "filterable": spec.filterable,
        "groupable": spec.type not in ("textarea", "double", "currency", "percent", "datetime"),
        "idLookup": spec.name == "Id",
        "label": spec.label or spec.name,
        "length": spec.length,
        "name": spec.name,
        "nillable": spec.nillable,
        "picklistValues": [
            {
                "active": True,
                "defaultValue": False,
                "label": value,
                "validFor": None,
                "value": value,
            }
            for value in spec.picklist
        ],
        "precision": 18 if numeric and spec.type != "int" else 0,
        "referenceTo": list(spec.reference_to),
        "relationshipName": (
            spec.name[:-2]
            if spec.type == "reference" and spec.name.endswith("Id")
            else spec.name[:-3] + "__r"
            if spec.type == "reference"
            else None
        ),
        "scale": 2 if spec.type in ("currency", "double", "percent") else 0,
        "soapType": _SOAP_TYPES.get(spec.type, "xsd:string"),
        "sortable": spec.type != "textarea",
        "type": spec.type,
        "unique": False,
        "updateable": spec.name
        not in (
            "Id",
            "IsDeleted",
            "CreatedDate",
            "LastModifiedDate",
            "SystemModstamp",
            "CreatedById",
            "Name",
            "IsClosed",
            "IsWon",
            "IsArchived",
        ),
    }


def global_entry(spec: SObjectSpec, version: str) -> dict[str, Any]:
    """One object's entry in describe global."""
    base = f"/services/data/{version}/sobjects/{spec.name}"
    return {
        "activateable": False,
        "createable": True,
        "custom": False,
        "customSetting": False,
        "deletable": spec.name not in ("User", "UserRole"),
        "deprecatedAndHidden": False,
        "feedEnabled": False,
        "keyPrefix": spec.key_prefix,
        "label": spec.label,
        "labelPlural": spec.label + "s",
        "layoutable": True,
        "mergeable": False,
        "mruEnabled": True,
        "name": spec.name,
        "queryable": True,
        "replicateable": True,
        "retrieveable": True,
        "searchable": True,
        "triggerable": True,
        "undeletable": True,
        "updateable": True,
        "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"},
    }


def describe_sobject(spec: SObjectSpec, version: str) -> dict[str, Any]:
    """An object's describe: its global entry plus its fields."""
    out = global_entry(spec, version)
    out.update(
        {
            "fields": [_field_describe(f) for f in spec.fields],
            "childRelationships": [],
            "recordTypeInfos": [],
            "supportedScopes": [],
        }
    )
    return out
