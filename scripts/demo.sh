#!/usr/bin/env bash
# The embedded default: a simulated HubSpot portal synced into SQLite, then served.
# Every argument goes to `iskpi demo` (--port, --no-serve, --months, --source, --database).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
exec .venv/bin/iskpi demo "$@"
