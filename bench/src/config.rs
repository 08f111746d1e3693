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
}

#[derive(Debug, Clone, Parser, Serialize)]
#[command(
    name = "bench",
    version,
    about = "Benchmarks a running api and its workers: warm latency, throughput, cold starts, \
             many functions, the one-docker-run-per-call floor, and a fast function beside slow \
             ones"
)]
pub struct Config {
    /// Base URL of the running api.
    #[arg(long, env = "BENCH_API_URL", default_value = "http://127.0.0.1:8000")]
    pub api_url: String,

    /// Runtimes to measure, comma-separated, in order.
    #[arg(
        long,
        env = "BENCH_RUNTIMES",
        value_enum,
        value_delimiter = ',',
        default_value = "docker,gvisor"
    )]
    pub runtimes: Vec<Runtime>,

    /// Scenarios to run, comma-separated (all by default).
    #[arg(
        long,
        env = "BENCH_SCENARIOS",
        value_enum,
        value_delimiter = ',',
        default_value = "warm,throughput,cold,round-robin,naive,noisy-neighbour"
    )]
    pub scenarios: Vec<Scenario>,

    /// Scenario 1: sequential calls measured after the warm-up call.
    #[arg(long, env = "BENCH_WARM_CALLS", default_value_t = 500)]
    pub warm_calls: usize,

    /// Scenarios 2 and 4: seconds of the same load, unmeasured, after the warm-up rounds and
    /// before the measured period.
    #[arg(long, env = "BENCH_LOAD_WARMUP_SECS", default_value_t = 5.0)]
    pub load_warmup_secs: f64,

    /// Scenarios 1 and 6: seconds to wait after the warm-up call before measuring (in 6 only
    /// when that call was a cold start), so that the stem cell its cold start used is replaced
    /// (a container start that loads both cores) first.
    #[arg(long, env = "BENCH_WARM_SETTLE_SECS", default_value_t = 2.0)]
    pub warm_settle_secs: f64,

    /// Scenarios 2 and 4: calls in flight at once.
    #[arg(long, env = "BENCH_CONCURRENCY", default_value_t = 64)]
    pub concurrency: usize,

    /// Scenario 2: seconds of measured calls.
    #[arg(long, env = "BENCH_DURATION_SECS", default_value_t = 10.0)]
    pub duration_secs: f64,

    /// Scenarios 2 and 4: at most this many warm-up rounds (one call per slot, or per
    /// function); the warm-up stops after the first round without a cold start.
    #[arg(long, env = "BENCH_WARMUP_ROUNDS", default_value_t = 3)]
    pub warmup_rounds: usize,

    /// Scenario 3: fresh functions, each created and then called once.
    #[arg(long, env = "BENCH_COLD_FUNCTIONS", default_value_t = 30)]
    pub cold_functions: usize,

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

    /// The per-request client timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }
}
