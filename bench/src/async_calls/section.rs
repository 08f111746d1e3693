//! Scenario 10's part of the report: accepting, each burst from accepted to finished, and each
//! killed worker.

use super::{AsyncResult, DEAD_LETTERED_COUNTED};
use crate::config::{Config, Runtime, Scenario};
use crate::cpu::CpuUsage;
use crate::section::{Section, cell, error_rows, opt_ms, p50_p99};
use crate::stats::Summary;
use std::fmt::Write;

/// Scenario 10's part of the report.
pub struct AsyncSection;

impl Section for AsyncSection {
    type Result = AsyncResult;
    const ONCE_PER_RUN: bool = true;

    fn settings(&self, settings: &Config) -> Option<String> {
        settings.wants(Scenario::Async).then(|| {
            format!(
                "async: accepted at concurrency {} for {} s, a burst of {}, {} killed workers",
                settings.concurrency,
                settings.async_duration_secs,
                settings.async_burst,
                settings.async_kill_samples
            )
        })
    }

    fn markdown(&self, runs: &[(Runtime, &AsyncResult)], settings: &Config) -> String {
        let mut out = String::new();
        for (runtime, a) in runs {
            write_async(&mut out, *runtime, a, settings.async_timeout_secs);
        }
        out
    }

    fn cpu<'r>(&self, a: &'r AsyncResult) -> Vec<(&'static str, &'r CpuUsage)> {
        a.accept
            .iter()
            .map(|accept| ("10. async accept", &accept.cpu))
            .collect()
    }

    fn errors(&self, runtime: Runtime, a: &AsyncResult) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(accept) = &a.accept {
            lines.extend(error_rows(
                "10. accept warm-up",
                runtime,
                &accept.warmup.error_kinds,
            ));
            lines.extend(error_rows("10. accept", runtime, &accept.stats.error_kinds));
        }
        for burst in &a.bursts {
            lines.extend(error_rows(
                "10. burst accept",
                runtime,
                &burst.accept.error_kinds,
            ));
            for e in &burst.read_errors {
                lines.push(format!(
                    "| 10. burst read | {} | | | 1 | {} |",
                    runtime.as_str(),
                    cell(e)
                ));
            }
        }
        if let Some(error) = a.kill.as_ref().and_then(|k| k.error.as_ref()) {
            lines.push(format!(
                "| 10. worker death | {} | | | | {} |",
                runtime.as_str(),
                cell(error)
            ));
        }
        lines
    }
}

/// Seconds to two decimals, or `-`.
fn secs2(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |s| format!("{s:.2} s"))
}

/// Scenario 10 on one runtime: accepting, a burst from accepted to finished, and killed
/// workers.
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
                Some(n) if n >= DEAD_LETTERED_COUNTED => format!("{n}+"),
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
