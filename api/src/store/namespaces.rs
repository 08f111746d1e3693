//! Namespaces: who owns functions, which runtimes they may use, and their concurrency limit.

use super::DbError;
use crate::domain::quota::{Quotas, QuotasPatch};
use chrono::{DateTime, Utc};
use common::Runtime;
use deadpool_postgres::Pool;
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

/// A namespace as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(examples(json!({
    "name": "team-a", "allowed_runtimes": ["gvisor"], "max_concurrency": 50,
    "created_at": "2026-11-27T16:00:00Z",
    "quotas": {"functions": 50, "keys": null, "pending_async": null, "artifact_bytes": null,
               "result_bytes": null}
})))]
pub struct Namespace {
    pub name: String,
    pub allowed_runtimes: Vec<Runtime>,
    pub max_concurrency: Option<i32>,
    pub created_at: DateTime<Utc>,
    /// Its own quotas; null: the platform's default.
    pub quotas: Quotas,
    /// This incarnation of the name: a namespace deleted and made again gets a new one.
    #[serde(skip)]
    pub uid: Uuid,
}

impl TryFrom<&Row> for Namespace {
    type Error = DbError;
    fn try_from(row: &Row) -> Result<Self, DbError> {
        let allowed: Vec<String> = row.try_get("allowed_runtimes")?;
        Ok(Namespace {
            name: row.try_get("name")?,
            // The table's CHECK keeps these inside the enum.
            allowed_runtimes: allowed.iter().filter_map(|r| r.parse().ok()).collect(),
            max_concurrency: row.try_get("max_concurrency")?,
            created_at: row.try_get("created_at")?,
            quotas: Quotas {
                functions: row.try_get("quota_functions")?,
                keys: row.try_get("quota_keys")?,
                pending_async: row.try_get("quota_pending_async")?,
                artifact_bytes: row.try_get("quota_artifact_bytes")?,
                result_bytes: row.try_get("quota_result_bytes")?,
            },
            uid: row.try_get("uid")?,
        })
    }
}

/// Why a namespace was not created or deleted.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceChange {
    #[error("the name is taken")]
    Taken,
    #[error("no such namespace")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for NamespaceChange {
    fn from(error: tokio_postgres::Error) -> Self {
        NamespaceChange::Db(error.into())
    }
}

impl From<deadpool_postgres::PoolError> for NamespaceChange {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        NamespaceChange::Db(error.into())
    }
}

const COLUMNS: &str = "name, allowed_runtimes, max_concurrency, created_at, uid, quota_functions,
    quota_keys, quota_pending_async, quota_artifact_bytes, quota_result_bytes";

pub async fn insert_namespace(
    pool: &Pool,
    name: &str,
    allowed_runtimes: &[Runtime],
    max_concurrency: Option<i32>,
    quotas: &Quotas,
) -> Result<Namespace, NamespaceChange> {
    let client = pool.get().await?;
    let runtimes: Vec<&str> = allowed_runtimes.iter().map(|r| r.as_str()).collect();
    let sql = format!(
        "INSERT INTO namespaces (name, allowed_runtimes, max_concurrency, quota_functions,
             quota_keys, quota_pending_async, quota_artifact_bytes, quota_result_bytes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (name) DO NOTHING RETURNING {COLUMNS}"
    );
    let row = client
        .query_opt(
            &sql,
            &[
                &name,
                &runtimes,
                &max_concurrency,
                &quotas.functions,
                &quotas.keys,
                &quotas.pending_async,
                &quotas.artifact_bytes,
                &quotas.result_bytes,
            ],
        )
        .await?;
    match row {
        Some(row) => Ok(Namespace::try_from(&row)?),
        None => Err(NamespaceChange::Taken),
    }
}

/// Merges `patch` into namespace `name`'s quotas (its row locked meanwhile); the namespace as
/// it is then.
pub async fn update_quotas(
    pool: &Pool,
    name: &str,
    patch: &QuotasPatch,
) -> Result<Namespace, NamespaceChange> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM namespaces WHERE name = $1 FOR NO KEY UPDATE"),
            &[&name],
        )
        .await?;
    let Some(row) = row else {
        return Err(NamespaceChange::NotFound);
    };
    let quotas = Namespace::try_from(&row)?.quotas.merged(patch);
    let row = tx
        .query_one(
            &format!(
                "UPDATE namespaces SET quota_functions = $2, quota_keys = $3,
                     quota_pending_async = $4, quota_artifact_bytes = $5, quota_result_bytes = $6
                 WHERE name = $1 RETURNING {COLUMNS}"
            ),
            &[
                &name,
                &quotas.functions,
                &quotas.keys,
                &quotas.pending_async,
                &quotas.artifact_bytes,
                &quotas.result_bytes,
            ],
        )
        .await?;
    let namespace = Namespace::try_from(&row)?;
    tx.commit().await?;
    Ok(namespace)
}

pub async fn list_namespaces(pool: &Pool) -> Result<Vec<Namespace>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM namespaces ORDER BY name"),
            &[],
        )
        .await?;
    rows.iter().map(Namespace::try_from).collect()
}

pub async fn get_namespace(pool: &Pool, name: &str) -> Result<Option<Namespace>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM namespaces WHERE name = $1"),
            &[&name],
        )
        .await?;
    row.as_ref().map(Namespace::try_from).transpose()
}

/// What a namespace's deletion removed that others must hear of or may now collect.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeletedNamespace {
    /// Its functions, `(id, name)`: caches, route tables and workers are told.
    pub functions: Vec<(i64, String)>,
    /// The builds its functions named, and the artifacts (packages, serving snapshots): each
    /// is deleted afterwards unless another function still names it.
    pub build_keys: Vec<String>,
    pub digests: Vec<String>,
}

/// Deletes namespace `name` and everything of it, in one transaction: its functions, keys
/// (`ON DELETE CASCADE`), invocation records, async invocations (with their attempts) and
/// leases. The namespace's row is locked first: a function save, a key, a record or an async
/// invocation written under it meanwhile (each takes a key-share lock on the row) either
/// commits before and is deleted here, or waits and then finds the namespace gone.
pub async fn delete_namespace(
    pool: &Pool,
    name: &str,
) -> Result<DeletedNamespace, NamespaceChange> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Its async invocations first: an attempt being recorded holds its row, then charges its
    // result bytes to the namespace's row; taking the rows in that order too spares a
    // deadlock. Rows inserted meanwhile are deleted below, under the namespace's lock.
    tx.execute(
        "DELETE FROM async_invocations WHERE namespace = $1",
        &[&name],
    )
    .await?;
    let found = tx
        .query_opt(
            "SELECT 1 FROM namespaces WHERE name = $1 FOR UPDATE",
            &[&name],
        )
        .await?;
    if found.is_none() {
        return Err(NamespaceChange::NotFound);
    }
    let rows = tx
        .query(
            "DELETE FROM functions WHERE namespace = $1
             RETURNING id, name, build_key, package_digest,
                       serving->'package'->>'digest', serving->'dependencies'->>'digest'",
            &[&name],
        )
        .await?;
    let mut deleted = DeletedNamespace::default();
    for row in &rows {
        deleted.functions.push((row.try_get(0)?, row.try_get(1)?));
        deleted
            .build_keys
            .extend(row.try_get::<_, Option<String>>(2)?);
        for column in 3..6 {
            deleted
                .digests
                .extend(row.try_get::<_, Option<String>>(column)?);
        }
    }
    deleted.build_keys.sort();
    deleted.build_keys.dedup();
    deleted.digests.sort();
    deleted.digests.dedup();
    let function_scopes: Vec<String> = deleted
        .functions
        .iter()
        .map(|(id, _)| format!("function:{id}"))
        .collect();
    tx.execute("DELETE FROM invocations WHERE namespace = $1", &[&name])
        .await?;
    tx.execute(
        "DELETE FROM async_invocations WHERE namespace = $1",
        &[&name],
    )
    .await?;
    tx.execute(
        "DELETE FROM leases WHERE scope = 'namespace:' || $1 OR scope = ANY($2)",
        &[&name, &function_scopes],
    )
    .await?;
    tx.execute("DELETE FROM namespaces WHERE name = $1", &[&name])
        .await?;
    tx.commit().await?;
    Ok(deleted)
}
