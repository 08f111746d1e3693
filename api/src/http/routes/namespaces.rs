//! Namespaces (admin keys only): `POST /namespaces/`, `GET /namespaces/`,
//! `DELETE /namespaces/{name}` (refused while it holds functions; its keys go with it).

use crate::domain::auth::{DEFAULT_NAMESPACE, Principal, Scope};
use crate::http::bodies::Message;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{Json, Path};
use crate::http::state::AppState;
use crate::store::{self, Namespace, NamespaceChange};
use axum::extract::State;
use axum::http::StatusCode;
use common::{KeyEvent, Runtime};
use serde::Deserialize;

const MAX_CONCURRENCY_RANGE: std::ops::RangeInclusive<i64> = 1..=100_000;

/// The body of `POST /namespaces/`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"name": "team-a", "allowed_runtimes": ["gvisor"], "max_concurrency": 50})))]
pub struct NamespaceInput {
    /// A DNS label: 1 to 63 lower-case letters, digits and inner hyphens.
    #[schema(
        pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        min_length = 1,
        max_length = 63
    )]
    name: String,
    /// Default: both. `["gvisor"]` makes the namespace untrusted: its functions never run
    /// under runc, `/execute` included.
    #[serde(default)]
    #[schema(min_items = 1)]
    allowed_runtimes: Option<Vec<Runtime>>,
    /// Calls of all its functions at once, across the cluster; absent or null: no limit.
    #[serde(
        default,
        deserialize_with = "crate::domain::wire::optional_whole_number"
    )]
    #[schema(minimum = 1, maximum = 100000)]
    max_concurrency: Option<i64>,
}

/// A DNS label: lower-case letters, digits and inner hyphens, 1 to 63 characters (it ends up
/// in metric labels, and may one day in host names).
fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Creates a namespace (`admin` scope).
#[utoipa::path(
    post,
    path = "/namespaces/",
    tag = "namespaces",
    summary = "Create a namespace",
    request_body = NamespaceInput,
    responses(
        (status = 201, description = "Created.", body = Namespace),
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
) -> Result<(StatusCode, axum::Json<Namespace>), ApiError> {
    principal.require(Scope::Admin)?;
    if !valid_name(&input.name) {
        return Err(ApiError::Invalid(format!(
            "a namespace name is 1 to 63 lower-case letters, digits and inner hyphens; got {:?}",
            input.name
        )));
    }
    let mut runtimes = input
        .allowed_runtimes
        .unwrap_or_else(|| Runtime::ALL.to_vec());
    runtimes.sort_by_key(|runtime| runtime.as_str());
    runtimes.dedup();
    if runtimes.is_empty() {
        return Err(ApiError::Invalid(
            "allowed_runtimes must name docker, gvisor or both".into(),
        ));
    }
    if let Some(limit) = input.max_concurrency
        && !MAX_CONCURRENCY_RANGE.contains(&limit)
    {
        return Err(ApiError::Invalid(format!(
            "max_concurrency must be from {} to {}, or null for no limit; got {limit}",
            MAX_CONCURRENCY_RANGE.start(),
            MAX_CONCURRENCY_RANGE.end()
        )));
    }
    let limit = input.max_concurrency.map(|limit| limit as i32);
    let namespace = store::insert_namespace(&state.db, &input.name, &runtimes, limit)
        .await
        .map_err(|error| match error {
            NamespaceChange::Taken => {
                ApiError::Conflict(format!("namespace {:?} already exists", input.name))
            }
            other => changed(other, &input.name),
        })?;
    tracing::info!(namespace = %namespace.name, "namespace created");
    Ok((StatusCode::CREATED, axum::Json(namespace)))
}

/// Every namespace (`admin` scope).
#[utoipa::path(
    get,
    path = "/namespaces/",
    tag = "namespaces",
    summary = "List namespaces",
    responses(
        (status = 200, description = "The namespaces.", body = Vec<Namespace>),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn list_namespaces(
    principal: Principal,
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<Namespace>>, ApiError> {
    principal.require(Scope::Admin)?;
    Ok(axum::Json(store::list_namespaces(&state.db).await?))
}

/// Deletes a namespace that holds no functions, and its keys with it (`admin` scope).
#[utoipa::path(
    delete,
    path = "/namespaces/{name}",
    tag = "namespaces",
    summary = "Delete a namespace",
    params(("name" = String, Path, description = "The namespace.", pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", example = "team-a")),
    responses(
        (status = 200, description = "Deleted, with its keys.", body = Message, example = json!({"message": "Namespace deleted"})),
        (status = 404, description = "`namespace_not_found`.", body = ErrorBody),
        (status = 409, description = "`conflict`: it still holds functions, or it is `default`.", body = ErrorBody),
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
    if name == DEFAULT_NAMESPACE {
        return Err(ApiError::Conflict(
            "namespace default cannot be deleted: it holds the bootstrap admin key and, with auth disabled, every function".into(),
        ));
    }
    store::delete_namespace(&state.db, &name)
        .await
        .map_err(|error| changed(error, &name))?;
    // Its keys went with it (ON DELETE CASCADE): no replica may trust them any more.
    if let Some(keys) = &state.keys {
        keys.invalidate(None, Some(&name));
    }
    state
        .invoker
        .publish_key_event(&KeyEvent {
            key_id: None,
            namespace: Some(name.clone()),
        })
        .await;
    tracing::info!(namespace = %name, "namespace deleted");
    Ok(axum::Json(Message::new("Namespace deleted")))
}

fn changed(error: NamespaceChange, name: &str) -> ApiError {
    match error {
        NamespaceChange::Taken => ApiError::Conflict(format!("namespace {name:?} already exists")),
        NamespaceChange::HoldsFunctions => ApiError::Conflict(format!(
            "namespace {name:?} still holds functions; delete them first"
        )),
        NamespaceChange::NotFound => ApiError::NamespaceNotFound(name.to_owned()),
        NamespaceChange::Db(error) => ApiError::Database(error),
    }
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn namespace_names_are_dns_labels() {
        for good in ["a", "team-a", "t1", &"x".repeat(63)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "-a", "a-", "Team", "a_b", "a.b", "é", &"x".repeat(64)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
