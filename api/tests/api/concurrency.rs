//! Per-function `max_concurrency`, held for the whole cluster through leases in Postgres: calls
//! over it through any api replica get 429 `concurrency_limit` with `Retry-After`.

use crate::support::{TestApp, python, seed_function, worker_config};
use common::Runtime;
use futures_util::future::join_all;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn max_concurrency_is_validated_and_round_trips() {
    let app = TestApp::start().await;
    let with = |limit: Value| {
        let mut body = seed_function("limited");
        body["max_concurrency"] = limit;
        body
    };
    for bad in [json!(0), json!(1001), json!(-1), json!("2"), json!(1.5)] {
        let (status, body) = app.post("/functions/", &with(bad.clone())).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["code"], "invalid_request");
    }
    let plain = app.create_function(seed_function("unlimited")).await;
    assert_eq!(
        plain["max_concurrency"],
        Value::Null,
        "present and null: {plain}"
    );

    let created = app.create_function(with(json!(1000))).await;
    assert_eq!(created["max_concurrency"], 1000);
    let id = created["id"].as_i64().unwrap();
    let (_, fetched) = app.get(&format!("/functions/{id}")).await;
    assert_eq!(fetched["max_concurrency"], 1000);
    let (_, listed) = app.get("/functions/").await;
    assert_eq!(listed[1]["max_concurrency"], 1000);

    let (status, updated) = app.put(&format!("/functions/{id}"), &with(json!(1))).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["max_concurrency"], 1);
    let (status, _) = app.put(&format!("/functions/{id}"), &with(json!(0))).await;
    assert_eq!(status, 422);
    let (status, updated) = app
        .put(&format!("/functions/{id}"), &with(Value::Null))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        updated["max_concurrency"],
        Value::Null,
        "null lifts the limit"
    );
    app.stop().await;
}

#[tokio::test]
async fn calls_over_max_concurrency_through_two_replicas_get_429() {
    let mut app = TestApp::start().await;
    // Its default concurrency (4) is room enough: only the two calls within the limit reach it.
    app.add_worker(worker_config(Runtime::Docker, &app.prefix.clone()))
        .await;
    let replica = app.add_api_replica().await.base_url;
    let mut function = python(
        "capped",
        "import time\ndef handler(event, context):\n    time.sleep(2)\n    return 'done'",
    );
    function["max_concurrency"] = json!(2);
    app.create_function(function).await;

    let calls = (0..6).map(|i| {
        let base = if i % 2 == 0 {
            app.base_url.clone()
        } else {
            replica.clone()
        };
        let client = app.client.clone();
        async move {
            let response = client
                .post(format!("{base}/execute/capped"))
                .json(&json!({"event": {}}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap();
            (status, retry_after, body)
        }
    });
    let outcomes = join_all(calls).await;
    let served = outcomes
        .iter()
        .filter(|(status, _, _)| *status == 200)
        .count();
    let limited: Vec<_> = outcomes
        .iter()
        .filter(|(status, _, _)| *status == 429)
        .collect();
    assert_eq!(served, 2, "{outcomes:?}");
    assert_eq!(limited.len(), 4, "{outcomes:?}");
    for (_, retry_after, body) in limited {
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert_eq!(body["code"], "concurrency_limit", "{body}");
    }

    // The leases are given back just after the answers, off their path.
    let mut status = 0;
    for _ in 0..20 {
        status = app.invoke("execute", "capped", json!({})).await.0;
        if status != 429 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "a call after them is served");
    app.stop().await;
}
