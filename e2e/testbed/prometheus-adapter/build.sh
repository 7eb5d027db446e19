#!/usr/bin/env bash
# Builds the Prometheus adapter from this wrapper module (go.mod pins
# sigs.k8s.io/prometheus-adapter; see update.sh) into DEST/prometheus-adapter.
#   e2e/testbed/prometheus-adapter/build.sh DEST
# Uses the machine's Go (GOTOOLCHAIN=local: no toolchain download), modules from the proxy.
set -euo pipefail
cd "$(dirname "$0")"
dest="${1:?usage: $0 DEST}"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
mkdir -p "$dest"
"$GO" build -trimpath -ldflags "-s -w" -o "$dest/prometheus-adapter" sigs.k8s.io/prometheus-adapter/cmd/adapter
