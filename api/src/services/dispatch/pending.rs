//! `MAX_PENDING_ASYNC` and the namespace quotas an accept counts against: how many async
//! invocations a namespace may have waiting or running (`pending_async`, never above
//! `MAX_PENDING_ASYNC`), and whether its stored results are at their `result_bytes` quota.
//!
//! Counting a namespace's pending rows costs Postgres about a millisecond per ten thousand, on
//! every `/execute_async` (the bench's accept rate fell by a quarter with a count per call).
//! So each replica remembers its last count per namespace, plus what it accepted since, and
//! counts again only when that is older than [`RECOUNT_AFTER`] or within a quarter of the
//! limit: far from the limit a call is accepted on the estimate, near it every call counts.
//! A count happens in the accept's own transaction, under a lock per namespace, so that near the
//! limit calls on every replica count one after the other and none passes it. Far from it (under
//! three quarters, on a count under a second old) the estimate lets calls in uncounted: other
//! replicas' accepts in that second could pass the limit only by taking a quarter of it.

use crate::store;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest a count stands in for a new one.
const RECOUNT_AFTER: Duration = Duration::from_secs(1);

/// A namespace's pending invocations as this replica last knew them.
#[derive(Debug, Clone, Copy)]
struct Estimate {
    counted_at: Instant,
    /// The count then, plus this replica's accepts since (finished ones are not subtracted:
    /// an estimate only errs high, and the next count corrects it).
    pending: i64,
    /// The namespace's limit in force then.
    limit: i64,
    /// Its stored results were at their quota then.
    results_full: bool,
}

/// Whether `estimate` leaves room without a count: it is fresh, the results were not full, and
/// the pending calls under three quarters of the limit.
fn room_by_estimate(estimate: Option<Estimate>, now: Instant) -> bool {
    estimate.is_some_and(|estimate| {
        now.saturating_duration_since(estimate.counted_at) < RECOUNT_AFTER
            && !estimate.results_full
            && estimate.pending < estimate.limit - estimate.limit / 4
    })
}

/// Each namespace's pending estimate on this replica.
#[derive(Debug, Default)]
pub struct PendingCounts {
    estimates: Mutex<HashMap<String, Estimate>>,
}

impl PendingCounts {
    /// Whether an accept in `namespace` must count (in its transaction) rather than go in on
    /// this replica's estimate.
    pub fn must_count(&self, namespace: &str) -> bool {
        let estimate = self.estimates.lock().unwrap().get(namespace).copied();
        !room_by_estimate(estimate, Instant::now())
    }

    /// What an accept in `namespace` counted (before its own insert), as the new estimate.
    pub fn counted(&self, namespace: &str, counted: &store::Counted) {
        self.estimates.lock().unwrap().insert(
            namespace.to_owned(),
            Estimate {
                counted_at: Instant::now(),
                pending: counted.pending,
                limit: counted.limit,
                results_full: counted.results_full,
            },
        );
    }

    /// Counts an invocation accepted in `namespace` into its estimate.
    pub fn accepted(&self, namespace: &str) {
        if let Some(estimate) = self.estimates.lock().unwrap().get_mut(namespace) {
            estimate.pending += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_estimate_decides_only_while_fresh_far_from_the_limit_and_results_not_full() {
        let now = Instant::now();
        let at = |ago_ms: u64, pending: i64, limit: i64| {
            Some(Estimate {
                counted_at: now - Duration::from_millis(ago_ms),
                pending,
                limit,
                results_full: false,
            })
        };
        assert!(!room_by_estimate(None, now), "never counted");
        assert!(room_by_estimate(at(10, 0, 100), now));
        assert!(room_by_estimate(at(10, 74, 100), now));
        assert!(!room_by_estimate(at(10, 75, 100), now), "near the limit");
        assert!(!room_by_estimate(at(10, 500, 100), now), "over it: counted");
        assert!(!room_by_estimate(at(1_000, 0, 100), now), "stale");
        // Small limits: the estimate still decides below them, and counts at them.
        assert!(room_by_estimate(at(10, 0, 1), now));
        assert!(!room_by_estimate(at(10, 1, 1), now));
        assert!(room_by_estimate(at(10, 1, 2), now));
        assert!(!room_by_estimate(at(10, 2, 2), now));
        assert!(
            !room_by_estimate(at(10, 0, 0), now),
            "a zero quota always counts"
        );
        let full = at(10, 0, 100).map(|e| Estimate {
            results_full: true,
            ..e
        });
        assert!(
            !room_by_estimate(full, now),
            "results at their quota: counted"
        );
    }

    #[test]
    fn a_count_replaces_the_estimate_and_accepts_add_to_it() {
        let counts = PendingCounts::default();
        assert!(counts.must_count("ns"));
        let counted = store::Counted {
            pending: 0,
            limit: 4,
            results_full: false,
        };
        counts.counted("ns", &counted);
        assert!(!counts.must_count("ns"));
        counts.accepted("ns");
        counts.accepted("ns");
        assert!(!counts.must_count("ns"), "2 of 4: under three quarters");
        counts.accepted("ns");
        assert!(counts.must_count("ns"), "3 of 4: counted");
        assert!(counts.must_count("other"));
    }
}
