//! Fair shares between namespaces (DESIGN section 19), end to end: one namespace's backlog of
//! slow async calls delays another namespace's async call by about one call's time, not by the
//! backlog's.

use crate::support::{Caller, TestApp, python, worker_config};
use common::Runtime;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A's backlog: this many calls of a function sleeping [`SLOW_SECS`].
const BACKLOG: usize = 300;
const SLOW_SECS: u64 = 3;
/// The api's async slots. The worker runs more calls than that at once, so that A's share
/// does not fill it (the worker's own queue is a FIFO too).
const SLOTS: u16 = 8;

/// Accepts an async call of `name`; its invocation id.
async fn call_async(caller: &Caller, name: &str, event: Value) -> String {
    let (status, body) = caller
        .post(
            &format!("/execute_async/{name}"),
            &json!({ "event": event }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    body["invocation_id"].as_str().expect("an id").to_owned()
}

async fn status_of(caller: &Caller, id: &str) -> String {
    let (status, body) = caller.get(&format!("/invocations/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body["status"].as_str().expect("a status").to_owned()
}

/// Polls until invocation `id` is `status`; how long that took. Panics after `within`.
async fn until_status(caller: &Caller, id: &str, status: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let now = status_of(caller, id).await;
        if now == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "invocation {id} is {now}, not {status}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn another_namespaces_async_call_runs_within_a_call_of_a_backlog_not_after_it() {
    let mut app = TestApp::start_with(|config| config.async_concurrency = SLOTS).await;
    let mut worker = worker_config(Runtime::Docker, &app.prefix.clone());
    worker.concurrency = Some(2 * SLOTS);
    app.add_worker(worker).await;
    let a = app.caller(Some(
        &app.namespace_with_key("tenant-a", &["manage", "invoke", "read"])
            .await,
    ));
    let b = app.caller(Some(
        &app.namespace_with_key("tenant-b", &["manage", "invoke", "read"])
            .await,
    ));
    let slow = format!(
        "import time\ndef handler(event, context):\n    time.sleep({SLOW_SECS})\n    return event"
    );
    let mut function = python("slow", &slow);
    function["timeout"] = json!(10);
    let (status, body) = a.post("/functions/", &function).await;
    assert_eq!(status, 201, "{body}");
    let quick = python(
        "quick",
        "def handler(event, context):\n    return {'ok': event}",
    );
    let (status, body) = b.post("/functions/", &quick).await;
    assert_eq!(status, 201, "{body}");

    // A queues its backlog, and its first calls hold every slot of the dispatcher.
    let started = Instant::now();
    let backlog: Vec<String> = futures_util::stream::iter(0..BACKLOG)
        .map(|n| call_async(&a, "slow", json!(n)))
        .buffered(16)
        .collect()
        .await;
    println!("A queued {BACKLOG} async calls in {:?}", started.elapsed());
    // Its first call has started: on a loaded machine queueing the backlog can take longer
    // than that call, which may have succeeded already.
    let begun = Instant::now();
    loop {
        let now = status_of(&a, &backlog[0]).await;
        if now == "running" || now == "succeeded" {
            break;
        }
        assert!(
            begun.elapsed() < Duration::from_secs(60),
            "A's first call is {now} after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let took = {
        let id = call_async(&b, "quick", json!("b")).await;
        let took = until_status(&b, &id, "succeeded", Duration::from_secs(30)).await;
        let (_, done) = b.get(&format!("/invocations/{id}")).await;
        assert_eq!(done["result"], json!({"ok": "b"}), "{done}");
        took
    };
    println!(
        "B's async call succeeded {:.2} s after it was accepted, behind A's backlog of {BACKLOG} \
         calls of {SLOW_SECS} s on {SLOTS} slots (draining it takes about {} s)",
        took.as_secs_f64(),
        BACKLOG as u64 * SLOW_SECS / u64::from(SLOTS)
    );
    // A's backlog was not run first: its last call is still waiting.
    let last = status_of(&a, &backlog[BACKLOG - 1]).await;
    assert!(
        last == "queued" || last == "running",
        "A's last call is {last}"
    );
    // And A is not starved either: its first call ran.
    until_status(&a, &backlog[0], "succeeded", Duration::from_secs(30)).await;
    // The rest of A's backlog is dropped with the test's queues.
    app.stop().await;
}

#[tokio::test]
async fn a_namespace_holding_its_share_of_the_queues_bytes_is_refused_while_others_call() {
    const SHARE: u64 = 1024 * 1024;
    let app = TestApp::with_workers_and(&[Runtime::Docker], |config| {
        config.queue_share_bytes = Some(SHARE);
    })
    .await;
    let a_key = app
        .namespace_with_key("big-events", &["manage", "invoke"])
        .await;
    let a = app.caller(Some(&a_key));
    let b = app.caller(Some(
        &app.namespace_with_key("neighbour", &["manage", "invoke"])
            .await,
    ));
    let code = "import time\ndef handler(event, context):\n    time.sleep(event['sleep'])\n    return len(event['pad'])";
    for (caller, route) in [(&a, "/hold-a"), (&b, "/hold-b")] {
        let mut function = python("hold", code);
        // Routes are unique across namespaces.
        function["route"] = json!(route);
        let (status, body) = caller.post("/functions/", &function).await;
        assert_eq!(status, 201, "{body}");
    }
    // Over half the share each: one such call in flight is all a namespace may have.
    let pad = "x".repeat(600 * 1024);
    let event = |sleep: u64| json!({ "event": { "sleep": sleep, "pad": pad } });

    let first = tokio::spawn({
        let a = app.caller(Some(&a_key));
        let event = event(4);
        async move { a.post("/execute/hold", &event).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, body) = a.post("/execute/hold", &event(0)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "queue_share", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("QUEUE_SHARE_BYTES"),
        "{body}"
    );
    // Another namespace's call is not refused for a's bytes.
    let (status, body) = b.post("/execute/hold", &event(0)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], json!(pad.len()));
    // a's call in flight ends: a calls again.
    let (status, body) = first.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, body) = a.post("/execute/hold", &event(0)).await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_namespace_alone_keeps_every_slot_busy_with_its_backlog() {
    const CALLS: usize = 64;
    let mut app = TestApp::start_with(|config| config.async_concurrency = SLOTS).await;
    let mut worker = worker_config(Runtime::Docker, &app.prefix.clone());
    worker.concurrency = Some(2 * SLOTS);
    app.add_worker(worker).await;
    let a = app.caller(Some(
        &app.namespace_with_key("alone", &["manage", "invoke", "read"])
            .await,
    ));
    let code = "import time\ndef handler(event, context):\n    time.sleep(1)\n    return event";
    let (status, body) = a.post("/functions/", &python("second", code)).await;
    assert_eq!(status, 201, "{body}");

    let started = Instant::now();
    let backlog: Vec<String> = futures_util::stream::iter(0..CALLS)
        .map(|n| call_async(&a, "second", json!(n)))
        .buffered(16)
        .collect()
        .await;
    // Its jobs beyond the slots are set aside; they must come back as the slots free up, not
    // after back-offs that leave the slots idle. On 8 slots the calls take 8 s and more.
    let bound = Duration::from_secs(10 * (CALLS as u64 / u64::from(SLOTS)));
    for id in &backlog {
        let left = bound.saturating_sub(started.elapsed());
        until_status(&a, id, "succeeded", left).await;
    }
    println!(
        "A alone: {CALLS} async calls of 1 s on {SLOTS} slots all succeeded {:.1} s after the \
         first was sent (8 s if the slots never idled)",
        started.elapsed().as_secs_f64()
    );
    app.stop().await;
}
