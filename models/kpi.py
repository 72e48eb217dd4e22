"""Tables of the KPI engine: daily rollups, lead first touches, targets and their revisions, costs,
forecast snapshots.

The daily rollups hold, per (source, rep, local day), the counts and sums the
activity KPIs need, so month and year queries read a few rows per rep and day
instead of every call. ``rep_crm_id`` is '' for records without a rep (they
count at org scope only). The local day is cut in the business time zone the
rollups were built for; ``kpi_rollup_state`` keeps that fingerprint so a
change of zone or effective-call threshold is noticed and the rollups rebuilt.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Index, Numeric, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class DailyRollup(Base):
    """Columns every daily rollup has: its key."""

    __abstract__ = True

    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    rep_crm_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)


class DailyCalls(DailyRollup):
    """Outbound calls per rep and local day of occurred at."""

    __tablename__ = "kpi_daily_calls"
    __table_args__ = (Index("ix_kpi_daily_calls_day", "day"),)

    calls: Mapped[int]
    calls_reached: Mapped[int]
    calls_connected: Mapped[int]
    calls_effective: Mapped[int]
    talk_ms: Mapped[int] = mapped_column(BigInteger)


class DailyEmails(DailyRollup):
    """Sent outbound emails per rep and local day of sent at."""

    __tablename__ = "kpi_daily_emails"
    __table_args__ = (Index("ix_kpi_daily_emails_day", "day"),)

    emails_sent: Mapped[int]
    emails_tracked: Mapped[int]
    emails_opened: Mapped[int]
    emails_clicked: Mapped[int]
    emails_replied: Mapped[int]


class DailyMeetings(DailyRollup):
    """Meetings per rep and local day of booked at."""

    __tablename__ = "kpi_daily_meetings"
    __table_args__ = (Index("ix_kpi_daily_meetings_day", "day"),)

    meetings_booked: Mapped[int]
    meetings_completed: Mapped[int]
    meetings_with_start: Mapped[int]
    meetings_canceled: Mapped[int]


class DailyTasks(DailyRollup):
    """Follow-up tasks per rep and local day of due at."""

    __tablename__ = "kpi_daily_tasks"
    __table_args__ = (Index("ix_kpi_daily_tasks_day", "day"),)

    tasks_due: Mapped[int]
    tasks_on_time: Mapped[int]


class LeadFirstTouch(Base):
    """A lead's first outbound call or sent outbound email at or after its creation."""

    __tablename__ = "kpi_lead_first_touch"

    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    lead_crm_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_touch_at: Mapped[datetime]


class RollupDirtyDay(Base):
    """A (source, fact, rep, local day) whose rollup row a sync page invalidated.

    Written in the page's transaction (cheap); ``kpi.flush_rollups`` recomputes and
    clears them at the end of the run; until then the engine reads these keys from raw
    rows. ``lo``/``hi`` are the day's UTC bounds in the business time zone.
    """

    __tablename__ = "kpi_rollup_dirty"

    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    fact: Mapped[str] = mapped_column(String(16), primary_key=True)
    rep_crm_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    lo: Mapped[datetime]
    hi: Mapped[datetime]


class LeadDirty(Base):
    """A lead whose first touch a sync page may have changed (see RollupDirtyDay)."""

    __tablename__ = "kpi_lead_dirty"

    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    lead_crm_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class DataChange(Base):
    """What one sync page (or another write) changed, for the answers that read it.

    ``kind`` ``days``: records of ``source`` whose local days (business time zone) lie in
    [first_day, last_day] changed, before or after the write; ``touches``: calls or emails
    reached leads created on those days, whose first touches may have changed; ``all``:
    anything of ``source``
    (first_day and last_day null). An answer's version is the newest id, the count and the
    sum of ids over the changes it reads (service/cache.py); old rows are pruned.
    """

    __tablename__ = "kpi_data_changes"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(8))
    first_day: Mapped[date | None]
    last_day: Mapped[date | None]
    changed_at: Mapped[datetime]


class RollupState(Base):
    """What the rollups were built for (time zone, effective-call threshold) and when."""

    __tablename__ = "kpi_rollup_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(255))
    rebuilt_at: Mapped[datetime]


class KpiTarget(Base):
    """A target for one KPI, grain, period, scope id and level (docs/targets.md)."""

    __tablename__ = "kpi_targets"
    __table_args__ = (
        UniqueConstraint("kpi", "grain", "period_start", "scope", "scope_id", "level"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kpi: Mapped[str] = mapped_column(String(64))
    grain: Mapped[str] = mapped_column(String(16))  # day … fiscal_year
    period_start: Mapped[date]
    scope: Mapped[str] = mapped_column(String(8))
    scope_id: Mapped[str] = mapped_column(String(96))  # "org" or "<source>:<crm id>"
    # minimum | achievement | stretch (kpi.targets.Level)
    level: Mapped[str] = mapped_column(String(16), server_default="achievement")
    status: Mapped[str] = mapped_column(String(16))  # draft | confirmed (kpi.targets.Status)
    value: Mapped[float]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.current_timestamp())
    updated_by: Mapped[str | None] = mapped_column(String(128))


class KpiTargetRevision(Base):
    """One change of a confirmed target, or the confirmation of one (docs/targets.md); never updated."""

    __tablename__ = "kpi_target_revisions"
    __table_args__ = (
        Index(
            "ix_kpi_target_revisions_target",
            "kpi",
            "grain",
            "period_start",
            "scope",
            "scope_id",
        ),
        Index("ix_kpi_target_revisions_changed_at", "changed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kpi: Mapped[str] = mapped_column(String(64))
    grain: Mapped[str] = mapped_column(String(16))
    period_start: Mapped[date]
    scope: Mapped[str] = mapped_column(String(8))
    scope_id: Mapped[str] = mapped_column(String(96))
    level: Mapped[str] = mapped_column(String(16))
    old_value: Mapped[float | None]  # None: the target did not exist
    new_value: Mapped[float | None]  # None: the target was deleted
    old_status: Mapped[str | None] = mapped_column(String(16))
    new_status: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(128))  # a caller's name, never a credential
    changed_at: Mapped[datetime]


class KpiCost(Base):
    """Acquisition costs entered for a month (the first day of it), for CAC."""

    __tablename__ = "kpi_costs"

    month: Mapped[date] = mapped_column(primary_key=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.current_timestamp())


class ForecastSnapshot(Base):
    """The landing forecast of a month as of one day (the last sync of that day wins)."""

    __tablename__ = "kpi_forecast_snapshots"
    __table_args__ = (UniqueConstraint("month", "as_of", "scope", "scope_id", "kpi"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    month: Mapped[date]
    as_of: Mapped[date]
    scope: Mapped[str] = mapped_column(String(8))
    scope_id: Mapped[str] = mapped_column(String(96))
    kpi: Mapped[str] = mapped_column(String(64))
    actual: Mapped[float]
    forecast: Mapped[float | None]
    taken_at: Mapped[datetime]


ROLLUP_BY_KIND: dict[str, type[DailyRollup]] = {
    "call": DailyCalls,
    "email": DailyEmails,
    "meeting": DailyMeetings,
    "task": DailyTasks,
}
