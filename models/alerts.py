"""The alerts sent to the webhook (docs/operations.md): one row per alert, claimed once.

An alert is one message of one ``kind`` for one period (the day of a pacing check, the
Monday of the week a digest covers). The row is inserted before the first delivery, and
the unique (kind, period_start) makes that insert the claim: of several replicas due to
send the same alert, one inserts it and the others see it there.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base

AlertKind = Literal["midday", "end_of_day", "weekly_digest"]
AlertStatus = Literal["pending", "sent", "failed"]


class Alert(Base):
    """One pacing alert or weekly digest: its text, and how its delivery went."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("kind", "period_start"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[AlertKind] = mapped_column(String(16))
    period_start: Mapped[date]
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[AlertStatus] = mapped_column(String(16))
    attempts: Mapped[int]
    last_error: Mapped[str | None] = mapped_column(Text)  # never the webhook's URL
    created_at: Mapped[datetime]
    # Set while a process posts it, so two never post it at once; None between attempts.
    delivering_since: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
