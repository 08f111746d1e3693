//! Function affinity (DESIGN §21): each function's jobs go to its home worker, by consistent
//! hashing over the live workers of its runtime (RabbitMQ's consistent-hash exchange), so its
//! calls find its warm containers there; a job whose home is gone spills to any worker.

use crate::support::{TestApp, WorkerProcess, python, scrape};
use common::Runtime;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// The workers that ran `name`'s calls, from its invocation records.
async fn workers_of(app: &TestApp, name: &str) -> BTreeSet<String> {
    let (status, records) = app.get(&format!("/metrics/?function={name}")).await;
    assert_eq!(status, 200, "{records}");
    records
        .as_array()
        .expect("a list of records")
        .iter()
        .map(|record| record["worker_id"].as_str().unwrap_or("none").to_owned())
        .collect()
}

#[tokio::test]
async fn a_functions_calls_land_on_its_home_worker_and_spill_to_another_when_it_is_gone() {
    // The default: a job its home cannot take at once spills at once.
    homes_then_spill("0").await;
}

#[tokio::test]
async fn with_a_home_wait_too() {
    // A long home wait, so that a job of a live home never spills on a loaded machine.
    homes_then_spill("2000").await;
}

/// Sixteen functions called one call at a time stay on their homes; one whose home is killed
/// moves to the other worker.
async fn homes_then_spill(home_wait_ms: &str) {
    let app = TestApp::start().await;
    let ids = [format!("{}a", app.prefix), format!("{}b", app.prefix)];
    let env = [
        ("HOME_WAIT_MS", home_wait_ms),
        ("NODE_ID", "node-under-test"),
    ];
    let mut a = WorkerProcess::start_with(&app, &ids[0], Runtime::Docker, &env).await;
    let mut b = WorkerProcess::start_with(&app, &ids[1], Runtime::Docker, &env).await;

    // Sixteen functions, each called three times one after the other (so its home always has
    // room): every call of a function runs on one worker, its home.
    let mut homes: BTreeMap<String, String> = BTreeMap::new();
    for n in 0..16 {
        let name = format!("homed_{n}");
        app.create_function(python(&name, "def handler(event, context):\n    return 1"))
            .await;
        for _ in 0..3 {
            let (status, body) = app.invoke("execute", &name, json!({})).await;
            assert_eq!(status, 200, "{body}");
        }
        let workers = workers_of(&app, &name).await;
        assert_eq!(workers.len(), 1, "{name} ran on {workers:?}");
        homes.insert(name, workers.into_iter().next().unwrap());
    }
    // The hash spreads the functions over both workers (all sixteen on one has odds of 1 in
    // 32,768 with an even ring).
    let used: BTreeSet<&String> = homes.values().collect();
    assert_eq!(used.len(), 2, "homes: {homes:?}");
    // The workers say so: every job came from a home queue, none spilled; and they name
    // their node, and the room they have left.
    let mut taken = BTreeMap::new();
    for worker in [&a, &b] {
        let text = scrape(&worker.metrics_url).await;
        for line in text
            .lines()
            .filter(|l| l.starts_with("faas_worker_jobs_taken_total{"))
        {
            let source = if line.contains("source=\"home\"") {
                "home"
            } else {
                "shared"
            };
            let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            *taken.entry(source).or_insert(0.0) += count;
        }
        let info = format!(
            "faas_worker_info{{worker=\"{}\",node=\"node-under-test\",runtime=\"docker\"}} 1",
            worker.id
        );
        assert!(text.contains(&info), "{text}");
        assert!(text.contains("faas_worker_memory_mb{state=\"free\",runtime=\"docker\"}"));
        assert!(text.contains("faas_pool_acquisitions_total{runtime=\"docker\",how=\"idle\"}"));
        assert!(text.contains("faas_worker_queue_wait_max_seconds{runtime=\"docker\"}"));
    }
    assert_eq!(taken.get("home"), Some(&48.0), "{taken:?}");
    assert_eq!(
        taken.get("shared").copied().unwrap_or(0.0),
        0.0,
        "{taken:?}"
    );

    // The home of homed_0 dies: its calls spill to the other worker and keep answering.
    let (gone, other) = if homes["homed_0"] == ids[0] {
        (&mut a, &ids[1])
    } else {
        (&mut b, &ids[0])
    };
    gone.signal("KILL");
    gone.child.wait().await.unwrap();
    for _ in 0..2 {
        let (status, body) = app.invoke("execute", "homed_0", json!({})).await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, records) = app.get("/metrics/?function=homed_0").await;
    let latest: Vec<&str> = records.as_array().unwrap()[..2]
        .iter()
        .map(|record| record["worker_id"].as_str().unwrap())
        .collect();
    assert_eq!(latest, [other.as_str(); 2], "{records}");

    for worker in [&mut a, &mut b] {
        if worker.child.try_wait().unwrap().is_none() {
            worker.signal("TERM");
            assert!(worker.child.wait().await.unwrap().success());
        }
    }
    for leftover in crate::support::containers_of(&ids[0])
        .into_iter()
        .chain(crate::support::containers_of(&ids[1]))
    {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &leftover])
            .output();
    }
    app.stop().await;
}
