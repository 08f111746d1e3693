//! The function cache across api replicas: a name cached as missing is found right after
//! another replica creates it, a missing name costs no query while it is cached, and a replica
//! that lost its broker connection (and so the change events) never keeps a stale definition.

use crate::support::{Proxy, TestApp, python, worker_config};
use common::Runtime;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn call(app: &TestApp, base_url: &str, name: &str) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{base_url}/execute/{name}"))
        .json(&json!({"event": {}}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_name_unknown_to_one_replica_is_found_there_right_after_another_creates_it() {
    let mut app = TestApp::start().await;
    app.add_worker(worker_config(Runtime::Docker, &app.prefix.clone()))
        .await;
    let replica = app.add_api_replica().await.base_url;

    let (status, body) = call(&app, &replica, "late_comer").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "function_not_found");

    app.create_function(python(
        "late_comer",
        "def handler(event, context):\n    return 'here'",
    ))
    .await;
    // The create's event reaches the replica within milliseconds; the miss would otherwise be
    // remembered for 5 s.
    let created = Instant::now();
    let mut answer = call(&app, &replica, "late_comer").await;
    while answer.0 == 404 && created.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        answer = call(&app, &replica, "late_comer").await;
    }
    assert_eq!(
        answer.0, 200,
        "found within 1 s of its creation: {}",
        answer.1
    );
    assert_eq!(answer.1["result"], "here");
    app.stop().await;
}

#[tokio::test]
async fn a_missing_name_is_answered_from_the_cache_without_the_database() {
    let target = "127.0.0.1:5432".parse().unwrap();
    let proxy = Proxy::start(target).await;
    let proxy_addr = proxy.addr;
    let app = TestApp::start_with(|config| {
        config.database_url = config
            .database_url
            .replace("127.0.0.1:5432", &proxy_addr.to_string());
    })
    .await;
    let (status, _) = app.invoke("execute", "nobody", json!({})).await;
    assert_eq!(status, 404);
    proxy.block();
    for _ in 0..20 {
        let (status, body) = app.invoke("execute", "nobody", json!({})).await;
        assert_eq!(status, 404, "answered without Postgres: {body}");
    }
    // Another unknown name needs the database, which is away.
    let (status, body) = app.invoke("execute", "someone_else", json!({})).await;
    assert_eq!(status, 503, "{body}");
    proxy.unblock();
    app.stop().await;
}

#[tokio::test]
async fn a_replica_that_was_cut_from_the_broker_runs_the_version_updated_meanwhile() {
    let mut app = TestApp::start().await;
    app.add_worker(worker_config(Runtime::Docker, &app.prefix.clone()))
        .await;
    // Replica B reaches RabbitMQ through a proxy that the test can cut.
    let broker = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let broker_addr = broker.addr;
    let replica = app
        .add_api_replica_with(|config| {
            config.broker.amqp_url = config
                .broker
                .amqp_url
                .replace("127.0.0.1:5672", &broker_addr.to_string());
        })
        .await
        .base_url;
    let created = app
        .create_function(python(
            "versioned",
            "def handler(event, context):\n    return 'v1'",
        ))
        .await;
    let (status, body) = call(&app, &replica, "versioned").await;
    assert_eq!((status, &body["result"]), (200, &json!("v1")), "{body}");

    broker.block();
    let mut disconnected = false;
    for _ in 0..100 {
        let (status, body) = call(&app, &replica, "versioned").await;
        if status == 503 {
            assert_eq!(body["code"], "broker_unavailable", "{body}");
            disconnected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(disconnected, "the replica noticed it lost the broker");
    // A call while cut off reads v1 from Postgres: it must not be kept.
    let (status, _) = call(&app, &replica, "versioned").await;
    assert_eq!(status, 503);

    let (status, body) = app
        .put(
            &format!("/functions/{}", created["id"]),
            &python("versioned", "def handler(event, context):\n    return 'v2'"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    broker.unblock();

    let mut answer = (0, Value::Null);
    for _ in 0..200 {
        answer = call(&app, &replica, "versioned").await;
        if answer.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer.0, 200, "the replica reconnected: {}", answer.1);
    assert_eq!(
        answer.1["result"], "v2",
        "never the version replaced while it was cut off"
    );
    app.stop().await;
}
