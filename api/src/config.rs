//! The api's settings: every one is a flag and an environment variable, so `api --help` lists them.

use clap::Parser;
use common::broker::BrokerSettings;
use common::telemetry::LogFormat;
use std::net::SocketAddr;

#[derive(Debug, Clone, Parser)]
#[command(name = "api", version, about = "HTTP API of the serverless platform")]
pub struct Config {
    /// Postgres holding functions and invocation records.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,

    /// Largest number of Postgres connections the api keeps.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 16)]
    pub database_pool_size: usize,

    #[command(flatten)]
    pub broker: BrokerSettings,

    /// Address of the public HTTP API.
    #[arg(long, env = "API_ADDR", default_value = "0.0.0.0:8000")]
    pub api_addr: SocketAddr,

    /// Address of the Prometheus listener (path /metrics), kept off the public port.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9100")]
    pub metrics_addr: SocketAddr,

    /// Largest accepted function source, in bytes (larger: 413).
    #[arg(long, env = "MAX_CODE_BYTES", default_value_t = 1024 * 1024)]
    pub max_code_bytes: usize,

    /// Largest accepted invocation body, in bytes (larger: 413); 6 MiB as Lambda's sync limit.
    #[arg(long, env = "MAX_EVENT_BYTES", default_value_t = 6 * 1024 * 1024)]
    pub max_event_bytes: usize,

    /// Time a job may wait in the queue and spend starting its container, on top of the
    /// function's own timeout, before the api gives up on it (ms).
    #[arg(long, env = "INVOKE_OVERHEAD_MS", default_value_t = 15_000)]
    pub invoke_overhead_ms: u64,

    /// Requests the api serves at once; over it a request is refused at once with 503
    /// `overloaded` and `Retry-After: 1` (the health probes are exempt).
    #[arg(long, env = "MAX_INFLIGHT", default_value_t = 1024)]
    pub max_inflight: usize,

    /// Longest time a client may take to send a request's headers (s, at least 1); the
    /// connection is closed after it. Also how long an idle keep-alive connection stays open.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,

    /// Longest wait for the next piece of a request body (s, at least 1); over it the request
    /// gets 408 and the connection is closed.
    #[arg(long, env = "BODY_READ_TIMEOUT_SECS", default_value_t = 30)]
    pub body_read_timeout_secs: u64,

    /// Days invocation records are kept; older ones are deleted in the background. 0 keeps
    /// them forever.
    #[arg(long, env = "RECORD_RETENTION_DAYS", default_value_t = 7)]
    pub record_retention_days: u32,

    /// Seconds between two passes that delete expired invocation records.
    #[arg(long, env = "RETENTION_INTERVAL_SECS", default_value_t = 3600)]
    pub retention_interval_secs: u64,

    /// Seconds a cached function definition is trusted before it is read again: a safety net
    /// under the change events, which keep the caches right in the normal course.
    #[arg(long, env = "FUNCTION_CACHE_TTL_SECS", default_value_t = 10)]
    pub function_cache_ttl_secs: u64,

    /// Seconds after which a counter or histogram series nothing updated is dropped from
    /// /metrics (those of deleted functions); 0 keeps every series forever.
    #[arg(long, env = "METRICS_IDLE_TIMEOUT_SECS", default_value_t = 3600)]
    pub metrics_idle_timeout_secs: u64,

    /// How log lines are written.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}
