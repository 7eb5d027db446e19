#!/usr/bin/env bash
# `make demo`: the whole story on the local test bed, in one command.
# Brings up 1 host + $MEMBERS members, installs the CRDs on the host with kubectl, applies the
# examples, and shows what the host now holds. The test bed stays up afterwards so you can keep
# exploring (`make clusters-env`); `make clusters-down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${FLOTILLA_CACHE:-$HOME/.cache/flotilla}/bin:$PATH"
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "Starting the test bed (1 host + ${MEMBERS:-3} members)"
e2e/testbed/clusters.sh up
export KUBECONFIG="$PWD/e2e/.state/kubeconfig"
kubectl config get-contexts

say "Installing the Flotilla CRDs on the host"
kubectl --context host apply -f crds/
kubectl --context host wait --for=condition=Established --timeout=60s \
  crd/memberclusters.federation.flotilla.dev \
  crd/federatedingresses.federation.flotilla.dev \
  crd/scalingpolicies.federation.flotilla.dev

say "Applying the examples (manifests/examples/)"
kubectl --context host apply -f manifests/examples/

say "What the host holds"
kubectl --context host get memberclusters
kubectl --context host get federatedingresses,scalingpolicies -n payments

say "Done. The test bed is still up:"
e2e/testbed/clusters.sh env
