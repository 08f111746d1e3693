//! Scenario 8, HTTP trigger overhead: what calling a function through its route costs against
//! `/execute`. One Python function, created by the scenario with the route
//! `/{prefix}-{run id}/http/{id}` (a parameter, so that matching one is included) and
//! `http_auth: "key"` (so that both paths check the same key), is called through
//! `POST /execute/{name}` with `{"event": {}}` and through `POST {route prefix}/{prefix}-{run
//! id}/http/42` with the body `{}`. Both clients send `--api-key`, each over its own
//! connections, to the same api.
//!
//! The route path does more than match the route and build the event: the payload 2.0 event
//! (several hundred bytes of JSON) travels through the broker, the worker and the container where
//! `/execute` sends `{}`, and the answer is the bare result where `/execute` wraps it. The
//! difference measured is therefore an upper bound on what matching and building cost.
//!
//! Interleaved as `interleave` does it (`--http-calls` in blocks of `--http-block-calls`, then
//! `--http-phases` phases of `--http-phase-secs` per path). The difference of the two p50s is
//! small against the machine's noise, so the scenario also pairs the paths round by round (the
//! route's block p50 minus `/execute`'s block p50 of the same round) and gives a distribution-
//! free confidence interval for the median of those differences (the sign test's order
//! statistics): the target is judged on that interval, and is inconclusive when the interval
//! holds the limit.
//!
//! The scenario's section of the report and its target are here too.

use crate::client::{Api, Target};
use crate::config::{Config, Runtime, Scenario};
use crate::cpu::CpuUsage;
use crate::interleave::{self, Interleaved, Plan, Ratios, VARIANT_ALIGN, VARIANT_HEAD, Variant};
use crate::scenarios::Ctx;
use crate::section::{Section, Status, TargetCheck, range_cell, ratio_cell};
use crate::stats::Summary;
use serde::Serialize;
use std::fmt::Write;

/// The value of the route's `{id}` parameter in every call.
const PATH_ID: &str = "42";

/// The confidence of the interval the target is judged on.
pub const CONFIDENCE: f64 = 0.95;

/// How a variant reaches the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    /// `POST /execute/{name}`.
    Execute,
    /// `POST` to the HTTP trigger.
    Route,
}

impl Path {
    /// How the path reads in the report.
    pub fn label(self) -> &'static str {
        match self {
            Path::Execute => "/execute",
            Path::Route => "route",
        }
    }
}

/// An interval that holds the median of the per-round differences with at least
/// `confidence`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub low_ms: f64,
    pub high_ms: f64,
    /// What the interval's order statistics guarantee (at least [`CONFIDENCE`] when there are
    /// 6 rounds or more; less with fewer, said as it is).
    pub confidence: f64,
}

/// The route against `/execute` (route minus `/execute`, in ms).
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// p50 of all the route's sequential calls minus p50 of all of `/execute`'s.
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Per round with a successful call on both paths: the route's block p50 minus
    /// `/execute`'s, in round order.
    pub rounds_ms: Vec<f64>,
    /// The median of `rounds_ms`.
    pub rounds_median_ms: Option<f64>,
    /// Where the median of `rounds_ms` lies, with `confidence`.
    pub interval: Option<Interval>,
    /// Per round: the route's calls/s over `/execute`'s at `--concurrency`.
    pub phase_throughput_ratios: Vec<f64>,
}

/// Scenario 8.
#[derive(Debug, Clone, Serialize)]
pub struct HttpResult {
    pub function: String,
    /// The route the function was created with.
    pub route: String,
    /// The path the route variant calls (prefix included).
    pub path: String,
    /// The calls: `/execute` first (the warm-up at `--concurrency` goes through it), then
    /// the route.
    #[serde(flatten)]
    pub measured: Interleaved<Path>,
    /// The route over `/execute`.
    pub ratios: Ratios<Path>,
    pub difference: Difference,
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// `a[i] - b[i]` for every round where both have a value.
pub fn paired_differences(a: &[Option<f64>], b: &[Option<f64>]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter_map(|(a, b)| Some((*a)? - (*b)?))
        .collect()
}

/// `a[i] / b[i]` for every round where both are positive.
pub fn paired_ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter_map(|(&a, &b)| interleave::ratio(a, b))
        .collect()
}

/// P(X <= k) for X ~ Binomial(n, 1/2).
fn binomial_half_cdf(n: usize, k: usize) -> f64 {
    // Term by term from P(X = 0) = 2^-n; in log space, so that no term underflows.
    let ln_half = 0.5f64.ln();
    let mut ln_term = n as f64 * ln_half;
    let mut sum = ln_term.exp();
    for i in 1..=k.min(n) {
        ln_term += ((n - i + 1) as f64).ln() - (i as f64).ln();
        sum += ln_term.exp();
    }
    sum.min(1.0)
}

/// A confidence interval for the median of `values`, free of any assumption about their
/// distribution: the `k`-th smallest and `k`-th largest value, with the largest `k` for which
/// the sign test gives at least `confidence` (`1 - 2 P(X <= k - 1)`, X ~ Binomial(n, 1/2)).
/// Below 6 values no `k` reaches 95 %; the interval is then the smallest and largest value,
/// with the confidence that has. `None` for no values.
pub fn median_interval(values: &[f64], confidence: f64) -> Option<Interval> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let coverage = |k: usize| 1.0 - 2.0 * binomial_half_cdf(n, k - 1);
    let mut k = 1;
    while k < n.div_ceil(2) && coverage(k + 1) >= confidence {
        k += 1;
    }
    Some(Interval {
        low_ms: sorted[k - 1],
        high_ms: sorted[n - k],
        confidence: coverage(k),
    })
}

/// The route (`route`) against `/execute` (`execute`).
pub fn difference(
    route: &interleave::VariantResult<Path>,
    execute: &interleave::VariantResult<Path>,
) -> Difference {
    let diff = |value: fn(&Summary) -> f64| {
        Some(value(route.warm.latency_ms.as_ref()?) - value(execute.warm.latency_ms.as_ref()?))
    };
    let rounds_ms = paired_differences(&route.block_p50s_ms, &execute.block_p50s_ms);
    Difference {
        p50_ms: diff(|s| s.p50_ms),
        p90_ms: diff(|s| s.p90_ms),
        p99_ms: diff(|s| s.p99_ms),
        rounds_median_ms: median(&rounds_ms),
        interval: median_interval(&rounds_ms, CONFIDENCE),
        rounds_ms,
        phase_throughput_ratios: paired_ratios(
            &route.phase_calls_per_s,
            &execute.phase_calls_per_s,
        ),
    }
}

/// The route of the scenario's function: a literal unique to the run, then a parameter.
fn route_of(name_stem: &str) -> String {
    format!("/{}/http/{{id}}", name_stem.trim_end_matches('-'))
}

/// What the route answers for `{id}` = [`PATH_ID`], on the functions' origin.
fn path_of(name_stem: &str) -> String {
    format!("/{}/http/{PATH_ID}", name_stem.trim_end_matches('-'))
}

/// Scenario 8 on `runtime`: creates the function, then calls it through both paths.
pub async fn run(ctx: &Ctx<'_>, runtime: Runtime) -> anyhow::Result<HttpResult> {
    let config = ctx.config;
    let name = ctx.name(runtime, "http");
    let route = route_of(&ctx.name_stem);
    let path = path_of(&ctx.name_stem);
    ctx.create_at(&name, &route, runtime).await?;

    let plan = Plan::new(
        config.http_calls,
        config.http_block_calls,
        config.http_phases,
        config.http_phase_secs,
    );
    ctx.progress(
        runtime,
        &format!(
            "8. http trigger: POST {path} (route {route}) against POST /execute/{name}, {} \
             sequential calls each in {} interleaved blocks, then {} interleaved phases of {} s \
             each at concurrency {}",
            plan.calls,
            interleave::blocks(plan.calls, plan.block_calls).len(),
            plan.phases,
            plan.phase_secs,
            config.concurrency
        ),
    );
    // One client per path, as scenario 7 has one per api: neither path reuses connections
    // the other warmed, and both send the same key.
    let pool = config.concurrency * 2 + 8;
    let client = |origin: &str| Api::new(origin, pool, config.request_timeout(), config.api_key());
    let variants = [
        Variant {
            key: Path::Execute,
            api: client(&config.api_url)?,
            target: Target::execute(&name, runtime),
            followers: None,
        },
        Variant {
            key: Path::Route,
            api: client(&config.functions_url)?,
            target: Target::Route { path: path.clone() },
            followers: None,
        },
    ];
    let measured = interleave::measure(ctx, runtime, &variants, plan).await?;
    let (execute, routed) = (&measured.variants[0], &measured.variants[1]);
    let ratios = interleave::ratios(routed, execute);
    let difference = difference(routed, execute);
    let fmt = |value: Option<f64>, digits: usize| {
        value.map_or("-".to_owned(), |v| format!("{v:+.digits$}"))
    };
    ctx.progress(
        runtime,
        &format!(
            "  route minus /execute: p50 {} ms (per round: median {} ms, {:.0} % interval {}), \
             throughput ratio {}",
            fmt(difference.p50_ms, 3),
            fmt(difference.rounds_median_ms, 3),
            difference.interval.map_or(0.0, |i| i.confidence * 100.0),
            difference.interval.map_or("-".to_owned(), |i| format!(
                "{:+.3} to {:+.3}",
                i.low_ms, i.high_ms
            )),
            ratios
                .throughput
                .map_or("-".to_owned(), |r| format!("{r:.3}"))
        ),
    );
    Ok(HttpResult {
        function: name,
        route,
        path,
        measured,
        ratios,
        difference,
    })
}

/// The most the route's p50 may exceed `/execute`'s (the issue: "well under 0.1 ms").
pub const HTTP_P50_DIFF_MAX_MS: f64 = 0.1;

/// Scenario 8's part of the report.
pub struct HttpSection;

impl Section for HttpSection {
    type Result = HttpResult;
    const ONCE_PER_RUN: bool = true;

    fn settings(&self, settings: &Config) -> Option<String> {
        settings.wants(Scenario::HttpTrigger).then(|| {
            format!(
                "HTTP trigger against /execute: {} calls in blocks of {} and {} phases of {} s \
                 per path",
                settings.http_calls,
                settings.http_block_calls,
                settings.http_phases,
                settings.http_phase_secs
            )
        })
    }

    fn markdown(&self, runs: &[(Runtime, &HttpResult)], _settings: &Config) -> String {
        let mut out = String::new();
        for (runtime, http) in runs {
            write_http(&mut out, *runtime, http);
        }
        out
    }

    fn cpu<'r>(&self, http: &'r HttpResult) -> Vec<(&'static str, &'r CpuUsage)> {
        interleave::cpu_rows_of(&http.measured, |path| match path {
            Path::Execute => "8. /execute, load",
            Path::Route => "8. route, load",
        })
    }

    fn errors(&self, runtime: Runtime, http: &HttpResult) -> Vec<String> {
        interleave::error_rows_of("8", runtime, &http.measured, |path| path.label().to_owned())
    }

    fn targets(
        &self,
        runtime: Runtime,
        http: Option<&HttpResult>,
        _concurrency: usize,
    ) -> Vec<TargetCheck> {
        http.map(|http| http_check(runtime.as_str(), http))
            .into_iter()
            .collect()
    }
}

/// Scenario 8's target on the interval of the per-round differences: met when all of it is
/// below the limit, missed when all of it is at or above, inconclusive when it holds the limit
/// (the rounds moved more than the limit) or has less than [`CONFIDENCE`] (too few rounds).
pub fn http_verdict(interval: &Interval, limit_ms: f64) -> Status {
    if interval.confidence < CONFIDENCE {
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
    let (measured, status) = match (&d.interval, d.p50_ms) {
        (Some(interval), Some(p50)) => (
            format!(
                "{} ms; per round (n={}) median {} ms, {:.0} % interval {:+.3} to {:+.3} ms",
                signed_ms(Some(p50)),
                d.rounds_ms.len(),
                signed_ms(d.rounds_median_ms),
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

/// A signed number of milliseconds, to three decimals (the target is 0.1 ms).
fn signed_ms(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |v| format!("{v:+.3}"))
}

/// Scenario 8 on one runtime: each path, then the route against `/execute`.
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
        let _ = writeln!(
            w,
            "| {rt} | {} | {} |",
            v.key.label(),
            interleave::variant_cells(v)
        );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interleave::tests::variant;

    #[test]
    fn the_route_has_a_parameter_and_the_path_fills_it() {
        assert_eq!(route_of("bench-1a2b3c4d-"), "/bench-1a2b3c4d/http/{id}");
        assert_eq!(path_of("bench-1a2b3c4d-"), "/bench-1a2b3c4d/http/42");
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn rounds_pair_by_index_and_skip_a_missing_side() {
        let route = [Some(2.0), None, Some(1.5), Some(1.0)];
        let execute = [Some(1.5), Some(1.0), None, Some(1.25)];
        assert_eq!(paired_differences(&route, &execute), vec![0.5, -0.25]);
        assert_eq!(
            paired_ratios(&[900.0, 1000.0, 5.0], &[1000.0, 0.0, 5.0]),
            vec![0.9, 1.0]
        );
    }

    #[test]
    fn the_binomial_tail_is_exact() {
        assert_eq!(binomial_half_cdf(10, 10), 1.0);
        assert!((binomial_half_cdf(10, 1) - 11.0 / 1024.0).abs() < 1e-12);
        assert!((binomial_half_cdf(20, 5) - 21700.0 / 1_048_576.0).abs() < 1e-12);
        // Far beyond where 2^-n underflows as a plain f64.
        assert!((binomial_half_cdf(2000, 1000) - 0.5089).abs() < 1e-3);
    }

    #[test]
    fn the_median_interval_takes_the_order_statistics_the_sign_test_allows() {
        assert_eq!(median_interval(&[], CONFIDENCE), None);
        // 20 rounds: the 6th smallest and the 6th largest (coverage 1 - 2 * 0.0207).
        let twenty: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        let i = median_interval(&twenty, CONFIDENCE).unwrap();
        assert_eq!((i.low_ms, i.high_ms), (6.0, 15.0));
        assert!((i.confidence - (1.0 - 2.0 * 21700.0 / 1_048_576.0)).abs() < 1e-12);
        // 10 rounds: the 2nd and the 9th (97.9 %).
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        let i = median_interval(&ten, CONFIDENCE).unwrap();
        assert_eq!((i.low_ms, i.high_ms), (2.0, 9.0));
        assert!(i.confidence >= CONFIDENCE);
        // 5 rounds cannot reach 95 %: all of them, and the 93.75 % they give.
        let five = [0.3, -0.1, 0.2, 0.0, 0.1];
        let i = median_interval(&five, CONFIDENCE).unwrap();
        assert_eq!((i.low_ms, i.high_ms), (-0.1, 0.3));
        assert_eq!(i.confidence, 0.9375);
        let one = median_interval(&[0.05], CONFIDENCE).unwrap();
        assert_eq!((one.low_ms, one.high_ms, one.confidence), (0.05, 0.05, 0.0));
    }

    #[test]
    fn the_difference_is_route_minus_execute() {
        let mut execute = variant(Path::Execute, &[1.0, 2.0, 3.0, 4.0], 1000.0);
        let mut route = variant(Path::Route, &[1.1, 2.1, 3.1, 9.0], 950.0);
        execute.block_p50s_ms = vec![Some(2.0), Some(2.2), None];
        route.block_p50s_ms = vec![Some(2.05), Some(2.1), Some(2.0)];
        execute.phase_calls_per_s = vec![1000.0, 1000.0];
        route.phase_calls_per_s = vec![950.0, 1050.0];
        let d = difference(&route, &execute);
        assert!((d.p50_ms.unwrap() - 0.1).abs() < 1e-9);
        assert!((d.p99_ms.unwrap() - 5.0).abs() < 1e-9);
        assert_eq!(d.rounds_ms.len(), 2);
        assert!((d.rounds_ms[0] - 0.05).abs() < 1e-9);
        assert!((d.rounds_ms[1] + 0.1).abs() < 1e-9);
        assert!((d.rounds_median_ms.unwrap() + 0.025).abs() < 1e-9);
        let i = d.interval.unwrap();
        assert!((i.low_ms + 0.1).abs() < 1e-9 && (i.high_ms - 0.05).abs() < 1e-9);
        assert_eq!(d.phase_throughput_ratios, vec![0.95, 1.05]);
        let failed = variant(Path::Route, &[], 0.0);
        let none = difference(&failed, &execute);
        assert_eq!((none.p50_ms, none.interval), (None, None));
    }
}
