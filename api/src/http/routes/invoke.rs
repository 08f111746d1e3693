//! Synchronous invocation: `POST /execute/{name}` and `POST /execute_gvisor/{name}`.
//!
//! The handler looks the function up, publishes a job, waits for the worker's reply and answers
//! with the handler's result or with the status that says how the call failed.

use crate::broker::NoReply;
use crate::domain::async_status::Mode;
use crate::domain::auth::{Principal, Scope};
use crate::http::error::{ApiError, ErrorBody, ErrorCode};
use crate::http::extract::Path;
use crate::http::responses::Failure;
use crate::http::state::AppState;
use crate::services::dispatch::Accepted;
use crate::services::{Call, Called};
use crate::store::{self, Function};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::{RawJson, RawValue, Reply, ReplyStatus, Runtime, Timing};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use uuid::Uuid;

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
    params(crate::http::responses::FunctionName),
    request_body(content = Option<ExecuteRequest>, description = "The event; an empty body is `{\"event\": {}}`."),
    responses(
        (status = 200, description = "The handler returned; `result` is its return value.", body = Success<'static>),
        (status = 404, description = "`function_not_found`: no such function in the key's namespace.", body = ErrorBody),
        crate::http::responses::InvocationErrors,
        crate::http::responses::BodyErrors,
        crate::http::responses::KeyErrors,
        (status = 429, description = "`concurrency_limit`: the function or its namespace runs its `max_concurrency` calls. `queue_share`: the namespace's calls waiting for a reply hold its share of the job queues' bytes (`QUEUE_SHARE_BYTES`).", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
        crate::http::responses::Unavailable,
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
    params(crate::http::responses::FunctionName),
    request_body(content = Option<ExecuteRequest>, description = "The event; an empty body is `{\"event\": {}}`."),
    responses(
        (status = 200, description = "The handler returned; `result` is its return value.", body = Success<'static>),
        (status = 404, description = "`function_not_found`: no such function in the key's namespace.", body = ErrorBody),
        crate::http::responses::InvocationErrors,
        crate::http::responses::BodyErrors,
        crate::http::responses::KeyErrors,
        (status = 429, description = "`concurrency_limit`: the function or its namespace runs its `max_concurrency` calls. `queue_share`: the namespace's calls waiting for a reply hold its share of the job queues' bytes (`QUEUE_SHARE_BYTES`).", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
        crate::http::responses::Unavailable,
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
    let function = state.invocations.find(namespace, name).await?;
    let called = state
        .invocations
        .call(Call::execute(&function, forced_runtime, event, started))
        .await?;
    Ok(called_response(called, Detail::Full))
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

/// The `/execute` answer: 200 with the result, or the status of the failure.
pub fn called_response(called: Called, detail: Detail) -> Response {
    match called.outcome {
        Ok(reply) => reply_response(reply, called.duration_ms, called.timeout_s, detail),
        Err(NoReply::TimedOut) => (
            StatusCode::GATEWAY_TIMEOUT,
            axum::Json(Failure {
                detail: "no worker answered before the call's deadline".to_owned(),
                code: ErrorCode::NoReply,
                error: None,
                invocation_id: called.invocation_id,
                duration_ms: called.duration_ms,
                cold_start: false,
                timing: Timing::default(),
                logs: "",
                logs_truncated: false,
            }),
        )
            .into_response(),
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

/// The `Idempotency-Key` header, checked: 1 to [`MAX_IDEMPOTENCY_KEY_LEN`] visible ASCII
/// characters.
fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| {
        ApiError::Invalid("Idempotency-Key must be visible ASCII characters".into())
    })?;
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(ApiError::Invalid(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters; got {}",
            key.len()
        )));
    }
    Ok(Some(key.to_owned()))
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
        namespace has at most its `pending_async` quota (never above `MAX_PENDING_ASYNC`) of \
        invocations waiting or running (429 `quota_pending_async` beyond), and while its stored \
        async results and logs are at its `result_bytes` quota a new call is 413 \
        `quota_result_bytes`. Needs the `invoke` scope.",
    params(
        crate::http::responses::FunctionName,
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
        (status = 429, description = "`quota_pending_async`: the namespace has its `pending_async` quota (at most `MAX_PENDING_ASYNC`) of async invocations waiting or running.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
        crate::http::responses::AsyncBodyErrors,
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
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
    let idempotency_key = idempotency_key(&headers)?;
    let event = parse_event(&body?, state.limits.max_async_event_bytes)?;
    let function = state.invocations.find(&principal.namespace, name).await?;
    let accepted = crate::services::dispatch::accept(
        &state.dispatch,
        new_async(&function, &event, idempotency_key),
        true,
    )
    .await?;
    Ok(accepted_response(accepted))
}

/// The async invocation `/execute_async` stores: a client's, so the first of its chain.
fn new_async(
    function: &Function,
    event: &RawValue,
    idempotency_key: Option<String>,
) -> store::NewAsync {
    store::NewAsync {
        id: Uuid::now_v7(),
        namespace: function.namespace.clone(),
        namespace_uid: function.namespace_uid,
        function_id: function.id,
        function_name: function.name.clone(),
        mode: Mode::Async,
        event: event.get().to_owned(),
        idempotency_key,
        chain_depth: 0,
    }
}

/// 202 with where to follow the invocation, or 200 when the `Idempotency-Key` had made it
/// already.
fn accepted_response(accepted: Accepted) -> Response {
    let status = if accepted.existing {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let body = AsyncAccepted {
        invocation_id: accepted.invocation_id,
        status_url: format!("/invocations/{}", accepted.invocation_id),
    };
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests;
