//! Prometheus series of deleted functions expire (`METRICS_IDLE_TIMEOUT_SECS`) while the fixed
//! series the dashboards read stay: checked on the real `api` binary, whose recorder is its own
//! (a test process shares one recorder between all the apis it runs).

use crate::support::{TestApp, amqp_url, free_local_addr, python, scrape, worker_config};
use common::Runtime;
use serde_json::json;
use std::time::Duration;

fn has_series(metrics: &str, name: &str, label: &str) -> bool {
    metrics
        .lines()
        .any(|line| line.starts_with(name) && line.contains(label))
}

#[tokio::test]
async fn the_series_of_a_deleted_function_expire_and_the_fixed_ones_stay() {
    // The in-process app provides the database, the queues and a worker; the binary shares them.
    let mut app = TestApp::start().await;
    app.add_worker(worker_config(Runtime::Docker, &app.prefix.clone()))
        .await;
    let (api_addr, metrics_addr) = (free_local_addr(), free_local_addr());
    let mut api = tokio::process::Command::new(env!("CARGO_BIN_EXE_api"))
        .env("DATABASE_URL", &app.database_url)
        .env("AMQP_URL", amqp_url())
        .env("QUEUE_PREFIX", &app.prefix)
        .env("API_ADDR", api_addr.to_string())
        .env("METRICS_ADDR", metrics_addr.to_string())
        .env("FUNCTIONS_ADDR", free_local_addr().to_string())
        .env("METRICS_IDLE_TIMEOUT_SECS", "2")
        .env("ADMIN_KEY", crate::support::ADMIN_KEY)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("the api binary starts");
    let base = format!("http://{api_addr}");
    let metrics_url = format!("http://{metrics_addr}/metrics");
    crate::support::wait_for_api_process(&mut api, &base).await;

    let response = app
        .client
        .post(format!("{base}/functions/"))
        .json(&python(
            "expiring",
            "def handler(event, context):\n    return 1",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<serde_json::Value>().await.unwrap()["id"].clone();
    let response = app
        .client
        .post(format!("{base}/execute/expiring"))
        .json(&json!({"event": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let function_label = "function=\"expiring\"";
    let before = scrape(&metrics_url).await;
    assert!(
        has_series(&before, "faas_invocations_total{", function_label),
        "{before}"
    );
    let response = app
        .client
        .delete(format!("{base}/functions/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = scrape(&metrics_url).await;
    assert!(
        !has_series(&after, "faas_invocations_total{", function_label),
        "the deleted function's series is gone:\n{after}"
    );
    assert!(!has_series(
        &after,
        "faas_cold_starts_total{",
        function_label
    ));
    for fixed in [
        "faas_broker_errors_total ",
        "faas_database_errors_total ",
        "faas_records_dropped_total{reason=\"rejected\"}",
        "faas_inflight_invocations{runtime=\"docker\"}",
    ] {
        assert!(after.contains(fixed), "{fixed} is still exported:\n{after}");
    }

    let status = std::process::Command::new("kill")
        .args(["-TERM", &api.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), api.wait())
        .await
        .expect("the api binary stops on SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit}");
    app.stop().await;
}
