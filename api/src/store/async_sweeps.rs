//! The sweeper's queries over async invocations: the rows whose job may have been lost (never
//! confirmed published, overdue from a delay queue, queued unchanged for long), each with the
//! attempt its job must carry. A job that was not lost after all is dropped by the claim.

use super::DbError;
use deadpool_postgres::Pool;
use uuid::Uuid;

/// Invocations stored but never confirmed published for `older_than` (an api died between the
/// insert and the publish, or the publish failed): the sweeper publishes them again. Each with
/// the attempt its job must carry.
pub async fn unpublished(
    pool: &Pool,
    older_than: std::time::Duration,
    limit: i64,
) -> Result<Vec<(Uuid, u32)>, DbError> {
    sweep(
        pool,
        "SELECT id, attempts FROM async_invocations
         WHERE status = 'accepting' AND updated_at < now() - make_interval(secs => $1)
         ORDER BY updated_at LIMIT $2",
        older_than,
        limit,
    )
    .await
}

/// Invocations `queued` for `older_than` without a change: their retry's job may have been
/// lost (a delay queue's dead-lettering is at most once if the broker dies at that moment).
/// Each is stamped as seen, so that it is published again at most once per `older_than`, and
/// returned with the attempt its job must carry. A duplicate is dropped by the claim.
pub async fn stale_queued(
    pool: &Pool,
    older_than: std::time::Duration,
    limit: i64,
) -> Result<Vec<(Uuid, u32)>, DbError> {
    sweep(
        pool,
        "UPDATE async_invocations SET updated_at = now()
         WHERE id = ANY(ARRAY(
             SELECT id FROM async_invocations
             WHERE status = 'queued' AND updated_at < now() - make_interval(secs => $1)
             ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED))
         RETURNING id, attempts",
        older_than,
        limit,
    )
    .await
}

/// Invocations `queued` whose job was due back from a delay queue over `grace` ago: the
/// broker may have dropped it while dead-lettering. Each is unstamped (the rule for stale
/// queued rows covers it from then on) and returned with the attempt its job must carry. A
/// job that was only late is a duplicate, dropped by the claim.
pub async fn overdue(
    pool: &Pool,
    grace: std::time::Duration,
    limit: i64,
) -> Result<Vec<(Uuid, u32)>, DbError> {
    sweep(
        pool,
        "UPDATE async_invocations SET due_back = NULL, updated_at = now()
         WHERE id = ANY(ARRAY(
             SELECT id FROM async_invocations
             WHERE status = 'queued' AND due_back < now() - make_interval(secs => $1)
             ORDER BY due_back LIMIT $2 FOR UPDATE SKIP LOCKED))
         RETURNING id, attempts",
        grace,
        limit,
    )
    .await
}

/// Runs one of the sweeper's queries (`$1` an age in seconds, `$2` a row limit, returning
/// `id, attempts`) and gives the jobs to publish.
async fn sweep(
    pool: &Pool,
    query: &str,
    age: std::time::Duration,
    limit: i64,
) -> Result<Vec<(Uuid, u32)>, DbError> {
    let client = pool.get().await?;
    let rows = client.query(query, &[&age.as_secs_f64(), &limit]).await?;
    next_jobs(&rows)
}

/// Rows of `(id, attempts)` as the jobs to publish: each its next attempt.
fn next_jobs(rows: &[tokio_postgres::Row]) -> Result<Vec<(Uuid, u32)>, DbError> {
    rows.iter()
        .map(|row| {
            let attempts: i32 = row.try_get(1)?;
            Ok((row.try_get(0)?, attempts as u32 + 1))
        })
        .collect()
}
