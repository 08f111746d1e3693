#!/usr/bin/env bash
# Instructions the api spends per warm call, counted by valgrind's callgrind: a number that,
# unlike the bench's times and CPU shares, does not move with whatever else the machine is
# doing, so two builds can be compared on a busy machine (or from one run each).
#
# It creates a database, starts the release api (auth on, a random ADMIN_KEY) under callgrind
# with instrumentation off and one docker worker beside it, creates a Python function, warms it
# with 30 calls, then counts the api's instructions over CALLS sequential warm calls of
# `POST /execute/{name}` (curl, one at a time) and prints the total and the count per call.
# Everything the api does meanwhile counts: the request, the call path, the reply consumer, the
# record writer's insert; the worker, RabbitMQ and Postgres do not.
#
# Usage: bench/callgrind.sh [BIN_DIR] [LABEL] [CALLS]
#   BIN_DIR  the release binaries (default ${CARGO_TARGET_DIR:-target}/release; build them with
#            `cargo build --release -p api -p worker`)
#   LABEL    names the output files (default api): /tmp/callgrind.LABEL.out* (open them with
#            callgrind_annotate), /tmp/callgrind.LABEL.{api,worker}.log
#   CALLS    measured calls (default 300)
# Needs valgrind, Docker with the python-base image (scripts/setup.sh), Postgres with trust
# auth and RabbitMQ (BENCH_PG_SERVER, AMQP_URL as in bench/run.sh); uses ports 8020, 9120 and
# 9121, the queue prefix `callgrind.` and the database `faas_callgrind`, dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-${CARGO_TARGET_DIR:-target}/release}
label=${2:-api}
calls=${3:-300}
pg=${BENCH_PG_SERVER:-postgres://postgres@127.0.0.1:5432}
db=faas_callgrind
api_url=http://127.0.0.1:8020
out=/tmp/callgrind.$label
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

psql_admin() { PGOPTIONS='--client-min-messages=warning' psql "$pg/postgres" -qtA -c "$1" >/dev/null; }
psql_admin "DROP DATABASE IF EXISTS $db WITH (FORCE)"
psql_admin "CREATE DATABASE $db"
export DATABASE_URL=$pg/$db AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export QUEUE_PREFIX=callgrind. RUST_LOG=warn LOG_FORMAT=text
key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
rm -f "$out".out*
AUTH=enabled ADMIN_KEY=$key API_ADDR=127.0.0.1:8020 METRICS_ADDR=127.0.0.1:9120 FUNCTIONS_ADDR=127.0.0.1:8021 \
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out.out" \
  "$bin/api" >"$out.api.log" 2>&1 &
api=$!
WORKER_ID=callgrind-docker METRICS_ADDR=127.0.0.1:9121 BUILDS=false MAX_CONTAINERS=16 \
  "$bin/worker" --runtime docker >"$out.worker.log" 2>&1 &
worker=$!
stop() {
  kill -TERM "$worker" 2>/dev/null || true
  callgrind_control -k "$api" >/dev/null 2>&1 || kill -KILL "$api" 2>/dev/null || true
  wait 2>/dev/null || true
  docker ps -aq --filter label=faas.worker=callgrind-docker | xargs -r docker rm -f >/dev/null
  psql_admin "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
}
trap stop EXIT

for _ in $(seq 1 300); do curl -sf -o /dev/null "$api_url/readyz" && break; sleep 1; done
auth="Authorization: Bearer $key"
json="Content-Type: application/json"
curl -sf -o /dev/null -H "$auth" -H "$json" "$api_url/functions/" -d \
  '{"name":"callgrind","route":"/callgrind","language":"python","timeout":5,"code":"def handler(event, context):\n    return {\"ok\": 1}"}'
call() { curl -sf -o /dev/null -H "$auth" -H "$json" -X POST -d "$1" "$api_url/execute/callgrind"; }
for _ in $(seq 1 200); do call '{"event":{}}' && break; sleep 1; done
for _ in $(seq 1 30); do call '{"event":{}}'; done
callgrind_control -i on "$api" >/dev/null
for _ in $(seq 1 "$calls"); do call '{"event":{"n":1}}'; done
callgrind_control -i off "$api" >/dev/null
callgrind_control -d "$api" >/dev/null
sleep 1
total=$(grep -h '^summary:\|^totals:' "$out".out.* | awk '{s += $2} END {print s}')
echo "$label: $total instructions in the api over $calls warm calls = $((total / calls)) per call"
