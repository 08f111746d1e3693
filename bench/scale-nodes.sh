#!/usr/bin/env bash
# What grows with the number of nodes, measured on this one machine with the release binaries
# against the local Postgres and RabbitMQ (docs/scaling.md, "10, 100 and 1,000 nodes", quotes
# a run):
#   workers  N docker workers (WORKER_COUNTS, default "1 25 100"), as N nodes would each run one,
#            against one broker and one api: how long they took to be consuming; the broker's
#            memory, connections, channels and queues with them; the api's calls (400, 8 at a
#            time, over 20 functions) p50 and p99, and how many workers served them.
#   routes   the api's route table with ROUTE_COUNTS functions (default "10 10000"), each with a
#            route: the time to create them (16 at a time), then the p50 of 20 more creates
#            (each waits until its replica's table, reloaded whole, holds it), and the reload's
#            query alone in Postgres (EXPLAIN ANALYZE).
# Each worker runs without stem cells and builds, with WORKER_MEMORY_MB=4096 (a budget: the
# containers are only those of the functions it runs). Prints a Markdown
# table per part. Usage: bench/scale-nodes.sh [workers|routes ...]
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[scale-nodes] %s %s\n' "$(date +%T)" "$*" >&2; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/faas-target-release}
parts=("$@")
((${#parts[@]})) || parts=(workers routes)
WORKER_COUNTS=${WORKER_COUNTS:-"1 25 100"}
ROUTE_COUNTS=${ROUTE_COUNTS:-"10 10000"}
admin=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
amqp=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
port=${SCALE_API_PORT:-8010}
base=http://127.0.0.1:$port
key="scale-admin-key-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"

bash scripts/local-broker.sh
[ "${BENCH_SKIP_BUILD:-0}" = 1 ] || cargo build --release --locked -q -p api -p worker
bin=$CARGO_TARGET_DIR/release
logs=$(mktemp -d)
pids=()
db=

stop_all() {
  ((${#pids[@]})) && kill -TERM "${pids[@]}" 2>/dev/null
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
  [ -z "$db" ] || psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  db=
}
trap 'stop_all; rm -rf "$logs"' EXIT

# A fresh database and queue prefix, and the api on them (auth on, quotas raised).
start_api() { # NAME
  db="faas_scale_$1_$$"
  psql "$admin" -qc "CREATE DATABASE $db" >/dev/null
  export DATABASE_URL="${admin%/*}/$db" AMQP_URL=$amqp QUEUE_PREFIX="scale-$1-$$." RUST_LOG=warn
  ADMIN_KEY=$key API_ADDR=127.0.0.1:$port FUNCTIONS_ADDR=127.0.0.1:0 METRICS_ADDR=127.0.0.1:0 \
    QUOTA_FUNCTIONS=20000 "$bin/api" >"$logs/api.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do curl -sf "$base/readyz" >/dev/null && return 0; sleep 0.1; done
  tail "$logs/api.log" >&2
  exit 1
}

py() { python3 - "$@"; }

# Creates functions NAME-0..N-1 (routes /NAME/i), CONCURRENCY at a time; prints seconds taken,
# or with "times", each create's milliseconds.
create_functions() { # PREFIX FROM TO CONCURRENCY [times]
  py "$base" "$key" "$@" <<'PY'
import concurrent.futures, http.client, json, sys, time, urllib.parse
base, key, prefix, start, stop, workers = sys.argv[1:7]
times = len(sys.argv) > 7
url = urllib.parse.urlsplit(base)
code = "def handler(event, context):\n    return {'ok': True}\n"
def create(i):
    body = json.dumps({"name": f"{prefix}-{i}", "language": "python", "code": code,
                       "route": f"/{prefix}/{i}", "timeout": 10})
    began = time.perf_counter()
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    conn.request("POST", "/functions/", body, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    response = conn.getresponse()
    text = response.read()
    conn.close()
    if response.status != 201:
        sys.exit(f"create {prefix}-{i}: {response.status} {text[:200]}")
    return (time.perf_counter() - began) * 1000
began = time.perf_counter()
with concurrent.futures.ThreadPoolExecutor(int(workers)) as pool:
    ms = list(pool.map(create, range(int(start), int(stop))))
if times:
    ms.sort()
    print(f"{ms[len(ms) // 2]:.1f} {ms[int(len(ms) * 0.95)]:.1f}")
else:
    print(f"{time.perf_counter() - began:.1f}")
PY
}

# 400 calls over FUNCTIONS functions, 8 at a time: "p50 p99 workers", the workers counted from
# the calls' records.
call_functions() { # PREFIX FUNCTIONS
  py "$base" "$key" "$@" <<'PY'
import concurrent.futures, http.client, json, sys, time, urllib.parse
base, key, prefix, functions = sys.argv[1:5]
url = urllib.parse.urlsplit(base)
headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
def request(method, path, body=None):
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    conn.request(method, path, body, headers)
    response = conn.getresponse()
    text = response.read()
    conn.close()
    return response.status, json.loads(text) if text else None
def call(i):
    began = time.perf_counter()
    status, answer = request("POST", f"/execute/{prefix}-{i % int(functions)}", "{}")
    if status != 200:
        sys.exit(f"call: {status} {answer}")
    return (time.perf_counter() - began) * 1000, answer["invocation_id"]
# One call per function first: the cold starts are not what is measured.
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    list(pool.map(call, range(int(functions))))
    results = list(pool.map(call, range(400)))
ms = sorted(r[0] for r in results)
time.sleep(2)
workers = set()
# Every 7th call: 7 and the 20 functions share no divisor, so the sample covers them all.
for _, invocation in results[::7]:
    status, record = request("GET", f"/invocations/{invocation}")
    if status == 200 and record.get("attempts"):
        workers.add(record["attempts"][-1].get("worker_id"))
print(f"{ms[len(ms) // 2]:.1f} {ms[int(len(ms) * 0.99)]:.1f} {len(workers)}")
PY
}

broker_stats() { # PREFIX -> "memory_mb connections channels queues"
  local memory connections channels queues
  memory=$(rabbitmqctl -q status --formatter json 2>/dev/null | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["memory"]["total"]["rss"] / 2**20))')
  connections=$(rabbitmqctl -q list_connections name 2>/dev/null | wc -l)
  channels=$(rabbitmqctl -q list_channels name 2>/dev/null | wc -l)
  queues=$(rabbitmqctl -q list_queues name 2>/dev/null | grep -c "^$1" || true)
  echo "$memory $connections $channels $queues"
}

if [[ " ${parts[*]} " == *" workers "* ]]; then
  printf '\n| workers | consuming after | broker memory (MB) | connections | channels | queues | calls p50 (ms) | p99 (ms) | workers that served 58 sampled calls |\n|---|---|---|---|---|---|---|---|---|\n'
  for n in $WORKER_COUNTS; do
    start_api "w$n"
    started=$SECONDS
    for i in $(seq 1 "$n"); do
      RUST_LOG=warn,common::broker=info WORKER_ID="scale-$n-$i" METRICS_ADDR=127.0.0.1:0 WORKER_MEMORY_MB=4096 STEM_CELLS=0 \
        DEPS_STEM_CELLS=0 BUILDS=false "$bin/worker" --runtime docker >"$logs/worker-$i.log" 2>&1 &
      pids+=($!)
    done
    for _ in $(seq 1 600); do
      # Consuming its home queue: bound to the home exchange, so jobs can find it.
      [ "$(grep -l 'faas\.home.*consuming\|consuming.*faas\.home' "$logs"/worker-*.log 2>/dev/null | wc -l)" -ge "$n" ] && break
      sleep 0.2
    done
    consuming=$((SECONDS - started))
    create_functions "f" 0 20 8 >/dev/null
    read -r p50 p99 served < <(call_functions f 20)
    read -r memory connections channels queues < <(broker_stats "$QUEUE_PREFIX")
    printf '| %s | %s s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$consuming" "$memory" "$connections" "$channels" "$queues" "$p50" "$p99" "$served"
    stop_all
    rm -f "$logs"/worker-*.log
    docker ps -aq --filter label=faas.managed=true --format '{{.ID}} {{.Label "faas.worker"}}' 2>/dev/null |
      awk '$2 ~ /^scale-/ {print $1}' | xargs -r docker rm -f >/dev/null
  done
fi

if [[ " ${parts[*]} " == *" routes "* ]]; then
  printf '\n| routed functions | made in (s, 16 at a time) | one more create p50 (ms) | p95 (ms) | reload query (ms) |\n|---|---|---|---|---|\n'
  for n in $ROUTE_COUNTS; do
    start_api "r$n"
    made=$(create_functions "r" 0 "$n" 16)
    read -r p50 p95 < <(create_functions "more" 0 20 1 times)
    query=$(psql "$DATABASE_URL" -Atc "EXPLAIN (ANALYZE, FORMAT JSON) SELECT id, namespace, name, route, http_methods, http_auth, cors FROM functions WHERE route_shape IS NOT NULL" |
      python3 -c 'import json,sys; print(round(json.load(sys.stdin)[0]["Execution Time"], 1))')
    printf '| %s | %s | %s | %s | %s |\n' "$n" "$made" "$p50" "$p95" "$query"
    stop_all
  done
fi
