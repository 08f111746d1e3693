//! Benchmark of a running platform (api and workers): the five scenarios of the benchmark
//! issue and a noisy-neighbour one per runtime, the cost of API keys (auth on against an api
//! with `AUTH=disabled`) and of HTTP triggers (a route against `/execute`) once per run,
//! functions with dependencies and async invocations once per run on docker, the memory of the
//! api and worker processes, the machine's facts, a markdown report on stdout and the same
//! numbers as JSON. See docs/benchmarks.md.

pub mod async_calls;
pub mod auth;
pub mod burst;
pub mod client;
pub mod config;
pub mod cpu;
pub mod deps;
pub mod followers;
pub mod http;
pub mod interleave;
pub mod machine;
pub mod naive;
pub mod noisy;
pub mod pool;
pub mod procs;
pub mod report;
pub mod scenarios;
pub mod section;
pub mod stats;

pub use config::Config;

use crate::client::{Api, Function, Whoami};
use crate::config::{Runtime, Scenario};
use crate::machine::Machine;
use crate::report::{Cleanup, Results, RuntimeResults};
use crate::scenarios::Ctx;
use anyhow::{Context, bail};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Runs the benchmark, prints the report, writes the JSON and deletes what it created.
pub async fn run(config: Config) -> anyhow::Result<Results> {
    let machine = Machine::probe();
    let api = Api::new(
        &config.api_url,
        config.concurrency * 2 + 8,
        config.request_timeout(),
        config.api_key(),
    )?;
    api.ready().await?;
    check_key(&api).await?;
    let processes = procs::discover(config.api_pid, &config.worker_pid);
    let memory_at_start = procs::sample(&processes);

    let run_id = format!(
        "{:08x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            & 0xffff_ffff
    );
    let ctx = Ctx {
        api: &api,
        config: &config,
        name_stem: format!("{}-{run_id}-", config.name_prefix),
        created: Mutex::new(Vec::new()),
        made_keys: Mutex::new(Vec::new()),
        cpu: cpu::CpuMeter::new(processes.clone()),
    };
    eprintln!(
        "[bench] {} against {}, run {run_id}",
        machine.line(),
        api.base()
    );

    let mut runtimes = Vec::new();
    let interrupted = tokio::select! {
        () = run_all(&ctx, &mut runtimes) => false,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("[bench] interrupted: cleaning up");
            true
        }
    };

    let memory_at_end = procs::sample(&processes);
    let targets = report::check_targets(&runtimes, &memory_at_end, config.concurrency);
    let cleanup = cleanup(&ctx).await;
    let results = Results {
        machine,
        settings: config.clone(),
        run_id,
        interrupted,
        runtimes,
        memory_at_start,
        memory_at_end,
        targets,
        cleanup,
    };
    write_json(&config, &results)?;
    println!("{}", report::markdown(&results));
    Ok(results)
}

/// Stops early, with what to do, when the api wants a key the run has not got or rejects the
/// one it has; says who the run calls as.
async fn check_key(api: &Api) -> anyhow::Result<()> {
    match api.whoami().await {
        Ok(Whoami::Caller { namespace, key_id }) => eprintln!(
            "[bench] calling {} as namespace {namespace}{}",
            api.base(),
            key_id.map_or_else(
                || " (no key: the api runs with AUTH=disabled)".to_owned(),
                |id| format!(", key {id}")
            )
        ),
        Ok(Whoami::Unauthorized) if api.has_key() => {
            bail!(
                "the api at {} rejected --api-key (GET /whoami answered 401)",
                api.base()
            )
        }
        Ok(Whoami::Unauthorized) => bail!(
            "the api at {} wants an API key: give one with --api-key or BENCH_API_KEY (an \
             admin key, e.g. its ADMIN_KEY)",
            api.base()
        ),
        // An api without /whoami (before keys), or one that cannot say: the scenarios will.
        Ok(Whoami::Other(status)) => {
            eprintln!("[bench] GET /whoami answered {status}: going on");
        }
        Err(error) => eprintln!("[bench] {error:#}: going on"),
    }
    Ok(())
}

/// Every asked-for scenario of every runtime, in order; a scenario that fails is recorded
/// and the next one runs. Scenarios 7 and 8 run once, on the first runtime: 7 after scenario 2
/// (whose warm containers it reuses), 8 after it (its own function, before scenarios 3 and 4
/// fill the pool). Scenario 10 runs once, on docker, after all the others of every runtime:
/// its last part kills the docker worker.
async fn run_all(ctx: &Ctx<'_>, out: &mut Vec<RuntimeResults>) {
    let config = ctx.config;
    for &runtime in &config.runtimes {
        out.push(RuntimeResults::new(runtime));
        let results = out.last_mut().expect("just pushed");

        let first_runtime = config.runtimes.first() == Some(&runtime);
        let auth_here = config.wants(Scenario::AuthOverhead) && first_runtime;
        let followers_here = config.wants(Scenario::Followers) && first_runtime;
        let single = if config.wants(Scenario::Warm)
            || config.wants(Scenario::Throughput)
            || config.wants(Scenario::NoisyNeighbour)
            || auth_here
            || followers_here
        {
            match scenarios::create_single(ctx, runtime).await {
                Ok(name) => Some(name),
                Err(error) => {
                    fail(results, "create the single function", error);
                    None
                }
            }
        } else {
            None
        };
        if let Some(name) = &single {
            if config.wants(Scenario::Warm) {
                let before = pool_state(ctx, runtime).await;
                match scenarios::warm(ctx, runtime, name).await {
                    Ok(r) => results.warm = Some(r),
                    Err(error) => fail(results, "1. warm", error),
                }
                pool_change(ctx, results, "1. warm", before).await;
            }
            if config.wants(Scenario::Throughput) {
                let before = pool_state(ctx, runtime).await;
                match scenarios::throughput(ctx, runtime, name).await {
                    Ok(r) => results.throughput = Some(r),
                    Err(error) => fail(results, "2. throughput", error),
                }
                pool_change(ctx, results, "2. throughput", before).await;
            }
            if auth_here {
                let before = pool_state(ctx, runtime).await;
                match auth::run(ctx, runtime, name).await {
                    Ok(r) => results.auth_overhead = Some(r),
                    Err(error) => fail(results, "7. auth overhead", error),
                }
                pool_change(ctx, results, "7. auth overhead", before).await;
            }
            if followers_here {
                let before = pool_state(ctx, runtime).await;
                match followers::run(ctx, runtime, name).await {
                    Ok(r) => results.followers = Some(r),
                    Err(error) => fail(results, "11. stream followers", error),
                }
                pool_change(ctx, results, "11. stream followers", before).await;
            }
        }
        if config.wants(Scenario::HttpTrigger) && first_runtime {
            let before = pool_state(ctx, runtime).await;
            match http::run(ctx, runtime).await {
                Ok(r) => results.http_trigger = Some(r),
                Err(error) => fail(results, "8. http trigger", error),
            }
            pool_change(ctx, results, "8. http trigger", before).await;
        }
        if config.wants(Scenario::Cold) {
            let before = pool_state(ctx, runtime).await;
            match scenarios::cold(ctx, runtime).await {
                Ok(r) => results.cold = Some(r),
                Err(error) => fail(results, "3. cold", error),
            }
            pool_change(ctx, results, "3. cold", before).await;
        }
        if config.wants(Scenario::RoundRobin) {
            let before = pool_state(ctx, runtime).await;
            match scenarios::round_robin(ctx, runtime).await {
                Ok(mut r) => {
                    r.ratio_to_single = results
                        .throughput
                        .as_ref()
                        .filter(|t| t.calls_per_s > 0.0)
                        .map(|t| r.calls_per_s / t.calls_per_s);
                    results.round_robin = Some(r);
                }
                Err(error) => fail(results, "4. round robin", error),
            }
            pool_change(ctx, results, "4. round robin", before).await;
        }
        if config.wants(Scenario::Naive) {
            results.naive = Some(naive::run(config, runtime).await);
        }
        if let Some(name) = single
            .as_ref()
            .filter(|_| config.wants(Scenario::NoisyNeighbour))
        {
            let before = pool_state(ctx, runtime).await;
            match noisy::run(ctx, runtime, name).await {
                Ok(r) => results.noisy_neighbour = Some(r),
                Err(error) => fail(results, "6. noisy neighbour", error),
            }
            pool_change(ctx, results, "6. noisy neighbour", before).await;
        }
        if config.wants(Scenario::Dependencies) && runtime == deps::RUNTIME {
            let before = pool_state(ctx, runtime).await;
            match deps::run(ctx).await {
                Ok(r) => results.dependencies = Some(r),
                Err(error) => fail(results, "9. dependencies", error),
            }
            pool_change(ctx, results, "9. dependencies", before).await;
        }
        if config.wants(Scenario::Burst) {
            let before = pool_state(ctx, runtime).await;
            match burst::run(ctx, runtime).await {
                Ok(r) => results.burst = Some(r),
                Err(error) => fail(results, "12. burst", error),
            }
            pool_change(ctx, results, "12. burst", before).await;
        }
    }
    if config.wants(Scenario::Async) {
        let runtime = async_calls::RUNTIME;
        let index = match out.iter().position(|r| r.runtime == runtime) {
            Some(index) => index,
            None => {
                out.push(RuntimeResults::new(runtime));
                out.len() - 1
            }
        };
        // No pool reading around it: the docker worker whose metrics it would read is killed.
        let (result, failures) = async_calls::run(ctx).await;
        let results = &mut out[index];
        results.async_invocations = Some(result);
        for (part, error) in failures {
            fail(results, part, error);
        }
    }
}

fn fail(results: &mut RuntimeResults, scenario: &str, error: anyhow::Error) {
    eprintln!(
        "[bench] {}: {scenario} failed: {error:#}",
        results.runtime.as_str()
    );
    results.failures.push(format!("{scenario}: {error:#}"));
}

/// The runtime's worker pool, when worker metrics endpoints were given.
async fn pool_state(ctx: &Ctx<'_>, runtime: Runtime) -> Option<pool::PoolState> {
    let urls = &ctx.config.worker_metrics_url;
    if urls.is_empty() {
        return None;
    }
    Some(pool::read(ctx.api, urls, runtime).await)
}

async fn pool_change(
    ctx: &Ctx<'_>,
    results: &mut RuntimeResults,
    scenario: &str,
    before: Option<pool::PoolState>,
) {
    let Some(before) = before else { return };
    let after = pool::read(ctx.api, &ctx.config.worker_metrics_url, results.runtime).await;
    results.pool.push(pool::PoolChange {
        scenario: scenario.to_owned(),
        before,
        after,
    });
}

/// Revokes the keys the run made (always), and deletes every function whose name starts with
/// this run's stem (listed from the api, so that a creation whose answer was lost is found
/// too) and those the run recorded (unless `--keep`).
async fn cleanup(ctx: &Ctx<'_>) -> Cleanup {
    let mut cleanup = Cleanup::default();
    let made_keys: Vec<String> = ctx
        .made_keys
        .lock()
        .expect("the key list is never poisoned")
        .clone();
    for id in made_keys {
        match ctx.api.revoke_key(&id).await {
            Ok(()) => cleanup.keys_revoked += 1,
            Err(error) => cleanup.failures.push(format!("{error:#}")),
        }
    }
    let created: Vec<Function> = ctx
        .created
        .lock()
        .expect("the created list is never poisoned")
        .clone();
    if ctx.config.keep {
        cleanup.kept = true;
        return cleanup;
    }
    let mut ids: Vec<i64> = created.iter().map(|f| f.id).collect();
    match ctx.api.list_functions().await {
        Ok(listed) => ids.extend(
            listed
                .iter()
                .filter(|f| f.name.starts_with(&ctx.name_stem))
                .map(|f| f.id),
        ),
        Err(error) => cleanup.failures.push(format!("{error:#}")),
    }
    ids.sort_unstable();
    ids.dedup();
    if !ids.is_empty() {
        eprintln!("[bench] deleting {} functions", ids.len());
    }
    for id in ids {
        match ctx.api.delete_function(id).await {
            Ok(()) => cleanup.deleted += 1,
            Err(error) => cleanup.failures.push(format!("{error:#}")),
        }
    }
    cleanup
}

fn write_json(config: &Config, results: &Results) -> anyhow::Result<()> {
    if let Some(dir) = config.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(results)?;
    std::fs::write(&config.out, json + "\n")
        .with_context(|| format!("cannot write {}", config.out.display()))?;
    eprintln!("[bench] results written to {}", config.out.display());
    Ok(())
}
