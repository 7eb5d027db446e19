#!/usr/bin/env bash
# A private Prometheus + Pushgateway on loopback for trying ScalingPolicies by hand (the e2e tests
# start their own through e2e/src/prometheus.rs, with the same configuration).
#
# Usage: e2e/prometheus/stack.sh start|stop|status|env
#   start   install if needed (install.sh), start both, wait until Prometheus scrapes the gateway
#   stop    kill both (by pid file) and delete the state dir
#   env     print FLOTILLA_PROMETHEUS_URL / PUSHGATEWAY_URL exports
# Environment: PROMETHEUS_STATE (default /tmp/flotilla-prometheus), PROMETHEUS_PORT (39090),
# PUSHGATEWAY_PORT (39091), SCRAPE_INTERVAL (1s).
#
# Push a value:  echo "queue_depth 42" | curl --data-binary @- $PUSHGATEWAY_URL/metrics/job/demo
# Query it:      curl "$FLOTILLA_PROMETHEUS_URL/api/v1/query?query=sum(queue_depth)"
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${PROMETHEUS_STATE:-/tmp/flotilla-prometheus}"
PROM_PORT="${PROMETHEUS_PORT:-39090}"
PGW_PORT="${PUSHGATEWAY_PORT:-39091}"
PROM_URL="http://127.0.0.1:$PROM_PORT"
PGW_URL="http://127.0.0.1:$PGW_PORT"

log() { printf '[prometheus] %s\n' "$*" >&2; }
die() { printf '[prometheus] ERROR: %s\n' "$*" >&2; exit 1; }
running() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

start() {
  "$HERE/install.sh"
  mkdir -p "$STATE/data"
  mkdir -p "$STATE/targets"
  sed -e "s/@PUSHGATEWAY@/127.0.0.1:$PGW_PORT/" -e "s/@SCRAPE_INTERVAL@/${SCRAPE_INTERVAL:-1s}/" \
    -e "s|@TARGETS@|$STATE/targets|" "$HERE/prometheus.yml" >"$STATE/prometheus.yml"
  if ! running pushgateway; then
    prometheus-pushgateway --web.listen-address="127.0.0.1:$PGW_PORT" >"$STATE/pushgateway.log" 2>&1 &
    echo $! >"$STATE/pushgateway.pid"
  fi
  if ! running prometheus; then
    prometheus --config.file="$STATE/prometheus.yml" --storage.tsdb.path="$STATE/data" \
      --storage.tsdb.retention.time=2h --web.listen-address="127.0.0.1:$PROM_PORT" \
      --log.level=warn >"$STATE/prometheus.log" 2>&1 &
    echo $! >"$STATE/prometheus.pid"
  fi
  for _ in $(seq 1 150); do
    if curl -fsS "$PROM_URL/api/v1/query?query=up%7Bjob%3D%22pushgateway%22%7D" 2>/dev/null | grep -q '"value":\[[^]]*,"1"\]'; then
      log "ready: Prometheus $PROM_URL scrapes the Pushgateway $PGW_URL"
      return 0
    fi
    sleep 0.2
  done
  tail -20 "$STATE/prometheus.log" >&2 || true
  die "Prometheus did not scrape the Pushgateway within 30 s"
}

stop() {
  for c in prometheus pushgateway; do
    if running "$c"; then
      kill "$(cat "$STATE/$c.pid")" 2>/dev/null || true
    fi
  done
  sleep 0.5
  rm -rf "$STATE"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    for c in prometheus pushgateway; do
      if running "$c"; then echo "$c running (pid $(cat "$STATE/$c.pid"))"; else echo "$c stopped"; fi
    done ;;
  env)
    echo "export FLOTILLA_PROMETHEUS_URL=$PROM_URL"
    echo "export PUSHGATEWAY_URL=$PGW_URL" ;;
  *) die "usage: $0 start|stop|status|env" ;;
esac
