# Sourced by the scripts that run the project's real binaries end to end (seed-session.sh,
# schema-check.sh): builds the debug binaries, makes a fresh database and queue prefix named
# after the caller, starts workers, waits for them, and stops everything and drops the
# database on exit. The caller defines `log` first and then calls `real_binaries <name>`.

# Builds, makes database faas_<name>_<pid> and queue prefix <name>-<pid>., and sets `bin`,
# `admin`, `db`, `logs` and `pids` for the caller; the EXIT trap undoes it all.
real_binaries() {
  local name=$1
  cargo build --locked -q -p api -p worker
  bin=${CARGO_TARGET_DIR:-target}/debug
  admin=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
  db="faas_${name}_$$"
  psql "$admin" -qc "CREATE DATABASE $db" >/dev/null
  export DATABASE_URL="${admin%/*}/$db"
  export QUEUE_PREFIX="$name-$$."
  export RUST_LOG=warn
  logs=$(mktemp -d)
  pids=()
  trap stop_real_binaries EXIT
}

stop_real_binaries() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}

# Logs the failure and the tail of every process's log, then exits.
fail() { log "FAILED: $*"; for f in "$logs"/*.log; do log "--- $f"; tail -20 "$f" >&2; done; exit 1; }

# Starts a docker and a gvisor worker with ids <name>-{docker,gvisor}-<pid>, metrics on the
# two given ports.
start_workers() {
  local name=$1 docker_metrics=$2 gvisor_metrics=$3
  METRICS_ADDR=127.0.0.1:$docker_metrics WORKER_ID="$name-docker-$$" "$bin/worker" --runtime docker >"$logs/docker.log" 2>&1 & pids+=($!)
  METRICS_ADDR=127.0.0.1:$gvisor_metrics WORKER_ID="$name-gvisor-$$" "$bin/worker" --runtime gvisor >"$logs/gvisor.log" 2>&1 & pids+=($!)
}

# Waits (10 s at most) for the api at the base URL to be ready.
wait_for_api() {
  for _ in $(seq 1 100); do
    curl -sf "$1/readyz" >/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# Waits for both workers to consume: they are ready then, after their start-up checks.
wait_for_workers() {
  for _ in $(seq 1 100); do
    grep -q "consuming jobs" "$logs/docker.log" && grep -q "consuming jobs" "$logs/gvisor.log" && return 0
    sleep 0.1
  done
}
