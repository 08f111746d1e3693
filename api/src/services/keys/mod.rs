//! API keys as clients manage them: made with checked scopes, namespace, description and
//! expiry (the key is shown once), listed without their secrets, and revoked on every api
//! replica at once: this replica's [`cache`] forgets the key now, the others when the key
//! event arrives. [`cache`] is what verifies a key on each request.
//!
//! An admin key manages the keys of every namespace. A manage key mints, lists and revokes the
//! `invoke` and `read` keys of its own namespace, never `manage` or `admin` ones.

pub mod cache;

use crate::broker::Invoker;
use crate::domain::auth::{self, DEFAULT_NAMESPACE, Principal, Scope};
use crate::store::{self, DbError, KeyInfo};
use cache::KeyStore;
use chrono::{DateTime, Utc};
use common::KeyEvent;
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

const MAX_DESCRIPTION_LEN: usize = 256;
/// What a manage key may hand out (and revoke).
const MINTABLE_BY_MANAGE: [Scope; 2] = [Scope::Invoke, Scope::Read];

/// The body of `POST /keys/`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"scopes": ["invoke"], "description": "the checkout service"})))]
pub struct KeyInput {
    /// Absent or null: the caller's namespace. Only an admin key names another.
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000]*$")]
    namespace: Option<String>,
    /// At least one; repeats are ignored. A manage key mints `invoke` and `read` keys only.
    #[schema(value_type = Vec<Scope>, min_items = 1)]
    scopes: Vec<String>,
    /// Whatever helps you remember what it is for: at most 256 characters, no NUL.
    #[serde(default)]
    #[schema(max_length = 256, pattern = r"^[^\u0000]*$")]
    description: String,
    /// When it stops working; must be in the future. Absent or null: never.
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

/// A key just made: its listing and, this once, the key itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(examples(json!({
    "id": "0b9d2f3c4e5a6b7c8d9e0f1a2b3c4d5e", "namespace": "team-a", "scopes": ["invoke"],
    "description": "the shop's frontend", "created_at": "2026-11-27T16:00:00Z",
    "expires_at": null,
    "key": "faas_0b9d2f3c4e5a6b7c8d9e0f1a2b3c4d5e_Zm9yIGV4YW1wbGUgb25seSwgbm90IGEgcmVhbCBrZXk"
})))]
pub struct CreatedKey {
    #[serde(flatten)]
    info: KeyInfo,
    /// The key, shown only here: the api keeps a hash of it. Send it as
    /// `Authorization: Bearer <key>`.
    #[schema(pattern = "^faas_[0-9a-f]{32}_[A-Za-z0-9_-]{43}$")]
    key: String,
}

impl CreatedKey {
    /// The key itself, to show this once.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Why a key was not made or revoked.
#[derive(Debug, thiserror::Error)]
pub enum KeyChangeError {
    /// The input breaks a rule (422).
    #[error("{0}")]
    Invalid(String),
    /// The caller's key may not make or revoke such a key (403).
    #[error("{0}")]
    Forbidden(String),
    #[error("namespace {0} not found")]
    NamespaceNotFound(String),
    /// No such key, or one the caller may not see (the id as it was given).
    #[error("key {0} not found")]
    KeyNotFound(String),
    /// The namespace holds its `keys` quota of live keys (429).
    #[error(transparent)]
    Quota(crate::domain::quota::QuotaExceeded),
    #[error("the database is unavailable")]
    Database(DbError),
}

impl From<DbError> for KeyChangeError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Quota(exceeded) => KeyChangeError::Quota(exceeded),
            other => KeyChangeError::Database(other),
        }
    }
}

/// The keys service.
#[derive(Clone)]
pub struct Keys {
    db: Pool,
    invoker: Arc<Invoker>,
    /// This replica's key cache; `None` with auth disabled.
    cache: Option<Arc<KeyStore>>,
    /// `QUOTA_KEYS`.
    quota_keys: i64,
}

impl Keys {
    /// The service; `quota_keys` is `QUOTA_KEYS`, the live keys of a namespace that sets no
    /// quota of its own.
    pub fn new(
        db: Pool,
        invoker: Arc<Invoker>,
        cache: Option<Arc<KeyStore>>,
        quota_keys: i64,
    ) -> Self {
        Keys {
            db,
            invoker,
            cache,
            quota_keys,
        }
    }

    /// Makes a key for `caller` (who holds `admin` or `manage`); the answer is the only time
    /// the key is shown.
    pub async fn create(
        &self,
        caller: &Principal,
        input: KeyInput,
    ) -> Result<CreatedKey, KeyChangeError> {
        let checked = check_new_key(caller, &input, Utc::now())?;
        let key = auth::new_key();
        let row = store::NewKeyRow {
            id: key.id,
            namespace: &checked.namespace,
            scopes: &checked.scopes,
            description: &input.description,
            secret_hash: &key.secret_hash,
            expires_at: input.expires_at,
        };
        let info = store::insert_key(&self.db, &row, self.quota_keys)
            .await?
            .ok_or_else(|| KeyChangeError::NamespaceNotFound(checked.namespace.clone()))?;
        tracing::info!(key_id = %key.id.simple(), namespace = %checked.namespace, "key made");
        Ok(CreatedKey { info, key: key.key })
    }

    /// The keys `caller` may see, without their secrets: an admin's filter by `namespace` (or
    /// none); a manage key sees its own namespace's, whatever it asks.
    pub async fn list(
        &self,
        caller: &Principal,
        namespace: Option<String>,
    ) -> Result<Vec<KeyInfo>, DbError> {
        let namespace = visible_namespace(caller, namespace);
        store::list_keys(&self.db, namespace.as_deref()).await
    }

    /// Revokes key `id` (as the client wrote it), on every replica at once.
    pub async fn revoke(&self, caller: &Principal, id: &str) -> Result<(), KeyChangeError> {
        let not_found = || KeyChangeError::KeyNotFound(id.to_owned());
        let key_id = Uuid::try_parse(id).map_err(|_| not_found())?;
        let info = store::get_key_info(&self.db, key_id)
            .await?
            .ok_or_else(not_found)?;
        check_revocable(caller, &info, id)?;
        if !store::revoke_key(&self.db, key_id).await? {
            return Err(not_found());
        }
        self.forget(Some(key_id), None).await;
        tracing::info!(key_id = %key_id.simple(), "key revoked");
        Ok(())
    }

    /// Keys that are no longer valid (key `key_id`, or every key of `namespace`): this
    /// replica's cache drops them now, and the key event tells the other replicas.
    pub async fn forget(&self, key_id: Option<Uuid>, namespace: Option<&str>) {
        if let Some(cache) = &self.cache {
            cache.invalidate(key_id, namespace);
        }
        self.invoker
            .publish_key_event(&KeyEvent {
                key_id,
                namespace: namespace.map(str::to_owned),
            })
            .await;
    }
}

/// Makes the first admin key when `ADMIN_KEY` is not set and no live admin key exists, and
/// prints it, once, in the log: the operator's way in.
pub async fn make_first_admin_key(pool: &Pool) -> anyhow::Result<()> {
    let key = auth::new_key();
    let row = store::NewKeyRow {
        id: key.id,
        namespace: DEFAULT_NAMESPACE,
        scopes: &[Scope::Admin],
        description: "the first admin key, made by the api at its first start",
        secret_hash: &key.secret_hash,
        expires_at: None,
    };
    if store::insert_first_admin_key(pool, &row).await? {
        tracing::warn!(
            admin_key = %key.key,
            "no ADMIN_KEY was set and no admin key existed: made this admin key, shown this once; keep it (it mints every other key)"
        );
    }
    Ok(())
}

/// A new key's namespace and scopes, once checked.
#[derive(Debug, PartialEq)]
struct CheckedKey {
    namespace: String,
    scopes: Vec<Scope>,
}

/// The input checked against the rules of a key (scopes, description, namespace, expiry,
/// in that order) and then against what `caller` may mint.
fn check_new_key(
    caller: &Principal,
    input: &KeyInput,
    now: DateTime<Utc>,
) -> Result<CheckedKey, KeyChangeError> {
    let scopes = parse_scopes(&input.scopes)?;
    let namespace = input
        .namespace
        .clone()
        .unwrap_or_else(|| caller.namespace.clone());
    if input.description.chars().count() > MAX_DESCRIPTION_LEN || input.description.contains('\0') {
        return Err(KeyChangeError::Invalid(format!(
            "description must be at most {MAX_DESCRIPTION_LEN} characters, without NUL"
        )));
    }
    // Postgres text cannot hold U+0000: the lookup would fail (a 503) rather than find none.
    if namespace.contains('\0') {
        return Err(KeyChangeError::Invalid(
            "namespace must not contain NUL (U+0000) characters".into(),
        ));
    }
    if input.expires_at.is_some_and(|at| at <= now) {
        return Err(KeyChangeError::Invalid(
            "expires_at must be in the future".into(),
        ));
    }
    if !caller.has(Scope::Admin) {
        if namespace != caller.namespace {
            return Err(KeyChangeError::Forbidden(
                "a manage key makes keys for its own namespace only".into(),
            ));
        }
        if !only_mintable_by_manage(&scopes) {
            return Err(KeyChangeError::Forbidden(
                "a manage key makes invoke and read keys only".into(),
            ));
        }
    }
    Ok(CheckedKey { namespace, scopes })
}

/// Scope names, checked, without repeats, in a fixed order.
fn parse_scopes(names: &[String]) -> Result<Vec<Scope>, KeyChangeError> {
    if names.is_empty() {
        return Err(KeyChangeError::Invalid(
            "scopes must name at least one of admin, manage, invoke, read".into(),
        ));
    }
    let mut scopes = Vec::with_capacity(names.len());
    for name in names {
        let scope = Scope::parse(name).ok_or_else(|| {
            KeyChangeError::Invalid(format!(
                "unknown scope {name:?}; scopes are admin, manage, invoke, read"
            ))
        })?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    scopes.sort();
    Ok(scopes)
}

fn only_mintable_by_manage(scopes: &[Scope]) -> bool {
    scopes
        .iter()
        .all(|scope| MINTABLE_BY_MANAGE.contains(scope))
}

/// Whether `caller` may revoke the key `info` describes (`id` as the client wrote it).
fn check_revocable(caller: &Principal, info: &KeyInfo, id: &str) -> Result<(), KeyChangeError> {
    if caller.has(Scope::Admin) {
        return Ok(());
    }
    // Another namespace's keys do not exist for this caller.
    if info.namespace != caller.namespace {
        return Err(KeyChangeError::KeyNotFound(id.to_owned()));
    }
    if !only_mintable_by_manage(&info.scopes) {
        return Err(KeyChangeError::Forbidden(
            "a manage key revokes invoke and read keys only".into(),
        ));
    }
    Ok(())
}

/// The namespace whose keys `caller` lists: an admin's choice (`None`: every namespace's), a
/// manage key's own.
fn visible_namespace(caller: &Principal, asked: Option<String>) -> Option<String> {
    if caller.has(Scope::Admin) {
        asked
    } else {
        Some(caller.namespace.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(namespace: &str, scopes: &[Scope]) -> Principal {
        Principal {
            key_id: Some("0".repeat(32)),
            namespace: namespace.into(),
            scopes: scopes.to_vec(),
        }
    }

    fn input(namespace: Option<&str>, scopes: &[&str]) -> KeyInput {
        KeyInput {
            namespace: namespace.map(str::to_owned),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            description: String::new(),
            expires_at: None,
        }
    }

    fn info(namespace: &str, scopes: &[Scope]) -> KeyInfo {
        KeyInfo {
            id: Uuid::nil(),
            namespace: namespace.into(),
            scopes: scopes.to_vec(),
            description: String::new(),
            created_at: Utc::now(),
            expires_at: None,
        }
    }

    #[test]
    fn scopes_are_checked_deduplicated_and_ordered() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_scopes(&names(&["read", "invoke", "read"])).unwrap(),
            vec![Scope::Invoke, Scope::Read]
        );
        assert!(matches!(parse_scopes(&[]), Err(KeyChangeError::Invalid(_))));
        assert!(matches!(
            parse_scopes(&names(&["invoke", "root"])),
            Err(KeyChangeError::Invalid(message)) if message.contains("\"root\"")
        ));
    }

    #[test]
    fn a_new_key_defaults_to_the_callers_namespace_and_breaks_no_rule() {
        let now = Utc::now();
        let admin = caller("default", &[Scope::Admin]);
        assert_eq!(
            check_new_key(&admin, &input(None, &["read", "admin"]), now).unwrap(),
            CheckedKey {
                namespace: "default".into(),
                scopes: vec![Scope::Admin, Scope::Read],
            }
        );
        let mut long = input(None, &["read"]);
        long.description = "x".repeat(MAX_DESCRIPTION_LEN + 1);
        let mut nul = input(None, &["read"]);
        nul.description = "a\0b".into();
        let mut past = input(None, &["read"]);
        past.expires_at = Some(now);
        for bad in [long, nul, past, input(Some("a\0"), &["read"])] {
            assert!(
                matches!(
                    check_new_key(&admin, &bad, now),
                    Err(KeyChangeError::Invalid(_))
                ),
                "{bad:?}"
            );
        }
        let mut at_limit = input(Some("team"), &["invoke"]);
        at_limit.description = "é".repeat(MAX_DESCRIPTION_LEN);
        at_limit.expires_at = Some(now + chrono::Duration::seconds(1));
        assert!(check_new_key(&admin, &at_limit, now).is_ok());
    }

    #[test]
    fn a_manage_key_mints_invoke_and_read_keys_of_its_own_namespace_only() {
        let now = Utc::now();
        let manage = caller("team", &[Scope::Manage]);
        let made = check_new_key(&manage, &input(None, &["invoke", "read"]), now).unwrap();
        assert_eq!(made.namespace, "team");
        for refused in [
            input(None, &["manage"]),
            input(None, &["read", "admin"]),
            input(Some("other"), &["read"]),
        ] {
            assert!(
                matches!(
                    check_new_key(&manage, &refused, now),
                    Err(KeyChangeError::Forbidden(_))
                ),
                "{refused:?}"
            );
        }
        // Naming its own namespace is the same as naming none.
        assert!(check_new_key(&manage, &input(Some("team"), &["read"]), now).is_ok());
    }

    #[test]
    fn a_manage_key_revokes_its_namespaces_invoke_and_read_keys_and_sees_no_other() {
        let manage = caller("team", &[Scope::Manage]);
        assert!(
            check_revocable(&manage, &info("team", &[Scope::Invoke, Scope::Read]), "k").is_ok()
        );
        assert!(matches!(
            check_revocable(&manage, &info("team", &[Scope::Manage]), "k"),
            Err(KeyChangeError::Forbidden(_))
        ));
        assert!(matches!(
            check_revocable(&manage, &info("other", &[Scope::Read]), "k"),
            Err(KeyChangeError::KeyNotFound(id)) if id == "k"
        ));
        let admin = caller("default", &[Scope::Admin]);
        assert!(check_revocable(&admin, &info("other", &[Scope::Admin]), "k").is_ok());
    }

    #[test]
    fn only_an_admin_chooses_whose_keys_it_lists() {
        let admin = caller("default", &[Scope::Admin]);
        assert_eq!(visible_namespace(&admin, None), None);
        assert_eq!(
            visible_namespace(&admin, Some("team".into())),
            Some("team".into())
        );
        let manage = caller("team", &[Scope::Manage]);
        assert_eq!(
            visible_namespace(&manage, Some("other".into())),
            Some("team".into())
        );
        assert_eq!(visible_namespace(&manage, None), Some("team".into()));
    }
}
