//! Part 3 of scenario 10: a docker worker killed (SIGKILL) while it runs an async call, after
//! a replacement started; how long the job waits until the replacement runs it.

use super::broker::Broker;
use super::view::{View, after_kill, read_view};
use super::{KillResult, KillSample, RUNTIME};
use crate::client::{Api, Target};
use crate::noisy::{slow_handler, slow_timeout_secs};
use crate::scenarios::Ctx;
use crate::stats::summarize;
use anyhow::{Context, bail};
use chrono::Utc;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Between two reads of the invocation whose worker is killed.
const STATUS_POLL: Duration = Duration::from_millis(20);
/// After the invocation is `running`: time for the job to reach the worker and its handler.
const IN_HANDLER: Duration = Duration::from_millis(300);
/// The longest wait for a started worker to consume the docker queue (and for a killed one's
/// consumer to go).
const WORKER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest wait for a replacement worker to stop after SIGTERM (its SHUTDOWN_GRACE_SECS is
/// 30 by default).
const WORKER_STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// On top of the function's timeout: the longest wait for the killed worker's job to end.
const KILLED_JOB_MARGIN: Duration = Duration::from_secs(60);

/// A docker worker of part 3: `--docker-worker-pid`, or a replacement the run started.
struct Worker {
    id: String,
    pid: u32,
    /// A replacement's process (`None` for `--docker-worker-pid`, not the run's child).
    child: Option<tokio::process::Child>,
    log: Option<PathBuf>,
    killed: bool,
}

impl Worker {
    /// The end of its log, for an error about it.
    fn log_tail(&self) -> String {
        let Some(path) = &self.log else {
            return String::new();
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let start = text.char_indices().rev().nth(1500).map_or(0, |(i, _)| i);
        format!("; the end of {}: {}", path.display(), &text[start..])
    }
}

/// Starts replacement docker workers as `bench/run.sh` starts its own.
struct Spawner {
    bin: PathBuf,
    id_prefix: String,
    deps_root: PathBuf,
    log_dir: PathBuf,
    started: usize,
}

impl Spawner {
    fn spawn(&mut self) -> anyhow::Result<Worker> {
        self.started += 1;
        let id = format!("{}-{}", self.id_prefix, self.started);
        let deps = self.deps_root.join(&id);
        std::fs::create_dir_all(&deps)
            .with_context(|| format!("cannot create {}", deps.display()))?;
        std::fs::create_dir_all(&self.log_dir)
            .with_context(|| format!("cannot create {}", self.log_dir.display()))?;
        let log_path = self
            .log_dir
            .join(format!("worker-docker-replacement-{}.log", self.started));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("cannot find a free port for METRICS_ADDR")?
            .port();
        let child = tokio::process::Command::new(&self.bin)
            .args(["--runtime", "docker"])
            .env("WORKER_ID", &id)
            .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
            .env("DEPS_CACHE_DIR", &deps)
            .env("BUILDS", "false")
            .env_remove("BENCH_API_KEY")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        let pid = child
            .id()
            .context("the replacement worker is gone at once")?;
        Ok(Worker {
            id,
            pid,
            child: Some(child),
            log: Some(log_path),
            killed: false,
        })
    }
}

/// `kill -{signal} {pid}`.
async fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .await
        .context("cannot run kill")?;
    if !status.success() {
        bail!("kill -{signal} {pid}: {status}");
    }
    Ok(())
}

/// Whether `pid` is a running process named `worker`.
fn is_worker(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "worker")
}

/// Waits until the docker queue has `want` consumers; the seconds it took. Fails when
/// `starting` (a replacement being waited for) exits.
async fn wait_for_consumers(
    broker: &Broker,
    want: u32,
    mut starting: Option<&mut Worker>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let queue = broker.docker_queue();
    loop {
        let count = broker.consumers(&queue).await?;
        if count == want {
            return Ok(started.elapsed().as_secs_f64());
        }
        if let Some(worker) = starting.as_deref_mut()
            && let Some(child) = worker.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            worker.killed = true;
            bail!(
                "worker {} exited ({status}){}",
                worker.id,
                worker.log_tail()
            );
        }
        if started.elapsed() >= WORKER_START_TIMEOUT {
            bail!(
                "queue {queue} has {count} consumers, not {want}, after {} s{}",
                WORKER_START_TIMEOUT.as_secs(),
                starting.map_or(String::new(), |w| w.log_tail())
            );
        }
        tokio::time::sleep(STATUS_POLL).await;
    }
}

/// Reads invocation `id` until `done` holds for its status, or `within` passes.
async fn wait_for_status(
    api: &Api,
    id: &str,
    done: fn(&View) -> bool,
    within: Duration,
) -> anyhow::Result<View> {
    let started = Instant::now();
    loop {
        let read = api.invocation(id).await.map(|value| read_view(&value));
        if let Ok(view) = &read
            && done(view)
        {
            return Ok(view.clone());
        }
        if started.elapsed() >= within {
            let last = match read {
                Ok(view) => view.status,
                Err(error) => format!("{error:#}"),
            };
            bail!(
                "invocation {id} still {last} after {:.0} s",
                within.as_secs_f64()
            );
        }
        tokio::time::sleep(STATUS_POLL).await;
    }
}

/// Part 3.
pub(super) async fn kill(ctx: &Ctx<'_>, broker: Option<&Broker>) -> anyhow::Result<KillResult> {
    let config = ctx.config;
    let sleep_secs = config.async_kill_sleep_secs.max(0.0);
    let timeout_secs = slow_timeout_secs(sleep_secs, config.function_timeout_secs);
    let function = ctx.name(RUNTIME, "async-kill");
    let mut result = KillResult {
        function: function.clone(),
        sleep_secs,
        timeout_secs,
        samples: Vec::new(),
        kill_to_finished: None,
        redelivery_wait: None,
        stopped: Vec::new(),
        skipped: None,
        error: None,
    };
    let (Some(pid), Some(bin)) = (config.docker_worker_pid, config.worker_bin.clone()) else {
        result.skipped = Some(
            "no --docker-worker-pid and --worker-bin (BENCH_DOCKER_WORKER_PID, \
             BENCH_WORKER_BIN; bench/run.sh sets them)"
                .to_owned(),
        );
        return Ok(result);
    };
    if config.async_kill_samples == 0 {
        result.skipped = Some("--async-kill-samples 0".to_owned());
        return Ok(result);
    }
    let broker = broker.context("no connection to RabbitMQ")?;
    if !is_worker(pid) {
        bail!("pid {pid} (--docker-worker-pid) is not a running process named `worker`");
    }
    ctx.create_with_code(&function, RUNTIME, &slow_handler(sleep_secs), timeout_secs)
        .await?;
    let within = Duration::from_secs(u64::from(timeout_secs)) + KILLED_JOB_MARGIN;
    let warm = ctx
        .api
        .invoke_within(&function, RUNTIME, Some(within))
        .await;
    if !warm.is_ok() {
        bail!("the warm-up call failed: {}", warm.describe());
    }

    let mut spawner = Spawner {
        bin,
        id_prefix: config.replacement_worker_id.clone(),
        deps_root: config
            .replacement_deps_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir),
        log_dir: config
            .out
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), PathBuf::from),
        started: 0,
    };
    let mut workers = vec![Worker {
        id: format!("--docker-worker-pid {pid}"),
        pid,
        child: None,
        log: None,
        killed: false,
    }];
    let mut current = 0;
    let mut error = None;
    for i in 1..=config.async_kill_samples {
        match kill_one(
            ctx,
            broker,
            &function,
            &mut spawner,
            &mut workers,
            &mut current,
        )
        .await
        {
            Ok(sample) => {
                ctx.progress(
                    RUNTIME,
                    &format!(
                        "  worker death {i}: killed {}, {} on {} {} s after the kill ({} \
                         attempt{}, replacement consuming after {:.2} s)",
                        sample.killed,
                        sample.status,
                        sample.ran_on.as_deref().unwrap_or("?"),
                        sample
                            .kill_to_finished_s
                            .map_or("-".to_owned(), |s| format!("{s:.2}")),
                        sample.attempts,
                        if sample.attempts == 1 { "" } else { "s" },
                        sample.replacement_ready_s
                    ),
                );
                result.samples.push(sample);
            }
            Err(e) => {
                error = Some(e.context(format!("sample {i}")));
                break;
            }
        }
    }
    result.stopped = stop_replacements(&mut workers).await;
    let redelivered = |value: fn(&KillSample) -> Option<f64>| -> Vec<f64> {
        result
            .samples
            .iter()
            .filter(|s| s.redelivered)
            .filter_map(|s| value(s).map(|seconds| seconds * 1000.0))
            .collect()
    };
    result.kill_to_finished = summarize(&redelivered(|s| s.kill_to_finished_s));
    result.redelivery_wait = summarize(&redelivered(|s| s.redelivery_wait_s));
    match error {
        Some(error) if result.samples.is_empty() => Err(error),
        // The samples taken are kept, and the report says why there are no more.
        Some(error) => {
            ctx.progress(RUNTIME, &format!("  worker death: {error:#}"));
            result.error = Some(format!("{error:#}"));
            Ok(result)
        }
        None => Ok(result),
    }
}

/// One sample of part 3: kills `workers[current]` while it runs an async call of `function`,
/// after starting a replacement, which becomes `current`.
async fn kill_one(
    ctx: &Ctx<'_>,
    broker: &Broker,
    function: &str,
    spawner: &mut Spawner,
    workers: &mut Vec<Worker>,
    current: &mut usize,
) -> anyhow::Result<KillSample> {
    let config = ctx.config;
    let sleep_secs = config.async_kill_sleep_secs.max(0.0);
    let timeout_secs = slow_timeout_secs(sleep_secs, config.function_timeout_secs);
    // The job must go to the worker about to be killed: it alone consumes the queue.
    wait_for_consumers(broker, 1, None)
        .await
        .context("waiting for the docker queue to have one consumer")?;
    let outcome = ctx
        .api
        .call(&Target::Async {
            name: function.to_owned(),
        })
        .await;
    let id = outcome
        .invocation_id
        .clone()
        .filter(|_| outcome.is_ok())
        .with_context(|| format!("POST /execute_async/{function}: {}", outcome.describe()))?;
    wait_for_status(ctx.api, &id, |v| v.status != "queued", WORKER_START_TIMEOUT).await?;
    tokio::time::sleep(IN_HANDLER).await;

    let mut replacement = spawner.spawn()?;
    let ready = wait_for_consumers(broker, 2, Some(&mut replacement)).await;
    let (replacement_id, replacement_pid) = (replacement.id.clone(), replacement.pid);
    workers.push(replacement);
    let replacement_ready_s = ready?;

    let at_kill = read_view(&ctx.api.invocation(&id).await?);
    let victim = &mut workers[*current];
    signal(victim.pid, "KILL").await?;
    let killed_at = Utc::now();
    victim.killed = true;
    if let Some(child) = victim.child.as_mut() {
        child.wait().await?;
    }
    let killed = victim.id.clone();
    let killed_pid = victim.pid;
    *current = workers.len() - 1;
    ctx.progress(
        RUNTIME,
        &format!(
            "  killed {killed} (pid {killed_pid}) with the invocation {}; replacement {replacement_id} \
             (pid {replacement_pid})",
            at_kill.status
        ),
    );

    let within = Duration::from_secs(u64::from(timeout_secs)) + KILLED_JOB_MARGIN;
    let end = wait_for_status(ctx.api, &id, View::ended, within).await?;
    let (kill_to_finished_s, redelivery_wait_s) =
        after_kill(killed_at, end.finished_at, sleep_secs);
    let redelivered = at_kill.status == "running"
        && end.status == "succeeded"
        && end.worker_id.as_deref() == Some(replacement_id.as_str());
    Ok(KillSample {
        invocation_id: id,
        killed,
        killed_pid,
        replacement: replacement_id,
        replacement_ready_s,
        status_at_kill: at_kill.status,
        status: end.status,
        kill_to_finished_s,
        redelivery_wait_s,
        attempts: end.attempts,
        ran_on: end.worker_id,
        cold_start: end.cold_start,
        init_ms: end.init_ms,
        run_ms: end.run_ms,
        redelivered,
    })
}

/// SIGTERM to each replacement still running, then waits for it: how each stopped.
async fn stop_replacements(workers: &mut [Worker]) -> Vec<String> {
    let mut stopped = Vec::new();
    for worker in workers.iter_mut().filter(|w| !w.killed) {
        let Some(child) = worker.child.as_mut() else {
            continue;
        };
        let started = Instant::now();
        let how = match signal(worker.pid, "TERM").await {
            Err(error) => format!("{error:#}"),
            Ok(()) => match tokio::time::timeout(WORKER_STOP_TIMEOUT, child.wait()).await {
                Ok(Ok(status)) => {
                    format!("{status} after {:.1} s", started.elapsed().as_secs_f64())
                }
                Ok(Err(error)) => format!("{error}"),
                Err(_) => {
                    let _ = child.kill().await;
                    format!(
                        "still running {} s after SIGTERM: killed",
                        WORKER_STOP_TIMEOUT.as_secs()
                    )
                }
            },
        };
        worker.killed = true;
        stopped.push(format!("{}: {how}", worker.id));
    }
    stopped
}
