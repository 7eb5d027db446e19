#!/usr/bin/env bash
# Builds the node images of the test bed as OCI archives, without Docker or a registry:
#   e2e/testbed/images/build.sh OUTDIR
#   OUTDIR/pause.tar    flotilla.test/pause:3.10   containerd's sandbox image: Kubernetes'
#                       build/pause/linux/pause.c (from the k8s.io/kubernetes module in Go's module
#                       cache) compiled with gcc -static
#   OUTDIR/busybox.tar  flotilla.test/busybox:1    Debian's busybox-static with every applet linked
#                       in /bin (sh, sleep, wget, httpd, ...), /www/index.html for
#                       `httpd -f -p 8080 -h /www`; default command `sh`. Plus Debian's openssl
#                       and the libraries ldd lists for it: busybox wget runs `openssl s_client`
#                       for https when it finds it (its own TLS code fails the handshake with the
#                       API server's Go TLS).
# Images are written by oci-image.py (generic: files + entrypoint + name:tag -> OCI archive) and
# imported into each node's containerd by clusters.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: $0 OUTDIR}"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
PAUSE_TAG=3.10

# --- pause ------------------------------------------------------------------------------------
k8s_version="$(grep -o 'k8s.io/kubernetes v1\.[0-9.]*' "$here/../k8s/go.mod" | head -1 | cut -d' ' -f2)"
pause_c=""
if [ -x "$GO" ]; then
  modcache="$(GOTOOLCHAIN=local "$GO" env GOMODCACHE 2>/dev/null || true)"
  [ -z "$modcache" ] || pause_c="$modcache/k8s.io/kubernetes@$k8s_version/build/pause/linux/pause.c"
fi
if [ -z "$pause_c" ] || [ ! -f "$pause_c" ]; then
  # the same few lines as Kubernetes' pause.c: reap children, exit on SIGINT/SIGTERM
  pause_c="$work/pause.c"
  cat >"$pause_c" <<'C'
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#define STRINGIFY(x) #x
#define VERSION_STRING(x) STRINGIFY(x)
static void sigdown(int signo) { psignal(signo, "Shutting down, got signal"); exit(0); }
static void sigreap(int signo) { while (waitpid(-1, NULL, WNOHANG) > 0); }
int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "-v")) { printf("pause.c %s\n", VERSION_STRING(VERSION)); return 0; }
  if (getpid() != 1) fprintf(stderr, "Warning: pause should be the first process\n");
  struct sigaction down = {.sa_handler = sigdown}, reap = {.sa_handler = sigreap, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &down, NULL) < 0) return 1;
  if (sigaction(SIGTERM, &down, NULL) < 0) return 2;
  if (sigaction(SIGCHLD, &reap, NULL) < 0) return 3;
  for (;;) pause();
  fprintf(stderr, "Error: infinite loop terminated\n");
  return 42;
}
C
fi
gcc -Os -Wall -static -DVERSION="v$PAUSE_TAG-flotilla" -o "$work/pause" "$pause_c"
strip "$work/pause"
"$here/oci-image.py" --name "flotilla.test/pause:$PAUSE_TAG" --out "$out/pause.tar" \
  --entrypoint '["/pause"]' --user 65535:65535 "/pause=$work/pause"

# --- busybox ----------------------------------------------------------------------------------
bb=/bin/busybox
if [ ! -x "$bb" ] || readelf -l "$bb" 2>/dev/null | grep -q 'INTERP'; then
  echo "$bb is not Debian's busybox-static (apt-get install busybox-static)" >&2
  exit 1
fi
links=()
for a in $("$bb" --list); do
  [ "$a" = busybox ] || links+=("link:/bin/$a=busybox")
done
# with_libs BIN...: SPECs for each binary and the shared libraries (and loader) ldd lists for it
with_libs() {
  local b lib
  for b in "$@"; do
    echo "$b=$b"
    for lib in $(ldd "$b" | grep -o '/[^ ]*'); do echo "$lib=$lib"; done
  done | sort -u
}
mapfile -t openssl < <(with_libs "$(command -v openssl)")
mkdir -p "$work/www"
echo 'flotilla test bed' >"$work/www/index.html"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$work/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$work/group"
"$here/oci-image.py" --name flotilla.test/busybox:1 --out "$out/busybox.tar" --cmd '["sh"]' \
  "/bin/busybox=$bb" "${links[@]}" "/www/=$work/www" "/etc/passwd=$work/passwd" "/etc/group=$work/group" dir:/tmp dir:/root \
  "${openssl[@]}" "/usr/lib/ssl/openssl.cnf=/usr/lib/ssl/openssl.cnf"
