//! Every way a request can fail, and the status and `{"detail", "code"}` body each one gets.
//! The cause of a 5xx is logged here and never sent to the client.
//!
//! [`ErrorCode`] is the closed list of machine codes, the api's own ([`ApiError::error_code`]
//! maps every variant to one) and those of a failed invocation; the OpenAPI document takes its
//! enum from that type, so the list a client reads is the list the code sends.

use crate::broker::BrokerError;
use crate::domain::auth::{AuthError, MissingScope};
use crate::domain::quota::{Quota, QuotaExceeded};
use crate::services::builds::BuildError;
use crate::services::builds::artifacts::ArtifactError;
use crate::services::dispatch::AcceptError;
use crate::services::keys::{KeyChangeError, cache::KeyError};
use crate::services::namespaces::NamespaceError;
use crate::services::triggers::RouteMiss;
use crate::services::{CallError, Invalid, SaveError, stream_hub::TooManyStreams};
use crate::store::{DbError, NotRunnable};
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use serde::Serialize;

/// Why a request failed, for machines: the `code` of every error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 422: the body, path or query is not what the operation takes.
    InvalidRequest,
    /// 413: the body (or a function's code) is over its limit.
    PayloadTooLarge,
    /// 415: a JSON body without `Content-Type: application/json`.
    UnsupportedMediaType,
    /// 404: no such function in the key's namespace.
    FunctionNotFound,
    /// 404: no invocation with that id in the key's namespace.
    InvocationNotFound,
    /// 404: no function's route matches the path under the route prefix.
    RouteNotFound,
    /// 405 with `Allow`: the route does not answer this method (its `http_methods`).
    MethodNotAllowed,
    /// 502: the function's result asked for an HTTP answer that cannot be sent.
    InvalidResponse,
    /// 401: no key, or one that is unknown, revoked or expired.
    Unauthorized,
    /// 403: the key lacks the scope the operation needs.
    Forbidden,
    /// 404: no such namespace.
    NamespaceNotFound,
    /// 404: no such key (or one of another namespace).
    KeyNotFound,
    /// 409: a name or route is taken, or the namespace to delete is `default`.
    Conflict,
    /// 503: no worker of the runtime is consuming.
    NoWorker,
    /// 503: workers are up but cannot run the runtime (gVisor without runsc).
    RuntimeUnavailable,
    /// 503: RabbitMQ is unreachable.
    BrokerUnavailable,
    /// 503: Postgres is unreachable.
    DatabaseUnavailable,
    /// 503 with `Retry-After`: the api or the runtime's queue is full.
    Overloaded,
    /// 429 with `Retry-After`: the function or its namespace runs its `max_concurrency`.
    ConcurrencyLimit,
    /// 429 with `Retry-After`: the namespace's calls waiting for a reply hold its share of the
    /// job queues' bytes (`QUEUE_SHARE_BYTES`).
    QueueShare,
    /// 429: the namespace holds `STREAM_CLIENTS` invocation streams open on this api replica.
    TooManyStreams,
    /// 429: the namespace holds its `quotas.functions` functions.
    QuotaFunctions,
    /// 429: the namespace holds its `quotas.keys` live keys.
    QuotaKeys,
    /// 429 with `Retry-After`: the namespace has its `quotas.pending_async` (at most
    /// `MAX_PENDING_ASYNC`) async invocations waiting or running.
    QuotaPendingAsync,
    /// 413: the save would pass the namespace's `quotas.artifact_bytes` of stored artifacts.
    QuotaArtifactBytes,
    /// 413: the namespace's async results and logs are at its `quotas.result_bytes`.
    QuotaResultBytes,
    /// 409: the `Idempotency-Key` names an invocation of another function or event.
    IdempotencyKeyReused,
    /// 408: the request body did not arrive in time.
    BodyTimeout,
    /// 502: the function raised an error.
    FunctionError,
    /// 502: the function's code failed to load.
    InitError,
    /// 502: the function ran out of memory.
    OutOfMemory,
    /// 502: the function's result is over 6 MiB.
    ResultTooLarge,
    /// 502: the function's container died.
    FunctionCrashed,
    /// 504: the function ran past its timeout.
    FunctionTimeout,
    /// 503: no worker took the call before its deadline.
    Expired,
    /// 504: no worker answered before the call's deadline.
    NoReply,
    /// 409: the function's dependencies are still being built and no earlier version can run.
    FunctionNotReady,
    /// 424: the build of the function's dependencies failed and no earlier version can run.
    BuildFailed,
}

impl ErrorCode {
    /// Every code, in the order the document lists them.
    #[cfg(test)]
    pub const ALL: [ErrorCode; 38] = [
        ErrorCode::InvalidRequest,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::FunctionNotFound,
        ErrorCode::InvocationNotFound,
        ErrorCode::RouteNotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::InvalidResponse,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NamespaceNotFound,
        ErrorCode::KeyNotFound,
        ErrorCode::Conflict,
        ErrorCode::NoWorker,
        ErrorCode::RuntimeUnavailable,
        ErrorCode::BrokerUnavailable,
        ErrorCode::DatabaseUnavailable,
        ErrorCode::Overloaded,
        ErrorCode::ConcurrencyLimit,
        ErrorCode::QueueShare,
        ErrorCode::TooManyStreams,
        ErrorCode::QuotaFunctions,
        ErrorCode::QuotaKeys,
        ErrorCode::QuotaPendingAsync,
        ErrorCode::QuotaArtifactBytes,
        ErrorCode::QuotaResultBytes,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::BodyTimeout,
        ErrorCode::FunctionError,
        ErrorCode::InitError,
        ErrorCode::OutOfMemory,
        ErrorCode::ResultTooLarge,
        ErrorCode::FunctionCrashed,
        ErrorCode::FunctionTimeout,
        ErrorCode::Expired,
        ErrorCode::NoReply,
        ErrorCode::FunctionNotReady,
        ErrorCode::BuildFailed,
    ];

    /// The code as it is sent (and as metrics label calls).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::FunctionNotFound => "function_not_found",
            ErrorCode::InvocationNotFound => "invocation_not_found",
            ErrorCode::RouteNotFound => "route_not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::InvalidResponse => "invalid_response",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NamespaceNotFound => "namespace_not_found",
            ErrorCode::KeyNotFound => "key_not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::NoWorker => "no_worker",
            ErrorCode::RuntimeUnavailable => "runtime_unavailable",
            ErrorCode::BrokerUnavailable => "broker_unavailable",
            ErrorCode::DatabaseUnavailable => "database_unavailable",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::ConcurrencyLimit => "concurrency_limit",
            ErrorCode::QueueShare => "queue_share",
            ErrorCode::TooManyStreams => "too_many_streams",
            ErrorCode::QuotaFunctions => "quota_functions",
            ErrorCode::QuotaKeys => "quota_keys",
            ErrorCode::QuotaPendingAsync => "quota_pending_async",
            ErrorCode::QuotaArtifactBytes => "quota_artifact_bytes",
            ErrorCode::QuotaResultBytes => "quota_result_bytes",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::BodyTimeout => "body_timeout",
            ErrorCode::FunctionError => "function_error",
            ErrorCode::InitError => "init_error",
            ErrorCode::OutOfMemory => "out_of_memory",
            ErrorCode::ResultTooLarge => "result_too_large",
            ErrorCode::FunctionCrashed => "function_crashed",
            ErrorCode::FunctionTimeout => "function_timeout",
            ErrorCode::Expired => "expired",
            ErrorCode::NoReply => "no_reply",
            ErrorCode::FunctionNotReady => "function_not_ready",
            ErrorCode::BuildFailed => "build_failed",
        }
    }
}

/// The body of every error: a sentence for people and a code for machines (the seed's FastAPI
/// `detail` plus `code`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(examples(json!({"detail": "function hello not found", "code": "function_not_found"})))]
pub struct ErrorBody {
    /// What went wrong, in a sentence.
    pub detail: String,
    pub code: ErrorCode,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("function {0} not found")]
    FunctionNotFound(String),
    #[error("invocation {0} not found")]
    InvocationNotFound(String),
    /// No function's route matches the path (which the text names).
    #[error("no function answers {0}")]
    RouteNotFound(String),
    /// The route does not answer this method: 405 with `Allow`.
    #[error("{method} is not one of this route's methods ({})", allowed.join(", "))]
    MethodNotAllowed {
        method: String,
        allowed: Vec<String>,
    },
    /// The function's result asked for an answer that HTTP cannot carry.
    #[error("the function's answer is not a valid HTTP response: {0}")]
    InvalidResponse(String),
    /// No valid key: 401 with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(AuthError),
    /// A valid key without the scope the request needs.
    #[error("{0}")]
    Forbidden(String),
    #[error("namespace {0} not found")]
    NamespaceNotFound(String),
    #[error("key {0} not found")]
    KeyNotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The job could not be handed to a worker: no worker, a runtime nobody can run, a full
    /// queue, or the broker away.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("the database is unavailable")]
    Database(#[from] DbError),
    /// The api, or the runtime's job queue, is full: the client should retry shortly.
    #[error("{0}")]
    Overloaded(String),
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
    TooManyStreams(#[from] TooManyStreams),
    /// A namespace quota refuses what the request would add: 429 for a count, 413 for bytes.
    #[error(transparent)]
    Quota(#[from] QuotaExceeded),
    /// The `Idempotency-Key` was used within 24 h for another call.
    #[error(
        "the Idempotency-Key was used within 24 hours for invocation {0}, of another function or with another event; use a new key for a new call"
    )]
    IdempotencyKeyReused(uuid::Uuid),
    /// The client sent its body too slowly.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// The version to run has its dependencies pending or building (409), or a failed build
    /// and none before it could run (424).
    #[error(transparent)]
    NotRunnable(#[from] NotRunnable),
    /// A worker-only route called without the worker token, or with a wrong one.
    #[error("this route is for workers: it needs the WORKER_TOKEN as a bearer token")]
    NotAWorker,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::FunctionNotFound(_)
            | ApiError::InvocationNotFound(_)
            | ApiError::NamespaceNotFound(_)
            | ApiError::KeyNotFound(_)
            | ApiError::RouteNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::InvalidResponse(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            // A well-formed request that conflicts with what is stored.
            ApiError::Conflict(_)
            | ApiError::NotRunnable(NotRunnable::Building(_))
            | ApiError::IdempotencyKeyReused(_) => StatusCode::CONFLICT,
            ApiError::NotRunnable(NotRunnable::BuildFailed { .. }) => StatusCode::FAILED_DEPENDENCY,
            ApiError::NotAWorker => StatusCode::UNAUTHORIZED,
            ApiError::Broker(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Database(_) | ApiError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::ConcurrencyLimit { .. } | ApiError::QueueShare { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Quota(exceeded) if exceeded.quota.is_bytes() => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Quota(_) | ApiError::TooManyStreams(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The machine code of the error; every variant has one in [`ErrorCode`].
    pub fn error_code(&self) -> ErrorCode {
        match self {
            ApiError::Invalid(_) => ErrorCode::InvalidRequest,
            ApiError::TooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::FunctionNotFound(_) => ErrorCode::FunctionNotFound,
            ApiError::InvocationNotFound(_) => ErrorCode::InvocationNotFound,
            ApiError::RouteNotFound(_) => ErrorCode::RouteNotFound,
            ApiError::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            ApiError::InvalidResponse(_) => ErrorCode::InvalidResponse,
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NamespaceNotFound(_) => ErrorCode::NamespaceNotFound,
            ApiError::KeyNotFound(_) => ErrorCode::KeyNotFound,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::NotRunnable(NotRunnable::Building(_)) => ErrorCode::FunctionNotReady,
            ApiError::NotRunnable(NotRunnable::BuildFailed { .. }) => ErrorCode::BuildFailed,
            ApiError::NotAWorker => ErrorCode::Unauthorized,
            ApiError::Broker(BrokerError::NoWorker(_)) => ErrorCode::NoWorker,
            ApiError::Broker(BrokerError::RuntimeUnavailable(_)) => ErrorCode::RuntimeUnavailable,
            ApiError::Broker(BrokerError::Overloaded(_)) => ErrorCode::Overloaded,
            ApiError::Broker(BrokerError::Unavailable(_) | BrokerError::Disconnected) => {
                ErrorCode::BrokerUnavailable
            }
            ApiError::Database(_) => ErrorCode::DatabaseUnavailable,
            ApiError::Overloaded(_) => ErrorCode::Overloaded,
            ApiError::ConcurrencyLimit { .. } => ErrorCode::ConcurrencyLimit,
            ApiError::QueueShare { .. } => ErrorCode::QueueShare,
            ApiError::TooManyStreams(_) => ErrorCode::TooManyStreams,
            ApiError::Quota(exceeded) => match exceeded.quota {
                Quota::Functions => ErrorCode::QuotaFunctions,
                Quota::Keys => ErrorCode::QuotaKeys,
                Quota::PendingAsync => ErrorCode::QuotaPendingAsync,
                Quota::ArtifactBytes => ErrorCode::QuotaArtifactBytes,
                Quota::ResultBytes => ErrorCode::QuotaResultBytes,
            },
            ApiError::IdempotencyKeyReused(_) => ErrorCode::IdempotencyKeyReused,
            ApiError::BodyTimeout => ErrorCode::BodyTimeout,
        }
    }

    /// [`Self::error_code`] as text.
    #[cfg(test)]
    pub fn code(&self) -> &'static str {
        self.error_code().as_str()
    }

    /// Seconds after which a retry may succeed, for the errors that say "try again shortly".
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::Overloaded(_)
            | ApiError::Broker(BrokerError::Overloaded(_))
            | ApiError::ConcurrencyLimit { .. }
            | ApiError::QueueShare { .. } => Some(1),
            // Pending invocations finish at their functions' pace, not within a second.
            ApiError::Quota(QuotaExceeded {
                quota: Quota::PendingAsync,
                ..
            }) => Some(10),
            _ => None,
        }
    }
}

impl From<CallError> for ApiError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::FunctionNotFound(name) => ApiError::FunctionNotFound(name),
            CallError::NotRunnable(why) => ApiError::NotRunnable(why),
            CallError::ConcurrencyLimit { subject, limit } => {
                ApiError::ConcurrencyLimit { subject, limit }
            }
            CallError::QueueShare { namespace, share } => ApiError::QueueShare { namespace, share },
            CallError::Broker(error) => ApiError::Broker(error),
            CallError::Database(error) => ApiError::Database(error),
        }
    }
}

impl From<MissingScope> for ApiError {
    fn from(MissingScope(why): MissingScope) -> Self {
        ApiError::Forbidden(why)
    }
}

impl From<KeyError> for ApiError {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::Rejected(why) => ApiError::Unauthorized(why),
            KeyError::Database(error) => ApiError::Database(error),
        }
    }
}

impl From<KeyChangeError> for ApiError {
    fn from(error: KeyChangeError) -> Self {
        match error {
            KeyChangeError::Invalid(why) => ApiError::Invalid(why),
            KeyChangeError::Forbidden(why) => ApiError::Forbidden(why),
            KeyChangeError::NamespaceNotFound(name) => ApiError::NamespaceNotFound(name),
            KeyChangeError::KeyNotFound(id) => ApiError::KeyNotFound(id),
            KeyChangeError::Quota(exceeded) => ApiError::Quota(exceeded),
            KeyChangeError::Database(error) => ApiError::Database(error),
        }
    }
}

impl From<NamespaceError> for ApiError {
    fn from(error: NamespaceError) -> Self {
        match error {
            NamespaceError::Invalid(why) => ApiError::Invalid(why),
            NamespaceError::Conflict(why) => ApiError::Conflict(why),
            NamespaceError::NotFound(name) => ApiError::NamespaceNotFound(name),
            NamespaceError::Database(error) => ApiError::Database(error),
        }
    }
}

impl From<BuildError> for ApiError {
    fn from(error: BuildError) -> Self {
        match error {
            BuildError::NotADigest(why) => ApiError::Invalid(why.to_string()),
            BuildError::Conflict(why) => ApiError::Conflict(why),
            BuildError::Database(error) => ApiError::Database(error),
        }
    }
}

impl From<ArtifactError> for ApiError {
    fn from(error: ArtifactError) -> Self {
        match error {
            ArtifactError::NotADigest(why) => ApiError::Invalid(why.to_string()),
            ArtifactError::Invalid(why) => ApiError::Invalid(why),
            too_large @ ArtifactError::TooLarge { .. } => ApiError::TooLarge(too_large.to_string()),
            ArtifactError::BodyTimeout => ApiError::BodyTimeout,
            // Workers read a 404 as "not there"; the code is the nearest the api has.
            ArtifactError::NotFound(digest) => {
                ApiError::FunctionNotFound(format!("artifact {digest}"))
            }
            ArtifactError::Database(error) => ApiError::Database(error),
        }
    }
}

impl From<RouteMiss> for ApiError {
    fn from(miss: RouteMiss) -> Self {
        match miss {
            RouteMiss::MethodNotAllowed { method, allowed } => {
                ApiError::MethodNotAllowed { method, allowed }
            }
            RouteMiss::NotFound(path) => ApiError::RouteNotFound(path),
        }
    }
}

impl From<AcceptError> for ApiError {
    fn from(error: AcceptError) -> Self {
        match error {
            AcceptError::KeyReused(id) => ApiError::IdempotencyKeyReused(id),
            AcceptError::Quota(exceeded) => ApiError::Quota(exceeded),
            AcceptError::NamespaceGone(name) => ApiError::NamespaceNotFound(name),
            AcceptError::Broker(error) => ApiError::Broker(error),
            AcceptError::Database(error) => ApiError::Database(error),
        }
    }
}

impl From<SaveError> for ApiError {
    fn from(error: SaveError) -> Self {
        match error {
            SaveError::Invalid(Invalid::Field(why)) => ApiError::Invalid(why),
            SaveError::Invalid(Invalid::TooLarge(why)) => ApiError::TooLarge(why),
            SaveError::Invalid(Invalid::Forbidden(why)) => ApiError::Forbidden(why),
            SaveError::Conflict(why) => ApiError::Conflict(why),
            SaveError::FunctionNotFound(id) => ApiError::FunctionNotFound(id.to_string()),
            SaveError::NamespaceNotFound(name) => ApiError::NamespaceNotFound(name),
            SaveError::Quota(exceeded) => ApiError::Quota(exceeded),
            SaveError::Database(error) => ApiError::Database(error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            match &self {
                ApiError::Broker(BrokerError::Unavailable(cause)) => {
                    metrics::counter!("faas_broker_errors_total").increment(1);
                    tracing::error!(error = %cause, "broker request failed");
                }
                ApiError::Database(cause) => {
                    metrics::counter!("faas_database_errors_total").increment(1);
                    tracing::error!(error = %cause, "database request failed");
                }
                // Shedding load is the system working as meant; one line per refusal would
                // only add to the load.
                ApiError::Overloaded(_) | ApiError::Broker(BrokerError::Overloaded(_)) => {
                    tracing::debug!(error = %self, "request refused")
                }
                other => tracing::warn!(error = %other, "request refused"),
            }
        }
        let body = ErrorBody {
            detail: self.to_string(),
            code: self.error_code(),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after() {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        if matches!(self, ApiError::Unauthorized(_)) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if let ApiError::MethodNotAllowed { allowed, .. } = &self
            && let Ok(value) = axum::http::HeaderValue::from_str(&allowed.join(", "))
        {
            response
                .headers_mut()
                .insert(axum::http::header::ALLOW, value);
        }
        if matches!(self, ApiError::BodyTimeout) {
            // What is left of the body may never come: the connection cannot be reused.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge("request body is too large".into()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(
                "expected a JSON body with `Content-Type: application/json`".into(),
            ),
            _ => ApiError::Invalid(format!("invalid JSON body: {}", rejection.body_text())),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge("request body is too large".into())
        } else {
            ApiError::Invalid(rejection.body_text())
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::Invalid(format!("invalid path: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::Invalid(format!("invalid query: {}", rejection.body_text()))
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        ApiError::Database(error.into())
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(error: tokio_postgres::Error) -> Self {
        ApiError::Database(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::Runtime;

    /// One error of every variant: a new variant fails to compile here until it is added, and
    /// then must map to a code the document lists.
    fn one_of_each() -> Vec<ApiError> {
        let all = vec![
            ApiError::Invalid(String::new()),
            ApiError::TooLarge(String::new()),
            ApiError::UnsupportedMediaType(String::new()),
            ApiError::FunctionNotFound(String::new()),
            ApiError::InvocationNotFound(String::new()),
            ApiError::RouteNotFound(String::new()),
            ApiError::MethodNotAllowed {
                method: String::new(),
                allowed: Vec::new(),
            },
            ApiError::InvalidResponse(String::new()),
            ApiError::Unauthorized(AuthError::Missing),
            ApiError::Forbidden(String::new()),
            ApiError::NamespaceNotFound(String::new()),
            ApiError::KeyNotFound(String::new()),
            ApiError::Conflict(String::new()),
            ApiError::Broker(BrokerError::NoWorker(Runtime::Docker)),
            ApiError::Broker(BrokerError::RuntimeUnavailable(Runtime::Gvisor)),
            ApiError::Broker(BrokerError::Unavailable(lapin::Error::from(
                lapin::ErrorKind::ChannelsLimitReached,
            ))),
            ApiError::Broker(BrokerError::Disconnected),
            ApiError::Broker(BrokerError::Overloaded(String::new())),
            ApiError::Overloaded(String::new()),
            ApiError::ConcurrencyLimit {
                subject: String::new(),
                limit: 1,
            },
            ApiError::Quota(QuotaExceeded {
                quota: Quota::Functions,
                limit: 1,
                used: 1,
                adding: 1,
            }),
            ApiError::Quota(QuotaExceeded {
                quota: Quota::Keys,
                limit: 1,
                used: 1,
                adding: 1,
            }),
            ApiError::Quota(QuotaExceeded {
                quota: Quota::PendingAsync,
                limit: 1,
                used: 1,
                adding: 1,
            }),
            ApiError::Quota(QuotaExceeded {
                quota: Quota::ArtifactBytes,
                limit: 1,
                used: 1,
                adding: 1,
            }),
            ApiError::Quota(QuotaExceeded {
                quota: Quota::ResultBytes,
                limit: 1,
                used: 1,
                adding: 1,
            }),
            ApiError::QueueShare {
                namespace: String::new(),
                share: 1,
            },
            ApiError::IdempotencyKeyReused(uuid::Uuid::nil()),
            ApiError::TooManyStreams(TooManyStreams { limit: 1 }),
            ApiError::BodyTimeout,
            ApiError::NotRunnable(NotRunnable::Building(String::new())),
            ApiError::NotRunnable(NotRunnable::BuildFailed {
                name: String::new(),
                log_tail: String::new(),
            }),
            ApiError::NotAWorker,
        ];
        for error in &all {
            // Exhaustive: a variant missing above is a compile error.
            match error {
                ApiError::Invalid(_)
                | ApiError::TooLarge(_)
                | ApiError::UnsupportedMediaType(_)
                | ApiError::FunctionNotFound(_)
                | ApiError::InvocationNotFound(_)
                | ApiError::RouteNotFound(_)
                | ApiError::MethodNotAllowed { .. }
                | ApiError::InvalidResponse(_)
                | ApiError::Unauthorized(_)
                | ApiError::Forbidden(_)
                | ApiError::NamespaceNotFound(_)
                | ApiError::KeyNotFound(_)
                | ApiError::Conflict(_)
                | ApiError::Broker(
                    BrokerError::NoWorker(_)
                    | BrokerError::RuntimeUnavailable(_)
                    | BrokerError::Unavailable(_)
                    | BrokerError::Disconnected
                    | BrokerError::Overloaded(_),
                )
                | ApiError::Database(_)
                | ApiError::Overloaded(_)
                | ApiError::ConcurrencyLimit { .. }
                | ApiError::QueueShare { .. }
                | ApiError::TooManyStreams(_)
                | ApiError::Quota(_)
                | ApiError::IdempotencyKeyReused(_)
                | ApiError::BodyTimeout
                | ApiError::NotRunnable(
                    NotRunnable::Building(_) | NotRunnable::BuildFailed { .. },
                )
                | ApiError::NotAWorker => {}
            }
        }
        all
    }

    #[test]
    fn a_call_error_keeps_its_code_as_an_api_error() {
        let lapin_error = || lapin::Error::from(lapin::ErrorKind::ChannelsLimitReached);
        let all: Vec<CallError> = vec![
            CallError::FunctionNotFound("f".into()),
            NotRunnable::Building("f".into()).into(),
            NotRunnable::BuildFailed {
                name: "f".into(),
                log_tail: String::new(),
            }
            .into(),
            CallError::ConcurrencyLimit {
                subject: "function f".into(),
                limit: 1,
            },
            CallError::QueueShare {
                namespace: "n".into(),
                share: 1,
            },
            BrokerError::NoWorker(Runtime::Docker).into(),
            BrokerError::RuntimeUnavailable(Runtime::Gvisor).into(),
            BrokerError::Overloaded("full".into()).into(),
            BrokerError::Unavailable(lapin_error()).into(),
            BrokerError::Disconnected.into(),
            CallError::Database(DbError::Inconsistent("gone")),
        ];
        for error in all {
            let code = error.code();
            let text = error.to_string();
            let api = ApiError::from(error);
            assert_eq!(api.code(), code);
            assert_eq!(api.to_string(), text);
        }
    }

    #[test]
    fn service_errors_keep_the_status_code_and_detail_their_handlers_sent() {
        use crate::services::builds::NotADigest;
        let db = || DbError::Inconsistent("gone");
        let cases: Vec<(ApiError, u16, &str, &str)> = vec![
            (
                KeyChangeError::Invalid("bad".into()).into(),
                422,
                "invalid_request",
                "bad",
            ),
            (
                KeyChangeError::Forbidden("no".into()).into(),
                403,
                "forbidden",
                "no",
            ),
            (
                KeyChangeError::NamespaceNotFound("t".into()).into(),
                404,
                "namespace_not_found",
                "namespace t not found",
            ),
            (
                KeyChangeError::KeyNotFound("k".into()).into(),
                404,
                "key_not_found",
                "key k not found",
            ),
            (
                KeyChangeError::Database(db()).into(),
                503,
                "database_unavailable",
                "the database is unavailable",
            ),
            (
                NamespaceError::Invalid("bad".into()).into(),
                422,
                "invalid_request",
                "bad",
            ),
            (
                NamespaceError::Conflict("taken".into()).into(),
                409,
                "conflict",
                "taken",
            ),
            (
                NamespaceError::NotFound("t".into()).into(),
                404,
                "namespace_not_found",
                "namespace t not found",
            ),
            (
                NamespaceError::Database(db()).into(),
                503,
                "database_unavailable",
                "the database is unavailable",
            ),
            (
                BuildError::NotADigest(NotADigest {
                    what: "the build key",
                })
                .into(),
                422,
                "invalid_request",
                "the build key must be 64 lowercase hex digits",
            ),
            (
                BuildError::Conflict("stale".into()).into(),
                409,
                "conflict",
                "stale",
            ),
            (
                BuildError::Database(db()).into(),
                503,
                "database_unavailable",
                "the database is unavailable",
            ),
            (
                ArtifactError::NotADigest(NotADigest { what: "the digest" }).into(),
                422,
                "invalid_request",
                "the digest must be 64 lowercase hex digits",
            ),
            (
                ArtifactError::Invalid("odd".into()).into(),
                422,
                "invalid_request",
                "odd",
            ),
            (
                ArtifactError::TooLarge { max: 5 }.into(),
                413,
                "payload_too_large",
                "the artifact is over ARTIFACT_MAX_MB (5 bytes)",
            ),
            (
                ArtifactError::BodyTimeout.into(),
                408,
                "body_timeout",
                "the request body did not arrive in time",
            ),
            (
                ArtifactError::NotFound("d".into()).into(),
                404,
                "function_not_found",
                "function artifact d not found",
            ),
            (
                ArtifactError::Database(db()).into(),
                503,
                "database_unavailable",
                "the database is unavailable",
            ),
            (
                RouteMiss::NotFound("/x".into()).into(),
                404,
                "route_not_found",
                "no function answers /x",
            ),
            (
                RouteMiss::MethodNotAllowed {
                    method: "TRACE".into(),
                    allowed: vec!["GET".into(), "POST".into()],
                }
                .into(),
                405,
                "method_not_allowed",
                "TRACE is not one of this route's methods (GET, POST)",
            ),
        ];
        for (error, status, code, detail) in cases {
            let seen = (error.status().as_u16(), error.code(), error.to_string());
            assert_eq!(seen, (status, code, detail.to_owned()), "{error:?}");
        }
    }

    #[test]
    fn every_error_has_a_listed_code_sent_as_its_serde_name() {
        for error in one_of_each() {
            assert!(ErrorCode::ALL.contains(&error.error_code()), "{error:?}");
        }
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::from(code.as_str())
            );
        }
        let mut texts: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), ErrorCode::ALL.len(), "a code is listed twice");
    }
}
