"""Salesforce records → normalized records (docs/sync.md): pure functions, no I/O.

Values come as REST JSON or as Bulk API CSV strings (:func:`typed_row` gives the latter the
former's types); a value that cannot be parsed rejects its record (RecordRejected) with the
field named. Also the SOQL literals the source and the writer build queries with. Tested on
recorded payloads in tests/payloads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.errors import RecordRejected
from connectors.mapping import SourceMapping
from connectors.records import (
    Call,
    CallOutcome,
    Deal,
    DealType,
    Direction,
    Email,
    FollowUpTask,
    Lead,
    Meeting,
    MeetingOutcome,
    Rep,
    Team,
    nul_in_id,
    plain_text,
)

# --- value parsing (REST JSON values, or Bulk CSV strings) ----------------------------------


def parse_datetime(value: Any, name: str) -> datetime | None:
    """A Salesforce dateTime (``2024-01-17T19:55:04.000+0000`` or ``...Z``) as aware UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordRejected(f"{name}: not a date and time: {value!r}")
    text = value.strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RecordRejected(f"{name}: not a date and time: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_date(value: Any, name: str) -> date | None:
    """A Salesforce date (``2024-01-17``); None if empty."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordRejected(f"{name}: not a date: {value!r}")
    text = value.strip()
    if not text:
        return None
    try:
        return (
            date.fromisoformat(text[:10])
            if len(text) >= 10 and text[4] == "-"
            else date.fromisoformat(text)
        )
    except ValueError:
        raise RecordRejected(f"{name}: not a date: {text!r}") from None


def start_of_day(day: date, tz: tzinfo) -> datetime:
    """The first instant of a calendar day in the business time zone, in UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def soql_datetime(moment: datetime) -> str:
    """A SOQL dateTime literal, to the second (``2024-01-17T19:55:04Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def soql_string(value: str) -> str:
    """A quoted SOQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def iso_millis(moment: datetime) -> str:
    """An aware datetime as ISO 8601 UTC to the millisecond, as saved states hold it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def clean_text(value: Any) -> str | None:
    """A value as stripped text without NUL bytes (a boolean as ``true`` or ``false``); None when
    missing or blank."""
    if isinstance(value, bool):
        return str(value).lower()
    return plain_text(value)


def _decimal(value: Any, name: str) -> Decimal | None:
    if isinstance(value, bool):
        raise RecordRejected(f"{name}: not a number: {value!r}")
    if isinstance(value, int | float):
        number = Decimal(str(value))
    else:
        text = clean_text(value)
        if text is None:
            return None
        try:
            number = Decimal(text.replace(",", ""))
        except InvalidOperation:
            raise RecordRejected(f"{name}: not a number: {text!r}") from None
    if not number.is_finite():
        raise RecordRejected(f"{name}: not a finite number: {value!r}")
    return number


def _bool(value: Any, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    if not text:
        return None
    raise RecordRejected(f"{name}: not true or false: {value!r}")


# --- mapping functions: Salesforce records → normalized records (pure, no I/O) ------------


@dataclass
class LeadLinks:
    """Where WhoIds and opportunities lead: Contact and Opportunity Ids → the converted Lead's Id.

    The connector fills it by look-ups before mapping a page; None means "looked up, no lead".
    """

    contact_lead: dict[str, str | None] = field(default_factory=dict)
    deal_lead: dict[str, str | None] = field(default_factory=dict)

    def lead_of(self, who_id: str | None, mapping: SourceMapping) -> str | None:
        """The lead an activity's WhoId reaches: a Lead itself, or the Lead a Contact came from."""
        if who_id is None:
            return None
        if has_prefix(who_id, mapping, "contact_id_prefixes"):
            return self.contact_lead.get(who_id) or who_id
        return who_id


def has_prefix(record_id: str, mapping: SourceMapping, prefixes: str) -> bool:
    """Whether an Id starts with one of the key prefixes of a mapping set (Contact, Opportunity)."""
    return any(record_id.startswith(p) for p in mapping.sets[prefixes])


class _Fields:
    """Read a record's mapped fields by normalized field name."""

    def __init__(self, payload: dict[str, Any], mapping: SourceMapping, kind: str) -> None:
        if not isinstance(payload, dict):
            raise RecordRejected("the record is not an object")
        self.payload = payload
        self.mapping = mapping
        self.kind = kind
        crm_id = clean_text(payload.get("Id"))
        if crm_id is None:
            raise RecordRejected("the record has no Id")
        bad_id = nul_in_id(payload.get("Id"))
        if bad_id is not None:
            raise RecordRejected(bad_id)
        self.crm_id = crm_id

    def name(self, field_name: str) -> str:
        return self.mapping.fields[self.kind].get(field_name, "")

    def raw(self, field_name: str) -> Any:
        name = self.name(field_name)
        return self.payload.get(name) if name else None

    def text(self, field_name: str) -> str | None:
        return clean_text(self.raw(field_name))

    def moment(self, field_name: str) -> datetime | None:
        return parse_datetime(self.raw(field_name), self.name(field_name))

    def required_moment(self, field_name: str) -> datetime:
        value = self.moment(field_name)
        if value is None:
            raise RecordRejected(f"missing {self.name(field_name) or field_name} (required)")
        return value

    def day(self, field_name: str) -> date | None:
        return parse_date(self.raw(field_name), self.name(field_name))

    def decimal(self, field_name: str) -> Decimal | None:
        return _decimal(self.raw(field_name), self.name(field_name))

    def number(self, field_name: str) -> float | None:
        value = self.decimal(field_name)
        return None if value is None else float(value)

    def whole(self, field_name: str) -> int | None:
        value = self.decimal(field_name)
        if value is None:
            return None
        if value != value.to_integral_value():
            raise RecordRejected(f"{self.name(field_name)}: not a whole number: {value}")
        return int(value)

    def flag(self, field_name: str) -> bool | None:
        return _bool(self.raw(field_name), self.name(field_name))

    def deleted(self) -> bool:
        return _bool(self.payload.get("IsDeleted"), "IsDeleted") is True

    def modified_at(self) -> datetime | None:
        return self.moment("modified_at")


def _not_negative(amount: Decimal | None, name: str) -> Decimal | None:
    if amount is not None and amount < 0:
        raise RecordRejected(f"{name}: negative amount: {amount}")
    return amount


def company_size(employees: int | None) -> str | None:
    """NumberOfEmployees bucketed: 1-9, 10-49, 50-249, 250-999, 1000+ (None when unknown)."""
    if employees is None or employees < 1:
        return None
    for upper, name in ((9, "1-9"), (49, "10-49"), (249, "50-249"), (999, "250-999")):
        if employees <= upper:
            return name
    return "1000+"


def is_call(payload: dict[str, Any], mapping: SourceMapping) -> bool:
    """Whether a Task is a call: TaskSubtype in ``call_subtypes`` or Type in ``call_types``."""
    fields = mapping.fields["call"]
    subtype = clean_text(payload.get(fields.get("subtype", ""))) if fields.get("subtype") else None
    kind = clean_text(payload.get(fields.get("type", ""))) if fields.get("type") else None
    return mapping.contains("call_subtypes", subtype) or mapping.contains("call_types", kind)


def map_role(payload: dict[str, Any], mapping: SourceMapping) -> Team:
    """A UserRole as a Team."""
    f = _Fields(payload, mapping, "team")
    return Team(
        source="salesforce",
        crm_id=f.crm_id,
        modified_at=f.modified_at(),
        name=f.text("name") or f.crm_id,
    )


def map_user(payload: dict[str, Any], mapping: SourceMapping) -> Rep:
    """A User as a Rep; a deactivated user is flagged deleted, as HubSpot archives its owner."""
    f = _Fields(payload, mapping, "rep")
    active = f.flag("active")
    active = True if active is None else active
    return Rep(
        source="salesforce",
        crm_id=f.crm_id,
        deleted=not active,
        modified_at=f.modified_at(),
        name=f.text("name") or f.text("email") or f.crm_id,
        email=f.text("email"),
        team_crm_id=f.text("team_crm_id"),
        manager_crm_id=f.text("manager_crm_id"),
        active=active,
        user_id=f.crm_id,  # targets are written back to this User record
        crm_created_at=f.moment("crm_created_at"),
    )


def map_lead(payload: dict[str, Any], mapping: SourceMapping, tz: tzinfo) -> Lead:
    """A Lead; converted on ConvertedDate (its SQL day, from the start of that business day)."""
    f = _Fields(payload, mapping, "lead")
    converted = f.day("sql_at")
    is_converted = f.flag("is_converted")
    sql_at = start_of_day(converted, tz) if converted and is_converted is not False else None
    return Lead(
        source="salesforce",
        crm_id=f.crm_id,
        deleted=f.deleted(),
        modified_at=f.modified_at(),
        created_at=f.required_moment("created_at"),
        channel=f.text("channel"),
        industry=f.text("industry"),
        company_size=company_size(f.whole("company_size")),
        status=f.text("status"),
        sql_at=sql_at,
        score=f.number("score"),
        rep_crm_id=f.text("rep_crm_id"),
    )


def _direction(value: str | None, mapping: SourceMapping) -> Direction | None:
    if value is None:
        return None  # no direction is not outbound (docs/sync.md)
    return "outbound" if mapping.contains("call_outbound", value) else "inbound"


def map_call(payload: dict[str, Any], mapping: SourceMapping, links: LeadLinks) -> Call:
    """A call Task: occurred at CompletedDateTime (else CreatedDate); CallDisposition → outcome."""
    f = _Fields(payload, mapping, "call")
    outcome: CallOutcome = (
        mapping.value(  # type: ignore[assignment]  # checked by the loader
            "call_disposition", f.text("outcome")
        )
        or "unknown"
    )
    seconds = f.decimal("duration_seconds")
    if seconds is not None and seconds < 0:
        raise RecordRejected(f"{f.name('duration_seconds')}: negative duration: {seconds}")
    return Call(
        source="salesforce",
        crm_id=f.crm_id,
        deleted=f.deleted(),
        modified_at=f.modified_at(),
        occurred_at=f.moment("occurred_at") or f.required_moment("created_at"),
        direction=_direction(f.text("direction"), mapping),
        outcome=outcome,
        duration_ms=None if seconds is None else int(seconds * 1000),
        rep_crm_id=f.text("rep_crm_id"),
        contact_crm_id=links.lead_of(f.text("contact_crm_id"), mapping),
    )


def map_email(
    payload: dict[str, Any],
    message: dict[str, Any] | None,
    mapping: SourceMapping,
    links: LeadLinks,
) -> Email:
    """An email Task with its EmailMessage: every email Task is outbound; tracking from the message.

    Sent unless the message bounced; tracked when ``IsTracked``; opened, clicked and replied
    from FirstOpenedDate, FirstLinkClickedDate and HasReply (unknown when not tracked, or when
    the org lacks the field). The status is ``SENT`` or ``BOUNCED`` (the vocabulary HubSpot uses).
    """
    f = _Fields(payload, mapping, "email")
    bounced = tracked = False
    opened = clicked = replied = None
    if message is not None:
        m = _Fields(message, mapping, "email_message")
        bounced = m.flag("bounced") is True
        tracked = m.flag("tracked") is True
        if tracked:
            # A field the org lacks is not in the message at all: unknown, not "no".
            if m.name("opened") in message:
                opened = m.moment("opened") is not None
            if m.name("clicked") in message:
                clicked = m.moment("clicked") is not None
            if m.name("replied") in message:
                replied = m.flag("replied") is True
    return Email(
        source="salesforce",
        crm_id=f.crm_id,
        deleted=f.deleted(),
        modified_at=f.modified_at(),
        sent_at=f.moment("sent_at") or f.required_moment("created_at"),
        direction="outbound",
        status="BOUNCED" if bounced else "SENT",
        sent=not bounced,
        tracked=tracked,
        opened=opened,
        clicked=clicked,
        replied=replied,
        rep_crm_id=f.text("rep_crm_id"),
        contact_crm_id=links.lead_of(f.text("contact_crm_id"), mapping),
    )


def map_event(payload: dict[str, Any], mapping: SourceMapping, links: LeadLinks) -> Meeting:
    """An Event as a Meeting; a Meeting_Outcome__c label the mapping does not know rejects it."""
    f = _Fields(payload, mapping, "meeting")
    raw_outcome = f.text("outcome")
    outcome = mapping.value("meeting_outcome", raw_outcome)
    if raw_outcome is not None and outcome is None:
        raise RecordRejected(
            f"{f.name('outcome')}: unknown meeting outcome {raw_outcome!r} "
            "(map it under [salesforce.values.meeting_outcome] in the mapping file)"
        )
    meeting_outcome: MeetingOutcome | None = outcome  # type: ignore[assignment]
    what = f.text("deal_crm_id")
    return Meeting(
        source="salesforce",
        crm_id=f.crm_id,
        deleted=f.deleted(),
        modified_at=f.modified_at(),
        booked_at=f.required_moment("booked_at"),
        start_at=f.moment("start_at"),
        outcome=meeting_outcome,
        rep_crm_id=f.text("rep_crm_id"),
        contact_crm_id=links.lead_of(f.text("contact_crm_id"), mapping),
        deal_crm_id=what if what and has_prefix(what, mapping, "deal_id_prefixes") else None,
    )


def map_task(
    payload: dict[str, Any], mapping: SourceMapping, links: LeadLinks, tz: tzinfo
) -> FollowUpTask | None:
    """A follow-up Task, due from the start of its ActivityDate; None when it is not a follow-up.

    A call (TaskSubtype Call or Type Call) is never a follow-up, nor is a Task with no due date.
    """
    if is_call(payload, mapping):
        return None
    f = _Fields(payload, mapping, "task")
    due = f.day("due_at")
    if due is None:
        return None
    status = f.text("status")
    closed = f.flag("is_closed")
    completed_at = f.moment("completed_at") if closed is not False else None
    return FollowUpTask(
        source="salesforce",
        crm_id=f.crm_id,
        deleted=f.deleted(),
        modified_at=f.modified_at(),
        due_at=start_of_day(due, tz),
        status=mapping.value("task_status", status) or status,
        completed_at=completed_at,
        rep_crm_id=f.text("rep_crm_id"),
        contact_crm_id=links.lead_of(f.text("contact_crm_id"), mapping),
    )


def map_opportunity(
    payload: dict[str, Any], mapping: SourceMapping, links: LeadLinks, tz: tzinfo
) -> Deal:
    """An Opportunity as a Deal: IS rep from IS_Rep__c, probability from Probability / 100."""
    f = _Fields(payload, mapping, "deal")
    close = f.day("closed_at")
    probability = f.number("probability")
    if probability is not None and not 0 <= probability <= 100:
        raise RecordRejected(f"{f.name('probability')}: not a percentage: {probability}")
    rating = f.number("handoff_rating")
    contact = links.deal_lead.get(f.crm_id) or links.lead_of(f.text("contact_crm_id"), mapping)
    deal_type: DealType | None = mapping.value(  # type: ignore[assignment]  # checked by the loader
        "deal_type", f.text("deal_type")
    )
    return Deal(
        source="salesforce",
        crm_id=f.crm_id,
        deleted=f.deleted(),
        modified_at=f.modified_at(),
        created_at=f.required_moment("created_at"),
        closed_at=start_of_day(close, tz) if close is not None else None,
        amount=_not_negative(f.decimal("amount"), f.name("amount")),
        stage=f.text("stage"),
        pipeline=f.text("pipeline"),
        is_closed=f.flag("is_closed") is True,
        is_won=f.flag("is_won") is True,
        probability=None if probability is None else probability / 100,
        owner_crm_id=f.text("owner_crm_id"),
        rep_crm_id=f.text("rep_crm_id"),
        bant_budget=f.text("bant_budget"),
        bant_authority=f.text("bant_authority"),
        bant_need=f.text("bant_need"),
        bant_timing=f.text("bant_timing"),
        handoff_rating=rating,
        lead_source=f.text("lead_source"),
        contact_crm_id=contact,
        deal_type=deal_type,
    )


def merge_messages(
    known: dict[str, Any] | None, message: dict[str, Any], mapping: SourceMapping
) -> dict[str, Any]:
    """One Task's EmailMessages as one: tracked, opened, clicked, replied or bounced if any is."""
    if known is None:
        return dict(message)
    merged = dict(known)
    names = mapping.fields["email_message"]
    for key in ("tracked", "replied", "bounced"):
        name = names.get(key, "")
        if name and (message.get(name) is True or merged.get(name) is True):
            merged[name] = True
    for key in ("opened", "clicked"):
        name = names.get(key, "")
        if (
            name
            and message.get(name)
            and (not merged.get(name) or str(message[name]) < str(merged[name]))
        ):
            merged[name] = message[name]
    return merged


def typed_row(row: dict[str, str], types: dict[str, str]) -> dict[str, Any]:
    """A Bulk API CSV row with the JSON types the REST API gives (empty → None)."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if value == "" or value is None:
            out[name] = None
            continue
        kind = types.get(name, "string")
        if kind == "boolean" and value in ("true", "false"):
            out[name] = value == "true"
        elif kind == "int" and re.fullmatch(r"-?\d+", value):
            out[name] = int(value)
        elif kind in ("double", "currency", "percent") and re.fullmatch(
            r"-?\d+(\.\d+)?(E-?\d+)?", value, re.I
        ):
            out[name] = float(value)
        else:
            out[name] = value
    return out
