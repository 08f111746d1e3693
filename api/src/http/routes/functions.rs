//! Function CRUD: `/functions/` and `/functions/{id}`, within the key's namespace: a function
//! of another namespace is 404, exactly as if it did not exist.

use crate::domain::auth::{Principal, Scope};
use crate::http::bodies::Message;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{Json, Path, Query, check_page};
use crate::http::state::AppState;
use crate::services::{FunctionInput, SaveOptions};
use crate::store::{self, Build, Function};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Bodies larger than a single-source function's (packages) read at once; the others wait.
/// Each holds the body, the zip and its files in memory, up to a few hundred MB.
pub const UPLOADS_AT_ONCE: usize = 2;

/// What [`admit_upload`] needs.
#[derive(Clone)]
pub struct UploadGuard {
    pub state: AppState,
    pub permits: Arc<Semaphore>,
    /// The largest body of a function saved with `code`: larger ones carry a package.
    pub source_body_max: usize,
}

/// Lets a body larger than a single-source function's be read only for a key that may save
/// functions, and only [`UPLOADS_AT_ONCE`] of them at a time: an anonymous client must not
/// make the api buffer tens of MB, nor a key hundreds of them at once (a refused body is
/// discarded as it arrives, as an oversized one is). Smaller bodies pass through (their
/// handler checks the key as usual).
pub async fn admit_upload(
    State(guard): State<UploadGuard>,
    request: Request,
    next: Next,
) -> Response {
    let declared = crate::http::limits::declared_length(request.headers());
    let chunked = declared.is_none() && request.headers().contains_key(header::TRANSFER_ENCODING);
    let large = declared.is_some_and(|length| length > guard.source_body_max as u64) || chunked;
    if !large {
        return next.run(request).await;
    }
    let allowed = match Principal::from_headers(&guard.state, request.headers()).await {
        Ok(principal) => principal.require(Scope::Manage).map_err(ApiError::from),
        Err(error) => Err(error),
    };
    if let Err(error) = allowed {
        // Discarded, never held: a client that writes its whole body first reads the 401.
        crate::http::limits::discard(request.into_body()).await;
        let mut response = error.into_response();
        // What was not drained must not be taken for the next request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let Ok(_permit) = guard.permits.acquire().await else {
        return ApiError::Overloaded("the api is shutting down".into()).into_response();
    };
    next.run(request).await
}

/// `?skip=0&limit=100`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Functions to pass over, in id order.
    #[serde(default)]
    #[param(minimum = 0, default = 0)]
    skip: i64,
    /// Functions to list.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

/// `?wait=true`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SaveQuery {
    /// Answer once the dependencies' build has ended (at most `BUILD_WAIT_SECS`), rather than
    /// at once with the build pending; at once anyway when no worker takes builds.
    #[serde(default)]
    wait: bool,
}

/// What the caller and `?wait` ask of a save.
fn save_options(principal: &Principal, query: &SaveQuery) -> SaveOptions {
    SaveOptions {
        may_catch_all: principal.has(Scope::Admin),
        wait: query.wait,
    }
}

/// A function as `principal` may see it: `env` values only for `manage`.
fn view(function: &Function, principal: &Principal) -> Value {
    let mut value = serde_json::to_value(function).expect("a function always serializes");
    if !principal.has(Scope::Manage)
        && let Some(env) = value.get_mut("env").and_then(Value::as_object_mut)
    {
        for secret in env.values_mut() {
            *secret = Value::Null;
        }
    }
    value
}

/// Creates a function in the key's namespace (`manage` scope).
#[utoipa::path(
    post,
    path = "/functions/",
    tag = "functions",
    summary = "Create a function",
    params(SaveQuery),
    request_body = FunctionInput,
    responses(
        (status = 201, description = "Created, at version 1.", body = Function),
        (status = 404, description = "`namespace_not_found`: the key's namespace was deleted meanwhile.", body = ErrorBody),
        (status = 409, description = "`conflict`: the name is taken in the namespace, or the route anywhere.", body = ErrorBody),
        crate::http::responses::BodyErrors,
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn create_function(
    principal: Principal,
    State(state): State<AppState>,
    Query(options): Query<SaveQuery>,
    Json(input): Json<FunctionInput>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    principal.require(Scope::Manage)?;
    let function = state
        .functions
        .create(
            &principal.namespace,
            input,
            save_options(&principal, &options),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(view(&function, &principal))))
}

/// The key's namespace's functions, in id order (`manage` or `read` scope; `read` keys see
/// `env` values as null).
#[utoipa::path(
    get,
    path = "/functions/",
    tag = "functions",
    summary = "List functions",
    params(Page),
    responses(
        (status = 200, description = "A page of functions.", body = Vec<Function>),
        (status = 422, description = "`invalid_request`: `skip` or `limit` out of range.", body = ErrorBody),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn list_functions(
    principal: Principal,
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<axum::Json<Vec<Value>>, ApiError> {
    principal.require_any(&[Scope::Manage, Scope::Read])?;
    check_page(page.skip, page.limit, 1000)?;
    let functions =
        store::list_functions(&state.db, &principal.namespace, page.skip, page.limit).await?;
    Ok(axum::Json(
        functions.iter().map(|f| view(f, &principal)).collect(),
    ))
}

/// One function (`manage` or `read` scope).
#[utoipa::path(
    get,
    path = "/functions/{id}",
    tag = "functions",
    summary = "Get a function",
    params(crate::http::responses::FunctionId),
    responses(
        (status = 200, description = "The function.", body = Function),
        (status = 404, description = "`function_not_found`: no such function in the key's namespace.", body = ErrorBody),
        (status = 422, description = "`invalid_request`: the id is not an integer.", body = ErrorBody),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn get_function(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<Value>, ApiError> {
    principal.require_any(&[Scope::Manage, Scope::Read])?;
    store::get_function(&state.db, &principal.namespace, id)
        .await?
        .map(|function| axum::Json(view(&function, &principal)))
        .ok_or_else(|| ApiError::FunctionNotFound(id.to_string()))
}

/// Replaces a function's definition (`manage` scope); its version goes up by one and the next
/// call runs the new code.
#[utoipa::path(
    put,
    path = "/functions/{id}",
    tag = "functions",
    summary = "Update a function",
    params(crate::http::responses::FunctionId, SaveQuery),
    request_body = FunctionInput,
    responses(
        (status = 200, description = "Updated, at the next version.", body = Function),
        (status = 404, description = "`function_not_found` or `namespace_not_found`.", body = ErrorBody),
        (status = 409, description = "`conflict`: the new name or route is taken.", body = ErrorBody),
        crate::http::responses::BodyErrors,
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn update_function(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(options): Query<SaveQuery>,
    Json(input): Json<FunctionInput>,
) -> Result<axum::Json<Value>, ApiError> {
    principal.require(Scope::Manage)?;
    let function = state
        .functions
        .update(
            &principal.namespace,
            id,
            input,
            save_options(&principal, &options),
        )
        .await?;
    Ok(axum::Json(view(&function, &principal)))
}

/// The build of a function's dependencies, with its whole log (`manage` or `read` scope).
#[utoipa::path(
    get,
    path = "/functions/{id}/build",
    tag = "functions",
    summary = "Get a function's dependency build",
    params(crate::http::responses::FunctionId),
    responses(
        (status = 200, description = "The build, its whole log included; `null` when the function has no dependencies (nothing to build).", body = Option<Build>),
        (status = 404, description = "`function_not_found`: no such function in the key's namespace.", body = ErrorBody),
        (status = 422, description = "`invalid_request`: the id is not an integer.", body = ErrorBody),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn get_function_build(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<Option<Build>>, ApiError> {
    principal.require_any(&[Scope::Manage, Scope::Read])?;
    match store::get_function_build(&state.db, &principal.namespace, id).await? {
        Some(build) => Ok(axum::Json(build)),
        None => Err(ApiError::FunctionNotFound(id.to_string())),
    }
}

/// Deletes a function (`manage` scope); its warm containers go too.
#[utoipa::path(
    delete,
    path = "/functions/{id}",
    tag = "functions",
    summary = "Delete a function",
    params(crate::http::responses::FunctionId),
    responses(
        (status = 200, description = "Deleted.", body = Message, example = json!({"message": "Function deleted"})),
        (status = 404, description = "`function_not_found`: no such function in the key's namespace.", body = ErrorBody),
        (status = 422, description = "`invalid_request`: the id is not an integer.", body = ErrorBody),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn delete_function(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<Message>, ApiError> {
    principal.require(Scope::Manage)?;
    if !state.functions.delete(&principal.namespace, id).await? {
        return Err(ApiError::FunctionNotFound(id.to_string()));
    }
    Ok(axum::Json(Message::new("Function deleted")))
}
