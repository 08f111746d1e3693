//! The api's settings: every one is a flag and an environment variable, so `api --help` lists them.

use clap::Parser;
use common::broker::BrokerSettings;
use common::telemetry::LogFormat;
use std::net::SocketAddr;

#[derive(Debug, Clone, Parser)]
#[command(name = "api", version, about = "HTTP API of the serverless platform")]
pub struct Config {
    /// Postgres holding functions and invocation records (or DATABASE_URL_FILE: the URL holds a
    /// password).
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
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

    /// Address of the functions' own origin: every function's HTTP trigger answers here at
    /// its `route` (`http://host:8080/hello`), and nothing else does. Functions may answer
    /// HTML and set cookies, so they never share an origin with the management api, `/docs`
    /// or the console.
    #[arg(long, env = "FUNCTIONS_ADDR", default_value = "0.0.0.0:8080")]
    pub functions_addr: SocketAddr,

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

    /// Invocation streams (`GET /invocations/stream`) one namespace may hold open on this api
    /// replica; one more is 429 `too_many_streams`. Streams hold no `MAX_INFLIGHT` permit.
    #[arg(long, env = "STREAM_CLIENTS", default_value_t = 32)]
    pub stream_clients: usize,

    /// Longest time a client may take to send a request's headers (s, at least 1); the
    /// connection is closed after it. Also how long an idle keep-alive connection stays open.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,

    /// Longest wait for the next piece of a request body (s, at least 1); over it the request
    /// gets 408 and the connection is closed.
    #[arg(long, env = "BODY_READ_TIMEOUT_SECS", default_value_t = 30)]
    pub body_read_timeout_secs: u64,

    /// Longest time a request's body may take to arrive whole (s, at least 1), however
    /// steadily its pieces come, counted from the end of its headers (which
    /// HEADER_READ_TIMEOUT_SECS bounds); over it the request gets 408 `body_timeout` and the
    /// connection is closed. It covers the request's receipt only, not the handler's work,
    /// which is bounded on its own (a call by its function's timeout, `?wait=true` by
    /// BUILD_WAIT_SECS). Package and artifact uploads must fit in it too.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 60)]
    pub request_timeout_secs: u64,

    /// Connections one client address (an IPv4 address, an IPv6 /64) may hold open at once
    /// (at least 1); one more is answered 503 `overloaded` and closed at once. Behind a proxy
    /// every client has the proxy's address: raise it there.
    #[arg(long, env = "MAX_CONNECTIONS_PER_PEER", default_value_t = 256)]
    pub max_connections_per_peer: usize,

    /// Days invocation records are kept; older ones are deleted in the background. 0 keeps
    /// them forever.
    #[arg(long, env = "RECORD_RETENTION_DAYS", default_value_t = 7)]
    pub record_retention_days: u32,

    /// Seconds between two passes that delete expired invocation records and unused
    /// artifacts.
    #[arg(long, env = "RETENTION_INTERVAL_SECS", default_value_t = 3600)]
    pub retention_interval_secs: u64,

    /// Seconds an artifact (a deployment package, or a dependency build's tree) that no
    /// function names any more is kept before a retention pass deletes it, with the finished
    /// builds no function names. Every package update stores a new artifact of up to 50 MB.
    #[arg(long, env = "ARTIFACT_GRACE_SECS", default_value_t = 3600)]
    pub artifact_grace_secs: u64,

    /// Seconds a cached function definition is trusted before it is read again: a safety net
    /// under the change events, which keep the caches right in the normal course.
    #[arg(long, env = "FUNCTION_CACHE_TTL_SECS", default_value_t = 10)]
    pub function_cache_ttl_secs: u64,

    /// Seconds after which a counter or histogram series nothing updated is dropped from
    /// /metrics (those of deleted functions); 0 keeps every series forever.
    #[arg(long, env = "METRICS_IDLE_TIMEOUT_SECS", default_value_t = 3600)]
    pub metrics_idle_timeout_secs: u64,

    /// Whether requests need an API key (`Authorization: Bearer …`). `disabled` puts every
    /// caller in namespace `default` with every scope: for local development and the seed's
    /// curl session only; the api warns at every start.
    #[arg(long, env = "AUTH", value_enum, default_value_t = AuthMode::Enabled)]
    pub auth: AuthMode,

    /// The bootstrap admin key: any string of at least 32 characters, kept only in memory (as
    /// a hash). Unset (or empty) and no admin key in the database: the api makes one at its
    /// first start and prints it once in its log.
    #[arg(long, env = "ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<Secret>,

    /// Seconds a verified key is trusted before its row is read again: a safety net under the
    /// revocation events, which reach every replica at once in the normal course.
    #[arg(long, env = "KEY_CACHE_TTL_SECS", default_value_t = 5)]
    pub key_cache_ttl_secs: u64,

    /// Seconds a web console session lasts after its sign-in (at least 60).
    #[arg(long, env = "CONSOLE_SESSION_TTL_SECS", default_value_t = 8 * 3600)]
    pub console_session_ttl_secs: u64,

    /// Marks the console's cookie `Secure` with the `__Host-` prefix: set it when browsers
    /// reach the api over TLS (a proxy in front), so that no other port or subdomain of the
    /// host can plant or read it.
    #[arg(long, env = "CONSOLE_SECURE_COOKIE", default_value_t = false, action = clap::ArgAction::Set)]
    pub console_secure_cookie: bool,

    /// The secret workers present (as a bearer token) to report builds and to upload and
    /// download dependency artifacts under `/internal/`; at least 32 characters. Unset: those
    /// routes refuse everyone, so no function with dependencies can be built.
    #[arg(long, env = "WORKER_TOKEN", hide_env_values = true)]
    pub worker_token: Option<Secret>,

    /// The most seconds `?wait=true` on a create or update waits for the build.
    #[arg(long, env = "BUILD_WAIT_SECS", default_value_t = 600)]
    pub build_wait_secs: u64,

    /// Dependency builds one namespace may have queued or building at once (at least 1). A save
    /// that needs a build beyond it succeeds; its build is held `pending` and queued when one
    /// of the namespace's builds ends, so that one namespace cannot hold everyone's builds
    /// behind its own on the single build queue.
    #[arg(long, env = "BUILD_NAMESPACE_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub build_namespace_concurrency: u32,

    /// Seconds of build time one namespace's builds may use in an hour: past it, its next
    /// builds are held `pending` until the hour's use falls under it. 0: no such quota.
    #[arg(long, env = "BUILD_NAMESPACE_SECONDS_PER_HOUR", default_value_t = 3600)]
    pub build_namespace_seconds_per_hour: u64,

    /// The largest dependency artifact (gzip'd tar, as stored) a worker may upload, in MB.
    #[arg(long, env = "ARTIFACT_MAX_MB", default_value_t = 250)]
    pub artifact_max_mb: u64,

    /// Seconds before the first retry of a failed async invocation; each next retry waits
    /// twice as long (1, 2, 4, 8, 16 s by default). One delay queue per retry on the broker.
    #[arg(long, env = "RETRY_BASE_SECS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub retry_base_secs: u64,
    /// Async jobs this api replica runs at once, shared fairly between namespaces (its
    /// prefetch on the async queue is twice this, to look past one namespace's backlog).
    /// Bounded so that a backlog of async calls cannot crowd the workers' queues ahead of sync
    /// calls. 0: this replica accepts async calls but runs none (other replicas do).
    #[arg(long, env = "ASYNC_CONCURRENCY", default_value_t = 32)]
    pub async_concurrency: u16,
    /// Largest accepted async invocation body, in bytes (larger: 413); Lambda takes 256 KiB.
    /// Async events are stored in Postgres until their invocation is deleted.
    #[arg(long, env = "MAX_ASYNC_EVENT_BYTES", default_value_t = 256 * 1024)]
    pub max_async_event_bytes: usize,
    /// Async invocations a namespace may have waiting or running (its `pending_async` quota
    /// may narrow it); `/execute_async` beyond it is 429 `quota_pending_async` (destinations
    /// and schedules are not refused). It bounds what
    /// one tenant's burst stores in Postgres and RabbitMQ, and how long others' calls queue
    /// behind it on a shared async queue.
    #[arg(long, env = "MAX_PENDING_ASYNC", default_value_t = 10_000, value_parser = clap::value_parser!(i64).range(1..))]
    pub max_pending_async: i64,
    /// Bytes of events one namespace's calls waiting for a reply may hold in the job queues,
    /// per api replica; a call over it is 429 `queue_share`, so that one namespace cannot fill
    /// QUEUE_MAX_BYTES (503 `overloaded` for everyone). Default: a quarter of QUEUE_MAX_BYTES.
    #[arg(long, env = "QUEUE_SHARE_BYTES")]
    pub queue_share_bytes: Option<u64>,
    /// Functions a namespace may hold, unless an admin sets its own `quotas.functions`
    /// (`PATCH /namespaces/{name}`); over it a create is 429 `quota_functions`.
    #[arg(long, env = "QUOTA_FUNCTIONS", default_value_t = 1000, value_parser = clap::value_parser!(i64).range(0..))]
    pub quota_functions: i64,
    /// Live keys a namespace may hold, unless it sets its own (429 `quota_keys`).
    #[arg(long, env = "QUOTA_KEYS", default_value_t = 100, value_parser = clap::value_parser!(i64).range(0..))]
    pub quota_keys: i64,
    /// Bytes of stored artifacts (packages, dependency builds) a namespace's functions may
    /// name, unless it sets its own (413 `quota_artifact_bytes`). Default 10 GiB.
    #[arg(long, env = "QUOTA_ARTIFACT_BYTES", default_value_t = 10 << 30, value_parser = clap::value_parser!(i64).range(0..))]
    pub quota_artifact_bytes: i64,
    /// Bytes of async results and logs a namespace's kept invocations may hold, unless it sets
    /// its own: over it `/execute_async` is 413 `quota_result_bytes`, and a result that would
    /// pass it is stored as an error saying so. Default 5 GiB.
    #[arg(long, env = "QUOTA_RESULT_BYTES", default_value_t = 5 << 30, value_parser = clap::value_parser!(i64).range(0..))]
    pub quota_result_bytes: i64,
    /// How log lines are written.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Whether the api asks for keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    Enabled,
    Disabled,
}

/// A setting that must not show up in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// The shortest `WORKER_TOKEN` accepted.
pub const MIN_WORKER_TOKEN_LEN: usize = 32;

impl Config {
    /// The platform's quotas, for namespaces that set none (`MAX_PENDING_ASYNC` is the pending
    /// one's).
    pub fn quota_defaults(&self) -> crate::domain::quota::QuotaDefaults {
        crate::domain::quota::QuotaDefaults {
            functions: self.quota_functions,
            keys: self.quota_keys,
            pending_async: self.max_pending_async,
            artifact_bytes: self.quota_artifact_bytes,
            result_bytes: self.quota_result_bytes,
        }
    }

    /// Each namespace's share of the builds.
    pub fn build_share(&self) -> crate::domain::build_share::BuildShare {
        crate::domain::build_share::BuildShare {
            concurrency: self.build_namespace_concurrency,
            seconds_per_hour: self.build_namespace_seconds_per_hour,
        }
    }

    /// The `WORKER_TOKEN` setting, if set and non-empty.
    pub fn worker_token(&self) -> Option<&str> {
        self.worker_token
            .as_ref()
            .map(|token| token.0.as_str())
            .filter(|token| !token.is_empty())
    }

    /// The `ADMIN_KEY` setting, if one is set (an empty value counts as none, as compose passes
    /// an unset variable).
    pub fn admin_key(&self) -> Option<&str> {
        self.admin_key
            .as_ref()
            .map(|key| key.0.as_str())
            .filter(|key| !key.is_empty())
    }
}
