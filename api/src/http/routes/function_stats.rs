//! `GET /functions/{id}/stats`: a function's calls, errors and latency over a recent window,
//! from its invocation records, within the key's namespace.

use crate::domain::auth::{Principal, Scope};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{Path, Query};
use crate::http::state::AppState;
use crate::store::{self, FunctionStats};
use axum::extract::State;
use serde::Deserialize;
use std::ops::RangeInclusive;

/// The windows a client may ask for, in seconds: a minute to a day.
const WINDOW_SECS: RangeInclusive<i64> = 60..=86_400;

/// `?window_secs=3600`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Seconds back from now that the stats cover.
    #[serde(default = "default_window")]
    #[param(minimum = 60, maximum = 86400, default = 3600)]
    window_secs: i64,
}

fn default_window() -> i64 {
    3600
}

/// A function's calls over the last `window_secs` (`manage` or `read` scope): how many, how
/// many failed, and the median and 99th percentile of their duration.
#[utoipa::path(
    get,
    path = "/functions/{id}/stats",
    tag = "functions",
    summary = "Get a function's recent call stats",
    params(crate::http::responses::FunctionId, StatsQuery),
    responses(
        (status = 200, description = "Its calls in the window (every record: sync calls, HTTP-trigger calls, async attempts); `p50_ms` and `p99_ms` null without calls.", body = FunctionStats),
        (status = 404, description = "`function_not_found`: no such function in the key's namespace.", body = ErrorBody),
        (status = 422, description = "`invalid_request`: the id is not an integer, or `window_secs` is not from 60 to 86400.", body = ErrorBody),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn get_function_stats(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(query): Query<StatsQuery>,
) -> Result<axum::Json<FunctionStats>, ApiError> {
    principal.require_any(&[Scope::Manage, Scope::Read])?;
    check_window(query.window_secs)?;
    store::function_stats(&state.db, &principal.namespace, id, query.window_secs)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::FunctionNotFound(id.to_string()))
}

/// 422 unless `window_secs` is within [`WINDOW_SECS`].
fn check_window(window_secs: i64) -> Result<(), ApiError> {
    if WINDOW_SECS.contains(&window_secs) {
        return Ok(());
    }
    Err(ApiError::Invalid(format!(
        "window_secs must be from {} to {}; got {window_secs}",
        WINDOW_SECS.start(),
        WINDOW_SECS.end()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::FromRequestParts;

    async fn query(uri: &str) -> Result<StatsQuery, ApiError> {
        let (mut parts, ()) = axum::http::Request::get(uri).body(()).unwrap().into_parts();
        Query::<StatsQuery>::from_request_parts(&mut parts, &())
            .await
            .map(|Query(value)| value)
    }

    #[tokio::test]
    async fn the_window_is_an_hour_unless_asked_and_a_minute_to_a_day() {
        assert_eq!(query("/").await.unwrap().window_secs, 3600);
        assert_eq!(query("/?window_secs=60").await.unwrap().window_secs, 60);
        assert!(query("/?window_secs=hour").await.is_err());
        for (window, allowed) in [
            (59, false),
            (60, true),
            (3600, true),
            (86_400, true),
            (86_401, false),
            (-1, false),
        ] {
            assert_eq!(check_window(window).is_ok(), allowed, "{window}");
        }
        let refused = check_window(0).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "window_secs must be from 60 to 86400; got 0"
        );
    }
}
