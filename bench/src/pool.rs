//! The workers' container pool as their Prometheus endpoints report it (`faas_containers
//! {state, runtime}`, `faas_container_evictions_total{runtime}` and
//! `faas_worker_inflight_jobs{runtime}`), read around each scenario so that the report can say
//! how many containers were warm and how many were evicted, and polled by scenario 6 to know
//! when its slow calls are all running.

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
        let slot = match (name, label("state")) {
            ("faas_containers", Some("warm")) => &mut state.warm,
            ("faas_containers", Some("prewarmed")) => &mut state.prewarmed,
            ("faas_containers", Some("busy")) => &mut state.busy,
            ("faas_container_evictions_total", _) => &mut state.evictions_total,
            ("faas_worker_inflight_jobs", _) => &mut state.inflight_jobs,
            _ => continue,
        };
        *slot = Some(slot.unwrap_or(0.0) + value);
    }
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
