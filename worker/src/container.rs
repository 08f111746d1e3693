//! One started function container as the worker holds it: the write side of its stdin, the
//! frames its reader task hands over, and the two exchanges of the protocol: `init` binds it to
//! a function version, then one `invoke` at a time.
//!
//! It knows nothing of Docker: the `sandbox` module makes one from an attached container, and
//! tests make one over in-memory pipes. It is what the pool hands out ([`Pooled`]).

use crate::artifacts::PACKAGE_MOUNT;
use crate::error::ContainerError;
use crate::pool::Pooled;
use crate::protocol::{
    self, CallOutcome, Event, Frame, FrameLimits, InitFrame, InitFunction, InitOutcome,
    InvokeContext, InvokeFrame, Outstanding, Violation,
};
use common::{ErrorInfo, FunctionSpec, RawValue};
use serde::Serialize;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout_at;

/// Error type the bootstraps give a result over the size limit; the container stays sound.
pub const RESULT_TOO_LARGE: &str = "Runtime.ResultTooLarge";

/// A started container. Dropping it does not remove it: the pool does.
pub struct Container {
    pub id: String,
    input: Pin<Box<dyn AsyncWrite + Send>>,
    events: mpsc::Receiver<Event>,
    outstanding: Arc<Outstanding>,
    reader: JoinHandle<()>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    limits: FrameLimits,
    /// When the last request was written: a death before it was not that request's doing.
    last_request_at: SystemTime,
}

impl Drop for Container {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Pooled for Container {
    fn id(&self) -> &str {
        &self.id
    }

    /// False once its output ended (it died, or was killed for breaking the protocol).
    fn is_alive(&self) -> bool {
        !self.reader.is_finished()
    }

    async fn init(&mut self, spec: &FunctionSpec, deadline: tokio::time::Instant) -> InitOutcome {
        Container::init(self, spec, deadline).await
    }

    async fn invoke(
        &mut self,
        id: &str,
        event: &RawValue,
        context: &InvokeContext<'_>,
        deadline: tokio::time::Instant,
    ) -> CallOutcome {
        Container::invoke(self, id, event, context, deadline).await
    }
}

impl Container {
    /// A container whose stdin is `input` and whose stdout (frames only) is `stdout`. `kill`
    /// is pulled when it breaks the protocol: it must not run on, even while idle.
    pub fn new(
        id: String,
        input: Pin<Box<dyn AsyncWrite + Send>>,
        stdout: impl AsyncRead + Send + Unpin + 'static,
        stderr_tail: Arc<Mutex<Vec<u8>>>,
        limits: FrameLimits,
        kill: impl FnOnce() + Send + 'static,
    ) -> Self {
        let (tx, events) = mpsc::channel(2);
        let outstanding = Arc::new(Outstanding::default());
        let reader = tokio::spawn(protocol::read_frames(
            stdout,
            protocol::max_frame_bytes(limits.result_bytes),
            outstanding.clone(),
            tx,
            kill,
        ));
        Container {
            id,
            input,
            events,
            outstanding,
            reader,
            stderr_tail,
            limits,
            last_request_at: SystemTime::now(),
        }
    }

    pub fn stderr_tail(&self) -> String {
        String::from_utf8_lossy(&self.stderr_tail.lock().unwrap()).into_owned()
    }

    /// When the request now outstanding (or the last one) was written.
    pub fn last_request_at(&self) -> SystemTime {
        self.last_request_at
    }

    async fn send(&mut self, frame: &impl Serialize) -> Result<(), ContainerError> {
        let mut line = serde_json::to_vec(frame).expect("frames always serialize");
        line.push(b'\n');
        self.outstanding.expect_answer();
        self.last_request_at = SystemTime::now();
        self.input.write_all(&line).await?;
        self.input.flush().await?;
        Ok(())
    }

    /// Loads `spec`'s code; waits for `ready` until `deadline`.
    pub async fn init(
        &mut self,
        spec: &FunctionSpec,
        deadline: tokio::time::Instant,
    ) -> InitOutcome {
        let log_group_name = spec.log_group_name();
        let log_stream_name = format!(
            "{}/[{}]{}",
            chrono::Utc::now().format("%Y/%m/%d"),
            spec.version,
            &self.id[..self.id.len().min(12)]
        );
        let frame = InitFrame {
            op: "init",
            code: &spec.code,
            handler: &spec.handler,
            package_dir: spec.package.as_ref().map(|_| PACKAGE_MOUNT),
            env: &spec.env,
            limits: self.limits,
            function: InitFunction {
                name: &spec.name,
                version: spec.version,
                memory_mb: spec.memory_mb,
                log_group_name: &log_group_name,
                log_stream_name: &log_stream_name,
            },
        };
        let exchange = async {
            if self.send(&frame).await.is_err() {
                return InitOutcome::Died;
            }
            match self.events.recv().await {
                Some(Event::Frame(Frame::Ready)) => InitOutcome::Ready,
                Some(Event::Frame(Frame::InitError { error, logs })) => {
                    InitOutcome::Failed { error, logs }
                }
                Some(Event::Frame(other)) => {
                    tracing::warn!(container = %self.id, op = other.op(), "unexpected frame during init");
                    InitOutcome::Broken(Violation::Unrequested)
                }
                Some(Event::Violation(violation)) => InitOutcome::Broken(violation),
                None => InitOutcome::Died,
            }
        };
        timeout_at(deadline, exchange)
            .await
            .unwrap_or(InitOutcome::TimedOut)
    }

    /// Runs one call; waits for its result until `deadline`.
    pub async fn invoke(
        &mut self,
        id: &str,
        event: &RawValue,
        context: &InvokeContext<'_>,
        deadline: tokio::time::Instant,
    ) -> CallOutcome {
        let frame = InvokeFrame {
            op: "invoke",
            id,
            event,
            context,
        };
        let result_limit = self.limits.result_bytes;
        let exchange = async {
            if self.send(&frame).await.is_err() {
                return CallOutcome::Died;
            }
            match self.events.recv().await {
                Some(Event::Frame(Frame::Result {
                    id: got,
                    ok,
                    result,
                    error,
                    logs,
                    logs_truncated,
                })) if got == id => {
                    if ok && result.get().len() > result_limit {
                        // The bootstrap checks this itself: a container that sent it anyway
                        // does not run the bootstrap's code any more.
                        return CallOutcome::TooLarge {
                            error: too_large(result.get().len(), result_limit),
                            sound: false,
                        };
                    }
                    match (ok, error) {
                        (true, _) => CallOutcome::Returned {
                            result,
                            logs,
                            logs_truncated,
                        },
                        (false, Some(error)) if error.kind == RESULT_TOO_LARGE => {
                            CallOutcome::TooLarge { error, sound: true }
                        }
                        (false, error) => CallOutcome::Raised {
                            error: error.unwrap_or_else(|| ErrorInfo::new("Error", "")),
                            logs,
                            logs_truncated,
                        },
                    }
                }
                Some(Event::Frame(other)) => {
                    tracing::warn!(container = %self.id, op = other.op(), "unexpected frame during a call");
                    CallOutcome::Broken(Violation::Unrequested)
                }
                Some(Event::Violation(Violation::Oversized { limit })) => CallOutcome::TooLarge {
                    error: ErrorInfo::new(
                        RESULT_TOO_LARGE,
                        format!(
                            "the function's answer is over {limit} bytes; results may hold at most {result_limit} bytes (6 MiB) of JSON"
                        ),
                    ),
                    sound: false,
                },
                Some(Event::Violation(violation)) => CallOutcome::Broken(violation),
                None => CallOutcome::Died,
            }
        };
        timeout_at(deadline, exchange)
            .await
            .unwrap_or(CallOutcome::TimedOut)
    }
}

fn too_large(size: usize, limit: usize) -> ErrorInfo {
    ErrorInfo::new(
        RESULT_TOO_LARGE,
        format!(
            "the function's result is {size} bytes of JSON, over the limit of {limit} bytes (6 MiB)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream, duplex};

    /// A container over in-memory pipes; the test plays the bootstrap on the other ends.
    fn container(
        result_bytes: usize,
    ) -> (
        Container,
        BufReader<DuplexStream>,
        DuplexStream,
        Arc<AtomicBool>,
    ) {
        let (stdin_worker, stdin_bootstrap) = duplex(1 << 20);
        let (stdout_bootstrap, stdout_worker) = duplex(1 << 20);
        let killed = Arc::new(AtomicBool::new(false));
        let flag = killed.clone();
        let container = Container::new(
            "c1".into(),
            Box::pin(stdin_worker),
            stdout_worker,
            Arc::default(),
            FrameLimits { result_bytes },
            move || flag.store(true, Ordering::SeqCst),
        );
        (
            container,
            BufReader::new(stdin_bootstrap),
            stdout_bootstrap,
            killed,
        )
    }

    fn spec() -> FunctionSpec {
        FunctionSpec {
            id: 1,
            namespace: "default".into(),
            name: "f".into(),
            version: 1,
            handler: "handler".into(),
            language: common::Language::Python,
            code: "def handler(e, c): return e".into(),
            timeout_ms: 1000,
            memory_mb: 128,
            env: Default::default(),
            dependencies: None,
            package: None,
        }
    }

    fn soon() -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_secs(5)
    }

    const CONTEXT: InvokeContext<'static> = InvokeContext {
        invocation_id: "i1",
        function_name: "f",
        invoked_function_arn: "arn:faas:lambda:local:default:function:f",
        function_version: 1,
        memory_mb: 128,
        deadline_unix_ms: 0,
        attempt: 1,
    };

    #[tokio::test]
    async fn init_then_a_call_pass_the_event_through_as_text_and_keep_the_limits() {
        let (mut c, mut stdin, mut stdout, _) = container(100);
        let bootstrap = tokio::spawn(async move {
            let mut line = String::new();
            stdin.read_line(&mut line).await.unwrap();
            let init: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(init["limits"]["result_bytes"], 100);
            stdout.write_all(b"{\"op\":\"ready\"}\n").await.unwrap();
            line.clear();
            stdin.read_line(&mut line).await.unwrap();
            assert!(line.contains(r#""event":{"a": [1, 2]}"#), "{line}");
            stdout
                .write_all(b"{\"op\":\"result\",\"id\":\"i1\",\"ok\":true,\"result\":{\"a\": [1, 2]},\"logs\":\"\"}\n")
                .await
                .unwrap();
            (stdin, stdout)
        });
        assert!(matches!(c.init(&spec(), soon()).await, InitOutcome::Ready));
        let event = RawValue::from_string(r#"{"a": [1, 2]}"#.into()).unwrap();
        match c.invoke("i1", &event, &CONTEXT, soon()).await {
            CallOutcome::Returned { result, .. } => assert_eq!(result.get(), r#"{"a": [1, 2]}"#),
            other => panic!("{other:?}"),
        }
        let _pipes = bootstrap.await.unwrap();
        assert!(c.is_alive());
    }

    #[tokio::test]
    async fn a_result_over_the_limit_is_too_large_and_the_container_is_not_sound() {
        let (mut c, mut stdin, mut stdout, killed) = container(10);
        tokio::spawn(async move {
            let mut line = String::new();
            stdin.read_line(&mut line).await.unwrap();
            stdout
                .write_all(b"{\"op\":\"result\",\"id\":\"i1\",\"ok\":true,\"result\":\"0123456789abcdef\"}\n")
                .await
                .unwrap();
            // A flood far past the frame limit (10 bytes + 4 MiB) for the next call.
            line.clear();
            stdin.read_line(&mut line).await.unwrap();
            let chunk = vec![b'x'; 64 * 1024];
            while stdout.write_all(&chunk).await.is_ok() {}
        });
        let event = RawValue::from_string("{}".into()).unwrap();
        match c.invoke("i1", &event, &CONTEXT, soon()).await {
            CallOutcome::TooLarge { error, sound } => {
                assert!(!sound);
                assert!(error.message.contains("18 bytes"), "{}", error.message);
            }
            other => panic!("{other:?}"),
        }
        match c.invoke("i1", &event, &CONTEXT, soon()).await {
            CallOutcome::TooLarge { sound: false, .. } => {}
            other => panic!("{other:?}"),
        }
        assert!(killed.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!c.is_alive());
    }

    #[tokio::test]
    async fn the_bootstraps_own_too_large_error_keeps_the_container() {
        let (mut c, mut stdin, mut stdout, killed) = container(10);
        tokio::spawn(async move {
            let mut line = String::new();
            stdin.read_line(&mut line).await.unwrap();
            stdout
                .write_all(b"{\"op\":\"result\",\"id\":\"i1\",\"ok\":false,\"error\":{\"type\":\"Runtime.ResultTooLarge\",\"message\":\"20 bytes\"}}\n")
                .await
                .unwrap();
            std::future::pending::<()>().await;
        });
        let event = RawValue::from_string("{}".into()).unwrap();
        assert!(matches!(
            c.invoke("i1", &event, &CONTEXT, soon()).await,
            CallOutcome::TooLarge { sound: true, .. }
        ));
        assert!(!killed.load(Ordering::SeqCst));
        assert!(c.is_alive());
    }

    #[tokio::test]
    async fn an_answer_to_another_id_breaks_the_protocol_and_silence_times_out() {
        let (mut c, mut stdin, mut stdout, _) = container(100);
        tokio::spawn(async move {
            let mut line = String::new();
            stdin.read_line(&mut line).await.unwrap();
            stdout
                .write_all(b"{\"op\":\"result\",\"id\":\"other\",\"ok\":true}\n")
                .await
                .unwrap();
            std::future::pending::<()>().await;
        });
        let event = RawValue::from_string("{}".into()).unwrap();
        assert!(matches!(
            c.invoke("i1", &event, &CONTEXT, soon()).await,
            CallOutcome::Broken(Violation::Unrequested)
        ));
        let quick = tokio::time::Instant::now() + Duration::from_millis(50);
        assert!(matches!(
            c.invoke("i2", &event, &CONTEXT, quick).await,
            CallOutcome::TimedOut
        ));
    }
}
