//! Interleaved comparison of ways to call one warm function, shared by scenario 7 (auth on
//! against auth off), scenario 8 (HTTP trigger against `/execute`) and scenario 11 (followed by
//! stream clients against not). A variant is a client (its api, its key, its own connections), a
//! target, and what runs beside its measured turns (scenario 11's followers).
//!
//! Interleaved, so that the machine's noise falls on every variant alike: at concurrency 1,
//! rounds of one block of sequential calls per variant; at `--concurrency`, rounds of one
//! phase per variant. The order of the variants rotates each round (a, b; b, a; ...), so that
//! none always goes first or always follows the same one. Each block's p50 and each phase's
//! calls/s are kept by round, so that a scenario can pair the variants round by round and show
//! how far the rounds move against how far the variants differ. The columns the scenarios'
//! reports show of a variant are here too.

use crate::client::{Api, Target};
use crate::config::Runtime;
use crate::cpu::CpuUsage;
use crate::followers::Followers;
use crate::scenarios::{self, Ctx, Stop, Warmup};
use crate::section::{error_rows, ms, opt_ms, range_cell};
use crate::stats::{CallStats, Recorder, Summary};
use serde::Serialize;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One way of calling the function, named by `key`.
#[derive(Clone)]
pub struct Variant<K> {
    pub key: K,
    pub api: Api,
    pub target: Target,
    /// Clients following the invocation stream during this variant's measured blocks and
    /// phases only (scenario 11); `None` for the others.
    pub followers: Option<Arc<Followers>>,
}

impl<K> Variant<K> {
    /// Opens the followers' streams, if this variant has any.
    async fn begin_turn(&self) {
        if let Some(followers) = &self.followers {
            followers.open().await;
        }
    }

    /// Closes them.
    async fn end_turn(&self) {
        if let Some(followers) = &self.followers {
            followers.close().await;
        }
    }
}

/// How many calls, in what blocks and phases.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Sequential calls per variant, all blocks together.
    pub calls: usize,
    /// Sequential calls of one variant before the next takes its turn (at least 1).
    pub block_calls: usize,
    /// Rounds of one phase per variant at `--concurrency` (at least 1).
    pub phases: usize,
    /// Seconds of each phase (at least 0.1).
    pub phase_secs: f64,
}

impl Plan {
    /// A plan with its lower bounds applied.
    pub fn new(calls: usize, block_calls: usize, phases: usize, phase_secs: f64) -> Self {
        Self {
            calls,
            block_calls: block_calls.max(1),
            phases: phases.max(1),
            phase_secs: phase_secs.max(0.1),
        }
    }
}

/// One variant's calls.
#[derive(Debug, Clone, Serialize)]
pub struct VariantResult<K> {
    pub key: K,
    pub api_url: String,
    /// The sequential calls, all blocks together.
    pub warm: CallStats,
    /// The p50 of each round's block, in order; `None` for a block without a successful call,
    /// so that round `i` of one variant pairs with round `i` of another.
    pub block_p50s_ms: Vec<Option<f64>>,
    /// Client-measured latency of each sequential call, in order (failed calls included).
    pub latencies_ms: Vec<f64>,
    /// The calls at `--concurrency`, all phases together.
    pub load: CallStats,
    /// The phases' seconds, summed (each from its first call to its last answer).
    pub load_seconds: f64,
    /// Successful calls per second over all phases.
    pub calls_per_s: f64,
    /// Successful calls per second of each round's phase, in order.
    pub phase_calls_per_s: Vec<f64>,
    /// Where the CPU went during the phases, all together.
    pub load_cpu: Option<CpuUsage>,
}

impl<K> VariantResult<K> {
    /// The block p50s of the blocks that had a successful call.
    pub fn measured_block_p50s(&self) -> Vec<f64> {
        self.block_p50s_ms.iter().flatten().copied().collect()
    }
}

/// What the interleaved calls came to.
#[derive(Debug, Clone, Serialize)]
pub struct Interleaved<K> {
    pub block_calls: usize,
    pub blocks: usize,
    pub concurrency: usize,
    pub phases: usize,
    pub phase_secs: f64,
    /// Whether the first call through any variant answered that it was a cold start (an HTTP
    /// trigger's answer does not say).
    pub first_calls_cold: bool,
    /// The warm-up rounds at `--concurrency` before the phases (through the first variant).
    pub warmup: Warmup,
    /// In the order they were given.
    pub variants: Vec<VariantResult<K>>,
}

/// A variant against another (`on` over `off`).
#[derive(Debug, Clone, Serialize)]
pub struct Ratios<K> {
    pub key: K,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub throughput: Option<f64>,
}

/// The columns of one variant in the report's table of scenario 7 or 8, after those that
/// name it.
pub const VARIANT_HEAD: &str = "calls | errors | p50 | p90 | p99 | block p50s | calls under \
                                load | errors | calls/s | phases, calls/s | p50 | p99 |";
/// [`VARIANT_HEAD`]'s alignment row.
pub const VARIANT_ALIGN: &str =
    "--: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |";

/// [`VARIANT_HEAD`]'s cells of `v`: the sequential calls, then those at concurrency.
pub fn variant_cells<K>(v: &VariantResult<K>) -> String {
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

/// The error rows of interleaved scenario `number` (`"7"`): its warm-up, then each variant's
/// calls at concurrency 1 and at `--concurrency`, the variant named by `label`.
pub fn error_rows_of<K: Copy>(
    number: &str,
    runtime: Runtime,
    measured: &Interleaved<K>,
    label: impl Fn(K) -> String,
) -> Vec<String> {
    let mut lines = error_rows(
        &format!("{number}. warm-up"),
        runtime,
        &measured.warmup.error_kinds,
    );
    for v in &measured.variants {
        let name = label(v.key);
        let c1 = format!("{number}. {name}, c=1");
        lines.extend(error_rows(&c1, runtime, &v.warm.error_kinds));
        let cn = format!("{number}. {name}, c={}", measured.concurrency);
        lines.extend(error_rows(&cn, runtime, &v.load.error_kinds));
    }
    lines
}

/// The order of `n` variants in round `round`: rotated by one each round.
pub fn rotation(round: usize, n: usize) -> Vec<usize> {
    (0..n).map(|i| (i + round) % n).collect()
}

/// `total` calls cut into blocks of `block` (the last one shorter when it does not divide).
pub fn blocks(total: usize, block: usize) -> Vec<usize> {
    let block = block.max(1);
    let mut sizes = vec![block; total / block];
    if !total.is_multiple_of(block) {
        sizes.push(total % block);
    }
    sizes
}

/// `on` over `off`, when both are positive numbers.
pub fn ratio(on: f64, off: f64) -> Option<f64> {
    (on.is_finite() && off.is_finite() && on >= 0.0 && off > 0.0).then(|| on / off)
}

/// Successful calls per second.
pub fn rate(ok: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        ok as f64 / seconds
    } else {
        0.0
    }
}

/// `on` against `off`: latencies of the sequential calls, throughput of the phases.
pub fn ratios<K: Copy>(on: &VariantResult<K>, off: &VariantResult<K>) -> Ratios<K> {
    let latency = |value: fn(&Summary) -> f64| {
        ratio(
            value(on.warm.latency_ms.as_ref()?),
            value(off.warm.latency_ms.as_ref()?),
        )
    };
    Ratios {
        key: on.key,
        p50: latency(|s| s.p50_ms),
        p99: latency(|s| s.p99_ms),
        throughput: if on.load.calls > 0 && off.load.calls > 0 {
            ratio(on.calls_per_s, off.calls_per_s)
        } else {
            None
        },
    }
}

/// The CPU rows of the report for `measured`'s phases, one per variant that has them, each
/// named by `label` (`"11. followed, load"`).
pub fn cpu_rows_of<K: Copy>(
    measured: &Interleaved<K>,
    label: impl Fn(K) -> &'static str,
) -> Vec<(&'static str, &CpuUsage)> {
    measured
        .variants
        .iter()
        .filter_map(|v| Some((label(v.key), v.load_cpu.as_ref()?)))
        .collect()
}

/// Calls `variants` interleaved on `runtime` as `plan` says: first calls, a settle and one
/// unmeasured block each, the measured blocks, warm-up rounds and unmeasured load at
/// `--concurrency`, then the measured phases.
pub async fn measure<K: Copy + Debug>(
    ctx: &Ctx<'_>,
    runtime: Runtime,
    variants: &[Variant<K>],
    plan: Plan,
) -> anyhow::Result<Interleaved<K>> {
    let config = ctx.config;
    let n = variants.len();
    if n == 0 {
        anyhow::bail!("no variants to compare");
    }
    let sizes = blocks(plan.calls, plan.block_calls);

    // First calls: an api reads the function's definition, a key's row is read, the
    // connections open. Then one unmeasured block each.
    let mut first_calls_cold = false;
    for variant in variants {
        let first = variant.api.call(&variant.target).await;
        if !first.is_ok() {
            ctx.progress(
                runtime,
                &format!(
                    "  the first call ({:?}) failed: {}",
                    variant.key,
                    first.describe()
                ),
            );
        }
        first_calls_cold |= first.cold_start == Some(true);
    }
    // As in scenario 1: let what came before settle (a replaced stem cell, the containers
    // scenario 2 left), so that it does not fall on the first blocks only.
    tokio::time::sleep(Duration::from_secs_f64(config.warm_settle_secs)).await;
    for variant in variants {
        let calls = plan.block_calls.clamp(1, 50);
        scenarios::sequential(&variant.api, &variant.target, calls).await;
    }

    let mut warm: Vec<Recorder> = (0..n).map(|_| Recorder::default()).collect();
    let mut latencies = vec![Vec::new(); n];
    let mut block_p50s = vec![Vec::new(); n];
    for (round, &size) in sizes.iter().enumerate() {
        for v in rotation(round, n) {
            let variant = &variants[v];
            variant.begin_turn().await;
            let (recorder, latencies_ms) =
                scenarios::sequential(&variant.api, &variant.target, size).await;
            variant.end_turn().await;
            block_p50s[v].push(recorder.p50_ms());
            latencies[v].extend(latencies_ms);
            warm[v].merge(recorder);
        }
    }

    // At concurrency: warm-up rounds until no call starts a container, the unmeasured load
    // of scenario 2 split between the variants, then the phases.
    let concurrency = config.concurrency.max(1);
    let targets: Vec<Arc<Vec<Target>>> = variants
        .iter()
        .map(|variant| Arc::new(vec![variant.target.clone()]))
        .collect();
    let warmup =
        scenarios::warm_up(ctx, &variants[0].api, &targets[0], runtime, concurrency).await?;
    let unmeasured = config.load_warmup_secs.max(0.0) / n as f64;
    if unmeasured > 0.0 {
        for (variant, targets) in variants.iter().zip(&targets) {
            let until = Instant::now() + Duration::from_secs_f64(unmeasured);
            scenarios::drive(&variant.api, targets, concurrency, Stop::At(until)).await?;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut load: Vec<Recorder> = (0..n).map(|_| Recorder::default()).collect();
    let mut load_seconds = vec![0.0; n];
    let mut phase_rates = vec![Vec::new(); n];
    let mut phase_cpu: Vec<Vec<CpuUsage>> = vec![Vec::new(); n];
    for round in 0..plan.phases {
        for v in rotation(round, n) {
            variants[v].begin_turn().await;
            let until = Instant::now() + Duration::from_secs_f64(plan.phase_secs);
            let mark = ctx.cpu.mark();
            let phase =
                scenarios::drive(&variants[v].api, &targets[v], concurrency, Stop::At(until)).await;
            phase_cpu[v].push(ctx.cpu.since(&mark));
            variants[v].end_turn().await;
            let (recorder, seconds) = phase?;
            phase_rates[v].push(rate(recorder.ok(), seconds));
            load_seconds[v] += seconds;
            load[v].merge(recorder);
        }
    }

    let results = variants
        .iter()
        .enumerate()
        .map(|(v, variant)| {
            let load_stats = load[v].finish();
            VariantResult {
                key: variant.key,
                api_url: variant.api.base().to_owned(),
                warm: warm[v].finish(),
                block_p50s_ms: std::mem::take(&mut block_p50s[v]),
                latencies_ms: std::mem::take(&mut latencies[v]),
                calls_per_s: rate(load_stats.ok, load_seconds[v]),
                load: load_stats,
                load_seconds: load_seconds[v],
                phase_calls_per_s: std::mem::take(&mut phase_rates[v]),
                load_cpu: CpuUsage::combined(&phase_cpu[v]),
            }
        })
        .collect();
    Ok(Interleaved {
        block_calls: plan.block_calls,
        blocks: sizes.len(),
        concurrency: config.concurrency,
        phases: plan.phases,
        phase_secs: plan.phase_secs,
        first_calls_cold,
        warmup,
        variants: results,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::stats::stats_of as stats;

    /// A variant whose sequential calls took `latencies_ms` and whose phases made
    /// `calls_per_s`.
    pub(crate) fn variant<K>(key: K, latencies_ms: &[f64], calls_per_s: f64) -> VariantResult<K> {
        VariantResult {
            key,
            api_url: String::new(),
            warm: stats(latencies_ms),
            block_p50s_ms: Vec::new(),
            latencies_ms: latencies_ms.to_vec(),
            load: stats(&[1.0; 10]),
            load_seconds: 1.0,
            calls_per_s,
            phase_calls_per_s: Vec::new(),
            load_cpu: None,
        }
    }

    #[test]
    fn the_order_rotates_so_each_variant_takes_each_place() {
        assert_eq!(rotation(0, 2), vec![0, 1]);
        assert_eq!(rotation(1, 2), vec![1, 0]);
        assert_eq!(rotation(2, 2), vec![0, 1]);
        assert_eq!(rotation(0, 3), vec![0, 1, 2]);
        assert_eq!(rotation(1, 3), vec![1, 2, 0]);
        assert_eq!(rotation(2, 3), vec![2, 0, 1]);
        // Over n rounds every variant is first once.
        let firsts: Vec<usize> = (0..3).map(|round| rotation(round, 3)[0]).collect();
        assert_eq!(firsts, vec![0, 1, 2]);
        assert!(rotation(5, 0).is_empty());
    }

    #[test]
    fn calls_are_cut_into_blocks() {
        assert_eq!(blocks(500, 50), vec![50; 10]);
        assert_eq!(blocks(120, 50), vec![50, 50, 20]);
        assert_eq!(blocks(30, 50), vec![30]);
        assert_eq!(blocks(0, 50), Vec::<usize>::new());
        assert_eq!(blocks(3, 0), vec![1, 1, 1], "a block of 0 counts as 1");
        let plan = Plan::new(10, 0, 0, 0.0);
        assert_eq!(
            (plan.block_calls, plan.phases, plan.phase_secs),
            (1, 1, 0.1)
        );
    }

    #[test]
    fn ratios_are_on_over_off() {
        assert_eq!(ratio(1.1, 1.0), Some(1.1));
        assert_eq!(ratio(0.0, 2.0), Some(0.0));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
        assert_eq!(rate(500, 5.0), 100.0);
        assert_eq!(rate(500, 0.0), 0.0);

        let off = variant("off", &[1.0, 2.0, 3.0, 4.0], 1000.0);
        let on = variant("on", &[1.5, 3.0, 4.5, 6.0], 900.0);
        let r = ratios(&on, &off);
        assert_eq!(r.key, "on");
        assert_eq!(r.p50, Some(1.5));
        assert_eq!(r.p99, Some(1.5));
        assert_eq!(r.throughput, Some(0.9));
        let failed = variant("failed", &[], 0.0);
        let r = ratios(&failed, &off);
        assert_eq!((r.p50, r.p99, r.throughput), (None, None, Some(0.0)));
        let mut unmeasured = variant("unmeasured", &[1.0], 0.0);
        unmeasured.load = stats(&[]);
        assert_eq!(ratios(&unmeasured, &off).throughput, None);
    }

    #[test]
    fn blocks_without_a_success_keep_their_round() {
        let mut v = variant("v", &[1.0], 1.0);
        v.block_p50s_ms = vec![Some(1.0), None, Some(3.0)];
        assert_eq!(v.measured_block_p50s(), vec![1.0, 3.0]);
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["block_p50s_ms"], serde_json::json!([1.0, null, 3.0]));
    }
}
