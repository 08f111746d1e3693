//! Facts about the machine and the checkout the numbers were taken on.

use serde::Serialize;
use std::fs;
use std::process::Command;

/// Where and when the benchmark ran.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPUs this process may run on (what `nproc` prints).
    pub nproc: usize,
    pub memory_mb: Option<u64>,
    pub cpu_model: Option<String>,
    pub kernel: Option<String>,
    /// UTC, RFC 3339.
    pub date: String,
    /// `git rev-parse --short HEAD`.
    pub git_commit: Option<String>,
    /// Uncommitted changes to tracked files (`git status --porcelain -uno`).
    pub git_dirty: Option<bool>,
    pub docker_version: Option<String>,
    pub runsc_version: Option<String>,
    /// /proc/loadavg when the run started: other work on the machine shows here.
    pub load_average: Option<String>,
}

impl Machine {
    /// Reads /proc and asks git, docker and runsc.
    pub fn probe() -> Self {
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Self {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_mb: meminfo
                .lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
                .map(|kb| kb / 1024),
            cpu_model: cpuinfo
                .lines()
                .find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    (key.trim() == "model name").then(|| value.trim().to_owned())
                })
                .filter(|model| !model.is_empty()),
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|k| k.trim().to_owned()),
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            git_commit: output("git", &["rev-parse", "--short", "HEAD"]),
            git_dirty: Command::new("git")
                .args(["status", "--porcelain", "-uno"])
                .output()
                .ok()
                .filter(|out| out.status.success())
                .map(|out| !out.stdout.is_empty()),
            docker_version: output("docker", &["version", "--format", "{{.Server.Version}}"]),
            runsc_version: output("runsc", &["--version"]),
            load_average: fs::read_to_string("/proc/loadavg")
                .ok()
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
        }
    }

    /// One line for the report's header.
    pub fn line(&self) -> String {
        let or = |value: &Option<String>| value.clone().unwrap_or_else(|| "?".to_owned());
        format!(
            "{} CPUs ({}), {} MB RAM, Linux {}, docker {}, {}; commit {}{}; {}; load average \
             at start {}",
            self.nproc,
            or(&self.cpu_model),
            self.memory_mb.map_or("?".to_owned(), |mb| mb.to_string()),
            or(&self.kernel),
            or(&self.docker_version),
            or(&self.runsc_version),
            or(&self.git_commit),
            if self.git_dirty == Some(true) {
                " (with uncommitted changes)"
            } else {
                ""
            },
            self.date,
            or(&self.load_average)
        )
    }
}

/// The first line of a command's standard output, when it succeeds.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|line| line.trim().to_owned())
        .filter(|line| !line.is_empty())
}
