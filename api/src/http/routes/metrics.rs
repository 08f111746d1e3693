//! `GET /metrics/`: the invocation records of the key's namespace, newest first (the seed's
//! "metrics"). Prometheus metrics live on a separate listener (`METRICS_ADDR`).

use crate::domain::auth::{Principal, Scope};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{Query, check_page};
use crate::http::state::AppState;
use crate::services::records;
use crate::store::{self, InvocationRecord};
use axum::extract::State;
use serde::Deserialize;

/// `?function=NAME&since=2026-12-01T00:00:00Z&limit=100`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvocationFilter {
    /// Only this function's records.
    #[param(pattern = r"^[^\u0000]*$")]
    function: Option<String>,
    /// Only records created at or after this instant (RFC 3339).
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// Records to list, newest first.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

/// The key's namespace's invocation records, newest first (`read` scope); the calls the
/// client just made are among them.
#[utoipa::path(
    get,
    path = "/metrics/",
    tag = "invocations",
    summary = "List invocation records",
    params(InvocationFilter),
    responses(
        (status = 200, description = "Records, newest first.", body = Vec<InvocationRecord>),
        (status = 422, description = "`invalid_request`: `limit` out of range, or the query is malformed.", body = ErrorBody),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn list_invocations(
    principal: Principal,
    State(state): State<AppState>,
    Query(filter): Query<InvocationFilter>,
) -> Result<axum::Json<Vec<InvocationRecord>>, ApiError> {
    principal.require(Scope::Read)?;
    check_page(0, filter.limit, 1000)?;
    // Records are written in batches: make sure this client sees the calls it just made.
    state.records.flush(records::FLUSH_WAIT).await;
    let records = store::list_invocations(
        &state.db,
        &principal.namespace,
        filter.function.as_deref(),
        filter.since,
        filter.limit,
    )
    .await?;
    Ok(axum::Json(records))
}
