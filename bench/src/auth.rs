//! Scenario 7, auth overhead: what API keys cost a call. The same warm function is called
//! through the api with auth on (`--api-url`, with `--api-key`) and through a second api over
//! the same database, broker, queue prefix and workers, started with `AUTH=disabled`
//! (`--api-url-noauth`). That api serves every caller as namespace `default`, so the same name
//! resolves to the same function, queued to the same workers and warm containers: only the
//! key check differs.
//!
//! On the keyed api the function is called twice over: with `--api-key` (run.sh passes the
//! bootstrap `ADMIN_KEY`, which the api checks against a hash it holds in memory) and with an
//! `invoke` key this scenario makes (`faas_<id>_<secret>`, verified through the api's key cache
//! over the keys table, re-read every `KEY_CACHE_TTL_SECS`), which is how every client but the
//! operator calls; the targets judge the made key, or `--api-key` when none could be made.
//!
//! Interleaved, so that the machine's noise falls on every variant alike: at concurrency 1,
//! rounds of one block of `--auth-block-calls` sequential calls per variant; at
//! `--concurrency`, `--auth-phases` rounds of one phase of `--auth-phase-secs` per variant. The
//! order of the variants rotates each round (off, on; on, off; ...), so that none always goes
//! first or always follows the same one.

use crate::client::{Api, Whoami};
use crate::config::Runtime;
use crate::scenarios::{self, Ctx, Stop, Warmup};
use crate::stats::{CallStats, Recorder};
use anyhow::{Context, bail};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The namespace an api with `AUTH=disabled` puts every caller in.
const DEFAULT_NAMESPACE: &str = "default";

/// The `key_id` the api shows for its bootstrap `ADMIN_KEY`.
const ADMIN_KEY_ID: &str = "ADMIN_KEY";

/// How a variant's calls are authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Key {
    /// No key, to the api with `AUTH=disabled`.
    None,
    /// `--api-key`, to the api with auth on.
    Given,
    /// An `invoke` key the scenario made, to the api with auth on.
    Made,
}

/// One api and key's calls.
#[derive(Debug, Clone, Serialize)]
pub struct VariantResult {
    pub key: Key,
    pub api_url: String,
    /// The sequential calls, all blocks together.
    pub warm: CallStats,
    /// The p50 of each block, in order: how much the blocks moved.
    pub block_p50s_ms: Vec<f64>,
    /// Client-measured latency of each sequential call, in order (failed calls included).
    pub latencies_ms: Vec<f64>,
    /// The calls at `--concurrency`, all phases together.
    pub load: CallStats,
    /// The phases' seconds, summed (each from its first call to its last answer).
    pub load_seconds: f64,
    /// Successful calls per second over all phases.
    pub calls_per_s: f64,
    /// Successful calls per second of each phase, in order.
    pub phase_calls_per_s: Vec<f64>,
}

/// An auth-on variant against auth off (on over off).
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub key: Key,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub throughput: Option<f64>,
}

/// Scenario 7.
#[derive(Debug, Clone, Serialize)]
pub struct AuthResult {
    pub function: String,
    pub api_url_on: String,
    pub api_url_off: String,
    /// What the keyed api's `/whoami` said `--api-key` is (`ADMIN_KEY` for the bootstrap key).
    pub given_key_id: Option<String>,
    /// Why no `invoke` key was made, when none was; the ratios are then `--api-key`'s only.
    pub made_key_error: Option<String>,
    pub block_calls: usize,
    pub blocks: usize,
    pub concurrency: usize,
    pub phases: usize,
    pub phase_secs: f64,
    /// Whether the first call through any variant was a cold start.
    pub first_calls_cold: bool,
    /// The warm-up rounds at `--concurrency` before the phases (through the keyless api).
    pub warmup: Warmup,
    /// Auth off first, then `--api-key`, then the made key.
    pub variants: Vec<VariantResult>,
    /// Each auth-on variant over auth off.
    pub ratios: Vec<Ratios>,
}

impl AuthResult {
    /// The ratios the targets judge: the made key's, else `--api-key`'s.
    pub fn judged(&self) -> Option<&Ratios> {
        judged(&self.ratios)
    }

    /// How a variant's key reads in the report.
    pub fn key_label(&self, key: Key) -> String {
        match key {
            Key::None => "none".to_owned(),
            Key::Given => match self.given_key_id.as_deref() {
                Some(ADMIN_KEY_ID) => "ADMIN_KEY".to_owned(),
                _ => "--api-key".to_owned(),
            },
            Key::Made => "invoke key (made)".to_owned(),
        }
    }
}

/// The made key's ratios if there are any, else `--api-key`'s.
pub fn judged(ratios: &[Ratios]) -> Option<&Ratios> {
    ratios
        .iter()
        .find(|r| r.key == Key::Made)
        .or_else(|| ratios.iter().find(|r| r.key == Key::Given))
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
pub fn ratios(on: &VariantResult, off: &VariantResult) -> Ratios {
    let latency = |value: fn(&crate::stats::Summary) -> f64| {
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

/// `calls` sequential calls: what they came to, and each one's latency.
async fn block(api: &Api, function: &str, runtime: Runtime, calls: usize) -> (Recorder, Vec<f64>) {
    let mut recorder = Recorder::default();
    let mut latencies_ms = Vec::with_capacity(calls);
    for _ in 0..calls {
        let outcome = api.invoke(function, runtime).await;
        latencies_ms.push(outcome.latency_ms);
        recorder.record(&outcome);
    }
    (recorder, latencies_ms)
}

/// Checks that the two apis are what they are said to be, and who `--api-key` is there.
async fn check_apis(ctx: &Ctx<'_>, off: &Api, on: &Api) -> anyhow::Result<Option<String>> {
    let config = ctx.config;
    off.ready()
        .await
        .context("the api at --api-url-noauth is not ready")?;
    match off.whoami().await? {
        Whoami::Caller { key_id: None, .. } => {}
        other => bail!(
            "the api at {} is not running with AUTH=disabled: GET /whoami without a key \
             answered {other:?}",
            off.base()
        ),
    }
    let keyless = Api::new(&config.api_url, 1, config.request_timeout(), None)?;
    match keyless.whoami().await? {
        Whoami::Unauthorized => {}
        other => bail!(
            "the api at {} does not ask for a key (GET /whoami without one answered {other:?}): \
             it is not running with auth on",
            keyless.base()
        ),
    }
    match on.whoami().await? {
        Whoami::Caller { namespace, key_id } if namespace == DEFAULT_NAMESPACE => Ok(key_id),
        Whoami::Caller { namespace, .. } => bail!(
            "--api-key is a key of namespace {namespace:?}; the api with AUTH=disabled serves \
             namespace {DEFAULT_NAMESPACE:?}, so the same name would not be the same function"
        ),
        other => bail!("GET /whoami with --api-key answered {other:?}"),
    }
}

/// Scenario 7 on `runtime`, with `function` (scenario 1's, warm when scenario 2 ran first).
pub async fn run(ctx: &Ctx<'_>, runtime: Runtime, function: &str) -> anyhow::Result<AuthResult> {
    let config = ctx.config;
    let off_url = config
        .api_url_noauth
        .as_deref()
        .filter(|url| !url.is_empty())
        .context(
            "needs --api-url-noauth (BENCH_API_URL_NOAUTH): a second api over the same \
             database, broker and queue prefix, started with AUTH=disabled",
        )?;
    let given = config
        .api_key()
        .context("needs --api-key (BENCH_API_KEY), for the api at --api-url with auth on")?;
    let pool = config.concurrency * 2 + 8;
    let timeout = config.request_timeout();
    let off = Api::new(off_url, pool, timeout, None)?;
    let on_given = Api::new(&config.api_url, pool, timeout, Some(given))?;
    let given_key_id = check_apis(ctx, &off, &on_given).await?;

    let mut variants = vec![(Key::None, off), (Key::Given, on_given)];
    let description = format!("{}auth-overhead", ctx.name_stem);
    let made_key_error = match ctx.api.create_key(&["invoke"], &description).await {
        Ok(made) => {
            ctx.made_keys
                .lock()
                .expect("the key list is never poisoned")
                .push(made.id.clone());
            variants.push((
                Key::Made,
                Api::new(&config.api_url, pool, timeout, Some(&made.key))?,
            ));
            None
        }
        Err(error) => {
            ctx.progress(
                runtime,
                &format!("  no invoke key made ({error:#}): measuring --api-key only"),
            );
            Some(format!("{error:#}"))
        }
    };
    let n = variants.len();
    let sizes = blocks(config.auth_calls, config.auth_block_calls);
    let phases = config.auth_phases.max(1);
    let phase_secs = config.auth_phase_secs.max(0.1);
    ctx.progress(
        runtime,
        &format!(
            "7. auth overhead: {n} variants (auth off; auth on with --api-key{}), {} sequential \
             calls each in {} interleaved blocks, then {phases} interleaved phases of \
             {phase_secs} s each at concurrency {}",
            if n > 2 { ", with an invoke key" } else { "" },
            config.auth_calls,
            sizes.len(),
            config.concurrency
        ),
    );

    // First calls: the keyless api reads the function's definition, the made key's row is
    // read, the connections open. Then one unmeasured block each.
    let mut first_calls_cold = false;
    for (key, api) in &variants {
        let first = api.invoke(function, runtime).await;
        if !first.is_ok() {
            ctx.progress(
                runtime,
                &format!("  the first call ({key:?}) failed: {}", first.describe()),
            );
        }
        first_calls_cold |= first.cold_start != Some(false);
    }
    // As in scenario 1: let what came before settle (a replaced stem cell, the containers
    // scenario 2 left), so that it does not fall on the first blocks only.
    tokio::time::sleep(Duration::from_secs_f64(config.warm_settle_secs)).await;
    for (_, api) in &variants {
        block(api, function, runtime, config.auth_block_calls.clamp(1, 50)).await;
    }

    let mut warm: Vec<Recorder> = (0..n).map(|_| Recorder::default()).collect();
    let mut latencies = vec![Vec::new(); n];
    let mut block_p50s = vec![Vec::new(); n];
    for (round, &size) in sizes.iter().enumerate() {
        for v in rotation(round, n) {
            let (recorder, latencies_ms) = block(&variants[v].1, function, runtime, size).await;
            if let Some(summary) = recorder.finish().latency_ms {
                block_p50s[v].push(summary.p50_ms);
            }
            latencies[v].extend(latencies_ms);
            warm[v].merge(recorder);
        }
    }

    // At concurrency: warm-up rounds until no call starts a container, the unmeasured load
    // of scenario 2 split between the variants, then the phases.
    let names = Arc::new(vec![function.to_owned()]);
    let warmup = scenarios::warm_up(
        ctx,
        &variants[0].1,
        &names,
        runtime,
        config.concurrency.max(1),
    )
    .await?;
    let unmeasured = config.load_warmup_secs.max(0.0) / n as f64;
    if unmeasured > 0.0 {
        for (_, api) in &variants {
            let until = Instant::now() + Duration::from_secs_f64(unmeasured);
            scenarios::drive(api, &names, runtime, config.concurrency, Stop::At(until)).await?;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut load: Vec<Recorder> = (0..n).map(|_| Recorder::default()).collect();
    let mut load_seconds = vec![0.0; n];
    let mut phase_rates = vec![Vec::new(); n];
    for round in 0..phases {
        for v in rotation(round, n) {
            let until = Instant::now() + Duration::from_secs_f64(phase_secs);
            let (recorder, seconds) = scenarios::drive(
                &variants[v].1,
                &names,
                runtime,
                config.concurrency,
                Stop::At(until),
            )
            .await?;
            phase_rates[v].push(rate(recorder.ok(), seconds));
            load_seconds[v] += seconds;
            load[v].merge(recorder);
        }
    }

    let results: Vec<VariantResult> = variants
        .iter()
        .enumerate()
        .map(|(v, (key, api))| {
            let load_stats = load[v].finish();
            VariantResult {
                key: *key,
                api_url: api.base().to_owned(),
                warm: warm[v].finish(),
                block_p50s_ms: std::mem::take(&mut block_p50s[v]),
                latencies_ms: std::mem::take(&mut latencies[v]),
                calls_per_s: rate(load_stats.ok, load_seconds[v]),
                load: load_stats,
                load_seconds: load_seconds[v],
                phase_calls_per_s: std::mem::take(&mut phase_rates[v]),
            }
        })
        .collect();
    let ratios: Vec<Ratios> = results[1..]
        .iter()
        .map(|on| ratios(on, &results[0]))
        .collect();
    let fmt = |value: Option<f64>| value.map_or("-".to_owned(), |v| format!("{v:.3}"));
    for r in &ratios {
        ctx.progress(
            runtime,
            &format!(
                "  {:?} over auth off: p50 {}, p99 {}, throughput {}",
                r.key,
                fmt(r.p50),
                fmt(r.p99),
                fmt(r.throughput)
            ),
        );
    }
    Ok(AuthResult {
        function: function.to_owned(),
        api_url_on: config.api_url.trim_end_matches('/').to_owned(),
        api_url_off: off_url.trim_end_matches('/').to_owned(),
        given_key_id,
        made_key_error,
        block_calls: config.auth_block_calls.max(1),
        blocks: sizes.len(),
        concurrency: config.concurrency,
        phases,
        phase_secs,
        first_calls_cold,
        warmup,
        variants: results,
        ratios,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::stats_of as stats;

    fn variant(key: Key, latencies_ms: &[f64], calls_per_s: f64) -> VariantResult {
        let load = stats(&[1.0; 10]);
        VariantResult {
            key,
            api_url: String::new(),
            warm: stats(latencies_ms),
            block_p50s_ms: Vec::new(),
            latencies_ms: latencies_ms.to_vec(),
            load,
            load_seconds: 1.0,
            calls_per_s,
            phase_calls_per_s: Vec::new(),
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
    }

    #[test]
    fn ratios_are_on_over_off() {
        assert_eq!(ratio(1.1, 1.0), Some(1.1));
        assert_eq!(ratio(0.0, 2.0), Some(0.0));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
        assert_eq!(rate(500, 5.0), 100.0);
        assert_eq!(rate(500, 0.0), 0.0);

        let off = variant(Key::None, &[1.0, 2.0, 3.0, 4.0], 1000.0);
        let on = variant(Key::Made, &[1.5, 3.0, 4.5, 6.0], 900.0);
        let r = ratios(&on, &off);
        assert_eq!(r.key, Key::Made);
        assert_eq!(r.p50, Some(1.5));
        assert_eq!(r.p99, Some(1.5));
        assert_eq!(r.throughput, Some(0.9));
        let failed = variant(Key::Given, &[], 0.0);
        let r = ratios(&failed, &off);
        assert_eq!((r.p50, r.p99, r.throughput), (None, None, Some(0.0)));
        let mut unmeasured = variant(Key::Given, &[1.0], 0.0);
        unmeasured.load = stats(&[]);
        assert_eq!(ratios(&unmeasured, &off).throughput, None);
    }

    #[test]
    fn the_made_key_is_judged_when_there_is_one() {
        let given = Ratios {
            key: Key::Given,
            p50: Some(1.0),
            p99: None,
            throughput: None,
        };
        let made = Ratios {
            key: Key::Made,
            p50: Some(1.2),
            ..given.clone()
        };
        assert_eq!(
            judged(&[given.clone(), made.clone()]).unwrap().key,
            Key::Made
        );
        assert_eq!(judged(&[given]).unwrap().key, Key::Given);
        assert!(judged(&[]).is_none());
    }
}
