"""The simulated HubSpot portal's test data: its access token, a small seeded dataset, the portal serving it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from simulators.hubspot.portal import HubSpotPortal, RunningPortal, serve_portal
from simulators.hubspot.seed import generate_dataset

TOKEN = "test-token"
END = datetime(2026, 10, 31, 12, tzinfo=UTC)


def small_dataset() -> Any:
    """One month (to ``END``) of two teams of two reps, seeded: the same data every call."""
    return generate_dataset(
        seed=11, teams=2, reps_per_team=2, months=1, end=END, calls_per_rep_day=12
    )


@contextmanager
def small_portal() -> Iterator[RunningPortal]:
    """The simulated portal holding ``small_dataset()``, served over HTTP while in use."""
    hub = HubSpotPortal(TOKEN)
    hub.load(small_dataset())
    running = serve_portal(hub)
    try:
        yield running
    finally:
        running.stop()
