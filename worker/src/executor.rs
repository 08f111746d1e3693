//! Runs one job to a verdict: checks its fields and deadline, leases a container from the pool
//! (warm, or a cold start), sends the call, gives the container back with its health, and turns
//! whatever happened into a [`Reply`]; or gives the job back to the queue when this worker has
//! no room for it. What becomes of a container is the pool's decision ([`Health`]); what the
//! caller is told is this module's. A container that died before the call reached it is not
//! the caller's fault, and the call goes to another container.
//!
//! The executor is generic over the pool's [`Launcher`], so that its decisions are unit-tested
//! with the pool's fake launcher (tests below); the worker's is [`Sandbox`].

use crate::death::Death;
use crate::pool::{Acquisition, Artifact, Health, Launcher, NoContainer, Pool, Pooled};
use crate::protocol::{CallOutcome, InvokeContext};
use crate::sandbox::Sandbox;
use crate::signals::QueueWaits;
use common::{ErrorInfo, Job, MAX_UNPACKED_BYTES, RawJson, Reply, ReplyStatus, Timing, raw_null};
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

/// Runs jobs in the containers of `pool`; `worker_id` names this worker in replies.
pub struct Executor<L: Launcher = Sandbox> {
    pub pool: Arc<Pool<L>>,
    pub worker_id: String,
    /// How long the jobs taken lately had waited in their queue: a scaling signal.
    pub queue_waits: Arc<QueueWaits>,
}

impl<L: Launcher> Executor<L> {
    /// An executor over `pool`, with its own record of queue waits.
    pub fn new(pool: Arc<Pool<L>>, worker_id: String) -> Self {
        let queue_waits = Arc::new(QueueWaits::new(pool.runtime_label(), Instant::now()));
        Executor {
            pool,
            worker_id,
            queue_waits,
        }
    }
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

    /// A load-only job's code loaded: success, nothing called.
    fn loaded() -> Self {
        Outcome {
            status: ReplyStatus::Success,
            result: raw_null(),
            error: None,
            logs: String::new(),
            logs_truncated: false,
        }
    }
}

/// The job goes back to the queue unanswered: this worker has no room for it now.
struct Requeue;

/// How long a job's parts took, over its attempts.
#[derive(Debug, Default)]
struct Spent {
    warm_wait: Duration,
    /// The last cold start's, if any attempt started cold.
    cold_start: Option<Duration>,
    run: Duration,
}

impl Spent {
    fn add(&mut self, acquisition: Acquisition) {
        self.warm_wait += acquisition.warm_wait;
        if acquisition.cold_start.is_some() {
            self.cold_start = acquisition.cold_start;
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl<L: Launcher> Executor<L> {
    pub async fn run(&self, job: &Job) -> Verdict {
        let taken_at = common::now_unix_ms();
        let bounded = Bounded::of(job, taken_at);
        let (outcome, spent) = if taken_at >= bounded.deadline_unix_ms {
            let expired = Outcome::failed(
                ReplyStatus::Expired,
                ErrorInfo::new(
                    "Runtime.Expired",
                    "the job was taken after its deadline and was not run",
                ),
                String::new(),
            );
            (expired, Spent::default())
        } else {
            match self.run_in_container(job, bounded).await {
                (Ok(outcome), spent) => (outcome, spent),
                (Err(Requeue), _) => return Verdict::Requeue,
            }
        };
        let queued_ms = taken_at.saturating_sub(job.published_unix_ms);
        self.queue_waits
            .record(Duration::from_millis(queued_ms), Instant::now());
        let timing = Timing {
            queue_ms: queued_ms as f64 + millis(spent.warm_wait),
            init_ms: spent.cold_start.map_or(0.0, millis),
            run_ms: millis(spent.run),
        };
        let cold_start = spent.cold_start.is_some();
        let runtime = self.pool.runtime_label();
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

    /// Leases a container, runs the call in it and gives it back; once more in another
    /// container when the first was dead before the call reached it. Also says what each part
    /// took, whatever came of the job.
    async fn run_in_container(
        &self,
        job: &Job,
        bounded: Bounded,
    ) -> (Result<Outcome, Requeue>, Spent) {
        let mut spent = Spent::default();
        let spec = &job.function;
        let remaining = Duration::from_millis(
            bounded
                .deadline_unix_ms
                .saturating_sub(common::now_unix_ms()),
        );
        let job_deadline = tokio::time::Instant::now() + remaining;
        let invocation_id = job.invocation_id.to_string();

        for attempt in 1..=ATTEMPTS {
            let acquired = self
                .pool
                .acquire(spec, bounded.memory_mb, job_deadline)
                .await;
            let mut lease = match acquired {
                Ok(lease) => lease,
                Err(refused) => {
                    spent.add(refused.acquisition);
                    return (no_container(refused.why), spent);
                }
            };
            let loaded_here = lease.acquisition().cold_start.is_some();
            spent.add(lease.acquisition());
            if job.load_only {
                // Taking a cold container loaded the code, which is all that was asked: the
                // container (code no saved version has) is removed, not kept warm. A warm one
                // (a check's container not yet gone) loaded other code: it goes too, and the
                // check takes a cold one.
                lease.release(Health::Unsound).await;
                if !loaded_here && attempt < ATTEMPTS {
                    continue;
                }
                return (Ok(Outcome::loaded()), spent);
            }

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
            let call = lease
                .container()
                .invoke(&invocation_id, &job.event, &context, run_deadline)
                .await;
            spent.run = run_started.elapsed();
            let death = lease.release(Health::after_call(&call)).await;
            if death == Some(Death::BeforeTheCall) && attempt < ATTEMPTS {
                tracing::info!(
                    "the container died before the call reached it; retrying in another"
                );
                continue;
            }
            return (Ok(call_outcome(call, death, bounded.timeout_ms)), spent);
        }
        unreachable!("the last attempt always returns")
    }
}

/// What the caller is told of a call that ran; `death` is how its container died, if it did.
fn call_outcome(call: CallOutcome, death: Option<Death>, timeout_ms: u64) -> Outcome {
    match call {
        CallOutcome::Returned {
            result,
            logs,
            logs_truncated,
        } => Outcome {
            status: ReplyStatus::Success,
            result,
            error: None,
            logs,
            logs_truncated,
        },
        CallOutcome::Raised {
            error,
            logs,
            logs_truncated,
        } => Outcome {
            status: ReplyStatus::Error,
            result: raw_null(),
            error: Some(error),
            logs,
            logs_truncated,
        },
        CallOutcome::TooLarge { error, .. } => {
            Outcome::failed(ReplyStatus::ResultTooLarge, error, String::new())
        }
        CallOutcome::TimedOut => Outcome::failed(
            ReplyStatus::Timeout,
            ErrorInfo::new(
                "Runtime.Timeout",
                format!("the function did not return within {timeout_ms} ms"),
            ),
            String::new(),
        ),
        CallOutcome::Broken(violation) => Outcome::failed(
            ReplyStatus::Crashed,
            ErrorInfo::new(
                "Runtime.ProtocolError",
                format!("the function's container was killed: {violation}"),
            ),
            String::new(),
        ),
        // A released dead container always comes with its death; without one, nothing is
        // known but that it stopped answering.
        CallOutcome::Died => death_outcome(death.unwrap_or_else(|| {
            Death::Crashed(ErrorInfo::new(
                "Runtime.ExitError",
                "the function's container stopped answering",
            ))
        })),
    }
}

/// What the caller is told when the call got no container, or the job goes back to the queue.
fn no_container(why: NoContainer) -> Result<Outcome, Requeue> {
    let failed = |status, kind: &str, message: String| {
        Ok(Outcome::failed(
            status,
            ErrorInfo::new(kind, message),
            String::new(),
        ))
    };
    match why {
        NoContainer::NoRoom => Err(Requeue),
        NoContainer::NoRoomInTime => failed(
            ReplyStatus::Expired,
            "Runtime.NoCapacity",
            "no worker had room for the call before its deadline".into(),
        ),
        NoContainer::StartTooSlow => failed(
            ReplyStatus::Expired,
            "Runtime.NoCapacity",
            "the worker could not start a container before the call's deadline".into(),
        ),
        NoContainer::StartFailed(_) => failed(
            ReplyStatus::Crashed,
            "Runtime.ContainerStartFailed",
            "the worker could not start a container for the function".into(),
        ),
        NoContainer::CodeTooLarge { unpacked_bytes } => failed(
            ReplyStatus::InitError,
            "Runtime.CodeTooLarge",
            format!(
                "the function's package and dependencies unpack to {unpacked_bytes} bytes, over the limit of {} MB together",
                MAX_UNPACKED_BYTES / (1024 * 1024)
            ),
        ),
        NoContainer::Unavailable { artifact, why } => failed(
            ReplyStatus::InitError,
            match artifact {
                Artifact::Dependencies => "Runtime.DependenciesUnavailable",
                Artifact::Package => "Runtime.PackageUnavailable",
            },
            format!(
                "the function's {} could not be fetched: {why}",
                artifact.as_str()
            ),
        ),
        NoContainer::InitFailed { error, logs } => {
            Ok(Outcome::failed(ReplyStatus::InitError, error, logs))
        }
        NoContainer::InitTimedOut => failed(
            ReplyStatus::InitError,
            "Runtime.InitTimeout",
            "the function's code did not load in time".into(),
        ),
        NoContainer::InitBroken(violation) => failed(
            ReplyStatus::Crashed,
            "Runtime.ProtocolError",
            format!("the function's container was killed while loading: {violation}"),
        ),
        NoContainer::InitDied(death) => Ok(death_outcome(death)),
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
    use crate::container::RESULT_TOO_LARGE;
    use crate::pool::PoolSettings;
    use crate::pool::fake::{FakeLauncher, settings, settle, spec};
    use crate::protocol::{InitOutcome, Violation};
    use common::{ArtifactRef, FunctionSpec, Language};

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
            load_only: false,
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

    fn executor(settings: PoolSettings) -> Executor<FakeLauncher> {
        Executor {
            pool: Arc::new(Pool::new(FakeLauncher::default(), settings)),
            queue_waits: Arc::new(QueueWaits::new("test", Instant::now())),
            worker_id: "w1".into(),
        }
    }

    /// A job for `function` with 5 s to go.
    fn job_for(function: FunctionSpec) -> Job {
        let now = common::now_unix_ms();
        Job {
            invocation_id: uuid::Uuid::now_v7(),
            function,
            event: raw_null(),
            deadline_unix_ms: now + 5_000,
            published_unix_ms: now,
            attempt: 1,
            load_only: false,
        }
    }

    fn kind(reply: &Reply) -> Option<&str> {
        reply.error.as_ref().map(|error| error.kind.as_str())
    }

    fn returned() -> CallOutcome {
        CallOutcome::Returned {
            result: raw_null(),
            logs: String::new(),
            logs_truncated: false,
        }
    }

    #[tokio::test]
    async fn the_second_call_of_a_function_runs_warm_in_the_first_ones_container() {
        let executor = executor(settings(1024));
        let cold = executor.run(&job_for(spec(1, 1, 128))).await.reply();
        assert_eq!(cold.status, ReplyStatus::Success);
        assert!(cold.cold_start);
        assert_eq!(cold.worker_id, "w1");
        let warm = executor.run(&job_for(spec(1, 1, 128))).await.reply();
        assert_eq!(warm.status, ReplyStatus::Success);
        assert!(!warm.cold_start);
        assert_eq!(warm.timing.init_ms, 0.0);
        let launcher = executor.pool.launcher();
        assert_eq!((launcher.init_count(), launcher.call_count()), (1, 2));
        assert_eq!(executor.pool.live_ids().len(), 1);
        assert_eq!(executor.pool.idle_count(), 1, "back idle after each call");
    }

    /// What the caller is told of each way a call can end, and whether its container stays
    /// warm for the next call or is removed.
    #[tokio::test]
    async fn each_way_a_call_ends_gives_its_reply_and_its_containers_fate() {
        let oom = Death::OutOfMemory(ErrorInfo::new("Runtime.OutOfMemory", "over 128 MB"));
        let crash = Death::Crashed(ErrorInfo::new("Runtime.ExitError", "exited with code 1"));
        let too_large = |sound| CallOutcome::TooLarge {
            error: ErrorInfo::new(RESULT_TOO_LARGE, "over 6 MiB"),
            sound,
        };
        let raised = CallOutcome::Raised {
            error: ErrorInfo::new("ValueError", "bad input"),
            logs: "printed".into(),
            logs_truncated: false,
        };
        let table = [
            (returned(), None, ReplyStatus::Success, None, true),
            (raised, None, ReplyStatus::Error, Some("ValueError"), true),
            (
                too_large(true),
                None,
                ReplyStatus::ResultTooLarge,
                Some(RESULT_TOO_LARGE),
                true,
            ),
            (
                too_large(false),
                None,
                ReplyStatus::ResultTooLarge,
                Some(RESULT_TOO_LARGE),
                false,
            ),
            (
                CallOutcome::TimedOut,
                None,
                ReplyStatus::Timeout,
                Some("Runtime.Timeout"),
                false,
            ),
            (
                CallOutcome::Broken(Violation::Unrequested),
                None,
                ReplyStatus::Crashed,
                Some("Runtime.ProtocolError"),
                false,
            ),
            (
                CallOutcome::Died,
                Some(oom),
                ReplyStatus::Oom,
                Some("Runtime.OutOfMemory"),
                false,
            ),
            (
                CallOutcome::Died,
                Some(crash),
                ReplyStatus::Crashed,
                Some("Runtime.ExitError"),
                false,
            ),
        ];
        for (call, death, status, error_kind, kept_warm) in table {
            let case = format!("{call:?}");
            let executor = executor(settings(1024));
            let launcher = executor.pool.launcher();
            launcher.next_call(call);
            if let Some(death) = death {
                launcher.next_death(death);
            }
            let reply = executor.run(&job_for(spec(1, 1, 128))).await.reply();
            settle().await;
            assert_eq!(reply.status, status, "{case}");
            assert_eq!(kind(&reply), error_kind, "{case}");
            assert!(reply.cold_start, "{case}");
            assert_eq!(executor.pool.idle_count(), usize::from(kept_warm), "{case}");
            assert_eq!(launcher.removed().len(), usize::from(!kept_warm), "{case}");
            assert_eq!(
                executor.pool.memory_used_mb(),
                if kept_warm { 128 } else { 0 },
                "{case}"
            );
        }
    }

    #[tokio::test]
    async fn a_timeout_names_the_functions_timeout_and_a_raise_keeps_its_logs() {
        let executor = executor(settings(1024));
        executor.pool.launcher().next_call(CallOutcome::TimedOut);
        let mut f = spec(1, 1, 128);
        f.timeout_ms = 3_000;
        let reply = executor.run(&job_for(f.clone())).await.reply();
        assert_eq!(
            reply.error.unwrap().message,
            "the function did not return within 3000 ms"
        );
        executor.pool.launcher().next_call(CallOutcome::Raised {
            error: ErrorInfo::new("ValueError", "bad input"),
            logs: "printed".into(),
            logs_truncated: true,
        });
        let reply = executor.run(&job_for(f)).await.reply();
        assert_eq!(
            (reply.logs.as_str(), reply.logs_truncated),
            ("printed", true)
        );
    }

    /// What the caller is told when the code does not load; the container never serves.
    #[tokio::test]
    async fn each_way_loading_the_code_fails_gives_its_reply_and_removes_the_container() {
        let table = [
            (
                InitOutcome::Failed {
                    error: ErrorInfo::new("SyntaxError", "invalid syntax"),
                    logs: "Traceback".into(),
                },
                ReplyStatus::InitError,
                "SyntaxError",
            ),
            (
                InitOutcome::TimedOut,
                ReplyStatus::InitError,
                "Runtime.InitTimeout",
            ),
            (
                InitOutcome::Broken(Violation::NotAFrame("junk".into())),
                ReplyStatus::Crashed,
                "Runtime.ProtocolError",
            ),
            (InitOutcome::Died, ReplyStatus::Oom, "Runtime.OutOfMemory"),
        ];
        for (init, status, error_kind) in table {
            let case = format!("{init:?}");
            let executor = executor(settings(1024));
            let launcher = executor.pool.launcher();
            launcher.next_init(init);
            let reply = executor.run(&job_for(spec(1, 1, 128))).await.reply();
            settle().await;
            assert_eq!(reply.status, status, "{case}");
            assert_eq!(kind(&reply), Some(error_kind), "{case}");
            assert!(reply.cold_start, "{case}");
            assert_eq!(launcher.call_count(), 0, "{case}: the call never ran");
            assert_eq!(launcher.removed().len(), 1, "{case}");
            assert!(executor.pool.live_ids().is_empty(), "{case}");
        }
        let executor = executor(settings(1024));
        executor.pool.launcher().next_init(InitOutcome::Failed {
            error: ErrorInfo::new("SyntaxError", "invalid syntax"),
            logs: "Traceback".into(),
        });
        let reply = executor.run(&job_for(spec(1, 1, 128))).await.reply();
        assert_eq!(reply.logs, "Traceback", "the init logs reach the caller");
    }

    /// A load-only job (the console's check before a save) loads the code in a cold container
    /// and removes it, calling nothing; code that fails to load says how, as a call would.
    #[tokio::test]
    async fn a_load_only_job_loads_the_code_calls_nothing_and_keeps_no_container() {
        let executor = executor(settings(1024));
        let launcher = executor.pool.launcher();
        let mut job = job_for(spec(1, 0, 128));
        job.load_only = true;
        let reply = executor.run(&job).await.reply();
        settle().await;
        assert_eq!(reply.status, ReplyStatus::Success);
        assert!(reply.cold_start);
        assert_eq!((launcher.init_count(), launcher.call_count()), (1, 0));
        assert_eq!(launcher.removed().len(), 1, "not kept warm");
        assert!(executor.pool.live_ids().is_empty());

        launcher.next_init(InitOutcome::Failed {
            error: ErrorInfo::new("SyntaxError", "invalid syntax"),
            logs: "Traceback".into(),
        });
        let reply = executor.run(&job).await.reply();
        settle().await;
        assert_eq!(reply.status, ReplyStatus::InitError);
        assert_eq!(kind(&reply), Some("SyntaxError"));
        assert_eq!(reply.logs, "Traceback");
        assert_eq!(launcher.call_count(), 0);
        assert!(executor.pool.live_ids().is_empty());
    }

    #[tokio::test]
    async fn a_container_dead_before_the_call_reached_it_hands_the_call_to_another_once() {
        let executor = executor(settings(1024));
        let launcher = executor.pool.launcher();
        launcher.next_call(CallOutcome::Died);
        launcher.next_death(Death::BeforeTheCall);
        let reply = executor.run(&job_for(spec(1, 1, 128))).await.reply();
        settle().await;
        assert_eq!(reply.status, ReplyStatus::Success);
        assert_eq!(launcher.call_count(), 2);
        assert_eq!(launcher.removed().len(), 1);
        assert_eq!(executor.pool.idle_count(), 1, "the second one is warm");

        for _ in 0..2 {
            launcher.next_call(CallOutcome::Died);
            launcher.next_death(Death::BeforeTheCall);
        }
        let reply = executor.run(&job_for(spec(2, 1, 128))).await.reply();
        assert_eq!(reply.status, ReplyStatus::Crashed);
        assert!(reply.error.unwrap().message.ends_with("twice"));
    }

    #[tokio::test]
    async fn a_job_taken_after_its_deadline_is_not_run() {
        let executor = executor(settings(1024));
        let mut job = job_for(spec(1, 1, 128));
        job.deadline_unix_ms = common::now_unix_ms() - 1;
        let reply = executor.run(&job).await.reply();
        assert_eq!(reply.status, ReplyStatus::Expired);
        assert_eq!(kind(&reply), Some("Runtime.Expired"));
        assert!(!reply.cold_start);
        assert!(
            executor.pool.live_ids().is_empty(),
            "no container was started"
        );
    }

    #[tokio::test]
    async fn without_room_a_job_goes_back_to_the_queue_or_expires_at_its_deadline() {
        let executor = executor(settings(128));
        let holder = spec(9, 1, 128);
        let far = tokio::time::Instant::now() + Duration::from_secs(5);
        let busy = executor.pool.acquire(&holder, 128, far).await.unwrap();

        let verdict = executor.run(&job_for(spec(1, 1, 128))).await;
        assert!(matches!(verdict, Verdict::Requeue), "{verdict:?}");

        let mut hurried = job_for(spec(1, 1, 128));
        hurried.deadline_unix_ms = common::now_unix_ms() + 50;
        let reply = executor.run(&hurried).await.reply();
        assert_eq!(reply.status, ReplyStatus::Expired);
        assert_eq!(kind(&reply), Some("Runtime.NoCapacity"));
        assert!(reply.cold_start, "it tried to start one");
        drop(busy);
    }

    #[tokio::test]
    async fn a_container_that_cannot_start_or_artifacts_that_cannot_be_had_fail_the_call() {
        let executor = executor(settings(1024));
        let launcher = executor.pool.launcher();
        let mut with_deps = spec(1, 1, 128);
        with_deps.dependencies = Some(ArtifactRef {
            digest: "aa".into(),
            unpacked_bytes: 10,
        });
        launcher.make_unavailable("aa");
        let reply = executor.run(&job_for(with_deps)).await.reply();
        assert_eq!(reply.status, ReplyStatus::InitError);
        assert_eq!(kind(&reply), Some("Runtime.DependenciesUnavailable"));
        assert!(reply.error.unwrap().message.starts_with(
            "the function's dependencies could not be fetched: the artifact is not valid"
        ));

        let mut huge = spec(2, 1, 128);
        huge.package = Some(ArtifactRef {
            digest: "bb".into(),
            unpacked_bytes: MAX_UNPACKED_BYTES + 1,
        });
        let reply = executor.run(&job_for(huge)).await.reply();
        assert_eq!(reply.status, ReplyStatus::InitError);
        assert_eq!(kind(&reply), Some("Runtime.CodeTooLarge"));

        launcher.break_starts();
        let reply = executor.run(&job_for(spec(3, 1, 128))).await.reply();
        assert_eq!(reply.status, ReplyStatus::Crashed);
        assert_eq!(kind(&reply), Some("Runtime.ContainerStartFailed"));
        assert!(executor.pool.live_ids().is_empty());
    }
}
