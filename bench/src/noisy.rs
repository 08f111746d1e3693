//! Scenario 6, the noisy neighbour: whether one function's warm calls stay fast while another
//! function's slow calls hold containers, room and the workers' prefetch for seconds each. The
//! fast function gets the same sequential calls twice, alone and then beside
//! `--noisy-slow-calls` slow calls that are all running, so that the two sets compare directly;
//! the slow calls' own answers are counted too, since a platform that protects the fast
//! function by failing the slow ones has not solved anything. The scenario's section of the
//! report is here too.

use crate::client::Target;
use crate::config::{Config, Runtime};
use crate::cpu::CpuUsage;
use crate::pool;
use crate::scenarios::{self, Ctx};
use crate::section::{Section, error_rows, opt_ms, ratio_cell, table};
use crate::stats::{CallStats, Recorder, Summary};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// How often the wait for the slow calls looks again.
const POLL: Duration = Duration::from_millis(200);

/// Pause of a slow loop after a failed call: a platform that turns the slow calls away at once
/// would otherwise get a flood of them, and the fast calls would be measured beside that
/// flood instead of beside calls that run.
const FAILED_CALL_PAUSE: Duration = Duration::from_secs(1);

/// The api's `timeout` limit for a function (seconds).
const MAX_FUNCTION_TIMEOUT_SECS: u32 = 900;

/// Scenario 6.
#[derive(Debug, Clone, Serialize)]
pub struct NoisyResult {
    /// The function measured: scenario 1's, with the benchmark handler.
    pub fast_function: String,
    pub slow_function: String,
    /// Client loops calling the slow function, each with one call in flight at a time.
    pub slow_loops: usize,
    /// What each slow call sleeps in its handler.
    pub sleep_secs: f64,
    /// `timeout` the slow function was created with.
    pub slow_timeout_secs: u32,
    /// Latency of the call that warmed the fast function (in neither `alone` nor `beside`).
    pub first_call_ms: f64,
    pub first_call_cold_start: Option<bool>,
    /// The fast function's sequential calls with nothing else running.
    pub alone: CallStats,
    /// The same number of sequential calls while the slow calls ran.
    pub beside: CallStats,
    /// `beside` p50 over `alone` p50.
    pub p50_ratio: Option<f64>,
    /// Client-measured latency of each call, in order (failed calls included).
    pub alone_latencies_ms: Vec<f64>,
    pub beside_latencies_ms: Vec<f64>,
    /// How far the slow calls had got when the fast function was measured beside them.
    pub settle: Settle,
    /// Every slow call, from the first (cold) ones to those the loops finished after the fast
    /// calls.
    pub slow: CallStats,
    /// CPU over the fast calls beside the slow ones.
    pub cpu: CpuUsage,
}

/// The wait, after starting the slow loops, before measuring the fast function beside them.
#[derive(Debug, Clone, Serialize)]
pub struct Settle {
    /// From starting the slow loops to the first fast call beside them.
    pub seconds: f64,
    /// Slow loops whose first call had been answered, so that its container had started and
    /// the loop's next call takes a warm one.
    pub loops_answered: usize,
    /// The runtime's `faas_worker_inflight_jobs`, summed over `--worker-metrics-url`, just
    /// before and just after the fast calls; `None` without worker metrics.
    pub inflight_jobs_before: Option<f64>,
    pub inflight_jobs_after: Option<f64>,
    /// Everything above held before the deadline (one sleep plus `--noisy-settle-secs`);
    /// when false the fast function was measured anyway, beside fewer running slow calls.
    pub all_running: bool,
}

/// The slow function's handler: sleeps, then answers what the benchmark handler answers, so
/// that its calls are judged like every other call.
pub fn slow_handler(sleep_secs: f64) -> String {
    format!(
        "import time\ndef handler(event, context):\n    time.sleep({sleep_secs})\n    return \
         {{\"ok\": True}}"
    )
}

/// The slow function's `timeout`: its sleep rounded up plus `margin_secs`, within the api's
/// limits. The api adds its own allowance for the queue and the container start on top.
pub fn slow_timeout_secs(sleep_secs: f64, margin_secs: u32) -> u32 {
    // `as` saturates: a negative or NaN sleep counts as 0.
    (sleep_secs.ceil() as u32)
        .saturating_add(margin_secs)
        .clamp(1, MAX_FUNCTION_TIMEOUT_SECS)
}

/// Whether `loops` slow calls are running in started containers: every loop has had its first
/// answer, and the workers, when their metrics were read, report at least that many jobs.
pub fn all_running(loops_answered: usize, loops: usize, inflight_jobs: Option<f64>) -> bool {
    loops_answered >= loops && inflight_jobs.is_none_or(|jobs| jobs >= loops as f64)
}

/// `beside`'s p50 over `alone`'s; `None` when either has no successful call.
pub fn p50_ratio(alone: &CallStats, beside: &CallStats) -> Option<f64> {
    let alone = alone.latency_ms.as_ref()?.p50_ms;
    let beside = beside.latency_ms.as_ref()?.p50_ms;
    (alone > 0.0).then(|| beside / alone)
}

/// The runtime's jobs in flight on the workers; `None` without worker metrics.
async fn inflight_jobs(ctx: &Ctx<'_>, runtime: Runtime) -> Option<f64> {
    let urls = &ctx.config.worker_metrics_url;
    if urls.is_empty() {
        return None;
    }
    pool::read(ctx.api, urls, runtime).await.inflight_jobs
}

/// Waits until [`all_running`] holds or `deadline` passes; true when it held. The workers'
/// metrics are read only once every loop has been answered: before that they cannot help.
async fn wait_all_running(
    ctx: &Ctx<'_>,
    runtime: Runtime,
    loops: usize,
    answered: &AtomicUsize,
    deadline: Instant,
) -> bool {
    loop {
        let now_answered = answered.load(Ordering::Relaxed);
        let inflight = if now_answered >= loops {
            inflight_jobs(ctx, runtime).await
        } else {
            None
        };
        if all_running(now_answered, loops, inflight) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Scenario 6: creates the slow function, warms `fast` and measures it alone, starts the slow
/// loops, waits until their calls all run, measures `fast` again, then lets the loops finish
/// the calls they have in flight.
pub async fn run(ctx: &Ctx<'_>, runtime: Runtime, fast: &str) -> anyhow::Result<NoisyResult> {
    let config = ctx.config;
    let loops = config.noisy_slow_calls;
    let calls = config.noisy_calls;
    let sleep_secs = config.noisy_sleep_secs.max(0.0);
    ctx.progress(
        runtime,
        &format!(
            "6. noisy neighbour: 1 + {calls} sequential calls alone, then {calls} beside {loops} \
             calls sleeping {sleep_secs} s"
        ),
    );
    let slow = ctx.name(runtime, "noisy-slow");
    let slow_timeout = slow_timeout_secs(sleep_secs, config.function_timeout_secs);
    ctx.create_with_code(&slow, runtime, &slow_handler(sleep_secs), slow_timeout)
        .await?;
    // The api answers a slow call only after its timeout plus its own allowance for the queue
    // and the start (INVOKE_OVERHEAD_MS, 15 s by default): the client must wait longer than
    // both, or it would report its own timeouts as the platform's.
    let slow_request_timeout = config
        .request_timeout()
        .max(Duration::from_secs(u64::from(slow_timeout) + 60));

    let first = ctx.warm_up(fast, runtime).await;
    if first.cold_start != Some(false) {
        // As in scenario 1: the stem cell a cold start used is replaced by a container start
        // that loads both cores; the calls alone should not be measured beside it.
        tokio::time::sleep(Duration::from_secs_f64(config.warm_settle_secs)).await;
    }
    let fast_target = Target::execute(fast, runtime);
    let (alone, alone_latencies_ms) = scenarios::sequential(ctx.api, &fast_target, calls).await;
    let alone = alone.finish();

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..loops {
        let (api, slow, stop, answered) = (
            ctx.api.clone(),
            slow.clone(),
            Arc::clone(&stop),
            Arc::clone(&answered),
        );
        tasks.spawn(async move {
            let mut recorder = Recorder::default();
            let mut first = true;
            while !stop.load(Ordering::Relaxed) {
                let outcome = api
                    .invoke_within(&slow, runtime, Some(slow_request_timeout))
                    .await;
                recorder.record(&outcome);
                if first {
                    answered.fetch_add(1, Ordering::Relaxed);
                    first = false;
                }
                if !outcome.is_ok() && !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(FAILED_CALL_PAUSE).await;
                }
            }
            recorder
        });
    }
    // The first call of every loop starts a container (at most MAX_STARTING at once); once
    // each loop has had an answer, its later calls take warm containers and are running as
    // soon as the worker takes them, which its metrics confirm.
    let deadline =
        started + Duration::from_secs_f64(sleep_secs + config.noisy_settle_secs.max(0.0));
    let all_running = wait_all_running(ctx, runtime, loops, &answered, deadline).await;
    let inflight_jobs_before = inflight_jobs(ctx, runtime).await;
    let loops_answered = answered.load(Ordering::Relaxed);
    let settle_secs = started.elapsed().as_secs_f64();
    ctx.progress(
        runtime,
        &format!(
            "  {loops_answered} of {loops} slow loops answered after {settle_secs:.1} s{}{}",
            inflight_jobs_before
                .map_or(String::new(), |jobs| format!(", {jobs:.0} jobs in flight")),
            if all_running {
                ""
            } else {
                "; measuring anyway"
            }
        ),
    );

    let mark = ctx.cpu.mark();
    let (beside, beside_latencies_ms) = scenarios::sequential(ctx.api, &fast_target, calls).await;
    let beside = beside.finish();
    let cpu = ctx.cpu.since(&mark);
    let inflight_jobs_after = inflight_jobs(ctx, runtime).await;

    if loops > 0 {
        ctx.progress(runtime, "  waiting for the slow calls in flight to finish");
    }
    stop.store(true, Ordering::Relaxed);
    let mut slow_calls = Recorder::default();
    while let Some(joined) = tasks.join_next().await {
        slow_calls.merge(joined?);
    }

    Ok(NoisyResult {
        fast_function: fast.to_owned(),
        slow_function: slow,
        slow_loops: loops,
        sleep_secs,
        slow_timeout_secs: slow_timeout,
        first_call_ms: first.latency_ms,
        first_call_cold_start: first.cold_start,
        p50_ratio: p50_ratio(&alone, &beside),
        alone,
        beside,
        alone_latencies_ms,
        beside_latencies_ms,
        settle: Settle {
            seconds: settle_secs,
            loops_answered,
            inflight_jobs_before,
            inflight_jobs_after,
            all_running,
        },
        slow: slow_calls.finish(),
        cpu,
    })
}

/// Scenario 6's part of the report.
pub struct NoisySection;

impl Section for NoisySection {
    type Result = NoisyResult;

    fn settings(&self, settings: &Config) -> Option<String> {
        Some(format!(
            "{} calls alone and beside {} calls sleeping {} s",
            settings.noisy_calls, settings.noisy_slow_calls, settings.noisy_sleep_secs
        ))
    }

    fn markdown(&self, runs: &[(Runtime, &NoisyResult)], settings: &Config) -> String {
        let rows: Vec<String> = runs
            .iter()
            .map(|(runtime, n)| {
                let (alone, beside) = (&n.alone, &n.beside);
                format!(
                    "| {} | {} | {} | {} | {} | {} | {} / {} | {} / {} | {} | {} |",
                    runtime.as_str(),
                    alone.calls,
                    pair_cell(alone, beside, |s| s.p50_ms),
                    ratio_cell(n.p50_ratio),
                    pair_cell(alone, beside, |s| s.p99_ms),
                    pair_cell(alone, beside, |s| s.max_ms),
                    answers(alone),
                    answers(beside),
                    alone.cold_starts,
                    beside.cold_starts,
                    running_cell(&n.settle, n.slow_loops),
                    answers(&n.slow)
                )
            })
            .collect();
        table(
            &format!(
                "## 6. Noisy neighbour: a warm function alone, then beside {} calls sleeping {} \
                 s\n\n| runtime | fast calls | p50 alone / beside | p50 ratio | p99 alone / beside \
                 | max alone / beside | answers alone / beside | cold starts alone / beside | \
                 slow calls running | slow answers |\n| --- | --: | --: | --: | --: | --: | --- | \
                 --: | --- | --- |",
                settings.noisy_slow_calls, settings.noisy_sleep_secs
            ),
            &rows,
        )
    }

    fn cpu<'r>(&self, noisy: &'r NoisyResult) -> Vec<(&'static str, &'r CpuUsage)> {
        vec![("6. noisy, beside", &noisy.cpu)]
    }

    fn errors(&self, runtime: Runtime, noisy: &NoisyResult) -> Vec<String> {
        let mut lines = error_rows("6. alone", runtime, &noisy.alone.error_kinds);
        lines.extend(error_rows("6. beside", runtime, &noisy.beside.error_kinds));
        lines.extend(error_rows(
            "6. slow calls",
            runtime,
            &noisy.slow.error_kinds,
        ));
        lines
    }

    fn server_side<'r>(&self, noisy: &'r NoisyResult) -> Vec<(&'static str, &'r CallStats)> {
        vec![
            ("6. alone", &noisy.alone),
            ("6. beside", &noisy.beside),
            ("6. slow calls", &noisy.slow),
        ]
    }
}

/// The answers of a set of calls by status (and error code): `200 ×198, 503 expired ×2`.
pub(crate) fn answers(stats: &CallStats) -> String {
    let mut parts = Vec::new();
    if stats.ok > 0 {
        parts.push(format!("200 ×{}", stats.ok));
    }
    for k in &stats.error_kinds {
        parts.push(format!("{} {} ×{}", k.status, k.code, k.count));
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// How many slow calls were running when the fast function was measured beside them.
pub(crate) fn running_cell(settle: &Settle, loops: usize) -> String {
    let answered = if settle.all_running {
        format!("{} of {loops}", settle.loops_answered)
    } else {
        format!("**{} of {loops}**", settle.loops_answered)
    };
    let jobs = match (settle.inflight_jobs_before, settle.inflight_jobs_after) {
        (Some(before), Some(after)) => format!(", {before:.0} → {after:.0} jobs in flight"),
        (Some(before), None) => format!(", {before:.0} jobs in flight"),
        _ => String::new(),
    };
    format!(
        "{answered} after {:.1} s{jobs}{}",
        settle.seconds,
        if settle.all_running {
            ""
        } else {
            " (stopped waiting)"
        }
    )
}

/// A pair of values, one per set of calls: `alone / beside`.
fn pair_cell(alone: &CallStats, beside: &CallStats, value: fn(&Summary) -> f64) -> String {
    format!(
        "{} / {}",
        opt_ms(alone.latency_ms.as_ref(), value),
        opt_ms(beside.latency_ms.as_ref(), value)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::stats_of as stats;

    #[test]
    fn the_slow_handler_sleeps_then_answers_like_the_benchmark_handler() {
        assert_eq!(
            slow_handler(10.0),
            "import time\ndef handler(event, context):\n    time.sleep(10)\n    return {\"ok\": \
             True}"
        );
        assert!(slow_handler(0.25).contains("time.sleep(0.25)\n"));
    }

    #[test]
    fn the_slow_timeout_covers_the_sleep_within_the_apis_limits() {
        assert_eq!(slow_timeout_secs(10.0, 5), 15);
        assert_eq!(slow_timeout_secs(0.2, 5), 6);
        assert_eq!(slow_timeout_secs(0.0, 0), 1);
        assert_eq!(slow_timeout_secs(-3.0, 5), 5);
        assert_eq!(slow_timeout_secs(f64::NAN, 5), 5);
        assert_eq!(slow_timeout_secs(899.5, 5), 900);
        assert_eq!(slow_timeout_secs(1e12, u32::MAX), 900);
    }

    #[test]
    fn all_running_needs_every_loop_answered_and_the_jobs_in_flight() {
        assert!(!all_running(39, 40, None));
        assert!(!all_running(39, 40, Some(40.0)));
        assert!(all_running(40, 40, None), "no metrics: the answers decide");
        assert!(!all_running(40, 40, Some(38.0)), "two not taken yet");
        assert!(all_running(40, 40, Some(41.0)));
        assert!(all_running(0, 0, Some(0.0)));
    }

    #[test]
    fn p50_ratio_is_beside_over_alone() {
        let alone = stats(&[1.0, 2.0, 3.0]);
        let beside = stats(&[3.0, 4.0, 5.0]);
        assert_eq!(p50_ratio(&alone, &beside), Some(2.0));
        assert_eq!(p50_ratio(&alone, &stats(&[])), None);
        assert_eq!(p50_ratio(&stats(&[]), &beside), None);
        assert_eq!(p50_ratio(&stats(&[0.0]), &beside), None);
    }
}
