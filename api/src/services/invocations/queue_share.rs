//! Each namespace's share of the runtimes' job queues (DESIGN section 19). The queues hold at
//! most `QUEUE_MAX_BYTES` and refuse publishes beyond (503 `overloaded` for everyone), so one
//! namespace's large events could fill them for all: this replica counts the event bytes of
//! each namespace's calls waiting for a reply, and refuses a call that would take its
//! namespace over `QUEUE_SHARE_BYTES` (429 `queue_share`). A namespace with nothing in flight
//! always has its call, however large.
//!
//! On the warm path: a read lock over the map (never held across an await) and two atomic
//! operations; the write lock only the first time a namespace calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// The namespaces' bytes in flight on this replica, and the share each may hold.
#[derive(Debug)]
pub struct QueueShares {
    share: u64,
    in_flight: RwLock<HashMap<String, Arc<AtomicU64>>>,
}

/// A namespace already has its share in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverShare {
    pub share: u64,
}

/// Bytes counted for one call until it is dropped.
#[derive(Debug)]
pub struct Reserved {
    counter: Arc<AtomicU64>,
    bytes: u64,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl QueueShares {
    /// Each namespace may have `share` bytes of events in flight.
    pub fn new(share: u64) -> Self {
        QueueShares {
            share,
            in_flight: RwLock::new(HashMap::new()),
        }
    }

    /// Counts `bytes` for a call of `namespace` while the result lives; refused when the
    /// namespace would go over its share (unless it has nothing in flight).
    pub fn reserve(&self, namespace: &str, bytes: u64) -> Result<Reserved, OverShare> {
        let counter = self.counter(namespace);
        let before = counter.fetch_add(bytes, Ordering::AcqRel);
        if before > 0 && before.saturating_add(bytes) > self.share {
            counter.fetch_sub(bytes, Ordering::AcqRel);
            return Err(OverShare { share: self.share });
        }
        Ok(Reserved { counter, bytes })
    }

    /// The bytes `namespace` has in flight now.
    #[cfg(test)]
    pub fn in_flight(&self, namespace: &str) -> u64 {
        self.counter(namespace).load(Ordering::Acquire)
    }

    fn counter(&self, namespace: &str) -> Arc<AtomicU64> {
        let known = self
            .in_flight
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(namespace)
            .cloned();
        known.unwrap_or_else(|| {
            self.in_flight
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .entry(namespace.to_owned())
                .or_default()
                .clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn a_namespace_holds_up_to_its_share_and_others_theirs() {
        let shares = QueueShares::new(64 * MIB);
        let a: Vec<Reserved> = (0..10)
            .map(|_| shares.reserve("a", 6 * MIB).expect("within a's share"))
            .collect();
        assert_eq!(shares.in_flight("a"), 60 * MIB);
        // An eleventh 6 MiB event would take a over 64 MiB; a small one still fits.
        assert_eq!(
            shares.reserve("a", 6 * MIB).unwrap_err(),
            OverShare { share: 64 * MIB }
        );
        assert_eq!(shares.in_flight("a"), 60 * MIB, "a refusal counts nothing");
        let small = shares.reserve("a", MIB).expect("1 MiB fits");
        // b is not refused for a's bytes.
        let b = shares.reserve("b", 6 * MIB).expect("b has its own share");
        drop(small);
        drop(b);
        // a's calls end: its bytes are given back.
        drop(a);
        assert_eq!(shares.in_flight("a"), 0);
        assert_eq!(shares.in_flight("b"), 0);
        assert!(shares.reserve("a", 6 * MIB).is_ok());
    }

    #[test]
    fn a_namespace_with_nothing_in_flight_has_its_call_however_large() {
        let shares = QueueShares::new(MIB);
        let big = shares.reserve("a", 6 * MIB).expect("the first call goes");
        assert!(shares.reserve("a", 1).is_err());
        drop(big);
        assert!(shares.reserve("a", 1).is_ok());
    }

    #[test]
    fn calls_side_by_side_never_hold_more_than_the_share_beyond_one_event() {
        let shares = Arc::new(QueueShares::new(64 * MIB));
        let held: Vec<Reserved> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let shares = shares.clone();
                    scope.spawn(move || {
                        (0..50)
                            .filter_map(|_| shares.reserve("a", 3 * MIB).ok())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|handle| handle.join().unwrap())
                .collect()
        });
        let total: u64 = held.iter().map(|reserved| reserved.bytes).sum();
        assert_eq!(total, shares.in_flight("a"));
        assert!(total <= 64 * MIB, "{total}");
        assert_eq!(total, 21 * 3 * MIB, "as many as fit");
        drop(held);
        assert_eq!(shares.in_flight("a"), 0);
    }
}
