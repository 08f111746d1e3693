//! Deleting a namespace deletes everything of it (issue 21): functions, keys, records, async
//! invocations (their queued jobs then do nothing), leases and the artifacts nobody else uses;
//! a namespace made again with the same name starts empty, even for a call of the old one that
//! was still running when it went.

use crate::support::{Caller, TestApp, python};
use base64::Engine as _;
use common::Runtime;
use serde_json::{Value, json};
use std::io::Write;
use std::time::{Duration, Instant};

/// A one-file Python package, base64.
fn package(text: &str) -> String {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer
        .start_file("main.py", zip::write::SimpleFileOptions::default())
        .unwrap();
    writer.write_all(text.as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(writer.finish().unwrap().into_inner())
}

/// Rows of `sql` (a `SELECT count(*)` with `$1` the namespace) in the test's database.
async fn count(app: &TestApp, sql: &str, namespace: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.query_one(sql, &[&namespace]).await.unwrap().get(0)
}

/// Polls invocation `id` as `caller` until `done` holds; panics after 30 s.
async fn wait_for(caller: &Caller, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = caller.get(&format!("/invocations/{id}")).await;
        if status == 200 && done(&body) {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "invocation {id}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_namespace_made_again_with_the_same_name_sees_nothing_of_the_old_one() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    let scopes = ["manage", "invoke", "read"];
    let key = app.namespace_with_key("reborn", &scopes).await;
    let old = app.caller(Some(&key));
    let mut fails = python(
        "fails",
        "def handler(event, context):\n    raise Exception('the old tenant secret')",
    );
    fails["route"] = json!("/reborn-fails");
    fails["max_retries"] = json!(0);
    let mut slow = python(
        "slow",
        "import time\ndef handler(event, context):\n    time.sleep(4)\n    raise Exception('the late secret')",
    );
    slow["route"] = json!("/reborn-slow");
    slow["max_retries"] = json!(0);
    slow["max_concurrency"] = json!(1);
    // The same, without a limit, for a sync call in flight.
    let mut sleeper = slow.clone();
    sleeper["name"] = json!("sleeper");
    sleeper["route"] = json!("/reborn-sleeper");
    sleeper["max_concurrency"] = Value::Null;
    let packaged = json!({
        "name": "packaged", "route": "/reborn-packaged", "language": "python",
        "handler": "main.handler", "timeout": 5,
        "code_zip": package("def handler(event, context):\n    return 'reborn only'\n"),
    });
    for body in [&fails, &slow, &sleeper, &packaged] {
        let (status, created) = old.post("/functions/", body).await;
        assert_eq!(status, 201, "{created}");
    }
    let digest_sql = "SELECT count(*) FROM artifacts a JOIN functions f
                      ON f.package_digest = a.digest WHERE f.namespace = $1";
    assert_eq!(count(&app, digest_sql, "reborn").await, 1);
    let (_, listed) = old.get("/functions/").await;
    let digest = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "packaged")
        .map(|f| f["package"]["digest"].as_str().unwrap().to_owned())
        .unwrap();

    // A failed sync call (a record), a dead letter, and a slow async call running.
    let (status, body) = old.post("/execute/fails", &json!({"event": {}})).await;
    assert_eq!(status, 502, "{body}");
    let (status, accepted) = old
        .post("/execute_async/fails", &json!({"event": {}}))
        .await;
    assert_eq!(status, 202, "{accepted}");
    let dead = accepted["invocation_id"].as_str().unwrap().to_owned();
    wait_for(&old, &dead, |b| b["status"] == "dead_lettered").await;
    let (status, accepted) = old.post("/execute_async/slow", &json!({"event": {}})).await;
    assert_eq!(status, 202, "{accepted}");
    let running = accepted["invocation_id"].as_str().unwrap().to_owned();
    wait_for(&old, &running, |b| b["status"] == "running").await;
    // A second one waits for the slot (max_concurrency 1): its job is queued when the
    // namespace goes, and must then do nothing.
    let (status, accepted) = old.post("/execute_async/slow", &json!({"event": {}})).await;
    assert_eq!(status, 202, "{accepted}");
    // And a sync call in flight, whose record is written after the namespace is gone.
    let in_flight = {
        let caller = Caller::new(&app.base_url, Some(&key));
        tokio::spawn(async move { caller.post("/execute/sleeper", &json!({"event": {}})).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, records) = old.get("/metrics/").await;
    assert!(
        records.to_string().contains("the old tenant secret"),
        "{records}"
    );

    let (status, body) = app.delete("/namespaces/reborn").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(old.get("/functions/").await.0, 401, "its keys went with it");
    let (status, body) = app.post("/namespaces/", &json!({"name": "reborn"})).await;
    assert_eq!(status, 201, "{body}");
    let new = app.caller(Some(&app.key_of("reborn", &scopes).await));
    // The old namespace's calls end meanwhile: the sync one answers (its record is written
    // late), the running async one finishes, the queued one's job arrives.
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 502, "the call in flight ends: {body}");
    tokio::time::sleep(Duration::from_secs(6)).await;

    for path in ["/metrics/", "/invocations/", "/functions/"] {
        let (status, body) = new.get(path).await;
        assert_eq!((status, &body), (200, &json!([])), "{path}");
    }
    for id in [&dead, &running] {
        assert_eq!(new.get(&format!("/invocations/{id}")).await.0, 404);
        let (status, body) = new
            .post(&format!("/invocations/{id}/retry"), &json!({}))
            .await;
        assert_eq!(
            status, 404,
            "the old dead letter cannot be redriven: {body}"
        );
    }
    for (what, sql) in [
        (
            "records",
            "SELECT count(*) FROM invocations WHERE namespace = $1",
        ),
        (
            "async invocations",
            "SELECT count(*) FROM async_invocations WHERE namespace = $1",
        ),
        (
            "leases",
            "SELECT count(*) FROM leases WHERE scope = 'namespace:' || $1 OR scope LIKE 'function:%'",
        ),
        (
            "artifacts",
            "SELECT count(*) FROM artifacts WHERE digest = $1",
        ),
    ] {
        let subject = if what == "artifacts" {
            digest.as_str()
        } else {
            "reborn"
        };
        assert_eq!(count(&app, sql, subject).await, 0, "{what} left");
    }

    // The new namespace works, with the old names: nothing cached of the old functions answers.
    let mut fresh = python("fails", "def handler(event, context):\n    return 'new'");
    fresh["route"] = json!("/reborn-fails");
    let (status, body) = new.post("/functions/", &fresh).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = new.post("/execute/fails", &json!({"event": {}})).await;
    assert_eq!((status, &body["result"]), (200, &json!("new")), "{body}");
    let (_, records) = new.get("/metrics/").await;
    assert_eq!(records.as_array().unwrap().len(), 1, "{records}");
    app.stop().await;
}
