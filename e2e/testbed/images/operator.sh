#!/usr/bin/env bash
# Builds the operator's image as an OCI archive, without Docker or a registry, from a flotilla
# binary already built (the e2e's FLOTILLA_BIN):
#   e2e/testbed/images/operator.sh FLOTILLA_BIN OUT.tar NAME:TAG [NAME:TAG...]
# e.g. operator.sh target/debug/flotilla /tmp/op.tar flotilla.test/flotilla:e2e-a flotilla.test/flotilla:e2e-b
# (several names: the one image under several tags, so that a `helm upgrade` to the other tag
# rolls the Deployment without a second build).
#
# The image is what the Dockerfile's is to the chart: entrypoint /flotilla, command `run`, user
# 65532 (the chart's securityContext). A static binary (a musl build) goes in alone; a glibc
# one goes in with the shared libraries and the dynamic loader that ldd lists for it, at the
# same paths, with the machine's CA bundle. Debug info is stripped first (objcopy --strip-debug: a debug build is ~415 MB
# with it, ~80 MB without; symbols stay, so backtraces keep their names). Load it into a bed's
# node with `clusters.sh load-image host OUT.tar`, install with image.pullPolicy=Never.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ $# -ge 3 ] || {
  echo "usage: $0 FLOTILLA_BIN OUT.tar NAME:TAG [NAME:TAG...]" >&2
  exit 2
}
bin="$1" out="$2"
shift 2
[ -x "$bin" ] || {
  echo "$bin: not an executable" >&2
  exit 1
}
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
objcopy --strip-debug "$bin" "$work/flotilla"

specs=("/flotilla=$work/flotilla")
if readelf -l "$work/flotilla" | grep -q 'INTERP'; then
  # dynamically linked: each library (and the loader) at the path the binary looks it up at
  for lib in $(ldd "$work/flotilla" | grep -o '/[^ ]*' | sort -u); do specs+=("$lib=$lib"); done
fi
# the CA bundle the Dockerfile's distroless base carries (an https Prometheus URL is verified
# against it)
ca=/etc/ssl/certs/ca-certificates.crt
[ ! -f "$ca" ] || specs+=("$ca=$ca")
names=()
for n in "$@"; do names+=(--name "$n"); done
"$here/oci-image.py" "${names[@]}" --out "$out" --entrypoint '["/flotilla"]' --cmd '["run"]' \
  --user 65532:65532 --port 8080/tcp dir:/tmp "${specs[@]}"
