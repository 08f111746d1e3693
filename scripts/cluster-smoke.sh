#!/usr/bin/env bash
# Brings the compose cluster up for real and checks it end to end, then takes it down:
#   - `up --build` builds the api, worker and runtime images and starts every service healthy;
#   - a function answers on /execute (runc) and /execute_gvisor (runsc), and on its route;
#     /openapi.json and /docs answer; the api image's `faas` invokes it;
#   - an async call (/execute_async) is accepted and reaches `succeeded` with its result;
#   - `--scale worker-docker=3`: Prometheus finds the three replicas by DNS, and calls spread
#     over all of them;
#   - a replica that replaces a killed one removes the containers the killed one left;
#   - every query of the Grafana dashboards evaluates in the cluster's Prometheus;
#   - `stop` makes every worker exit 0 and remove its containers;
#   - locked down: the published ports listen on 127.0.0.1 only; from throwaway containers on
#     the cluster's networks, RabbitMQ refuses guest and Postgres refuses logins without a
#     password, the api's and the workers' broker users can do no more than their service
#     needs, the api's Postgres role is no superuser, and each network reaches only what it
#     should.
# Runs as its own compose project on other host ports, with secrets of its own
# (scripts/make-env.sh), so it leaves a running cluster and its .env alone. Every api call
# carries the admin key (Authorization: Bearer).
# Where upstream images cannot be pulled, it uses the Debian-package stand-ins of
# scripts/local-images.sh (docker/local/compose.env) and leaves Grafana out.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[cluster-smoke] %s\n' "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

export API_PORT=${SMOKE_API_PORT:-18000} PROMETHEUS_PORT=${SMOKE_PROMETHEUS_PORT:-19090} GRAFANA_PORT=${SMOKE_GRAFANA_PORT:-13000}
export FUNCTIONS_PORT=${SMOKE_FUNCTIONS_PORT:-18080}
api=http://127.0.0.1:$API_PORT
functions=http://127.0.0.1:$FUNCTIONS_PORT
prom=http://127.0.0.1:$PROMETHEUS_PORT
build_log=$(mktemp)
work=$(mktemp -d)
# The smoke's own env file, with random secrets, in place of a .env.
bash scripts/make-env.sh "$work/env" 2>/dev/null
secret() { sed -n "s/^$1=//p" "$work/env"; }
auth=(-H "Authorization: Bearer $(secret ADMIN_KEY)")

if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
compose+=(-p faas-smoke --env-file "$work/env")
services=(postgres rabbitmq runtime-python runtime-nodejs api worker-docker worker-gvisor prometheus grafana)
if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1 && ! timeout 20 docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
  log "no registry: local stand-ins from Debian packages, without Grafana"
  bash scripts/local-images.sh
  # Compose takes one env file: the stand-ins' names go after the secrets (the last value of a
  # name wins), and into the environment, which wins over any env file.
  cat docker/local/compose.env >>"$work/env"
  set -a; . docker/local/compose.env; set +a
  services=(postgres rabbitmq runtime-python runtime-nodejs api worker-docker worker-gvisor prometheus)
fi

cleanup() {
  local status=$?
  if ((status != 0)); then
    log "last lines of the build and of the services:"
    tail -40 "$build_log" >&2
    "${compose[@]}" logs --tail 30 api worker-docker worker-gvisor >&2 2>&1 || true
  fi
  "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  docker image prune -f >/dev/null 2>&1 || true
  rm -rf "$build_log" "$work"
}
trap cleanup EXIT
trap 'log "FAILED at line $LINENO: $BASH_COMMAND"' ERR

started=$SECONDS
# The builder stage under a tag of its own: it holds the compiled dependencies, and the tag
# keeps it through the prune below, which drops the builder images of earlier sources.
log "building the builder stage"
docker build -q --target builder -t faas-build-cache:latest \
  --build-arg RUST_IMAGE="${RUST_IMAGE:-rust:1.95-slim-bookworm}" . >"$build_log" 2>&1 || fail "builder stage"
log "building and starting ${services[*]}"
"${compose[@]}" up -d --build "${services[@]}" >>"$build_log" 2>&1 || fail "compose up"
for _ in $(seq 1 120); do
  curl -sf "${auth[@]}" "$api/readyz" >/dev/null && break
  sleep 1
done
curl -sf "${auth[@]}" "$api/readyz" >/dev/null || fail "the api is not ready after 120 s"
log "cluster up in $((SECONDS - started)) s"

# Every started service is healthy or, for the one-shot image builders, exited 0.
for _ in $(seq 1 60); do
  unhealthy=$(docker ps -a --filter label=com.docker.compose.project=faas-smoke --format '{{.Names}} {{.Status}}' |
    grep -v -e 'healthy)' -e 'Exited (0)' || true)
  [ -z "$unhealthy" ] && break
  sleep 1
done
[ -z "$unhealthy" ] || fail "services not healthy: $unhealthy"

# The api and the workers started once: each waited until what it logs in to accepted it.
restarts=$(docker inspect --format '{{.Name}} {{.RestartCount}}' $("${compose[@]}" ps -q api worker-docker worker-gvisor) |
  awk '$2 != 0')
[ -z "$restarts" ] || fail "restarted: $restarts"

# Locked down. The published ports listen on 127.0.0.1 only.
for service in api prometheus grafana; do
  [[ " ${services[*]} " == *" $service "* ]] || continue
  ports=$(docker port "$("${compose[@]}" ps -q "$service")")
  [ -n "$ports" ] && ! grep -qv ' -> 127\.0\.0\.1:[0-9]*$' <<<"$ports" || fail "$service publishes $(tr '\n' ' ' <<<"$ports")"
done
log "published ports listen on 127.0.0.1 only"

# RabbitMQ, from a throwaway container on the broker network (python-base has python3): no
# guest, no login without the password, and each user refused what its service never does.
probe() {
  docker run --rm -i --network faas-smoke_broker --entrypoint python3 python-base - rabbitmq "$@" \
    <scripts/amqp-probe.py >&2 || fail "RabbitMQ permissions (above)"
}
probe guest guest -login
probe faas-worker not-the-password -login
probe faas-api "$(secret RABBITMQ_API_PASSWORD)" +login -consume:faas.invoke.docker -consume:faas.invoke.gvisor \
  -publish::faas.invoke.docker -declare:smoke-probe
probe faas-worker "$(secret RABBITMQ_WORKER_PASSWORD)" +login -publish:faas.invoke:docker -publish:faas.events: -publish:faas.records: \
  -declare:smoke-probe -consume:faas.async -publish:faas.async:run
log "RabbitMQ refuses guest, and faas-api / faas-worker what their services never do"

# Postgres, from a throwaway container on its network, with the image's psql.
psql_as() { # USER PASSWORD DATABASE SQL
  docker run --rm --network faas-smoke_db -e PGPASSWORD="$2" -e PGCONNECT_TIMEOUT=5 \
    "${POSTGRES_IMAGE:-postgres:16}" psql -h postgres -U "$1" -d "$3" -w -X -A -t -c "$4" 2>&1
}
for login in "postgres||postgres" "postgres|postgres|postgres" "faas_api||faas" "faas_api|faas_api|faas"; do
  IFS='|' read -r user password database <<<"$login"
  if out=$(psql_as "$user" "$password" "$database" 'select 1'); then
    fail "Postgres let $user in with password '$password'"
  fi
  grep -q -e 'no password supplied' -e 'password authentication failed' <<<"$out" || fail "Postgres, $user: $out"
done
api_password=$(secret POSTGRES_API_PASSWORD)
role=$(psql_as faas_api "$api_password" faas \
  "select rolsuper, rolcreatedb, rolcreaterole, (select tableowner from pg_tables where tablename = 'functions')
   from pg_roles where rolname = current_user") || fail "faas_api cannot log in: $role"
[ "$role" = 'f|f|f|faas_api' ] || fail "faas_api (superuser, createdb, createrole, owner of functions): $role"
if out=$(psql_as faas_api "$api_password" postgres 'select 1'); then fail "faas_api may connect to the database postgres"; fi
grep -q 'permission denied' <<<"$out" || fail "faas_api on the database postgres: $out"
log "Postgres refuses logins without the password; faas_api owns database faas (migrated) and nothing more"

# Who reaches whom: TCP connections from a throwaway container on each network.
reach() { # NETWORK [+-]HOST:PORT...
  local network=$1
  shift
  docker run --rm --network "faas-smoke_$network" --entrypoint python3 python-base -c '
import socket, sys
bad = []
for spec in sys.argv[1:]:
    host, port = spec[1:].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        reached = True
    except OSError:
        reached = False
    if reached != (spec[0] == "+"):
        bad.append(host + ":" + port + (" reached" if reached else " not reached"))
sys.exit(", ".join(bad) or None)
' "$@" || fail "from the $network network (above)"
}
reach db +postgres:5432 -rabbitmq:5672
reach broker +rabbitmq:5672 -postgres:5432 -prometheus:9090
reach metrics +api:9100 +worker-docker:9101 +worker-gvisor:9101 +rabbitmq:15692 -postgres:5432
reach dashboards +prometheus:9090 -api:8000 -rabbitmq:5672 -postgres:5432
reach prometheus-edge +prometheus:9090 -api:8000 -rabbitmq:15692
reach api-edge +api:8000 -prometheus:9090 -postgres:5432 -rabbitmq:5672
log "networks: only the api reaches Postgres; Prometheus what it scrapes; the dashboards network only Prometheus"

post() { curl -s -o /tmp/smoke-body -w '%{http_code}' -X POST "$api$1" "${auth[@]}" -H 'Content-Type: application/json' -d "$2"; }
code='def handler(event, context):\n    return {\"hello\": event.get(\"name\")}'
status=$(post /functions/ "{\"name\": \"smoke\", \"route\": \"/smoke\", \"language\": \"python\", \"code\": \"$code\", \"timeout\": 10}")
[ "$status" = 201 ] || fail "create: $status $(cat /tmp/smoke-body)"
for endpoint in execute execute_gvisor; do
  status=$(post "/$endpoint/smoke" '{"event": {"name": "cluster"}}')
  [ "$status" = 200 ] && grep -q '"hello":"cluster"' /tmp/smoke-body || fail "$endpoint: $status $(cat /tmp/smoke-body)"
done
log "a function answers on runc and on runsc"
# The api image carries the CLI: the same call through `faas`, run inside the api's container.
out=$("${compose[@]}" exec -T -e FAAS_KEY="$(secret ADMIN_KEY)" api faas invoke smoke -d '{"name": "cli"}' 2>&1) \
  && grep -q '"hello": *"cli"' <<<"$out" || fail "faas invoke in the api's container: $out"
log "the api image's faas invokes it"
# Its HTTP trigger, keyed (the default), on the functions' own published port, never the api's.
status=$(curl -s -o /tmp/smoke-body -w '%{http_code}' "${auth[@]}" "$functions/smoke?name=x")
[ "$status" = 200 ] && grep -q '"hello":null' /tmp/smoke-body || fail "GET $functions/smoke: $status $(cat /tmp/smoke-body)"
status=$(curl -s -o /dev/null -w '%{http_code}' "$functions/smoke")
[ "$status" = 401 ] || fail "GET $functions/smoke without a key: $status, not 401"
for path in /smoke /fn/smoke; do
  status=$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "$api$path")
  [ "$status" = 404 ] || fail "GET $path on the api's port: $status, not 404"
done
curl -s -D /tmp/smoke-headers -o /dev/null "$api/docs"
grep -qi "^content-security-policy: frame-ancestors 'none'" /tmp/smoke-headers || fail "/docs has no frame-ancestors: $(cat /tmp/smoke-headers)"
log "its route answers on the functions' port ($FUNCTIONS_PORT), with a key only, and not on the api's; /docs may not be framed"
# An async call: accepted on the quorum queue, run by the api's dispatcher, its result stored.
status=$(post /execute_async/smoke '{"event": {"name": "later"}}')
[ "$status" = 202 ] || fail "execute_async: $status $(cat /tmp/smoke-body)"
invocation=$(python3 -c 'import json; print(json.load(open("/tmp/smoke-body"))["invocation_id"])')
for _ in $(seq 1 60); do
  curl -s -o /tmp/smoke-body "${auth[@]}" "$api/invocations/$invocation"
  grep -q '"status":"succeeded"' /tmp/smoke-body && break
  sleep 0.5
done
grep -q '"status":"succeeded"' /tmp/smoke-body && grep -q '"hello":"later"' /tmp/smoke-body ||
  fail "async invocation $invocation: $(cat /tmp/smoke-body)"
log "an async call is accepted, run and its result stored"
# The api describes itself from the image's own binary, assets included.
curl -sf "$api/openapi.json" | grep -q '"openapi":"3\.1' || fail "GET /openapi.json is not an OpenAPI 3.1 document"
status=$(curl -s -o /dev/null -w '%{http_code}' "$api/docs")
[ "$status" = 200 ] || fail "GET /docs: $status"
log "/openapi.json and /docs answer without a key"

"${compose[@]}" up -d --scale worker-docker=3 "${services[@]}" >>"$build_log" 2>&1 || fail "scale"
promql() { curl -s "$prom/api/v1/query" --data-urlencode "query=$1"; }
for _ in $(seq 1 60); do
  replicas=$(promql 'count(up{job="worker-docker"} == 1)' | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')
  [ "$replicas" = 3 ] && break
  sleep 1
done
[ "$replicas" = 3 ] || fail "Prometheus sees $replicas worker-docker replicas, not 3"
log "Prometheus found the 3 worker-docker replicas by DNS"
targets=$(promql 'up{job=~"api|rabbitmq"}' |
  python3 -c 'import json,sys; print(" ".join(sorted("%s=%s" % (r["metric"]["job"], r["value"][1]) for r in json.load(sys.stdin)["data"]["result"])))')
[ "$targets" = "api=1 rabbitmq=1" ] || fail "Prometheus scrapes: $targets (not api=1 rabbitmq=1)"
log "Prometheus scrapes the api and RabbitMQ (:15692) across the split networks"

# Each function has a home replica (consistent hashing over the live workers): 24 functions,
# four calls each, reach all three (one left without a home has odds of 3 x (2/3)^24, 1 in
# 5,000), and each function's calls stay on its home.
for i in $(seq 0 23); do
  status=$(post /functions/ "{\"name\": \"spread_$i\", \"route\": \"/spread_$i\", \"language\": \"python\", \"code\": \"$code\", \"timeout\": 10}")
  [ "$status" = 201 ] || fail "create spread_$i: $status $(cat /tmp/smoke-body)"
done
for i in $(seq 0 23); do for _ in 1 2 3 4; do echo "$i"; done; done |
  xargs -P 12 -I@ curl -s -o /dev/null -w '%{http_code}\n' -X POST "$api/execute/spread_@" \
  "${auth[@]}" -H 'Content-Type: application/json' -d '{"event": {}}' | sort | uniq -c >/tmp/smoke-codes
grep -qv ' 200$' /tmp/smoke-codes && fail "calls after scaling: $(cat /tmp/smoke-codes)"
sleep 7 # two scrapes
per_worker=$(promql 'sum by (instance) (faas_worker_jobs_taken_total{runtime="docker",source="home"})' |
  python3 -c 'import json,sys; print(" ".join("%s=%s" % (r["metric"]["instance"], r["value"][1]) for r in json.load(sys.stdin)["data"]["result"]))')
log "jobs from their home queue per docker worker: $per_worker"
[ "$(wc -w <<<"$per_worker")" = 3 ] && ! grep -q '=0\b' <<<"$per_worker" || fail "jobs did not reach every replica: $per_worker"
for i in 0 7 15 23; do
  curl -s "${auth[@]}" "$api/metrics/?function=spread_$i" >/tmp/smoke-body
  homes=$(python3 -c 'import json; print(len({r["worker_id"] for r in json.load(open("/tmp/smoke-body"))}))')
  [ "$homes" = 1 ] || fail "spread_$i ran on $homes workers: $(cat /tmp/smoke-body)"
done
log "each function's calls ran on one replica, its home"

# A worker killed and removed (what recreating a crashed replica does) leaves its containers;
# the replica that replaces it removes them at start.
victim=$(docker ps -q --no-trunc --filter label=com.docker.compose.project=faas-smoke --filter label=com.docker.compose.service=worker-docker | head -1)
orphans=$(docker ps -aq --filter "label=faas.worker_container=$victim")
[ -n "$orphans" ] || fail "worker $victim has no containers labelled with its container id"
docker rm -f "$victim" >/dev/null
"${compose[@]}" up -d --scale worker-docker=3 "${services[@]}" >>"$build_log" 2>&1 || fail "replace the killed replica"
for _ in $(seq 1 60); do
  left=$(docker ps -aq --filter "label=faas.worker_container=$victim")
  [ -z "$left" ] && break
  sleep 1
done
[ -z "$left" ] || fail "containers of the removed worker are still there: $left"
log "the replica replacing a killed one removed its $(wc -w <<<"$orphans") orphaned containers"

python3 - "$prom" docker/grafana/dashboards/*.json <<'PY' || fail "dashboard queries"
import json, sys, urllib.parse, urllib.request
prom, files = sys.argv[1], sys.argv[2:]
def exprs(node):
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            yield node["expr"]
        for value in node.values():
            yield from exprs(value)
    elif isinstance(node, list):
        for value in node:
            yield from exprs(value)
bad, count, empty = [], 0, []
for path in files:
    for expr in exprs(json.load(open(path))):
        query = expr.replace("$runtime", "docker|gvisor").replace("$namespace", ".*")
        url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        try:
            answer = json.load(urllib.request.urlopen(url))
        except urllib.error.HTTPError as error:
            answer = json.load(error)
        count += 1
        if answer.get("status") != "success":
            bad.append(f"{expr}: {answer.get('error')}")
        elif not answer["data"]["result"]:
            empty.append(expr)
for line in bad:
    print("query fails:", line, file=sys.stderr)
print(f"[cluster-smoke] {count} dashboard queries evaluate; {len(empty)} have no series yet (errors, evictions, unavailable workers)", file=sys.stderr)
sys.exit(1 if bad else 0)
PY

worker_ids=$(docker ps --filter label=com.docker.compose.project=faas-smoke --filter label=com.docker.compose.service=worker-docker --format '{{.ID}}')
"${compose[@]}" stop worker-docker worker-gvisor >>"$build_log" 2>&1
exits=$(docker ps -a --filter label=com.docker.compose.project=faas-smoke --filter label=com.docker.compose.service=worker-docker --format '{{.Status}}' | sort | uniq -c)
grep -qv 'Exited (0)' <<<"$exits" && fail "workers after SIGTERM: $exits"
for id in $worker_ids; do
  left=$(docker ps -aq --filter "label=faas.worker=$id")
  [ -z "$left" ] || fail "worker $id left containers: $left"
done
log "SIGTERM: every worker exited 0 and removed its containers"
log "passed in $((SECONDS - started)) s"
