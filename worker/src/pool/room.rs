//! The pool's room: the memory budget and the cap on containers, the [`Room`] a container
//! holds until it goes, and eviction of least recently used idle containers when a new one
//! needs their room.

use super::{FunctionKey, Launcher, Pool, Pooled, StemKind};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

/// Memory and the number of containers in use, against the budget and the cap.
pub(super) struct Ledger {
    used: Mutex<Used>,
    budget_mb: u64,
    max_containers: usize,
    /// Woken whenever room frees up or a container goes back idle: a call waiting for room, or
    /// for its function's container, looks again.
    pub(super) changed: Notify,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Used {
    pub(super) mb: u64,
    pub(super) count: usize,
}

impl Ledger {
    pub(super) fn new(budget_mb: u64, max_containers: usize) -> Self {
        Ledger {
            used: Mutex::new(Used::default()),
            budget_mb,
            max_containers,
            changed: Notify::new(),
        }
    }

    /// Room for a container of `memory_mb`, if there is that much free now.
    pub(super) fn try_take(self: &Arc<Self>, memory_mb: u32) -> Option<Room> {
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

    pub(super) fn used(&self) -> Used {
        *self.used.lock().unwrap()
    }
}

/// A container's place in the budget; given back when dropped.
pub(super) struct Room {
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

impl<L: Launcher> Pool<L> {
    /// Room for a new container of `memory_mb`: free room, else the room of least recently
    /// used idle containers (evicted, stem cells last) when that is enough, else the first room
    /// that frees up before `until`. `None` when `until` came first.
    pub(super) async fn reserve(
        &self,
        memory_mb: u32,
        until: tokio::time::Instant,
    ) -> Option<Room> {
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
    pub(super) fn evict_for(&self, memory_mb: u32, stems: bool) -> bool {
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
}

/// Where an idle container waits, while it is chosen for eviction.
enum Place {
    Idle(FunctionKey),
    Stem(StemKind),
}
