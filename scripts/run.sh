#!/usr/bin/env bash
# Runs the platform on this machine (README: "Run the platform"): sets up Docker, runsc and the
# runtime images, builds the binaries, and starts the api on :8000 (the functions' HTTP
# triggers on :8080) with one docker worker and
# one gvisor worker against the Postgres and RabbitMQ named by DATABASE_URL and AMQP_URL.
# Ctrl-C stops all three gracefully. Settings come from the environment (see .env.example).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .env ] && { set -a; . ./.env; set +a; }

bash scripts/setup.sh
cargo build --release --locked -p api -p worker
bin=${CARGO_TARGET_DIR:-target}/release

pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait; }
trap stop INT TERM EXIT
"$bin/api" & pids+=($!)
METRICS_ADDR=${DOCKER_WORKER_METRICS_ADDR:-0.0.0.0:9101} "$bin/worker" --runtime docker & pids+=($!)
METRICS_ADDR=${GVISOR_WORKER_METRICS_ADDR:-0.0.0.0:9102} WORKER_ID="${WORKER_ID:-$(hostname)}-gvisor" \
  "$bin/worker" --runtime gvisor & pids+=($!)
wait -n
