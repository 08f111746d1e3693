//! `MAX_PENDING_ASYNC`: how many async invocations a namespace may have waiting or running.
//!
//! Counting a namespace's pending rows costs Postgres about a millisecond per ten thousand, on
//! every `/execute_async` (the bench's accept rate fell by a quarter with a count per call).
//! So each replica remembers its last count per namespace, plus what it accepted since, and
//! counts again only when that is older than [`RECOUNT_AFTER`] or within a quarter of the
//! limit: far from the limit a call is accepted on the estimate, near it every call counts.
//! The limit is soft: other replicas' accepts since the last count, and calls accepted side by
//! side, may pass it by that much.

use crate::store;
use crate::store::DbError;
use deadpool_postgres::Pool;
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
}

/// Whether `estimate` leaves room under `limit` without a count: it is fresh and under three
/// quarters of the limit.
fn room_by_estimate(estimate: Option<Estimate>, now: Instant, limit: i64) -> bool {
    estimate.is_some_and(|estimate| {
        now.saturating_duration_since(estimate.counted_at) < RECOUNT_AFTER
            && estimate.pending < limit - limit / 4
    })
}

/// Each namespace's pending estimate on this replica.
#[derive(Debug, Default)]
pub struct PendingCounts {
    estimates: Mutex<HashMap<String, Estimate>>,
}

impl PendingCounts {
    /// Whether `namespace` has `limit` async invocations waiting or running, counted in
    /// Postgres only when this replica's estimate cannot tell.
    pub async fn at_limit(&self, db: &Pool, namespace: &str, limit: i64) -> Result<bool, DbError> {
        let now = Instant::now();
        let estimate = self.estimates.lock().unwrap().get(namespace).copied();
        if room_by_estimate(estimate, now, limit) {
            return Ok(false);
        }
        let pending = store::count_pending(db, namespace, limit).await?;
        self.estimates.lock().unwrap().insert(
            namespace.to_owned(),
            Estimate {
                counted_at: now,
                pending,
            },
        );
        Ok(pending >= limit)
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
    fn an_estimate_decides_only_while_fresh_and_far_from_the_limit() {
        let now = Instant::now();
        let at = |ago_ms: u64, pending: i64| {
            Some(Estimate {
                counted_at: now - Duration::from_millis(ago_ms),
                pending,
            })
        };
        assert!(!room_by_estimate(None, now, 100), "never counted");
        assert!(room_by_estimate(at(10, 0), now, 100));
        assert!(room_by_estimate(at(10, 74), now, 100));
        assert!(!room_by_estimate(at(10, 75), now, 100), "near the limit");
        assert!(!room_by_estimate(at(10, 500), now, 100), "over it: counted");
        assert!(!room_by_estimate(at(1_000, 0), now, 100), "stale");
        // Small limits: the estimate still decides below them, and counts at them.
        assert!(room_by_estimate(at(10, 0), now, 1));
        assert!(!room_by_estimate(at(10, 1), now, 1));
        assert!(room_by_estimate(at(10, 1), now, 2));
        assert!(!room_by_estimate(at(10, 2), now, 2));
    }
}
