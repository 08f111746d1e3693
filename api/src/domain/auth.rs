//! Who is calling: API keys (`Authorization: Bearer …`), their scopes and namespace, and the
//! [`Principal`] extractor every protected handler takes first.
//!
//! A key is `faas_<id>_<secret>`: the id (32 hex digits) finds its row, and only a SHA-256 of
//! the secret is stored and compared, in constant time. The bootstrap `ADMIN_KEY` setting may
//! be any string of at least 32 characters; its hash is held in memory, never stored. Verified
//! keys are cached ([`crate::services::keys::cache::KeyStore`]), so a call makes no database query for them.

use base64::Engine;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Start of every key the platform makes.
const KEY_PREFIX: &str = "faas_";
/// Random bytes in a key's secret (256 bits).
const SECRET_BYTES: usize = 32;
/// The shortest `ADMIN_KEY` accepted: it must be as hard to guess as a made key.
pub const MIN_ADMIN_KEY_LEN: usize = 32;
/// The namespace of the bootstrap admin key, and of everything when auth is disabled.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The `key_id` a principal of the `ADMIN_KEY` setting shows.
pub const ADMIN_KEY_ID: &str = "ADMIN_KEY";

/// What a key may do.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Namespaces and keys of every namespace, and everything else in its own.
    Admin,
    /// Create, update, delete and read its namespace's functions, env values included.
    Manage,
    /// Call its namespace's functions.
    Invoke,
    /// Read its namespace's functions (env values hidden) and invocation records.
    Read,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Admin, Scope::Manage, Scope::Invoke, Scope::Read];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Manage => "manage",
            Scope::Invoke => "invoke",
            Scope::Read => "read",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == text)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller of a request, once its key is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's id (`ADMIN_KEY` for the bootstrap setting; `None` with auth disabled).
    pub key_id: Option<String>,
    pub namespace: String,
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// Everything in namespace `default`: the caller when auth is disabled.
    pub fn local() -> Principal {
        Principal {
            key_id: None,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            scopes: vec![Scope::Admin],
        }
    }

    /// Whether the key carries `scope` (admin carries every one).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }

    /// 403 unless the key carries `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), MissingScope> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(MissingScope(format!("this key lacks the {scope} scope")))
        }
    }

    /// 403 unless the key carries one of `scopes`.
    pub fn require_any(&self, scopes: &[Scope]) -> Result<(), MissingScope> {
        if scopes.iter().any(|&scope| self.has(scope)) {
            return Ok(());
        }
        let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        Err(MissingScope(format!(
            "this key needs one of the scopes {}",
            names.join(", ")
        )))
    }
}

/// A valid key without the scope an operation needs (403); the text names the scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MissingScope(pub String);

/// Why a request is not authenticated. Every one is a 401 with the same header; the sentence
/// says which, so a script's author can tell a typo from a revoked key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no Authorization header; send `Authorization: Bearer <key>`")]
    Missing,
    #[error("the Authorization header is not `Bearer <key>`")]
    Malformed,
    #[error("the key is unknown, revoked, expired, or of a deleted namespace")]
    Rejected,
}

/// A key as presented: its id and its secret's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// `faas_<id>_<secret>`.
    Key { id: Uuid, secret_hash: [u8; 32] },
    /// Anything else: can only be the `ADMIN_KEY` setting.
    Other { hash: [u8; 32] },
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// Equal, in time that does not depend on where they differ.
pub fn same_hash(a: &[u8; 32], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// The bearer token of an `Authorization` header value.
pub fn bearer_token(header: Option<&axum::http::HeaderValue>) -> Result<&str, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let text = header.to_str().map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = text.split_once(' ').ok_or(AuthError::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

/// Reads a token: a key of the platform's format, or anything else (the `ADMIN_KEY` setting).
pub fn parse_token(token: &str) -> Presented {
    if let Some(rest) = token.strip_prefix(KEY_PREFIX)
        && let Some((id, secret)) = rest.split_once('_')
        && id.len() == 32
        && let Ok(id) = Uuid::try_parse(id)
    {
        return Presented::Key {
            id,
            secret_hash: sha256(secret.as_bytes()),
        };
    }
    Presented::Other {
        hash: sha256(token.as_bytes()),
    }
}

/// A new key: what is shown once, and what is stored.
pub struct NewKey {
    pub id: Uuid,
    pub key: String,
    pub secret_hash: [u8; 32],
}

/// Makes a key with a fresh id and 256 random bits of secret.
pub fn new_key() -> NewKey {
    let mut secret = [0u8; SECRET_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut secret)
        .expect("the system's random source works");
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let id = Uuid::new_v4();
    NewKey {
        id,
        key: format!("{KEY_PREFIX}{}_{secret}", id.simple()),
        secret_hash: sha256(secret.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn header(text: &[u8]) -> HeaderValue {
        HeaderValue::from_bytes(text).unwrap()
    }

    #[test]
    fn only_a_bearer_token_is_read_from_the_header() {
        assert_eq!(bearer_token(None), Err(AuthError::Missing));
        assert_eq!(bearer_token(Some(&header(b"Bearer abc"))), Ok("abc"));
        assert_eq!(bearer_token(Some(&header(b"bearer  abc "))), Ok("abc"));
        for bad in [
            &b"abc"[..],
            b"Basic abc",
            b"Bearer",
            b"Bearer ",
            b"",
            b"Bearer a b",
            "Bearer cl\u{e9}".as_bytes(),
        ] {
            assert_eq!(
                bearer_token(Some(&header(bad))),
                Err(AuthError::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_made_key_parses_back_to_its_id_and_secret_hash() {
        let made = new_key();
        assert!(
            made.key.starts_with("faas_") && made.key.len() > 70,
            "{}",
            made.key
        );
        match parse_token(&made.key) {
            Presented::Key { id, secret_hash } => {
                assert_eq!(id, made.id);
                assert!(same_hash(&secret_hash, &made.secret_hash));
            }
            other => panic!("{other:?}"),
        }
        let again = new_key();
        assert_ne!(again.key, made.key);
        assert!(!same_hash(&again.secret_hash, &made.secret_hash));
        // Anything else is hashed whole, for the ADMIN_KEY comparison.
        assert_eq!(
            parse_token("some-operator-chosen-admin-key-0123456789"),
            Presented::Other {
                hash: sha256(b"some-operator-chosen-admin-key-0123456789")
            }
        );
        assert!(matches!(
            parse_token("faas_nothex_x"),
            Presented::Other { .. }
        ));
    }

    #[test]
    fn admin_carries_every_scope_and_the_others_only_their_own() {
        let admin = Principal::local();
        assert!(Scope::ALL.iter().all(|&s| admin.has(s)));
        let reader = Principal {
            key_id: Some("k".into()),
            namespace: "a".into(),
            scopes: vec![Scope::Read],
        };
        assert!(reader.require(Scope::Read).is_ok());
        assert!(matches!(
            reader.require(Scope::Invoke),
            Err(MissingScope(_))
        ));
        assert!(reader.require_any(&[Scope::Manage, Scope::Read]).is_ok());
    }
}
