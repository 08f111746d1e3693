#!/usr/bin/env bash
# Tests the running api against its own OpenAPI document with schemathesis: every operation,
# every check (`--checks all`: no 5xx, statuses, content types, headers and bodies as
# documented, invalid data refused and valid data accepted, auth enforced, 405 for methods the
# document does not list, resources there after creation and gone after deletion), a fixed seed
# so a run can be repeated, up to 100 generated examples per operation. Fails on any failure. (It
# tests 20 of the document's 21 operations: schemathesis leaves out the document it loaded,
# GET /openapi.json, which the api's own tests check.)
#
# Like scripts/seed-session.sh it runs the real binaries on a fresh database and queue prefix:
# the api with auth on and a random ADMIN_KEY (sent as the bearer key), and one docker and one
# gvisor worker, so that the calls the document's examples make (`hello`) run and their
# success bodies are checked too. schemathesis lives in a venv outside the clone
# (SCHEMATHESIS_VENV), made here at the pinned version when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[schema] %s\n' "$*" >&2; }

SCHEMATHESIS_VERSION=4.32.5
venv=${SCHEMATHESIS_VENV:-/var/cache/faas-venv/schemathesis}
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --locked -q -p api -p worker
bin=${CARGO_TARGET_DIR:-target}/debug
admin=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db="faas_schema_$$"
psql "$admin" -qc "CREATE DATABASE $db" >/dev/null
export DATABASE_URL="${admin%/*}/$db"
export QUEUE_PREFIX="schema-$$."
export RUST_LOG=warn
port=${SCHEMA_CHECK_PORT:-8002}
base="http://127.0.0.1:$port"
logs=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
fail() { log "FAILED: $*"; for f in "$logs"/*.log; do log "--- $f"; tail -20 "$f" >&2; done; exit 1; }

admin_key="schema-admin-key-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
AUTH=enabled ADMIN_KEY=$admin_key API_ADDR=127.0.0.1:$port METRICS_ADDR=127.0.0.1:19103 \
  "$bin/api" >"$logs/api.log" 2>&1 & pids+=($!)
METRICS_ADDR=127.0.0.1:19104 WORKER_ID="schema-docker-$$" "$bin/worker" --runtime docker >"$logs/docker.log" 2>&1 & pids+=($!)
METRICS_ADDR=127.0.0.1:19105 WORKER_ID="schema-gvisor-$$" "$bin/worker" --runtime gvisor >"$logs/gvisor.log" 2>&1 & pids+=($!)
for _ in $(seq 1 100); do
  curl -sf "$base/readyz" >/dev/null && break
  sleep 0.1
done
curl -sf "$base/readyz" >/dev/null || fail "the api did not become ready"
for _ in $(seq 1 100); do
  grep -q "consuming jobs" "$logs/docker.log" && grep -q "consuming jobs" "$logs/gvisor.log" && break
  sleep 0.1
done

# The function the document's examples call (`/execute/hello`), made beforehand so that those
# calls run and their 200 bodies are checked. A placeholder takes id 1 first: the examples of
# `/functions/{id}` update and delete function 1.
auth=(-H "Authorization: Bearer $admin_key" -H "Content-Type: application/json")
make_function() {
  curl -sf "${auth[@]}" -d "$1" "$base/functions/" >/dev/null || fail "cannot create $1"
}
make_function '{"name": "placeholder", "route": "/placeholder", "language": "python", "code": "def handler(event, context):\n    return 1", "timeout": 5}'
make_function '{"name": "hello", "route": "/hello", "language": "python", "code": "def handler(event, context):\n    return {\"message\": \"Hello from faas\", \"event\": event}", "timeout": 5}'

log "schemathesis $SCHEMATHESIS_VERSION against $base/openapi.json"
started=$(date +%s)
# scripts/schemathesis_hooks.py: the one rule the document cannot state (a key's expiry must be
# in the future), kept out of the "valid data" schemathesis generates; see there.
# It runs in the scratch directory, where it keeps its cache (.schemathesis/), not in the clone;
# no example database, so that the seed alone decides what is sent.
(cd "$logs" && PYTHONPATH="$OLDPWD/scripts" SCHEMATHESIS_HOOKS=schemathesis_hooks timeout 120 \
  "$venv/bin/schemathesis" run "$base/openapi.json" \
  --checks all \
  --seed 20260127 \
  --max-examples 100 \
  --header "Authorization: Bearer $admin_key" \
  --generation-database none \
  --no-color) \
  || fail "schemathesis found failures (above)"
log "passed in $(($(date +%s) - started)) s"
