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

# The OpenAPI contract, fuzzed (tests/fuzz/run.py): its own database and Daphne process, started now
# so that it runs beside the checks and the first tests (it keeps less than one core busy, waiting on
# its server); its report is printed after the tests. A focused run (arguments given) skips it, and
# so does FUZZ=0.
fuzz_pid=""
if [ $# -eq 0 ] && [ "${FUZZ:-1}" != "0" ]; then
  mkdir -p var
  .venv/bin/python -m tests.fuzz.run >var/fuzz.log 2>&1 &
  fuzz_pid=$!
  trap '[ -z "$fuzz_pid" ] || kill "$fuzz_pid" 2>/dev/null || true' EXIT  # a failed check stops it too
fi

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== import contracts (pyproject.toml: [tool.importlinter])"
.venv/bin/lint-imports
echo "== types (pyproject.toml: [tool.mypy]; strict, every module of the application)"
.venv/bin/mypy
echo "== django checks"
.venv/bin/python manage.py check --fail-level WARNING
.venv/bin/python manage.py check --deploy --fail-level ERROR  # deployment warnings depend on the host; errors fail
.venv/bin/python manage.py makemigrations --check --dry-run
.venv/bin/python manage.py spectacular --validate --fail-on-warn --file /dev/null
echo "== tests (the 15 slowest listed at the end)"
mkdir -p var
tests_status=0
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" -q --durations=15 "$@" | tee var/pytest.log || tests_status=$?

if [ -n "$fuzz_pid" ]; then
  fuzz_status=0
  wait "$fuzz_pid" || fuzz_status=$?
  fuzz_pid=""
  echo "== schemathesis (started with the checks; its output)"
  cat var/fuzz.log
  echo "== the 15 slowest tests and the tests' result (repeated from above)"
  sed -n '/slowest 15 durations/,$p' var/pytest.log
  [ "$fuzz_status" -eq 0 ] || { echo "schemathesis failed ($fuzz_status)"; [ "$tests_status" -ne 0 ] || tests_status=$fuzz_status; }
fi
exit "$tests_status"
