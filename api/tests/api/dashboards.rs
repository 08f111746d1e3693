//! The Grafana dashboards read only metrics that really exist: every metric name in their
//! queries is exported by a running api and real worker processes (or by RabbitMQ's own
//! prometheus plugin, for `rabbitmq_*`).

use crate::support::{TestApp, WorkerProcess, python, scrape};
use common::Runtime;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const DASHBOARDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker/grafana/dashboards");

/// Series Prometheus makes itself for every target.
const PROMETHEUS_OWN: &[&str] = &["up"];

/// RabbitMQ's plugin with per-queue series, as the cluster's `rabbitmq.conf` configures it.
fn rabbitmq_metrics_url() -> String {
    std::env::var("RABBITMQ_METRICS_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:15692/metrics/per-object".into())
}

#[tokio::test]
async fn every_metric_a_dashboard_reads_is_exported() {
    let used = dashboard_metrics();
    assert!(
        used.contains("faas_invocations_total") && used.len() >= 10,
        "the dashboards' queries were not read: {used:?}"
    );

    let app = TestApp::start().await;
    let mut docker =
        WorkerProcess::start_with(&app, &format!("{}dash-d", app.prefix), Runtime::Docker, &[])
            .await;
    let mut gvisor =
        WorkerProcess::start_with(&app, &format!("{}dash-g", app.prefix), Runtime::Gvisor, &[])
            .await;
    // One cold call per runtime, so that every labelled series has a sample.
    app.create_function(python("dash", "def handler(event, context):\n    return 1"))
        .await;
    for endpoint in ["execute", "execute_gvisor"] {
        let (status, body) = app.invoke(endpoint, "dash", json!({})).await;
        assert_eq!(status, 200, "{endpoint}: {body}");
    }
    // An async call that fails once and is dead-lettered: the async series get samples.
    let mut failing = python(
        "dash_fail",
        "def handler(event, context):\n    raise ValueError()",
    );
    failing["max_retries"] = json!(1);
    app.create_function(failing).await;
    let (status, body) = app.invoke("execute_async", "dash_fail", json!({})).await;
    assert_eq!(status, 202, "{body}");
    let status_url = body["status_url"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    while app.get(&status_url).await.1["status"] != "dead_lettered" {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "not dead-lettered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    let mut exported = BTreeSet::new();
    for url in [&app.metrics_url, &docker.metrics_url, &gvisor.metrics_url] {
        exported.extend(exported_names(&scrape(url).await));
    }
    let rabbitmq_url = rabbitmq_metrics_url();
    let rabbitmq = reqwest::get(&rabbitmq_url)
        .await
        .unwrap_or_else(|e| {
            panic!("RabbitMQ's prometheus plugin must answer at {rabbitmq_url} (scripts/test.sh enables it): {e}")
        })
        .text()
        .await
        .unwrap();
    let rabbitmq_families = declared_families(&rabbitmq);

    let missing: Vec<&String> = used
        .iter()
        .filter(|name| !PROMETHEUS_OWN.contains(&name.as_str()))
        .filter(|name| {
            if name.starts_with("rabbitmq_") {
                !rabbitmq_families.contains(*name)
            } else {
                !exported.contains(*name)
            }
        })
        .collect();
    assert!(
        missing.is_empty(),
        "dashboards read metrics nobody exports: {missing:?}\nexported: {exported:?}"
    );
    for worker in [&mut docker, &mut gvisor] {
        // SIGTERM, so that the workers remove their containers.
        worker.signal("TERM");
        worker.child.wait().await.unwrap();
    }
    app.stop().await;
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (le, runtime) (rate(faas_a_bucket{runtime=~"$runtime", x="up{"}[1m]))) / on (job) group_left count without (instance) (faas_b == 1) or vector(0) + up offset 5m"#,
    );
    let want: BTreeSet<String> = ["faas_a_bucket", "faas_b", "up"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(names, want);
}

/// Every metric name in the `expr` of every panel of every dashboard file.
fn dashboard_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let files = std::fs::read_dir(DASHBOARDS).expect("docker/grafana/dashboards exists");
    for entry in files {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let dashboard: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            let mut exprs = Vec::new();
            collect_exprs(&dashboard, &mut exprs);
            for expr in exprs {
                names.extend(metric_names(&expr));
            }
        }
    }
    names
}

fn collect_exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(expr)) = map.get("expr") {
                out.push(expr.clone());
            }
            map.values().for_each(|v| collect_exprs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// The metric names in a PromQL expression: identifiers that are not functions, aggregation
/// operators, keywords, label names (in `{…}`, `by (…)` and the like) or inside strings.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const AGGREGATIONS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
    ];
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset"];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // Skips to the matching `close`, stepping over quoted strings.
    let skip_block = |mut i: usize, close: char| {
        while i < chars.len() && chars[i] != close {
            if chars[i] == '"' || chars[i] == '\'' {
                let quote = chars[i];
                i += 1;
                while i < chars.len() && chars[i] != quote {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
            }
            i += 1;
        }
        i + 1
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' => i = skip_block(i + 1, '}'),
            '[' => i = skip_block(i + 1, ']'),
            '"' | '\'' => i = skip_block(i + 1, c),
            c if c.is_ascii_digit() => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let called = chars.get(next) == Some(&'(');
                if LABEL_LISTS.contains(&word.as_str()) {
                    if called {
                        i = skip_block(next + 1, ')');
                    }
                } else if KEYWORDS.contains(&word.as_str()) {
                    if word == "offset" {
                        while i < chars.len() && !chars[i].is_whitespace() {
                            i += 1;
                        }
                        // The duration after `offset`.
                        while i < chars.len() && chars[i].is_whitespace() {
                            i += 1;
                        }
                        while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                            i += 1;
                        }
                    }
                } else if !called && !AGGREGATIONS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Names of the series in Prometheus text (histograms give `_bucket`, `_sum` and `_count`).
fn exported_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(String::from)
        .collect()
}

/// Families a target declares (`# TYPE name …`), with or without samples right now: a queue
/// metric has no sample until some queue exists.
fn declared_families(text: &str) -> BTreeSet<String> {
    let mut names = exported_names(text);
    names.extend(
        text.lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .filter_map(|rest| rest.split(' ').next())
            .map(String::from),
    );
    names
}
