"""A simulated HubSpot portal in a process of its own, for the benchmarks.

Prints its URL on the first line of stdout, then takes commands on stdin:
`touch <object_type> <n>` modifies n records, `archive <object_type> <n>`
archives n; each answers `ok`. EOF stops it.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from simulators.hubspot.portal import HubSpotPortal, serve_portal
from simulators.hubspot.seed import generate_dataset

TOKEN = "bench-token"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, required=True)
    args = parser.parse_args()
    portal = HubSpotPortal(TOKEN)
    # Measure our own costs, not HubSpot's 190-per-10-seconds pacing.
    portal.burst_limit = 1_000_000
    portal.load(
        generate_dataset(
            seed=3,
            teams=5,
            reps_per_team=10,
            months=12,
            end=datetime(2026, 11, 1, tzinfo=UTC),
            total_calls=args.calls,
        )
    )
    running = serve_portal(portal)
    print(running.url, flush=True)
    for line in sys.stdin:
        verb, object_type, n = line.split()
        ids = portal.ids(object_type)[: int(n)]
        now = datetime.now(UTC)
        for object_id in ids:
            if verb == "touch":
                portal.update(object_type, object_id, {}, modified_at=now)
            else:
                portal.archive(object_type, object_id, at=now)
        print("ok", flush=True)
    running.stop()


if __name__ == "__main__":
    main()
