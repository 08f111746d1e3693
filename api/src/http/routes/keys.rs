//! API keys: `POST /keys/` (the key is shown once), `GET /keys/`, `DELETE /keys/{id}` (revoked
//! on every replica at once), and `GET /whoami`.
//!
//! An admin key manages the keys of every namespace. A manage key mints, lists and revokes the
//! `invoke` and `read` keys of its own namespace, never `manage` or `admin` ones.

use crate::domain::auth::{self, Principal, Scope};
use crate::http::bodies::Message;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{Json, Path, Query};
use crate::http::state::AppState;
use crate::store::{self, KeyInfo};
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::KeyEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const MAX_DESCRIPTION_LEN: usize = 256;
/// What a manage key may hand out.
const MINTABLE_BY_MANAGE: [Scope; 2] = [Scope::Invoke, Scope::Read];

/// The body of `POST /keys/`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"scopes": ["invoke"], "description": "the checkout service"})))]
pub struct KeyInput {
    /// Absent or null: the caller's namespace. Only an admin key names another.
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000]*$")]
    namespace: Option<String>,
    /// At least one; repeats are ignored. A manage key mints `invoke` and `read` keys only.
    #[schema(value_type = Vec<Scope>, min_items = 1)]
    scopes: Vec<String>,
    /// Whatever helps you remember what it is for: at most 256 characters, no NUL.
    #[serde(default)]
    #[schema(max_length = 256, pattern = r"^[^\u0000]*$")]
    description: String,
    /// When it stops working; must be in the future. Absent or null: never.
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

/// A key just made: its listing and, this once, the key itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(examples(json!({
    "id": "0b9d2f3c4e5a6b7c8d9e0f1a2b3c4d5e", "namespace": "team-a", "scopes": ["invoke"],
    "description": "the shop's frontend", "created_at": "2026-11-27T16:00:00Z",
    "expires_at": null,
    "key": "faas_0b9d2f3c4e5a6b7c8d9e0f1a2b3c4d5e_Zm9yIGV4YW1wbGUgb25seSwgbm90IGEgcmVhbCBrZXk"
})))]
pub struct CreatedKey {
    #[serde(flatten)]
    info: KeyInfo,
    /// The key, shown only here: the api keeps a hash of it. Send it as
    /// `Authorization: Bearer <key>`.
    #[schema(pattern = "^faas_[0-9a-f]{32}_[A-Za-z0-9_-]{43}$")]
    key: String,
}

/// The body of `GET /whoami`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    pub namespace: String,
    pub scopes: Vec<Scope>,
    /// The key's id; `ADMIN_KEY` for the bootstrap setting, null with auth disabled.
    pub key_id: Option<String>,
}

/// Scope names, checked, without repeats, in a fixed order.
fn parse_scopes(names: &[String]) -> Result<Vec<Scope>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::Invalid(
            "scopes must name at least one of admin, manage, invoke, read".into(),
        ));
    }
    let mut scopes = Vec::with_capacity(names.len());
    for name in names {
        let scope = Scope::parse(name).ok_or_else(|| {
            ApiError::Invalid(format!(
                "unknown scope {name:?}; scopes are admin, manage, invoke, read"
            ))
        })?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    scopes.sort();
    Ok(scopes)
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
    let scopes = parse_scopes(&input.scopes)?;
    let namespace = input
        .namespace
        .unwrap_or_else(|| principal.namespace.clone());
    if input.description.chars().count() > MAX_DESCRIPTION_LEN || input.description.contains('\0') {
        return Err(ApiError::Invalid(format!(
            "description must be at most {MAX_DESCRIPTION_LEN} characters, without NUL"
        )));
    }
    // Postgres text cannot hold U+0000: the lookup would fail (a 503) rather than find none.
    if namespace.contains('\0') {
        return Err(ApiError::Invalid(
            "namespace must not contain NUL (U+0000) characters".into(),
        ));
    }
    if input.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ApiError::Invalid("expires_at must be in the future".into()));
    }
    if !principal.has(Scope::Admin) {
        if namespace != principal.namespace {
            return Err(ApiError::Forbidden(
                "a manage key makes keys for its own namespace only".into(),
            ));
        }
        if scopes
            .iter()
            .any(|scope| !MINTABLE_BY_MANAGE.contains(scope))
        {
            return Err(ApiError::Forbidden(
                "a manage key makes invoke and read keys only".into(),
            ));
        }
    }
    let key = auth::new_key();
    let row = store::NewKeyRow {
        id: key.id,
        namespace: &namespace,
        scopes: &scopes,
        description: &input.description,
        secret_hash: &key.secret_hash,
        expires_at: input.expires_at,
    };
    let info = store::insert_key(&state.db, &row)
        .await?
        .ok_or_else(|| ApiError::NamespaceNotFound(namespace.clone()))?;
    tracing::info!(key_id = %key.id.simple(), namespace = %namespace, "key made");
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedKey { info, key: key.key }),
    ))
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
    let namespace = if principal.has(Scope::Admin) {
        filter.namespace
    } else {
        Some(principal.namespace.clone())
    };
    Ok(axum::Json(
        store::list_keys(&state.db, namespace.as_deref()).await?,
    ))
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
    let not_found = || ApiError::KeyNotFound(id.clone());
    let key_id = Uuid::try_parse(&id).map_err(|_| not_found())?;
    let info = store::get_key_info(&state.db, key_id)
        .await?
        .ok_or_else(not_found)?;
    if !principal.has(Scope::Admin) {
        // Another namespace's keys do not exist for this caller.
        if info.namespace != principal.namespace {
            return Err(not_found());
        }
        if info
            .scopes
            .iter()
            .any(|scope| !MINTABLE_BY_MANAGE.contains(scope))
        {
            return Err(ApiError::Forbidden(
                "a manage key revokes invoke and read keys only".into(),
            ));
        }
    }
    if !store::revoke_key(&state.db, key_id).await? {
        return Err(not_found());
    }
    if let Some(keys) = &state.keys {
        keys.invalidate(Some(key_id), None);
    }
    state
        .invoker
        .publish_key_event(&KeyEvent {
            key_id: Some(key_id),
            namespace: None,
        })
        .await;
    tracing::info!(key_id = %key_id.simple(), "key revoked");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_checked_deduplicated_and_ordered() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_scopes(&names(&["read", "invoke", "read"])).unwrap(),
            vec![Scope::Invoke, Scope::Read]
        );
        assert!(matches!(parse_scopes(&[]), Err(ApiError::Invalid(_))));
        assert!(matches!(
            parse_scopes(&names(&["invoke", "root"])),
            Err(ApiError::Invalid(message)) if message.contains("\"root\"")
        ));
    }
}
