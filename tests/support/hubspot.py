"""The simulated HubSpot portal's test data: its access token and a small, seeded dataset."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from simulators.hubspot.seed import generate_dataset

TOKEN = "test-token"
END = datetime(2026, 10, 31, 12, tzinfo=UTC)


def small_dataset() -> Any:
    """One month (to ``END``) of two teams of two reps, seeded: the same data every call."""
    return generate_dataset(
        seed=11, teams=2, reps_per_team=2, months=1, end=END, calls_per_rep_day=12
    )
