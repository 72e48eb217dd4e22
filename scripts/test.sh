#!/usr/bin/env bash
# The whole test suite: lint, formatting, types, and pytest on SQLite and PostgreSQL.
# Extra arguments go to pytest (scripts/test.sh -k sync -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh "[dev]"

# The store tests need PostgreSQL on 127.0.0.1:5432 (ISKPI_TEST_POSTGRES_URL overrides).
if [ -z "${ISKPI_TEST_POSTGRES_URL:-}" ] && command -v pg_isready >/dev/null \
   && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL…"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

# The dashboard tests drive Debian's Chromium (with CJK fonts for the screenshots). If it
# cannot be installed they are skipped with this reason, which the skip summary shows.
if [ -z "${ISKPI_TEST_CHROMIUM:-}" ] && ! dpkg -s chromium fonts-noto-cjk >/dev/null 2>&1; then
  echo "installing chromium for the dashboard tests…"
  if ! (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq \
        && apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null); then
    export ISKPI_TEST_NO_BROWSER="chromium not installed: apt-get install chromium fonts-noto-cjk failed"
    echo "note: $ISKPI_TEST_NO_BROWSER; the dashboard tests will be skipped" >&2
  fi
fi

# Lint, formatting and types: all three run, and any failure fails the run before pytest.
failed=()
.venv/bin/ruff check . || failed+=("ruff check")
.venv/bin/ruff format --check --output-format concise . || failed+=("ruff format --check (run: .venv/bin/ruff format .)")
.venv/bin/mypy || failed+=("mypy")
if [ ${#failed[@]} -gt 0 ]; then
  printf 'failed: %s\n' "${failed[@]}" >&2
  exit 1
fi

status=0
.venv/bin/pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  # pytest's "no tests collected" is not a pass.
  echo "failed: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
