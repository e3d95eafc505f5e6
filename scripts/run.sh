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
$PY manage.py seed_demo --operator  # and an operator for the admin (DEBUG only: a known password)

if [ -z "${REDIS_URL:-}" ]; then
  # One process: the worker runs inside the server, so async turns reach WebSockets live.
  export EMBEDDED_WORKER=true
else
  $PY manage.py db_worker --no-reload &
  PIDS+=($!)
fi

# Where to go. The admin is for operators (is_staff): seed_demo --operator made one; name them.
URL="http://$HOST:$PORT"
OPERATORS=$($PY manage.py shell --no-imports -c "from accounts.models import User
print(', '.join(User.objects.filter(is_staff=True, is_active=True).order_by('email').values_list('email', flat=True)[:3]))")
echo
echo "LeanCore on $URL"
echo "  API docs:   $URL/api/docs/  (Redoc: $URL/api/redoc/, OpenAPI: $URL/api/schema/)"
echo "  demo user:  demo@leancore.local / ${DEMO_PASSWORD:-demo-Passw0rd!}  (owner of Demo Company; for the API, not the admin)"
if [ -n "$OPERATORS" ]; then
  echo "  admin:      $URL/admin/  log in as operator@leancore.local / ${DEMO_OPERATOR_PASSWORD:-operator-Passw0rd!}  (operators: $OPERATORS)"
else
  echo "  admin:      $URL/admin/  no operator yet; create one in another terminal (in $ROOT):"
  echo "              .venv/bin/python manage.py createsuperuser"
fi
echo "  try it:     the README's \"Walk-through with curl\""
echo
.venv/bin/daphne -b "$HOST" -p "$PORT" --websocket_timeout -1 leancore.asgi:application
