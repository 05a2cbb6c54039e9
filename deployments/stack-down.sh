#!/usr/bin/env bash
# Stop what stack-up.sh started, by the PIDs it recorded; nothing else. First the runs in flight
# on its work pool are cancelled through the API while the workers still run, and waited for
# (RETRAIN_STACK_CANCEL_TIMEOUT seconds, default 30; then they are stopped by their
# infrastructure_pid: deployments/stack_cancel.py); then the workers, the server and
# PostgreSQL stop. `--purge` also removes the PostgreSQL cluster's data directory.
set -uo pipefail
cd "$(dirname "$0")/.."
STATE="${RETRAIN_HOME:-var}/stack"
PURGE=${1:-}

stop() {
  local name=$1 pidfile="$STATE/$1.pid" pid
  [ -f "$pidfile" ] || { echo "$name: not started by stack-up"; return 0; }
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
    echo "$name: stopped (pid $pid)"
  else
    echo "$name: was not running"
  fi
  rm -f "$pidfile"
}

server_alive() { [ -f "$STATE/server.pid" ] && kill -0 "$(cat "$STATE/server.pid")" 2>/dev/null; }
if server_alive && [ -f "$STATE/api_url" ]; then
  PREFECT_API_URL=$(cat "$STATE/api_url") DO_NOT_TRACK=1 "${PYTHON_BIN:-.venv/bin/python}" \
    -m deployments.stack_cancel --timeout "${RETRAIN_STACK_CANCEL_TIMEOUT:-30}" \
    || echo "stack-down: some runs in flight were not stopped (see above)" >&2
fi

for pidfile in "$STATE"/worker.pid "$STATE"/worker-*.pid; do
  [ -e "$pidfile" ] || continue
  name=$(basename "$pidfile" .pid)
  stop "$name"
done
stop server
rm -f "$STATE/api_url"
if [ -f "$STATE/postgres.dir" ]; then
  # shellcheck source=deployments/stack-pg.sh
  source deployments/stack-pg.sh
  pg_down "$PURGE"
fi
