//! An async invocation as `GET /invocations/{id}` shows it, and what a set of them came to by
//! their own timestamps.

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::Value;

/// An invocation as `GET /invocations/{id}` shows it, what the scenario reads of it.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub status: String,
    pub created_at: Option<DateTime<FixedOffset>>,
    /// When a dispatcher claimed its first attempt.
    pub started_at: Option<DateTime<FixedOffset>>,
    pub finished_at: Option<DateTime<FixedOffset>>,
    pub attempts: usize,
    /// Of the last attempt.
    pub worker_id: Option<String>,
    pub cold_start: Option<bool>,
    /// The worker's `timing` of the last attempt: its container's start, and the handler's run.
    pub init_ms: Option<f64>,
    pub run_ms: Option<f64>,
}

impl View {
    /// `succeeded` or `dead_lettered`: an async invocation ends in one of them.
    pub fn ended(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "dead_lettered")
    }
}

/// Reads an invocation view.
pub fn read_view(value: &Value) -> View {
    let time = |v: &Value| {
        v.as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    };
    let attempts = value["attempts"].as_array();
    let last = attempts.and_then(|a| a.last());
    View {
        status: value["status"].as_str().unwrap_or("?").to_owned(),
        created_at: time(&value["created_at"]),
        started_at: attempts
            .and_then(|a| a.first())
            .and_then(|a| time(&a["started_at"])),
        finished_at: time(&value["finished_at"]),
        attempts: attempts.map_or(0, Vec::len),
        worker_id: last
            .and_then(|a| a["worker_id"].as_str())
            .map(str::to_owned),
        cold_start: last.and_then(|a| a["cold_start"].as_bool()),
        init_ms: value["timing"]["init_ms"].as_f64(),
        run_ms: value["timing"]["run_ms"].as_f64(),
    }
}

/// Seconds from `from` to `to`.
fn seconds_between(from: DateTime<FixedOffset>, to: DateTime<FixedOffset>) -> f64 {
    (to - from)
        .num_microseconds()
        .map_or(f64::NAN, |us| us as f64 / 1e6)
}

/// What a burst's invocations came to, from their own timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct EndToEnd {
    /// From the first `created_at` (of any invocation) to the last `finished_at` of a
    /// succeeded one.
    pub seconds: Option<f64>,
    /// Succeeded invocations per second over `seconds`.
    pub per_s: Option<f64>,
    /// `finished_at - created_at` of each succeeded invocation, in ms.
    pub latencies_ms: Vec<f64>,
    /// Of each succeeded invocation, in ms: from `created_at` to its first attempt's
    /// `started_at` (waiting in the async queue for a dispatcher), and from there to
    /// `finished_at` (running: through the worker's queue, the worker, and back).
    pub queued_ms: Vec<f64>,
    pub running_ms: Vec<f64>,
}

/// The rate and latencies of `views`, from their `created_at` and `finished_at`.
pub fn end_to_end(views: &[View]) -> EndToEnd {
    let first = views.iter().filter_map(|v| v.created_at).min();
    let succeeded: Vec<(DateTime<FixedOffset>, DateTime<FixedOffset>)> = views
        .iter()
        .filter(|v| v.status == "succeeded")
        .filter_map(|v| Some((v.created_at?, v.finished_at?)))
        .collect();
    let last = succeeded.iter().map(|&(_, finished)| finished).max();
    let seconds = first.zip(last).map(|(a, b)| seconds_between(a, b));
    EndToEnd {
        seconds,
        per_s: seconds
            .filter(|s| *s > 0.0)
            .map(|s| succeeded.len() as f64 / s),
        latencies_ms: succeeded
            .iter()
            .map(|&(created, finished)| seconds_between(created, finished) * 1000.0)
            .collect(),
        queued_ms: views
            .iter()
            .filter(|v| v.status == "succeeded")
            .filter_map(|v| Some(seconds_between(v.created_at?, v.started_at?) * 1000.0))
            .collect(),
        running_ms: views
            .iter()
            .filter(|v| v.status == "succeeded")
            .filter_map(|v| Some(seconds_between(v.started_at?, v.finished_at?) * 1000.0))
            .collect(),
    }
}

/// From the kill to `finished_at`, and that minus the handler's sleep.
pub fn after_kill(
    killed_at: DateTime<Utc>,
    finished_at: Option<DateTime<FixedOffset>>,
    sleep_secs: f64,
) -> (Option<f64>, Option<f64>) {
    let kill_to_finished = finished_at.map(|f| seconds_between(killed_at.fixed_offset(), f));
    (kill_to_finished, kill_to_finished.map(|s| s - sleep_secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::summarize;
    use serde_json::json;

    fn view(status: &str, created: &str, finished: Option<&str>) -> View {
        read_view(&json!({
            "status": status,
            "created_at": created,
            "finished_at": finished,
            "attempts": [],
        }))
    }

    #[test]
    fn reads_an_invocation_and_its_last_attempt() {
        let v = read_view(&json!({
            "invocation_id": "0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b",
            "status": "succeeded",
            "created_at": "2026-11-27T16:00:00.123456Z",
            "finished_at": "2026-11-27T16:00:02.5+00:00",
            "timing": {"queue_ms": 1.0, "init_ms": 250.5, "run_ms": 2001.0},
            "attempts": [
                {"attempt": 1, "worker_id": "w-1", "cold_start": false},
                {"attempt": 2, "worker_id": "w-2", "cold_start": true},
            ],
        }));
        assert!(v.ended());
        assert_eq!(v.attempts, 2);
        assert_eq!(v.worker_id.as_deref(), Some("w-2"));
        assert_eq!(v.cold_start, Some(true));
        assert_eq!((v.init_ms, v.run_ms), (Some(250.5), Some(2001.0)));
        let seconds = seconds_between(v.created_at.unwrap(), v.finished_at.unwrap());
        assert!((seconds - 2.376544).abs() < 1e-9, "{seconds}");
        let queued = read_view(&json!({"status": "queued", "finished_at": null}));
        assert!(!queued.ended());
        assert_eq!((queued.attempts, queued.finished_at), (0, None));
        assert!(view("dead_lettered", "2026-11-27T16:00:00Z", None).ended());
    }

    #[test]
    fn end_to_end_runs_from_the_first_accepted_to_the_last_finished() {
        let views = [
            view(
                "succeeded",
                "2026-11-27T16:00:00.5Z",
                Some("2026-11-27T16:00:01Z"),
            ),
            view(
                "succeeded",
                "2026-11-27T16:00:00Z",
                Some("2026-11-27T16:00:00.1Z"),
            ),
            view(
                "succeeded",
                "2026-11-27T16:00:01Z",
                Some("2026-11-27T16:00:04Z"),
            ),
            // Accepted first, never finished: it counts for the start, not the rate.
            view("queued", "2026-11-27T15:59:59Z", None),
            view(
                "dead_lettered",
                "2026-11-27T16:00:00Z",
                Some("2026-11-27T16:00:09Z"),
            ),
        ];
        let e2e = end_to_end(&views);
        assert_eq!(e2e.seconds, Some(5.0));
        assert_eq!(e2e.per_s, Some(0.6));
        assert_eq!(e2e.latencies_ms, vec![500.0, 100.0, 3000.0]);
        assert!(e2e.queued_ms.is_empty() && e2e.running_ms.is_empty());
        let started = read_view(&json!({
            "status": "succeeded",
            "created_at": "2026-11-27T16:00:00Z",
            "finished_at": "2026-11-27T16:00:01Z",
            "attempts": [{"attempt": 1, "started_at": "2026-11-27T16:00:00.75Z"},
                         {"attempt": 2, "started_at": "2026-11-27T16:00:00.9Z"}],
        }));
        let split = end_to_end(&[started]);
        assert_eq!(
            (split.queued_ms, split.running_ms),
            (vec![750.0], vec![250.0])
        );
        let summary = summarize(&e2e.latencies_ms).unwrap();
        assert_eq!((summary.p50_ms, summary.p99_ms), (500.0, 3000.0));
        let none = end_to_end(&[view("queued", "2026-11-27T16:00:00Z", None)]);
        assert_eq!((none.seconds, none.per_s), (None, None));
        assert!(none.latencies_ms.is_empty());
    }

    #[test]
    fn the_redelivery_wait_is_the_time_after_the_kill_beyond_the_sleep() {
        let killed_at = DateTime::parse_from_rfc3339("2026-11-27T16:00:01Z")
            .unwrap()
            .with_timezone(&Utc);
        let finished = DateTime::parse_from_rfc3339("2026-11-27T16:00:03.75Z").ok();
        assert_eq!(
            after_kill(killed_at, finished, 2.0),
            (Some(2.75), Some(0.75))
        );
        assert_eq!(after_kill(killed_at, None, 2.0), (None, None));
    }
}
