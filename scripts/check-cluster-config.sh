#!/usr/bin/env bash
# Validates the cluster's configuration files without starting anything: the compose file
# (Compose v2 when the docker CLI has it, else docker-compose 1.29), the Prometheus config with
# promtool, and the Grafana dashboards as JSON. The dashboards' metric names are checked against
# the running binaries by api/tests/dashboards.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[cluster-config] %s\n' "$*" >&2; }

if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
for env_file in "" docker/local/compose.env; do
  args=()
  [ -n "$env_file" ] && args=(--env-file "$env_file")
  "${compose[@]}" "${args[@]}" config -q
  log "docker-compose.yml is valid${env_file:+ with $env_file}"
done

promtool check config docker/prometheus/prometheus.yml >&2

for dashboard in docker/grafana/dashboards/*.json; do
  python3 -m json.tool "$dashboard" >/dev/null || { log "$dashboard is not valid JSON"; exit 1; }
done
log "dashboards are valid JSON"
