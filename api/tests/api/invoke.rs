//! Invocations end to end: the real api, real workers (Docker and gVisor) and real containers.

use crate::support::{TestApp, javascript, python, seed_function};
use common::Runtime;
use serde_json::{Value, json};

const BOTH: [(&str, Runtime); 2] = [
    ("execute", Runtime::Docker),
    ("execute_gvisor", Runtime::Gvisor),
];

#[tokio::test]
async fn seed_function_runs_on_docker_and_gvisor_and_is_recorded() {
    let app = TestApp::with_workers(&[Runtime::Docker, Runtime::Gvisor]).await;
    app.create_function(seed_function("exec_test")).await;

    for (endpoint, runtime) in BOTH {
        let (status, body) = app
            .invoke(endpoint, "exec_test", json!({"name": "Test"}))
            .await;
        assert_eq!(status, 200, "{endpoint}: {body}");
        assert_eq!(
            body["result"],
            json!({"message": "Hello, Test"}),
            "{endpoint}"
        );
        assert_eq!(
            body["cold_start"], true,
            "{endpoint}: first call of a version is cold"
        );
        assert!(body["invocation_id"].is_string());
        assert!(body["duration_ms"].as_f64().unwrap() > 0.0);
        assert!(body["timing"]["init_ms"].as_f64().unwrap() > 0.0, "{body}");
        assert!(body["timing"]["run_ms"].as_f64().unwrap() > 0.0, "{body}");
        assert!(
            body["timing"]["queue_ms"].as_f64().unwrap() >= 0.0,
            "{body}"
        );

        // The same version again: served by the warm container.
        let (status, body) = app.invoke(endpoint, "exec_test", json!({})).await;
        assert_eq!(status, 200, "{endpoint}: {body}");
        assert_eq!(body["result"], json!({"message": "Hello, World"}));
        assert_eq!(
            body["cold_start"], false,
            "{endpoint}: second call reuses the container"
        );
        let _ = runtime;
    }

    // A missing body and a body without "event" both mean an empty event.
    let response = app
        .client
        .post(app.url("/execute/exec_test"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"], json!({"message": "Hello, World"}));

    let (status, records) = app.get("/metrics/").await;
    assert_eq!(status, 200);
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 5, "{records:?}");
    let runtimes: Vec<&str> = records
        .iter()
        .map(|r| r["runtime"].as_str().unwrap())
        .collect();
    assert_eq!(
        runtimes,
        ["docker", "gvisor", "gvisor", "docker", "docker"],
        "newest first"
    );
    for record in records {
        assert_eq!(record["status"], "success");
        assert_eq!(record["function_name"], "exec_test");
        assert!(
            record["worker_id"]
                .as_str()
                .unwrap()
                .starts_with(&app.prefix)
        );
    }
    assert_eq!(records[4]["cold_start"], true);
    assert!(records[4]["init_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(records[3]["cold_start"], false);
    assert_eq!(records[3]["init_ms"].as_f64().unwrap(), 0.0);

    let (_, filtered) = app.get("/metrics/?function=nope&limit=10").await;
    assert_eq!(filtered, json!([]));
    let (_, limited) = app.get("/metrics/?function=exec_test&limit=2").await;
    assert_eq!(limited.as_array().unwrap().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn python_and_javascript_handlers_get_event_and_context_and_return_logs() {
    let app = TestApp::with_workers(&[Runtime::Docker, Runtime::Gvisor]).await;
    app.create_function(python(
        "py_sync",
        "import os\ndef handler(event, context):\n    print('to stdout')\n    os.write(1, b'raw fd write\\n')\n    return {'doubled': event['n'] * 2, 'name': context.function_name, 'version': context.function_version, 'left': context.get_remaining_time_in_millis() > 0}",
    ))
    .await;
    app.create_function(python(
        "py_async",
        "import asyncio\nasync def handler(event, context):\n    await asyncio.sleep(0.01)\n    return [event['n'], context.invocation_id]",
    ))
    .await;
    app.create_function(javascript(
        "js_sync",
        "function handler(event, context) {\n  console.log('from js');\n  process.stdout.write('raw write\\n');\n  return { doubled: event.n * 2, name: context.functionName };\n}",
    ))
    .await;
    app.create_function(javascript(
        "js_async",
        "module.exports.handler = async (event, context) => { await new Promise(r => setTimeout(r, 10)); return [event.n, context.invocationId]; };",
    ))
    .await;

    for (endpoint, _) in BOTH {
        let (status, body) = app.invoke(endpoint, "py_sync", json!({"n": 21})).await;
        assert_eq!(status, 200, "{endpoint}: {body}");
        assert_eq!(
            body["result"],
            // A string, as AWS's Python runtime has it.
            json!({"doubled": 42, "name": "py_sync", "version": "1", "left": true})
        );
        assert_eq!(body["logs"], "to stdout\nraw fd write\n");

        let (status, body) = app.invoke(endpoint, "py_async", json!({"n": 1})).await;
        assert_eq!(status, 200, "{endpoint}: {body}");
        assert_eq!(body["result"], json!([1, body["invocation_id"]]));

        let (status, body) = app.invoke(endpoint, "js_sync", json!({"n": 4})).await;
        assert_eq!(status, 200, "{endpoint}: {body}");
        assert_eq!(body["result"], json!({"doubled": 8, "name": "js_sync"}));
        assert_eq!(body["logs"], "from js\nraw write\n");

        let (status, body) = app.invoke(endpoint, "js_async", json!({"n": 2})).await;
        assert_eq!(status, 200, "{endpoint}: {body}");
        assert_eq!(body["result"], json!([2, body["invocation_id"]]));
    }
    app.stop().await;
}

#[tokio::test]
async fn failures_map_to_502_504_404_with_error_details() {
    let app = TestApp::with_workers(&[Runtime::Docker, Runtime::Gvisor]).await;
    app.create_function(python(
        "raises",
        "def handler(event, context):\n    print('before')\n    raise ValueError('bad input')",
    ))
    .await;
    app.create_function(javascript(
        "js_throws",
        "exports.handler = async () => { throw new TypeError('no way'); };",
    ))
    .await;
    app.create_function(python(
        "syntax",
        "def handler(event, context)\n    return 1",
    ))
    .await;
    app.create_function(python(
        "no_handler",
        "def main(event, context):\n    return 1",
    ))
    .await;
    app.create_function(python(
        "dies",
        "import os\ndef handler(event, context):\n    os._exit(7)",
    ))
    .await;
    let mut hog = python(
        "hog",
        "def handler(event, context):\n    blob = b'x' * (400 * 1024 * 1024)\n    return len(blob)",
    );
    hog["memory_mb"] = json!(128);
    // The OOM kill is what is tested, not its speed: on a loaded CI machine reclaim before it
    // once took over 5 s.
    hog["timeout"] = json!(30);
    app.create_function(hog).await;
    let mut sleeper = python(
        "sleeper",
        "import time\ndef handler(event, context):\n    time.sleep(30)",
    );
    sleeper["timeout"] = json!(1);
    app.create_function(sleeper).await;

    for (endpoint, _) in BOTH {
        let (status, body) = app.invoke(endpoint, "raises", json!({})).await;
        assert_eq!(status, 502, "{endpoint}: {body}");
        assert_eq!(body["code"], "function_error");
        assert_eq!(body["error"]["type"], "ValueError");
        assert_eq!(body["error"]["message"], "bad input");
        assert!(
            body["error"]["stack"].as_str().unwrap().contains("line 3"),
            "{body}"
        );
        assert_eq!(body["logs"], "before\n");
        assert!(body["invocation_id"].is_string());

        let (status, body) = app.invoke(endpoint, "js_throws", json!({})).await;
        assert_eq!(status, 502, "{endpoint}: {body}");
        assert_eq!(body["error"]["type"], "TypeError");
        assert_eq!(body["error"]["message"], "no way");

        let (status, body) = app.invoke(endpoint, "syntax", json!({})).await;
        assert_eq!(status, 502, "{endpoint}: {body}");
        assert_eq!(body["code"], "init_error");
        assert_eq!(body["error"]["type"], "SyntaxError");

        let (status, body) = app.invoke(endpoint, "no_handler", json!({})).await;
        assert_eq!(status, 502, "{endpoint}: {body}");
        assert_eq!(body["code"], "init_error");

        let (status, body) = app.invoke(endpoint, "dies", json!({})).await;
        assert_eq!(status, 502, "{endpoint}: {body}");
        assert_eq!(body["code"], "function_crashed");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("code 7"),
            "{body}"
        );

        let (status, body) = app.invoke(endpoint, "hog", json!({})).await;
        assert_eq!(status, 502, "{endpoint}: {body}");
        assert_eq!(body["code"], "out_of_memory", "{endpoint}: {body}");
        assert_eq!(body["error"]["type"], "Runtime.OutOfMemory");

        let started = std::time::Instant::now();
        let (status, body) = app.invoke(endpoint, "sleeper", json!({})).await;
        let waited = started.elapsed();
        assert_eq!(status, 504, "{endpoint}: {body}");
        assert_eq!(body["code"], "function_timeout");
        assert!(body["invocation_id"].is_string());
        // Answered after the 1 s timeout, long before the handler's 30 s sleep would end.
        assert!(waited >= std::time::Duration::from_secs(1), "{waited:?}");
        assert!(waited < std::time::Duration::from_secs(15), "{waited:?}");
    }

    // After all that, the same workers still serve.
    app.create_function(seed_function("after")).await;
    for (endpoint, _) in BOTH {
        let (status, body) = app
            .invoke(endpoint, "after", json!({"name": "again"}))
            .await;
        assert_eq!(status, 200, "{endpoint}: {body}");
    }

    let (status, body) = app.invoke("execute", "missing", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "function_not_found");
    let (status, _) = app.invoke("execute_gvisor", "missing", json!({})).await;
    assert_eq!(status, 404);

    let (_, records) = app.get("/metrics/?function=hog").await;
    let statuses: Vec<&str> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["oom", "oom"]);
    let (_, records) = app.get("/metrics/?function=sleeper").await;
    assert_eq!(records[0]["status"], "timeout");
    app.stop().await;
}

#[tokio::test]
async fn no_worker_of_the_runtime_is_503_at_once() {
    // Only a Docker worker: gVisor calls have nobody to run them.
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    let mut slow = seed_function("needs_gvisor");
    slow["timeout"] = json!(60);
    app.create_function(slow).await;

    let started = std::time::Instant::now();
    let (status, body) = app
        .invoke("execute_gvisor", "needs_gvisor", json!({}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "no_worker");
    assert!(
        body["detail"].as_str().unwrap().contains("gvisor"),
        "{body}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "answered at once, not after the timeout"
    );

    // A function created for gVisor never falls back to plain Docker.
    let mut sandboxed = seed_function("sandboxed");
    sandboxed["runtime"] = json!("gvisor");
    app.create_function(sandboxed).await;
    let (status, _) = app.invoke("execute", "sandboxed", json!({})).await;
    assert_eq!(status, 503);

    let (status, body) = app.invoke("execute", "needs_gvisor", json!({})).await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn oversized_or_malformed_events_are_refused_before_running() {
    let app = TestApp::start_with(|config| config.max_event_bytes = 64 * 1024).await;
    app.create_function(seed_function("small")).await;
    let big = "x".repeat(100 * 1024);
    let (status, body) = app.invoke("execute", "small", json!({ "blob": big })).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "payload_too_large");

    let response = app
        .client
        .post(app.url("/execute/small"))
        .header("content-type", "application/json")
        .body("{\"event\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);

    let (_, records) = app.get("/metrics/").await;
    assert_eq!(records, json!([]), "nothing ran");
    app.stop().await;
}

#[tokio::test]
async fn containers_are_reused_per_version_never_across_versions_or_functions() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    // The handler reports a value kept in the process: it tells one container from another.
    let counter = "import uuid\nSELF = str(uuid.uuid4())\nCALLS = 0\ndef handler(event, context):\n    global CALLS\n    CALLS += 1\n    return {'container': SELF, 'calls': CALLS, 'tag': 'v1'}";
    let first = app.create_function(python("counter", counter)).await;
    app.create_function(python("another", counter)).await;

    let (_, a) = app.invoke("execute", "counter", json!({})).await;
    let (_, b) = app.invoke("execute", "counter", json!({})).await;
    assert_eq!(
        a["result"]["container"], b["result"]["container"],
        "warm reuse"
    );
    assert_eq!(b["result"]["calls"], 2);

    let (_, other) = app.invoke("execute", "another", json!({})).await;
    assert_ne!(
        other["result"]["container"], a["result"]["container"],
        "never across functions"
    );
    assert_eq!(other["cold_start"], true);

    let mut v2 = python("counter", &counter.replace("'v1'", "'v2'"));
    v2["timeout"] = json!(5);
    let (status, updated) = app.put(&format!("/functions/{}", first["id"]), &v2).await;
    assert_eq!(status, 200);
    assert_eq!(updated["version"], 2);
    let (_, c) = app.invoke("execute", "counter", json!({})).await;
    assert_eq!(c["result"]["tag"], "v2", "the new version runs at once");
    assert_eq!(c["cold_start"], true);
    assert_ne!(
        c["result"]["container"], a["result"]["container"],
        "never across versions"
    );
    app.stop().await;
}
