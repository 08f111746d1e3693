//! The whole report, rendered from a fixed set of results that holds every scenario, against
//! the markdown and the JSON kept in `testdata/`: a change to the report's words or order shows
//! here as a diff, and a refactor of the rendering must leave both byte-identical. After a
//! change that is meant: `BENCH_WRITE_SNAPSHOT=1 cargo test -p bench --lib snapshot`, then
//! review the diff of `testdata/`.

use super::snapshot_async::async_calls;
use super::{Cleanup, Results, RuntimeResults, check_targets, markdown};
use crate::auth::{AuthResult, Key};
use crate::burst::BurstResult;
use crate::client::{CallOutcome, Timing};
use crate::config::{Config, Runtime};
use crate::cpu::{CpuUsage, ProcessCpu, ServiceCpu};
use crate::deps::{BuildSample, DepsResult, FirstCalls};
use crate::followers::{FollowerCounts, FollowersResult, Following};
use crate::http::{self, HttpResult};
use crate::interleave::{self, Interleaved, VariantResult};
use crate::machine::Machine;
use crate::naive::NaiveResult;
use crate::noisy::{NoisyResult, Settle};
use crate::pool::{PoolChange, PoolState};
use crate::procs::{Memory, Process};
use crate::scenarios::{ColdResult, LoadResult, WarmResult, Warmup};
use crate::stats::{CallStats, Recorder, summarize};
use clap::Parser;

const EVERY_SCENARIO_MD: &str = include_str!("testdata/every_scenario.md");
const EVERY_SCENARIO_JSON: &str = include_str!("testdata/every_scenario.json");
const NOTHING_MEASURED_MD: &str = include_str!("testdata/nothing_measured.md");

fn machine() -> Machine {
    Machine {
        nproc: 2,
        memory_mb: Some(7940),
        cpu_model: Some("Test CPU @ 2.00GHz".into()),
        kernel: Some("6.1.0-test".into()),
        date: "2026-11-27T16:00:00Z".into(),
        git_commit: Some("abc1234".into()),
        git_dirty: Some(true),
        docker_version: Some("27.3.1".into()),
        runsc_version: None,
        load_average: Some("0.50 0.40 0.30".into()),
    }
}

/// A successful call, with the api's `duration_ms` and `timing` when `server` is given.
pub(super) fn ok(latency_ms: f64, cold: bool, server: Option<f64>) -> CallOutcome {
    CallOutcome {
        status: 200,
        latency_ms,
        cold_start: Some(cold),
        duration_ms: server,
        timing: server.map(|ms| Timing {
            queue_ms: Some(ms / 4.0),
            init_ms: cold.then_some(ms * 2.0),
            run_ms: Some(ms / 2.0),
        }),
        ..CallOutcome::default()
    }
}

pub(super) fn failed(status: u16, code: &str, detail: &str) -> CallOutcome {
    CallOutcome {
        status,
        latency_ms: 1.0,
        code: Some(code.to_owned()),
        detail: Some(detail.to_owned()),
        ..CallOutcome::default()
    }
}

pub(super) fn stats(outcomes: &[CallOutcome]) -> CallStats {
    let mut recorder = Recorder::default();
    for o in outcomes {
        recorder.record(o);
    }
    recorder.finish()
}

/// `n` successful warm calls from `first_ms` up by `step_ms`, with the api's timing.
fn calls(n: usize, first_ms: f64, step_ms: f64) -> Vec<CallOutcome> {
    (0..n)
        .map(|i| {
            let ms = first_ms + step_ms * i as f64;
            ok(ms, false, Some(ms * 0.8))
        })
        .collect()
}

pub(super) fn cpu(machine_cores: f64, with_processes: bool) -> CpuUsage {
    let processes = if with_processes {
        vec![
            ProcessCpu {
                name: "api".into(),
                pid: 10,
                cores: 0.42,
            },
            ProcessCpu {
                name: "worker docker".into(),
                pid: 11,
                cores: 0.21,
            },
            ProcessCpu {
                name: "worker docker".into(),
                pid: 12,
                cores: 0.04,
            },
        ]
    } else {
        vec![ProcessCpu {
            name: "worker gvisor".into(),
            pid: 13,
            cores: 0.3,
        }]
    };
    CpuUsage {
        seconds: 10.0,
        machine_cores: Some(machine_cores),
        processes,
        bench_cores: Some(0.25),
        containers_cores: with_processes.then_some(0.5),
        services: vec![
            ServiceCpu {
                name: "dockerd, containerd".into(),
                cores: 0.05,
            },
            ServiceCpu {
                name: "RabbitMQ".into(),
                cores: 0.12,
            },
        ],
        rest_cores: Some(0.01),
    }
}

fn warmup(errors: bool) -> Warmup {
    let kinds = stats(&[failed(503, "expired", "the queue | was full\nof calls")]).error_kinds;
    Warmup {
        rounds: 2,
        calls: 128,
        errors: u64::from(errors),
        error_kinds: if errors { kinds } else { Vec::new() },
        cold_starts_per_round: vec![12, 0],
        seconds: 1.25,
    }
}

fn load(functions: usize, calls: Vec<CallOutcome>, ratio: Option<f64>) -> LoadResult {
    let stats = stats(&calls);
    LoadResult {
        functions,
        concurrency: 64,
        seconds: 10.04,
        calls_per_s: stats.ok as f64 / 10.04,
        warmup: warmup(functions > 1),
        stats,
        cpu: cpu(1.93, true),
        ratio_to_single: ratio,
    }
}

fn variant<K>(key: K, first_ms: f64, calls_per_s: f64) -> VariantResult<K> {
    let mut load = calls(6, first_ms * 10.0, 1.5);
    load.push(failed(503, "expired", "too many"));
    VariantResult {
        key,
        api_url: "http://127.0.0.1:8000".into(),
        warm: stats(&calls(5, first_ms, 0.25)),
        block_p50s_ms: vec![
            Some(first_ms),
            None,
            Some(first_ms + 0.5),
            Some(first_ms + 0.1),
        ],
        latencies_ms: vec![first_ms; 5],
        load: stats(&load),
        load_seconds: 20.0,
        calls_per_s,
        phase_calls_per_s: vec![calls_per_s - 12.0, calls_per_s + 7.0, calls_per_s],
        load_cpu: Some(cpu(1.9, true)),
    }
}

fn interleaved<K>(variants: Vec<VariantResult<K>>) -> Interleaved<K> {
    Interleaved {
        block_calls: 50,
        blocks: 10,
        concurrency: 64,
        phases: 4,
        phase_secs: 5.0,
        first_calls_cold: true,
        warmup: warmup(true),
        variants,
    }
}

fn auth() -> AuthResult {
    let variants = vec![
        variant(Key::None, 1.0, 800.0),
        variant(Key::Given, 1.05, 790.0),
        variant(Key::Made, 1.12, 700.0),
    ];
    let ratios = variants[1..]
        .iter()
        .map(|on| interleave::ratios(on, &variants[0]))
        .collect();
    AuthResult {
        function: "bench-1-docker-single".into(),
        api_url_on: "http://127.0.0.1:8000".into(),
        api_url_off: "http://127.0.0.1:8010".into(),
        given_key_id: Some("ADMIN_KEY".into()),
        made_key_error: Some("POST /keys/ answered 403 | forbidden\nfor this key".into()),
        measured: interleaved(variants),
        ratios,
    }
}

fn http_trigger() -> HttpResult {
    let execute = variant(http::Path::Execute, 1.0, 900.0);
    let route = variant(http::Path::Route, 1.03, 870.0);
    HttpResult {
        function: "bench-1-docker-http".into(),
        route: "/bench-1/http/{id}".into(),
        path: "/bench-1/http/42".into(),
        ratios: interleave::ratios(&route, &execute),
        difference: http::difference(&route, &execute),
        measured: interleaved(vec![execute, route]),
    }
}

fn followers() -> FollowersResult {
    let alone = variant(Following::Alone, 1.0, 900.0);
    let followed = variant(Following::Followed, 1.02, 880.0);
    FollowersResult {
        function: "bench-1-docker-single".into(),
        followers: 20,
        ratios: interleave::ratios(&followed, &alone),
        followed_calls: 4_500,
        counts: FollowerCounts {
            streams_opened: 280,
            connect_errors: vec!["answered 429 | too many\nstreams".into()],
            ended_early: 1,
            events_per_follower: vec![4_490, 4_500, 4_500],
        },
        measured: interleaved(vec![alone, followed]),
    }
}

fn deps() -> DepsResult {
    let first = |values: &[f64]| summarize(values);
    DepsResult {
        builds: vec![
            BuildSample {
                set: "python small".into(),
                packages: "six".into(),
                status: "ready".into(),
                wall_s: 12.34,
                build_s: Some(10.5),
                size_bytes: Some(1_234_567),
            },
            BuildSample {
                set: "javascript medium".into(),
                packages: "lodash, express".into(),
                status: "failed".into(),
                wall_s: 3.0,
                build_s: None,
                size_bytes: None,
            },
        ],
        first_calls: FirstCalls {
            uncached_ms: vec![420.0, 380.0],
            cached_ms: vec![250.0, 260.0],
            stem_ms: vec![40.0],
            plain_ms: vec![30.0, 35.0, 33.0],
            package_uncached_ms: vec![300.0],
            package_cached_ms: vec![],
            plain_cold_starts: 1,
            errors: (1..=6)
                .map(|i| format!("call {i}: 502 bad_gateway"))
                .collect(),
            uncached: first(&[380.0, 420.0]),
            cached: first(&[250.0, 260.0]),
            stem: first(&[40.0]),
            plain: first(&[30.0, 33.0, 35.0]),
            package_uncached: first(&[300.0]),
            package_cached: None,
        },
        warm_with: first(&[2.0, 2.5, 3.0]),
        warm_without: first(&[1.8, 2.0]),
        warm_errors: 2,
    }
}

fn noisy(all_running: bool) -> NoisyResult {
    let alone = stats(&calls(4, 1.0, 0.5));
    let mut beside = calls(4, 2.0, 1.5);
    beside.push(failed(503, "expired", "the queue was full"));
    let beside = stats(&beside);
    let slow = stats(&[
        ok(10_000.0, true, Some(9_990.0)),
        failed(504, "function_timeout", "slow | and\nlate"),
    ]);
    NoisyResult {
        fast_function: "fast".into(),
        slow_function: "slow".into(),
        slow_loops: 40,
        sleep_secs: 10.0,
        slow_timeout_secs: 15,
        first_call_ms: 1.0,
        first_call_cold_start: Some(false),
        p50_ratio: crate::noisy::p50_ratio(&alone, &beside),
        alone,
        beside,
        alone_latencies_ms: Vec::new(),
        beside_latencies_ms: Vec::new(),
        settle: Settle {
            seconds: 12.34,
            loops_answered: if all_running { 40 } else { 35 },
            inflight_jobs_before: Some(38.0),
            inflight_jobs_after: all_running.then_some(40.0),
            all_running,
        },
        slow,
        cpu: cpu(1.5, all_running),
    }
}

fn pool(scenario: &str, evictions: Option<f64>) -> PoolChange {
    PoolChange {
        scenario: scenario.into(),
        before: PoolState {
            evictions_total: Some(3.0),
            ..PoolState::default()
        },
        after: PoolState {
            warm: evictions.map(|_| 64.0),
            prewarmed: Some(4.0),
            busy: None,
            evictions_total: evictions.map(|e| 3.0 + e),
            inflight_jobs: Some(0.0),
            home_jobs_total: evictions.map(|_| 990.0),
            jobs_taken_total: evictions.map(|_| 1000.0),
            pool_hits_total: evictions.map(|_| 950.0),
            acquisitions_total: evictions.map(|_| 1000.0),
        },
    }
}

fn docker() -> RuntimeResults {
    let mut r = RuntimeResults::new(Runtime::Docker);
    let mut warm = calls(20, 1.2, 0.05);
    warm.push(ok(3.4, true, Some(2.0)));
    warm.push(failed(0, "client_timeout", "timed out"));
    r.warm = Some(WarmResult {
        function: "bench-1-docker-single".into(),
        first_call_ms: 250.0,
        first_call_cold_start: Some(true),
        stats: stats(&warm),
        latencies_ms: vec![1.2; 22],
        cpu: cpu(0.61, true),
    });
    let mut throughput = calls(30, 20.0, 1.0);
    throughput.push(failed(503, "expired", "the queue | was full"));
    r.throughput = Some(load(1, throughput, None));
    let mut cold: Vec<CallOutcome> = (0..5)
        .map(|i| ok(180.0 + i as f64, true, Some(170.0)))
        .collect();
    cold.push(ok(40.0, false, Some(35.0)));
    cold.push(failed(502, "container_start_failed", "no room"));
    r.cold = Some(ColdResult {
        functions: 8,
        create_errors: vec!["POST /functions/ (cold-007) answered 500".into()],
        first_calls_ms: vec![180.0; 7],
        stats: stats(&cold),
    });
    r.round_robin = Some(load(100, calls(25, 30.0, 2.0), Some(0.83)));
    r.naive = Some(NaiveResult {
        command: "docker run --rm -i --network none python-base".into(),
        runs: 10,
        ok: 9,
        failures: vec!["docker run exited 125 | twice\nover".into()],
        to_result_ms: summarize(&[420.0, 450.0, 480.0]),
        to_exit_ms: summarize(&[600.0, 650.0, 700.0]),
    });
    r.noisy_neighbour = Some(noisy(false));
    r.auth_overhead = Some(auth());
    r.http_trigger = Some(http_trigger());
    r.followers = Some(followers());
    r.dependencies = Some(deps());
    r.async_invocations = Some(async_calls());
    let mut burst: Vec<CallOutcome> = (0..6)
        .map(|i| ok(300.0 + 40.0 * i as f64, i < 4, Some(280.0)))
        .collect();
    burst.push(failed(503, "no_worker_room", "no room | now"));
    r.burst = Some(BurstResult {
        function: "bench-1-docker-burst".into(),
        calls: 7,
        seconds: 0.52,
        stats: stats(&burst),
    });
    r.pool = vec![
        pool("1. warm", Some(0.0)),
        pool("2. throughput", Some(2.0)),
        pool("3. cold", None),
    ];
    r.failures = vec!["8. http trigger: POST | failed\nbadly".into()];
    r
}

fn gvisor() -> RuntimeResults {
    let mut r = RuntimeResults::new(Runtime::Gvisor);
    r.warm = Some(WarmResult {
        function: "bench-1-gvisor-single".into(),
        first_call_ms: 900.0,
        first_call_cold_start: None,
        stats: stats(&calls(12, 2.5, 0.3)),
        latencies_ms: vec![2.5; 12],
        cpu: cpu(0.7, false),
    });
    r.throughput = Some(load(
        1,
        vec![failed(0, "transport", "connection refused")],
        None,
    ));
    r.round_robin = Some(load(100, calls(10, 150.0, 10.0), None));
    r.naive = Some(NaiveResult {
        command: "docker run --rm -i --network none --runtime runsc python-base".into(),
        runs: 10,
        ok: 0,
        failures: Vec::new(),
        to_result_ms: None,
        to_exit_ms: None,
    });
    r.noisy_neighbour = Some(noisy(true));
    r.pool = vec![pool("1. warm", Some(1.0))];
    r
}

fn memory(role: &str, pid: u32, runtime: Option<&str>, kb: Option<u64>) -> Memory {
    Memory {
        process: Process {
            role: role.into(),
            pid,
            runtime: runtime.map(str::to_owned),
            exe: None,
        },
        vm_hwm_kb: kb,
        vm_rss_kb: kb.map(|kb| kb / 2),
    }
}

fn every_scenario() -> Results {
    let runtimes = vec![docker(), gvisor()];
    let memory_at_start = vec![
        memory("api", 10, None, Some(20_480)),
        memory("worker", 11, Some("docker"), Some(30_000)),
    ];
    let memory_at_end = vec![
        memory("api", 10, None, Some(50_000)),
        memory("worker", 11, Some("docker"), Some(70_000)),
        memory("worker", 13, Some("gvisor"), None),
    ];
    let targets = check_targets(&runtimes, &memory_at_end, 64);
    Results {
        machine: machine(),
        settings: Config::parse_from([
            "bench",
            "--api-url-noauth",
            "http://127.0.0.1:8010",
            "--scenarios",
            "warm,throughput,cold,round-robin,naive,noisy-neighbour,auth-overhead,http-trigger,\
             dependencies,async",
            "--verbose",
        ]),
        run_id: "0123abcd".into(),
        interrupted: true,
        runtimes,
        memory_at_start,
        memory_at_end,
        targets,
        cleanup: Cleanup {
            kept: false,
            deleted: 140,
            keys_revoked: 1,
            failures: vec!["DELETE /functions/7 answered 500".into()],
        },
    }
}

fn nothing_measured() -> Results {
    let runtimes = vec![RuntimeResults::new(Runtime::Gvisor)];
    let targets = check_targets(&runtimes, &[], 8);
    Results {
        machine: machine(),
        settings: Config::parse_from(["bench", "--concurrency", "8", "--scenarios", "warm"]),
        run_id: "0".into(),
        interrupted: false,
        runtimes,
        memory_at_start: Vec::new(),
        memory_at_end: Vec::new(),
        targets,
        cleanup: Cleanup::default(),
    }
}

/// With `BENCH_WRITE_SNAPSHOT` set, writes what the report now renders over the snapshots
/// (after a change to the report that is meant): review the diff before committing it.
fn write_snapshots_when_asked(every_scenario_json: &str) {
    if std::env::var_os("BENCH_WRITE_SNAPSHOT").is_none() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/report/testdata");
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    write("every_scenario.md", &markdown(&every_scenario()));
    write("every_scenario.json", every_scenario_json);
    write("nothing_measured.md", &markdown(&nothing_measured()));
}

#[test]
fn the_report_of_every_scenario_is_its_snapshot() {
    let results = every_scenario();
    // Without the settings, which the environment's BENCH_* variables can change.
    let mut json = serde_json::to_value(&results).unwrap();
    json.as_object_mut().unwrap().remove("settings");
    let json = serde_json::to_string_pretty(&json).unwrap() + "\n";
    write_snapshots_when_asked(&json);
    assert_eq!(json, EVERY_SCENARIO_JSON);
    assert_eq!(markdown(&results), EVERY_SCENARIO_MD);
}

#[test]
fn the_report_of_a_run_that_measured_nothing_is_its_snapshot() {
    assert_eq!(markdown(&nothing_measured()), NOTHING_MEASURED_MD);
}
