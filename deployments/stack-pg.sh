# PostgreSQL for the local stack (RETRAIN_STACK_DB=postgres); sourced by stack-up.sh and
# stack-down.sh, which set STATE (the stack's state folder). A cluster of Debian's `postgresql`
# package (initdb/pg_ctl from /usr/lib/postgresql/<version>/bin, or RETRAIN_PG_BIN) with its
# own data directory, listening on 127.0.0.1 only (no Unix socket outside the data directory),
# password authentication (scram-sha-256; the password in $STATE/postgres.password, 0600).
#
# PostgreSQL refuses to run as root: as root, initdb and pg_ctl run through
# `runuser -u postgres`, and the data directory must be reachable by that user. It is
# $STATE/postgres when postgres can traverse every folder above it; otherwise (a 0700 home,
# pytest's temporary folder) it is $RETRAIN_PG_DATA_ROOT/retraining-pg-<hash of $STATE>
# (RETRAIN_PG_DATA_ROOT: a folder every user can traverse, default /var/tmp), recorded in
# $STATE/postgres.dir so stack-down finds it. It is stopped with `pg_ctl stop`, which signals
# the PID in its postmaster.pid; nothing is stopped by name.

pg_bin() {
  local bin=${RETRAIN_PG_BIN:-}
  if [ -z "$bin" ]; then
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  fi
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "stack-up: RETRAIN_STACK_DB=postgres needs PostgreSQL's server programs (Debian:" \
      "apt-get install postgresql); no initdb in ${bin:-/usr/lib/postgresql/*/bin}" >&2
    return 1
  fi
  echo "$bin"
}

as_pg() {  # run a PostgreSQL program as the postgres user when we are root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_data_dir() {  # where the cluster lives (see above); remembered in $STATE/postgres.dir
  if [ -f "$STATE/postgres.dir" ]; then cat "$STATE/postgres.dir"; return; fi
  local state_abs dir
  state_abs=$(cd "$STATE" && pwd -P)
  dir="$state_abs/postgres"
  if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$state_abs" 2>/dev/null; then
    dir="${RETRAIN_PG_DATA_ROOT:-/var/tmp}/retraining-pg-$(printf %s "$state_abs" | sha256sum | cut -c1-12)"
  fi
  echo "$dir" >"$STATE/postgres.dir"
  echo "$dir"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_up() {  # start (or reuse) the cluster; sets PREFECT_API_DATABASE_CONNECTION_URL
  local bin dir port pw
  bin=$(pg_bin) || return 1
  dir=$(pg_data_dir)
  if [ ! -f "$STATE/postgres.password" ]; then
    (umask 077 && head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STATE/postgres.password")
  fi
  pw=$(cat "$STATE/postgres.password")
  if [ ! -f "$STATE/postgres.port" ]; then
    echo "${RETRAIN_PG_PORT:-$(free_port)}" >"$STATE/postgres.port"
  fi
  port=$(cat "$STATE/postgres.port")
  if [ ! -f "$dir/PG_VERSION" ]; then
    mkdir -p "$dir"
    chmod 700 "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    local pwdir  # initdb reads the password from a file only postgres and we can read
    pwdir=$(mktemp -d "$(dirname "$dir")/.retraining-pgpw.XXXXXX")
    (umask 077 && printf '%s\n' "$pw" >"$pwdir/pw")
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$pwdir"
    local ok=0
    as_pg "$bin/initdb" -D "$dir" -U postgres --pwfile="$pwdir/pw" -E UTF8 --no-locale \
      --auth-host=scram-sha-256 --auth-local=peer >"$STATE/postgres-initdb.log" 2>&1 || ok=$?
    rm -rf "$pwdir"
    if [ "$ok" != 0 ]; then
      cat "$STATE/postgres-initdb.log" >&2
      return 1
    fi
    echo "postgres: initialised $dir"
  fi
  if as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    echo "postgres: already running (pid $(head -n 1 "$dir/postmaster.pid"))"
  else
    if ! as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='$dir'" \
      start >/dev/null; then
      echo "stack-up: PostgreSQL did not start on 127.0.0.1:$port; its log:" >&2
      tail -n 20 "$dir/server.log" >&2
      return 1
    fi
    echo "postgres: started on 127.0.0.1:$port (pid $(head -n 1 "$dir/postmaster.pid")), data $dir"
  fi
  head -n 1 "$dir/postmaster.pid" >"$STATE/postgres.pid"
  export PGPASSWORD=$pw
  if [ -z "$("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'prefect'")" ]; then
    "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE prefect" || return 1
  fi
  unset PGPASSWORD
  export PREFECT_API_DATABASE_CONNECTION_URL="postgresql+asyncpg://postgres:$pw@127.0.0.1:$port/prefect"
}

pg_down() {  # stop the cluster by the PID in its postmaster.pid; --purge also removes its data
  local purge=${1:-} bin dir
  [ -f "$STATE/postgres.dir" ] || { echo "postgres: not started by stack-up"; return 0; }
  dir=$(cat "$STATE/postgres.dir")
  bin=$(pg_bin 2>/dev/null) || bin=""
  if [ -f "$dir/postmaster.pid" ]; then
    local pid
    pid=$(head -n 1 "$dir/postmaster.pid")
    if [ -n "$bin" ] && as_pg "$bin/pg_ctl" -D "$dir" -m fast -w -t 60 stop >/dev/null 2>&1; then
      echo "postgres: stopped (pid $pid)"
    elif kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      echo "postgres: stopped (pid $pid)"
    fi
  else
    echo "postgres: was not running"
  fi
  rm -f "$STATE/postgres.pid"
  if [ "$purge" = --purge ]; then
    rm -rf "$dir"
    rm -f "$STATE/postgres.dir" "$STATE/postgres.port" "$STATE/postgres.password"
    echo "postgres: removed its data ($dir)"
  fi
}
