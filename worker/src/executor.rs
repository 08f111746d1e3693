//! Runs one job to a verdict: checks its fields and deadline, finds a warm container or starts
//! one (a cold start), sends the call and turns whatever happened into a [`Reply`], or gives
//! the job back to the queue when this worker has no room for it. A container that timed out,
//! died or broke the protocol is removed, never reused; one that died before the call reached
//! it is not the caller's fault, and the call goes to another container.

use crate::artifacts::MAX_UNPACKED_BYTES;
use crate::container::{CallOutcome, Container, InitOutcome};
use crate::pool::{Mounts, Pool, Slot, StemKind};
use crate::protocol::InvokeContext;
use crate::sandbox::{Death, Sandbox};
use common::{ErrorInfo, FunctionSpec, Job, RawJson, Reply, ReplyStatus, Timing, raw_null};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The pool of Docker containers the executor runs calls in.
pub type DockerPool = Pool<Sandbox>;

/// Bounds on what a job may ask for, whoever published it: the api checks a function's fields
/// when it is saved, but anything that can publish to the queue can send a job.
const MEMORY_RANGE_MB: std::ops::RangeInclusive<u32> = 64..=10_240;
const TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u64> = 1_000..=900_000;
/// The longest a job may wait on top of its timeout before its deadline.
const MAX_DEADLINE_OVERHEAD_MS: u64 = 10 * 60 * 1000;
/// A call whose container died before the call reached it goes to another container, once.
const ATTEMPTS: usize = 2;

pub struct Executor {
    pub pool: Arc<DockerPool>,
    pub worker_id: String,
    pub init_timeout: Duration,
    /// How long a job waits for room before it goes back to the queue, where a worker with
    /// room (or this one, later) takes it.
    pub room_wait: Duration,
}

/// What becomes of a delivered job.
#[derive(Debug)]
pub enum Verdict {
    /// Publish this reply, then ack.
    Reply(Reply),
    /// No room for it now: give it back to the queue unanswered.
    Requeue,
}

impl Verdict {
    /// The reply; panics on a requeue (tests that leave no room for one).
    pub fn reply(self) -> Reply {
        match self {
            Verdict::Reply(reply) => reply,
            Verdict::Requeue => panic!("the job was given back to the queue"),
        }
    }
}

/// A job's fields as this worker will honour them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounded {
    pub memory_mb: u32,
    pub timeout_ms: u64,
    pub deadline_unix_ms: u64,
}

impl Bounded {
    /// Clamps `job`'s memory and timeout into the ranges the api allows (`memory_mb: 0` would
    /// mean "unlimited" to Docker) and its deadline to at most ten minutes past its timeout.
    pub fn of(job: &Job, now_unix_ms: u64) -> Bounded {
        let spec = &job.function;
        let memory_mb = spec
            .memory_mb
            .clamp(*MEMORY_RANGE_MB.start(), *MEMORY_RANGE_MB.end());
        let timeout_ms = spec
            .timeout_ms
            .clamp(*TIMEOUT_RANGE_MS.start(), *TIMEOUT_RANGE_MS.end());
        let latest = now_unix_ms + timeout_ms + MAX_DEADLINE_OVERHEAD_MS;
        Bounded {
            memory_mb,
            timeout_ms,
            deadline_unix_ms: job.deadline_unix_ms.min(latest),
        }
    }
}

/// What a finished job reports, before it is turned into a reply.
struct Outcome {
    status: ReplyStatus,
    result: RawJson,
    error: Option<ErrorInfo>,
    logs: String,
    logs_truncated: bool,
}

impl Outcome {
    fn failed(status: ReplyStatus, error: ErrorInfo, logs: String) -> Self {
        Outcome {
            status,
            result: raw_null(),
            error: Some(error),
            logs,
            logs_truncated: false,
        }
    }
}

/// Why a job got no container.
enum NoContainer {
    Answer(Outcome),
    Requeue,
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Executor {
    pub async fn run(&self, job: &Job) -> Verdict {
        let taken_at = common::now_unix_ms();
        let bounded = Bounded::of(job, taken_at);
        let mut timing = Timing {
            queue_ms: taken_at.saturating_sub(job.published_unix_ms) as f64,
            ..Timing::default()
        };
        let mut cold_start = false;
        let outcome = if taken_at >= bounded.deadline_unix_ms {
            Outcome::failed(
                ReplyStatus::Expired,
                ErrorInfo::new(
                    "Runtime.Expired",
                    "the job was taken after its deadline and was not run",
                ),
                String::new(),
            )
        } else {
            match self
                .run_in_container(job, bounded, &mut timing, &mut cold_start)
                .await
            {
                Ok(outcome) => outcome,
                Err(()) => return Verdict::Requeue,
            }
        };
        let runtime = self.pool.launcher().runtime.as_str();
        metrics::counter!("faas_worker_jobs_total", "runtime" => runtime, "status" => outcome.status.as_str())
            .increment(1);
        metrics::histogram!("faas_worker_queue_seconds", "runtime" => runtime)
            .record(timing.queue_ms / 1000.0);
        metrics::histogram!("faas_worker_run_seconds", "runtime" => runtime)
            .record(timing.run_ms / 1000.0);
        if cold_start {
            metrics::histogram!("faas_worker_init_seconds", "runtime" => runtime)
                .record(timing.init_ms / 1000.0);
        }
        Verdict::Reply(Reply {
            invocation_id: job.invocation_id,
            worker_id: self.worker_id.clone(),
            status: outcome.status,
            result: outcome.result,
            error: outcome.error,
            logs: outcome.logs,
            logs_truncated: outcome.logs_truncated,
            cold_start,
            timing,
        })
    }

    /// The reply for a job this worker could not run through (its task panicked twice).
    pub fn worker_failure(&self, job: &Job) -> Reply {
        Reply {
            invocation_id: job.invocation_id,
            worker_id: self.worker_id.clone(),
            status: ReplyStatus::Crashed,
            result: raw_null(),
            error: Some(ErrorInfo::new(
                "Runtime.WorkerError",
                "the worker failed while running this call; see the worker's log",
            )),
            logs: String::new(),
            logs_truncated: false,
            cold_start: false,
            timing: Timing::default(),
        }
    }

    /// `Err` when the job should go back to the queue.
    async fn run_in_container(
        &self,
        job: &Job,
        bounded: Bounded,
        timing: &mut Timing,
        cold_start: &mut bool,
    ) -> Result<Outcome, ()> {
        let spec = &job.function;
        let remaining = Duration::from_millis(
            bounded
                .deadline_unix_ms
                .saturating_sub(common::now_unix_ms()),
        );
        let job_deadline = tokio::time::Instant::now() + remaining;
        let key = (spec.id, spec.version);
        let invocation_id = job.invocation_id.to_string();

        for attempt in 1..=ATTEMPTS {
            let mut slot = match self
                .acquire(job, bounded, job_deadline, timing, cold_start)
                .await
            {
                Ok(slot) => slot,
                Err(NoContainer::Answer(outcome)) => return Ok(outcome),
                Err(NoContainer::Requeue) => return Err(()),
            };

            let busy = self.pool.busy(key);
            let run_started = Instant::now();
            let run_deadline = job_deadline
                .min(tokio::time::Instant::now() + Duration::from_millis(bounded.timeout_ms));
            let deadline_unix_ms = common::now_unix_ms()
                + run_deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .as_millis() as u64;
            let arn = spec.arn();
            let context = InvokeContext {
                invocation_id: &invocation_id,
                function_name: &spec.name,
                invoked_function_arn: &arn,
                function_version: spec.version,
                memory_mb: bounded.memory_mb,
                deadline_unix_ms,
                attempt: job.attempt.max(1),
            };
            let call = slot
                .container
                .invoke(&invocation_id, &job.event, &context, run_deadline)
                .await;
            timing.run_ms = millis(run_started.elapsed());
            drop(busy);
            let outcome = match call {
                CallOutcome::Returned {
                    result,
                    logs,
                    logs_truncated,
                } => {
                    self.pool.put_idle(slot);
                    Outcome {
                        status: ReplyStatus::Success,
                        result,
                        error: None,
                        logs,
                        logs_truncated,
                    }
                }
                CallOutcome::Raised {
                    error,
                    logs,
                    logs_truncated,
                } => {
                    // The handler's own error leaves the process sound: the container stays warm.
                    self.pool.put_idle(slot);
                    Outcome {
                        status: ReplyStatus::Error,
                        result: raw_null(),
                        error: Some(error),
                        logs,
                        logs_truncated,
                    }
                }
                CallOutcome::TooLarge { error, sound } => {
                    if sound {
                        self.pool.put_idle(slot);
                    } else {
                        self.pool.discard(slot);
                    }
                    Outcome::failed(ReplyStatus::ResultTooLarge, error, String::new())
                }
                CallOutcome::TimedOut => {
                    self.pool.discard(slot);
                    Outcome::failed(
                        ReplyStatus::Timeout,
                        ErrorInfo::new(
                            "Runtime.Timeout",
                            format!(
                                "the function did not return within {} ms",
                                bounded.timeout_ms
                            ),
                        ),
                        String::new(),
                    )
                }
                CallOutcome::Broken(violation) => {
                    self.pool.discard(slot);
                    Outcome::failed(
                        ReplyStatus::Crashed,
                        ErrorInfo::new(
                            "Runtime.ProtocolError",
                            format!("the function's container was killed: {violation}"),
                        ),
                        String::new(),
                    )
                }
                CallOutcome::Died => match self.died(slot).await {
                    Death::BeforeTheCall if attempt < ATTEMPTS => {
                        tracing::info!(
                            "the container died before the call reached it; retrying in another"
                        );
                        continue;
                    }
                    death => death_outcome(death),
                },
            };
            return Ok(outcome);
        }
        unreachable!("the last attempt always returns")
    }

    /// A container for the call: a warm one of its version, else (a cold start) a stem cell or
    /// a new container with its code loaded.
    async fn acquire(
        &self,
        job: &Job,
        bounded: Bounded,
        job_deadline: tokio::time::Instant,
        timing: &mut Timing,
        cold_start: &mut bool,
    ) -> Result<Slot<Container>, NoContainer> {
        let spec = &job.function;
        let key = (spec.id, spec.version);
        let waited = Instant::now();
        let warm = match self.pool.take_idle(key) {
            Some(slot) => Some(slot),
            None => {
                let wait = job_deadline.min(tokio::time::Instant::now() + self.pool.warm_wait());
                self.pool.wait_for_idle(key, wait).await
            }
        };
        timing.queue_ms += millis(waited.elapsed());
        if let Some(slot) = warm {
            return Ok(slot);
        }
        *cold_start = true;
        let init_started = Instant::now();
        let started = self.cold_start(job, bounded, job_deadline).await;
        timing.init_ms = millis(init_started.elapsed());
        started
    }

    /// Binds a stem cell, or starts a container, and loads the code; on failure the container
    /// is already removed. Waiting for room is bounded by `room_wait` (then the job goes back
    /// to the queue) and by the job's deadline; loading the code by `init_timeout`.
    async fn cold_start(
        &self,
        job: &Job,
        bounded: Bounded,
        job_deadline: tokio::time::Instant,
    ) -> Result<Slot<Container>, NoContainer> {
        let spec = &job.function;
        // A stem cell cannot take a mount chosen later: a function with dependencies or a
        // package binds one that mounts its artifacts (kept for popular sets), else gets a
        // container of its own, once the artifacts are on this host.
        self.fetch_artifacts(spec, job_deadline).await?;
        let stem = self.pool.take_stem(&StemKind::of(spec), bounded.memory_mb);
        let mut slot = match stem {
            Some(stem) => stem,
            None => self.start_container(job, bounded, job_deadline).await?,
        };
        let deadline = job_deadline.min(tokio::time::Instant::now() + self.init_timeout);
        slot.bind((spec.id, spec.version));
        let failed = |status, kind: &str, message: &str| {
            NoContainer::Answer(Outcome::failed(
                status,
                ErrorInfo::new(kind, message),
                String::new(),
            ))
        };
        match slot.container.init(spec, deadline).await {
            InitOutcome::Ready => Ok(slot),
            InitOutcome::Failed { error, logs } => {
                self.pool.discard(slot);
                Err(NoContainer::Answer(Outcome::failed(
                    ReplyStatus::InitError,
                    error,
                    logs,
                )))
            }
            InitOutcome::TimedOut => {
                self.pool.discard(slot);
                Err(failed(
                    ReplyStatus::InitError,
                    "Runtime.InitTimeout",
                    "the function's code did not load in time",
                ))
            }
            InitOutcome::Broken(violation) => {
                self.pool.discard(slot);
                Err(failed(
                    ReplyStatus::Crashed,
                    "Runtime.ProtocolError",
                    &format!("the function's container was killed while loading: {violation}"),
                ))
            }
            InitOutcome::Died => Err(NoContainer::Answer(death_outcome(self.died(slot).await))),
        }
    }

    /// Makes the function's artifacts (dependencies, package) present on this host; a call
    /// whose artifacts cannot be had, or are over Lambda's 250 MB together, ends as an
    /// `init_error` that says why.
    async fn fetch_artifacts(
        &self,
        spec: &FunctionSpec,
        job_deadline: tokio::time::Instant,
    ) -> Result<(), NoContainer> {
        let init_error = |kind: &str, message: String| {
            NoContainer::Answer(Outcome::failed(
                ReplyStatus::InitError,
                ErrorInfo::new(kind, message),
                String::new(),
            ))
        };
        let unpacked: u64 = [&spec.dependencies, &spec.package]
            .into_iter()
            .flatten()
            .map(|artifact| artifact.unpacked_bytes)
            .sum();
        if unpacked > MAX_UNPACKED_BYTES {
            return Err(init_error(
                "Runtime.CodeTooLarge",
                format!(
                    "the function's package and dependencies unpack to {unpacked} bytes, over the limit of {} MB together",
                    MAX_UNPACKED_BYTES / (1024 * 1024)
                ),
            ));
        }
        for (artifact, what, kind) in [
            (
                &spec.dependencies,
                "dependencies",
                "Runtime.DependenciesUnavailable",
            ),
            (&spec.package, "package", "Runtime.PackageUnavailable"),
        ] {
            let Some(artifact) = artifact else { continue };
            let fetched =
                tokio::time::timeout_at(job_deadline, self.pool.launcher().deps.ensure(artifact))
                    .await;
            let why = match fetched {
                Ok(Ok(_)) => continue,
                Ok(Err(error)) => error.to_string(),
                Err(_) => format!("the call's deadline passed while fetching its {what}"),
            };
            tracing::warn!(digest = %artifact.digest, %why, "{what} unavailable");
            return Err(init_error(
                kind,
                format!("the function's {what} could not be fetched: {why}"),
            ));
        }
        Ok(())
    }

    async fn start_container(
        &self,
        job: &Job,
        bounded: Bounded,
        job_deadline: tokio::time::Instant,
    ) -> Result<Slot<Container>, NoContainer> {
        let spec = &job.function;
        let until = job_deadline.min(tokio::time::Instant::now() + self.room_wait);
        let Some(room) = self.pool.reserve(bounded.memory_mb, until).await else {
            if tokio::time::Instant::now() < job_deadline {
                tracing::debug!(
                    memory_mb = bounded.memory_mb,
                    "no room for the job; giving it back to the queue"
                );
                return Err(NoContainer::Requeue);
            }
            return Err(NoContainer::Answer(Outcome::failed(
                ReplyStatus::Expired,
                ErrorInfo::new(
                    "Runtime.NoCapacity",
                    "no worker had room for the call before its deadline",
                ),
                String::new(),
            )));
        };
        let started = tokio::time::timeout_at(
            job_deadline,
            self.pool.start(
                spec.language,
                bounded.memory_mb,
                Some(spec),
                &Mounts::of(spec),
                room,
            ),
        )
        .await
        .map_err(|_| {
            NoContainer::Answer(Outcome::failed(
                ReplyStatus::Expired,
                ErrorInfo::new(
                    "Runtime.NoCapacity",
                    "the worker could not start a container before the call's deadline",
                ),
                String::new(),
            ))
        })?;
        started.map_err(|error| {
            metrics::counter!("faas_docker_errors_total").increment(1);
            tracing::error!(%error, "cannot start a container");
            NoContainer::Answer(Outcome::failed(
                ReplyStatus::Crashed,
                ErrorInfo::new(
                    "Runtime.ContainerStartFailed",
                    "the worker could not start a container for the function",
                ),
                String::new(),
            ))
        })
    }

    /// How a container that stopped answering died; it is discarded.
    async fn died(&self, slot: Slot<Container>) -> Death {
        let sandbox = self.pool.launcher();
        let record = sandbox.death_record(&slot.container.id).await;
        let death = Death::explain(
            &record,
            slot.container.last_request_at(),
            &slot.container.stderr_tail(),
            slot.memory_mb(),
        );
        self.pool.discard(slot);
        death
    }
}

fn death_outcome(death: Death) -> Outcome {
    match death {
        Death::OutOfMemory(error) => Outcome::failed(ReplyStatus::Oom, error, String::new()),
        Death::Crashed(error) => Outcome::failed(ReplyStatus::Crashed, error, String::new()),
        Death::BeforeTheCall => Outcome::failed(
            ReplyStatus::Crashed,
            ErrorInfo::new(
                "Runtime.ExitError",
                "the function's container stopped before the call reached it, twice",
            ),
            String::new(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::{FunctionSpec, Language};

    fn job(memory_mb: u32, timeout_ms: u64, deadline_unix_ms: u64) -> Job {
        Job {
            invocation_id: uuid::Uuid::nil(),
            function: FunctionSpec {
                id: 1,
                namespace: "default".into(),
                name: "f".into(),
                version: 1,
                handler: "handler".into(),
                language: Language::Python,
                code: String::new(),
                timeout_ms,
                memory_mb,
                env: Default::default(),
                dependencies: None,
                package: None,
            },
            event: raw_null(),
            deadline_unix_ms,
            published_unix_ms: 0,
            attempt: 1,
        }
    }

    #[test]
    fn job_fields_are_held_to_what_the_api_allows() {
        let now = 1_000_000;
        let sane = Bounded::of(&job(256, 5_000, now + 20_000), now);
        assert_eq!(
            sane,
            Bounded {
                memory_mb: 256,
                timeout_ms: 5_000,
                deadline_unix_ms: now + 20_000
            }
        );
        let hostile = Bounded::of(&job(0, u64::MAX, u64::MAX), now);
        assert_eq!(hostile.memory_mb, 64, "0 would be unlimited to Docker");
        assert_eq!(hostile.timeout_ms, 900_000);
        assert_eq!(hostile.deadline_unix_ms, now + 900_000 + 600_000);
        assert_eq!(Bounded::of(&job(1 << 30, 0, now), now).memory_mb, 10_240);
        assert_eq!(Bounded::of(&job(128, 0, now), now).timeout_ms, 1_000);
    }
}
