//! The containers of one worker, and the room they take:
//! - warm ones per function version, reused most recently used first, removed after an idle
//!   TTL, retired as soon as their function gets a newer version or is deleted, and never
//!   handed out once dead (killed from outside, or for breaking the protocol);
//! - prewarmed "stem cells" per language, started before any job needs them and bound to a
//!   function by its init frame, then replaced in the background;
//! - a memory budget (the sum of the containers' `memory_mb`: busy, warm and stem cells) and a
//!   cap on their number, shared fairly between namespaces. A cold start that finds no room
//!   evicts idle containers when that makes enough room (only its own namespace's when it
//!   would be over its share, else those of the namespaces most over theirs first, then the
//!   least recently used), or waits for room, up to a time it is given.
//!
//! A call takes its container with [`Pool::acquire`] (a warm one, one that comes back within a
//! short wait, a stem cell, or a new one, with the function's artifacts fetched and its code
//! loaded) and gives it back with [`Lease::release`], which keeps or discards it by its
//! [`Health`].
//!
//! The pool is generic over a [`Launcher`] that starts, removes and explains containers, so
//! that its scheduling and its decisions are tested without a Docker daemon (tests below, with
//! the fake launcher of `fake`); the worker's launcher is the `sandbox` module's `Sandbox`.
//!
//! Inside: `launcher` (what the pool asks of the world), `room` (budget, cap, shares, eviction),
//! `stems` (stem cells), `lease` (acquire and release); this file holds the idle containers
//! and the bookkeeping they share.

mod launcher;
mod lease;
mod room;
mod stems;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod wait_tests;

pub use launcher::{FunctionKey, Launcher, Mounts, Pooled, STEM_KEY, StemKind};
pub use lease::{Acquisition, Artifact, Health, Lease, NoContainer, Refused};
use room::{Ledger, Namespace, Room};

use crate::error::ContainerError;
use common::{FunctionSpec, Language};
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

/// Containers removed side by side at shutdown. Hundreds at once (a full pool) made containerd
/// stop answering until dockerd restarted it.
pub const REMOVALS_AT_ONCE: usize = 16;

/// How the pool sizes itself.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub idle_ttl: Duration,
    /// Sum of the `memory_mb` of this worker's containers at most (`WORKER_MEMORY_MB`).
    pub memory_budget_mb: u64,
    /// Containers of this worker at most, busy, idle and stem cells together.
    pub max_containers: usize,
    /// Stem cells kept ready per language; 0 turns them off.
    pub stem_cells: usize,
    /// Memory limit of stem cells: only functions with this `memory_mb` can use them.
    pub stem_memory_mb: u32,
    /// Stem cells kept ready per popular dependency set (two cold starts in ten minutes).
    pub deps_stem_cells: usize,
    /// How many popular dependency sets get stem cells, the most demanded first.
    pub deps_stem_sets: usize,
    /// How long a call whose function's containers are all busy waits for one of them before
    /// it starts another: a warm call takes milliseconds, a container start far more CPU.
    pub warm_wait: Duration,
    /// Containers being created and started at once. More in parallel only slows each down
    /// (dockerd and runsc do the work) until every one of them misses its init timeout.
    pub max_starting: usize,
    /// How long a cold start waits for room before the call is given back to the queue, where
    /// a worker with room (or this one, later) takes it.
    pub room_wait: Duration,
    /// How long a started container may take to load the function's code.
    pub init_timeout: Duration,
    /// The `runtime` label of the pool's metrics.
    pub runtime_label: &'static str,
}

/// A container with what the pool knows of it. Handed out in a [`Lease`], and given back with
/// [`Pool::put_idle`] or [`Pool::discard`]; dropping it frees its room but leaves the container
/// (only a panic does that; [`Pool::remove_all`] finds it at shutdown).
struct Slot<C> {
    container: C,
    key: FunctionKey,
    memory_mb: u32,
    idle_since: Instant,
    /// Its place in the budget, counted to its function's namespace once it has one.
    room: Room,
}

impl<C> Slot<C> {
    /// The function version it serves; [`STEM_KEY`] until a stem cell is bound.
    fn key(&self) -> FunctionKey {
        self.key
    }

    /// Binds a stem cell to the function version its init frame loaded; its room counts to
    /// the function's namespace from now on.
    fn bind(&mut self, key: FunctionKey, namespace: &Namespace) {
        self.key = key;
        self.room.tag(namespace);
    }
}

struct State<C> {
    /// Idle containers per function version, most recently used last.
    idle: HashMap<FunctionKey, Vec<Slot<C>>>,
    stems: HashMap<StemKind, Vec<Slot<C>>>,
    /// Stem cells being started, so the filler does not start too many.
    stems_starting: HashMap<StemKind, usize>,
    /// Recent cold starts per dependency set, oldest first: what makes a set popular.
    deps_demand: HashMap<StemKind, std::collections::VecDeque<Instant>>,
    /// Every container started and not yet discarded, idle or busy.
    live: HashSet<String>,
    /// Per function version with calls running, waiting or starting a container.
    demand: HashMap<FunctionKey, Demand>,
    /// How long a call of each function version recently held its container (a moving
    /// average), while the version has containers or demand.
    call_time: HashMap<FunctionKey, Duration>,
    /// How long a cold start recently took on this worker (a moving average).
    start_time: Duration,
    /// Per function id, the oldest version that may still serve (deleted: `i32::MAX`).
    retired_below: HashMap<i64, i32>,
}

impl<C> Default for State<C> {
    fn default() -> Self {
        State {
            idle: HashMap::new(),
            stems: HashMap::new(),
            stems_starting: HashMap::new(),
            deps_demand: HashMap::new(),
            live: HashSet::new(),
            demand: HashMap::new(),
            call_time: HashMap::new(),
            start_time: Duration::ZERO,
            retired_below: HashMap::new(),
        }
    }
}

/// The containers of one worker, started by its launcher `L`; see the module doc.
pub struct Pool<L: Launcher> {
    launcher: Arc<L>,
    settings: PoolSettings,
    state: Mutex<State<L::Container>>,
    ledger: Arc<Ledger>,
    starting: Semaphore,
    stems_wanted: Notify,
}

impl<L: Launcher> Pool<L> {
    /// An empty pool; stem cells come with [`Pool::keep_stem_cells`].
    pub fn new(launcher: L, settings: PoolSettings) -> Self {
        Pool {
            launcher: Arc::new(launcher),
            ledger: Arc::new(Ledger::new(
                settings.memory_budget_mb,
                settings.max_containers.max(1),
            )),
            starting: Semaphore::new(settings.max_starting.max(1)),
            settings,
            state: Mutex::new(State::default()),
            stems_wanted: Notify::new(),
        }
    }

    /// The launcher, for what the worker asks of it directly (leftovers, orphans, builds).
    pub fn launcher(&self) -> &L {
        &self.launcher
    }

    /// The `runtime` label of this pool's metrics.
    pub fn runtime_label(&self) -> &'static str {
        self.settings.runtime_label
    }

    /// Takes the most recently used live idle container of exactly this function version.
    /// Idle containers of the function's older versions are retired on the way (they can
    /// never serve again), and dead ones are discarded.
    fn take_idle(&self, key: FunctionKey) -> Option<Slot<L::Container>> {
        let mut gone = Vec::new();
        let taken = {
            let mut state = self.state.lock().unwrap();
            let floor = state.retired_below.entry(key.0).or_insert(key.1);
            *floor = (*floor).max(key.1);
            gone.extend(drain_retired(&mut state.idle, key.0, key.1));
            let mut taken = None;
            if let Some(list) = state.idle.get_mut(&key) {
                taken = pop_live(list, &mut gone);
                if list.is_empty() {
                    state.idle.remove(&key);
                }
            }
            taken
        };
        self.discard_all(gone);
        self.update_gauges();
        taken
    }

    /// Counts a call of `key` as running until the guard is dropped.
    fn busy(&self, key: FunctionKey) -> DemandGuard<'_, L> {
        self.count(key, |demand| &mut demand.running)
    }

    /// Counts a call of `key` that held its container for `took` in the version's call time.
    fn record_call(&self, key: FunctionKey, took: Duration) {
        let mut state = self.state.lock().unwrap();
        let average = state.call_time.entry(key).or_default();
        *average = moving_average(*average, took);
    }

    /// Counts a cold start that took `took` in this worker's start time.
    fn record_start(&self, took: Duration) {
        let mut state = self.state.lock().unwrap();
        state.start_time = moving_average(state.start_time, took);
    }

    /// Counts one more of what `field` picks in `key`'s demand, until the guard is dropped.
    fn count(&self, key: FunctionKey, field: fn(&mut Demand) -> &mut usize) -> DemandGuard<'_, L> {
        *field(self.state.lock().unwrap().demand.entry(key).or_default()) += 1;
        DemandGuard {
            pool: self,
            key,
            field,
        }
    }

    /// Counts one less of what `field` picks in `key`'s demand, which goes once it is empty.
    fn uncount(&self, key: FunctionKey, field: fn(&mut Demand) -> &mut usize) {
        let mut state = self.state.lock().unwrap();
        if let Some(demand) = state.demand.get_mut(&key) {
            let count = field(demand);
            *count = count.saturating_sub(1);
            if demand.is_empty() {
                state.demand.remove(&key);
            }
        }
    }

    /// Starts a container in `room`, once a start slot is free, and tracks it until it is
    /// discarded.
    async fn start(
        &self,
        language: Language,
        memory_mb: u32,
        function: Option<&FunctionSpec>,
        mounts: &Mounts,
        room: Room,
    ) -> Result<Slot<L::Container>, ContainerError> {
        let permit = self
            .starting
            .acquire()
            .await
            .expect("the semaphore is never closed");
        self.launch_in(permit, language, memory_mb, function, mounts, room)
            .await
    }

    /// Starts a container in `room` while holding a start slot (`_permit`), and tracks it until
    /// it is discarded.
    async fn launch_in(
        &self,
        _permit: tokio::sync::SemaphorePermit<'_>,
        language: Language,
        memory_mb: u32,
        function: Option<&FunctionSpec>,
        mounts: &Mounts,
        room: Room,
    ) -> Result<Slot<L::Container>, ContainerError> {
        let container = self
            .launcher
            .launch(language, memory_mb, function, mounts)
            .await?;
        self.state
            .lock()
            .unwrap()
            .live
            .insert(container.id().to_owned());
        self.update_gauges();
        Ok(Slot {
            container,
            key: function.map_or(STEM_KEY, |spec| (spec.id, spec.version)),
            memory_mb,
            idle_since: Instant::now(),
            room,
        })
    }

    /// Returns a healthy container after a call, for the next call of the same version, unless
    /// that version was retired meanwhile or the container died.
    fn put_idle(&self, mut slot: Slot<L::Container>) {
        slot.idle_since = Instant::now();
        let unusable = {
            let mut state = self.state.lock().unwrap();
            let (id, version) = slot.key();
            let retired = state
                .retired_below
                .get(&id)
                .is_some_and(|&floor| version < floor);
            if retired || !slot.container.is_alive() {
                Some(slot)
            } else {
                if let Some(demand) = state.demand.get_mut(&slot.key) {
                    demand.returned += 1;
                }
                state.idle.entry(slot.key).or_default().push(slot);
                None
            }
        };
        match unusable {
            Some(slot) => self.discard(slot),
            None => self.ledger.changed.notify_waiters(),
        }
        self.update_gauges();
    }

    /// Removes a container that must not serve again; its room is free at once.
    fn discard(&self, slot: Slot<L::Container>) {
        let id = slot.container.id().to_owned();
        self.state.lock().unwrap().live.remove(&id);
        drop(slot);
        self.update_gauges();
        let launcher = self.launcher.clone();
        tokio::spawn(async move { launcher.remove(id).await });
    }

    fn discard_all(&self, slots: Vec<Slot<L::Container>>) {
        for slot in slots {
            self.discard(slot);
        }
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
        self.discard_all(stale);
    }

    /// Removes containers idle for longer than the TTL, and idle containers or stem cells that
    /// died while waiting.
    pub fn reap_idle(&self) {
        let gone: Vec<Slot<L::Container>> = {
            let mut state = self.state.lock().unwrap();
            let mut gone = Vec::new();
            let ttl = self.settings.idle_ttl;
            for list in state.idle.values_mut() {
                let (old, fresh): (Vec<_>, Vec<_>) = list.drain(..).partition(|slot| {
                    slot.idle_since.elapsed() >= ttl || !slot.container.is_alive()
                });
                *list = fresh;
                gone.extend(old);
            }
            state.idle.retain(|_, list| !list.is_empty());
            let State {
                call_time,
                idle,
                demand,
                ..
            } = &mut *state;
            call_time.retain(|key, _| idle.contains_key(key) || demand.contains_key(key));
            for list in state.stems.values_mut() {
                let (dead, alive): (Vec<_>, Vec<_>) =
                    list.drain(..).partition(|slot| !slot.container.is_alive());
                *list = alive;
                gone.extend(dead);
            }
            gone
        };
        if !gone.is_empty() {
            tracing::debug!(count = gone.len(), "reaping idle or dead containers");
            self.stems_wanted.notify_one();
        }
        self.discard_all(gone);
    }

    /// How many idle warm containers there are, in all (stem cells not counted).
    pub fn idle_count(&self) -> usize {
        self.state.lock().unwrap().idle.values().map(Vec::len).sum()
    }

    /// Ids of every container this worker runs, idle, busy or stem cell.
    pub fn live_ids(&self) -> Vec<String> {
        self.state.lock().unwrap().live.iter().cloned().collect()
    }

    /// MiB of the budget held by containers now.
    pub fn memory_used_mb(&self) -> u64 {
        self.ledger.used().mb
    }

    /// Removes every container this worker started, idle or busy; used on shutdown.
    pub async fn remove_all(&self) {
        let (ids, slots) = {
            let mut state = self.state.lock().unwrap();
            let mut slots: Vec<Slot<L::Container>> = Vec::new();
            slots.extend(state.idle.drain().flat_map(|(_, list)| list));
            slots.extend(state.stems.drain().flat_map(|(_, list)| list));
            let ids: Vec<String> = state.live.drain().collect();
            (ids, slots)
        };
        drop(slots);
        futures_util::stream::iter(ids)
            .for_each_concurrent(REMOVALS_AT_ONCE, |id| self.launcher.remove(id))
            .await;
        self.update_gauges();
    }

    fn update_gauges(&self) {
        let (idle, stems) = {
            let state = self.state.lock().unwrap();
            let idle: usize = state.idle.values().map(Vec::len).sum();
            let stems: usize = state.stems.values().map(Vec::len).sum();
            (idle, stems)
        };
        let used = self.ledger.used();
        let runtime = self.settings.runtime_label;
        metrics::gauge!("faas_containers", "state" => "warm", "runtime" => runtime)
            .set(idle as f64);
        metrics::gauge!("faas_containers", "state" => "prewarmed", "runtime" => runtime)
            .set(stems as f64);
        metrics::gauge!("faas_containers", "state" => "busy", "runtime" => runtime)
            .set(used.count.saturating_sub(idle + stems) as f64);
        metrics::gauge!("faas_worker_memory_mb", "state" => "reserved", "runtime" => runtime)
            .set(used.mb as f64);
        // Room left, a scaling signal: what new containers can still take without evicting.
        metrics::gauge!("faas_worker_memory_mb", "state" => "free", "runtime" => runtime)
            .set(self.ledger.budget_mb.saturating_sub(used.mb) as f64);
    }
}

/// What a function version asks of the pool now: what decides whether a call waiting for one
/// of its containers starts another.
#[derive(Debug, Default)]
struct Demand {
    /// Calls running in a container of the version.
    running: usize,
    /// Calls waiting for a container of the version, after none was idle.
    waiting: usize,
    /// Containers being started (or stem cells bound) for it by those calls.
    starting: usize,
    /// Containers of the version given back idle so far: while it moves, its containers turn
    /// over and a waiting call soon gets one.
    returned: u64,
}

impl Demand {
    fn is_empty(&self) -> bool {
        self.running == 0 && self.waiting == 0 && self.starting == 0
    }
}

/// One call running, waiting or starting a container for `key`; see [`Pool::count`].
struct DemandGuard<'a, L: Launcher> {
    pool: &'a Pool<L>,
    key: FunctionKey,
    field: fn(&mut Demand) -> &mut usize,
}

impl<L: Launcher> Drop for DemandGuard<'_, L> {
    fn drop(&mut self) {
        self.pool.uncount(self.key, self.field);
    }
}

/// The next value of a moving average that weighs the newest `sample` by a quarter (the first
/// is taken as it is).
fn moving_average(average: Duration, sample: Duration) -> Duration {
    if average.is_zero() {
        sample
    } else {
        (average * 3 + sample) / 4
    }
}

/// Pops the most recently used live container of `list`; the dead ones passed on the way go
/// to `gone`.
fn pop_live<C: Pooled>(list: &mut Vec<Slot<C>>, gone: &mut Vec<Slot<C>>) -> Option<Slot<C>> {
    while let Some(slot) = list.pop() {
        if slot.container.is_alive() {
            return Some(slot);
        }
        gone.push(slot);
    }
    None
}

/// Takes out the idle containers of function `id` older than `floor`.
fn drain_retired<C>(
    idle: &mut HashMap<FunctionKey, Vec<Slot<C>>>,
    id: i64,
    floor: i32,
) -> Vec<Slot<C>> {
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
