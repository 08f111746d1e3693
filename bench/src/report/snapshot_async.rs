//! Scenario 10's results for the report's snapshot (`snapshot.rs`), apart so that each file
//! stays short.

use super::snapshot::{cpu, failed, ok, stats};
use crate::async_calls::{AcceptResult, AsyncResult, BurstResult, Drain, KillResult, KillSample};
use crate::stats::summarize;

fn drain(seconds: f64, ended: bool) -> Drain {
    Drain {
        seconds,
        ended,
        error: None,
    }
}

fn burst(function: &str, seconds: Option<f64>) -> BurstResult {
    BurstResult {
        function: function.into(),
        pool_before: "one warm container".into(),
        calls: 2000,
        concurrency: 64,
        accept: stats(&[
            ok(4.0, false, None),
            ok(5.0, false, None),
            failed(503, "broker_unavailable", "the broker | is gone"),
        ]),
        accept_seconds: 1.5,
        wait: drain(9.5, seconds.is_some()),
        succeeded: 1998,
        dead_lettered: 1,
        not_finished: 0,
        unread: 1,
        read_errors: vec!["id-7: GET /invocations/id-7 answered 500 | oops\nsorry".into()],
        retried: 3,
        cold_starts: 12,
        seconds,
        invocations_per_s: seconds.map(|s| 1998.0 / s),
        latency_ms: summarize(&[120.0, 800.0, 1500.0, 2400.0]),
        queued_ms: summarize(&[100.0, 700.0, 1400.0]),
        running_ms: seconds.and_then(|_| summarize(&[20.0, 100.0])),
    }
}

fn kill_sample(i: usize, status_at_kill: &str, redelivered: bool) -> KillSample {
    KillSample {
        invocation_id: format!("id-{i}"),
        killed: format!("w-{i}"),
        killed_pid: 100 + i as u32,
        replacement: format!("w-{}", i + 1),
        replacement_ready_s: 0.4 + i as f64 / 10.0,
        status_at_kill: status_at_kill.into(),
        status: "succeeded".into(),
        kill_to_finished_s: redelivered.then_some(2.5 + i as f64),
        redelivery_wait_s: redelivered.then_some(0.5 + i as f64),
        attempts: if redelivered { 2 } else { 1 },
        ran_on: redelivered.then(|| format!("w-{}", i + 1)),
        cold_start: redelivered.then_some(i.is_multiple_of(2)),
        init_ms: Some(250.0),
        run_ms: redelivered.then_some(2001.0),
        redelivered,
    }
}

pub(super) fn async_calls() -> AsyncResult {
    AsyncResult {
        dispatchers: Some(2),
        accept: Some(AcceptResult {
            function: "bench-1-docker-async-accept".into(),
            concurrency: 64,
            warmup: stats(&[ok(5.0, false, None), failed(503, "expired", "late")]),
            warmup_seconds: 2.0,
            seconds: 10.0,
            accepted_per_s: 1234.5,
            stats: stats(&[
                ok(4.0, false, None),
                ok(6.0, false, None),
                failed(503, "broker_unavailable", "no broker"),
            ]),
            cpu: cpu(1.8, true),
            drain: drain(3.25, false),
            dead_lettered: Some(crate::async_calls::DEAD_LETTERED_COUNTED),
        }),
        bursts: vec![
            burst("bench-1-docker-async-burst", Some(4.5)),
            burst("bench-1-docker-async-burst", None),
        ],
        kill: Some(KillResult {
            function: "bench-1-docker-async-kill".into(),
            sleep_secs: 2.0,
            timeout_secs: 7,
            samples: vec![
                kill_sample(1, "running", true),
                kill_sample(2, "queued", false),
                kill_sample(3, "running", true),
            ],
            kill_to_finished: summarize(&[3500.0, 5500.0]),
            redelivery_wait: summarize(&[1500.0, 3500.0]),
            stopped: vec![
                "w-4: exit status: 0 after 1.0 s".into(),
                "w-5: still running 60 s after SIGTERM: killed".into(),
            ],
            skipped: Some("--async-kill-samples 0".into()),
            error: Some("sample 4: the | worker\nexited".into()),
        }),
    }
}
