//! The web console's sessions (DESIGN §17): the cookie carries a random id the server issued,
//! the table its SHA-256. A sign-in form has a session of its own, whose CSRF token the sign-in
//! must carry; a sign-in replaces it with a new session (a new id, so that an id planted
//! before cannot be signed in), which keeps the key's id and its secret's hash, never the key.
//! Every request re-checks that key through the key cache: a revoked or expired key ends its
//! sessions within the cache's TTL (at once on the replica that revoked it).

use crate::domain::auth::{self, Presented, Principal};
use crate::services::keys::cache::{KeyError, KeyStore};
use crate::store::{self, ConsoleSession, DbError};
use base64::Engine;
use deadpool_postgres::Pool;
use ring::rand::SecureRandom;
use std::sync::Arc;
use std::time::Duration;

/// How long a sign-in form may be left open.
pub const FORM_TTL: Duration = Duration::from_secs(600);

/// The key id a session holds when keys are off (`AUTH=disabled`).
const LOCAL: &str = "local";

/// A session just issued: the cookie's value and the token its forms carry.
pub struct Issued {
    pub id: String,
    pub csrf_token: String,
}

/// A signed-in session, its key still valid.
pub struct Resumed {
    pub principal: Principal,
    pub csrf_token: String,
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The form's session is unknown or expired, or its token does not match.
    #[error("the sign-in form expired; sign in again")]
    StaleForm,
    #[error("that key is not valid")]
    WrongKey,
    #[error(transparent)]
    Database(#[from] DbError),
}

/// The console's sessions on this replica's database and key cache.
#[derive(Clone)]
pub struct ConsoleSessions {
    db: Pool,
    /// `None` when keys are off: any sign-in is the local caller.
    keys: Option<Arc<KeyStore>>,
    ttl: Duration,
}

impl ConsoleSessions {
    pub fn new(db: Pool, keys: Option<Arc<KeyStore>>, ttl: Duration) -> Self {
        ConsoleSessions { db, keys, ttl }
    }

    /// How long a signed-in session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A sign-in form's session.
    pub async fn open_form(&self) -> Result<Issued, DbError> {
        self.issue(None, FORM_TTL).await
    }

    /// The CSRF token of the sign-in form's session `id`, while it lasts.
    pub async fn form_token(&self, id: &str) -> Result<Option<String>, DbError> {
        let session = store::get_console_session(&self.db, &auth::sha256(id.as_bytes())).await?;
        Ok(session
            .filter(|session| session.key_id.is_none())
            .map(|session| session.csrf_token))
    }

    /// Signs in with `key` from the form whose session is `form_id`, if `csrf_token` is its
    /// token: the form's session ends and a new one begins.
    pub async fn sign_in(
        &self,
        form_id: &str,
        csrf_token: &str,
        key: &str,
    ) -> Result<Issued, SignInError> {
        let form_hash = auth::sha256(form_id.as_bytes());
        let form = store::get_console_session(&self.db, &form_hash).await?;
        match form {
            Some(form) if form.key_id.is_none() && same_token(&form.csrf_token, csrf_token) => {}
            _ => return Err(SignInError::StaleForm),
        }
        let (key_id, secret_hash) = match &self.keys {
            None => (LOCAL.to_owned(), auth::sha256(b"")),
            Some(keys) => {
                let presented = auth::parse_token(key.trim());
                let parts = presented_parts(&presented);
                match keys.verify(&self.db, presented).await {
                    Ok(_) => parts,
                    Err(KeyError::Rejected(_)) => return Err(SignInError::WrongKey),
                    Err(KeyError::Database(error)) => return Err(error.into()),
                }
            }
        };
        store::delete_console_session(&self.db, &form_hash).await?;
        Ok(self.issue(Some((key_id, secret_hash)), self.ttl).await?)
    }

    /// The signed-in session `id`, if it lasts and its key is still valid; a session whose key
    /// is no longer valid is ended.
    pub async fn resume(&self, id: &str) -> Result<Option<Resumed>, DbError> {
        let id_hash = auth::sha256(id.as_bytes());
        let Some(session) = store::get_console_session(&self.db, &id_hash).await? else {
            return Ok(None);
        };
        let Some(principal) = self.principal_of(&session).await? else {
            store::delete_console_session(&self.db, &id_hash).await?;
            return Ok(None);
        };
        Ok(Some(Resumed {
            principal,
            csrf_token: session.csrf_token,
        }))
    }

    /// Ends session `id`.
    pub async fn sign_out(&self, id: &str) -> Result<(), DbError> {
        store::delete_console_session(&self.db, &auth::sha256(id.as_bytes())).await?;
        Ok(())
    }

    /// Who a signed-in session's key is now; `None` for a form's session or a key no longer
    /// valid.
    async fn principal_of(&self, session: &ConsoleSession) -> Result<Option<Principal>, DbError> {
        let (Some(key_id), Some(secret_hash)) = (&session.key_id, &session.secret_hash) else {
            return Ok(None);
        };
        let Some(keys) = &self.keys else {
            return Ok((key_id == LOCAL).then(Principal::local));
        };
        let Ok(secret_hash) = <[u8; 32]>::try_from(secret_hash.as_slice()) else {
            return Ok(None);
        };
        let presented = if key_id == auth::ADMIN_KEY_ID {
            Presented::Other { hash: secret_hash }
        } else {
            match uuid::Uuid::try_parse(key_id) {
                Ok(id) => Presented::Key { id, secret_hash },
                Err(_) => return Ok(None),
            }
        };
        match keys.verify(&self.db, presented).await {
            Ok(principal) => Ok(Some(principal)),
            Err(KeyError::Rejected(_)) => Ok(None),
            Err(KeyError::Database(error)) => Err(error),
        }
    }

    async fn issue(
        &self,
        key: Option<(String, [u8; 32])>,
        ttl: Duration,
    ) -> Result<Issued, DbError> {
        let id = random_token();
        let csrf_token = random_token();
        let (key_id, secret_hash) = match key {
            Some((id, hash)) => (Some(id), Some(hash.to_vec())),
            None => (None, None),
        };
        let session = ConsoleSession {
            csrf_token: csrf_token.clone(),
            key_id,
            secret_hash,
            expires_at: chrono::Utc::now()
                + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(8)),
        };
        store::create_console_session(&self.db, &auth::sha256(id.as_bytes()), &session).await?;
        Ok(Issued { id, csrf_token })
    }
}

/// What a session keeps of a presented key: its id (`ADMIN_KEY` for the setting) and the
/// SHA-256 of what was presented.
fn presented_parts(presented: &Presented) -> (String, [u8; 32]) {
    match presented {
        Presented::Key { id, secret_hash } => (id.simple().to_string(), *secret_hash),
        Presented::Other { hash } => (auth::ADMIN_KEY_ID.to_owned(), *hash),
    }
}

/// Whether a form's token is the session's, in constant time.
pub fn same_token(expected: &str, given: &str) -> bool {
    use subtle::ConstantTimeEq;
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// 256 random bits, URL-safe base64.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(same_token(&a, &a.clone()));
        assert!(!same_token(&a, &b));
        assert!(!same_token(&a, &a[..42]));
        assert!(!same_token(&a, ""));
    }

    #[test]
    fn a_session_keeps_the_keys_id_and_hash_never_the_key() {
        let key = "faas_0123456789abcdef0123456789abcdef_secret";
        let (id, hash) = presented_parts(&auth::parse_token(key));
        assert_eq!(id, "0123456789abcdef0123456789abcdef");
        assert_eq!(hash, auth::sha256(b"secret"));
        let (id, hash) = presented_parts(&auth::parse_token("the-admin-setting"));
        assert_eq!(id, auth::ADMIN_KEY_ID);
        assert_eq!(hash, auth::sha256(b"the-admin-setting"));
    }
}
