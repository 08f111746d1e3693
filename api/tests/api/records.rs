//! Invocation records never stall: text Postgres cannot hold is cleaned, rows it still refuses
//! are dropped one by one while the rest are written, and old records expire.

use crate::support::{TestApp, create_database, drop_database, python, worker_config};
use api::store::InvocationRecord;
use common::{ErrorInfo, Runtime};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn an_error_with_nul_is_recorded_cleaned_and_holds_up_no_other_record() {
    let mut app = TestApp::start().await;
    app.add_worker(worker_config(Runtime::Docker, &app.prefix.clone()))
        .await;
    app.create_function(python(
        "nul_raiser",
        "def handler(event, context):\n    raise Exception('a\\x00b')",
    ))
    .await;
    app.create_function(python(
        "healthy",
        "def handler(event, context):\n    return event['n']",
    ))
    .await;

    let (status, body) = app.invoke("execute", "nul_raiser", json!({})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        body["error"]["message"], "a\u{0}b",
        "the client sees what was raised"
    );
    for n in 0..3 {
        let (status, body) = app.invoke("execute", "healthy", json!({ "n": n })).await;
        assert_eq!(status, 200, "{body}");
    }

    let started = Instant::now();
    let (status, records) = app.get("/metrics/").await;
    assert_eq!(status, 200, "{records}");
    assert!(started.elapsed() < Duration::from_secs(2), "promptly");
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 4, "all four records: {records:?}");
    let raised = records
        .iter()
        .find(|r| r["function_name"] == "nul_raiser")
        .expect("the failed call is recorded");
    assert_eq!(raised["status"], "error");
    assert_eq!(raised["error"]["type"], "Exception");
    assert_eq!(raised["error"]["message"], "a\u{FFFD}b");
    let healthy = records.iter().filter(|r| r["function_name"] == "healthy");
    assert_eq!(healthy.count(), 3);
    app.stop().await;
}

/// A record of namespace `default`, whose incarnation is `uid`.
fn record(uid: uuid::Uuid, worker_id: &str) -> InvocationRecord {
    InvocationRecord {
        invocation_id: uuid::Uuid::now_v7(),
        namespace: "default".into(),
        function_id: 1,
        function_name: "f".into(),
        function_version: 1,
        runtime: "docker".into(),
        trigger: "execute".into(),
        attempt: 1,
        status: "error".into(),
        cold_start: false,
        duration_ms: 1.0,
        queue_ms: None,
        init_ms: None,
        run_ms: None,
        worker_id: Some(worker_id.into()),
        error: Some(ErrorInfo::new("Exception", "boom")),
        logs: Some("printed\n".into()),
        logs_truncated: false,
        created_at: chrono::Utc::now(),
        namespace_uid: uid,
    }
}

fn rejected_count() -> u64 {
    let text = common::metrics::handle().render();
    text.lines()
        .find(|line| line.starts_with("faas_records_dropped_total{reason=\"rejected\"}"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn rows_postgres_refuses_are_dropped_and_counted_and_the_rest_written() {
    let url = create_database().await;
    let pool = api::store::connect(&url, 2).await.unwrap();
    // Uncleaned on purpose: the writer cleans records before this, so here Postgres itself
    // refuses the NUL (SQLSTATE 22021) and the batch must be split around it.
    let uid = api::store::get_namespace(&pool, "default")
        .await
        .unwrap()
        .expect("default exists")
        .uid;
    let batch = vec![
        record(uid, "w1"),
        record(uid, "w2"),
        record(uid, "bad\0worker"),
        record(uid, "w4"),
        record(uid, "w5"),
    ];
    let before = rejected_count();
    let written = api::records::store(&pool, &batch).await;
    assert!(written.error.is_none(), "{:?}", written.error);
    assert_eq!(written.settled, 5);
    // The rows written, each with its place in storage order, in the batch's order.
    let seqs: Vec<i64> = written.stored.iter().map(|row| row.seq).collect();
    assert_eq!(seqs.len(), 4);
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
    assert!(rejected_count() > before, "counted as rejected");

    let stored = api::store::list_invocations(&pool, "default", None, None, 100)
        .await
        .unwrap();
    let mut ids: Vec<_> = stored.iter().map(|r| r.invocation_id).collect();
    ids.sort();
    let mut expected: Vec<_> = batch
        .iter()
        .filter(|r| r.worker_id.as_deref() != Some("bad\0worker"))
        .map(|r| r.invocation_id)
        .collect();
    expected.sort();
    assert_eq!(ids, expected);
    drop(pool);
    drop_database(&url).await;
}

#[tokio::test]
async fn records_older_than_the_retention_are_deleted_in_the_background() {
    let app = TestApp::start_with(|config| {
        config.record_retention_days = 7;
        config.retention_interval_secs = 1;
    })
    .await;
    let (client, connection) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // More old rows than one batch holds, so the pass has to loop.
    client
        .batch_execute(
            "INSERT INTO invocations (id, function_id, function_name, function_version, runtime,
                 status, cold_start, duration_ms, created_at)
             SELECT gen_random_uuid(), 1, 'old', 1, 'docker', 'success', false, 1,
                 now() - interval '8 days' - i * interval '1 second'
             FROM generate_series(1, 2500) AS i;
             INSERT INTO invocations (id, function_id, function_name, function_version, runtime,
                 status, cold_start, duration_ms, created_at)
             SELECT gen_random_uuid(), 1, 'new', 1, 'docker', 'success', false, 1,
                 now() - i * interval '1 day'
             FROM generate_series(0, 6) AS i;
             INSERT INTO async_invocations (id, namespace, function_id, function_name, mode,
                 status, event, attempts, created_at, finished_at)
             SELECT gen_random_uuid(), 'default', 1, 'old_async', 'async', 'succeeded', '{}', 1,
                 now() - interval '9 days', now() - interval '8 days'
             FROM generate_series(1, 3);
             INSERT INTO invocation_attempts (invocation_id, attempt, outcome, started_at)
             SELECT id, 1, 'success', created_at FROM async_invocations;
             INSERT INTO async_invocations (id, namespace, function_id, function_name, mode,
                 status, event, attempts, created_at, finished_at)
             VALUES (gen_random_uuid(), 'default', 1, 'new_async', 'async', 'dead_lettered',
                     '{}', 3, now() - interval '6 days', now() - interval '6 days'),
                    (gen_random_uuid(), 'default', 1, 'unfinished', 'async', 'queued',
                     '{}', 1, now() - interval '8 days', NULL);",
        )
        .await
        .unwrap();
    let count = |name: &'static str| {
        let client = &client;
        async move {
            let row = client
                .query_one(
                    "SELECT count(*) FROM invocations WHERE function_name = $1",
                    &[&name],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0)
        }
    };
    let mut old = count("old").await;
    for _ in 0..60 {
        if old == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        old = count("old").await;
    }
    assert_eq!(old, 0, "records older than 7 days are deleted");
    assert_eq!(count("new").await, 7, "records within 7 days stay");
    let async_left: Vec<String> = client
        .query(
            "SELECT function_name FROM async_invocations ORDER BY function_name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        async_left,
        ["new_async", "unfinished"],
        "async invocations finished over 7 days ago go, the others stay"
    );
    let attempts: i64 = client
        .query_one("SELECT count(*) FROM invocation_attempts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 0, "with their attempts");
    // The api serves as before.
    let (status, _) = app.get("/metrics/?function=new").await;
    assert_eq!(status, 200);
    app.stop().await;
}
