//! Functions and faults that try to hurt everyone else, end to end through the real api, real
//! workers (in this process or as their own processes) and real containers: slow functions
//! that would starve others, results and floods that would exhaust memory, a worker that loses
//! its broker connection mid-call, and a SIGTERM after all of that.

use crate::support::{
    TestApp, WorkerProcess, broker_connection_pid, containers_of, python, scrape, worker_config,
};
use common::Runtime;
use futures_util::future::join_all;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn forty_slow_calls_of_one_function_do_not_hold_up_a_warm_call_of_another() {
    let mut app = TestApp::start().await;
    // A worker as deployed: its prefetch follows its memory budget, not a small fixed number.
    let mut config = worker_config(Runtime::Docker, &app.prefix.clone());
    config.concurrency = None;
    config.memory_mb = Some(8 * 1024);
    app.add_worker(config).await;
    let mut slow = python(
        "sleepy",
        "import time\ndef handler(event, context):\n    time.sleep(20)\n    return 'slept'",
    );
    slow["timeout"] = json!(60);
    app.create_function(slow).await;
    app.create_function(python(
        "quick",
        "def handler(event, context):\n    return 'quick'",
    ))
    .await;
    let (status, warm) = app.invoke("execute", "quick", json!({})).await;
    assert_eq!(status, 200, "{warm}");

    let sleepers = join_all((0..40).map(|_| {
        let (client, url) = (app.client.clone(), app.url("/execute/sleepy"));
        tokio::spawn(async move {
            let response = client.post(url).json(&json!({"event": {}})).send().await?;
            Ok::<_, reqwest::Error>(response.status().as_u16())
        })
    }));
    let sleepers = tokio::spawn(sleepers);
    // The sleepers' containers start while these calls run; each must still be the warm one.
    let mut quick_answers = Vec::new();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (status, body) = app.invoke("execute", "quick", json!({})).await;
        assert_eq!(status, 200, "a warm call during 40 slow ones: {body}");
        assert_eq!(body["cold_start"], false, "{body}");
        quick_answers.push(body["duration_ms"].as_f64().unwrap());
    }
    let statuses: Vec<u16> = sleepers
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert!(
        statuses.iter().all(|&s| s == 200),
        "every slow call finished too: {statuses:?}"
    );
    // No timing assertion here (bench's noisy-neighbour scenario measures it); printed for the
    // curious reader of the test log.
    quick_answers.sort_by(f64::total_cmp);
    println!(
        "quick call during 40 sleepers: median {:.1} ms, max {:.1} ms",
        quick_answers[quick_answers.len() / 2],
        quick_answers[quick_answers.len() - 1]
    );
    app.stop().await;
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn floods_and_huge_results_cost_the_worker_a_bounded_amount_and_sigterm_still_exits_at_once()
{
    let app = TestApp::start().await;
    let id = format!("{}flood", app.prefix);
    let mut worker = WorkerProcess::start(&app, &id).await;
    let pid = worker.pid();

    // 256 MiB of '[' straight into the protocol descriptor: as JSON, an array nested that deep
    // would cost many times its size to parse.
    let mut flood = python(
        "flood",
        "import __main__, os\ndef handler(event, context):\n    chunk = b'[' * (1 << 20)\n    for _ in range(256):\n        os.write(__main__.proto_out, chunk)\n    return 1",
    );
    flood["timeout"] = json!(60);
    app.create_function(flood).await;
    let mut big = python(
        "big",
        "def handler(event, context):\n    return 'x' * (20 * 1024 * 1024)",
    );
    big["timeout"] = json!(30);
    app.create_function(big).await;
    app.create_function(python(
        "fine",
        "def handler(event, context):\n    return 'fine'",
    ))
    .await;
    let (status, _) = app.invoke("execute", "fine", json!({})).await;
    assert_eq!(status, 200);
    let baseline = rss_kib(pid);

    let sampling = tokio::spawn(async move {
        let mut peak = 0;
        for _ in 0..400 {
            peak = peak.max(rss_kib(pid));
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        peak
    });
    let started = Instant::now();
    let (status, body) = app.invoke("execute", "flood", json!({})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "result_too_large", "{body}");
    let flood_took = started.elapsed();

    let started = Instant::now();
    let (status, body) = app.invoke("execute", "big", json!({})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "result_too_large", "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("20971522 bytes") && detail.contains("6291456"),
        "the size and the limit are named: {detail}"
    );
    assert!(
        // Its timeout is 30 s; a CI machine busy with other tests has taken over 5 s to
        // generate and refuse the 20 MB.
        started.elapsed() < Duration::from_secs(15),
        "answered at once, not at the timeout: {:?}",
        started.elapsed()
    );
    let peak = sampling.await.unwrap();
    println!(
        "worker RSS: {baseline} KiB before, peak {peak} KiB during a 256 MiB flood ({flood_took:?}) and a 20 MB result"
    );
    assert!(
        peak < baseline + 64 * 1024,
        "the worker held at most one frame's worth: {baseline} KiB before, {peak} KiB at peak"
    );

    // The platform still works, and the worker still stops at once.
    let (status, body) = app.invoke("execute", "fine", json!({})).await;
    assert_eq!((status, body["result"].clone()), (200, json!("fine")));
    let metrics = scrape(&worker.metrics_url).await;
    assert!(metrics.contains("faas_worker_jobs_total"), "{metrics}");
    let stopping = Instant::now();
    worker.signal("TERM");
    let exit = tokio::time::timeout(Duration::from_secs(10), worker.child.wait())
        .await
        .expect("a worker with nothing in flight exits within seconds of SIGTERM")
        .unwrap();
    assert!(exit.success(), "exit status {exit}");
    println!("worker exited {:?} after SIGTERM", stopping.elapsed());
    assert!(containers_of(&id).is_empty(), "its containers are removed");
    app.stop().await;
}

/// The pid, as rabbitmqctl names it, of the broker connection whose client called itself `name`.
fn connection_pid(name: &str) -> Option<String> {
    let property = format!("{{\"connection_name\",\"{name}\"}}");
    broker_connection_pid(|properties| properties.contains(&property))
}

#[tokio::test]
async fn a_worker_whose_broker_connection_dies_mid_call_still_gets_the_caller_an_answer() {
    let app = TestApp::start().await;
    let id = format!("{}cut", app.prefix);
    let _worker = WorkerProcess::start(&app, &id).await;
    app.create_function(python(
        "cut",
        "import time\ndef handler(event, context):\n    time.sleep(2)\n    return 'done'",
    ))
    .await;
    let connection = format!("{id}-docker");
    let pid = connection_pid(&connection).expect("the worker's connection is listed");

    let call = {
        let (client, url) = (app.client.clone(), app.url("/execute/cut"));
        tokio::spawn(async move { client.post(url).json(&json!({"event": {}})).send().await })
    };
    // Once the container runs the call, the broker closes the worker's connection: its reply
    // cannot be published on it, and the job goes back to the queue.
    for _ in 0..100 {
        if !containers_of(&id).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let closed = std::process::Command::new("rabbitmqctl")
        .args([
            "-q",
            "close_connection",
            &pid,
            "test: connection cut mid-call",
        ])
        .status()
        .unwrap();
    assert!(closed.success());

    let response = call.await.unwrap().unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        status, 200,
        "the job ran again once the worker reconnected: {body}"
    );
    assert_eq!(body["result"], "done");
    assert!(
        connection_pid(&connection).is_some_and(|new| new != pid),
        "the worker reconnected on its own"
    );
    app.stop().await;
}
