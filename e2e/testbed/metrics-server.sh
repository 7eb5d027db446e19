# shellcheck shell=bash
# metrics-server, one per cluster of a bed with nodes (sourced by clusters.sh; KUBE_VERSION=1.34,
# NODES=1): the cluster's metrics.k8s.io (Resource metrics: `kubectl top`, HPAs, ScalingPolicy
# Resource metrics), from its node's kubelet. See README.md, "Resource metrics (metrics-server)".
#
# Per cluster C (index i):
#   - a process in the host netns (not a pod: the bed pulls no images), listening on
#     127.0.0.1:BASE+10i+6 with a serving certificate of its own CA (<C>/metrics-server/);
#   - it scrapes the kubelet at the node's InternalIP (N_IP:10250, across the veth pair), every
#     10 s (--metric-resolution, the least it takes), verifying the kubelet's serving certificate
#     against the cluster CA (nodes.sh gives the kubelet one for N_IP), as the ServiceAccount
#     kube-system/flotilla-metrics-server, whose token the kubelet checks by webhook (TokenReview,
#     then a SubjectAccessReview for nodes/metrics);
#   - registered as APIService v1beta1.metrics.k8s.io through the ExternalName Service
#     kube-system/flotilla-metrics-server (127.0.0.1), as the Prometheus adapter is (clusters.sh:
#     how the aggregator reaches a process on loopback, and why).
# `up` starts it after the node and waits until the APIService is Available (a few seconds);
# metrics follow about 10 to 20 s later (metrics-server needs two scrapes for a CPU rate).

MS_NAME=flotilla-metrics-server
MS_APISERVICE=v1beta1.metrics.k8s.io

# The cluster's metrics-server port (beds brought up before it have no MS_PORT: same formula).
ms_port() {
  local p
  p="$(kv "$C_DIR/cluster.env" MS_PORT)"
  echo "${p:-$((C_API_PORT + 6))}"
}

ms_healthy() { [ "$(curl -sS --max-time 2 --cacert "$C_DIR/metrics-server/ca.crt" "https://127.0.0.1:$(ms_port)/livez" 2>/dev/null)" = ok ]; }

ms_available() {
  api_get "/apis/apiregistration.k8s.io/v1/apiservices/$MS_APISERVICE" |
    jq -e '.status.conditions // [] | any(.type == "Available" and .status == "True")' >/dev/null 2>&1 &&
    api_get /apis/metrics.k8s.io/v1beta1 | jq -e '.kind == "APIResourceList"' >/dev/null 2>&1
}

ms_register() {
  local ca
  ca="$(base64 -w0 <"$C_DIR/metrics-server/ca.crt")"
  admin_kubectl apply -f - >/dev/null <<YAML || die "[$C_NAME] cannot register metrics-server's APIService"
apiVersion: v1
kind: Service
metadata: {name: $MS_NAME, namespace: $ADAPTER_NS}
spec: {type: ExternalName, externalName: 127.0.0.1}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: $MS_APISERVICE}
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {name: $MS_NAME, namespace: $ADAPTER_NS, port: $(ms_port)}
  caBundle: $ca
  groupPriorityMinimum: 100
  versionPriority: 100
YAML
}

# ms_up DEADLINE: metrics-server of the loaded cluster (whose node is up), to APIService Available.
ms_up() {
  local deadline="$1" dir="$C_DIR/metrics-server"
  [ -x "$METRICS_SERVER_BIN" ] || die "$METRICS_SERVER_BIN is missing (install-tools.sh failed?)"
  service_pki "$dir" "$MS_NAME"
  # the rules of upstream's ClusterRole system:metrics-server
  service_identity "$dir" "$MS_NAME" '  - apiGroups: [""]
    resources: [nodes/metrics]
    verbs: [get]
  - apiGroups: [""]
    resources: [pods, nodes]
    verbs: [get, list, watch]'
  # --kubelet-request-timeout: below 9/10 of the resolution, which metrics-server requires
  [ -f "$C_DIR/run-metrics-server.sh" ] ||
    write_run_script "$C_DIR/run-metrics-server.sh" "$C_DIR/metrics-server.pid" "$METRICS_SERVER_BIN" \
      --secure-port="$(ms_port)" \
      --bind-address=127.0.0.1 \
      --tls-cert-file="$dir/serving.crt" \
      --tls-private-key-file="$dir/serving.key" \
      --cert-dir="$dir/certs" \
      --kubeconfig="$dir/kubeconfig" \
      --authentication-kubeconfig="$dir/kubeconfig" \
      --authorization-kubeconfig="$dir/kubeconfig" \
      --kubelet-preferred-address-types=InternalIP \
      --kubelet-certificate-authority="$C_DIR/pki/ca.crt" \
      --metric-resolution=10s \
      --kubelet-request-timeout=5s \
      --profiling=false
  start_component metrics-server
  wait_for "$deadline" metrics-server "metrics-server /livez on https://127.0.0.1:$(ms_port)" ms_healthy
  ms_register
  wait_for "$deadline" metrics-server "APIService $MS_APISERVICE Available" ms_available
}

# shellcheck disable=SC2034 # line and all_ok belong to the caller (cmd_status)
ms_status() { # appends to $line; sets all_ok=1 when something is wrong
  local pid
  if pid="$(comp_pid "$C_DIR" metrics-server)"; then line+=" metrics-server=running(pid=$pid)"; else
    line+=" metrics-server=stopped"
    all_ok=1
  fi
  if ms_available; then line+=" metrics=Available"; else
    line+=" metrics=unavailable"
    all_ok=1
  fi
}
