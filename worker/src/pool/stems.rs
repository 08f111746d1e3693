//! Stem cells: containers started before any job needs them, per language (plain) and per
//! popular dependency set (mounting it), bound to a function by its init frame and replaced
//! in the background.

use super::{Launcher, Pool, Pooled, Room, Slot, StemKind, pop_live};
use common::Language;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

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

impl<L: Launcher> Pool<L> {
    /// Takes a live stem cell of `kind` for a function of `memory_mb`, and asks for a new one.
    /// A cold start with dependencies counts towards its set's popularity, found or not.
    pub(super) fn take_stem(&self, kind: &StemKind, memory_mb: u32) -> Option<Slot<L::Container>> {
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
            if let Some(room) = self.ledger.try_take(memory_mb, None) {
                return Some(room);
            }
            if !self.evict_for(memory_mb, None, false) {
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
}
