#!/usr/bin/env bash
# Where ssod's instructions go on the hot path, now and before the hot-path work (issue 9
# item 5): VerifySession, GetAttribute and SetAttribute on PostgreSQL, and Health/Check as the
# floor, each a fixed number of calls under `valgrind --tool=callgrind` (benches/profile.rs). Instruction counts do not
# depend on the machine's load, so the comparison holds on a busy machine.
#
# Usage: benches/profile.sh [BEFORE_COMMIT]      (from anywhere in the repository)
#   BEFORE_COMMIT        the commit before the hot-path work (default b1fe8e3, main before
#                        "Merge wt-hot"); built in its own worktree, $BEFORE_WORKTREE
#                        (default: this checkout's directory with "-before" appended)
#   PROFILE_CALLS=2000   calls of each RPC per profile
#   PROFILE_OUT=target/profile
#
# Profiles: "after" (this checkout, defaults: the UST cache on), "after-no-cache" (the same
# with SSOD_AUTH_CACHE_TTL=0) and "before". Each writes <out>/<profile>/<rpc>.callgrind and
# <rpc>.txt (benches/callgrind_top.py: the top functions by their own instructions, and ssod's
# own with their callees, per call); the summary at the end gives the instructions per call
# and each profile's top functions. `callgrind_annotate --inclusive=yes` reads the dumps too.
# Takes about 10 minutes beside the two release builds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
before=${1:-b1fe8e3}
calls=${PROFILE_CALLS:-2000}
out=${PROFILE_OUT:-target/profile}
before_tree=${BEFORE_WORKTREE:-$root-before}
command -v valgrind >/dev/null || { echo "profile: needs valgrind (apt-get install valgrind)"; exit 1; }

echo "== release builds: this checkout ($(git rev-parse --short HEAD)) and $before"
# Builds target/release/ssod too (the bench's CARGO_BIN_EXE_ssod).
cargo bench --locked --bench profile --no-run
if [ ! -d "$before_tree" ]; then
  git worktree add --detach "$before_tree" "$before"
  # Its dependencies are this checkout's, mostly: start from this build's.
  mkdir -p "$before_tree/target" && cp -a target/release "$before_tree/target/"
fi
git -C "$before_tree" checkout --quiet --detach "$before"
(cd "$before_tree" && cargo build --locked --release --bin ssod)

profile() {
  local name=$1 binary=$2
  shift 2
  echo
  echo "== profile $name"
  rm -rf "${out:?}/$name"
  cargo bench --locked --bench profile -- --ssod "$binary" --out "$out/$name" --calls "$calls" "$@" \
    | tee "$out/$name.summary"
  for rpc in health_check verify_session get_attribute set_attribute; do
    python3 benches/callgrind_top.py "$out/$name/$rpc.callgrind" "$calls" 12 >"$out/$name/$rpc.txt"
  done
}
mkdir -p "$out"
profile after target/release/ssod
profile after-no-cache target/release/ssod --set SSOD_AUTH_CACHE_TTL=0
profile before "$before_tree/target/release/ssod"

echo
echo "== summary: instructions ssod executed per call ($calls calls of each RPC per profile)"
for name in before after-no-cache after; do
  printf '%-15s' "$name"
  awk '$1 ~ /^(health_check|verify_session|get_attribute|set_attribute)$/ { printf "  %s %s", $1, $3 }' "$out/$name.summary"
  echo
done
for name in before after-no-cache after; do
  for rpc in health_check verify_session get_attribute set_attribute; do
    echo
    echo "-- $name, $rpc"
    cat "$out/$name/$rpc.txt"
  done
done
