#!/usr/bin/env bash
# Tests the running api against its own OpenAPI document with schemathesis: every operation,
# every check (the default; scripts/schemathesis.toml says what function calls are spared: no
# 5xx, statuses, content types, headers and bodies as
# documented, invalid data refused and valid data accepted, auth enforced, 405 for methods the
# document does not list, resources there after creation and gone after deletion), a fixed seed
# so a run can be repeated, up to 100 generated examples per operation. Fails on any failure. (It
# tests 36 of the document's 38 operations: schemathesis leaves out the document it loaded,
# GET /openapi.json, which the api's own tests check, and scripts/schemathesis.toml the endless
# GET /invocations/stream, which api/tests/api/stream.rs checks.)
#
# Like scripts/seed-session.sh it runs the real binaries (scripts/lib/real-binaries.sh) on a
# fresh database and queue prefix:
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

source scripts/lib/real-binaries.sh
real_binaries schema
port=${SCHEMA_CHECK_PORT:-8002}
base="http://127.0.0.1:$port"

admin_key="schema-admin-key-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# The workers fetch the packages of functions saved with `code_zip` from the api, with this
# token, into a cache of their own; they build nothing (the hooks leave dependencies out).
export WORKER_TOKEN="schema-worker-token-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export API_URL=$base BUILDS=false DEPS_CACHE_DIR=$logs/deps
# The functions' origin, where schemathesis.toml sends the trigger's operation.
export SCHEMA_FUNCTIONS_PORT=${SCHEMA_FUNCTIONS_PORT:-18102}
AUTH=enabled ADMIN_KEY=$admin_key API_ADDR=127.0.0.1:$port METRICS_ADDR=127.0.0.1:19103 \
  FUNCTIONS_ADDR=127.0.0.1:$SCHEMA_FUNCTIONS_PORT \
  "$bin/api" >"$logs/api.log" 2>&1 & pids+=($!)
start_workers schema 19104 19105
wait_for_api "$base" || fail "the api did not become ready"
wait_for_workers

# The function the document's examples call (`/execute/hello`), made beforehand so that those
# calls run and their 200 bodies are checked. A placeholder takes id 1 first: the examples of
# `/functions/{id}` update and delete function 1.
auth=(-H "Authorization: Bearer $admin_key" -H "Content-Type: application/json")
make_function() {
  curl -sf "${auth[@]}" -d "$1" "$base/functions/" >/dev/null || fail "cannot create $1"
}
make_function '{"name": "placeholder", "route": "/placeholder", "language": "python", "code": "def handler(event, context):\n    return 1", "timeout": 5}'
make_function '{"name": "hello", "route": "/hello", "language": "python", "code": "def handler(event, context):\n    return {\"message\": \"Hello from faas\", \"event\": event}", "timeout": 5}'
# The destination the document's examples name (`on_success`, `on_failure`).
make_function '{"name": "notify", "route": "/notify", "language": "python", "code": "def handler(event, context):\n    return 1", "timeout": 5}'

log "schemathesis $SCHEMATHESIS_VERSION against $base/openapi.json"
started=$(date +%s)
# scripts/schemathesis_hooks.py: the rules the document cannot state (a key's expiry must be in
# the future; a function's dependencies), kept out of the "valid data" schemathesis generates;
# scripts/schemathesis.toml: what function calls answer (see there).
# It runs in the scratch directory, where it keeps its cache (.schemathesis/), not in the clone;
# no example database, so that the seed alone decides what is sent.
(cd "$logs" && PYTHONPATH="$OLDPWD/scripts" SCHEMATHESIS_HOOKS=schemathesis_hooks timeout 1200 \
  "$venv/bin/schemathesis" --config-file "$OLDPWD/scripts/schemathesis.toml" run "$base/openapi.json" \
  --seed 20260127 \
  --max-examples 100 \
  --header "Authorization: Bearer $admin_key" \
  --generation-database none \
  --no-color) \
  || fail "schemathesis found failures (above)"
log "passed in $(($(date +%s) - started)) s"
