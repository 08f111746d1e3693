//! The two messages that cross RabbitMQ: the job the api publishes and the reply a worker sends
//! back to the job's `reply_to` with the same `correlation_id` (the invocation id).
//!
//! Events and results travel as raw JSON text ([`RawValue`]): they are checked to be JSON once,
//! where they enter, and never turned into a tree that could cost many times their size.

use crate::model::Language;
use serde::{Deserialize, Serialize};
pub use serde_json::value::RawValue;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The largest result a function may return, in bytes of JSON (Lambda's synchronous limit);
/// over it the call ends with [`ReplyStatus::ResultTooLarge`].
pub const MAX_RESULT_BYTES: usize = 6 * 1024 * 1024;

/// A function's event or result: JSON text, checked but never parsed into a tree.
pub type RawJson = Box<RawValue>;

/// The JSON `null`, for a result that is absent.
pub fn raw_null() -> RawJson {
    RawValue::from_string("null".to_owned()).expect("null is JSON")
}

/// One invocation, self-contained: it carries the code so that workers stay stateless.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub invocation_id: Uuid,
    pub function: FunctionSpec,
    pub event: RawJson,
    /// When the api stops waiting. A worker that takes the job later replies `expired` without
    /// running it; one that takes it earlier runs it for at most `min(timeout, deadline - now)`.
    pub deadline_unix_ms: u64,
    /// When the api published the job; the worker reports `queue_ms` from it.
    #[serde(default)]
    pub published_unix_ms: u64,
    /// Which attempt at the invocation this is, 1-based (the handler's `context.attempt`):
    /// always 1 for a synchronous call; a retried asynchronous one counts up.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// Only load the code, in a container of its own, and reply `success` (or how loading
    /// failed: `init_error`, ...) without calling the handler; the container is removed after.
    /// The console's check of code before it is saved; its `version` is 0, which no saved
    /// version has, so that no call ever finds that container.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub load_only: bool,
}

fn first_attempt() -> u32 {
    1
}

/// What a worker needs to know of a function. Warm containers are keyed by `(id, version)`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionSpec {
    pub id: i64,
    /// Its namespace (`default` from an api older than namespaces in jobs).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub name: String,
    pub version: i32,
    /// What the bootstrap calls: `name` or Lambda's `file.name` (the file part is ignored for
    /// single-source functions).
    #[serde(default = "default_handler")]
    pub handler: String,
    pub language: Language,
    pub code: String,
    pub timeout_ms: u64,
    pub memory_mb: u32,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Its built dependencies, mounted read-only on the import path; `None`: it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<ArtifactRef>,
    /// Its deployment package (a `code_zip`, unpacked), mounted read-only and put first on the
    /// import path; `None`: `code` is its whole source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<ArtifactRef>,
}

/// A built dependency tree, named by its digest: SHA-256 of (language, build image id,
/// dependencies text). Workers fetch it from the api once per host and cache it unpacked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct ArtifactRef {
    /// 64 lowercase hex digits.
    pub digest: String,
    /// Bytes once unpacked, for the host cache's accounting.
    #[serde(default)]
    pub unpacked_bytes: u64,
}

/// The most a function's code may unpack to, package and dependencies together (Lambda's
/// 250 MB): the api refuses a package over it, the worker an artifact or a pair of them.
pub const MAX_UNPACKED_BYTES: u64 = 250 * 1024 * 1024;

/// The HTTP header that carries an artifact's SHA-256 (of its bytes as stored), on its upload
/// to the api and its download from it.
pub const ARTIFACT_SHA256_HEADER: &str = "x-faas-content-sha256";
/// The HTTP header that carries an artifact's unpacked size, both ways.
pub const ARTIFACT_UNPACKED_HEADER: &str = "x-faas-unpacked-bytes";

impl ArtifactRef {
    /// True for 64 lowercase hex digits: the only digests a worker puts in a path.
    pub fn is_valid_digest(digest: &str) -> bool {
        digest.len() == 64
            && digest
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
}

/// A dependency build, published durably on `{prefix}faas.build` when a function's
/// dependencies name a set not built yet (or whose last build failed). The worker that takes it
/// reports to the api over HTTP; the message itself is only the work order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BuildJob {
    /// SHA-256 of (language, dependencies text): the api's name for the build.
    pub key: String,
    /// This attempt; a report naming another attempt (a stale redelivery) is refused.
    pub attempt: Uuid,
    pub language: Language,
    /// The text of a `requirements.txt` or a `package.json`, already validated by the api.
    pub dependencies: String,
    /// The namespace whose function asked for the build (`default` from an api older than
    /// namespaces in build jobs): the build container's label and the build's log lines carry it.
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

fn default_namespace() -> String {
    "default".to_owned()
}

fn default_handler() -> String {
    "handler".to_owned()
}

impl FunctionSpec {
    /// The function's ARN-shaped id, as Lambda code reads it from `context.invoked_function_arn`:
    /// `arn:faas:lambda:local:<namespace>:function:<name>` (the namespace where AWS has the
    /// account id, so code that splits the ARN finds the same parts in the same places).
    pub fn arn(&self) -> String {
        format!(
            "arn:faas:lambda:local:{}:function:{}",
            self.namespace, self.name
        )
    }

    /// Its log group name, Lambda style: `/faas/<namespace>/<name>`.
    pub fn log_group_name(&self) -> String {
        format!("/faas/{}/{}", self.namespace, self.name)
    }
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
    /// The handler returned a result over the size limit (6 MiB); nothing of it is sent.
    ResultTooLarge,
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
            ReplyStatus::ResultTooLarge => "result_too_large",
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorInfo {
    /// The exception's class or the error's name, e.g. `ValueError`, `TypeError`, or the
    /// platform's own `Runtime.*` kinds.
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    /// The stack trace as the language printed it; empty when there is none.
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

    /// The same error with each text cut to at most `max_bytes` (on a character boundary):
    /// an error comes from the function's own process, which may send anything.
    pub fn bounded(mut self, max_bytes: usize) -> Self {
        for text in [&mut self.kind, &mut self.message, &mut self.stack] {
            truncate_at_char(text, max_bytes);
        }
        self
    }
}

/// Cuts `text` to at most `max_bytes`, never inside a character.
pub fn truncate_at_char(text: &mut String, max_bytes: usize) {
    if text.len() > max_bytes {
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// Where the time of one invocation went, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[serde(default = "raw_null")]
    pub result: RawJson,
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

/// The AMQP `type` of a [`FunctionEvent`] on the events exchange (also what an event without a
/// type is, as the first versions sent them).
pub const EVENT_TYPE_FUNCTION: &str = "function";
/// The AMQP `type` of a [`KeyEvent`]; workers ignore these.
pub const EVENT_TYPE_KEY: &str = "key";
/// The AMQP type of the invocation records an api replica stored (for the other replicas'
/// invocation streams), published on the records exchange, which only api replicas bind.
pub const EVENT_TYPE_RECORDS: &str = "records";

/// A change to a function, broadcast on the events exchange after it is committed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionEvent {
    pub function_id: i64,
    /// Its namespace: names are unique only within one.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The function's name now (`None` when deleted): a replica that cached the name as
    /// unknown forgets that, so a function just created is found at once everywhere.
    #[serde(default)]
    pub name: Option<String>,
    /// The version now current; `None` when the function was deleted. Containers of older
    /// versions are retired either way.
    pub version: Option<i32>,
}

/// A key revoked, or every key of a deleted namespace: every api replica forgets it at once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyEvent {
    #[serde(default)]
    pub key_id: Option<Uuid>,
    #[serde(default)]
    pub namespace: Option<String>,
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
            result: raw_null(),
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
        let back: Reply = serde_json::from_str(&json.to_string()).unwrap();
        assert_eq!(back.status, ReplyStatus::InitError);
        assert_eq!(back.result.get(), "null");
    }

    #[test]
    fn a_result_travels_as_the_same_json_text() {
        let text = r#"{"invocation_id":"00000000-0000-0000-0000-000000000000","worker_id":"w","status":"success","result":[1, 2,{"a":"\u0000"}],"cold_start":false}"#;
        let reply: Reply = serde_json::from_str(text).unwrap();
        assert_eq!(reply.result.get(), r#"[1, 2,{"a":"\u0000"}]"#);
        let again = serde_json::to_string(&reply).unwrap();
        assert!(
            again.contains(r#""result":[1, 2,{"a":"\u0000"}]"#),
            "{again}"
        );
    }

    #[test]
    fn errors_are_bounded_on_character_boundaries() {
        let error = ErrorInfo::new("Kind", "é".repeat(10)).bounded(5);
        assert_eq!(error.message, "éé");
        assert_eq!(error.kind, "Kind");
    }
}
