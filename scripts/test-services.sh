#!/usr/bin/env bash
# Throwaway database services for the backend tests: a PostgreSQL 15 cluster and a CouchDB-protocol server
# (pouchdb-server, in memory), both on loopback ports, with all their files in one temporary directory.
#
#   scripts/test-services.sh run CMD [ARGS...]   start both, run CMD with SOLEDAD_TEST_POSTGRES_URL and
#                                                SOLEDAD_TEST_COUCH_URL exported, stop both, exit with CMD's status
#   scripts/test-services.sh start               start both; print `export …` lines to eval; state in $SOLEDAD_TEST_SERVICES_DIR
#   scripts/test-services.sh stop                stop what `start` started (state from $SOLEDAD_TEST_SERVICES_DIR)
#
# Needs Debian's `postgresql` package (binaries under /usr/lib/postgresql/15/bin) and `npm ci` done (pouchdb-server
# is a dev dependency). initdb refuses to run as root, so as root the cluster runs as the `postgres` user.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PG_BIN="${PG_BIN:-}"
if [ -z "$PG_BIN" ]; then
  for v in 17 16 15 14 13; do
    if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then PG_BIN="/usr/lib/postgresql/$v/bin"; break; fi
  done
fi

log() { echo "test-services: $*" >&2; }

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

wait_http() {
  local url="$1" tries=0
  until node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "$url" 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -gt 150 ]; then return 1; fi
    sleep 0.2
  done
}

start() {
  local dir="$1"
  mkdir -p "$dir"
  [ -n "$PG_BIN" ] || { log "PostgreSQL server binaries not found (apt-get install postgresql)"; return 1; }

  # PostgreSQL: trust authentication, socket and TCP on loopback only, fsync off (throwaway data).
  local pgport; pgport="$(free_port)"
  mkdir -p "$dir/pg"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir" "$dir/pg"; chmod 755 "$dir"; fi
  as_pg "$PG_BIN/initdb" -D "$dir/pg/data" -U soledad -A trust -E UTF8 --locale=C.UTF-8 >"$dir/pg/initdb.log" 2>&1 \
    || { cat "$dir/pg/initdb.log" >&2; return 1; }
  as_pg "$PG_BIN/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w -t 60 \
    -o "-p $pgport -k $dir/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null || { cat "$dir/pg/server.log" >&2; return 1; }
  as_pg "$PG_BIN/createdb" -h "$dir/pg" -p "$pgport" -U soledad soledad_test
  echo "$pgport" >"$dir/pg.port"
  log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$pgport"

  # CouchDB protocol: pouchdb-server in memory. It writes config.json and log.txt to its working directory.
  local couchport; couchport="$(free_port)"
  mkdir -p "$dir/couch"
  (cd "$dir/couch" && exec node "$ROOT/node_modules/pouchdb-server/bin/pouchdb-server" --in-memory --host 127.0.0.1 \
    --port "$couchport" --no-color >"$dir/couch/server.log" 2>&1) &
  echo $! >"$dir/couch.pid"
  echo "$couchport" >"$dir/couch.port"
  wait_http "http://127.0.0.1:$couchport/" || { log "pouchdb-server did not start"; cat "$dir/couch/server.log" >&2; return 1; }
  log "pouchdb-server on 127.0.0.1:$couchport"
}

env_lines() {
  local dir="$1"
  echo "export SOLEDAD_TEST_POSTGRES_URL=postgres://soledad@127.0.0.1:$(cat "$dir/pg.port")/soledad_test"
  echo "export SOLEDAD_TEST_COUCH_URL=http://127.0.0.1:$(cat "$dir/couch.port")"
  echo "export SOLEDAD_TEST_SERVICES_DIR=$dir"
}

stop() {
  local dir="$1"
  [ -d "$dir" ] || return 0
  if [ -f "$dir/couch.pid" ]; then
    kill "$(cat "$dir/couch.pid")" 2>/dev/null || true
    rm -f "$dir/couch.pid"
  fi
  if [ -n "$PG_BIN" ] && [ -f "$dir/pg/data/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$dir/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

cmd="${1:-}"
case "$cmd" in
  run)
    shift
    [ "$#" -gt 0 ] || { log "usage: $0 run CMD [ARGS...]"; exit 2; }
    dir="$(mktemp -d /tmp/soledad-test-services.XXXXXX)"
    trap 'stop "$dir"' EXIT
    trap 'exit 130' INT TERM
    start "$dir"
    eval "$(env_lines "$dir")"
    status=0
    "$@" || status=$?
    exit "$status"
    ;;
  start)
    dir="${SOLEDAD_TEST_SERVICES_DIR:-$(mktemp -d /tmp/soledad-test-services.XXXXXX)}"
    start "$dir" || { stop "$dir"; exit 1; }
    env_lines "$dir"
    ;;
  stop)
    [ -n "${SOLEDAD_TEST_SERVICES_DIR:-}" ] || { log "SOLEDAD_TEST_SERVICES_DIR is not set"; exit 2; }
    stop "$SOLEDAD_TEST_SERVICES_DIR"
    ;;
  *)
    log "usage: $0 run CMD [ARGS...] | start | stop"
    exit 2
    ;;
esac
