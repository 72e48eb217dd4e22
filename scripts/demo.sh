#!/usr/bin/env bash
# The embedded default: a simulated HubSpot portal synced into SQLite, then served.
. "$(dirname "$0")/venv.sh"
exec .venv/bin/iskpi demo "$@"
