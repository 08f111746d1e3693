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
//! Interleaved as `interleave` does it: at concurrency 1, rounds of one block of
//! `--auth-block-calls` sequential calls per variant; at `--concurrency`, `--auth-phases`
//! rounds of one phase of `--auth-phase-secs` per variant, the order rotating each round.
//!
//! The scenario's section of the report and its two targets are here too.

use crate::client::{Api, Target, Whoami};
use crate::config::{Config, Runtime, Scenario};
use crate::cpu::CpuUsage;
use crate::interleave::{self, Interleaved, Plan, VARIANT_ALIGN, VARIANT_HEAD, Variant};
use crate::scenarios::Ctx;
use crate::section::{Section, Status, TargetCheck, cell, ratio_cell};
use anyhow::{Context, bail};
use serde::Serialize;
use std::fmt::Write;

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
pub type VariantResult = interleave::VariantResult<Key>;

/// An auth-on variant against auth off (on over off).
pub type Ratios = interleave::Ratios<Key>;

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
    /// The calls: auth off first (the warm-up goes through it), then `--api-key`, then the
    /// made key.
    #[serde(flatten)]
    pub measured: Interleaved<Key>,
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
    let plan = Plan::new(
        config.auth_calls,
        config.auth_block_calls,
        config.auth_phases,
        config.auth_phase_secs,
    );
    let n = variants.len();
    ctx.progress(
        runtime,
        &format!(
            "7. auth overhead: {n} variants (auth off; auth on with --api-key{}), {} sequential \
             calls each in {} interleaved blocks, then {} interleaved phases of {} s each at \
             concurrency {}",
            if n > 2 { ", with an invoke key" } else { "" },
            plan.calls,
            interleave::blocks(plan.calls, plan.block_calls).len(),
            plan.phases,
            plan.phase_secs,
            config.concurrency
        ),
    );
    let target = Target::execute(function, runtime);
    let variants: Vec<Variant<Key>> = variants
        .into_iter()
        .map(|(key, api)| Variant {
            key,
            api,
            target: target.clone(),
            followers: None,
        })
        .collect();
    let measured = interleave::measure(ctx, runtime, &variants, plan).await?;
    let results = &measured.variants;
    let ratios: Vec<Ratios> = results[1..]
        .iter()
        .map(|on| interleave::ratios(on, &results[0]))
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
        measured,
        ratios,
    })
}

/// Largest auth-on over auth-off p50 of the sequential calls that meets the target.
pub const AUTH_P50_RATIO_MAX: f64 = 1.10;
/// Smallest auth-on over auth-off throughput that meets the target.
pub const AUTH_THROUGHPUT_RATIO_MIN: f64 = 0.90;

/// Scenario 7's part of the report.
pub struct AuthSection;

impl Section for AuthSection {
    type Result = AuthResult;
    const ONCE_PER_RUN: bool = true;

    fn settings(&self, settings: &Config) -> Option<String> {
        settings.wants(Scenario::AuthOverhead).then(|| {
            format!(
                "auth on against {}: {} calls in blocks of {} and {} phases of {} s per api \
                 and key",
                settings
                    .api_url_noauth
                    .as_deref()
                    .unwrap_or("(no --api-url-noauth)"),
                settings.auth_calls,
                settings.auth_block_calls,
                settings.auth_phases,
                settings.auth_phase_secs
            )
        })
    }

    fn markdown(&self, runs: &[(Runtime, &AuthResult)], _settings: &Config) -> String {
        let mut out = String::new();
        for (runtime, auth) in runs {
            write_auth(&mut out, *runtime, auth);
        }
        out
    }

    fn cpu<'r>(&self, auth: &'r AuthResult) -> Vec<(&'static str, &'r CpuUsage)> {
        interleave::cpu_rows_of(&auth.measured, |key| match key {
            Key::None => "7. auth off, load",
            Key::Given => "7. auth on, given key, load",
            Key::Made => "7. auth on, made key, load",
        })
    }

    fn errors(&self, runtime: Runtime, auth: &AuthResult) -> Vec<String> {
        interleave::error_rows_of("7", runtime, &auth.measured, |key| {
            auth_variant_label(auth, key)
        })
    }

    fn targets(
        &self,
        runtime: Runtime,
        auth: Option<&AuthResult>,
        _concurrency: usize,
    ) -> Vec<TargetCheck> {
        auth.map_or_else(Vec::new, |auth| auth_checks(runtime.as_str(), auth).into())
    }
}

/// Scenario 7's targets, judged on [`AuthResult::judged`].
pub(crate) fn auth_checks(subject: &str, auth: &AuthResult) -> [TargetCheck; 2] {
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

/// `auth off`, or `auth on, <key>`.
fn auth_variant_label(auth: &AuthResult, key: Key) -> String {
    match key {
        Key::None => "auth off".to_owned(),
        _ => format!("auth on, {}", auth.key_label(key)),
    }
}

/// Scenario 7 on one runtime: each api and key, then the ratios.
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
            interleave::variant_cells(v)
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
            cell(error)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
