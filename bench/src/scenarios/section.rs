//! The report's sections of scenarios 1 to 4: one table each with a row per runtime, and the
//! issue's targets on warm latency, throughput, first calls and round robin.

use super::{ColdResult, LoadResult, WarmResult};
use crate::config::{Config, Runtime};
use crate::cpu::CpuUsage;
use crate::section::{
    Section, Status, TargetCheck, error_rows, latency_check, not_measured, opt_ms, table,
};
use crate::stats::CallStats;

/// Scenario 1: sequential calls of one warm function.
pub struct WarmSection;

/// Scenario 2: one function at `--concurrency`.
pub struct ThroughputSection;

/// Scenario 3: the first call of fresh functions.
pub struct ColdSection;

/// Scenario 4: many functions round robin at `--concurrency`.
pub struct RoundRobinSection;

/// The limits on `runtime`: warm p50 and p99 (ms), throughput (calls/s) and first
/// call p50 (ms).
fn limits(runtime: Runtime) -> (f64, f64, f64, f64) {
    match runtime {
        Runtime::Docker => (2.0, 10.0, 2000.0, 50.0),
        Runtime::Gvisor => (3.0, 15.0, 1000.0, 80.0),
    }
}

impl Section for WarmSection {
    type Result = WarmResult;

    fn settings(&self, settings: &Config) -> Option<String> {
        Some(format!("{} warm calls", settings.warm_calls))
    }

    fn markdown(&self, runs: &[(Runtime, &WarmResult)], _settings: &Config) -> String {
        let rows: Vec<String> = runs
            .iter()
            .map(|(runtime, warm)| {
                let st = &warm.stats;
                let l = st.latency_ms.as_ref();
                format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    runtime.as_str(),
                    st.calls,
                    st.errors,
                    opt_ms(l, |s| s.p50_ms),
                    opt_ms(l, |s| s.p90_ms),
                    opt_ms(l, |s| s.p99_ms),
                    opt_ms(l, |s| s.mean_ms),
                    opt_ms(l, |s| s.max_ms),
                    st.cold_starts
                )
            })
            .collect();
        table(
            "## 1. Warm latency, concurrency 1\n\n| runtime | calls | errors | p50 | p90 | p99 | \
             mean | max | cold starts |\n| --- | --: | --: | --: | --: | --: | --: | --: | --: |",
            &rows,
        )
    }

    fn cpu<'r>(&self, warm: &'r WarmResult) -> Vec<(&'static str, &'r CpuUsage)> {
        vec![("1. warm", &warm.cpu)]
    }

    fn errors(&self, runtime: Runtime, warm: &WarmResult) -> Vec<String> {
        error_rows("1. warm", runtime, &warm.stats.error_kinds)
    }

    fn server_side<'r>(&self, warm: &'r WarmResult) -> Vec<(&'static str, &'r CallStats)> {
        vec![("1. warm", &warm.stats)]
    }

    fn targets(
        &self,
        runtime: Runtime,
        warm: Option<&WarmResult>,
        _concurrency: usize,
    ) -> Vec<TargetCheck> {
        let rt = runtime.as_str();
        let (p50, p99, _, _) = limits(runtime);
        let stats = warm.map(|w| &w.stats);
        vec![
            latency_check(rt, "1. warm p50", p50, stats, |s| s.p50_ms),
            latency_check(rt, "1. warm p99", p99, stats, |s| s.p99_ms),
        ]
    }
}

/// The head of scenario 2's or 4's table, under `title`.
fn load_head(title: &str) -> String {
    format!(
        "{title}\n\n| runtime | functions | seconds | calls | calls/s | errors | p50 | p99 | cold \
         starts | ratio to 2. | warm-up |\n| --- | --: | --: | --: | --: | --: | --: | --: | --: \
         | --: | --- |"
    )
}

fn load_rows(runs: &[(Runtime, &LoadResult)]) -> Vec<String> {
    runs.iter()
        .map(|(runtime, load)| {
            let l = load.stats.latency_ms.as_ref();
            format!(
                "| {} | {} | {:.1} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
                runtime.as_str(),
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
        })
        .collect()
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

/// The error table's lines of scenario 2 or 4 (`number`), its warm-up's first.
fn load_errors(number: &str, name: &str, runtime: Runtime, load: &LoadResult) -> Vec<String> {
    let mut lines = error_rows(
        &format!("{number}. warm-up"),
        runtime,
        &load.warmup.error_kinds,
    );
    lines.extend(error_rows(
        &format!("{number}. {name}"),
        runtime,
        &load.stats.error_kinds,
    ));
    lines
}

impl Section for ThroughputSection {
    type Result = LoadResult;

    fn settings(&self, settings: &Config) -> Option<String> {
        Some(format!(
            "concurrency {} for {} s",
            settings.concurrency, settings.duration_secs
        ))
    }

    fn markdown(&self, runs: &[(Runtime, &LoadResult)], settings: &Config) -> String {
        table(
            &load_head(&format!(
                "## 2. Throughput, one function, concurrency {}",
                settings.concurrency
            )),
            &load_rows(runs),
        )
    }

    fn cpu<'r>(&self, load: &'r LoadResult) -> Vec<(&'static str, &'r CpuUsage)> {
        vec![("2. throughput", &load.cpu)]
    }

    fn errors(&self, runtime: Runtime, load: &LoadResult) -> Vec<String> {
        load_errors("2", "throughput", runtime, load)
    }

    fn server_side<'r>(&self, load: &'r LoadResult) -> Vec<(&'static str, &'r CallStats)> {
        vec![("2. throughput", &load.stats)]
    }

    fn targets(
        &self,
        runtime: Runtime,
        load: Option<&LoadResult>,
        concurrency: usize,
    ) -> Vec<TargetCheck> {
        let rt = runtime.as_str();
        let (_, _, min_rate, _) = limits(runtime);
        let throughput = format!("2. throughput, c={concurrency}");
        vec![
            match load {
                Some(t) => TargetCheck {
                    subject: rt.to_owned(),
                    what: throughput,
                    target: format!("≥ {min_rate}/s"),
                    measured: format!("{:.0}/s", t.calls_per_s),
                    status: Status::of(t.calls_per_s >= min_rate),
                },
                None => not_measured(rt, &throughput, &format!("≥ {min_rate}/s")),
            },
            match load {
                Some(t) => TargetCheck {
                    subject: rt.to_owned(),
                    what: "2. errors under load".to_owned(),
                    target: "0".to_owned(),
                    measured: format!("{} of {}", t.stats.errors, t.stats.calls),
                    status: Status::of(t.stats.errors == 0),
                },
                None => not_measured(rt, "2. errors under load", "0"),
            },
        ]
    }
}

impl Section for ColdSection {
    type Result = ColdResult;

    fn settings(&self, settings: &Config) -> Option<String> {
        Some(format!("{} fresh functions", settings.cold_functions))
    }

    fn markdown(&self, runs: &[(Runtime, &ColdResult)], _settings: &Config) -> String {
        let rows: Vec<String> = runs
            .iter()
            .map(|(runtime, cold)| {
                let st = &cold.stats;
                let l = st.latency_ms.as_ref();
                format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} of {} |",
                    runtime.as_str(),
                    cold.functions,
                    st.errors + cold.create_errors.len() as u64,
                    opt_ms(l, |s| s.p50_ms),
                    opt_ms(l, |s| s.p99_ms),
                    opt_ms(l, |s| s.mean_ms),
                    opt_ms(l, |s| s.max_ms),
                    st.cold_starts,
                    st.ok
                )
            })
            .collect();
        table(
            "## 3. Cold start: first call of a new function\n\n| runtime | functions | errors | \
             p50 | p99 | mean | max | `cold_start: true` |\n| --- | --: | --: | --: | --: | --: \
             | --: | --: |",
            &rows,
        )
    }

    fn errors(&self, runtime: Runtime, cold: &ColdResult) -> Vec<String> {
        let mut lines = error_rows("3. cold", runtime, &cold.stats.error_kinds);
        for e in &cold.create_errors {
            lines.push(format!(
                "| 3. create | {} | | | 1 | {e} |",
                runtime.as_str()
            ));
        }
        lines
    }

    fn server_side<'r>(&self, cold: &'r ColdResult) -> Vec<(&'static str, &'r CallStats)> {
        vec![("3. cold", &cold.stats)]
    }

    fn targets(
        &self,
        runtime: Runtime,
        cold: Option<&ColdResult>,
        _concurrency: usize,
    ) -> Vec<TargetCheck> {
        let (_, _, _, p50) = limits(runtime);
        vec![latency_check(
            runtime.as_str(),
            "3. first call p50",
            p50,
            cold.map(|c| &c.stats),
            |s| s.p50_ms,
        )]
    }
}

impl Section for RoundRobinSection {
    type Result = LoadResult;

    fn settings(&self, settings: &Config) -> Option<String> {
        Some(format!(
            "{} functions round robin for {} s",
            settings.rr_functions, settings.rr_duration_secs
        ))
    }

    fn markdown(&self, runs: &[(Runtime, &LoadResult)], settings: &Config) -> String {
        table(
            &load_head(&format!(
                "## 4. Round robin over {} functions, concurrency {}",
                settings.rr_functions, settings.concurrency
            )),
            &load_rows(runs),
        )
    }

    fn cpu<'r>(&self, load: &'r LoadResult) -> Vec<(&'static str, &'r CpuUsage)> {
        vec![("4. round robin", &load.cpu)]
    }

    fn errors(&self, runtime: Runtime, load: &LoadResult) -> Vec<String> {
        load_errors("4", "round robin", runtime, load)
    }

    fn server_side<'r>(&self, load: &'r LoadResult) -> Vec<(&'static str, &'r CallStats)> {
        vec![("4. round robin", &load.stats)]
    }

    fn targets(
        &self,
        runtime: Runtime,
        load: Option<&LoadResult>,
        _concurrency: usize,
    ) -> Vec<TargetCheck> {
        let rt = runtime.as_str();
        vec![match load.and_then(|rr| rr.ratio_to_single) {
            Some(ratio) => TargetCheck {
                subject: rt.to_owned(),
                what: "4. round robin / single".to_owned(),
                target: "≥ 0.5".to_owned(),
                measured: format!("{ratio:.2}"),
                status: Status::of(ratio >= 0.5),
            },
            None => not_measured(rt, "4. round robin / single", "≥ 0.5"),
        }]
    }
}
