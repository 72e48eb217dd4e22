"""HubSpot JSON → normalized records (docs/sync.md): pure functions, no I/O.

HubSpot sends every property value as a string; the parsers here turn them into aware UTC
datetimes, numbers and flags, and a value that cannot be one rejects its record
(RecordRejected) with the property named. Tested on recorded payloads in tests/payloads.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

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
    Record,
    Rep,
    Team,
    nul_in_id,
    plain_text,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
N = TypeVar("N", int | None, Decimal | None)


# --- value parsing (HubSpot sends every property value as a string) ------------------------


def parse_datetime(value: Any, name: str) -> datetime | None:
    """An ISO datetime, a date, or epoch milliseconds as an aware UTC datetime; None if empty."""
    if value is None or isinstance(value, bool):
        if value is None:
            return None
        raise RecordRejected(f"{name}: not a date or time: {value!r}")
    if isinstance(value, int | float):
        return _from_millis(int(value), name)
    text = str(value).strip()
    if not text:
        return None
    if re.fullmatch(r"-?\d+", text):
        return _from_millis(int(text), name)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RecordRejected(f"{name}: not a date or time: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _from_millis(millis: int, name: str) -> datetime:
    try:
        return EPOCH + timedelta(milliseconds=millis)
    except OverflowError:
        raise RecordRejected(f"{name}: epoch milliseconds out of range: {millis}") from None


def to_millis(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(milliseconds=1)


def iso_millis(moment: datetime) -> str:
    """An aware datetime as ISO 8601 UTC to the millisecond, as saved states hold it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def clean_text(value: Any) -> str | None:
    """A value as stripped text without NUL bytes; None when it is missing or blank."""
    return plain_text(value)


def _decimal(value: Any, name: str) -> Decimal | None:
    text = clean_text(value)
    if text is None:
        return None
    try:
        number = Decimal(text.replace(",", ""))
    except InvalidOperation:
        raise RecordRejected(f"{name}: not a number: {text!r}") from None
    if not number.is_finite():
        raise RecordRejected(f"{name}: not a finite number: {text!r}")
    return number


def _int(value: Any, name: str) -> int | None:
    number = _decimal(value, name)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise RecordRejected(f"{name}: not a whole number: {value!r}")
    return int(number)


def _float(value: Any, name: str) -> float | None:
    number = _decimal(value, name)
    return None if number is None else float(number)


def _bool(value: Any, name: str) -> bool:
    text = clean_text(value)
    if text is None:
        return False
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise RecordRejected(f"{name}: not true or false: {text!r}")


# --- mapping functions: HubSpot JSON → normalized records (pure, no I/O) ------------------


class _Props:
    """Read a record's mapped properties by normalized field name."""

    def __init__(self, payload: dict[str, Any], mapping: SourceMapping, kind: str) -> None:
        self.payload = payload
        self.mapping = mapping
        self.kind = kind
        props = payload.get("properties")
        if not isinstance(props, dict):
            raise RecordRejected("the record has no properties object")
        self.props: dict[str, Any] = props
        crm_id = clean_text(payload.get("id"))
        if crm_id is None:
            raise RecordRejected("the record has no id")
        bad_id = nul_in_id(payload.get("id"))
        if bad_id is not None:
            raise RecordRejected(bad_id)
        self.crm_id = crm_id

    def name(self, field_name: str) -> str:
        return self.mapping.crm_field(self.kind, field_name)

    def raw(self, field_name: str) -> Any:
        return self.props.get(self.name(field_name))

    def text(self, field_name: str) -> str | None:
        return clean_text(self.raw(field_name))

    def present(self, field_name: str) -> bool:
        return clean_text(self.raw(field_name)) is not None

    def moment(self, field_name: str) -> datetime | None:
        return parse_datetime(self.raw(field_name), self.name(field_name))

    def required_datetime(self, field_name: str) -> datetime:
        value = self.moment(field_name)
        if value is None:
            raise RecordRejected(f"missing {self.name(field_name)} (required)")
        return value

    def whole(self, field_name: str) -> int | None:
        return _int(self.raw(field_name), self.name(field_name))

    def number(self, field_name: str) -> float | None:
        return _float(self.raw(field_name), self.name(field_name))

    def decimal(self, field_name: str) -> Decimal | None:
        return _decimal(self.raw(field_name), self.name(field_name))

    def flag(self, field_name: str) -> bool:
        return _bool(self.raw(field_name), self.name(field_name))

    def not_negative(self, value: N, field_name: str, what: str) -> N:
        """A number that cannot be below zero (a duration, an amount), else the record rejected."""
        if value is not None and value < 0:
            raise RecordRejected(f"{self.name(field_name)}: negative {what}: {value}")
        return value

    def count_positive(self, field_name: str) -> bool | None:
        count = self.whole(field_name)
        return None if count is None else count > 0

    def modified_at(self) -> datetime | None:
        return self.moment("modified_at") or parse_datetime(
            self.payload.get("updatedAt"), "updatedAt"
        )

    def deleted(self) -> bool:
        return self.payload.get("archived") is True

    def associated(self, field_name: str) -> str | None:
        """The associated record's id (the lowest, when there are several)."""
        to_type = self.mapping.associations.get(self.kind, {}).get(field_name)
        if to_type is None:
            return None
        associations = self.payload.get("associations") or {}
        block = associations.get(to_type) if isinstance(associations, dict) else None
        results = block.get("results", []) if isinstance(block, dict) else []
        ids = {str(item["id"]) for item in results if isinstance(item, dict) and item.get("id")}
        if not ids:
            return None
        return min(ids, key=lambda crm_id: (len(crm_id), crm_id))


def _direction(value: str | None, mapping: SourceMapping, outbound_set: str) -> Direction | None:
    if value is None:
        return None  # no direction is not outbound (docs/sync.md)
    return "outbound" if mapping.contains(outbound_set, value) else "inbound"


def company_size(value: str | None, mapping: SourceMapping) -> str | None:
    """numemployees → a company-size bucket; a plain number is bucketed too; else None."""
    if value is None:
        return None
    bucket = mapping.value("company_size", value)
    if bucket is not None:
        return bucket
    try:
        count = int(Decimal(value.replace(",", "")))
    except (InvalidOperation, ValueError):
        return None
    if count < 1:
        return None
    for upper, name in ((9, "1-9"), (49, "10-49"), (249, "50-249"), (999, "250-999")):
        if count <= upper:
            return name
    return "1000+"


def call_outcome(disposition: str | None, status: str | None, mapping: SourceMapping) -> str:
    """The disposition's outcome, else the call status's (BUSY, NO_ANSWER, FAILED…), else unknown."""
    by_disposition = mapping.value("call_disposition", disposition)
    if by_disposition is not None:
        return by_disposition
    return mapping.value("call_status", status) or "unknown"


def map_contact(payload: dict[str, Any], mapping: SourceMapping) -> Lead:
    """A HubSpot contact as a Lead."""
    p = _Props(payload, mapping, "lead")
    return Lead(
        source="hubspot",
        crm_id=p.crm_id,
        deleted=p.deleted(),
        modified_at=p.modified_at(),
        created_at=p.required_datetime("created_at"),
        channel=p.text("channel"),
        industry=p.text("industry"),
        company_size=company_size(p.text("company_size"), mapping),
        status=p.text("status"),
        sql_at=p.moment("sql_at"),
        score=p.number("score"),
        rep_crm_id=p.text("rep_crm_id"),
    )


def merged_ids(payload: dict[str, Any], mapping: SourceMapping) -> list[str]:
    """The ids of the contacts merged into this one (hs_merged_object_ids), itself left out.

    HubSpot archives a merged contact and moves its activities to the contact it became, without
    touching the activities' modified dates; a sync follows the merge from this list.
    """
    props = payload.get("properties")
    crm_id = clean_text(payload.get("id"))
    if not isinstance(props, dict) or crm_id is None or payload.get("archived") is True:
        return []
    raw = clean_text(props.get(mapping.crm_field("lead", "merged_crm_ids")))
    if raw is None:
        return []
    ids = (part.strip() for part in raw.replace(",", ";").split(";"))
    return sorted({i for i in ids if i.isdigit() and i != crm_id}, key=lambda i: (len(i), i))


def map_call(payload: dict[str, Any], mapping: SourceMapping) -> Call:
    """A HubSpot call engagement as a Call."""
    p = _Props(payload, mapping, "call")
    outcome: CallOutcome = call_outcome(  # type: ignore[assignment]  # checked by the loader
        p.text("outcome"), p.text("outcome_status"), mapping
    )
    return Call(
        source="hubspot",
        crm_id=p.crm_id,
        deleted=p.deleted(),
        modified_at=p.modified_at(),
        occurred_at=p.required_datetime("occurred_at"),
        direction=_direction(p.text("direction"), mapping, "call_outbound"),
        outcome=outcome,
        duration_ms=p.not_negative(p.whole("duration_ms"), "duration_ms", "duration"),
        rep_crm_id=p.text("rep_crm_id"),
        contact_crm_id=p.associated("contact_crm_id"),
    )


def map_email(payload: dict[str, Any], mapping: SourceMapping) -> Email:
    """A HubSpot email engagement as an Email (absent counts mean unknown, not zero)."""
    p = _Props(payload, mapping, "email")
    status = p.text("status")
    return Email(
        source="hubspot",
        crm_id=p.crm_id,
        deleted=p.deleted(),
        modified_at=p.modified_at(),
        sent_at=p.required_datetime("sent_at"),
        direction=_direction(p.text("direction"), mapping, "email_outbound"),
        status=status,
        sent=not mapping.contains("email_not_sent", status),
        tracked=p.present("opened"),
        opened=p.count_positive("opened"),
        clicked=p.count_positive("clicked"),
        replied=p.count_positive("replied"),
        rep_crm_id=p.text("rep_crm_id"),
        contact_crm_id=p.associated("contact_crm_id"),
    )


def map_meeting(payload: dict[str, Any], mapping: SourceMapping) -> Meeting:
    """A HubSpot meeting as a Meeting; an outcome the mapping does not know rejects it."""
    p = _Props(payload, mapping, "meeting")
    raw_outcome = p.text("outcome")
    outcome = mapping.value("meeting_outcome", raw_outcome)
    if raw_outcome is not None and outcome is None:
        raise RecordRejected(
            f"{p.name('outcome')}: unknown meeting outcome {raw_outcome!r} "
            "(map it under [hubspot.values.meeting_outcome] in the mapping file)"
        )
    meeting_outcome: MeetingOutcome | None = outcome  # type: ignore[assignment]
    return Meeting(
        source="hubspot",
        crm_id=p.crm_id,
        deleted=p.deleted(),
        modified_at=p.modified_at(),
        booked_at=p.required_datetime("booked_at"),
        start_at=p.moment("start_at"),
        outcome=meeting_outcome,
        rep_crm_id=p.text("rep_crm_id"),
        contact_crm_id=p.associated("contact_crm_id"),
        deal_crm_id=p.associated("deal_crm_id"),
    )


def map_task(payload: dict[str, Any], mapping: SourceMapping) -> FollowUpTask:
    """A HubSpot task as a FollowUpTask."""
    p = _Props(payload, mapping, "task")
    return FollowUpTask(
        source="hubspot",
        crm_id=p.crm_id,
        deleted=p.deleted(),
        modified_at=p.modified_at(),
        due_at=p.required_datetime("due_at"),
        status=p.text("status"),
        completed_at=p.moment("completed_at"),
        rep_crm_id=p.text("rep_crm_id"),
        contact_crm_id=p.associated("contact_crm_id"),
    )


def attach_associations(
    results: list[dict[str, Any]], to_type: str, batch_read: dict[str, Any]
) -> None:
    """Give search results the ``associations`` block of list results, from a v4 batch read."""
    linked: dict[str, list[dict[str, str]]] = {}
    for item in batch_read.get("results") or []:
        from_id = clean_text((item.get("from") or {}).get("id"))
        if from_id is None:
            continue
        for target in item.get("to") or []:
            to_id = clean_text(target.get("toObjectId"))
            if to_id is not None and {"id": to_id} not in linked.get(from_id, []):
                linked.setdefault(from_id, []).append({"id": to_id})
    for result in results:
        block = result.setdefault("associations", {})
        block[to_type] = {"results": linked.get(str(result.get("id")), [])}


StageProbabilities = dict[tuple[str, str], float]


def stage_probabilities(payload: dict[str, Any]) -> StageProbabilities:
    """(pipeline id, stage id) → probability (0–1) from ``GET /crm/v3/pipelines/deals``."""
    probabilities: StageProbabilities = {}
    for pipeline in payload.get("results") or []:
        for stage in pipeline.get("stages") or []:
            metadata = stage.get("metadata") or {}
            try:
                probability = _float(metadata.get("probability"), "probability")
            except RecordRejected:
                probability = None
            if probability is not None:
                probabilities[(str(pipeline.get("id")), str(stage.get("id")))] = probability
    return probabilities


def _probability(
    probabilities: StageProbabilities, pipeline: str | None, stage: str | None
) -> float | None:
    if stage is None:
        return None
    if pipeline is not None and (pipeline, stage) in probabilities:
        return probabilities[(pipeline, stage)]
    # Stage ids are unique in a portal; a deal without its pipeline still finds its stage.
    matches = {value for (_, stage_id), value in probabilities.items() if stage_id == stage}
    return matches.pop() if len(matches) == 1 else None


def map_deal(
    payload: dict[str, Any], mapping: SourceMapping, probabilities: StageProbabilities
) -> Deal:
    """A HubSpot deal as a Deal, its stage probability looked up in the pipelines."""
    p = _Props(payload, mapping, "deal")
    pipeline, stage = p.text("pipeline"), p.text("stage")
    deal_type: DealType | None = mapping.value(  # type: ignore[assignment]  # checked by the loader
        "deal_type", p.text("deal_type")
    )
    return Deal(
        source="hubspot",
        crm_id=p.crm_id,
        deleted=p.deleted(),
        modified_at=p.modified_at(),
        created_at=p.required_datetime("created_at"),
        closed_at=p.moment("closed_at"),
        amount=p.not_negative(p.decimal("amount"), "amount", "amount"),
        stage=stage,
        pipeline=pipeline,
        is_closed=p.flag("is_closed"),
        is_won=p.flag("is_won"),
        probability=_probability(probabilities, pipeline, stage),
        owner_crm_id=p.text("owner_crm_id"),
        rep_crm_id=p.text("rep_crm_id"),
        bant_budget=p.text("bant_budget"),
        bant_authority=p.text("bant_authority"),
        bant_need=p.text("bant_need"),
        bant_timing=p.text("bant_timing"),
        handoff_rating=p.number("handoff_rating"),
        lead_source=p.text("lead_source"),
        contact_crm_id=p.associated("contact_crm_id"),
        deal_type=deal_type,
    )


def map_owner(payload: dict[str, Any]) -> tuple[Rep, list[Team]]:
    """A HubSpot owner as a Rep (its primary team is its team) and the owner's teams."""
    crm_id = clean_text(payload.get("id"))
    if crm_id is None:
        raise RecordRejected("the owner has no id")
    bad_id = nul_in_id(payload.get("id"))
    if bad_id is not None:
        raise RecordRejected(bad_id)
    teams: list[Team] = []
    primary: str | None = None
    for team in payload.get("teams") or []:
        team_id = clean_text(team.get("id"))
        if team_id is None:
            continue
        teams.append(
            Team(source="hubspot", crm_id=team_id, name=clean_text(team.get("name")) or team_id)
        )
        if team.get("primary") is True and primary is None:
            primary = team_id
    if primary is None and teams:
        primary = teams[0].crm_id
    first, last = clean_text(payload.get("firstName")), clean_text(payload.get("lastName"))
    email = clean_text(payload.get("email"))
    name = " ".join(part for part in (first, last) if part) or email or crm_id
    archived = payload.get("archived") is True
    return (
        Rep(
            source="hubspot",
            crm_id=crm_id,
            deleted=archived,
            modified_at=parse_datetime(payload.get("updatedAt"), "updatedAt"),
            name=name,
            email=email,
            team_crm_id=primary,
            active=not archived,
            user_id=clean_text(payload.get("userId")),
            crm_created_at=parse_datetime(payload.get("createdAt"), "createdAt"),
        ),
        teams,
    )


def map_object(
    kind: str,
    payload: dict[str, Any],
    mapping: SourceMapping,
    probabilities: StageProbabilities | None = None,
) -> Record:
    """Map one CRM object of a record kind; raises RecordRejected when it cannot be."""
    if kind == "lead":
        return map_contact(payload, mapping)
    if kind == "call":
        return map_call(payload, mapping)
    if kind == "email":
        return map_email(payload, mapping)
    if kind == "meeting":
        return map_meeting(payload, mapping)
    if kind == "task":
        return map_task(payload, mapping)
    if kind == "deal":
        return map_deal(payload, mapping, probabilities or {})
    raise ValueError(f"no HubSpot object maps to record kind {kind!r}")
