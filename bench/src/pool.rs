//! The workers' container pool as their Prometheus endpoints report it (`faas_containers
//! {state, runtime}`, `faas_container_evictions_total{runtime}`,
//! `faas_worker_inflight_jobs{runtime}`, `faas_worker_jobs_taken_total{runtime, source}` and
//! `faas_pool_acquisitions_total{runtime, how}`), read around each scenario so that the report
//! can say how many containers were warm and how many were evicted, what share of the jobs
//! their function's home worker took (affinity hits) and what share of the calls found a
//! container of their function (pool hits), and polled by scenario 6 to know when its slow
//! calls are all running.

use crate::client::Api;
use crate::config::Runtime;
use serde::Serialize;

/// A worker pool's gauges at one moment; fields are `None` when no endpoint reported them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PoolState {
    pub warm: Option<f64>,
    pub prewarmed: Option<f64>,
    pub busy: Option<f64>,
    pub evictions_total: Option<f64>,
    /// Jobs the workers are running (`faas_worker_inflight_jobs`): taken from the queue, their
    /// container being found or started, or running.
    pub inflight_jobs: Option<f64>,
    /// Jobs taken from a home queue, and from any queue, so far.
    pub home_jobs_total: Option<f64>,
    pub jobs_taken_total: Option<f64>,
    /// Calls that found a container of their function (idle, or freed while they waited), and
    /// every call that asked for one, so far.
    pub pool_hits_total: Option<f64>,
    pub acquisitions_total: Option<f64>,
}

/// The pool before and after one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct PoolChange {
    pub scenario: String,
    pub before: PoolState,
    pub after: PoolState,
}

impl PoolChange {
    /// Containers evicted during the scenario (the counter appears with the first eviction).
    pub fn evictions(&self) -> Option<f64> {
        self.after.warm?;
        Some(self.after.evictions_total.unwrap_or(0.0) - self.before.evictions_total.unwrap_or(0.0))
    }

    /// Of the jobs taken during the scenario, the share their function's home worker took
    /// from its home queue; `None` when no job was taken (or the workers do not say).
    pub fn home_share(&self) -> Option<f64> {
        share(
            (self.before.home_jobs_total, self.after.home_jobs_total),
            (self.before.jobs_taken_total, self.after.jobs_taken_total),
        )
    }

    /// Of the calls that asked the pool for a container during the scenario, the share that
    /// got one of their function's without a start.
    pub fn pool_hit_rate(&self) -> Option<f64> {
        share(
            (self.before.pool_hits_total, self.after.pool_hits_total),
            (
                self.before.acquisitions_total,
                self.after.acquisitions_total,
            ),
        )
    }
}

/// How much of the growth of `all` (before, after) the growth of `part` is.
fn share(part: (Option<f64>, Option<f64>), all: (Option<f64>, Option<f64>)) -> Option<f64> {
    let grew = |(before, after): (Option<f64>, Option<f64>)| -> Option<f64> {
        Some(after? - before.unwrap_or(0.0))
    };
    let all = grew(all)?;
    (all > 0.0).then(|| grew(part).unwrap_or(0.0) / all)
}

/// One series of Prometheus' text format: name, labels, value.
type Series<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64);

/// `name{labels} value` of Prometheus' text format; `None` for comments and other lines.
fn parse_line(line: &str) -> Option<Series<'_>> {
    if line.starts_with('#') {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => {
            let labels = rest
                .strip_suffix('}')?
                .split(',')
                .filter_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    Some((key.trim(), value.trim().trim_matches('"')))
                })
                .collect();
            (name, labels)
        }
        None => (series, Vec::new()),
    };
    Some((name, labels, value))
}

/// The pool of `runtime`'s workers, summed over every endpoint that answers.
pub async fn read(api: &Api, urls: &[String], runtime: Runtime) -> PoolState {
    let mut state = PoolState::default();
    for url in urls {
        if let Some(text) = api.get_text(url).await {
            add(&mut state, &text, runtime);
        }
    }
    state
}

/// Adds `runtime`'s series of one endpoint's metrics `text` to `state`.
fn add(state: &mut PoolState, text: &str, runtime: Runtime) {
    for (name, labels, value) in text.lines().filter_map(parse_line) {
        let label = |key: &str| labels.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        if label("runtime") != Some(runtime.as_str()) {
            continue;
        }
        if name == "faas_worker_jobs_taken_total" {
            add_to(&mut state.jobs_taken_total, value);
            if label("source") == Some("home") {
                add_to(&mut state.home_jobs_total, value);
            }
            continue;
        }
        if name == "faas_pool_acquisitions_total" {
            add_to(&mut state.acquisitions_total, value);
            if matches!(label("how"), Some("idle" | "waited")) {
                add_to(&mut state.pool_hits_total, value);
            }
            continue;
        }
        let slot = match (name, label("state")) {
            ("faas_containers", Some("warm")) => &mut state.warm,
            ("faas_containers", Some("prewarmed")) => &mut state.prewarmed,
            ("faas_containers", Some("busy")) => &mut state.busy,
            ("faas_container_evictions_total", _) => &mut state.evictions_total,
            ("faas_worker_inflight_jobs", _) => &mut state.inflight_jobs,
            _ => continue,
        };
        add_to(slot, value);
    }
}

fn add_to(slot: &mut Option<f64>, value: f64) {
    *slot = Some(slot.unwrap_or(0.0) + value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_lines() {
        let (name, labels, value) =
            parse_line(r#"faas_containers{state="warm",runtime="docker"} 64"#).unwrap();
        assert_eq!(name, "faas_containers");
        assert_eq!(labels, vec![("state", "warm"), ("runtime", "docker")]);
        assert_eq!(value, 64.0);
        assert_eq!(parse_line("up 1").unwrap().2, 1.0);
        assert!(parse_line("# TYPE faas_containers gauge").is_none());
    }

    #[test]
    fn affinity_and_pool_hits_are_shares_of_what_grew_during_the_scenario() {
        let text = |home: u32, shared: u32, idle: u32, waited: u32, started: u32| {
            format!(
                "faas_worker_jobs_taken_total{{runtime=\"docker\",source=\"home\"}} {home}\n\
                 faas_worker_jobs_taken_total{{runtime=\"docker\",source=\"shared\"}} {shared}\n\
                 faas_pool_acquisitions_total{{runtime=\"docker\",how=\"idle\"}} {idle}\n\
                 faas_pool_acquisitions_total{{runtime=\"docker\",how=\"waited\"}} {waited}\n\
                 faas_pool_acquisitions_total{{runtime=\"docker\",how=\"started\"}} {started}\n\
                 faas_containers{{state=\"warm\",runtime=\"docker\"}} 1\n"
            )
        };
        let (mut before, mut after) = (PoolState::default(), PoolState::default());
        add(&mut before, &text(10, 0, 5, 0, 5), Runtime::Docker);
        add(&mut after, &text(100, 10, 80, 5, 25), Runtime::Docker);
        let change = PoolChange {
            scenario: "4. round robin".into(),
            before,
            after,
        };
        assert_eq!(change.home_share(), Some(0.9));
        assert_eq!(change.pool_hit_rate(), Some(0.8));
        // Nothing taken: no share at all, rather than 0 of 0.
        let idle = PoolChange {
            scenario: "x".into(),
            before: change.after.clone(),
            after: change.after.clone(),
        };
        assert_eq!(idle.home_share(), None);
    }

    #[test]
    fn sums_one_runtimes_series_over_endpoints() {
        let docker = "# TYPE faas_worker_inflight_jobs gauge\n\
                      faas_worker_inflight_jobs{runtime=\"docker\"} 40\n\
                      faas_containers{state=\"busy\",runtime=\"docker\"} 40\n\
                      faas_containers{state=\"warm\",runtime=\"docker\"} 3\n";
        let gvisor = "faas_worker_inflight_jobs{runtime=\"gvisor\"} 7\n";
        let mut state = PoolState::default();
        add(&mut state, docker, Runtime::Docker);
        add(&mut state, gvisor, Runtime::Docker);
        add(&mut state, docker, Runtime::Docker);
        assert_eq!(state.inflight_jobs, Some(80.0));
        assert_eq!(state.busy, Some(80.0));
        assert_eq!(state.warm, Some(6.0));
        assert_eq!(state.prewarmed, None);
        let mut gvisor_state = PoolState::default();
        add(&mut gvisor_state, gvisor, Runtime::Gvisor);
        assert_eq!(gvisor_state.inflight_jobs, Some(7.0));
    }
}
