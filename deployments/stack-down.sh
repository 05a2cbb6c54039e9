#!/usr/bin/env bash
# Stop what stack-up.sh started (workers, then server, then PostgreSQL), by the PIDs it
# recorded; nothing else. `--purge` also removes the PostgreSQL cluster's data directory.
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

for pidfile in "$STATE"/worker.pid "$STATE"/worker-*.pid; do
  [ -e "$pidfile" ] || continue
  name=$(basename "$pidfile" .pid)
  stop "$name"
done
stop server
if [ -f "$STATE/postgres.dir" ]; then
  # shellcheck source=deployments/stack-pg.sh
  source deployments/stack-pg.sh
  pg_down "$PURGE"
fi
