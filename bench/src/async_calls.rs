//! Scenario 10: async invocations (`POST /execute_async`), once per run, on docker, after every
//! other scenario of every runtime: its last part kills the docker worker.
//!
//! 1. Accept: `POST /execute_async` of a trivial function at `--concurrency` for
//!    `--async-duration-secs`, after `--async-warmup-secs` of the same unmeasured: each call's
//!    latency to its 202 and the accepted calls per second; any other answer is an error. The
//!    accepted invocations are then waited for (none `queued` or `running`), so that the next
//!    part does not queue behind them.
//! 2. Burst: `--async-burst` calls of a fresh trivial function (warmed by one sync call),
//!    accepted as fast as `--concurrency` allows, then waited for (at most
//!    `--async-timeout-secs`) and read once each (`GET /invocations/{id}`, a few at a time):
//!    the succeeded invocations per second from the first `created_at` to the last
//!    `finished_at`, and each one's `finished_at - created_at`. Both are the api's clocks, so
//!    the client's polling adds nothing to them. Then the same burst again on the same
//!    function, whose pool the first one grew: the end-to-end rate with warm containers.
//! 3. Worker death: a function whose handler sleeps `--async-kill-sleep-secs`, called async
//!    while one docker worker consumes the docker queue. Once the invocation is `running`, and
//!    300 ms more (the job is in the handler), a replacement worker is started; once it
//!    consumes the docker queue too, the first one is killed (SIGKILL). The broker gives the
//!    unacknowledged job to the replacement, which runs it from the start: kill → the
//!    invocation's `finished_at`, and that minus the sleep (how long the job waited for its new
//!    worker, the cold start there included). `--async-kill-samples` times, each killing the
//!    worker the sample before started; the last one is stopped (SIGTERM) at the end.

use crate::client::{Api, Target};
use crate::config::Runtime;
use crate::cpu::CpuUsage;
use crate::noisy::{slow_handler, slow_timeout_secs};
use crate::scenarios::{Ctx, Stop, drive, drive_keeping};
use crate::stats::{CallStats, Summary, summarize};
use anyhow::{Context, bail};
use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// The runtime scenario 10 runs on.
pub const RUNTIME: Runtime = Runtime::Docker;

/// Between two checks of whether a function's invocations have all ended.
const PENDING_POLL: Duration = Duration::from_millis(500);
/// Between two reads of the invocation whose worker is killed.
const STATUS_POLL: Duration = Duration::from_millis(20);
/// Dead-lettered invocations part 1 counts at most (the list's largest page).
pub const DEAD_LETTERED_COUNTED: usize = 100;
/// Tasks reading a burst's invocations at once.
const READERS: usize = 8;
/// After the invocation is `running`: time for the job to reach the worker and its handler.
const IN_HANDLER: Duration = Duration::from_millis(300);
/// The longest wait for a started worker to consume the docker queue (and for a killed one's
/// consumer to go).
const WORKER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest wait for a replacement worker to stop after SIGTERM (its SHUTDOWN_GRACE_SECS is
/// 30 by default).
const WORKER_STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// On top of the function's timeout: the longest wait for the killed worker's job to end.
const KILLED_JOB_MARGIN: Duration = Duration::from_secs(60);

/// Scenario 10.
#[derive(Debug, Clone, Serialize)]
pub struct AsyncResult {
    /// Consumers of the async queue when the scenario began: one dispatcher per api replica,
    /// each running up to its ASYNC_CONCURRENCY jobs at once.
    pub dispatchers: Option<u32>,
    pub accept: Option<AcceptResult>,
    /// The burst on a fresh function (its pool grows), then again on the same function (its
    /// pool warm from the first).
    pub bursts: Vec<BurstResult>,
    pub kill: Option<KillResult>,
}

/// Waiting for a function's accepted invocations to end.
#[derive(Debug, Clone, Serialize)]
pub struct Drain {
    pub seconds: f64,
    /// None was `queued` or `running` any more; false when the wait timed out.
    pub ended: bool,
    /// The last failed `GET /invocations/` of the wait, if it ended on one.
    pub error: Option<String>,
}

/// Part 1: accepting calls at `--concurrency`.
#[derive(Debug, Clone, Serialize)]
pub struct AcceptResult {
    pub function: String,
    pub concurrency: usize,
    /// The unmeasured calls before the measured ones.
    pub warmup: CallStats,
    pub warmup_seconds: f64,
    /// From the first measured call to the last answer.
    pub seconds: f64,
    /// 202s per second over `seconds`.
    pub accepted_per_s: f64,
    /// Latency to the 202; errors are the calls that answered anything else.
    pub stats: CallStats,
    /// CPU over the measured calls.
    pub cpu: CpuUsage,
    /// After the measured calls, until every accepted invocation had ended.
    pub drain: Drain,
    /// Of the invocations accepted (warm-up included), how many were `dead_lettered` once
    /// they had ended; at most 100 are counted (`None`: the list could not be read).
    pub dead_lettered: Option<usize>,
}

/// Part 2: a burst of calls, from accepted to finished.
#[derive(Debug, Clone, Serialize)]
pub struct BurstResult {
    pub function: String,
    /// The function's containers before the burst, in words.
    pub pool_before: String,
    pub calls: usize,
    pub concurrency: usize,
    /// The `POST /execute_async` calls: latency to the 202, and those not accepted.
    pub accept: CallStats,
    /// From the first call to the last answer.
    pub accept_seconds: f64,
    /// After the last answer, until none was `queued` or `running`.
    pub wait: Drain,
    pub succeeded: usize,
    pub dead_lettered: usize,
    /// Accepted, but still `queued` or `running` when `--async-timeout-secs` ran out.
    pub not_finished: usize,
    /// Accepted, but `GET /invocations/{id}` never answered it.
    pub unread: usize,
    /// The first few failed reads.
    pub read_errors: Vec<String>,
    /// Succeeded invocations that took more than one attempt.
    pub retried: usize,
    /// Succeeded invocations whose (last) attempt was a cold start.
    pub cold_starts: usize,
    /// From the first `created_at` to the last `finished_at` of a succeeded invocation.
    pub seconds: Option<f64>,
    /// Succeeded invocations per second over `seconds`.
    pub invocations_per_s: Option<f64>,
    /// `finished_at - created_at` of each succeeded invocation.
    pub latency_ms: Option<Summary>,
    /// Its two parts: `created_at` → the first attempt's `started_at` (waiting for a
    /// dispatcher), and `started_at` → `finished_at` (running).
    pub queued_ms: Option<Summary>,
    pub running_ms: Option<Summary>,
}

/// Part 3: one killed worker.
#[derive(Debug, Clone, Serialize)]
pub struct KillSample {
    pub invocation_id: String,
    /// The worker killed: its WORKER_ID, or `--docker-worker-pid`'s.
    pub killed: String,
    pub killed_pid: u32,
    /// The WORKER_ID of the replacement started before the kill.
    pub replacement: String,
    /// From starting the replacement to its consumer on the docker queue.
    pub replacement_ready_s: f64,
    /// The invocation's status read just before the kill.
    pub status_at_kill: String,
    /// Its status at the end.
    pub status: String,
    /// From the kill to the invocation's `finished_at`.
    pub kill_to_finished_s: Option<f64>,
    /// `kill_to_finished_s` minus the handler's sleep: how long the job waited, after its
    /// worker died, until the replacement ran it (its container start included).
    pub redelivery_wait_s: Option<f64>,
    pub attempts: usize,
    /// The worker of the last attempt, and whether it was a cold start there.
    pub ran_on: Option<String>,
    pub cold_start: Option<bool>,
    /// That worker's `timing`: its container's start (part of the redelivery wait), and the
    /// handler's run (the sleep).
    pub init_ms: Option<f64>,
    pub run_ms: Option<f64>,
    /// `running` at the kill, then succeeded on the replacement: the job was taken from the
    /// killed worker and run again. Only such samples are in the summaries.
    pub redelivered: bool,
}

/// Part 3.
#[derive(Debug, Clone, Serialize)]
pub struct KillResult {
    pub function: String,
    pub sleep_secs: f64,
    pub timeout_secs: u32,
    pub samples: Vec<KillSample>,
    /// Of the redelivered samples, in ms.
    pub kill_to_finished: Option<Summary>,
    pub redelivery_wait: Option<Summary>,
    /// How each replacement still running at the end stopped after SIGTERM.
    pub stopped: Vec<String>,
    /// Why no worker was killed.
    pub skipped: Option<String>,
    /// Why the samples stopped before `--async-kill-samples`.
    pub error: Option<String>,
}

/// An invocation as `GET /invocations/{id}` shows it, what the scenario reads of it.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub status: String,
    pub created_at: Option<DateTime<FixedOffset>>,
    /// When a dispatcher claimed its first attempt.
    pub started_at: Option<DateTime<FixedOffset>>,
    pub finished_at: Option<DateTime<FixedOffset>>,
    pub attempts: usize,
    /// Of the last attempt.
    pub worker_id: Option<String>,
    pub cold_start: Option<bool>,
    /// The worker's `timing` of the last attempt: its container's start, and the handler's run.
    pub init_ms: Option<f64>,
    pub run_ms: Option<f64>,
}

impl View {
    /// `succeeded` or `dead_lettered`: an async invocation ends in one of them.
    pub fn ended(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "dead_lettered")
    }
}

/// Reads an invocation view.
pub fn read_view(value: &Value) -> View {
    let time = |v: &Value| {
        v.as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    };
    let attempts = value["attempts"].as_array();
    let last = attempts.and_then(|a| a.last());
    View {
        status: value["status"].as_str().unwrap_or("?").to_owned(),
        created_at: time(&value["created_at"]),
        started_at: attempts
            .and_then(|a| a.first())
            .and_then(|a| time(&a["started_at"])),
        finished_at: time(&value["finished_at"]),
        attempts: attempts.map_or(0, Vec::len),
        worker_id: last
            .and_then(|a| a["worker_id"].as_str())
            .map(str::to_owned),
        cold_start: last.and_then(|a| a["cold_start"].as_bool()),
        init_ms: value["timing"]["init_ms"].as_f64(),
        run_ms: value["timing"]["run_ms"].as_f64(),
    }
}

/// Seconds from `from` to `to`.
fn seconds_between(from: DateTime<FixedOffset>, to: DateTime<FixedOffset>) -> f64 {
    (to - from)
        .num_microseconds()
        .map_or(f64::NAN, |us| us as f64 / 1e6)
}

/// What a burst's invocations came to, from their own timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct EndToEnd {
    /// From the first `created_at` (of any invocation) to the last `finished_at` of a
    /// succeeded one.
    pub seconds: Option<f64>,
    /// Succeeded invocations per second over `seconds`.
    pub per_s: Option<f64>,
    /// `finished_at - created_at` of each succeeded invocation, in ms.
    pub latencies_ms: Vec<f64>,
    /// Of each succeeded invocation, in ms: from `created_at` to its first attempt's
    /// `started_at` (waiting in the async queue for a dispatcher), and from there to
    /// `finished_at` (running: through the worker's queue, the worker, and back).
    pub queued_ms: Vec<f64>,
    pub running_ms: Vec<f64>,
}

/// The rate and latencies of `views`, from their `created_at` and `finished_at`.
pub fn end_to_end(views: &[View]) -> EndToEnd {
    let first = views.iter().filter_map(|v| v.created_at).min();
    let succeeded: Vec<(DateTime<FixedOffset>, DateTime<FixedOffset>)> = views
        .iter()
        .filter(|v| v.status == "succeeded")
        .filter_map(|v| Some((v.created_at?, v.finished_at?)))
        .collect();
    let last = succeeded.iter().map(|&(_, finished)| finished).max();
    let seconds = first.zip(last).map(|(a, b)| seconds_between(a, b));
    EndToEnd {
        seconds,
        per_s: seconds
            .filter(|s| *s > 0.0)
            .map(|s| succeeded.len() as f64 / s),
        latencies_ms: succeeded
            .iter()
            .map(|&(created, finished)| seconds_between(created, finished) * 1000.0)
            .collect(),
        queued_ms: views
            .iter()
            .filter(|v| v.status == "succeeded")
            .filter_map(|v| Some(seconds_between(v.created_at?, v.started_at?) * 1000.0))
            .collect(),
        running_ms: views
            .iter()
            .filter(|v| v.status == "succeeded")
            .filter_map(|v| Some(seconds_between(v.started_at?, v.finished_at?) * 1000.0))
            .collect(),
    }
}

/// From the kill to `finished_at`, and that minus the handler's sleep.
pub fn after_kill(
    killed_at: DateTime<Utc>,
    finished_at: Option<DateTime<FixedOffset>>,
    sleep_secs: f64,
) -> (Option<f64>, Option<f64>) {
    let kill_to_finished = finished_at.map(|f| seconds_between(killed_at.fixed_offset(), f));
    (kill_to_finished, kill_to_finished.map(|s| s - sleep_secs))
}

/// The platform's RabbitMQ, asked how many consumers a queue has.
struct Broker {
    connection: lapin::Connection,
    channel: lapin::Channel,
    topology: common::broker::Topology,
}

impl Broker {
    async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        // The URL may hold a password: it is in no message.
        let connection = common::broker::connect(url, "faas-bench")
            .await
            .context("cannot connect to RabbitMQ (--amqp-url, AMQP_URL)")?;
        let channel = connection
            .create_channel()
            .await
            .context("cannot open an AMQP channel")?;
        Ok(Self {
            connection,
            channel,
            topology: common::broker::Topology::new(prefix),
        })
    }

    /// Consumers of `queue` now (a passive declare: the queue must exist).
    async fn consumers(&self, queue: &str) -> anyhow::Result<u32> {
        let declared = self
            .channel
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .with_context(|| format!("passive declare of queue {queue}"))?;
        Ok(declared.consumer_count())
    }

    fn docker_queue(&self) -> String {
        self.topology.queue(common::Runtime::Docker)
    }

    async fn close(self) {
        let _ = self.connection.close(200, "".into()).await;
    }
}

/// Runs scenario 10: each part that fails is said in the second value, and the next one runs.
pub async fn run(ctx: &Ctx<'_>) -> (AsyncResult, Vec<(&'static str, anyhow::Error)>) {
    let config = ctx.config;
    ctx.progress(
        RUNTIME,
        &format!(
            "10. async: accept at concurrency {} for {} s, a burst of {}, {} killed workers",
            config.concurrency,
            config.async_duration_secs,
            config.async_burst,
            config.async_kill_samples
        ),
    );
    let mut failures = Vec::new();
    let broker = match Broker::connect(&config.amqp_url, &config.queue_prefix).await {
        Ok(broker) => Some(broker),
        Err(error) => {
            failures.push(("10. async: broker", error));
            None
        }
    };
    let mut result = AsyncResult {
        dispatchers: None,
        accept: None,
        bursts: Vec::new(),
        kill: None,
    };
    if let Some(broker) = &broker {
        match broker.consumers(&broker.topology.async_queue()).await {
            Ok(count) => result.dispatchers = Some(count),
            Err(error) => failures.push(("10. async: dispatchers", error)),
        }
    }
    match accept(ctx).await {
        Ok(r) => result.accept = Some(r),
        Err(error) => failures.push(("10. async accept", error)),
    }
    match burst(ctx, None).await {
        Ok(first) => {
            let function = first.function.clone();
            result.bursts.push(first);
            match burst(ctx, Some(function)).await {
                Ok(again) => result.bursts.push(again),
                Err(error) => failures.push(("10. async burst again", error)),
            }
        }
        Err(error) => failures.push(("10. async burst", error)),
    }
    match kill(ctx, broker.as_ref()).await {
        Ok(r) => result.kill = Some(r),
        Err(error) => failures.push(("10. async worker death", error)),
    }
    if let Some(broker) = broker {
        broker.close().await;
    }
    (result, failures)
}

/// The longest wait for a part's invocations to end.
fn timeout(ctx: &Ctx<'_>) -> Duration {
    Duration::from_secs_f64(ctx.config.async_timeout_secs.max(0.0))
}

/// Creates a trivial function, and warms it with one sync call.
async fn trivial_function(ctx: &Ctx<'_>, what: &str) -> anyhow::Result<String> {
    let name = ctx.name(RUNTIME, what);
    ctx.create(&name, RUNTIME).await?;
    ctx.warm_up(&name, RUNTIME).await;
    tokio::time::sleep(Duration::from_secs_f64(ctx.config.warm_settle_secs)).await;
    Ok(name)
}

/// Part 1.
async fn accept(ctx: &Ctx<'_>) -> anyhow::Result<AcceptResult> {
    let config = ctx.config;
    let function = trivial_function(ctx, "async-accept").await?;
    let targets = Arc::new(vec![Target::Async {
        name: function.clone(),
    }]);
    let until = Instant::now() + Duration::from_secs_f64(config.async_warmup_secs.max(0.0));
    let (warmup, warmup_seconds) =
        drive(ctx.api, &targets, config.concurrency, Stop::At(until)).await?;
    let mark = ctx.cpu.mark();
    let end = Instant::now() + Duration::from_secs_f64(config.async_duration_secs.max(0.0));
    let (recorder, seconds) = drive(ctx.api, &targets, config.concurrency, Stop::At(end)).await?;
    let cpu = ctx.cpu.since(&mark);
    let stats = recorder.finish();
    let accepted_per_s = if seconds > 0.0 {
        stats.ok as f64 / seconds
    } else {
        0.0
    };
    ctx.progress(
        RUNTIME,
        &format!(
            "  accept: {} accepted in {seconds:.1} s ({accepted_per_s:.0}/s), {} errors; waiting \
             for them to run",
            stats.ok, stats.errors
        ),
    );
    let drain = wait_until_ended(ctx.api, &function, Instant::now() + timeout(ctx)).await;
    ctx.progress(
        RUNTIME,
        &format!(
            "  accept: the accepted invocations {} after {:.1} s",
            if drain.ended {
                "ended"
            } else {
                "had not all ended"
            },
            drain.seconds
        ),
    );
    let dead_lettered = ctx
        .api
        .list_invocations(&function, "dead_lettered", DEAD_LETTERED_COUNTED)
        .await
        .map(|listed| listed.len())
        .ok();
    Ok(AcceptResult {
        dead_lettered,
        function,
        concurrency: config.concurrency,
        warmup: warmup.finish(),
        warmup_seconds,
        seconds,
        accepted_per_s,
        stats,
        cpu,
        drain,
    })
}

/// Whether any invocation of `function` is `queued` or `running`.
async fn pending(api: &Api, function: &str) -> anyhow::Result<bool> {
    for status in ["queued", "running"] {
        if !api.list_invocations(function, status, 1).await?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Waits until no invocation of `function` is `queued` or `running`, or `deadline`.
async fn wait_until_ended(api: &Api, function: &str, deadline: Instant) -> Drain {
    let started = Instant::now();
    loop {
        let error = match pending(api, function).await {
            Ok(false) => {
                return Drain {
                    seconds: started.elapsed().as_secs_f64(),
                    ended: true,
                    error: None,
                };
            }
            Ok(true) => None,
            Err(error) => Some(format!("{error:#}")),
        };
        if Instant::now() >= deadline {
            return Drain {
                seconds: started.elapsed().as_secs_f64(),
                ended: false,
                error,
            };
        }
        tokio::time::sleep(PENDING_POLL).await;
    }
}

/// Reads each of `ids` once, [`READERS`] at a time.
async fn read_each(
    api: &Api,
    ids: &[String],
) -> anyhow::Result<Vec<(String, Result<View, String>)>> {
    let mut tasks = JoinSet::new();
    for part in ids.chunks(ids.len().div_ceil(READERS).max(1)) {
        let (api, part) = (api.clone(), part.to_vec());
        tasks.spawn(async move {
            let mut read = Vec::with_capacity(part.len());
            for id in part {
                let view = api
                    .invocation(&id)
                    .await
                    .map(|value| read_view(&value))
                    .map_err(|error| format!("{error:#}"));
                read.push((id, view));
            }
            read
        });
    }
    let mut all = Vec::with_capacity(ids.len());
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined?);
    }
    Ok(all)
}

/// Reads each of `ids`, then again those not ended (or not read), until all have ended or
/// `deadline`: the last read of each.
async fn read_until_ended(
    api: &Api,
    ids: &[String],
    deadline: Instant,
) -> anyhow::Result<Vec<(String, Result<View, String>)>> {
    let mut done = Vec::with_capacity(ids.len());
    let mut left: Vec<String> = ids.to_vec();
    loop {
        let read = read_each(api, &left).await?;
        left.clear();
        let last_round = Instant::now() >= deadline;
        for (id, view) in read {
            match &view {
                Ok(v) if v.ended() => done.push((id, view)),
                _ if last_round => done.push((id, view)),
                _ => left.push(id),
            }
        }
        if left.is_empty() {
            return Ok(done);
        }
        tokio::time::sleep(PENDING_POLL).await;
    }
}

/// Part 2.
/// A burst on `again` (a function a burst ran before), or on a fresh function.
async fn burst(ctx: &Ctx<'_>, again: Option<String>) -> anyhow::Result<BurstResult> {
    let config = ctx.config;
    let (function, pool_before) = match again {
        Some(function) => (function, "warm from the burst before".to_owned()),
        None => (
            trivial_function(ctx, "async-burst").await?,
            "one warm container (cold starts: the pool growing to the dispatchers' concurrency)"
                .to_owned(),
        ),
    };
    let targets = Arc::new(vec![Target::Async {
        name: function.clone(),
    }]);
    let deadline = Instant::now() + timeout(ctx);
    let (recorder, ids, accept_seconds) = drive_keeping(
        ctx.api,
        &targets,
        config.concurrency,
        Stop::AfterCalls(config.async_burst),
        |outcome| outcome.invocation_id.clone(),
    )
    .await?;
    let accept = recorder.finish();
    ctx.progress(
        RUNTIME,
        &format!(
            "  burst: {} of {} accepted in {accept_seconds:.1} s; waiting for them to run",
            ids.len(),
            config.async_burst
        ),
    );
    let wait = wait_until_ended(ctx.api, &function, deadline).await;
    let read = read_until_ended(ctx.api, &ids, deadline).await?;
    let mut views = Vec::with_capacity(read.len());
    let mut read_errors = Vec::new();
    for (id, view) in read {
        match view {
            Ok(view) => views.push(view),
            Err(error) => read_errors.push(format!("{id}: {error}")),
        }
    }
    let count = |f: &dyn Fn(&View) -> bool| views.iter().filter(|v| f(v)).count();
    let e2e = end_to_end(&views);
    let result = BurstResult {
        function,
        pool_before,
        calls: config.async_burst,
        concurrency: config.concurrency,
        accept,
        accept_seconds,
        wait,
        succeeded: count(&|v| v.status == "succeeded"),
        dead_lettered: count(&|v| v.status == "dead_lettered"),
        not_finished: count(&|v| !v.ended()),
        unread: read_errors.len(),
        retried: count(&|v| v.status == "succeeded" && v.attempts > 1),
        cold_starts: count(&|v| v.status == "succeeded" && v.cold_start == Some(true)),
        read_errors: read_errors.into_iter().take(5).collect(),
        seconds: e2e.seconds,
        invocations_per_s: e2e.per_s,
        latency_ms: summarize(&e2e.latencies_ms),
        queued_ms: summarize(&e2e.queued_ms),
        running_ms: summarize(&e2e.running_ms),
    };
    ctx.progress(
        RUNTIME,
        &format!(
            "  burst: {} succeeded, {:.0}/s first accepted → last finished, accept → finished \
             p50 {} ms",
            result.succeeded,
            result.invocations_per_s.unwrap_or(0.0),
            result
                .latency_ms
                .as_ref()
                .map_or("-".to_owned(), |s| format!("{:.0}", s.p50_ms))
        ),
    );
    Ok(result)
}

/// A docker worker of part 3: `--docker-worker-pid`, or a replacement the run started.
struct Worker {
    id: String,
    pid: u32,
    /// A replacement's process (`None` for `--docker-worker-pid`, not the run's child).
    child: Option<tokio::process::Child>,
    log: Option<PathBuf>,
    killed: bool,
}

impl Worker {
    /// The end of its log, for an error about it.
    fn log_tail(&self) -> String {
        let Some(path) = &self.log else {
            return String::new();
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let start = text.char_indices().rev().nth(1500).map_or(0, |(i, _)| i);
        format!("; the end of {}: {}", path.display(), &text[start..])
    }
}

/// Starts replacement docker workers as `bench/run.sh` starts its own.
struct Spawner {
    bin: PathBuf,
    id_prefix: String,
    deps_root: PathBuf,
    log_dir: PathBuf,
    started: usize,
}

impl Spawner {
    fn spawn(&mut self) -> anyhow::Result<Worker> {
        self.started += 1;
        let id = format!("{}-{}", self.id_prefix, self.started);
        let deps = self.deps_root.join(&id);
        std::fs::create_dir_all(&deps)
            .with_context(|| format!("cannot create {}", deps.display()))?;
        std::fs::create_dir_all(&self.log_dir)
            .with_context(|| format!("cannot create {}", self.log_dir.display()))?;
        let log_path = self
            .log_dir
            .join(format!("worker-docker-replacement-{}.log", self.started));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("cannot find a free port for METRICS_ADDR")?
            .port();
        let child = tokio::process::Command::new(&self.bin)
            .args(["--runtime", "docker"])
            .env("WORKER_ID", &id)
            .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
            .env("DEPS_CACHE_DIR", &deps)
            .env("BUILDS", "false")
            .env_remove("BENCH_API_KEY")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        let pid = child
            .id()
            .context("the replacement worker is gone at once")?;
        Ok(Worker {
            id,
            pid,
            child: Some(child),
            log: Some(log_path),
            killed: false,
        })
    }
}

/// `kill -{signal} {pid}`.
async fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .await
        .context("cannot run kill")?;
    if !status.success() {
        bail!("kill -{signal} {pid}: {status}");
    }
    Ok(())
}

/// Whether `pid` is a running process named `worker`.
fn is_worker(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "worker")
}

/// Waits until the docker queue has `want` consumers; the seconds it took. Fails when
/// `starting` (a replacement being waited for) exits.
async fn wait_for_consumers(
    broker: &Broker,
    want: u32,
    mut starting: Option<&mut Worker>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let queue = broker.docker_queue();
    loop {
        let count = broker.consumers(&queue).await?;
        if count == want {
            return Ok(started.elapsed().as_secs_f64());
        }
        if let Some(worker) = starting.as_deref_mut()
            && let Some(child) = worker.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            worker.killed = true;
            bail!(
                "worker {} exited ({status}){}",
                worker.id,
                worker.log_tail()
            );
        }
        if started.elapsed() >= WORKER_START_TIMEOUT {
            bail!(
                "queue {queue} has {count} consumers, not {want}, after {} s{}",
                WORKER_START_TIMEOUT.as_secs(),
                starting.map_or(String::new(), |w| w.log_tail())
            );
        }
        tokio::time::sleep(STATUS_POLL).await;
    }
}

/// Reads invocation `id` until `done` holds for its status, or `within` passes.
async fn wait_for_status(
    api: &Api,
    id: &str,
    done: fn(&View) -> bool,
    within: Duration,
) -> anyhow::Result<View> {
    let started = Instant::now();
    loop {
        let read = api.invocation(id).await.map(|value| read_view(&value));
        if let Ok(view) = &read
            && done(view)
        {
            return Ok(view.clone());
        }
        if started.elapsed() >= within {
            let last = match read {
                Ok(view) => view.status,
                Err(error) => format!("{error:#}"),
            };
            bail!(
                "invocation {id} still {last} after {:.0} s",
                within.as_secs_f64()
            );
        }
        tokio::time::sleep(STATUS_POLL).await;
    }
}

/// Part 3.
async fn kill(ctx: &Ctx<'_>, broker: Option<&Broker>) -> anyhow::Result<KillResult> {
    let config = ctx.config;
    let sleep_secs = config.async_kill_sleep_secs.max(0.0);
    let timeout_secs = slow_timeout_secs(sleep_secs, config.function_timeout_secs);
    let function = ctx.name(RUNTIME, "async-kill");
    let mut result = KillResult {
        function: function.clone(),
        sleep_secs,
        timeout_secs,
        samples: Vec::new(),
        kill_to_finished: None,
        redelivery_wait: None,
        stopped: Vec::new(),
        skipped: None,
        error: None,
    };
    let (Some(pid), Some(bin)) = (config.docker_worker_pid, config.worker_bin.clone()) else {
        result.skipped = Some(
            "no --docker-worker-pid and --worker-bin (BENCH_DOCKER_WORKER_PID, \
             BENCH_WORKER_BIN; bench/run.sh sets them)"
                .to_owned(),
        );
        return Ok(result);
    };
    if config.async_kill_samples == 0 {
        result.skipped = Some("--async-kill-samples 0".to_owned());
        return Ok(result);
    }
    let broker = broker.context("no connection to RabbitMQ")?;
    if !is_worker(pid) {
        bail!("pid {pid} (--docker-worker-pid) is not a running process named `worker`");
    }
    ctx.create_with_code(&function, RUNTIME, &slow_handler(sleep_secs), timeout_secs)
        .await?;
    let within = Duration::from_secs(u64::from(timeout_secs)) + KILLED_JOB_MARGIN;
    let warm = ctx
        .api
        .invoke_within(&function, RUNTIME, Some(within))
        .await;
    if !warm.is_ok() {
        bail!("the warm-up call failed: {}", warm.describe());
    }

    let mut spawner = Spawner {
        bin,
        id_prefix: config.replacement_worker_id.clone(),
        deps_root: config
            .replacement_deps_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir),
        log_dir: config
            .out
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), PathBuf::from),
        started: 0,
    };
    let mut workers = vec![Worker {
        id: format!("--docker-worker-pid {pid}"),
        pid,
        child: None,
        log: None,
        killed: false,
    }];
    let mut current = 0;
    let mut error = None;
    for i in 1..=config.async_kill_samples {
        match kill_one(
            ctx,
            broker,
            &function,
            &mut spawner,
            &mut workers,
            &mut current,
        )
        .await
        {
            Ok(sample) => {
                ctx.progress(
                    RUNTIME,
                    &format!(
                        "  worker death {i}: killed {}, {} on {} {} s after the kill ({} \
                         attempt{}, replacement consuming after {:.2} s)",
                        sample.killed,
                        sample.status,
                        sample.ran_on.as_deref().unwrap_or("?"),
                        sample
                            .kill_to_finished_s
                            .map_or("-".to_owned(), |s| format!("{s:.2}")),
                        sample.attempts,
                        if sample.attempts == 1 { "" } else { "s" },
                        sample.replacement_ready_s
                    ),
                );
                result.samples.push(sample);
            }
            Err(e) => {
                error = Some(e.context(format!("sample {i}")));
                break;
            }
        }
    }
    result.stopped = stop_replacements(&mut workers).await;
    let redelivered = |value: fn(&KillSample) -> Option<f64>| -> Vec<f64> {
        result
            .samples
            .iter()
            .filter(|s| s.redelivered)
            .filter_map(|s| value(s).map(|seconds| seconds * 1000.0))
            .collect()
    };
    result.kill_to_finished = summarize(&redelivered(|s| s.kill_to_finished_s));
    result.redelivery_wait = summarize(&redelivered(|s| s.redelivery_wait_s));
    match error {
        Some(error) if result.samples.is_empty() => Err(error),
        // The samples taken are kept, and the report says why there are no more.
        Some(error) => {
            ctx.progress(RUNTIME, &format!("  worker death: {error:#}"));
            result.error = Some(format!("{error:#}"));
            Ok(result)
        }
        None => Ok(result),
    }
}

/// One sample of part 3: kills `workers[current]` while it runs an async call of `function`,
/// after starting a replacement, which becomes `current`.
async fn kill_one(
    ctx: &Ctx<'_>,
    broker: &Broker,
    function: &str,
    spawner: &mut Spawner,
    workers: &mut Vec<Worker>,
    current: &mut usize,
) -> anyhow::Result<KillSample> {
    let config = ctx.config;
    let sleep_secs = config.async_kill_sleep_secs.max(0.0);
    let timeout_secs = slow_timeout_secs(sleep_secs, config.function_timeout_secs);
    // The job must go to the worker about to be killed: it alone consumes the queue.
    wait_for_consumers(broker, 1, None)
        .await
        .context("waiting for the docker queue to have one consumer")?;
    let outcome = ctx
        .api
        .call(&Target::Async {
            name: function.to_owned(),
        })
        .await;
    let id = outcome
        .invocation_id
        .clone()
        .filter(|_| outcome.is_ok())
        .with_context(|| format!("POST /execute_async/{function}: {}", outcome.describe()))?;
    wait_for_status(ctx.api, &id, |v| v.status != "queued", WORKER_START_TIMEOUT).await?;
    tokio::time::sleep(IN_HANDLER).await;

    let mut replacement = spawner.spawn()?;
    let ready = wait_for_consumers(broker, 2, Some(&mut replacement)).await;
    let (replacement_id, replacement_pid) = (replacement.id.clone(), replacement.pid);
    workers.push(replacement);
    let replacement_ready_s = ready?;

    let at_kill = read_view(&ctx.api.invocation(&id).await?);
    let victim = &mut workers[*current];
    signal(victim.pid, "KILL").await?;
    let killed_at = Utc::now();
    victim.killed = true;
    if let Some(child) = victim.child.as_mut() {
        child.wait().await?;
    }
    let killed = victim.id.clone();
    let killed_pid = victim.pid;
    *current = workers.len() - 1;
    ctx.progress(
        RUNTIME,
        &format!(
            "  killed {killed} (pid {killed_pid}) with the invocation {}; replacement {replacement_id} \
             (pid {replacement_pid})",
            at_kill.status
        ),
    );

    let within = Duration::from_secs(u64::from(timeout_secs)) + KILLED_JOB_MARGIN;
    let end = wait_for_status(ctx.api, &id, View::ended, within).await?;
    let (kill_to_finished_s, redelivery_wait_s) =
        after_kill(killed_at, end.finished_at, sleep_secs);
    let redelivered = at_kill.status == "running"
        && end.status == "succeeded"
        && end.worker_id.as_deref() == Some(replacement_id.as_str());
    Ok(KillSample {
        invocation_id: id,
        killed,
        killed_pid,
        replacement: replacement_id,
        replacement_ready_s,
        status_at_kill: at_kill.status,
        status: end.status,
        kill_to_finished_s,
        redelivery_wait_s,
        attempts: end.attempts,
        ran_on: end.worker_id,
        cold_start: end.cold_start,
        init_ms: end.init_ms,
        run_ms: end.run_ms,
        redelivered,
    })
}

/// SIGTERM to each replacement still running, then waits for it: how each stopped.
async fn stop_replacements(workers: &mut [Worker]) -> Vec<String> {
    let mut stopped = Vec::new();
    for worker in workers.iter_mut().filter(|w| !w.killed) {
        let Some(child) = worker.child.as_mut() else {
            continue;
        };
        let started = Instant::now();
        let how = match signal(worker.pid, "TERM").await {
            Err(error) => format!("{error:#}"),
            Ok(()) => match tokio::time::timeout(WORKER_STOP_TIMEOUT, child.wait()).await {
                Ok(Ok(status)) => {
                    format!("{status} after {:.1} s", started.elapsed().as_secs_f64())
                }
                Ok(Err(error)) => format!("{error}"),
                Err(_) => {
                    let _ = child.kill().await;
                    format!(
                        "still running {} s after SIGTERM: killed",
                        WORKER_STOP_TIMEOUT.as_secs()
                    )
                }
            },
        };
        worker.killed = true;
        stopped.push(format!("{}: {how}", worker.id));
    }
    stopped
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view(status: &str, created: &str, finished: Option<&str>) -> View {
        read_view(&json!({
            "status": status,
            "created_at": created,
            "finished_at": finished,
            "attempts": [],
        }))
    }

    #[test]
    fn reads_an_invocation_and_its_last_attempt() {
        let v = read_view(&json!({
            "invocation_id": "0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b",
            "status": "succeeded",
            "created_at": "2026-11-27T16:00:00.123456Z",
            "finished_at": "2026-11-27T16:00:02.5+00:00",
            "timing": {"queue_ms": 1.0, "init_ms": 250.5, "run_ms": 2001.0},
            "attempts": [
                {"attempt": 1, "worker_id": "w-1", "cold_start": false},
                {"attempt": 2, "worker_id": "w-2", "cold_start": true},
            ],
        }));
        assert!(v.ended());
        assert_eq!(v.attempts, 2);
        assert_eq!(v.worker_id.as_deref(), Some("w-2"));
        assert_eq!(v.cold_start, Some(true));
        assert_eq!((v.init_ms, v.run_ms), (Some(250.5), Some(2001.0)));
        let seconds = seconds_between(v.created_at.unwrap(), v.finished_at.unwrap());
        assert!((seconds - 2.376544).abs() < 1e-9, "{seconds}");
        let queued = read_view(&json!({"status": "queued", "finished_at": null}));
        assert!(!queued.ended());
        assert_eq!((queued.attempts, queued.finished_at), (0, None));
        assert!(view("dead_lettered", "2026-11-27T16:00:00Z", None).ended());
    }

    #[test]
    fn end_to_end_runs_from_the_first_accepted_to_the_last_finished() {
        let views = [
            view(
                "succeeded",
                "2026-11-27T16:00:00.5Z",
                Some("2026-11-27T16:00:01Z"),
            ),
            view(
                "succeeded",
                "2026-11-27T16:00:00Z",
                Some("2026-11-27T16:00:00.1Z"),
            ),
            view(
                "succeeded",
                "2026-11-27T16:00:01Z",
                Some("2026-11-27T16:00:04Z"),
            ),
            // Accepted first, never finished: it counts for the start, not the rate.
            view("queued", "2026-11-27T15:59:59Z", None),
            view(
                "dead_lettered",
                "2026-11-27T16:00:00Z",
                Some("2026-11-27T16:00:09Z"),
            ),
        ];
        let e2e = end_to_end(&views);
        assert_eq!(e2e.seconds, Some(5.0));
        assert_eq!(e2e.per_s, Some(0.6));
        assert_eq!(e2e.latencies_ms, vec![500.0, 100.0, 3000.0]);
        assert!(e2e.queued_ms.is_empty() && e2e.running_ms.is_empty());
        let started = read_view(&json!({
            "status": "succeeded",
            "created_at": "2026-11-27T16:00:00Z",
            "finished_at": "2026-11-27T16:00:01Z",
            "attempts": [{"attempt": 1, "started_at": "2026-11-27T16:00:00.75Z"},
                         {"attempt": 2, "started_at": "2026-11-27T16:00:00.9Z"}],
        }));
        let split = end_to_end(&[started]);
        assert_eq!(
            (split.queued_ms, split.running_ms),
            (vec![750.0], vec![250.0])
        );
        let summary = summarize(&e2e.latencies_ms).unwrap();
        assert_eq!((summary.p50_ms, summary.p99_ms), (500.0, 3000.0));
        let none = end_to_end(&[view("queued", "2026-11-27T16:00:00Z", None)]);
        assert_eq!((none.seconds, none.per_s), (None, None));
        assert!(none.latencies_ms.is_empty());
    }

    #[test]
    fn the_redelivery_wait_is_the_time_after_the_kill_beyond_the_sleep() {
        let killed_at = DateTime::parse_from_rfc3339("2026-11-27T16:00:01Z")
            .unwrap()
            .with_timezone(&Utc);
        let finished = DateTime::parse_from_rfc3339("2026-11-27T16:00:03.75Z").ok();
        assert_eq!(
            after_kill(killed_at, finished, 2.0),
            (Some(2.75), Some(0.75))
        );
        assert_eq!(after_kill(killed_at, None, 2.0), (None, None));
    }
}
