#!/usr/bin/env bash
# The web console's pages with a big namespace (issue 23: "under 50 ms p50 with 1,000 functions
# and 1,000,000 records"), measured with the release api against the local Postgres and
# RabbitMQ, no worker needed:
#   1. a fresh database; the api on it; FUNCTIONS functions (default 1000) made through the api;
#   2. RECORDS invocation records (default 1,000,000) written in one statement, spread evenly
#      over the last 7 days and over the functions (10% errors, 5% cold starts, durations 1 to
#      ~500 ms), the rollups following by trigger; VACUUM ANALYZE;
#   3. a console session (the sign-in form, as a browser), then each page SAMPLES times
#      (default 50), one at a time: the functions list (first page and the 10th), a function's
#      page, its versions, its test tab, the overview for 1 h, 24 h and 7 d; the p50, p90 and
#      max of each, in ms, as a Markdown table.
# Usage: bench/console-pages.sh   (FUNCTIONS=, RECORDS=, SAMPLES= to change the sizes)
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[console-pages] %s %s\n' "$(date +%T)" "$*" >&2; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/faas-target-release}
FUNCTIONS=${FUNCTIONS:-1000}
RECORDS=${RECORDS:-1000000}
SAMPLES=${SAMPLES:-50}
admin=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
amqp=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
port=${CONSOLE_BENCH_PORT:-8011}
base=http://127.0.0.1:$port
key="console-bench-key-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
db="faas_console_bench_$$"

bash scripts/local-broker.sh
[ "${BENCH_SKIP_BUILD:-0}" = 1 ] || cargo build --release --locked -q -p api
logs=$(mktemp -d)
api_pid=
cleanup() {
  [ -z "$api_pid" ] || { kill -TERM "$api_pid" 2>/dev/null; wait "$api_pid" 2>/dev/null || true; }
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$logs"
}
trap cleanup EXIT

psql "$admin" -qc "CREATE DATABASE $db" >/dev/null
url="${admin%/*}/$db"
DATABASE_URL=$url AMQP_URL=$amqp QUEUE_PREFIX="console-bench-$$." RUST_LOG=warn ADMIN_KEY=$key \
  API_ADDR=127.0.0.1:$port FUNCTIONS_ADDR=127.0.0.1:0 METRICS_ADDR=127.0.0.1:0 \
  QUOTA_FUNCTIONS=20000 "$CARGO_TARGET_DIR/release/api" >"$logs/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 1 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "$base/readyz" >/dev/null || { tail "$logs/api.log" >&2; exit 1; }

log "making $FUNCTIONS functions through the api"
python3 - "$base" "$key" "$FUNCTIONS" <<'PY'
import concurrent.futures, http.client, json, sys, urllib.parse
base, key, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
url = urllib.parse.urlsplit(base)
code = "def handler(event, context):\n    print('hello')\n    return {'ok': True}\n"
def create(i):
    body = json.dumps({"name": f"fn-{i:04}", "language": "python", "code": code,
                       "route": f"/bench/{i}", "timeout": 10})
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    conn.request("POST", "/functions/", body,
                 {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    response = conn.getresponse()
    text = response.read()
    conn.close()
    if response.status != 201:
        sys.exit(f"create {i}: {response.status} {text[:200]!r}")
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    list(pool.map(create, range(count)))
PY

log "writing $RECORDS records over the last 7 days"
started=$(date +%s.%N)
psql "$url" -q -v ON_ERROR_STOP=1 <<SQL
INSERT INTO invocations (id, function_id, function_name, function_version, runtime, status,
    cold_start, duration_ms, created_at, namespace, trigger, logs)
SELECT gen_random_uuid(), f.id, f.name, 1, 'docker',
       CASE WHEN g % 10 = 0 THEN 'error' ELSE 'success' END, g % 20 = 0,
       1 + (g::bigint * 7919 % 500)::float8 * (1 + (g % 3)),
       now() - make_interval(secs => (g::float8 / $RECORDS) * 7 * 86400),
       'default', 'execute', 'hello'
FROM generate_series(1, $RECORDS) AS g
JOIN (SELECT id, name, row_number() OVER (ORDER BY id) - 1 AS n FROM functions) f
  ON f.n = g % $FUNCTIONS;
VACUUM ANALYZE invocations;
VACUUM ANALYZE invocation_rollups;
SQL
log "written in $(python3 -c "import time; print(round(time.time() - $started, 1))") s; rollup rows: $(psql "$url" -tAc 'SELECT count(*) FROM invocation_rollups')"

python3 - "$base" "$key" "$SAMPLES" <<'PY'
import http.client, re, statistics, sys, time, urllib.parse
base, key, samples = sys.argv[1], sys.argv[2], int(sys.argv[3])
url = urllib.parse.urlsplit(base)
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
def request(method, path, body=None, cookie=None):
    headers = {}
    if cookie:
        headers["Cookie"] = f"faas_console={cookie}"
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body, headers)
    response = conn.getresponse()
    return response.status, response.getheader("Set-Cookie") or "", response.read().decode()
def cookie_of(header):
    return re.search(r"faas_console=([^;]*)", header).group(1)
status, set_cookie, html = request("GET", "/console/sign-in")
form = cookie_of(set_cookie)
csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
body = urllib.parse.urlencode({"key": key, "csrf": csrf, "next": "/console/functions"})
status, set_cookie, _ = request("POST", "/console/sign-in", body, form)
assert status == 303, status
session = cookie_of(set_cookie)
status, _, html = request("GET", "/console/functions", cookie=session)
assert status == 200, status
fid = re.search(r'href="/console/functions/(\d+)"', html).group(1)
pages = [
    ("functions list, page 1 (50 functions)", "/console/functions"),
    ("functions list, page 10", "/console/functions?page=10"),
    ("a function: code and its 50 latest calls", f"/console/functions/{fid}"),
    ("a function's versions", f"/console/functions/{fid}/versions"),
    ("a function's test tab", f"/console/functions/{fid}/test"),
    ("overview, 1 h", "/console/overview?range=1h"),
    ("overview, 24 h", "/console/overview?range=24h"),
    ("overview, 7 d", "/console/overview?range=7d"),
]
print("| page | p50 ms | p90 ms | max ms |")
print("| --- | ---: | ---: | ---: |")
for title, path in pages:
    times = []
    for _ in range(samples):
        began = time.perf_counter()
        status, _, html = request("GET", path, cookie=session)
        times.append((time.perf_counter() - began) * 1000)
        assert status == 200, (path, status, html[:300])
    times.sort()
    p90 = times[int(len(times) * 0.9) - 1]
    print(f"| {title} | {statistics.median(times):.1f} | {p90:.1f} | {times[-1]:.1f} |")
PY
