//! The invocation hot path under load and under a failing database: many concurrent calls,
//! cached function definitions, batched records, and retirement of old versions' containers.

use crate::support::{Proxy, TestApp, javascript, python, worker_config};
use common::Runtime;
use futures_util::future::join_all;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn two_hundred_concurrent_calls_of_mixed_functions_each_get_their_own_answer() {
    let mut app = TestApp::start().await;
    let mut config = worker_config(Runtime::Docker, &app.prefix.clone());
    config.concurrency = Some(16);
    app.add_worker(config).await;
    let names = ["mix_py_a", "mix_py_b", "mix_py_c", "mix_js_a", "mix_js_b"];
    for name in &names[..3] {
        let code =
            format!("def handler(event, context):\n    return {{'fn': '{name}', 'i': event['i']}}");
        app.create_function(python(name, &code)).await;
    }
    for name in &names[3..] {
        let code = format!("exports.handler = async (event) => ({{ fn: '{name}', i: event.i }});");
        app.create_function(javascript(name, &code)).await;
    }
    // One call each first, one at a time: the storm below then starts fewer containers at
    // once. On a loaded 2-core CI machine, 16 cold starts at the same moment beside the other
    // tests' containers once took a JavaScript init past its limit (Runtime.InitTimeout),
    // which is not what this test is about.
    for name in &names {
        let (status, body) = app.invoke("execute", name, json!({ "i": -1 })).await;
        assert_eq!(status, 200, "first call of {name}: {body}");
    }

    let calls = (0..200).map(|i| {
        let name = names[i % names.len()];
        let app = &app;
        async move {
            (
                name,
                i,
                app.invoke("execute", name, json!({ "i": i })).await,
            )
        }
    });
    for (name, i, (status, body)) in join_all(calls).await {
        assert_eq!(status, 200, "call {i} of {name}: {body}");
        assert_eq!(
            body["result"],
            json!({ "fn": name, "i": i }),
            "call {i} got another's answer"
        );
    }
    let (_, records) = app.get("/metrics/?limit=1000").await;
    assert_eq!(
        records.as_array().unwrap().len(),
        200 + names.len(),
        "every call is recorded"
    );
    app.stop().await;
}

#[tokio::test]
async fn known_functions_run_while_the_database_is_down_and_records_catch_up() {
    let target = "127.0.0.1:5432".parse().unwrap();
    let proxy = Proxy::start(target).await;
    let proxy_addr = proxy.addr;
    let mut app = TestApp::start_with(|config| {
        config.database_url = config
            .database_url
            .replace("127.0.0.1:5432", &proxy_addr.to_string());
    })
    .await;
    app.add_worker(worker_config(Runtime::Docker, &app.prefix.clone()))
        .await;
    app.create_function(python(
        "steady",
        "def handler(event, context):\n    return event['n']",
    ))
    .await;
    let (status, _) = app.invoke("execute", "steady", json!({"n": 0})).await;
    assert_eq!(status, 200);
    // An HTTP trigger too finds its route and function in memory.
    app.create_function(python(
        "steady_http",
        "def handler(event, context):\n    return {'path': event['rawPath']}",
    ))
    .await;
    let route_call = || async {
        let response = app
            .client
            .get(app.fn_url("/steady_http"))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    assert_eq!(route_call().await.0, 200);

    proxy.block();
    let (status, body) = route_call().await;
    assert_eq!((status, body.as_str()), (200, r#"{"path":"/steady_http"}"#));
    for n in 1..=5 {
        let started = Instant::now();
        let (status, body) = app.invoke("execute", "steady", json!({ "n": n })).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["result"], n);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "not held up by the database: {:?}",
            started.elapsed()
        );
    }
    // What needs the database says so.
    let (status, body) = app.get("/functions/").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "database_unavailable");
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(body["down"], json!(["database"]));

    proxy.unblock();
    let mut recorded = 0;
    for _ in 0..40 {
        let (status, records) = app.get("/metrics/?function=steady").await;
        if status == 200 {
            recorded = records.as_array().unwrap().len();
            if recorded == 6 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        recorded, 6,
        "the calls made during the outage are written once it is back"
    );
    app.stop().await;
}

fn container_exists(id: &str) -> bool {
    std::process::Command::new("docker")
        .args(["inspect", "--format", "{{.Id}}", id])
        .output()
        .expect("the docker CLI runs")
        .status
        .success()
}

/// Polls until container `id` is gone; false when it is still there after `limit`.
async fn removed_within(id: &str, limit: Duration) -> bool {
    let started = Instant::now();
    while container_exists(id) {
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

#[tokio::test]
async fn updating_or_deleting_a_function_retires_its_warm_containers() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    // Docker names a container's host after the container's id.
    let code = "import socket\ndef handler(event, context):\n    return socket.gethostname()";
    let function = app.create_function(python("retiring", code)).await;
    let (_, first) = app.invoke("execute", "retiring", json!({})).await;
    let v1_container = first["result"].as_str().unwrap().to_owned();
    assert!(container_exists(&v1_container));

    let (status, _) = app
        .put(
            &format!("/functions/{}", function["id"]),
            &python("retiring", &format!("{code}  # v2")),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        removed_within(&v1_container, Duration::from_secs(5)).await,
        "version 1's idle container is removed without waiting for a call"
    );

    let (_, second) = app.invoke("execute", "retiring", json!({})).await;
    assert_eq!(second["cold_start"], true);
    let v2_container = second["result"].as_str().unwrap().to_owned();
    let (status, _) = app.delete(&format!("/functions/{}", function["id"])).await;
    assert_eq!(status, 200);
    assert!(
        removed_within(&v2_container, Duration::from_secs(5)).await,
        "a deleted function's container is removed"
    );
    let (status, _) = app.invoke("execute", "retiring", json!({})).await;
    assert_eq!(status, 404, "the cache forgot the deleted function");
    app.stop().await;
}

#[tokio::test]
async fn an_update_through_one_api_replica_reaches_the_cache_of_another() {
    let mut app = TestApp::with_workers(&[Runtime::Docker]).await;
    let other = app.add_api_replica().await.base_url;
    let function = app
        .create_function(python(
            "shared",
            "def handler(event, context):\n    return 'v1'",
        ))
        .await;
    // (status, result) of a call through the other replica.
    let call_other = || async {
        let response = app
            .client
            .post(format!("{other}/execute/shared"))
            .json(&json!({"event": {}}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        (status, body["result"].clone())
    };
    // The other replica caches version 1.
    assert_eq!(call_other().await, (200, json!("v1")));

    let (status, _) = app
        .put(
            &format!("/functions/{}", function["id"]),
            &python("shared", "def handler(event, context):\n    return 'v2'"),
        )
        .await;
    assert_eq!(status, 200);
    let started = Instant::now();
    loop {
        if call_other().await == (200, json!("v2")) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the other replica still runs version 1"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "the other replica ran version 2 after {:?}",
        started.elapsed()
    );

    let (status, _) = app.delete(&format!("/functions/{}", function["id"])).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        call_other().await.0,
        404,
        "the other replica forgot the deleted function"
    );
    app.stop().await;
}
