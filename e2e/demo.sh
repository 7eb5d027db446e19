#!/usr/bin/env bash
# `make demo`: the whole story on the local test bed, in one command.
#   1. 1 host + $MEMBERS member clusters (real API servers)
#   2. the Helm chart installed on the host (CRDs, RBAC, ServiceAccount, Deployment)
#   3. every member joined with `flotilla join` (least-privilege credentials)
#   4. the operator running:
#      - on a bed with nodes (1.34, the default): as the chart's two pods on the host's node, from
#        its own image (built from target/debug/flotilla by e2e/testbed/images/operator.sh, no
#        Docker, imported into the node: image.pullPolicy=Never); the members are joined with
#        credentials pods reach (the bed's relays in the host's node, <member>.internal.kubeconfig);
#      - on a bed without nodes (KUBE_VERSION=1.20, NODES=0): as a process here, with the chart's
#        ServiceAccount token (there is no kubelet to run the pod)
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
FLOTILLA="${CARGO_TARGET_DIR:-$PWD/target}/debug/flotilla"
IN_CLUSTER=0
grep -qx 'NODES=1' "$STATE/testbed.env" && grep -qx 'PROVIDER=local' "$STATE/testbed.env" && IN_CLUSTER=1

image_values=()
if [ "$IN_CLUSTER" = 1 ]; then
  # the tag follows the binary, so a rebuilt operator rolls the pods
  tag="demo-$(sha256sum "$FLOTILLA" | cut -c1-12)"
  say "Building the operator's image flotilla.test/flotilla:$tag (no Docker) and importing it into the host's node"
  e2e/testbed/images/operator.sh "$FLOTILLA" "$STATE/operator-image.tar" "flotilla.test/flotilla:$tag"
  e2e/testbed/clusters.sh load-image host "$STATE/operator-image.tar"
  rm -f "$STATE/operator-image.tar"
  image_values=(--set image.repository=flotilla.test/flotilla --set "image.tag=$tag" --set image.pullPolicy=Never
    --set service.type=NodePort)
  # an operator process left by an earlier demo on a bed without nodes
  if [ -f "$STATE/demo-operator.pid" ]; then kill "$(cat "$STATE/demo-operator.pid")" 2>/dev/null || true; rm -f "$STATE/demo-operator.pid"; fi
fi

say "Installing the chart on the host (helm upgrade --install)"
helm upgrade --install flotilla charts/flotilla --kube-context host --namespace flotilla-system \
  --create-namespace --take-ownership --wait=false "${image_values[@]}"
kubectl --context host -n flotilla-system get serviceaccount,role,deployment,service

say "Joining the members (flotilla join)"
regions=(eu-west eu-central us-east ap-south ap-east sa-east)
i=0
for member in $(kubectl config get-contexts -o name | grep '^member' | sort); do
  member_kubeconfig=()
  # pods reach the members through the bed's relays in the host's node
  [ "$IN_CLUSTER" = 1 ] && member_kubeconfig=(--member-kubeconfig "$STATE/$member.internal.kubeconfig")
  "$FLOTILLA" join "$member" --kubeconfig "$KUBECONFIG" --context host --member-context "$member" \
    "${member_kubeconfig[@]}" --namespace flotilla-system --region "${regions[$((i % ${#regions[@]}))]}" --label env=prod
  i=$((i + 1))
done
# The example MemberClusters add labels, zones and member3's taint.
kubectl --context host apply -f manifests/examples/10-member-clusters.yaml

if [ "$IN_CLUSTER" = 1 ]; then
  say "The operator runs as pods of the host cluster"
  kubectl --context host -n flotilla-system rollout status deployment/flotilla --timeout=240s
  kubectl --context host -n flotilla-system get pods -o wide
  for _ in $(seq 1 60); do
    holder=$(kubectl --context host -n flotilla-system get lease flotilla-leader -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
    [ -n "$holder" ] && break
    sleep 0.5
  done
  node_ip=$(kubectl --context host get node host-node -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
  node_port=$(kubectl --context host -n flotilla-system get service flotilla-metrics -o jsonpath='{.spec.ports[0].nodePort}')
  echo "leader (Lease flotilla-leader): ${holder:-none yet}; logs: kubectl --context host -n flotilla-system logs deployment/flotilla"
  echo "metrics (Service flotilla-metrics, NodePort of the host's node): http://$node_ip:$node_port/metrics"
else
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
fi

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
