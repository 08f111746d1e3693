//! The benchmark's settings: every one is a flag and an environment variable (`bench --help`).

use clap::{Parser, ValueEnum};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// A sandbox the platform runs functions in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// runc, through `POST /execute/{name}`.
    Docker,
    /// runsc, through `POST /execute_gvisor/{name}`.
    Gvisor,
}

impl Runtime {
    /// The name the api uses (`"docker"`, `"gvisor"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Gvisor => "gvisor",
        }
    }
}

/// One of the measurements; `--scenarios` picks a subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// 1: sequential calls of one warm function.
    Warm,
    /// 2: one function at `--concurrency` for `--duration-secs`.
    Throughput,
    /// 3: the first call of freshly created functions.
    Cold,
    /// 4: `--rr-functions` functions called round robin at `--concurrency`.
    RoundRobin,
    /// 5: one `docker run` per call, without the platform.
    Naive,
    /// 6: sequential calls of one warm function, alone and then beside `--noisy-slow-calls`
    /// calls of a slow function.
    NoisyNeighbour,
    /// 7: the same warm function through the api with auth on (`--api-url`, `--api-key`) and
    /// through one with `AUTH=disabled` (`--api-url-noauth`), interleaved; once per run, on
    /// the first of `--runtimes`.
    AuthOverhead,
    /// 8: one warm function through its HTTP trigger (`--route-prefix` + its route) and
    /// through `/execute/{name}`, interleaved; once per run, on the first of `--runtimes`.
    #[value(alias = "http")]
    HttpTrigger,
    /// 9: functions with dependencies: builds through the api, first calls with the artifact
    /// in the worker's cache and without, and warm calls beside the same function without
    /// dependencies; once per run, on docker. Not a default: it needs the workers set up for
    /// builds (`bench/run.sh` does) and reaches PyPI and npm.
    #[value(alias = "deps")]
    Dependencies,
    /// 10: async invocations on docker, once per run, after every other scenario: `POST
    /// /execute_async` latency and rate at `--concurrency`, the end-to-end rate of a burst of
    /// `--async-burst` calls, and how long a job waits when its docker worker is killed
    /// (SIGKILL) until a replacement runs it. Not a default: its last part kills the docker
    /// worker (`--docker-worker-pid`) and starts others (`--worker-bin`), as `bench/run.sh`
    /// sets up; without those it measures the first two parts only.
    #[value(alias = "async-invocations")]
    Async,
    /// 11: the warm function of scenario 1 called with nobody following the invocation stream
    /// and with `--followers` clients following `GET /invocations/stream`, interleaved; once
    /// per run, on the first of `--runtimes`, after scenario 7.
    #[value(alias = "stream")]
    Followers,
    /// 12: `--burst-calls` concurrent first calls of a function created just before, on each
    /// runtime, after its other scenarios.
    Burst,
}

/// An API key, kept out of `Debug` output, `--help` and the JSON results.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// The key itself, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl std::str::FromStr for ApiKey {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ApiKey(s.trim().to_owned()))
    }
}

impl Serialize for ApiKey {
    /// Only that a key was given.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

#[derive(Debug, Clone, Parser, Serialize)]
#[command(
    name = "bench",
    version,
    about = "Benchmarks a running api and its workers: warm latency, throughput, cold starts, \
             many functions, the one-docker-run-per-call floor, a fast function beside slow \
             ones, the cost of API keys and of HTTP triggers, dependencies, async invocations"
)]
pub struct Config {
    /// Base URL of the running api.
    #[arg(long, env = "BENCH_API_URL", default_value = "http://127.0.0.1:8000")]
    pub api_url: String,

    /// API key sent as `Authorization: Bearer <key>` on every request to `--api-url`; none by
    /// default (an api started with `AUTH=disabled`). The functions the run creates are in the
    /// key's namespace: an admin key (`ADMIN_KEY`) works, as namespace `default`.
    #[arg(long, env = "BENCH_API_KEY", hide_env_values = true)]
    pub api_key: Option<ApiKey>,

    /// Scenario 7: base URL of a second api over the same database, broker and queue prefix,
    /// started with `AUTH=disabled` (every caller is namespace `default` there, so the
    /// function names of the keyed api resolve to the same functions). No key is sent to it.
    #[arg(long, env = "BENCH_API_URL_NOAUTH")]
    pub api_url_noauth: Option<String>,

    /// Runtimes to measure, comma-separated, in order.
    #[arg(
        long,
        env = "BENCH_RUNTIMES",
        value_enum,
        value_delimiter = ',',
        default_value = "docker,gvisor"
    )]
    pub runtimes: Vec<Runtime>,

    /// Scenarios to run, comma-separated (by default all but `dependencies` and `async`).
    #[arg(
        long,
        env = "BENCH_SCENARIOS",
        value_enum,
        value_delimiter = ',',
        default_value = "warm,throughput,cold,round-robin,naive,noisy-neighbour,auth-overhead,\
                         http-trigger,followers,burst"
    )]
    pub scenarios: Vec<Scenario>,

    /// Scenario 1: sequential calls measured after the warm-up call.
    #[arg(long, env = "BENCH_WARM_CALLS", default_value_t = 500)]
    pub warm_calls: usize,

    /// Scenarios 2 and 4: seconds of the same load, unmeasured, after the warm-up rounds and
    /// before the measured period (scenarios 7 and 8 split it between their variants).
    #[arg(long, env = "BENCH_LOAD_WARMUP_SECS", default_value_t = 5.0)]
    pub load_warmup_secs: f64,

    /// Scenarios 1, 6, 7 and 8: seconds to wait after the warm-up calls before measuring (in 6
    /// only when that call was a cold start), so that the stem cell its cold start used is
    /// replaced (a container start that loads both cores) first.
    #[arg(long, env = "BENCH_WARM_SETTLE_SECS", default_value_t = 2.0)]
    pub warm_settle_secs: f64,

    /// Scenarios 2, 4, 7 and 8: calls in flight at once.
    #[arg(long, env = "BENCH_CONCURRENCY", default_value_t = 64)]
    pub concurrency: usize,

    /// Scenario 2: seconds of measured calls.
    #[arg(long, env = "BENCH_DURATION_SECS", default_value_t = 10.0)]
    pub duration_secs: f64,

    /// Scenarios 2, 4, 7 and 8: at most this many warm-up rounds (one call per slot, or per
    /// function); the warm-up stops after the first round without a cold start.
    #[arg(long, env = "BENCH_WARMUP_ROUNDS", default_value_t = 3)]
    pub warmup_rounds: usize,

    /// Scenario 3: fresh functions, each created and then called once.
    #[arg(long, env = "BENCH_COLD_FUNCTIONS", default_value_t = 30)]
    pub cold_functions: usize,

    /// Scenario 12: first calls of a fresh function sent at once.
    #[arg(long, env = "BENCH_BURST_CALLS", default_value_t = 64)]
    pub burst_calls: usize,

    /// Scenario 4: distinct functions called round robin.
    #[arg(long, env = "BENCH_RR_FUNCTIONS", default_value_t = 100)]
    pub rr_functions: usize,

    /// Scenario 4: seconds of measured calls.
    #[arg(long, env = "BENCH_RR_DURATION_SECS", default_value_t = 10.0)]
    pub rr_duration_secs: f64,

    /// Scenario 5: sequential `docker run`s.
    #[arg(long, env = "BENCH_NAIVE_RUNS", default_value_t = 10)]
    pub naive_runs: usize,

    /// Scenario 6: sequential calls of the fast function measured alone, and again beside the
    /// slow calls.
    #[arg(long, env = "BENCH_NOISY_CALLS", default_value_t = 200)]
    pub noisy_calls: usize,

    /// Scenario 6: client loops that each call the slow function again and again, so that as
    /// many slow calls are running while the fast function is measured.
    #[arg(long, env = "BENCH_NOISY_SLOW_CALLS", default_value_t = 40)]
    pub noisy_slow_calls: usize,

    /// Scenario 6: seconds each slow call sleeps in its handler.
    #[arg(long, env = "BENCH_NOISY_SLEEP_SECS", default_value_t = 10.0)]
    pub noisy_sleep_secs: f64,

    /// Scenario 6: the longest wait, on top of one slow call's sleep, for every slow loop to
    /// have finished its first call (its container started) and for the workers to report that
    /// many jobs in flight; past it the fast function is measured anyway and the report says
    /// how many were running.
    #[arg(long, env = "BENCH_NOISY_SETTLE_SECS", default_value_t = 30.0)]
    pub noisy_settle_secs: f64,

    /// Scenario 7: sequential calls per api (and per key) at concurrency 1, measured in
    /// alternating blocks of `--auth-block-calls`.
    #[arg(long, env = "BENCH_AUTH_CALLS", default_value_t = 500)]
    pub auth_calls: usize,

    /// Scenario 7: sequential calls of one api before the next api takes its turn.
    #[arg(long, env = "BENCH_AUTH_BLOCK_CALLS", default_value_t = 50)]
    pub auth_block_calls: usize,

    /// Scenario 7: measured phases per api (and per key) at `--concurrency`, alternating.
    #[arg(long, env = "BENCH_AUTH_PHASES", default_value_t = 4)]
    pub auth_phases: usize,

    /// Scenario 7: seconds of each phase at `--concurrency`.
    #[arg(long, env = "BENCH_AUTH_PHASE_SECS", default_value_t = 5.0)]
    pub auth_phase_secs: f64,

    /// Scenario 8: sequential calls per path (HTTP trigger, `/execute`) at concurrency 1,
    /// measured in alternating blocks of `--http-block-calls`; more rounds than scenario 7,
    /// because the difference it looks for (0.1 ms) is smaller than a block's noise.
    #[arg(long, env = "BENCH_HTTP_CALLS", default_value_t = 1000)]
    pub http_calls: usize,

    /// Scenario 8: sequential calls through one path before the other takes its turn.
    #[arg(long, env = "BENCH_HTTP_BLOCK_CALLS", default_value_t = 50)]
    pub http_block_calls: usize,

    /// Scenario 8: measured phases per path at `--concurrency`, alternating.
    #[arg(long, env = "BENCH_HTTP_PHASES", default_value_t = 4)]
    pub http_phases: usize,

    /// Scenario 8: seconds of each phase at `--concurrency`.
    #[arg(long, env = "BENCH_HTTP_PHASE_SECS", default_value_t = 5.0)]
    pub http_phase_secs: f64,

    /// Scenario 11: clients following `GET /invocations/stream` during the followed turns.
    #[arg(long, env = "BENCH_FOLLOWERS", default_value_t = 20)]
    pub followers: usize,

    /// Scenario 11: sequential calls each way (followed and not) at concurrency 1, measured in
    /// alternating blocks of `--followers-block-calls`.
    #[arg(long, env = "BENCH_FOLLOWERS_CALLS", default_value_t = 500)]
    pub followers_calls: usize,

    /// Scenario 11: sequential calls of one variant before the other takes its turn.
    #[arg(long, env = "BENCH_FOLLOWERS_BLOCK_CALLS", default_value_t = 50)]
    pub followers_block_calls: usize,

    /// Scenario 11: measured phases each way at `--concurrency`, alternating. Eight, not the
    /// four of scenario 7: one 5 s phase's calls/s moves by ±10 % on this machine, as much as
    /// the target's bound, and four each way once read 0.88× where eight read 1.04×.
    #[arg(long, env = "BENCH_FOLLOWERS_PHASES", default_value_t = 8)]
    pub followers_phases: usize,

    /// Scenario 11: seconds of each phase at `--concurrency`.
    #[arg(long, env = "BENCH_FOLLOWERS_PHASE_SECS", default_value_t = 5.0)]
    pub followers_phase_secs: f64,

    /// Scenario 9: fresh dependency texts, each built, then the first call of one function
    /// using it (the worker fetches the artifact), of a second one (cached) and of one without
    /// dependencies.
    #[arg(long, env = "BENCH_DEPS_COLD_SAMPLES", default_value_t = 5)]
    pub deps_cold_samples: usize,

    /// Scenario 9: warm calls of each of the two functions (with and without dependencies),
    /// alternating.
    #[arg(long, env = "BENCH_DEPS_WARM_CALLS", default_value_t = 300)]
    pub deps_warm_calls: usize,

    /// Scenario 10: seconds of measured `POST /execute_async` calls of a trivial function at
    /// `--concurrency` (after `--async-warmup-secs` of the same, unmeasured).
    #[arg(long, env = "BENCH_ASYNC_DURATION_SECS", default_value_t = 10.0)]
    pub async_duration_secs: f64,

    /// Scenario 10: seconds of unmeasured `POST /execute_async` calls before the measured ones.
    #[arg(long, env = "BENCH_ASYNC_WARMUP_SECS", default_value_t = 2.0)]
    pub async_warmup_secs: f64,

    /// Scenario 10: async calls of a fresh trivial function accepted at `--concurrency`, then
    /// waited for: their rate from the first accepted to the last finished, and each one's
    /// accept → finished latency, from the invocations' own `created_at` and `finished_at`.
    #[arg(long, env = "BENCH_ASYNC_BURST", default_value_t = 2000)]
    pub async_burst: usize,

    /// Scenario 10: the longest wait for the accepted invocations of each part to end; those
    /// still queued or running then are counted as not finished.
    #[arg(long, env = "BENCH_ASYNC_TIMEOUT_SECS", default_value_t = 300.0)]
    pub async_timeout_secs: f64,

    /// Scenario 10: docker workers killed (SIGKILL) while they run an async call, each after a
    /// replacement worker consumes the docker queue beside it (the first one killed is
    /// `--docker-worker-pid`, each next one the replacement before).
    #[arg(long, env = "BENCH_ASYNC_KILL_SAMPLES", default_value_t = 3)]
    pub async_kill_samples: usize,

    /// Scenario 10: seconds the handler of the function whose worker is killed sleeps.
    #[arg(long, env = "BENCH_ASYNC_KILL_SLEEP_SECS", default_value_t = 2.0)]
    pub async_kill_sleep_secs: f64,

    /// Scenario 10: pid of the one docker worker, killed by the run (`bench/run.sh` passes
    /// its own); without it no worker is killed.
    #[arg(long, env = "BENCH_DOCKER_WORKER_PID")]
    pub docker_worker_pid: Option<u32>,

    /// Scenario 10: the `worker` binary started (`--runtime docker`) as a replacement docker
    /// worker, with this process's environment (the settings `bench/run.sh` exports for its
    /// workers) and its own WORKER_ID, METRICS_ADDR (a free port), DEPS_CACHE_DIR and
    /// BUILDS=false; its output goes to `worker-docker-replacement-N.log` beside `--out`.
    /// Without it no worker is killed.
    #[arg(long, env = "BENCH_WORKER_BIN")]
    pub worker_bin: Option<PathBuf>,

    /// Scenario 10: WORKER_ID of the replacement workers, before `-1`, `-2`, ... (their
    /// containers carry it in the `faas.worker` label).
    #[arg(
        long,
        env = "BENCH_REPLACEMENT_WORKER_ID",
        default_value = "bench-docker-replacement"
    )]
    pub replacement_worker_id: String,

    /// Scenario 10: directory under which each replacement worker gets its own empty
    /// DEPS_CACHE_DIR (the system's temporary directory by default).
    #[arg(long, env = "BENCH_REPLACEMENT_DEPS_DIR")]
    pub replacement_deps_dir: Option<PathBuf>,

    /// Scenario 10: RabbitMQ of the platform, asked how many consumers the docker queue and
    /// the async queue have. Kept out of the JSON results.
    #[arg(
        long,
        env = "AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    #[serde(skip)]
    pub amqp_url: String,

    /// Scenario 10: the platform's QUEUE_PREFIX.
    #[arg(long, env = "QUEUE_PREFIX", default_value = "")]
    pub queue_prefix: String,

    /// Scenario 8: the functions' origin (the api's `FUNCTIONS_ADDR`), where HTTP triggers
    /// answer.
    #[arg(
        long,
        env = "BENCH_FUNCTIONS_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub functions_url: String,

    /// `timeout` of the functions the benchmark creates (seconds); scenario 6's slow function
    /// gets its sleep on top of it.
    #[arg(long, env = "BENCH_FUNCTION_TIMEOUT_SECS", default_value_t = 5)]
    pub function_timeout_secs: u32,

    /// Client-side limit on one HTTP request or one `docker run` (seconds).
    #[arg(long, env = "BENCH_REQUEST_TIMEOUT_SECS", default_value_t = 60)]
    pub request_timeout_secs: u64,

    /// Docker CLI used by scenario 5.
    #[arg(long, env = "BENCH_DOCKER", default_value = "docker")]
    pub docker: String,

    /// Image scenario 5 runs (the workers' PYTHON_IMAGE).
    #[arg(long, env = "BENCH_PYTHON_IMAGE", default_value = "python-base")]
    pub python_image: String,

    /// Docker runtime name of gVisor, for scenario 5.
    #[arg(long, env = "BENCH_GVISOR_RUNTIME", default_value = "runsc")]
    pub gvisor_runtime: String,

    /// Pid of the api whose memory is reported; found in /proc by name when not given.
    #[arg(long, env = "BENCH_API_PID")]
    pub api_pid: Option<u32>,

    /// Pids of the workers whose memory is reported (repeat or comma-separate); found in
    /// /proc by name when not given.
    #[arg(long, env = "BENCH_WORKER_PID", value_delimiter = ',')]
    pub worker_pid: Vec<u32>,

    /// Prometheus endpoints of the workers (repeat or comma-separate), read before and after
    /// each scenario for the pool's containers and evictions, and by scenario 6 for the jobs in
    /// flight; none by default.
    #[arg(long, env = "BENCH_WORKER_METRICS_URL", value_delimiter = ',')]
    pub worker_metrics_url: Vec<String>,

    /// Leave the functions the run created in place.
    #[arg(long, env = "BENCH_KEEP")]
    pub keep: bool,

    /// Start of every function name the run creates (a run id follows it).
    #[arg(long, env = "BENCH_NAME_PREFIX", default_value = "bench")]
    pub name_prefix: String,

    /// Where the JSON results are written.
    #[arg(long, env = "BENCH_OUT", default_value = "target/bench/results.json")]
    pub out: PathBuf,

    /// Also print progress per warm-up round and the server-side timing breakdown.
    #[arg(long, short, env = "BENCH_VERBOSE")]
    pub verbose: bool,
}

impl Config {
    /// Whether `scenario` was asked for.
    pub fn wants(&self, scenario: Scenario) -> bool {
        self.scenarios.contains(&scenario)
    }

    /// The `--api-key`, unless it is empty.
    pub fn api_key(&self) -> Option<&str> {
        self.api_key
            .as_ref()
            .map(ApiKey::expose)
            .filter(|key| !key.is_empty())
    }

    /// The per-request client timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_key_stays_out_of_debug_and_json() {
        let config =
            Config::parse_from(["bench", "--api-key", "s3cret-admin-key-0123456789abcdef"]);
        assert_eq!(config.api_key(), Some("s3cret-admin-key-0123456789abcdef"));
        assert!(!format!("{config:?}").contains("s3cret"));
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["api_key"], "***");
        assert!(!json.to_string().contains("s3cret"));
    }

    #[test]
    fn no_or_an_empty_key_sends_none() {
        let none = Config::parse_from(["bench"]);
        assert_eq!(none.api_key(), None);
        assert_eq!(
            serde_json::to_value(&none).unwrap()["api_key"],
            serde_json::Value::Null
        );
        assert_eq!(
            Config::parse_from(["bench", "--api-key", " "]).api_key(),
            None
        );
    }

    #[test]
    fn stream_followers_are_a_default_scenario_also_called_stream() {
        assert!(Config::parse_from(["bench"]).wants(Scenario::Followers));
        assert!(Config::parse_from(["bench"]).wants(Scenario::Burst));
        assert_eq!(Config::parse_from(["bench"]).burst_calls, 64);
        for name in ["followers", "stream"] {
            let one = Config::parse_from(["bench", "--scenarios", name]);
            assert_eq!(one.scenarios, vec![Scenario::Followers]);
        }
        assert_eq!(Config::parse_from(["bench"]).followers, 20);
        assert_eq!(Config::parse_from(["bench"]).followers_phases, 8);
    }

    #[test]
    fn the_http_trigger_is_a_default_scenario_also_called_http() {
        let all = Config::parse_from(["bench"]);
        assert!(all.wants(Scenario::HttpTrigger));
        assert_eq!(all.scenarios.len(), 10, "{:?}", all.scenarios);
        assert_eq!(all.functions_url, "http://127.0.0.1:8080");
        for name in ["http", "http-trigger"] {
            let one = Config::parse_from(["bench", "--scenarios", name]);
            assert_eq!(one.scenarios, vec![Scenario::HttpTrigger]);
        }
        assert_eq!(
            serde_json::to_value(Scenario::HttpTrigger).unwrap(),
            "http-trigger"
        );
    }

    #[test]
    fn dependencies_is_scenario_9_asked_for_by_name_only() {
        let all = Config::parse_from(["bench"]);
        assert!(!all.wants(Scenario::Dependencies));
        for name in ["deps", "dependencies"] {
            let one = Config::parse_from(["bench", "--scenarios", name]);
            assert_eq!(one.scenarios, vec![Scenario::Dependencies]);
            assert_eq!((one.deps_cold_samples, one.deps_warm_calls), (5, 300));
        }
        let set = Config::parse_from([
            "bench",
            "--scenarios",
            "deps",
            "--deps-cold-samples",
            "2",
            "--deps-warm-calls",
            "10",
        ]);
        assert_eq!((set.deps_cold_samples, set.deps_warm_calls), (2, 10));
        assert_eq!(
            serde_json::to_value(Scenario::Dependencies).unwrap(),
            "dependencies"
        );
    }

    #[test]
    fn async_is_scenario_10_asked_for_by_name_only() {
        let all = Config::parse_from(["bench"]);
        assert!(!all.wants(Scenario::Async));
        for name in ["async", "async-invocations"] {
            let one = Config::parse_from(["bench", "--scenarios", name]);
            assert_eq!(one.scenarios, vec![Scenario::Async]);
            assert_eq!(one.concurrency, 64);
            assert_eq!(
                (
                    one.async_duration_secs,
                    one.async_burst,
                    one.async_kill_samples
                ),
                (10.0, 2000, 3)
            );
            assert_eq!(one.docker_worker_pid, None);
        }
        assert_eq!(serde_json::to_value(Scenario::Async).unwrap(), "async");
        let set = Config::parse_from([
            "bench",
            "--amqp-url",
            "amqp://user:s3cret@rabbit:5672/%2f",
            "--docker-worker-pid",
            "42",
        ]);
        assert_eq!(set.docker_worker_pid, Some(42));
        let json = serde_json::to_value(&set).unwrap();
        assert!(json.get("amqp_url").is_none());
        assert!(!json.to_string().contains("s3cret"));
    }

    #[test]
    fn auth_overhead_is_a_default_scenario_and_can_be_left_out() {
        assert!(Config::parse_from(["bench"]).wants(Scenario::AuthOverhead));
        let some = Config::parse_from(["bench", "--scenarios", "warm,auth-overhead"]);
        assert_eq!(some.scenarios, vec![Scenario::Warm, Scenario::AuthOverhead]);
        assert!(
            !Config::parse_from(["bench", "--scenarios", "warm"]).wants(Scenario::AuthOverhead)
        );
        assert_eq!(
            Config::parse_from(["bench", "--api-url-noauth", "http://127.0.0.1:8010"])
                .api_url_noauth
                .as_deref(),
            Some("http://127.0.0.1:8010")
        );
    }
}
