#!/usr/bin/env bash
# Capacity measurements for deploy/CAPACITY.md: a throwaway PostgreSQL cluster, ssod's own
# schema (`ssod migrate`), N bulk-loaded sessions (load.sql), then sizes, buffers per token
# look-up, WAL and buffers per write, sweep rows/s, and one Argon2id check's cost.
# A full run takes minutes and several GB of disk for 1M sessions; .ci/run runs a small one
# (CAPACITY_SESSIONS=20000 CAPACITY_SECONDS=1) so the script and its statements stay working.
#
# Usage: deploy/capacity/measure.sh            (from the repository root)
#   CAPACITY_SESSIONS=1000000  sessions to load (users = N/5)
#   SSOD_BIN=target/debug/ssod ssod binary for `migrate` (built with cargo build if absent)
#   CAPACITY_SECONDS=15        seconds per pgbench throughput run
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
here=deploy/capacity
n=${CAPACITY_SESSIONS:-1000000}
seconds=${CAPACITY_SECONDS:-15}
bin=${SSOD_BIN:-target/debug/ssod}
t0='2026-11-30 12:00:00+00' # the manual clock's "now" for every statement
[ -x "$bin" ] || cargo build --quiet --bin ssod

initdb=$(command -v initdb || printf "%s\n" /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)
[ -x "$initdb" ] || { echo "measure: needs PostgreSQL's initdb (apt-get install postgresql)"; exit 1; }
pgbin=$(dirname "$(readlink -f "$initdb")")
# PostgreSQL refuses to run as root: use the postgres account then (created if missing).
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
tmp=$(mktemp -d /tmp/ssod-capacity.XXXXXX)
cleanup() {
  as_pg "$pgbin/pg_ctl" -D "$tmp/pg" -m immediate -w -t 20 stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ "$(id -u)" = 0 ]; then
  id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  chown postgres: "$tmp"
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$pgbin/initdb" -D "$tmp/pg" -U postgres -A trust -E UTF8 --no-sync >"$tmp/initdb.log"
# fsync=off: a throwaway cluster (sizes, buffers and WAL bytes do not depend on it; timings
# are not durable-commit timings). Checkpoints are pushed out so that a run is not cut by one.
as_pg "$pgbin/pg_ctl" -D "$tmp/pg" -l "$tmp/postgres.log" -w -t 60 -o "-c listen_addresses=127.0.0.1 \
  -p $port -k $tmp -c fsync=off -c shared_buffers=1GB -c max_wal_size=20GB \
  -c checkpoint_timeout=1h -c maintenance_work_mem=512MB -c track_wal_io_timing=off" start >/dev/null
as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U postgres ssod_capacity
db=ssod_capacity # the database the helpers below work on
url="postgres://postgres@127.0.0.1:$port/$db"
sql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "postgres://postgres@127.0.0.1:$port/$db" "$@"; }
value() { sql -At -c "$1"; }
bench() { "$pgbin/pgbench" -n -M prepared -h 127.0.0.1 -p "$port" -U postgres "$@" "$db"; }

echo "ssod capacity measurements, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), \
$(free -g | awk '/Mem:/ {print $2}') GiB RAM, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "postgresql: $(value 'SHOW server_version'), shared_buffers $(value 'SHOW shared_buffers'), fsync off"
SSOD_DATABASE_URL=$url SSOD_LOG=warn "$bin" migrate
echo "tables after ssod migrate: $(value "SELECT string_agg(tablename, ', ' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'")"

echo
echo "== bulk load: $n sessions =="
started=$(date +%s)
sql -v sessions="$n" -v t0="$t0" -f "$here/load.sql"
echo "loaded and analysed in $(($(date +%s) - started)) s"
sql -c 'CREATE EXTENSION pgstattuple' -f "$here/sizes.sql"
# A copy as loaded, for the what-if at the end (the sweep below deletes rows it would need).
value "CREATE DATABASE ${db}_hot TEMPLATE $db" >/dev/null

# The statements as ssod runs them: the sweep's own text, sql::sessions::PURGE_SESSIONS as it
# expands (a unit test beside it checks that this copy is verbatim); the others are the
# expansions of src/store/postgres/sql/{sessions,attributes}.rs (keep them in step).
read -r -d '' purge_sessions <<'SQL' || true
WITH quiet AS MATERIALIZED (SELECT set_config('ssod.sweeping', 'on', true)), doomed AS (SELECT id FROM sessions, quiet WHERE expires_at <= $1 LIMIT $2 FOR UPDATE OF sessions SKIP LOCKED), attributes AS (DELETE FROM session_attributes a USING doomed WHERE a.session_id = doomed.id RETURNING 1), gone AS (DELETE FROM sessions s USING doomed WHERE s.id = doomed.id RETURNING s.id, s.user_id), recorded AS (INSERT INTO events (time, type, cid, actor_user_id, actor_session_id, current_app, remote_addr, user_agent, user_id, session_id, reason, details) SELECT e.time, e.type, e.cid, e.actor_user_id, e.actor_session_id, e.current_app, e.remote_addr, e.user_agent, r.user_id, r.id, e.reason, e.details FROM gone AS r, jsonb_populate_recordset(NULL::events, $3::jsonb) AS e) SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM attributes)
SQL
session_columns='s.id, s.user_id, s.current_app, s.remote_addr, s.user_agent, s.created_at, s.expires_at, s.last_renewed_at'
user_columns='u.id, u.username, u.email, u.display_name, u.first_name, u.middle_name, u.last_name, u.is_super_user, u.is_locked, u.approval_status, u.password_must_change, u.password_expiry, u.created_at, u.last_login_at, u.is_confirmed, u.totp_enabled'
attribute_columns='a.name, a.value, a.key_id, a.created_at, a.modified_at, a.expires_at'
by_token="SELECT $session_columns, $user_columns FROM sessions s LEFT JOIN users u ON u.id = s.user_id WHERE s.expires_at > \$2 AND s.token_hash = \$1"

echo
echo "== token look-up (SESSION_BY_TOKEN): buffers per call =="
sql -c "PREPARE by_token(bytea, timestamptz) AS $by_token" \
  -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE by_token(capacity_token_hash(60), '$t0')" \
  -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE by_token(capacity_token_hash($((n / 2 + 1))), '$t0')" \
  -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE by_token(sha256('unknown'), '$t0')"

# One pgbench run: its tps and, per pgbench transaction (one call: a script), the buffers
# touched (hit + read) and the WAL written, from pg_stat_database and pg_stat_wal deltas.
stats() {
  value "SELECT d.blks_hit + d.blks_read, d.xact_commit, w.wal_records, w.wal_fpi, w.wal_bytes
         FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = current_database()"
}
measured() { # measured LABEL PGBENCH-ARGS...
  local label=$1 before after out
  shift
  before=$(stats)
  out=$(bench "$@" 2>&1)
  sleep 1 # backends flush their statistics at most once a second
  after=$(stats)
  python3 - "$label" "$(echo "$out" | awk '/^tps/ {print $3}')" \
    "$(echo "$out" | awk '/^number of transactions actually processed/ {print $6}')" \
    "$before" "$after" <<'PY'
import sys
label, tps, calls = sys.argv[1], float(sys.argv[2] or 0), float(sys.argv[3] or 0)
before, after = sys.argv[4].split('|'), sys.argv[5].split('|')
d = [float(b) - float(a) for a, b in zip(before, after)]
x = max(calls, 1) # pgbench transactions: one call each, however many statements it has
print(f"{label:<34} {tps:>9.0f} tps  buffers/call {d[0]/x:6.1f}  wal records/call {d[2]/x:5.1f}  "
      f"full-page images/call {d[3]/x:5.2f}  wal bytes/call {d[4]/x:8.0f}")
PY
}
script() { cat >"$tmp/$1.sql"; chmod a+r "$tmp/$1.sql"; }

script lookup <<EOF
\\set i random(1, $n)
$(echo "$by_token" | sed -e "s/\\\$2/'$t0'/" -e 's/\$1/capacity_token_hash(:i)/')
EOF
# A login's store work: the user by name (outside the transaction), then RECORD_LOGIN and
# INSERT_SESSION (no attributes) in one transaction; ids are UUIDv7-like as ssod's.
script login <<EOF
\\set u random(1, $n / 5)
SELECT id AS uid, password_hash AS h FROM users u WHERE (lower(u.username) COLLATE "C") = lower('user' || :u) \\gset
BEGIN;
UPDATE users SET last_login_at = '$t0', password_hash = COALESCE(NULL, password_hash), password_must_change = CASE WHEN NULL IS NULL THEN password_must_change ELSE NULL END, password_expiry = CASE WHEN NULL IS NULL THEN password_expiry ELSE NULL END WHERE id = :uid::uuid AND password_hash = :h AND NOT is_locked AND approval_status = 'approved';
WITH s AS (INSERT INTO sessions AS s (id, token_hash, user_id, current_app, remote_addr, user_agent, created_at, expires_at, last_renewed_at) VALUES (capacity_v7(clock_timestamp(), :client_id * 1000000000 + :u * 1000 + (random() * 999)::int), sha256(gen_random_uuid()::text::bytea), :uid::uuid, 'portal', '198.51.100.7', 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0', '$t0', '$t0'::timestamptz + interval '60 min', '$t0') RETURNING $session_columns), a AS (INSERT INTO session_attributes (session_id, name, value, key_id, created_at, modified_at, expires_at) SELECT s.id, i.name, i.value, i.key_id, '$t0', '$t0', i.expires_at FROM s, unnest('{}'::text[], '{}'::bytea[], '{}'::text[], '{}'::timestamptz[]) AS i (name, value, key_id, expires_at)) SELECT * FROM s;
COMMIT;
EOF
# A renewal: the caller's token look-up, then RENEW_SESSION on its id (a new expiry each time,
# as the clock moves on between renewals).
script renew <<EOF
\\set i random(1, $n)
SELECT id AS sid FROM sessions WHERE token_hash = capacity_token_hash(:i) \\gset
UPDATE sessions AS s SET expires_at = '$t0'::timestamptz + interval '61 min' + random() * interval '1 min', last_renewed_at = '$t0'::timestamptz + interval '1 min' WHERE s.id = :sid::uuid AND s.expires_at > '$t0'::timestamptz + interval '1 min' RETURNING $session_columns;
EOF
# SetAttribute on the caller's session: look-up, then the owner lock and the upsert of one
# 300-byte value in one transaction.
script set_attribute <<EOF
\\set i random(1, $n)
SELECT id AS sid FROM sessions WHERE token_hash = capacity_token_hash(:i) \\gset
BEGIN;
SELECT 1 FROM sessions WHERE id = :sid::uuid AND expires_at > '$t0' FOR NO KEY UPDATE;
WITH input AS (SELECT * FROM unnest(ARRAY['cart']::text[], ARRAY[convert_to(repeat('x', 300), 'UTF8')]::bytea[], ARRAY[NULL]::text[], ARRAY[NULL]::timestamptz[]) AS i (name, value, key_id, expires_at)), others AS (SELECT count(*) AS live FROM session_attributes a WHERE a.session_id = :sid::uuid AND (a.expires_at IS NULL OR a.expires_at > '$t0') AND a.name <> ALL (ARRAY['cart'])), written AS (INSERT INTO session_attributes AS a (session_id, name, value, key_id, created_at, modified_at, expires_at) SELECT :sid::uuid, i.name, i.value, i.key_id, '$t0', '$t0', i.expires_at FROM input i ON CONFLICT (session_id, name) DO UPDATE SET value = excluded.value, key_id = excluded.key_id, expires_at = excluded.expires_at, created_at = CASE WHEN a.expires_at IS NOT NULL AND a.expires_at <= excluded.modified_at THEN excluded.created_at ELSE a.created_at END, modified_at = excluded.modified_at RETURNING $attribute_columns) SELECT others.live, a.* FROM others LEFT JOIN written a ON true;
COMMIT;
EOF
echo
echo "== per call: pgbench -M prepared, $seconds s each; one CHECKPOINT before the first =="
echo "   (tps are on a shared 2-CPU VM with pgbench on the same CPUs: read them as a floor)"
value 'CHECKPOINT' >/dev/null
measured "token look-up" -c 2 -j 1 -T "$seconds" -f "$tmp/lookup.sql"
measured "token look-up (1 client)" -c 1 -j 1 -T "$seconds" -f "$tmp/lookup.sql"
measured "login (store part)" -c 2 -j 1 -T "$seconds" -f "$tmp/login.sql"
measured "renewal (look-up + RENEW_SESSION)" -c 2 -j 1 -T "$seconds" -f "$tmp/renew.sql"
measured "renewal, again (pages already imaged)" -c 2 -j 1 -T "$seconds" -f "$tmp/renew.sql"
measured "set_attribute (look-up + lock + upsert)" -c 2 -j 1 -T "$seconds" -f "$tmp/set_attribute.sql"
full_page_writes() { value "ALTER SYSTEM SET full_page_writes = $1" >/dev/null; value 'SELECT pg_reload_conf()' >/dev/null; }
# The WAL a write costs besides full-page images (those depend on how many pages it touches
# per checkpoint interval; CAPACITY.md derives them at scale).
full_page_writes off
measured "login, no full-page images" -c 2 -j 1 -T "$seconds" -f "$tmp/login.sql"
measured "renewal, no full-page images" -c 2 -j 1 -T "$seconds" -f "$tmp/renew.sql"
measured "set_attribute, no full-page images" -c 2 -j 1 -T "$seconds" -f "$tmp/set_attribute.sql"
full_page_writes on
echo "hot (heap-only) updates of sessions so far: $(value "SELECT n_tup_hot_upd || ' of ' || n_tup_upd FROM pg_stat_user_tables WHERE relname = 'sessions'")"

echo
echo "== sweep: PURGE_SESSIONS from src/store/postgres/sql/sessions.rs, batch 1000, one connection =="
sweep_at="'$t0'::timestamptz + interval '6 min'"
expired=$(value "SELECT count(*) FROM sessions WHERE expires_at <= $sweep_at")
attributes_before=$(value "SELECT count(*) FROM session_attributes")
batches=$(((expired + 999) / 1000 + 1))
# The session.expired template the sweep records once per session it deletes.
expired_event="jsonb_build_array(jsonb_build_object('time', $sweep_at, 'type', 'session.expired', 'cid', '', 'current_app', '', 'remote_addr', '', 'user_agent', '', 'reason', '', 'details', '{}'::jsonb))"
script sweep <<EOF
$(echo "$purge_sessions" | sed -e "s/\\\$1/$sweep_at/" -e 's/\$2/1000/' -e "s/\\\$3/$expired_event/");
EOF
value 'CHECKPOINT' >/dev/null
sleep 1
before=$(stats)
started=$(date +%s.%N)
bench -c 1 -t "$batches" -f "$tmp/sweep.sql" >/dev/null
elapsed=$(echo "$(date +%s.%N) - $started" | bc)
after=$(stats)
left=$(value "SELECT count(*) FROM sessions WHERE expires_at <= $sweep_at")
attributes_gone=$((attributes_before - $(value "SELECT count(*) FROM session_attributes")))
python3 - "$expired" "$left" "$attributes_gone" "$batches" "$elapsed" "$before" "$after" <<'PY'
import sys
expired, left, attrs, batches, elapsed = (float(v) for v in sys.argv[1:6])
before, after = sys.argv[6].split('|'), sys.argv[7].split('|')
d = [float(b) - float(a) for a, b in zip(before, after)]
gone = expired - left
print(f"{gone:.0f} expired sessions (and {attrs:.0f} of their attributes) in {batches:.0f} batches, "
      f"{elapsed:.2f} s wall = {gone/elapsed:.0f} sessions/s ({(gone+attrs)/elapsed:.0f} rows/s); "
      f"{left:.0f} left")
print(f"per deleted session: wal bytes {d[4]/gone:.0f}, wal records {d[2]/gone:.1f}, "
      f"full-page images {d[3]/gone:.2f}, buffers {d[0]/gone:.1f}")
PY

echo
echo "== what if renewals could be heap-only (HOT): no index on sessions.expires_at, fillfactor 85 =="
echo "   (on a copy of the database as loaded; VACUUM FULL rewrites the table and its indexes)"
db=${db}_hot
sql -c 'DROP INDEX sessions_expires_at_idx' -c 'ALTER TABLE sessions SET (fillfactor = 85)' \
  -c 'VACUUM FULL sessions' -c 'ANALYZE sessions'
value 'CHECKPOINT' >/dev/null
measured "renewal, HOT-eligible" -c 2 -j 1 -T "$seconds" -f "$tmp/renew.sql"
measured "renewal, HOT-eligible, again" -c 2 -j 1 -T "$seconds" -f "$tmp/renew.sql"
full_page_writes off
measured "renewal, HOT-eligible, no full-page images" -c 2 -j 1 -T "$seconds" -f "$tmp/renew.sql"
full_page_writes on
echo "hot (heap-only) updates of sessions: $(value "SELECT n_tup_hot_upd || ' of ' || n_tup_upd FROM pg_stat_user_tables WHERE relname = 'sessions'")"

echo
echo "== argon2id: one password check at ssod's parameters (deploy/capacity/argon2-time) =="
CARGO_TARGET_DIR=target/capacity cargo run --quiet --release --locked \
  --manifest-path "$here/argon2-time/Cargo.toml" -- 40
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
