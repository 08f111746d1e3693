//! The public port under load and hostile clients: the bound on requests in flight, header and
//! body read timeouts (raw TCP clients), and oversized bodies answered 413 to a real Python
//! urllib client, which writes its whole body before it reads the answer.

use crate::support::{ADMIN_KEY, TestApp, python};
use common::Runtime;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn requests_over_max_inflight_get_503_overloaded_at_once_and_probes_still_answer() {
    let app = TestApp::with_workers_and(&[Runtime::Docker], |config| config.max_inflight = 2).await;
    app.create_function(python(
        "sleepy",
        "import time\ndef handler(event, context):\n    time.sleep(2)\n    return 'slept'",
    ))
    .await;

    let slow_calls: Vec<_> = (0..2)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url("/execute/sleepy"));
            tokio::spawn(async move {
                let response = client.post(url).json(&json!({})).send().await.unwrap();
                response.status().as_u16()
            })
        })
        .collect();
    // Both slow calls hold their permits once the container runs; wait until a third is refused.
    let mut refused = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let response = app
            .client
            .post(app.url("/execute/sleepy"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        if response.status() == 503 {
            refused = Some((started.elapsed(), response));
            break;
        }
    }
    let (elapsed, response) = refused.expect("a third request is refused while two are in flight");
    assert!(
        elapsed < Duration::from_millis(500),
        "refused at once: {elapsed:?}"
    );
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "overloaded", "{body}");
    assert!(body["detail"].as_str().unwrap().contains("MAX_INFLIGHT"));

    // Other routes are bounded too; the probes are not.
    let (status, _) = app.get("/functions/").await;
    assert_eq!(status, 503);
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, 200);
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "{body}");

    for call in slow_calls {
        assert_eq!(call.await.unwrap(), 200, "the calls in flight finish");
    }
    let (status, body) = app.invoke("execute", "sleepy", json!({})).await;
    assert_eq!(status, 200, "a call after them is served: {body}");
    app.stop().await;
}

/// Reads until the server closes the connection or `limit` passes; returns what was read and
/// whether the connection was closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (String::from_utf8_lossy(&received).into_owned(), true);
            }
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), false),
        }
    }
}

fn address(app: &TestApp) -> String {
    app.base_url.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn a_client_that_stops_mid_headers_is_disconnected_after_the_header_timeout() {
    let app = TestApp::start_with(|config| config.header_read_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET /functions/ HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let (received, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    assert!(closed, "the connection is still open after 5 s");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "closed after {elapsed:?}, the timeout is 1 s"
    );
    assert!(!received.contains("200 OK"), "{received}");

    // A client that sends its headers in time is served as before.
    let (status, _) = app.get("/functions/").await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_stalls_gets_408_and_the_connection_closes() {
    let app = TestApp::start_with(|config| config.body_read_timeout_secs = 1).await;
    for path in ["/functions/", "/execute/anything"] {
        let mut stream = TcpStream::connect(address(&app)).await.unwrap();
        let started = Instant::now();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\": "
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let (received, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        let elapsed = started.elapsed();
        assert!(closed, "{path}: the connection is still open after 5 s");
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
            "{path}: answered after {elapsed:?}, the timeout is 1 s"
        );
        assert!(received.starts_with("HTTP/1.1 408"), "{path}: {received:?}");
        assert!(received.contains("\"code\":\"body_timeout\""), "{received}");
    }
    app.stop().await;
}

/// POSTs `size` bytes to `url` with Python's urllib, with a Content-Length or chunked, and
/// returns what it printed: the status and error code it read, or its traceback.
async fn urllib_post(url: &str, kind: &str, size: usize, chunked: bool, key: &str) -> String {
    let script = r##"
import json, sys, urllib.error, urllib.request
url, kind, size, chunked = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "chunked"
headers = {"Content-Type": "application/json"}
if sys.argv[5]:
    headers["Authorization"] = "Bearer " + sys.argv[5]
if kind == "function":
    body = json.dumps({"name": "big", "route": "/big", "language": "python",
                       "code": "#" * size, "timeout": 5}).encode()
else:
    body = json.dumps({"event": {"blob": "x" * size}}).encode()
# An iterable body has no length: urllib sends it chunked.
data = (body[i:i + 65536] for i in range(0, len(body), 65536)) if chunked else body
request = urllib.request.Request(url, data=data, method="POST", headers=headers)
try:
    with urllib.request.urlopen(request, timeout=30) as response:
        print(response.status)
except urllib.error.HTTPError as error:
    print(error.code, json.loads(error.read())["code"])
"##;
    let output = tokio::process::Command::new("python3")
        .args(["-c", script, url, kind, &size.to_string()])
        .arg(if chunked { "chunked" } else { "length" })
        .arg(key)
        .output()
        .await
        .expect("python3 runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn python_urllib_reads_the_413_for_oversized_code_and_events() {
    let app = TestApp::start_with(|config| config.max_event_bytes = 1024 * 1024).await;
    // 2.5 MiB may fit in the loopback's socket buffers, so that a client would see the 413
    // even from a server that closes early; 12 MiB does not.
    for size in [2 * 1024 * 1024 + 512 * 1024, 12 * 1024 * 1024] {
        for chunked in [false, true] {
            let printed = urllib_post(
                &app.url("/functions/"),
                "function",
                size,
                chunked,
                ADMIN_KEY,
            )
            .await;
            assert_eq!(
                printed.trim(),
                "413 payload_too_large",
                "creating a function with {size} bytes of code (chunked: {chunked})"
            );
            // Without a key a body that large is not read (only discarded): the client still
            // reads its 401.
            let printed = urllib_post(&app.url("/functions/"), "function", size, chunked, "").await;
            assert_eq!(
                printed.trim(),
                "401 unauthorized",
                "an anonymous function of {size} bytes (chunked: {chunked})"
            );
            let url = app.url("/execute/big");
            let printed = urllib_post(&url, "event", size, chunked, ADMIN_KEY).await;
            assert_eq!(
                printed.trim(),
                "413 payload_too_large",
                "an event of {size} bytes (chunked: {chunked})"
            );
            // An anonymous one is answered before its body is read, then drained: the client
            // reads its 401 all the same.
            let printed = urllib_post(&url, "event", size, chunked, "").await;
            assert_eq!(
                printed.trim(),
                "401 unauthorized",
                "an anonymous event of {size} bytes (chunked: {chunked})"
            );
        }
    }
    // The api is unharmed, and nothing was stored.
    let (status, list) = app.get("/functions/").await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([]));
    // Code just under the limit still arrives whole and gets its own 413 from validation.
    let (status, body) = app
        .post("/functions/", &python("big", &"#".repeat(1024 * 1024 + 1)))
        .await;
    assert_eq!(status, 413, "{body}");
    app.stop().await;
}
