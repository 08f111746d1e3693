//! Verifying keys without a database query per call: what a key's row says is cached by key
//! id for `KEY_CACHE_TTL_SECS` (5 s), ids found unknown too (briefly, and a bounded number).
//! A revocation drops the entry on the replica that made it at once and on every other replica
//! when its event arrives (the events exchange); while the broker connection is down nothing
//! is cached, and the cache is emptied when events are heard again, so a missed event cannot
//! keep a revoked key alive beyond the TTL. When Postgres is away, an entry past its TTL is
//! used still (a revocation needs Postgres too).

use crate::domain::auth::{
    self, ADMIN_KEY_ID, AuthError, DEFAULT_NAMESPACE, Presented, Principal, Scope,
};
use crate::services::cache::EventFed;
use crate::store::DbError;
use crate::store::{self, KeyRecord};
use deadpool_postgres::Pool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Key ids remembered (known or unknown) at most; the cache is emptied when full.
const MAX_ENTRIES: usize = 100_000;

struct Entry {
    /// `None`: no live key has this id.
    record: Option<Arc<KeyRecord>>,
    loaded: Instant,
}

/// Why a presented key stands for nobody: it is not a valid key (401), or it could not be
/// read and none was read before (the database is away).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Rejected(AuthError),
    #[error("the database is unavailable")]
    Database(#[from] DbError),
}

/// This replica's cache of key rows, by key id, and the `ADMIN_KEY` setting's hash.
pub struct KeyStore {
    /// SHA-256 of the `ADMIN_KEY` setting.
    admin_key_hash: Option<[u8; 32]>,
    by_id: EventFed<HashMap<Uuid, Entry>>,
    ttl: Duration,
}

impl KeyStore {
    pub fn new(admin_key: Option<&str>, ttl: Duration) -> KeyStore {
        KeyStore {
            admin_key_hash: admin_key.map(|key| auth::sha256(key.as_bytes())),
            by_id: EventFed::default(),
            ttl,
        }
    }

    /// Whether `hash` is the `ADMIN_KEY` setting's.
    pub fn is_admin_hash(&self, hash: &[u8; 32]) -> bool {
        self.admin_key_hash
            .as_ref()
            .is_some_and(|admin| auth::same_hash(admin, hash))
    }

    /// The caller a presented key stands for, or why none.
    pub async fn verify(&self, pool: &Pool, presented: Presented) -> Result<Principal, KeyError> {
        let rejected = KeyError::Rejected(AuthError::Rejected);
        match presented {
            Presented::Other { hash } if self.is_admin_hash(&hash) => Ok(Principal {
                key_id: Some(ADMIN_KEY_ID.to_owned()),
                namespace: DEFAULT_NAMESPACE.to_owned(),
                scopes: vec![Scope::Admin],
            }),
            Presented::Other { .. } => Err(rejected),
            Presented::Key { id, secret_hash } => {
                let Some(record) = self.record(pool, id).await? else {
                    return Err(rejected);
                };
                let expired = record.expires_at.is_some_and(|at| at <= chrono::Utc::now());
                if expired || !auth::same_hash(&secret_hash, &record.secret_hash) {
                    return Err(rejected);
                }
                Ok(Principal {
                    key_id: Some(id.simple().to_string()),
                    namespace: record.namespace.clone(),
                    scopes: record.scopes.clone(),
                })
            }
        }
    }

    /// Key `id`'s row: cached, or read (and cached), or, with Postgres away, cached even if old.
    async fn record(&self, pool: &Pool, id: Uuid) -> Result<Option<Arc<KeyRecord>>, DbError> {
        let cached = self.by_id.read(|by_id| {
            by_id
                .get(&id)
                .map(|entry| (entry.record.clone(), entry.loaded.elapsed() < self.ttl))
        });
        let stale = match cached {
            Some((record, true)) => return Ok(record),
            Some((record, false)) => Some(record),
            None => None,
        };
        let generation = self.by_id.generation();
        match store::get_key_record(pool, id).await {
            Ok(record) => {
                let record = record.map(Arc::new);
                self.store(id, record.clone(), generation);
                Ok(record)
            }
            Err(error) => match stale {
                Some(record) => {
                    tracing::warn!(%error, "cannot re-read a key; using what was read before");
                    Ok(record)
                }
                None => Err(error),
            },
        }
    }

    fn store(&self, id: Uuid, record: Option<Arc<KeyRecord>>, generation: u64) {
        self.by_id.store(generation, |by_id| {
            if by_id.len() >= MAX_ENTRIES {
                by_id.clear();
            }
            let loaded = Instant::now();
            by_id.insert(id, Entry { record, loaded });
        });
    }

    /// Forgets key `id`, or every key of `namespace` (deleted), or both.
    pub fn invalidate(&self, id: Option<Uuid>, namespace: Option<&str>) {
        self.by_id.invalidate(|by_id| {
            if let Some(id) = id {
                by_id.remove(&id);
            }
            if let Some(namespace) = namespace {
                by_id.retain(|_, entry| {
                    entry
                        .record
                        .as_ref()
                        .is_none_or(|record| record.namespace != namespace)
                });
            }
        });
    }

    /// See [`EventFed::disconnected`].
    pub fn disconnected(&self) {
        self.by_id.disconnected();
    }

    /// See [`EventFed::reconnected`].
    pub fn reconnected(&self) {
        self.by_id.reconnected();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(namespace: &str) -> Option<Arc<KeyRecord>> {
        Some(Arc::new(KeyRecord {
            namespace: namespace.into(),
            scopes: vec![Scope::Invoke],
            secret_hash: vec![0; 32],
            expires_at: None,
        }))
    }

    fn cached(store: &KeyStore, id: Uuid) -> bool {
        store.by_id.read(|by_id| by_id.contains_key(&id))
    }

    #[test]
    fn nothing_is_stored_while_disconnected_nor_a_load_that_raced_an_invalidation() {
        let store = KeyStore::new(None, Duration::from_secs(60));
        let id = Uuid::new_v4();
        store.store(id, record("a"), store.by_id.generation());
        assert!(!cached(&store, id), "not connected yet");
        store.reconnected();
        let before = store.by_id.generation();
        store.invalidate(Some(Uuid::new_v4()), None);
        store.store(id, record("a"), before);
        assert!(!cached(&store, id), "read before an invalidation");
        store.store(id, record("a"), store.by_id.generation());
        assert!(cached(&store, id));
        store.disconnected();
        assert!(!cached(&store, id));
    }

    #[test]
    fn a_deleted_namespace_takes_its_keys_and_a_revocation_its_key() {
        let store = KeyStore::new(None, Duration::from_secs(60));
        store.reconnected();
        let (a1, a2, b, unknown) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        for (id, ns) in [(a1, "a"), (a2, "a"), (b, "b")] {
            store.store(id, record(ns), store.by_id.generation());
        }
        store.store(unknown, None, store.by_id.generation());
        store.invalidate(None, Some("a"));
        assert!(!cached(&store, a1) && !cached(&store, a2));
        assert!(cached(&store, b) && cached(&store, unknown));
        store.invalidate(Some(b), None);
        assert!(!cached(&store, b));
    }
}
