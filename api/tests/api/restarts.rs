//! The real RabbitMQ and Postgres restarted under a running api and worker: both reconnect on
//! their own, answer 503 while the broker is away, and work again when it is back.
//!
//! It restarts services every other test uses, so it runs alone: it takes the services
//! exclusively ([`TestApp::start_alone`]) while every other test holds them shared. The restart commands can be set for other set-ups with
//! `RABBITMQ_STOP`/`RABBITMQ_START` and `POSTGRES_RESTART` (e.g. `docker compose restart`).

use crate::support::{TestApp, python};
use common::Runtime;
use serde_json::json;
use std::time::{Duration, Instant};

fn sh(command: &str) {
    let status = std::process::Command::new("sh")
        .args(["-c", command])
        .status()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(status.success(), "{command:?} failed: {status}");
}

fn command(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

async fn eventually_200(app: &TestApp, name: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = app.invoke("execute", name, json!({})).await;
        if status == 200 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "still {status} after {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn api_and_worker_survive_restarts_of_rabbitmq_and_postgres() {
    let mut app = TestApp::start_alone().await;
    app.add_worker(crate::support::worker_config(
        Runtime::Docker,
        &app.prefix.clone(),
    ))
    .await;
    app.create_function(python(
        "durable",
        "def handler(event, context):\n    return 'up'",
    ))
    .await;
    let (status, _) = app.invoke("execute", "durable", json!({})).await;
    assert_eq!(status, 200);

    sh(&command("RABBITMQ_STOP", "rabbitmqctl -q stop_app"));
    let started = Instant::now();
    let (status, body) = app.invoke("execute", "durable", json!({})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "broker_unavailable", "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once"
    );
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(body["down"], json!(["broker"]));
    sh(&command("RABBITMQ_START", "rabbitmqctl -q start_app"));
    let took = eventually_200(&app, "durable", Duration::from_secs(60)).await;
    eprintln!("calls work again {took:?} after the broker is back");

    sh(&command(
        "POSTGRES_RESTART",
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main restart",
    ));
    // A known function never needed the database.
    let (status, body) = app.invoke("execute", "durable", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let started = Instant::now();
    loop {
        let (status, _) = app.get("/functions/").await;
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the api did not reconnect to Postgres"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    app.create_function(python(
        "after_restart",
        "def handler(event, context):\n    return 2",
    ))
    .await;
    let (status, _) = app.invoke("execute", "after_restart", json!({})).await;
    assert_eq!(status, 200);
    let (_, records) = app.get("/metrics/?function=durable").await;
    assert!(records.as_array().unwrap().len() >= 3, "{records}");
    app.stop().await;
}

/// Polls until every invocation in `ids` succeeded; returns their views.
async fn all_succeeded(app: &TestApp, ids: &[String], within: Duration) -> Vec<serde_json::Value> {
    let started = Instant::now();
    loop {
        let mut views = Vec::new();
        for id in ids {
            let (status, view) = app.get(&format!("/invocations/{id}")).await;
            if status == 200 && view["status"] == "succeeded" {
                views.push(view);
            }
        }
        if views.len() == ids.len() {
            return views;
        }
        assert!(
            started.elapsed() < within,
            "{} of {} succeeded after {within:?}",
            views.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn accept(app: &TestApp, name: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let (status, body) = app
            .post(
                &format!("/execute_async/{name}"),
                &json!({"event": {"n": n}}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["invocation_id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test]
async fn accepted_async_calls_survive_restarts_of_rabbitmq_and_postgres() {
    let mut app = TestApp::start_alone().await;
    app.create_function(python(
        "patient",
        "import time\ndef handler(event, context):\n    time.sleep(1)\n    return {'n': event['n'], 'attempt': context.attempt}",
    ))
    .await;
    // No worker yet: the jobs are set aside on a delay queue while the broker goes away.
    // RabbitMQ dropped them there in this test (dead-lettering is at most once): the sweeper
    // publishes a job again when it is 30 s overdue.
    let waiting = accept(&app, "patient", 5).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    sh(&command("RABBITMQ_STOP", "rabbitmqctl -q stop_app"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    sh(&command("RABBITMQ_START", "rabbitmqctl -q start_app"));
    app.add_worker(crate::support::worker_config(
        Runtime::Docker,
        &app.prefix.clone(),
    ))
    .await;
    let started = Instant::now();
    for view in all_succeeded(&app, &waiting, Duration::from_secs(90)).await {
        let attempts = view["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "recorded once: {view}");
        assert_eq!(view["result"]["attempt"], 1, "{view}");
    }
    eprintln!(
        "jobs queued across a broker restart done {:?} after it",
        started.elapsed()
    );

    // Postgres goes away while the attempts run: their outcomes are stored once it is back.
    let running = accept(&app, "patient", 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    sh(&command(
        "POSTGRES_RESTART",
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main restart",
    ));
    for view in all_succeeded(&app, &running, Duration::from_secs(90)).await {
        assert_eq!(view["attempts"].as_array().unwrap().len(), 1, "{view}");
    }
    app.stop().await;
}
