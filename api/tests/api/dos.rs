//! Denial of service without a key (issue 21, DESIGN §19 "No key, no resources"), through real
//! processes: the api binary started as an operator would (with the usual soft limit of 1,024
//! open files), a real Docker worker, and 1,500 anonymous raw TCP clients that stall in the
//! middle of a 6 MB body; the connections one client address may hold; and a body trickled a
//! byte at a time, stopped by the total request time.

use crate::support::{
    ADMIN_KEY, TestApp, amqp_url, client_with_key, free_local_addr, python, read,
};
use common::Runtime;
use futures_util::future::join_all;
use serde_json::json;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Anonymous connections held open at once: more than `MAX_INFLIGHT`'s default (1,024), and
/// more than the api's descriptors under a soft limit of 1,024.
const FLOOD: usize = 1_500;
/// The loopback addresses they come from, 188 each: under `MAX_CONNECTIONS_PER_PEER` (256).
const SOURCES: std::ops::RangeInclusive<u8> = 2..=9;
/// How long the api reads on a refused body before it lets the connection go
/// (`limits::DRAIN_MAX_TIME`).
const DRAIN_MAX_TIME: Duration = Duration::from_secs(10);

/// How soon a keyed call or list must be answered, flood or not. Not a measure of speed (the
/// test prints the medians): a flood that starved keyed callers would hold them until the
/// drain lets go, past this; a CI machine busy with the other tests stays well under it.
const SERVED_WITHIN: Duration = Duration::from_secs(8);
/// How soon each stalled anonymous request must be refused: well before the body it never
/// sends could have been waited for (`REQUEST_TIMEOUT`), on a busy machine.
const ANSWERED_WITHIN: Duration = Duration::from_secs(10);

/// The api binary, run as its own process on a test app's database and queues.
struct ApiProcess {
    child: tokio::process::Child,
    base_url: String,
    addr: SocketAddr,
}

impl ApiProcess {
    /// Starts `api` under a soft limit of 1,024 open files (`prlimit`), as a shell's default
    /// would leave it, on `app`'s database and queues; returns once it is ready.
    async fn start(app: &TestApp) -> ApiProcess {
        let addr = free_local_addr();
        let (_, hard) = rlimit::Resource::NOFILE
            .get()
            .expect("RLIMIT_NOFILE is readable");
        let child = tokio::process::Command::new("prlimit")
            .arg(format!("--nofile={}:", hard.min(1024)))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_api"))
            .env("DATABASE_URL", &app.database_url)
            .env("AMQP_URL", amqp_url())
            .env("QUEUE_PREFIX", &app.prefix)
            .env("ADMIN_KEY", ADMIN_KEY)
            .env("API_ADDR", addr.to_string())
            .env("METRICS_ADDR", free_local_addr().to_string())
            .env("FUNCTIONS_ADDR", free_local_addr().to_string())
            .env("AUTH", "enabled")
            .env("RUST_LOG", "warn")
            .env("LOG_FORMAT", "json")
            .kill_on_drop(true)
            .spawn()
            .expect("prlimit (util-linux) runs the api binary");
        let mut api = ApiProcess {
            child,
            base_url: format!("http://{addr}"),
            addr,
        };
        crate::support::wait_for_api_process(&mut api.child, &api.base_url).await;
        api
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("the api process runs")
    }

    /// A line of `/proc/<pid>/<file>` that starts with `prefix`.
    fn proc_line(&self, file: &str, prefix: &str) -> String {
        let text = std::fs::read_to_string(format!("/proc/{}/{file}", self.pid())).unwrap();
        text.lines()
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in /proc/<pid>/{file}"))
            .to_owned()
    }

    /// Resident memory, in MiB.
    fn rss_mib(&self) -> f64 {
        let line = self.proc_line("status", "VmRSS:");
        let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib / 1024.0
    }

    /// Descriptors open now.
    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// Its soft and hard limits of open files.
    fn nofile_limits(&self) -> (String, String) {
        let line = self.proc_line("limits", "Max open files");
        let mut numbers = line["Max open files".len()..].split_whitespace();
        (
            numbers.next().unwrap().to_owned(),
            numbers.next().unwrap().to_owned(),
        )
    }

    /// SIGTERM, then waits for a clean exit.
    async fn stop(mut self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the api process stops within 30 s of SIGTERM")
            .unwrap();
        assert!(exit.success(), "the api process exited with {exit}");
    }
}

/// A connection from `source` to `api` that sent `request` (headers and the first byte of a
/// body) and nothing more.
struct Stalled {
    stream: TcpStream,
    /// How long the api took to answer, once it did.
    answered_in: Duration,
    answer: String,
}

/// Opens a connection from `source`, sends `request` and reads the api's answer (at most
/// `limit`), leaving the connection open.
async fn stall(api: SocketAddr, source: Ipv4Addr, request: &[u8], limit: Duration) -> Stalled {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((source, 0).into()).unwrap();
    let mut stream = socket.connect(api).await.unwrap();
    stream.write_all(request).await.unwrap();
    let sent = Instant::now();
    let answer = read_answer(&mut stream, limit).await;
    Stalled {
        stream,
        answered_in: sent.elapsed(),
        answer,
    }
}

/// One answer's text: its headers and its `Content-Length` body, or what came before the
/// connection closed or `limit` passed.
async fn read_answer(stream: &mut TcpStream, limit: Duration) -> String {
    let deadline = tokio::time::Instant::now() + limit;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|length| length.trim().parse::<usize>().ok());
            if length.is_some_and(|length| body.len() >= length) {
                return text;
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => received.extend_from_slice(&buffer[..n]),
            _ => return text,
        }
    }
}

/// Whether the server has closed `stream` (end of file, or reset), without waiting.
fn closed_by_server(stream: &TcpStream) -> bool {
    let mut buffer = [0u8; 64];
    match stream.try_read(&mut buffer) {
        Ok(0) => true,
        // Bytes after the answer: the drain never answers again, so this is not expected.
        Ok(_) => false,
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// `n` keyed calls of `url` one after the other, each 200 within `within`; their latencies.
async fn keyed_calls(
    client: &reqwest::Client,
    url: &str,
    n: usize,
    within: Duration,
) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let response = client
            .post(url)
            .json(&json!({"event": {"name": "flood"}}))
            .send()
            .await
            .unwrap();
        let elapsed = started.elapsed();
        let (status, body) = read(response).await;
        assert_eq!(status, 200, "a keyed call: {body}");
        assert!(elapsed < within, "a keyed call took {elapsed:?}");
        latencies.push(elapsed);
    }
    latencies
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::test]
async fn fifteen_hundred_stalled_anonymous_bodies_leave_keyed_calls_and_management_working() {
    // The test's own end of 1,500 connections needs more than a soft limit of 1,024.
    rlimit::increase_nofile_limit(u64::MAX).expect("RLIMIT_NOFILE can be raised");
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    let api = ApiProcess::start(&app).await;
    let (soft, hard) = api.nofile_limits();
    assert_eq!(
        soft, hard,
        "the api raised its soft open files limit to the hard one"
    );
    println!(
        "api process {}: open files limit {soft} (hard {hard}), started at 1024",
        api.pid()
    );

    let tenant = Caller::of(
        &api,
        &app.namespace_with_key("tenant", &["manage", "invoke"])
            .await,
    );
    let (status, body) = tenant
        .post(
            "/functions/",
            &python(
                "hello",
                "def handler(event, context):\n    return {'hello': event.get('name')}",
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let execute = format!("{}/execute/hello", api.base_url);
    // The first call starts the function cold, which a CI machine busy with other tests may
    // take seconds over.
    keyed_calls(&tenant.client, &execute, 5, Duration::from_secs(60)).await;
    let before = keyed_calls(&tenant.client, &execute, 20, SERVED_WITHIN).await;
    let management_before = tenant.list_functions(5).await;
    let (rss_before, fds_before) = (api.rss_mib(), api.open_fds());

    // Headers of a 6 MB body and its first byte: no key (one in three), a token that is no
    // key (one in three), or a key of the platform's shape with an id no key has (one in three,
    // each its own: every one is looked up in Postgres once).
    let anonymous = format!(
        "POST /execute/hello HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 6000000\r\n\r\n{{",
        api.addr
    );
    let with_token = |token: &str| {
        anonymous.replace("Host:", &format!("Authorization: Bearer {token}\r\nHost:"))
    };
    let requests: Vec<String> = (0..FLOOD)
        .map(|i| match i % 3 {
            0 => anonymous.clone(),
            1 => with_token("not-a-key-of-this-api"),
            _ => with_token(&format!(
                "faas_{}_{}",
                uuid::Uuid::new_v4().simple(),
                "s".repeat(43)
            )),
        })
        .collect();
    let flood_started = Instant::now();
    let mut stalled = Vec::with_capacity(FLOOD);
    let sources: Vec<Ipv4Addr> = SOURCES.map(|last| Ipv4Addr::new(127, 0, 0, last)).collect();
    for batch in (0..FLOOD).collect::<Vec<_>>().chunks(250) {
        stalled.extend(
            join_all(batch.iter().map(|&i| {
                stall(
                    api.addr,
                    sources[i % sources.len()],
                    requests[i].as_bytes(),
                    Duration::from_secs(20),
                )
            }))
            .await,
        );
    }
    let flood_opened_in = flood_started.elapsed();
    for connection in &stalled {
        assert!(
            connection.answer.starts_with("HTTP/1.1 401 "),
            "an anonymous request is refused at once: {:?}",
            connection.answer
        );
        assert!(
            connection
                .answer
                .to_ascii_lowercase()
                .contains("connection: close")
        );
        assert!(
            connection.answered_in < ANSWERED_WITHIN,
            "answered after {:?}",
            connection.answered_in
        );
    }
    let answered: Vec<Duration> = stalled.iter().map(|c| c.answered_in).collect();
    let slowest_answer = answered.iter().max().copied().unwrap();

    // While they are open (the api drains what comes of their bodies for up to 10 s).
    let open_at_calls = stalled
        .iter()
        .filter(|c| !closed_by_server(&c.stream))
        .count();
    let (rss_during, fds_during) = (api.rss_mib(), api.open_fds());
    let during = keyed_calls(&tenant.client, &execute, 20, SERVED_WITHIN).await;
    let management_during = tenant.list_functions(5).await;
    let open_after_calls = stalled
        .iter()
        .filter(|c| !closed_by_server(&c.stream))
        .count();

    println!(
        "{FLOOD} stalled 6 MB bodies without a valid key from {} addresses, opened in {flood_opened_in:?}: each answered 401 (median {:?}, slowest {slowest_answer:?})",
        sources.len(),
        median(answered.clone()),
    );
    println!(
        "still open when the keyed calls started: {open_at_calls}, when they ended: {open_after_calls}"
    );
    println!(
        "keyed /execute of a warm function: median {:?} before the flood, {:?} during it (slowest {:?})",
        median(before),
        median(during.clone()),
        during.iter().max().unwrap()
    );
    println!(
        "GET /functions/: median {:?} before the flood, {:?} during it",
        median(management_before),
        median(management_during)
    );
    println!(
        "api RSS {rss_before:.1} MiB and {fds_before} descriptors before; {rss_during:.1} MiB and {fds_during} descriptors with the flood open"
    );

    // The api lets go of every one once the drain's time is up, without a byte more.
    let mut waited = Duration::ZERO;
    while stalled.iter().any(|c| !closed_by_server(&c.stream)) {
        assert!(
            waited < DRAIN_MAX_TIME + Duration::from_secs(15),
            "{} stalled connections still open {:?} after the flood",
            stalled
                .iter()
                .filter(|c| !closed_by_server(&c.stream))
                .count(),
            flood_started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        waited += Duration::from_millis(200);
    }
    println!(
        "every stalled connection closed by the api {:?} after the flood began",
        flood_started.elapsed()
    );
    drop(stalled);
    keyed_calls(&tenant.client, &execute, 3, SERVED_WITHIN).await;
    api.stop().await;
    app.stop().await;
}

/// Requests to one api with one key.
struct Caller {
    base_url: String,
    client: reqwest::Client,
}

impl Caller {
    fn of(api: &ApiProcess, key: &str) -> Caller {
        Caller {
            base_url: api.base_url.clone(),
            client: client_with_key(key),
        }
    }

    /// `n` lists of the functions, each 200 (with `hello`) within [`SERVED_WITHIN`]; their
    /// latencies.
    async fn list_functions(&self, n: usize) -> Vec<Duration> {
        let mut latencies = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            let (status, functions) = self.get("/functions/").await;
            let elapsed = started.elapsed();
            assert_eq!(status, 200, "management works: {functions}");
            assert_eq!(functions[0]["name"], "hello");
            assert!(elapsed < SERVED_WITHIN, "a list took {elapsed:?}");
            latencies.push(elapsed);
        }
        latencies
    }

    async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        read(
            self.client
                .get(format!("{}{path}", self.base_url))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.base_url);
        read(self.client.post(url).json(body).send().await.unwrap()).await
    }
}

#[tokio::test]
async fn a_client_address_over_its_connections_is_refused_while_another_is_served() {
    let app = TestApp::start_with(|config| config.max_connections_per_peer = 4).await;
    let api: SocketAddr = app.base_url.trim_start_matches("http://").parse().unwrap();
    let connect_from = async |last: u8| {
        let socket = TcpSocket::new_v4().unwrap();
        socket
            .bind((Ipv4Addr::new(127, 0, 0, last), 0).into())
            .unwrap();
        socket.connect(api).await.unwrap()
    };
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from(2).await);
    }
    // The fifth from the same address: 503 and closed at once, before it sends anything.
    let mut fifth = connect_from(2).await;
    let started = Instant::now();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), fifth.read_to_string(&mut answer))
        .await
        .expect("the fifth connection is closed at once")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer:?}");
    assert!(answer.contains("\"code\":\"overloaded\""), "{answer}");
    assert!(answer.contains("MAX_CONNECTIONS_PER_PEER"), "{answer}");
    println!("refused in {:?}", started.elapsed());

    // Another address is served meanwhile, and so is one of the four held.
    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {ADMIN_KEY}").parse().unwrap();
    headers.insert(reqwest::header::AUTHORIZATION, bearer);
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)))
        .default_headers(headers)
        .build()
        .unwrap();
    let (status, body) = read(other.get(app.url("/functions/")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {api}\r\n\r\n");
    held[0].write_all(request.as_bytes()).await.unwrap();
    let answer = read_answer(&mut held[0], Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");

    // A connection that ends gives its place back.
    drop(held.pop());
    let mut served = None;
    for _ in 0..50 {
        let mut next = connect_from(2).await;
        next.write_all(request.as_bytes()).await.unwrap();
        let answer = read_answer(&mut next, Duration::from_secs(5)).await;
        if answer.starts_with("HTTP/1.1 200 ") {
            served = Some(next);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        served.is_some(),
        "a place is given back when a connection ends"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_body_trickled_a_byte_at_a_time_is_stopped_at_request_timeout() {
    let app = TestApp::start_with(|config| {
        config.request_timeout_secs = 2;
        config.body_read_timeout_secs = 1;
    })
    .await;
    let api = app.base_url.trim_start_matches("http://").to_owned();
    for path in ["/functions/", "/execute/anything"] {
        let mut stream = TcpStream::connect(&api).await.unwrap();
        let headers = format!(
            "POST {path} HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        );
        stream.write_all(headers.as_bytes()).await.unwrap();
        let started = Instant::now();
        // A byte every 200 ms: each well within BODY_READ_TIMEOUT_SECS (1 s).
        let (mut reader, mut writer) = stream.into_split();
        let trickle = tokio::spawn(async move {
            let mut sent = 0;
            while sent < 999 && writer.write_all(b" ").await.is_ok() {
                sent += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            sent
        });
        let mut received = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut received)).await;
        let elapsed = started.elapsed();
        let answer = String::from_utf8_lossy(&received);
        assert!(answer.starts_with("HTTP/1.1 408 "), "{path}: {answer:?}");
        assert!(
            answer.contains("\"code\":\"body_timeout\""),
            "{path}: {answer}"
        );
        assert!(
            elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(6),
            "{path}: answered after {elapsed:?}; REQUEST_TIMEOUT_SECS is 2"
        );
        trickle.abort();
        println!("{path}: 408 after {elapsed:?} of a byte every 200 ms");
    }
    // The api is unharmed.
    let (status, _) = app.get("/functions/").await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn every_keyed_route_answers_a_request_without_its_key_before_reading_its_body() {
    // A body read would end in 408 after 5 s: the answers below come before it.
    let app = TestApp::start_with(|config| {
        config.body_read_timeout_secs = 5;
        config.worker_token = Some(api::Secret("w".repeat(40)));
    })
    .await;
    let api = app.base_url.trim_start_matches("http://").to_owned();
    let id = uuid::Uuid::new_v4();
    let routes = [
        "POST /functions/",
        "PUT /functions/1",
        "POST /execute/hello",
        "POST /execute_gvisor/hello",
        "POST /execute_async/hello",
        "POST /keys/",
        "POST /namespaces/",
        &format!("POST /invocations/{id}/retry"),
        "POST /internal/builds/key/start",
        "POST /internal/builds/key/finish",
        &format!("PUT /internal/artifacts/{}", "0".repeat(64)),
    ];
    for route in routes {
        for authorization in ["", "Authorization: Bearer not-a-key-of-this-api\r\n"] {
            let mut stream = TcpStream::connect(&api).await.unwrap();
            let request = format!(
                "{route} HTTP/1.1\r\nHost: {api}\r\n{authorization}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let started = Instant::now();
            let answer = read_answer(&mut stream, Duration::from_secs(10)).await;
            let elapsed = started.elapsed();
            assert!(
                answer.starts_with("HTTP/1.1 401 "),
                "{route} {authorization:?}: {answer:?}"
            );
            assert!(answer.contains("\"code\":\"unauthorized\""), "{answer}");
            assert!(
                answer.to_ascii_lowercase().contains("connection: close"),
                "{route}: the unread body is not taken for a next request: {answer}"
            );
            assert!(
                elapsed < ANSWERED_WITHIN,
                "{route}: answered after {elapsed:?}, as if the body had been waited for"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_trigger_checks_its_route_and_key_before_it_reads_a_body() {
    let app = TestApp::start_with(|config| config.body_read_timeout_secs = 1).await;
    let code = "def handler(event, context):\n    return 'ok'";
    app.create_function(python("secret", code)).await;
    let mut open = python("open", code);
    open["http_auth"] = json!("none");
    app.create_function(open).await;
    let api = app.functions_url.trim_start_matches("http://").to_owned();
    // (route, Authorization, the answer, whether the body was waited for)
    let admin = format!("Authorization: Bearer {ADMIN_KEY}\r\n");
    let cases = [
        ("/secret", "", "HTTP/1.1 401 ", false),
        (
            "/secret",
            "Authorization: Bearer not-a-key-of-this-api\r\n",
            "HTTP/1.1 401 ",
            false,
        ),
        ("/nowhere", "", "HTTP/1.1 404 ", false),
        // Let in: the body is read, and it never comes.
        ("/secret", admin.as_str(), "HTTP/1.1 408 ", true),
        ("/open", "", "HTTP/1.1 408 ", true),
    ];
    for (route, authorization, expected, waited) in cases {
        let mut stream = TcpStream::connect(&api).await.unwrap();
        let request = format!(
            "POST {route} HTTP/1.1\r\nHost: {api}\r\n{authorization}Content-Length: 100\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let started = Instant::now();
        let answer = read_answer(&mut stream, Duration::from_secs(10)).await;
        let elapsed = started.elapsed();
        assert!(
            answer.starts_with(expected),
            "{route} {authorization:?}: {answer:?}"
        );
        if waited {
            assert!(
                elapsed >= Duration::from_millis(900),
                "{route}: {elapsed:?}"
            );
        } else {
            assert!(
                elapsed < Duration::from_millis(900),
                "{route} {authorization:?}: answered after {elapsed:?}, as if the body had been waited for"
            );
            assert!(
                answer.to_ascii_lowercase().contains("connection: close"),
                "{answer}"
            );
        }
    }
    app.stop().await;
}
