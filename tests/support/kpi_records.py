"""The KPI engine's hand-worked store: October 2026 in Asia/Tokyo, and the builders behind it.

The fixture month is October 2026 in Asia/Tokyo (UTC+9, no DST) with JP
holidays: 22 weekdays minus Sports Day (Mon 12 Oct) = 21 business days.
Timestamps below are UTC; "JST" notes give the local time that decides the day.
tests/test_kpi_engine.py works every KPI out by hand from ``FIXTURE``; the API
tests serve it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from connectors.records import (
    Call,
    Deal,
    Email,
    FollowUpTask,
    Lead,
    Meeting,
    Record,
    Rep,
    Source,
    Team,
)
from kpi import KpiContext
from models import TABLE_BY_KIND, store

CTX = KpiContext(timezone="Asia/Tokyo", holidays="JP")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def put(engine: Engine, records: Iterable[Record]) -> None:
    """Store records the way the sync does: one upsert per kind."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_kind.setdefault(record.kind, []).append(record.as_row())
    with engine.begin() as conn:
        for kind, rows in by_kind.items():
            store.upsert_records(conn, TABLE_BY_KIND[kind], rows, datetime.now(UTC))


H: Source = "hubspot"


def call(crm_id: str, when: str, outcome: str = "connected", **kw: Any) -> Call:
    kw.setdefault("direction", "outbound")
    return Call(source=H, crm_id=crm_id, occurred_at=at(when), outcome=outcome, **kw)  # type: ignore[arg-type]


def email(crm_id: str, when: str, **kw: Any) -> Email:
    kw.setdefault("direction", "outbound")
    return Email(source=H, crm_id=crm_id, sent_at=at(when), **kw)


FIXTURE: list[Record] = [
    Team(source=H, crm_id="t1", name="Tokyo"),
    Team(source=H, crm_id="t2", name="Osaka"),
    Team(source=H, crm_id="t3", name="Closed team", deleted=True),
    Rep(source=H, crm_id="r1", name="Aiko", team_crm_id="t1"),
    Rep(source=H, crm_id="r2", name="Ben", team_crm_id="t1"),
    Rep(source=H, crm_id="r3", name="Chie", team_crm_id="t2"),
    Rep(source=H, crm_id="r4", name="Gone", team_crm_id="t2", deleted=True),
    Rep(source=H, crm_id="r5", name="Dai"),  # no team, no activity
    # --- calls ------------------------------------------------------------------------------
    call("c1", "2026-10-01T00:30", duration_ms=120_000, rep_crm_id="r1", contact_crm_id="L1"),
    call("c2", "2026-10-01T01:00", duration_ms=59_999, rep_crm_id="r1", contact_crm_id="L2"),
    call("c3", "2026-10-01T02:00", "no_answer", rep_crm_id="r1", contact_crm_id="L1"),
    call("c4", "2026-10-02T03:00", "busy", rep_crm_id="r1", contact_crm_id="L3"),
    # 30 Sep 15:30 UTC is 1 Oct 00:30 JST: October.
    call("c5", "2026-09-30T15:30", duration_ms=60_000, rep_crm_id="r1"),
    # 31 Oct 15:30 UTC is 1 Nov 00:30 JST: November.
    call("c6", "2026-10-31T15:30", duration_ms=300_000, rep_crm_id="r1"),
    call(
        "c7",
        "2026-10-05T01:00",
        direction="inbound",
        duration_ms=200_000,
        rep_crm_id="r1",
        contact_crm_id="L3",
    ),
    call("c8", "2026-10-05T02:00", direction=None, duration_ms=200_000, rep_crm_id="r1"),
    call(
        "c9",
        "2026-10-06T02:00",
        duration_ms=90_000,
        rep_crm_id="r1",
        contact_crm_id="L6",
        deleted=True,
    ),
    call("c10", "2026-10-07T05:00", "voicemail", rep_crm_id="r2", contact_crm_id="L4"),
    call("c11", "2026-10-07T06:00", "wrong_number", rep_crm_id="r2", contact_crm_id="L7"),
    call("c12", "2026-10-08T01:00", duration_ms=61_000),  # no rep: org only
    call("c14", "2026-10-09T01:00", duration_ms=70_000, rep_crm_id="r4"),  # a deleted rep's call
    # --- emails -----------------------------------------------------------------------------
    email(
        "e1",
        "2026-10-01T03:00",
        tracked=True,
        opened=True,
        clicked=True,
        replied=False,
        rep_crm_id="r1",
        contact_crm_id="L1",
    ),
    email(
        "e2",
        "2026-10-02T03:00",
        tracked=True,
        opened=False,
        replied=True,
        rep_crm_id="r1",
        contact_crm_id="L6",
    ),
    email("e3", "2026-10-02T04:00", tracked=False, rep_crm_id="r1"),
    email(
        "e4",
        "2026-10-03T04:00",
        status="BOUNCED",
        sent=False,
        tracked=True,
        opened=True,
        rep_crm_id="r1",
        contact_crm_id="L3",
    ),
    email("e5", "2026-10-09T04:00", direction="inbound", tracked=True, rep_crm_id="r2"),
    email("e6", "2026-10-09T05:00", tracked=True, opened=True, rep_crm_id="r3", deleted=True),
    email("e7", "2026-10-10T05:00", tracked=True, rep_crm_id="r3"),  # opened etc. unknown
    # --- follow-up tasks --------------------------------------------------------------------
    # due 1 Oct 12:00 JST; done 23:59:59.999 JST the same day: on time
    FollowUpTask(
        source=H,
        crm_id="t1",
        due_at=at("2026-10-01T03:00"),
        completed_at=at("2026-10-01T14:59:59.999000"),
        rep_crm_id="r1",
    ),
    # done 2 Oct 00:00 JST: late
    FollowUpTask(
        source=H,
        crm_id="t2",
        due_at=at("2026-10-01T03:00"),
        completed_at=at("2026-10-01T15:00"),
        rep_crm_id="r1",
    ),
    FollowUpTask(
        source=H,
        crm_id="t3",
        due_at=at("2026-10-02T03:00"),
        completed_at=at("2026-09-30T00:00"),
        rep_crm_id="r1",
    ),  # early: on time
    FollowUpTask(source=H, crm_id="t4", due_at=at("2026-10-02T03:00"), rep_crm_id="r1"),
    FollowUpTask(
        source=H,
        crm_id="t5",
        due_at=at("2026-10-03T03:00"),
        completed_at=at("2026-10-03T03:00"),
        rep_crm_id="r2",
        deleted=True,
    ),
    # --- meetings ---------------------------------------------------------------------------
    Meeting(
        source=H,
        crm_id="m1",
        booked_at=at("2026-10-01T05:00"),
        start_at=at("2026-10-08T05:00"),
        outcome="completed",
        rep_crm_id="r1",
    ),
    Meeting(
        source=H,
        crm_id="m2",
        booked_at=at("2026-10-02T05:00"),
        outcome="scheduled",
        rep_crm_id="r1",
    ),
    Meeting(
        source=H,
        crm_id="m3",
        booked_at=at("2026-10-03T05:00"),
        start_at=at("2026-10-10T05:00"),
        outcome="canceled",
        rep_crm_id="r1",
    ),
    Meeting(
        source=H,
        crm_id="m4",
        booked_at=at("2026-10-20T05:00"),
        start_at=at("2026-10-25T05:00"),
        outcome="completed",
        rep_crm_id="r2",
    ),
    # 30 Sep 23:59:59 JST: September.
    Meeting(
        source=H,
        crm_id="m5",
        booked_at=at("2026-09-30T14:59:59"),
        start_at=at("2026-10-05T05:00"),
        outcome="completed",
        rep_crm_id="r2",
    ),
    Meeting(
        source=H,
        crm_id="m6",
        booked_at=at("2026-10-21T05:00"),
        outcome="completed",
        rep_crm_id="r3",
        deleted=True,
    ),
    # --- leads ------------------------------------------------------------------------------
    Lead(
        source=H,
        crm_id="L1",
        created_at=at("2026-10-01T00:00"),
        channel="web",
        industry="saas",
        company_size="10-49",
        sql_at=at("2026-10-05T00:00"),
        rep_crm_id="r1",
    ),
    Lead(
        source=H, crm_id="L2", created_at=at("2026-10-01T00:10"), channel="event", rep_crm_id="r1"
    ),
    Lead(
        source=H,
        crm_id="L3",
        created_at=at("2026-10-01T23:00"),
        channel="web",
        company_size="1-9",
        rep_crm_id="r2",
    ),
    Lead(source=H, crm_id="L4", created_at=at("2026-10-03T00:00"), rep_crm_id="r1"),
    Lead(source=H, crm_id="L5", created_at=at("2026-10-04T00:00"), channel="ads", rep_crm_id="r3"),
    Lead(source=H, crm_id="L6", created_at=at("2026-10-05T00:00"), rep_crm_id="r1"),
    Lead(source=H, crm_id="L7", created_at=at("2026-10-06T00:00"), rep_crm_id="r1", deleted=True),
    # created 1 Oct 01:00 JST (October); SQL at 1 Nov 00:00 JST (November)
    Lead(
        source=H,
        crm_id="L8",
        created_at=at("2026-09-30T16:00"),
        channel="web",
        sql_at=at("2026-10-31T15:00"),
        rep_crm_id="r2",
    ),
    Lead(source=H, crm_id="L9", created_at=at("2026-10-10T00:00"), sql_at=at("2026-10-11T00:00")),
    # --- deals ------------------------------------------------------------------------------
    Deal(
        source=H,
        crm_id="d1",
        created_at=at("2026-10-02T00:00"),
        rep_crm_id="r1",
        contact_crm_id="L1",
        bant_budget="yes",
        bant_authority="cfo",
        bant_need="crm",
        bant_timing="q4",
        handoff_rating=5,
        closed_at=at("2026-10-20T00:00"),
        is_closed=True,
        is_won=True,
        amount=Decimal("1000000"),
    ),
    Deal(
        source=H,
        crm_id="d2",
        created_at=at("2026-10-04T12:00"),
        rep_crm_id="r1",
        contact_crm_id="L2",
        bant_budget="yes",
        bant_authority="",
        bant_need="crm",
        bant_timing="  ",
        closed_at=at("2026-10-25T00:00"),
        is_closed=True,
        is_won=False,
        amount=Decimal("500000"),
    ),
    Deal(
        source=H,
        crm_id="d3",
        created_at=at("2026-10-05T00:00"),
        rep_crm_id="r2",
        handoff_rating=3,
        closed_at=at("2026-10-28T00:00"),
        amount=Decimal("2000000"),
        probability=0.5,
    ),
    Deal(
        source=H,
        crm_id="d4",
        created_at=at("2026-10-06T00:00"),
        contact_crm_id="L3",
        bant_budget="b",
        bant_authority="a",
        bant_need="n",
        bant_timing="t",
        handoff_rating=4,
        closed_at=at("2026-10-21T00:00"),
        is_closed=True,
        is_won=True,
        amount=Decimal("3000000"),
    ),  # no IS rep: org only
    Deal(
        source=H,
        crm_id="d5",
        created_at=at("2026-10-07T00:00"),
        rep_crm_id="r1",
        closed_at=at("2026-10-22T00:00"),
        is_closed=True,
        is_won=True,
        amount=Decimal("9999999"),
        deleted=True,
    ),
    Deal(
        source=H,
        crm_id="d6",
        created_at=at("2026-09-15T00:00"),
        rep_crm_id="r2",
        closed_at=at("2026-10-10T00:00"),
        is_closed=True,
        is_won=True,
        amount=Decimal("250000"),
    ),
    Deal(
        source=H,
        crm_id="d7",
        created_at=at("2026-10-08T00:00"),
        rep_crm_id="r3",
        lead_source="partner",
        bant_budget="b",
        bant_authority="a",
        bant_need="n",
        bant_timing="t",
        closed_at=at("2026-10-31T15:00"),
        is_closed=True,
        is_won=True,
        amount=Decimal("400000"),
    ),  # closes 1 Nov JST
]
