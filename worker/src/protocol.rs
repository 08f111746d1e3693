//! The bootstrap's line protocol (docker/README.md): the frames the worker writes, the frames
//! it reads, and the reader task that splits a container's stdout into frames.
//!
//! Everything a container writes is untrusted: user code runs in the bootstrap's process and can
//! write to the protocol stream itself. So the reader holds at most one frame's worth of bytes,
//! parses results as raw JSON text (never into a tree), accepts exactly one frame per request,
//! and treats anything else (bytes while no request is outstanding, a line that is not a frame,
//! a line over the limit) as a violation: it pulls the container's kill switch and stops. Frame
//! contents are never logged, only their sizes.

use common::{ErrorInfo, RawJson, RawValue};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

/// Logs kept per frame, as the bootstraps cap them (the last 256 KiB); a forged frame with more
/// is cut to its tail.
pub const MAX_LOG_BYTES: usize = 256 * 1024;
/// Each of an error's texts is cut to this, as the bootstraps do.
pub const MAX_ERROR_TEXT_BYTES: usize = 64 * 1024;
/// Room in a frame for its logs, error and JSON escaping, on top of the result.
const FRAME_OVERHEAD_BYTES: usize = 4 * 1024 * 1024;

/// How many bytes one frame may take: the result limit plus room for the rest.
pub fn max_frame_bytes(max_result_bytes: usize) -> usize {
    max_result_bytes + FRAME_OVERHEAD_BYTES
}

/// `init`: binds a container to one function version.
#[derive(Serialize)]
pub struct InitFrame<'a> {
    pub op: &'static str,
    pub code: &'a str,
    pub handler: &'a str,
    /// Where the function's deployment package is mounted, when it has one: the handler is
    /// loaded from its files instead of `code` (which is then empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_dir: Option<&'static str>,
    pub env: &'a BTreeMap<String, String>,
    /// Limits the bootstrap enforces itself, so an honest function gets a precise error.
    pub limits: FrameLimits,
    /// What the bootstrap puts in the `AWS_LAMBDA_*` variables before the code loads.
    pub function: InitFunction<'a>,
}

/// The function a container is bound to, as Lambda's environment names it.
#[derive(Serialize)]
pub struct InitFunction<'a> {
    pub name: &'a str,
    pub version: i32,
    pub memory_mb: u32,
    pub log_group_name: &'a str,
    /// `YYYY/MM/DD/[<version>]<container>`: one stream per container, as Lambda has one per
    /// execution environment.
    pub log_stream_name: &'a str,
}

/// The limits an init frame tells the bootstrap.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FrameLimits {
    pub result_bytes: usize,
}

/// `invoke`: one call. The event is the caller's JSON text as it came.
#[derive(Serialize)]
pub struct InvokeFrame<'a> {
    pub op: &'static str,
    pub id: &'a str,
    pub event: &'a RawValue,
    pub context: &'a InvokeContext<'a>,
}

/// The `context` of an invoke frame.
#[derive(Serialize)]
pub struct InvokeContext<'a> {
    pub invocation_id: &'a str,
    pub function_name: &'a str,
    pub invoked_function_arn: &'a str,
    pub function_version: i32,
    pub memory_mb: u32,
    pub deadline_unix_ms: u64,
    /// 1-based: the handler's `context.attempt`.
    pub attempt: u32,
}

/// A frame from the bootstrap.
#[derive(Debug)]
pub enum Frame {
    Ready,
    InitError {
        error: ErrorInfo,
        logs: String,
    },
    Result {
        id: String,
        ok: bool,
        result: RawJson,
        error: Option<ErrorInfo>,
        logs: String,
        logs_truncated: bool,
    },
}

impl Frame {
    /// Its `op`, for logs (never its contents).
    pub fn op(&self) -> &'static str {
        match self {
            Frame::Ready => "ready",
            Frame::InitError { .. } => "init_error",
            Frame::Result { .. } => "result",
        }
    }
}

/// A frame as it is written: one flat object whose `op` says which fields matter. (A serde
/// internally tagged enum cannot hold a raw `result`: it buffers the fields as a tree first.)
#[derive(Deserialize)]
struct WireFrame {
    op: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    result: Option<RawJson>,
    #[serde(default)]
    error: Option<ErrorInfo>,
    #[serde(default)]
    logs: String,
    #[serde(default)]
    logs_truncated: bool,
}

impl Frame {
    /// Parses one line; the error says why without quoting it.
    pub fn parse(line: &[u8]) -> Result<Frame, String> {
        let wire: WireFrame = serde_json::from_slice(line)
            .map_err(|e| format!("not a frame ({})", where_wrong(&e)))?;
        let (logs, cut) = tail_of(wire.logs, MAX_LOG_BYTES);
        let error = wire.error.map(|e| e.bounded(MAX_ERROR_TEXT_BYTES));
        match wire.op.as_str() {
            "ready" => Ok(Frame::Ready),
            "init_error" => Ok(Frame::InitError {
                error: error.unwrap_or_default(),
                logs,
            }),
            "result" => Ok(Frame::Result {
                id: wire.id.ok_or("a result frame without an id")?,
                ok: wire.ok,
                result: wire.result.unwrap_or_else(common::raw_null),
                error,
                logs,
                logs_truncated: wire.logs_truncated || cut,
            }),
            _ => Err("a frame with an unknown op".to_owned()),
        }
    }
}

/// Where and how JSON failed to parse, without quoting it: serde_json's own messages may
/// quote a value ("invalid type: string \"…\""), and a function's output is not for the logs.
pub fn where_wrong(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let kind = match error.classify() {
        Category::Io => "a read error",
        Category::Syntax => "invalid JSON",
        Category::Data => "unexpected fields or types",
        Category::Eof => "JSON that ends early",
    };
    format!("{kind} at line {}, column {}", error.line(), error.column())
}

/// The last `max_bytes` of `text` (starting on a character boundary), and whether it was cut.
fn tail_of(text: String, max_bytes: usize) -> (String, bool) {
    if text.len() <= max_bytes {
        return (text, false);
    }
    let mut start = text.len() - max_bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    (text[start..].to_owned(), true)
}

/// How loading the code ended.
#[derive(Debug)]
pub enum InitOutcome {
    Ready,
    Failed {
        error: ErrorInfo,
        logs: String,
    },
    TimedOut,
    /// The container stopped answering (its output ended).
    Died,
    /// It broke the protocol and has been killed.
    Broken(Violation),
}

/// How one call ended.
#[derive(Debug)]
pub enum CallOutcome {
    Returned {
        result: RawJson,
        logs: String,
        logs_truncated: bool,
    },
    Raised {
        error: ErrorInfo,
        logs: String,
        logs_truncated: bool,
    },
    /// The result is over the limit. `sound` when the bootstrap itself said so (the container
    /// can serve again); not when the container wrote it anyway.
    TooLarge {
        error: ErrorInfo,
        sound: bool,
    },
    TimedOut,
    Died,
    Broken(Violation),
}

/// What the reader task hands to the container.
#[derive(Debug)]
pub enum Event {
    Frame(Frame),
    /// The container broke the protocol; it has been killed and must not serve again.
    Violation(Violation),
}

/// How a container broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// It wrote while no request was outstanding, or more than one frame for one request.
    Unrequested,
    /// A line that is not a frame (the reason, never the line).
    NotAFrame(String),
    /// A line grew past the frame limit before it ended.
    Oversized { limit: usize },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::Unrequested => f.write_str("it wrote to the protocol stream unasked"),
            Violation::NotAFrame(why) => write!(f, "it wrote {why}"),
            Violation::Oversized { limit } => {
                write!(f, "it wrote a frame over {limit} bytes")
            }
        }
    }
}

/// Whether a request is outstanding: set by the container before it writes a request, taken
/// by the reader with the one frame that answers it.
#[derive(Debug, Default)]
pub struct Outstanding(AtomicBool);

impl Outstanding {
    pub fn expect_answer(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Size of each read from the container's stdout.
const READ_CHUNK: usize = 64 * 1024;

/// Reads frames from `stdout` until it ends or the protocol is broken, handing each to `tx`.
/// A violation pulls `kill` (the container must go at once, whether a call waits for it or
/// not) and is handed on if anyone listens. Never holds more than `max_frame_bytes` plus one
/// read.
pub async fn read_frames<R: AsyncRead + Unpin>(
    mut stdout: R,
    max_frame_bytes: usize,
    outstanding: Arc<Outstanding>,
    tx: mpsc::Sender<Event>,
    kill: impl FnOnce(),
) {
    let mut buffer: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    // Where the search for the next newline resumes: bytes before it hold none.
    let mut scanned = 0;
    let violation = loop {
        if buffer.len() > max_frame_bytes {
            break Violation::Oversized {
                limit: max_frame_bytes,
            };
        }
        let room = (max_frame_bytes + 1 - buffer.len()).min(READ_CHUNK);
        let read = (&mut stdout).take(room as u64).read_buf(&mut buffer).await;
        match read {
            Ok(0) | Err(_) => return, // the output ended: the container is gone
            Ok(_) => {}
        }
        if !outstanding.is_set() {
            break Violation::Unrequested;
        }
        let mut broken = None;
        while let Some(offset) = buffer[scanned..].iter().position(|&b| b == b'\n') {
            let end = scanned + offset;
            let line: Vec<u8> = buffer.drain(..=end).collect();
            scanned = 0;
            let line = &line[..line.len() - 1];
            if !outstanding.take() {
                broken = Some(Violation::Unrequested);
                break;
            }
            match Frame::parse(line) {
                Ok(frame) => {
                    if tx.send(Event::Frame(frame)).await.is_err() {
                        return; // the container handle is gone
                    }
                }
                Err(why) => {
                    broken = Some(Violation::NotAFrame(why));
                    break;
                }
            }
        }
        if let Some(violation) = broken {
            break violation;
        }
        scanned = buffer.len();
        if !buffer.is_empty() && !outstanding.is_set() {
            // Bytes after the answer, with no request outstanding.
            break Violation::Unrequested;
        }
    };
    tracing::warn!(%violation, buffered_bytes = buffer.len(), "a container broke the protocol; killing it");
    kill();
    let _ = tx.try_send(Event::Violation(violation));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncWriteExt, DuplexStream, duplex};

    struct Harness {
        bootstrap: DuplexStream,
        outstanding: Arc<Outstanding>,
        events: mpsc::Receiver<Event>,
        kills: Arc<AtomicUsize>,
        reader: tokio::task::JoinHandle<()>,
    }

    fn harness(max_frame_bytes: usize) -> Harness {
        let (bootstrap, worker_side) = duplex(1024 * 1024);
        let outstanding = Arc::new(Outstanding::default());
        let (tx, events) = mpsc::channel(2);
        let kills = Arc::new(AtomicUsize::new(0));
        let counted = kills.clone();
        let reader = tokio::spawn(read_frames(
            worker_side,
            max_frame_bytes,
            outstanding.clone(),
            tx,
            move || {
                counted.fetch_add(1, Ordering::SeqCst);
            },
        ));
        Harness {
            bootstrap,
            outstanding,
            events,
            kills,
            reader,
        }
    }

    const RESULT: &str = r#"{"op":"result","id":"a","ok":true,"result":{"n":[1,2,3]},"logs":"hi\n","logs_truncated":false}"#;

    #[tokio::test]
    async fn an_answer_split_over_many_writes_is_one_frame_with_its_raw_result() {
        let mut h = harness(1024);
        h.outstanding.expect_answer();
        for piece in RESULT.as_bytes().chunks(7) {
            h.bootstrap.write_all(piece).await.unwrap();
            tokio::task::yield_now().await;
        }
        h.bootstrap.write_all(b"\n").await.unwrap();
        match h.events.recv().await {
            Some(Event::Frame(Frame::Result {
                id,
                ok,
                result,
                logs,
                ..
            })) => {
                assert_eq!((id.as_str(), ok, logs.as_str()), ("a", true, "hi\n"));
                assert_eq!(result.get(), r#"{"n":[1,2,3]}"#);
            }
            other => panic!("expected a result frame, got {other:?}"),
        }
        assert_eq!(h.kills.load(Ordering::SeqCst), 0);
        // The next request gets the next frame.
        h.outstanding.expect_answer();
        h.bootstrap
            .write_all(b"{\"op\":\"ready\"}\n")
            .await
            .unwrap();
        assert!(matches!(
            h.events.recv().await,
            Some(Event::Frame(Frame::Ready))
        ));
    }

    #[tokio::test]
    async fn writing_while_idle_kills_the_container_at_once() {
        let mut h = harness(1024);
        h.bootstrap.write_all(b"{").await.unwrap();
        assert!(matches!(
            h.events.recv().await,
            Some(Event::Violation(Violation::Unrequested))
        ));
        assert_eq!(h.kills.load(Ordering::SeqCst), 1);
        assert!(h.reader.await.is_ok(), "the reader ends");
    }

    #[tokio::test]
    async fn a_second_frame_for_one_request_is_a_violation() {
        let mut h = harness(1024);
        h.outstanding.expect_answer();
        let two = format!("{RESULT}\n{RESULT}\n");
        h.bootstrap.write_all(two.as_bytes()).await.unwrap();
        assert!(matches!(h.events.recv().await, Some(Event::Frame(_))));
        assert!(matches!(
            h.events.recv().await,
            Some(Event::Violation(Violation::Unrequested))
        ));
        assert_eq!(h.kills.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_line_that_is_not_a_frame_is_a_violation_that_does_not_quote_it() {
        let mut h = harness(1024);
        h.outstanding.expect_answer();
        h.bootstrap
            .write_all(b"SECRET-OUTPUT not json\n")
            .await
            .unwrap();
        match h.events.recv().await {
            Some(Event::Violation(Violation::NotAFrame(why))) => {
                assert!(!why.contains("SECRET"), "{why}")
            }
            other => panic!("expected a violation, got {other:?}"),
        }
        assert_eq!(h.kills.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_flood_without_newline_stops_at_the_limit_and_holds_no_more() {
        let mut h = harness(64 * 1024);
        h.outstanding.expect_answer();
        let writer = tokio::spawn(async move {
            let chunk = vec![b'['; 16 * 1024];
            // Far more than the limit; the writer is cut off when the reader stops.
            for _ in 0..1024 {
                if h.bootstrap.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        assert!(matches!(
            h.events.recv().await,
            Some(Event::Violation(Violation::Oversized { limit: 65536 }))
        ));
        assert_eq!(h.kills.load(Ordering::SeqCst), 1);
        h.reader.await.unwrap();
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn the_end_of_the_output_ends_the_reader_without_a_kill() {
        let mut h = harness(1024);
        h.outstanding.expect_answer();
        drop(h.bootstrap);
        assert!(h.events.recv().await.is_none());
        assert_eq!(h.kills.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn forged_frames_are_cut_to_the_bootstraps_own_limits() {
        let logs = "é".repeat(MAX_LOG_BYTES);
        let line = serde_json::json!({"op": "result", "id": "x", "ok": false,
            "error": {"type": "E", "message": "m".repeat(MAX_ERROR_TEXT_BYTES + 10), "stack": ""},
            "logs": logs})
        .to_string();
        match Frame::parse(line.as_bytes()).unwrap() {
            Frame::Result {
                logs,
                logs_truncated,
                error,
                ..
            } => {
                assert!(logs.len() <= MAX_LOG_BYTES && logs.starts_with('é'));
                assert!(logs_truncated);
                assert_eq!(error.unwrap().message.len(), MAX_ERROR_TEXT_BYTES);
            }
            other => panic!("{other:?}"),
        }
        assert!(Frame::parse(br#"{"op":"result","ok":true}"#).is_err());
        let why = Frame::parse(br#"{"op":"result","id":"x","ok":"SECRET"}"#).unwrap_err();
        assert!(!why.contains("SECRET"), "{why}");
        assert!(Frame::parse(br#"{"op":"bogus"}"#).is_err());
    }
}
