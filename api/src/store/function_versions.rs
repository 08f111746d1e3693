//! A function's saved versions (`function_versions`): each save records the version as a
//! client would send it again, so that the console can list, diff and roll back (save an old
//! version again, through the same checks as any save). The newest [`KEPT_VERSIONS`] stay.

use super::DbError;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;

/// The versions kept per function: Lambda keeps every published one, but its code is bounded
/// by a storage quota; here a function's code is at most `MAX_CODE_BYTES`, so this bounds a
/// function's history at 50 times that.
pub const KEPT_VERSIONS: i32 = 50;

/// One saved version of a function.
#[derive(Debug, Clone)]
pub struct FunctionVersion {
    pub version: i32,
    pub saved_at: DateTime<Utc>,
    /// The body of `PUT /functions/{id}` that saves it again; `package` instead of `code` for
    /// a version deployed as a package.
    pub fields: Value,
}

impl FunctionVersion {
    /// Whether it was deployed as a package, whose zip is not kept: it cannot be saved again.
    pub fn is_package(&self) -> bool {
        self.fields.get("package").is_some_and(|p| !p.is_null())
    }
}

/// Records version `version` of function `id` (`body`: [`super::version_body`]) in the
/// saving transaction, and forgets the
/// versions older than the newest [`KEPT_VERSIONS`].
pub(super) async fn record_version(
    tx: &deadpool_postgres::Transaction<'_>,
    id: i64,
    version: i32,
    body: &Value,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO function_versions (function_id, version, fields) VALUES ($1, $2, $3)
         ON CONFLICT (function_id, version) DO UPDATE SET fields = EXCLUDED.fields, saved_at = now()",
        &[&id, &version, body],
    )
    .await?;
    tx.execute(
        "DELETE FROM function_versions WHERE function_id = $1 AND version <= $2",
        &[&id, &(version - KEPT_VERSIONS)],
    )
    .await?;
    Ok(())
}

fn from_row(row: &tokio_postgres::Row) -> Result<FunctionVersion, DbError> {
    Ok(FunctionVersion {
        version: row.try_get("version")?,
        saved_at: row.try_get("saved_at")?,
        fields: row.try_get("fields")?,
    })
}

/// The kept versions of function `id` of `namespace`, newest first, without their code (a
/// list names them; [`get_version`] reads one).
pub async fn list_versions(
    pool: &Pool,
    namespace: &str,
    id: i64,
) -> Result<Vec<FunctionVersion>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT v.version, v.saved_at, v.fields - 'code' AS fields
             FROM function_versions v JOIN functions f ON f.id = v.function_id
             WHERE f.id = $1 AND f.namespace = $2
             ORDER BY v.version DESC",
            &[&id, &namespace],
        )
        .await?;
    rows.iter().map(from_row).collect()
}

/// Version `version` of function `id` of `namespace`, if it is kept.
pub async fn get_version(
    pool: &Pool,
    namespace: &str,
    id: i64,
    version: i32,
) -> Result<Option<FunctionVersion>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT v.version, v.saved_at, v.fields
             FROM function_versions v JOIN functions f ON f.id = v.function_id
             WHERE f.id = $1 AND f.namespace = $2 AND v.version = $3",
            &[&id, &namespace, &version],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}
