#!/usr/bin/env bash
# Flotilla's local multi-cluster Kubernetes test bed: one host cluster and N member clusters, each
# a real control plane (etcd + kube-apiserver + kube-controller-manager) on 127.0.0.1, no Docker.
# See README.md beside this file.
#
# Usage: clusters.sh up|down|env|status|stop-apiserver C|start-apiserver C|hang-apiserver C|resume-apiserver C
#        clusters.sh metrics-adapter start PROMETHEUS_URL|stop|status
#
# Environment:
#   KUBE_VERSION         1.34 (default) or 1.20: which Kubernetes the clusters run (see versions.sh);
#                        recorded at the first `up`, a later `up` with another one refuses
#   MEMBERS              number of member clusters (default 3)
#   PROVIDER             local (default) or kind
#   FLOTILLA_STATE       state directory (default <repo>/e2e/.state)
#   FLOTILLA_PORT_BASE   first port (default 26000); cluster i (host=0, memberK=K) uses BASE+10*i+{0..3},
#                        memberK's Prometheus adapter BASE+10*K+4, with nodes the scheduler
#                        BASE+10*i+5 and metrics-server BASE+10*i+6
#   FLOTILLA_CACHE       where install-tools.sh caches binaries (default ~/.cache/flotilla)
#   FLOTILLA_UP_TIMEOUT  seconds to wait for one cluster to become ready (default 240), and as much
#                        again for its node
#   NODES                1 (default on 1.34): each cluster gets a scheduler and one node (kubelet,
#                        containerd, kube-proxy in a network namespace of its own; nodes.sh)
#                        and a metrics-server (metrics.k8s.io; metrics-server.sh);
#                        0: control planes only, as the 1.20 floor always is. Recorded at the first `up`.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KUBE_VERSION_ASKED="${KUBE_VERSION:-}"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
CACHE="${FLOTILLA_CACHE:-$HOME/.cache/flotilla}"
BIN="$CACHE/bin"
STATE="$(realpath -m "${FLOTILLA_STATE:-$REPO_ROOT/e2e/.state}")"
LOG_ARCHIVE="${STATE}-logs"
MEMBERS="${MEMBERS:-3}"
PROVIDER="${PROVIDER:-local}"
PORT_BASE="${FLOTILLA_PORT_BASE:-26000}"
UP_TIMEOUT="${FLOTILLA_UP_TIMEOUT:-240}"
SERVICE_CIDR="10.96.0.0/16"
SA_ISSUER="https://kubernetes.default.svc"
MARKER=".flotilla-testbed"
COMPONENTS=(etcd apiserver controller-manager)

log() { printf '[testbed] %s\n' "$*" >&2; }
die() { printf '[testbed] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $MEMBERS =~ ^[0-9]+$ ]] || die "MEMBERS must be a number, got '$MEMBERS'"
[[ $PORT_BASE =~ ^[0-9]+$ ]] || die "FLOTILLA_PORT_BASE must be a number, got '$PORT_BASE'"
[[ $UP_TIMEOUT =~ ^[0-9]+$ ]] || die "FLOTILLA_UP_TIMEOUT must be a number of seconds"
case "$PROVIDER" in local | kind) ;; *) die "PROVIDER must be 'local' or 'kind', got '$PROVIDER'" ;; esac
case "$STATE" in / | "$HOME" | "$REPO_ROOT") die "refusing to use $STATE as FLOTILLA_STATE" ;; esac

# ---------------------------------------------------------------------------------------------
# small helpers

kv() { { sed -n "s/^$2=//p" "$1" 2>/dev/null || true; } | tail -n 1; } # kv FILE KEY

cluster_index() {
  if [ "$1" = host ]; then echo 0; elif [[ $1 =~ ^member([1-9][0-9]*)$ ]]; then echo "${BASH_REMATCH[1]}"; else return 1; fi
}

wanted_clusters() { # host member1 .. member$MEMBERS
  local i
  echo host
  for ((i = 1; i <= MEMBERS; i++)); do echo "member$i"; done
}

existing_clusters() { # clusters that have a directory in the state dir, host first, members in order
  local f
  [ -d "$STATE" ] || return 0
  for f in "$STATE"/*/cluster.env; do
    [ -f "$f" ] || continue
    basename "$(dirname "$f")"
  done | sort -V # "host" sorts before "member1", and -V puts member10 after member9
}

recorded_provider() { kv "$STATE/testbed.env" PROVIDER; }

# The Kubernetes version: KUBE_VERSION, else the one the bed in $STATE was brought up with, else
# 1.34. A bed keeps its version until `down` (its run scripts name its binaries).
RECORDED_KUBE_VERSION="$(kv "$STATE/testbed.env" KUBE_VERSION)"
KUBE_VERSION="${KUBE_VERSION_ASKED:-${RECORDED_KUBE_VERSION:-1.34}}"
# shellcheck source=versions.sh
. "$SCRIPT_DIR/versions.sh"

# Nodes: NODES, else what the bed was brought up with, else on for 1.34; the 1.20 floor has none.
RECORDED_NODES="$(kv "$STATE/testbed.env" NODES)"
NODES="${NODES:-${RECORDED_NODES:-1}}"
[ "$KUBE_VERSION" = 1.34 ] || NODES=0
case "$NODES" in 0 | 1) ;; *) die "NODES must be 0 or 1, got '$NODES'" ;; esac
# shellcheck source=nodes.sh
. "$SCRIPT_DIR/nodes.sh"
# shellcheck source=metrics-server.sh
. "$SCRIPT_DIR/metrics-server.sh"

port_in_use() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

take_lock() { # serialises up/down on the same state dir; fd 9 is closed in every daemon we start
  local lock
  lock="${TMPDIR:-/tmp}/flotilla-testbed.$(printf '%s' "$STATE" | cksum | cut -d' ' -f1).lock"
  exec 9>"$lock"
  flock -w 600 9 || die "another clusters.sh up/down holds $lock"
}

ensure_state_dir() {
  if [ -d "$STATE" ] && [ ! -f "$STATE/$MARKER" ] && [ -n "$(ls -A "$STATE")" ]; then
    die "$STATE exists, is not empty and is not a test bed state dir; set FLOTILLA_STATE elsewhere"
  fi
  mkdir -p "$STATE"
  touch "$STATE/$MARKER"
  local rec
  rec="$(recorded_provider)"
  if [ -n "$rec" ] && [ "$rec" != "$PROVIDER" ]; then
    die "the test bed in $STATE was brought up with PROVIDER=$rec; run '$0 down' first"
  fi
  if [ -n "$rec" ] && [ -n "$RECORDED_KUBE_VERSION" ] && [ "$RECORDED_KUBE_VERSION" != "$KUBE_VERSION" ]; then
    die "the test bed in $STATE runs Kubernetes $RECORDED_KUBE_VERSION, not $KUBE_VERSION; run '$0 down' first (or use another FLOTILLA_STATE and FLOTILLA_PORT_BASE)"
  fi
  if [ -z "$rec" ]; then
    printf 'PROVIDER=%s\nPORT_BASE=%s\nKUBE_VERSION=%s\nNODES=%s\n' "$PROVIDER" "$PORT_BASE" "$KUBE_VERSION" "$NODES" >"$STATE/testbed.env"
  elif [ -z "$RECORDED_NODES" ]; then
    # a bed from before nodes existed: it has none
    NODES=0
  fi
}

# ---------------------------------------------------------------------------------------------
# per-cluster layout (local provider)

load_cluster() { # sets C_* globals for cluster $1
  local f="$STATE/$1/cluster.env"
  [ -f "$f" ] || die "cluster '$1' is not part of the test bed in $STATE (run: $0 up)"
  C_NAME="$1"
  C_DIR="$STATE/$1"
  C_API_PORT="$(kv "$f" API_PORT)"
  C_ETCD_PORT="$(kv "$f" ETCD_PORT)"
  C_PEER_PORT="$(kv "$f" ETCD_PEER_PORT)"
  C_KCM_PORT="$(kv "$f" KCM_PORT)"
  # (beds brought up before the adapter existed have no ADAPTER_PORT: same formula)
  C_ADAPTER_PORT="$(kv "$f" ADAPTER_PORT)"
  C_ADAPTER_PORT="${C_ADAPTER_PORT:-$((C_API_PORT + 4))}"
  C_SERVER="https://127.0.0.1:$C_API_PORT"
}

component_ports() { # ports a component listens on
  case "$1" in
    etcd) echo "$C_ETCD_PORT $C_PEER_PORT" ;;
    apiserver) echo "$C_API_PORT" ;;
    controller-manager) echo "$C_KCM_PORT" ;;
    scheduler) echo "$((C_API_PORT + 5))" ;;
    metrics-adapter) echo "$C_ADAPTER_PORT" ;;
    metrics-server) ms_port ;;
  esac
}

# Prints the pid of a component if it is alive and really ours (its command line mentions the
# cluster dir: guards against recycled pids). Zombies have an empty cmdline and count as dead.
comp_pid() { # comp_pid CLUSTER_DIR COMPONENT
  local f="$1/$2.pid" pid
  [ -f "$f" ] || return 1
  pid="$(<"$f")"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$1/" || return 1
  echo "$pid"
}

proc_state() { ps -o state= -p "$1" 2>/dev/null | tr -d ' '; } # R, S, T (stopped), ...

gen_pki() {
  local c="$1" pki="$C_DIR/pki" tmp
  [ -f "$pki/tokens.csv" ] && return 0
  tmp="$(mktemp -d "$C_DIR/pki.tmp.XXXXXX")"
  cat >"$tmp/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = flotilla
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[v3_serving]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = IP:127.0.0.1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local, IP:10.96.0.1
[v3_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
CNF
  # (a chain of &&: `set -e` does not apply inside a subshell whose status is tested)
  (
    cd "$tmp" &&
      openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 -config openssl.cnf \
        -extensions v3_ca -subj "/CN=flotilla-$c-ca" -keyout ca.key -out ca.crt &&
      openssl req -new -nodes -newkey rsa:2048 -sha256 -config openssl.cnf \
        -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr &&
      openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 12)" \
        -sha256 -days 3650 -extfile openssl.cnf -extensions v3_serving -out apiserver.crt &&
      openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 -config openssl.cnf \
        -extensions v3_ca -subj "/CN=flotilla-$c-front-proxy-ca" -keyout front-proxy-ca.key -out front-proxy-ca.crt &&
      openssl req -new -nodes -newkey rsa:2048 -sha256 -config openssl.cnf \
        -subj "/CN=front-proxy-client" -keyout front-proxy-client.key -out front-proxy-client.csr &&
      openssl x509 -req -in front-proxy-client.csr -CA front-proxy-ca.crt -CAkey front-proxy-ca.key \
        -set_serial "0x$(openssl rand -hex 12)" -sha256 -days 3650 -extfile openssl.cnf -extensions v3_client \
        -out front-proxy-client.crt &&
      openssl genrsa -out sa.key 2048 &&
      openssl rsa -in sa.key -pubout -out sa.pub &&
      openssl rand -hex 24 >admin.token &&
      openssl rand -hex 24 >controller-manager.token &&
      printf '%s,admin,flotilla-admin,"system:masters"\n%s,system:kube-controller-manager,flotilla-kcm\n' \
        "$(<admin.token)" "$(<controller-manager.token)" >tokens.csv && # token,user,uid,"groups"
      rm -f ./*.csr openssl.cnf &&
      chmod 600 ./*
  ) >/dev/null 2>"$tmp/openssl.err" || { cat "$tmp/openssl.err" >&2; die "[$c] certificate generation failed"; }
  rm -f "$tmp/openssl.err"
  rm -rf "$pki"
  mv "$tmp" "$pki"
  chmod 700 "$pki"
}

# emit_kubeconfig CURRENT SPEC... where SPEC is name|server|ca-file|user|token-file
emit_kubeconfig() {
  local current="$1" spec name server ca user tok
  shift
  printf 'apiVersion: v1\nkind: Config\npreferences: {}\nclusters:\n'
  for spec in "$@"; do
    IFS='|' read -r name server ca user tok <<<"$spec"
    printf -- '- name: %s\n  cluster:\n    server: %s\n    certificate-authority-data: %s\n' \
      "$name" "$server" "$(base64 -w0 <"$ca")"
  done
  printf 'users:\n'
  for spec in "$@"; do
    IFS='|' read -r name server ca user tok <<<"$spec"
    printf -- '- name: %s\n  user:\n    token: %s\n' "$user" "$(<"$tok")"
  done
  printf 'contexts:\n'
  for spec in "$@"; do
    IFS='|' read -r name server ca user tok <<<"$spec"
    printf -- '- name: %s\n  context:\n    cluster: %s\n    user: %s\n    namespace: default\n' "$name" "$name" "$user"
  done
  printf 'current-context: %s\n' "$current"
}

write_atomic() { # write_atomic FILE (content on stdin)
  cat >"$1.tmp.$$"
  chmod 600 "$1.tmp.$$"
  mv -f "$1.tmp.$$" "$1"
}

admin_spec() { # admin_spec CLUSTER
  local d="$STATE/$1"
  printf '%s|https://127.0.0.1:%s|%s|%s|%s' "$1" "$(kv "$d/cluster.env" API_PORT)" \
    "$d/pki/ca.crt" "$1-admin" "$d/pki/admin.token"
}

# write_run_script FILE PIDFILE ARGV...: a script that records its pid and execs ARGV, so that a
# restart (start-apiserver) uses exactly the original command line.
write_run_script() {
  local file="$1" pidfile="$2"
  shift 2
  {
    echo '#!/usr/bin/env bash'
    echo '# Generated by e2e/testbed/clusters.sh. Restarts reuse this exact command line.'
    # shellcheck disable=SC2016 # $$ is meant for the generated script
    printf 'echo $$ >%q\n' "$pidfile"
    printf 'exec'
    printf ' \\\n  %q' "$@"
    printf '\n'
  } | write_atomic "$file"
  chmod 700 "$file"
}

init_cluster() { # creates dir, ports, PKI, kubeconfigs and run scripts (each only if missing)
  local c="$1" d="$STATE/$1" idx base
  mkdir -p "$d"
  if [ ! -f "$d/cluster.env" ]; then
    idx="$(cluster_index "$c")" || die "bad cluster name '$c'"
    base="$(kv "$STATE/testbed.env" PORT_BASE)"
    base="${base:-$PORT_BASE}"
    {
      printf 'CLUSTER=%s\nINDEX=%s\nAPI_PORT=%s\nETCD_PORT=%s\nETCD_PEER_PORT=%s\nKCM_PORT=%s\n' \
        "$c" "$idx" $((base + 10 * idx)) $((base + 10 * idx + 1)) $((base + 10 * idx + 2)) $((base + 10 * idx + 3))
      # the member's Prometheus adapter (`metrics-adapter start`); the host runs none
      [ "$idx" = 0 ] || printf 'ADAPTER_PORT=%s\n' $((base + 10 * idx + 4))
      printf 'SCHED_PORT=%s\n' $((base + 10 * idx + 5))
      printf 'MS_PORT=%s\n' $((base + 10 * idx + 6)) # metrics-server (with nodes)
    } | write_atomic "$d/cluster.env"
  fi
  load_cluster "$c"
  gen_pki "$c"
  local pki="$d/pki"
  [ -f "$d/controller-manager.kubeconfig" ] ||
    emit_kubeconfig "$c" "$c|$C_SERVER|$pki/ca.crt|system:kube-controller-manager|$pki/controller-manager.token" |
    write_atomic "$d/controller-manager.kubeconfig"
  [ -f "$STATE/$c.kubeconfig" ] || emit_kubeconfig "$c" "$(admin_spec "$c")" | write_atomic "$STATE/$c.kubeconfig"

  if [ ! -f "$d/run-etcd.sh" ]; then
    local fsync=()
    # --unsafe-no-fsync only exists in etcd >= 3.4.? / 3.5; Debian's 3.4.23 lacks it.
    if "$ETCD_BIN" --help 2>&1 | grep -q -- '--unsafe-no-fsync'; then fsync=(--unsafe-no-fsync); fi
    write_run_script "$d/run-etcd.sh" "$d/etcd.pid" "$ETCD_BIN" \
      --name=default \
      --data-dir="$d/etcd-data" \
      --listen-client-urls="http://127.0.0.1:$C_ETCD_PORT" \
      --advertise-client-urls="http://127.0.0.1:$C_ETCD_PORT" \
      --listen-peer-urls="http://127.0.0.1:$C_PEER_PORT" \
      --initial-advertise-peer-urls="http://127.0.0.1:$C_PEER_PORT" \
      --initial-cluster="default=http://127.0.0.1:$C_PEER_PORT" \
      --initial-cluster-state=new \
      --initial-cluster-token="flotilla-$c" \
      --logger=zap --log-outputs=stderr \
      "${fsync[@]}"
  fi
  # --endpoint-reconciler-type=none: the `kubernetes` Endpoints would hold the advertise address
  # 127.0.0.1, which Endpoints validation rejects (loopback), so the default reconciler only logs
  # errors. There are no pods that would use it. The requestheader/proxy-client flags set up the
  # aggregation layer (front-proxy CA), which the controller-manager's delegated authn expects.
  # Audit log: every write (create/update/patch/delete) with its user, in
  # <cluster>/audit.log (who wrote what is what the fencing proofs check), and what Flotilla's
  # member ServiceAccounts read (what the member request benchmark counts).
  write_atomic "$d/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts:flotilla-system"]
    verbs: ["get", "list", "watch"]
  - level: None
    verbs: ["get", "list", "watch"]
  - level: Metadata
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
  - level: None
POLICY
  # Flags that differ between versions: the insecure ports are gone in current versions, and with
  # them kube-apiserver's --insecure-port and kube-controller-manager's --port.
  local api_old=() kcm_old=() api_node=()
  if [ "$KUBE_VERSION" = 1.20 ]; then
    api_old=(--insecure-port=0)
    kcm_old=(--port=0)
  fi
  # With nodes, the apiserver reaches the kubelets (logs, exec, port-forward) at their InternalIP
  # with a client certificate of its own (the kubelets authorize it by webhook).
  if [ "$NODES" = 1 ]; then
    cert_sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
    api_node=(--kubelet-client-certificate="$pki/apiserver-kubelet-client.crt"
      --kubelet-client-key="$pki/apiserver-kubelet-client.key"
      --kubelet-preferred-address-types=InternalIP)
  fi
  if [ ! -f "$d/run-apiserver.sh" ]; then
    write_run_script "$d/run-apiserver.sh" "$d/apiserver.pid" "$KUBE_BIN_DIR/kube-apiserver" \
      --etcd-servers="http://127.0.0.1:$C_ETCD_PORT" \
      --bind-address=127.0.0.1 \
      --advertise-address=127.0.0.1 \
      --secure-port="$C_API_PORT" \
      "${api_old[@]}" \
      "${api_node[@]}" \
      --audit-policy-file="$d/audit-policy.yaml" \
      --audit-log-path="$d/audit.log" \
      --audit-log-maxsize=200 \
      --audit-log-maxbackup=1 \
      --tls-cert-file="$pki/apiserver.crt" \
      --tls-private-key-file="$pki/apiserver.key" \
      --client-ca-file="$pki/ca.crt" \
      --token-auth-file="$pki/tokens.csv" \
      --authorization-mode=Node,RBAC \
      --service-account-issuer="$SA_ISSUER" \
      --api-audiences="$SA_ISSUER" \
      --service-account-key-file="$pki/sa.pub" \
      --service-account-signing-key-file="$pki/sa.key" \
      --service-cluster-ip-range="$SERVICE_CIDR" \
      --allow-privileged=true \
      --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
      --requestheader-allowed-names=front-proxy-client \
      --requestheader-username-headers=X-Remote-User \
      --requestheader-group-headers=X-Remote-Group \
      --requestheader-extra-headers-prefix=X-Remote-Extra- \
      --proxy-client-cert-file="$pki/front-proxy-client.crt" \
      --proxy-client-key-file="$pki/front-proxy-client.key" \
      --endpoint-reconciler-type=none \
      --profiling=false \
      --cert-dir="$d/apiserver-certs"
  fi
  if [ ! -f "$d/run-controller-manager.sh" ]; then
    write_run_script "$d/run-controller-manager.sh" "$d/controller-manager.pid" "$KUBE_BIN_DIR/kube-controller-manager" \
      --kubeconfig="$d/controller-manager.kubeconfig" \
      --authentication-kubeconfig="$d/controller-manager.kubeconfig" \
      --authorization-kubeconfig="$d/controller-manager.kubeconfig" \
      --bind-address=127.0.0.1 \
      --secure-port="$C_KCM_PORT" \
      "${kcm_old[@]}" \
      --cert-dir="$d/controller-manager-certs" \
      --service-account-private-key-file="$pki/sa.key" \
      --root-ca-file="$pki/ca.crt" \
      --cluster-signing-cert-file="$pki/ca.crt" \
      --cluster-signing-key-file="$pki/ca.key" \
      --use-service-account-credentials=true \
      --leader-elect=false \
      --controllers='*' \
      --cluster-name="flotilla-$c" \
      --service-cluster-ip-range="$SERVICE_CIDR" \
      --profiling=false
  fi
}

fail_with_log() { # fail_with_log MESSAGE COMPONENT
  {
    printf '[testbed] ERROR [%s]: %s\n' "$C_NAME" "$1"
    printf -- '----- last 40 lines of %s -----\n' "$C_DIR/$2.log"
    tail -n 40 "$C_DIR/$2.log" 2>/dev/null || true
    printf -- '----- end of %s -----\n' "$C_DIR/$2.log"
  } >&2
  exit 1
}

start_component() { # start_component COMPONENT (no-op when it runs; resumes it when stopped)
  local comp="$1" pid port i owner
  if pid="$(comp_pid "$C_DIR" "$comp")"; then
    if [ "$(proc_state "$pid")" = T ]; then
      log "[$C_NAME] $comp (pid $pid) was stopped (SIGSTOP); resuming it"
      kill -CONT "$pid"
    fi
    return 0
  fi
  for port in $(component_ports "$comp"); do
    if port_in_use "$port"; then
      # our own process whose pid file was lost: adopt it
      owner="$(ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2 || true)"
      if [ -n "$owner" ] && tr '\0' ' ' 2>/dev/null <"/proc/$owner/cmdline" | grep -qF -- "$C_DIR/"; then
        echo "$owner" >"$C_DIR/$comp.pid"
        log "[$C_NAME] $comp already runs as pid $owner (pid file was missing); adopted"
        return 0
      fi
      die "[$C_NAME] cannot start $comp: port $port is taken: $(ss -Hltnp "sport = :$port" | tr -s ' ')"
    fi
  done
  rm -f "$C_DIR/$comp.pid"
  printf '\n===== %s clusters.sh: starting %s =====\n' "$(date -Is)" "$comp" >>"$C_DIR/$comp.log"
  # Detached: own session, no terminal, stdin from /dev/null, lock fd closed.
  setsid -f bash "$C_DIR/run-$comp.sh" >>"$C_DIR/$comp.log" 2>&1 </dev/null 9>&-
  for ((i = 0; i < 100; i++)); do
    [ -s "$C_DIR/$comp.pid" ] && return 0
    sleep 0.05
  done
  fail_with_log "$comp did not start" "$comp"
}

wait_for() { # wait_for DEADLINE COMPONENT WHAT CHECK...
  local deadline="$1" comp="$2" what="$3"
  shift 3
  while ! "$@"; do
    # Looked at twice before it counts as gone: /proc/PID/cmdline can read empty while the run
    # script execs its program (seen once in CI: containerd reported "exited" while it was
    # booting, and ran on until the bed was taken down).
    if ! comp_pid "$C_DIR" "$comp" >/dev/null; then
      sleep 0.3
      comp_pid "$C_DIR" "$comp" >/dev/null || fail_with_log "$comp exited while waiting for $what" "$comp"
    fi
    if (($(date +%s) >= deadline)); then
      fail_with_log "timed out after ${UP_TIMEOUT}s waiting for $what" "$comp"
    fi
    sleep 0.5
  done
}

api_get() { # api_get PATH [curl args]: GET on the cluster's apiserver as admin
  local path="$1"
  shift
  curl -sS --max-time 3 --cacert "$C_DIR/pki/ca.crt" \
    -H "Authorization: Bearer $(<"$C_DIR/pki/admin.token")" "$@" "$C_SERVER$path" 2>/dev/null
}
etcd_healthy() { curl -sS --max-time 2 "http://127.0.0.1:$C_ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"'; }
api_ready() { [ "$(api_get /readyz)" = ok ]; }
kcm_healthy() { [ "$(curl -sk --max-time 2 "https://127.0.0.1:$C_KCM_PORT/healthz" 2>/dev/null)" = ok ]; }
# The default namespace is made by the apiserver; its ServiceAccount by kube-controller-manager
# (serviceaccount controller). Up to 1.23 the serviceaccount-token controller also gives every
# ServiceAccount a token Secret, which the floor (1.20) waits for too; since 1.24 none comes.
default_sa_ready() {
  if [ "$KUBE_VERSION" = 1.20 ]; then
    api_get /api/v1/namespaces/default/serviceaccounts/default | jq -e '(.secrets // []) | length > 0' >/dev/null 2>&1
  else
    api_get /api/v1/namespaces/default/serviceaccounts/default | jq -e '.metadata.name == "default"' >/dev/null 2>&1
  fi
}

up_cluster() {
  local c="$1" deadline
  deadline=$(($(date +%s) + UP_TIMEOUT))
  init_cluster "$c"
  local was_up=1 comp
  for comp in "${COMPONENTS[@]}"; do comp_pid "$C_DIR" "$comp" >/dev/null || was_up=0; done
  start_component etcd
  wait_for "$deadline" etcd "etcd health on :$C_ETCD_PORT" etcd_healthy
  start_component apiserver
  wait_for "$deadline" apiserver "apiserver /readyz on $C_SERVER" api_ready
  start_component controller-manager
  wait_for "$deadline" controller-manager "controller-manager /healthz on :$C_KCM_PORT" kcm_healthy
  wait_for "$deadline" controller-manager "ServiceAccount default/default" default_sa_ready
  if [ "$NODES" = 1 ]; then
    for comp in scheduler "${NODE_COMPONENTS[@]}" metrics-server; do comp_pid "$C_DIR" "$comp" >/dev/null || was_up=0; done
    node_up $(($(date +%s) + UP_TIMEOUT))
    ms_up $(($(date +%s) + UP_TIMEOUT))
  fi
  if [ "$was_up" = 1 ]; then
    log "[$c] already up and healthy ($C_SERVER)"
  elif [ "$NODES" = 1 ]; then
    # shellcheck disable=SC2153 # N_NAME and N_IP are set by node_up (load_node)
    log "[$c] ready ($C_SERVER), node $N_NAME Ready at $N_IP"
  else
    log "[$c] ready ($C_SERVER)"
  fi
}

write_kubeconfigs() {
  local c specs=() first=""
  for c in $(existing_clusters); do
    [ -f "$STATE/$c/pki/admin.token" ] || continue
    specs+=("$(admin_spec "$c")")
    first="${first:-$c}"
    emit_kubeconfig "$c" "$(admin_spec "$c")" | write_atomic "$STATE/$c.kubeconfig"
  done
  [ ${#specs[@]} -gt 0 ] || return 0
  [ -f "$STATE/host/cluster.env" ] && first=host
  emit_kubeconfig "$first" "${specs[@]}" | write_atomic "$STATE/kubeconfig"
}

local_up() {
  KUBE_VERSION="$KUBE_VERSION" "$SCRIPT_DIR/install-tools.sh"
  [ "$ETCD_VERSION" = debian ] && ETCD_BIN="$(command -v etcd || echo "$ETCD_BIN")"
  local b
  for b in "$KUBE_BIN_DIR/kube-apiserver" "$KUBE_BIN_DIR/kube-controller-manager" "$ETCD_BIN"; do
    [ -x "$b" ] || die "$b is missing (install-tools.sh failed?)"
  done
  log "Kubernetes $KUBE_FULL_VERSION, etcd $("$ETCD_BIN" --version 2>/dev/null | head -1 | awk '{print $3}')"
  if [ "$NODES" = 1 ]; then
    [ "$(id -u)" = 0 ] || die "nodes need root (network namespaces, cgroups, mounts); run as root or with NODES=0"
    for b in kube-scheduler kubelet kube-proxy; do
      [ -x "$KUBE_BIN_DIR/$b" ] || die "$KUBE_BIN_DIR/$b is missing (install-tools.sh failed?)"
    done
    for b in containerd containerd-shim-runc-v2 runc ctr socat nsenter iptables conntrack "$CNI_BIN_DIR/bridge" "$CNI_BIN_DIR/host-local" "$CNI_BIN_DIR/portmap" "$CNI_BIN_DIR/loopback"; do
      command -v "$b" >/dev/null || die "$b is missing (install-tools.sh installs it)"
    done
    # containerd's CNI config monitor and every kubelet take inotify instances; the default of 128
    # per user is used up by four nodes on a busy machine ("too many open files")
    if (($(sysctl -n fs.inotify.max_user_instances) < 8192)); then
      sysctl -qw fs.inotify.max_user_instances=8192 || die "cannot raise fs.inotify.max_user_instances"
    fi
    "$SCRIPT_DIR/images/build.sh" "$STATE/images" 2>"$STATE/images.log" ||
      { cat "$STATE/images.log" >&2; die "cannot build the node images"; }
  fi
  local c pids=() names=() failed=() i start
  start="$(date +%s)"
  for c in $( (existing_clusters; wanted_clusters) | awk '!seen[$0]++'); do
    up_cluster "$c" &
    pids+=("$!")
    names+=("$c")
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed+=("${names[$i]}")
  done
  write_kubeconfigs
  [ ${#failed[@]} -eq 0 ] || die "cluster(s) not ready: ${failed[*]} (logs: $STATE/<cluster>/*.log)"
  # every member's API server for the pods of the host's node (nodes.sh: member_relays_up)
  if [ "$NODES" = 1 ] && [ -n "$(member_clusters)" ]; then ( member_relays_up ); fi
  log "${#names[@]} clusters ready in $(($(date +%s) - start))s; kubeconfig: $STATE/kubeconfig"
}

# Every process of the test bed: pid files first, then anything whose command line mentions the
# state dir and whose program is one of ours (catches processes whose pid file was lost).
testbed_pids() {
  local f pid cmd exe
  {
    for f in "$STATE"/*/*.pid; do
      [ -f "$f" ] && cat "$f"
    done
    # one grep over every command line (cheap); our own grep matches too and is filtered out below
    # (grep exits 2 when a process vanishes mid-scan: not an error here)
    { grep -lsaF -- "$STATE/" /proc/[0-9]*/cmdline 2>/dev/null || true; } | sed -n 's|^/proc/\([0-9]*\)/cmdline$|\1|p'
  } | sort -un | while read -r pid; do
    [[ $pid =~ ^[0-9]+$ ]] || continue
    cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || continue
    case "$cmd" in *"$STATE/"*) ;; *) continue ;; esac # never a recycled pid
    exe="${cmd%% *}"
    case "${exe##*/}" in
      etcd | kube-apiserver | kube-controller-manager | prometheus-adapter | metrics-server | kube-scheduler | kubelet | \
        kube-proxy | containerd | containerd-shim-runc-v2 | socat) echo "$pid" ;;
      bash) case "$cmd" in *"$STATE/"*/run-*.sh*) echo "$pid" ;; esac ;;
    esac
  done
}

local_down() {
  local pids i port ports=() f c
  # nodes first (containers, daemons, mounts, netns, cgroups), from any state
  for f in "$STATE"/*/cluster.env; do
    [ -f "$f" ] || continue
    c="$(basename "$(dirname "$f")")"
    ( node_down "$c" )
  done
  pids="$(testbed_pids | tr '\n' ' ')"
  if [ -n "${pids// /}" ]; then
    log "stopping test bed processes: $pids"
    # shellcheck disable=SC2086 # word splitting of the pid list is intended
    kill -TERM $pids 2>/dev/null || true
    # shellcheck disable=SC2086
    kill -CONT $pids 2>/dev/null || true # a SIGSTOPped (hung) apiserver only sees TERM once continued
    for ((i = 0; i < 100; i++)); do
      [ -z "$(testbed_pids)" ] && break
      sleep 0.1
    done
    pids="$(testbed_pids | tr '\n' ' ')"
    if [ -n "${pids// /}" ]; then
      log "killing leftovers: $pids"
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
      for ((i = 0; i < 100; i++)); do
        [ -z "$(testbed_pids)" ] && break
        sleep 0.1
      done
    fi
    [ -z "$(testbed_pids)" ] || die "processes survived SIGKILL: $(testbed_pids | tr '\n' ' ')"
  fi
  for f in "$STATE"/*/cluster.env; do
    [ -f "$f" ] || continue
    ports+=("$(kv "$f" API_PORT)" "$(kv "$f" ETCD_PORT)" "$(kv "$f" ETCD_PEER_PORT)" "$(kv "$f" KCM_PORT)")
    [ -z "$(kv "$f" ADAPTER_PORT)" ] || ports+=("$(kv "$f" ADAPTER_PORT)")
    [ -z "$(kv "$f" SCHED_PORT)" ] || ports+=("$(kv "$f" SCHED_PORT)")
    [ -z "$(kv "$f" MS_PORT)" ] || ports+=("$(kv "$f" MS_PORT)")
  done
  for port in "${ports[@]}"; do
    for ((i = 0; i < 100; i++)); do
      port_in_use "$port" || break
      sleep 0.1
    done
    port_in_use "$port" && die "port $port is still in use: $(ss -Hltnp "sport = :$port" | tr -s ' ')"
  done
  return 0
}

archive_logs() { # keep the logs of the last test bed in $STATE-logs (replaced by every down)
  local d c found=0
  for d in "$STATE"/*/; do
    compgen -G "$d*.log" >/dev/null || continue
    if [ "$found" = 0 ]; then
      rm -rf "$LOG_ARCHIVE"
      found=1
    fi
    c="$(basename "$d")"
    mkdir -p "$LOG_ARCHIVE/$c"
    cp -p "$d"*.log "$LOG_ARCHIVE/$c/"
  done
  [ "$found" = 1 ] && log "logs saved in $LOG_ARCHIVE"
  return 0
}

remove_state() {
  [ -d "$STATE" ] || return 0
  if [ ! -f "$STATE/$MARKER" ] && [ -n "$(ls -A "$STATE")" ]; then
    die "$STATE does not look like a test bed state dir (no $MARKER); not deleting it"
  fi
  if findmnt -rn -o TARGET | grep -qF "$STATE/"; then
    die "mounts left under $STATE (findmnt | grep $STATE); not deleting it"
  fi
  rm -rf "$STATE"
}

# ---------------------------------------------------------------------------------------------
# kind provider. Not exercised on the project's machines (no Docker engine there): written to be
# correct by reading kind's and Docker's documented CLI.

kind_node() { echo "flotilla-$1-control-plane"; }
need_kind() {
  command -v kind >/dev/null || die "PROVIDER=kind needs 'kind' on PATH"
  command -v docker >/dev/null || die "PROVIDER=kind needs 'docker' on PATH"
  command -v kubectl >/dev/null || die "PROVIDER=kind needs 'kubectl' on PATH"
}

kind_up() {
  need_kind
  local c existing externals=()
  existing="$(kind get clusters 2>/dev/null || true)"
  for c in $( (existing_clusters; wanted_clusters) | awk '!seen[$0]++'); do
    mkdir -p "$STATE/$c"
    printf 'CLUSTER=%s\nKIND_NAME=flotilla-%s\n' "$c" "$c" | write_atomic "$STATE/$c/cluster.env"
    if grep -qx "flotilla-$c" <<<"$existing"; then
      log "[$c] kind cluster flotilla-$c exists"
      if [ "$(docker inspect -f '{{.State.Paused}}' "$(kind_node "$c")" 2>/dev/null)" = true ]; then
        docker unpause "$(kind_node "$c")" >/dev/null
      fi
    else
      # sequential on purpose: parallel `kind create` is known to be flaky
      log "[$c] creating kind cluster flotilla-$c"
      kind create cluster --name "flotilla-$c" --kubeconfig "$STATE/$c/kind.kubeconfig" --wait 180s
    fi
    # external (from this machine) and internal (from pods on the kind network, e.g. the
    # operator running on the host cluster) kubeconfigs, context renamed to the cluster name
    kind get kubeconfig --name "flotilla-$c" | write_atomic "$STATE/$c.kubeconfig"
    kind get kubeconfig --internal --name "flotilla-$c" | write_atomic "$STATE/$c.internal.kubeconfig"
    kubectl --kubeconfig "$STATE/$c.kubeconfig" config rename-context "kind-flotilla-$c" "$c" >/dev/null
    kubectl --kubeconfig "$STATE/$c.internal.kubeconfig" config rename-context "kind-flotilla-$c" "$c" >/dev/null
    externals+=("$STATE/$c.kubeconfig")
  done
  KUBECONFIG="$(IFS=:; echo "${externals[*]}")" kubectl config view --flatten | write_atomic "$STATE/kubeconfig"
  kubectl --kubeconfig "$STATE/kubeconfig" config use-context host >/dev/null
  for c in $(existing_clusters); do
    kind_wait_ready "$c"
  done
  log "kind clusters ready; kubeconfig: $STATE/kubeconfig"
}

kind_wait_ready() {
  local c="$1" deadline
  deadline=$(($(date +%s) + UP_TIMEOUT))
  until [ "$(kubectl --kubeconfig "$STATE/$c.kubeconfig" get --raw /readyz --request-timeout=3s 2>/dev/null)" = ok ] &&
    kubectl --kubeconfig "$STATE/$c.kubeconfig" -n default get serviceaccount default >/dev/null 2>&1; do
    (($(date +%s) < deadline)) || die "[$c] kind cluster not ready after ${UP_TIMEOUT}s (try: kind export logs --name flotilla-$c)"
    sleep 1
  done
}

kind_down() {
  command -v kind >/dev/null || die "PROVIDER=kind needs 'kind' on PATH"
  local k
  for k in $(kind get clusters 2>/dev/null | grep -E '^flotilla-(host|member[0-9]+)$' || true); do
    log "deleting kind cluster $k"
    kind delete cluster --name "$k"
  done
}

# Fault injection on kind: the apiserver is a static pod managed by the node's kubelet, which would
# restart a killed container at once, so "stop" moves its manifest out of the manifests dir (the
# kubelet then removes the pod) and "start" moves it back. "hang" pauses the whole node container
# (docker pause freezes every process in it, apiserver included) - the closest to SIGSTOP.
kind_fault() {
  need_kind
  local action="$1" c="$2" node manifests=/etc/kubernetes/manifests
  node="$(kind_node "$c")"
  case "$action" in
    stop-apiserver)
      docker exec "$node" sh -c "mv $manifests/kube-apiserver.yaml /etc/kubernetes/kube-apiserver.yaml.stopped"
      docker exec "$node" sh -c 'for i in $(seq 60); do crictl ps -q --name kube-apiserver | grep -q . || exit 0; sleep 1; done; exit 1' ||
        die "[$c] kube-apiserver container still running"
      log "[$c] kube-apiserver stopped"
      ;;
    start-apiserver)
      docker exec "$node" sh -c "[ ! -f /etc/kubernetes/kube-apiserver.yaml.stopped ] || mv /etc/kubernetes/kube-apiserver.yaml.stopped $manifests/kube-apiserver.yaml"
      kind_wait_ready "$c"
      log "[$c] kube-apiserver ready"
      ;;
    hang-apiserver) docker pause "$node" >/dev/null && log "[$c] node container paused" ;;
    resume-apiserver)
      docker unpause "$node" >/dev/null
      kind_wait_ready "$c"
      log "[$c] node container resumed, apiserver ready"
      ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# Prometheus adapter, one per member (local provider, KUBE_VERSION=1.34): serves the member's
# custom.metrics.k8s.io (v1beta1, v1beta2) and external.metrics.k8s.io (v1beta1) from a Prometheus
# on loopback, with the rules in prometheus-adapter/rules.yaml (each member sees only the series
# labelled cluster="<member>"). See README.md, "Metrics APIs".
#
# How the member's aggregator reaches it, with no kube-proxy and no pod network: the APIServices
# name the Service kube-system/flotilla-prometheus-adapter, of type ExternalName with externalName
# 127.0.0.1. Without --enable-aggregator-routing (the default, kept) the aggregator resolves a
# service with proxy.ResolveCluster, which for ExternalName dials <externalName>:<APIService port>;
# the availability check does the same and skips the endpoints check for non-ClusterIP services.
# (With --enable-aggregator-routing, proxy.ResolveEndpoint refuses ExternalName services, and
# Endpoints/EndpointSlices that would hold 127.0.0.1 are refused by validation: loopback.)
# TLS: the aggregator verifies the adapter's certificate against the APIService's caBundle for
# the name flotilla-prometheus-adapter.kube-system.svc; each member's adapter has its own CA and a
# serving certificate for that name (and 127.0.0.1).
# Identity: the ServiceAccount kube-system/flotilla-prometheus-adapter with a token Secret;
# system:auth-delegator (TokenReviews, SubjectAccessReviews for delegated authn/authz), the
# extension-apiserver-authentication-reader Role (the front-proxy CA the aggregator's client
# certificate is checked against), and get/list/watch on pods, namespaces and deployments (the
# adapter lists the pods a pods/* query names).

ADAPTER_NAME=flotilla-prometheus-adapter
ADAPTER_NS=kube-system
ADAPTER_APISERVICES=(v1beta1.custom.metrics.k8s.io v1beta2.custom.metrics.k8s.io v1beta1.external.metrics.k8s.io)

member_clusters() { existing_clusters | grep '^member' || true; }

admin_kubectl() { kubectl --kubeconfig "$STATE/$C_NAME.kubeconfig" --context "$C_NAME" --request-timeout=10s "$@"; }

# service_pki DIR NAME: a CA of its own and a serving certificate for NAME.kube-system.svc (the
# name the aggregator checks, whatever address it dials), localhost and 127.0.0.1, in DIR (once
# per bed): for an aggregated API server of the bed (Prometheus adapter, metrics-server)
service_pki() {
  local dir="$1" name="$2" tmp
  [ -f "$dir/serving.crt" ] && return 0
  mkdir -p "$dir"
  tmp="$(mktemp -d "$dir/pki.tmp.XXXXXX")"
  cat >"$tmp/openssl.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $name
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[v3_serving]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:$name.$ADAPTER_NS.svc, DNS:localhost, IP:127.0.0.1
CNF
  (
    cd "$tmp" &&
      openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 -config openssl.cnf \
        -extensions v3_ca -subj "/CN=$C_NAME-$name-ca" -keyout ca.key -out ca.crt &&
      openssl req -new -nodes -newkey rsa:2048 -sha256 -config openssl.cnf \
        -subj "/CN=$name.$ADAPTER_NS.svc" -keyout serving.key -out serving.csr &&
      openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 12)" \
        -sha256 -days 3650 -extfile openssl.cnf -extensions v3_serving -out serving.crt &&
      rm -f serving.csr openssl.cnf &&
      chmod 600 ./*
  ) >/dev/null 2>"$dir/openssl.err" || { cat "$dir/openssl.err" >&2; die "[$C_NAME] $name certificate generation failed"; }
  rm -f "$dir/openssl.err"
  mv "$tmp"/* "$dir/"
  rmdir "$tmp"
}
adapter_pki() { service_pki "$C_DIR/metrics-adapter" "$ADAPTER_NAME"; }

# service_identity DIR NAME RULES: the ServiceAccount kube-system/NAME with a token Secret,
# bound to system:auth-delegator (delegated authn/authz), to the Role
# extension-apiserver-authentication-reader (the front-proxy CA) and to a ClusterRole NAME with
# RULES (YAML list items); its kubeconfig in DIR/kubeconfig (token in DIR/token).
service_identity() {
  local dir="$1" name="$2" rules="$3" token="" i
  admin_kubectl apply -f - >/dev/null <<YAML || die "[$C_NAME] cannot create the ServiceAccount and RBAC of $name"
apiVersion: v1
kind: ServiceAccount
metadata: {name: $name, namespace: $ADAPTER_NS}
---
apiVersion: v1
kind: Secret
type: kubernetes.io/service-account-token
metadata:
  name: $name-token
  namespace: $ADAPTER_NS
  annotations: {kubernetes.io/service-account.name: $name}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: $name}
rules:
$rules
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: $name}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: $name}
subjects: [{kind: ServiceAccount, name: $name, namespace: $ADAPTER_NS}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "$name:system:auth-delegator"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
subjects: [{kind: ServiceAccount, name: $name, namespace: $ADAPTER_NS}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: $name-auth-reader, namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
subjects: [{kind: ServiceAccount, name: $name, namespace: $ADAPTER_NS}]
YAML
  for ((i = 0; i < 120; i++)); do # the controller-manager fills the token in
    token="$(admin_kubectl -n "$ADAPTER_NS" get secret "$name-token" -o 'jsonpath={.data.token}' 2>/dev/null || true)"
    [ -n "$token" ] && break
    sleep 0.5
  done
  [ -n "$token" ] || die "[$C_NAME] the token Secret $ADAPTER_NS/$name-token was not filled in"
  printf '%s' "$token" | base64 -d | write_atomic "$dir/token"
  emit_kubeconfig "$C_NAME" "$C_NAME|$C_SERVER|$C_DIR/pki/ca.crt|$name|$dir/token" | write_atomic "$dir/kubeconfig"
}

# service_unregister NAME APISERVICE...: removes what service_identity made and the APIServices,
# APIServices first: an APIService whose server is gone makes discovery fail, and with it
# namespace deletion and garbage collection.
service_unregister() {
  local name="$1"
  shift
  admin_kubectl delete apiservice "$@" --ignore-not-found >/dev/null
  admin_kubectl -n "$ADAPTER_NS" delete service "$name" --ignore-not-found >/dev/null
  admin_kubectl -n kube-system delete rolebinding "$name-auth-reader" --ignore-not-found >/dev/null
  admin_kubectl delete clusterrolebinding "$name" "$name:system:auth-delegator" --ignore-not-found >/dev/null
  admin_kubectl delete clusterrole "$name" --ignore-not-found >/dev/null
  admin_kubectl -n "$ADAPTER_NS" delete secret "$name-token" --ignore-not-found >/dev/null
  admin_kubectl -n "$ADAPTER_NS" delete serviceaccount "$name" --ignore-not-found >/dev/null
}

# The adapter's identity in the member, and a kubeconfig with its token: it lists the pods a
# pods/* query names.
adapter_identity() {
  service_identity "$C_DIR/metrics-adapter" "$ADAPTER_NAME" '  - apiGroups: [""]
    resources: [pods, namespaces]
    verbs: [get, list, watch]
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [get, list, watch]'
}

# The Service and APIServices that send the member's metrics API groups to its adapter.
adapter_register() {
  local ca
  ca="$(base64 -w0 <"$C_DIR/metrics-adapter/ca.crt")"
  admin_kubectl apply -f - >/dev/null <<YAML || die "[$C_NAME] cannot register the adapter's APIServices"
apiVersion: v1
kind: Service
metadata: {name: $ADAPTER_NAME, namespace: $ADAPTER_NS}
spec: {type: ExternalName, externalName: 127.0.0.1}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.custom.metrics.k8s.io}
spec:
  group: custom.metrics.k8s.io
  version: v1beta1
  service: {name: $ADAPTER_NAME, namespace: $ADAPTER_NS, port: $C_ADAPTER_PORT}
  caBundle: $ca
  groupPriorityMinimum: 100
  versionPriority: 100
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta2.custom.metrics.k8s.io}
spec:
  group: custom.metrics.k8s.io
  version: v1beta2
  service: {name: $ADAPTER_NAME, namespace: $ADAPTER_NS, port: $C_ADAPTER_PORT}
  caBundle: $ca
  groupPriorityMinimum: 100
  versionPriority: 200
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  service: {name: $ADAPTER_NAME, namespace: $ADAPTER_NS, port: $C_ADAPTER_PORT}
  caBundle: $ca
  groupPriorityMinimum: 100
  versionPriority: 100
YAML
}

adapter_unregister() { service_unregister "$ADAPTER_NAME" "${ADAPTER_APISERVICES[@]}"; }

adapter_healthy() {
  [ "$(curl -sS --max-time 2 --cacert "$C_DIR/metrics-adapter/ca.crt" "https://127.0.0.1:$C_ADAPTER_PORT/healthz" 2>/dev/null)" = ok ]
}

apiservices_available() {
  local a
  for a in "${ADAPTER_APISERVICES[@]}"; do
    api_get "/apis/apiregistration.k8s.io/v1/apiservices/$a" |
      jq -e '.status.conditions // [] | any(.type == "Available" and .status == "True")' >/dev/null 2>&1 || return 1
  done
  # and the aggregator serves the groups (the apiserver's handlers follow the condition)
  api_get /apis/custom.metrics.k8s.io/v1beta1 | jq -e '.kind == "APIResourceList"' >/dev/null 2>&1 &&
    api_get /apis/external.metrics.k8s.io/v1beta1 | jq -e '.kind == "APIResourceList"' >/dev/null 2>&1
}

stop_adapter_process() {
  local pid i
  pid="$(comp_pid "$C_DIR" metrics-adapter)" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    comp_pid "$C_DIR" metrics-adapter >/dev/null || break
    sleep 0.1
  done
  if comp_pid "$C_DIR" metrics-adapter >/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  for ((i = 0; i < 100; i++)); do
    port_in_use "$C_ADAPTER_PORT" || break
    sleep 0.1
  done
  rm -f "$C_DIR/metrics-adapter.pid"
}

# adapter_up CLUSTER URL: identity, process (restarted when its command line changes), APIServices.
adapter_up() {
  local c="$1" url="$2" dir deadline new
  load_cluster "$c"
  dir="$C_DIR/metrics-adapter"
  deadline=$(($(date +%s) + UP_TIMEOUT))
  adapter_pki
  adapter_identity
  sed "s/@CLUSTER@/$c/g" "$SCRIPT_DIR/prometheus-adapter/rules.yaml" | write_atomic "$dir/config.yaml"
  # relist every second: a series pushed by a test is served within about two seconds
  new="$dir/run.sh.new"
  write_run_script "$new" "$C_DIR/metrics-adapter.pid" "$ADAPTER_BIN" \
    --secure-port="$C_ADAPTER_PORT" \
    --bind-address=127.0.0.1 \
    --tls-cert-file="$dir/serving.crt" \
    --tls-private-key-file="$dir/serving.key" \
    --cert-dir="$dir/certs" \
    --lister-kubeconfig="$dir/kubeconfig" \
    --authentication-kubeconfig="$dir/kubeconfig" \
    --authorization-kubeconfig="$dir/kubeconfig" \
    --prometheus-url="$url" \
    --config="$dir/config.yaml" \
    --metrics-relist-interval=1s \
    --metrics-max-age=10m \
    --profiling=false
  if ! cmp -s "$new" "$C_DIR/run-metrics-adapter.sh"; then
    stop_adapter_process
    mv -f "$new" "$C_DIR/run-metrics-adapter.sh"
  else
    rm -f "$new"
  fi
  start_component metrics-adapter
  wait_for "$deadline" metrics-adapter "the adapter's /healthz on https://127.0.0.1:$C_ADAPTER_PORT" adapter_healthy
  adapter_register
  wait_for "$deadline" metrics-adapter "APIServices ${ADAPTER_APISERVICES[*]} Available" apiservices_available
  log "[$c] Prometheus adapter ready on https://127.0.0.1:$C_ADAPTER_PORT (pid $(comp_pid "$C_DIR" metrics-adapter)), reading $url"
}

adapter_down() {
  load_cluster "$1"
  if api_ready; then
    adapter_unregister
  else
    log "[$1] apiserver not ready: APIServices left registered"
  fi
  stop_adapter_process
  rm -f "$C_DIR/run-metrics-adapter.sh"
  log "[$1] Prometheus adapter stopped"
}

adapter_status() {
  local c pid line rc=0
  for c in $(member_clusters); do
    load_cluster "$c"
    line="$(printf '%-9s https://127.0.0.1:%-6s' "$c" "$C_ADAPTER_PORT")"
    if pid="$(comp_pid "$C_DIR" metrics-adapter)"; then
      line+=" adapter=running(pid=$pid) $(grep -o -- '--prometheus-url=[^ ]*' "$C_DIR/run-metrics-adapter.sh" 2>/dev/null | tr -d "'\\\\")"
    else
      line+=" adapter=stopped"
      rc=1
    fi
    if apiservices_available; then line+=" apiservices=Available"; else
      line+=" apiservices=unavailable"
      rc=1
    fi
    echo "$line"
  done
  return "$rc"
}

cmd_metrics_adapter() { # cmd_metrics_adapter start URL | stop | status
  local sub="${1:-}" url="${2:-}" c pids=() names=() failed=() i start
  [ "$(recorded_provider)" = local ] || die "metrics-adapter needs a bed of PROVIDER=local in $STATE (run: $0 up)"
  [ -n "${ADAPTER_BIN:-}" ] || die "metrics-adapter runs on KUBE_VERSION=1.34 beds only (this one runs $KUBE_VERSION)"
  [ -n "$(member_clusters)" ] || die "no member clusters in $STATE"
  case "$sub" in
    start)
      [[ $url =~ ^https?://(127\.[0-9]+\.[0-9]+\.[0-9]+|localhost|\[::1\])(:[0-9]+)?(/.*)?$ ]] ||
        die "usage: $0 metrics-adapter start http://127.0.0.1:PORT (a Prometheus on loopback)"
      take_lock
      KUBE_VERSION="$KUBE_VERSION" "$SCRIPT_DIR/install-tools.sh"
      [ -x "$ADAPTER_BIN" ] || die "$ADAPTER_BIN is missing (install-tools.sh failed?)"
      start="$(date +%s)"
      for c in $(member_clusters); do
        adapter_up "$c" "$url" &
        pids+=("$!")
        names+=("$c")
      done
      for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || failed+=("${names[$i]}")
      done
      [ ${#failed[@]} -eq 0 ] || die "Prometheus adapter not ready in: ${failed[*]} (logs: $STATE/<member>/metrics-adapter.log)"
      log "${#names[@]} Prometheus adapters ready in $(($(date +%s) - start))s"
      ;;
    stop)
      take_lock
      for c in $(member_clusters); do adapter_down "$c"; done
      ;;
    status) adapter_status ;;
    *) die "usage: $0 metrics-adapter start PROMETHEUS_URL | stop | status" ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# commands

cmd_up() {
  take_lock
  ensure_state_dir
  if [ "$PROVIDER" = kind ]; then kind_up; else local_up; fi
}

cmd_down() {
  take_lock
  local prov
  prov="$(recorded_provider)"
  prov="${prov:-$PROVIDER}"
  # The operator `make demo` leaves running talks to these clusters: stop it with them.
  if [ -f "$STATE/demo-operator.pid" ]; then
    kill "$(cat "$STATE/demo-operator.pid")" 2>/dev/null || true
  fi
  mkdir -p "$STATE/../.state-logs"
  cp "$STATE"/operator-*.log "$STATE"/demo-operator.log "$STATE/../.state-logs/" 2>/dev/null || true
  if [ "$prov" = kind ]; then
    kind_down
  else
    local_down
  fi
  archive_logs
  remove_state
  log "test bed down"
}

cmd_env() {
  [ -f "$STATE/kubeconfig" ] || die "no test bed in $STATE (run: $0 up)"
  local prov c
  prov="$(recorded_provider)"
  printf 'export KUBECONFIG=%q\n' "$STATE/kubeconfig"
  printf '# Flotilla test bed, provider %s, state %s\n' "$prov" "$STATE"
  printf '# contexts: %s (current: host)\n' "$(existing_clusters | tr '\n' ' ')"
  for c in $(existing_clusters); do
    if [ "$prov" = kind ]; then
      printf '# %-9s kind cluster flotilla-%s  kubeconfig %s  in-cluster kubeconfig %s\n' \
        "$c" "$c" "$STATE/$c.kubeconfig" "$STATE/$c.internal.kubeconfig"
    else
      load_cluster "$c"
      printf '# %-9s apiserver %s  etcd :%s (peer :%s)  controller-manager :%s\n' \
        "$c" "$C_SERVER" "$C_ETCD_PORT" "$C_PEER_PORT" "$C_KCM_PORT"
      printf '#           kubeconfig %s  logs %s/{etcd,apiserver,controller-manager}.log\n' \
        "$STATE/$c.kubeconfig" "$C_DIR"
      if [ "$NODES" = 1 ]; then
        load_node
        printf '#           node %s at %s (netns %s), scheduler :%s, metrics-server :%s  logs %s/{scheduler,containerd,kubelet,kube-proxy,metrics-server}.log\n' \
          "$N_NAME" "$N_IP" "$N_NETNS" "$C_SCHED_PORT" "$(ms_port)" "$C_DIR"
      fi
    fi
  done
  printf '# example: kubectl --context member1 get namespaces\n'
}

cmd_status() {
  local prov c comp pid st line all_ok=0 clusters
  clusters="$(existing_clusters)"
  if [ -z "$clusters" ]; then
    echo "no test bed in $STATE"
    return 1
  fi
  prov="$(recorded_provider)"
  for c in $clusters; do
    if [ "$prov" = kind ]; then
      st="$(docker inspect -f '{{.State.Status}}' "$(kind_node "$c")" 2>/dev/null || echo missing)"
      line="$(printf '%-9s kind flotilla-%s node=%s' "$c" "$c" "$st")"
      if [ "$(kubectl --kubeconfig "$STATE/$c.kubeconfig" get --raw /readyz --request-timeout=3s 2>/dev/null)" = ok ]; then
        line+=" readyz=ok"
      else
        line+=" readyz=FAIL"
        all_ok=1
      fi
    else
      load_cluster "$c"
      line="$(printf '%-9s %-24s' "$c" "$C_SERVER")"
      for comp in "${COMPONENTS[@]}"; do
        if pid="$(comp_pid "$C_DIR" "$comp")"; then
          if [ "$(proc_state "$pid")" = T ]; then st="hung(SIGSTOP,pid=$pid)"; else st="running(pid=$pid)"; fi
        else
          st=stopped
          all_ok=1
        fi
        line+=" $comp=$st"
      done
      if api_ready; then line+=" readyz=ok"; else
        line+=" readyz=FAIL"
        all_ok=1
      fi
      if [ "$NODES" = 1 ]; then
        node_status
        ms_status
      fi
    fi
    echo "$line"
  done
  return "$all_ok"
}

cmd_fault() { # cmd_fault ACTION CLUSTER
  local action="$1" c="${2:-}" pid i deadline
  [ -n "$c" ] || die "usage: $0 $action <cluster>   (host, member1, ...)"
  cluster_index "$c" >/dev/null || die "bad cluster name '$c'"
  if [ "$(recorded_provider)" = kind ]; then
    kind_fault "$action" "$c"
    return
  fi
  load_cluster "$c"
  case "$action" in
    stop-apiserver)
      if ! pid="$(comp_pid "$C_DIR" apiserver)"; then
        log "[$c] kube-apiserver is not running"
        return 0
      fi
      kill -KILL "$pid"
      for ((i = 0; i < 100; i++)); do
        comp_pid "$C_DIR" apiserver >/dev/null || port_in_use "$C_API_PORT" || break
        sleep 0.1
      done
      port_in_use "$C_API_PORT" && die "[$c] port $C_API_PORT still in use after SIGKILL of $pid"
      rm -f "$C_DIR/apiserver.pid"
      log "[$c] kube-apiserver (pid $pid) killed"
      ;;
    start-apiserver)
      deadline=$(($(date +%s) + UP_TIMEOUT))
      start_component apiserver
      wait_for "$deadline" apiserver "apiserver /readyz on $C_SERVER" api_ready
      log "[$c] kube-apiserver ready (pid $(comp_pid "$C_DIR" apiserver))"
      ;;
    hang-apiserver)
      pid="$(comp_pid "$C_DIR" apiserver)" || die "[$c] kube-apiserver is not running"
      kill -STOP "$pid"
      log "[$c] kube-apiserver (pid $pid) hung with SIGSTOP"
      ;;
    resume-apiserver)
      pid="$(comp_pid "$C_DIR" apiserver)" || die "[$c] kube-apiserver is not running (use start-apiserver)"
      kill -CONT "$pid"
      deadline=$(($(date +%s) + UP_TIMEOUT))
      wait_for "$deadline" apiserver "apiserver /readyz on $C_SERVER" api_ready
      log "[$c] kube-apiserver (pid $pid) resumed and ready"
      ;;
  esac
}

usage() {
  cat <<USAGE
Usage: $(basename "$0") <command>
  up                        bring up host + member1..member\$MEMBERS (idempotent)
  down                      stop everything, free the ports, delete the state (logs kept in <state>-logs)
  env                       print 'export KUBECONFIG=...' and where things are
  status                    one line per cluster; exit 1 unless all are healthy
  stop-apiserver <cluster>  SIGKILL that cluster's kube-apiserver (etcd, controller-manager stay)
  start-apiserver <cluster> start it again with the saved command line, wait for /readyz
  hang-apiserver <cluster>  SIGSTOP the kube-apiserver (connections hang)
  resume-apiserver <cluster> SIGCONT it and wait for /readyz
  metrics-adapter start <prometheus-url>
                            run a Prometheus adapter per member (custom.metrics.k8s.io and
                            external.metrics.k8s.io, rules in prometheus-adapter/rules.yaml),
                            registered with APIServices; restarts one whose URL changed
  metrics-adapter stop      unregister the APIServices and stop the adapters
  metrics-adapter status    one line per member; exit 1 unless all serve
  load-image <cluster> IMAGE.tar
                            import an OCI image archive (images/operator.sh) into the cluster's
                            node (nodes only), for pods with imagePullPolicy Never
Environment: MEMBERS=$MEMBERS PROVIDER=$PROVIDER FLOTILLA_STATE=$STATE FLOTILLA_PORT_BASE=$PORT_BASE
USAGE
}

main() {
  local cmd="${1:-}"
  [ $# -gt 0 ] && shift
  case "$cmd" in
    up) cmd_up ;;
    down) cmd_down ;;
    env) cmd_env ;;
    status) cmd_status ;;
    stop-apiserver | start-apiserver | hang-apiserver | resume-apiserver) cmd_fault "$cmd" "$@" ;;
    metrics-adapter) cmd_metrics_adapter "$@" ;;
    load-image)
      if [ $# -ne 2 ] || ! cluster_index "$1" >/dev/null; then die "usage: $0 load-image <cluster> IMAGE.tar"; fi
      [ "$(recorded_provider)" = local ] || die "load-image needs a bed of PROVIDER=local (kind: kind load image-archive)"
      node_load_image "$1" "$2"
      ;;
    help | -h | --help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
