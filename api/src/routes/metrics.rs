//! `GET /metrics/`: the invocation records of the key's namespace, newest first (the seed's
//! "metrics"). Prometheus metrics live on a separate listener (`METRICS_ADDR`).

use crate::auth::{Principal, Scope};
use crate::db::{self, InvocationRecord};
use crate::error::ApiError;
use crate::extract::Query;
use crate::routes::functions::check_page;
use crate::state::AppState;
use axum::extract::State;
use serde::Deserialize;
use std::time::Duration;

const FLUSH_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize)]
pub struct InvocationFilter {
    function: Option<String>,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

pub async fn list_invocations(
    principal: Principal,
    State(state): State<AppState>,
    Query(filter): Query<InvocationFilter>,
) -> Result<axum::Json<Vec<InvocationRecord>>, ApiError> {
    principal.require(Scope::Read)?;
    check_page(0, filter.limit, 1000)?;
    // Records are written in batches: make sure this client sees the calls it just made.
    state.records.flush(FLUSH_WAIT).await;
    let records = db::list_invocations(
        &state.db,
        &principal.namespace,
        filter.function.as_deref(),
        filter.limit,
    )
    .await?;
    Ok(axum::Json(records))
}
