//! One function's calls over a recent window (`GET /functions/{id}/stats`), counted from its
//! invocation records.

use super::DbError;
use deadpool_postgres::Pool;
use serde::Serialize;

/// A function's calls over the last `window_secs` seconds.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(examples(json!({
    "window_secs": 3600, "calls": 42, "errors": 1, "p50_ms": 3.2, "p99_ms": 120.5
})))]
pub struct FunctionStats {
    /// The window, ending now.
    pub window_secs: i64,
    /// Its invocation records in the window: sync calls, HTTP-trigger calls, async attempts.
    pub calls: i64,
    /// Those whose status is not `success`.
    pub errors: i64,
    /// The median `duration_ms` (interpolated); null without calls.
    pub p50_ms: Option<f64>,
    /// The 99th percentile of `duration_ms` (interpolated); null without calls.
    pub p99_ms: Option<f64>,
}

/// The stats of function `id` of `namespace` over the last `window_secs` seconds; `None` when
/// it has no such function. Records of a deleted function of the same id are not counted: ids
/// are never reused, and the namespace must match too.
pub async fn function_stats(
    pool: &Pool,
    namespace: &str,
    id: i64,
    window_secs: i64,
) -> Result<Option<FunctionStats>, DbError> {
    let client = pool.get().await?;
    // `invocations_function_id_created_at_idx` (V14) reads the window's records only.
    let row = client
        .query_opt(
            "SELECT count(i.id) AS calls,
                    count(i.id) FILTER (WHERE i.status <> 'success') AS errors,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY i.duration_ms) AS p50,
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY i.duration_ms) AS p99
             FROM functions f
             LEFT JOIN invocations i ON i.function_id = f.id AND i.namespace = f.namespace
                 AND i.created_at >= now() - make_interval(secs => $3)
             WHERE f.id = $1 AND f.namespace = $2
             GROUP BY f.id",
            &[&id, &namespace, &(window_secs as f64)],
        )
        .await?;
    row.map(|row| {
        Ok(FunctionStats {
            window_secs,
            calls: row.try_get("calls")?,
            errors: row.try_get("errors")?,
            p50_ms: row.try_get("p50")?,
            p99_ms: row.try_get("p99")?,
        })
    })
    .transpose()
}

/// One function's line on the console's list: what it is, and its calls over a window.
#[derive(Debug, Clone)]
pub struct FunctionSummary {
    pub id: i64,
    pub name: String,
    pub language: String,
    pub runtime: String,
    pub route: String,
    pub version: i32,
    pub calls: i64,
    pub errors: i64,
    pub cold_starts: i64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The functions of `namespace` (by name, at most `limit`), each with its calls over the last
/// `window_secs` seconds.
pub async fn function_summaries(
    pool: &Pool,
    namespace: &str,
    window_secs: i64,
    limit: i64,
) -> Result<Vec<FunctionSummary>, DbError> {
    let client = pool.get().await?;
    // `invocations_function_id_created_at_idx` (V14) reads each function's window only.
    let rows = client
        .query(
            "SELECT f.id, f.name, f.language, f.runtime, f.route, f.version,
                    count(i.id) AS calls,
                    count(i.id) FILTER (WHERE i.status <> 'success') AS errors,
                    count(i.id) FILTER (WHERE i.cold_start) AS cold_starts,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY i.duration_ms) AS p50,
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY i.duration_ms) AS p99
             FROM functions f
             LEFT JOIN invocations i ON i.function_id = f.id AND i.namespace = f.namespace
                 AND i.created_at >= now() - make_interval(secs => $2)
             WHERE f.namespace = $1
             GROUP BY f.id
             ORDER BY f.name
             LIMIT $3",
            &[&namespace, &(window_secs as f64), &limit],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(FunctionSummary {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                language: row.try_get("language")?,
                runtime: row.try_get("runtime")?,
                route: row.try_get("route")?,
                version: row.try_get("version")?,
                calls: row.try_get("calls")?,
                errors: row.try_get("errors")?,
                cold_starts: row.try_get("cold_starts")?,
                p50_ms: row.try_get("p50")?,
                p99_ms: row.try_get("p99")?,
            })
        })
        .collect()
}
