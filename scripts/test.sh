#!/usr/bin/env bash
# One command: install, start PostgreSQL/Redis if needed, lint, check, and run the whole test suite.
source "$(dirname "$0")/_env.sh"
ensure_venv requirements-dev.txt
ensure_chromium  # for tests/browser (Playwright drives /usr/bin/chromium)

start_services() {
  if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
    echo "Starting PostgreSQL…"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 && break; sleep 1; done
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "Starting Redis…"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
  fi
}
start_services

export SECRET_KEY="${SECRET_KEY:-test-secret-key-not-for-production-0123456789abcdef}"
# MCP credentials' own key (check --deploy requires one with DEBUG off); a test key, never a real one
export FIELD_ENCRYPTION_KEY="${FIELD_ENCRYPTION_KEY:-AexEQdCC6DLZg2K8sFM7bJhAdXn5h0DwP2JIWwqGrd4=}"
export DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/leancore}"
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
export DEBUG=false
export DB_CONN_MAX_AGE=0  # threads of async tests must not keep connections to the test database
export DB_POOL_SIZE=0     # the test process itself: no pool (the servers the tests start have one)

# The test database is created by pytest; the base database only quiets `makemigrations --check`.
psql "$DATABASE_URL" -c "SELECT 1" >/dev/null 2>&1 || createdb -h 127.0.0.1 -U postgres leancore >/dev/null 2>&1 || true

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== import contracts (pyproject.toml: [tool.importlinter])"
.venv/bin/lint-imports
echo "== types (pyproject.toml: [tool.mypy]; strict for services, selectors and the turn pipeline)"
.venv/bin/mypy
echo "== django checks"
.venv/bin/python manage.py check --fail-level WARNING
.venv/bin/python manage.py check --deploy --fail-level ERROR  # deployment warnings depend on the host; errors fail
.venv/bin/python manage.py makemigrations --check --dry-run
.venv/bin/python manage.py spectacular --validate --fail-on-warn --file /dev/null
echo "== tests (the 15 slowest listed at the end)"
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" -q --durations=15 "$@"

# The OpenAPI contract, fuzzed: its own server and database, after the parallel test workers.
# A focused run (arguments given) skips it, and so does FUZZ=0.
if [ $# -eq 0 ] && [ "${FUZZ:-1}" != "0" ]; then
  echo "== schemathesis"
  .venv/bin/python -m tests.fuzz.run
fi
