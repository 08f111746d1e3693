//! Fair shares of this replica's async slots between namespaces (DESIGN section 19): a
//! namespace's backlog of slow calls delays another namespace's call by about one call's time,
//! not by the backlog's.
//!
//! The async queue is one FIFO, so fairness needs two things. The dispatcher takes more jobs
//! than it has slots (a look-ahead: its prefetch is twice `ASYNC_CONCURRENCY`), so that it can
//! see past a backlog; and a namespace holds at most its share of the slots while others want
//! some: `max(1, slots / active namespaces)`, where a namespace is active while it has a job
//! running or waiting here. A job whose namespace is under its share runs on a free slot, or
//! waits for the next one to free up (it goes to the waiting namespace with the fewest
//! running); a job whose namespace already holds its share while no slot is free is set aside
//! to a delay queue, so that the FIFO keeps moving, but for a few (half the look-ahead, split
//! between the namespaces) that wait ready for the next slot their namespace may take. With a slot free, any job runs: a
//! namespace alone uses every slot, and gives back what others need as its calls end.
//!
//! A set-aside job comes back later, when its turn may have come ([`Shares::defer_secs`]):
//! after the jobs of its namespace set aside before it and not yet due back, run on the slots
//! its namespace holds at the pace its calls have been taking, so that a namespace alone keeps
//! its slots busy; and at most twice as long as the last time it was set aside
//! ([`Topology::defer_delay_secs`], up to a few minutes), so that a job whose calls' pace is not
//! known yet backs off, and a backlog of thousands cycles through the broker a few times per
//! call it waits for, not continuously.
//!
//! [`Shares`] holds the decisions, pure; [`FairSlots`] is it behind a lock (never held across
//! an await), with the wake-ups of waiting jobs.
//!
//! [`Topology::defer_delay_secs`]: common::broker::Topology::defer_delay_secs

use common::broker::Topology;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A job waiting here for a slot.
type Ticket = u64;

/// What a job delivered to this replica does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A slot is its: run.
    Run,
    /// Its namespace is under its share but no slot is free: wait for the next one.
    Wait(Ticket),
    /// Its namespace holds its share and no slot is free: set the job aside.
    SetAside,
}

/// Where a waiting job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// A slot was given to it: run.
    Granted,
    /// Still under its namespace's share: wait on.
    Waiting,
    /// Its namespace's share shrank (more namespaces want slots) to what it holds: it no
    /// longer waits here; set it aside.
    OverShare,
}

/// The slots of one replica and who holds or waits for them. Pure: no clock, no I/O.
#[derive(Debug)]
pub struct Shares {
    slots: usize,
    /// Slots held, by namespace (no entry at zero).
    running: HashMap<String, usize>,
    /// Jobs waiting for a slot, in arrival order.
    waiting: Vec<(Ticket, String)>,
    /// Waiting jobs given a slot that have not yet seen it.
    granted: Vec<Ticket>,
    next_ticket: Ticket,
    /// How long each namespace's calls hold a slot, and its jobs set aside.
    paces: HashMap<String, Pace>,
}

/// A namespace's pace on this replica.
#[derive(Debug, Default)]
struct Pace {
    /// How long its jobs held a slot, on average (exponentially weighted); `None` until one
    /// ended.
    held_secs: Option<f64>,
    /// When its jobs set aside from here are due back, those not yet due.
    due_back: BinaryHeap<Reverse<Instant>>,
}

/// The weight of the last job in [`Pace::held_secs`].
const PACE_WEIGHT: f64 = 0.2;

impl Shares {
    /// `slots` slots (at least one).
    pub fn new(slots: usize) -> Self {
        Shares {
            slots: slots.max(1),
            running: HashMap::new(),
            waiting: Vec::new(),
            granted: Vec::new(),
            next_ticket: 0,
            paces: HashMap::new(),
        }
    }

    fn running_of(&self, namespace: &str) -> usize {
        self.running.get(namespace).copied().unwrap_or(0)
    }

    fn waiting_of(&self, namespace: &str) -> usize {
        self.waiting
            .iter()
            .filter(|(_, ns)| ns == namespace)
            .count()
    }

    fn running_total(&self) -> usize {
        self.running.values().sum()
    }

    /// Namespaces with a job running or waiting here, `also` counted too.
    fn active(&self, also: &str) -> usize {
        let mut names: Vec<&str> = self.running.keys().map(String::as_str).collect();
        names.extend(self.waiting.iter().map(|(_, ns)| ns.as_str()));
        names.push(also);
        names.sort_unstable();
        names.dedup();
        names.len()
    }

    /// The slots `namespace` may hold while the active namespaces (itself included) want some.
    pub fn share(&self, namespace: &str) -> usize {
        (self.slots / self.active(namespace)).max(1)
    }

    /// Whether `namespace` may have `waiting` jobs waiting here for a slot: while it holds less
    /// than its share with them, and a few more at any time (half the look-ahead split
    /// between the active namespaces), ready for the next slot it may take, so that a
    /// namespace alone keeps its slots busy rather than waiting for its set-aside jobs.
    fn may_wait(&self, namespace: &str, waiting: usize) -> bool {
        let ready = (self.slots / (2 * self.active(namespace))).max(1);
        self.running_of(namespace) + waiting <= self.share(namespace) || waiting <= ready
    }

    /// Admits a job of `namespace`.
    pub fn admit(&mut self, namespace: &str) -> Admission {
        // A free slot means nobody waits (a slot that frees up goes to a waiting job at once).
        if self.running_total() < self.slots {
            self.take(namespace);
            return Admission::Run;
        }
        if !self.may_wait(namespace, self.waiting_of(namespace) + 1) {
            return Admission::SetAside;
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.waiting.push((ticket, namespace.to_owned()));
        Admission::Wait(ticket)
    }

    fn take(&mut self, namespace: &str) {
        *self.running.entry(namespace.to_owned()).or_default() += 1;
    }

    /// A job of `namespace` that held its slot for `held` ended and frees it: the slot goes to
    /// the waiting job whose namespace runs the fewest (the oldest of those), whose ticket is
    /// returned to wake it.
    pub fn release(&mut self, namespace: &str, held: Duration) -> Option<Ticket> {
        let pace = self.paces.entry(namespace.to_owned()).or_default();
        let secs = held.as_secs_f64();
        pace.held_secs = Some(match pace.held_secs {
            Some(average) => average + PACE_WEIGHT * (secs - average),
            None => secs,
        });
        self.free(namespace)
    }

    /// Frees a slot of `namespace` and gives it to the next waiting job.
    fn free(&mut self, namespace: &str) -> Option<Ticket> {
        if let Some(count) = self.running.get_mut(namespace) {
            *count -= 1;
            if *count == 0 {
                self.running.remove(namespace);
            }
        }
        let (index, _) = self
            .waiting
            .iter()
            .enumerate()
            .min_by_key(|(index, (_, ns))| (self.running_of(ns), *index))?;
        let (ticket, namespace) = self.waiting.remove(index);
        self.take(&namespace);
        self.granted.push(ticket);
        Some(ticket)
    }

    /// Where waiting job `ticket` of `namespace` stands; one that is [`Standing::OverShare`]
    /// no longer waits.
    pub fn standing(&mut self, ticket: Ticket, namespace: &str) -> Standing {
        if let Some(index) = self.granted.iter().position(|&t| t == ticket) {
            self.granted.swap_remove(index);
            return Standing::Granted;
        }
        if !self.may_wait(namespace, self.waiting_of(namespace)) {
            self.waiting.retain(|(t, _)| *t != ticket);
            return Standing::OverShare;
        }
        Standing::Waiting
    }

    /// How long (seconds, one of [`Topology::DEFER_DELAYS_SECS`]) a job of `namespace` set
    /// aside `deferred` times before stays away, set aside at `now`: until its turn may have
    /// come (the namespace's jobs due back before it, each holding a slot for the namespace's
    /// pace, on the slots it holds), at most twice its last delay. Counted among the jobs due
    /// back until then.
    pub fn defer_secs(&mut self, namespace: &str, deferred: u32, now: Instant) -> u64 {
        let slots = self.running_of(namespace).max(1);
        let pace = self.paces.entry(namespace.to_owned()).or_default();
        while pace.due_back.peek().is_some_and(|due| due.0 <= now) {
            pace.due_back.pop();
        }
        let backoff = Topology::defer_delay_secs(deferred);
        let secs = match pace.held_secs {
            Some(held) => {
                let turns = (pace.due_back.len() / slots + 1) as f64;
                // Rounded down to a delay queue's: a job back early is set aside again.
                let turn = Topology::DEFER_DELAYS_SECS
                    .iter()
                    .copied()
                    .take_while(|&delay| delay as f64 <= turns * held)
                    .last()
                    .unwrap_or(Topology::DEFER_DELAYS_SECS[0]);
                turn.min(backoff)
            }
            None => backoff,
        };
        pace.due_back.push(Reverse(now + Duration::from_secs(secs)));
        secs
    }

    /// Waiting job `ticket` of `namespace` gives up (its runner stops): it waits no more, and
    /// a slot it was given but had not seen is released (to the ticket returned).
    pub fn withdraw(&mut self, ticket: Ticket, namespace: &str) -> Option<Ticket> {
        if let Some(index) = self.granted.iter().position(|&t| t == ticket) {
            self.granted.swap_remove(index);
            return self.free(namespace);
        }
        self.waiting.retain(|(t, _)| *t != ticket);
        None
    }
}

/// [`Shares`] shared by this replica's runners, with a wake-up per waiting job.
#[derive(Debug)]
pub struct FairSlots {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    shares: Shares,
    wakers: HashMap<Ticket, Arc<Notify>>,
}

/// How a job is admitted by [`FairSlots::admit`].
pub enum Admit {
    Run(Slot),
    Wait(Waiting),
    SetAside,
}

impl FairSlots {
    /// `slots` slots (`ASYNC_CONCURRENCY`).
    pub fn new(slots: usize) -> Arc<Self> {
        Arc::new(FairSlots {
            inner: Mutex::new(Inner {
                shares: Shares::new(slots),
                wakers: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing panics while holding it; a poisoned lock still holds consistent shares.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits a job of `namespace`: a slot, a place among the waiting, or set aside.
    pub fn admit(self: &Arc<Self>, namespace: &str) -> Admit {
        let mut inner = self.lock();
        match inner.shares.admit(namespace) {
            Admission::Run => Admit::Run(self.slot(namespace)),
            Admission::SetAside => Admit::SetAside,
            Admission::Wait(ticket) => {
                let notify = Arc::new(Notify::new());
                inner.wakers.insert(ticket, notify.clone());
                Admit::Wait(Waiting {
                    slots: self.clone(),
                    namespace: namespace.to_owned(),
                    ticket,
                    notify,
                    done: false,
                })
            }
        }
    }

    fn slot(self: &Arc<Self>, namespace: &str) -> Slot {
        Slot {
            slots: self.clone(),
            namespace: namespace.to_owned(),
            since: Instant::now(),
        }
    }

    /// How long a job of `namespace` set aside `deferred` times before stays away now
    /// ([`Shares::defer_secs`]).
    pub fn defer_secs(&self, namespace: &str, deferred: u32) -> u64 {
        self.lock()
            .shares
            .defer_secs(namespace, deferred, Instant::now())
    }

    /// Wakes the job given a slot, if any.
    fn wake(inner: &mut Inner, granted: Option<Ticket>) {
        if let Some(notify) = granted.and_then(|ticket| inner.wakers.remove(&ticket)) {
            notify.notify_one();
        }
    }
}

/// A slot held; released when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<FairSlots>,
    namespace: String,
    since: Instant,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.slots.lock();
        let granted = inner.shares.release(&self.namespace, self.since.elapsed());
        FairSlots::wake(&mut inner, granted);
    }
}

/// A job waiting for a slot; dropped before it has one, it withdraws.
#[derive(Debug)]
pub struct Waiting {
    slots: Arc<FairSlots>,
    namespace: String,
    ticket: Ticket,
    notify: Arc<Notify>,
    done: bool,
}

/// What became of a waiting job when it looked ([`Waiting::look`]).
pub enum Looked {
    Granted(Slot),
    Waiting(Waiting),
    OverShare,
}

impl Waiting {
    /// Until a slot may have been given to it (look then).
    pub async fn woken(&self) {
        self.notify.notified().await;
    }

    /// Whether it has a slot, waits on, or no longer waits (its namespace's share shrank).
    pub fn look(mut self) -> Looked {
        let standing = {
            let mut inner = self.slots.lock();
            let standing = inner.shares.standing(self.ticket, &self.namespace);
            if standing != Standing::Waiting {
                inner.wakers.remove(&self.ticket);
            }
            standing
        };
        match standing {
            Standing::Waiting => Looked::Waiting(self),
            Standing::Granted => {
                self.done = true;
                Looked::Granted(self.slots.slot(&self.namespace))
            }
            Standing::OverShare => {
                self.done = true;
                Looked::OverShare
            }
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut inner = self.slots.lock();
        inner.wakers.remove(&self.ticket);
        let granted = inner.shares.withdraw(self.ticket, &self.namespace);
        FairSlots::wake(&mut inner, granted);
    }
}

#[cfg(test)]
mod tests;
