#!/usr/bin/env bash
# Runs the end-to-end tests (cargo test -p e2e) N times in a row on a busy machine: a release
# build of the workspace runs beside them the whole time, in a target directory of its own,
# rebuilt from clean whenever it finishes. Each run's output is kept; a failed run is counted
# and named at the end, and the script exits non-zero if any failed.
#
#   .ci/e2e-repeat.sh 20            # needs moto: AWS_ENDPOINT_URL, or moto_server on PATH
#
# Not a CI step (20 runs take about an hour here): run it before calling an end-to-end change
# done, and fix each failure by its cause.
set -euo pipefail

runs="${1:-20}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
logs="$(mktemp -d "${TMPDIR:-/tmp}/e2e-repeat.XXXXXX")"
busy_target="$logs/busy-target"

busy() {
  while true; do
    CARGO_TARGET_DIR="$busy_target" cargo build --release --workspace --locked --quiet \
      >>"$logs/busy.log" 2>&1 || true
    CARGO_TARGET_DIR="$busy_target" cargo clean --release -p fanout -p fanout-local \
      >>"$logs/busy.log" 2>&1 || true
  done
}

# Built first, so that every run tests and the busy build competes with the tests alone.
cargo test -p e2e --locked --no-run --quiet
busy &
busy_pid=$!
trap 'kill "$busy_pid" 2>/dev/null; pkill -P "$busy_pid" 2>/dev/null || true' EXIT

failed=()
for run in $(seq 1 "$runs"); do
  started=$(date +%s)
  if cargo test -p e2e --locked >"$logs/run-$run.log" 2>&1; then
    echo "run $run: passed in $(( $(date +%s) - started )) s (load $(cut -d' ' -f1 /proc/loadavg))"
  else
    echo "run $run: FAILED in $(( $(date +%s) - started )) s: $logs/run-$run.log"
    grep -E "^test .* FAILED|panicked at" "$logs/run-$run.log" | head -5 || true
    failed+=("$run")
  fi
done
echo "$(( runs - ${#failed[@]} )) passed, ${#failed[@]} failed (logs in $logs)"
[[ ${#failed[@]} -eq 0 ]]
