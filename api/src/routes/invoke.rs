//! Synchronous invocation: `POST /execute/{name}` and `POST /execute_gvisor/{name}`.
//!
//! The handler looks the function up, publishes a job, waits for the worker's reply and answers
//! with the handler's result or with the status that says how the call failed.

use crate::auth::{Principal, Scope};
use crate::cache::Lookup;
use crate::db::{self, Function, InvocationRecord};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::Path;
use crate::invoker::NoReply;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::{ErrorInfo, Job, RawJson, RawValue, Reply, ReplyStatus, Runtime, Timing};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Extra wait past the deadline, so that a worker's own timeout reply arrives before we give up.
const REPLY_GRACE: Duration = Duration::from_secs(2);
/// How long a concurrency lease outlives its call's wait for a reply: room for the release,
/// and the longest a crashed api keeps a slot taken beyond that.
const LEASE_GRACE: Duration = Duration::from_secs(5);

/// The body of an invocation. The event stays JSON text: it is checked here and passed on to
/// the function as it came, never parsed into a tree.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"event": {"name": "world"}})))]
pub(crate) struct ExecuteRequest {
    /// Any JSON, handed to the handler as its `event`; absent: `{}`.
    #[serde(default = "empty_object")]
    #[schema(value_type = serde_json::Value, required = false)]
    event: RawJson,
}

fn empty_object() -> RawJson {
    RawValue::from_string("{}".to_owned()).expect("{} is JSON")
}

/// Runs the key's namespace's function `name` on the runtime it was created with (Docker
/// unless it says gVisor, or its namespace allows only gVisor).
#[utoipa::path(
    post,
    path = "/execute/{name}",
    tag = "invocations",
    summary = "Call a function and wait for its result",
    description = "Runs the key's namespace's function on the runtime it was created with \
        (Docker unless it says gVisor, or its namespace allows only gVisor) and answers with \
        the handler's return value. An empty body is the event `{}`. Needs the `invoke` scope.",
    params(crate::openapi::FunctionName),
    request_body(content = Option<ExecuteRequest>, description = "The event; an empty body is `{\"event\": {}}`."),
    responses(
        (status = 200, description = "The handler returned; `result` is its return value.", body = Success<'static>),
        (status = 404, description = "`function_not_found`: no such function in the key's namespace.", body = ErrorBody),
        crate::openapi::InvocationErrors,
        crate::openapi::BodyErrors,
        crate::openapi::KeyErrors,
        (status = 429, description = "`concurrency_limit`: the function or its namespace runs its `max_concurrency` calls.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
        crate::openapi::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn execute_function(
    principal: Principal,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    principal.require(Scope::Invoke)?;
    execute(state, &principal.namespace, name, None, body?).await
}

/// Runs the function in a gVisor sandbox, whatever runtime it was created with.
#[utoipa::path(
    post,
    path = "/execute_gvisor/{name}",
    tag = "invocations",
    summary = "Call a function in a gVisor sandbox",
    description = "As `POST /execute/{name}`, but the call runs on a gVisor worker whatever \
        runtime the function was created with. Needs the `invoke` scope.",
    params(crate::openapi::FunctionName),
    request_body(content = Option<ExecuteRequest>, description = "The event; an empty body is `{\"event\": {}}`."),
    responses(
        (status = 200, description = "The handler returned; `result` is its return value.", body = Success<'static>),
        (status = 404, description = "`function_not_found`: no such function in the key's namespace.", body = ErrorBody),
        crate::openapi::InvocationErrors,
        crate::openapi::BodyErrors,
        crate::openapi::KeyErrors,
        (status = 429, description = "`concurrency_limit`: the function or its namespace runs its `max_concurrency` calls.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
        crate::openapi::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn execute_function_gvisor(
    principal: Principal,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    principal.require(Scope::Invoke)?;
    execute(
        state,
        &principal.namespace,
        name,
        Some(Runtime::Gvisor),
        body?,
    )
    .await
}

fn parse_event(body: &[u8], max_event_bytes: usize) -> Result<RawJson, ApiError> {
    if body.len() > max_event_bytes {
        return Err(ApiError::TooLarge(format!(
            "the request is {} bytes, over the limit of {max_event_bytes}",
            body.len()
        )));
    }
    // No body, or a JSON null (the document's optional body): the event `{}`.
    if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
        return Ok(empty_object());
    }
    serde_json::from_slice::<ExecuteRequest>(body)
        .map(|request| request.event)
        .map_err(|error| ApiError::Invalid(format!("invalid JSON body: {error}")))
}

async fn execute(
    state: AppState,
    namespace: &str,
    name: String,
    forced_runtime: Option<Runtime>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let event = parse_event(&body, state.limits.max_event_bytes)?;
    let function = find_function(&state, namespace, name).await?;
    let runtime = runtime_for(&function, forced_runtime);
    let called = call_function(
        &state,
        &function,
        runtime,
        event,
        Uuid::now_v7(),
        Trigger::Execute,
        1,
        started,
    )
    .await?;
    Ok(called.into_response(Detail::Full))
}

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

    /// Whether the call is a sync one, recorded in `invocations` (an async invocation's
    /// attempts are recorded with their invocation).
    fn is_sync(self) -> bool {
        matches!(self, Trigger::Execute | Trigger::Http)
    }
}

/// A call that ran, or that no worker answered in time.
pub struct Called {
    pub invocation_id: Uuid,
    pub duration_ms: f64,
    timeout_s: u64,
    pub outcome: Result<Reply, NoReply>,
}

/// How much of a failed call its caller is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Everything: the function's error, trace and logs (the caller holds a key of its
    /// namespace).
    Full,
    /// The status, the code and the invocation id only: the caller may be anyone (a public
    /// route), and the function's errors and logs are its author's.
    Public,
}

impl Called {
    /// The `/execute` answer: 200 with the result, or the status of the failure.
    pub fn into_response(self, detail: Detail) -> Response {
        match self.outcome {
            Ok(reply) => reply_response(reply, self.duration_ms, self.timeout_s, detail),
            Err(NoReply::TimedOut) => (
                StatusCode::GATEWAY_TIMEOUT,
                axum::Json(Failure {
                    detail: "no worker answered before the call's deadline".to_owned(),
                    code: ErrorCode::NoReply,
                    error: None,
                    invocation_id: self.invocation_id,
                    duration_ms: self.duration_ms,
                    cold_start: false,
                    timing: Timing::default(),
                    logs: "",
                    logs_truncated: false,
                }),
            )
                .into_response(),
        }
    }
}

/// Runs `function` on `runtime` with `event`: takes its concurrency leases, publishes the job,
/// waits for the reply, and counts and records the call (a sync one; an async attempt is
/// recorded by the dispatcher). An error is a call that did not run (no worker, overloaded,
/// over its concurrency, the broker away); it is counted too.
#[allow(clippy::too_many_arguments)] // Each is a separate fact of the call.
pub async fn call_function(
    state: &AppState,
    function: &Function,
    runtime: Runtime,
    event: RawJson,
    invocation_id: Uuid,
    trigger: Trigger,
    attempt: u32,
    started: Instant,
) -> Result<Called, ApiError> {
    let labels = Labels {
        namespace: function.namespace.clone(),
        function: function.name.clone(),
        runtime,
        trigger,
    };

    // The version whose build is not ready yet is not run: the last runnable one is, or the
    // call is refused (409 pending, 424 failed).
    let spec = function
        .runnable()
        .inspect_err(|error| labels.count(error.code()))?;
    let now = common::now_unix_ms();
    let timeout_ms = spec.timeout_ms;
    let job = Job {
        invocation_id,
        function: spec,
        event,
        deadline_unix_ms: now + timeout_ms + state.limits.invoke_overhead.as_millis() as u64,
        published_unix_ms: now,
        attempt,
    };
    // Only limited functions and namespaces pay for leases: the others make no query here.
    let _leases = take_leases(state, function, &job, &labels).await?;

    let inflight = metrics::gauge!("faas_inflight_invocations", "runtime" => runtime.as_str());
    inflight.increment(1.0);
    let outcome = state.invoker.invoke(runtime, &job, REPLY_GRACE).await;
    inflight.decrement(1.0);
    let outcome = outcome.inspect_err(|error| {
        let status = match error {
            ApiError::NoWorker(_) | ApiError::RuntimeUnavailable(_) | ApiError::Overloaded(_) => {
                error.code()
            }
            _ => "unavailable",
        };
        labels.count(status);
    })?;
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

    if trigger.is_sync() {
        submit_record(
            state,
            function,
            &job,
            runtime,
            trigger,
            status,
            duration_ms,
            reply,
        );
    }

    Ok(Called {
        invocation_id,
        duration_ms,
        timeout_s: timeout_ms / 1000,
        outcome,
    })
}

/// Hands a sync call's record to the records writer.
#[allow(clippy::too_many_arguments)]
fn submit_record(
    state: &AppState,
    function: &Function,
    job: &Job,
    runtime: Runtime,
    trigger: Trigger,
    status: &str,
    duration_ms: f64,
    reply: Option<&Reply>,
) {
    let record = InvocationRecord {
        invocation_id: job.invocation_id,
        namespace: function.namespace.clone(),
        function_id: job.function.id,
        function_name: job.function.name.clone(),
        function_version: job.function.version,
        runtime: runtime.as_str().to_owned(),
        trigger: trigger.as_str().to_owned(),
        status: status.to_owned(),
        cold_start: reply.is_some_and(|r| r.cold_start),
        duration_ms,
        queue_ms: reply.map(|r| r.timing.queue_ms),
        init_ms: reply.map(|r| r.timing.init_ms),
        run_ms: reply.map(|r| r.timing.run_ms),
        worker_id: reply.map(|r| r.worker_id.clone()),
        error: reply.and_then(|r| r.error.clone()),
        created_at: chrono::Utc::now(),
    };
    state.records.submit(record);
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
struct Leases {
    db: deadpool_postgres::Pool,
    invocation_id: Uuid,
}

impl Drop for Leases {
    fn drop(&mut self) {
        let (db, invocation_id) = (self.db.clone(), self.invocation_id);
        tokio::spawn(async move {
            if let Err(error) = db::release_lease(&db, invocation_id).await {
                tracing::warn!(%error, %invocation_id, "concurrency lease not released; it will expire");
            }
        });
    }
}

/// Takes a slot of the function's limit and of its namespace's, shared by every api replica
/// through Postgres, until the job's deadline plus [`LEASE_GRACE`] at most; 429 when either
/// has none free. `None` when neither has a limit.
async fn take_leases(
    state: &AppState,
    function: &Function,
    job: &Job,
    labels: &Labels,
) -> Result<Option<Leases>, ApiError> {
    let limits = [
        function.max_concurrency.map(|limit| {
            (
                format!("function:{}", function.id),
                limit,
                "function",
                &function.name,
            )
        }),
        function.namespace_max_concurrency.map(|limit| {
            (
                format!("namespace:{}", function.namespace),
                limit,
                "namespace",
                &function.namespace,
            )
        }),
    ];
    let expires = chrono::DateTime::from_timestamp_millis(job.deadline_unix_ms as i64)
        .unwrap_or_else(chrono::Utc::now)
        + REPLY_GRACE
        + LEASE_GRACE;
    let mut held = None;
    for (scope, limit, kind, name) in limits.into_iter().flatten() {
        let acquired = db::acquire_lease(&state.db, &scope, job.invocation_id, expires, limit)
            .await
            .map_err(|error| {
                labels.count("unavailable");
                ApiError::Database(error)
            })?;
        // From the first slot on, dropping the guard gives back whatever this call holds.
        held.get_or_insert_with(|| Leases {
            db: state.db.clone(),
            invocation_id: job.invocation_id,
        });
        if !acquired {
            labels.count("concurrency_limit");
            return Err(ApiError::ConcurrencyLimit {
                subject: format!("{kind} {name}"),
                limit,
            });
        }
    }
    Ok(held)
}

/// The function called `name` in `namespace`: from the cache, else from Postgres (then
/// cached, found or not).
pub async fn find_function(
    state: &AppState,
    namespace: &str,
    name: String,
) -> Result<Arc<Function>, ApiError> {
    match state.functions.get(namespace, &name) {
        Lookup::Found(function) => return Ok(function),
        Lookup::Missing => return Err(ApiError::FunctionNotFound(name)),
        Lookup::Unknown => {}
    }
    let generation = state.functions.generation();
    match db::get_function_by_name(&state.db, namespace, &name).await? {
        Some(function) => {
            let function = Arc::new(function);
            state.functions.insert(function.clone(), generation);
            Ok(function)
        }
        None => {
            state.functions.insert_miss(namespace, &name, generation);
            Err(ApiError::FunctionNotFound(name))
        }
    }
}

/// The 200 body of a call; `result` is the function's JSON text as it came.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(examples(json!({
    "result": {"message": "Hello from faas", "event": {"name": "world"}},
    "invocation_id": "01936f7e-3c1a-7b2e-9f4d-5a6b7c8d9e0f",
    "duration_ms": 4.2,
    "cold_start": false,
    "timing": {"queue_ms": 0.4, "init_ms": 0.0, "run_ms": 1.1},
    "logs": "",
    "logs_truncated": false
})))]
pub(crate) struct Success<'a> {
    /// What the handler returned, as JSON.
    #[schema(value_type = serde_json::Value)]
    result: &'a RawValue,
    invocation_id: Uuid,
    /// The call as the api saw it, from publish to reply.
    duration_ms: f64,
    /// Whether a container had to be started for it.
    cold_start: bool,
    timing: Timing,
    /// What the handler printed (its last 256 KiB).
    logs: &'a str,
    /// Whether `logs` was cut.
    logs_truncated: bool,
}

/// The body of a call that reached a worker (or should have) and failed: the error body plus
/// what is known of the call.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Failure<'a> {
    /// What went wrong, in a sentence.
    detail: String,
    code: ErrorCode,
    /// The error as the function's language described it, when there is one.
    error: Option<&'a ErrorInfo>,
    invocation_id: Uuid,
    duration_ms: f64,
    cold_start: bool,
    timing: Timing,
    /// What the handler printed before it failed (none after a timeout: the container is
    /// killed with what it printed).
    logs: &'a str,
    logs_truncated: bool,
}

/// The body of a failed call through a public route (`http_auth: "none"`): the caller may be
/// anyone, and the function's error, trace and logs are its owner's (in the records).
/// Exactly these fields (`additionalProperties: false` in the document): a full failure, which
/// has them too, must not also read as a public one under `RouteFailure`'s `oneOf`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublicFailure {
    /// What went wrong, in a sentence (without the function's own message).
    detail: String,
    code: ErrorCode,
    invocation_id: Uuid,
}

/// A failed call through a route, as the document describes it: the full body for a caller
/// with a key of the function's namespace, the public one on a route without auth.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Only its schema is used; the handlers send the two bodies themselves.
pub(crate) enum RouteFailure<'a> {
    Full(Failure<'a>),
    Public(PublicFailure),
}

/// The HTTP answer for a worker's reply: 200 with the result, or the status of the failure.
pub(crate) fn reply_response(
    reply: Reply,
    duration_ms: f64,
    timeout_s: u64,
    detail: Detail,
) -> Response {
    if reply.status == ReplyStatus::Success {
        let body = Success {
            result: &reply.result,
            invocation_id: reply.invocation_id,
            duration_ms,
            cold_start: reply.cold_start,
            timing: reply.timing,
            logs: &reply.logs,
            logs_truncated: reply.logs_truncated,
        };
        return (StatusCode::OK, axum::Json(body)).into_response();
    }
    let describe = |what: &str| match &reply.error {
        _ if detail == Detail::Public => what.to_owned(),
        Some(error) if !error.message.is_empty() => {
            format!("{what}: {}: {}", error.kind, error.message)
        }
        Some(error) => format!("{what}: {}", error.kind),
        None => what.to_owned(),
    };
    let (status, code, message) = match reply.status {
        ReplyStatus::Error => (
            StatusCode::BAD_GATEWAY,
            ErrorCode::FunctionError,
            describe("the function raised an error"),
        ),
        ReplyStatus::InitError => (
            StatusCode::BAD_GATEWAY,
            ErrorCode::InitError,
            describe("the function's code failed to load"),
        ),
        ReplyStatus::Oom => (
            StatusCode::BAD_GATEWAY,
            ErrorCode::OutOfMemory,
            describe("the function ran out of memory"),
        ),
        ReplyStatus::ResultTooLarge => (
            StatusCode::BAD_GATEWAY,
            ErrorCode::ResultTooLarge,
            describe("the function's result is too large"),
        ),
        ReplyStatus::Crashed => (
            StatusCode::BAD_GATEWAY,
            ErrorCode::FunctionCrashed,
            describe("the function's container died"),
        ),
        ReplyStatus::Timeout => (
            StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::FunctionTimeout,
            format!("the function ran past its timeout of {timeout_s} s"),
        ),
        ReplyStatus::Expired => (
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Expired,
            "no worker took the call before its deadline; the platform is overloaded".to_owned(),
        ),
        ReplyStatus::Success => unreachable!("handled above"),
    };
    if detail == Detail::Public {
        let body = PublicFailure {
            detail: message,
            code,
            invocation_id: reply.invocation_id,
        };
        return (status, axum::Json(body)).into_response();
    }
    let body = Failure {
        detail: message,
        code,
        error: reply.error.as_ref(),
        invocation_id: reply.invocation_id,
        duration_ms,
        cold_start: reply.cold_start,
        timing: reply.timing,
        logs: &reply.logs,
        logs_truncated: reply.logs_truncated,
    };
    (status, axum::Json(body)).into_response()
}

/// The longest `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;

/// The 202 (or, for a repeated `Idempotency-Key`, 200) body of an async call.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(examples(json!({
    "invocation_id": "0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b",
    "status_url": "/invocations/0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b"
})))]
pub(crate) struct AsyncAccepted {
    invocation_id: Uuid,
    /// Where its status, attempts and result are (`GET`).
    status_url: String,
}

/// Queues a call of the key's namespace's function and answers at once.
#[utoipa::path(
    post,
    path = "/execute_async/{name}",
    tag = "invocations",
    summary = "Call a function asynchronously",
    description = "Answers 202 once the call is durably accepted (stored, and its job confirmed \
        by the broker on a durable queue). It runs at least once: a failed attempt is retried \
        `max_retries` times with exponential backoff from `RETRY_BASE_SECS` (the handler sees \
        `context.attempt`); when retries or `max_event_age_secs` run out it is \
        `dead_lettered`. `GET status_url` follows it. With an `Idempotency-Key`, a repeat \
        within 24 hours answers 200 with the same invocation and runs nothing; the same key with \
        another function or another event (compared byte for byte) is 409 \
        `idempotency_key_reused`. The event is at most `MAX_ASYNC_EVENT_BYTES` (256 KiB). A \
        namespace has at most `MAX_PENDING_ASYNC` invocations waiting or running (429 \
        `too_many_pending` beyond). Needs the `invoke` scope.",
    params(
        crate::openapi::FunctionName,
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 256,
            pattern = "^[!-~]([ -~]*[!-~])?$",
            description = "1 to 256 visible ASCII characters; a repeat within 24 h returns the first invocation."),
    ),
    request_body(content = Option<ExecuteRequest>, description = "The event; an empty body is `{\"event\": {}}`."),
    responses(
        (status = 202, description = "Accepted: it will run.", body = AsyncAccepted),
        (status = 200, description = "The `Idempotency-Key` made this invocation already: nothing new runs.", body = AsyncAccepted),
        (status = 404, description = "`function_not_found`: no such function in the key's namespace.", body = ErrorBody),
        (status = 409, description = "`idempotency_key_reused`: the `Idempotency-Key` named a call of another function or with another event within 24 hours.", body = ErrorBody),
        (status = 429, description = "`too_many_pending`: the namespace has `MAX_PENDING_ASYNC` async invocations waiting or running.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
        crate::openapi::BodyErrors,
        crate::openapi::KeyErrors,
        crate::openapi::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn execute_function_async(
    principal: Principal,
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    principal.require(Scope::Invoke)?;
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => {
            let key = value.to_str().map_err(|_| {
                ApiError::Invalid("Idempotency-Key must be visible ASCII characters".into())
            })?;
            if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
                return Err(ApiError::Invalid(format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters; got {}",
                    key.len()
                )));
            }
            Some(key.to_owned())
        }
    };
    let event = parse_event(&body?, state.limits.max_async_event_bytes)?;
    let function = find_function(&state, &principal.namespace, name).await?;
    let accepted = crate::dispatch::accept(
        &state,
        db::NewAsync {
            id: Uuid::now_v7(),
            namespace: function.namespace.clone(),
            function_id: function.id,
            function_name: function.name.clone(),
            mode: crate::dispatch::Mode::Async,
            event: event.get().to_owned(),
            idempotency_key,
            chain_depth: 0,
        },
        true,
    )
    .await?;
    let status = if accepted.existing {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let body = AsyncAccepted {
        invocation_id: accepted.invocation_id,
        status_url: format!("/invocations/{}", accepted.invocation_id),
    };
    Ok((status, axum::Json(body)).into_response())
}
