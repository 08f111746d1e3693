//! Warm containers of this worker: idle ones per function version, reused most recently used
//! first and removed after an idle TTL; and the set of every live container, so that none
//! outlives the worker.

use crate::container::{Container, FunctionKey, LABEL_WORKER, Sandbox};
use bollard::query_parameters::ListContainersOptionsBuilder;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

pub struct Pool {
    pub sandbox: Sandbox,
    idle: Mutex<HashMap<FunctionKey, Vec<Container>>>,
    live: Mutex<HashSet<String>>,
    idle_ttl: Duration,
}

impl Pool {
    pub fn new(sandbox: Sandbox, idle_ttl: Duration) -> Self {
        Pool {
            sandbox,
            idle: Mutex::new(HashMap::new()),
            live: Mutex::new(HashSet::new()),
            idle_ttl,
        }
    }

    /// Takes the most recently used idle container of exactly this function version. Idle
    /// containers of the function's older versions are retired on the way: they can never serve
    /// again.
    pub fn take_idle(&self, key: FunctionKey) -> Option<Container> {
        let (taken, stale) = {
            let mut idle = self.idle.lock().unwrap();
            let stale_keys: Vec<FunctionKey> = idle
                .keys()
                .filter(|(id, version)| *id == key.0 && *version < key.1)
                .copied()
                .collect();
            let stale: Vec<Container> = stale_keys
                .iter()
                .filter_map(|k| idle.remove(k))
                .flatten()
                .collect();
            let taken = idle.get_mut(&key).and_then(Vec::pop);
            if idle.get(&key).is_some_and(Vec::is_empty) {
                idle.remove(&key);
            }
            (taken, stale)
        };
        for container in stale {
            self.discard(container);
        }
        self.update_gauges();
        taken
    }

    /// Records a container just started, so shutdown can find it even while it is busy.
    pub fn track(&self, container: &Container) {
        self.live.lock().unwrap().insert(container.id.clone());
        self.update_gauges();
    }

    /// Returns a healthy container after a call, for the next call of the same version.
    pub fn put_idle(&self, mut container: Container) {
        container.idle_since = std::time::Instant::now();
        self.idle
            .lock()
            .unwrap()
            .entry(container.key)
            .or_default()
            .push(container);
        self.update_gauges();
    }

    /// Removes a container that must not serve again, in the background.
    pub fn discard(&self, container: Container) {
        self.live.lock().unwrap().remove(&container.id);
        self.update_gauges();
        let sandbox = self.sandbox.clone();
        tokio::spawn(async move { sandbox.remove(&container.id).await });
    }

    /// Removes containers idle for longer than the TTL.
    pub fn reap_idle(&self) {
        let expired: Vec<Container> = {
            let mut idle = self.idle.lock().unwrap();
            let mut expired = Vec::new();
            for containers in idle.values_mut() {
                let (old, fresh): (Vec<_>, Vec<_>) = containers
                    .drain(..)
                    .partition(|c| c.idle_since.elapsed() >= self.idle_ttl);
                *containers = fresh;
                expired.extend(old);
            }
            idle.retain(|_, containers| !containers.is_empty());
            expired
        };
        if !expired.is_empty() {
            tracing::debug!(count = expired.len(), "reaping idle containers");
        }
        for container in expired {
            self.discard(container);
        }
    }

    /// How many idle containers there are, in all.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().unwrap().values().map(Vec::len).sum()
    }

    /// Ids of every container this worker runs, idle or busy.
    pub fn live_ids(&self) -> Vec<String> {
        self.live.lock().unwrap().iter().cloned().collect()
    }

    /// Removes every container this worker started, idle or busy; used on shutdown.
    pub async fn remove_all(&self) {
        self.idle.lock().unwrap().clear();
        let ids: Vec<String> = self.live.lock().unwrap().drain().collect();
        let removals = ids.iter().map(|id| self.sandbox.remove(id));
        futures_util::future::join_all(removals).await;
        self.update_gauges();
    }

    /// Removes containers an earlier run of this worker left behind (found by label).
    pub async fn remove_leftovers(&self) -> Result<usize, bollard::errors::Error> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_WORKER}={}", self.sandbox.worker_id)],
        )]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let leftovers = self.sandbox.docker.list_containers(Some(options)).await?;
        let ids: Vec<String> = leftovers.into_iter().filter_map(|c| c.id).collect();
        futures_util::future::join_all(ids.iter().map(|id| self.sandbox.remove(id))).await;
        Ok(ids.len())
    }

    fn update_gauges(&self) {
        let idle = self.idle_count();
        let live = self.live.lock().unwrap().len();
        let runtime = self.sandbox.runtime.as_str();
        metrics::gauge!("faas_containers", "state" => "warm", "runtime" => runtime)
            .set(idle as f64);
        metrics::gauge!("faas_containers", "state" => "busy", "runtime" => runtime)
            .set(live.saturating_sub(idle) as f64);
    }
}
