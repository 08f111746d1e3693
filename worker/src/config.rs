//! The worker's settings: every one is a flag and an environment variable (`worker --help`).

use clap::Parser;
use common::Runtime;
use common::broker::BrokerSettings;
use common::telemetry::LogFormat;
use std::net::SocketAddr;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "worker",
    version,
    about = "Runs invocation jobs in sandboxed containers"
)]
pub struct Config {
    /// Which queue to consume and how to sandbox: runc (docker) or runsc (gvisor).
    #[arg(long, env = "WORKER_RUNTIME", value_enum)]
    pub runtime: Runtime,

    /// Name of this worker in replies, metrics and container labels; the hostname by default.
    #[arg(long, env = "WORKER_ID")]
    pub worker_id: Option<String>,

    /// Name of the machine (node) this worker runs on, in `faas_worker_info`, so that metrics
    /// add up per node; the hostname by default (in a container, set it to the host's: Swarm's
    /// `{{.Node.Hostname}}`).
    #[arg(long, env = "NODE_ID")]
    pub node_id: Option<String>,

    /// Jobs taken from the queue at once (the AMQP prefetch). By default as many as
    /// 64 MB containers fit in WORKER_MEMORY_MB (at most MAX_CONTAINERS and 1000): what
    /// bounds the calls that run is the memory budget, and a job with no room goes back to
    /// the queue after ROOM_WAIT_MS.
    #[arg(long, env = "WORKER_CONCURRENCY")]
    pub concurrency: Option<u16>,

    /// Memory budget of this worker's containers in MiB: the sum of their `memory_mb`, busy,
    /// warm and prewarmed. By default 75% of the host's memory; set it when several workers
    /// share a host.
    #[arg(long, env = "WORKER_MEMORY_MB")]
    pub memory_mb: Option<u64>,

    /// Milliseconds a job that finds no room waits for some before it goes back to the queue,
    /// for a worker with room (or this one, later).
    #[arg(long, env = "ROOM_WAIT_MS", default_value_t = 1_000)]
    pub room_wait_ms: u64,

    /// Largest job message accepted, in bytes (code, env and event together); a larger one is
    /// dropped with an error in the log.
    #[arg(long, env = "MAX_JOB_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_job_bytes: usize,

    #[command(flatten)]
    pub broker: BrokerSettings,

    /// Docker daemon to run containers on (unix socket path or URL); DOCKER_HOST's default.
    #[arg(
        long,
        env = "DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    pub docker_host: String,

    /// Name of the gVisor runtime in the Docker daemon's configuration.
    #[arg(long, env = "GVISOR_RUNTIME", default_value = "runsc")]
    pub gvisor_runtime: String,

    /// Image that runs Python functions.
    #[arg(long, env = "PYTHON_IMAGE", default_value = "python-base")]
    pub python_image: String,

    /// Image that runs JavaScript functions.
    #[arg(long, env = "NODE_IMAGE", default_value = "nodejs-base")]
    pub node_image: String,

    /// Pulls the runtime and build images that this node's Docker lacks from their registry at
    /// start (the images are then named `registry/name:tag`): for clusters whose nodes share a
    /// registry rather than a build (Swarm). Off, a missing runtime image stops the worker.
    #[arg(long, env = "PULL_IMAGES", default_value_t = false, action = clap::ArgAction::Set)]
    pub pull_images: bool,

    /// Seconds an idle warm container is kept before it is removed.
    #[arg(long, env = "IDLE_TTL_SECS", default_value_t = 300)]
    pub idle_ttl_secs: u64,

    /// Containers this worker keeps at most (busy, warm and stem cells), besides the memory
    /// budget; a new one over either evicts least recently used idle containers, or waits.
    #[arg(long, env = "MAX_CONTAINERS", default_value_t = 512)]
    pub max_containers: usize,

    /// Prewarmed containers kept ready per language, bound to a function by its first call.
    #[arg(long, env = "STEM_CELLS", default_value_t = 4)]
    pub stem_cells: usize,

    /// Memory of stem cells (MiB); functions with another `memory_mb` start their own container.
    #[arg(long, env = "STEM_CELL_MEMORY_MB", default_value_t = 128)]
    pub stem_cell_memory_mb: u32,

    /// Stem cells kept per popular dependency set (two cold starts within ten minutes), with
    /// its artifact mounted; 0 turns them off.
    #[arg(long, env = "DEPS_STEM_CELLS", default_value_t = 1)]
    pub deps_stem_cells: usize,

    /// How many popular dependency sets get stem cells, the most demanded first.
    #[arg(long, env = "DEPS_STEM_SETS", default_value_t = 4)]
    pub deps_stem_sets: usize,

    /// Milliseconds a call whose function's containers are all busy waits at least for one of
    /// them before it starts another (0: no floor). Beyond it, a call waits for its turn on
    /// them as long as that is shorter than a container start (measured here).
    #[arg(long, env = "WARM_WAIT_MS", default_value_t = 25)]
    pub warm_wait_ms: u64,

    /// Milliseconds a job may wait in this worker's home queue (the jobs of the functions whose
    /// home it is) for a free delivery slot before it spills to the runtime's shared queue,
    /// which any worker takes. 0: it spills at once when the worker has no slot free or is
    /// gone. Over 0, a job routed to the home of a killed worker in the last HOME_WAIT_MS
    /// before the broker deletes that queue (15 s after) is lost, and its caller waits for its
    /// deadline.
    #[arg(long, env = "HOME_WAIT_MS", default_value_t = 0)]
    pub home_wait_ms: u64,

    /// Containers created and started at once; calls beyond it queue for a start slot.
    #[arg(long, env = "MAX_STARTING", default_value_t = 4)]
    pub max_starting: usize,

    /// Longest time a started container may take to load the function's code (ms).
    #[arg(long, env = "INIT_TIMEOUT_MS", default_value_t = 10_000)]
    pub init_timeout_ms: u64,

    /// Largest number of processes and threads in one function container.
    #[arg(long, env = "CONTAINER_PIDS_LIMIT", default_value_t = 128)]
    pub pids_limit: i64,

    /// CPUs one function container may use.
    #[arg(long, env = "CONTAINER_CPUS", default_value_t = 1.0)]
    pub cpus: f64,

    /// Size of the writable /tmp of a function container (MiB).
    #[arg(long, env = "CONTAINER_TMP_MB", default_value_t = 64)]
    pub tmp_mb: u32,

    /// Seconds in-flight jobs get to finish after SIGTERM before their containers are removed.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,

    /// Address of the Prometheus listener (path /metrics).
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9101")]
    pub metrics_addr: SocketAddr,

    /// How log lines are written.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub deps: DepsSettings,
}

/// Dependencies: where artifacts come from, where they are cached, and how builds run.
#[derive(Debug, Clone, clap::Args)]
pub struct DepsSettings {
    /// The api, for dependency artifacts and build reports (`/internal/`).
    #[arg(long, env = "API_URL", default_value = "http://127.0.0.1:8000")]
    pub api_url: String,

    /// The api's WORKER_TOKEN. Unset: this worker builds nothing and cannot run functions
    /// with dependencies (their calls fail with `Runtime.DependenciesUnavailable`).
    #[arg(long, env = "WORKER_TOKEN", hide_env_values = true)]
    pub worker_token: Option<String>,

    /// Host directory of unpacked artifacts: each worker keeps its own subdirectory
    /// `<dir>/<worker id>` (one read-only directory per digest, bind-mounted into its function
    /// containers), so that one worker's eviction never deletes what another's containers
    /// mount; it is removed when the worker stops. A worker in a container must see it at the
    /// same path as the Docker host (compose mounts it so).
    #[arg(long, env = "DEPS_CACHE_DIR", default_value = "/var/lib/faas/deps")]
    pub cache_dir: std::path::PathBuf,

    /// Megabytes of unpacked artifacts this worker keeps (in its own directory); least
    /// recently used ones no container uses go.
    #[arg(long, env = "DEPS_CACHE_MB", default_value_t = 2048)]
    pub cache_mb: u64,

    /// Whether this worker takes build jobs (`{prefix}faas.build`).
    #[arg(long, env = "BUILDS", default_value_t = true, action = clap::ArgAction::Set)]
    pub builds: bool,

    /// Builds run at once.
    #[arg(long, env = "BUILD_CONCURRENCY", default_value_t = 1)]
    pub build_concurrency: u16,

    /// Seconds a build may run before it is killed and failed.
    #[arg(long, env = "BUILD_TIMEOUT_SECS", default_value_t = 300)]
    pub build_timeout_secs: u64,

    /// Most megabytes a build's output may take unpacked (Lambda's 250 MB); also its /tmp.
    #[arg(long, env = "BUILD_MAX_MB", default_value_t = 250)]
    pub build_max_mb: u64,

    /// Memory of a build container (MiB); its /tmp, which holds the output, counts in it.
    #[arg(long, env = "BUILD_MEMORY_MB", default_value_t = 1024)]
    pub build_memory_mb: u64,

    /// CPUs of a build container.
    #[arg(long, env = "BUILD_CPUS", default_value_t = 1.0)]
    pub build_cpus: f64,

    /// Python package index for builds (pip's --index-url); unset: pip's default.
    #[arg(long, env = "BUILD_PIP_INDEX_URL")]
    pub pip_index_url: Option<String>,

    /// npm registry for builds; unset: npm's default.
    #[arg(long, env = "BUILD_NPM_REGISTRY")]
    pub npm_registry: Option<String>,

    /// A CA bundle file on this host, copied into build containers, for mirrors and
    /// intercepting proxies (e.g. /etc/ssl/certs/ca-certificates.crt).
    #[arg(long, env = "BUILD_CA_BUNDLE")]
    pub ca_bundle: Option<std::path::PathBuf>,

    /// Let npm run packages' install scripts (off: `--ignore-scripts`).
    #[arg(long, env = "BUILD_NPM_SCRIPTS", default_value_t = false, action = clap::ArgAction::Set)]
    pub npm_scripts: bool,

    /// OCI runtime of build containers: gVisor with its own network stack, as scripts/setup.sh
    /// registers it (the `runsc` of functions has no network). A worker whose Docker lacks it
    /// takes no builds; `runc` only when set so.
    #[arg(long, env = "BUILD_OCI_RUNTIME", default_value = "runsc-build")]
    pub build_oci_runtime: String,

    /// Docker network of build containers, whose firewall lets them reach the package
    /// registries only (scripts/build-network.sh makes both). A worker whose Docker lacks it
    /// takes no builds.
    #[arg(long, env = "BUILD_NETWORK", default_value = "faas-build")]
    pub build_network: String,

    /// Image that builds Python dependencies.
    #[arg(long, env = "PYTHON_BUILD_IMAGE", default_value = "python-build")]
    pub python_build_image: String,

    /// Image that builds JavaScript dependencies.
    #[arg(long, env = "NODE_BUILD_IMAGE", default_value = "nodejs-build")]
    pub node_build_image: String,
}

impl DepsSettings {
    /// The worker token, if set and non-empty.
    pub fn token(&self) -> Option<&str> {
        self.worker_token
            .as_deref()
            .filter(|token| !token.is_empty())
    }
}

/// This host's name, or `worker-<pid>` when it has none.
fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("worker-{}", std::process::id()))
}

/// The smallest `memory_mb` a function can have: the default prefetch is how many of those
/// fit in the budget.
const SMALLEST_FUNCTION_MB: u64 = 64;
/// Share of the host's memory the budget takes by default; the rest is for dockerd, the
/// worker and whatever else runs there.
const DEFAULT_BUDGET_SHARE: f64 = 0.75;

impl Config {
    pub fn pool_settings(&self) -> crate::pool::PoolSettings {
        crate::pool::PoolSettings {
            idle_ttl: std::time::Duration::from_secs(self.idle_ttl_secs),
            memory_budget_mb: self.resolved_memory_mb(),
            max_containers: self.max_containers,
            stem_cells: self.stem_cells,
            stem_memory_mb: self.stem_cell_memory_mb,
            deps_stem_cells: self.deps_stem_cells,
            deps_stem_sets: self.deps_stem_sets,
            max_starting: self.max_starting,
            warm_wait: std::time::Duration::from_millis(self.warm_wait_ms),
            room_wait: std::time::Duration::from_millis(self.room_wait_ms),
            init_timeout: std::time::Duration::from_millis(self.init_timeout_ms),
            runtime_label: self.runtime.as_str(),
        }
    }

    /// `memory_mb`, or 75% of the host's memory.
    pub fn resolved_memory_mb(&self) -> u64 {
        self.memory_mb.unwrap_or_else(|| {
            let total = std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|text| mem_total_mb(&text))
                .unwrap_or(4096);
            (total as f64 * DEFAULT_BUDGET_SHARE) as u64
        })
    }

    /// `concurrency`, or what the memory budget holds of the smallest functions.
    pub fn resolved_prefetch(&self) -> u16 {
        self.concurrency.unwrap_or_else(|| {
            let fits = self.resolved_memory_mb() / SMALLEST_FUNCTION_MB;
            fits.clamp(1, self.max_containers.clamp(1, 1000) as u64) as u16
        })
    }

    /// This worker's own dependency cache: `<DEPS_CACHE_DIR>/<worker id>`, the id made a safe
    /// single path segment.
    pub fn worker_cache_dir(&self) -> std::path::PathBuf {
        self.deps
            .cache_dir
            .join(cache_segment(&self.resolved_worker_id()))
    }

    /// `worker_id`, or the hostname when none was set.
    pub fn resolved_worker_id(&self) -> String {
        self.worker_id.clone().unwrap_or_else(hostname)
    }

    /// `node_id`, or the hostname when none was set.
    pub fn resolved_node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(hostname)
    }
}

/// `MemTotal` of /proc/meminfo, in MiB.
fn mem_total_mb(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// `id` as one directory name: letters, digits, `.`, `_` and `-` kept, anything else `_`; never
/// empty, `.` or `..` (a worker id is a setting, and may be anything).
fn cache_segment(id: &str) -> String {
    let segment: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match segment.as_str() {
        "" | "." | ".." => format!("worker-{}", segment.len()),
        _ => segment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_caches_in_a_directory_of_its_own_named_safely() {
        assert_eq!(cache_segment("test-abc.docker"), "test-abc.docker");
        assert_eq!(cache_segment("../etc"), ".._etc");
        assert_eq!(cache_segment("a/b c"), "a_b_c");
        assert_eq!(cache_segment(""), "worker-0");
        assert_eq!(cache_segment(".."), "worker-2");
        let mut config = Config::parse_from(["worker", "--runtime", "docker"]);
        config.worker_id = Some("w1".into());
        config.deps.cache_dir = "/var/lib/faas/deps".into();
        assert_eq!(
            config.worker_cache_dir(),
            std::path::PathBuf::from("/var/lib/faas/deps/w1")
        );
    }

    #[test]
    fn the_budget_and_the_prefetch_follow_the_hosts_memory_unless_set() {
        assert_eq!(
            mem_total_mb("MemTotal:       24684096 kB\nMemFree: 1 kB\n"),
            Some(24105)
        );
        let mut config = Config::parse_from(["worker", "--runtime", "docker"]);
        config.memory_mb = Some(2048);
        assert_eq!(config.resolved_prefetch(), 32);
        config.memory_mb = Some(1 << 20);
        assert_eq!(config.resolved_prefetch(), 512, "at most MAX_CONTAINERS");
        config.concurrency = Some(4);
        assert_eq!(config.resolved_prefetch(), 4);
        config.memory_mb = None;
        assert!(config.resolved_memory_mb() > 0);
    }
}
