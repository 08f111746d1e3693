//! The containers of one worker, and the room they take:
//! - warm ones per function version, reused most recently used first, removed after an idle
//!   TTL, retired as soon as their function gets a newer version or is deleted, and never
//!   handed out once dead (killed from outside, or for breaking the protocol);
//! - prewarmed "stem cells" per language, started before any job needs them and bound to a
//!   function by its init frame, then replaced in the background;
//! - a memory budget (the sum of the containers' `memory_mb`: busy, warm and stem cells) and a
//!   cap on their number. A cold start that finds no room evicts least recently used idle
//!   containers when that makes enough room, or waits for room, up to a time it is given.
//!
//! The pool is generic over a [`Launcher`] that starts and removes containers, so that its
//! scheduling is tested without a Docker daemon (tests below); the worker's launcher is
//! [`Sandbox`](crate::sandbox::Sandbox).

use crate::sandbox::ContainerError;
use common::{FunctionSpec, Language};
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

/// Containers removed side by side at shutdown. Hundreds at once (a full pool) made containerd
/// stop answering until dockerd restarted it.
pub const REMOVALS_AT_ONCE: usize = 16;

/// Warm containers are keyed by function id and version: a container never serves another.
pub type FunctionKey = (i64, i32);
/// The key of a stem cell, bound to no function yet.
pub const STEM_KEY: FunctionKey = (-1, -1);

/// The artifacts a container mounts read-only, by digest: a function's dependencies and its
/// deployment package.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Mounts {
    pub deps: Option<String>,
    pub package: Option<String>,
}

impl Mounts {
    /// What `spec` mounts.
    pub fn of(spec: &FunctionSpec) -> Self {
        Mounts {
            deps: spec.dependencies.as_ref().map(|a| a.digest.clone()),
            package: spec.package.as_ref().map(|a| a.digest.clone()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.deps.is_none() && self.package.is_none()
    }

    /// The digests, dependencies first.
    pub fn digests(&self) -> impl Iterator<Item = &str> {
        self.deps
            .iter()
            .chain(self.package.iter())
            .map(String::as_str)
    }
}

/// What a stem cell is ready for: a language, and for functions with dependencies or a
/// package the artifacts it mounts (a mount cannot be added to a running container).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StemKind {
    pub language: Language,
    /// Empty: a plain stem cell, for single-source functions without dependencies.
    pub mounts: Mounts,
}

impl StemKind {
    pub fn plain(language: Language) -> Self {
        StemKind {
            language,
            mounts: Mounts::default(),
        }
    }

    /// The stem cell a cold start of `spec` can bind.
    pub fn of(spec: &FunctionSpec) -> Self {
        StemKind {
            language: spec.language,
            mounts: Mounts::of(spec),
        }
    }
}

/// How long cold starts of a dependency set count towards its popularity.
const DEPS_DEMAND_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Cold starts within the window that make a dependency set popular.
const DEPS_DEMAND_POPULAR: usize = 2;

/// Drops the cold starts older than [`DEPS_DEMAND_WINDOW`] from a set's demand (oldest first).
fn forget_old_demand(demand: &mut std::collections::VecDeque<Instant>, now: Instant) {
    while demand
        .front()
        .is_some_and(|at| now - *at > DEPS_DEMAND_WINDOW)
    {
        demand.pop_front();
    }
}

/// What the pool needs of a container.
pub trait Pooled: Send + 'static {
    fn id(&self) -> &str;
    /// False once it can never answer again; a dead container is discarded, not handed out.
    fn is_alive(&self) -> bool;
}

/// Starts and removes containers for the pool.
pub trait Launcher: Send + Sync + 'static {
    type Container: Pooled;

    /// Starts a container for `function`, or a stem cell of `language` (`function` = `None`),
    /// mounting the artifacts `mounts` names.
    fn launch(
        &self,
        language: Language,
        memory_mb: u32,
        function: Option<&FunctionSpec>,
        mounts: &Mounts,
    ) -> impl Future<Output = Result<Self::Container, ContainerError>> + Send;

    /// Kills and removes the container `id`; failures are the launcher's to report.
    fn remove(&self, id: String) -> impl Future<Output = ()> + Send;
}

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
    /// The `runtime` label of the pool's metrics.
    pub runtime_label: &'static str,
}

/// Memory and the number of containers in use, against the budget and the cap.
struct Ledger {
    used: Mutex<Used>,
    budget_mb: u64,
    max_containers: usize,
    /// Woken whenever room frees up or a container goes back idle: a call waiting for room, or
    /// for its function's container, looks again.
    changed: Notify,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Used {
    mb: u64,
    count: usize,
}

impl Ledger {
    /// Room for a container of `memory_mb`, if there is that much free now.
    fn try_take(self: &Arc<Self>, memory_mb: u32) -> Option<Room> {
        let mut used = self.used.lock().unwrap();
        let fits =
            used.mb + u64::from(memory_mb) <= self.budget_mb && used.count < self.max_containers;
        fits.then(|| {
            used.mb += u64::from(memory_mb);
            used.count += 1;
            Room {
                ledger: self.clone(),
                memory_mb,
            }
        })
    }

    /// What must be freed before a container of `memory_mb` fits: (MiB, containers).
    fn shortfall(&self, memory_mb: u32) -> (u64, usize) {
        let used = *self.used.lock().unwrap();
        let mb = (used.mb + u64::from(memory_mb)).saturating_sub(self.budget_mb);
        let count = (used.count + 1).saturating_sub(self.max_containers);
        (mb, count)
    }

    fn used(&self) -> Used {
        *self.used.lock().unwrap()
    }
}

/// A container's place in the budget; given back when dropped.
pub struct Room {
    ledger: Arc<Ledger>,
    memory_mb: u32,
}

impl Drop for Room {
    fn drop(&mut self) {
        {
            let mut used = self.ledger.used.lock().unwrap();
            used.mb -= u64::from(self.memory_mb);
            used.count -= 1;
        }
        self.ledger.changed.notify_waiters();
    }
}

/// A container with what the pool knows of it. Handed out to run a call, and given back with
/// [`Pool::put_idle`] or [`Pool::discard`]; dropping it frees its room but leaves the container
/// (only a panic does that; [`Pool::remove_all`] finds it at shutdown).
pub struct Slot<C> {
    pub container: C,
    key: FunctionKey,
    language: Language,
    memory_mb: u32,
    idle_since: Instant,
    _room: Room,
}

impl<C> Slot<C> {
    /// The function version it serves; [`STEM_KEY`] until a stem cell is bound.
    pub fn key(&self) -> FunctionKey {
        self.key
    }

    /// Binds a stem cell to the function version its init frame loaded.
    pub fn bind(&mut self, key: FunctionKey) {
        self.key = key;
    }

    pub fn memory_mb(&self) -> u32 {
        self.memory_mb
    }

    pub fn language(&self) -> Language {
        self.language
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
    /// Calls running per function version.
    busy: HashMap<FunctionKey, usize>,
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
            busy: HashMap::new(),
            retired_below: HashMap::new(),
        }
    }
}

pub struct Pool<L: Launcher> {
    launcher: Arc<L>,
    settings: PoolSettings,
    state: Mutex<State<L::Container>>,
    ledger: Arc<Ledger>,
    starting: Semaphore,
    stems_wanted: Notify,
}

impl<L: Launcher> Pool<L> {
    pub fn new(launcher: L, settings: PoolSettings) -> Self {
        Pool {
            launcher: Arc::new(launcher),
            ledger: Arc::new(Ledger {
                used: Mutex::new(Used::default()),
                budget_mb: settings.memory_budget_mb,
                max_containers: settings.max_containers.max(1),
                changed: Notify::new(),
            }),
            starting: Semaphore::new(settings.max_starting.max(1)),
            settings,
            state: Mutex::new(State::default()),
            stems_wanted: Notify::new(),
        }
    }

    pub fn launcher(&self) -> &L {
        &self.launcher
    }

    pub fn warm_wait(&self) -> Duration {
        self.settings.warm_wait
    }

    /// Takes the most recently used live idle container of exactly this function version.
    /// Idle containers of the function's older versions are retired on the way (they can
    /// never serve again), and dead ones are discarded.
    pub fn take_idle(&self, key: FunctionKey) -> Option<Slot<L::Container>> {
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

    /// Waits until `deadline` for a container of `key` to come back idle, while calls of
    /// `key` are running; `None` when none is running or none came back in time.
    pub async fn wait_for_idle(
        &self,
        key: FunctionKey,
        deadline: tokio::time::Instant,
    ) -> Option<Slot<L::Container>> {
        loop {
            let changed = self.ledger.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(slot) = self.take_idle(key) {
                return Some(slot);
            }
            let running = self.state.lock().unwrap().busy.get(&key).copied();
            if running.unwrap_or(0) == 0 {
                return None;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.take_idle(key);
            }
        }
    }

    /// Counts a call of `key` as running until the guard is dropped.
    pub fn busy(&self, key: FunctionKey) -> BusyGuard<'_, L> {
        *self.state.lock().unwrap().busy.entry(key).or_default() += 1;
        BusyGuard { pool: self, key }
    }

    /// Takes a live stem cell of `kind` for a function of `memory_mb`, and asks for a new one.
    /// A cold start with dependencies counts towards its set's popularity, found or not.
    pub fn take_stem(&self, kind: &StemKind, memory_mb: u32) -> Option<Slot<L::Container>> {
        let mut gone = Vec::new();
        let mut became_popular = false;
        let stem = {
            let mut state = self.state.lock().unwrap();
            if !kind.mounts.is_empty() && self.settings.deps_stem_cells > 0 {
                let demand = state.deps_demand.entry(kind.clone()).or_default();
                let now = Instant::now();
                demand.push_back(now);
                forget_old_demand(demand, now);
                became_popular = demand.len() == DEPS_DEMAND_POPULAR;
            }
            if memory_mb != self.settings.stem_memory_mb {
                None
            } else {
                pop_live(state.stems.entry(kind.clone()).or_default(), &mut gone)
            }
        };
        let asked = stem.is_some() || !gone.is_empty() || became_popular;
        self.discard_all(gone);
        if asked {
            self.stems_wanted.notify_one();
            self.update_gauges();
        }
        stem
    }

    /// Room for a new container of `memory_mb`: free room, else the room of least recently
    /// used idle containers (evicted, stem cells last) when that is enough, else the first room
    /// that frees up before `until`. `None` when `until` came first.
    pub async fn reserve(&self, memory_mb: u32, until: tokio::time::Instant) -> Option<Room> {
        loop {
            let changed = self.ledger.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(room) = self.ledger.try_take(memory_mb) {
                return Some(room);
            }
            if self.evict_for(memory_mb, true) {
                continue;
            }
            if tokio::time::timeout_at(until, changed).await.is_err() {
                return self.ledger.try_take(memory_mb);
            }
        }
    }

    /// Evicts least recently used idle containers (and, with `stems`, stem cells last) until a
    /// container of `memory_mb` would fit; evicts none when even all of them would not make
    /// enough room. True when it evicted.
    fn evict_for(&self, memory_mb: u32, stems: bool) -> bool {
        let (short_mb, short_count) = self.ledger.shortfall(memory_mb);
        if short_mb == 0 && short_count == 0 {
            return false;
        }
        let victims = {
            let mut state = self.state.lock().unwrap();
            let mut candidates: Vec<(bool, Instant, Place, String, u32)> = Vec::new();
            for (key, list) in &state.idle {
                for slot in list {
                    let id = slot.container.id().to_owned();
                    candidates.push((
                        false,
                        slot.idle_since,
                        Place::Idle(*key),
                        id,
                        slot.memory_mb,
                    ));
                }
            }
            if stems {
                for (kind, list) in &state.stems {
                    for slot in list {
                        let id = slot.container.id().to_owned();
                        candidates.push((
                            true,
                            slot.idle_since,
                            Place::Stem(kind.clone()),
                            id,
                            slot.memory_mb,
                        ));
                    }
                }
            }
            // Warm containers before stem cells (a stem cell makes the next new function
            // fast), least recently used first.
            candidates.sort_by_key(|(is_stem, since, ..)| (*is_stem, *since));
            let (mut freed_mb, mut freed_count, mut chosen) = (0u64, 0usize, 0usize);
            for (.., mb) in &candidates {
                if freed_mb >= short_mb && freed_count >= short_count {
                    break;
                }
                freed_mb += u64::from(*mb);
                freed_count += 1;
                chosen += 1;
            }
            if freed_mb < short_mb || freed_count < short_count {
                return false;
            }
            let mut victims = Vec::with_capacity(chosen);
            for (_, _, place, id, _) in &candidates[..chosen] {
                let list = match place {
                    Place::Idle(key) => state.idle.get_mut(key),
                    Place::Stem(kind) => state.stems.get_mut(kind),
                };
                if let Some(list) = list
                    && let Some(at) = list.iter().position(|slot| slot.container.id() == id)
                {
                    victims.push(list.remove(at));
                }
            }
            state.idle.retain(|_, list| !list.is_empty());
            victims
        };
        let evicted = !victims.is_empty();
        for victim in victims {
            tracing::debug!(container = victim.container.id(), "evicting to make room");
            metrics::counter!("faas_container_evictions_total", "runtime" => self.settings.runtime_label)
                .increment(1);
            self.discard(victim);
        }
        evicted
    }

    /// Starts a container in `room`, once a start slot is free, and tracks it until it is
    /// discarded.
    pub async fn start(
        &self,
        language: Language,
        memory_mb: u32,
        function: Option<&FunctionSpec>,
        mounts: &Mounts,
        room: Room,
    ) -> Result<Slot<L::Container>, ContainerError> {
        let _slot = self
            .starting
            .acquire()
            .await
            .expect("the semaphore is never closed");
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
            language,
            memory_mb,
            idle_since: Instant::now(),
            _room: room,
        })
    }

    /// Returns a healthy container after a call, for the next call of the same version, unless
    /// that version was retired meanwhile or the container died.
    pub fn put_idle(&self, mut slot: Slot<L::Container>) {
        slot.idle_since = Instant::now();
        let unusable = {
            let mut state = self.state.lock().unwrap();
            let (id, version) = slot.key;
            let retired = state
                .retired_below
                .get(&id)
                .is_some_and(|&floor| version < floor);
            if retired || !slot.container.is_alive() {
                Some(slot)
            } else {
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
    pub fn discard(&self, slot: Slot<L::Container>) {
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

    /// Keeps `stem_cells` stem cells per language, and `deps_stem_cells` per popular
    /// dependency set, until `stop`, starting missing ones side by side; stem cells of sets no
    /// longer popular are removed. A stem cell takes free room, or the room of least recently
    /// used idle warm containers: a ready stem cell makes the next new function's first call
    /// fast, while an idle container only helps if its own function comes back.
    pub async fn keep_stem_cells(self: Arc<Self>, stop: CancellationToken) {
        if self.settings.stem_cells == 0 && self.settings.deps_stem_cells == 0 {
            return;
        }
        loop {
            let wanted = self.stems_wanted.notified();
            tokio::pin!(wanted);
            wanted.as_mut().enable();
            let targets = self.stem_targets();
            self.drop_unwanted_stems(&targets);
            let mut starts = Vec::new();
            for (kind, target) in targets {
                while self.stems_short(&kind, target) {
                    let Some(room) = self.room_for_stem() else {
                        break;
                    };
                    *self
                        .state
                        .lock()
                        .unwrap()
                        .stems_starting
                        .entry(kind.clone())
                        .or_default() += 1;
                    starts.push(self.start_stem(kind.clone(), room));
                }
            }
            let results = tokio::select! {
                _ = stop.cancelled() => return,
                results = futures_util::future::join_all(starts) => results,
            };
            let pause = if results.iter().any(|ok| !ok) {
                Duration::from_secs(5)
            } else {
                Duration::from_secs(1)
            };
            // Woken by a stem cell taken; the timer catches room freed by other containers.
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::timeout(pause, wanted) => {}
            }
        }
    }

    /// The stem cells wanted now, per kind: every language's plain ones, and the most
    /// demanded popular dependency sets'.
    fn stem_targets(&self) -> Vec<(StemKind, usize)> {
        let mut targets: Vec<(StemKind, usize)> = Vec::new();
        if self.settings.stem_cells > 0 {
            targets.extend(
                Language::ALL
                    .into_iter()
                    .map(|language| (StemKind::plain(language), self.settings.stem_cells)),
            );
        }
        if self.settings.deps_stem_cells == 0 {
            return targets;
        }
        let mut state = self.state.lock().unwrap();
        let now = Instant::now();
        for demand in state.deps_demand.values_mut() {
            forget_old_demand(demand, now);
        }
        state.deps_demand.retain(|_, demand| !demand.is_empty());
        let mut popular: Vec<(&StemKind, usize)> = state
            .deps_demand
            .iter()
            .map(|(kind, demand)| (kind, demand.len()))
            .filter(|(_, count)| *count >= DEPS_DEMAND_POPULAR)
            .collect();
        popular.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        targets.extend(
            popular
                .into_iter()
                .take(self.settings.deps_stem_sets)
                .map(|(kind, _)| (kind.clone(), self.settings.deps_stem_cells)),
        );
        targets
    }

    /// Removes the stem cells of dependency sets that are no longer wanted.
    fn drop_unwanted_stems(&self, targets: &[(StemKind, usize)]) {
        let unwanted: Vec<Slot<L::Container>> = {
            let mut state = self.state.lock().unwrap();
            let mut unwanted = Vec::new();
            for (kind, list) in state.stems.iter_mut() {
                if !kind.mounts.is_empty() && !targets.iter().any(|(wanted, _)| wanted == kind) {
                    unwanted.append(list);
                }
            }
            state.stems.retain(|_, list| !list.is_empty());
            unwanted
        };
        if !unwanted.is_empty() {
            self.discard_all(unwanted);
            self.update_gauges();
        }
    }

    fn room_for_stem(&self) -> Option<Room> {
        let memory_mb = self.settings.stem_memory_mb;
        loop {
            if let Some(room) = self.ledger.try_take(memory_mb) {
                return Some(room);
            }
            if !self.evict_for(memory_mb, false) {
                return None;
            }
        }
    }

    /// Starts one stem cell; false when the launcher failed.
    async fn start_stem(&self, kind: StemKind, room: Room) -> bool {
        let started = self
            .start(
                kind.language,
                self.settings.stem_memory_mb,
                None,
                &kind.mounts,
                room,
            )
            .await;
        let mut state = self.state.lock().unwrap();
        *state.stems_starting.entry(kind.clone()).or_default() -= 1;
        let ok = match started {
            Ok(stem) => {
                state.stems.entry(kind).or_default().push(stem);
                true
            }
            Err(error) => {
                metrics::counter!("faas_docker_errors_total").increment(1);
                tracing::warn!(language = %kind.language, mounts = ?kind.mounts, %error, "cannot start a stem cell");
                false
            }
        };
        drop(state);
        self.update_gauges();
        ok
    }

    fn stems_short(&self, kind: &StemKind, target: usize) -> bool {
        let state = self.state.lock().unwrap();
        let ready = state.stems.get(kind).map_or(0, Vec::len);
        let starting = state.stems_starting.get(kind).copied().unwrap_or(0);
        ready + starting < target
    }

    /// Plain stem cells ready for `language`.
    pub fn stem_count(&self, language: Language) -> usize {
        self.stem_ids(&StemKind::plain(language)).len()
    }

    /// Ids of the stem cells of `kind` ready.
    pub fn stem_ids(&self, kind: &StemKind) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.stems.get(kind).map_or_else(Vec::new, |stems| {
            stems
                .iter()
                .map(|slot| slot.container.id().to_owned())
                .collect()
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
    }
}

/// Where an idle container waits.
enum Place {
    Idle(FunctionKey),
    Stem(StemKind),
}

/// A running call; see [`Pool::busy`].
pub struct BusyGuard<'a, L: Launcher> {
    pool: &'a Pool<L>,
    key: FunctionKey,
}

impl<L: Launcher> Drop for BusyGuard<'_, L> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    struct Fake {
        id: String,
        alive: Arc<AtomicBool>,
    }

    impl Pooled for Fake {
        fn id(&self) -> &str {
            &self.id
        }
        fn is_alive(&self) -> bool {
            self.alive.load(Ordering::SeqCst)
        }
    }

    /// Starts containers instantly; remembers what it started and removed.
    #[derive(Default)]
    struct FakeLauncher {
        next: AtomicUsize,
        alive: Mutex<HashMap<String, Arc<AtomicBool>>>,
        removed: Mutex<Vec<String>>,
    }

    impl Launcher for FakeLauncher {
        type Container = Fake;

        async fn launch(
            &self,
            language: Language,
            memory_mb: u32,
            function: Option<&FunctionSpec>,
            mounts: &Mounts,
        ) -> Result<Fake, ContainerError> {
            let n = self.next.fetch_add(1, Ordering::SeqCst);
            let what = function.map_or(format!("stem-{language}"), |f| {
                format!("f{}v{}", f.id, f.version)
            });
            let what = match &mounts.deps {
                Some(digest) => format!("{what}-deps-{digest}"),
                None => what,
            };
            let id = format!("{what}-{memory_mb}-{n}");
            let alive = Arc::new(AtomicBool::new(true));
            self.alive.lock().unwrap().insert(id.clone(), alive.clone());
            Ok(Fake { id, alive })
        }

        async fn remove(&self, id: String) {
            if let Some(alive) = self.alive.lock().unwrap().get(&id) {
                alive.store(false, Ordering::SeqCst);
            }
            self.removed.lock().unwrap().push(id);
        }
    }

    impl FakeLauncher {
        fn kill(&self, id: &str) {
            self.alive.lock().unwrap()[id].store(false, Ordering::SeqCst);
        }
        fn removed(&self) -> Vec<String> {
            self.removed.lock().unwrap().clone()
        }
    }

    fn settings(budget_mb: u64) -> PoolSettings {
        PoolSettings {
            idle_ttl: Duration::from_secs(300),
            memory_budget_mb: budget_mb,
            max_containers: 100,
            stem_cells: 0,
            stem_memory_mb: 128,
            deps_stem_cells: 0,
            deps_stem_sets: 4,
            warm_wait: Duration::from_millis(25),
            max_starting: 4,
            runtime_label: "test",
        }
    }

    fn spec(id: i64, version: i32, memory_mb: u32) -> FunctionSpec {
        FunctionSpec {
            id,
            namespace: "default".into(),
            name: format!("f{id}"),
            version,
            handler: "handler".into(),
            language: Language::Python,
            code: String::new(),
            timeout_ms: 1000,
            memory_mb,
            env: Default::default(),
            dependencies: None,
            package: None,
        }
    }

    fn soon() -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_millis(50)
    }

    /// A container of `spec`, started in room reserved for it.
    async fn cold(pool: &Pool<FakeLauncher>, spec: &FunctionSpec) -> Slot<Fake> {
        let room = pool.reserve(spec.memory_mb, soon()).await.expect("room");
        pool.start(
            spec.language,
            spec.memory_mb,
            Some(spec),
            &Mounts::default(),
            room,
        )
        .await
        .unwrap()
    }

    /// Lets spawned removals run.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn warm_containers_are_reused_most_recently_used_first() {
        let pool = Pool::new(FakeLauncher::default(), settings(1024));
        let f = spec(1, 1, 128);
        let a = cold(&pool, &f).await;
        let b = cold(&pool, &f).await;
        let (a_id, b_id) = (a.container.id.clone(), b.container.id.clone());
        pool.put_idle(a);
        pool.put_idle(b);
        assert_eq!(pool.take_idle((1, 1)).unwrap().container.id, b_id);
        assert_eq!(pool.take_idle((1, 1)).unwrap().container.id, a_id);
        assert!(pool.take_idle((1, 1)).is_none());
        assert!(pool.take_idle((2, 1)).is_none(), "never another function's");
    }

    #[tokio::test]
    async fn room_is_the_memory_budget_not_a_count() {
        let pool = Pool::new(FakeLauncher::default(), settings(512));
        let big = spec(1, 1, 384);
        let busy_big = cold(&pool, &big).await;
        assert_eq!(pool.memory_used_mb(), 384);
        // 128 more fits; 256 does not, and nothing idle can be evicted.
        let small = cold(&pool, &spec(2, 1, 128)).await;
        assert!(pool.reserve(256, soon()).await.is_none());
        assert_eq!(pool.memory_used_mb(), 512);
        drop(small);
        drop(busy_big);
        assert_eq!(
            pool.memory_used_mb(),
            0,
            "dropped slots give their room back"
        );
    }

    #[tokio::test]
    async fn a_cold_start_evicts_the_least_recently_used_idle_containers_only_when_enough() {
        let pool = Pool::new(FakeLauncher::default(), settings(512));
        let older = cold(&pool, &spec(1, 1, 128)).await;
        let newer = cold(&pool, &spec(2, 1, 128)).await;
        let busy = cold(&pool, &spec(3, 1, 256)).await;
        let (older_id, newer_id) = (older.container.id.clone(), newer.container.id.clone());
        pool.put_idle(older);
        tokio::time::sleep(Duration::from_millis(2)).await;
        pool.put_idle(newer);

        // 512 MB would need the busy one too: nothing is evicted for nothing.
        assert!(pool.reserve(512, soon()).await.is_none());
        assert_eq!(pool.idle_count(), 2);

        // 128 MB: the least recently used idle container goes, the other stays warm.
        let room = pool
            .reserve(128, soon())
            .await
            .expect("room after eviction");
        settle().await;
        assert_eq!(pool.launcher().removed(), vec![older_id]);
        assert_eq!(pool.take_idle((2, 1)).unwrap().container.id, newer_id);
        drop((room, busy));
    }

    #[tokio::test]
    async fn a_call_waits_for_room_until_a_container_goes_and_gives_up_at_its_time() {
        let pool = Arc::new(Pool::new(FakeLauncher::default(), settings(256)));
        let busy = cold(&pool, &spec(1, 1, 256)).await;
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move {
                let until = tokio::time::Instant::now() + Duration::from_secs(5);
                pool.reserve(128, until).await.is_some()
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "no room while the busy one runs");
        pool.discard(busy);
        assert!(
            waiting.await.unwrap(),
            "the freed room went to the waiting call"
        );

        let _full = cold(&pool, &spec(2, 1, 256)).await;
        let started = tokio::time::Instant::now();
        assert!(pool.reserve(128, soon()).await.is_none());
        assert!(started.elapsed() >= Duration::from_millis(45));
    }

    #[tokio::test]
    async fn the_container_cap_holds_besides_the_budget() {
        let mut capped = settings(10_000);
        capped.max_containers = 2;
        let pool = Pool::new(FakeLauncher::default(), capped);
        let _a = cold(&pool, &spec(1, 1, 64)).await;
        let b = cold(&pool, &spec(2, 1, 64)).await;
        assert!(pool.reserve(64, soon()).await.is_none());
        pool.put_idle(b);
        assert!(
            pool.reserve(64, soon()).await.is_some(),
            "the idle one was evicted"
        );
    }

    #[tokio::test]
    async fn containers_that_died_while_idle_are_never_handed_out() {
        let pool = Pool::new(FakeLauncher::default(), settings(1024));
        let f = spec(1, 1, 128);
        let a = cold(&pool, &f).await;
        let b = cold(&pool, &f).await;
        let (a_id, b_id) = (a.container.id.clone(), b.container.id.clone());
        pool.put_idle(a);
        pool.put_idle(b);
        pool.launcher().kill(&b_id);
        let taken = pool.take_idle((1, 1)).unwrap();
        assert_eq!(taken.container.id, a_id);
        settle().await;
        assert_eq!(pool.launcher().removed(), vec![b_id]);
        assert_eq!(pool.memory_used_mb(), 128, "the dead one's room is free");
        drop(taken);

        // The reaper finds a dead idle one without a call asking.
        let c = cold(&pool, &f).await;
        let c_id = c.container.id.clone();
        pool.put_idle(c);
        pool.launcher().kill(&c_id);
        pool.reap_idle();
        settle().await;
        assert!(pool.launcher().removed().contains(&c_id));
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn a_new_version_retires_the_old_ones_now_and_when_they_come_back() {
        let pool = Pool::new(FakeLauncher::default(), settings(1024));
        let idle_v1 = cold(&pool, &spec(1, 1, 128)).await;
        let busy_v1 = cold(&pool, &spec(1, 1, 128)).await;
        let idle_id = idle_v1.container.id.clone();
        pool.put_idle(idle_v1);
        pool.retire(1, Some(2));
        settle().await;
        assert_eq!(pool.launcher().removed(), vec![idle_id]);
        let busy_id = busy_v1.container.id.clone();
        pool.put_idle(busy_v1);
        settle().await;
        assert!(pool.launcher().removed().contains(&busy_id));
        assert_eq!(pool.idle_count(), 0);

        // A job for version 3 retires version 2 on its own, before any event.
        let v2 = cold(&pool, &spec(1, 2, 128)).await;
        pool.put_idle(v2);
        assert!(pool.take_idle((1, 3)).is_none());
        assert_eq!(pool.idle_count(), 0);
        // Deleted: every version goes.
        let v3 = cold(&pool, &spec(1, 3, 128)).await;
        pool.retire(1, None);
        pool.put_idle(v3);
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn a_busy_functions_call_waits_briefly_for_its_container() {
        let pool = Arc::new(Pool::new(FakeLauncher::default(), settings(1024)));
        let f = spec(1, 1, 128);
        let running = cold(&pool, &f).await;
        let id = running.container.id.clone();
        let guard = pool.busy((1, 1));
        let back = tokio::spawn({
            let pool = pool.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                pool.put_idle(running);
            }
        });
        let until = tokio::time::Instant::now() + Duration::from_secs(1);
        assert_eq!(
            pool.wait_for_idle((1, 1), until)
                .await
                .unwrap()
                .container
                .id,
            id
        );
        back.await.unwrap();
        drop(guard);
        // Nothing running: no wait at all.
        let started = tokio::time::Instant::now();
        assert!(pool.wait_for_idle((1, 1), until).await.is_none());
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[tokio::test]
    async fn stem_cells_fill_up_are_bound_and_replaced_and_go_last() {
        let mut with_stems = settings(128 * 5);
        with_stems.stem_cells = 2;
        let pool = Arc::new(Pool::new(FakeLauncher::default(), with_stems));
        let stop = CancellationToken::new();
        let filler = tokio::spawn(pool.clone().keep_stem_cells(stop.clone()));
        let wait_for = |language, count| {
            let pool = pool.clone();
            async move {
                for _ in 0..200 {
                    if pool.stem_count(language) == count {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                panic!("{language} stem cells did not reach {count}");
            }
        };
        wait_for(Language::Python, 2).await;
        wait_for(Language::Javascript, 2).await;
        assert_eq!(pool.memory_used_mb(), 512);

        // Only functions of the stem cells' memory can use them.
        assert!(
            pool.take_stem(&StemKind::plain(Language::Python), 256)
                .is_none()
        );
        let mut stem = pool
            .take_stem(&StemKind::plain(Language::Python), 128)
            .expect("a stem cell");
        stem.bind((7, 1));
        assert_eq!(stem.key(), (7, 1));
        wait_for(Language::Python, 2).await;
        assert_eq!(pool.memory_used_mb(), 640);

        // A warm container is evicted before any stem cell.
        pool.put_idle(stem);
        let room = pool.reserve(128, soon()).await.expect("room");
        assert_eq!(pool.idle_count(), 0);
        assert_eq!(pool.stem_count(Language::Python), 2);
        // Then stem cells, when nothing else is idle.
        let room2 = pool.reserve(128, soon()).await.expect("room");
        assert_eq!(
            pool.stem_count(Language::Python) + pool.stem_count(Language::Javascript),
            3
        );
        stop.cancel();
        filler.await.unwrap();
        drop((room, room2));
    }

    #[tokio::test]
    async fn a_dependency_set_gets_stem_cells_once_popular_and_they_mount_it() {
        let mut with_deps = settings(128 * 8);
        with_deps.deps_stem_cells = 1;
        with_deps.deps_stem_sets = 1;
        let pool = Arc::new(Pool::new(FakeLauncher::default(), with_deps));
        let stop = CancellationToken::new();
        let filler = tokio::spawn(pool.clone().keep_stem_cells(stop.clone()));
        let kind = |digest: &str| StemKind {
            language: Language::Python,
            mounts: Mounts {
                deps: Some(digest.to_owned()),
                package: None,
            },
        };
        let ready = |kind: StemKind| {
            let pool = pool.clone();
            async move {
                for _ in 0..200 {
                    if !pool.stem_ids(&kind).is_empty() {
                        return pool.stem_ids(&kind);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Vec::new()
            }
        };
        // One cold start is not popularity: no stem cell.
        assert!(pool.take_stem(&kind("aa"), 128).is_none());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.stem_ids(&kind("aa")).is_empty());
        // The second is: a stem cell that mounts the set comes up, and the next cold start
        // binds it.
        assert!(pool.take_stem(&kind("aa"), 128).is_none());
        let ids = ready(kind("aa")).await;
        assert_eq!(ids.len(), 1, "no stem cell for a popular set");
        assert!(ids[0].contains("deps-aa"), "{ids:?}");
        let stem = pool
            .take_stem(&kind("aa"), 128)
            .expect("the set's stem cell");
        assert!(stem.container.id.contains("deps-aa"));
        // Plain stem cells are off here; a set never gets another's stem cell.
        assert!(
            pool.take_stem(&StemKind::plain(Language::Python), 128)
                .is_none()
        );
        // A more demanded set takes the only place; the other's stem cell goes.
        for _ in 0..4 {
            assert!(pool.take_stem(&kind("bb"), 128).is_none());
        }
        assert_eq!(ready(kind("bb")).await.len(), 1);
        for _ in 0..200 {
            if pool.stem_ids(&kind("aa")).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            pool.stem_ids(&kind("aa")).is_empty(),
            "the less demanded set kept its stem cell"
        );
        stop.cancel();
        filler.await.unwrap();
        drop(stem);
    }

    #[tokio::test]
    async fn idle_containers_go_after_their_ttl_and_stem_cells_stay() {
        let mut short = settings(1024);
        short.idle_ttl = Duration::from_millis(30);
        let pool = Pool::new(FakeLauncher::default(), short);
        let slot = cold(&pool, &spec(1, 1, 128)).await;
        let id = slot.container.id.clone();
        pool.put_idle(slot);
        pool.reap_idle();
        assert_eq!(pool.idle_count(), 1, "not idle for its TTL yet");
        tokio::time::sleep(Duration::from_millis(40)).await;
        pool.reap_idle();
        settle().await;
        assert_eq!(pool.idle_count(), 0);
        assert_eq!(pool.launcher().removed(), vec![id]);
        assert_eq!(pool.memory_used_mb(), 0);
    }

    #[tokio::test]
    async fn remove_all_removes_busy_and_idle_ones() {
        let pool = Pool::new(FakeLauncher::default(), settings(1024));
        let idle = cold(&pool, &spec(1, 1, 128)).await;
        let busy = cold(&pool, &spec(2, 1, 128)).await;
        pool.put_idle(idle);
        pool.remove_all().await;
        let mut removed = pool.launcher().removed();
        removed.sort();
        assert_eq!(removed.len(), 2);
        assert!(removed.contains(&busy.container.id));
        assert!(pool.live_ids().is_empty());
    }
}
