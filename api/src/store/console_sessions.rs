//! The web console's sessions (`console_sessions`): created at a sign-in form and at a
//! sign-in, read on every console request, deleted at sign-out, swept when expired.

use super::DbError;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

/// A session as stored: the key it signed in with (none for a sign-in form's session) and its
/// CSRF token.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub csrf_token: String,
    /// `None`: a sign-in form's session; else the key's id (`ADMIN_KEY` for the setting).
    pub key_id: Option<String>,
    pub secret_hash: Option<Vec<u8>>,
    pub expires_at: DateTime<Utc>,
}

/// Stores a session whose id hashes to `id_hash`.
pub async fn create_console_session(
    pool: &Pool,
    id_hash: &[u8; 32],
    session: &ConsoleSession,
) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO console_sessions (id_hash, csrf_token, key_id, secret_hash, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &id_hash.as_slice(),
                &session.csrf_token,
                &session.key_id,
                &session.secret_hash,
                &session.expires_at,
            ],
        )
        .await?;
    Ok(())
}

/// The unexpired session whose id hashes to `id_hash`.
pub async fn get_console_session(
    pool: &Pool,
    id_hash: &[u8; 32],
) -> Result<Option<ConsoleSession>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT csrf_token, key_id, secret_hash, expires_at FROM console_sessions
             WHERE id_hash = $1 AND expires_at > now()",
            &[&id_hash.as_slice()],
        )
        .await?;
    Ok(row.map(|row| ConsoleSession {
        csrf_token: row.get(0),
        key_id: row.get(1),
        secret_hash: row.get(2),
        expires_at: row.get(3),
    }))
}

/// Ends the session whose id hashes to `id_hash`; true when there was one.
pub async fn delete_console_session(pool: &Pool, id_hash: &[u8; 32]) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let deleted = client
        .execute(
            "DELETE FROM console_sessions WHERE id_hash = $1",
            &[&id_hash.as_slice()],
        )
        .await?;
    Ok(deleted > 0)
}

/// Deletes the expired sessions, at most `limit` at once; how many went.
pub async fn delete_expired_console_sessions(pool: &Pool, limit: i64) -> Result<u64, DbError> {
    let client = pool.get().await?;
    let deleted = client
        .execute(
            "DELETE FROM console_sessions WHERE id_hash IN (
                 SELECT id_hash FROM console_sessions WHERE expires_at <= now() LIMIT $1)",
            &[&limit],
        )
        .await?;
    Ok(deleted)
}
