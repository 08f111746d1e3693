//! `/invocations/`: every invocation of the key's namespace, sync, async and scheduled, with
//! its status, attempts, logs and (async) result; the redrive of a dead-lettered one; and the
//! live stream of finished calls (`/invocations/stream`, server-sent events).

use crate::domain::async_status::InvocationStatus;
use crate::domain::auth::{Principal, Scope};
use crate::domain::stream::{StreamFilter, StreamStatus};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{Path, Query, check_page};
use crate::http::state::AppState;
use crate::services::records;
use crate::services::streams::StreamRequest;
use crate::store::{self, InvocationView, Redriven};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

/// `?function=NAME&status=dead_lettered&since=2026-12-01T00:00:00Z&limit=20`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListFilter {
    /// Only this function's invocations.
    #[param(pattern = r"^[^\u0000]*$")]
    function: Option<String>,
    /// Only invocations with this status.
    #[param(pattern = "^(queued|running|succeeded|failed|timeout|dead_lettered|expired)$")]
    status: Option<String>,
    /// Only invocations created at or after this instant (RFC 3339).
    since: Option<DateTime<Utc>>,
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
        filter.since,
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
    match crate::services::dispatch::redrive(&state.dispatch, &principal.namespace, uuid).await? {
        Redriven::Requeued { .. } => {}
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

/// `?function=NAME&status=failed&after=41`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Only this function's calls.
    #[param(pattern = r"^[^\u0000]*$")]
    function: Option<String>,
    /// `succeeded`: calls whose status is `success`; `failed`: any other.
    #[param(pattern = "^(succeeded|failed)$")]
    status: Option<String>,
    /// Replay the stored calls after this `seq` first, as the `Last-Event-ID` header does
    /// (the header wins when both are sent).
    #[param(minimum = 0)]
    after: Option<i64>,
}

/// Streams the key's namespace's finished calls as server-sent events (`read` or `invoke`).
#[utoipa::path(
    get,
    path = "/invocations/stream",
    tag = "invocations",
    summary = "Follow invocations live",
    description = "Server-sent events, one per finished call of the key's namespace (sync, \
        HTTP trigger, async attempt, schedule tick) on any api replica: `id: <seq>` (increasing \
        in storage order), `event: invocation`, `data:` the call's record as one line of JSON \
        (`StreamedRecord`), and a `: keep-alive` comment after every 10 s of silence. With \
        `Last-Event-ID: N` (or `after=N`) the stored calls after `seq` N come first, oldest \
        first, then the live ones, none twice; without, only calls that finish after the stream \
        opened. A client that falls behind is disconnected and resumes with `Last-Event-ID`. \
        At most `STREAM_CLIENTS` streams per namespace per api replica. The stream ends when \
        the api shuts down. Needs the `read` or `invoke` scope.",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this `seq`: the id of the last event received."),
    ),
    responses(
        (status = 200, description = "An endless stream of `invocation` events; each `data` is a `StreamedRecord`.", content_type = "text/event-stream", body = String),
        (status = 422, description = "`invalid_request`: `status`, `after` or `Last-Event-ID` is not what the stream takes.", body = ErrorBody),
        (status = 429, description = "`too_many_streams`: the namespace holds `STREAM_CLIENTS` streams open on this api replica.", body = ErrorBody),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn stream_invocations(
    principal: Principal,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    principal.require_any(&[Scope::Read, Scope::Invoke])?;
    let status = query
        .status
        .as_deref()
        .map(|text| {
            StreamStatus::parse(text).ok_or_else(|| {
                ApiError::Invalid(format!("status must be succeeded or failed; got {text:?}"))
            })
        })
        .transpose()?;
    let after = crate::http::event_stream::last_event_id(&headers)?.or(query.after);
    if after.is_some_and(|seq| seq < 0) {
        return Err(ApiError::Invalid("after must be 0 or more".into()));
    }
    let request = StreamRequest {
        namespace: principal.namespace,
        filter: StreamFilter {
            function: query.function,
            status,
        },
        after,
    };
    crate::http::event_stream::stream_response(&state, request).await
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
