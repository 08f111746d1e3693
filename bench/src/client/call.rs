//! One call of a function, timed from the client's side: where it goes ([`Target`]), and what
//! its answer says ([`CallOutcome`]).

use super::{Api, truncate};
use crate::config::Runtime;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The body of every invocation through `/execute`.
const EVENT_BODY: &str = r#"{"event": {}}"#;

/// The body of every call of an HTTP trigger: the event `/execute` is sent, as the request's
/// own body (the function finds it, as a string, in the payload's `body`).
const ROUTE_BODY: &str = "{}";

/// Where a call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `POST /execute/{name}` on docker, `/execute_gvisor/{name}` on gvisor, with
    /// `{"event": {}}`; the answer wraps the result.
    Execute { name: String, runtime: Runtime },
    /// `POST` to an HTTP trigger's path on the functions' origin with `{}`; the answer is the result.
    Route { path: String },
    /// `POST /execute_async/{name}` with `{"event": {}}`; the answer is a 202 with the
    /// invocation's id (the function runs later, on its own runtime).
    Async { name: String },
}

impl Target {
    /// `/execute/{name}` on `runtime`.
    pub fn execute(name: &str, runtime: Runtime) -> Self {
        Target::Execute {
            name: name.to_owned(),
            runtime,
        }
    }
}

/// How an answer carries the handler's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// `{result, cold_start, duration_ms, timing, ...}`, as `/execute` answers.
    Wrapped,
    /// The result itself, as an HTTP trigger answers a result without `statusCode`.
    Bare,
    /// A 202 `{invocation_id, status_url}`, as `/execute_async` answers an accepted call.
    Accepted,
}

/// The server's breakdown of a call, when the answer carries `timing`.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    pub queue_ms: Option<f64>,
    pub init_ms: Option<f64>,
    pub run_ms: Option<f64>,
}

/// One invocation as the client saw it.
#[derive(Debug, Clone, Default)]
pub struct CallOutcome {
    /// HTTP status; 0 when no HTTP answer came (connection error, client timeout).
    pub status: u16,
    /// From sending the request to having read the whole answer.
    pub latency_ms: f64,
    pub cold_start: Option<bool>,
    /// The api's own `duration_ms`.
    pub duration_ms: Option<f64>,
    pub timing: Option<Timing>,
    /// `code` of a failed call: the answer's, `-` when it had none, `transport` or
    /// `client_timeout` when no answer came, `wrong_result` for a 200 without `{"ok": true}`
    /// (or a 202 without an `invocation_id`).
    pub code: Option<String>,
    /// `detail` of an error answer.
    pub detail: Option<String>,
    /// The `invocation_id` of an accepted async call.
    pub invocation_id: Option<String>,
}

impl CallOutcome {
    /// A 200 carrying the handler's `{"ok": true}`, or the 202 of an accepted async call.
    pub fn is_ok(&self) -> bool {
        matches!(self.status, 200 | 202) && self.code.is_none()
    }

    /// `status code: detail`, for a progress line about a failed call.
    pub fn describe(&self) -> String {
        format!(
            "{} {}: {}",
            self.status,
            self.code.as_deref().unwrap_or("-"),
            self.detail.as_deref().unwrap_or("")
        )
    }
}

impl Api {
    /// One invocation: `/execute/{name}` on docker, `/execute_gvisor/{name}` on gvisor.
    pub async fn invoke(&self, name: &str, runtime: Runtime) -> CallOutcome {
        self.invoke_within(name, runtime, None).await
    }

    /// One call of `target`.
    pub async fn call(&self, target: &Target) -> CallOutcome {
        match target {
            Target::Execute { name, runtime } => self.invoke(name, *runtime).await,
            Target::Route { path } => self.timed(path, ROUTE_BODY, None, Answer::Bare).await,
            Target::Async { name } => {
                let path = format!("/execute_async/{name}");
                self.timed(&path, EVENT_BODY, None, Answer::Accepted).await
            }
        }
    }

    /// [`Api::invoke`] with its own client timeout instead of the client's, for functions
    /// that are meant to run longer than `--request-timeout-secs`.
    pub async fn invoke_within(
        &self,
        name: &str,
        runtime: Runtime,
        timeout: Option<Duration>,
    ) -> CallOutcome {
        let path = match runtime {
            Runtime::Docker => "execute",
            Runtime::Gvisor => "execute_gvisor",
        };
        self.timed(
            &format!("/{path}/{name}"),
            EVENT_BODY,
            timeout,
            Answer::Wrapped,
        )
        .await
    }

    /// `POST path` with the JSON `body`, timed from sending to having read the whole answer.
    async fn timed(
        &self,
        path: &str,
        body: &'static str,
        timeout: Option<Duration>,
        kind: Answer,
    ) -> CallOutcome {
        let mut request = self
            .request(reqwest::Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let started = Instant::now();
        let sent = request.send().await;
        let answer = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                response.bytes().await.map(|body| (status, body))
            }
            Err(error) => Err(error),
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        match answer {
            Ok((status, body)) => parse_answer(status, &body, latency_ms, kind),
            Err(error) => CallOutcome {
                status: 0,
                latency_ms,
                code: Some(if error.is_timeout() {
                    "client_timeout".to_owned()
                } else {
                    "transport".to_owned()
                }),
                detail: Some(error_chain(&error)),
                ..CallOutcome::default()
            },
        }
    }
}

/// The error with its sources, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads what matters out of an invocation answer.
fn parse_answer(status: u16, body: &[u8], latency_ms: f64, kind: Answer) -> CallOutcome {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut outcome = CallOutcome {
        status,
        latency_ms,
        cold_start: value["cold_start"].as_bool(),
        duration_ms: value["duration_ms"].as_f64(),
        timing: value
            .get("timing")
            .filter(|t| t.is_object())
            .map(|t| Timing {
                queue_ms: t["queue_ms"].as_f64(),
                init_ms: t["init_ms"].as_f64(),
                run_ms: t["run_ms"].as_f64(),
            }),
        code: None,
        detail: None,
        invocation_id: None,
    };
    // An accepted async call answers 202 (a 200 would be a repeated `Idempotency-Key`, which
    // the benchmark never sends); every other call answers 200.
    let expected = if kind == Answer::Accepted { 202 } else { 200 };
    if status != expected {
        outcome.code = Some(value["code"].as_str().unwrap_or("-").to_owned());
        outcome.detail = Some(match value["detail"].as_str() {
            Some(detail) => detail.to_owned(),
            None => truncate(&String::from_utf8_lossy(body), 300),
        });
        return outcome;
    }
    let right = match kind {
        Answer::Wrapped => value["result"] == json!({"ok": true}),
        Answer::Bare => value == json!({"ok": true}),
        Answer::Accepted => {
            outcome.invocation_id = value["invocation_id"].as_str().map(str::to_owned);
            outcome.invocation_id.is_some()
        }
    };
    if !right {
        // A success that does not carry the handler's answer (or the invocation's id) is a
        // failure of the platform.
        outcome.code = Some("wrong_result".to_owned());
        outcome.detail = Some(truncate(&String::from_utf8_lossy(body), 300));
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_success_with_and_without_timing() {
        let body = br#"{"result":{"ok":true},"duration_ms":4.5,"cold_start":false,"timing":{"queue_ms":1,"init_ms":0,"run_ms":0.5}}"#;
        let outcome = parse_answer(200, body, 5.0, Answer::Wrapped);
        assert_eq!(outcome.status, 200);
        assert_eq!(outcome.cold_start, Some(false));
        assert_eq!(outcome.duration_ms, Some(4.5));
        assert_eq!(outcome.timing.unwrap().run_ms, Some(0.5));
        let plain = parse_answer(
            200,
            br#"{"result":{"ok":true},"cold_start":true}"#,
            5.0,
            Answer::Wrapped,
        );
        assert!(plain.timing.is_none());
        assert_eq!(plain.cold_start, Some(true));
    }

    #[test]
    fn reads_errors_and_wrong_results() {
        let outcome = parse_answer(
            503,
            br#"{"detail":"no worker","code":"no_worker"}"#,
            1.0,
            Answer::Wrapped,
        );
        assert_eq!(outcome.code.as_deref(), Some("no_worker"));
        assert_eq!(outcome.detail.as_deref(), Some("no worker"));
        let wrong = parse_answer(200, br#"{"result":null}"#, 1.0, Answer::Wrapped);
        assert!(!wrong.is_ok());
        assert_eq!(wrong.code.as_deref(), Some("wrong_result"));
        let html = parse_answer(502, b"<html>bad gateway</html>", 1.0, Answer::Bare);
        assert_eq!(html.code.as_deref(), Some("-"));
    }

    #[test]
    fn reads_an_accepted_async_call_as_its_invocation_id() {
        let accepted = parse_answer(
            202,
            br#"{"invocation_id":"0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b","status_url":"/invocations/0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b"}"#,
            1.5,
            Answer::Accepted,
        );
        assert!(accepted.is_ok());
        assert_eq!(
            accepted.invocation_id.as_deref(),
            Some("0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b")
        );
        let repeated = parse_answer(
            200,
            br#"{"invocation_id":"x","status_url":"/invocations/x"}"#,
            1.0,
            Answer::Accepted,
        );
        assert!(!repeated.is_ok(), "only a 202 is a new invocation");
        let no_id = parse_answer(202, br#"{}"#, 1.0, Answer::Accepted);
        assert_eq!(no_id.code.as_deref(), Some("wrong_result"));
        let refused = parse_answer(
            503,
            br#"{"detail":"broker down","code":"broker_unavailable"}"#,
            1.0,
            Answer::Accepted,
        );
        assert_eq!(refused.code.as_deref(), Some("broker_unavailable"));
        assert!(!refused.is_ok());
        // /execute never answers 202: it is not a success there.
        assert!(!parse_answer(202, br#"{"result":{"ok":true}}"#, 1.0, Answer::Wrapped).is_ok());
    }

    #[test]
    fn reads_a_route_answer_as_the_result_itself() {
        let ok = parse_answer(200, br#"{"ok": true}"#, 2.0, Answer::Bare);
        assert!(ok.is_ok());
        assert_eq!(ok.cold_start, None, "an HTTP trigger does not say");
        let wrapped = parse_answer(200, br#"{"result":{"ok":true}}"#, 2.0, Answer::Bare);
        assert_eq!(wrapped.code.as_deref(), Some("wrong_result"));
        let bare = parse_answer(200, br#"{"ok": true}"#, 2.0, Answer::Wrapped);
        assert_eq!(bare.code.as_deref(), Some("wrong_result"));
        let missing = parse_answer(
            404,
            br#"{"detail":"no function answers /x","code":"route_not_found"}"#,
            1.0,
            Answer::Bare,
        );
        assert_eq!(missing.code.as_deref(), Some("route_not_found"));
        assert_eq!(
            Target::execute("f", Runtime::Docker),
            Target::Execute {
                name: "f".into(),
                runtime: Runtime::Docker
            }
        );
    }
}
