//! The one call path: `/execute`, the functions' routes and every attempt of an async
//! invocation run a function through [`Invocations::call`].
//!
//! A call takes its function's and namespace's concurrency leases, publishes the job, waits for
//! the worker's reply, and counts and (for a sync call) records it. What it returns is a domain
//! outcome ([`Called`] or a [`CallError`]); turning that into HTTP is the http layer's work.
//!
//! Its I/O (Postgres, RabbitMQ, the records writer) goes through one port, [`CallBackend`]
//! (`backend.rs`); the unit tests (`tests.rs`) run it over an in-memory fake (`fake.rs`).

mod backend;
#[cfg(test)]
mod fake;
mod queue_share;
#[cfg(test)]
mod tests;

pub use backend::{CallBackend, PlatformBackend};
pub use queue_share::QueueShares;

use crate::broker::{BrokerError, NoReply};
use crate::services::cache::{FunctionCache, Lookup};
use crate::services::records;
use crate::store::{DbError, Function, InvocationRecord, NotRunnable};
use common::{ErrorInfo, Job, RawJson, RawValue, Reply, ReplyStatus, Runtime};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;
use uuid::Uuid;

/// Extra wait past the deadline, so that a worker's own timeout reply arrives before we give up.
const REPLY_GRACE: Duration = Duration::from_secs(2);
/// How long a concurrency lease outlives its call's wait for a reply: room for the release,
/// and the longest a crashed api keeps a slot taken beyond that.
const LEASE_GRACE: Duration = Duration::from_secs(5);

/// What started a call: a label of its metrics and a field of its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `/execute/{name}` or `/execute_gvisor/{name}`.
    Execute,
    /// The function's route.
    Http,
    /// An attempt of an async invocation (`/execute_async`, a destination).
    Async,
    /// An attempt of a scheduled invocation.
    Schedule,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Execute => "execute",
            Trigger::Http => "http",
            Trigger::Async => "async",
            Trigger::Schedule => "schedule",
        }
    }
}

/// Why a call did not run. Each variant is a fact of the platform, not an HTTP status; the
/// http layer maps them to responses, the async runner to waiting, retrying or refusing.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("function {0} not found")]
    FunctionNotFound(String),
    /// The version to run waits for its build, or the build failed with nothing to fall back to.
    #[error(transparent)]
    NotRunnable(#[from] NotRunnable),
    /// The function (or its namespace) already runs as many calls as its `max_concurrency`
    /// allows; `subject` says which ("function f", "namespace n").
    #[error("{subject} already runs its limit of {limit} concurrent calls")]
    ConcurrencyLimit { subject: String, limit: i32 },
    /// The namespace's calls waiting for a reply on this replica hold its share of the job
    /// queues' bytes (`QUEUE_SHARE_BYTES`).
    #[error(
        "namespace {namespace} has its share of the job queues in flight ({share} bytes of events waiting for a reply, QUEUE_SHARE_BYTES); retry shortly"
    )]
    QueueShare { namespace: String, share: u64 },
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("the database is unavailable")]
    Database(#[from] DbError),
}

impl CallError {
    /// Whether the same call may start a little later: a slot, a worker, a build or the
    /// database may come back. A missing function or a failed build will not.
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::NotRunnable(NotRunnable::Building(_))
            | CallError::ConcurrencyLimit { .. }
            | CallError::QueueShare { .. }
            | CallError::Database(_)
            | CallError::Broker(
                BrokerError::NoWorker(_)
                | BrokerError::RuntimeUnavailable(_)
                | BrokerError::Overloaded(_),
            ) => true,
            CallError::FunctionNotFound(_)
            | CallError::NotRunnable(NotRunnable::BuildFailed { .. }) => false,
            // Lost with the connection: whether the job reached a worker is unknown.
            CallError::Broker(BrokerError::Unavailable(_) | BrokerError::Disconnected) => false,
        }
    }

    /// Whether the broker connection went away under the call (the job may have run).
    pub fn is_broker_lost(&self) -> bool {
        matches!(
            self,
            CallError::Broker(BrokerError::Unavailable(_) | BrokerError::Disconnected)
        )
    }

    /// Whether a free slot, rather than a worker or a build, is what the call waits for: it
    /// comes back sooner.
    pub fn waits_for_a_slot(&self) -> bool {
        matches!(
            self,
            CallError::ConcurrencyLimit { .. }
                | CallError::QueueShare { .. }
                | CallError::Broker(BrokerError::Overloaded(_))
        )
    }

    /// The machine code of the error, as the api's error bodies spell it (an async attempt
    /// that cannot run stores it as its error's kind).
    pub fn code(&self) -> &'static str {
        match self {
            CallError::Broker(BrokerError::Unavailable(_) | BrokerError::Disconnected) => {
                "broker_unavailable"
            }
            CallError::Database(_) => "database_unavailable",
            other => other.outcome_label(),
        }
    }

    /// The `status` label of `faas_invocations_total` for a call that did not run.
    fn outcome_label(&self) -> &'static str {
        match self {
            CallError::FunctionNotFound(_) => "function_not_found",
            CallError::NotRunnable(NotRunnable::Building(_)) => "function_not_ready",
            CallError::NotRunnable(NotRunnable::BuildFailed { .. }) => "build_failed",
            CallError::ConcurrencyLimit { .. } => "concurrency_limit",
            CallError::QueueShare { .. } => "queue_share",
            CallError::Broker(BrokerError::NoWorker(_)) => "no_worker",
            CallError::Broker(BrokerError::RuntimeUnavailable(_)) => "runtime_unavailable",
            CallError::Broker(BrokerError::Overloaded(_)) => "overloaded",
            CallError::Broker(BrokerError::Unavailable(_) | BrokerError::Disconnected)
            | CallError::Database(_) => "unavailable",
        }
    }
}

/// A call that ran, or that no worker answered in time.
pub struct Called {
    pub invocation_id: Uuid,
    pub duration_ms: f64,
    /// The function's timeout, which a timed-out call's answer names.
    pub timeout_s: u64,
    pub outcome: Result<Reply, NoReply>,
}

/// One call to make: which function, where, with what, and why.
pub struct Call<'a> {
    pub function: &'a Function,
    pub runtime: Runtime,
    pub event: RawJson,
    pub invocation_id: Uuid,
    pub trigger: Trigger,
    /// 1-based; the handler sees it as `context.attempt`.
    pub attempt: u32,
    /// When the caller's request began: the call's duration counts from here.
    pub started: Instant,
}

impl<'a> Call<'a> {
    /// The call `/execute` makes of `function` (and the console's test runs): a new
    /// invocation, run once, on the runtime asked for if its namespace allows it.
    pub fn execute(
        function: &'a Function,
        forced_runtime: Option<Runtime>,
        event: RawJson,
        started: Instant,
    ) -> Self {
        Call {
            function,
            runtime: runtime_for(function, forced_runtime),
            event,
            invocation_id: Uuid::now_v7(),
            trigger: Trigger::Execute,
            attempt: 1,
            started,
        }
    }
}

/// The runtime a call runs on: gVisor when asked for or when the function's namespace allows
/// nothing else, the function's own otherwise.
pub fn runtime_for(function: &Function, forced: Option<Runtime>) -> Runtime {
    let wanted = forced.unwrap_or(function.runtime);
    if function.allowed_runtimes.is_empty() || function.allowed_runtimes.contains(&wanted) {
        wanted
    } else {
        Runtime::Gvisor
    }
}

/// The invocation service: what a call needs of the rest of the platform. `B` is how it
/// reaches Postgres, RabbitMQ and the records writer: the platform itself but in unit tests.
#[derive(Clone)]
pub struct Invocations<B = PlatformBackend> {
    backend: B,
    functions: Arc<FunctionCache>,
    /// `INVOKE_OVERHEAD_MS`: how long past the function's timeout a job may wait in the queue.
    invoke_overhead: Duration,
    /// Each namespace's share of the job queues' bytes (unbounded unless set).
    queue_shares: Arc<QueueShares>,
}

impl<B: CallBackend> Invocations<B> {
    pub fn new(backend: B, functions: Arc<FunctionCache>, invoke_overhead: Duration) -> Self {
        Invocations {
            backend,
            functions,
            invoke_overhead,
            queue_shares: Arc::new(QueueShares::new(u64::MAX)),
        }
    }

    /// Bounds each namespace's event bytes waiting for a reply on this replica to `share`
    /// (`QUEUE_SHARE_BYTES`).
    pub fn with_queue_share(mut self, share: u64) -> Self {
        self.queue_shares = Arc::new(QueueShares::new(share));
        self
    }

    /// The function called `name` in `namespace`: from the cache, else from Postgres (then
    /// cached, found or not).
    pub async fn find(&self, namespace: &str, name: String) -> Result<Arc<Function>, CallError> {
        match self.functions.get(namespace, &name) {
            Lookup::Found(function) => return Ok(function),
            Lookup::Missing => return Err(CallError::FunctionNotFound(name)),
            Lookup::Unknown => {}
        }
        let generation = self.functions.generation();
        match self.backend.get_function_by_name(namespace, &name).await? {
            Some(function) => {
                let function = Arc::new(function);
                self.functions.insert(function.clone(), generation);
                Ok(function)
            }
            None => {
                self.functions.insert_miss(namespace, &name, generation);
                Err(CallError::FunctionNotFound(name))
            }
        }
    }

    /// Runs `call.function` on `call.runtime` with `call.event`: takes its concurrency leases,
    /// publishes the job, waits for the reply, and counts and records the call (an async
    /// attempt too; the dispatcher also records it with its invocation). An error is a call
    /// that did not run; it is counted too.
    pub async fn call(&self, call: Call<'_>) -> Result<Called, CallError> {
        let span = tracing::info_span!(
            "call",
            invocation_id = %call.invocation_id,
            namespace = %call.function.namespace,
            function = %call.function.name,
            runtime = call.runtime.as_str(),
            trigger = call.trigger.as_str(),
            attempt = call.attempt,
        );
        let labels = Labels {
            namespace: call.function.namespace.clone(),
            function: call.function.name.clone(),
            runtime: call.runtime,
            trigger: call.trigger,
        };
        self.run(call, &labels)
            .instrument(span)
            .await
            .inspect_err(|error| labels.count(error.outcome_label()))
    }

    async fn run(&self, call: Call<'_>, labels: &Labels) -> Result<Called, CallError> {
        let Call {
            function,
            runtime,
            event,
            invocation_id,
            trigger,
            attempt,
            started,
        } = call;
        // The version whose build is not ready yet is not run: the last runnable one is, or
        // the call is refused (409 pending, 424 failed).
        let spec = function.runnable()?;
        let timeout_ms = spec.timeout_ms;
        let job = self.job(invocation_id, spec, event, attempt, false);
        // Counted until the reply: the job sits in the queue until a worker takes it.
        let event_bytes = job.event.get().len() as u64;
        let _bytes = self
            .queue_shares
            .reserve(&function.namespace, event_bytes)
            .map_err(|over| CallError::QueueShare {
                namespace: function.namespace.clone(),
                share: over.share,
            })?;
        // Only limited functions and namespaces pay for leases: the others make no query here.
        let _leases = self.take_leases(function, &job).await?;

        let inflight = metrics::gauge!("faas_inflight_invocations", "runtime" => runtime.as_str());
        inflight.increment(1.0);
        let outcome = self.backend.invoke(runtime, &job, REPLY_GRACE).await;
        inflight.decrement(1.0);
        let outcome = outcome?;
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;

        let status = match &outcome {
            Ok(reply) => reply.status.as_str(),
            Err(NoReply::TimedOut) => "no_reply",
        };
        labels.count(status);
        metrics::histogram!("faas_invocation_duration_seconds", "namespace" => labels.namespace.clone(), "runtime" => runtime.as_str())
            .record(duration_ms / 1000.0);
        let reply = outcome.as_ref().ok();
        if reply.is_some_and(|r| r.cold_start) {
            metrics::counter!("faas_cold_starts_total", "namespace" => labels.namespace.clone(), "function" => labels.function.clone(), "runtime" => runtime.as_str())
                .increment(1);
        }
        // Every call that ran is a record (the streams show them all); an async invocation
        // also keeps each attempt with its invocation.
        self.backend.submit_record(record_of(
            function,
            &job,
            runtime,
            trigger,
            status,
            duration_ms,
            reply,
        ));
        Ok(Called {
            invocation_id,
            duration_ms,
            timeout_s: timeout_ms / 1000,
            outcome,
        })
    }

    /// Loads `function`'s code (not saved yet: the stored function with the fields a save would
    /// change) in a container of its own on its runtime, without calling it: `Ok(None)` when
    /// it loaded, or when nothing could say (no worker answered, a reply other than a load
    /// failure, its dependencies' build not ready); `Ok(Some((error, logs)))` when it did not
    /// load. Nothing is recorded or counted as a call; the function's and its namespace's
    /// concurrency limits hold as for a call (the code at load runs as a call's would).
    pub async fn check_load(
        &self,
        function: &Function,
    ) -> Result<Option<(ErrorInfo, String)>, CallError> {
        if function
            .build
            .as_ref()
            .is_some_and(|build| build.status != crate::store::BuildStatus::Ready)
        {
            // The spec would be the version still serving, not this code.
            return Ok(None);
        }
        let mut spec = function.runnable()?;
        // No saved version is 0: no call finds this container, which the worker removes.
        spec.version = 0;
        let event = RawValue::from_string("{}".to_owned()).expect("{} is JSON");
        let job = self.job(Uuid::now_v7(), spec, event, 1, true);
        let _leases = self.take_leases(function, &job).await?;
        let runtime = runtime_for(function, None);
        let span = tracing::info_span!("load check", function = %function.name, namespace = %function.namespace);
        match self
            .backend
            .invoke(runtime, &job, REPLY_GRACE)
            .instrument(span)
            .await?
        {
            Ok(reply) if reply.status == ReplyStatus::InitError => {
                let error = reply.error.unwrap_or_else(|| {
                    ErrorInfo::new("Runtime.InitError", "the code did not load")
                });
                Ok(Some((error, reply.logs)))
            }
            _ => Ok(None),
        }
    }

    /// The job that runs `spec` with `event` (attempt `attempt` of `invocation_id`), published
    /// now and due back by the function's timeout plus `INVOKE_OVERHEAD_MS`.
    fn job(
        &self,
        invocation_id: Uuid,
        spec: common::FunctionSpec,
        event: RawJson,
        attempt: u32,
        load_only: bool,
    ) -> Job {
        let now = common::now_unix_ms();
        Job {
            invocation_id,
            deadline_unix_ms: now + spec.timeout_ms + self.invoke_overhead.as_millis() as u64,
            function: spec,
            event,
            published_unix_ms: now,
            attempt,
            load_only,
        }
    }

    /// Takes a slot of the function's limit and of its namespace's, shared by every api
    /// replica through Postgres, until the job's deadline plus [`LEASE_GRACE`] at most.
    /// `None` when neither has a limit.
    async fn take_leases(
        &self,
        function: &Function,
        job: &Job,
    ) -> Result<Option<Leases<B>>, CallError> {
        let expires = chrono::DateTime::from_timestamp_millis(job.deadline_unix_ms as i64)
            .unwrap_or_else(chrono::Utc::now)
            + REPLY_GRACE
            + LEASE_GRACE;
        let mut held = None;
        for limit in concurrency_limits(function) {
            let acquired = self
                .backend
                .acquire_lease(&limit.scope, job.invocation_id, expires, limit.limit)
                .await?;
            // From the first slot on, dropping the guard gives back whatever this call holds.
            held.get_or_insert_with(|| Leases {
                backend: self.backend.clone(),
                invocation_id: job.invocation_id,
            });
            if !acquired {
                return Err(CallError::ConcurrencyLimit {
                    subject: limit.subject,
                    limit: limit.limit,
                });
            }
        }
        Ok(held)
    }
}

/// A `max_concurrency` a call must fit under.
#[derive(Debug, PartialEq, Eq)]
struct ConcurrencyLimit {
    /// The lease scope shared by every replica.
    scope: String,
    limit: i32,
    /// Who has the limit, as the refusal names it.
    subject: String,
}

/// The function's own limit, then its namespace's: the ones set.
fn concurrency_limits(function: &Function) -> impl Iterator<Item = ConcurrencyLimit> {
    let own = function.max_concurrency.map(|limit| ConcurrencyLimit {
        scope: format!("function:{}", function.id),
        limit,
        subject: format!("function {}", function.name),
    });
    let namespace = function
        .namespace_max_concurrency
        .map(|limit| ConcurrencyLimit {
            scope: format!("namespace:{}", function.namespace),
            limit,
            subject: format!("namespace {}", function.namespace),
        });
    own.into_iter().chain(namespace)
}

/// A call's record, for the records writer: the reply's logs bounded as records keep them.
fn record_of(
    function: &Function,
    job: &Job,
    runtime: Runtime,
    trigger: Trigger,
    status: &str,
    duration_ms: f64,
    reply: Option<&Reply>,
) -> InvocationRecord {
    let (logs, logs_truncated) = match reply {
        Some(reply) => {
            let (logs, cut) = records::bounded_logs(&reply.logs);
            (Some(logs), cut || reply.logs_truncated)
        }
        None => (None, false),
    };
    InvocationRecord {
        invocation_id: job.invocation_id,
        namespace: function.namespace.clone(),
        function_id: job.function.id,
        function_name: job.function.name.clone(),
        function_version: job.function.version,
        runtime: runtime.as_str().to_owned(),
        trigger: trigger.as_str().to_owned(),
        attempt: job.attempt as i32,
        status: status.to_owned(),
        cold_start: reply.is_some_and(|r| r.cold_start),
        duration_ms,
        queue_ms: reply.map(|r| r.timing.queue_ms),
        init_ms: reply.map(|r| r.timing.init_ms),
        run_ms: reply.map(|r| r.timing.run_ms),
        worker_id: reply.map(|r| r.worker_id.clone()),
        error: reply.and_then(|r| r.error.clone()),
        logs,
        logs_truncated,
        created_at: chrono::Utc::now(),
        namespace_uid: function.namespace_uid,
    }
}

/// The labels of a call's metrics.
struct Labels {
    namespace: String,
    function: String,
    runtime: Runtime,
    trigger: Trigger,
}

impl Labels {
    fn count(&self, status: &'static str) {
        metrics::counter!(
            "faas_invocations_total",
            "namespace" => self.namespace.clone(),
            "function" => self.function.clone(),
            "runtime" => self.runtime.as_str(),
            "trigger" => self.trigger.as_str(),
            "status" => status
        )
        .increment(1);
    }
}

/// The slots a call holds of its function's and its namespace's `max_concurrency`, given back
/// when the call ends (however it ends) by a task of its own, so the answer does not wait for
/// it. A lease that cannot be given back (the database is away) expires by itself.
struct Leases<B: CallBackend> {
    backend: B,
    invocation_id: Uuid,
}

impl<B: CallBackend> Drop for Leases<B> {
    fn drop(&mut self) {
        let (backend, invocation_id) = (self.backend.clone(), self.invocation_id);
        tokio::spawn(async move {
            if let Err(error) = backend.release_lease(invocation_id).await {
                tracing::warn!(%error, %invocation_id, "concurrency lease not released; it will expire");
            }
        });
    }
}
