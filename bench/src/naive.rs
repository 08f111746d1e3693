//! Scenario 5, the floor without the platform: one `docker run --rm -i` per call, fed the
//! init and invoke frames of the container protocol (docker/README.md) on stdin; and the
//! scenario's section of the report.

use crate::client::HANDLER;
use crate::config::{Config, Runtime};
use crate::section::{Section, cell, opt_ms, table};
use crate::stats::{Summary, summarize};
use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// Scenario 5.
#[derive(Debug, Clone, Serialize)]
pub struct NaiveResult {
    /// The command, without the frames.
    pub command: String,
    pub runs: usize,
    pub ok: usize,
    pub failures: Vec<String>,
    /// From spawning `docker run` to reading the result frame.
    pub to_result_ms: Option<Summary>,
    /// From spawning `docker run` to its exit (the container removed): what a caller waits.
    pub to_exit_ms: Option<Summary>,
}

/// Scenario 5's part of the report.
pub struct NaiveSection;

impl Section for NaiveSection {
    type Result = NaiveResult;

    fn settings(&self, settings: &Config) -> Option<String> {
        Some(format!("{} docker runs", settings.naive_runs))
    }

    fn markdown(&self, runs: &[(Runtime, &NaiveResult)], _settings: &Config) -> String {
        let rows: Vec<String> = runs
            .iter()
            .map(|(runtime, n)| {
                format!(
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    runtime.as_str(),
                    n.runs,
                    n.failures.len(),
                    opt_ms(n.to_result_ms.as_ref(), |s| s.p50_ms),
                    opt_ms(n.to_result_ms.as_ref(), |s| s.p99_ms),
                    opt_ms(n.to_exit_ms.as_ref(), |s| s.p50_ms),
                    opt_ms(n.to_exit_ms.as_ref(), |s| s.p99_ms),
                )
            })
            .collect();
        table(
            "## 5. Naive floor: one `docker run` per call\n\n| runtime | runs | failures | to \
             result p50 | to result p99 | to exit p50 | to exit p99 |\n| --- | --: | --: | --: | \
             --: | --: | --: |",
            &rows,
        )
    }

    fn errors(&self, runtime: Runtime, naive: &NaiveResult) -> Vec<String> {
        naive
            .failures
            .iter()
            .map(|f| format!("| 5. naive | {} | | | 1 | {} |", runtime.as_str(), cell(f)))
            .collect()
    }
}

fn args(config: &Config, runtime: Runtime) -> Vec<String> {
    let mut args: Vec<String> = ["run", "--rm", "-i", "--network", "none"]
        .map(str::to_owned)
        .into();
    if runtime == Runtime::Gvisor {
        args.extend(["--runtime".to_owned(), config.gvisor_runtime.clone()]);
    }
    args.push(config.python_image.clone());
    args
}

/// The two frames written to the container's stdin.
fn frames() -> String {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let init = json!({"op": "init", "code": HANDLER, "handler": "handler", "env": {}});
    let invoke = json!({
        "op": "invoke",
        "id": "1",
        "event": {},
        "context": {
            "invocation_id": "1",
            "function_name": "f",
            "function_version": 1,
            "memory_mb": 128,
            "deadline_unix_ms": now_ms + 60_000,
        },
    });
    format!("{init}\n{invoke}\n")
}

/// The last `max` characters of `text`, trimmed.
fn tail(text: &str, max: usize) -> &str {
    let text = text.trim();
    let start = text
        .char_indices()
        .rev()
        .nth(max.saturating_sub(1))
        .map_or(0, |(i, _)| i);
    &text[start..]
}

/// One run: (ms to the result frame, ms to exit).
async fn one(config: &Config, runtime: Runtime) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let mut child = Command::new(&config.docker)
        .args(args(config, runtime))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {}", config.docker))?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    stdin.write_all(frames().as_bytes()).await?;
    drop(stdin);
    let mut stderr = child.stderr.take().context("no stderr")?;
    let stderr_task = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let mut to_result = None;
    let mut result_frame = None;
    while let Some(line) = lines.next_line().await? {
        let frame: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if frame["op"] == "result" && to_result.is_none() {
            to_result = Some(started.elapsed().as_secs_f64() * 1000.0);
            result_frame = Some(frame);
        }
    }
    let status = child.wait().await?;
    let to_exit = started.elapsed().as_secs_f64() * 1000.0;
    let stderr = stderr_task.await.unwrap_or_default();
    let tail = tail(&stderr, 300);
    match (to_result, result_frame) {
        (Some(to_result), Some(frame))
            if frame["ok"] == true && frame["result"] == json!({"ok": true}) =>
        {
            if !status.success() {
                bail!("docker run exited with {status} after the result: {tail}");
            }
            Ok((to_result, to_exit))
        }
        (Some(_), Some(frame)) => bail!("the result frame is not {{\"ok\": true}}: {frame}"),
        _ => bail!("no result frame; docker run exited with {status}: {tail}"),
    }
}

/// `naive_runs` sequential runs.
pub async fn run(config: &Config, runtime: Runtime) -> NaiveResult {
    eprintln!(
        "[bench] {}: 5. naive floor: {} sequential docker runs",
        runtime.as_str(),
        config.naive_runs
    );
    let mut to_result = Vec::new();
    let mut to_exit = Vec::new();
    let mut failures = Vec::new();
    for _ in 0..config.naive_runs {
        match tokio::time::timeout(config.request_timeout(), one(config, runtime)).await {
            Ok(Ok((result_ms, exit_ms))) => {
                to_result.push(result_ms);
                to_exit.push(exit_ms);
            }
            Ok(Err(error)) => failures.push(format!("{error:#}")),
            Err(_) => failures.push(format!(
                "no exit within {} s",
                config.request_timeout().as_secs()
            )),
        }
    }
    NaiveResult {
        command: format!("{} {}", config.docker, args(config, runtime).join(" ")),
        runs: config.naive_runs,
        ok: to_exit.len(),
        failures,
        to_result_ms: summarize(&to_result),
        to_exit_ms: summarize(&to_exit),
    }
}
