#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: .ci/postgres.sh start|stop|url|restart
#
#   eval "$(.ci/postgres.sh start)"   # initdb (once) + start; prints `export XGATE_TEST_POSTGRES_URL=…`
#   .ci/postgres.sh url               # the URL of the running cluster
#   .ci/postgres.sh restart [S]       # fast stop (connections cut), S seconds down (default 0), start on
#                                     # the same port (tests of a database restart)
#   .ci/postgres.sh stop              # stop it and delete its directory
#
# One cluster per checkout (its directory is named after the checkout's path), listening on 127.0.0.1 on a
# free port with trust authentication on loopback, superuser `postgres`, database `xgate_test`. `start` is
# idempotent: a running cluster is reused. Run as root (CI), the server runs as the user `postgres`, as
# Debian's packages do; run as anyone else, as that user.
# Durability is traded for speed (fsync off): the data is thrown away. XGATE_PG_DURABLE=1 keeps fsync on
# (for measurements). Binaries: XGATE_PG_BIN, else Debian's PostgreSQL 15, else whatever is on PATH.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${XGATE_PG_BIN:-/usr/lib/postgresql/15/bin}"
[ -x "$bin/pg_ctl" ] || bin="$(dirname "$(command -v pg_ctl || echo /nonexistent/pg_ctl)")"
dir="${XGATE_PG_DIR:-${TMPDIR:-/tmp}/xgate-pg-$(printf %s "$root" | cksum | cut -d' ' -f1)}"
db=xgate_test

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() { echo "postgresql://postgres@127.0.0.1:$(cat "$dir/port")/$db"; }

running() { [ -f "$dir/port" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; }

start() {
  if [ ! -x "$bin/initdb" ]; then
    echo "error: PostgreSQL binaries not found in $bin (apt-get install postgresql-15, or set XGATE_PG_BIN)" >&2
    exit 1
  fi
  if running; then
    echo "export XGATE_TEST_POSTGRES_URL=$(url)"
    return
  fi
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    rm -rf "$dir/data"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
      >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  fi
  # a free port: bind port 0 and read what the kernel chose
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
    >"$dir/port"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir/port"; fi
  launch
  "$bin/psql" -qAt "$(url | sed "s#/$db\$#/postgres#")" -c "SELECT 1 FROM pg_database WHERE datname = '$db'" \
    | grep -q 1 || "$bin/createdb" -h 127.0.0.1 -p "$(cat "$dir/port")" -U postgres "$db"
  echo "export XGATE_TEST_POSTGRES_URL=$(url)"
}

# start the server of an initialised cluster on the port in $dir/port
launch() {
  local fsync=off
  if [ "${XGATE_PG_DURABLE:-}" = 1 ]; then fsync=on; fi
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
    "-c listen_addresses=127.0.0.1 -c port=$(cat "$dir/port") -c unix_socket_directories=$dir \
     -c fsync=$fsync -c full_page_writes=$fsync -c max_connections=200" >/dev/null \
    || { tail -20 "$dir/server.log" >&2; exit 1; }
}

restart() {
  running || { echo "error: no cluster running; run $0 start" >&2; exit 1; }
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
  sleep "${1:-0}"
  launch
}

stop() {
  if [ -f "$dir/data/PG_VERSION" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) running && url || { echo "error: no cluster running; run $0 start" >&2; exit 1; } ;;
  restart) restart "${2:-0}" ;;
  *) echo "usage: $0 start|stop|url|restart [seconds down]" >&2; exit 2 ;;
esac
