"""The review sheets' hand-worked store: late November and early December 2026, Asia/Tokyo, JP.

Business days (JP holidays): November 2026 has 21 weekdays minus Culture Day (Tue 3 Nov)
and Labour Thanksgiving (Mon 23 Nov) = 19; December 2026 has 23 weekdays and no holiday = 23.
ISO week 2026-W49 runs Mon 30 Nov – Sun 6 Dec: 1 business day in November, 4 in December.
Timestamps are UTC; JST is UTC+9. tests/test_sheets.py works every figure out from these.

Rep r1 (Aiko, team t1), Thu 3 Dec JST:
  09:00 call connected 120 s (effective)   10:00 call connected 30 s   11:59:59 no answer
  12:00:00 call connected 90 s (effective; exactly 12:00: after the midday check)   15:00 busy
  10:00 email sent   13:00 email sent     11:00 meeting booked   16:00 meeting booked
  → through 12:00: 3 calls, 2 connects, 1 effective, 1 email, 1 meeting
  → the whole day: 5 calls, 3 connects, 2 effective, 2 emails, 2 meetings
Mon 30 Nov JST: 2 calls connected 120 s (effective).   Tue 24 Nov JST (week W48): 3 no answers.
Rep r2 (Ben, team t1): nothing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from connectors.records import Meeting, Record, Rep, Team
from kpi import Target
from tests.support.kpi_records import H, at, call, email

NOV_1, DEC_1, DEC_3 = date(2026, 11, 1), date(2026, 12, 1), date(2026, 12, 3)
W49 = date(2026, 11, 30)
R1, R2, T1 = "hubspot:r1", "hubspot:r2", "hubspot:t1"
# Thu 3 Dec 15:00 JST: December is running (3 of its 23 business days elapsed), so is W49.
DEC_3_AFTERNOON = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
# Thu 10 Dec: W49 is over; actions due before today are overdue.
DEC_10 = datetime(2026, 12, 10, 1, 0, tzinfo=UTC)
# Tue 1 Dec: when the actions are created.
DEC_1_MORNING = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)

SHEETS_FIXTURE: list[Record] = [
    Team(source=H, crm_id="t1", name="Tokyo"),
    Rep(source=H, crm_id="r1", name="Aiko", team_crm_id="t1"),
    Rep(source=H, crm_id="r2", name="Ben", team_crm_id="t1"),
    call("d1", "2026-12-03T00:00", duration_ms=120_000, rep_crm_id="r1"),
    call("d2", "2026-12-03T01:00", duration_ms=30_000, rep_crm_id="r1"),
    call("d3", "2026-12-03T02:59:59", "no_answer", rep_crm_id="r1"),
    call("d4", "2026-12-03T03:00:00", duration_ms=90_000, rep_crm_id="r1"),  # 12:00:00 JST
    call("d5", "2026-12-03T06:00", "busy", rep_crm_id="r1"),
    email("de1", "2026-12-03T01:00", rep_crm_id="r1"),
    email("de2", "2026-12-03T04:00", rep_crm_id="r1"),
    Meeting(source=H, crm_id="dm1", booked_at=at("2026-12-03T02:00"), rep_crm_id="r1"),
    Meeting(source=H, crm_id="dm2", booked_at=at("2026-12-03T07:00"), rep_crm_id="r1"),
    call("n1", "2026-11-30T01:00", duration_ms=120_000, rep_crm_id="r1"),
    call("n2", "2026-11-30T02:00", duration_ms=120_000, rep_crm_id="r1"),
    *(call(f"p{i}", f"2026-11-24T0{i}:00", "no_answer", rep_crm_id="r1") for i in range(3)),
]


def sheet_targets() -> list[Target]:
    """Month targets at org and rep r1 scope, and one day target (r1's meetings on 3 Dec)."""
    month = {
        NOV_1: {"calls": 1900.0, "meetings_set": 38.0, "connect_rate": 0.30},
        DEC_1: {"calls": 2300.0, "meetings_set": 46.0, "connect_rate": 0.40, "emails_sent": 460.0},
    }
    out = [
        Target(kpi, "month", start, scope, scope_id, value)
        for start, values in month.items()
        for kpi, value in values.items()
        for scope, scope_id in (("org", "org"), ("rep", R1))
    ]
    out.append(Target("meetings_set", "day", DEC_3, "rep", R1, 4.0))
    return out
