//! `GET /invocations/stream` end to end (DESIGN §16a): server-sent events of finished calls
//! from the real api, with real workers, over the real broker and Postgres: live calls with
//! their logs, filters, namespaces kept apart, resuming with `Last-Event-ID`, a second api
//! replica's calls, the `STREAM_CLIENTS` bound, and the end at shutdown.

use crate::support::{ADMIN_KEY, TestApp, broker_connection_pid, client_with_key, python, read};
use api::store::InvocationRecord;
use common::Runtime;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// How long a live call may take to appear on a stream: generous, for a shared CI machine.
const LIVE_WITHIN: Duration = Duration::from_secs(5);

/// One server-sent event: its fields, or a comment.
#[derive(Debug, Clone, Default)]
struct SseEvent {
    id: Option<String>,
    event: Option<String>,
    data: String,
    comment: bool,
}

/// An open stream read as a client reads it: chunks of the body, split into events.
struct EventStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl EventStream {
    /// Opens `path` (with its query) on `base_url` with `key`, resuming after `last_event_id`.
    async fn open(base_url: &str, key: &str, path: &str, last_event_id: Option<i64>) -> Self {
        let mut request = client_with_key(key).get(format!("{base_url}{path}"));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.expect("the stream opens");
        assert_eq!(response.status(), 200, "{path}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        EventStream {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next event or comment; `None` when the stream ended; panics after `within`.
    async fn next_any(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.windows(2).position(|pair| pair == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                return Some(parse_event(&String::from_utf8(block).unwrap()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.extend_from_slice(&bytes),
                Ok(Ok(None)) | Ok(Err(_)) => return None,
                Err(_) => panic!("no event within {within:?}"),
            }
        }
    }

    /// The next `invocation` event's record (comments skipped), checking that its id is its
    /// `seq`; panics when none comes within `within`.
    async fn next_record(&mut self, within: Duration) -> Value {
        loop {
            let event = self
                .next_any(within)
                .await
                .expect("the stream ended before the next event");
            if event.comment {
                continue;
            }
            assert_eq!(event.event.as_deref(), Some("invocation"), "{event:?}");
            assert!(!event.data.contains('\n'), "one line of JSON: {event:?}");
            let record: Value = serde_json::from_str(&event.data).unwrap();
            assert_eq!(
                event.id.as_deref(),
                Some(record["seq"].to_string().as_str()),
                "the id is the seq"
            );
            return record;
        }
    }

    /// Asserts that no invocation event comes for `quiet`.
    async fn expect_no_record(&mut self, quiet: Duration) {
        let deadline = Instant::now() + quiet;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let chunk = tokio::time::timeout(left, self.response.chunk()).await;
            match chunk {
                Err(_) => break,
                Ok(Ok(Some(bytes))) => self.buffer.extend_from_slice(&bytes),
                Ok(_) => panic!("the stream ended"),
            }
        }
        let text = String::from_utf8_lossy(&self.buffer).to_string();
        assert!(!text.contains("event: invocation"), "unexpected: {text}");
    }
}

fn parse_event(block: &str) -> SseEvent {
    let mut event = SseEvent::default();
    let mut data = Vec::new();
    for line in block.lines() {
        if line.starts_with(':') {
            event.comment = true;
        } else if let Some((field, value)) = line.split_once(':') {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => event.id = Some(value.to_owned()),
                "event" => event.event = Some(value.to_owned()),
                "data" => data.push(value.to_owned()),
                _ => {}
            }
        }
    }
    event.data = data.join("\n");
    event
}

/// The refusal a stream request gets (`key` `None`: no key); panics, rather than reading an
/// endless body, when it is let in.
async fn refusal(
    base_url: &str,
    key: Option<&str>,
    path: &str,
    last_event_id: Option<&str>,
) -> (u16, Value) {
    let client = key.map_or_else(reqwest::Client::new, client_with_key);
    let mut request = client.get(format!("{base_url}{path}"));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request.send().await.unwrap();
    assert_ne!(response.status(), 200, "{path} was let in");
    read(response).await
}

/// A function that prints a line (and raises when the event says `fail`).
fn printer(name: &str) -> Value {
    python(
        name,
        "def handler(event, context):\n    print('hello from ' + context.function_name)\n    if event.get('fail'):\n        raise ValueError('asked to fail')\n    return event",
    )
}

/// Calls `name` on `/execute` in the caller's namespace; returns its invocation id.
async fn call(base_url: &str, key: &str, name: &str, event: Value) -> String {
    let response = client_with_key(key)
        .post(format!("{base_url}/execute/{name}"))
        .json(&json!({ "event": event }))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert!(status == 200 || status == 502, "{name}: {status} {body}");
    body["invocation_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn calls_appear_live_with_their_logs_filtered_and_only_in_their_namespace() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    let base = app.base_url.clone();
    let key = app
        .namespace_with_key("streamed", &["manage", "invoke"])
        .await;
    let reader = app.key_of("streamed", &["read"]).await;
    let other_key = app
        .namespace_with_key("elsewhere", &["manage", "invoke"])
        .await;
    let mut elsewhere = printer("printer");
    elsewhere["route"] = json!("/printer-elsewhere");
    for (key, function) in [
        (&key, printer("printer")),
        (&key, printer("quiet")),
        (&other_key, elsewhere),
    ] {
        let (status, body) = app.caller(Some(key)).post("/functions/", &function).await;
        assert_eq!(status, 201, "{body}");
    }
    let opened_at = chrono::Utc::now();

    let mut all = EventStream::open(&base, &reader, "/invocations/stream", None).await;
    let mut failed = EventStream::open(
        &base,
        &key,
        "/invocations/stream?function=printer&status=failed",
        None,
    )
    .await;
    let mut succeeded =
        EventStream::open(&base, &key, "/invocations/stream?status=succeeded", None).await;

    // Another namespace's call first: it must never show.
    call(&base, &other_key, "printer", json!({})).await;

    let started = Instant::now();
    let ok = call(&base, &key, "printer", json!({"n": 1})).await;
    let record = all.next_record(LIVE_WITHIN).await;
    assert!(
        started.elapsed() <= LIVE_WITHIN,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(record["invocation_id"], ok, "{record}");
    assert_eq!(record["function"], "printer");
    assert_eq!(record["status"], "success");
    assert_eq!(record["trigger"], "execute");
    assert_eq!(record["attempt"], 1);
    assert_eq!(record["runtime"], "docker");
    assert!(record["seq"].as_i64().unwrap() > 0);
    assert!(
        record["logs"]
            .as_str()
            .unwrap()
            .contains("hello from printer"),
        "{record}"
    );
    assert_eq!(record["logs_truncated"], false);
    assert!(record["error"].is_null() && record["worker_id"].is_string());
    for field in [
        "function_version",
        "cold_start",
        "duration_ms",
        "created_at",
    ] {
        assert!(record.get(field).is_some(), "{field} in {record}");
    }
    let first_seq = record["seq"].as_i64().unwrap();

    let bad = call(&base, &key, "printer", json!({"fail": true})).await;
    let record = all.next_record(LIVE_WITHIN).await;
    assert_eq!(record["invocation_id"], bad);
    assert_eq!(record["status"], "error");
    assert_eq!(record["error"]["type"], "ValueError");
    assert!(record["seq"].as_i64().unwrap() > first_seq);

    let quiet = call(&base, &key, "quiet", json!({})).await;
    assert_eq!(all.next_record(LIVE_WITHIN).await["invocation_id"], quiet);

    // The function's route, and an async attempt, are calls too.
    let response = client_with_key(&key)
        .get(app.fn_url("/printer"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let record = all.next_record(LIVE_WITHIN).await;
    assert_eq!(
        (&record["trigger"], &record["function"]),
        (&json!("http"), &json!("printer"))
    );
    let (status, accepted) = app
        .caller(Some(&key))
        .post("/execute_async/quiet", &json!({"event": {}}))
        .await;
    assert_eq!(status, 202, "{accepted}");
    let record = all.next_record(Duration::from_secs(15)).await;
    assert_eq!(record["invocation_id"], accepted["invocation_id"]);
    assert_eq!(
        (&record["trigger"], &record["attempt"]),
        (&json!("async"), &json!(1))
    );

    // The filters: printer's failure only; successes of any function.
    assert_eq!(failed.next_record(LIVE_WITHIN).await["invocation_id"], bad);
    failed.expect_no_record(Duration::from_millis(500)).await;
    let firsts: Vec<Value> = [
        succeeded.next_record(LIVE_WITHIN).await,
        succeeded.next_record(LIVE_WITHIN).await,
    ]
    .iter()
    .map(|record| record["invocation_id"].clone())
    .collect();
    assert_eq!(firsts, [json!(ok), json!(quiet)]);
    all.expect_no_record(Duration::from_millis(500)).await;

    // The records and views carry the logs too, and `since` narrows them.
    let caller = app.caller(Some(&reader));
    let (status, records) = caller.get("/metrics/?function=printer").await;
    assert_eq!(status, 200, "{records}");
    let stored = records
        .as_array()
        .unwrap()
        .iter()
        .find(|record| record["invocation_id"] == ok)
        .expect("the call is recorded");
    assert!(
        stored["logs"]
            .as_str()
            .unwrap()
            .contains("hello from printer")
    );
    let (_, view) = caller.get(&format!("/invocations/{ok}")).await;
    assert!(
        view["logs"]
            .as_str()
            .unwrap()
            .contains("hello from printer"),
        "{view}"
    );
    let since = (opened_at - chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let later = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for path in ["/metrics/", "/invocations/"] {
        let (status, listed) = caller.get(&format!("{path}?since={since}")).await;
        assert_eq!(status, 200, "{listed}");
        assert!(!listed.as_array().unwrap().is_empty(), "{path}");
        let (status, listed) = caller.get(&format!("{path}?since={later}")).await;
        assert_eq!((status, listed), (200, json!([])), "{path}");
        let (status, _) = caller.get(&format!("{path}?since=yesterday")).await;
        assert_eq!(status, 422, "{path}");
    }
    // Refusals: a key of no read or invoke scope, a status the stream does not take.
    let manager = app.key_of("streamed", &["manage"]).await;
    let (status, body) = refusal(&base, Some(&manager), "/invocations/stream", None).await;
    assert_eq!(
        (status, &body["code"]),
        (403, &json!("forbidden")),
        "{body}"
    );
    let path = "/invocations/stream?status=dead_lettered";
    let (status, body) = refusal(&base, Some(&key), path, None).await;
    assert_eq!(
        (status, &body["code"]),
        (422, &json!("invalid_request")),
        "{body}"
    );
    let (status, _) = refusal(&base, None, "/invocations/stream", None).await;
    assert_eq!(status, 401);
    drop((all, failed, succeeded));
    app.stop().await;
}

#[tokio::test]
async fn a_stream_resumes_without_gaps_or_repeats_hears_every_replica_is_bounded_and_ends_at_shutdown()
 {
    let mut app = TestApp::with_workers_and(&[Runtime::Docker], |config| {
        config.stream_clients = 2;
        config.max_inflight = 2;
    })
    .await;
    let base = app.base_url.clone();
    app.create_function(printer("printer")).await;

    let mut stream = EventStream::open(&base, ADMIN_KEY, "/invocations/stream", None).await;
    let mut seen = Vec::new();
    for n in 0..2 {
        let id = call(&base, ADMIN_KEY, "printer", json!({ "n": n })).await;
        let record = stream.next_record(LIVE_WITHIN).await;
        assert_eq!(record["invocation_id"], id);
        seen.push(record["seq"].as_i64().unwrap());
    }
    drop(stream);

    // Missed while away: three calls, in order.
    let mut missed = Vec::new();
    for n in 2..5 {
        missed.push(json!(
            call(&base, ADMIN_KEY, "printer", json!({ "n": n })).await
        ));
    }
    let last_seen = *seen.last().unwrap();
    let mut resumed =
        EventStream::open(&base, ADMIN_KEY, "/invocations/stream", Some(last_seen)).await;
    let mut replayed = Vec::new();
    let mut seqs = Vec::new();
    for _ in 0..3 {
        let record = resumed.next_record(LIVE_WITHIN).await;
        replayed.push(record["invocation_id"].clone());
        seqs.push(record["seq"].as_i64().unwrap());
    }
    assert_eq!(replayed, missed, "exactly the missed calls, oldest first");
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]) && seqs[0] > last_seen);
    // Then live, nothing twice.
    let live = call(&base, ADMIN_KEY, "printer", json!({"n": 5})).await;
    assert_eq!(
        resumed.next_record(LIVE_WITHIN).await["invocation_id"],
        live
    );
    resumed.expect_no_record(Duration::from_millis(500)).await;
    // `after=` resumes as the header does.
    let mut after = EventStream::open(
        &base,
        ADMIN_KEY,
        &format!("/invocations/stream?after={}", seen[0]),
        None,
    )
    .await;
    assert_eq!(after.next_record(LIVE_WITHIN).await["seq"], seen[1]);
    drop(after);
    let path = "/invocations/stream";
    let (status, body) = refusal(&base, Some(ADMIN_KEY), path, Some("not-a-number")).await;
    assert_eq!(
        (status, &body["code"]),
        (422, &json!("invalid_request")),
        "{body}"
    );

    // A call served by a second replica reaches this replica's stream over the broker.
    let replica = app.add_api_replica().await;
    let elsewhere = call(&replica.base_url, ADMIN_KEY, "printer", json!({"n": 6})).await;
    let started = Instant::now();
    assert_eq!(
        resumed.next_record(LIVE_WITHIN).await["invocation_id"],
        elsewhere
    );
    assert!(started.elapsed() <= LIVE_WITHIN);

    // STREAM_CLIENTS (2) streams are open now, holding none of the MAX_INFLIGHT (2) permits:
    // a third is refused, other requests are served.
    let mut second = EventStream::open(&base, ADMIN_KEY, "/invocations/stream", None).await;
    let (status, body) = refusal(&base, Some(ADMIN_KEY), "/invocations/stream", None).await;
    assert_eq!(
        (status, &body["code"]),
        (429, &json!("too_many_streams")),
        "{body}"
    );
    for _ in 0..3 {
        let (status, body) = app.get("/functions/").await;
        assert_eq!(status, 200, "{body}");
    }
    // The other replica has its own bound.
    let mut there =
        EventStream::open(&replica.base_url, ADMIN_KEY, "/invocations/stream", None).await;
    let here = call(&base, ADMIN_KEY, "printer", json!({"n": 7})).await;
    assert_eq!(there.next_record(LIVE_WITHIN).await["invocation_id"], here);
    assert_eq!(second.next_record(LIVE_WITHIN).await["invocation_id"], here);
    drop(there);

    // Shutdown ends the open streams at once rather than waiting for them.
    let readers = [resumed, second].map(|mut stream| {
        tokio::spawn(async move {
            while stream.next_any(Duration::from_secs(60)).await.is_some() {}
            Instant::now()
        })
    });
    let stopping = Instant::now();
    tokio::time::timeout(Duration::from_secs(30), app.stop())
        .await
        .expect("the app stops with streams open");
    for reader in readers {
        let ended = reader.await.unwrap();
        assert!(
            ended.duration_since(stopping) < Duration::from_secs(20),
            "the stream ended with the api"
        );
    }
}

/// The broker connection of the api at `base_url` (its main one, not its dispatcher's), as
/// rabbitmqctl names it.
fn api_connection_pid(base_url: &str) -> Option<String> {
    let address = base_url.trim_start_matches("http://");
    let name = format!("{{\"connection_name\",\"faas-api {address} ");
    broker_connection_pid(|properties| {
        properties.contains(&name) && !properties.contains("dispatcher")
    })
}

#[tokio::test]
async fn a_stream_reads_what_it_missed_from_the_database_when_the_broker_connection_is_back() {
    let app = TestApp::start().await;
    let mut stream = EventStream::open(&app.base_url, ADMIN_KEY, "/invocations/stream", None).await;
    // A record stored without being published, as one stored while the broker was away is.
    let pool = api::store::connect(&app.database_url, 1).await.unwrap();
    let namespace = api::store::get_namespace(&pool, "default")
        .await
        .unwrap()
        .unwrap();
    let record = InvocationRecord {
        invocation_id: uuid::Uuid::now_v7(),
        namespace: "default".into(),
        function_id: 1,
        function_name: "unheard".into(),
        function_version: 1,
        runtime: "docker".into(),
        trigger: "execute".into(),
        attempt: 1,
        status: "success".into(),
        cold_start: false,
        duration_ms: 1.0,
        queue_ms: None,
        init_ms: None,
        run_ms: None,
        worker_id: Some("w".into()),
        error: None,
        logs: Some("missed while away\n".into()),
        logs_truncated: false,
        created_at: chrono::Utc::now(),
        namespace_uid: namespace.uid,
    };
    let written = api::records::store(&pool, std::slice::from_ref(&record)).await;
    assert_eq!(written.stored.len(), 1, "{:?}", written.error);
    stream.expect_no_record(Duration::from_secs(1)).await;

    let pid = api_connection_pid(&app.base_url).expect("the api's connection is listed");
    let closed = std::process::Command::new("rabbitmqctl")
        .args(["-q", "close_connection", &pid, "test: events may be missed"])
        .status()
        .unwrap();
    assert!(closed.success());
    let resynced = stream.next_record(Duration::from_secs(15)).await;
    assert_eq!(resynced["invocation_id"], json!(record.invocation_id));
    assert_eq!(resynced["seq"], written.stored[0].seq);
    assert_eq!(resynced["logs"], "missed while away\n");
    stream.expect_no_record(Duration::from_millis(500)).await;
    drop((stream, pool));
    app.stop().await;
}
