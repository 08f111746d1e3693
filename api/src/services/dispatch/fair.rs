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
//! to a delay queue, so that the FIFO keeps moving. With a slot free, any job runs: a
//! namespace alone uses every slot, and gives back what others need as its calls end.
//!
//! A set-aside job comes back later; each time it is set aside again it stays away twice as
//! long ([`Topology::defer_delay_secs`], up to a few minutes), so a backlog of thousands cycles
//! through the broker a few times per call it waits for, not continuously.
//!
//! [`Shares`] holds the decisions, pure; [`FairSlots`] is it behind a lock (never held across
//! an await), with the wake-ups of waiting jobs.
//!
//! [`Topology::defer_delay_secs`]: common::broker::Topology::defer_delay_secs

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

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
}

impl Shares {
    /// `slots` slots (at least one).
    pub fn new(slots: usize) -> Self {
        Shares {
            slots: slots.max(1),
            running: HashMap::new(),
            waiting: Vec::new(),
            granted: Vec::new(),
            next_ticket: 0,
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

    /// Admits a job of `namespace`.
    pub fn admit(&mut self, namespace: &str) -> Admission {
        // A free slot means nobody waits (a slot that frees up goes to a waiting job at once).
        if self.running_total() < self.slots {
            self.take(namespace);
            return Admission::Run;
        }
        let held = self.running_of(namespace) + self.waiting_of(namespace);
        if held >= self.share(namespace) {
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

    /// A job of `namespace` ended and frees its slot: the slot goes to the waiting job whose
    /// namespace runs the fewest (the oldest of those), whose ticket is returned to wake it.
    pub fn release(&mut self, namespace: &str) -> Option<Ticket> {
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
        let held = self.running_of(namespace) + self.waiting_of(namespace);
        if held > self.share(namespace) {
            self.waiting.retain(|(t, _)| *t != ticket);
            return Standing::OverShare;
        }
        Standing::Waiting
    }

    /// Waiting job `ticket` of `namespace` gives up (its runner stops): it waits no more, and
    /// a slot it was given but had not seen is released (to the ticket returned).
    pub fn withdraw(&mut self, ticket: Ticket, namespace: &str) -> Option<Ticket> {
        if let Some(index) = self.granted.iter().position(|&t| t == ticket) {
            self.granted.swap_remove(index);
            return self.release(namespace);
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
        }
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
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.slots.lock();
        let granted = inner.shares.release(&self.namespace);
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
