//! API keys: `POST /keys/` (the key is shown once), `GET /keys/`, `DELETE /keys/{id}` (revoked
//! on every replica at once), and `GET /whoami`.
//!
//! An admin key manages the keys of every namespace. A manage key mints, lists and revokes the
//! `invoke` and `read` keys of its own namespace, never `manage` or `admin` ones.

use crate::domain::auth::{Principal, Scope};
use crate::http::bodies::Message;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{Json, Path, Query};
use crate::http::state::AppState;
use crate::services::keys::{CreatedKey, KeyInput};
use crate::store::KeyInfo;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// The body of `GET /whoami`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    pub namespace: String,
    pub scopes: Vec<Scope>,
    /// The key's id; `ADMIN_KEY` for the bootstrap setting, null with auth disabled.
    pub key_id: Option<String>,
}

/// Makes a key; the answer is the only time the key is shown (`admin`, or `manage` for its
/// own namespace's `invoke` and `read` keys).
#[utoipa::path(
    post,
    path = "/keys/",
    tag = "keys",
    summary = "Make an API key",
    request_body = KeyInput,
    responses(
        (status = 201, description = "Made; `key` is shown this once.", body = CreatedKey),
        (status = 404, description = "`namespace_not_found`: the namespace does not exist.", body = ErrorBody),
        (status = 429, description = "`quota_keys`: the namespace holds its `keys` quota of live keys.", body = ErrorBody),
        crate::http::responses::BodyErrors,
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn create_key(
    principal: Principal,
    State(state): State<AppState>,
    Json(input): Json<KeyInput>,
) -> Result<(StatusCode, axum::Json<CreatedKey>), ApiError> {
    principal.require_any(&[Scope::Admin, Scope::Manage])?;
    let created = state.keys.create(&principal, input).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// `?namespace=` (admin keys only).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyFilter {
    /// Only this namespace's keys (admin keys; a manage key always sees its own namespace's).
    #[param(pattern = r"^[^\u0000]*$")]
    namespace: Option<String>,
}

/// The keys, without their secrets (`admin`: every namespace's; `manage`: its own namespace's).
#[utoipa::path(
    get,
    path = "/keys/",
    tag = "keys",
    summary = "List API keys",
    params(KeyFilter),
    responses(
        (status = 200, description = "The keys, without secrets.", body = Vec<KeyInfo>),
        (status = 422, description = "`invalid_request`: the query is malformed.", body = ErrorBody),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn list_keys(
    principal: Principal,
    State(state): State<AppState>,
    Query(filter): Query<KeyFilter>,
) -> Result<axum::Json<Vec<KeyInfo>>, ApiError> {
    principal.require_any(&[Scope::Admin, Scope::Manage])?;
    let keys = state.keys.list(&principal, filter.namespace).await?;
    Ok(axum::Json(keys))
}

/// Revokes a key, on every api replica at once (`admin`; `manage` for its namespace's
/// `invoke` and `read` keys).
#[utoipa::path(
    delete,
    path = "/keys/{id}",
    tag = "keys",
    summary = "Revoke an API key",
    params(("id" = String, Path, description = "The key's id (32 hex digits, as in `faas_<id>_…`).", example = "0b9d2f3c4e5a6b7c8d9e0f1a2b3c4d5e")),
    responses(
        (status = 200, description = "Revoked.", body = Message, example = json!({"message": "Key revoked"})),
        (status = 404, description = "`key_not_found`: no such key (or one of another namespace).", body = ErrorBody),
        (status = 422, description = "`invalid_request`: the id holds a NUL.", body = ErrorBody),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn delete_key(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Message>, ApiError> {
    principal.require_any(&[Scope::Admin, Scope::Manage])?;
    state.keys.revoke(&principal, &id).await?;
    Ok(axum::Json(Message::new("Key revoked")))
}

/// Who the key is, for scripts: its namespace, scopes and id (any key).
#[utoipa::path(
    get,
    path = "/whoami",
    tag = "keys",
    summary = "Describe the calling key",
    responses(
        (status = 200, description = "The key's namespace, scopes and id.", body = WhoAmI,
            example = json!({"namespace": "default", "scopes": ["admin"], "key_id": "ADMIN_KEY"})),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn get_whoami(principal: Principal) -> axum::Json<WhoAmI> {
    axum::Json(WhoAmI {
        namespace: principal.namespace,
        scopes: principal.scopes,
        key_id: principal.key_id,
    })
}
