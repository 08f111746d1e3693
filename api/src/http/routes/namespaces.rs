//! Namespaces (admin keys only): `POST /namespaces/`, `GET /namespaces/`, `PATCH
//! /namespaces/{name}` (its quotas),
//! `DELETE /namespaces/{name}` (with everything of it: functions, keys, records, async
//! invocations, leases, unshared artifacts).

use crate::domain::auth::{Principal, Scope};
use crate::http::bodies::Message;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{Json, Path};
use crate::http::state::AppState;
use crate::services::namespaces::{NamespaceInput, NamespacePatch, NamespaceView};
use axum::extract::State;
use axum::http::StatusCode;

/// Creates a namespace (`admin` scope).
#[utoipa::path(
    post,
    path = "/namespaces/",
    tag = "namespaces",
    summary = "Create a namespace",
    request_body = NamespaceInput,
    responses(
        (status = 201, description = "Created.", body = NamespaceView),
        (status = 409, description = "`conflict`: the name is taken.", body = ErrorBody),
        crate::http::responses::BodyErrors,
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn create_namespace(
    principal: Principal,
    State(state): State<AppState>,
    Json(input): Json<NamespaceInput>,
) -> Result<(StatusCode, axum::Json<NamespaceView>), ApiError> {
    principal.require(Scope::Admin)?;
    let namespace = state.namespaces.create(input).await?;
    Ok((StatusCode::CREATED, axum::Json(namespace)))
}

/// Every namespace (`admin` scope).
#[utoipa::path(
    get,
    path = "/namespaces/",
    tag = "namespaces",
    summary = "List namespaces",
    responses(
        (status = 200, description = "The namespaces, with their quotas.", body = Vec<NamespaceView>),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn list_namespaces(
    principal: Principal,
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<NamespaceView>>, ApiError> {
    principal.require(Scope::Admin)?;
    Ok(axum::Json(state.namespaces.list().await?))
}

/// Changes a namespace's quotas (`admin` scope): a field set is that limit, `null` the
/// platform's default, an absent one unchanged.
#[utoipa::path(
    patch,
    path = "/namespaces/{name}",
    tag = "namespaces",
    summary = "Change a namespace's quotas",
    params(("name" = String, Path, description = "The namespace.", pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", example = "team-a")),
    request_body = NamespacePatch,
    responses(
        (status = 200, description = "Changed.", body = NamespaceView),
        (status = 404, description = "`namespace_not_found`.", body = ErrorBody),
        crate::http::responses::BodyErrors,
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn update_namespace(
    principal: Principal,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(patch): Json<NamespacePatch>,
) -> Result<axum::Json<NamespaceView>, ApiError> {
    principal.require(Scope::Admin)?;
    Ok(axum::Json(state.namespaces.update(&name, patch).await?))
}

/// Deletes a namespace and everything of it: functions, keys, invocation records, async
/// invocations (their queued jobs then do nothing), leases, and the artifacts no other
/// namespace uses (`admin` scope). A namespace made again with the name starts empty.
#[utoipa::path(
    delete,
    path = "/namespaces/{name}",
    tag = "namespaces",
    summary = "Delete a namespace",
    params(("name" = String, Path, description = "The namespace.", pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", example = "team-a")),
    responses(
        (status = 200, description = "Deleted, with its functions, keys, records and async invocations.", body = Message, example = json!({"message": "Namespace deleted"})),
        (status = 404, description = "`namespace_not_found`.", body = ErrorBody),
        (status = 409, description = "`conflict`: it is `default`.", body = ErrorBody),
        (status = 422, description = "`invalid_request`: the name holds a NUL.", body = ErrorBody),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn delete_namespace(
    principal: Principal,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<Message>, ApiError> {
    principal.require(Scope::Admin)?;
    state.namespaces.delete(&name).await?;
    Ok(axum::Json(Message::new("Namespace deleted")))
}
