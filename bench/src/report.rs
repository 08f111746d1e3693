//! The results: the targets checked against them, and the markdown tables printed on
//! stdout (the JSON is the same structure, serialized).

use crate::async_calls::AsyncResult;
use crate::auth::{AuthResult, Key};
use crate::config::{Config, Runtime, Scenario};
use crate::cpu::CpuUsage;
use crate::deps::DepsResult;
use crate::http::{self, HttpResult, Interval};
use crate::interleave::VariantResult;
use crate::machine::Machine;
use crate::naive::NaiveResult;
use crate::noisy::{NoisyResult, Settle};
use crate::pool::PoolChange;
use crate::procs::Memory;
use crate::scenarios::{ColdResult, LoadResult, WarmResult};
use crate::stats::{CallStats, ErrorKind, Summary};
use serde::Serialize;
use std::fmt::Write;

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub machine: Machine,
    pub settings: Config,
    /// Part of every function name the run created.
    pub run_id: String,
    /// Ctrl-C stopped the run early.
    pub interrupted: bool,
    pub runtimes: Vec<RuntimeResults>,
    pub memory_at_start: Vec<Memory>,
    pub memory_at_end: Vec<Memory>,
    pub targets: Vec<TargetCheck>,
    pub cleanup: Cleanup,
}

/// The scenarios of one runtime; `None` when not run.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeResults {
    pub runtime: Runtime,
    pub warm: Option<WarmResult>,
    pub throughput: Option<LoadResult>,
    pub cold: Option<ColdResult>,
    pub round_robin: Option<LoadResult>,
    pub naive: Option<NaiveResult>,
    pub noisy_neighbour: Option<NoisyResult>,
    /// Scenario 7: only on the first runtime of `--runtimes`.
    pub auth_overhead: Option<AuthResult>,
    /// Scenario 8: only on the first runtime of `--runtimes`.
    pub http_trigger: Option<HttpResult>,
    /// Scenario 9: only on docker.
    pub dependencies: Option<DepsResult>,
    /// Scenario 10: only on docker.
    pub async_invocations: Option<AsyncResult>,
    /// The worker pool around each scenario (with `--worker-metrics-url`).
    pub pool: Vec<PoolChange>,
    /// Scenarios that could not run, and why.
    pub failures: Vec<String>,
}

impl RuntimeResults {
    /// Nothing measured yet.
    pub fn new(runtime: Runtime) -> Self {
        Self {
            runtime,
            warm: None,
            throughput: None,
            cold: None,
            round_robin: None,
            naive: None,
            noisy_neighbour: None,
            auth_overhead: None,
            http_trigger: None,
            dependencies: None,
            async_invocations: None,
            pool: Vec::new(),
            failures: Vec::new(),
        }
    }
}

/// What the clean-up deleted and revoked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cleanup {
    pub kept: bool,
    pub deleted: usize,
    /// Keys the run made (scenario 7), revoked even with `--keep`.
    pub keys_revoked: usize,
    pub failures: Vec<String>,
}

/// Whether a target was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Met,
    Missed,
    /// Measured, but the noise is too wide to say either.
    Inconclusive,
    NotMeasured,
}

impl Status {
    fn of(met: bool) -> Self {
        if met { Status::Met } else { Status::Missed }
    }

    fn word(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::Missed => "**missed**",
            Status::Inconclusive => "inconclusive",
            Status::NotMeasured => "not measured",
        }
    }
}

/// One of the targets against the measurement.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    /// The runtime, or the process (`api`, `worker docker`, ...) for memory targets.
    pub subject: String,
    pub what: String,
    pub target: String,
    pub measured: String,
    pub status: Status,
}

/// A latency-type target: `value(summary) <= limit`.
fn latency_check(
    subject: &str,
    what: &str,
    limit_ms: f64,
    stats: Option<&CallStats>,
    value: fn(&Summary) -> f64,
) -> TargetCheck {
    let (measured, status) = match stats {
        None => ("-".to_owned(), Status::NotMeasured),
        Some(stats) => match &stats.latency_ms {
            Some(summary) => (
                format!("{} ms", ms(value(summary))),
                Status::of(value(summary) <= limit_ms),
            ),
            None => ("no successful call".to_owned(), Status::Missed),
        },
    };
    TargetCheck {
        subject: subject.to_owned(),
        what: what.to_owned(),
        target: format!("≤ {limit_ms} ms"),
        measured,
        status,
    }
}

/// Checks the targets.
pub fn check_targets(
    runtimes: &[RuntimeResults],
    memory: &[Memory],
    concurrency: usize,
) -> Vec<TargetCheck> {
    let mut checks = Vec::new();
    let throughput = format!("2. throughput, c={concurrency}");
    for r in runtimes {
        let rt = r.runtime.as_str();
        let (warm_p50, warm_p99, min_rate, cold_p50) = match r.runtime {
            Runtime::Docker => (2.0, 10.0, 2000.0, 50.0),
            Runtime::Gvisor => (3.0, 15.0, 1000.0, 80.0),
        };
        let warm = r.warm.as_ref().map(|w| &w.stats);
        checks.push(latency_check(rt, "1. warm p50", warm_p50, warm, |s| {
            s.p50_ms
        }));
        checks.push(latency_check(rt, "1. warm p99", warm_p99, warm, |s| {
            s.p99_ms
        }));
        checks.push(match &r.throughput {
            Some(t) => TargetCheck {
                subject: rt.to_owned(),
                what: throughput.clone(),
                target: format!("≥ {min_rate}/s"),
                measured: format!("{:.0}/s", t.calls_per_s),
                status: Status::of(t.calls_per_s >= min_rate),
            },
            None => not_measured(rt, &throughput, &format!("≥ {min_rate}/s")),
        });
        checks.push(match &r.throughput {
            Some(t) => TargetCheck {
                subject: rt.to_owned(),
                what: "2. errors under load".to_owned(),
                target: "0".to_owned(),
                measured: format!("{} of {}", t.stats.errors, t.stats.calls),
                status: Status::of(t.stats.errors == 0),
            },
            None => not_measured(rt, "2. errors under load", "0"),
        });
        checks.push(latency_check(
            rt,
            "3. first call p50",
            cold_p50,
            r.cold.as_ref().map(|c| &c.stats),
            |s| s.p50_ms,
        ));
        checks.push(
            match r.round_robin.as_ref().and_then(|rr| rr.ratio_to_single) {
                Some(ratio) => TargetCheck {
                    subject: rt.to_owned(),
                    what: "4. round robin / single".to_owned(),
                    target: "≥ 0.5".to_owned(),
                    measured: format!("{ratio:.2}"),
                    status: Status::of(ratio >= 0.5),
                },
                None => not_measured(rt, "4. round robin / single", "≥ 0.5"),
            },
        );
    }
    for r in runtimes {
        if let Some(auth) = &r.auth_overhead {
            checks.extend(auth_checks(r.runtime.as_str(), auth));
        }
        if let Some(http) = &r.http_trigger {
            checks.push(http_check(r.runtime.as_str(), http));
        }
    }
    for m in memory {
        let subject = process_name(m);
        checks.push(match m.vm_hwm_kb {
            Some(kb) => TargetCheck {
                subject,
                what: "peak RSS (VmHWM)".to_owned(),
                target: "≤ 64 MB".to_owned(),
                measured: format!("{:.1} MB", kb as f64 / 1024.0),
                status: Status::of(kb <= 64 * 1024),
            },
            None => not_measured(&subject, "peak RSS (VmHWM)", "≤ 64 MB"),
        });
    }
    checks
}

/// Largest auth-on over auth-off p50 of the sequential calls that meets the target.
pub const AUTH_P50_RATIO_MAX: f64 = 1.10;
/// Smallest auth-on over auth-off throughput that meets the target.
pub const AUTH_THROUGHPUT_RATIO_MIN: f64 = 0.90;

/// Scenario 7's targets, judged on [`AuthResult::judged`].
fn auth_checks(subject: &str, auth: &AuthResult) -> [TargetCheck; 2] {
    let judged = auth.judged();
    let key = judged.map_or(String::new(), |r| format!(" ({})", auth.key_label(r.key)));
    let check = |what: &str, target: String, value: Option<f64>, met: fn(f64) -> bool| {
        let (measured, status) = match value {
            Some(ratio) => (format!("{ratio:.2} ×{key}"), Status::of(met(ratio))),
            None => ("no successful call".to_owned(), Status::Missed),
        };
        TargetCheck {
            subject: subject.to_owned(),
            what: what.to_owned(),
            target,
            measured,
            status,
        }
    };
    [
        check(
            "auth on vs off, warm p50",
            format!("≤ {AUTH_P50_RATIO_MAX:.2} ×"),
            judged.and_then(|r| r.p50),
            |ratio| ratio <= AUTH_P50_RATIO_MAX,
        ),
        check(
            "auth on vs off, throughput",
            format!("≥ {AUTH_THROUGHPUT_RATIO_MIN:.2} ×"),
            judged.and_then(|r| r.throughput),
            |ratio| ratio >= AUTH_THROUGHPUT_RATIO_MIN,
        ),
    ]
}

/// The most the route's p50 may exceed `/execute`'s (the issue: "well under 0.1 ms").
pub const HTTP_P50_DIFF_MAX_MS: f64 = 0.1;

/// Scenario 8's target on the interval of the per-round differences: met when all of it is
/// below the limit, missed when all of it is at or above, inconclusive when it holds the limit
/// (the rounds moved more than the limit) or has less than [`http::CONFIDENCE`] (too few
/// rounds).
pub fn http_verdict(interval: &Interval, limit_ms: f64) -> Status {
    if interval.confidence < http::CONFIDENCE {
        Status::Inconclusive
    } else if interval.high_ms < limit_ms {
        Status::Met
    } else if interval.low_ms >= limit_ms {
        Status::Missed
    } else {
        Status::Inconclusive
    }
}

/// Scenario 8's target: the p50 difference, judged on the interval of the per-round ones.
fn http_check(subject: &str, http: &HttpResult) -> TargetCheck {
    let d = &http.difference;
    let signed = |value: Option<f64>| value.map_or("-".to_owned(), |v| format!("{v:+.3}"));
    let (measured, status) = match (&d.interval, d.p50_ms) {
        (Some(interval), Some(p50)) => (
            format!(
                "{} ms; per round (n={}) median {} ms, {:.0} % interval {:+.3} to {:+.3} ms",
                signed(Some(p50)),
                d.rounds_ms.len(),
                signed(d.rounds_median_ms),
                interval.confidence * 100.0,
                interval.low_ms,
                interval.high_ms
            ),
            http_verdict(interval, HTTP_P50_DIFF_MAX_MS),
        ),
        _ => ("no successful call".to_owned(), Status::Missed),
    };
    TargetCheck {
        subject: subject.to_owned(),
        what: "8. route p50 − /execute p50".to_owned(),
        target: format!("< {HTTP_P50_DIFF_MAX_MS} ms"),
        measured,
        status,
    }
}

fn not_measured(subject: &str, what: &str, target: &str) -> TargetCheck {
    TargetCheck {
        subject: subject.to_owned(),
        what: what.to_owned(),
        target: target.to_owned(),
        measured: "-".to_owned(),
        status: Status::NotMeasured,
    }
}

fn process_name(memory: &Memory) -> String {
    memory.process.label()
}

/// Milliseconds with the precision that matters at their size.
fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

fn opt_ms(summary: Option<&Summary>, value: fn(&Summary) -> f64) -> String {
    summary.map_or("-".to_owned(), |s| ms(value(s)))
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or("-".to_owned(), |kb| format!("{:.1}", kb as f64 / 1024.0))
}

/// The answers of a set of calls by status (and error code): `200 ×198, 503 expired ×2`.
fn answers(stats: &CallStats) -> String {
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
fn running_cell(settle: &Settle, loops: usize) -> String {
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

fn warmup_cell(load: &LoadResult) -> String {
    let w = &load.warmup;
    let per_round: Vec<String> = w.cold_starts_per_round.iter().map(u64::to_string).collect();
    format!(
        "{} rounds in {:.1} s, cold {}, {} errors",
        w.rounds,
        w.seconds,
        per_round.join("/"),
        w.errors
    )
}

/// The report printed on stdout.
pub fn markdown(results: &Results) -> String {
    let s = &results.settings;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Benchmark\n");
    let _ = writeln!(w, "Machine: {}\n", results.machine.line());
    let _ = writeln!(
        w,
        "api {}, run {}; {} warm calls; concurrency {} for {} s; {} fresh functions; {} \
         functions round robin for {} s; {} docker runs; {} calls alone and beside {} calls \
         sleeping {} s{}{}{}.{}\n",
        s.api_url,
        results.run_id,
        s.warm_calls,
        s.concurrency,
        s.duration_secs,
        s.cold_functions,
        s.rr_functions,
        s.rr_duration_secs,
        s.naive_runs,
        s.noisy_calls,
        s.noisy_slow_calls,
        s.noisy_sleep_secs,
        if s.wants(Scenario::AuthOverhead) {
            format!(
                "; auth on against {}: {} calls in blocks of {} and {} phases of {} s per api \
                 and key",
                s.api_url_noauth
                    .as_deref()
                    .unwrap_or("(no --api-url-noauth)"),
                s.auth_calls,
                s.auth_block_calls,
                s.auth_phases,
                s.auth_phase_secs
            )
        } else {
            String::new()
        },
        if s.wants(Scenario::HttpTrigger) {
            format!(
                "; HTTP trigger against /execute: {} calls in blocks of {} and {} phases of {} s \
                 per path",
                s.http_calls, s.http_block_calls, s.http_phases, s.http_phase_secs
            )
        } else {
            String::new()
        },
        if s.wants(Scenario::Async) {
            format!(
                "; async: accepted at concurrency {} for {} s, a burst of {}, {} killed workers",
                s.concurrency, s.async_duration_secs, s.async_burst, s.async_kill_samples
            )
        } else {
            String::new()
        },
        if results.interrupted {
            " **Interrupted (Ctrl-C): partial results.**"
        } else {
            ""
        }
    );
    let _ = writeln!(
        w,
        "Latencies are client-measured over successful calls (200 with the handler's result), \
         in ms; errors are calls that answered anything else.\n"
    );

    // A section with one row per runtime that ran the scenario; none when no runtime did.
    let table = |w: &mut String, head: &str, row: &dyn Fn(&RuntimeResults) -> Option<String>| {
        let rows: Vec<String> = results.runtimes.iter().filter_map(row).collect();
        if !rows.is_empty() {
            let _ = writeln!(w, "{head}\n{}\n", rows.join("\n"));
        }
    };

    table(
        w,
        "## 1. Warm latency, concurrency 1\n\n| runtime | calls | errors | p50 | p90 | p99 | mean \
         | max | cold starts |\n| --- | --: | --: | --: | --: | --: | --: | --: | --: |",
        &|r| {
            let st = &r.warm.as_ref()?.stats;
            let l = st.latency_ms.as_ref();
            Some(format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.runtime.as_str(),
                st.calls,
                st.errors,
                opt_ms(l, |s| s.p50_ms),
                opt_ms(l, |s| s.p90_ms),
                opt_ms(l, |s| s.p99_ms),
                opt_ms(l, |s| s.mean_ms),
                opt_ms(l, |s| s.max_ms),
                st.cold_starts
            ))
        },
    );

    let load_head = |title: String| {
        format!(
            "{title}\n\n| runtime | functions | seconds | calls | calls/s | errors | p50 | p99 | \
             cold starts | ratio to 2. | warm-up |\n| --- | --: | --: | --: | --: | --: | --: | \
             --: | --: | --: | --- |"
        )
    };
    let load_row = |r: &RuntimeResults, load: &LoadResult| {
        let l = load.stats.latency_ms.as_ref();
        format!(
            "| {} | {} | {:.1} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            r.runtime.as_str(),
            load.functions,
            load.seconds,
            load.stats.calls,
            load.calls_per_s,
            load.stats.errors,
            opt_ms(l, |s| s.p50_ms),
            opt_ms(l, |s| s.p99_ms),
            load.stats.cold_starts,
            load.ratio_to_single
                .map_or("-".to_owned(), |ratio| format!("{ratio:.2}")),
            warmup_cell(load)
        )
    };
    table(
        w,
        &load_head(format!(
            "## 2. Throughput, one function, concurrency {}",
            s.concurrency
        )),
        &|r| Some(load_row(r, r.throughput.as_ref()?)),
    );

    table(
        w,
        "## 3. Cold start: first call of a new function\n\n| runtime | functions | errors | p50 \
         | p99 | mean | max | `cold_start: true` |\n| --- | --: | --: | --: | --: | --: | --: | \
         --: |",
        &|r| {
            let cold = r.cold.as_ref()?;
            let st = &cold.stats;
            let l = st.latency_ms.as_ref();
            Some(format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} of {} |",
                r.runtime.as_str(),
                cold.functions,
                st.errors + cold.create_errors.len() as u64,
                opt_ms(l, |s| s.p50_ms),
                opt_ms(l, |s| s.p99_ms),
                opt_ms(l, |s| s.mean_ms),
                opt_ms(l, |s| s.max_ms),
                st.cold_starts,
                st.ok
            ))
        },
    );

    table(
        w,
        &load_head(format!(
            "## 4. Round robin over {} functions, concurrency {}",
            s.rr_functions, s.concurrency
        )),
        &|r| Some(load_row(r, r.round_robin.as_ref()?)),
    );

    table(
        w,
        "## 5. Naive floor: one `docker run` per call\n\n| runtime | runs | failures | to result \
         p50 | to result p99 | to exit p50 | to exit p99 |\n| --- | --: | --: | --: | --: | --: \
         | --: |",
        &|r| {
            let n = r.naive.as_ref()?;
            Some(format!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.runtime.as_str(),
                n.runs,
                n.failures.len(),
                opt_ms(n.to_result_ms.as_ref(), |s| s.p50_ms),
                opt_ms(n.to_result_ms.as_ref(), |s| s.p99_ms),
                opt_ms(n.to_exit_ms.as_ref(), |s| s.p50_ms),
                opt_ms(n.to_exit_ms.as_ref(), |s| s.p99_ms),
            ))
        },
    );

    table(
        w,
        &format!(
            "## 6. Noisy neighbour: a warm function alone, then beside {} calls sleeping {} s\n\n\
             | runtime | fast calls | p50 alone / beside | p50 ratio | p99 alone / beside | max \
             alone / beside | answers alone / beside | cold starts alone / beside | slow calls \
             running | slow answers |\n| --- | --: | --: | --: | --: | --: | --- | --: | --- | \
             --- |",
            s.noisy_slow_calls, s.noisy_sleep_secs
        ),
        &|r| {
            let n = r.noisy_neighbour.as_ref()?;
            let (alone, beside) = (&n.alone, &n.beside);
            Some(format!(
                "| {} | {} | {} | {} | {} | {} | {} / {} | {} / {} | {} | {} |",
                r.runtime.as_str(),
                alone.calls,
                pair_cell(alone, beside, |s| s.p50_ms),
                n.p50_ratio
                    .map_or("-".to_owned(), |ratio| format!("{ratio:.2}")),
                pair_cell(alone, beside, |s| s.p99_ms),
                pair_cell(alone, beside, |s| s.max_ms),
                answers(alone),
                answers(beside),
                alone.cold_starts,
                beside.cold_starts,
                running_cell(&n.settle, n.slow_loops),
                answers(&n.slow)
            ))
        },
    );

    for r in &results.runtimes {
        if let Some(auth) = &r.auth_overhead {
            write_auth(w, r.runtime, auth);
        }
    }
    for r in &results.runtimes {
        if let Some(http) = &r.http_trigger {
            write_http(w, r.runtime, http);
        }
    }

    for r in &results.runtimes {
        if let Some(deps) = &r.dependencies {
            write_deps(w, r.runtime, deps);
        }
    }
    for r in &results.runtimes {
        if let Some(a) = &r.async_invocations {
            write_async(w, r.runtime, a, s.async_timeout_secs);
        }
    }

    let _ = writeln!(
        w,
        "## Memory of the platform's processes (MB)\n\n| process | pid | peak (VmHWM) | now \
         (VmRSS) | at start (VmRSS) |\n| --- | --: | --: | --: | --: |"
    );
    for m in &results.memory_at_end {
        let start = results
            .memory_at_start
            .iter()
            .find(|s| s.process.pid == m.process.pid)
            .and_then(|s| s.vm_rss_kb);
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} |",
            process_name(m),
            m.process.pid,
            mb(m.vm_hwm_kb),
            mb(m.vm_rss_kb),
            mb(start)
        );
    }
    if results.memory_at_end.is_empty() {
        let _ = writeln!(w, "| (no api or worker process found) | | | | |");
    }
    let _ = writeln!(w);

    write_cpu(w, results);
    write_pool(w, results);
    write_errors(w, results);

    if s.verbose {
        write_timing(w, results);
    }

    let _ = writeln!(
        w,
        "## Targets\n\n| subject | what | target | measured | |\n| --- | --- | --- | --: | --- |"
    );
    for t in results
        .targets
        .iter()
        .filter(|t| t.status != Status::NotMeasured)
    {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} |",
            t.subject,
            t.what,
            t.target,
            t.measured,
            t.status.word()
        );
    }
    out
}

fn seconds(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |s| format!("{s:.1} s"))
}

fn p50_p90(summary: Option<&Summary>) -> String {
    summary.map_or("-".to_owned(), |s| {
        format!("{} / {} ({})", ms(s.p50_ms), ms(s.p90_ms), s.count)
    })
}

/// `a / b`, of two summaries' p50s.
fn p50_ratio(a: Option<&Summary>, b: Option<&Summary>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.p50_ms > 0.0 => format!("{:.2}×", a.p50_ms / b.p50_ms),
        _ => "-".to_owned(),
    }
}

fn write_deps(w: &mut String, runtime: Runtime, deps: &DepsResult) {
    let _ = writeln!(
        w,
        "#### 9. Dependencies ({}): builds, first calls, warm calls\n\n| set | packages | \
         status | `?wait=true` wall clock | build (started → finished) | size |\n\
         | --- | --- | --- | --: | --: | --: |",
        runtime.as_str()
    );
    for b in &deps.builds {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {:.1} s | {} | {} |",
            b.set,
            b.packages,
            b.status,
            b.wall_s,
            seconds(b.build_s),
            b.size_bytes
                .map_or("-".to_owned(), |n| format!("{:.1} MB", n as f64 / 1e6))
        );
    }
    let f = &deps.first_calls;
    let _ = writeln!(
        w,
        "\n| first call of a new function | p50 / p90 (samples) |\n| --- | --: |\n\
         | with dependencies, artifact not cached (fetched) | {} |\n\
         | with dependencies, artifact cached | {} |\n\
         | with dependencies, the popular set's stem cell | {} |\n\
         | without dependencies ({} of {} cold starts) | {} |\n\
         | fetch cost: not cached − cached, p50 | {} |\n\
         | cached with dependencies / without, p50 | {} |\n\
         | `.zip` package, not cached (fetched) | {} |\n\
         | `.zip` package, cached | {} |\n\
         | cached package / single source without dependencies, p50 | {} |",
        p50_p90(f.uncached.as_ref()),
        p50_p90(f.cached.as_ref()),
        p50_p90(f.stem.as_ref()),
        f.plain_cold_starts,
        f.plain_ms.len(),
        p50_p90(f.plain.as_ref()),
        match (&f.uncached, &f.cached) {
            (Some(u), Some(c)) => ms(u.p50_ms - c.p50_ms),
            _ => "-".to_owned(),
        },
        p50_ratio(f.cached.as_ref(), f.plain.as_ref()),
        p50_p90(f.package_uncached.as_ref()),
        p50_p90(f.package_cached.as_ref()),
        p50_ratio(f.package_cached.as_ref(), f.plain.as_ref()),
    );
    let _ = writeln!(
        w,
        "\n| warm calls, alternating | p50 / p90 (calls) |\n| --- | --: |\n\
         | with dependencies | {} |\n| without | {} |\n| with / without, p50 | {} |\n",
        p50_p90(deps.warm_with.as_ref()),
        p50_p90(deps.warm_without.as_ref()),
        p50_ratio(deps.warm_with.as_ref(), deps.warm_without.as_ref()),
    );
    for error in f.errors.iter().take(5) {
        let _ = writeln!(w, "- first-call error: {error}");
    }
    if deps.warm_errors > 0 {
        let _ = writeln!(w, "- {} warm calls failed\n", deps.warm_errors);
    }
}

/// Seconds to two decimals, or `-`.
fn secs2(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |s| format!("{s:.2} s"))
}

/// Scenario 10: accepting, a burst from accepted to finished, and killed workers.
fn write_async(w: &mut String, runtime: Runtime, a: &AsyncResult, timeout_secs: f64) {
    let rt = runtime.as_str();
    let _ = writeln!(
        w,
        "## 10. Async invocations ({rt})\n\n`POST /execute_async/{{name}}` answers 202 once the \
         call is stored and its job confirmed on the async queue; {} consume that queue (one \
         dispatcher per api replica, each running up to its ASYNC_CONCURRENCY jobs at once \
         through the {rt} workers' queue). Latencies in ms.\n",
        a.dispatchers
            .map_or("the api replicas".to_owned(), |n| format!(
                "{n} dispatchers"
            ))
    );
    if let Some(x) = &a.accept {
        let st = &x.stats;
        let l = st.latency_ms.as_ref();
        let _ = writeln!(
            w,
            "| accept, concurrency {} | seconds | accepted | accepted/s | errors (not 202) | \
             p50 | p90 | p99 | max | unmeasured before | all accepted ended after | of them \
             dead-lettered |\n| --- | --: | --: | --: | --: | --: | --: | --: | --: | --- | --: | \
             --: |\n| `{}` | {:.1} | {} | {:.0} | {} | {} | {} | {} | {} | {:.1} s, {} calls, {} \
             errors | {:.1} s{} | {} |\n",
            x.concurrency,
            x.function,
            x.seconds,
            st.ok,
            x.accepted_per_s,
            st.errors,
            opt_ms(l, |s| s.p50_ms),
            opt_ms(l, |s| s.p90_ms),
            opt_ms(l, |s| s.p99_ms),
            opt_ms(l, |s| s.max_ms),
            x.warmup_seconds,
            x.warmup.calls,
            x.warmup.errors,
            x.drain.seconds,
            if x.drain.ended { "" } else { " (**not all**)" },
            match x.dead_lettered {
                None => "-".to_owned(),
                Some(n) if n >= crate::async_calls::DEAD_LETTERED_COUNTED => format!("{n}+"),
                Some(n) => n.to_string(),
            }
        );
    }
    for b in &a.bursts {
        let l = b.latency_ms.as_ref();
        let _ = writeln!(
            w,
            "| burst of {} at concurrency {} | accepted in | not accepted | succeeded | \
             dead-lettered | not ended in {timeout_secs} s | unread | first accepted → last \
             finished | invocations/s | accept → finished p50 | p90 | p99 | max | retried | \
             cold starts |\n| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | \
             --: | --: | --: | --: |\n| `{}` | {:.1} s | {} | {} | {} | {} | {} | {} | {} | {} | \
             {} | {} | {} | {} | {} |\n",
            b.calls,
            b.concurrency,
            b.function,
            b.accept_seconds,
            b.accept.errors,
            b.succeeded,
            b.dead_lettered,
            b.not_finished,
            b.unread,
            secs2(b.seconds),
            b.invocations_per_s
                .map_or("-".to_owned(), |rate| format!("{rate:.0}")),
            opt_ms(l, |s| s.p50_ms),
            opt_ms(l, |s| s.p90_ms),
            opt_ms(l, |s| s.p99_ms),
            opt_ms(l, |s| s.max_ms),
            b.retried,
            b.cold_starts,
        );
        let p50_p99 = |s: Option<&Summary>| {
            s.map_or("-".to_owned(), |s| {
                format!("{} / {}", ms(s.p50_ms), ms(s.p99_ms))
            })
        };
        let _ = writeln!(
            w,
            "The burst's rate and latencies are the api's own timestamps: `created_at` (accepted) \
             and `finished_at` of each invocation, read once all had ended; an invocation's \
             latency includes its wait behind the burst's earlier ones: accepted → its first \
             attempt's `started_at` (waiting for a dispatcher) p50 / p99 {} ms, then to \
             `finished_at` (running: the worker's queue, the worker, the record) {} ms. The \
             function's pool before the burst: {}.\n",
            p50_p99(b.queued_ms.as_ref()),
            p50_p99(b.running_ms.as_ref()),
            b.pool_before,
        );
    }
    if let Some(k) = &a.kill {
        if let Some(skipped) = &k.skipped {
            let _ = writeln!(w, "Worker death: not measured ({skipped}).\n");
        }
        if !k.samples.is_empty() {
            let _ = writeln!(
                w,
                "| worker death | killed (SIGKILL) | replacement consuming after | status at \
                 kill | kill → finished | redelivery wait (− {} s sleep) | of which container \
                 start (`init_ms`) | handler (`run_ms`) | attempts | ran on | cold start |\n| --: \
                 | --- | --: | --- | --: | --: | --: | --: | --: | --- | --- |",
                k.sleep_secs
            );
            for (i, x) in k.samples.iter().enumerate() {
                let _ = writeln!(
                    w,
                    "| {} | {} | {:.2} s | {} | {} | {} | {} | {} | {} | {} | {} |",
                    i + 1,
                    x.killed,
                    x.replacement_ready_s,
                    x.status_at_kill,
                    secs2(x.kill_to_finished_s),
                    secs2(x.redelivery_wait_s),
                    secs2(x.init_ms.map(|ms| ms / 1000.0)),
                    secs2(x.run_ms.map(|ms| ms / 1000.0)),
                    x.attempts,
                    x.ran_on.as_deref().unwrap_or("-"),
                    x.cold_start
                        .map_or("-", |cold| if cold { "yes" } else { "no" }),
                );
            }
            let redelivered = k.samples.iter().filter(|x| x.redelivered).count();
            let median = |s: Option<&Summary>| {
                s.map_or("-".to_owned(), |s| {
                    format!(
                        "{:.2} s (max {:.2} s)",
                        s.p50_ms / 1000.0,
                        s.max_ms / 1000.0
                    )
                })
            };
            let _ = writeln!(
                w,
                "\nFunction `{}` sleeps {} s (timeout {} s). Each sample: the invocation \
                 `running` on the only docker worker, a replacement started and consuming the \
                 docker queue, then the first worker killed; the broker gives its unacknowledged \
                 job to the replacement, which runs it again. {redelivered} of {} samples were \
                 redelivered (`running` at the kill, then succeeded on the replacement): kill → \
                 finished p50 {}, redelivery wait p50 {}.\n",
                k.function,
                k.sleep_secs,
                k.timeout_secs,
                k.samples.len(),
                median(k.kill_to_finished.as_ref()),
                median(k.redelivery_wait.as_ref()),
            );
        }
        if !k.stopped.is_empty() {
            let _ = writeln!(
                w,
                "Replacement workers stopped (SIGTERM): {}.\n",
                k.stopped.join("; ")
            );
        }
    }
}

/// `auth off`, or `auth on, <key>`.
fn auth_variant_label(auth: &AuthResult, key: Key) -> String {
    match key {
        Key::None => "auth off".to_owned(),
        _ => format!("auth on, {}", auth.key_label(key)),
    }
}

fn ratio_cell(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |ratio| format!("{ratio:.2}"))
}

/// `low–high` of a set of values, or `-`.
fn range_cell(values: &[f64], format: fn(f64) -> String) -> String {
    let low = values.iter().copied().reduce(f64::min);
    let high = values.iter().copied().reduce(f64::max);
    match (low, high) {
        (Some(low), Some(high)) => format!("{}–{}", format(low), format(high)),
        _ => "-".to_owned(),
    }
}

/// The columns of one variant of an interleaved scenario (7, 8), after those that name it.
const VARIANT_HEAD: &str = "calls | errors | p50 | p90 | p99 | block p50s | calls under load | \
                            errors | calls/s | phases, calls/s | p50 | p99 |";
const VARIANT_ALIGN: &str =
    "--: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |";

/// [`VARIANT_HEAD`]'s cells of `v`: the sequential calls, then those at concurrency.
fn variant_cells<K>(v: &VariantResult<K>) -> String {
    let (warm, load) = (v.warm.latency_ms.as_ref(), v.load.latency_ms.as_ref());
    format!(
        "{} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {}",
        v.warm.calls,
        v.warm.errors,
        opt_ms(warm, |s| s.p50_ms),
        opt_ms(warm, |s| s.p90_ms),
        opt_ms(warm, |s| s.p99_ms),
        range_cell(&v.measured_block_p50s(), ms),
        v.load.calls,
        v.load.errors,
        v.calls_per_s,
        range_cell(&v.phase_calls_per_s, |rate| format!("{rate:.0}")),
        opt_ms(load, |s| s.p50_ms),
        opt_ms(load, |s| s.p99_ms),
    )
}

/// Scenario 7: each api and key, then the ratios.
fn write_auth(w: &mut String, runtime: Runtime, auth: &AuthResult) {
    let rt = runtime.as_str();
    let _ = writeln!(
        w,
        "## 7. Auth overhead: one warm function through the api with auth on and with \
         AUTH=disabled

\
         Function `{}` on {rt}; auth on: {}, auth off: {}. Interleaved: {} rounds of one block \
         of {} sequential calls per api and key, then {} rounds of one {} s phase per api and \
         key at concurrency {}; the order rotates each round. Under load, p50/p99 are of the \
         calls at concurrency {}.
",
        auth.function,
        auth.api_url_on,
        auth.api_url_off,
        auth.measured.blocks,
        auth.measured.block_calls,
        auth.measured.phases,
        auth.measured.phase_secs,
        auth.measured.concurrency,
        auth.measured.concurrency
    );
    let _ = writeln!(
        w,
        "| runtime | api | key | {VARIANT_HEAD}\n| --- | --- | --- | {VARIANT_ALIGN}"
    );
    for v in &auth.measured.variants {
        let _ = writeln!(
            w,
            "| {rt} | {} | {} | {} |",
            if v.key == Key::None {
                "auth off"
            } else {
                "auth on"
            },
            auth.key_label(v.key),
            variant_cells(v)
        );
    }
    let _ = writeln!(
        w,
        "
| runtime | auth on with | p50 on / off | p99 on / off | calls/s on / off |
| --- \
         | --- | --: | --: | --: |"
    );
    for r in &auth.ratios {
        let _ = writeln!(
            w,
            "| {rt} | {} | {} | {} | {} |",
            auth.key_label(r.key),
            ratio_cell(r.p50),
            ratio_cell(r.p99),
            ratio_cell(r.throughput)
        );
    }
    let _ = writeln!(w);
    if let Some(error) = &auth.made_key_error {
        let _ = writeln!(
            w,
            "No invoke key could be made ({}): the targets judge --api-key.
",
            error.replace('|', "\\|").replace('\n', " ")
        );
    }
}

/// A signed number of milliseconds, to three decimals (the target is 0.1 ms).
fn signed_ms(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |v| format!("{v:+.3}"))
}

/// Scenario 8: each path, then the route against `/execute`.
fn write_http(w: &mut String, runtime: Runtime, http: &HttpResult) {
    let rt = runtime.as_str();
    let m = &http.measured;
    let _ = writeln!(
        w,
        "## 8. HTTP trigger overhead: one warm function through its route and through /execute

\
         Function `{}` on {rt}, route `{}`, called as `POST {}` with `{{}}` and as `POST \
         /execute/{}` with `{{\"event\": {{}}}}`, the same key on both. Interleaved: {} rounds of \
         one block of {} sequential calls per path, then {} rounds of one {} s phase per path at \
         concurrency {}; the order rotates each round. Under load, p50/p99 are of the calls at \
         concurrency {}.
",
        http.function,
        http.route,
        http.path,
        http.function,
        m.blocks,
        m.block_calls,
        m.phases,
        m.phase_secs,
        m.concurrency,
        m.concurrency
    );
    let _ = writeln!(
        w,
        "| runtime | path | {VARIANT_HEAD}\n| --- | --- | {VARIANT_ALIGN}"
    );
    for v in &m.variants {
        let _ = writeln!(w, "| {rt} | {} | {} |", v.key.label(), variant_cells(v));
    }
    let d = &http.difference;
    let interval = d.interval.as_ref();
    let _ = writeln!(
        w,
        "
| runtime | p50 route − /execute | p90 | p99 | per round: rounds | median | range | \
         interval (confidence) | p50 route / /execute | calls/s route / /execute | per phase |
\
         | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |
| {rt} | {} | {} | \
         {} | {} | {} | {} | {} | {} | {} | {} |
",
        signed_ms(d.p50_ms),
        signed_ms(d.p90_ms),
        signed_ms(d.p99_ms),
        d.rounds_ms.len(),
        signed_ms(d.rounds_median_ms),
        range_cell(&d.rounds_ms, |v| format!("{v:+.3}")),
        interval.map_or("-".to_owned(), |i| format!(
            "{:+.3} to {:+.3} ({:.1} %)",
            i.low_ms,
            i.high_ms,
            i.confidence * 100.0
        )),
        ratio_cell(http.ratios.p50),
        ratio_cell(http.ratios.throughput),
        range_cell(&d.phase_throughput_ratios, |r| format!("{r:.2}")),
    );
    let _ = writeln!(
        w,
        "Differences in ms, route minus /execute. Per round: the route's block p50 minus \
         /execute's in the same round; the interval holds the median of those with the \
         confidence shown (sign test), and the target is judged on it.
"
    );
}

/// The workers' containers after each scenario and the evictions during it.
fn write_pool(w: &mut String, results: &Results) {
    if results.runtimes.iter().all(|r| r.pool.is_empty()) {
        return;
    }
    let n = |value: Option<f64>| value.map_or("-".to_owned(), |v| format!("{v:.0}"));
    let _ = writeln!(
        w,
        "## Worker pool (from the workers' metrics)\n\n| scenario | runtime | warm after | \
         prewarmed after | busy after | evictions during |\n| --- | --- | --: | --: | --: | --: |"
    );
    for r in &results.runtimes {
        for change in &r.pool {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} |",
                change.scenario,
                r.runtime.as_str(),
                n(change.after.warm),
                n(change.after.prewarmed),
                n(change.after.busy),
                n(change.evictions())
            );
        }
    }
    let _ = writeln!(w);
}

/// Cores in use during the measured phases, per process.
fn write_cpu(w: &mut String, results: &Results) {
    let phases: Vec<(&str, Runtime, &CpuUsage)> = results
        .runtimes
        .iter()
        .flat_map(|r| {
            [
                ("1. warm", r.warm.as_ref().map(|x| &x.cpu)),
                ("2. throughput", r.throughput.as_ref().map(|x| &x.cpu)),
                ("4. round robin", r.round_robin.as_ref().map(|x| &x.cpu)),
                (
                    "6. noisy, beside",
                    r.noisy_neighbour.as_ref().map(|x| &x.cpu),
                ),
                (
                    "10. async accept",
                    r.async_invocations
                        .as_ref()
                        .and_then(|x| x.accept.as_ref())
                        .map(|x| &x.cpu),
                ),
            ]
            .into_iter()
            .filter_map(move |(name, cpu)| Some((name, r.runtime, cpu?)))
        })
        .collect();
    if phases.is_empty() {
        return;
    }
    let mut names: Vec<String> = Vec::new();
    for (_, _, cpu) in &phases {
        for p in &cpu.processes {
            if !names.contains(&p.name) {
                names.push(p.name.clone());
            }
        }
    }
    let services: Vec<String> = phases
        .first()
        .map(|(_, _, cpu)| cpu.services.iter().map(|s| s.name.clone()).collect())
        .unwrap_or_default();
    let cores = |value: Option<f64>| value.map_or("-".to_owned(), |c| format!("{c:.2}"));
    let _ = writeln!(
        w,
        "## CPU during the measured calls (cores busy; the machine has {})\n",
        results.machine.nproc
    );
    let columns: Vec<String> = names
        .iter()
        .cloned()
        .chain(["bench client".to_owned(), "containers".to_owned()])
        .chain(services.iter().cloned())
        .chain(["rest".to_owned()])
        .collect();
    let _ = writeln!(
        w,
        "| scenario | runtime | machine | {} |\n| --- | --- | --: |{}",
        columns.join(" | "),
        " --: |".repeat(columns.len())
    );
    for (scenario, runtime, cpu) in phases {
        let mut cells: Vec<String> = names
            .iter()
            .map(|name| {
                cores(
                    cpu.processes
                        .iter()
                        .filter(|p| &p.name == name)
                        .map(|p| p.cores)
                        .reduce(|a, b| a + b),
                )
            })
            .collect();
        cells.push(cores(cpu.bench_cores));
        cells.push(cores(cpu.containers_cores));
        for service in &services {
            cells.push(cores(
                cpu.services
                    .iter()
                    .find(|s| &s.name == service)
                    .map(|s| s.cores),
            ));
        }
        cells.push(cores(cpu.rest_cores));
        let _ = writeln!(
            w,
            "| {scenario} | {} | {} | {} |",
            runtime.as_str(),
            cores(cpu.machine_cores),
            cells.join(" | ")
        );
    }
    let _ = writeln!(
        w,
        "\n`containers` is every Docker container on the machine; `rest` is the machine minus \
         the columns before it (other work on the machine, the kernel's own threads).\n"
    );
}

/// Every failed call and scenario, grouped.
fn write_errors(w: &mut String, results: &Results) {
    let mut lines = Vec::new();
    let kinds = |scenario: &str, rt: Runtime, kinds: &[ErrorKind], lines: &mut Vec<String>| {
        for k in kinds {
            lines.push(format!(
                "| {scenario} | {} | {} | {} | {} | {} |",
                rt.as_str(),
                k.status,
                k.code,
                k.count,
                k.detail.replace('|', "\\|").replace('\n', " ")
            ));
        }
    };
    for r in &results.runtimes {
        let rt = r.runtime;
        if let Some(warm) = &r.warm {
            kinds("1. warm", rt, &warm.stats.error_kinds, &mut lines);
        }
        if let Some(t) = &r.throughput {
            kinds("2. warm-up", rt, &t.warmup.error_kinds, &mut lines);
            kinds("2. throughput", rt, &t.stats.error_kinds, &mut lines);
        }
        if let Some(cold) = &r.cold {
            kinds("3. cold", rt, &cold.stats.error_kinds, &mut lines);
            for e in &cold.create_errors {
                lines.push(format!("| 3. create | {} | | | 1 | {e} |", rt.as_str()));
            }
        }
        if let Some(rr) = &r.round_robin {
            kinds("4. warm-up", rt, &rr.warmup.error_kinds, &mut lines);
            kinds("4. round robin", rt, &rr.stats.error_kinds, &mut lines);
        }
        if let Some(n) = &r.naive {
            for f in &n.failures {
                lines.push(format!(
                    "| 5. naive | {} | | | 1 | {} |",
                    rt.as_str(),
                    f.replace('|', "\\|").replace('\n', " ")
                ));
            }
        }
        if let Some(n) = &r.noisy_neighbour {
            kinds("6. alone", rt, &n.alone.error_kinds, &mut lines);
            kinds("6. beside", rt, &n.beside.error_kinds, &mut lines);
            kinds("6. slow calls", rt, &n.slow.error_kinds, &mut lines);
        }
        if let Some(a) = &r.auth_overhead {
            kinds("7. warm-up", rt, &a.measured.warmup.error_kinds, &mut lines);
            for v in &a.measured.variants {
                let label = auth_variant_label(a, v.key);
                let c1 = format!("7. {label}, c=1");
                kinds(&c1, rt, &v.warm.error_kinds, &mut lines);
                let cn = format!("7. {label}, c={}", a.measured.concurrency);
                kinds(&cn, rt, &v.load.error_kinds, &mut lines);
            }
        }
        if let Some(h) = &r.http_trigger {
            kinds("8. warm-up", rt, &h.measured.warmup.error_kinds, &mut lines);
            for v in &h.measured.variants {
                let c1 = format!("8. {}, c=1", v.key.label());
                kinds(&c1, rt, &v.warm.error_kinds, &mut lines);
                let cn = format!("8. {}, c={}", v.key.label(), h.measured.concurrency);
                kinds(&cn, rt, &v.load.error_kinds, &mut lines);
            }
        }
        if let Some(a) = &r.async_invocations {
            if let Some(accept) = &a.accept {
                kinds(
                    "10. accept warm-up",
                    rt,
                    &accept.warmup.error_kinds,
                    &mut lines,
                );
                kinds("10. accept", rt, &accept.stats.error_kinds, &mut lines);
            }
            for burst in &a.bursts {
                kinds(
                    "10. burst accept",
                    rt,
                    &burst.accept.error_kinds,
                    &mut lines,
                );
                for e in &burst.read_errors {
                    lines.push(format!(
                        "| 10. burst read | {} | | | 1 | {} |",
                        rt.as_str(),
                        e.replace('|', "\\|").replace('\n', " ")
                    ));
                }
            }
            if let Some(error) = a.kill.as_ref().and_then(|k| k.error.as_ref()) {
                lines.push(format!(
                    "| 10. worker death | {} | | | | {} |",
                    rt.as_str(),
                    error.replace('|', "\\|").replace('\n', " ")
                ));
            }
        }
        for f in &r.failures {
            lines.push(format!(
                "| scenario failed | {} | | | | {} |",
                rt.as_str(),
                f.replace('|', "\\|").replace('\n', " ")
            ));
        }
    }
    for f in &results.cleanup.failures {
        lines.push(format!("| clean-up | | | | | {f} |"));
    }
    let _ = writeln!(w, "## Errors\n");
    if lines.is_empty() {
        let _ = writeln!(w, "None.\n");
        return;
    }
    let _ = writeln!(
        w,
        "| scenario | runtime | status | code | count | first detail |\n| --- | --- | --: | --- | \
         --: | --- |"
    );
    for line in lines {
        let _ = writeln!(w, "{line}");
    }
    let _ = writeln!(w);
}

/// The api's `duration_ms` and, when the answers carry it, its `timing` breakdown.
fn write_timing(w: &mut String, results: &Results) {
    let _ = writeln!(
        w,
        "## Server-side breakdown of successful calls (p50 / p99 ms)\n\n| scenario | runtime | \
         client | api `duration_ms` | `queue_ms` | `init_ms` | `run_ms` |\n| --- | --- | --: | \
         --: | --: | --: | --: |"
    );
    let pair = |s: Option<&Summary>| {
        s.map_or("-".to_owned(), |s| {
            format!("{} / {}", ms(s.p50_ms), ms(s.p99_ms))
        })
    };
    for r in &results.runtimes {
        let noisy = r.noisy_neighbour.as_ref();
        let scenarios: [(&str, Option<&CallStats>); 7] = [
            ("1. warm", r.warm.as_ref().map(|x| &x.stats)),
            ("2. throughput", r.throughput.as_ref().map(|x| &x.stats)),
            ("3. cold", r.cold.as_ref().map(|x| &x.stats)),
            ("4. round robin", r.round_robin.as_ref().map(|x| &x.stats)),
            ("6. alone", noisy.map(|x| &x.alone)),
            ("6. beside", noisy.map(|x| &x.beside)),
            ("6. slow calls", noisy.map(|x| &x.slow)),
        ];
        for (name, stats) in scenarios {
            let Some(st) = stats else { continue };
            let timing = st.timing.as_ref();
            let _ = writeln!(
                w,
                "| {name} | {} | {} | {} | {} | {} | {} |",
                r.runtime.as_str(),
                pair(st.latency_ms.as_ref()),
                pair(st.server_duration_ms.as_ref()),
                pair(timing.and_then(|t| t.queue_ms.as_ref())),
                pair(timing.and_then(|t| t.init_ms.as_ref())),
                pair(timing.and_then(|t| t.run_ms.as_ref())),
            );
        }
    }
    let _ = writeln!(w);
}

#[cfg(test)]
mod snapshot;

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine with nothing known of it but its 2 CPUs.
    fn machine() -> Machine {
        Machine {
            nproc: 2,
            memory_mb: None,
            cpu_model: None,
            kernel: None,
            date: String::new(),
            git_commit: None,
            git_dirty: None,
            docker_version: None,
            runsc_version: None,
            load_average: None,
        }
    }
    use crate::client::CallOutcome;
    use crate::interleave::Interleaved;
    use crate::stats::Recorder;
    use clap::Parser;

    fn outcome(status: u16, code: Option<&str>, latency_ms: f64, cold: bool) -> CallOutcome {
        CallOutcome {
            status,
            latency_ms,
            cold_start: Some(cold),
            code: code.map(str::to_owned),
            detail: code.map(|c| format!("{c} detail")),
            ..CallOutcome::default()
        }
    }

    fn stats(outcomes: &[CallOutcome]) -> CallStats {
        let mut recorder = Recorder::default();
        for o in outcomes {
            recorder.record(o);
        }
        recorder.finish()
    }

    fn settle(all_running: bool, before: Option<f64>, after: Option<f64>) -> Settle {
        Settle {
            seconds: 12.34,
            loops_answered: if all_running { 40 } else { 35 },
            inflight_jobs_before: before,
            inflight_jobs_after: after,
            all_running,
        }
    }

    #[test]
    fn answers_count_successes_then_each_error_kind() {
        let mixed = stats(&[
            outcome(200, None, 1.0, false),
            outcome(200, None, 1.0, false),
            outcome(503, Some("expired"), 1.0, false),
            outcome(0, Some("client_timeout"), 1.0, false),
            outcome(503, Some("expired"), 1.0, false),
        ]);
        assert_eq!(
            answers(&mixed),
            "200 ×2, 0 client_timeout ×1, 503 expired ×2"
        );
        assert_eq!(answers(&stats(&[])), "none");
    }

    #[test]
    fn running_cell_says_how_many_ran_and_what_the_workers_reported() {
        assert_eq!(
            running_cell(&settle(true, Some(40.0), Some(40.0)), 40),
            "40 of 40 after 12.3 s, 40 → 40 jobs in flight"
        );
        assert_eq!(
            running_cell(&settle(true, None, None), 40),
            "40 of 40 after 12.3 s"
        );
        assert_eq!(
            running_cell(&settle(false, Some(37.0), None), 40),
            "**35 of 40** after 12.3 s, 37 jobs in flight (stopped waiting)"
        );
    }

    fn variant<K>(key: K, latencies_ms: &[f64], calls_per_s: f64) -> VariantResult<K> {
        let warm: Vec<CallOutcome> = latencies_ms
            .iter()
            .map(|&ms| outcome(200, None, ms, false))
            .collect();
        VariantResult {
            key,
            api_url: String::new(),
            warm: stats(&warm),
            block_p50s_ms: vec![
                Some(latencies_ms[0]),
                None,
                Some(latencies_ms[latencies_ms.len() - 1]),
            ],
            latencies_ms: latencies_ms.to_vec(),
            load: stats(&[
                outcome(200, None, 50.0, false),
                outcome(503, Some("expired"), 90.0, false),
            ]),
            load_seconds: 20.0,
            calls_per_s,
            phase_calls_per_s: vec![calls_per_s - 10.0, calls_per_s + 10.0],
        }
    }

    fn interleaved<K>(variants: Vec<VariantResult<K>>) -> Interleaved<K> {
        Interleaved {
            block_calls: 50,
            blocks: 10,
            concurrency: 64,
            phases: 4,
            phase_secs: 5.0,
            first_calls_cold: false,
            warmup: crate::scenarios::Warmup {
                rounds: 1,
                calls: 64,
                errors: 0,
                error_kinds: Vec::new(),
                cold_starts_per_round: vec![0],
                seconds: 0.5,
            },
            variants,
        }
    }

    fn auth_result(on_ms: f64, on_rate: f64) -> AuthResult {
        let variants = vec![
            variant(Key::None, &[1.0, 2.0, 3.0], 500.0),
            variant(Key::Given, &[1.0, 2.0, 3.0], 500.0),
            variant(Key::Made, &[1.0, on_ms, 3.0], on_rate),
        ];
        let ratios = variants[1..]
            .iter()
            .map(|on| crate::interleave::ratios(on, &variants[0]))
            .collect();
        AuthResult {
            function: "fast".into(),
            api_url_on: "http://127.0.0.1:8000".into(),
            api_url_off: "http://127.0.0.1:8010".into(),
            given_key_id: Some("ADMIN_KEY".into()),
            made_key_error: None,
            measured: interleaved(variants),
            ratios,
        }
    }

    fn results_of(runtime: RuntimeResults, settings: &[&str]) -> Results {
        let targets = check_targets(std::slice::from_ref(&runtime), &[], 64);
        Results {
            machine: machine(),
            settings: Config::parse_from(settings),
            run_id: "0".into(),
            interrupted: false,
            runtimes: vec![runtime],
            memory_at_start: Vec::new(),
            memory_at_end: Vec::new(),
            targets,
            cleanup: Cleanup::default(),
        }
    }

    #[test]
    fn auth_targets_judge_the_made_key() {
        let met = auth_checks("docker", &auth_result(2.2, 460.0));
        assert_eq!(met[0].what, "auth on vs off, warm p50");
        assert_eq!(met[0].target, "≤ 1.10 ×");
        assert_eq!(met[0].measured, "1.10 × (invoke key (made))");
        assert_eq!(met[0].status, Status::Met);
        assert_eq!(met[1].what, "auth on vs off, throughput");
        assert_eq!(met[1].target, "≥ 0.90 ×");
        assert_eq!(met[1].measured, "0.92 × (invoke key (made))");
        assert_eq!(met[1].status, Status::Met);
        let missed = auth_checks("docker", &auth_result(2.4, 440.0));
        assert_eq!(missed[0].status, Status::Missed);
        assert_eq!(missed[1].status, Status::Missed);
        let mut only_given = auth_result(9.0, 100.0);
        only_given.measured.variants.pop();
        only_given.ratios.pop();
        only_given.made_key_error = Some("POST /keys/ answered 403".into());
        let given = auth_checks("docker", &only_given);
        assert_eq!(given[0].measured, "1.00 × (ADMIN_KEY)");
        assert_eq!(given[0].status, Status::Met);
    }

    #[test]
    fn the_auth_section_shows_each_api_and_key_then_the_ratios() {
        let mut runtime = RuntimeResults::new(Runtime::Docker);
        runtime.auth_overhead = Some(auth_result(2.2, 460.0));
        let results = results_of(
            runtime,
            &["bench", "--api-url-noauth", "http://127.0.0.1:8010"],
        );
        assert_eq!(
            results
                .targets
                .iter()
                .filter(|t| t.what.starts_with("auth on"))
                .count(),
            2
        );
        let report = markdown(&results);
        assert!(
            report.contains("auth on against http://127.0.0.1:8010: 500 calls in blocks of 50"),
            "{report}"
        );
        for row in [
            "| docker | auth off | none | 3 | 0 | 2.00 | 3.00 | 3.00 | 1.00–3.00 | 2 | 1 | 500 | \
             490–510 | 50.0 | 50.0 |",
            "| docker | auth on | ADMIN_KEY | 3 |",
            "| docker | auth on | invoke key (made) | 3 | 0 | 2.20 | 3.00 | 3.00 | 1.00–3.00 | 2 \
             | 1 | 460 | 450–470 |",
            "| docker | ADMIN_KEY | 1.00 | 1.00 | 1.00 |",
            "| docker | invoke key (made) | 1.10 | 1.00 | 0.92 |",
            "| 7. auth on, invoke key (made), c=64 | docker | 503 | expired | 1 |",
            "| docker | auth on vs off, warm p50 | ≤ 1.10 × | 1.10 × (invoke key (made)) | met |",
            "| docker | auth on vs off, throughput | ≥ 0.90 × | 0.92 × (invoke key (made)) | met |",
        ] {
            assert!(report.contains(row), "{row}\n{report}");
        }
        let json = serde_json::to_value(&results).unwrap();
        let auth = &json["runtimes"][0]["auth_overhead"];
        assert_eq!(auth["ratios"][1]["key"], "made");
        assert_eq!(auth["variants"][0]["key"], "none");
        assert_eq!(auth["variants"][2]["calls_per_s"], 460.0);
        assert_eq!(
            auth["blocks"], 10,
            "the interleaving's fields stay at the top"
        );
    }

    fn interval(low_ms: f64, high_ms: f64, confidence: f64) -> Interval {
        Interval {
            low_ms,
            high_ms,
            confidence,
        }
    }

    #[test]
    fn the_http_target_is_judged_on_the_interval_not_the_point() {
        let cases = [
            ((-0.08, 0.09, 0.96), Status::Met),
            ((0.1, 0.3, 0.96), Status::Missed),
            // The rounds moved across the limit: the measurement cannot say.
            ((-0.2, 0.25, 0.96), Status::Inconclusive),
            // Too few rounds for 95 %, however narrow.
            ((0.0, 0.01, 0.9375), Status::Inconclusive),
        ];
        for ((low, high, confidence), status) in cases {
            let i = interval(low, high, confidence);
            assert_eq!(http_verdict(&i, HTTP_P50_DIFF_MAX_MS), status, "{i:?}");
        }
    }

    fn http_result(route_ms: &[f64], route_blocks: [f64; 3]) -> HttpResult {
        let execute = variant(http::Path::Execute, &[1.0, 2.0, 3.0], 1000.0);
        let mut route = variant(http::Path::Route, route_ms, 950.0);
        route.block_p50s_ms = route_blocks.iter().copied().map(Some).collect();
        let ratios = crate::interleave::ratios(&route, &execute);
        let difference = http::difference(&route, &execute);
        HttpResult {
            function: "bench-0-docker-http".into(),
            route: "/bench-0/http/{id}".into(),
            path: "/fn/bench-0/http/42".into(),
            measured: interleaved(vec![execute, route]),
            ratios,
            difference,
        }
    }

    #[test]
    fn the_http_section_shows_both_paths_then_the_difference() {
        let mut runtime = RuntimeResults::new(Runtime::Docker);
        // Blocks of execute: 1.0, -, 3.0; of the route: 1.05, 9.0 (unpaired), 3.02.
        runtime.http_trigger = Some(http_result(&[1.0, 2.05, 3.0], [1.05, 9.0, 3.02]));
        let results = results_of(runtime, &["bench"]);
        let report = markdown(&results);
        for row in [
            "HTTP trigger against /execute: 1000 calls in blocks of 50 and 4 phases of 5 s per \
             path",
            "## 8. HTTP trigger overhead",
            "called as `POST /fn/bench-0/http/42` with `{}` and as `POST \
             /execute/bench-0-docker-http` with `{\"event\": {}}`",
            "| docker | /execute | 3 | 0 | 2.00 | 3.00 | 3.00 | 1.00–3.00 | 2 | 1 | 1000 | \
             990–1010 | 50.0 | 50.0 |",
            "| docker | route | 3 | 0 | 2.05 |",
            "| docker | +0.050 | +0.000 | +0.000 | 2 | +0.035 | +0.020–+0.050 | +0.020 to \
             +0.050 (50.0 %) | 1.02 | 0.95 | 0.95–0.95 |",
            "| 8. route, c=64 | docker | 503 | expired | 1 |",
            "| docker | 8. route p50 − /execute p50 | < 0.1 ms | +0.050 ms; per round (n=2) median \
             +0.035 ms, 50 % interval +0.020 to +0.050 ms | inconclusive |",
        ] {
            assert!(report.contains(row), "{row}\n{report}");
        }
        let json = serde_json::to_value(&results).unwrap();
        let http = &json["runtimes"][0]["http_trigger"];
        assert_eq!(http["variants"][1]["key"], "route");
        assert_eq!(http["difference"]["rounds_ms"].as_array().unwrap().len(), 2);
        assert_eq!(results.targets.last().unwrap().status, Status::Inconclusive);
        assert_eq!(
            serde_json::to_value(Status::Inconclusive).unwrap(),
            "inconclusive"
        );
    }

    #[test]
    fn the_async_section_shows_accepting_the_burst_and_each_killed_worker() {
        use crate::async_calls::{AcceptResult, BurstResult, Drain, KillResult, KillSample};
        let cpu = CpuUsage {
            seconds: 10.0,
            machine_cores: Some(1.9),
            processes: Vec::new(),
            bench_cores: Some(0.3),
            containers_cores: Some(0.2),
            services: Vec::new(),
            rest_cores: Some(0.1),
        };
        let accepted = stats(&[
            outcome(202, None, 4.0, false),
            outcome(202, None, 6.0, false),
            outcome(503, Some("broker_unavailable"), 1.0, false),
        ]);
        let sample = |i: usize, redelivered: bool| KillSample {
            invocation_id: format!("id-{i}"),
            killed: format!("w-{i}"),
            killed_pid: 100 + i as u32,
            replacement: format!("w-{}", i + 1),
            replacement_ready_s: 0.4,
            status_at_kill: "running".into(),
            status: "succeeded".into(),
            kill_to_finished_s: Some(2.5 + i as f64),
            redelivery_wait_s: Some(0.5 + i as f64),
            attempts: 1,
            ran_on: Some(format!("w-{}", i + 1)),
            cold_start: Some(true),
            init_ms: Some(250.0),
            run_ms: None,
            redelivered,
        };
        let mut runtime = RuntimeResults::new(Runtime::Docker);
        runtime.async_invocations = Some(AsyncResult {
            dispatchers: Some(2),
            accept: Some(AcceptResult {
                function: "acc".into(),
                concurrency: 64,
                warmup: stats(&[outcome(202, None, 5.0, false)]),
                warmup_seconds: 2.0,
                seconds: 10.0,
                accepted_per_s: 0.2,
                stats: accepted,
                cpu,
                drain: Drain {
                    seconds: 3.25,
                    ended: true,
                    error: None,
                },
                dead_lettered: Some(0),
            }),
            bursts: vec![BurstResult {
                function: "burst".into(),
                pool_before: "one warm container".into(),
                calls: 3,
                concurrency: 64,
                accept: stats(&[outcome(202, None, 4.0, false)]),
                accept_seconds: 0.5,
                wait: Drain {
                    seconds: 1.0,
                    ended: false,
                    error: None,
                },
                succeeded: 2,
                dead_lettered: 0,
                not_finished: 1,
                unread: 0,
                read_errors: Vec::new(),
                retried: 0,
                cold_starts: 1,
                seconds: Some(2.0),
                invocations_per_s: Some(1.0),
                latency_ms: crate::stats::summarize(&[100.0, 300.0]),
                queued_ms: crate::stats::summarize(&[80.0, 200.0]),
                running_ms: crate::stats::summarize(&[20.0, 100.0]),
            }],
            kill: Some(KillResult {
                function: "kill".into(),
                sleep_secs: 2.0,
                timeout_secs: 7,
                samples: vec![sample(1, true), sample(2, false)],
                kill_to_finished: crate::stats::summarize(&[3500.0]),
                redelivery_wait: crate::stats::summarize(&[1500.0]),
                stopped: vec!["w-3: exit status: 0 after 1.0 s".into()],
                skipped: None,
                error: Some("sample 3: no".into()),
            }),
        });
        let results = results_of(runtime, &["bench", "--scenarios", "async"]);
        let report = markdown(&results);
        for row in [
            "; async: accepted at concurrency 64 for 10 s, a burst of 2000, 3 killed workers",
            "## 10. Async invocations (docker)",
            "2 dispatchers consume that queue",
            "| `acc` | 10.0 | 2 | 0 | 1 | 4.00 | 6.00 | 6.00 | 6.00 | 2.0 s, 1 calls, 0 errors | \
             3.2 s | 0 |",
            "| `burst` | 0.5 s | 0 | 2 | 0 | 1 | 0 | 2.00 s | 1 | 100 | 300 | 300 | 300 | 0 | 1 |",
            "(waiting for a dispatcher) p50 / p99 80.0 / 200 ms, then to `finished_at` (running: \
             the worker's queue, the worker, the record) 20.0 / 100 ms.",
            "| 1 | w-1 | 0.40 s | running | 3.50 s | 1.50 s | 0.25 s | - | 1 | w-2 | yes |",
            "| 2 | w-2 | 0.40 s | running | 4.50 s | 2.50 s | 0.25 s | - | 1 | w-3 | yes |",
            "1 of 2 samples were redelivered",
            "kill → finished p50 3.50 s (max 3.50 s), redelivery wait p50 1.50 s (max 1.50 s)",
            "Replacement workers stopped (SIGTERM): w-3: exit status: 0 after 1.0 s.",
            "| 10. accept | docker | 503 | broker_unavailable | 1 |",
            "| 10. worker death | docker | | | | sample 3: no |",
            "| 10. async accept | docker | 1.90 |",
        ] {
            assert!(report.contains(row), "{row}\n{report}");
        }
        let json = serde_json::to_value(&results).unwrap();
        let a = &json["runtimes"][0]["async_invocations"];
        assert_eq!(a["bursts"][0]["invocations_per_s"], 1.0);
        assert_eq!(a["kill"]["samples"][0]["redelivered"], true);
        assert_eq!(a["accept"]["stats"]["ok"], 2);
    }

    #[test]
    fn the_noisy_neighbour_table_compares_alone_with_beside() {
        let alone = stats(&[
            outcome(200, None, 1.0, false),
            outcome(200, None, 2.0, false),
        ]);
        let beside = stats(&[
            outcome(200, None, 3.0, true),
            outcome(200, None, 5.0, false),
            outcome(503, Some("expired"), 9.0, false),
        ]);
        let slow = stats(&[
            outcome(200, None, 10_000.0, true),
            outcome(504, Some("function_timeout"), 15_000.0, false),
        ]);
        let cpu = CpuUsage {
            seconds: 1.0,
            machine_cores: Some(1.5),
            processes: Vec::new(),
            bench_cores: Some(0.1),
            containers_cores: Some(0.2),
            services: Vec::new(),
            rest_cores: Some(0.0),
        };
        let mut runtime = RuntimeResults::new(Runtime::Docker);
        runtime.noisy_neighbour = Some(NoisyResult {
            fast_function: "fast".into(),
            slow_function: "slow".into(),
            slow_loops: 40,
            sleep_secs: 10.0,
            slow_timeout_secs: 15,
            first_call_ms: 1.0,
            first_call_cold_start: Some(false),
            p50_ratio: crate::noisy::p50_ratio(&alone, &beside),
            alone,
            beside,
            alone_latencies_ms: Vec::new(),
            beside_latencies_ms: Vec::new(),
            settle: settle(true, Some(40.0), Some(40.0)),
            slow,
            cpu,
        });
        let results = Results {
            machine: machine(),
            settings: Config::parse_from(["bench"]),
            run_id: "0".into(),
            interrupted: false,
            runtimes: vec![runtime],
            memory_at_start: Vec::new(),
            memory_at_end: Vec::new(),
            targets: Vec::new(),
            cleanup: Cleanup::default(),
        };
        let report = markdown(&results);
        assert!(
            report.contains(
                "| docker | 2 | 1.00 / 3.00 | 3.00 | 2.00 / 5.00 | 2.00 / 5.00 | 200 ×2 / 200 ×2, \
                 503 expired ×1 | 0 / 1 | 40 of 40 after 12.3 s, 40 → 40 jobs in flight | 200 \
                 ×1, 504 function_timeout ×1 |"
            ),
            "{report}"
        );
        assert!(
            report.contains("| 6. beside | docker | 503 | expired | 1 |"),
            "{report}"
        );
        assert!(
            report.contains("| 6. slow calls | docker | 504 | function_timeout | 1 |"),
            "{report}"
        );
        assert!(
            report.contains("| 6. noisy, beside | docker | 1.50 |"),
            "{report}"
        );
        let json = serde_json::to_value(&results).unwrap();
        let noisy = &json["runtimes"][0]["noisy_neighbour"];
        assert_eq!(noisy["p50_ratio"], 3.0);
        assert_eq!(noisy["settle"]["inflight_jobs_before"], 40.0);
        assert_eq!(noisy["slow"]["errors"], 1);
    }
}
