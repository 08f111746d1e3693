//! Latency summaries (nearest-rank percentiles) and the per-scenario tally of call outcomes.

use crate::client::CallOutcome;
use serde::Serialize;
use std::collections::BTreeMap;

/// Distribution of a set of samples, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub count: usize,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Nearest-rank percentile of sorted, non-empty samples: the smallest value with at least
/// `p` percent of the samples at or below it.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The summary of `samples`, or `None` when there are none.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(Summary {
        count: sorted.len(),
        min_ms: sorted[0],
        mean_ms: sorted.iter().sum::<f64>() / sorted.len() as f64,
        p50_ms: percentile(&sorted, 50.0),
        p90_ms: percentile(&sorted, 90.0),
        p99_ms: percentile(&sorted, 99.0),
        max_ms: sorted[sorted.len() - 1],
    })
}

/// Failed calls of one kind: HTTP status (0 when no HTTP answer came) and error code.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorKind {
    pub status: u16,
    pub code: String,
    pub count: u64,
    /// The `detail` of the first such failure.
    pub detail: String,
}

/// The server's breakdown of successful calls, when its answers carry `timing`.
#[derive(Debug, Clone, Serialize)]
pub struct TimingSummary {
    pub queue_ms: Option<Summary>,
    pub init_ms: Option<Summary>,
    pub run_ms: Option<Summary>,
}

/// What a set of calls came to.
#[derive(Debug, Clone, Serialize)]
pub struct CallStats {
    pub calls: u64,
    pub ok: u64,
    /// Calls that did not answer 200.
    pub errors: u64,
    pub error_kinds: Vec<ErrorKind>,
    /// Successful calls that answered `cold_start: true`.
    pub cold_starts: u64,
    /// Client-measured latency of the successful calls.
    pub latency_ms: Option<Summary>,
    /// The api's `duration_ms` of the successful calls.
    pub server_duration_ms: Option<Summary>,
    pub timing: Option<TimingSummary>,
}

/// Collects call outcomes; one per task, merged at the end.
#[derive(Debug, Default)]
pub struct Recorder {
    ok_ms: Vec<f64>,
    server_ms: Vec<f64>,
    queue_ms: Vec<f64>,
    init_ms: Vec<f64>,
    run_ms: Vec<f64>,
    cold_starts: u64,
    errors: BTreeMap<(u16, String), (u64, String)>,
}

impl Recorder {
    /// Adds one call.
    pub fn record(&mut self, outcome: &CallOutcome) {
        if outcome.is_ok() {
            self.ok_ms.push(outcome.latency_ms);
            if outcome.cold_start == Some(true) {
                self.cold_starts += 1;
            }
            if let Some(ms) = outcome.duration_ms {
                self.server_ms.push(ms);
            }
            if let Some(timing) = &outcome.timing {
                self.queue_ms.extend(timing.queue_ms);
                self.init_ms.extend(timing.init_ms);
                self.run_ms.extend(timing.run_ms);
            }
        } else {
            let key = (
                outcome.status,
                outcome.code.clone().unwrap_or_else(|| "-".to_owned()),
            );
            let entry = self
                .errors
                .entry(key)
                .or_insert_with(|| (0, outcome.detail.clone().unwrap_or_default()));
            entry.0 += 1;
        }
    }

    /// Adds everything `other` saw.
    pub fn merge(&mut self, other: Recorder) {
        self.ok_ms.extend(other.ok_ms);
        self.server_ms.extend(other.server_ms);
        self.queue_ms.extend(other.queue_ms);
        self.init_ms.extend(other.init_ms);
        self.run_ms.extend(other.run_ms);
        self.cold_starts += other.cold_starts;
        for (key, (count, detail)) in other.errors {
            self.errors.entry(key).or_insert((0, detail)).0 += count;
        }
    }

    /// Successful calls so far.
    pub fn ok(&self) -> u64 {
        self.ok_ms.len() as u64
    }

    /// Failed calls so far.
    pub fn errors(&self) -> u64 {
        self.errors.values().map(|(count, _)| count).sum()
    }

    /// Successful calls that were cold starts.
    pub fn cold_starts(&self) -> u64 {
        self.cold_starts
    }

    /// The p50 of the successful calls so far; `None` without one.
    pub fn p50_ms(&self) -> Option<f64> {
        summarize(&self.ok_ms).map(|s| s.p50_ms)
    }

    /// The summary of everything recorded.
    pub fn finish(&self) -> CallStats {
        let timing =
            (!self.queue_ms.is_empty() || !self.init_ms.is_empty() || !self.run_ms.is_empty())
                .then(|| TimingSummary {
                    queue_ms: summarize(&self.queue_ms),
                    init_ms: summarize(&self.init_ms),
                    run_ms: summarize(&self.run_ms),
                });
        CallStats {
            calls: self.ok() + self.errors(),
            ok: self.ok(),
            errors: self.errors(),
            error_kinds: self
                .errors
                .iter()
                .map(|((status, code), (count, detail))| ErrorKind {
                    status: *status,
                    code: code.clone(),
                    count: *count,
                    detail: detail.clone(),
                })
                .collect(),
            cold_starts: self.cold_starts,
            latency_ms: summarize(&self.ok_ms),
            server_duration_ms: summarize(&self.server_ms),
            timing,
        }
    }
}

/// The stats of successful calls that took `latencies_ms`, for the report's tests.
#[cfg(test)]
pub(crate) fn stats_of(latencies_ms: &[f64]) -> CallStats {
    let mut recorder = Recorder::default();
    for &latency_ms in latencies_ms {
        recorder.record(&CallOutcome {
            status: 200,
            latency_ms,
            ..CallOutcome::default()
        });
    }
    recorder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let summary = summarize(&samples).unwrap();
        assert_eq!(summary.p50_ms, 50.0);
        assert_eq!(summary.p90_ms, 90.0);
        assert_eq!(summary.p99_ms, 99.0);
        assert_eq!(summary.min_ms, 1.0);
        assert_eq!(summary.max_ms, 100.0);
        assert_eq!(summary.mean_ms, 50.5);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn errors_are_tallied_by_status_and_code() {
        let mut a = Recorder::default();
        let failed = CallOutcome {
            status: 503,
            code: Some("expired".into()),
            detail: Some("overloaded".into()),
            ..CallOutcome::default()
        };
        a.record(&failed);
        let mut b = Recorder::default();
        b.record(&failed);
        b.record(&CallOutcome {
            status: 200,
            latency_ms: 3.0,
            cold_start: Some(true),
            ..CallOutcome::default()
        });
        a.merge(b);
        let stats = a.finish();
        assert_eq!((stats.calls, stats.ok, stats.errors), (3, 1, 2));
        assert_eq!(stats.cold_starts, 1);
        assert_eq!(stats.error_kinds.len(), 1);
        assert_eq!(stats.error_kinds[0].count, 2);
        assert_eq!(stats.error_kinds[0].detail, "overloaded");
    }
}
