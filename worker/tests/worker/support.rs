//! What the worker's tests share: a worker's settings for a test, an executor and pool on the
//! real Docker daemon, jobs, and reading replies.

use clap::Parser;
use common::{FunctionSpec, Job, Language, Reply, Runtime};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use worker::{Config, DockerPool, Executor, Pool, Sandbox};

/// A worker's settings for a test: its own id (so its containers are its own) and a fixed
/// memory budget.
pub fn config(runtime: Runtime) -> Config {
    let mut config = Config::parse_from(["worker", "--runtime", runtime.as_str()]);
    config.worker_id = Some(format!("sandbox-test-{}", uuid::Uuid::new_v4().simple()));
    config.memory_mb = Some(8192);
    config
}

/// Whether Docker still has container `id` after up to 5 s for its removal to finish.
pub async fn container_exists(h: &Harness, id: &str) -> bool {
    for _ in 0..50 {
        let inspected = h.pool.launcher().docker.inspect_container(id, None).await;
        match inspected {
            Err(_) => return false,
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    true
}

/// An executor and its pool on the real Docker daemon, as a worker has them, without a broker.
pub struct Harness {
    pub executor: Executor,
    pub pool: Arc<DockerPool>,
}

impl Harness {
    /// Runs `job` to its reply (a requeue fails the test).
    pub async fn call(&self, job: &Job) -> Reply {
        self.executor.run(job).await.reply()
    }

    /// Removes every container of this test's worker, also those whose removal was only
    /// spawned (the test runtime would drop those tasks).
    pub async fn finish(&self) {
        self.pool.remove_all().await;
        self.pool
            .launcher()
            .remove_leftovers()
            .await
            .expect("Docker lists containers");
    }
}

pub async fn harness(runtime: Runtime) -> Harness {
    harness_with(runtime, |_| {}).await
}

/// An executor and pool on the real daemon; stem cells are off unless `adjust` turns them on.
pub async fn harness_with(runtime: Runtime, adjust: impl FnOnce(&mut Config)) -> Harness {
    let mut config = config(runtime);
    config.stem_cells = 0;
    adjust(&mut config);
    let docker = worker::preflight(&config)
        .await
        .unwrap_or_else(|e| panic!("Docker is required for this test: {e}"));
    let pool = Arc::new(Pool::new(
        Sandbox::new(&config, docker, config.worker_id.clone().unwrap()),
        config.pool_settings(),
    ));
    Harness {
        executor: Executor::new(pool.clone(), config.worker_id.clone().unwrap()),
        pool,
    }
}

/// The reply's result as a JSON tree, for assertions.
pub fn value(reply: &Reply) -> Value {
    serde_json::from_str(reply.result.get()).expect("a result is JSON")
}

pub fn raw(value: Value) -> common::RawJson {
    common::RawValue::from_string(value.to_string()).unwrap()
}

pub fn job(id: i64, code: &str, timeout_ms: u64, env: BTreeMap<String, String>) -> Job {
    let now = common::now_unix_ms();
    Job {
        invocation_id: uuid::Uuid::now_v7(),
        function: FunctionSpec {
            id,
            namespace: "default".into(),
            name: format!("fn{id}"),
            version: 1,
            handler: "handler".into(),
            language: Language::Python,
            code: code.to_owned(),
            timeout_ms,
            memory_mb: 128,
            env,
            dependencies: None,
            package: None,
        },
        event: raw(json!({})),
        deadline_unix_ms: now + timeout_ms + 15_000,
        published_unix_ms: now,
        attempt: 1,
        load_only: false,
    }
}
