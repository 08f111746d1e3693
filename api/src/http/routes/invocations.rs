//! `/invocations/`: every invocation of the key's namespace, sync, async and scheduled, with
//! its status, attempts and (async) result and logs; and the redrive of a dead-lettered one.

use crate::domain::async_status::InvocationStatus;
use crate::domain::auth::{Principal, Scope};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{Path, Query, check_page};
use crate::http::state::AppState;
use crate::services::records;
use crate::store::{self, InvocationView, Redriven};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

/// `?function=NAME&status=dead_lettered&limit=20`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListFilter {
    /// Only this function's invocations.
    #[param(pattern = r"^[^\u0000]*$")]
    function: Option<String>,
    /// Only invocations with this status.
    #[param(pattern = "^(queued|running|succeeded|failed|timeout|dead_lettered|expired)$")]
    status: Option<String>,
    /// Invocations to list, newest first.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: i64,
}

fn default_limit() -> i64 {
    20
}

/// The status `text` names; 422 naming every status otherwise.
fn parse_status(text: &str) -> Result<InvocationStatus, ApiError> {
    InvocationStatus::parse(text).ok_or_else(|| {
        let all: Vec<&str> = InvocationStatus::ALL.iter().map(|s| s.as_str()).collect();
        ApiError::Invalid(format!(
            "status must be one of {}; got {text:?}",
            all.join(", ")
        ))
    })
}

/// The invocation `text` names in `namespace`; 404 for an id that is not a UUID too.
fn parse_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::InvocationNotFound(text.chars().take(64).collect()))
}

/// Lists the key's namespace's invocations, newest first (`read` or `invoke` scope).
#[utoipa::path(
    get,
    path = "/invocations/",
    tag = "invocations",
    summary = "List invocations",
    description = "Sync (`/execute`, routes), async and scheduled invocations of the key's \
        namespace, newest first. Needs the `read` or `invoke` scope.",
    params(ListFilter),
    responses(
        (status = 200, description = "Invocations, newest first.", body = Vec<InvocationView>),
        (status = 422, description = "`invalid_request`: `limit` or `status` out of range, or the query is malformed.", body = ErrorBody),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn list_invocations(
    principal: Principal,
    State(state): State<AppState>,
    Query(filter): Query<ListFilter>,
) -> Result<axum::Json<Vec<InvocationView>>, ApiError> {
    principal.require_any(&[Scope::Read, Scope::Invoke])?;
    check_page(0, filter.limit, 100)?;
    let status = filter.status.as_deref().map(parse_status).transpose()?;
    // Sync records are written in batches: this client sees the calls it just made.
    state.records.flush(records::FLUSH_WAIT).await;
    let views = store::list_invocation_views(
        &state.db,
        &principal.namespace,
        filter.function.as_deref(),
        status,
        filter.limit,
    )
    .await?;
    Ok(axum::Json(views))
}

/// One invocation of the key's namespace (`read` or `invoke` scope).
#[utoipa::path(
    get,
    path = "/invocations/{id}",
    tag = "invocations",
    summary = "Get an invocation",
    params(("id" = String, Path, description = "The invocation id (a UUID).")),
    responses(
        (status = 200, description = "The invocation.", body = InvocationView),
        (status = 404, description = "`invocation_not_found`: none with that id in the key's namespace.", body = ErrorBody),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn get_invocation(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<InvocationView>, ApiError> {
    principal.require_any(&[Scope::Read, Scope::Invoke])?;
    let uuid = parse_id(&id)?;
    state.records.flush(records::FLUSH_WAIT).await;
    store::get_invocation(&state.db, &principal.namespace, uuid)
        .await?
        .map(axum::Json)
        .ok_or(ApiError::InvocationNotFound(id))
}

/// Runs a dead-lettered invocation again, with its retries afresh (`invoke` scope).
#[utoipa::path(
    post,
    path = "/invocations/{id}/retry",
    tag = "invocations",
    summary = "Redrive a dead-lettered invocation",
    description = "Queues the invocation again with the same event and id: its next attempt \
        runs at once, with `max_retries` retries afresh and its age counted from now. Needs \
        the `invoke` scope.",
    params(("id" = String, Path, description = "The invocation id (a UUID).")),
    responses(
        (status = 202, description = "Queued again.", body = InvocationView),
        (status = 404, description = "`invocation_not_found`: none with that id in the key's namespace (sync calls cannot be redriven either).", body = ErrorBody),
        (status = 409, description = "`conflict`: it is not dead-lettered.", body = ErrorBody),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn retry_invocation(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<InvocationView>), ApiError> {
    principal.require(Scope::Invoke)?;
    let uuid = parse_id(&id)?;
    match store::redrive(&state.db, &principal.namespace, uuid).await? {
        Redriven::Requeued { next_attempt } => {
            // A failed publish leaves it `accepting`: the sweeper publishes it.
            if let Err(error) =
                crate::services::dispatch::publish_attempt(&state.dispatch, uuid, next_attempt)
                    .await
            {
                tracing::warn!(%error, invocation_id = %uuid, "redriven invocation not published yet; the sweeper will");
            }
            tracing::info!(invocation_id = %uuid, next_attempt, "invocation redriven");
        }
        Redriven::NotDeadLettered(status) => {
            return Err(ApiError::Conflict(format!(
                "invocation {uuid} is {status}, not dead_lettered: only a dead-lettered invocation can be retried"
            )));
        }
        Redriven::NotFound => {
            return Err(ApiError::InvocationNotFound(id));
        }
    }
    let view = store::get_invocation(&state.db, &principal.namespace, uuid)
        .await?
        .ok_or(ApiError::InvocationNotFound(id))?;
    Ok((StatusCode::ACCEPTED, axum::Json(view)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_filter_names_one_status_or_is_told_them_all() {
        assert_eq!(
            parse_status("dead_lettered").unwrap(),
            InvocationStatus::DeadLettered
        );
        let error = parse_status("accepting").unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"status must be one of queued, running, succeeded, failed, timeout, dead_lettered, expired; got "accepting""#
        );
    }
}
