//! Workers as separate processes, as in a cluster: a graceful stop on SIGTERM, clean-up of what
//! an earlier run left, and a worker killed mid-call whose job another worker finishes.

use crate::support::{TestApp, WorkerProcess, containers_of, python, scrape};
use common::Runtime;
use serde_json::json;
use std::time::{Duration, Instant};

fn slow_function(name: &str, seconds: f64) -> serde_json::Value {
    let code = format!(
        "import time, socket\ndef handler(event, context):\n    time.sleep({seconds})\n    return socket.gethostname()"
    );
    let mut function = python(name, &code);
    function["timeout"] = json!(30);
    function
}

#[tokio::test]
async fn sigterm_finishes_the_call_in_flight_then_removes_containers_and_exits_0() {
    let app = TestApp::start().await;
    let id = format!("{}term", app.prefix);
    let mut worker = WorkerProcess::start(&app, &id).await;
    app.create_function(slow_function("slow_term", 2.0)).await;

    let call = {
        let (client, url) = (app.client.clone(), app.url("/execute/slow_term"));
        tokio::spawn(async move { client.post(url).json(&json!({"event": {}})).send().await })
    };
    // Let the worker take the job and start the container.
    for _ in 0..100 {
        if !containers_of(&id).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.signal("TERM");

    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), 200, "the call in flight finished");
    let status = tokio::time::timeout(Duration::from_secs(30), worker.child.wait())
        .await
        .expect("the worker exits after its call")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(containers_of(&id).is_empty(), "its containers are removed");

    // It took no new job after the signal: with no worker left, calls are refused at once.
    let started = Instant::now();
    let (status, _) = app.invoke("execute", "slow_term", json!({})).await;
    assert_eq!(status, 503);
    assert!(started.elapsed() < Duration::from_secs(2));
    app.stop().await;
}

#[tokio::test]
async fn a_restarted_worker_removes_the_containers_its_killed_predecessor_left() {
    let app = TestApp::start().await;
    let id = format!("{}again", app.prefix);
    let mut first = WorkerProcess::start(&app, &id).await;
    app.create_function(python(
        "left_behind",
        "def handler(event, context):\n    return 1",
    ))
    .await;
    let (status, _) = app.invoke("execute", "left_behind", json!({})).await;
    assert_eq!(status, 200);
    first.signal("KILL");
    first.child.wait().await.unwrap();
    let left = containers_of(&id);
    assert_eq!(left.len(), 1, "the killed worker left its warm container");

    let mut second = WorkerProcess::start(&app, &id).await;
    assert!(
        containers_of(&id).is_empty(),
        "removed before the new worker takes jobs"
    );
    second.signal("TERM");
    second.child.wait().await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_worker_killed_mid_call_has_its_job_finished_by_another() {
    let app = TestApp::start().await;
    let (id_a, id_b) = (format!("{}a", app.prefix), format!("{}b", app.prefix));
    let mut a = WorkerProcess::start(&app, &id_a).await;
    app.create_function(slow_function("survivor", 2.0)).await;

    let call = {
        let (client, url) = (app.client.clone(), app.url("/execute/survivor"));
        tokio::spawn(async move { client.post(url).json(&json!({"event": {}})).send().await })
    };
    for _ in 0..100 {
        if !containers_of(&id_a).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!containers_of(&id_a).is_empty(), "worker a took the job");
    let mut b = WorkerProcess::start(&app, &id_b).await;
    a.signal("KILL");
    a.child.wait().await.unwrap();

    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), 200, "the caller still gets its answer");
    let (_, records) = app.get("/metrics/?function=survivor").await;
    assert_eq!(
        records[0]["worker_id"],
        id_b.as_str(),
        "worker b ran it: {records}"
    );

    b.signal("TERM");
    assert!(b.child.wait().await.unwrap().success());
    for leftover in containers_of(&id_a) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &leftover])
            .output();
    }
    app.stop().await;
}

#[tokio::test]
async fn a_gvisor_worker_without_runsc_stays_up_says_why_and_the_api_answers_503_naming_it() {
    let app = TestApp::start().await;
    let id = format!("{}norunsc", app.prefix);
    // The host has runsc; a runtime name Docker does not know stands for a host without it.
    let mut worker = WorkerProcess::spawn(
        &app,
        &id,
        Runtime::Gvisor,
        &[("GVISOR_RUNTIME", "runsc-not-installed")],
    );
    app.wait_for_standby(Runtime::Gvisor, 1).await;
    app.create_function(python(
        "sandboxed",
        "def handler(event, context):\n    return 1",
    ))
    .await;

    let (status, body) = app.invoke("execute_gvisor", "sandboxed", json!({})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "runtime_unavailable", "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("runsc"),
        "the sentence names the cause: {detail}"
    );

    let metrics = scrape(&worker.metrics_url).await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("faas_worker_runtime_available{"))
        .unwrap_or_else(|| panic!("no availability gauge in:\n{metrics}"));
    assert!(
        line.contains(r#"reason="runtime_missing""#) && line.contains(r#"runtime="gvisor""#),
        "{line}"
    );
    assert!(line.ends_with(" 0"), "{line}");
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker is still up"
    );
    assert!(containers_of(&id).is_empty(), "it started no container");

    worker.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), worker.child.wait())
        .await
        .expect("a standing-by worker stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let (status, body) = app.invoke("execute_gvisor", "sandboxed", json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("no_worker")),
        "{body}"
    );
    app.stop().await;
}
