# shellcheck shell=bash
# Sourced by CI scripts (.ci/interop/run, .ci/container): a throwaway PostgreSQL cluster in a
# directory of the caller's, on a free 127.0.0.1 port, trust auth, fsync off. Never the
# machine's own PostgreSQL.
#   pg_initdb                 print the newest initdb's path; fails if there is none
#   pg_start DIR DB LOG       cluster in DIR/pg (log DIR/postgres.log, socket in DIR), database
#                             DB; sets PG_URL; set-up output to LOG; non-zero on failure
#   pg_stop DIR               immediate stop, for the caller's EXIT trap; never fails
# shellcheck disable=SC2034 # PG_URL is for the caller

pg_initdb() {
  local initdb
  initdb=$(command -v initdb || printf "%s\n" /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)
  [ -x "$initdb" ] && printf '%s\n' "$initdb"
}

# PostgreSQL refuses to run as root: use the postgres account (created if missing) then.
pg_as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_start() {
  local dir=$1 db=$2 log=$3 initdb pgbin port
  initdb=$(pg_initdb) || return 1
  pgbin=$(dirname "$(readlink -f "$initdb")")
  if [ "$(id -u)" = 0 ]; then
    id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    chown postgres: "$dir"
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  pg_as_owner "$pgbin/initdb" -D "$dir/pg" -U postgres -A trust -E UTF8 --no-sync >"$log" 2>&1 &&
    pg_as_owner "$pgbin/pg_ctl" -D "$dir/pg" -l "$dir/postgres.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >>"$log" 2>&1 &&
    pg_as_owner "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db" >>"$log" 2>&1 &&
    PG_URL="postgres://postgres@127.0.0.1:$port/$db"
}

pg_stop() {
  local dir=$1 initdb
  [ -d "$dir/pg" ] && initdb=$(pg_initdb) || return 0
  pg_as_owner "$(dirname "$(readlink -f "$initdb")")/pg_ctl" -D "$dir/pg" -m immediate -w -t 20 stop \
    >/dev/null 2>&1 || true
}
