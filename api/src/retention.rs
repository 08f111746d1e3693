//! Invocation records are kept `RECORD_RETENTION_DAYS`: a background task deletes older ones
//! in small batches, with a pause between them, so that neither the table's locks nor the
//! write-ahead log see one huge delete.

use crate::db;
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

/// Starts the task, unless `retention_days` is 0 (keep forever); it ends when `stop` is
/// cancelled, between two batches at the latest.
pub fn spawn(
    pool: Pool,
    retention_days: u32,
    interval: Duration,
    stop: CancellationToken,
) -> Option<JoinHandle<()>> {
    if retention_days == 0 {
        return None;
    }
    let keep = chrono::Duration::days(i64::from(retention_days));
    Some(tokio::spawn(async move {
        let mut delay = interval.min(FIRST_RUN_DELAY);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = interval;
            delete_older_than(&pool, Utc::now() - keep, &stop).await;
        }
    }))
}

/// One pass: deletes batch after batch until none is full, the database fails, or `stop`.
async fn delete_older_than(pool: &Pool, cutoff: chrono::DateTime<Utc>, stop: &CancellationToken) {
    let mut deleted = 0;
    loop {
        match db::delete_invocations_before(pool, cutoff, BATCH_ROWS).await {
            Ok(rows) => {
                deleted += rows;
                if rows < BATCH_ROWS as u64 {
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
