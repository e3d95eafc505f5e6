#!/usr/bin/env bash
# One command: install, migrate, load demo data and run the product (server + background worker +
# the demo MCP server on DEMO_MCP_PORT, default 8765) on SQLite with the offline `local` model.
# Open http://127.0.0.1:8000/api/docs/ afterwards.
source "$(dirname "$0")/_env.sh"
ensure_venv requirements.txt

export DEBUG="${DEBUG:-true}"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
PY=.venv/bin/python

# The demo MCP server (leancore/demo_mcp.py: a calculator and the demo company's data), its own
# process; the SSRF guard lets exactly its origin through (every other private address stays refused).
DEMO_MCP_PORT="${DEMO_MCP_PORT:-8765}"
export DEMO_MCP_URL="http://127.0.0.1:$DEMO_MCP_PORT/mcp"
export MCP_ALLOWED_PRIVATE_URLS="${MCP_ALLOWED_PRIVATE_URLS:+$MCP_ALLOWED_PRIVATE_URLS,}http://127.0.0.1:$DEMO_MCP_PORT"
PIDS=()
cleanup() { [ ${#PIDS[@]} -eq 0 ] || kill "${PIDS[@]}" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
$PY -m leancore.demo_mcp --port "$DEMO_MCP_PORT" &
PIDS+=($!)

$PY manage.py migrate --noinput
$PY manage.py collectstatic --noinput >/dev/null
for _ in $(seq 50); do  # the demo MCP server is up (it starts while the database migrates)
  (: </dev/tcp/127.0.0.1/"$DEMO_MCP_PORT") 2>/dev/null && break
  sleep 0.2
done
$PY manage.py seed_demo

if [ -z "${REDIS_URL:-}" ]; then
  # One process: the worker runs inside the server, so async turns reach WebSockets live.
  export EMBEDDED_WORKER=true
else
  $PY manage.py db_worker --no-reload &
  PIDS+=($!)
fi

echo "LeanCore on http://$HOST:$PORT  (API docs: http://$HOST:$PORT/api/docs/, admin: http://$HOST:$PORT/admin/)"
.venv/bin/daphne -b "$HOST" -p "$PORT" --websocket_timeout -1 leancore.asgi:application
