#!/usr/bin/env bash
# Builds the etcd server from this wrapper module (go.mod pins go.etcd.io/etcd/server/v3; see
# update.sh) into DEST/etcd.   e2e/testbed/etcd/build.sh DEST
set -euo pipefail
cd "$(dirname "$0")"
dest="${1:?usage: $0 DEST}"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
mkdir -p "$dest"
"$GO" build -trimpath -ldflags "-s -w" -o "$dest/etcd" go.etcd.io/etcd/server/v3
