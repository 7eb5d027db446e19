#!/usr/bin/env bash
# `make demo`: the whole story on the local test bed, in one command.
#   1. 1 host + $MEMBERS member clusters (real API servers)
#   2. the Helm chart installed on the host (CRDs, RBAC, ServiceAccount, Deployment)
#   3. every member joined with `flotilla join` (least-privilege credentials)
#   4. the operator running with the chart's ServiceAccount token (the test bed has no kubelet to
#      run the chart's pod, so the same binary runs here, with the pod's credentials)
#   5. the examples applied; their member copies and status shown
# The test bed and the operator stay up afterwards; `make clusters-down` stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${FLOTILLA_CACHE:-$HOME/.cache/flotilla}/bin:$PATH"
STATE="$(realpath -m "${FLOTILLA_STATE:-$PWD/e2e/.state}")"
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "Starting the test bed (1 host + ${MEMBERS:-3} members)"
e2e/testbed/clusters.sh up
export KUBECONFIG="$STATE/kubeconfig"
kubectl config get-contexts

say "Building flotilla"
cargo build -q -p flotilla-operator --bin flotilla
FLOTILLA="$PWD/target/debug/flotilla"

say "Installing the chart on the host (helm upgrade --install)"
helm upgrade --install flotilla charts/flotilla --kube-context host --namespace flotilla-system \
  --create-namespace --take-ownership --wait=false
kubectl --context host -n flotilla-system get serviceaccount,role,deployment,service

say "Joining the members (flotilla join)"
regions=(eu-west eu-central us-east ap-south ap-east sa-east)
i=0
for member in $(kubectl config get-contexts -o name | grep '^member' | sort); do
  "$FLOTILLA" join "$member" --kubeconfig "$KUBECONFIG" --context host --member-context "$member" \
    --namespace flotilla-system --region "${regions[$((i % ${#regions[@]}))]}" --label env=prod
  i=$((i + 1))
done
# The example MemberClusters add labels, zones and member3's taint.
kubectl --context host apply -f manifests/examples/10-member-clusters.yaml

say "Starting the operator with the chart's ServiceAccount token"
# A token Secret asked for explicitly (since Kubernetes 1.24 no ServiceAccount gets one by itself);
# kube-controller-manager fills in its token.
kubectl --context host apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Secret
metadata:
  name: flotilla-demo-token
  namespace: flotilla-system
  annotations:
    kubernetes.io/service-account.name: flotilla
type: kubernetes.io/service-account-token
YAML
token=""
for _ in $(seq 1 60); do
  token=$(kubectl --context host -n flotilla-system get secret flotilla-demo-token -o jsonpath='{.data.token}' 2>/dev/null || true)
  [ -n "$token" ] && break
  sleep 0.5
done
[ -n "$token" ] || { echo "no token for ServiceAccount flotilla-system/flotilla after 30s" >&2; exit 1; }
token=$(printf '%s' "$token" | base64 -d)
sed "s|^\(\s*token:\).*|\1 $token|" "$STATE/host.kubeconfig" > "$STATE/host-flotilla-sa.kubeconfig"
if [ -f "$STATE/demo-operator.pid" ]; then kill "$(cat "$STATE/demo-operator.pid")" 2>/dev/null || true; fi
nohup "$FLOTILLA" run --kubeconfig "$STATE/host-flotilla-sa.kubeconfig" --context host \
  --namespace flotilla-system --metrics-addr 127.0.0.1:18080 --admin-addr 127.0.0.1:18081 > "$STATE/demo-operator.log" 2>&1 &
echo $! > "$STATE/demo-operator.pid"
for _ in $(seq 1 100); do curl -sf 127.0.0.1:18080/readyz >/dev/null && break; sleep 0.2; done
echo "operator pid $(cat "$STATE/demo-operator.pid"), log $STATE/demo-operator.log, metrics http://127.0.0.1:18080/metrics"

say "Applying the examples (manifests/examples/)"
kubectl --context host apply -f manifests/examples/
kubectl --context host -n payments wait --for=condition=Ready --timeout=60s federatedingress/payment-gateway

say "Member clusters"
kubectl --context host get memberclusters -o wide
say "FederatedIngress on the host"
kubectl --context host -n payments get federatedingresses
kubectl --context host -n payments get federatedingress payment-gateway -o jsonpath='{range .status.placement.clusters[*]}{.cluster}{"\t"}{.verdict}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}'
say "The copies in the members"
for member in $(kubectl config get-contexts -o name | grep '^member' | sort); do
  echo "--- $member"
  kubectl --context "$member" -n payments get ingress -o custom-columns=NAME:.metadata.name,HOST:.spec.rules[0].host,MANAGED-BY:.metadata.labels.app\\.kubernetes\\.io/managed-by 2>&1 || true
done
say "Placement preview (flotilla preview)"
"$FLOTILLA" preview --kubeconfig "$KUBECONFIG" --context host -f manifests/examples/20-federated-ingress.yaml

say "Done. Try: e2e/testbed/clusters.sh stop-apiserver member1, then watch the copy move (kubectl --context member3 -n payments get ingress -w)"
e2e/testbed/clusters.sh env
