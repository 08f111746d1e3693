//! Scenario 12, a burst to a cold function: `--burst-calls` concurrent first calls of a
//! function created just before, on each runtime. A platform that gives every waiting call a
//! container of its own makes the last callers wait for many starts in a row; one that hands a
//! call whichever container frees or starts first serves the burst within a few starts. The
//! report shows the spread (p50, p99, max) and how many calls answered that they started a
//! container (`cold_start: true`).
//!
//! The scenario's section of the report and its targets are here too.

use crate::client::Target;
use crate::config::{Config, Runtime, Scenario};
use crate::scenarios::{self, Ctx, Stop};
use crate::section::{Section, TargetCheck, error_rows, latency_check, opt_ms, table};
use crate::stats::CallStats;
use serde::Serialize;
use std::sync::Arc;

/// What a burst came to.
#[derive(Debug, Clone, Serialize)]
pub struct BurstResult {
    pub function: String,
    /// Calls sent at once.
    pub calls: usize,
    /// From the calls sent to the last answer.
    pub seconds: f64,
    pub stats: CallStats,
}

/// Creates a fresh function on `runtime` and sends it `--burst-calls` first calls at once.
pub async fn run(ctx: &Ctx<'_>, runtime: Runtime) -> anyhow::Result<BurstResult> {
    let calls = ctx.config.burst_calls.max(1);
    ctx.progress(
        runtime,
        &format!("12. burst: {calls} concurrent first calls of a fresh function"),
    );
    let name = ctx.name(runtime, "burst");
    ctx.create(&name, runtime).await?;
    // As many callers as calls, one call each: every call is sent at once.
    let target = Arc::new(vec![Target::execute(&name, runtime)]);
    let (recorder, seconds) =
        scenarios::drive(ctx.api, &target, calls, Stop::AfterCalls(calls)).await?;
    let result = BurstResult {
        function: name,
        calls,
        seconds,
        stats: recorder.finish(),
    };
    let latency = result.stats.latency_ms.as_ref();
    ctx.progress(
        runtime,
        &format!(
            "  p50 {} ms, p99 {} ms, max {} ms; {} of {} answered cold_start: true",
            opt_ms(latency, |s| s.p50_ms),
            opt_ms(latency, |s| s.p99_ms),
            opt_ms(latency, |s| s.max_ms),
            result.stats.cold_starts,
            result.stats.ok
        ),
    );
    Ok(result)
}

/// Issue 25's bound on a burst's p99: within a few container starts, not seconds.
pub fn p99_limit_ms(runtime: Runtime) -> f64 {
    match runtime {
        Runtime::Docker => 250.0,
        Runtime::Gvisor => 1000.0,
    }
}

/// Scenario 12's part of the report.
pub struct BurstSection;

impl Section for BurstSection {
    type Result = BurstResult;

    fn settings(&self, settings: &Config) -> Option<String> {
        settings
            .wants(Scenario::Burst)
            .then(|| format!("a burst of {} first calls", settings.burst_calls))
    }

    fn markdown(&self, runs: &[(Runtime, &BurstResult)], _settings: &Config) -> String {
        let rows: Vec<String> = runs
            .iter()
            .map(|(runtime, burst)| {
                let st = &burst.stats;
                let l = st.latency_ms.as_ref();
                format!(
                    "| {} | {} | {} | {} | {} | {} | {:.2} | {} of {} |",
                    runtime.as_str(),
                    burst.calls,
                    st.errors,
                    opt_ms(l, |s| s.p50_ms),
                    opt_ms(l, |s| s.p99_ms),
                    opt_ms(l, |s| s.max_ms),
                    burst.seconds,
                    st.cold_starts,
                    st.ok
                )
            })
            .collect();
        table(
            "## 12. Burst: concurrent first calls of a fresh function\n\n| runtime | calls | \
             errors | p50 | p99 | max | seconds | `cold_start: true` |\n| --- | --: | --: | --: \
             | --: | --: | --: | --: |",
            &rows,
        )
    }

    fn errors(&self, runtime: Runtime, burst: &BurstResult) -> Vec<String> {
        error_rows("12. burst", runtime, &burst.stats.error_kinds)
    }

    fn server_side<'r>(&self, burst: &'r BurstResult) -> Vec<(&'static str, &'r CallStats)> {
        vec![("12. burst", &burst.stats)]
    }

    fn targets(
        &self,
        runtime: Runtime,
        burst: Option<&BurstResult>,
        _concurrency: usize,
    ) -> Vec<TargetCheck> {
        vec![latency_check(
            runtime.as_str(),
            "12. burst p99",
            p99_limit_ms(runtime),
            burst.map(|b| &b.stats),
            |s| s.p99_ms,
        )]
    }
}
