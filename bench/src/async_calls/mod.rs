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
//!
//! The parts are in `accept` (1), `burst` (2) and `kill` (3); `view` reads what the api shows
//! of an invocation, `broker` counts a queue's consumers, and `section` is the scenario's part
//! of the report.

mod accept;
mod broker;
mod burst;
mod kill;
mod section;
mod view;

pub use section::AsyncSection;
pub use view::{EndToEnd, View, after_kill, end_to_end, read_view};

use crate::config::Runtime;
use crate::cpu::CpuUsage;
use crate::scenarios::Ctx;
use crate::stats::{CallStats, Summary};
use broker::Broker;
use serde::Serialize;
use std::time::Duration;

/// The runtime scenario 10 runs on.
pub const RUNTIME: Runtime = Runtime::Docker;
/// Between two checks of whether a function's invocations have all ended.
const PENDING_POLL: Duration = Duration::from_millis(500);
/// Dead-lettered invocations part 1 counts at most (the list's largest page).
pub const DEAD_LETTERED_COUNTED: usize = 100;

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
    match accept::accept(ctx).await {
        Ok(r) => result.accept = Some(r),
        Err(error) => failures.push(("10. async accept", error)),
    }
    match burst::burst(ctx, None).await {
        Ok(first) => {
            let function = first.function.clone();
            result.bursts.push(first);
            match burst::burst(ctx, Some(function)).await {
                Ok(again) => result.bursts.push(again),
                Err(error) => failures.push(("10. async burst again", error)),
            }
        }
        Err(error) => failures.push(("10. async burst", error)),
    }
    match kill::kill(ctx, broker.as_ref()).await {
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
