//! Every way a request can fail, and the status and `{"detail", "code"}` body each one gets.
//! The cause of a 5xx is logged here and never sent to the client.

use crate::auth::AuthError;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::Runtime;
use serde_json::json;

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
    #[error("no {0} worker is running; start one with `worker --runtime {0}`")]
    NoWorker(Runtime),
    /// Workers are up but cannot start this runtime's sandboxes (a gVisor worker whose Docker
    /// host has no `runsc`); they stand by instead of taking jobs.
    #[error(
        "no worker can run {0} functions: the {0} workers that are up found no gVisor runtime (runsc) in their host's Docker; install runsc, register it in /etc/docker/daemon.json and restart those workers"
    )]
    RuntimeUnavailable(Runtime),
    #[error("the message broker is unavailable")]
    BrokerUnavailable(#[source] lapin::Error),
    #[error("the message broker is not connected")]
    BrokerDisconnected,
    #[error("the database is unavailable")]
    Database(#[from] DbError),
    /// The api, or the runtime's job queue, is full: the client should retry shortly.
    #[error("{0}")]
    Overloaded(String),
    /// The function (or its namespace) already runs as many calls as its `max_concurrency`
    /// allows; `subject` says which ("function f", "namespace n").
    #[error("{subject} already runs its limit of {limit} concurrent calls")]
    ConcurrencyLimit { subject: String, limit: i32 },
    /// The client sent its body too slowly.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
}

/// A database failure, whatever layer it came from.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Query(#[from] tokio_postgres::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::FunctionNotFound(_)
            | ApiError::NamespaceNotFound(_)
            | ApiError::KeyNotFound(_)
            | ApiError::RouteNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::InvalidResponse(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::NoWorker(_)
            | ApiError::RuntimeUnavailable(_)
            | ApiError::BrokerUnavailable(_)
            | ApiError::BrokerDisconnected => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Database(_) | ApiError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::ConcurrencyLimit { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid(_) => "invalid_request",
            ApiError::TooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::FunctionNotFound(_) => "function_not_found",
            ApiError::RouteNotFound(_) => "route_not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::InvalidResponse(_) => "invalid_response",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NamespaceNotFound(_) => "namespace_not_found",
            ApiError::KeyNotFound(_) => "key_not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::NoWorker(_) => "no_worker",
            ApiError::RuntimeUnavailable(_) => "runtime_unavailable",
            ApiError::BrokerUnavailable(_) | ApiError::BrokerDisconnected => "broker_unavailable",
            ApiError::Database(_) => "database_unavailable",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::ConcurrencyLimit { .. } => "concurrency_limit",
            ApiError::BodyTimeout => "body_timeout",
        }
    }

    /// Seconds after which a retry may succeed, for the errors that say "try again shortly".
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::Overloaded(_) | ApiError::ConcurrencyLimit { .. } => Some(1),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            match &self {
                ApiError::BrokerUnavailable(cause) => {
                    metrics::counter!("faas_broker_errors_total").increment(1);
                    tracing::error!(error = %cause, "broker request failed");
                }
                ApiError::Database(cause) => {
                    metrics::counter!("faas_database_errors_total").increment(1);
                    tracing::error!(error = %cause, "database request failed");
                }
                // Shedding load is the system working as meant; one line per refusal would
                // only add to the load.
                ApiError::Overloaded(_) => tracing::debug!(error = %self, "request refused"),
                other => tracing::warn!(error = %other, "request refused"),
            }
        }
        let body = json!({ "detail": self.to_string(), "code": self.code() });
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
