//! What the api keeps only for a while, deleted by one background task: invocation records
//! and finished async invocations older than `RECORD_RETENTION_DAYS`, in small batches with a pause between them so that
//! neither the table's locks nor the write-ahead log see one huge delete; and artifacts
//! (packages, dependency trees) that no function has named for `ARTIFACT_GRACE_SECS`, with the
//! finished builds no function names; and expired web console sessions.

use crate::store;
use chrono::Utc;
use deadpool_postgres::Pool;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Rows one `DELETE` removes at most.
const BATCH_ROWS: i64 = 1_000;
/// Pause between two batches, so that other queries get the table in between.
const BATCH_PAUSE: Duration = Duration::from_millis(100);
/// Longest wait before the first pass after start-up.
const FIRST_RUN_DELAY: Duration = Duration::from_secs(10);

/// What the task keeps, and how often it looks.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Days of invocation records; 0 keeps them forever.
    pub record_days: u32,
    /// How long an artifact no function names is kept.
    pub artifact_grace: Duration,
    pub interval: Duration,
}

/// Starts the task; it ends when `stop` is cancelled, between two batches at the latest.
pub fn spawn(pool: Pool, retention: Retention, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut delay = retention.interval.min(FIRST_RUN_DELAY);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = retention.interval;
            if retention.record_days > 0 {
                let keep = chrono::Duration::days(i64::from(retention.record_days));
                delete_older_than(&pool, Utc::now() - keep, &stop).await;
            }
            collect_artifacts(&pool, retention.artifact_grace).await;
            sweep_console_sessions(&pool).await;
        }
    })
}

/// Deletes expired console sessions (a request never resumes one: this only frees the rows).
async fn sweep_console_sessions(pool: &Pool) {
    match store::delete_expired_console_sessions(pool, 10_000).await {
        Ok(0) => {}
        Ok(count) => tracing::debug!(count, "expired console sessions deleted"),
        Err(error) => {
            metrics::counter!("faas_database_errors_total").increment(1);
            tracing::warn!(%error, "cannot delete expired console sessions");
        }
    }
}

/// Deletes the artifacts and finished builds no function has named for `grace`.
async fn collect_artifacts(pool: &Pool, grace: Duration) {
    match store::delete_unused_artifacts(pool, grace).await {
        Ok((0, 0)) => {}
        Ok((builds, artifacts)) => {
            tracing::info!(builds, artifacts, "unused builds and artifacts deleted");
        }
        Err(error) => {
            // A save that named one of them meanwhile makes the delete fail: the next pass
            // tries again.
            metrics::counter!("faas_database_errors_total").increment(1);
            tracing::warn!(%error, "cannot delete unused artifacts");
        }
    }
}

/// One pass: deletes batch after batch until none is full, the database fails, or `stop`.
async fn delete_older_than(pool: &Pool, cutoff: chrono::DateTime<Utc>, stop: &CancellationToken) {
    let mut deleted = 0;
    loop {
        let batch = match store::delete_invocations_before(pool, cutoff, BATCH_ROWS).await {
            Ok(records) => store::delete_async_before(pool, cutoff, BATCH_ROWS)
                .await
                .map(|invocations| (records, invocations)),
            Err(error) => Err(error),
        };
        match batch {
            Ok((records, invocations)) => {
                deleted += records + invocations;
                if records < BATCH_ROWS as u64 && invocations < BATCH_ROWS as u64 {
                    break;
                }
            }
            Err(error) => {
                // The next pass tries again; the records only wait a little longer.
                metrics::counter!("faas_database_errors_total").increment(1);
                tracing::warn!(%error, "cannot delete old invocation records");
                break;
            }
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(BATCH_PAUSE) => {}
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, %cutoff, "old invocation records deleted");
    }
}
