"""HubSpot's wire format: object types, property encoding, timestamps, ids and error bodies."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

PropertyKind = Literal["datetime", "number", "enumeration", "string", "bool"]
# A stored property value: HubSpot's string, or epoch milliseconds for a datetime property.
Value = str | int | None

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The default deal pipeline of a new portal: (stage id, label, probability, closed, won).
DEFAULT_DEAL_STAGES: tuple[tuple[str, str, float, bool, bool], ...] = (
    ("appointmentscheduled", "Appointment Scheduled", 0.2, False, False),
    ("qualifiedtobuy", "Qualified To Buy", 0.4, False, False),
    ("presentationscheduled", "Presentation Scheduled", 0.6, False, False),
    ("decisionmakerboughtin", "Decision Maker Bought-In", 0.8, False, False),
    ("contractsent", "Contract Sent", 0.9, False, False),
    ("closedwon", "Closed Won", 1.0, True, True),
    ("closedlost", "Closed Lost", 0.0, True, False),
)

LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 10, 100
OWNERS_LIMIT_DEFAULT, OWNERS_LIMIT_MAX = 100, 500
SEARCH_LIMIT_DEFAULT, SEARCH_LIMIT_MAX = 10, 200
SEARCH_RESULT_CAP = 10_000
SEARCH_MAX_GROUPS, SEARCH_MAX_FILTERS_PER_GROUP, SEARCH_MAX_FILTERS = 5, 6, 18
BATCH_READ_MAX = 100
ASSOCIATION_BATCH_MAX = 1_000
ASSOCIATION_PAGE = 500

FILTER_OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)


@dataclass(frozen=True)
class ObjectTypeSpec:
    """One CRM object type as HubSpot defines it."""

    name: str  # the plural API name, e.g. "calls"
    singular: str
    type_id: str  # e.g. "0-48"
    association_name: str  # as in the v3 association type label "meeting_event_to_contact"
    created_property: str
    modified_property: str
    first_id: int  # where this portal starts numbering the type
    default_properties: tuple[str, ...]  # returned when no ``properties`` are asked for
    searchable: tuple[str, ...]  # searched by the free-text ``query``
    properties: tuple[tuple[str, PropertyKind], ...]  # stored properties (virtual ones excluded)


_ENGAGEMENT_DEFAULTS = ("hs_createdate", "hs_lastmodifieddate", "hs_object_id")

OBJECT_TYPES: dict[str, ObjectTypeSpec] = {
    spec.name: spec
    for spec in (
        ObjectTypeSpec(
            "contacts",
            "contact",
            "0-1",
            "contact",
            "createdate",
            "lastmodifieddate",
            100_001,
            ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
            ("firstname", "lastname", "email", "phone", "company"),
            (
                ("firstname", "string"),
                ("lastname", "string"),
                ("email", "string"),
                ("company", "string"),
                ("phone", "string"),
                ("jobtitle", "string"),
                ("hs_analytics_source", "enumeration"),
                ("industry", "string"),
                ("numemployees", "enumeration"),
                ("lifecyclestage", "enumeration"),
                ("hs_lifecyclestage_salesqualifiedlead_date", "datetime"),
                ("hs_lead_status", "enumeration"),
                ("hubspotscore", "number"),
                ("hubspot_owner_id", "enumeration"),
                # The ids merged into this contact, ";"-separated (read-only, set by a merge).
                ("hs_merged_object_ids", "enumeration"),
            ),
        ),
        ObjectTypeSpec(
            "deals",
            "deal",
            "0-3",
            "deal",
            "createdate",
            "hs_lastmodifieddate",
            500_001,
            (
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ),
            ("dealname", "pipeline", "dealstage", "description", "dealtype"),
            (
                ("dealname", "string"),
                ("amount", "number"),
                ("closedate", "datetime"),
                ("dealstage", "enumeration"),
                ("pipeline", "enumeration"),
                ("dealtype", "enumeration"),
                ("description", "string"),
                ("hs_is_closed", "bool"),
                ("hs_is_closed_won", "bool"),
                ("hs_deal_stage_probability", "number"),
                ("hubspot_owner_id", "enumeration"),
                ("is_rep_owner_id", "enumeration"),
                ("bant_budget", "string"),
                ("bant_authority", "string"),
                ("bant_need", "string"),
                ("bant_timing", "string"),
                ("handoff_rating", "number"),
            ),
        ),
        ObjectTypeSpec(
            "calls",
            "call",
            "0-48",
            "call",
            "hs_createdate",
            "hs_lastmodifieddate",
            10_000_001,
            _ENGAGEMENT_DEFAULTS,
            ("hs_call_title", "hs_body_preview"),
            (
                ("hs_timestamp", "datetime"),
                ("hs_call_title", "string"),
                ("hs_body_preview", "string"),
                ("hs_call_direction", "enumeration"),
                ("hs_call_disposition", "enumeration"),
                ("hs_call_status", "enumeration"),
                ("hs_call_duration", "number"),
                ("hubspot_owner_id", "enumeration"),
                ("hs_call_to_number", "string"),
                ("hs_call_from_number", "string"),
            ),
        ),
        ObjectTypeSpec(
            "emails",
            "email",
            "0-49",
            "email",
            "hs_createdate",
            "hs_lastmodifieddate",
            30_000_001,
            _ENGAGEMENT_DEFAULTS,
            ("hs_email_subject",),
            (
                ("hs_timestamp", "datetime"),
                ("hs_email_subject", "string"),
                ("hs_email_direction", "enumeration"),
                ("hs_email_status", "enumeration"),
                ("hs_email_open_count", "number"),
                ("hs_email_click_count", "number"),
                ("hs_email_reply_count", "number"),
                ("hubspot_owner_id", "enumeration"),
            ),
        ),
        ObjectTypeSpec(
            "meetings",
            "meeting",
            "0-47",
            "meeting_event",
            "hs_createdate",
            "hs_lastmodifieddate",
            50_000_001,
            _ENGAGEMENT_DEFAULTS,
            ("hs_meeting_title", "hs_meeting_body"),
            (
                ("hs_timestamp", "datetime"),
                ("hs_meeting_title", "string"),
                ("hs_meeting_body", "string"),
                ("hs_meeting_start_time", "datetime"),
                ("hs_meeting_end_time", "datetime"),
                ("hs_meeting_outcome", "enumeration"),
                ("hubspot_owner_id", "enumeration"),
            ),
        ),
        ObjectTypeSpec(
            "tasks",
            "task",
            "0-27",
            "task",
            "hs_createdate",
            "hs_lastmodifieddate",
            70_000_001,
            _ENGAGEMENT_DEFAULTS,
            ("hs_task_body", "hs_task_subject"),
            (
                ("hs_timestamp", "datetime"),
                ("hs_task_subject", "string"),
                ("hs_task_body", "string"),
                ("hs_task_status", "enumeration"),
                ("hs_task_type", "enumeration"),
                ("hs_task_priority", "enumeration"),
                ("hs_task_completion_date", "datetime"),
                ("hubspot_owner_id", "enumeration"),
            ),
        ),
        # The users object: one record per user of the portal (an owner's ``userId`` is its
        # ``hs_internal_user_id``). Custom properties are created through the properties API.
        ObjectTypeSpec(
            "users",
            "user",
            "0-115",
            "user",
            "hs_createdate",
            "hs_lastmodifieddate",
            90_000_001,
            _ENGAGEMENT_DEFAULTS,
            ("hs_email", "hs_given_name", "hs_family_name"),
            (
                ("hs_internal_user_id", "number"),
                ("hs_email", "string"),
                ("hs_given_name", "string"),
                ("hs_family_name", "string"),
                ("hs_job_title", "string"),
                ("hs_additional_phone", "string"),
                ("hs_availability_status", "enumeration"),
                ("hs_standard_time_zone", "enumeration"),
            ),
        ),
    )
}

# Properties a client may read but never write (HubSpot answers READ_ONLY_VALUE).
READ_ONLY_PROPERTIES = frozenset(
    {
        "hs_object_id",
        "hs_createdate",
        "hs_lastmodifieddate",
        "createdate",
        "lastmodifieddate",
        "hs_internal_user_id",
        "hs_is_closed",
        "hs_is_closed_won",
        "hs_deal_stage_probability",
        "hs_merged_object_ids",
    }
)
# Object types whose records can be merged (POST /crm/v3/objects/{objectType}/merge).
MERGEABLE_TYPES = frozenset({"contacts"})
PROPERTY_TYPES: dict[str, tuple[str, ...]] = {  # type → the fieldTypes it may be shown as
    "string": ("text", "textarea", "phonenumber", "html", "file"),
    "number": ("number", "calculation_equation"),
    "datetime": ("date",),
    "date": ("date",),
    "enumeration": ("select", "radio", "checkbox", "booleancheckbox", "calculation_equation"),
    "bool": ("booleancheckbox",),
}
BATCH_WRITE_MAX = 100
PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

_TYPE_ALIASES: dict[str, str] = {
    alias: spec.name
    for spec in OBJECT_TYPES.values()
    for alias in (spec.name, spec.singular, spec.type_id)
}

# HubSpot-defined association type ids (v4 ``typeId``), one per direction.
ASSOCIATION_TYPE_IDS: dict[tuple[str, str], int] = {
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("contacts", "calls"): 193,
    ("calls", "contacts"): 194,
    ("contacts", "emails"): 197,
    ("emails", "contacts"): 198,
    ("contacts", "meetings"): 199,
    ("meetings", "contacts"): 200,
    ("contacts", "tasks"): 203,
    ("tasks", "contacts"): 204,
    ("deals", "calls"): 205,
    ("calls", "deals"): 206,
    ("deals", "emails"): 209,
    ("emails", "deals"): 210,
    ("deals", "meetings"): 211,
    ("meetings", "deals"): 212,
    ("deals", "tasks"): 215,
    ("tasks", "deals"): 216,
}


def canonical_object_type(name: str) -> str | None:
    """The plural API name for a type name, singular, or object type id; None if unknown."""
    return _TYPE_ALIASES.get(name.lower() if not name.startswith("0-") else name)


# ---------------------------------------------------------------------------------------
# Time and value helpers
# ---------------------------------------------------------------------------------------


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(milliseconds=1)


def iso_ms(ms: int) -> str:
    """HubSpot's rendering of a datetime: ``2024-01-17T19:55:04.281Z``."""
    moment = EPOCH + timedelta(milliseconds=ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


_DIGITS = re.compile(r"-?\d+")


def parse_datetime_value(text: str) -> int | None:
    """Epoch millis from epoch-millis digits, an ISO datetime or an ISO date; None if neither."""
    text = text.strip()
    if _DIGITS.fullmatch(text):
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return to_ms(moment)


def as_number(value: Value) -> float | None:
    """A stored value as a float; None when it is not a number (or is a datetime)."""
    if value is None or isinstance(value, int):
        return None
    try:
        return float(value)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------
# Errors and request parameters
# ---------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answered in HubSpot's format: ``status``, ``message``, ``category``."""

    def __init__(
        self,
        status: int,
        message: str,
        category: str | None = "VALIDATION_ERROR",
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category
        self.extra = extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": "error",
            "message": self.message,
            "correlationId": str(uuid.uuid4()),
        }
        if self.category is not None:
            out["category"] = self.category
        out.update(self.extra)
        return out


def not_found() -> ApiError:
    """HubSpot's 404 for an unknown record or route."""
    return ApiError(404, "resource not found", "OBJECT_NOT_FOUND")


def unknown_type(name: str) -> ApiError:
    """HubSpot's answer to an unknown object type."""
    # HubSpot answers an unknown object type with 400 and no category.
    return ApiError(400, f"Unable to infer object type from: {name}", None)


def inputs_in(raw: bytes) -> int:
    """How many inputs a batch request body holds (0 when it is not one)."""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return 0
    inputs = body.get("inputs") if isinstance(body, dict) else None
    return len(inputs) if isinstance(inputs, list) else 0


def parse_bool(text: str | None, name: str) -> bool:
    """A ``true``/``false`` query parameter (absent: False); 400 otherwise."""
    if text is None:
        return False
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise ApiError(400, f"Invalid value for query parameter '{name}': {text}")


def parse_limit(raw: object, default: int, maximum: int) -> int:
    """A page size within HubSpot's bounds for the endpoint; 400 otherwise."""
    if raw is None:
        return default
    try:
        limit = int(str(raw))
    except ValueError:
        raise ApiError(400, f"Invalid limit: {raw!r} is not an integer") from None
    if not 1 <= limit <= maximum:
        raise ApiError(400, f"limit must be between 1 and {maximum}, got {limit}")
    return limit


def parse_after(raw: object) -> int:
    """A cursor: this portal's cursors are integers (the next id, or a search offset)."""
    if raw is None or raw == "":
        return 0
    try:
        after = int(str(raw))
    except ValueError:
        raise ApiError(400, f"Invalid paging cursor 'after': {raw!r}") from None
    if after < 0:
        raise ApiError(400, f"Invalid paging cursor 'after': {raw!r}")
    return after
