#!/usr/bin/env bash
# Builds metrics-server from this wrapper module (go.mod pins sigs.k8s.io/metrics-server; see
# update.sh) into DEST/metrics-server.
#   e2e/testbed/metrics-server/build.sh DEST
# Uses the machine's Go (GOTOOLCHAIN=local: no toolchain download), modules from the proxy.
# The version is stamped as upstream's Makefile does (client-go's version package), so
# `metrics-server --version` and its /version report the release.
set -euo pipefail
cd "$(dirname "$0")"
dest="${1:?usage: $0 DEST}"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
version="$(grep -o 'sigs.k8s.io/metrics-server v0\.[0-9.]*' go.mod | head -1 | cut -d' ' -f2)"
mkdir -p "$dest"
"$GO" build -trimpath -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$version" \
  -o "$dest/metrics-server" sigs.k8s.io/metrics-server/cmd/metrics-server
