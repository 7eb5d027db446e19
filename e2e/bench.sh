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
for bench in "$@"; do
  cargo bench -q -p flotilla-e2e --bench "$bench" 2>/dev/null | grep '^BENCH' || { echo "bench $bench printed no BENCH line" >&2; exit 1; }
done
