//! Function definitions by name, kept in memory so that an invocation of a known function makes
//! no database query. Entries are dropped when a function changes: by this replica at once, and
//! by every replica when the change's event arrives over RabbitMQ (all of them when the broker
//! connection was lost, since events may have been missed).

use crate::db::Function;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

#[derive(Default)]
pub struct FunctionCache {
    by_name: RwLock<HashMap<String, Arc<Function>>>,
    /// Bumped by every invalidation. A load that started before one must not store what it
    /// read: it may be the version that was just replaced.
    generation: AtomicU64,
}

impl FunctionCache {
    pub fn get(&self, name: &str) -> Option<Arc<Function>> {
        self.by_name.read().unwrap().get(name).cloned()
    }

    /// The generation to pass to [`FunctionCache::insert`] after a database read.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores `function`, read from the database when the cache was at `generation`, unless
    /// something was invalidated since.
    pub fn insert(&self, function: Arc<Function>, generation: u64) {
        let mut map = self.by_name.write().unwrap();
        if self.generation.load(Ordering::Acquire) == generation {
            map.insert(function.name.clone(), function);
        }
    }

    /// Drops function `id`, under whatever name it was cached.
    pub fn invalidate(&self, id: i64) {
        let mut map = self.by_name.write().unwrap();
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.retain(|_, function| function.id != id);
    }

    pub fn clear(&self) {
        let mut map = self.by_name.write().unwrap();
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }
}
