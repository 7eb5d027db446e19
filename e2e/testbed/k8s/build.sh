#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy (the
# node: see ../nodes.sh) from this wrapper module (go.mod pins
# k8s.io/kubernetes; see update.sh) into DEST, with the version stamped so /version reports it.
#   e2e/testbed/k8s/build.sh DEST
# Uses the machine's Go (GOTOOLCHAIN=local: no toolchain download), modules from the proxy.
set -euo pipefail
cd "$(dirname "$0")"
dest="${1:?usage: $0 DEST}"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
version="$(grep -o "k8s.io/kubernetes v1\.[0-9.]*" go.mod | head -1 | cut -d" " -f2)"
[[ $version =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]] || { echo "no k8s.io/kubernetes version in go.mod" >&2; exit 1; }
major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
mkdir -p "$dest"
"$GO" build -trimpath -ldflags "$ldflags" -o "$dest/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
