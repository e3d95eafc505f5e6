#!/usr/bin/env bash
# One command: install, migrate, load demo data and run the product (server + background worker)
# on SQLite with the offline `local` model. Open http://127.0.0.1:8000/api/docs/ afterwards.
source "$(dirname "$0")/_env.sh"
ensure_venv requirements.txt

export DEBUG="${DEBUG:-true}"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
PY=.venv/bin/python

$PY manage.py migrate --noinput
$PY manage.py collectstatic --noinput >/dev/null
$PY manage.py seed_demo

if [ -z "${REDIS_URL:-}" ]; then
  # One process: the worker runs inside the server, so async turns reach WebSockets live.
  export EMBEDDED_WORKER=true
else
  $PY manage.py db_worker --no-reload &
  WORKER_PID=$!
  trap 'kill $WORKER_PID 2>/dev/null || true' EXIT INT TERM
fi

echo "LeanCore on http://$HOST:$PORT  (API docs: http://$HOST:$PORT/api/docs/, admin: http://$HOST:$PORT/admin/)"
.venv/bin/daphne -b "$HOST" -p "$PORT" --websocket_timeout -1 leancore.asgi:application
