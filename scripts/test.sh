#!/usr/bin/env bash
# The project's test command (README: "Run the tests"). Sets the machine up (scripts/setup.sh),
# checks that Postgres and RabbitMQ answer, validates the cluster's configs
# (scripts/check-cluster-config.sh) and that the console's vendored scripts rebuild from their
# pinned sources (scripts/vendor-console-assets.sh --check), runs the Rust test suites against the real services, then
# the seed README's curl session against the real binaries (scripts/seed-session.sh), then
# schemathesis against the api and its own OpenAPI document (scripts/schema-check.sh), and last
# brings the compose cluster up and checks it (scripts/cluster-smoke.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[test] %s\n' "$*" >&2; }

bash scripts/setup.sh

export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
# A local broker or database that stopped (a full disk stops RabbitMQ) is started again with
# the machine's own command, as dockerd is by setup.sh; one that still does not answer within a
# minute fails the run below.
start_if_down() { # PORT NAME COMMAND...
  local port=$1 name=$2
  shift 2
  port_open "$port" && return 0
  command -v "$1" >/dev/null 2>&1 || return 0
  log "$name does not answer on 127.0.0.1:$port; starting it ($*)"
  "$@" >/dev/null 2>&1 || true
  for _ in $(seq 60); do port_open "$port" && return 0; sleep 1; done
}
start_if_down 5432 Postgres pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql 2>/dev/null | head -1)" main start
start_if_down 5672 RabbitMQ rabbitmq-server -detached
# The tests need the real services and fail loudly without them.
port_open 5432 || { log "Postgres does not answer on 127.0.0.1:5432 (TEST_DATABASE_URL); start it first"; exit 1; }
port_open 5672 || { log "RabbitMQ does not answer on 127.0.0.1:5672 (AMQP_URL); start it first"; exit 1; }

# The broker's plugins: the consistent-hash exchange (job routing) and prometheus (its metrics,
# which the dashboards test reads), as the cluster's broker has them.
bash scripts/local-broker.sh

# Databases left by earlier runs (a test that panicked does not drop its own).
if command -v psql >/dev/null 2>&1; then
  for db in $(psql "$TEST_DATABASE_URL" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'faas_test_%' OR datname LIKE 'faas_seed_%' OR datname LIKE 'faas_schema_%'" 2>/dev/null || true); do
    psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
fi

# Containers of test workers that a failed test could not remove.
docker ps -a --filter label=faas.managed --format '{{.ID}} {{.Label "faas.worker"}}' |
  awk '$2 ~ /^(test-|sandbox-test-|seed-|schema-)/ {print $1}' | xargs -r docker rm -f >/dev/null

log "cluster configs"
bash scripts/check-cluster-config.sh
# The console's vendored scripts are what their pinned sources build (npm ci from the lockfile).
log "console assets"
bash scripts/vendor-console-assets.sh --check

# Every binary the tests start (the api's tests start `worker` as a process of its own) and every
# test binary are built before the first test runs: built inside the run, the worker's compile
# ate into the tests' own waits (a first run on a fresh machine failed a 30 s consumer wait).
log "cargo build (binaries and tests)"
cargo build --workspace --bins --locked
cargo test --workspace --locked --no-run
# The worker binary the api's tests start is the one `cargo test` just built for the worker's own
# tests (api/tests/api/support.rs, worker_binary): without this they run `cargo build -p worker`,
# whose features alone differ from the workspace's, a build of its own inside the tests' time.
export FAAS_TEST_BINARIES_BUILT=1

# A test that SIGKILLs a worker leaves that worker's containers running, as a crashed host
# would; in a cluster its replacement removes them, but a test's worker is never replaced under
# its own id. So the containers of test workers (ids `test-…`, api/tests/api/support.rs) are
# removed before the tests (an earlier run's, however it ended) and after them.
remove_test_containers() {
  docker ps -a --filter label=faas.managed=true --format '{{.ID}} {{.Label "faas.worker"}}' \
    | awk '$2 ~ /^test-/ {print $1}' | xargs -r docker rm -f >/dev/null
}

log "cargo test"
remove_test_containers
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-4}"
remove_test_containers

log "seed README curl session"
bash scripts/seed-session.sh

log "schemathesis: the api against its OpenAPI document"
bash scripts/schema-check.sh

log "the compose cluster, for real"
bash scripts/cluster-smoke.sh
