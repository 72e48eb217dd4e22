"""Salesforce Campaigns as call lists, CampaignMembers as their members: pure mapping, no I/O.

A campaign is a call list when its Type is in the mapping's ``campaign_types`` (Telemarketing),
or, when the mapping's ``call_lists`` names campaigns, when its Id or Name is named. The
``campaigns`` stream reads every changed Campaign (campaigns are few) and maps the others to
None, so a campaign whose Type changes away from Telemarketing is flagged deleted; the
``campaign_members`` stream reads only the members of call-list campaigns, through a semi-join
(:func:`member_filter`), and reads a campaign's older members whole when it becomes a call list
(connectors/salesforce/source.py). A member names its lead the way activities do: ``LeadId``, else the
Lead converted into its ``ContactId`` (``Lead.ConvertedContactId``), else the Contact itself.
"""

from __future__ import annotations

import re
from typing import Any

from connectors.errors import RecordRejected
from connectors.mapping import SourceMapping
from connectors.records import CallList, CallListMember
from connectors.salesforce.normalize import LeadLinks, clean_text, parse_datetime, soql_string

_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")


def _field(mapping: SourceMapping, kind: str, name: str) -> str:
    return mapping.fields[kind].get(name, "")


def is_call_list(payload: dict[str, Any], mapping: SourceMapping) -> bool:
    """Whether a Campaign is synced as a call list (named in ``call_lists``, else by Type)."""
    named = [n.casefold() for n in mapping.sets["call_lists"]]
    if named:
        name = clean_text(payload.get(_field(mapping, "call_list", "name")))
        record_id = clean_text(payload.get("Id")) or ""
        return any(
            (name is not None and name.casefold() == wanted)
            or (len(wanted) in (15, 18) and record_id[:15].casefold() == wanted[:15])
            for wanted in named
        )
    return mapping.contains(
        "campaign_types", clean_text(payload.get(_field(mapping, "call_list", "list_kind")))
    )


def map_campaign(payload: dict[str, Any], mapping: SourceMapping) -> CallList | None:
    """A Campaign as a call list; None when it is not one (the sync flags it deleted)."""
    if not isinstance(payload, dict):
        raise RecordRejected("the record is not an object")
    crm_id = clean_text(payload.get("Id"))
    if crm_id is None:
        raise RecordRejected("missing Id")
    if not is_call_list(payload, mapping):
        return None
    name_field = _field(mapping, "call_list", "name")
    name = clean_text(payload.get(name_field))
    if name is None:
        raise RecordRejected(f"missing {name_field or 'name'} (required)")
    modified = _field(mapping, "call_list", "modified_at")
    return CallList(
        source="salesforce",
        crm_id=crm_id,
        deleted=payload.get("IsDeleted") is True,
        modified_at=parse_datetime(payload.get(modified), modified),
        name=name,
        list_kind=clean_text(payload.get(_field(mapping, "call_list", "list_kind"))),
    )


def map_campaign_member(
    payload: dict[str, Any], mapping: SourceMapping, links: LeadLinks
) -> CallListMember:
    """A CampaignMember: its campaign, its lead (LeadId, else the Contact's lead) and CreatedDate."""
    if not isinstance(payload, dict):
        raise RecordRejected("the record is not an object")
    crm_id = clean_text(payload.get("Id"))
    if crm_id is None:
        raise RecordRejected("missing Id")

    def text(name: str) -> str | None:
        field = _field(mapping, "call_list_member", name)
        return clean_text(payload.get(field)) if field else None

    campaign = text("list_crm_id")
    if campaign is None:
        raise RecordRejected("missing CampaignId (required)")
    added_field = _field(mapping, "call_list_member", "added_at")
    added_at = parse_datetime(payload.get(added_field), added_field)
    if added_at is None:
        raise RecordRejected(f"missing {added_field} (required)")
    modified = _field(mapping, "call_list_member", "modified_at")
    return CallListMember(
        source="salesforce",
        crm_id=crm_id,
        deleted=payload.get("IsDeleted") is True,
        modified_at=parse_datetime(payload.get(modified), modified),
        list_crm_id=campaign,
        added_at=added_at,
        contact_crm_id=text("lead_crm_id") or links.lead_of(text("contact_crm_id"), mapping),
    )


def campaign_condition(mapping: SourceMapping, type_field: str, name_field: str) -> str:
    """The SOQL condition on Campaign that picks the call lists."""
    named = list(mapping.sets["call_lists"])
    if named:
        parts = [f"{name_field} IN ({', '.join(soql_string(n) for n in named)})"]
        ids = [n for n in named if _ID.match(n)]
        if ids:
            parts.append(f"Id IN ({', '.join(soql_string(i) for i in ids)})")
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
    types = ", ".join(soql_string(t) for t in mapping.sets["campaign_types"]) or "''"
    return f"{type_field} IN ({types})"


def member_filter(mapping: SourceMapping, campaign_field: str, condition: str) -> str:
    """The CampaignMember condition: members of call-list campaigns, as one semi-join."""
    return f"{campaign_field} IN (SELECT Id FROM Campaign WHERE {condition})"
