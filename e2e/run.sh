#!/usr/bin/env bash
# Runs the end-to-end tests against the local test bed. Brings the test bed up when it is not
# running, and takes it down afterwards only if this run started it (so a developer's running
# test bed is left alone). Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${FLOTILLA_CACHE:-$HOME/.cache/flotilla}/bin:$PATH" # helm, kubectl (install-tools.sh)

testbed=e2e/testbed/clusters.sh
state="${FLOTILLA_STATE:-$PWD/e2e/.state}"
started=""
if ! "$testbed" status >/dev/null 2>&1; then
  started=1
fi
cleanup() {
  code=$?
  if [ "$code" != 0 ]; then
    mkdir -p e2e/.state-logs
    cp "$state"/operator-*.log e2e/.state-logs/ 2>/dev/null || true
    echo "e2e: failed; operator logs kept in e2e/.state-logs/, cluster logs in e2e/.state-logs/<cluster>/ after 'down'" >&2
    if [ -n "${CI:-}" ]; then
      for log in "$state"/operator-*.log; do [ -f "$log" ] && { echo "--- tail $log"; tail -30 "$log"; }; done >&2 || true
    fi
  fi
  if [ -n "$started" ] && [ -z "${FLOTILLA_KEEP_CLUSTERS:-}" ]; then "$testbed" down; fi
  exit "$code"
}
trap cleanup EXIT
"$testbed" up
# An operator left running by `make demo` would reconcile alongside the tests' own.
if [ -f "$state/demo-operator.pid" ]; then
  kill "$(cat "$state/demo-operator.pid")" 2>/dev/null || true
  rm -f "$state/demo-operator.pid"
fi
# Likewise the operator pods `make demo` installs on a bed with nodes (the CRDs and objects stay:
# crds.keep); the install tests install the release again.
if [ "$(sed -n 's/^NODES=//p' "$state/testbed.env" 2>/dev/null)" = 1 ]; then
  helm uninstall flotilla --namespace flotilla-system --kubeconfig "$state/kubeconfig" --kube-context host \
    --ignore-not-found >/dev/null
fi
export FLOTILLA_KUBECONFIG="$state/kubeconfig"
# The tests drive the real binary, as users do.
cargo build -p flotilla-operator --bin flotilla
export FLOTILLA_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/flotilla"
# One test binary at a time: scenarios share the clusters.
cargo test -p flotilla-e2e -- --test-threads=1 "$@"
