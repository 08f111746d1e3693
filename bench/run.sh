#!/usr/bin/env bash
# The benchmark (README: "Benchmark"; docs/benchmarks.md). It builds the release binaries,
# creates a fresh database, starts the api with auth on and a random ADMIN_KEY (64 hex digits
# from /dev/urandom, made anew every run and never printed), one docker worker and one gvisor
# worker in the background (queue prefix "bench.", RUST_LOG=warn, MAX_CONTAINERS=256 unless
# set), then, once the first api is ready (so that the two do not migrate the database at
# once), a second api with AUTH=disabled over the same database, broker and queue prefix, for
# scenario 7 (auth on against auth off, the same functions on the same workers). It waits until
# /readyz answers and a throwaway function runs on each runtime, runs `bench` with the key
# (BENCH_API_KEY, in its environment rather than on its command line) and the api's functions'
# origin (BENCH_FUNCTIONS_URL, for scenario 8's HTTP trigger), then stops the four
# with SIGTERM and drops the database.
#
# Arguments go to bench (`bench --help`), e.g. `bench/run.sh --runtimes docker --duration-secs 5`;
# so do BENCH_* variables. The platform side reads:
#   BENCH_PG_SERVER     Postgres server, trust auth   (postgres://postgres@127.0.0.1:5432)
#   BENCH_DB            database created and dropped  (faas_bench)
#   AMQP_URL            RabbitMQ                      (amqp://guest:guest@127.0.0.1:5672/%2f)
#   BENCH_QUEUE_PREFIX  queue prefix                  (bench.)
#   BENCH_API_ADDR      api address, auth on          (127.0.0.1:8000)
#   BENCH_API_NOAUTH_ADDR  the AUTH=disabled api      (127.0.0.1:8010)
#   BENCH_FUNCTIONS_ADDR   the functions' origin of the api with auth on (127.0.0.1:8080);
#                       the AUTH=disabled api's is the next port
#   BENCH_METRICS_PORTS api, docker, gvisor worker, AUTH=disabled api  (9100,9101,9102,9103)
#   BENCH_WORKER_CONCURRENCY  the workers' WORKER_CONCURRENCY (unset: not set by this script,
#                       so each worker sizes its prefetch from its memory budget,
#                       WORKER_MEMORY_MB, 75% of the host's memory unless set; a
#                       WORKER_CONCURRENCY already in the environment passes through)
#   BENCH_SKIP_BUILD=1  use the binaries already in ${CARGO_TARGET_DIR:-target}/release
# Other settings of the api and workers (.env.example: MAX_CONTAINERS, STEM_CELLS, IDLE_TTL_SECS,
# ...) pass through from the environment, except AUTH and ADMIN_KEY, which this script sets for
# each api; .env is not read.
# Dependencies (scenario 9): the apis and workers share a random WORKER_TOKEN; the workers get
# API_URL (the keyed api), BUILD_CA_BUNDLE (/etc/ssl/certs/ca-certificates.crt unless set, when it
# exists) and each an empty DEPS_CACHE_DIR under a fresh /tmp/benchdeps-* (removed at the end).
# The gvisor worker builds (BUILDS=true) and the docker worker does not (BUILDS=false), so that a
# fresh artifact is missing from the docker worker's cache until its first call fetches it.
# Async invocations (scenario 10, `--scenarios async`; not a default) kill the docker worker: the
# script passes bench BENCH_DOCKER_WORKER_PID (its docker worker's pid), BENCH_WORKER_BIN (the
# release `worker`, absolute), BENCH_REPLACEMENT_WORKER_ID (bench-docker-replacement-<this
# script's pid>; bench appends -1, -2, ...) and BENCH_REPLACEMENT_DEPS_DIR (replacements/ under
# the run's deps directory). bench starts each replacement docker worker with the environment it
# gets from this script, which exports what the workers need (DATABASE_URL, AMQP_URL,
# QUEUE_PREFIX, RUST_LOG, LOG_FORMAT, WORKER_TOKEN, API_URL, BUILD_CA_BUNDLE, MAX_CONTAINERS,
# WORKER_CONCURRENCY when asked) plus its own WORKER_ID, METRICS_ADDR (a free port),
# DEPS_CACHE_DIR and BUILDS=false; bench reads AMQP_URL and QUEUE_PREFIX itself to count the
# queues' consumers. The stop copes with the killed docker worker (bash reports it `Killed` when it
# reaps it) and also removes the containers of the replacement workers (by their `faas.worker`
# label).
# Logs of the four processes go to target/bench/ (api.log, api-noauth.log, worker-docker.log,
# worker-gvisor.log; scenario 10's replacements: worker-docker-replacement-N.log), the results to
# target/bench/results.json (BENCH_OUT) and the printed report beside it (results.md).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[run.sh] %s\n' "$*" >&2; }

PG_SERVER=${BENCH_PG_SERVER:-postgres://postgres@127.0.0.1:5432}
DB=${BENCH_DB:-faas_bench}
AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
QUEUE_PREFIX=${BENCH_QUEUE_PREFIX:-bench.}
API_ADDR=${BENCH_API_ADDR:-127.0.0.1:8000}
NOAUTH_ADDR=${BENCH_API_NOAUTH_ADDR:-127.0.0.1:8010}
FUNCTIONS_ADDR=${BENCH_FUNCTIONS_ADDR:-127.0.0.1:8080}
NOAUTH_FUNCTIONS_ADDR=${FUNCTIONS_ADDR%:*}:$((${FUNCTIONS_ADDR##*:} + 1))
IFS=, read -r API_METRICS_PORT DOCKER_METRICS_PORT GVISOR_METRICS_PORT NOAUTH_METRICS_PORT \
  <<<"${BENCH_METRICS_PORTS:-9100,9101,9102,9103}"
NOAUTH_METRICS_PORT=${NOAUTH_METRICS_PORT:-9103}
OUT_DIR=target/bench
API_URL=http://$API_ADDR
NOAUTH_URL=http://$NOAUTH_ADDR
bin=${CARGO_TARGET_DIR:-target}/release
mkdir -p "$OUT_DIR"

image=${PYTHON_IMAGE:-python-base}
docker image inspect "$image" >/dev/null 2>&1 || { log "no image $image: run scripts/setup.sh first"; exit 1; }
# The local broker's plugins (the consistent-hash exchange the jobs are routed through).
bash scripts/local-broker.sh
if curl -s -o /dev/null --max-time 2 "$API_URL/healthz"; then
  log "something already answers on $API_URL; stop it or set BENCH_API_ADDR"
  exit 1
fi
if curl -s -o /dev/null --max-time 2 "$NOAUTH_URL/healthz"; then
  log "something already answers on $NOAUTH_URL; stop it or set BENCH_API_NOAUTH_ADDR"
  exit 1
fi

if [ "${BENCH_SKIP_BUILD:-}" != 1 ]; then
  log "building release binaries"
  cargo build --release --locked -p api -p worker -p bench
fi

psql_admin() {
  PGOPTIONS='--client-min-messages=warning' psql "$PG_SERVER/postgres" -v ON_ERROR_STOP=1 -qtA -c "$1" >/dev/null
}
log "creating database $DB"
psql_admin "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)"
psql_admin "CREATE DATABASE \"$DB\""

# The api's bootstrap admin key: at least 32 characters; 32 random bytes as 64 hex digits.
admin_key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
((${#admin_key} == 64)) || { log "cannot read 32 random bytes from /dev/urandom"; exit 1; }
# curl reads the header from a file (mode 0600), so that the key is on no command line.
auth_header=$(mktemp)
printf 'Authorization: Bearer %s\n' "$admin_key" >"$auth_header"

run_tag=$$
worker_token=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
((${#worker_token} == 64)) || { log "cannot read 32 random bytes from /dev/urandom"; exit 1; }
deps_dir=$(mktemp -d /tmp/benchdeps-XXXXXX)
mkdir -p "$deps_dir/docker" "$deps_dir/gvisor" "$deps_dir/replacements"
docker_worker_id=bench-docker-$run_tag
gvisor_worker_id=bench-gvisor-$run_tag
# Scenario 10's replacement docker workers: this, then -1, -2, ...
replacement_worker_id=bench-docker-replacement-$run_tag
pids=()
any_alive() {
  local pid
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && return 0; done
  return 1
}
stop() {
  trap - EXIT INT TERM
  rm -f "$auth_header"
  if ((${#pids[@]})); then
    log "stopping the apis and workers (SIGTERM)"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    local waited=0
    while any_alive && ((waited < 120)); do
      sleep 1
      waited=$((waited + 1))
    done
    if any_alive; then
      log "still running after ${waited} s: SIGKILL"
      kill -KILL "${pids[@]}" 2>/dev/null || true
    fi
    wait "${pids[@]}" 2>/dev/null || true
    log "stopped in ${waited} s"
    # Containers a killed worker could not remove; only those of this run's workers, scenario
    # 10's replacement docker workers included (it kills the docker worker and replacements).
    local replacements
    replacements=$(docker ps -a --filter label=faas.worker --format '{{.Label "faas.worker"}}' \
      2>/dev/null | grep -E "^$replacement_worker_id-[0-9]+\$" | sort -u) || true
    for id in "$docker_worker_id" "$gvisor_worker_id" $replacements; do
      docker ps -aq --filter "label=faas.worker=$id" | xargs -r docker rm -f >/dev/null 2>&1 || true
    done
  fi
  # Unpacked artifacts are read-only.
  chmod -R u+w "$deps_dir" 2>/dev/null || true
  rm -rf "$deps_dir"
  log "dropping database $DB"
  psql_admin "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" || true
}
trap stop EXIT
trap 'exit 130' INT TERM

export DATABASE_URL=$PG_SERVER/$DB AMQP_URL QUEUE_PREFIX RUST_LOG=warn LOG_FORMAT=text
export WORKER_TOKEN=$worker_token API_URL
if [ -z "${BUILD_CA_BUNDLE:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  export BUILD_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
fi
AUTH=enabled ADMIN_KEY=$admin_key API_ADDR=$API_ADDR METRICS_ADDR=127.0.0.1:$API_METRICS_PORT \
  FUNCTIONS_ADDR=$FUNCTIONS_ADDR "$bin/api" >"$OUT_DIR/api.log" 2>&1 &
api_pid=$!
pids+=("$api_pid")
noauth_pid=
# 100 functions at concurrency 64 need room for about 170 warm containers, plus stem cells.
export MAX_CONTAINERS=${MAX_CONTAINERS:-256}
# Only when asked: the worker's own default follows its memory budget, as deployed.
if [ -n "${BENCH_WORKER_CONCURRENCY:-}" ]; then
  export WORKER_CONCURRENCY=$BENCH_WORKER_CONCURRENCY
fi
WORKER_ID=$docker_worker_id METRICS_ADDR=127.0.0.1:$DOCKER_METRICS_PORT \
  DEPS_CACHE_DIR=$deps_dir/docker BUILDS=false \
  "$bin/worker" --runtime docker >"$OUT_DIR/worker-docker.log" 2>&1 &
docker_pid=$!
pids+=("$docker_pid")
WORKER_ID=$gvisor_worker_id METRICS_ADDR=127.0.0.1:$GVISOR_METRICS_PORT \
  DEPS_CACHE_DIR=$deps_dir/gvisor BUILDS=true \
  "$bin/worker" --runtime gvisor >"$OUT_DIR/worker-gvisor.log" 2>&1 &
gvisor_pid=$!
pids+=("$gvisor_pid")
log "api $api_pid, docker worker $docker_pid, gvisor worker $gvisor_pid; logs in $OUT_DIR/"

alive() {
  local name pid
  for name in api:$api_pid worker-docker:$docker_pid worker-gvisor:$gvisor_pid \
    ${noauth_pid:+api-noauth:$noauth_pid}; do
    pid=${name#*:}
    if ! kill -0 "$pid" 2>/dev/null; then
      log "${name%%:*} exited; the end of $OUT_DIR/${name%%:*}.log:"
      tail -20 "$OUT_DIR/${name%%:*}.log" >&2
      return 1
    fi
  done
}

wait_ready() {
  local url=$1 i
  log "waiting for $url/readyz"
  for i in $(seq 1 120); do
    alive || exit 1
    curl -sf -o /dev/null --max-time 2 "$url/readyz" && return 0
    ((i == 120)) && { log "$url/readyz did not answer 200 within 60 s"; curl -s "$url/readyz" >&2; exit 1; }
    sleep 0.5
  done
}
wait_ready "$API_URL"

# The api without keys, started once the first has migrated the database. An empty ADMIN_KEY
# counts as none.
AUTH=disabled ADMIN_KEY= API_ADDR=$NOAUTH_ADDR METRICS_ADDR=127.0.0.1:$NOAUTH_METRICS_PORT \
  FUNCTIONS_ADDR=$NOAUTH_FUNCTIONS_ADDR "$bin/api" >"$OUT_DIR/api-noauth.log" 2>&1 &
noauth_pid=$!
pids+=("$noauth_pid")
log "api with AUTH=disabled $noauth_pid on $NOAUTH_URL"
wait_ready "$NOAUTH_URL"

# A throwaway function, called until each runtime answers 200 (the worker consumes its queue
# and a container starts).
probe=bench-probe-$run_tag
created=$(curl -sf -X POST -H @"$auth_header" -H 'Content-Type: application/json' "$API_URL/functions/" -d "{
  \"name\": \"$probe\", \"route\": \"/$probe\", \"language\": \"python\", \"timeout\": 5,
  \"code\": \"def handler(event, context):\\n    return {\\\"ok\\\": True}\"}") \
  || { log "cannot create the probe function"; exit 1; }
probe_id=$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' <<<"$created")
for path in execute execute_gvisor; do
  log "waiting for POST /$path/$probe to answer 200"
  for i in $(seq 1 120); do
    alive || exit 1
    answer=$(curl -s --max-time 30 -o "$OUT_DIR/probe.json" -w '%{http_code}' -X POST \
      -H @"$auth_header" -H 'Content-Type: application/json' -d '{"event": {}}' \
      "$API_URL/$path/$probe") || true
    [ "$answer" = 200 ] && break
    ((i == 120)) && { log "/$path never answered 200; last: $answer $(cat "$OUT_DIR/probe.json")"; exit 1; }
    sleep 1
  done
done
curl -sf -o /dev/null -X DELETE -H @"$auth_header" "$API_URL/functions/$probe_id" \
  || log "could not delete the probe function"

log "running bench"
out=${BENCH_OUT:-$OUT_DIR/results.json}
report=${out%.json}.md
# Scenario 8 calls an HTTP trigger on the functions' origin of the api with auth on; scenario 10
# kills the docker worker and starts replacements.
BENCH_FUNCTIONS_URL=http://$FUNCTIONS_ADDR \
  BENCH_DOCKER_WORKER_PID=$docker_pid BENCH_WORKER_BIN=$(realpath "$bin/worker") \
  BENCH_REPLACEMENT_WORKER_ID=$replacement_worker_id \
  BENCH_REPLACEMENT_DEPS_DIR=$deps_dir/replacements \
  BENCH_API_KEY=$admin_key "$bin/bench" --api-url "$API_URL" --api-url-noauth "$NOAUTH_URL" \
    --api-pid "$api_pid" --worker-pid "$docker_pid,$gvisor_pid" \
    --worker-metrics-url "http://127.0.0.1:$DOCKER_METRICS_PORT/metrics,http://127.0.0.1:$GVISOR_METRICS_PORT/metrics" \
    --out "$out" "$@" | tee -i "$report"
log "report: $report, results: $out"
