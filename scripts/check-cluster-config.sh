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
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Without its secrets the cluster must not start, and must say how to get them. The env file
# is given explicitly, so that a developer's .env does not count, and the environment is cleared
# of the secrets.
secrets=(
  POSTGRES_PASSWORD
  POSTGRES_API_PASSWORD
  RABBITMQ_API_PASSWORD
  RABBITMQ_WORKER_PASSWORD
  GRAFANA_ADMIN_PASSWORD
  WORKER_TOKEN
)
unset_secrets=()
for name in "${secrets[@]}"; do unset_secrets+=(-u "$name"); done
: >"$work/empty.env"
if out=$(env "${unset_secrets[@]}" "${compose[@]}" --env-file "$work/empty.env" config -q 2>&1); then
  log "docker-compose.yml has a default for a secret: config passes without any"
  exit 1
fi
grep -q 'make-env.sh' <<<"$out" || { log "compose refuses to start without secrets, but does not say how to get them: $out"; exit 1; }
log "without secrets, compose refuses: ${out##*: }"

# Then valid with dummy secrets, as is and with the local stand-ins.
for name in "${secrets[@]}"; do echo "$name=dummy-$name"; done >"$work/secrets.env"
cat "$work/secrets.env" docker/local/compose.env >"$work/local.env"
env "${unset_secrets[@]}" "${compose[@]}" --env-file "$work/secrets.env" config >"$work/config.yml"
log "docker-compose.yml is valid"
env "${unset_secrets[@]}" "${compose[@]}" --env-file "$work/local.env" config -q
log "docker-compose.yml is valid with docker/local/compose.env"

# What the locked-down cluster promises, read from the resolved config:
# published ports on 127.0.0.1 by default, no guest or trust;
# who is on which network.
/usr/bin/python3 - "$work/config.yml" <<'PY'
import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
services = config["services"]
bad = []
for name, service in services.items():
    for port in service.get("ports", []):
        text = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
        if not text.startswith("127.0.0.1:"):
            bad.append(f"{name} publishes {text}, not on 127.0.0.1")
    for key, value in (service.get("environment") or {}).items():
        if "guest" in str(value) or value == "trust":
            bad.append(f"{name}: {key}={value}")
expected = {
    "db": {"postgres", "api"},
    "broker": {"rabbitmq", "api", "worker-docker", "worker-gvisor"},
    "metrics": {"prometheus", "api", "worker-docker", "worker-gvisor", "rabbitmq"},
    "dashboards": {"grafana", "prometheus"},
    "api-edge": {"api"},
    "prometheus-edge": {"prometheus"},
    "grafana-edge": {"grafana"},
}
members = {}
for name, service in services.items():
    networks = service.get("networks")
    if networks is None and service.get("network_mode") != "none":
        bad.append(f"{name} is on the default network")
    for network in networks or []:
        members.setdefault(network, set()).add(name)
if members != expected:
    bad.append(f"networks: {members} instead of {expected}")
for network in set(expected) - {"api-edge", "prometheus-edge", "grafana-edge"}:
    if not config["networks"][network].get("internal"):
        bad.append(f"network {network} is not internal")
if bad:
    sys.exit("[cluster-config] " + "\n[cluster-config] ".join(bad))
print("[cluster-config] ports bind 127.0.0.1 by default; no guest, no trust", file=sys.stderr)
print("[cluster-config] networks: " + "; ".join(f"{n}: {' '.join(sorted(m))}" for n, m in sorted(members.items())), file=sys.stderr)
PY

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

# The Swarm stack: valid for Compose's schema (docker-compose ignores `configs` but checks the
# rest; `docker stack deploy` has no dry run), and what it promises: the compose file's network
# split on encrypted overlay networks, no secret in any environment (only *_FILE paths under
# /run/secrets), state pinned to the state node, workers global on their runtime's nodes.
REGISTRY=registry.invalid:5000 docker-compose -f deploy/swarm/stack.yml config 2>"$work/stack.err" >"$work/stack.yml" ||
  { cat "$work/stack.err" >&2; exit 1; }
/usr/bin/python3 - deploy/swarm/stack.yml docker-compose.yml <<'PY'
import re, sys, yaml
stack = yaml.safe_load(open(sys.argv[1]))
compose = yaml.safe_load(open(sys.argv[2]))
services, bad = stack["services"], []
def members(config):
    out = {}
    for name, service in config["services"].items():
        for network in service.get("networks") or []:
            out.setdefault(network, set()).add(name)
    return out
if members(stack) != members(compose):
    bad.append(f"networks {members(stack)} differ from compose's {members(compose)}")
for name, network in stack["networks"].items():
    if network.get("driver") != "overlay" or "encrypted" not in (network.get("driver_opts") or {}):
        bad.append(f"network {name} is not an encrypted overlay")
    if bool(network.get("internal")) != bool(compose["networks"][name] and compose["networks"][name].get("internal")):
        bad.append(f"network {name}: internal differs from compose")
for name, service in services.items():
    for key, value in (service.get("environment") or {}).items():
        if re.search(r"PASSWORD|TOKEN|KEY|_URL", key) and key not in ("API_URL",):
            if not (key.endswith("_FILE") and str(value).startswith("/run/secrets/")):
                bad.append(f"{name}: {key} is not a secret file")
    deploy = service.get("deploy", {})
    constraints = (deploy.get("placement") or {}).get("constraints", [])
    if name in ("postgres", "rabbitmq", "prometheus", "grafana") and constraints != ["node.labels.faas.state == true"]:
        bad.append(f"{name} is not pinned to the state node")
    if name.startswith("worker-"):
        runtime = name.split("-", 1)[1]
        if deploy.get("mode") != "global" or constraints != [f"node.labels.faas.runtime.{runtime} == true"]:
            bad.append(f"{name} is not global on faas.runtime.{runtime} nodes")
if bad:
    sys.exit("[cluster-config] " + "\n[cluster-config] ".join(bad))
print("[cluster-config] deploy/swarm/stack.yml: compose's networks, encrypted; secrets from files only; state pinned; workers global", file=sys.stderr)
PY

# The Kubernetes manifests, against Kubernetes' own schemas (strict: no unknown field), with
# kubernetes-validate in a venv outside the clone.
K8S_VALIDATE_VERSION=1.37.0
venv=${K8S_VALIDATE_VENV:-/var/cache/faas-venv/k8s-validate}
if ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -qF "$K8S_VALIDATE_VERSION"; then
  log "installing kubernetes-validate $K8S_VALIDATE_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "kubernetes-validate==$K8S_VALIDATE_VERSION"
fi
"$venv/bin/kubernetes-validate" --strict --quiet -k 1.31 deploy/kubernetes/*.yaml
log "deploy/kubernetes: $(ls deploy/kubernetes/*.yaml | wc -l) files valid for Kubernetes 1.31 (strict)"
