#!/usr/bin/env bash
# Bring the local stack up, idempotently: a Prefect server bound to 127.0.0.1 on SQLite (or on
# a local PostgreSQL cluster: RETRAIN_STACK_DB=postgres, see stack-pg.sh), the process work
# pool, every deployment of prefect.yaml with one schedule per model, and N process workers
# on the pool. Re-running it reuses whatever is already up. `stack-down.sh` stops it.
#
# Usage: stack-up.sh [--workers N] [--port PORT]
# Environment: RETRAIN_PREFECT_PORT (the server's port on 127.0.0.1, default 4200; --port wins),
# RETRAIN_HOME (default ./var),
# RETRAIN_STACK_DB (sqlite | postgres; default sqlite), RETRAIN_STACK_WORKERS (default 1;
# --workers wins), RETRAIN_STACK_WORKER_LIMIT (flow runs at once per worker; default: no limit),
# RETRAIN_PG_PORT (default: a free port), RETRAIN_PG_BIN (default: the newest
# /usr/lib/postgresql/*/bin), PREFECT (the prefect executable; default .venv/bin/prefect).
set -euo pipefail
cd "$(dirname "$0")/.."

DB=${RETRAIN_STACK_DB:-sqlite}
WORKERS=${RETRAIN_STACK_WORKERS:-1}
PORT=${RETRAIN_PREFECT_PORT:-4200}
while [ $# -gt 0 ]; do
  case $1 in
    --workers) WORKERS=${2:-}; shift 2 || shift ;;
    --workers=*) WORKERS=${1#*=}; shift ;;
    --port) PORT=${2:-}; shift 2 || shift ;;
    --port=*) PORT=${1#*=}; shift ;;
    *) echo "stack-up: unknown argument '$1' (accepted: --workers N, --port PORT)" >&2; exit 2 ;;
  esac
done
if ! [[ $PORT =~ ^[0-9]+$ ]] || [ "$PORT" -lt 1024 ] || [ "$PORT" -gt 65535 ]; then
  echo "stack-up: --port / RETRAIN_PREFECT_PORT '$PORT' is not accepted; use 1024 to 65535" >&2
  exit 2
fi
if ! [[ $WORKERS =~ ^[0-9]+$ ]] || [ "$WORKERS" -lt 1 ] || [ "$WORKERS" -gt 64 ]; then
  echo "stack-up: --workers / RETRAIN_STACK_WORKERS '$WORKERS' is not accepted; use 1 to 64" >&2
  exit 2
fi
case $DB in
  sqlite | postgres) ;;
  *) echo "stack-up: RETRAIN_STACK_DB='$DB' is not accepted; use sqlite or postgres" >&2; exit 2 ;;
esac
LIMIT_ARGS=()
if [ -n "${RETRAIN_STACK_WORKER_LIMIT:-}" ]; then
  LIMIT_ARGS=(--limit "$RETRAIN_STACK_WORKER_LIMIT")
fi

PREFECT=${PREFECT:-.venv/bin/prefect}
HOST=127.0.0.1
HOME_DIR=${RETRAIN_HOME:-var}
STATE="$HOME_DIR/stack"
POOL=retraining-pool

export PREFECT_API_URL="http://$HOST:$PORT/api"
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
# Concurrency leases on disk (under PREFECT_HOME), not in the server's memory: a slot of the
# `retraining-promotion` limit held by a run that died frees when its 60 s lease expires
# (the server sweeps expired leases every 15 s), even across a server restart.
export PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE=${PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE:-prefect.server.concurrency.lease_storage.filesystem}
export PREFECT_WORKER_QUERY_SECONDS=${PREFECT_WORKER_QUERY_SECONDS:-5}
mkdir -p "$STATE"

alive() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

start() {  # name, command...: own session, so stack-down can stop the whole process group
  local name=$1; shift
  setsid "$@" >"$STATE/$name.log" 2>&1 < /dev/null &
  echo $! >"$STATE/$name.pid"
}

if [ "$DB" = postgres ]; then
  # shellcheck source=deployments/stack-pg.sh
  source deployments/stack-pg.sh
  pg_up
fi

if alive server; then
  echo "server: already running (pid $(cat "$STATE/server.pid"))"
  if [ -f "$STATE/api_url" ] && [ "$(cat "$STATE/api_url")" != "$PREFECT_API_URL" ]; then
    echo "stack-up: the running server serves $(cat "$STATE/api_url"), not port $PORT;" \
      "run make stack-down first to move it" >&2
    exit 2
  fi
else
  if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
    echo "stack-up: port $PORT on $HOST is already in use; choose another with" \
      "RETRAIN_PREFECT_PORT=PORT make stack-up" >&2
    exit 2
  fi
  start server "$PREFECT" server start --host "$HOST" --port "$PORT"
  echo "server: started (pid $(cat "$STATE/server.pid")), log $STATE/server.log"
fi
"$PREFECT" server status --wait --timeout 120 >/dev/null
echo "$PREFECT_API_URL" >"$STATE/api_url"  # CLI flows use this server (flows/ephemeral.py)

"$PREFECT" work-pool inspect "$POOL" >/dev/null 2>&1 \
  || "$PREFECT" work-pool create "$POOL" --type process >/dev/null
echo "work pool: $POOL"

"$PREFECT" --no-prompt deploy --all >"$STATE/deploy.log" 2>&1 \
  || { cat "$STATE/deploy.log"; exit 1; }
echo "deployments: retraining/weekly, drift-monitor/daily, challenger-evaluation/daily, post-promotion-watch/daily"
# one schedule per model of retraining.toml, concurrency limit = number of models; each
# model's global promotion limit (retraining-promotion-<model>) is made by its first cycle
"${PYTHON_BIN:-.venv/bin/python}" -m deployments.schedules

for i in $(seq 1 "$WORKERS"); do  # worker 1's files are worker.pid/.log, then worker-2...
  name=worker
  [ "$i" -gt 1 ] && name="worker-$i"
  if alive "$name"; then
    echo "$name: already running (pid $(cat "$STATE/$name.pid"))"
  else
    start "$name" "$PREFECT" worker start --pool "$POOL" --type process \
      --name "retraining-$name" "${LIMIT_ARGS[@]}"
    echo "$name: started (pid $(cat "$STATE/$name.pid")), log $STATE/$name.log"
  fi
done

cat <<TXT

Prefect UI: http://$HOST:$PORT (database: $DB, workers: $WORKERS)
In this shell:  export PREFECT_API_URL=$PREFECT_API_URL
Then e.g.:      $PREFECT deployment run retraining/weekly -p force_retrain=true --watch
Stop it all:    make stack-down
TXT
