//! Starts the real api and real workers in this process, on port 0, against the real Postgres
//! (a fresh database per test), RabbitMQ (a fresh queue prefix per test) and Docker daemon.
//! A missing service makes the test fail with a message that names it.
//!
//! Tests run side by side and hold the shared services (Postgres, RabbitMQ) *shared*; a test
//! that restarts them holds them *exclusively*, so it runs alone ([`TestApp::start_alone`]).

#![allow(dead_code)]

use clap::Parser;
use common::Runtime;
use common::broker::Topology;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard, oneshot};
use tokio::task::JoinHandle;

/// The bootstrap admin key every test api runs with (`ADMIN_KEY`); `TestApp::client` sends it.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef-0123456789";

/// A client that sends `key` with every request (`Authorization: Bearer …`).
pub fn client_with_key(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
        .expect("a key is a valid header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("a client builds")
}

/// An api's settings for a test: its database and queue prefix, auth on with [`ADMIN_KEY`].
pub fn api_config(database_url: &str, prefix: &str) -> api::Config {
    let mut config = api::Config::parse_from(["api"]);
    config.database_url = database_url.to_owned();
    config.broker.amqp_url = amqp_url();
    config.broker.queue_prefix = prefix.to_owned();
    config.admin_key = Some(api::Secret(ADMIN_KEY.to_owned()));
    config
}

/// Held shared by every running test and exclusively by one that stops the services.
static SERVICES: RwLock<()> = RwLock::const_new(());

/// How a test holds the shared services, for as long as its [`TestApp`] lives.
enum ServicesHeld {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The server that per-test databases are created on.
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates an empty database and returns its URL.
pub async fn create_database() -> String {
    let name = format!("faas_test_{}", uuid::Uuid::new_v4().simple());
    let admin = admin_database_url();
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("Postgres is not reachable at {admin} (TEST_DATABASE_URL): {e}")
        });
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("cannot create a test database");
    let base = admin.rsplit_once('/').expect("a database URL has a path").0;
    format!("{base}/{name}")
}

/// The api's three listeners on port 0 of 127.0.0.1.
pub async fn listeners_on_port_0() -> api::Listeners {
    let bind = || TcpListener::bind("127.0.0.1:0");
    api::Listeners {
        api: bind().await.unwrap(),
        functions: bind().await.unwrap(),
        metrics: bind().await.unwrap(),
    }
}

/// Where a running api answers.
#[derive(Debug, Clone)]
pub struct ApiUrls {
    /// The management api's base URL.
    pub base_url: String,
    /// The functions' origin (their HTTP triggers).
    pub functions_url: String,
    pub metrics_url: String,
}

/// Runs the api with `config` on port 0; returns where it answers and its task.
async fn spawn_api(config: api::Config) -> (ApiUrls, Task) {
    let listeners = listeners_on_port_0().await;
    let urls = ApiUrls {
        base_url: format!("http://{}", listeners.api.local_addr().unwrap()),
        functions_url: format!("http://{}", listeners.functions.local_addr().unwrap()),
        metrics_url: format!("http://{}/metrics", listeners.metrics.local_addr().unwrap()),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        api::run(config, listeners, async {
            let _ = stopped.await;
        })
        .await
        .map_err(|e| format!("{e:#}"))
    });
    (urls, Task { stop, handle })
}

struct Task {
    stop: oneshot::Sender<()>,
    handle: JoinHandle<Result<(), String>>,
}

pub struct TestApp {
    pub base_url: String,
    /// The functions' own origin, where their HTTP triggers answer.
    pub functions_url: String,
    pub metrics_url: String,
    pub worker_metrics_urls: Vec<String>,
    /// Sends [`ADMIN_KEY`] with every request.
    pub client: reqwest::Client,
    pub prefix: String,
    pub database_url: String,
    api: Option<Task>,
    /// More api processes on the same database and queues, as behind a load balancer.
    replicas: Vec<Task>,
    workers: Vec<Task>,
    /// Dropped last, after the api and workers stopped.
    _services: ServicesHeld,
}

/// Settings for a test worker of `runtime` on `prefix`.
pub fn worker_config(runtime: Runtime, prefix: &str) -> worker::Config {
    let mut config = worker::Config::parse_from(["worker", "--runtime", runtime.as_str()]);
    config.worker_id = Some(format!("{prefix}{runtime}"));
    config.broker.amqp_url = amqp_url();
    config.broker.queue_prefix = prefix.to_owned();
    config.concurrency = Some(4);
    config.shutdown_grace_secs = 5;
    // Test binaries run side by side on CI's two cores, where sixteen cold starts at once took
    // 14 s to load (hot_path, on a fresh machine): more than production's 10 s default.
    config.init_timeout_ms = 30_000;
    config
}

impl TestApp {
    /// The api alone: invocations get 503 until a worker is added.
    pub async fn start() -> TestApp {
        Self::start_with(|_| {}).await
    }

    /// The api, with `adjust` applied to its settings.
    pub async fn start_with(adjust: impl FnOnce(&mut api::Config)) -> TestApp {
        let held = ServicesHeld::Shared(SERVICES.read().await);
        Self::start_holding(held, adjust).await
    }

    /// The api, once no other test runs, and no other test starts until it is stopped: for a
    /// test that stops and starts Postgres or RabbitMQ.
    pub async fn start_alone() -> TestApp {
        let held = ServicesHeld::Exclusive(SERVICES.write().await);
        Self::start_holding(held, |_| {}).await
    }

    async fn start_holding(held: ServicesHeld, adjust: impl FnOnce(&mut api::Config)) -> TestApp {
        let prefix = format!("test-{}.", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let database_url = create_database().await;
        let mut config = api_config(&database_url, &prefix);
        adjust(&mut config);

        let (urls, api) = spawn_api(config).await;
        let app = TestApp {
            base_url: urls.base_url,
            functions_url: urls.functions_url,
            metrics_url: urls.metrics_url,
            worker_metrics_urls: Vec::new(),
            client: client_with_key(ADMIN_KEY),
            prefix,
            database_url,
            api: Some(api),
            replicas: Vec::new(),
            workers: Vec::new(),
            _services: held,
        };
        app.wait_until_ready().await;
        app
    }

    /// The api and one worker of each given runtime, consuming before this returns.
    pub async fn with_workers(runtimes: &[Runtime]) -> TestApp {
        Self::with_workers_and(runtimes, |_| {}).await
    }

    /// [`Self::with_workers`], the api's settings with `adjust` applied.
    pub async fn with_workers_and(
        runtimes: &[Runtime],
        adjust: impl FnOnce(&mut api::Config),
    ) -> TestApp {
        let mut app = Self::start_with(adjust).await;
        for &runtime in runtimes {
            app.add_worker(worker_config(runtime, &app.prefix.clone()))
                .await;
        }
        app
    }

    async fn wait_until_ready(&self) {
        let started = std::time::Instant::now();
        while started.elapsed() < PROCESS_START_LIMIT {
            if let Some(api) = &self.api
                && api.handle.is_finished()
            {
                panic!("the api stopped during start-up; see the test output");
            }
            if let Ok(response) = self.client.get(self.url("/readyz")).send().await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the api was not ready in {PROCESS_START_LIMIT:?}");
    }

    /// Starts a second api on this app's database and queues; returns where it answers.
    pub async fn add_api_replica(&mut self) -> ApiUrls {
        self.add_api_replica_with(|_| {}).await
    }

    /// Starts another api on this app's database and queues, with `adjust` applied to its
    /// settings; returns where it answers once it is ready.
    pub async fn add_api_replica_with(&mut self, adjust: impl FnOnce(&mut api::Config)) -> ApiUrls {
        let mut config = api_config(&self.database_url, &self.prefix);
        adjust(&mut config);
        let (urls, replica) = spawn_api(config).await;
        let started = std::time::Instant::now();
        while started.elapsed() < PROCESS_START_LIMIT {
            let ready = format!("{}/readyz", urls.base_url);
            if let Ok(response) = self.client.get(ready).send().await
                && response.status().is_success()
            {
                self.replicas.push(replica);
                return urls;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the api replica was not ready in {PROCESS_START_LIMIT:?}");
    }

    /// Starts a worker with `config` and waits until it consumes its queue.
    pub async fn add_worker(&mut self, config: worker::Config) {
        let runtime = config.runtime;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.worker_metrics_urls
            .push(format!("http://{}/metrics", listener.local_addr().unwrap()));
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            worker::run(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .map_err(|e| e.to_string())
        });
        let connection = common::broker::connect(&amqp_url(), "faas-test")
            .await
            .expect("RabbitMQ is not reachable (AMQP_URL)");
        let channel = connection.create_channel().await.unwrap();
        let topology = Topology::new(&self.prefix);
        for _ in 0..600 {
            if handle.is_finished() {
                let error = handle.await.unwrap().err().unwrap_or_default();
                panic!("the {runtime} worker stopped during start-up: {error}");
            }
            if topology.declare_queue(&channel, runtime).await.unwrap() > 0 {
                self.workers.push(Task { stop, handle });
                let _ = connection.close(200, "".into()).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the {runtime} worker did not start consuming in 30 s");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// `path` on the functions' origin: a function's route.
    pub fn fn_url(&self, path: &str) -> String {
        format!("{}{}", self.functions_url, path)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .put(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        let request = self.client.patch(self.url(path)).json(body);
        read(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        read(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        read(self.client.delete(self.url(path)).send().await.unwrap()).await
    }

    /// A connection to this test's database, to read (or set up) what the api cannot show.
    pub async fn db(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("the test database is not reachable: {e}"));
        tokio::spawn(connection);
        client
    }

    /// Creates a function and returns it; panics unless the api says 201.
    pub async fn create_function(&self, body: Value) -> Value {
        let (status, function) = self.post("/functions/", &body).await;
        assert_eq!(status, 201, "creating {body}: {function}");
        function
    }

    pub async fn invoke(&self, endpoint: &str, name: &str, event: Value) -> (u16, Value) {
        self.post(&format!("/{endpoint}/{name}"), &json!({ "event": event }))
            .await
    }

    /// Stops workers and api gracefully, then deletes this test's queues and exchange.
    pub async fn stop(mut self) {
        for replica in self.replicas.drain(..) {
            let _ = replica.stop.send(());
            let result = tokio::time::timeout(Duration::from_secs(30), replica.handle)
                .await
                .expect("an api replica did not stop in 30 s")
                .unwrap();
            assert!(result.is_ok(), "api replica failed: {result:?}");
        }
        for worker in self.workers.drain(..) {
            let _ = worker.stop.send(());
            let result = tokio::time::timeout(Duration::from_secs(30), worker.handle)
                .await
                .expect("a worker did not stop in 30 s")
                .unwrap();
            assert!(result.is_ok(), "worker failed: {result:?}");
        }
        if let Some(api) = self.api.take() {
            let _ = api.stop.send(());
            let result = tokio::time::timeout(Duration::from_secs(30), api.handle)
                .await
                .expect("the api did not stop in 30 s")
                .unwrap();
            assert!(result.is_ok(), "api failed: {result:?}");
        }
        delete_topology(&self.prefix).await;
        drop_database(&self.database_url).await;
    }
}

pub async fn drop_database(url: &str) {
    let name = url.rsplit('/').next().unwrap_or_default();
    if let Ok((client, connection)) =
        tokio_postgres::connect(&admin_database_url(), tokio_postgres::NoTls).await
    {
        tokio::spawn(connection);
        let _ = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}

/// Requests to one api with one key (or none): what a client of one namespace sees.
pub struct Caller {
    pub base_url: String,
    pub client: reqwest::Client,
}

impl Caller {
    /// A caller of the api at `base_url` sending `key`, or no `Authorization` at all.
    pub fn new(base_url: &str, key: Option<&str>) -> Caller {
        Caller {
            base_url: base_url.to_owned(),
            client: key.map_or_else(reqwest::Client::new, client_with_key),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.base_url);
        read(self.client.get(url).send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let url = format!("{}{path}", self.base_url);
        read(self.client.post(url).json(body).send().await.unwrap()).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        let url = format!("{}{path}", self.base_url);
        read(self.client.put(url).json(body).send().await.unwrap()).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        let url = format!("{}{path}", self.base_url);
        read(self.client.patch(url).json(body).send().await.unwrap()).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.base_url);
        read(self.client.delete(url).send().await.unwrap()).await
    }
}

impl TestApp {
    /// A caller of this app's api with `key` (`None`: no key at all).
    pub fn caller(&self, key: Option<&str>) -> Caller {
        Caller::new(&self.base_url, key)
    }

    /// Makes namespace `name` (as admin) and returns a key of it with `scopes`.
    pub async fn namespace_with_key(&self, name: &str, scopes: &[&str]) -> String {
        let (status, body) = self.post("/namespaces/", &json!({ "name": name })).await;
        assert!(
            status == 201 || status == 409,
            "namespace {name}: {status} {body}"
        );
        self.key_of(name, scopes).await
    }

    /// A new key of namespace `namespace` with `scopes`, minted by the admin key.
    pub async fn key_of(&self, namespace: &str, scopes: &[&str]) -> String {
        let (status, body) = self
            .post(
                "/keys/",
                &json!({ "namespace": namespace, "scopes": scopes, "description": "test" }),
            )
            .await;
        assert_eq!(status, 201, "key of {namespace}: {body}");
        body["key"].as_str().expect("the key is shown").to_owned()
    }
}

pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

pub async fn delete_topology(prefix: &str) {
    let Ok(connection) = common::broker::connect(&amqp_url(), "faas-test-cleanup").await else {
        return;
    };
    let channel = connection.create_channel().await.unwrap();
    let topology = Topology::new(prefix);
    for runtime in Runtime::ALL {
        let _ = channel
            .queue_delete(topology.queue(runtime).as_str().into(), Default::default())
            .await;
        let _ = channel
            .queue_delete(
                topology.unavailable_queue(runtime).as_str().into(),
                Default::default(),
            )
            .await;
    }
    let _ = channel
        .queue_delete(topology.build_queue().as_str().into(), Default::default())
        .await;
    let async_queues = [topology.async_queue(), topology.dead_queue()]
        .into_iter()
        .chain(
            topology
                .async_delays()
                .into_iter()
                .map(|secs| topology.delay_queue(secs)),
        );
    for queue in async_queues {
        let _ = channel
            .queue_delete(queue.as_str().into(), Default::default())
            .await;
    }
    let home_and_spill = Runtime::ALL.into_iter().flat_map(|runtime| {
        [
            topology.home_exchange(runtime),
            topology.spill_exchange(runtime),
        ]
    });
    for exchange in [
        topology.exchange(),
        topology.build_exchange(),
        topology.async_exchange(),
    ]
    .into_iter()
    .chain(home_and_spill)
    {
        let _ = channel
            .exchange_delete(exchange.as_str().into(), Default::default())
            .await;
    }
    let _ = connection.close(200, "".into()).await;
}

/// The seed README's example function.
pub fn seed_function(name: &str) -> Value {
    json!({
        "name": name,
        "route": format!("/{name}"),
        "language": "python",
        "code": "def handler(event, context):\n    return {'message': f'Hello, {event.get(\"name\", \"World\")}'}",
        "timeout": 5
    })
}

pub fn python(name: &str, code: &str) -> Value {
    json!({ "name": name, "route": format!("/{name}"), "language": "python", "code": code, "timeout": 5 })
}

pub fn javascript(name: &str, code: &str) -> Value {
    json!({ "name": name, "route": format!("/{name}"), "language": "javascript", "code": code, "timeout": 5 })
}

/// A TCP proxy in front of Postgres that a test can cut: while blocked, its connections are
/// dropped and new ones are closed at once, as when the database host goes away.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    blocked: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn start(target: std::net::SocketAddr) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let blocked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (b, c) = (blocked.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if b.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let handle = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c.lock().unwrap().push(handle);
            }
        });
        Proxy {
            addr,
            blocked,
            connections,
        }
    }

    pub fn block(&self) {
        self.blocked
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    pub fn unblock(&self) {
        self.blocked
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The `worker` binary next to this test's `api` binary.
///
/// Built (or found up to date) once per test run: cargo builds it for the api's tests only
/// when asked, and a binary left in the target directory by an earlier run may be stale.
/// `scripts/test.sh` builds every test binary first (`cargo test --workspace --no-run`, which
/// builds the worker binary for the worker's own tests, with this run's features) and says so
/// with `FAAS_TEST_BINARIES_BUILT=1`: a `cargo build -p worker` here would build it again with
/// the worker's features alone, inside the tests' time.
pub fn worker_binary() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let api = std::path::PathBuf::from(env!("CARGO_BIN_EXE_api"));
            if std::env::var_os("FAAS_TEST_BINARIES_BUILT").is_some_and(|v| v == "1") {
                let worker = api.with_file_name("worker");
                assert!(
                    worker.is_file(),
                    "FAAS_TEST_BINARIES_BUILT=1 but there is no {}",
                    worker.display()
                );
                return worker;
            }
            let status = std::process::Command::new(env!("CARGO"))
                .args(["build", "--locked", "-p", "worker", "--bin", "worker"])
                .status()
                .expect("cargo runs");
            assert!(status.success(), "cannot build the worker binary");
            api.with_file_name("worker")
        })
        .clone()
}

/// A worker started as its own process, as an operator would run it.
pub struct WorkerProcess {
    pub id: String,
    pub child: tokio::process::Child,
    /// Where its Prometheus text is served.
    pub metrics_url: String,
}

impl WorkerProcess {
    /// Starts `worker --runtime docker` on this app's queues and waits until it consumes.
    pub async fn start(app: &TestApp, id: &str) -> WorkerProcess {
        Self::start_with(app, id, Runtime::Docker, &[]).await
    }

    /// Starts a worker of `runtime` with `env` on top of the test settings and waits until it
    /// consumes its runtime's queue.
    pub async fn start_with(
        app: &TestApp,
        id: &str,
        runtime: Runtime,
        env: &[(&str, &str)],
    ) -> WorkerProcess {
        // Counted before the process starts: it may be consuming by the time we look again.
        let before = consumers_now(app, runtime).await;
        let worker = Self::spawn(app, id, runtime, env);
        app.wait_for_consumers(runtime, before + 1).await;
        worker
    }

    /// Starts a worker of `runtime` with `env` on top of the test settings, without waiting.
    pub fn spawn(app: &TestApp, id: &str, runtime: Runtime, env: &[(&str, &str)]) -> WorkerProcess {
        let metrics_addr = free_local_addr();
        let child = tokio::process::Command::new(worker_binary())
            .args(["--runtime", runtime.as_str()])
            .env("WORKER_ID", id)
            .env("QUEUE_PREFIX", &app.prefix)
            .env("AMQP_URL", amqp_url())
            .env("METRICS_ADDR", metrics_addr.to_string())
            .env("WORKER_CONCURRENCY", "4")
            .env("STEM_CELLS", "0")
            .env("SHUTDOWN_GRACE_SECS", "20")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .kill_on_drop(true)
            .spawn()
            .expect("the worker binary starts");
        WorkerProcess {
            id: id.to_owned(),
            child,
            metrics_url: format!("http://{metrics_addr}/metrics"),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("still running") as i32
    }

    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// How long an api or worker process may take to start. Generous: a busy CI host (two cores, the
/// other tests and their containers beside it) once took over 10 s to bring a binary up.
pub const PROCESS_START_LIMIT: Duration = Duration::from_secs(60);

/// Waits until the api process `child` answers 200 on `{base_url}/readyz`; panics when it exits
/// first or is not ready within [`PROCESS_START_LIMIT`].
pub async fn wait_for_api_process(child: &mut tokio::process::Child, base_url: &str) {
    let started = std::time::Instant::now();
    let readyz = format!("{base_url}/readyz");
    while started.elapsed() < PROCESS_START_LIMIT {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the api process stopped during start-up: {status}");
        }
        if let Ok(response) = reqwest::get(&readyz).await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the api process was not ready in {PROCESS_START_LIMIT:?}");
}

/// A loopback address no one listens on right now, for a child process to bind.
pub fn free_local_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

async fn consumers_now(app: &TestApp, runtime: Runtime) -> u32 {
    let connection = common::broker::connect(&amqp_url(), "faas-test")
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let count = Topology::new(&app.prefix)
        .declare_queue(&channel, runtime)
        .await
        .unwrap();
    let _ = connection.close(200, "".into()).await;
    count
}

impl TestApp {
    /// Waits until `runtime`'s queue has `count` consumers.
    pub async fn wait_for_consumers(&self, runtime: Runtime, count: u32) {
        self.wait_for_queue_consumers(runtime, false, count).await
    }

    /// Waits until `count` workers stand by on `runtime`'s unavailable queue.
    pub async fn wait_for_standby(&self, runtime: Runtime, count: u32) {
        self.wait_for_queue_consumers(runtime, true, count).await
    }

    async fn wait_for_queue_consumers(&self, runtime: Runtime, standby: bool, count: u32) {
        let connection = common::broker::connect(&amqp_url(), "faas-test")
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let topology = Topology::new(&self.prefix);
        for _ in 0..600 {
            let consumers = if standby {
                topology.declare_unavailable_queue(&channel, runtime).await
            } else {
                topology.declare_queue(&channel, runtime).await
            };
            if consumers.unwrap() >= count {
                let _ = connection.close(200, "".into()).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let queue = if standby { "unavailable" } else { "job" };
        panic!("{runtime} {queue} queue did not reach {count} consumers in 30 s");
    }
}

/// The Prometheus text at `url`.
pub async fn scrape(url: &str) -> String {
    reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("metrics at {url}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Ids of the containers that carry `faas.worker=<worker_id>`, running or not.
pub fn containers_of(worker_id: &str) -> Vec<String> {
    containers_labelled(&[&format!("faas.worker={worker_id}")])
}

/// Ids of the containers (running or not) that carry every one of `labels` (`key=value`).
pub fn containers_labelled(labels: &[&str]) -> Vec<String> {
    let mut args = vec!["ps".to_owned(), "-aq".to_owned()];
    for label in labels {
        args.push("--filter".to_owned());
        args.push(format!("label={label}"));
    }
    let output = std::process::Command::new("docker")
        .args(&args)
        .output()
        .expect("the docker CLI runs");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The pid, as rabbitmqctl names it, of the first broker connection whose client properties
/// (as `list_connections` prints them) `matches` takes.
pub fn broker_connection_pid(matches: impl Fn(&str) -> bool) -> Option<String> {
    let output = std::process::Command::new("rabbitmqctl")
        .args([
            "-q",
            "list_connections",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .expect("rabbitmqctl runs (the RabbitMQ this test uses is local)");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|line| matches(line))
        .and_then(|line| line.split('\t').next())
        .map(str::to_owned)
}
