"""The planning tests' stores: a team, three months of hand-built history, the seed's month.

"Now" is 15 Oct 2026 12:00 JST, so the trailing three complete months are July–September
2026 (Asia/Tokyo, JP holidays). tests/test_kpi_planning.py works plan, funnel and target
suggestions out by hand from these; the API tests serve them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from connectors.records import Call, Deal, Meeting, Record, Rep, Team
from kpi import KpiContext, Target
from tests.support.kpi_records import H, at, call

NOW = datetime(2026, 10, 15, 3, 0, tzinfo=UTC)
CTX = KpiContext(timezone="Asia/Tokyo", holidays="JP", now=NOW)
OCT_1 = date(2026, 10, 1)

PEOPLE: list[Record] = [
    Team(source=H, crm_id="t1", name="Tokyo"),
    Rep(source=H, crm_id="r1", name="Aiko", team_crm_id="t1"),
    Rep(source=H, crm_id="r2", name="Ben", team_crm_id="t1"),
    Rep(source=H, crm_id="r3", name="Chie (left)", team_crm_id="t1", active=False),
    Rep(source=H, crm_id="r4", name="Gone", team_crm_id="t1", deleted=True),
]


def deal(crm_id: str, closed: str, won: bool, rep: str | None) -> Deal:
    return Deal(
        source=H,
        crm_id=crm_id,
        created_at=at(closed) - timedelta(days=20),
        closed_at=at(closed),
        is_closed=True,
        is_won=won,
        amount=Decimal("100000"),
        rep_crm_id=rep,
    )


def meeting(crm_id: str, booked: str, rep: str) -> Meeting:
    return Meeting(source=H, crm_id=crm_id, booked_at=at(booked), rep_crm_id=rep)


# A hand-built history (timestamps UTC, all at 01:00 = 10:00 JST, so the day is the same):
#
#            calls  connected  effective (≥ 60 s)  meetings  closed  won
#   June r1    5        5            5                0         1      0   (outside the window)
#   July r1    2        1            1                1         1      1
#   Aug  r1    4        2            1                0         1      0
#   Aug  r2    4        2            2                1         2      0
#   Sep  r2    0        0            0                0         1      1
#   Oct  r1    3        3            3                0         1      1   (the current month)
#
# Org, July–September pooled:
#   effective_contact_rate  = (1 + 3 + 0) / (2 + 8 + 0) = 4 / 10 = 0.4
#   meeting_conversion_rate = (1 + 1 + 0) / (1 + 3 + 0) = 2 / 4  = 0.5
#   win_rate                = (1 + 0 + 1) / (1 + 3 + 1) = 2 / 5  = 0.4
# (the monthly rates' mean would differ: effective_contact_rate (0.5 + 0.375) / 2 = 0.4375).
HISTORY: list[Record] = [
    *PEOPLE,
    *(
        call(f"jun{i}", f"2026-06-{i + 1:02d}T01:00", duration_ms=120_000, rep_crm_id="r1")
        for i in range(5)
    ),
    deal("d-jun", "2026-06-20T01:00", False, "r1"),
    call("jul1", "2026-07-01T01:00", duration_ms=120_000, rep_crm_id="r1"),
    call("jul2", "2026-07-02T01:00", "no_answer", rep_crm_id="r1"),
    meeting("m-jul", "2026-07-03T01:00", "r1"),
    deal("d-jul", "2026-07-20T01:00", True, "r1"),
    call("aug1", "2026-08-03T01:00", duration_ms=90_000, rep_crm_id="r1"),
    call("aug2", "2026-08-03T02:00", duration_ms=30_000, rep_crm_id="r1"),
    call("aug3", "2026-08-04T01:00", "no_answer", rep_crm_id="r1"),
    call("aug4", "2026-08-04T02:00", "busy", rep_crm_id="r1"),
    call("aug5", "2026-08-05T01:00", duration_ms=200_000, rep_crm_id="r2"),
    call("aug6", "2026-08-05T02:00", duration_ms=61_000, rep_crm_id="r2"),
    call("aug7", "2026-08-06T01:00", "voicemail", rep_crm_id="r2"),
    call("aug8", "2026-08-06T02:00", "no_answer", rep_crm_id="r2"),
    meeting("m-aug", "2026-08-07T01:00", "r2"),
    deal("d-aug1", "2026-08-20T01:00", False, "r1"),
    deal("d-aug2", "2026-08-21T01:00", False, "r2"),
    deal("d-aug3", "2026-08-24T01:00", False, "r2"),
    deal("d-sep", "2026-09-15T01:00", True, "r2"),
    *(
        call(f"oct{i}", f"2026-10-0{i + 1}T01:00", duration_ms=120_000, rep_crm_id="r1")
        for i in range(3)
    ),
    deal("d-oct", "2026-10-05T01:00", True, "r1"),
]


# The seed's example in October 2026: 1,200 calls, 360 of them connected for 2 minutes (30 %,
# all effective contacts), 840 unanswered; 12 meetings set. Each call at its own minute from
# 1 Oct 09:00 JST (1,200 minutes: through 2 Oct 05:00 JST).
SEED_MONTH: list[Record] = [
    *PEOPLE,
    *(
        Call(
            source=H,
            crm_id=f"c{i}",
            occurred_at=datetime(2026, 10, 1, 0, 0, tzinfo=UTC) + timedelta(minutes=i),
            direction="outbound",
            outcome="connected" if i % 10 < 3 else "no_answer",
            duration_ms=120_000 if i % 10 < 3 else None,
            rep_crm_id="r1" if i % 2 else "r2",
        )
        for i in range(1200)
    ),
    *(meeting(f"m{i}", f"2026-10-{i + 5:02d}T01:00", "r1") for i in range(12)),
]


def seed_targets(**override: float) -> list[Target]:
    # The seed's targets: 20 meetings from 1,200 calls at a 30 % connect rate, i.e. 360
    # contacts, so a conversion of 20 / 360 = 5.5…% (the seed prints it truncated: 5.5 %).
    values = {
        "calls": 1200.0,
        "connect_rate": 0.30,
        "effective_contacts": 360.0,
        "meeting_conversion_rate": 20 / 360,
        "meetings_set": 20.0,
        **override,
    }
    return [Target(kpi, "month", OCT_1, "org", "org", value) for kpi, value in values.items()]
