#!/usr/bin/env bash
# Installs Prometheus and the Pushgateway for the ScalingPolicy end-to-end tests and benchmark,
# idempotently (a no-op once both binaries are on PATH). Debian packages `prometheus` (2.42) and
# `prometheus-pushgateway` (1.5). Their systemd services are never used: the tests start private
# instances on free loopback ports (see e2e/src/prometheus.rs and start.sh beside this file).
set -euo pipefail

log() { printf '[prometheus-install] %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || missing+=(prometheus-pushgateway)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

# Keep the packages' services from starting: policy-rc.d 101 = "action forbidden" (only when
# nothing else installed one; removed again afterwards).
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 0755 "$policy"
  own_policy=1
fi
cleanup() { if [ -n "$own_policy" ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT

log "apt-get install ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
log "ready: $(prometheus --version 2>&1 | head -1); $(prometheus-pushgateway --version 2>&1 | head -1)"
