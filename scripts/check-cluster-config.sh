#!/usr/bin/env bash
# Validates the cluster's configuration files without starting anything: the compose file
# (Compose v2 when the docker CLI has it, else docker-compose 1.29), the Prometheus config with
# promtool, and Grafana's provisioning files and dashboards (with Debian's python3, whose yaml
# module comes with docker-compose). The dashboards' metric names are checked against the
# running binaries by api/tests/dashboards.rs; their queries against a real Prometheus by
# scripts/cluster-smoke.sh.
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

# Grafana's provisioning: the YAML parses, and every datasource a dashboard names is provisioned.
/usr/bin/python3 - docker/grafana <<'PY'
import glob, json, sys, yaml
root = sys.argv[1]
uids = set()
for path in glob.glob(f"{root}/provisioning/**/*.yml", recursive=True):
    doc = yaml.safe_load(open(path))
    uids |= {d["uid"] for d in doc.get("datasources", [])}
def refs(node):
    if isinstance(node, dict):
        ds = node.get("datasource")
        if isinstance(ds, dict) and "uid" in ds and not ds["uid"].startswith(("$", "-- ")):
            yield ds["uid"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)
bad = []
for path in glob.glob(f"{root}/dashboards/*.json"):
    try:
        dashboard = json.load(open(path))
    except ValueError as error:
        sys.exit(f"{path} is not valid JSON: {error}")
    bad += [f"{path}: datasource {uid!r} is not provisioned" for uid in set(refs(dashboard)) - uids]
if bad:
    sys.exit("\n".join(bad))
print(f"[cluster-config] grafana provisioning parses; dashboards use provisioned datasources {sorted(uids)}", file=sys.stderr)
PY
