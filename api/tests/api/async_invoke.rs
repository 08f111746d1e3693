//! Async invocations end to end (DESIGN section 10): accepted with 202, run by the api's
//! dispatcher on real workers, retried, dead-lettered and redriven, chained to destinations,
//! fired by schedules, waiting for a concurrency slot instead of failing, and surviving a
//! worker and an api killed mid-run.

use crate::support::{ADMIN_KEY, TestApp, WorkerProcess, free_local_addr, python, read};
use common::Runtime;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Posts an async call of `name` with `event` and an optional `Idempotency-Key`.
async fn call_async(app: &TestApp, name: &str, event: Value, key: Option<&str>) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url(&format!("/execute_async/{name}")))
        .json(&json!({ "event": event }));
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    read(request.send().await.unwrap()).await
}

/// Polls the invocation until its status is `status`; panics after `within`.
async fn wait_for_status(app: &TestApp, id: &str, status: &str, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let response = app
            .client
            .get(app.url(&format!("/invocations/{id}")))
            .send()
            .await;
        if let Ok(response) = response {
            let (code, body) = read(response).await;
            if code == 200 && body["status"] == status {
                return body;
            }
            assert!(
                started.elapsed() < within,
                "invocation {id} not {status} after {within:?}: {code} {body}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn id_of(body: &Value) -> String {
    body["invocation_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no invocation_id in {body}"))
        .to_owned()
}

#[tokio::test]
async fn an_async_call_is_accepted_run_once_and_its_result_stored() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    app.create_function(python(
        "echo_async",
        "def handler(event, context):\n    print('ran attempt', context.attempt)\n    return {'event': event, 'attempt': context.attempt, 'id': context.aws_request_id}",
    ))
    .await;
    let (status, body) = call_async(&app, "echo_async", json!({"n": 1}), None).await;
    assert_eq!(status, 202, "{body}");
    let id = id_of(&body);
    assert_eq!(body["status_url"], format!("/invocations/{id}"));

    let done = wait_for_status(&app, &id, "succeeded", Duration::from_secs(60)).await;
    assert_eq!(done["mode"], "async");
    assert_eq!(done["function"], "echo_async");
    assert_eq!(done["version"], 1);
    assert_eq!(done["runtime"], "docker");
    assert_eq!(
        done["result"],
        json!({"event": {"n": 1}, "attempt": 1, "id": id})
    );
    assert!(
        done["logs"].as_str().unwrap().contains("ran attempt 1"),
        "{done}"
    );
    assert!(done["finished_at"].is_string());
    let attempts = done["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{done}");
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[0]["outcome"], "success");
    assert!(attempts[0]["worker_id"].is_string());
    assert!(attempts[0]["timing"]["run_ms"].is_number(), "{done}");

    // A sync call is an invocation too; the list holds both, newest first, and filters.
    let (status, sync) = app.invoke("execute", "echo_async", json!({})).await;
    assert_eq!(status, 200, "{sync}");
    let sync_id = id_of(&sync);
    let (status, view) = app.get(&format!("/invocations/{sync_id}")).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["mode"], "sync");
    assert_eq!(view["status"], "succeeded");
    assert_eq!(view["attempts"][0]["outcome"], "success");
    let (status, list) = app.get("/invocations/?function=echo_async&limit=10").await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["invocation_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [sync_id.as_str(), id.as_str()]);
    let (_, list) = app
        .get("/invocations/?status=succeeded&function=echo_async")
        .await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let (_, list) = app.get("/invocations/?status=dead_lettered").await;
    assert_eq!(list, json!([]));
    // The records list every call that ran: the sync one, and the async attempt (with its
    // number), as the invocation streams show them.
    let (status, records) = app.get("/metrics/?function=echo_async").await;
    assert_eq!(status, 200);
    let mut calls: Vec<(String, String, i64)> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let id = r["invocation_id"].as_str().unwrap().to_owned();
            (
                id,
                r["trigger"].as_str().unwrap().to_owned(),
                r["attempt"].as_i64().unwrap(),
            )
        })
        .collect();
    calls.sort();
    let mut expected = vec![
        (sync_id.clone(), "execute".to_owned(), 1),
        (id.clone(), "async".to_owned(), 1),
    ];
    expected.sort();
    assert_eq!(calls, expected, "{records}");
    app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_returns_the_same_invocation_and_runs_it_once() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    app.create_function(python(
        "once",
        "def handler(event, context):\n    return event",
    ))
    .await;
    let (status, first) = call_async(&app, "once", json!({"a": 1}), Some("order-42")).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = call_async(&app, "once", json!({"a": 1}), Some("order-42")).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["invocation_id"], first["invocation_id"]);
    let id = id_of(&first);
    wait_for_status(&app, &id, "succeeded", Duration::from_secs(60)).await;
    let (status, late) = call_async(&app, "once", json!({"a": 1}), Some("order-42")).await;
    assert_eq!(
        (status, &late["invocation_id"]),
        (200, &first["invocation_id"])
    );
    // The key of another call is refused, and nothing is stored or run: another event (byte
    // for byte), or another function.
    app.create_function(python(
        "other_fn",
        "def handler(event, context):\n    return event",
    ))
    .await;
    for (name, event) in [("once", json!({"a": 2})), ("other_fn", json!({"a": 1}))] {
        let (status, body) = call_async(&app, name, event, Some("order-42")).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("idempotency_key_reused")),
            "{name}: {body}"
        );
        assert!(
            body["detail"].as_str().unwrap().contains(&id),
            "names the invocation: {body}"
        );
    }
    let (_, list) = app.get("/invocations/?function=other_fn").await;
    assert_eq!(list, json!([]));
    // Another key is another invocation.
    let (status, other) = call_async(&app, "once", json!({"a": 1}), Some("order-43")).await;
    assert_eq!(status, 202);
    assert_ne!(other["invocation_id"], first["invocation_id"]);
    wait_for_status(&app, &id_of(&other), "succeeded", Duration::from_secs(60)).await;
    let (_, list) = app.get("/invocations/?function=once").await;
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let (_, view) = app.get(&format!("/invocations/{id}")).await;
    assert_eq!(
        view["attempts"].as_array().unwrap().len(),
        1,
        "ran once: {view}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_failing_call_is_retried_with_backoff_dead_lettered_and_redriven() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    let mut function = python(
        "flaky",
        "def handler(event, context):\n    raise RuntimeError(f'attempt {context.attempt} failed')",
    );
    function["max_retries"] = json!(2);
    let created = app.create_function(function.clone()).await;
    assert_eq!(created["max_retries"], 2);
    assert_eq!(created["max_event_age_secs"], 21600);
    let (status, body) = call_async(&app, "flaky", json!({"k": "v"}), None).await;
    assert_eq!(status, 202);
    let id = id_of(&body);
    let dead = wait_for_status(&app, &id, "dead_lettered", Duration::from_secs(90)).await;
    let attempts = dead["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "1 + max_retries attempts: {dead}");
    for (n, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt["attempt"], n + 1);
        assert_eq!(attempt["outcome"], "error");
        assert_eq!(
            attempt["error"]["message"],
            format!("attempt {} failed", n + 1),
            "{attempt}"
        );
    }
    // Backoff: 1 s before the second attempt, 2 s before the third (RETRY_BASE_SECS = 1).
    let started = |n: usize| {
        chrono::DateTime::parse_from_rfc3339(attempts[n]["started_at"].as_str().unwrap()).unwrap()
    };
    let finished = |n: usize| {
        chrono::DateTime::parse_from_rfc3339(attempts[n]["finished_at"].as_str().unwrap()).unwrap()
    };
    assert!(
        started(1) - finished(0) >= chrono::Duration::milliseconds(900),
        "{dead}"
    );
    assert!(
        started(2) - finished(1) >= chrono::Duration::milliseconds(1900),
        "{dead}"
    );
    assert_eq!(dead["error"]["message"], "attempt 3 failed");
    assert!(dead["result"].is_null());
    let (_, listed) = app.get("/invocations/?status=dead_lettered").await;
    assert_eq!(listed[0]["invocation_id"], id.as_str());
    // The job is kept in the dead queue.
    assert_eq!(dead_queue_depth(&app).await, 1);

    // Redriven after a fix, it runs again with the same id and event, its retries afresh.
    function["code"] = json!(
        "def handler(event, context):\n    return {'fixed': event, 'attempt': context.attempt}"
    );
    let (status, _) = app
        .put(&format!("/functions/{}", created["id"]), &function)
        .await;
    assert_eq!(status, 200);
    let (status, redriven) = app
        .post(&format!("/invocations/{id}/retry"), &json!({}))
        .await;
    assert_eq!(status, 202, "{redriven}");
    let done = wait_for_status(&app, &id, "succeeded", Duration::from_secs(60)).await;
    assert_eq!(done["result"], json!({"fixed": {"k": "v"}, "attempt": 4}));
    assert_eq!(done["version"], 2);
    assert_eq!(done["attempts"].as_array().unwrap().len(), 4);
    // Only a dead-lettered invocation can be redriven.
    let (status, body) = app
        .post(&format!("/invocations/{id}/retry"), &json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "conflict");
    app.stop().await;
}

async fn dead_queue_depth(app: &TestApp) -> u32 {
    let connection = common::broker::connect(&crate::support::amqp_url(), "faas-test-dead")
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let queue = channel
        .queue_declare(
            common::broker::Topology::new(&app.prefix)
                .dead_queue()
                .as_str()
                .into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    let _ = connection.close(200, "".into()).await;
    queue.message_count()
}

#[tokio::test]
async fn destinations_receive_the_outcome_and_the_original_event() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    app.create_function(python(
        "sink",
        "def handler(event, context):\n    return event",
    ))
    .await;
    let mut ok = python(
        "ok_source",
        "def handler(event, context):\n    return {'doubled': event['n'] * 2}",
    );
    ok["on_success"] = json!("sink");
    ok["on_failure"] = json!("sink");
    app.create_function(ok).await;
    let mut bad = python(
        "bad_source",
        "def handler(event, context):\n    raise ValueError('no')",
    );
    bad["max_retries"] = json!(0);
    bad["on_failure"] = json!("sink");
    app.create_function(bad).await;

    let (_, body) = call_async(&app, "ok_source", json!({"n": 21}), None).await;
    let ok_id = id_of(&body);
    wait_for_status(&app, &ok_id, "succeeded", Duration::from_secs(60)).await;
    let (_, body) = call_async(&app, "bad_source", json!({"n": 1}), None).await;
    let bad_id = id_of(&body);
    wait_for_status(&app, &bad_id, "dead_lettered", Duration::from_secs(60)).await;

    let started = Instant::now();
    let results = loop {
        let (_, list) = app
            .get("/invocations/?function=sink&status=succeeded")
            .await;
        let list = list.as_array().unwrap().clone();
        if list.len() == 2 {
            break list;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "destinations: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let by_source = |id: &str| {
        results
            .iter()
            .map(|v| &v["result"])
            .find(|r| r["invocation_id"] == id)
            .unwrap_or_else(|| panic!("no destination call for {id}: {results:?}"))
            .clone()
    };
    let success = by_source(&ok_id);
    assert_eq!(success["source"], "destination");
    assert_eq!(success["status"], "succeeded");
    assert_eq!(success["result"], json!({"doubled": 42}));
    assert_eq!(success["event"], json!({"n": 21}));
    let failure = by_source(&bad_id);
    assert_eq!(failure["status"], "dead_lettered");
    assert_eq!(failure["error"]["type"], "ValueError", "{failure}");
    assert_eq!(failure["event"], json!({"n": 1}));
    assert!(failure.get("result").is_none());
    assert!(results.iter().all(|v| v["mode"] == "async"));
    app.stop().await;
}

#[tokio::test]
async fn async_calls_wait_for_a_concurrency_slot_instead_of_failing() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    let mut function = python(
        "one_at_a_time",
        "import time\ndef handler(event, context):\n    start = time.time()\n    time.sleep(0.5)\n    return [start, time.time()]",
    );
    function["max_concurrency"] = json!(1);
    app.create_function(function).await;
    let mut ids = Vec::new();
    for n in 0..4 {
        let (status, body) = call_async(&app, "one_at_a_time", json!({"n": n}), None).await;
        assert_eq!(status, 202);
        ids.push(id_of(&body));
    }
    let mut spans = Vec::new();
    for id in &ids {
        let done = wait_for_status(&app, id, "succeeded", Duration::from_secs(90)).await;
        assert_eq!(
            done["attempts"].as_array().unwrap().len(),
            1,
            "never refused: {done}"
        );
        spans.push((
            done["result"][0].as_f64().unwrap(),
            done["result"][1].as_f64().unwrap(),
        ));
    }
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1 - 0.01, "ran at once: {spans:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_throttled_function_does_not_hold_the_dispatcher_from_other_functions() {
    // Four dispatcher slots, eight calls of a one-at-a-time function queued ahead of another
    // function's call: the throttled ones are set aside instead of holding the slots.
    let app =
        TestApp::with_workers_and(&[Runtime::Docker], |config| config.async_concurrency = 4).await;
    let mut throttled = python(
        "throttled",
        "import time\ndef handler(event, context):\n    time.sleep(2)\n    return context.attempt",
    );
    throttled["max_concurrency"] = json!(1);
    app.create_function(throttled).await;
    app.create_function(python(
        "other_quick",
        "def handler(event, context):\n    return 'quick'",
    ))
    .await;
    // Warm both, so that no cold start orders what follows.
    for name in ["throttled", "other_quick"] {
        let (status, body) = app.invoke("execute", name, json!({})).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    let mut throttled_ids = Vec::new();
    for n in 0..8 {
        let (status, body) = call_async(&app, "throttled", json!(n), None).await;
        assert_eq!(status, 202, "{body}");
        throttled_ids.push(id_of(&body));
    }
    let (status, body) = call_async(&app, "other_quick", json!({}), None).await;
    assert_eq!(status, 202, "{body}");
    let quick = wait_for_status(&app, &id_of(&body), "succeeded", Duration::from_secs(120)).await;
    let quick_finished = quick["finished_at"].as_str().unwrap().to_owned();

    let mut finished_before_quick = 0;
    for id in &throttled_ids {
        let done = wait_for_status(&app, id, "succeeded", Duration::from_secs(180)).await;
        // Set aside is not a retry: one attempt, attempt 1.
        assert_eq!(done["result"], 1, "{done}");
        assert_eq!(done["attempts"].as_array().unwrap().len(), 1, "{done}");
        let finished =
            chrono::DateTime::parse_from_rfc3339(done["finished_at"].as_str().unwrap()).unwrap();
        if finished < chrono::DateTime::parse_from_rfc3339(&quick_finished).unwrap() {
            finished_before_quick += 1;
        }
    }
    // Held in place, the eight would run one by one ahead of it (2 s each) while holding all
    // four slots: at least five would finish first.
    assert!(
        finished_before_quick <= 2,
        "{finished_before_quick} of the throttled calls finished before the other function's"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_namespace_gets_429_beyond_its_pending_invocations_and_room_again_as_they_finish() {
    let app =
        TestApp::with_workers_and(&[Runtime::Docker], |config| config.max_pending_async = 2).await;
    let mut slow = python(
        "slow_async",
        "import time\ndef handler(event, context):\n    time.sleep(2)\n    return event",
    );
    slow["max_concurrency"] = json!(1);
    app.create_function(slow).await;
    let (status, first) = call_async(&app, "slow_async", json!(1), Some("first")).await;
    assert_eq!(status, 202, "{first}");
    let (status, second) = call_async(&app, "slow_async", json!(2), None).await;
    assert_eq!(status, 202, "{second}");

    let response = app
        .client
        .post(app.url("/execute_async/slow_async"))
        .json(&json!({"event": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "10");
    let (status, body) = read(response).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("quota_pending_async")),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("MAX_PENDING_ASYNC"),
        "{body}"
    );
    // A repeat of an accepted call is still answered; nothing was stored for the refused one.
    let (status, again) = call_async(&app, "slow_async", json!(1), Some("first")).await;
    assert_eq!(
        (status, &again["invocation_id"]),
        (200, &first["invocation_id"])
    );
    let (_, list) = app.get("/invocations/?function=slow_async").await;
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    // Another namespace counts its own.
    let other = app.caller(Some(
        &app.namespace_with_key("roomy", &["invoke", "manage"]).await,
    ));
    let (status, body) = other
        .post(
            "/functions/",
            &python("roomy_fn", "def handler(event, context):\n    return 0"),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = other
        .post("/execute_async/roomy_fn", &json!({"event": 1}))
        .await;
    assert_eq!(status, 202, "{body}");

    for accepted in [&first, &second] {
        wait_for_status(&app, &id_of(accepted), "succeeded", Duration::from_secs(90)).await;
    }
    let (status, body) = call_async(&app, "slow_async", json!(4), None).await;
    assert_eq!(status, 202, "room again: {body}");
    app.stop().await;
}

#[tokio::test]
async fn async_settings_and_calls_refuse_bad_input() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    app.create_function(python(
        "target",
        "def handler(event, context):\n    return 1",
    ))
    .await;
    let bad_settings = [
        (json!({"max_retries": 6}), "max_retries"),
        (json!({"max_retries": -1}), "max_retries"),
        (json!({"max_event_age_secs": 59}), "max_event_age_secs"),
        (json!({"max_event_age_secs": 21601}), "max_event_age_secs"),
        (json!({"on_success": "missing"}), "on_success"),
        (json!({"on_failure": "self_ref"}), "on_failure"),
        (json!({"on_failure": "bad name!"}), "on_failure"),
        (json!({"schedule": "61 * * * *"}), "schedule"),
        (json!({"schedule": "0 0 * * * *"}), "schedule"),
        (json!({"schedule": "@reboot"}), "schedule"),
        (
            json!({"schedule": "* * * * *", "schedule_timezone": "Mars/Olympus"}),
            "Mars/Olympus",
        ),
        (json!({"schedule_timezone": "Nowhere"}), "Nowhere"),
    ];
    for (settings, named) in bad_settings {
        let mut function = python("self_ref", "def handler(event, context):\n    return 1");
        for (key, value) in settings.as_object().unwrap() {
            function[key] = value.clone();
        }
        let (status, body) = app.post("/functions/", &function).await;
        assert_eq!(status, 422, "{settings}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(named),
            "{settings}: {body}"
        );
    }
    let (status, _) = app.get("/functions/").await;
    assert_eq!(status, 200);

    let (status, body) = call_async(&app, "missing", json!({}), None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("function_not_found"))
    );
    let (status, body) = call_async(&app, "target", json!("x".repeat(300 * 1024)), None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let response = crate::support::client_with_key(ADMIN_KEY)
        .post(app.url("/execute_async/target"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_request")),
        "{body}"
    );
    let (status, body) = call_async(&app, "target", json!({}), Some(&"k".repeat(257))).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("Idempotency-Key"));
    // Nothing was accepted by any of those.
    let (_, list) = app.get("/invocations/?function=target").await;
    assert_eq!(list, json!([]));

    let unknown = uuid::Uuid::now_v7();
    for path in [
        format!("/invocations/{unknown}"),
        "/invocations/not-a-uuid".to_owned(),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("invocation_not_found")),
            "{path}"
        );
    }
    let (status, _) = app
        .post(&format!("/invocations/{unknown}/retry"), &json!({}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.get("/invocations/?status=lost").await;
    assert_eq!(status, 422);

    // Another namespace sees none of this namespace's invocations.
    let (_, body) = call_async(&app, "target", json!({}), None).await;
    let id = id_of(&body);
    wait_for_status(&app, &id, "succeeded", Duration::from_secs(60)).await;
    let other = app.caller(Some(
        &app.namespace_with_key("elsewhere", &["invoke", "read"])
            .await,
    ));
    let (status, _) = other.get(&format!("/invocations/{id}")).await;
    assert_eq!(status, 404);
    let (status, _) = other
        .post(&format!("/invocations/{id}/retry"), &json!({}))
        .await;
    assert_eq!(status, 404);
    let (_, list) = other.get("/invocations/").await;
    assert_eq!(list, json!([]));
    app.stop().await;
}

#[tokio::test]
async fn a_schedule_fires_once_per_tick_however_many_replicas_run() {
    let mut app = TestApp::with_workers(&[Runtime::Docker]).await;
    app.add_api_replica().await;
    app.add_api_replica().await;
    let mut function = python("ticker", "def handler(event, context):\n    return event");
    function["schedule"] = json!("* * * * *");
    function["schedule_timezone"] = json!("Europe/Paris");
    let created = app.create_function(function).await;
    assert_eq!(created["schedule"], "* * * * *");
    assert_eq!(created["schedule_timezone"], "Europe/Paris");
    let started = Instant::now();
    let fired = loop {
        let (_, list) = app
            .get("/invocations/?function=ticker&status=succeeded")
            .await;
        if let Some(first) = list.as_array().unwrap().first() {
            break first.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(75),
            "no tick within a minute"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(fired["mode"], "schedule");
    assert_eq!(fired["result"]["source"], "schedule");
    let time = fired["result"]["scheduled_time"].as_str().unwrap();
    let tick = chrono::DateTime::parse_from_rfc3339(time).unwrap();
    assert_eq!(tick.timestamp() % 60, 0, "a minute's tick: {time}");
    // Three replicas saw the tick; wait past their next looks, then count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, list) = app.get("/invocations/?function=ticker").await;
    let same_tick = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["result"]["scheduled_time"] == time || v["status"] != "succeeded")
        .count();
    assert_eq!(same_tick, 1, "{list}");

    // Removing the schedule applies without a restart.
    let mut function = python("ticker", "def handler(event, context):\n    return event");
    function["schedule"] = Value::Null;
    let (status, updated) = app
        .put(&format!("/functions/{}", created["id"]), &function)
        .await;
    assert_eq!(status, 200);
    assert!(updated["schedule"].is_null());
    app.stop().await;
}

/// The api binary as its own process, killed like a crashed one.
struct ApiProcess {
    child: tokio::process::Child,
}

impl ApiProcess {
    async fn start(app: &TestApp) -> ApiProcess {
        let addr = free_local_addr();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_api"))
            .env("DATABASE_URL", &app.database_url)
            .env("AMQP_URL", crate::support::amqp_url())
            .env("QUEUE_PREFIX", &app.prefix)
            .env("API_ADDR", addr.to_string())
            .env("METRICS_ADDR", free_local_addr().to_string())
            .env("FUNCTIONS_ADDR", free_local_addr().to_string())
            .env("ADMIN_KEY", ADMIN_KEY)
            .env("INVOKE_OVERHEAD_MS", "2000")
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("the api binary starts");
        let base_url = format!("http://{addr}");
        crate::support::wait_for_api_process(&mut child, &base_url).await;
        ApiProcess { child }
    }

    async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

#[tokio::test]
async fn an_accepted_call_survives_its_worker_and_its_api_killed_mid_run() {
    // The test's own api only accepts: the api processes run the async jobs.
    let app = TestApp::start_with(|config| config.async_concurrency = 0).await;
    let slow = "import time\ndef handler(event, context):\n    time.sleep(2)\n    return {'attempt': context.attempt}";
    let mut function = python("survivor", slow);
    function["timeout"] = json!(5);
    app.create_function(function).await;
    let first_api = ApiProcess::start(&app).await;

    // The worker dies mid-run: the job goes back to its queue and another worker runs it.
    let mut first = WorkerProcess::start(&app, &format!("{}w1", app.prefix)).await;
    let (status, body) = call_async(&app, "survivor", json!({}), None).await;
    assert_eq!(status, 202);
    let id = id_of(&body);
    wait_for_status(&app, &id, "running", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.signal("KILL");
    first.child.wait().await.unwrap();
    let killed = Instant::now();
    let mut second = WorkerProcess::start(&app, &format!("{}w2", app.prefix)).await;
    let done = wait_for_status(&app, &id, "succeeded", Duration::from_secs(60)).await;
    eprintln!(
        "worker SIGKILL: succeeded {:?} after the kill: {done}",
        killed.elapsed()
    );

    // The api running the attempt dies: the broker gives its job to another api, which takes
    // the attempt over once the dead one's claim lapses, and runs it again.
    let (status, body) = call_async(&app, "survivor", json!({}), None).await;
    assert_eq!(status, 202, "{body}");
    let id = id_of(&body);
    wait_for_status(&app, &id, "running", Duration::from_secs(30)).await;
    first_api.kill().await;
    let killed = Instant::now();
    let second_api = ApiProcess::start(&app).await;
    let done = wait_for_status(&app, &id, "succeeded", Duration::from_secs(90)).await;
    eprintln!(
        "api SIGKILL: succeeded {:?} after the kill: {done}",
        killed.elapsed()
    );
    assert_eq!(
        done["attempts"].as_array().unwrap().len(),
        1,
        "the same attempt, run again: {done}"
    );
    assert_eq!(done["result"], json!({"attempt": 1}));
    second_api.kill().await;
    second.signal("TERM");
    second.child.wait().await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_loop_of_destinations_stops_after_sixteen_links() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    let ping = app
        .create_function(python("ping", "def handler(event, context):\n    return 1"))
        .await;
    let mut pong = python("pong", "def handler(event, context):\n    return 2");
    pong["on_success"] = json!("ping");
    app.create_function(pong).await;
    let mut ping_again = python("ping", "def handler(event, context):\n    return 1");
    ping_again["on_success"] = json!("pong");
    let (status, body) = app
        .put(&format!("/functions/{}", ping["id"]), &ping_again)
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, _) = call_async(&app, "ping", json!({}), None).await;
    assert_eq!(status, 202);
    // The call and 16 destinations, then nothing more.
    let count = || async {
        let (_, ping) = app
            .get("/invocations/?function=ping&status=succeeded&limit=100")
            .await;
        let (_, pong) = app
            .get("/invocations/?function=pong&status=succeeded&limit=100")
            .await;
        ping.as_array().unwrap().len() + pong.as_array().unwrap().len()
    };
    let started = Instant::now();
    while count().await < 17 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the chain stalled at {}",
            count().await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count().await, 17, "the loop stopped");
    app.stop().await;
}
