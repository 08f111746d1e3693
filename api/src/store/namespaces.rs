//! Namespaces: who owns functions, which runtimes they may use, and their concurrency limit.

use super::DbError;
use chrono::{DateTime, Utc};
use common::Runtime;
use deadpool_postgres::Pool;
use serde::Serialize;
use tokio_postgres::Row;

/// A namespace as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(examples(json!({
    "name": "team-a", "allowed_runtimes": ["gvisor"], "max_concurrency": 50,
    "created_at": "2026-11-27T16:00:00Z"
})))]
pub struct Namespace {
    pub name: String,
    pub allowed_runtimes: Vec<Runtime>,
    pub max_concurrency: Option<i32>,
    pub created_at: DateTime<Utc>,
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
        })
    }
}

/// Why a namespace was not created or deleted.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceChange {
    #[error("the name is taken")]
    Taken,
    #[error("it holds functions")]
    HoldsFunctions,
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

const COLUMNS: &str = "name, allowed_runtimes, max_concurrency, created_at";

pub async fn insert_namespace(
    pool: &Pool,
    name: &str,
    allowed_runtimes: &[Runtime],
    max_concurrency: Option<i32>,
) -> Result<Namespace, NamespaceChange> {
    let client = pool.get().await?;
    let runtimes: Vec<&str> = allowed_runtimes.iter().map(|r| r.as_str()).collect();
    let sql = format!(
        "INSERT INTO namespaces (name, allowed_runtimes, max_concurrency) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO NOTHING RETURNING {COLUMNS}"
    );
    let row = client
        .query_opt(&sql, &[&name, &runtimes, &max_concurrency])
        .await?;
    match row {
        Some(row) => Ok(Namespace::try_from(&row)?),
        None => Err(NamespaceChange::Taken),
    }
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

/// Deletes namespace `name` and, with it, its keys; refused while it holds functions. The
/// namespace's row is locked first, so a function created meanwhile waits and then fails on
/// its foreign key rather than being orphaned.
pub async fn delete_namespace(pool: &Pool, name: &str) -> Result<(), NamespaceChange> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let found = transaction
        .query_opt(
            "SELECT 1 FROM namespaces WHERE name = $1 FOR UPDATE",
            &[&name],
        )
        .await?;
    if found.is_none() {
        return Err(NamespaceChange::NotFound);
    }
    let holds: bool = transaction
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM functions WHERE namespace = $1)",
            &[&name],
        )
        .await?
        .try_get(0)?;
    if holds {
        return Err(NamespaceChange::HoldsFunctions);
    }
    transaction
        .execute("DELETE FROM namespaces WHERE name = $1", &[&name])
        .await?;
    transaction.commit().await?;
    Ok(())
}
