#!/usr/bin/env bash
# The whole test suite: lint, types, and pytest on SQLite and PostgreSQL.
. "$(dirname "$0")/venv.sh" "[dev]"

# The store tests need PostgreSQL on 127.0.0.1:5432 (ISKPI_TEST_POSTGRES_URL overrides).
if [ -z "${ISKPI_TEST_POSTGRES_URL:-}" ] && command -v pg_isready >/dev/null \
   && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL…"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

# The dashboard tests drive Debian's Chromium (with CJK fonts for the screenshots).
if ! dpkg -s chromium fonts-noto-cjk >/dev/null 2>&1; then
  echo "installing chromium for the dashboard tests…"
  (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null) \
    || echo "note: could not install chromium; the dashboard tests will be skipped (outside CI)"
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check . >/dev/null || echo "note: ruff format would reformat some files"
.venv/bin/mypy
exec .venv/bin/pytest "$@"
