# Sourced by install-tools.sh and clusters.sh: which Kubernetes the test bed runs, and where its
# binaries are cached. KUBE_VERSION picks the line:
#   1.34 (default)  kube-apiserver/kube-controller-manager built from the k8s.io/kubernetes Go
#                   module pinned in k8s/go.mod, etcd built from the module pinned in etcd/go.mod
#   1.20            the compatibility floor: v1.20.2 built from Debian's source package with
#                   Debian's Go 1.19, etcd 3.4 from Debian's etcd-server
# Sets KUBE_VERSION, KUBE_FULL_VERSION (v1.34.12), KUBE_BIN_DIR, ETCD_VERSION (v3.6.17 or
# "debian"), ETCD_BIN (may not exist yet: install-tools.sh makes it), and for 1.34 only
# ADAPTER_VERSION (v0.12.0) and ADAPTER_BIN: the Prometheus adapter pinned in
# prometheus-adapter/go.mod (`clusters.sh metrics-adapter`), and METRICS_SERVER_VERSION (v0.8.0)
# and METRICS_SERVER_BIN: metrics-server pinned in metrics-server/go.mod (one per cluster of a
# bed with nodes, metrics-server.sh); all empty for 1.20.
# shellcheck shell=bash
TESTBED_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FLOTILLA_BIN_CACHE="${FLOTILLA_CACHE:-$HOME/.cache/flotilla}/bin"
KUBE_VERSION="${KUBE_VERSION:-1.34}"
case "$KUBE_VERSION" in
  1.20 | v1.20 | 1.20.2 | v1.20.2)
    KUBE_VERSION=1.20
    KUBE_FULL_VERSION=v1.20.2
    ETCD_VERSION=debian
    ETCD_BIN="$(command -v etcd || echo /usr/bin/etcd)"
    ADAPTER_VERSION=""
    ADAPTER_BIN=""
    METRICS_SERVER_VERSION=""
    METRICS_SERVER_BIN=""
    ;;
  1.34 | v1.34 | 1.34.* | v1.34.*)
    KUBE_VERSION=1.34
    KUBE_FULL_VERSION="$(grep -o 'k8s.io/kubernetes v1\.[0-9.]*' "$TESTBED_DIR/k8s/go.mod" | head -1 | cut -d' ' -f2)"
    ETCD_VERSION="$(grep -o 'go.etcd.io/etcd/server/v3 v3\.[0-9.]*' "$TESTBED_DIR/etcd/go.mod" | head -1 | cut -d' ' -f2)"
    ETCD_BIN="$FLOTILLA_BIN_CACHE/etcd-$ETCD_VERSION/etcd"
    ADAPTER_VERSION="$(grep -o 'sigs.k8s.io/prometheus-adapter v0\.[0-9.]*' "$TESTBED_DIR/prometheus-adapter/go.mod" | head -1 | cut -d' ' -f2)"
    ADAPTER_BIN="$FLOTILLA_BIN_CACHE/prometheus-adapter-$ADAPTER_VERSION/prometheus-adapter"
    METRICS_SERVER_VERSION="$(grep -o 'sigs.k8s.io/metrics-server v0\.[0-9.]*' "$TESTBED_DIR/metrics-server/go.mod" | head -1 | cut -d' ' -f2)"
    METRICS_SERVER_BIN="$FLOTILLA_BIN_CACHE/metrics-server-$METRICS_SERVER_VERSION/metrics-server"
    ;;
  *)
    printf 'KUBE_VERSION must be 1.34 or 1.20, got %s\n' "$KUBE_VERSION" >&2
    exit 2
    ;;
esac
KUBE_BIN_DIR="$FLOTILLA_BIN_CACHE/kubernetes-$KUBE_FULL_VERSION"
