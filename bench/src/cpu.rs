//! Where the CPU went during a measured phase, in cores (CPU seconds per second of wall time):
//! the whole machine (/proc/stat), the api and workers, this client, the function containers
//! (the `docker` cgroup's cpuacct), Docker's daemons, RabbitMQ and Postgres (by process name),
//! and the rest, which is anything else running on the machine.

use crate::procs::{self, Process};
use serde::Serialize;
use std::collections::HashMap;
use std::fs;
use std::process::Command;
use std::time::Instant;

/// Services counted by process name (`comm` prefixes).
const SERVICES: &[(&str, &[&str])] = &[
    ("dockerd, containerd", &["dockerd", "containerd"]),
    ("RabbitMQ", &["beam.smp"]),
    ("Postgres", &["postgres"]),
];

/// Where Docker's parent cgroup keeps the CPU time of all containers, with the unit of its
/// figure in nanoseconds (cgroup v1 `cpuacct.usage`: ns; v2 `cpu.stat` `usage_usec`: µs).
const CONTAINER_CGROUPS: &[(&str, f64)] = &[
    ("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage", 1.0),
    ("/sys/fs/cgroup/cpu,cpuacct/docker/cpuacct.usage", 1.0),
    ("/sys/fs/cgroup/docker/cpu.stat", 1000.0),
];

/// Cores one of the platform's processes kept busy.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessCpu {
    /// `api`, `worker docker`, ...
    pub name: String,
    pub pid: u32,
    pub cores: f64,
}

/// Cores a service (several processes) kept busy.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceCpu {
    pub name: String,
    pub cores: f64,
}

/// CPU use over a phase, in cores.
#[derive(Debug, Clone, Serialize)]
pub struct CpuUsage {
    pub seconds: f64,
    /// The whole machine.
    pub machine_cores: Option<f64>,
    /// The api and the workers.
    pub processes: Vec<ProcessCpu>,
    /// The benchmark client itself.
    pub bench_cores: Option<f64>,
    /// Every Docker container on the machine (runc processes, or runsc's sandbox and gofer).
    pub containers_cores: Option<f64>,
    pub services: Vec<ServiceCpu>,
    /// The machine minus everything above.
    pub rest_cores: Option<f64>,
}

/// CPU times at the start of a phase.
#[derive(Debug, Clone)]
pub struct CpuMark {
    at: Instant,
    machine: Option<u64>,
    processes: Vec<Option<u64>>,
    own: Option<u64>,
    containers_ns: Option<f64>,
    /// pid → (service index, ticks).
    services: HashMap<u32, (usize, u64)>,
}

/// Reads the CPU times; one per run.
#[derive(Debug, Clone)]
pub struct CpuMeter {
    processes: Vec<Process>,
    ticks_per_s: f64,
}

impl CpuMeter {
    /// A meter of the platform's `processes`; the tick rate comes from `getconf CLK_TCK`
    /// (100 if it cannot be asked).
    pub fn new(processes: Vec<Process>) -> Self {
        let ticks_per_s = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .filter(|&ticks: &f64| ticks > 0.0)
            .unwrap_or(100.0);
        Self {
            processes,
            ticks_per_s,
        }
    }

    /// The times now.
    pub fn mark(&self) -> CpuMark {
        CpuMark {
            at: Instant::now(),
            machine: machine_busy_ticks(),
            processes: self
                .processes
                .iter()
                .map(|p| procs::process_ticks(&p.pid.to_string()))
                .collect(),
            own: procs::process_ticks("self"),
            containers_ns: containers_ns(),
            services: service_ticks(),
        }
    }

    /// Cores used since `start`.
    pub fn since(&self, start: &CpuMark) -> CpuUsage {
        let end = self.mark();
        let seconds = end.at.duration_since(start.at).as_secs_f64();
        let per_second = |ticks: u64| ticks as f64 / self.ticks_per_s / seconds;
        let cores = |from: Option<u64>, to: Option<u64>| -> Option<f64> {
            let ticks = to?.checked_sub(from?)?;
            (seconds > 0.0).then(|| per_second(ticks))
        };
        let processes: Vec<ProcessCpu> = self
            .processes
            .iter()
            .zip(start.processes.iter().zip(&end.processes))
            .filter_map(|(p, (&from, &to))| {
                Some(ProcessCpu {
                    name: p.label(),
                    pid: p.pid,
                    cores: cores(from, to)?,
                })
            })
            .collect();
        // A service process that started during the phase spent all its time in it.
        let mut service_ticks = vec![0u64; SERVICES.len()];
        for (pid, (service, ticks)) in &end.services {
            let before = start.services.get(pid).map_or(0, |(_, t)| *t);
            service_ticks[*service] += ticks.saturating_sub(before);
        }
        let services: Vec<ServiceCpu> = SERVICES
            .iter()
            .zip(service_ticks)
            .filter(|_| seconds > 0.0)
            .map(|((name, _), ticks)| ServiceCpu {
                name: (*name).to_owned(),
                cores: per_second(ticks),
            })
            .collect();
        let containers_cores = match (start.containers_ns, end.containers_ns) {
            (Some(from), Some(to)) if seconds > 0.0 && to >= from => {
                Some((to - from) / 1e9 / seconds)
            }
            _ => None,
        };
        let machine_cores = cores(start.machine, end.machine);
        let bench_cores = cores(start.own, end.own);
        let rest_cores = machine_cores.map(|machine| {
            let known = processes.iter().map(|p| p.cores).sum::<f64>()
                + bench_cores.unwrap_or(0.0)
                + containers_cores.unwrap_or(0.0)
                + services.iter().map(|s| s.cores).sum::<f64>();
            (machine - known).max(0.0)
        });
        CpuUsage {
            seconds,
            machine_cores,
            processes,
            bench_cores,
            containers_cores,
            services,
            rest_cores,
        }
    }
}

impl CpuUsage {
    /// The use over several phases, as one: each figure the phases' mean weighted by their
    /// seconds, over the phases that have it (processes by name, services by name); `None`
    /// for no phase.
    pub fn combined(phases: &[CpuUsage]) -> Option<CpuUsage> {
        let first = phases.first()?;
        let seconds: f64 = phases.iter().map(|p| p.seconds).sum();
        let mean = |figure: &dyn Fn(&CpuUsage) -> Option<f64>| -> Option<f64> {
            let (weighted, weight) = phases
                .iter()
                .filter_map(|p| figure(p).map(|cores| (cores * p.seconds, p.seconds)))
                .fold((0.0, 0.0), |(a, b), (c, d)| (a + c, b + d));
            (weight > 0.0).then(|| weighted / weight)
        };
        let process_cores = |name: &str| {
            mean(&|p: &CpuUsage| {
                p.processes
                    .iter()
                    .find(|process| process.name == name)
                    .map(|process| process.cores)
            })
        };
        let service_cores = |name: &str| {
            mean(&|p: &CpuUsage| {
                p.services
                    .iter()
                    .find(|service| service.name == name)
                    .map(|service| service.cores)
            })
        };
        Some(CpuUsage {
            seconds,
            machine_cores: mean(&|p| p.machine_cores),
            processes: first
                .processes
                .iter()
                .filter_map(|process| {
                    Some(ProcessCpu {
                        name: process.name.clone(),
                        pid: process.pid,
                        cores: process_cores(&process.name)?,
                    })
                })
                .collect(),
            bench_cores: mean(&|p| p.bench_cores),
            containers_cores: mean(&|p| p.containers_cores),
            services: first
                .services
                .iter()
                .filter_map(|service| {
                    Some(ServiceCpu {
                        name: service.name.clone(),
                        cores: service_cores(&service.name)?,
                    })
                })
                .collect(),
            rest_cores: mean(&|p| p.rest_cores),
        })
    }
}

/// Busy ticks of the whole machine (all CPUs): the first line of /proc/stat without idle and
/// iowait (guest time is already in user).
fn machine_busy_ticks() -> Option<u64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let idle = values.get(3)? + values.get(4)?;
    Some(values.iter().sum::<u64>() - idle)
}

/// CPU time of all Docker containers so far, in ns, from the first cgroup file that exists.
fn containers_ns() -> Option<f64> {
    CONTAINER_CGROUPS.iter().find_map(|(path, ns_per_unit)| {
        let text = fs::read_to_string(path).ok()?;
        let value: f64 = if path.ends_with("cpu.stat") {
            text.lines()
                .find_map(|line| line.strip_prefix("usage_usec "))?
                .trim()
                .parse()
                .ok()?
        } else {
            text.trim().parse().ok()?
        };
        Some(value * ns_per_unit)
    })
}

/// Ticks of every process of the named services.
fn service_ticks() -> HashMap<u32, (usize, u64)> {
    procs::all_processes()
        .into_iter()
        .filter_map(|(pid, comm)| {
            let service = SERVICES
                .iter()
                .position(|(_, prefixes)| prefixes.iter().any(|p| comm.starts_with(p)))?;
            Some((pid, (service, procs::process_ticks(&pid.to_string())?)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_phase() {
        let meter = CpuMeter::new(procs::discover(Some(std::process::id()), &[0]));
        let mark = meter.mark();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert_ne!(x, 1);
        let usage = meter.since(&mark);
        assert!(usage.machine_cores.is_some());
        assert_eq!(usage.services.len(), SERVICES.len());
        assert!(machine_busy_ticks().is_some());
    }

    fn usage(seconds: f64, api: f64, bench: Option<f64>) -> CpuUsage {
        CpuUsage {
            seconds,
            machine_cores: Some(api * 2.0),
            processes: vec![ProcessCpu {
                name: "api".into(),
                pid: 1,
                cores: api,
            }],
            bench_cores: bench,
            containers_cores: None,
            services: vec![ServiceCpu {
                name: "Postgres".into(),
                cores: api / 2.0,
            }],
            rest_cores: Some(0.0),
        }
    }

    #[test]
    fn phases_combine_weighted_by_their_seconds() {
        let both = CpuUsage::combined(&[usage(1.0, 0.4, Some(0.1)), usage(3.0, 0.8, None)])
            .expect("two phases");
        assert_eq!(both.seconds, 4.0);
        assert!((both.processes[0].cores - 0.7).abs() < 1e-9);
        assert!((both.machine_cores.unwrap() - 1.4).abs() < 1e-9);
        assert!((both.services[0].cores - 0.35).abs() < 1e-9);
        assert_eq!(both.bench_cores, Some(0.1), "only the phase that has it");
        assert_eq!(both.containers_cores, None);
        assert!(CpuUsage::combined(&[]).is_none());
    }
}
