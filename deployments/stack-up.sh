#!/usr/bin/env bash
# Bring the local stack up, idempotently: a Prefect server on SQLite bound to 127.0.0.1,
# the process work pool, the global concurrency limit, every deployment of prefect.yaml,
# and a worker. Re-running it reuses whatever is already up. `stack-down.sh` stops it.
#
# Environment: RETRAIN_PREFECT_PORT (default 4200), RETRAIN_HOME (default ./var),
# PREFECT (the prefect executable; default .venv/bin/prefect).
set -euo pipefail
cd "$(dirname "$0")/.."

PREFECT=${PREFECT:-.venv/bin/prefect}
HOST=127.0.0.1
PORT=${RETRAIN_PREFECT_PORT:-4200}
HOME_DIR=${RETRAIN_HOME:-var}
STATE="$HOME_DIR/stack"
POOL=retraining-pool
LIMIT=retraining-promotion
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

if alive server; then
  echo "server: already running (pid $(cat "$STATE/server.pid"))"
else
  start server "$PREFECT" server start --host "$HOST" --port "$PORT"
  echo "server: started (pid $(cat "$STATE/server.pid")), log $STATE/server.log"
fi
"$PREFECT" server status --wait --timeout 120 >/dev/null

"$PREFECT" work-pool inspect "$POOL" >/dev/null 2>&1 \
  || "$PREFECT" work-pool create "$POOL" --type process >/dev/null
echo "work pool: $POOL"
"$PREFECT" gcl inspect "$LIMIT" >/dev/null 2>&1 \
  || "$PREFECT" gcl create "$LIMIT" --limit 1 >/dev/null
echo "global concurrency limit: $LIMIT (1 slot)"

"$PREFECT" --no-prompt deploy --all >"$STATE/deploy.log" 2>&1 \
  || { cat "$STATE/deploy.log"; exit 1; }
echo "deployments: retraining/weekly, drift-monitor/daily, challenger-evaluation/daily, post-promotion-watch/daily"

if alive worker; then
  echo "worker: already running (pid $(cat "$STATE/worker.pid"))"
else
  start worker "$PREFECT" worker start --pool "$POOL" --type process
  echo "worker: started (pid $(cat "$STATE/worker.pid")), log $STATE/worker.log"
fi

cat <<TXT

Prefect UI: http://$HOST:$PORT
In this shell:  export PREFECT_API_URL=$PREFECT_API_URL
Then e.g.:      prefect deployment run retraining/weekly -p force_retrain=true --watch
Stop it all:    make stack-down
TXT
