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

/// One function's line on the console's list: what it is, and its calls over the last 24 hours.
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
    /// Calls per hour, oldest first: the 24 hours before now (the last one still running).
    pub hourly: Vec<i64>,
}

/// A page of the functions of `namespace` by name (`limit` of them after the first `offset`),
/// each with its calls over the last 24 hours, and how many functions the namespace has.
///
/// Only the page's functions are read: each one's records of the window through
/// `invocations_function_id_created_at_idx` (V14), so the cost grows with the page, not with
/// the namespace's functions or records.
pub async fn function_summaries(
    pool: &Pool,
    namespace: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<FunctionSummary>, i64), DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT f.id, f.name, f.language, f.runtime, f.route, f.version,
                    s.calls, s.errors, s.cold_starts, s.p50, s.p99, h.hourly
             FROM (SELECT * FROM functions WHERE namespace = $1
                   ORDER BY name LIMIT $2 OFFSET $3) f
             CROSS JOIN LATERAL (
                 SELECT count(*) AS calls,
                        count(*) FILTER (WHERE i.status <> 'success') AS errors,
                        count(*) FILTER (WHERE i.cold_start) AS cold_starts,
                        percentile_cont(0.5) WITHIN GROUP (ORDER BY i.duration_ms) AS p50,
                        percentile_cont(0.99) WITHIN GROUP (ORDER BY i.duration_ms) AS p99
                 FROM invocations i
                 WHERE i.function_id = f.id AND i.namespace = f.namespace
                   AND i.created_at >= now() - interval '24 hours') s
             CROSS JOIN LATERAL (
                 SELECT array_agg(coalesce(c.calls, 0) ORDER BY hour.n) AS hourly
                 FROM generate_series(0, 23) AS hour(n)
                 LEFT JOIN (
                     SELECT 23 - floor(date_part('epoch', now() - i.created_at) / 3600)::int AS n,
                            count(*) AS calls
                     FROM invocations i
                     WHERE i.function_id = f.id AND i.namespace = f.namespace
                       AND i.created_at >= now() - interval '24 hours'
                     GROUP BY 1) c ON c.n = hour.n) h
             ORDER BY f.name",
            &[&namespace, &limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_one(
            "SELECT count(*) FROM functions WHERE namespace = $1",
            &[&namespace],
        )
        .await?
        .try_get(0)?;
    let summaries = rows
        .iter()
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
                hourly: row.try_get("hourly")?,
            })
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    Ok((summaries, total))
}
