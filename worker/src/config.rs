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

    /// Jobs run at once (the AMQP prefetch); each runs in its own container.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,

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

    /// Seconds an idle warm container is kept before it is removed.
    #[arg(long, env = "IDLE_TTL_SECS", default_value_t = 300)]
    pub idle_ttl_secs: u64,

    /// Containers this worker keeps at most (busy, warm and stem cells); a new one over the cap
    /// evicts the least recently used idle container, or waits for one to free up.
    #[arg(long, env = "MAX_CONTAINERS", default_value_t = 128)]
    pub max_containers: usize,

    /// Prewarmed containers kept ready per language, bound to a function by its first call.
    #[arg(long, env = "STEM_CELLS", default_value_t = 4)]
    pub stem_cells: usize,

    /// Memory of stem cells (MiB); functions with another `memory_mb` start their own container.
    #[arg(long, env = "STEM_CELL_MEMORY_MB", default_value_t = 128)]
    pub stem_cell_memory_mb: u32,

    /// Milliseconds a call whose function's containers are all busy waits for one of them
    /// before it starts another (0: never waits).
    #[arg(long, env = "WARM_WAIT_MS", default_value_t = 25)]
    pub warm_wait_ms: u64,

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
}

impl Config {
    pub fn pool_settings(&self) -> crate::pool::PoolSettings {
        crate::pool::PoolSettings {
            idle_ttl: std::time::Duration::from_secs(self.idle_ttl_secs),
            max_containers: self.max_containers,
            stem_cells: self.stem_cells,
            stem_memory_mb: self.stem_cell_memory_mb,
            max_starting: self.max_starting,
            warm_wait: std::time::Duration::from_millis(self.warm_wait_ms),
        }
    }

    /// `worker_id`, or the hostname when none was set.
    pub fn resolved_worker_id(&self) -> String {
        self.worker_id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| format!("worker-{}", std::process::id()))
        })
    }
}
