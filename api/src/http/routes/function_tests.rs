//! A function's stored test events: `GET` and `PUT /functions/{id}/tests`, within the key's
//! namespace (another namespace's function is 404). They are no part of the function's version:
//! replacing them saves no function and tells no cache.

use crate::domain::auth::{Principal, Scope};
use crate::domain::function_tests::FunctionTests;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{Json, Path};
use crate::http::state::AppState;
use crate::store;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::HeaderMap;

/// The largest body these routes read (413 beyond): room above the tests' own limit
/// ([`crate::domain::function_tests::MAX_TESTS_BODY_BYTES`], 422 beyond), so that a body a
/// little over it is told what the limit is rather than refused unread.
pub const TESTS_BODY_READ_MAX: usize = 2 * crate::domain::function_tests::MAX_TESTS_BODY_BYTES;

/// A function's tests, in their order (`manage` or `read` scope).
#[utoipa::path(
    get,
    path = "/functions/{id}/tests",
    tag = "functions",
    summary = "Get a function's stored test events",
    params(crate::http::responses::FunctionId),
    responses(
        (status = 200, description = "Its tests; an empty list when none are stored.", body = FunctionTests),
        (status = 404, description = "`function_not_found`: no such function in the key's namespace.", body = ErrorBody),
        (status = 422, description = "`invalid_request`: the id is not an integer.", body = ErrorBody),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn get_function_tests(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<FunctionTests>, ApiError> {
    principal.require_any(&[Scope::Manage, Scope::Read])?;
    store::get_function_tests(&state.db, &principal.namespace, id)
        .await?
        .map(|tests| axum::Json(FunctionTests { tests }))
        .ok_or_else(|| ApiError::FunctionNotFound(id.to_string()))
}

/// Replaces a function's tests with those sent (`manage` scope); answers them as stored. The
/// function itself, its version and `updated_at`, stay as they are.
#[utoipa::path(
    put,
    path = "/functions/{id}/tests",
    tag = "functions",
    summary = "Replace a function's stored test events",
    description = "At most 100 tests, each `name` 1 to 100 characters of `A-Za-z0-9._-` and \
        unique among them, the body at most 1 MiB (422 `invalid_request` naming the test and the \
        field otherwise; 413 over 2 MiB, unread). `event` and `expect` are any JSON, kept as \
        sent; an absent `expect` stays absent.",
    params(crate::http::responses::FunctionId),
    request_body = FunctionTests,
    responses(
        (status = 200, description = "Replaced: the tests as stored.", body = FunctionTests),
        (status = 404, description = "`function_not_found`: no such function in the key's namespace.", body = ErrorBody),
        crate::http::responses::BodyErrors,
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn put_function_tests(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<FunctionTests>, ApiError> {
    principal.require(Scope::Manage)?;
    // The size is the tests' to check; the body is parsed as JSON bodies are (its
    // `Content-Type` included).
    let body_bytes = body.len();
    let mut request = Request::new(Body::from(body));
    *request.headers_mut() = headers;
    let Json(tests) = Json::<FunctionTests>::from_request(request, &state).await?;
    tests
        .check(body_bytes)
        .map_err(|invalid| ApiError::Invalid(invalid.0))?;
    if !store::replace_function_tests(&state.db, &principal.namespace, id, &tests.tests).await? {
        return Err(ApiError::FunctionNotFound(id.to_string()));
    }
    tracing::info!(id, tests = tests.tests.len(), "function tests replaced");
    Ok(axum::Json(tests))
}
