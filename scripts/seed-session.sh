#!/usr/bin/env bash
# Runs the seed README's curl session, as written, against the real binaries: the api on
# port 8000, one docker worker and one gvisor worker, started as the README says, on a fresh
# database and queue prefix. Fails unless every answer is the one the seed promises.
#
# The seed's session sends no key, so that api runs with AUTH=disabled. Then the same session
# runs keyed, against a second api on port 8001 with auth on (the default) and an ADMIN_KEY,
# sharing the database and queues: unauthenticated it gets 401, with the key the seed's answers.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[seed] %s\n' "$*" >&2; }

source scripts/lib/real-binaries.sh
real_binaries seed

AUTH=disabled FUNCTIONS_ADDR=127.0.0.1:18100 "$bin/api" >"$logs/api.log" 2>&1 & pids+=($!)
start_workers seed 19101 19102
# A timeout shows as the first check's failure, with the logs.
wait_for_api http://localhost:8000 || true
wait_for_workers

passed=0
expect() { # name, output, fixed string it must contain
  grep -qF -- "$3" <<<"$2" || fail "$1: expected $3 in: $2"
  log "ok: $1"
  passed=$((passed + 1))
}

# The seed README's session, as written:
created=$(    curl -X POST -H "Content-Type: application/json" -d \
    '{
        "name": "test_curl_func",
        "route": "/curl_test",
        "language": "python",
        "code": "def handler(event, context):\n    return {\"message\": \"Hello from curl\"}",
        "timeout": 5
    }' http://localhost:8000/functions/ 2>/dev/null)
expect "create" "$created" '"name":"test_curl_func"'

docker_run=$(    curl -X POST -H "Content-Type: application/json" -d \
    '{"event": {}}' http://localhost:8000/execute/test_curl_func 2>/dev/null)
expect "execute (Docker)" "$docker_run" '"result":{"message":"Hello from curl"}'

gvisor_run=$(    curl -X POST -H "Content-Type: application/json" -d \
    '{"event": {}}' http://localhost:8000/execute_gvisor/test_curl_func 2>/dev/null)
expect "execute (gVisor)" "$gvisor_run" '"result":{"message":"Hello from curl"}'

metrics=$(    curl http://localhost:8000/metrics/ 2>/dev/null)
expect "metrics lists the gVisor call" "$metrics" '"runtime":"gvisor"'
expect "metrics lists the Docker call" "$metrics" '"runtime":"docker"'
[ "$(grep -o '"invocation_id"' <<<"$metrics" | wc -l)" = 2 ] || fail "metrics: expected 2 records: $metrics"
passed=$((passed + 1))
log "the seed session gives the promised answers on Docker and gVisor"

# The keyed variant.
admin_key="seed-admin-key-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
AUTH=enabled ADMIN_KEY=$admin_key API_ADDR=0.0.0.0:8001 METRICS_ADDR=127.0.0.1:19100 FUNCTIONS_ADDR=127.0.0.1:18101 \
  "$bin/api" >"$logs/api-keyed.log" 2>&1 & pids+=($!)
wait_for_api http://localhost:8001 || true
auth=(-H "Authorization: Bearer $admin_key")
unkeyed=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Content-Type: application/json" -d \
    '{"event": {}}' http://localhost:8001/execute/test_curl_func)
expect "no key: 401" "$unkeyed" "401"
created=$(    curl -X POST "${auth[@]}" -H "Content-Type: application/json" -d \
    '{
        "name": "test_keyed_func",
        "route": "/keyed_test",
        "language": "python",
        "code": "def handler(event, context):\n    return {\"message\": \"Hello from curl\"}",
        "timeout": 5
    }' http://localhost:8001/functions/ 2>/dev/null)
expect "create (keyed)" "$created" '"name":"test_keyed_func"'
docker_run=$(    curl -X POST "${auth[@]}" -H "Content-Type: application/json" -d \
    '{"event": {}}' http://localhost:8001/execute/test_keyed_func 2>/dev/null)
expect "execute (Docker, keyed)" "$docker_run" '"result":{"message":"Hello from curl"}'
gvisor_run=$(    curl -X POST "${auth[@]}" -H "Content-Type: application/json" -d \
    '{"event": {}}' http://localhost:8001/execute_gvisor/test_keyed_func 2>/dev/null)
expect "execute (gVisor, keyed)" "$gvisor_run" '"result":{"message":"Hello from curl"}'
metrics=$(    curl "${auth[@]}" http://localhost:8001/metrics/?function=test_keyed_func 2>/dev/null)
expect "metrics (keyed) lists the gVisor call" "$metrics" '"runtime":"gvisor"'
expect "metrics (keyed) lists the Docker call" "$metrics" '"runtime":"docker"'
log "the keyed session gives the same answers, and none without the key"

# The README's HTTP trigger example (examples/webhook), in both languages: a signed delivery is
# taken (202), a forged one refused (401).
for language in python javascript; do
  hook=$(API=http://localhost:8001 FUNCTIONS=http://127.0.0.1:18101 KEY=$admin_key bash examples/webhook/deploy.sh "$language" 2>&1)
  expect "webhook ($language) created" "$hook" "\"route\":\"/hooks/webhook-$language\""
  expect "webhook ($language) takes a signed delivery" "$hook" '{"received":"issues","action":"opened"} 202'
  expect "webhook ($language) refuses a forged one" "$hook" '{"error":"bad signature"} 401'
done
echo "seed: $passed passed, 0 failed"
