//! Function definitions by namespace and name, kept in memory so that an invocation of a known function makes
//! no database query, and names known to be missing, so that a flood of calls to one does not
//! reach Postgres either.
//!
//! Entries are dropped when a function changes: by this replica at once, and by every replica
//! when the change's event arrives over RabbitMQ. Events can be missed while the broker
//! connection is down, so then nothing is stored, and the cache is emptied again once the new
//! connection's event consumer is subscribed. Entries older than `FUNCTION_CACHE_TTL_SECS` are
//! reloaded whatever happened: a safety net for an event lost some other way.

use crate::store::Function;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// A value read from Postgres and kept right by change events over RabbitMQ: the function
/// cache and the key cache both are one. A load may be stored only if the broker connection is
/// up (events are heard) and nothing was invalidated since the load started (it may have read
/// what was just replaced); a lost connection empties the value, and so does the new one's
/// first moment, since events may have been missed in between.
pub struct EventFed<T> {
    inner: RwLock<Fed<T>>,
    /// Bumped by every invalidation, under the write lock.
    generation: AtomicU64,
}

struct Fed<T> {
    value: T,
    /// False while the broker connection is down, and before the first one is up.
    connected: bool,
}

impl<T: Default> Default for EventFed<T> {
    fn default() -> Self {
        EventFed {
            inner: RwLock::new(Fed {
                value: T::default(),
                connected: false,
            }),
            generation: AtomicU64::new(0),
        }
    }
}

impl<T: Default> EventFed<T> {
    /// Runs `read` on the value.
    pub fn read<R>(&self, read: impl FnOnce(&T) -> R) -> R {
        read(&self.inner.read().unwrap().value)
    }

    /// The generation a load starts at, to hand to [`EventFed::store`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Runs `store` on the value if the broker is connected and nothing was invalidated since
    /// `generation`; otherwise what was loaded is dropped.
    pub fn store(&self, generation: u64, store: impl FnOnce(&mut T)) {
        let mut fed = self.inner.write().unwrap();
        if fed.connected && self.generation.load(Ordering::Acquire) == generation {
            store(&mut fed.value);
        }
    }

    /// Runs `change` on the value, and refuses every load that started before.
    pub fn invalidate(&self, change: impl FnOnce(&mut T)) {
        let mut fed = self.inner.write().unwrap();
        self.generation.fetch_add(1, Ordering::AcqRel);
        change(&mut fed.value);
    }

    /// The broker connection is gone: empty the value and store nothing until
    /// [`EventFed::reconnected`].
    pub fn disconnected(&self) {
        self.reset(false);
    }

    /// A new connection's event consumer is subscribed: events are heard again. What was
    /// stored, or is being loaded, since the last event heard may be stale, so it goes.
    pub fn reconnected(&self) {
        self.reset(true);
    }

    fn reset(&self, connected: bool) {
        let mut fed = self.inner.write().unwrap();
        self.generation.fetch_add(1, Ordering::AcqRel);
        fed.value = T::default();
        fed.connected = connected;
    }
}

/// How long a name stays known as missing. Short: a function created on a replica whose event
/// did not reach this one is found after this at the latest.
pub const MISS_TTL: Duration = Duration::from_secs(5);
/// Names remembered as missing at most; the set is emptied when full (a flood of distinct
/// unknown names costs one query each, as without this cache).
pub const MAX_MISSES: usize = 10_000;

/// What the cache knows about a name.
#[derive(Debug)]
pub enum Lookup {
    Found(Arc<Function>),
    /// Recently looked up and not found.
    Missing,
    /// Ask the database.
    Unknown,
}

struct Entry {
    function: Arc<Function>,
    loaded: Instant,
}

#[derive(Default)]
struct Entries {
    /// By namespace, then name.
    by_name: HashMap<String, HashMap<String, Entry>>,
    /// When each name (by namespace) was found missing.
    misses: HashMap<String, HashMap<String, Instant>>,
    /// How many misses are held, over every namespace.
    miss_count: usize,
}

pub struct FunctionCache {
    entries: EventFed<Entries>,
    ttl: Duration,
    miss_ttl: Duration,
}

impl FunctionCache {
    /// A cache whose definitions are reloaded after `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self::with_ttls(ttl, MISS_TTL)
    }

    fn with_ttls(ttl: Duration, miss_ttl: Duration) -> Self {
        FunctionCache {
            entries: EventFed::default(),
            ttl,
            miss_ttl,
        }
    }

    pub fn get(&self, namespace: &str, name: &str) -> Lookup {
        self.entries.read(|entries| {
            if let Some(entry) = entries.by_name.get(namespace).and_then(|ns| ns.get(name))
                && entry.loaded.elapsed() < self.ttl
            {
                return Lookup::Found(entry.function.clone());
            }
            if entries
                .misses
                .get(namespace)
                .and_then(|ns| ns.get(name))
                .is_some_and(|at| at.elapsed() < self.miss_ttl)
            {
                return Lookup::Missing;
            }
            Lookup::Unknown
        })
    }

    /// The generation to pass to [`FunctionCache::insert`] after a database read.
    pub fn generation(&self) -> u64 {
        self.entries.generation()
    }

    /// Stores `function`, read from the database when the cache was at `generation`, unless
    /// something was invalidated since or the broker is disconnected.
    pub fn insert(&self, function: Arc<Function>, generation: u64) {
        self.entries.store(generation, |entries| {
            entries.forget_miss(&function.namespace, &function.name);
            let entry = Entry {
                function: function.clone(),
                loaded: Instant::now(),
            };
            entries
                .by_name
                .entry(function.namespace.clone())
                .or_default()
                .insert(function.name.clone(), entry);
        });
    }

    /// Remembers that `namespace` has no function called `name`, as read when the cache was at
    /// `generation`; the same conditions as [`FunctionCache::insert`] apply.
    pub fn insert_miss(&self, namespace: &str, name: &str, generation: u64) {
        self.entries.store(generation, |entries| {
            if entries.miss_count >= MAX_MISSES {
                entries.misses.clear();
                entries.miss_count = 0;
            }
            let previous = entries
                .misses
                .entry(namespace.to_owned())
                .or_default()
                .insert(name.to_owned(), Instant::now());
            if previous.is_none() {
                entries.miss_count += 1;
            }
        });
    }

    /// Drops function `id`, under whatever name it was cached, and forgets that `name` (its
    /// name now, if it has one) was missing in `namespace`.
    pub fn invalidate(&self, id: i64, namespace: Option<&str>, name: Option<&str>) {
        self.entries.invalidate(|entries| {
            for functions in entries.by_name.values_mut() {
                functions.retain(|_, entry| entry.function.id != id);
            }
            entries.by_name.retain(|_, functions| !functions.is_empty());
            if let (Some(namespace), Some(name)) = (namespace, name) {
                entries.forget_miss(namespace, name);
            } else if let Some(name) = name {
                // An event of an older api names no namespace: forget the name in every one.
                let namespaces: Vec<String> = entries.misses.keys().cloned().collect();
                for namespace in namespaces {
                    entries.forget_miss(&namespace, name);
                }
            }
        });
    }

    /// See [`EventFed::disconnected`].
    pub fn disconnected(&self) {
        self.entries.disconnected();
    }

    /// See [`EventFed::reconnected`].
    pub fn reconnected(&self) {
        self.entries.reconnected();
    }
}

impl Entries {
    fn forget_miss(&mut self, namespace: &str, name: &str) {
        if let Some(names) = self.misses.get_mut(namespace)
            && names.remove(name).is_some()
        {
            self.miss_count -= 1;
            if names.is_empty() {
                self.misses.remove(namespace);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "default";

    fn function(id: i64, name: &str, version: i32) -> Arc<Function> {
        in_namespace(NS, id, name, version)
    }

    fn in_namespace(namespace: &str, id: i64, name: &str, version: i32) -> Arc<Function> {
        Arc::new(Function {
            id,
            namespace: namespace.into(),
            name: name.into(),
            route: format!("/{name}"),
            version,
            ..Function::example()
        })
    }

    fn connected(ttl: Duration, miss_ttl: Duration) -> FunctionCache {
        let cache = FunctionCache::with_ttls(ttl, miss_ttl);
        cache.reconnected();
        cache
    }

    fn version(lookup: Lookup) -> Option<i32> {
        match lookup {
            Lookup::Found(function) => Some(function.version),
            _ => None,
        }
    }

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn a_load_is_served_until_its_function_changes() {
        let cache = connected(LONG, LONG);
        cache.insert(function(1, "f", 1), cache.generation());
        assert_eq!(version(cache.get(NS, "f")), Some(1));
        cache.invalidate(1, Some(NS), Some("f"));
        assert!(matches!(cache.get(NS, "f"), Lookup::Unknown));
    }

    #[test]
    fn a_load_that_raced_with_an_invalidation_is_not_stored() {
        let cache = connected(LONG, LONG);
        let generation = cache.generation();
        cache.invalidate(1, Some(NS), Some("f"));
        cache.insert(function(1, "f", 1), generation);
        assert!(matches!(cache.get(NS, "f"), Lookup::Unknown));
        cache.insert_miss(NS, "g", generation);
        assert!(matches!(cache.get(NS, "g"), Lookup::Unknown));
    }

    #[test]
    fn nothing_is_stored_while_disconnected_or_before_the_first_connection() {
        let cache = FunctionCache::with_ttls(LONG, LONG);
        cache.insert(function(1, "f", 1), cache.generation());
        assert!(
            matches!(cache.get(NS, "f"), Lookup::Unknown),
            "not connected yet"
        );

        cache.reconnected();
        cache.insert(function(1, "f", 1), cache.generation());
        cache.disconnected();
        assert!(matches!(cache.get(NS, "f"), Lookup::Unknown), "emptied");
        cache.insert(function(1, "f", 1), cache.generation());
        cache.insert_miss(NS, "g", cache.generation());
        assert!(matches!(cache.get(NS, "f"), Lookup::Unknown));
        assert!(matches!(cache.get(NS, "g"), Lookup::Unknown));
    }

    #[test]
    fn a_load_that_started_before_a_reconnection_is_dropped() {
        let cache = connected(LONG, LONG);
        cache.disconnected();
        // Read while disconnected (an update's event may be lost meanwhile)...
        let generation = cache.generation();
        cache.reconnected();
        // ...and stored only after the new connection is up: refused.
        cache.insert(function(1, "f", 1), generation);
        assert!(matches!(cache.get(NS, "f"), Lookup::Unknown));
        cache.insert(function(1, "f", 2), cache.generation());
        assert_eq!(version(cache.get(NS, "f")), Some(2));
    }

    #[test]
    fn entries_older_than_the_ttl_are_reloaded() {
        let cache = connected(Duration::from_millis(30), LONG);
        cache.insert(function(1, "f", 1), cache.generation());
        assert_eq!(version(cache.get(NS, "f")), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        assert!(matches!(cache.get(NS, "f"), Lookup::Unknown));
    }

    #[test]
    fn a_miss_is_remembered_briefly_and_forgotten_when_the_name_appears() {
        let cache = connected(LONG, Duration::from_millis(30));
        cache.insert_miss(NS, "f", cache.generation());
        assert!(matches!(cache.get(NS, "f"), Lookup::Missing));
        std::thread::sleep(Duration::from_millis(40));
        assert!(matches!(cache.get(NS, "f"), Lookup::Unknown), "expired");

        cache.insert_miss(NS, "f", cache.generation());
        cache.invalidate(7, Some(NS), Some("f"));
        assert!(
            matches!(cache.get(NS, "f"), Lookup::Unknown),
            "an event names it"
        );

        cache.insert_miss(NS, "g", cache.generation());
        cache.insert(function(2, "g", 1), cache.generation());
        assert_eq!(
            version(cache.get(NS, "g")),
            Some(1),
            "a load replaces the miss"
        );
    }

    #[test]
    fn the_miss_set_is_bounded() {
        let cache = connected(LONG, LONG);
        for i in 0..MAX_MISSES {
            cache.insert_miss(NS, &format!("n{i}"), cache.generation());
        }
        assert!(matches!(cache.get(NS, "n0"), Lookup::Missing));
        cache.insert_miss(NS, "one_more", cache.generation());
        assert!(
            matches!(cache.get(NS, "n0"), Lookup::Unknown),
            "emptied when full"
        );
        assert!(matches!(cache.get(NS, "one_more"), Lookup::Missing));
        assert!(cache.entries.read(|entries| entries.miss_count) <= MAX_MISSES);
    }

    #[test]
    fn the_same_name_in_two_namespaces_is_two_functions() {
        let cache = connected(LONG, LONG);
        cache.insert(in_namespace("a", 1, "f", 1), cache.generation());
        cache.insert_miss("b", "f", cache.generation());
        assert_eq!(version(cache.get("a", "f")), Some(1));
        assert!(matches!(cache.get("b", "f"), Lookup::Missing));
        cache.insert(in_namespace("b", 2, "f", 7), cache.generation());
        assert_eq!(version(cache.get("b", "f")), Some(7));
        cache.invalidate(2, Some("b"), Some("f"));
        assert_eq!(version(cache.get("a", "f")), Some(1), "only b's went");
        assert!(matches!(cache.get("b", "f"), Lookup::Unknown));
    }
}
