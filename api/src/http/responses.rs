//! The responses and parameters many operations of the OpenAPI document share (a refused
//! key, the api unavailable, a refused body, a failed call; a function's name or id in the
//! path), written once here as [`utoipa::IntoResponses`] and [`IntoParams`] types that the
//! handlers' `#[utoipa::path]` attributes name. The document itself is assembled in `openapi`.

use crate::http::error::{ErrorBody, ErrorCode};
use common::{ErrorInfo, Timing};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, ObjectBuilder, RefOr, Response, ResponseBuilder, Type,
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// `{name}` in `/execute/{name}`: a function's name, looked up in the key's namespace.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FunctionName {
    /// The function's name (no such name: 404).
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$", example = "hello")]
    #[allow(dead_code)] // Read by the derive only: the handler takes the segment as a String.
    name: String,
}

/// `{id}` in `/functions/{id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FunctionId {
    /// The function's id, as its creation answered.
    #[param(example = 1)]
    #[allow(dead_code)] // Read by the derive only.
    id: i64,
}

/// A response with an [`ErrorBody`]; `codes` are those it may carry.
fn error_response(summary: &str, codes: &[ErrorCode]) -> ResponseBuilder {
    coded_response(summary, codes, &ErrorBody::name())
}

/// A response whose JSON body is the schema `schema`, with a `code` among `codes`, which the
/// description lists.
fn coded_response(summary: &str, codes: &[ErrorCode], schema: &str) -> ResponseBuilder {
    let codes: Vec<String> = codes.iter().map(|c| format!("`{}`", c.as_str())).collect();
    ResponseBuilder::new()
        .description(format!("{summary} (code: {}).", codes.join(", ")))
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    schema,
                ))))
                .build(),
        )
}

fn retry_after() -> utoipa::openapi::Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        )
        .description(Some("Seconds to wait before retrying."))
        .build()
}

type Responses = BTreeMap<String, RefOr<Response>>;

fn responses<const N: usize>(list: [(u16, ResponseBuilder); N]) -> Responses {
    list.into_iter()
        .map(|(status, response)| (status.to_string(), RefOr::T(response.build())))
        .collect()
}

/// 401 and 403: what every operation that needs a key may answer.
pub struct KeyErrors;

impl utoipa::IntoResponses for KeyErrors {
    fn responses() -> Responses {
        responses([
            (
                401,
                error_response(
                    "No key, a malformed `Authorization` header, or a key that is unknown, \
                     revoked, expired or of a deleted namespace; answered from the headers, \
                     before any of the body is read (with `Connection: close` when one follows)",
                    &[ErrorCode::Unauthorized],
                )
                .header(
                    "WWW-Authenticate",
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::String))
                        .description(Some("`Bearer`"))
                        .build(),
                ),
            ),
            (
                403,
                error_response(
                    "The key lacks the scope this operation needs",
                    &[ErrorCode::Forbidden],
                ),
            ),
        ])
    }
}

/// 503: the api cannot serve the request now (every operation but the probes and the docs).
pub struct Unavailable;

impl utoipa::IntoResponses for Unavailable {
    fn responses() -> Responses {
        responses([(
            503,
            error_response(
                "The api cannot serve this now: it serves `MAX_INFLIGHT` requests already, or \
                 this client address holds `MAX_CONNECTIONS_PER_PEER` connections (both with \
                 `Retry-After`), or Postgres or RabbitMQ is unreachable; a call may also find \
                 no worker for its runtime, or none that took it before its deadline",
                &[
                    ErrorCode::Overloaded,
                    ErrorCode::DatabaseUnavailable,
                    ErrorCode::BrokerUnavailable,
                    ErrorCode::NoWorker,
                    ErrorCode::RuntimeUnavailable,
                    ErrorCode::Expired,
                ],
            )
            .header("Retry-After", retry_after()),
        )])
    }
}

/// 408, 413, 415 and 422: a request body refused.
pub struct BodyErrors;

impl utoipa::IntoResponses for BodyErrors {
    fn responses() -> Responses {
        body_errors(None)
    }
}

/// [`BodyErrors`] of a function's create or update: 413 also when the namespace's
/// `artifact_bytes` quota would be passed.
pub struct SaveBodyErrors;

impl utoipa::IntoResponses for SaveBodyErrors {
    fn responses() -> Responses {
        body_errors(Some(ErrorCode::QuotaArtifactBytes))
    }
}

/// [`BodyErrors`] of `/execute_async`: 413 also while the namespace is over its
/// `result_bytes` quota.
pub struct AsyncBodyErrors;

impl utoipa::IntoResponses for AsyncBodyErrors {
    fn responses() -> Responses {
        body_errors(Some(ErrorCode::QuotaResultBytes))
    }
}

/// The refused-body responses, with `quota`'s code beside `payload_too_large` under 413.
fn body_errors(quota: Option<ErrorCode>) -> Responses {
    let too_large: Vec<ErrorCode> = [ErrorCode::PayloadTooLarge]
        .into_iter()
        .chain(quota)
        .collect();
    let summary = match quota {
        None => "The body, or a function's code, is over its limit",
        Some(_) => {
            "The body, or a function's code, is over its limit, or what it would store is \
             over the namespace's quota (its `detail` names the limit and what is in use)"
        }
    };
    responses([
        (
            408,
            error_response(
                "The body did not arrive within `BODY_READ_TIMEOUT_SECS` a piece, or \
                 `REQUEST_TIMEOUT_SECS` in all",
                &[ErrorCode::BodyTimeout],
            ),
        ),
        (413, error_response(summary, &too_large)),
        (
            415,
            error_response(
                "A JSON body sent without `Content-Type: application/json`",
                &[ErrorCode::UnsupportedMediaType],
            ),
        ),
        (
            422,
            error_response(
                "The body is not JSON of the operation's schema, or a value is out of its \
                     limits; the sentence names which",
                &[ErrorCode::InvalidRequest],
            ),
        ),
    ])
}

/// 502 and 504: a call that reached a worker and failed there, or never came back.
pub struct InvocationErrors;

impl utoipa::IntoResponses for InvocationErrors {
    fn responses() -> Responses {
        let schema = Failure::name();
        let failure = |summary: &str, codes: &[ErrorCode]| coded_response(summary, codes, &schema);
        responses([
            (
                502,
                failure(
                    "The function failed: it raised, its code did not load, it ran out of \
                     memory, its result is over 6 MiB, or its container died",
                    &[
                        ErrorCode::FunctionError,
                        ErrorCode::InitError,
                        ErrorCode::OutOfMemory,
                        ErrorCode::ResultTooLarge,
                        ErrorCode::FunctionCrashed,
                    ],
                ),
            ),
            (
                504,
                failure(
                    "The function ran past its timeout, or no worker answered before the \
                     call's deadline",
                    &[ErrorCode::FunctionTimeout, ErrorCode::NoReply],
                ),
            ),
            (
                409,
                coded_response(
                    "Its dependencies are being built and no earlier \
                     version can run",
                    &[ErrorCode::FunctionNotReady],
                    &ErrorBody::name(),
                ),
            ),
            (
                424,
                coded_response(
                    "Its dependencies' build failed (the detail ends with the \
                     log's tail) and no earlier version can run",
                    &[ErrorCode::BuildFailed],
                    &ErrorBody::name(),
                ),
            ),
        ])
    }
}

/// The body of a call that reached a worker (or should have) and failed: the error body plus
/// what is known of the call.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Failure<'a> {
    /// What went wrong, in a sentence.
    pub detail: String,
    pub code: ErrorCode,
    /// The error as the function's language described it, when there is one.
    pub error: Option<&'a ErrorInfo>,
    pub invocation_id: Uuid,
    pub duration_ms: f64,
    pub cold_start: bool,
    pub timing: Timing,
    /// What the handler printed before it failed (none after a timeout: the container is
    /// killed with what it printed).
    pub logs: &'a str,
    pub logs_truncated: bool,
}
