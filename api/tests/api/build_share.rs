//! Each namespace's share of the builds, end to end: with `BUILD_NAMESPACE_CONCURRENCY=1` a
//! namespace's second build is held `pending` (unpublished) while its first builds, another
//! namespace's build is queued at once and so runs before it, and the held one is queued when
//! the first ends, through the real api, Postgres, RabbitMQ and a real building worker.

use crate::deps::{WORKER_TOKEN, cache_dir, deps_worker, wait_for_builder};
use crate::support::{Caller, TestApp, python};
use chrono::{DateTime, Utc};
use common::Runtime;
use serde_json::{Value, json};

/// Function `name` made by `caller` with `dependencies`; its id.
async fn save(caller: &Caller, name: &str, dependencies: &str) -> i64 {
    let mut body = python(name, "def handler(e, c):\n    return 1");
    body["dependencies"] = json!(dependencies);
    let (status, created) = caller.post("/functions/", &body).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_i64().unwrap()
}

async fn build(caller: &Caller, id: i64) -> Value {
    let (status, build) = caller.get(&format!("/functions/{id}/build")).await;
    assert_eq!(status, 200, "{build}");
    build
}

/// The build once it has ended (two minutes at most).
async fn ended(caller: &Caller, id: i64) -> Value {
    for _ in 0..1200 {
        let build = build(caller, id).await;
        if build["status"] == "ready" || build["status"] == "failed" {
            return build;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("build of function {id} did not end in 2 minutes");
}

fn time(build: &Value, field: &str) -> DateTime<Utc> {
    build[field]
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("{field} of {build}"))
}

#[tokio::test]
async fn a_namespaces_second_build_waits_while_another_namespaces_build_goes_first() {
    let mut app = TestApp::start_with(|config| {
        config.worker_token = Some(api::Secret(WORKER_TOKEN.into()));
        config.build_namespace_concurrency = 1;
    })
    .await;
    let cache = cache_dir("share");
    app.add_worker(deps_worker(&app, Runtime::Docker, &cache, true))
        .await;
    let a = app.caller(Some(
        &app.namespace_with_key("share-a", &["manage", "read"]).await,
    ));
    let b = app.caller(Some(
        &app.namespace_with_key("share-b", &["manage", "read"]).await,
    ));
    wait_for_builder(&app).await;

    // termcolor 1.1.0 is a source archive: pip builds a wheel (several seconds), long enough
    // to look at the others while it builds.
    let a1 = save(&a, "a1", "termcolor==1.1.0\n").await;
    let a2 = save(&a, "a2", "six==1.16.0\n").await;
    let b1 = save(&b, "b1", "six==1.15.0\n").await;

    let first = build(&a, a1).await;
    assert!(
        first["status"] == "pending" || first["status"] == "building",
        "{first}"
    );
    let held = build(&a, a2).await;
    assert_eq!(held["status"], "pending", "{held}");
    assert!(
        held["log"]
            .as_str()
            .unwrap()
            .contains("BUILD_NAMESPACE_CONCURRENCY"),
        "{held}"
    );
    let theirs = build(&b, b1).await;
    assert!(
        !theirs["log"].as_str().unwrap().contains("waiting"),
        "share-b's build is queued, not held: {theirs}"
    );

    let first = ended(&a, a1).await;
    let theirs = ended(&b, b1).await;
    let held = ended(&a, a2).await;
    for build in [&first, &theirs, &held] {
        assert_eq!(build["status"], "ready", "{build}");
    }
    // One worker, one build at a time: share-b's build, saved after share-a's second, ran
    // before it; share-a's second was queued only once its first had ended.
    assert!(
        time(&theirs, "started_at") < time(&held, "started_at"),
        "{theirs} {held}"
    );
    assert!(
        time(&held, "started_at") >= time(&first, "finished_at"),
        "{first} {held}"
    );
    app.stop().await;
    let _ = std::fs::remove_dir_all(cache);
}
