//! The api and worker processes as /proc shows them: found by name or pid, their memory from
//! /proc/<pid>/status (the peak resident set, VmHWM, and the current one, VmRSS), and CPU
//! ticks from /proc/<pid>/stat for the `cpu` module.

use serde::Serialize;
use std::fs;

/// A process of the platform.
#[derive(Debug, Clone, Serialize)]
pub struct Process {
    /// `api` or `worker`.
    pub role: String,
    pub pid: u32,
    /// A worker's `--runtime` / WORKER_RUNTIME.
    pub runtime: Option<String>,
    /// /proc/<pid>/exe.
    pub exe: Option<String>,
}

/// A memory reading of one process.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    #[serde(flatten)]
    pub process: Process,
    /// None when the process was gone.
    pub vm_hwm_kb: Option<u64>,
    pub vm_rss_kb: Option<u64>,
}

/// The processes to watch: the given pids, or what /proc holds under the names `api` and
/// `worker` for the roles without one.
pub fn discover(api_pid: Option<u32>, worker_pids: &[u32]) -> Vec<Process> {
    let mut found: Vec<Process> = api_pid
        .into_iter()
        .map(|pid| describe("api", pid))
        .chain(worker_pids.iter().map(|&pid| describe("worker", pid)))
        .collect();
    let scan_api = api_pid.is_none();
    let scan_workers = worker_pids.is_empty();
    if !(scan_api || scan_workers) {
        return found;
    }
    let mut all = all_processes();
    all.sort_unstable();
    for (pid, comm) in all {
        match comm.as_str() {
            "api" if scan_api => found.push(describe("api", pid)),
            "worker" if scan_workers => found.push(describe("worker", pid)),
            _ => {}
        }
    }
    found
}

impl Process {
    /// `api`, `worker docker`, ...
    pub fn label(&self) -> String {
        match &self.runtime {
            Some(runtime) => format!("{} {runtime}", self.role),
            None => self.role.clone(),
        }
    }
}

fn describe(role: &str, pid: u32) -> Process {
    Process {
        role: role.to_owned(),
        pid,
        runtime: (role == "worker").then(|| worker_runtime(pid)).flatten(),
        exe: fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .map(|path| path.display().to_string()),
    }
}

/// `--runtime X` or `--runtime=X` on the command line, else WORKER_RUNTIME in the environment.
fn worker_runtime(pid: u32) -> Option<String> {
    let split = |bytes: Vec<u8>| -> Vec<String> {
        bytes
            .split(|&b| b == 0)
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect()
    };
    let args = split(fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default());
    let from_args = args.iter().enumerate().find_map(|(i, arg)| {
        if arg == "--runtime" {
            args.get(i + 1).cloned()
        } else {
            arg.strip_prefix("--runtime=").map(str::to_owned)
        }
    });
    from_args.or_else(|| {
        split(fs::read(format!("/proc/{pid}/environ")).unwrap_or_default())
            .into_iter()
            .find_map(|var| var.strip_prefix("WORKER_RUNTIME=").map(str::to_owned))
    })
}

/// Reads VmHWM and VmRSS of each process now.
pub fn sample(processes: &[Process]) -> Vec<Memory> {
    processes
        .iter()
        .map(|process| {
            let status =
                fs::read_to_string(format!("/proc/{}/status", process.pid)).unwrap_or_default();
            Memory {
                process: process.clone(),
                vm_hwm_kb: status_kb(&status, "VmHWM:"),
                vm_rss_kb: status_kb(&status, "VmRSS:"),
            }
        })
        .collect()
}

/// The value of a `Name:   1234 kB` line.
fn status_kb(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// User plus system CPU time of a process (`self` for this one), in clock ticks: fields 14
/// and 15 of /proc/<pid>/stat, counted after the command name, which may hold spaces.
pub fn process_ticks(pid: &str) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Every pid in /proc with its `comm`.
pub fn all_processes() -> Vec<(u32, String)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            Some((pid, comm.trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_fields() {
        let status = "Name:\tapi\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kb(status, "VmHWM:"), Some(20480));
        assert_eq!(status_kb(status, "VmRSS:"), Some(10240));
        assert_eq!(status_kb(status, "VmSwap:"), None);
    }

    #[test]
    fn reads_cpu_ticks() {
        assert!(process_ticks("self").is_some());
        assert!(
            all_processes()
                .iter()
                .any(|(pid, _)| *pid == std::process::id())
        );
    }

    #[test]
    fn samples_this_process() {
        let me = describe("api", std::process::id());
        let memory = sample(&[me]);
        assert!(memory[0].vm_hwm_kb.unwrap() >= memory[0].vm_rss_kb.unwrap());
    }
}
