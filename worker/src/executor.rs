//! Runs one job to a reply: checks its deadline, finds a warm container or starts one (a cold
//! start), sends the call and turns whatever happened into a [`Reply`]. A container that timed
//! out, died or broke the protocol is removed, never reused.

use crate::container::{CallOutcome, Container, Death, InitOutcome, InvokeContext};
use crate::pool::Pool;
use common::{ErrorInfo, FunctionSpec, Job, RawJson, Reply, ReplyStatus, Timing, raw_null};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Executor {
    pub pool: Arc<Pool>,
    pub worker_id: String,
    pub init_timeout: Duration,
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

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Executor {
    pub async fn run(&self, job: &Job) -> Reply {
        let taken_at = common::now_unix_ms();
        let mut timing = Timing {
            queue_ms: taken_at.saturating_sub(job.published_unix_ms) as f64,
            ..Timing::default()
        };
        let mut cold_start = false;
        let outcome = if taken_at >= job.deadline_unix_ms {
            Outcome::failed(
                ReplyStatus::Expired,
                ErrorInfo::new(
                    "Runtime.Expired",
                    "the job was taken after its deadline and was not run",
                ),
                String::new(),
            )
        } else {
            self.run_in_container(job, &mut timing, &mut cold_start)
                .await
        };
        let runtime = self.pool.sandbox.runtime.as_str();
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
        Reply {
            invocation_id: job.invocation_id,
            worker_id: self.worker_id.clone(),
            status: outcome.status,
            result: outcome.result,
            error: outcome.error,
            logs: outcome.logs,
            logs_truncated: outcome.logs_truncated,
            cold_start,
            timing,
        }
    }

    async fn run_in_container(
        &self,
        job: &Job,
        timing: &mut Timing,
        cold_start: &mut bool,
    ) -> Outcome {
        let spec = &job.function;
        let remaining =
            Duration::from_millis(job.deadline_unix_ms.saturating_sub(common::now_unix_ms()));
        let job_deadline = tokio::time::Instant::now() + remaining;

        let key = (spec.id, spec.version);
        let waited = Instant::now();
        let warm = match self.pool.take_idle(key) {
            Some(container) => Some(container),
            None => {
                let wait = job_deadline.min(tokio::time::Instant::now() + self.pool.warm_wait());
                self.pool.wait_for_idle(key, wait).await
            }
        };
        timing.queue_ms += millis(waited.elapsed());
        let mut container = match warm {
            Some(container) => container,
            None => {
                *cold_start = true;
                let init_started = Instant::now();
                let started = self.cold_start(job, job_deadline).await;
                timing.init_ms = millis(init_started.elapsed());
                match started {
                    Ok(container) => container,
                    Err(outcome) => return outcome,
                }
            }
        };

        let _busy = self.pool.busy(key);
        let run_started = Instant::now();
        let run_deadline =
            job_deadline.min(tokio::time::Instant::now() + Duration::from_millis(spec.timeout_ms));
        let deadline_unix_ms = common::now_unix_ms()
            + run_deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .as_millis() as u64;
        let invocation_id = job.invocation_id.to_string();
        let context = InvokeContext {
            invocation_id: &invocation_id,
            function_name: &spec.name,
            function_version: spec.version,
            memory_mb: spec.memory_mb,
            deadline_unix_ms,
        };
        let call = container
            .invoke(&invocation_id, &job.event, &context, run_deadline)
            .await;
        timing.run_ms = millis(run_started.elapsed());
        match call {
            CallOutcome::Returned {
                result,
                logs,
                logs_truncated,
            } => {
                self.pool.put_idle(container);
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
                self.pool.put_idle(container);
                Outcome {
                    status: ReplyStatus::Error,
                    result: raw_null(),
                    error: Some(error),
                    logs,
                    logs_truncated,
                }
            }
            CallOutcome::TimedOut => {
                self.pool.discard(container);
                Outcome::failed(
                    ReplyStatus::Timeout,
                    ErrorInfo::new(
                        "Runtime.Timeout",
                        format!("the function did not return within {} ms", spec.timeout_ms),
                    ),
                    String::new(),
                )
            }
            CallOutcome::Died => self.died(container).await,
        }
    }

    /// Binds a stem cell, or starts a container, and loads the code; on failure the container
    /// is already removed. Waiting for room or for a start slot is bounded by the job's
    /// deadline; loading the code, by `init_timeout` from when the container is there.
    async fn cold_start(
        &self,
        job: &Job,
        job_deadline: tokio::time::Instant,
    ) -> Result<Container, Outcome> {
        let spec = &job.function;
        let mut container = match self.pool.take_stem(spec.language, spec.memory_mb) {
            Some(stem) => stem,
            None => self.start_container(spec, job_deadline).await?,
        };
        let deadline = job_deadline.min(tokio::time::Instant::now() + self.init_timeout);
        match container.init(spec, deadline).await {
            InitOutcome::Ready { .. } => Ok(container),
            InitOutcome::Failed { error, logs } => {
                self.pool.discard(container);
                Err(Outcome::failed(ReplyStatus::InitError, error, logs))
            }
            InitOutcome::TimedOut => {
                self.pool.discard(container);
                Err(Outcome::failed(
                    ReplyStatus::InitError,
                    ErrorInfo::new(
                        "Runtime.InitTimeout",
                        "the function's code did not load in time",
                    ),
                    String::new(),
                ))
            }
            InitOutcome::Died => Err(self.died(container).await),
        }
    }

    async fn start_container(
        &self,
        spec: &FunctionSpec,
        deadline: tokio::time::Instant,
    ) -> Result<Container, Outcome> {
        let Some(permit) = self.pool.reserve(deadline).await else {
            return Err(Outcome::failed(
                ReplyStatus::Expired,
                ErrorInfo::new(
                    "Runtime.NoCapacity",
                    "every container of the worker stayed busy until the call's deadline",
                ),
                String::new(),
            ));
        };
        let started = tokio::time::timeout_at(
            deadline,
            self.pool
                .start(spec.language, spec.memory_mb, Some(spec), permit),
        )
        .await
        .map_err(|_| {
            Outcome::failed(
                ReplyStatus::Expired,
                ErrorInfo::new(
                    "Runtime.NoCapacity",
                    "the worker could not start a container before the call's deadline",
                ),
                String::new(),
            )
        })?;
        started.map_err(|error| {
            metrics::counter!("faas_docker_errors_total").increment(1);
            tracing::error!(function = %spec.name, %error, "cannot start a container");
            Outcome::failed(
                ReplyStatus::Crashed,
                ErrorInfo::new(
                    "Runtime.ContainerStartFailed",
                    "the worker could not start a container for the function",
                ),
                String::new(),
            )
        })
    }

    async fn died(&self, container: Container) -> Outcome {
        let stderr = container.stderr_tail();
        let id = container.id.clone();
        let death = self
            .pool
            .sandbox
            .diagnose(&id, &stderr, container.memory_mb)
            .await;
        self.pool.discard(container);
        match death {
            Death::OutOfMemory(error) => Outcome::failed(ReplyStatus::Oom, error, String::new()),
            Death::Crashed(error) => Outcome::failed(ReplyStatus::Crashed, error, String::new()),
        }
    }
}
