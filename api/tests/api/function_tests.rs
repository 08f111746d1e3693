//! A function's stored test events (`/functions/{id}/tests`) and its call stats
//! (`/functions/{id}/stats`) against the real api, Postgres, RabbitMQ and, for the stats, a
//! Docker worker running the calls.

use crate::support::{TestApp, python, seed_function};
use common::Runtime;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn tests_path(function: &Value) -> String {
    format!("/functions/{}/tests", function["id"])
}

#[tokio::test]
async fn tests_round_trip_as_sent_and_are_replaced_whole() {
    let app = TestApp::start().await;
    let created = app.create_function(seed_function("tested")).await;
    let path = tests_path(&created);
    let (status, none) = app.get(&path).await;
    assert_eq!((status, none), (200, json!({"tests": []})));

    let tests = json!({"tests": [
        {"name": "hello", "event": {"name": "world"}, "expect": {"message": "Hello, world"}},
        // `null` expected is not "nothing expected": both are kept as sent.
        {"name": "null.expected", "event": null, "expect": null},
        {"name": "no_expect-2", "event": [1, 2.5, "nul \u{0} kept", {"deep": {"er": [true]}}]},
        {"name": "error", "event": {}, "expect": {"error": "KeyError"}},
    ]});
    let (status, stored) = app.put(&path, &tests).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored, tests);
    let (_, read) = app.get(&path).await;
    assert_eq!(read, tests);
    // No part of the function: its version and `updated_at` stay.
    let (_, function) = app.get(&format!("/functions/{}", created["id"])).await;
    assert_eq!(function, created);

    // Replaced whole, in the new order; then emptied.
    let fewer = json!({"tests": [{"name": "error", "event": 1}, {"name": "hello", "event": 2}]});
    let (status, _) = app.put(&path, &fewer).await;
    assert_eq!(status, 200);
    let (_, read) = app.get(&path).await;
    assert_eq!(read, fewer);
    let (status, _) = app.put(&path, &json!({"tests": []})).await;
    assert_eq!(status, 200);
    let (_, read) = app.get(&path).await;
    assert_eq!(read, json!({"tests": []}));
    app.stop().await;
}

#[tokio::test]
async fn tests_past_a_limit_are_422_naming_it_and_change_nothing() {
    let app = TestApp::start().await;
    let created = app.create_function(seed_function("limited")).await;
    let path = tests_path(&created);
    let kept = json!({"tests": [{"name": "kept", "event": {}}]});
    assert_eq!(app.put(&path, &kept).await.0, 200);

    let test = |name: &str| json!({"name": name, "event": {"n": 1}});
    let many: Vec<Value> = (0..101).map(|n| test(&format!("t{n}"))).collect();
    let hundred: Vec<Value> = many[..100].to_vec();
    // Just over 1 MiB of body (the api reads up to 2 MiB, then it is 413 unread).
    let big = json!({"tests": [{"name": "big", "event": "x".repeat(1024 * 1024)}]});
    let cases = [
        (
            json!({"tests": many}),
            "a function keeps at most 100 tests; got 101",
        ),
        (
            json!({"tests": [test("ok"), test("has space")]}),
            "tests[1].name must be 1 to 100 characters",
        ),
        (json!({"tests": [test("")]}), "tests[0].name must be"),
        (
            json!({"tests": [test(&"n".repeat(101))]}),
            "tests[0].name must be",
        ),
        (
            json!({"tests": [test("a"), test("b"), test("a")]}),
            "tests[2].name \"a\" is already the name of tests[0]: names must be unique",
        ),
        (big, "the tests' body is 1048"),
        (json!({"tests": [{"name": "a"}]}), "tests[0]"),
        (
            json!({"tests": [{"name": "a", "event": 1, "expected": 1}]}),
            "tests[0]",
        ),
        (json!({"tests": {}}), "tests"),
    ];
    for (body, says) in cases {
        let (status, answer) = app.put(&path, &body).await;
        assert_eq!(status, 422, "{says}: {answer}");
        assert_eq!(answer["code"], "invalid_request", "{answer}");
        let detail = answer["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{detail:?} does not say {says:?}");
        assert_eq!(app.get(&path).await.1, kept, "{says}: changed");
    }
    let huge = json!({"tests": [{"name": "huge", "event": "x".repeat(3 * 1024 * 1024)}]});
    let (status, answer) = app.put(&path, &huge).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["code"], "payload_too_large");
    assert_eq!(app.get(&path).await.1, kept);

    // The limits themselves pass.
    let (status, answer) = app.put(&path, &json!({"tests": hundred})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["tests"].as_array().unwrap().len(), 100);
    app.stop().await;
}

#[tokio::test]
async fn a_read_key_reads_tests_and_stats_only_and_another_namespace_finds_neither() {
    let app = TestApp::start().await;
    let created = app.create_function(seed_function("guarded")).await;
    let path = tests_path(&created);
    let stats = format!("/functions/{}/stats", created["id"]);
    let kept = json!({"tests": [{"name": "kept", "event": {"a": 1}}]});
    assert_eq!(app.put(&path, &kept).await.0, 200);

    let reader = app.caller(Some(&app.key_of("default", &["read"]).await));
    assert_eq!(reader.get(&path).await, (200, kept.clone()));
    assert_eq!(reader.get(&stats).await.0, 200);
    let (status, body) = reader.put(&path, &json!({"tests": []})).await;
    assert_eq!((status, body["code"].clone()), (403, json!("forbidden")));
    let invoker = app.caller(Some(&app.key_of("default", &["invoke"]).await));
    for path in [&path, &stats] {
        assert_eq!(invoker.get(path).await.0, 403, "{path}");
    }

    let other = app.caller(Some(
        &app.namespace_with_key("other", &["manage", "read"]).await,
    ));
    for (status, body) in [
        other.get(&path).await,
        other.put(&path, &json!({"tests": []})).await,
        other.get(&stats).await,
    ] {
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["code"], "function_not_found");
    }
    assert_eq!(app.get(&path).await.1, kept, "nothing changed");
    for path in ["/functions/999999/tests", "/functions/999999/stats"] {
        assert_eq!(app.get(path).await.0, 404, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn tests_go_with_their_function_and_with_its_namespace() {
    let app = TestApp::start().await;
    let stored = || async {
        let db = app.db().await;
        let row = db
            .query_one("SELECT count(*) FROM function_tests", &[])
            .await
            .unwrap();
        row.get::<_, i64>(0)
    };
    let tests = json!({"tests": [{"name": "a", "event": 1}, {"name": "b", "event": 2}]});
    let created = app.create_function(seed_function("doomed")).await;
    assert_eq!(app.put(&tests_path(&created), &tests).await.0, 200);
    assert_eq!(stored().await, 2);
    assert_eq!(
        app.delete(&format!("/functions/{}", created["id"])).await.0,
        200
    );
    assert_eq!(app.get(&tests_path(&created)).await.0, 404);
    assert_eq!(stored().await, 0);

    let tenant = app.caller(Some(&app.namespace_with_key("tenant", &["manage"]).await));
    let (status, theirs) = tenant.post("/functions/", &seed_function("theirs")).await;
    assert_eq!(status, 201, "{theirs}");
    assert_eq!(tenant.put(&tests_path(&theirs), &tests).await.0, 200);
    assert_eq!(stored().await, 2);
    let (status, body) = app.delete("/namespaces/tenant").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(stored().await, 0);
    app.stop().await;
}

/// The `q` quantile of `values` as Postgres' `percentile_cont` interpolates it.
fn percentile_cont(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = q * (sorted.len() - 1) as f64;
    let (low, high) = (at.floor() as usize, at.ceil() as usize);
    sorted[low] + (at - low as f64) * (sorted[high] - sorted[low])
}

#[tokio::test]
async fn stats_count_the_functions_own_calls_within_the_window() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    let code = "def handler(event, context):\n    if event.get('fail'):\n        raise ValueError('asked to')\n    return 1";
    let flaky = app.create_function(python("flaky", code)).await;
    app.create_function(python(
        "bystander",
        "def handler(event, context):\n    return 2",
    ))
    .await;
    let stats = format!("/functions/{}/stats", flaky["id"]);
    let (status, none) = app.get(&stats).await;
    assert_eq!(status, 200, "{none}");
    assert_eq!(
        none,
        json!({"window_secs": 3600, "calls": 0, "errors": 0, "p50_ms": null, "p99_ms": null})
    );

    for fail in [false, false, true, false, true] {
        let (status, body) = app.invoke("execute", "flaky", json!({"fail": fail})).await;
        assert_eq!(status == 200, !fail, "{body}");
    }
    let (status, _) = app.invoke("execute", "bystander", json!({})).await;
    assert_eq!(status, 200);
    // Records are written just after the answers.
    let started = Instant::now();
    let mut seen = Value::Null;
    while started.elapsed() < Duration::from_secs(10) {
        seen = app.get(&stats).await.1;
        if seen["calls"] == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        (&seen["calls"], &seen["errors"]),
        (&json!(5), &json!(2)),
        "{seen}"
    );
    let durations: Vec<f64> = app
        .db()
        .await
        .query(
            "SELECT duration_ms FROM invocations WHERE function_id = $1",
            &[&flaky["id"].as_i64().unwrap()],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(durations.len(), 5);
    for (field, q) in [("p50_ms", 0.5), ("p99_ms", 0.99)] {
        let got = seen[field].as_f64().expect(field);
        let expected = percentile_cont(&durations, q);
        assert!(
            (got - expected).abs() < 1e-6,
            "{field}: {got} != {expected}"
        );
    }

    // A record older than the window is left out; a wider window takes it.
    app.db()
        .await
        .execute(
            "UPDATE invocations SET created_at = now() - interval '2 hours'
             WHERE id = (SELECT id FROM invocations WHERE function_name = 'flaky' LIMIT 1)",
            &[],
        )
        .await
        .unwrap();
    let (_, hour) = app.get(&stats).await;
    assert_eq!(hour["calls"], 4, "{hour}");
    let (status, day) = app.get(&format!("{stats}?window_secs=86400")).await;
    assert_eq!(status, 200, "{day}");
    assert_eq!(
        (&day["window_secs"], &day["calls"]),
        (&json!(86400), &json!(5))
    );
    for window in ["59", "86401", "hour"] {
        let (status, body) = app.get(&format!("{stats}?window_secs={window}")).await;
        assert_eq!(status, 422, "{window}: {body}");
        assert_eq!(body["code"], "invalid_request");
    }
    app.stop().await;
}
