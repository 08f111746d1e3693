//! Bounded job queues: a publish the broker refuses (`reject-publish` on a full queue) is a
//! prompt 503 `overloaded`, heard through publisher confirms; a queue declared with other
//! bounds stops the api at start with a sentence that says what to do.

use crate::support::{TestApp, amqp_url, listeners_on_port_0, python, scrape};
use common::Runtime;
use common::broker::Topology;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_call_the_full_job_queue_refuses_is_503_overloaded_at_once() {
    let app = TestApp::start_with(|config| {
        config.broker.queue_max_length = 1;
        config.invoke_overhead_ms = 2_000;
    })
    .await;
    let mut function = python("queued", "def handler(event, context):\n    return 1");
    function["timeout"] = json!(1);
    app.create_function(function).await;

    // A consumer that takes one job and never acks it: the api sees a worker, the queue fills.
    let connection = common::broker::connect(&amqp_url(), "faas-test-holder")
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .basic_qos(1, BasicQosOptions::default())
        .await
        .unwrap();
    let queue = Topology::new(&app.prefix).queue(Runtime::Docker);
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "holder".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let call = || {
        let (client, url) = (app.client.clone(), app.url("/execute/queued"));
        tokio::spawn(async move { client.post(url).json(&json!({})).send().await })
    };

    let first = call();
    let held = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .expect("the holder gets the first job")
        .unwrap()
        .unwrap();
    let second = call();
    let ready = async || {
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
    };
    for _ in 0..100 {
        if ready().await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ready().await, 1, "the second job waits in the queue");

    let started = Instant::now();
    let response = app
        .client
        .post(app.url("/execute/queued"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "overloaded", "{body}");
    assert!(
        elapsed < Duration::from_secs(1),
        "refused at once: {elapsed:?}"
    );
    assert_eq!(ready().await, 1, "the refused job is not queued");
    let metrics = scrape(&app.metrics_url).await;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("faas_invocations_total{")
                && line.contains("function=\"queued\"")
                && line.contains("status=\"overloaded\"")),
        "counted as overloaded:\n{metrics}"
    );

    drop(held);
    let _ = connection.close(200, "".into()).await;
    // Nobody answers the first two: they end at their deadline (1 s + 2 s).
    for call in [first, second] {
        let response = call.await.unwrap().unwrap();
        assert_eq!(response.status(), 504);
    }
    app.stop().await;
}

#[tokio::test]
async fn an_api_whose_job_queue_exists_with_other_bounds_fails_at_start_saying_why() {
    let app = TestApp::start_with(|config| config.broker.queue_max_length = 5).await;
    let mut config = <api::Config as clap::Parser>::parse_from(["api"]);
    config.database_url = app.database_url.clone();
    config.broker.amqp_url = amqp_url();
    config.broker.queue_prefix = app.prefix.clone();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        api::run(config, listeners_on_port_0().await, std::future::pending()),
    )
    .await
    .expect("the api gives up at start");
    let error = format!("{:#}", result.expect_err("the api refuses to start"));
    assert!(
        error.contains("a job queue exists on the broker with other arguments")
            && error.contains("QUEUE_MAX_LENGTH"),
        "{error}"
    );
    app.stop().await;
}
