#!/usr/bin/env bash
# Make (once) and update the project's virtual environment in .venv.
# Usage: bash scripts/venv.sh [extras]      e.g. bash scripts/venv.sh "[dev]"
# Run it as a program, not sourced: sourced, it would take the caller's arguments
# (`scripts/demo.sh --port 8001` once became `pip install -e .--port`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
EXTRAS=${1:-}
case "$EXTRAS" in
  "" | "["*"]") ;;
  *) echo "venv.sh: extras look like \"[dev]\", not ${EXTRAS@Q}" >&2; exit 2 ;;
esac
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
fi
# Skip pip when this pyproject.toml is already installed with these extras (the install
# is editable, so source changes need none); a changed pyproject.toml reinstalls.
stamp() { echo "$(sha256sum pyproject.toml | cut -d' ' -f1) $(.venv/bin/python -V)"; }
STAMP_FILE=.venv/.iskpi-installed${EXTRAS:+-${EXTRAS//[^a-z0-9]/}}
if [ "$(cat "$STAMP_FILE" 2>/dev/null)" != "$(stamp)" ] \
   || ! .venv/bin/python -c "import service" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${EXTRAS}"
  stamp > "$STAMP_FILE"
  # Every extra includes the base install.
  stamp > .venv/.iskpi-installed
fi
