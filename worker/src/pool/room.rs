//! The pool's room: the memory budget and the cap on containers, the [`Room`] a container
//! holds until it goes, and eviction of idle containers when a new one needs their room.
//!
//! Room is shared fairly between namespaces (DESIGN §19): the ledger counts each namespace's
//! MiB (busy and idle containers; stem cells belong to none until bound), and a namespace's
//! share is the budget divided by the namespaces holding memory, the one asking included, and
//! never less than the one container it asks for.
//! Free room goes to whoever asks, so a namespace alone, or on a quiet worker, uses it all;
//! only eviction looks at shares. A cold start that would leave its namespace over its share
//! evicts only that namespace's own idle containers (and stem cells, which are no one's), else
//! waits as on a full worker; any other
//! evicts first from the namespaces most over their share. [`choose_victims`] decides, from a
//! snapshot, so that it is tested without containers.

use super::{FunctionKey, Launcher, Pool, Pooled, StemKind};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

/// A namespace's name, shared by the rooms of its containers and the ledger.
pub(super) type Namespace = Arc<str>;

/// Memory and the number of containers in use, against the budget and the cap.
pub(super) struct Ledger {
    used: Mutex<Used>,
    pub(super) budget_mb: u64,
    max_containers: usize,
    /// Woken whenever room frees up or a container goes back idle: a call waiting for room, or
    /// for its function's container, looks again.
    pub(super) changed: Notify,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Used {
    pub(super) mb: u64,
    pub(super) count: usize,
    /// MiB per namespace holding any; stem cells not yet bound are in `mb` only.
    pub(super) by_namespace: HashMap<Namespace, u64>,
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

    /// Room for a container of `memory_mb` of `namespace` (`None`: a stem cell), if there is
    /// that much free now. Free room is anyone's: shares only decide eviction.
    pub(super) fn try_take(
        self: &Arc<Self>,
        memory_mb: u32,
        namespace: Option<&Namespace>,
    ) -> Option<Room> {
        let mut used = self.used.lock().unwrap();
        let fits =
            used.mb + u64::from(memory_mb) <= self.budget_mb && used.count < self.max_containers;
        fits.then(|| {
            used.mb += u64::from(memory_mb);
            used.count += 1;
            if let Some(namespace) = namespace {
                *used.by_namespace.entry(namespace.clone()).or_default() += u64::from(memory_mb);
            }
            Room {
                ledger: self.clone(),
                memory_mb,
                namespace: namespace.cloned(),
            }
        })
    }

    /// What must be freed before a container of `memory_mb` fits: (MiB, containers).
    fn shortfall(
        used: &Used,
        budget_mb: u64,
        max_containers: usize,
        memory_mb: u32,
    ) -> (u64, usize) {
        let mb = (used.mb + u64::from(memory_mb)).saturating_sub(budget_mb);
        let count = (used.count + 1).saturating_sub(max_containers);
        (mb, count)
    }

    pub(super) fn used(&self) -> Used {
        self.used.lock().unwrap().clone()
    }

    /// MiB held by `namespace`'s containers, busy and idle.
    #[cfg(test)]
    pub(super) fn used_by(&self, namespace: &str) -> u64 {
        let used = self.used.lock().unwrap();
        used.by_namespace.get(namespace).copied().unwrap_or(0)
    }
}

/// A container's place in the budget, counted to its namespace; given back when dropped.
pub(super) struct Room {
    ledger: Arc<Ledger>,
    memory_mb: u32,
    namespace: Option<Namespace>,
}

impl Room {
    /// The namespace whose container holds it; `None` for a stem cell not yet bound.
    pub(super) fn namespace(&self) -> Option<&Namespace> {
        self.namespace.as_ref()
    }

    /// Counts the room to `namespace` from now on: a stem cell bound to a function.
    pub(super) fn tag(&mut self, namespace: &Namespace) {
        if self.namespace.as_ref() == Some(namespace) {
            return;
        }
        let mut used = self.ledger.used.lock().unwrap();
        if let Some(old) = self.namespace.take() {
            untag(&mut used.by_namespace, &old, self.memory_mb);
        }
        *used.by_namespace.entry(namespace.clone()).or_default() += u64::from(self.memory_mb);
        self.namespace = Some(namespace.clone());
    }
}

fn untag(by_namespace: &mut HashMap<Namespace, u64>, namespace: &str, memory_mb: u32) {
    if let Some(mb) = by_namespace.get_mut(namespace) {
        *mb -= u64::from(memory_mb);
        if *mb == 0 {
            by_namespace.remove(namespace);
        }
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        {
            let mut used = self.ledger.used.lock().unwrap();
            used.mb -= u64::from(self.memory_mb);
            used.count -= 1;
            if let Some(namespace) = &self.namespace {
                untag(&mut used.by_namespace, namespace, self.memory_mb);
            }
        }
        self.ledger.changed.notify_waiters();
    }
}

/// A namespace's share of `budget_mb` when `asking` wants room: the budget divided by the
/// namespaces holding memory, `asking` counted. Never less than `memory_mb`, the container
/// asked for: a namespace's first container is within its share, or a function as large as
/// the budget could never evict the least idle container of another.
pub(super) fn share_mb(
    budget_mb: u64,
    by_namespace: &HashMap<Namespace, u64>,
    asking: Option<&str>,
    memory_mb: u32,
) -> u64 {
    let holding = by_namespace.values().filter(|mb| **mb > 0).count();
    let newcomer = asking.is_some_and(|ns| by_namespace.get(ns).is_none_or(|mb| *mb == 0));
    let namespaces = (holding + usize::from(newcomer)).max(1) as u64;
    (budget_mb / namespaces).max(u64::from(memory_mb))
}

/// An idle container that eviction could take, as [`choose_victims`] sees it.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub(super) namespace: Option<Namespace>,
    pub(super) stem: bool,
    /// One of several idle containers of its function version, not the most recently used:
    /// it goes before any function's last one, so that one call of a new function does not
    /// cost a function in steady use its warm container.
    pub(super) spare: bool,
    pub(super) idle_since: Instant,
    pub(super) memory_mb: u32,
}

/// What asks for room: how much, for whom, and what is missing.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ask<'a> {
    /// `None`: a stem cell, which belongs to no namespace and is never over a share.
    pub(super) namespace: Option<&'a str>,
    pub(super) memory_mb: u32,
    /// (MiB, containers) to free, from [`Ledger::shortfall`].
    pub(super) short: (u64, usize),
}

/// Which `candidates` (indices) to evict so that `ask` fits, or `None` when even all those it
/// may evict would not make enough room (then none is evicted: nothing goes for nothing).
///
/// A namespace that would be over its share once it has the room may evict only its own idle
/// warm containers, least recently used first, then stem cells (which are no one's). Any other ask evicts first, one at a time, the
/// least recently used idle container of the namespace most over its share (its excess
/// shrinking as it loses them), and once none is over, as without namespaces: spare warm
/// containers (a function's idle ones beyond its most recently used), then the others, then
/// stem cells, least recently used first within each.
pub(super) fn choose_victims(
    candidates: &[Candidate],
    by_namespace: &HashMap<Namespace, u64>,
    budget_mb: u64,
    ask: Ask<'_>,
) -> Option<Vec<usize>> {
    let share = share_mb(budget_mb, by_namespace, ask.namespace, ask.memory_mb);
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    // Spare warm containers, then each function's last, then stem cells (a stem cell makes the
    // next new function fast), least recently used first within each: the order without
    // shares, and within each namespace.
    order.sort_by_key(|&i| {
        let c = &candidates[i];
        (c.stem, !c.spare, c.idle_since)
    });
    let held = |ns: &str| by_namespace.get(ns).copied().unwrap_or(0);
    if let Some(asking) = ask.namespace
        && held(asking) + u64::from(ask.memory_mb) > share
    {
        // Stem cells are no namespace's: taking one takes nothing from another namespace
        // (the filler then takes room back from the namespaces most over their share).
        order.retain(|&i| candidates[i].stem || candidates[i].namespace.as_deref() == Some(asking));
    } else {
        order = over_share_first(candidates, order, by_namespace, share);
    }
    let (short_mb, short_count) = ask.short;
    let (mut freed_mb, mut freed_count) = (0u64, 0usize);
    let mut victims = Vec::new();
    for i in order {
        if freed_mb >= short_mb && freed_count >= short_count {
            break;
        }
        freed_mb += u64::from(candidates[i].memory_mb);
        freed_count += 1;
        victims.push(i);
    }
    (freed_mb >= short_mb && freed_count >= short_count).then_some(victims)
}

/// `order` (warm before stem cells, least recently used first) with the idle containers of
/// namespaces over `share` moved to the front: each next one the least recently used of the
/// namespace then most over it, counting what was already taken from it.
fn over_share_first(
    candidates: &[Candidate],
    mut order: Vec<usize>,
    by_namespace: &HashMap<Namespace, u64>,
    share: u64,
) -> Vec<usize> {
    let mut held = by_namespace.clone();
    let mut front = Vec::new();
    loop {
        let most_over = held
            .iter()
            .filter(|(_, mb)| **mb > share)
            .filter(|(ns, _)| {
                order
                    .iter()
                    .any(|&i| candidates[i].namespace.as_ref() == Some(*ns))
            })
            // Ties go to the name, so that the order does not depend on the map's.
            .max_by(|a, b| (a.1, b.0).cmp(&(b.1, a.0)))
            .map(|(ns, _)| ns.clone());
        let Some(ns) = most_over else { break };
        let at = order
            .iter()
            .position(|&i| candidates[i].namespace.as_ref() == Some(&ns))
            .expect("the namespace has a candidate");
        let i = order.remove(at);
        *held.get_mut(&ns).expect("held") -= u64::from(candidates[i].memory_mb);
        front.push(i);
    }
    front.extend(order);
    front
}

impl<L: Launcher> Pool<L> {
    /// Room for a new container of `memory_mb` of `namespace`: free room, else the room of
    /// idle containers [`choose_victims`] picks (evicted) when that is enough, else the first
    /// room that frees up before `until`. `None` when `until` came first.
    pub(super) async fn reserve(
        &self,
        memory_mb: u32,
        namespace: &Namespace,
        until: tokio::time::Instant,
    ) -> Option<Room> {
        loop {
            let changed = self.ledger.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(room) = self.ledger.try_take(memory_mb, Some(namespace)) {
                return Some(room);
            }
            if self.evict_for(memory_mb, Some(namespace), true) {
                continue;
            }
            if tokio::time::timeout_at(until, changed).await.is_err() {
                return self.ledger.try_take(memory_mb, Some(namespace));
            }
        }
    }

    /// Evicts the idle containers (and, with `stems`, stem cells) that [`choose_victims`]
    /// picks so that a container of `memory_mb` of `namespace` (`None`: a stem cell) would
    /// fit; evicts none when they would not make enough room. True when it evicted.
    pub(super) fn evict_for(&self, memory_mb: u32, namespace: Option<&str>, stems: bool) -> bool {
        let victims = {
            let mut state = self.state.lock().unwrap();
            // The ledger's lock is taken inside the state's, never the other way round.
            let used = self.ledger.used();
            let short = Ledger::shortfall(
                &used,
                self.ledger.budget_mb,
                self.ledger.max_containers,
                memory_mb,
            );
            if short == (0, 0) {
                return false;
            }
            let mut places: Vec<(Place, String)> = Vec::new();
            let mut candidates: Vec<Candidate> = Vec::new();
            let stem_lists = state.stems.iter().filter(|_| stems);
            let lists = (state
                .idle
                .iter()
                .map(|(key, list)| (Place::Idle(*key), list)))
            .chain(stem_lists.map(|(kind, list)| (Place::Stem(kind.clone()), list)));
            for (place, list) in lists {
                // A list is most recently used last: all but its last are spares.
                for (at, slot) in list.iter().enumerate() {
                    candidates.push(Candidate {
                        namespace: slot.room.namespace().cloned(),
                        stem: matches!(place, Place::Stem(_)),
                        spare: at + 1 < list.len(),
                        idle_since: slot.idle_since,
                        memory_mb: slot.memory_mb,
                    });
                    places.push((place.clone(), slot.container.id().to_owned()));
                }
            }
            let ask = Ask {
                namespace,
                memory_mb,
                short,
            };
            let budget_mb = self.ledger.budget_mb;
            let Some(chosen) = choose_victims(&candidates, &used.by_namespace, budget_mb, ask)
            else {
                return false;
            };
            let mut victims = Vec::with_capacity(chosen.len());
            for i in chosen {
                let (place, id) = &places[i];
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
            tracing::debug!(
                container = victim.container.id(),
                namespace = victim.room.namespace().map(|ns| &**ns),
                "evicting to make room"
            );
            metrics::counter!("faas_container_evictions_total", "runtime" => self.settings.runtime_label)
                .increment(1);
            self.discard(victim);
        }
        evicted
    }
}

/// Where an idle container waits, while it is chosen for eviction.
#[derive(Clone)]
enum Place {
    Idle(FunctionKey),
    Stem(StemKind),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn held(of: &[(&str, u64)]) -> HashMap<Namespace, u64> {
        of.iter()
            .map(|(ns, mb)| (Namespace::from(*ns), *mb))
            .collect()
    }

    /// An idle container of `ns` (`None`: a stem cell) idle since `t` ms after `base`.
    fn idle(base: Instant, ns: Option<&str>, t: u64, memory_mb: u32) -> Candidate {
        Candidate {
            namespace: ns.map(Namespace::from),
            stem: ns.is_none(),
            spare: false,
            idle_since: base + Duration::from_millis(t),
            memory_mb,
        }
    }

    fn ask(namespace: Option<&str>, memory_mb: u32, short: (u64, usize)) -> Ask<'_> {
        Ask {
            namespace,
            memory_mb,
            short,
        }
    }

    #[test]
    fn a_share_is_the_budget_over_the_namespaces_holding_memory_the_asker_counted() {
        let none = held(&[]);
        assert_eq!(
            share_mb(4096, &none, Some("a"), 128),
            4096,
            "alone: all of it"
        );
        let b = held(&[("b", 1024)]);
        assert_eq!(share_mb(4096, &b, Some("a"), 128), 2048);
        assert_eq!(
            share_mb(4096, &b, Some("b"), 128),
            4096,
            "b is counted once"
        );
        let bc = held(&[("b", 1024), ("c", 512)]);
        assert_eq!(
            share_mb(6000, &bc, None, 128),
            3000,
            "a stem cell adds no one"
        );
        assert_eq!(share_mb(6000, &bc, Some("a"), 128), 2000);
        assert_eq!(
            share_mb(4096, &b, Some("a"), 4096),
            4096,
            "never less than the one container asked for"
        );
    }

    #[test]
    fn a_namespace_over_its_share_evicts_only_its_own_idle_containers_then_stem_cells() {
        let t = Instant::now();
        let candidates = [
            idle(t, Some("b"), 0, 1024),
            idle(t, Some("b"), 1, 1024),
            idle(t, Some("a"), 2, 1024),
            idle(t, None, 3, 1024),
            idle(t, Some("a"), 4, 1024),
        ];
        // a holds 4096 (two idle, the rest busy), b 2048: a's share is 4096, and another 1024
        // would put it over.
        let by_ns = held(&[("a", 4096), ("b", 2048)]);
        let asked = ask(Some("a"), 1024, (1024, 0));
        assert_eq!(
            choose_victims(&candidates, &by_ns, 8192, asked),
            Some(vec![2]),
            "its own least recently used, though b's are older"
        );
        let asked = ask(Some("a"), 3072, (3072, 0));
        assert_eq!(
            choose_victims(&candidates, &by_ns, 8192, asked),
            Some(vec![2, 4, 3]),
            "its own, then the stem cell"
        );
        let asked = ask(Some("a"), 4096, (4096, 0));
        assert_eq!(
            choose_victims(&candidates, &by_ns, 8192, asked),
            None,
            "b's would make enough room, but they are not a's to take"
        );
    }

    #[test]
    fn others_evict_first_from_the_namespace_most_over_its_share() {
        let t = Instant::now();
        let candidates = [
            idle(t, Some("c"), 0, 500),
            idle(t, Some("c"), 1, 500),
            idle(t, Some("b"), 2, 500),
            idle(t, Some("b"), 3, 500),
            idle(t, Some("d"), 4, 500),
        ];
        // Shares of 2000: b is 1000 over, c 500, d under.
        let by_ns = held(&[("b", 3000), ("c", 2500), ("d", 500)]);
        // b's oldest (1000 over), then b and c are both 500 over: the tie goes to the name,
        // then c's oldest; least recently used alone would have taken c's two first.
        assert_eq!(
            choose_victims(&candidates, &by_ns, 6000, ask(None, 128, (1500, 0))),
            Some(vec![2, 3, 0])
        );
        // d asking, within its share, evicts the same way.
        assert_eq!(
            choose_victims(&candidates, &by_ns, 6000, ask(Some("d"), 500, (1500, 0))),
            Some(vec![2, 3, 0])
        );
        // Once no namespace is over, as without namespaces: least recently used first.
        assert_eq!(
            choose_victims(&candidates, &by_ns, 6000, ask(None, 128, (2500, 0))),
            Some(vec![2, 3, 0, 1, 4])
        );
    }

    #[test]
    fn with_no_one_over_warm_containers_go_before_stem_cells_least_recently_used_first() {
        let t = Instant::now();
        let candidates = [
            idle(t, None, 0, 128),
            idle(t, Some("b"), 2, 128),
            idle(t, Some("a"), 1, 128),
        ];
        let by_ns = held(&[("a", 1024), ("b", 1024)]);
        let asked = ask(Some("a"), 128, (256, 0));
        assert_eq!(
            choose_victims(&candidates, &by_ns, 4096, asked),
            Some(vec![2, 1])
        );
        let asked = ask(Some("a"), 128, (0, 3));
        assert_eq!(
            choose_victims(&candidates, &by_ns, 4096, asked),
            Some(vec![2, 1, 0]),
            "the cap on containers counts too"
        );
        let asked = ask(Some("a"), 128, (512, 0));
        assert_eq!(
            choose_victims(&candidates, &by_ns, 4096, asked),
            None,
            "nothing goes for nothing"
        );
    }

    #[test]
    fn a_functions_spare_containers_go_before_any_functions_last_one() {
        let t = Instant::now();
        let spare = |at: u64| Candidate {
            spare: true,
            ..idle(t, Some("a"), at, 128)
        };
        // The oldest is some function's last warm container; two spares of a busier function
        // came back later.
        let candidates = [idle(t, Some("a"), 0, 128), spare(5), spare(9)];
        let by_ns = held(&[("a", 384)]);
        assert_eq!(
            choose_victims(&candidates, &by_ns, 4096, ask(Some("a"), 128, (256, 0))),
            Some(vec![1, 2])
        );
        assert_eq!(
            choose_victims(&candidates, &by_ns, 4096, ask(Some("a"), 128, (384, 0))),
            Some(vec![1, 2, 0])
        );
    }
}
