use super::*;
use crate::auth::{Key, auth_checks};
use crate::http::{self, HTTP_P50_DIFF_MAX_MS, Interval, http_verdict};
use crate::interleave::VariantResult;
use crate::noisy::{Settle, answers, running_cell};

/// A machine with nothing known of it but its 2 CPUs.
fn machine() -> Machine {
    Machine {
        nproc: 2,
        memory_mb: None,
        cpu_model: None,
        kernel: None,
        date: String::new(),
        git_commit: None,
        git_dirty: None,
        docker_version: None,
        runsc_version: None,
        load_average: None,
    }
}
use crate::client::CallOutcome;
use crate::interleave::Interleaved;
use crate::stats::Recorder;
use clap::Parser;

fn outcome(status: u16, code: Option<&str>, latency_ms: f64, cold: bool) -> CallOutcome {
    CallOutcome {
        status,
        latency_ms,
        cold_start: Some(cold),
        code: code.map(str::to_owned),
        detail: code.map(|c| format!("{c} detail")),
        ..CallOutcome::default()
    }
}

fn stats(outcomes: &[CallOutcome]) -> CallStats {
    let mut recorder = Recorder::default();
    for o in outcomes {
        recorder.record(o);
    }
    recorder.finish()
}

fn settle(all_running: bool, before: Option<f64>, after: Option<f64>) -> Settle {
    Settle {
        seconds: 12.34,
        loops_answered: if all_running { 40 } else { 35 },
        inflight_jobs_before: before,
        inflight_jobs_after: after,
        all_running,
    }
}

#[test]
fn answers_count_successes_then_each_error_kind() {
    let mixed = stats(&[
        outcome(200, None, 1.0, false),
        outcome(200, None, 1.0, false),
        outcome(503, Some("expired"), 1.0, false),
        outcome(0, Some("client_timeout"), 1.0, false),
        outcome(503, Some("expired"), 1.0, false),
    ]);
    assert_eq!(
        answers(&mixed),
        "200 ×2, 0 client_timeout ×1, 503 expired ×2"
    );
    assert_eq!(answers(&stats(&[])), "none");
}

#[test]
fn running_cell_says_how_many_ran_and_what_the_workers_reported() {
    assert_eq!(
        running_cell(&settle(true, Some(40.0), Some(40.0)), 40),
        "40 of 40 after 12.3 s, 40 → 40 jobs in flight"
    );
    assert_eq!(
        running_cell(&settle(true, None, None), 40),
        "40 of 40 after 12.3 s"
    );
    assert_eq!(
        running_cell(&settle(false, Some(37.0), None), 40),
        "**35 of 40** after 12.3 s, 37 jobs in flight (stopped waiting)"
    );
}

fn variant<K>(key: K, latencies_ms: &[f64], calls_per_s: f64) -> VariantResult<K> {
    let warm: Vec<CallOutcome> = latencies_ms
        .iter()
        .map(|&ms| outcome(200, None, ms, false))
        .collect();
    VariantResult {
        key,
        api_url: String::new(),
        warm: stats(&warm),
        block_p50s_ms: vec![
            Some(latencies_ms[0]),
            None,
            Some(latencies_ms[latencies_ms.len() - 1]),
        ],
        latencies_ms: latencies_ms.to_vec(),
        load: stats(&[
            outcome(200, None, 50.0, false),
            outcome(503, Some("expired"), 90.0, false),
        ]),
        load_seconds: 20.0,
        calls_per_s,
        phase_calls_per_s: vec![calls_per_s - 10.0, calls_per_s + 10.0],
        load_cpu: None,
    }
}

fn interleaved<K>(variants: Vec<VariantResult<K>>) -> Interleaved<K> {
    Interleaved {
        block_calls: 50,
        blocks: 10,
        concurrency: 64,
        phases: 4,
        phase_secs: 5.0,
        first_calls_cold: false,
        warmup: crate::scenarios::Warmup {
            rounds: 1,
            calls: 64,
            errors: 0,
            error_kinds: Vec::new(),
            cold_starts_per_round: vec![0],
            seconds: 0.5,
        },
        variants,
    }
}

fn auth_result(on_ms: f64, on_rate: f64) -> AuthResult {
    let variants = vec![
        variant(Key::None, &[1.0, 2.0, 3.0], 500.0),
        variant(Key::Given, &[1.0, 2.0, 3.0], 500.0),
        variant(Key::Made, &[1.0, on_ms, 3.0], on_rate),
    ];
    let ratios = variants[1..]
        .iter()
        .map(|on| crate::interleave::ratios(on, &variants[0]))
        .collect();
    AuthResult {
        function: "fast".into(),
        api_url_on: "http://127.0.0.1:8000".into(),
        api_url_off: "http://127.0.0.1:8010".into(),
        given_key_id: Some("ADMIN_KEY".into()),
        made_key_error: None,
        measured: interleaved(variants),
        ratios,
    }
}

fn results_of(runtime: RuntimeResults, settings: &[&str]) -> Results {
    let targets = check_targets(std::slice::from_ref(&runtime), &[], 64);
    Results {
        machine: machine(),
        settings: Config::parse_from(settings),
        run_id: "0".into(),
        interrupted: false,
        runtimes: vec![runtime],
        memory_at_start: Vec::new(),
        memory_at_end: Vec::new(),
        targets,
        cleanup: Cleanup::default(),
    }
}

#[test]
fn auth_targets_judge_the_made_key() {
    let met = auth_checks("docker", &auth_result(2.2, 460.0));
    assert_eq!(met[0].what, "auth on vs off, warm p50");
    assert_eq!(met[0].target, "≤ 1.10 ×");
    assert_eq!(met[0].measured, "1.10 × (invoke key (made))");
    assert_eq!(met[0].status, Status::Met);
    assert_eq!(met[1].what, "auth on vs off, throughput");
    assert_eq!(met[1].target, "≥ 0.90 ×");
    assert_eq!(met[1].measured, "0.92 × (invoke key (made))");
    assert_eq!(met[1].status, Status::Met);
    let missed = auth_checks("docker", &auth_result(2.4, 440.0));
    assert_eq!(missed[0].status, Status::Missed);
    assert_eq!(missed[1].status, Status::Missed);
    let mut only_given = auth_result(9.0, 100.0);
    only_given.measured.variants.pop();
    only_given.ratios.pop();
    only_given.made_key_error = Some("POST /keys/ answered 403".into());
    let given = auth_checks("docker", &only_given);
    assert_eq!(given[0].measured, "1.00 × (ADMIN_KEY)");
    assert_eq!(given[0].status, Status::Met);
}

#[test]
fn the_auth_section_shows_each_api_and_key_then_the_ratios() {
    let mut runtime = RuntimeResults::new(Runtime::Docker);
    runtime.auth_overhead = Some(auth_result(2.2, 460.0));
    let results = results_of(
        runtime,
        &["bench", "--api-url-noauth", "http://127.0.0.1:8010"],
    );
    assert_eq!(
        results
            .targets
            .iter()
            .filter(|t| t.what.starts_with("auth on"))
            .count(),
        2
    );
    let report = markdown(&results);
    assert!(
        report.contains("auth on against http://127.0.0.1:8010: 500 calls in blocks of 50"),
        "{report}"
    );
    for row in [
        "| docker | auth off | none | 3 | 0 | 2.00 | 3.00 | 3.00 | 1.00–3.00 | 2 | 1 | 500 | \
         490–510 | 50.0 | 50.0 |",
        "| docker | auth on | ADMIN_KEY | 3 |",
        "| docker | auth on | invoke key (made) | 3 | 0 | 2.20 | 3.00 | 3.00 | 1.00–3.00 | 2 \
         | 1 | 460 | 450–470 |",
        "| docker | ADMIN_KEY | 1.00 | 1.00 | 1.00 |",
        "| docker | invoke key (made) | 1.10 | 1.00 | 0.92 |",
        "| 7. auth on, invoke key (made), c=64 | docker | 503 | expired | 1 |",
        "| docker | auth on vs off, warm p50 | ≤ 1.10 × | 1.10 × (invoke key (made)) | met |",
        "| docker | auth on vs off, throughput | ≥ 0.90 × | 0.92 × (invoke key (made)) | met |",
    ] {
        assert!(report.contains(row), "{row}\n{report}");
    }
    let json = serde_json::to_value(&results).unwrap();
    let auth = &json["runtimes"][0]["auth_overhead"];
    assert_eq!(auth["ratios"][1]["key"], "made");
    assert_eq!(auth["variants"][0]["key"], "none");
    assert_eq!(auth["variants"][2]["calls_per_s"], 460.0);
    assert_eq!(
        auth["blocks"], 10,
        "the interleaving's fields stay at the top"
    );
}

fn interval(low_ms: f64, high_ms: f64, confidence: f64) -> Interval {
    Interval {
        low_ms,
        high_ms,
        confidence,
    }
}

#[test]
fn the_http_target_is_judged_on_the_interval_not_the_point() {
    let cases = [
        ((-0.08, 0.09, 0.96), Status::Met),
        ((0.1, 0.3, 0.96), Status::Missed),
        // The rounds moved across the limit: the measurement cannot say.
        ((-0.2, 0.25, 0.96), Status::Inconclusive),
        // Too few rounds for 95 %, however narrow.
        ((0.0, 0.01, 0.9375), Status::Inconclusive),
    ];
    for ((low, high, confidence), status) in cases {
        let i = interval(low, high, confidence);
        assert_eq!(http_verdict(&i, HTTP_P50_DIFF_MAX_MS), status, "{i:?}");
    }
}

fn http_result(route_ms: &[f64], route_blocks: [f64; 3]) -> HttpResult {
    let execute = variant(http::Path::Execute, &[1.0, 2.0, 3.0], 1000.0);
    let mut route = variant(http::Path::Route, route_ms, 950.0);
    route.block_p50s_ms = route_blocks.iter().copied().map(Some).collect();
    let ratios = crate::interleave::ratios(&route, &execute);
    let difference = http::difference(&route, &execute);
    HttpResult {
        function: "bench-0-docker-http".into(),
        route: "/bench-0/http/{id}".into(),
        path: "/bench-0/http/42".into(),
        measured: interleaved(vec![execute, route]),
        ratios,
        difference,
    }
}

#[test]
fn the_http_section_shows_both_paths_then_the_difference() {
    let mut runtime = RuntimeResults::new(Runtime::Docker);
    // Blocks of execute: 1.0, -, 3.0; of the route: 1.05, 9.0 (unpaired), 3.02.
    runtime.http_trigger = Some(http_result(&[1.0, 2.05, 3.0], [1.05, 9.0, 3.02]));
    let results = results_of(runtime, &["bench"]);
    let report = markdown(&results);
    for row in [
        "HTTP trigger against /execute: 1000 calls in blocks of 50 and 4 phases of 5 s per \
         path",
        "## 8. HTTP trigger overhead",
        "called as `POST /bench-0/http/42` with `{}` and as `POST \
         /execute/bench-0-docker-http` with `{\"event\": {}}`",
        "| docker | /execute | 3 | 0 | 2.00 | 3.00 | 3.00 | 1.00–3.00 | 2 | 1 | 1000 | \
         990–1010 | 50.0 | 50.0 |",
        "| docker | route | 3 | 0 | 2.05 |",
        "| docker | +0.050 | +0.000 | +0.000 | 2 | +0.035 | +0.020–+0.050 | +0.020 to \
         +0.050 (50.0 %) | 1.02 | 0.95 | 0.95–0.95 |",
        "| 8. route, c=64 | docker | 503 | expired | 1 |",
        "| docker | 8. route p50 − /execute p50 | < 0.1 ms | +0.050 ms; per round (n=2) median \
         +0.035 ms, 50 % interval +0.020 to +0.050 ms | inconclusive |",
    ] {
        assert!(report.contains(row), "{row}\n{report}");
    }
    let json = serde_json::to_value(&results).unwrap();
    let http = &json["runtimes"][0]["http_trigger"];
    assert_eq!(http["variants"][1]["key"], "route");
    assert_eq!(http["difference"]["rounds_ms"].as_array().unwrap().len(), 2);
    assert_eq!(results.targets.last().unwrap().status, Status::Inconclusive);
    assert_eq!(
        serde_json::to_value(Status::Inconclusive).unwrap(),
        "inconclusive"
    );
}

#[test]
fn the_async_section_shows_accepting_the_burst_and_each_killed_worker() {
    use crate::async_calls::{AcceptResult, BurstResult, Drain, KillResult, KillSample};
    let cpu = CpuUsage {
        seconds: 10.0,
        machine_cores: Some(1.9),
        processes: Vec::new(),
        bench_cores: Some(0.3),
        containers_cores: Some(0.2),
        services: Vec::new(),
        rest_cores: Some(0.1),
    };
    let accepted = stats(&[
        outcome(202, None, 4.0, false),
        outcome(202, None, 6.0, false),
        outcome(503, Some("broker_unavailable"), 1.0, false),
    ]);
    let sample = |i: usize, redelivered: bool| KillSample {
        invocation_id: format!("id-{i}"),
        killed: format!("w-{i}"),
        killed_pid: 100 + i as u32,
        replacement: format!("w-{}", i + 1),
        replacement_ready_s: 0.4,
        status_at_kill: "running".into(),
        status: "succeeded".into(),
        kill_to_finished_s: Some(2.5 + i as f64),
        redelivery_wait_s: Some(0.5 + i as f64),
        attempts: 1,
        ran_on: Some(format!("w-{}", i + 1)),
        cold_start: Some(true),
        init_ms: Some(250.0),
        run_ms: None,
        redelivered,
    };
    let mut runtime = RuntimeResults::new(Runtime::Docker);
    runtime.async_invocations = Some(AsyncResult {
        dispatchers: Some(2),
        accept: Some(AcceptResult {
            function: "acc".into(),
            concurrency: 64,
            warmup: stats(&[outcome(202, None, 5.0, false)]),
            warmup_seconds: 2.0,
            seconds: 10.0,
            accepted_per_s: 0.2,
            stats: accepted,
            cpu,
            drain: Drain {
                seconds: 3.25,
                ended: true,
                error: None,
            },
            dead_lettered: Some(0),
        }),
        bursts: vec![BurstResult {
            function: "burst".into(),
            pool_before: "one warm container".into(),
            calls: 3,
            concurrency: 64,
            accept: stats(&[outcome(202, None, 4.0, false)]),
            accept_seconds: 0.5,
            wait: Drain {
                seconds: 1.0,
                ended: false,
                error: None,
            },
            succeeded: 2,
            dead_lettered: 0,
            not_finished: 1,
            unread: 0,
            read_errors: Vec::new(),
            retried: 0,
            cold_starts: 1,
            seconds: Some(2.0),
            invocations_per_s: Some(1.0),
            latency_ms: crate::stats::summarize(&[100.0, 300.0]),
            queued_ms: crate::stats::summarize(&[80.0, 200.0]),
            running_ms: crate::stats::summarize(&[20.0, 100.0]),
        }],
        kill: Some(KillResult {
            function: "kill".into(),
            sleep_secs: 2.0,
            timeout_secs: 7,
            samples: vec![sample(1, true), sample(2, false)],
            kill_to_finished: crate::stats::summarize(&[3500.0]),
            redelivery_wait: crate::stats::summarize(&[1500.0]),
            stopped: vec!["w-3: exit status: 0 after 1.0 s".into()],
            skipped: None,
            error: Some("sample 3: no".into()),
        }),
    });
    let results = results_of(runtime, &["bench", "--scenarios", "async"]);
    let report = markdown(&results);
    for row in [
        "; async: accepted at concurrency 64 for 10 s, a burst of 2000, 3 killed workers",
        "## 10. Async invocations (docker)",
        "2 dispatchers consume that queue",
        "| `acc` | 10.0 | 2 | 0 | 1 | 4.00 | 6.00 | 6.00 | 6.00 | 2.0 s, 1 calls, 0 errors | \
         3.2 s | 0 |",
        "| `burst` | 0.5 s | 0 | 2 | 0 | 1 | 0 | 2.00 s | 1 | 100 | 300 | 300 | 300 | 0 | 1 |",
        "(waiting for a dispatcher) p50 / p99 80.0 / 200 ms, then to `finished_at` (running: \
         the worker's queue, the worker, the record) 20.0 / 100 ms.",
        "| 1 | w-1 | 0.40 s | running | 3.50 s | 1.50 s | 0.25 s | - | 1 | w-2 | yes |",
        "| 2 | w-2 | 0.40 s | running | 4.50 s | 2.50 s | 0.25 s | - | 1 | w-3 | yes |",
        "1 of 2 samples were redelivered",
        "kill → finished p50 3.50 s (max 3.50 s), redelivery wait p50 1.50 s (max 1.50 s)",
        "Replacement workers stopped (SIGTERM): w-3: exit status: 0 after 1.0 s.",
        "| 10. accept | docker | 503 | broker_unavailable | 1 |",
        "| 10. worker death | docker | | | | sample 3: no |",
        "| 10. async accept | docker | 1.90 |",
    ] {
        assert!(report.contains(row), "{row}\n{report}");
    }
    let json = serde_json::to_value(&results).unwrap();
    let a = &json["runtimes"][0]["async_invocations"];
    assert_eq!(a["bursts"][0]["invocations_per_s"], 1.0);
    assert_eq!(a["kill"]["samples"][0]["redelivered"], true);
    assert_eq!(a["accept"]["stats"]["ok"], 2);
}

#[test]
fn the_noisy_neighbour_table_compares_alone_with_beside() {
    let alone = stats(&[
        outcome(200, None, 1.0, false),
        outcome(200, None, 2.0, false),
    ]);
    let beside = stats(&[
        outcome(200, None, 3.0, true),
        outcome(200, None, 5.0, false),
        outcome(503, Some("expired"), 9.0, false),
    ]);
    let slow = stats(&[
        outcome(200, None, 10_000.0, true),
        outcome(504, Some("function_timeout"), 15_000.0, false),
    ]);
    let cpu = CpuUsage {
        seconds: 1.0,
        machine_cores: Some(1.5),
        processes: Vec::new(),
        bench_cores: Some(0.1),
        containers_cores: Some(0.2),
        services: Vec::new(),
        rest_cores: Some(0.0),
    };
    let mut runtime = RuntimeResults::new(Runtime::Docker);
    runtime.noisy_neighbour = Some(NoisyResult {
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
        settle: settle(true, Some(40.0), Some(40.0)),
        slow,
        cpu,
    });
    let results = Results {
        machine: machine(),
        settings: Config::parse_from(["bench"]),
        run_id: "0".into(),
        interrupted: false,
        runtimes: vec![runtime],
        memory_at_start: Vec::new(),
        memory_at_end: Vec::new(),
        targets: Vec::new(),
        cleanup: Cleanup::default(),
    };
    let report = markdown(&results);
    assert!(
        report.contains(
            "| docker | 2 | 1.00 / 3.00 | 3.00 | 2.00 / 5.00 | 2.00 / 5.00 | 200 ×2 / 200 ×2, \
             503 expired ×1 | 0 / 1 | 40 of 40 after 12.3 s, 40 → 40 jobs in flight | 200 \
             ×1, 504 function_timeout ×1 |"
        ),
        "{report}"
    );
    assert!(
        report.contains("| 6. beside | docker | 503 | expired | 1 |"),
        "{report}"
    );
    assert!(
        report.contains("| 6. slow calls | docker | 504 | function_timeout | 1 |"),
        "{report}"
    );
    assert!(
        report.contains("| 6. noisy, beside | docker | 1.50 |"),
        "{report}"
    );
    let json = serde_json::to_value(&results).unwrap();
    let noisy = &json["runtimes"][0]["noisy_neighbour"];
    assert_eq!(noisy["p50_ratio"], 3.0);
    assert_eq!(noisy["settle"]["inflight_jobs_before"], 40.0);
    assert_eq!(noisy["slow"]["errors"], 1);
}
