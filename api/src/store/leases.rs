//! Concurrency leases: one row per running call that holds a slot of a limited scope.

use super::DbError;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use uuid::Uuid;

/// Takes one of `max` slots of `scope` for `invocation` until `expires`; false when all are
/// held. One statement: the lock, the clean-up of expired leases, the count and the insert
/// happen inside `faas_acquire_lease`.
pub async fn acquire_lease(
    pool: &Pool,
    scope: &str,
    invocation: Uuid,
    expires: DateTime<Utc>,
    max: i32,
) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("SELECT faas_acquire_lease($1, $2, $3, $4)")
        .await?;
    let row = client
        .query_one(&statement, &[&scope, &invocation, &expires, &max])
        .await?;
    Ok(row.try_get(0)?)
}

/// Gives back the slots `invocation` held (its function's and its namespace's), if any.
pub async fn release_lease(pool: &Pool, invocation: Uuid) -> Result<(), DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("DELETE FROM leases WHERE invocation_id = $1")
        .await?;
    client.execute(&statement, &[&invocation]).await?;
    Ok(())
}
