//! The two messages that cross RabbitMQ: the job the api publishes and the reply a worker sends
//! back to the job's `reply_to` with the same `correlation_id` (the invocation id).

use crate::model::Language;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// One invocation, self-contained: it carries the code so that workers stay stateless.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub invocation_id: Uuid,
    pub function: FunctionSpec,
    pub event: serde_json::Value,
    /// When the api stops waiting. A worker that takes the job later replies `expired` without
    /// running it; one that takes it earlier runs it for at most `min(timeout, deadline - now)`.
    pub deadline_unix_ms: u64,
    /// When the api published the job; the worker reports `queue_ms` from it.
    #[serde(default)]
    pub published_unix_ms: u64,
}

/// What a worker needs to know of a function. Warm containers are keyed by `(id, version)`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionSpec {
    pub id: i64,
    pub name: String,
    pub version: i32,
    pub language: Language,
    pub code: String,
    pub timeout_ms: u64,
    pub memory_mb: u32,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// How an invocation ended, as the worker saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyStatus {
    /// The handler returned; `result` holds its value.
    Success,
    /// The handler raised or rejected.
    Error,
    /// The code failed to load, or has no handler.
    InitError,
    /// The function ran past its timeout; its container was killed.
    Timeout,
    /// The container went over its memory limit and was killed.
    Oom,
    /// The container died or broke the protocol.
    Crashed,
    /// The job was taken after its deadline and was not run.
    Expired,
}

impl ReplyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyStatus::Success => "success",
            ReplyStatus::Error => "error",
            ReplyStatus::InitError => "init_error",
            ReplyStatus::Timeout => "timeout",
            ReplyStatus::Oom => "oom",
            ReplyStatus::Crashed => "crashed",
            ReplyStatus::Expired => "expired",
        }
    }
}

impl std::fmt::Display for ReplyStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as the handler's language described it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ErrorInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub stack: String,
}

impl ErrorInfo {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorInfo {
            kind: kind.into(),
            message: message.into(),
            stack: String::new(),
        }
    }
}

/// Where the time of one invocation went, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default, PartialEq)]
pub struct Timing {
    /// From publish to the worker taking the job (clocks of two hosts: approximate).
    pub queue_ms: f64,
    /// Starting a container and loading the code; 0 on a warm call.
    pub init_ms: f64,
    /// Running the handler.
    pub run_ms: f64,
}

/// The worker's answer to one job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub invocation_id: Uuid,
    pub worker_id: String,
    pub status: ReplyStatus,
    #[serde(default)]
    pub result: serde_json::Value,
    #[serde(default)]
    pub error: Option<ErrorInfo>,
    #[serde(default)]
    pub logs: String,
    #[serde(default)]
    pub logs_truncated: bool,
    pub cold_start: bool,
    #[serde(default)]
    pub timing: Timing,
}

/// A change to a function, broadcast on the events exchange after it is committed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionEvent {
    pub function_id: i64,
    /// The version now current; `None` when the function was deleted. Containers of older
    /// versions are retired either way.
    pub version: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_round_trips_with_design_field_names() {
        let reply = Reply {
            invocation_id: Uuid::nil(),
            worker_id: "w1".into(),
            status: ReplyStatus::InitError,
            result: serde_json::Value::Null,
            error: Some(ErrorInfo::new("SyntaxError", "bad")),
            logs: String::new(),
            logs_truncated: false,
            cold_start: true,
            timing: Timing::default(),
        };
        let json = serde_json::to_value(&reply).unwrap();
        assert_eq!(json["status"], "init_error");
        assert_eq!(json["error"]["type"], "SyntaxError");
        assert_eq!(json["timing"]["queue_ms"], 0.0);
        let back: Reply = serde_json::from_value(json).unwrap();
        assert_eq!(back.status, ReplyStatus::InitError);
    }
}
