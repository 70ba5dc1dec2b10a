#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target in fuzz/ for SECONDS each (default 30) and fails if any
# crashes (a panic, an assertion, a sanitizer report, a timeout or running out of memory).
# Crashing inputs are kept in fuzz/artifacts/<target>/; the corpus grows in fuzz/corpus/.
#
#   .ci/fuzz.sh [SECONDS]
#
# Needs the nightly toolchain (installed if missing) and cargo-fuzz (installed if missing).
# Extra libFuzzer flags go in FUZZ_ARGS, e.g. FUZZ_ARGS="-jobs=2 -workers=2".
set -euo pipefail

seconds="${1:-30}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -eq 0 ]]; then
  echo "usage: $0 [SECONDS]  (a positive whole number; default 30)" >&2
  exit 2
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "== installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# A few well-formed inputs to start from, written once (the corpus is not in git).
seed() {
  local target="$1" name="$2" content="$3"
  mkdir -p "fuzz/corpus/$target"
  if [[ ! -e "fuzz/corpus/$target/$name" ]]; then
    printf '%s' "$content" >"fuzz/corpus/$target/$name"
  fi
}
seed job_parser room '{"v":1,"id":"m1","target":{"room":"lobby"},"payload":{"text":"hi"},"sender":"c1","sentAt":1795780800123,"endpoint":"https://abc.execute-api.eu-west-1.amazonaws.com/dev"}'
seed job_parser all '{"v":1,"id":"m2","target":{"all":true},"payload":"x","sentAt":0,"segment":{"index":0,"total":4},"cursor":"k"}'
seed job_parser connections '{"v":1,"id":"m3","target":{"connections":["a","b","a"],"room":"r1"},"payload":[1,-0,1e999],"sentAt":-1,"cursor":"a","attempt":4294967295,"retrySince":7,"hop":"0123abcd"}'
seed client_frame text ' {"action":"sendmessage","data":"Hello World"}'
seed client_frame object ' {"action":"sendmessage","data":{"t":[1,"\ud800",null]}}'
seed client_frame binary '!{"action":"sendmessage","data":1}'
seed connect_query name 'general'
seed connect_query query 'room=a%20b&room=lobby&x=1'

echo "== building the fuzz targets"
cargo +nightly fuzz build

failed=()
for target in $(cargo +nightly fuzz list); do
  echo "== fuzzing $target for ${seconds}s"
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
  if ! cargo +nightly fuzz run "$target" -- \
    -max_total_time="$seconds" \
    -dict=fuzz/dicts/json.dict \
    -print_final_stats=1 \
    ${FUZZ_ARGS:-}; then
    failed+=("$target")
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzzing: no crash in ${seconds}s per target"
