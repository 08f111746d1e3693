#!/usr/bin/env python3
"""Calls and checks for scripts/swarm-test.sh, against the api replicas of a swarm.

  swarm_load.py setup                 makes the test's functions (idempotent)
  swarm_load.py load --calls N        N sync calls (both runtimes, every function), then a
                                      JSON summary on stdout
  swarm_load.py load --seconds S      calls until S seconds have passed, sync and async mixed
  swarm_load.py nodes FILE            which node and runtime served each call of a summary
  swarm_load.py settle FILE           waits until every accepted async call of a summary is
                                      terminal, and says how each ended
  swarm_load.py records FILE          the records of a summary's calls not answered cleanly

APIS (comma-separated base URLs) are tried in turn, as a load balancer in front of the nodes
would: a call goes to the next api when one refuses the connection (its replica is gone), and
only then. KEY is the admin key. Standard library only.
"""

import argparse
import concurrent.futures
import http.client
import itertools
import json
import os
import sys
import threading
import time
import urllib.parse

FUNCTIONS = 10
PY = "import time\ndef handler(event, context):\n    time.sleep(event.get('sleep', 0))\n    return {'n': event.get('n')}\n"
JS = "exports.handler = async (event) => {\n  await new Promise((r) => setTimeout(r, (event.sleep || 0) * 1000));\n  return { n: event.n };\n};\n"
TERMINAL = {"succeeded", "dead_lettered"}


def function_name(i):
    return f"swarm-f{i}"


class Apis:
    """The api replicas, with a failover on refused connections."""

    def __init__(self, urls, key):
        self.urls = [urllib.parse.urlsplit(u) for u in urls.split(",")]
        self.key = key
        self.turn = itertools.count()
        self.failovers = 0
        self.lock = threading.Lock()

    def request(self, method, path, body=None, timeout=60):
        start = next(self.turn)
        last_error = None
        for k in range(len(self.urls)):
            url = self.urls[(start + k) % len(self.urls)]
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
            try:
                try:
                    conn.connect()
                except (ConnectionRefusedError, OSError) as error:
                    last_error = error
                    with self.lock:
                        self.failovers += 1
                    continue
                headers = {"Authorization": f"Bearer {self.key}"}
                data = None
                if body is not None:
                    data = json.dumps(body).encode()
                    headers["Content-Type"] = "application/json"
                conn.request(method, path, body=data, headers=headers)
                response = conn.getresponse()
                raw = response.read()
                try:
                    parsed = json.loads(raw) if raw else None
                except ValueError:
                    parsed = {"unparsed": raw[:200].decode("utf-8", "replace")}
                return response.status, parsed
            finally:
                conn.close()
        raise ConnectionError(f"no api accepted the connection: {last_error}")


def setup(apis):
    for i in range(FUNCTIONS):
        js = i % 2 == 1
        body = {
            "name": function_name(i),
            "route": f"/{function_name(i)}",
            "language": "javascript" if js else "python",
            "code": JS if js else PY,
            "timeout": 30,
        }
        status, answer = apis.request("POST", "/functions/", body)
        if status not in (201, 409):
            sys.exit(f"create {body['name']}: {status} {answer}")


def one_call(apis, i, sleep, async_call):
    name = function_name(i % FUNCTIONS)
    endpoint = ("execute_async" if async_call else ("execute" if i % 4 < 2 else "execute_gvisor"))
    runtime = "gvisor" if endpoint == "execute_gvisor" else "docker"
    try:
        status, answer = apis.request("POST", f"/{endpoint}/{name}", {"event": {"n": i, "sleep": sleep}})
    except (ConnectionError, OSError, http.client.HTTPException) as error:
        return {"i": i, "endpoint": endpoint, "status": None, "error": f"{type(error).__name__}: {error}"}
    answer = answer if isinstance(answer, dict) else {}
    call = {"i": i, "endpoint": endpoint, "runtime": runtime, "status": status,
            "invocation_id": answer.get("invocation_id"), "code": answer.get("code")}
    if status == 200 and not async_call and (answer.get("result") or {}).get("n") != i:
        call["error"] = f"wrong result {answer.get('result')}"
    return call


def load(apis, args):
    deadline = time.monotonic() + args.seconds if args.seconds else None
    counter = itertools.count()
    calls, lock = [], threading.Lock()

    def runner():
        while True:
            i = next(counter)
            if deadline is None and i >= args.calls:
                return
            if deadline is not None and time.monotonic() > deadline:
                return
            async_call = args.async_every > 0 and i % args.async_every == args.async_every - 1
            call = one_call(apis, i, args.sleep, async_call)
            with lock:
                calls.append(call)

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
        for _ in range(args.concurrency):
            pool.submit(runner)
    elapsed = time.monotonic() - started
    statuses = {}
    for call in calls:
        key = str(call["status"]) + (f" {call['code']}" if call.get("code") else "")
        statuses[key] = statuses.get(key, 0) + 1
    summary = {
        "calls": len(calls), "seconds": round(elapsed, 1), "statuses": statuses,
        "failovers": apis.failovers,
        "unclean": [c for c in calls if not clean(c)],
        "calls_list": calls,
    }
    json.dump(summary, sys.stdout)


def clean(call):
    """Answered: 200/202, or a 502/503 that says why in a code."""
    if call.get("error"):
        return False
    if call["status"] in (200, 202):
        return True
    return call["status"] in (502, 503) and bool(call.get("code"))


def record(apis, invocation_id):
    for _ in range(100):
        status, answer = apis.request("GET", f"/invocations/{invocation_id}")
        if status == 200 and answer.get("attempts"):
            return answer
        time.sleep(0.2)
    return None


def nodes(apis, args):
    summary = json.load(open(args.file))
    served = {}
    missing = 0
    ids = [(c["invocation_id"], c["runtime"]) for c in summary["calls_list"]
           if c["status"] == 200 and c.get("invocation_id")]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        records = list(pool.map(lambda pair: (pair[1], record(apis, pair[0])), ids))
    for runtime, rec in records:
        if rec is None:
            missing += 1
            continue
        worker = rec["attempts"][-1].get("worker_id") or "?"
        # WORKER_ID is "{node hostname}/{task id}" in the stack.
        node = worker.split("/")[0]
        served.setdefault(node, {}).setdefault(runtime, 0)
        served[node][runtime] += 1
    json.dump({"served": served, "missing_records": missing}, sys.stdout)


def settle(apis, args):
    summary = json.load(open(args.file))
    pending = {c["invocation_id"] for c in summary["calls_list"] if c["status"] == 202}
    accepted = len(pending)
    outcomes = {}
    deadline = time.monotonic() + args.timeout
    while pending and time.monotonic() < deadline:
        for invocation_id in list(pending):
            status, answer = apis.request("GET", f"/invocations/{invocation_id}")
            if status == 200 and answer.get("status") in TERMINAL:
                outcomes[answer["status"]] = outcomes.get(answer["status"], 0) + 1
                pending.discard(invocation_id)
        if pending:
            time.sleep(1)
    json.dump({"accepted": accepted, "outcomes": outcomes, "not_terminal": sorted(pending)}, sys.stdout)


def records(apis, args):
    """The stored record of each call of a summary that was not answered cleanly."""
    summary = json.load(open(args.file))
    for call in summary["unclean"]:
        invocation_id = call.get("invocation_id")
        if invocation_id:
            status, answer = apis.request("GET", f"/invocations/{invocation_id}")
            print(json.dumps({"call": call, "record_status": status, "record": answer}))
        else:
            print(json.dumps({"call": call}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["setup", "load", "nodes", "settle", "records"])
    parser.add_argument("file", nargs="?")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds each call runs")
    parser.add_argument("--async-every", type=int, default=0, help="every Nth call is async")
    parser.add_argument("--timeout", type=float, default=180)
    args = parser.parse_args()
    apis = Apis(os.environ["APIS"], os.environ["KEY"])
    {"setup": lambda: setup(apis), "load": lambda: load(apis, args),
     "nodes": lambda: nodes(apis, args), "settle": lambda: settle(apis, args),
     "records": lambda: records(apis, args)}[args.command]()


if __name__ == "__main__":
    main()
