//! API keys: the hash of each one's secret, its namespace and scopes, never the secret.

use super::DbError;
use crate::domain::auth::Scope;
use crate::domain::quota::{self, Quota};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

/// A key as `GET /keys/` shows it: no secret, no hash.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(examples(json!({
    "id": "0b9d2f3c4e5a6b7c8d9e0f1a2b3c4d5e", "namespace": "team-a", "scopes": ["invoke"],
    "description": "the shop's frontend", "created_at": "2026-11-27T16:00:00Z",
    "expires_at": null
})))]
pub struct KeyInfo {
    /// As it appears in the key (`faas_<id>_…`): 32 hex digits.
    #[serde(serialize_with = "simple_uuid")]
    #[schema(value_type = String, pattern = "^[0-9a-f]{32}$", examples("0b9d2f3c4e5a6b7c8d9e0f1a2b3c4d5e"))]
    pub id: Uuid,
    pub namespace: String,
    pub scopes: Vec<Scope>,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

fn simple_uuid<S: serde::Serializer>(id: &Uuid, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&id.simple())
}

/// What verifying a key needs.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub namespace: String,
    pub scopes: Vec<Scope>,
    pub secret_hash: Vec<u8>,
    pub expires_at: Option<DateTime<Utc>>,
}

fn scopes_of(row: &Row) -> Result<Vec<Scope>, DbError> {
    let scopes: Vec<String> = row.try_get("scopes")?;
    // The table's CHECK keeps these inside the enum.
    Ok(scopes.iter().filter_map(|s| Scope::parse(s)).collect())
}

impl TryFrom<&Row> for KeyInfo {
    type Error = DbError;
    fn try_from(row: &Row) -> Result<Self, DbError> {
        Ok(KeyInfo {
            id: row.try_get("id")?,
            namespace: row.try_get("namespace")?,
            scopes: scopes_of(row)?,
            description: row.try_get("description")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
        })
    }
}

/// A key to store: its hash only.
pub struct NewKeyRow<'a> {
    pub id: Uuid,
    pub namespace: &'a str,
    pub scopes: &'a [Scope],
    pub description: &'a str,
    pub secret_hash: &'a [u8; 32],
    pub expires_at: Option<DateTime<Utc>>,
}

const INFO_COLUMNS: &str = "id, namespace, scopes, description, created_at, expires_at";

/// Stores a key; `None` when its namespace does not exist. Refused (`DbError::Quota`) when the
/// namespace holds its `keys` quota of live keys (its own, else `default_quota`), counted with
/// the namespace's row locked so that two keys made at once cannot both pass.
pub async fn insert_key(
    pool: &Pool,
    key: &NewKeyRow<'_>,
    default_quota: i64,
) -> Result<Option<KeyInfo>, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let limit = tx
        .query_opt(
            "SELECT coalesce(quota_keys, $2) FROM namespaces WHERE name = $1 FOR NO KEY UPDATE",
            &[&key.namespace, &default_quota],
        )
        .await?;
    let Some(limit) = limit else { return Ok(None) };
    let live: i64 = tx
        .query_one(
            "SELECT count(*) FROM api_keys WHERE namespace = $1 AND revoked_at IS NULL
               AND (expires_at IS NULL OR expires_at > now())",
            &[&key.namespace],
        )
        .await?
        .try_get(0)?;
    quota::check(Quota::Keys, limit.try_get(0)?, live, 1)?;
    let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO api_keys (id, namespace, scopes, description, secret_hash, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 RETURNING {INFO_COLUMNS}"
            ),
            &[
                &key.id,
                &key.namespace,
                &scopes,
                &key.description,
                &&key.secret_hash[..],
                &key.expires_at,
            ],
        )
        .await?;
    let info = KeyInfo::try_from(&row)?;
    tx.commit().await?;
    Ok(Some(info))
}

/// The live (not revoked) keys, of one namespace or of all, oldest first.
pub async fn list_keys(pool: &Pool, namespace: Option<&str>) -> Result<Vec<KeyInfo>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {INFO_COLUMNS} FROM api_keys
                 WHERE revoked_at IS NULL AND ($1::text IS NULL OR namespace = $1)
                 ORDER BY created_at, id"
            ),
            &[&namespace],
        )
        .await?;
    rows.iter().map(KeyInfo::try_from).collect()
}

/// A live key's listing, if there is one with this id.
pub async fn get_key_info(pool: &Pool, id: Uuid) -> Result<Option<KeyInfo>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {INFO_COLUMNS} FROM api_keys WHERE id = $1 AND revoked_at IS NULL"),
            &[&id],
        )
        .await?;
    row.as_ref().map(KeyInfo::try_from).transpose()
}

/// What verifying key `id` needs, if it is live.
pub async fn get_key_record(pool: &Pool, id: Uuid) -> Result<Option<KeyRecord>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT namespace, scopes, secret_hash, expires_at FROM api_keys
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .await?;
    let row = client.query_opt(&statement, &[&id]).await?;
    row.map(|row| {
        Ok(KeyRecord {
            namespace: row.try_get("namespace")?,
            scopes: scopes_of(&row)?,
            secret_hash: row.try_get("secret_hash")?,
            expires_at: row.try_get("expires_at")?,
        })
    })
    .transpose()
}

/// Revokes key `id`; false when there was no live one.
pub async fn revoke_key(pool: &Pool, id: Uuid) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let revoked = client
        .execute(
            "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
            &[&id],
        )
        .await?;
    Ok(revoked > 0)
}

/// Stores `key` as the first admin key unless a live admin key exists already; true when it
/// was stored. Serialised by an advisory lock, so api replicas starting together make one.
pub async fn insert_first_admin_key(pool: &Pool, key: &NewKeyRow<'_>) -> Result<bool, DbError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock(hashtext('faas:first-admin-key'))",
            &[],
        )
        .await?;
    let exists: bool = transaction
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM api_keys WHERE 'admin' = ANY (scopes)
                 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()))",
            &[],
        )
        .await?
        .try_get(0)?;
    if exists {
        return Ok(false);
    }
    let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
    transaction
        .execute(
            "INSERT INTO api_keys (id, namespace, scopes, description, secret_hash, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &key.id,
                &key.namespace,
                &scopes,
                &key.description,
                &&key.secret_hash[..],
                &key.expires_at,
            ],
        )
        .await?;
    transaction.commit().await?;
    Ok(true)
}
