//! API keys: `POST /keys/` (the key is shown once), `GET /keys/`, `DELETE /keys/{id}` (revoked
//! on every replica at once), and `GET /whoami`.
//!
//! An admin key manages the keys of every namespace. A manage key mints, lists and revokes the
//! `invoke` and `read` keys of its own namespace, never `manage` or `admin` ones.

use crate::auth::{self, Principal, Scope};
use crate::db::{self, KeyInfo};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::KeyEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

const MAX_DESCRIPTION_LEN: usize = 256;
/// What a manage key may hand out.
const MINTABLE_BY_MANAGE: [Scope; 2] = [Scope::Invoke, Scope::Read];

/// The body of `POST /keys/`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyInput {
    /// Default: the caller's namespace.
    #[serde(default)]
    namespace: Option<String>,
    scopes: Vec<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

/// A key just made: its listing and, this once, the key itself.
#[derive(Debug, Serialize)]
pub struct CreatedKey {
    #[serde(flatten)]
    info: KeyInfo,
    /// The key, shown only here: the api keeps a hash of it.
    key: String,
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
    let row = db::NewKeyRow {
        id: key.id,
        namespace: &namespace,
        scopes: &scopes,
        description: &input.description,
        secret_hash: &key.secret_hash,
        expires_at: input.expires_at,
    };
    let info = db::insert_key(&state.db, &row)
        .await?
        .ok_or_else(|| ApiError::Invalid(format!("namespace {namespace:?} does not exist")))?;
    tracing::info!(key_id = %key.id.simple(), namespace = %namespace, "key made");
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedKey { info, key: key.key }),
    ))
}

/// `?namespace=` (admin keys only).
#[derive(Debug, Deserialize)]
pub struct KeyFilter {
    namespace: Option<String>,
}

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
        db::list_keys(&state.db, namespace.as_deref()).await?,
    ))
}

pub async fn delete_key(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    principal.require_any(&[Scope::Admin, Scope::Manage])?;
    let not_found = || ApiError::KeyNotFound(id.clone());
    let key_id = Uuid::try_parse(&id).map_err(|_| not_found())?;
    let info = db::get_key_info(&state.db, key_id)
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
    if !db::revoke_key(&state.db, key_id).await? {
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
    Ok(axum::Json(json!({ "message": "Key revoked" })))
}

/// Who the key is, for scripts: its namespace, scopes and id.
pub async fn get_whoami(principal: Principal) -> axum::Json<Value> {
    axum::Json(json!({
        "namespace": principal.namespace,
        "scopes": principal.scopes,
        "key_id": principal.key_id,
    }))
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
