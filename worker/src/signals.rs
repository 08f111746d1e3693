//! The scaling signals a worker exports beside its pool's gauges (DESIGN §21, docs/scaling.md):
//! how long the jobs it took lately had waited in their queue (the age of the oldest job, as
//! workers see it), and who it is (`faas_worker_info{worker, node, runtime}`), so that every
//! series can be summed per node. The queue's depth is the broker's own metric
//! (`rabbitmq_queue_messages_ready`), room left is `faas_worker_memory_mb{state="free"}`, the
//! pool's hit rate `faas_pool_acquisitions_total{how}` and affinity `faas_worker_jobs_taken_total
//! {source}`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one window of [`QueueWaits`] lasts.
pub const WINDOW: Duration = Duration::from_secs(10);

/// The longest time a job taken by this worker lately had waited in its queue (from publish
/// to this worker taking it). "Lately" is the current window and the one before it, each
/// [`WINDOW`] long, so the value falls back within two windows once jobs stop waiting.
pub struct QueueWaits {
    runtime: &'static str,
    windows: Mutex<Windows>,
}

struct Windows {
    started: Instant,
    current: Duration,
    previous: Duration,
}

impl QueueWaits {
    pub fn new(runtime: &'static str, now: Instant) -> Self {
        QueueWaits {
            runtime,
            windows: Mutex::new(Windows {
                started: now,
                current: Duration::ZERO,
                previous: Duration::ZERO,
            }),
        }
    }

    /// A job taken at `now` that had waited `waited`.
    pub fn record(&self, waited: Duration, now: Instant) {
        let mut windows = self.windows.lock().unwrap();
        windows.rotate(now);
        windows.current = windows.current.max(waited);
    }

    /// The longest wait of the jobs taken lately, as of `now`.
    pub fn longest(&self, now: Instant) -> Duration {
        let mut windows = self.windows.lock().unwrap();
        windows.rotate(now);
        windows.current.max(windows.previous)
    }

    /// Sets `faas_worker_queue_wait_max_seconds` to [`Self::longest`]; called every second.
    pub fn export(&self, now: Instant) {
        metrics::gauge!("faas_worker_queue_wait_max_seconds", "runtime" => self.runtime)
            .set(self.longest(now).as_secs_f64());
    }
}

impl Windows {
    fn rotate(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed >= WINDOW * 2 {
            self.previous = Duration::ZERO;
            self.current = Duration::ZERO;
            self.started = now;
        } else if elapsed >= WINDOW {
            self.previous = self.current;
            self.current = Duration::ZERO;
            self.started += WINDOW;
        }
    }
}

/// Exports `faas_worker_info{worker, node, runtime} 1`: joined on the scrape's `instance`, it
/// puts any of this worker's series under its node.
pub fn export_identity(worker: &str, node: &str, runtime: &'static str) {
    metrics::gauge!("faas_worker_info", "worker" => worker.to_owned(), "node" => node.to_owned(), "runtime" => runtime)
        .set(1.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_wait_holds_for_one_to_two_windows_then_falls_back() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let waits = QueueWaits::new("docker", start);
        assert_eq!(waits.longest(start), Duration::ZERO);
        waits.record(Duration::from_millis(900), at(1));
        waits.record(Duration::from_millis(40), at(2));
        assert_eq!(waits.longest(at(3)), Duration::from_millis(900));
        // The next window still remembers it; a shorter wait does not hide it.
        waits.record(Duration::from_millis(10), at(12));
        assert_eq!(waits.longest(at(15)), Duration::from_millis(900));
        // Two windows on, only the newer wait is left; then nothing.
        assert_eq!(waits.longest(at(21)), Duration::from_millis(10));
        assert_eq!(waits.longest(at(45)), Duration::ZERO);
        // A long silence forgets everything at once.
        waits.record(Duration::from_secs(3), at(46));
        assert_eq!(waits.longest(at(100)), Duration::ZERO);
    }
}
