#!/usr/bin/env bash
# Runs end-to-end benchmarks (e2e/benches/<name>.rs) on the local test bed and prints their
# `BENCH <name> <value> <unit>` lines. Brings the test bed up when needed and down afterwards only
# if it started it. Usage: e2e/bench.sh leader [propagation …]
set -euo pipefail
cd "$(dirname "$0")/.."
testbed=e2e/testbed/clusters.sh
started=""
"$testbed" status >/dev/null 2>&1 || started=1
cleanup() { code=$?; if [ -n "$started" ]; then "$testbed" down; fi; exit "$code"; }
trap cleanup EXIT
"$testbed" up >&2
export FLOTILLA_KUBECONFIG="${FLOTILLA_STATE:-$PWD/e2e/.state}/kubeconfig"
cargo build -q --release -p flotilla-operator --bin flotilla
export FLOTILLA_BIN="$PWD/target/release/flotilla"
# Each benchmark's own account (object counts, sample sizes, where the CPU went, failures) goes to
# a log of its own under target/ (not the bed's log dir, which `down` replaces); only the BENCH
# lines go to stdout.
logs="$PWD/target/bench-logs"
mkdir -p "$logs"
for bench in "$@"; do
  log="$logs/bench-$bench.log"
  echo "bench $bench: details in $log" >&2
  cargo bench -q -p flotilla-e2e --bench "$bench" 2>"$log" | grep '^BENCH' || { echo "bench $bench failed or printed no BENCH line; end of $log:" >&2; tail -n 20 "$log" >&2; exit 1; }
done
