# shellcheck shell=bash
# The node of each cluster (sourced by clusters.sh; KUBE_VERSION=1.34, NODES=1): one real node per
# cluster, so that pods are scheduled, run, pass their probes and report Ready. See README.md,
# "Nodes".
#
# Per cluster C (index i), all under <state>/C/node/ unless said otherwise:
#   - a network namespace of its own, flotilla-<bed id>-C (/run/netns), linked to the host netns by
#     a veth pair on a private /30 (10.220.x.y: host side .1, the node's address .2, x.y from the
#     port base and i, so two beds never share one). The namespace gets no default route: nothing
#     in it (containerd, pods) can reach any address but its own, the /30 and its pod bridge.
#   - kube-scheduler, in the host netns with the control plane (127.0.0.1:BASE+10i+5);
#   - two socat relays that make the API server (bound to 127.0.0.1 of the host netns) reachable
#     inside the node's netns on the same port, at 127.0.0.1 (kubelet and kube-proxy use
#     https://127.0.0.1:<port>, as the serving certificate names) and at the node's address (the
#     endpoint of the `kubernetes` Service, that pods reach through its ClusterIP 10.96.0.1):
#     api-relay-host: UNIX-LISTEN:node/api.sock -> TCP:127.0.0.1:<port>, in the host netns
#     api-relay-node: TCP-LISTEN:<port> (all addresses of the node netns) -> node/api.sock
#   - containerd (Debian's), with its own root, state, socket, runc root and CNI config (bridge
#     cni0 + host-local 10.244.0.0/24, portmap; loopback is added by containerd), sandbox image
#     flotilla.test/pause:3.10; the images built by images/build.sh are imported before the
#     kubelet starts;
#   - kubelet (cgroupfs driver, cgroup root /flotilla-<bed id>-C in every cgroup v1 hierarchy,
#     low eviction thresholds, image GC off: the imported images are all there is);
#   - kube-proxy, iptables mode: its rules live in the node's netns.
# Processes enter only the node's network namespace (nsenter --net), not a mount namespace of
# their own: the kubelet's volume mounts must be visible to containerd.

NODE_POD_CIDR="10.244.0.0/24"
NODE_COMPONENTS=(api-relay-host api-relay-node containerd kubelet kube-proxy)
CNI_BIN_DIR=/usr/lib/cni
PAUSE_IMAGE="flotilla.test/pause:3.10"

# A short id of the bed (its state dir): names of things outside the state dir (netns, veth,
# cgroups) carry it, so two beds on one machine never meet.
BED_ID="$(printf '%s' "$STATE" | sha256sum | cut -c1-6)"

# shellcheck disable=SC2153 # C_NAME, C_DIR, C_API_PORT come from load_cluster
load_node() { # sets N_* for the cluster loaded by load_cluster
  local idx slot off
  idx="$(cluster_index "$C_NAME")"
  N_DIR="$C_DIR/node"
  N_NAME="$C_NAME-node"
  N_NETNS="flotilla-$BED_ID-$C_NAME"
  N_VETH="fl$BED_ID-$idx"
  N_VETH_PEER="fl$BED_ID-n$idx"
  N_CGROUP="flotilla-$BED_ID-$C_NAME"
  # a /30 in 10.220.0.0/16 per cluster, numbered like its ports (BASE/10 + i): unique per bed
  slot=$(((C_API_PORT / 10) % 16384))
  off=$((slot * 4))
  N_HOST_IP="10.220.$((off / 256)).$((off % 256 + 1))"
  N_IP="10.220.$((off / 256)).$((off % 256 + 2))"
  N_SOCK="$N_DIR/containerd.sock"
  C_SCHED_PORT="$(kv "$C_DIR/cluster.env" SCHED_PORT)"
  C_SCHED_PORT="${C_SCHED_PORT:-$((C_API_PORT + 5))}"
}

in_node() { nsenter --net="/run/netns/$N_NETNS" "$@"; }
node_ctr() { ctr --address "$N_SOCK" --namespace k8s.io "$@"; }

# cert_sign NAME SUBJECT [SANS]: a certificate signed by the cluster CA, in pki/NAME.{crt,key}: a
# client certificate, or with SANS ("DNS:a,IP:b") a serving one
cert_sign() {
  local pki="$C_DIR/pki" name="$1" subj="$2" sans="${3:-}" ext
  [ -f "$pki/$name.crt" ] && return 0
  ext="$(mktemp)"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >"$ext"
  if [ -n "$sans" ]; then
    printf 'extendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$sans" >>"$ext"
  else
    printf 'extendedKeyUsage=clientAuth\n' >>"$ext"
  fi
  if ! { openssl req -new -nodes -newkey rsa:2048 -sha256 -subj "$subj" -keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null &&
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -set_serial "0x$(openssl rand -hex 12)" \
      -sha256 -days 3650 -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null; }; then
    rm -f "$ext" "$pki/$name".*
    die "[$C_NAME] cannot sign the certificate $name"
  fi
  rm -f "$ext" "$pki/$name.csr"
  chmod 600 "$pki/$name.key" "$pki/$name.crt"
}

# cert_kubeconfig SERVER CERTNAME: a kubeconfig with the CA and client certificate embedded
cert_kubeconfig() {
  local pki="$C_DIR/pki"
  cat <<KC
apiVersion: v1
kind: Config
clusters:
- name: $C_NAME
  cluster:
    server: $1
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 <"$pki/$2.crt")
    client-key-data: $(base64 -w0 <"$pki/$2.key")
contexts:
- name: $C_NAME
  context: {cluster: $C_NAME, user: $2}
current-context: $C_NAME
KC
}

# write_config FILE (content on stdin): replaces FILE only when the content changed, atomically
# (kube-proxy exits as soon as its configuration file changes, even to the same bytes half-written)
write_config() {
  cat >"$1.new.$$"
  if cmp -s "$1.new.$$" "$1"; then rm -f "$1.new.$$"; else mv -f "$1.new.$$" "$1"; fi
}

node_init() { # identities, configs and run scripts of the cluster's node and scheduler
  load_node
  mkdir -p "$N_DIR"
  cert_sign kube-scheduler "/CN=system:kube-scheduler"
  cert_sign kubelet "/O=system:nodes/CN=system:node:$N_NAME"
  cert_sign kube-proxy "/CN=system:kube-proxy"
  cert_sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  # The kubelet's serving certificate, from the cluster CA for the node's name and address: its
  # own self-signed one names only the host name, which nothing resolves here, so metrics-server
  # (which dials the InternalIP) could not verify it.
  cert_sign kubelet-serving "/CN=$N_NAME" "DNS:$N_NAME,IP:$N_IP"
  [ -f "$C_DIR/scheduler.kubeconfig" ] || cert_kubeconfig "$C_SERVER" kube-scheduler | write_atomic "$C_DIR/scheduler.kubeconfig"
  [ -f "$N_DIR/kubelet.kubeconfig" ] || cert_kubeconfig "$C_SERVER" kubelet | write_atomic "$N_DIR/kubelet.kubeconfig"
  [ -f "$N_DIR/kube-proxy.kubeconfig" ] || cert_kubeconfig "$C_SERVER" kube-proxy | write_atomic "$N_DIR/kube-proxy.kubeconfig"
  [ -f "$C_DIR/run-scheduler.sh" ] ||
    write_run_script "$C_DIR/run-scheduler.sh" "$C_DIR/scheduler.pid" "$KUBE_BIN_DIR/kube-scheduler" \
      --kubeconfig="$C_DIR/scheduler.kubeconfig" \
      --authentication-kubeconfig="$C_DIR/scheduler.kubeconfig" \
      --authorization-kubeconfig="$C_DIR/scheduler.kubeconfig" \
      --bind-address=127.0.0.1 \
      --secure-port="$C_SCHED_PORT" \
      --cert-dir="$C_DIR/scheduler-certs" \
      --leader-elect=false \
      --profiling=false

  local cd="$N_DIR/containerd"
  mkdir -p "$cd/root" "$cd/state" "$cd/certs.d/_default" "$N_DIR/cni" "$N_DIR/pod-logs" "$N_DIR/kubelet"
  # No registry is ever reached: the netns has no route out, and every registry host is sent to
  # a dead port on loopback (hosts.toml `server` replaces the upstream host).
  printf 'server = "http://127.0.0.1:9"\n[host."http://127.0.0.1:9"]\n  capabilities = ["pull", "resolve"]\n' | write_config "$cd/certs.d/_default/hosts.toml"
  for h in docker.io registry.k8s.io quay.io ghcr.io gcr.io flotilla.test; do
    mkdir -p "$cd/certs.d/$h"
    write_config "$cd/certs.d/$h/hosts.toml" <"$cd/certs.d/_default/hosts.toml"
  done
  write_config "$N_DIR/containerd.toml" <<TOML
# Generated by e2e/testbed/clusters.sh: the containerd of node $N_NAME (netns $N_NETNS).
version = 2
root = "$cd/root"
state = "$cd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$N_SOCK"
[debug]
  level = "info"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$cd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  # these VMs drop CAP_SYS_RESOURCE from every process's bounding set: runc cannot lower a
  # container's oom_score_adj below containerd's own (the kubelet asks -998 for sandboxes)
  restrict_oom_score_adj = true
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$cd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$N_DIR/cni"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$cd/certs.d"
TOML
  write_config "$N_DIR/cni/10-flotilla.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "flotilla-$BED_ID-$C_NAME",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$N_DIR/cni-ipam",
        "ranges": [[{"subnet": "$NODE_POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  # Pods get no DNS server (there is none in the bed): a resolver on their own loopback.
  printf 'nameserver 127.0.0.1\n' | write_config "$N_DIR/resolv.conf"
  write_config "$N_DIR/kubelet.yaml" <<YAML
# Generated by e2e/testbed/clusters.sh: the kubelet of node $N_NAME (netns $N_NETNS).
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 0.0.0.0
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$C_DIR/pki/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$C_DIR/pki/kubelet-serving.crt"
tlsPrivateKeyFile: "$C_DIR/pki/kubelet-serving.key"
containerRuntimeEndpoint: "unix://$N_SOCK"
cgroupDriver: cgroupfs
cgroupRoot: "/$N_CGROUP"
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
failSwapOn: false
failCgroupV1: false
podLogsDir: "$N_DIR/pod-logs"
resolvConf: "$N_DIR/resolv.conf"
clusterDomain: cluster.local
# Never evict for disk, and never delete images (the imported ones are all there is): the
# project's machines share a disk that is often nearly full, and report a size far above what
# they can hold (252 GB with ~90 GB usable), so any percentage would put the node under
# DiskPressure (taint, evictions) for the whole run. Absolute floors that only a full disk hits.
evictionHard: {memory.available: "100Mi", nodefs.available: "1Mi", nodefs.inodesFree: "100", imagefs.available: "1Mi", imagefs.inodesFree: "100"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 60
rotateCertificates: false
serverTLSBootstrap: false
registerNode: true
YAML
  write_config "$N_DIR/kube-proxy.yaml" <<YAML
# Generated by e2e/testbed/clusters.sh: the kube-proxy of node $N_NAME (netns $N_NETNS).
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: "$N_DIR/kube-proxy.kubeconfig"}
hostnameOverride: $N_NAME
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: $NODE_POD_CIDR
detectLocalMode: ClusterCIDR
# leave the conntrack sysctls alone (some are not per network namespace)
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {minSyncPeriod: 1s, syncPeriod: 30s}
YAML

  local netns="--net=/run/netns/$N_NETNS"
  write_run_script "$C_DIR/run-api-relay-host.sh" "$C_DIR/api-relay-host.pid" \
    socat "UNIX-LISTEN:$N_DIR/api.sock,fork,unlink-early,mode=600" "TCP:127.0.0.1:$C_API_PORT"
  write_run_script "$C_DIR/run-api-relay-node.sh" "$C_DIR/api-relay-node.pid" \
    nsenter "$netns" socat "TCP-LISTEN:$C_API_PORT,fork,reuseaddr" "UNIX-CONNECT:$N_DIR/api.sock"
  write_run_script "$C_DIR/run-containerd.sh" "$C_DIR/containerd.pid" \
    nsenter "$netns" containerd --config "$N_DIR/containerd.toml"
  write_run_script "$C_DIR/run-kubelet.sh" "$C_DIR/kubelet.pid" \
    nsenter "$netns" "$KUBE_BIN_DIR/kubelet" \
    --config="$N_DIR/kubelet.yaml" \
    --kubeconfig="$N_DIR/kubelet.kubeconfig" \
    --root-dir="$N_DIR/kubelet" \
    --cert-dir="$N_DIR/kubelet/pki" \
    --hostname-override="$N_NAME" \
    --node-ip="$N_IP"
  write_run_script "$C_DIR/run-kube-proxy.sh" "$C_DIR/kube-proxy.pid" \
    nsenter "$netns" "$KUBE_BIN_DIR/kube-proxy" --config="$N_DIR/kube-proxy.yaml"
}

# Every cgroup v1 hierarchy (and the unified one of a hybrid setup) mounted under /sys/fs/cgroup.
cgroup_hierarchies() { findmnt -rn -t cgroup,cgroup2 -o TARGET | grep '^/sys/fs/cgroup' || true; }

node_netns_up() {
  [ -e "/run/netns/$N_NETNS" ] || ip netns add "$N_NETNS"
  if ! ip link show "$N_VETH" >/dev/null 2>&1; then
    ip link add "$N_VETH" type veth peer name "$N_VETH_PEER"
    ip link set "$N_VETH_PEER" netns "$N_NETNS"
    ip -n "$N_NETNS" link set "$N_VETH_PEER" name eth0
  fi
  ip addr replace "$N_HOST_IP/30" dev "$N_VETH"
  ip link set "$N_VETH" up
  ip -n "$N_NETNS" link set lo up
  ip -n "$N_NETNS" addr replace "$N_IP/30" dev eth0
  ip -n "$N_NETNS" link set eth0 up
  # Service ClusterIPs, for processes of the node itself (host-network pods): with no default
  # route their connect() fails before kube-proxy's DNAT; unDNATed packets die at the host side
  # of the veth (the host netns does not forward)
  ip -n "$N_NETNS" route replace "$SERVICE_CIDR" dev eth0 src "$N_IP"
  in_node sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.route_localnet=1 >/dev/null
  local h cg
  for h in $(cgroup_hierarchies); do
    cg="$h/$N_CGROUP"
    [ -d "$cg" ] || mkdir "$cg"
    if [ -f "$cg/cpuset.cpus" ] && [ -z "$(<"$cg/cpuset.cpus")" ]; then
      cat "$h/cpuset.cpus" >"$cg/cpuset.cpus"
      cat "$h/cpuset.mems" >"$cg/cpuset.mems"
    fi
  done
}

sched_healthy() { [ "$(curl -sk --max-time 2 "https://127.0.0.1:$C_SCHED_PORT/healthz" 2>/dev/null)" = ok ]; }
relay_ready() { [ -S "$N_DIR/api.sock" ] && [ "$(in_node curl -sS --max-time 3 --cacert "$C_DIR/pki/ca.crt" "https://127.0.0.1:$C_API_PORT/readyz" 2>/dev/null)" = ok ]; }
containerd_ready() { # its CRI plugin loaded (containerd itself runs on when that plugin fails)
  local p
  [ -S "$N_SOCK" ] && p="$(ctr --address "$N_SOCK" plugins ls 2>/dev/null)" || return 1
  if grep -qE '^io\.containerd\.grpc\.v1 +cri .* error' <<<"$p"; then
    fail_with_log "containerd's CRI plugin failed to load (see 'failed to load plugin' in the log)" containerd
  fi
  grep -qE '^io\.containerd\.grpc\.v1 +cri .* ok' <<<"$p"
}
kubelet_healthy() { [ "$(in_node curl -sS --max-time 2 http://127.0.0.1:10248/healthz 2>/dev/null)" = ok ]; }
proxy_healthy() { in_node curl -sS --max-time 2 http://127.0.0.1:10256/healthz 2>/dev/null | grep -q '"lastUpdated"'; }
node_ready() {
  api_get "/api/v1/nodes/$N_NAME" |
    jq -e '.status.conditions // [] | any(.type == "Ready" and .status == "True")' >/dev/null 2>&1
}

# The `kubernetes` Service's endpoint: the apiserver runs with --endpoint-reconciler-type=none
# (its advertise address, 127.0.0.1, is refused in Endpoints), so the bed writes it: the node's
# address, where api-relay-node listens on the apiserver's port. kube-proxy reads the
# EndpointSlice; the Endpoints is for older clients (and is not mirrored: skip-mirror).
kubernetes_endpoints() {
  admin_kubectl apply -f - >/dev/null <<YAML || die "[$C_NAME] cannot write the kubernetes Service's endpoints"
apiVersion: v1
kind: Endpoints
metadata:
  name: kubernetes
  namespace: default
  labels: {endpointslice.kubernetes.io/skip-mirror: "true"}
subsets:
- addresses: [{ip: "$N_IP"}]
  ports: [{name: https, port: $C_API_PORT, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kubernetes
  namespace: default
  labels: {kubernetes.io/service-name: kubernetes, endpointslice.kubernetes.io/managed-by: flotilla-testbed}
addressType: IPv4
endpoints:
- addresses: ["$N_IP"]
  conditions: {ready: true}
ports: [{name: https, port: $C_API_PORT, protocol: TCP}]
YAML
}

node_up() { # node_up DEADLINE: the scheduler and the node of the loaded cluster, up to Node Ready
  local deadline="$1" img
  node_init
  start_component scheduler
  wait_for "$deadline" scheduler "kube-scheduler /healthz on :$C_SCHED_PORT" sched_healthy
  node_netns_up
  start_component api-relay-host
  start_component api-relay-node
  wait_for "$deadline" api-relay-node "the apiserver through the relays, inside netns $N_NETNS" relay_ready
  start_component containerd
  wait_for "$deadline" containerd "containerd on $N_SOCK" containerd_ready
  for img in "$STATE"/images/*.tar; do
    node_ctr images import "$img" >>"$C_DIR/containerd.log" 2>&1 ||
      fail_with_log "cannot import $img" containerd
  done
  kubernetes_endpoints
  start_component kubelet
  start_component kube-proxy
  wait_for "$deadline" kubelet "kubelet /healthz (127.0.0.1:10248 in netns $N_NETNS)" kubelet_healthy
  wait_for "$deadline" kube-proxy "kube-proxy /healthz (127.0.0.1:10256 in netns $N_NETNS)" proxy_healthy
  wait_for "$deadline" kubelet "Node $N_NAME Ready" node_ready
}

# Stops the node of cluster $1 and removes what lives outside the state dir: containers (killed
# through the node's cgroups), then the daemons, then mounts, the netns (and with it the veth
# pair, the pod bridge and kube-proxy's rules) and the cgroups.
node_down() {
  load_cluster "$1"
  load_node
  local comp pid pids=() i h procs alive
  for comp in kubelet kube-proxy scheduler; do
    if pid="$(comp_pid "$C_DIR" "$comp")"; then
      kill -CONT "$pid" 2>/dev/null || true
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  # the containers: every process in the node's cgroups (their shims, still alive, reap them)
  for ((i = 0; i < 50; i++)); do
    procs="$(node_cgroup_procs | sort -un | tr '\n' ' ')"
    [ -n "${procs// /}" ] || break
    # shellcheck disable=SC2086 # a list of pids
    kill -KILL $procs 2>/dev/null || true
    sleep 0.2
  done
  for comp in containerd api-relay-node api-relay-host; do
    if pid="$(comp_pid "$C_DIR" "$comp")"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  # shims and anything else left in the node's netns
  if [ -e "/run/netns/$N_NETNS" ]; then
    for pid in $(ip netns pids "$N_NETNS" 2>/dev/null); do
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    done
  fi
  for ((i = 0; i < 100; i++)); do
    alive=0
    for pid in "${pids[@]}"; do
      if [ -d "/proc/$pid" ] && [ "$(proc_state "$pid")" != Z ]; then alive=1; fi
    done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  if [ -e "/run/netns/$N_NETNS" ]; then
    for pid in $(ip netns pids "$N_NETNS" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  fi
  rm -f "$C_DIR"/{kubelet,kube-proxy,scheduler,containerd,api-relay-node,api-relay-host}.pid "$C_DIR"/member-relay-*.pid
  # the kubelet's links to its containers' logs (/var/log/containers is not configurable)
  find /var/log/containers -maxdepth 1 -type l -lname "$N_DIR/*" -delete 2>/dev/null || true
  # libcni's result cache of pods that were killed, not torn down (/var/lib/cni/results)
  local f id
  for f in /var/lib/cni/results/"flotilla-$BED_ID-$C_NAME"-*; do
    [ -f "$f" ] || continue
    id="${f#/var/lib/cni/results/flotilla-"$BED_ID"-"$C_NAME"-}"
    id="${id%-eth0}"
    rm -f "$f" "/var/lib/cni/results/cni-loopback-$id-lo"
  done
  node_unmount
  if [ -e "/run/netns/$N_NETNS" ]; then
    ip netns del "$N_NETNS" 2>/dev/null || log "[$C_NAME] cannot delete netns $N_NETNS"
  fi
  ip link del "$N_VETH" 2>/dev/null || true
  for ((i = 0; i < 20; i++)); do
    for h in $(cgroup_hierarchies); do
      if [ -d "$h/$N_CGROUP" ]; then find "$h/$N_CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
    done
    node_cgroups_left || break
    sleep 0.2
  done
  node_cgroups_left && log "[$C_NAME] cgroups left: /sys/fs/cgroup/*/$N_CGROUP"
  return 0
}

node_cgroup_procs() { # every pid in the node's cgroups (none, and status 0, when there are none)
  local h
  for h in $(cgroup_hierarchies); do
    if [ -d "$h/$N_CGROUP" ]; then find "$h/$N_CGROUP" -name cgroup.procs -exec cat {} + 2>/dev/null || true; fi
  done
}

node_cgroups_left() {
  local h
  for h in $(cgroup_hierarchies); do [ -d "$h/$N_CGROUP" ] && return 0; done
  return 1
}

node_unmount() { # everything mounted under the node's dir (overlays, tmpfs volumes, pod netns, shm)
  local m i
  for ((i = 0; i < 5; i++)); do
    mapfile -t mounts < <(findmnt -rn -o TARGET | grep -F "$N_DIR/" | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-)
    [ ${#mounts[@]} -gt 0 ] || return 0
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  done
  log "[$C_NAME] mounts left under $N_DIR: $(findmnt -rn -o TARGET | grep -cF "$N_DIR/")"
}

# shellcheck disable=SC2034 # line and all_ok belong to the caller (cmd_status)
node_status() { # appends to $line; sets all_ok=1 when something is wrong
  load_node
  local comp pid
  for comp in scheduler "${NODE_COMPONENTS[@]}"; do
    if pid="$(comp_pid "$C_DIR" "$comp")"; then line+=" $comp=running(pid=$pid)"; else
      line+=" $comp=stopped"
      all_ok=1
    fi
  done
  local f
  for f in "$C_DIR"/member-relay-*.pid; do
    [ -f "$f" ] || continue
    comp="$(basename "$f" .pid)"
    if pid="$(comp_pid "$C_DIR" "$comp")"; then line+=" $comp=running(pid=$pid)"; else
      line+=" $comp=stopped"
      all_ok=1
    fi
  done
  if node_ready; then line+=" node=Ready($N_NAME,$N_IP)"; else
    line+=" node=NotReady($N_NAME)"
    all_ok=1
  fi
}

# --- The members' API servers, as pods of the host's node reach them ----------------------------
# An operator in a pod of the host cluster needs every member's API server, which listens on
# 127.0.0.1 of the machine (the host netns) only. One relay per member, in the host node's netns:
#   member-relay-<member>: socat TCP-LISTEN:<host node address>:<member's apiserver port>
#                          -> <state>/<member>/node/api.sock
# (the member's own api-relay-host socket, which forwards to 127.0.0.1:<member port>). Pods reach
# it through their default route (the pod bridge is the host node's), this machine's processes
# through the veth /30, both at https://<host node address>:<member port>. The members' serving
# certificates do not name that address, so `<member>.internal.kubeconfig` (written here, as the
# kind provider writes its own) says `tls-server-name: localhost`, a name they carry: TLS is
# verified against the member's CA as before, nothing is skipped. `flotilla join` with
# `--member-kubeconfig <state>/<member>.internal.kubeconfig` copies server and name into the
# member's Secret.
member_relays_up() { # for every member, in the host's node
  local m m_dir m_port deadline
  load_cluster host
  load_node
  deadline=$(($(date +%s) + UP_TIMEOUT))
  for m in $(member_clusters); do
    m_dir="$STATE/$m"
    m_port="$(kv "$m_dir/cluster.env" API_PORT)"
    write_run_script "$C_DIR/run-member-relay-$m.sh" "$C_DIR/member-relay-$m.pid" \
      nsenter "--net=/run/netns/$N_NETNS" socat -lf "$C_DIR/member-relay-$m.log" \
      "TCP-LISTEN:$m_port,bind=$N_IP,fork,reuseaddr" "UNIX-CONNECT:$m_dir/node/api.sock"
    start_component "member-relay-$m"
    # the member's admin kubeconfig, with the relay's address and the TLS name it checks
    sed -e "s|^\(    server: \)https://127.0.0.1:$m_port\$|\1https://$N_IP:$m_port\n    tls-server-name: localhost|" \
      "$STATE/$m.kubeconfig" | write_atomic "$STATE/$m.internal.kubeconfig"
    grep -q 'tls-server-name: localhost' "$STATE/$m.internal.kubeconfig" ||
      die "[$m] cannot write $m.internal.kubeconfig (no server https://127.0.0.1:$m_port in $m.kubeconfig)"
    wait_for "$deadline" "member-relay-$m" \
      "$m's apiserver through the host node's relay (https://$N_IP:$m_port)" \
      member_relay_ready "$m_port" "$m_dir"
  done
}

member_relay_ready() { # member_relay_ready MEMBER_PORT MEMBER_DIR: with the member's admin token
  [ "$(curl -sS --max-time 3 --cacert "$2/pki/ca.crt" --connect-to "localhost:$1:$N_IP:$1" \
    -H "Authorization: Bearer $(<"$2/pki/admin.token")" "https://localhost:$1/readyz" 2>/dev/null)" = ok ]
}

# load-image CLUSTER ARCHIVE: an OCI archive (images/operator.sh, images/build.sh) imported into
# that cluster's node, for pods with imagePullPolicy Never or IfNotPresent.
node_load_image() {
  local c="$1" archive="$2"
  [ -f "$archive" ] || die "no such image archive: $archive"
  load_cluster "$c"
  load_node
  if [ "$NODES" != 1 ] || [ ! -S "$N_SOCK" ]; then die "[$c] has no node (NODES=$NODES) or its containerd is not running"; fi
  node_ctr images import "$archive" >>"$C_DIR/containerd.log" 2>&1 ||
    fail_with_log "cannot import $archive" containerd
  log "[$c] imported $(tar -xOf "$archive" index.json | jq -r '[.manifests[].annotations["io.containerd.image.name"]] | join(" ")') into $N_NAME"
}
