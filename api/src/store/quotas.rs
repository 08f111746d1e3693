//! The namespace quotas the async tables count against (issue 21): what an accept counts
//! (pending invocations, stored result bytes) under a lock per namespace, and the result and
//! log bytes each recorded attempt charges to its namespace's `result_bytes_used`.

use super::DbError;
use crate::domain::quota::{self, Quota, QuotaExceeded};
use serde_json::json;
use uuid::Uuid;

/// What an accept counts against, when it counts: the platform's limits (`MAX_PENDING_ASYNC`,
/// the default `result_bytes` quota); a namespace's own quotas narrow or replace them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptQuotas {
    pub max_pending: i64,
    pub default_result_bytes: i64,
}

/// What an accept that counted found, for the caller's estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// Pending invocations (counted up to `limit`), before this one.
    pub pending: i64,
    /// The namespace's pending limit in force.
    pub limit: i64,
    /// The namespace is at its `result_bytes` quota: nothing new is accepted.
    pub results_full: bool,
}

/// Counts `namespace`'s pending invocations and reads its stored result bytes, under the lock
/// that serialises accepts in it; with the quota that refuses one more, if any. `None` when
/// the namespace is gone (the insert finds that out).
pub(super) async fn count_quotas(
    tx: &deadpool_postgres::Transaction<'_>,
    namespace: &str,
    quotas: AcceptQuotas,
) -> Result<Option<(Counted, Option<QuotaExceeded>)>, DbError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&PENDING_LOCK_CLASS, &namespace],
    )
    .await?;
    let row = tx
        .query_opt(
            "SELECT least(coalesce(quota_pending_async, $2), $2),
                    coalesce(quota_result_bytes, $3), result_bytes_used
             FROM namespaces WHERE name = $1",
            &[
                &namespace,
                &quotas.max_pending,
                &quotas.default_result_bytes,
            ],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let (limit, result_limit, result_used): (i64, i64, i64) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    let statement = tx
        .prepare_cached(
            "SELECT count(*) FROM (
                 SELECT 1 FROM async_invocations
                 WHERE namespace = $1 AND status IN ('accepting', 'queued', 'running')
                 LIMIT $2) pending",
        )
        .await?;
    let pending: i64 = tx
        .query_one(&statement, &[&namespace, &limit])
        .await?
        .try_get(0)?;
    let refusal = quota::check(Quota::ResultBytes, result_limit, result_used, 1)
        .and_then(|()| quota::check(Quota::PendingAsync, limit, pending, 1))
        .err();
    let counted = Counted {
        pending,
        limit,
        results_full: result_used >= result_limit,
    };
    Ok(Some((counted, refusal)))
}

/// The class of the advisory locks that serialise counted accepts, one per namespace ("faas"
/// in ASCII; the second key is the namespace's hash).
const PENDING_LOCK_CLASS: i32 = 0x6661_6173;

/// Charges the bytes of an attempt's `result` and `logs` (minus the `old_bytes` the row held) to
/// `namespace`, whose quota is its own or `default_limit`; the row's lock is held. Over the
/// quota, the result and logs are dropped from the row for a marker saying so (the outcome
/// and its status stay; the attempt's row keeps its error), and the drop is counted
/// (`faas_async_results_dropped_total`): a result is never lost without a word.
pub(super) async fn charge_results(
    tx: &deadpool_postgres::Transaction<'_>,
    id: Uuid,
    namespace: &str,
    old_bytes: i64,
    (result, logs): (Option<&str>, Option<&str>),
    default_limit: i64,
) -> Result<(), DbError> {
    let new_bytes = result.map_or(0, str::len) + logs.map_or(0, str::len);
    let delta = new_bytes as i64 - old_bytes;
    if delta <= 0 {
        if delta < 0 {
            add_used(tx, namespace, delta).await?;
        }
        return Ok(());
    }
    let row = tx
        .query_opt(
            "UPDATE namespaces SET result_bytes_used = result_bytes_used + $2
             WHERE name = $1 AND result_bytes_used + $2 <= coalesce(quota_result_bytes, $3)
             RETURNING result_bytes_used",
            &[&namespace, &delta, &default_limit],
        )
        .await?;
    if row.is_some() {
        return Ok(());
    }
    let used = tx
        .query_opt(
            "SELECT result_bytes_used, coalesce(quota_result_bytes, $2) FROM namespaces
             WHERE name = $1",
            &[&namespace, &default_limit],
        )
        .await?;
    // The namespace is gone: so is the row, with the deletion that waits for this.
    let Some(used) = used else { return Ok(()) };
    let refused = QuotaExceeded {
        quota: Quota::ResultBytes,
        limit: used.try_get(1)?,
        used: used.try_get(0)?,
        adding: delta,
    };
    let marker = format!("[faas: result and logs dropped: {refused}]");
    metrics::counter!("faas_async_results_dropped_total", "namespace" => namespace.to_owned())
        .increment(1);
    tracing::warn!(invocation_id = %id, %namespace, bytes = new_bytes, "async result dropped: the namespace's result_bytes quota is full");
    let error = json!({"kind": "ResultDropped", "message": refused.to_string()});
    tx.execute(
        "UPDATE async_invocations
         SET result = NULL, logs = $2, logs_truncated = true, error = coalesce(error, $3)
         WHERE id = $1",
        &[&id, &marker, &error],
    )
    .await?;
    add_used(tx, namespace, marker.len() as i64 - old_bytes).await
}

/// Adds `delta` (maybe negative) to `namespace`'s stored result bytes, never below zero.
async fn add_used(
    tx: &deadpool_postgres::Transaction<'_>,
    namespace: &str,
    delta: i64,
) -> Result<(), DbError> {
    tx.execute(
        "UPDATE namespaces SET result_bytes_used = greatest(0, result_bytes_used + $2)
         WHERE name = $1",
        &[&namespace, &delta],
    )
    .await?;
    Ok(())
}
