//! Scenarios 1 to 4, run against the api: warm latency at concurrency 1, throughput of one
//! function, first calls of fresh functions, and many functions round robin. Scenario 5 is in
//! `naive`, scenario 6 (a fast function beside slow ones) in `noisy`, scenario 7 (auth on
//! against auth off) in `auth`, scenario 8 (HTTP trigger against `/execute`) in `http`; the
//! interleaving 7 and 8 share in `interleave`; scenario 9 (dependencies) in `deps`, scenario 10
//! (async invocations) in `async_calls`. The loops that make the calls are here, and the
//! report's sections of scenarios 1 to 4 in `section`.

mod section;

pub use section::{ColdSection, RoundRobinSection, ThroughputSection, WarmSection};

use crate::client::{Api, CallOutcome, Function, Target};
use crate::config::{Config, Runtime};
use crate::cpu::{CpuMeter, CpuUsage};
use crate::stats::{CallStats, ErrorKind, Recorder};
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// What scenarios share: the client, the settings, and the names of what they created.
pub struct Ctx<'a> {
    pub api: &'a Api,
    pub config: &'a Config,
    /// Start of every function name of this run (`{prefix}-{run id}-`).
    pub name_stem: String,
    /// Every function created so far, for the clean-up.
    pub created: Mutex<Vec<Function>>,
    /// Ids of the keys made so far, revoked by the clean-up.
    pub made_keys: Mutex<Vec<String>>,
    /// CPU of the platform's processes, the client and the machine.
    pub cpu: CpuMeter,
}

impl Ctx<'_> {
    /// The name of this run's function `what` on `runtime`.
    pub(crate) fn name(&self, runtime: Runtime, what: &str) -> String {
        format!("{}{}-{what}", self.name_stem, runtime.as_str())
    }

    /// Creates a function with the benchmark handler and `--function-timeout-secs`.
    pub(crate) async fn create(&self, name: &str, runtime: Runtime) -> anyhow::Result<Function> {
        self.create_with_code(
            name,
            runtime,
            crate::client::HANDLER,
            self.config.function_timeout_secs,
        )
        .await
    }

    /// Creates a function with the benchmark handler and `--function-timeout-secs` at `route`,
    /// recorded for the clean-up.
    pub(crate) async fn create_at(
        &self,
        name: &str,
        route: &str,
        runtime: Runtime,
    ) -> anyhow::Result<Function> {
        let function = self
            .api
            .create_function_at(
                name,
                route,
                runtime,
                crate::client::HANDLER,
                self.config.function_timeout_secs,
            )
            .await?;
        self.record_created(&function);
        Ok(function)
    }

    /// Creates a Python function running `code`, recorded for the clean-up.
    pub(crate) async fn create_with_code(
        &self,
        name: &str,
        runtime: Runtime,
        code: &str,
        timeout_secs: u32,
    ) -> anyhow::Result<Function> {
        let function = self
            .api
            .create_function_with_code(name, runtime, code, timeout_secs)
            .await?;
        self.record_created(&function);
        Ok(function)
    }

    pub(crate) fn record_created(&self, function: &Function) {
        self.created
            .lock()
            .expect("the created list is never poisoned")
            .push(function.clone());
    }

    /// One unmeasured call of `function`, said in the progress when it failed.
    pub(crate) async fn warm_up(&self, function: &str, runtime: Runtime) -> CallOutcome {
        let first = self.api.invoke(function, runtime).await;
        if !first.is_ok() {
            self.progress(
                runtime,
                &format!("  the warm-up call failed: {}", first.describe()),
            );
        }
        first
    }

    pub(crate) fn progress(&self, runtime: Runtime, text: &str) {
        eprintln!("[bench] {}: {text}", runtime.as_str());
    }
}

/// Scenario 1.
#[derive(Debug, Clone, Serialize)]
pub struct WarmResult {
    pub function: String,
    /// Latency of the call that warmed the function (not in `stats`).
    pub first_call_ms: f64,
    pub first_call_cold_start: Option<bool>,
    pub stats: CallStats,
    /// Client-measured latency of each call, in order (failed calls included).
    pub latencies_ms: Vec<f64>,
    /// CPU over the sequential calls.
    pub cpu: CpuUsage,
}

/// The warm-up before a load scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Warmup {
    pub rounds: usize,
    pub calls: u64,
    pub errors: u64,
    pub error_kinds: Vec<ErrorKind>,
    /// Cold starts seen in each round; the warm-up stops after a round with none.
    pub cold_starts_per_round: Vec<u64>,
    pub seconds: f64,
}

/// Scenarios 2 and 4: a fixed duration of calls at a fixed concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub functions: usize,
    pub concurrency: usize,
    /// From the first call to the last answer (calls still in flight at the end of the
    /// duration are waited for and counted).
    pub seconds: f64,
    /// Successful calls per second.
    pub calls_per_s: f64,
    pub warmup: Warmup,
    pub stats: CallStats,
    /// CPU over the measured calls.
    pub cpu: CpuUsage,
    /// Scenario 4 only: `calls_per_s` over scenario 2's.
    pub ratio_to_single: Option<f64>,
}

/// Scenario 3.
#[derive(Debug, Clone, Serialize)]
pub struct ColdResult {
    pub functions: usize,
    /// Creations that failed (their functions were not called).
    pub create_errors: Vec<String>,
    /// Latency of each first call, in order, successful or not.
    pub first_calls_ms: Vec<f64>,
    pub stats: CallStats,
}

/// When a load loop stops taking new calls.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stop {
    AfterCalls(usize),
    At(Instant),
}

/// `calls` sequential calls of `target`: what they came to, and each one's latency (failed
/// calls included), in order.
pub(crate) async fn sequential(api: &Api, target: &Target, calls: usize) -> (Recorder, Vec<f64>) {
    let mut recorder = Recorder::default();
    let mut latencies_ms = Vec::with_capacity(calls);
    for _ in 0..calls {
        let outcome = api.call(target).await;
        latencies_ms.push(outcome.latency_ms);
        recorder.record(&outcome);
    }
    (recorder, latencies_ms)
}

/// `/execute` targets of the functions `names` on `runtime`.
pub(crate) fn execute_targets(names: &[String], runtime: Runtime) -> Arc<Vec<Target>> {
    Arc::new(
        names
            .iter()
            .map(|name| Target::execute(name, runtime))
            .collect(),
    )
}

/// Runs calls on `concurrency` tasks; call `i` goes to `targets[i % len]`. Returns what they
/// saw and the seconds from the first call to the last answer.
pub(crate) async fn drive(
    api: &Api,
    targets: &Arc<Vec<Target>>,
    concurrency: usize,
    stop: Stop,
) -> anyhow::Result<(Recorder, f64)> {
    let (recorder, _, seconds) =
        drive_keeping(api, targets, concurrency, stop, |_| None::<()>).await?;
    Ok((recorder, seconds))
}

/// [`drive`], also keeping what `keep` takes out of each outcome (in no particular order).
pub(crate) async fn drive_keeping<T: Send + 'static>(
    api: &Api,
    targets: &Arc<Vec<Target>>,
    concurrency: usize,
    stop: Stop,
    keep: fn(&CallOutcome) -> Option<T>,
) -> anyhow::Result<(Recorder, Vec<T>, f64)> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (api, targets, next) = (api.clone(), Arc::clone(targets), Arc::clone(&next));
        tasks.spawn(async move {
            let mut recorder = Recorder::default();
            let mut kept = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let done = match stop {
                    Stop::AfterCalls(calls) => i >= calls,
                    Stop::At(end) => Instant::now() >= end,
                };
                if done {
                    return (recorder, kept);
                }
                let outcome = api.call(&targets[i % targets.len()]).await;
                recorder.record(&outcome);
                kept.extend(keep(&outcome));
            }
        });
    }
    let mut total = Recorder::default();
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (recorder, kept) = joined?;
        total.merge(recorder);
        all.extend(kept);
    }
    Ok((total, all, started.elapsed().as_secs_f64()))
}

/// Rounds of `round_calls` calls at `concurrency` through `api` until one has no cold start
/// and no error (`runtime` names the progress line).
pub(crate) async fn warm_up(
    ctx: &Ctx<'_>,
    api: &Api,
    targets: &Arc<Vec<Target>>,
    runtime: Runtime,
    round_calls: usize,
) -> anyhow::Result<Warmup> {
    let started = Instant::now();
    let mut all = Recorder::default();
    let mut cold_starts_per_round = Vec::new();
    for round in 1..=ctx.config.warmup_rounds.max(1) {
        let (recorder, seconds) = drive(
            api,
            targets,
            ctx.config.concurrency,
            Stop::AfterCalls(round_calls),
        )
        .await?;
        let (cold, errors) = (recorder.cold_starts(), recorder.errors());
        cold_starts_per_round.push(cold);
        if ctx.config.verbose {
            ctx.progress(
                runtime,
                &format!(
                    "  warm-up round {round}: {round_calls} calls in {seconds:.1} s, {cold} cold, \
                     {errors} errors"
                ),
            );
        }
        all.merge(recorder);
        if cold == 0 && errors == 0 {
            break;
        }
    }
    let stats = all.finish();
    Ok(Warmup {
        rounds: cold_starts_per_round.len(),
        calls: stats.calls,
        errors: stats.errors,
        error_kinds: stats.error_kinds,
        cold_starts_per_round,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Warm-up, then `seconds` of calls over `names` at the configured concurrency.
async fn load(
    ctx: &Ctx<'_>,
    names: Vec<String>,
    runtime: Runtime,
    round_calls: usize,
    seconds: f64,
) -> anyhow::Result<LoadResult> {
    let targets = execute_targets(&names, runtime);
    let warmup = warm_up(ctx, ctx.api, &targets, runtime, round_calls).await?;
    // Warm-up rounds call each function once; the measured pattern also makes calls of one
    // function overlap, which needs more containers. Run that pattern unmeasured first, so the
    // measurement sees the pool it settles on rather than its growth.
    if ctx.config.load_warmup_secs > 0.0 {
        let until = Instant::now() + Duration::from_secs_f64(ctx.config.load_warmup_secs);
        drive(ctx.api, &targets, ctx.config.concurrency, Stop::At(until)).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mark = ctx.cpu.mark();
    let end = Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
    let (recorder, elapsed) =
        drive(ctx.api, &targets, ctx.config.concurrency, Stop::At(end)).await?;
    let cpu = ctx.cpu.since(&mark);
    let stats = recorder.finish();
    Ok(LoadResult {
        functions: names.len(),
        concurrency: ctx.config.concurrency,
        seconds: elapsed,
        calls_per_s: if elapsed > 0.0 {
            stats.ok as f64 / elapsed
        } else {
            0.0
        },
        warmup,
        stats,
        cpu,
        ratio_to_single: None,
    })
}

/// Scenario 1: creates the function scenario 2 reuses, warms it with one call, then makes
/// `warm_calls` sequential calls.
pub async fn warm(ctx: &Ctx<'_>, runtime: Runtime, function: &str) -> anyhow::Result<WarmResult> {
    ctx.progress(
        runtime,
        &format!(
            "1. warm latency: 1 + {} sequential calls",
            ctx.config.warm_calls
        ),
    );
    let first = ctx.warm_up(function, runtime).await;
    tokio::time::sleep(Duration::from_secs_f64(ctx.config.warm_settle_secs)).await;
    let mark = ctx.cpu.mark();
    let (recorder, latencies_ms) = sequential(
        ctx.api,
        &Target::execute(function, runtime),
        ctx.config.warm_calls,
    )
    .await;
    Ok(WarmResult {
        function: function.to_owned(),
        first_call_ms: first.latency_ms,
        first_call_cold_start: first.cold_start,
        stats: recorder.finish(),
        latencies_ms,
        cpu: ctx.cpu.since(&mark),
    })
}

/// Creates the single function of scenarios 1, 2 and 6.
pub async fn create_single(ctx: &Ctx<'_>, runtime: Runtime) -> anyhow::Result<String> {
    let name = ctx.name(runtime, "single");
    ctx.create(&name, runtime).await?;
    Ok(name)
}

/// Scenario 2: one function at the configured concurrency, after rounds of one call per
/// slot that leave as many warm containers as slots.
pub async fn throughput(
    ctx: &Ctx<'_>,
    runtime: Runtime,
    function: &str,
) -> anyhow::Result<LoadResult> {
    ctx.progress(
        runtime,
        &format!(
            "2. throughput: 1 function, concurrency {}, {} s",
            ctx.config.concurrency, ctx.config.duration_secs
        ),
    );
    load(
        ctx,
        vec![function.to_owned()],
        runtime,
        ctx.config.concurrency,
        ctx.config.duration_secs,
    )
    .await
}

/// Scenario 3: creates fresh functions one by one and times the first call of each.
pub async fn cold(ctx: &Ctx<'_>, runtime: Runtime) -> anyhow::Result<ColdResult> {
    ctx.progress(
        runtime,
        &format!(
            "3. cold start: {} fresh functions, created then called once",
            ctx.config.cold_functions
        ),
    );
    let mut recorder = Recorder::default();
    let mut create_errors = Vec::new();
    let mut first_calls_ms = Vec::new();
    for i in 0..ctx.config.cold_functions {
        let name = ctx.name(runtime, &format!("cold-{i:03}"));
        if let Err(error) = ctx.create(&name, runtime).await {
            create_errors.push(format!("{error:#}"));
            continue;
        }
        let outcome = ctx.api.invoke(&name, runtime).await;
        first_calls_ms.push(outcome.latency_ms);
        recorder.record(&outcome);
    }
    Ok(ColdResult {
        functions: ctx.config.cold_functions,
        create_errors,
        first_calls_ms,
        stats: recorder.finish(),
    })
}

/// Scenario 4: creates `rr_functions` functions, warms each, then calls them round robin.
pub async fn round_robin(ctx: &Ctx<'_>, runtime: Runtime) -> anyhow::Result<LoadResult> {
    let count = ctx.config.rr_functions.max(1);
    ctx.progress(
        runtime,
        &format!(
            "4. round robin: {count} functions, concurrency {}, {} s",
            ctx.config.concurrency, ctx.config.rr_duration_secs
        ),
    );
    let mut names = Vec::with_capacity(count);
    for i in 0..count {
        let name = ctx.name(runtime, &format!("rr-{i:03}"));
        ctx.create(&name, runtime).await?;
        names.push(name);
    }
    load(ctx, names, runtime, count, ctx.config.rr_duration_secs).await
}
