//! The containers of one worker:
//! - warm ones per function version, reused most recently used first, removed after an idle
//!   TTL, and retired as soon as their function gets a newer version or is deleted;
//! - prewarmed "stem cells" per language, started before any job needs them and bound to a
//!   function by its init frame, then replaced in the background;
//! - a cap on how many exist at once: a cold start that finds no room evicts the least
//!   recently used idle container, or waits for one, up to its deadline.

use crate::container::{
    Container, ContainerError, FunctionKey, LABEL_WORKER, LABEL_WORKER_CONTAINER, Sandbox,
};
use bollard::query_parameters::ListContainersOptionsBuilder;
use common::{FunctionSpec, Language};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// How the pool sizes itself.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub idle_ttl: Duration,
    /// Containers of this worker at most, busy, idle and stem cells together.
    pub max_containers: usize,
    /// Stem cells kept ready per language; 0 turns them off.
    pub stem_cells: usize,
    /// Memory limit of stem cells: only functions with this `memory_mb` can use them.
    pub stem_memory_mb: u32,
    /// How long a call whose function's containers are all busy waits for one of them before
    /// it starts another: a warm call takes milliseconds, a container start far more CPU.
    pub warm_wait: Duration,
    /// Containers being created and started at once. More in parallel only slows each down
    /// (dockerd and runsc do the work) until every one of them misses its init timeout.
    pub max_starting: usize,
}

#[derive(Default)]
struct State {
    /// Idle containers per function version, most recently used last.
    idle: HashMap<FunctionKey, Vec<Container>>,
    stems: HashMap<Language, Vec<Container>>,
    /// Stem cells being started, so the filler does not start too many.
    stems_starting: HashMap<Language, usize>,
    /// Every container started and not yet discarded, idle or busy.
    live: HashSet<String>,
    /// Calls running per function version.
    busy: HashMap<FunctionKey, usize>,
    /// Per function id, the oldest version that may still serve (deleted: `i32::MAX`).
    retired_below: HashMap<i64, i32>,
}

pub struct Pool {
    pub sandbox: Sandbox,
    settings: PoolSettings,
    state: Mutex<State>,
    capacity: Arc<Semaphore>,
    starting: Semaphore,
    /// Woken whenever a container becomes idle or goes away: a cold start waiting for room
    /// looks again.
    room: Notify,
    stems_wanted: Notify,
}

impl Pool {
    pub fn new(sandbox: Sandbox, settings: PoolSettings) -> Self {
        Pool {
            sandbox,
            capacity: Arc::new(Semaphore::new(settings.max_containers.max(1))),
            starting: Semaphore::new(settings.max_starting.max(1)),
            settings,
            state: Mutex::new(State::default()),
            room: Notify::new(),
            stems_wanted: Notify::new(),
        }
    }

    /// Takes the most recently used idle container of exactly this function version. Idle
    /// containers of the function's older versions are retired on the way: they can never serve
    /// again.
    pub fn take_idle(&self, key: FunctionKey) -> Option<Container> {
        let (taken, stale) = {
            let mut state = self.state.lock().unwrap();
            let floor = state.retired_below.entry(key.0).or_insert(key.1);
            *floor = (*floor).max(key.1);
            let stale = drain_retired(&mut state.idle, key.0, key.1);
            let taken = state.idle.get_mut(&key).and_then(Vec::pop);
            if state.idle.get(&key).is_some_and(Vec::is_empty) {
                state.idle.remove(&key);
            }
            (taken, stale)
        };
        for container in stale {
            self.discard(container);
        }
        self.update_gauges();
        taken
    }

    pub fn warm_wait(&self) -> Duration {
        self.settings.warm_wait
    }

    /// Waits until `deadline` for a container of `key` to come back idle, while calls of
    /// `key` are running; `None` when none is running or none came back in time.
    pub async fn wait_for_idle(
        &self,
        key: FunctionKey,
        deadline: tokio::time::Instant,
    ) -> Option<Container> {
        loop {
            let freed = self.room.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(container) = self.take_idle(key) {
                return Some(container);
            }
            if self
                .state
                .lock()
                .unwrap()
                .busy
                .get(&key)
                .copied()
                .unwrap_or(0)
                == 0
            {
                return None;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return self.take_idle(key);
            }
        }
    }

    /// Counts a call of `key` as running until the guard is dropped.
    pub fn busy(&self, key: FunctionKey) -> BusyGuard<'_> {
        *self.state.lock().unwrap().busy.entry(key).or_default() += 1;
        BusyGuard { pool: self, key }
    }

    /// Takes a stem cell for a function of `language` and `memory_mb`, and asks for a new one.
    pub fn take_stem(&self, language: Language, memory_mb: u32) -> Option<Container> {
        if memory_mb != self.settings.stem_memory_mb {
            return None;
        }
        let stem = self
            .state
            .lock()
            .unwrap()
            .stems
            .get_mut(&language)
            .and_then(Vec::pop);
        if stem.is_some() {
            self.stems_wanted.notify_one();
            self.update_gauges();
        }
        stem
    }

    /// A place under the cap for a new container: free room, else the room of the least
    /// recently used idle container (evicted), else the first room that frees up before
    /// `deadline`. `None` when the deadline came first.
    pub async fn reserve(&self, deadline: tokio::time::Instant) -> Option<OwnedSemaphorePermit> {
        loop {
            let freed = self.room.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Ok(permit) = self.capacity.clone().try_acquire_owned() {
                return Some(permit);
            }
            if let Some(victim) = self.pop_least_recently_used(true) {
                tracing::debug!(container = %victim.id, "evicting to make room");
                metrics::counter!("faas_container_evictions_total", "runtime" => self.sandbox.runtime.as_str())
                    .increment(1);
                self.discard(victim);
                continue;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return None;
            }
        }
    }

    /// Starts a container under `permit`, once a start slot is free, and tracks it until it is
    /// discarded.
    pub async fn start(
        &self,
        language: Language,
        memory_mb: u32,
        function: Option<&FunctionSpec>,
        permit: OwnedSemaphorePermit,
    ) -> Result<Container, ContainerError> {
        let _slot = self
            .starting
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let container = self
            .sandbox
            .start(language, memory_mb, function, permit)
            .await?;
        self.state.lock().unwrap().live.insert(container.id.clone());
        self.update_gauges();
        Ok(container)
    }

    /// Returns a healthy container after a call, for the next call of the same version, unless
    /// that version was retired meanwhile.
    pub fn put_idle(&self, mut container: Container) {
        container.idle_since = Instant::now();
        let retired = {
            let mut state = self.state.lock().unwrap();
            let (id, version) = container.key;
            if state
                .retired_below
                .get(&id)
                .is_some_and(|&floor| version < floor)
            {
                Some(container)
            } else {
                state.idle.entry(container.key).or_default().push(container);
                None
            }
        };
        if let Some(container) = retired {
            self.discard(container);
        }
        self.room.notify_waiters();
        self.update_gauges();
    }

    /// Removes a container that must not serve again; its room under the cap is free at once.
    pub fn discard(&self, mut container: Container) {
        self.state.lock().unwrap().live.remove(&container.id);
        drop(container.permit.take());
        self.room.notify_waiters();
        self.update_gauges();
        let sandbox = self.sandbox.clone();
        tokio::spawn(async move { sandbox.remove(&container.id).await });
    }

    /// Retires the warm containers of function `id` older than `current` (`None`: deleted, all
    /// of them), now and when busy ones come back.
    pub fn retire(&self, id: i64, current: Option<i32>) {
        let floor = current.unwrap_or(i32::MAX);
        let stale = {
            let mut state = self.state.lock().unwrap();
            let entry = state.retired_below.entry(id).or_insert(floor);
            *entry = (*entry).max(floor);
            drain_retired(&mut state.idle, id, floor)
        };
        if !stale.is_empty() {
            tracing::debug!(
                function_id = id,
                count = stale.len(),
                "retiring containers of old versions"
            );
        }
        for container in stale {
            self.discard(container);
        }
    }

    fn pop_least_recently_used(&self, include_stems: bool) -> Option<Container> {
        let mut state = self.state.lock().unwrap();
        let idle_oldest = state
            .idle
            .iter()
            .filter_map(|(key, list)| list.first().map(|c| (c.idle_since, *key)))
            .min();
        if let Some((_, key)) = idle_oldest {
            let list = state.idle.get_mut(&key).expect("key was just found");
            let victim = list.remove(0);
            if list.is_empty() {
                state.idle.remove(&key);
            }
            return Some(victim);
        }
        if !include_stems {
            return None;
        }
        // Stem cells go last: they are what makes the next new function fast.
        state
            .stems
            .values_mut()
            .find(|list| !list.is_empty())
            .map(|list| list.remove(0))
    }

    /// Removes containers idle for longer than the TTL (stem cells stay).
    pub fn reap_idle(&self) {
        let expired: Vec<Container> = {
            let mut state = self.state.lock().unwrap();
            let mut expired = Vec::new();
            for containers in state.idle.values_mut() {
                let (old, fresh): (Vec<_>, Vec<_>) = containers
                    .drain(..)
                    .partition(|c| c.idle_since.elapsed() >= self.settings.idle_ttl);
                *containers = fresh;
                expired.extend(old);
            }
            state.idle.retain(|_, containers| !containers.is_empty());
            expired
        };
        if !expired.is_empty() {
            tracing::debug!(count = expired.len(), "reaping idle containers");
        }
        for container in expired {
            self.discard(container);
        }
    }

    /// Keeps `stem_cells` stem cells per language, for as long as it runs, starting missing
    /// ones side by side. A stem cell takes free room under the cap, or the room of the least
    /// recently used idle warm container: a ready stem cell makes the next new function's first
    /// call fast, while an idle container only helps if its own function comes back.
    pub async fn keep_stem_cells(self: Arc<Self>) {
        if self.settings.stem_cells == 0 {
            return;
        }
        loop {
            let wanted = self.stems_wanted.notified();
            tokio::pin!(wanted);
            wanted.as_mut().enable();
            let mut starts = Vec::new();
            for language in Language::ALL {
                while self.stems_short(language) {
                    let Some(permit) = self.room_for_stem() else {
                        break;
                    };
                    *self
                        .state
                        .lock()
                        .unwrap()
                        .stems_starting
                        .entry(language)
                        .or_default() += 1;
                    starts.push(self.start_stem(language, permit));
                }
            }
            let results = futures_util::future::join_all(starts).await;
            let pause = if results.iter().any(|ok| !ok) {
                Duration::from_secs(5)
            } else {
                Duration::from_secs(1)
            };
            // Woken by a stem cell taken; the timer catches room freed by other containers.
            let _ = tokio::time::timeout(pause, wanted).await;
        }
    }

    fn room_for_stem(&self) -> Option<OwnedSemaphorePermit> {
        loop {
            if let Ok(permit) = self.capacity.clone().try_acquire_owned() {
                return Some(permit);
            }
            let victim = self.pop_least_recently_used(false)?;
            metrics::counter!("faas_container_evictions_total", "runtime" => self.sandbox.runtime.as_str())
                .increment(1);
            self.discard(victim);
        }
    }

    /// Starts one stem cell; false when Docker refused.
    async fn start_stem(&self, language: Language, permit: OwnedSemaphorePermit) -> bool {
        let started = self
            .start(language, self.settings.stem_memory_mb, None, permit)
            .await;
        let mut state = self.state.lock().unwrap();
        *state.stems_starting.entry(language).or_default() -= 1;
        let ok = match started {
            Ok(stem) => {
                state.stems.entry(language).or_default().push(stem);
                true
            }
            Err(error) => {
                metrics::counter!("faas_docker_errors_total").increment(1);
                tracing::warn!(%language, %error, "cannot start a stem cell");
                false
            }
        };
        drop(state);
        self.update_gauges();
        ok
    }

    fn stems_short(&self, language: Language) -> bool {
        let state = self.state.lock().unwrap();
        let ready = state.stems.get(&language).map_or(0, Vec::len);
        let starting = state.stems_starting.get(&language).copied().unwrap_or(0);
        ready + starting < self.settings.stem_cells
    }

    /// Stem cells ready for `language`.
    pub fn stem_count(&self, language: Language) -> usize {
        self.state
            .lock()
            .unwrap()
            .stems
            .get(&language)
            .map_or(0, Vec::len)
    }

    /// Ids of the stem cells ready for `language`.
    pub fn stem_ids(&self, language: Language) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.stems.get(&language).map_or_else(Vec::new, |stems| {
            stems.iter().map(|c| c.id.clone()).collect()
        })
    }

    /// How many idle warm containers there are, in all (stem cells not counted).
    pub fn idle_count(&self) -> usize {
        self.state.lock().unwrap().idle.values().map(Vec::len).sum()
    }

    /// Ids of every container this worker runs, idle, busy or stem cell.
    pub fn live_ids(&self) -> Vec<String> {
        self.state.lock().unwrap().live.iter().cloned().collect()
    }

    /// Removes every container this worker started, idle or busy; used on shutdown.
    pub async fn remove_all(&self) {
        let ids: Vec<String> = {
            let mut state = self.state.lock().unwrap();
            state.idle.clear();
            state.stems.clear();
            state.live.drain().collect()
        };
        self.remove_ids(&ids).await;
        self.update_gauges();
    }

    async fn remove_ids(&self, ids: &[String]) {
        futures_util::future::join_all(ids.iter().map(|id| self.sandbox.remove(id))).await;
    }

    /// Every container on the daemon, running or not, that matches the Docker `label` filter
    /// `filter` (`key` or `key=value`).
    async fn list_labelled(
        &self,
        filter: String,
    ) -> Result<Vec<bollard::models::ContainerSummary>, bollard::errors::Error> {
        let filters = HashMap::from([("label".to_owned(), vec![filter])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.sandbox.docker.list_containers(Some(options)).await
    }

    /// Removes containers an earlier run of this worker left behind (found by label).
    pub async fn remove_leftovers(&self) -> Result<usize, bollard::errors::Error> {
        let leftovers = self
            .list_labelled(format!("{LABEL_WORKER}={}", self.sandbox.worker_id))
            .await?;
        let ids: Vec<String> = leftovers.into_iter().filter_map(|c| c.id).collect();
        self.remove_ids(&ids).await;
        Ok(ids.len())
    }

    /// Removes containers whose worker ran in a container that no longer exists on this
    /// daemon: a worker killed and then recreated (compose gives the new one a new id, so
    /// [`Self::remove_leftovers`] cannot find them). Containers of workers on a host, or of a
    /// worker container that still exists (running, restarting or stopped), are left alone.
    pub async fn remove_orphans(&self) -> Result<usize, bollard::errors::Error> {
        let labelled = self
            .list_labelled(LABEL_WORKER_CONTAINER.to_owned())
            .await?;
        let mut by_owner: HashMap<String, Vec<String>> = HashMap::new();
        for container in labelled {
            let owner = container
                .labels
                .as_ref()
                .and_then(|labels| labels.get(LABEL_WORKER_CONTAINER))
                .cloned();
            if let (Some(owner), Some(id)) = (owner, container.id)
                && Some(&owner) != self.sandbox.own_container.as_ref()
            {
                by_owner.entry(owner).or_default().push(id);
            }
        }
        let mut removed = 0;
        for (owner, ids) in by_owner {
            match self.sandbox.docker.inspect_container(&owner, None).await {
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {
                    self.remove_ids(&ids).await;
                    removed += ids.len();
                }
                Ok(_) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(removed)
    }

    fn update_gauges(&self) {
        let (idle, stems, live) = {
            let state = self.state.lock().unwrap();
            let idle: usize = state.idle.values().map(Vec::len).sum();
            let stems: usize = state.stems.values().map(Vec::len).sum();
            (idle, stems, state.live.len())
        };
        let runtime = self.sandbox.runtime.as_str();
        metrics::gauge!("faas_containers", "state" => "warm", "runtime" => runtime)
            .set(idle as f64);
        metrics::gauge!("faas_containers", "state" => "prewarmed", "runtime" => runtime)
            .set(stems as f64);
        metrics::gauge!("faas_containers", "state" => "busy", "runtime" => runtime)
            .set(live.saturating_sub(idle + stems) as f64);
    }
}

/// A running call; see [`Pool::busy`].
pub struct BusyGuard<'a> {
    pool: &'a Pool,
    key: FunctionKey,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.pool.state.lock().unwrap();
        if let Some(count) = state.busy.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                state.busy.remove(&self.key);
            }
        }
    }
}

/// Takes out the idle containers of function `id` older than `floor`.
fn drain_retired(
    idle: &mut HashMap<FunctionKey, Vec<Container>>,
    id: i64,
    floor: i32,
) -> Vec<Container> {
    let stale_keys: Vec<FunctionKey> = idle
        .keys()
        .filter(|(fid, version)| *fid == id && *version < floor)
        .copied()
        .collect();
    stale_keys
        .iter()
        .filter_map(|k| idle.remove(k))
        .flatten()
        .collect()
}
