//! One function container: created with the sandbox settings, attached before it starts, and
//! spoken to in the bootstrap's line protocol (docker/README.md): an `init` frame binds it to a
//! function version, then one `invoke` frame at a time.

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, InspectContainerOptions,
    RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use common::{ErrorInfo, FunctionSpec, Language, Runtime};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinHandle;
use tokio::time::timeout_at;

/// Warm containers are keyed by function id and version: a container never serves another.
pub type FunctionKey = (i64, i32);
/// The key of a stem cell, bound to no function yet.
pub const STEM_KEY: FunctionKey = (-1, -1);

/// Label every container of the platform carries, with the worker that owns it.
pub const LABEL_WORKER: &str = "faas.worker";
/// Label with the id of the container the owning worker runs in, when it runs in one: a
/// worker finds the containers of workers whose own container is gone (see
/// [`crate::pool::Pool::remove_orphans`]).
pub const LABEL_WORKER_CONTAINER: &str = "faas.worker_container";
/// The largest frame accepted from a bootstrap: a 6 MiB result plus its logs and JSON overhead.
const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;
/// How long a dead container's state may take to settle in Docker (longer under load, and for
/// a gVisor sandbox) before it is inspected for an OOM kill.
const DEATH_WAIT: Duration = Duration::from_secs(10);
/// How much of the bootstrap's own stderr is kept to explain a crash.
const STDERR_TAIL_BYTES: usize = 4 * 1024;

/// How function containers are made on this worker.
#[derive(Clone)]
pub struct Sandbox {
    pub docker: Docker,
    pub worker_id: String,
    pub runtime: Runtime,
    /// Docker runtime name (`runsc`) for gVisor workers; the daemon's default otherwise.
    pub docker_runtime: Option<String>,
    pub python_image: String,
    pub node_image: String,
    pub pids_limit: i64,
    pub nano_cpus: i64,
    pub tmp_mb: u32,
    /// The id of the container this worker runs in (compose), if it runs in one on this
    /// daemon; set by [`own_container_id`] at start.
    pub own_container: Option<String>,
}

/// What went wrong talking to a container, short of the handler's own errors.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("Docker refused: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("writing to the container failed: {0}")]
    Io(#[from] std::io::Error),
}

impl Sandbox {
    pub fn new(config: &crate::Config, docker: Docker, worker_id: String) -> Self {
        Sandbox {
            docker,
            worker_id,
            runtime: config.runtime,
            docker_runtime: (config.runtime == Runtime::Gvisor)
                .then(|| config.gvisor_runtime.clone()),
            python_image: config.python_image.clone(),
            node_image: config.node_image.clone(),
            pids_limit: config.pids_limit,
            nano_cpus: (config.cpus * 1e9) as i64,
            tmp_mb: config.tmp_mb,
            own_container: None,
        }
    }

    pub fn image_for(&self, language: Language) -> &str {
        match language {
            Language::Python => &self.python_image,
            Language::Javascript => &self.node_image,
        }
    }

    fn create_body(
        &self,
        language: Language,
        memory_mb: u32,
        function: Option<&FunctionSpec>,
    ) -> ContainerCreateBody {
        let memory = i64::from(memory_mb) * 1024 * 1024;
        let mut labels = HashMap::from([
            ("faas.managed".to_owned(), "true".to_owned()),
            (LABEL_WORKER.to_owned(), self.worker_id.clone()),
            ("faas.language".to_owned(), language.to_string()),
        ]);
        if let Some(own) = &self.own_container {
            labels.insert(LABEL_WORKER_CONTAINER.to_owned(), own.clone());
        }
        // A stem cell has no function yet: its function's env arrives with the init frame.
        let env = match function {
            Some(spec) => {
                labels.insert("faas.function".to_owned(), spec.name.clone());
                labels.insert("faas.function_id".to_owned(), spec.id.to_string());
                labels.insert("faas.version".to_owned(), spec.version.to_string());
                spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
            }
            None => {
                labels.insert("faas.stem_cell".to_owned(), "true".to_owned());
                Vec::new()
            }
        };
        let host_config = HostConfig {
            network_mode: Some("none".into()),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_owned(),
                format!("rw,nosuid,nodev,size={}m,mode=1777", self.tmp_mb),
            )])),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            pids_limit: Some(self.pids_limit),
            memory: Some(memory),
            // Equal to `memory`: no swap, so going over the limit is an OOM kill, not a slowdown.
            memory_swap: Some(memory),
            nano_cpus: Some(self.nano_cpus),
            runtime: self.docker_runtime.clone(),
            init: Some(false),
            // Frames and logs travel over the attach stream; dockerd need not also write them
            // to disk.
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(self.image_for(language).to_owned()),
            user: Some("65534:65534".into()),
            env: Some(env),
            labels: Some(labels),
            open_stdin: Some(true),
            stdin_once: Some(false),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            network_disabled: Some(true),
            host_config: Some(host_config),
            ..Default::default()
        }
    }

    /// Creates, attaches and starts a container for `function`, or a stem cell of `language`
    /// that any function can be bound to later (`function` = `None`). It still needs
    /// [`Container::init`]. `permit` is its place under the worker's container cap.
    pub async fn start(
        &self,
        language: Language,
        memory_mb: u32,
        function: Option<&FunctionSpec>,
        permit: OwnedSemaphorePermit,
    ) -> Result<Container, ContainerError> {
        let name = match function {
            Some(spec) => format!(
                "faas-{}-{}-v{}-{}",
                sanitize(&self.worker_id),
                spec.id,
                spec.version,
                short_id()
            ),
            None => format!(
                "faas-{}-stem-{language}-{}",
                sanitize(&self.worker_id),
                short_id()
            ),
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let id = self
            .docker
            .create_container(
                Some(options),
                self.create_body(language, memory_mb, function),
            )
            .await?
            .id;
        match self.attach_and_start(&id).await {
            Ok((input, output)) => {
                let key = function.map_or(STEM_KEY, |spec| (spec.id, spec.version));
                Ok(Container::new(
                    id, key, language, memory_mb, permit, input, output,
                ))
            }
            Err(error) => {
                self.remove(&id).await;
                Err(error)
            }
        }
    }

    async fn attach_and_start(
        &self,
        id: &str,
    ) -> Result<(Pin<Box<dyn AsyncWrite + Send>>, OutputStream), ContainerError> {
        let options = AttachContainerOptionsBuilder::default()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .build();
        // Attach first, so that no byte the bootstrap writes is missed.
        let attached = self.docker.attach_container(id, Some(options)).await?;
        self.docker.start_container(id, None).await?;
        Ok((attached.input, attached.output))
    }

    /// Kills and removes a container; failures are logged, as there is nothing else to do.
    pub async fn remove(&self, id: &str) {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        if let Err(error) = self.docker.remove_container(id, Some(options)).await {
            metrics::counter!("faas_docker_errors_total").increment(1);
            tracing::warn!(container = id, %error, "cannot remove container");
        }
    }

    /// Explains why a container stopped answering: out of memory, or some other death.
    /// `stderr` is what the bootstrap itself last wrote there.
    pub async fn diagnose(&self, id: &str, stderr: &str, memory_mb: u32) -> Death {
        let wait = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut waiting = self.docker.wait_container(id, Some(wait));
        let _ = tokio::time::timeout(DEATH_WAIT, waiting.next()).await;
        let state = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .ok()
            .and_then(|inspect| inspect.state);
        let oom = state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false);
        let exit_code = state.as_ref().and_then(|s| s.exit_code);
        // Docker does not always set OOMKilled: on cgroup v2 its OOM event can race the exit,
        // and gVisor's kernel may kill a process over the limit itself before the host's cgroup
        // does. A container's first process cannot be SIGKILLed from inside its own namespace
        // (runc), and the worker never kills a container it diagnoses, so a silent exit 137 is
        // taken for an OOM kill. Misreported: an operator's `docker kill`, and a gVisor function
        // that SIGKILLs itself.
        let silent_kill = exit_code == Some(137) && stderr.trim().is_empty();
        if oom || silent_kill {
            return Death::OutOfMemory(ErrorInfo::new(
                "Runtime.OutOfMemory",
                format!("the function used more than its {memory_mb} MB of memory and was killed"),
            ));
        }
        let mut message = match exit_code {
            Some(code) => format!("the function's process exited with code {code}"),
            None => "the function's container stopped answering".to_owned(),
        };
        if !stderr.is_empty() {
            message.push_str(": ");
            message.push_str(stderr.trim());
        }
        Death::Crashed(ErrorInfo::new("Runtime.ExitError", message))
    }
}

/// How a container that stopped answering died.
pub enum Death {
    OutOfMemory(ErrorInfo),
    Crashed(ErrorInfo),
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

type OutputStream =
    Pin<Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// A frame from the bootstrap.
#[derive(Debug)]
enum Frame {
    Ready {
        logs: String,
    },
    InitError {
        error: ErrorInfo,
        logs: String,
    },
    Result {
        id: String,
        ok: bool,
        result: common::RawJson,
        error: Option<ErrorInfo>,
        logs: String,
        logs_truncated: bool,
    },
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
    result: Option<common::RawJson>,
    #[serde(default)]
    error: Option<ErrorInfo>,
    #[serde(default)]
    logs: String,
    #[serde(default)]
    logs_truncated: bool,
}

impl Frame {
    fn parse(line: &[u8]) -> Result<Frame, String> {
        let wire: WireFrame = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        match wire.op.as_str() {
            "ready" => Ok(Frame::Ready { logs: wire.logs }),
            "init_error" => Ok(Frame::InitError {
                error: wire.error.unwrap_or_default(),
                logs: wire.logs,
            }),
            "result" => Ok(Frame::Result {
                id: wire.id.ok_or("a result frame without an id")?,
                ok: wire.ok,
                result: wire.result.unwrap_or_else(common::raw_null),
                error: wire.error,
                logs: wire.logs,
                logs_truncated: wire.logs_truncated,
            }),
            _ => Err("unknown op".to_owned()),
        }
    }
}

/// What the reader task saw on the container's stdout.
enum Event {
    Frame(Frame),
    /// The bootstrap wrote something that is not a frame: the container is no longer trusted.
    Broken(String),
}

#[derive(Serialize)]
struct InitFrame<'a> {
    op: &'static str,
    code: &'a str,
    handler: &'static str,
    env: &'a std::collections::BTreeMap<String, String>,
}

#[derive(Serialize)]
struct InvokeFrame<'a> {
    op: &'static str,
    id: &'a str,
    event: &'a common::RawValue,
    context: &'a InvokeContext<'a>,
}

/// The `context` of an invoke frame.
#[derive(Serialize)]
pub struct InvokeContext<'a> {
    pub invocation_id: &'a str,
    pub function_name: &'a str,
    pub function_version: i32,
    pub memory_mb: u32,
    pub deadline_unix_ms: u64,
}

/// How loading the code ended.
pub enum InitOutcome {
    Ready { logs: String },
    Failed { error: ErrorInfo, logs: String },
    TimedOut,
    Died,
}

/// How one call ended.
pub enum CallOutcome {
    Returned {
        result: common::RawJson,
        logs: String,
        logs_truncated: bool,
    },
    Raised {
        error: ErrorInfo,
        logs: String,
        logs_truncated: bool,
    },
    TimedOut,
    Died,
}

/// A started container, attached. Dropping it does not remove it: call [`Sandbox::remove`].
pub struct Container {
    pub id: String,
    /// The function version it serves; [`STEM_KEY`] until a stem cell is bound.
    pub key: FunctionKey,
    pub language: Language,
    pub memory_mb: u32,
    /// Its place under the worker's container cap, given back when it is discarded.
    pub permit: Option<OwnedSemaphorePermit>,
    input: Pin<Box<dyn AsyncWrite + Send>>,
    events: mpsc::Receiver<Event>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    reader: JoinHandle<()>,
    /// When it last finished a call; the idle reaper and LRU eviction read it.
    pub idle_since: Instant,
}

impl Drop for Container {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Container {
    fn new(
        id: String,
        key: FunctionKey,
        language: Language,
        memory_mb: u32,
        permit: OwnedSemaphorePermit,
        input: Pin<Box<dyn AsyncWrite + Send>>,
        output: OutputStream,
    ) -> Self {
        let (tx, events) = mpsc::channel(4);
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let reader = tokio::spawn(read_frames(output, tx, stderr_tail.clone()));
        Container {
            id,
            key,
            language,
            memory_mb,
            permit: Some(permit),
            input,
            events,
            stderr_tail,
            reader,
            idle_since: Instant::now(),
        }
    }

    pub fn stderr_tail(&self) -> String {
        String::from_utf8_lossy(&self.stderr_tail.lock().unwrap()).into_owned()
    }

    async fn send(&mut self, frame: &impl Serialize) -> Result<(), ContainerError> {
        let mut line = serde_json::to_vec(frame).expect("frames always serialize");
        line.push(b'\n');
        self.input.write_all(&line).await?;
        self.input.flush().await?;
        Ok(())
    }

    /// Loads `spec`'s code, binding the container to its version; waits for `ready` until
    /// `deadline`.
    pub async fn init(
        &mut self,
        spec: &FunctionSpec,
        deadline: tokio::time::Instant,
    ) -> InitOutcome {
        self.key = (spec.id, spec.version);
        let frame = InitFrame {
            op: "init",
            code: &spec.code,
            handler: "handler",
            env: &spec.env,
        };
        let exchange = async {
            if self.send(&frame).await.is_err() {
                return InitOutcome::Died;
            }
            match self.events.recv().await {
                Some(Event::Frame(Frame::Ready { logs })) => InitOutcome::Ready { logs },
                Some(Event::Frame(Frame::InitError { error, logs })) => {
                    InitOutcome::Failed { error, logs }
                }
                Some(Event::Frame(other)) => {
                    tracing::warn!(container = %self.id, ?other, "unexpected frame during init");
                    InitOutcome::Died
                }
                Some(Event::Broken(why)) => {
                    tracing::warn!(container = %self.id, %why, "protocol broken during init");
                    InitOutcome::Died
                }
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
        event: &common::RawValue,
        context: &InvokeContext<'_>,
        deadline: tokio::time::Instant,
    ) -> CallOutcome {
        let frame = InvokeFrame {
            op: "invoke",
            id,
            event,
            context,
        };
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
                    if ok {
                        CallOutcome::Returned {
                            result,
                            logs,
                            logs_truncated,
                        }
                    } else {
                        CallOutcome::Raised {
                            error: error.unwrap_or_else(|| ErrorInfo::new("Error", "")),
                            logs,
                            logs_truncated,
                        }
                    }
                }
                Some(Event::Frame(other)) => {
                    tracing::warn!(container = %self.id, ?other, "unexpected frame during a call");
                    CallOutcome::Died
                }
                Some(Event::Broken(why)) => {
                    tracing::warn!(container = %self.id, %why, "protocol broken during a call");
                    CallOutcome::Died
                }
                None => CallOutcome::Died,
            }
        };
        timeout_at(deadline, exchange)
            .await
            .unwrap_or(CallOutcome::TimedOut)
    }
}

/// Splits the container's stdout into frames and keeps the tail of its stderr; ends when the
/// container's output ends or the protocol breaks.
async fn read_frames(
    mut output: OutputStream,
    tx: mpsc::Sender<Event>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
) {
    let mut buffer: Vec<u8> = Vec::new();
    while let Some(chunk) = output.next().await {
        let message = match chunk {
            Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => message,
            Ok(LogOutput::StdErr { message }) => {
                let mut tail = stderr_tail.lock().unwrap();
                tail.extend_from_slice(&message);
                let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
                tail.drain(..excess);
                continue;
            }
            Ok(LogOutput::StdIn { .. }) => continue,
            Err(error) => {
                tracing::debug!(%error, "container output ended with an error");
                return;
            }
        };
        buffer.extend_from_slice(&message);
        while let Some(newline) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=newline).collect();
            let line = &line[..line.len() - 1];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let event = match Frame::parse(line) {
                Ok(frame) => Event::Frame(frame),
                Err(error) => Event::Broken(format!("not a frame ({error})")),
            };
            let broken = matches!(event, Event::Broken(_));
            if tx.send(event).await.is_err() || broken {
                return;
            }
        }
        if buffer.len() > MAX_FRAME_BYTES {
            let _ = tx
                .send(Event::Broken(format!(
                    "a frame over {MAX_FRAME_BYTES} bytes"
                )))
                .await;
            return;
        }
    }
}

/// The id of the container this process runs in, read from the bind mounts Docker gives every
/// container (`…/containers/<64 hex>/hostname`), when `docker` knows that container; `None` on
/// a host, or in a container of another daemon.
pub async fn own_container_id(docker: &Docker) -> Option<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let id = container_id_in_mountinfo(&mountinfo)?;
    docker.inspect_container(&id, None).await.ok()?;
    Some(id)
}

fn container_id_in_mountinfo(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let (_, rest) = line.split_once("/containers/")?;
        let (id, file) = rest.split_once('/')?;
        let is_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
        let is_docker_file = file.starts_with("hostname ") || file.starts_with("hosts ");
        (is_id && is_docker_file).then(|| id.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::container_id_in_mountinfo;

    #[test]
    fn the_own_container_id_is_read_from_dockers_bind_mounts() {
        let id = "85058d84ce05a1e6b0f3c3e1d2a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2";
        let inside = format!(
            "600 580 0:52 / / rw,relatime - overlay overlay rw\n\
             612 600 254:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw\n"
        );
        assert_eq!(container_id_in_mountinfo(&inside).as_deref(), Some(id));
        let host = "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n";
        assert_eq!(container_id_in_mountinfo(host), None);
    }
}
