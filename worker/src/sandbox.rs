//! The Docker side of function containers: how they are created (the sandbox every function
//! gets), started and attached, killed and removed, and inspected after a death; and the
//! label queries that find containers an earlier run or a vanished worker left behind.
//!
//! Nothing here knows about frames or scheduling: [`Sandbox`] is the pool's [`Launcher`]: it
//! hands back an attached [`Container`], fetches artifacts into the [`DepsCache`], and asks
//! Docker how a container died (read by [`Death::explain`]).

use crate::artifacts::{DEPS_MOUNT, DepsCache, PACKAGE_MOUNT};
use crate::config::Config;
use crate::container::Container;
use crate::death::{Death, DeathRecord};
use crate::error::{ContainerError, DepsError};
use crate::pool::{Launcher, Mounts, REMOVALS_AT_ONCE};
use crate::protocol::FrameLimits;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, InspectContainerOptions,
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use common::{ArtifactRef, FunctionSpec, Language, Runtime};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Label every container of the platform carries, with the worker that owns it.
pub const LABEL_WORKER: &str = "faas.worker";
/// Label with the id of the container the owning worker runs in, when it runs in one: a
/// worker finds the containers of workers whose own container is gone (see
/// [`Sandbox::remove_orphans`]).
pub const LABEL_WORKER_CONTAINER: &str = "faas.worker_container";
/// How long a dead container's state may take to settle in Docker (longer under load, and for
/// a gVisor sandbox) before it is inspected for an OOM kill.
const DEATH_WAIT: Duration = Duration::from_secs(10);
/// How much of the bootstrap's own stderr is kept to explain a crash.
const STDERR_TAIL_BYTES: usize = 4 * 1024;
/// Function containers are the first thing the host's OOM killer takes (the range's top),
/// before dockerd, Postgres, RabbitMQ or the worker itself.
const OOM_SCORE_ADJ: i64 = 1000;

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
    /// What the bootstraps are told to enforce, and the reader holds them to.
    pub limits: FrameLimits,
    /// The id of the container this worker runs in (compose), if it runs in one on this
    /// daemon; set by [`own_container_id`] at start.
    pub own_container: Option<String>,
    /// Unpacked dependency artifacts, bind-mounted read-only into the functions that have them.
    pub deps: Arc<DepsCache>,
}

impl Sandbox {
    pub fn new(config: &Config, docker: Docker, worker_id: String) -> Self {
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
            limits: FrameLimits {
                result_bytes: common::MAX_RESULT_BYTES,
            },
            own_container: None,
            deps: Arc::new(DepsCache::open(&crate::config::DepsSettings {
                cache_dir: config.worker_cache_dir(),
                ..config.deps.clone()
            })),
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
        mounts: &Mounts,
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
        let mut env = match function {
            Some(spec) => {
                labels.insert("faas.function".to_owned(), spec.name.clone());
                labels.insert("faas.function_id".to_owned(), spec.id.to_string());
                labels.insert("faas.version".to_owned(), spec.version.to_string());
                spec.env.clone()
            }
            None => {
                labels.insert("faas.stem_cell".to_owned(), "true".to_owned());
                Default::default()
            }
        };
        let mut binds = Vec::new();
        if let Some(digest) = &mounts.package {
            labels.insert("faas.package".to_owned(), digest.clone());
            let host = self.deps.path_of(digest);
            binds.push(format!("{}:{PACKAGE_MOUNT}:ro", host.display()));
        }
        if let Some(digest) = &mounts.deps {
            labels.insert("faas.deps".to_owned(), digest.clone());
            let host = self.deps.path_of(digest);
            binds.push(format!("{}:{DEPS_MOUNT}:ro", host.display()));
            // The artifact goes on the import path after whatever the function set.
            let (variable, entry) = match language {
                Language::Python => ("PYTHONPATH", DEPS_MOUNT.to_owned()),
                Language::Javascript => ("NODE_PATH", format!("{DEPS_MOUNT}/node_modules")),
            };
            let value = match env.get(variable) {
                Some(own) if !own.is_empty() => format!("{own}:{entry}"),
                _ => entry,
            };
            env.insert(variable.to_owned(), value);
        }
        let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let host_config = HostConfig {
            network_mode: Some("none".into()),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_owned(),
                format!("rw,nosuid,nodev,size={}m,mode=1777", self.tmp_mb),
            )])),
            binds: Some(binds).filter(|binds| !binds.is_empty()),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            pids_limit: Some(self.pids_limit),
            memory: Some(memory),
            // Equal to `memory`: no swap, so going over the limit is an OOM kill, not a slowdown.
            memory_swap: Some(memory),
            oom_score_adj: Some(OOM_SCORE_ADJ),
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

    fn container_name(&self, language: Language, function: Option<&FunctionSpec>) -> String {
        let worker = sanitize(&self.worker_id);
        let short_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
        match function {
            Some(spec) => format!("faas-{worker}-{}-v{}-{short_id}", spec.id, spec.version),
            None => format!("faas-{worker}-stem-{language}-{short_id}"),
        }
    }

    /// Creates, attaches and starts a container for `function`, or a stem cell of `language`
    /// that any function can be bound to later (`function` = `None`). It still needs
    /// [`Container::init`].
    pub async fn start(
        &self,
        language: Language,
        memory_mb: u32,
        function: Option<&FunctionSpec>,
        mounts: &Mounts,
    ) -> Result<Container, ContainerError> {
        for digest in mounts.digests() {
            // Normally here already (a call fetched it); a stem cell of a set evicted since
            // fetches it again.
            let artifact = ArtifactRef {
                digest: digest.to_owned(),
                unpacked_bytes: 0,
            };
            self.deps
                .ensure(&artifact)
                .await
                .map_err(|error| ContainerError::Io(std::io::Error::other(error.to_string())))?;
        }
        let options = CreateContainerOptionsBuilder::default()
            .name(&self.container_name(language, function))
            .build();
        let id = self
            .docker
            .create_container(
                Some(options),
                self.create_body(language, memory_mb, function, mounts),
            )
            .await?
            .id;
        self.deps.pin(&id, mounts.digests());
        match self.attach_and_start(&id).await {
            Ok(container) => Ok(container),
            Err(error) => {
                self.remove(&id).await;
                Err(error)
            }
        }
    }

    async fn attach_and_start(&self, id: &str) -> Result<Container, ContainerError> {
        let options = AttachContainerOptionsBuilder::default()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .build();
        // Attach first, so that no byte the bootstrap writes is missed.
        let attached = self.docker.attach_container(id, Some(options)).await?;
        self.docker.start_container(id, None).await?;

        // The attach stream multiplexes stdout (frames) and stderr (the bootstrap's own
        // diagnostics): keep the tail of one, hand the other to the frame reader.
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let tail = stderr_tail.clone();
        let stdout = attached.output.filter_map(move |chunk| {
            let item = match chunk {
                Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                    Some(Ok(message))
                }
                Ok(LogOutput::StdErr { message }) => {
                    let mut tail = tail.lock().unwrap();
                    tail.extend_from_slice(&message);
                    let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
                    tail.drain(..excess);
                    None
                }
                Ok(LogOutput::StdIn { .. }) => None,
                Err(error) => Some(Err(std::io::Error::other(error))),
            };
            std::future::ready(item)
        });
        let stdout = tokio_util::io::StreamReader::new(Box::pin(stdout));
        let docker = self.docker.clone();
        let killed = id.to_owned();
        let kill = move || {
            tokio::spawn(async move { kill(&docker, &killed).await });
        };
        Ok(Container::new(
            id.to_owned(),
            attached.input,
            stdout,
            stderr_tail,
            self.limits,
            kill,
        ))
    }

    /// Kills and removes a container; failures are logged, as there is nothing else to do.
    pub async fn remove(&self, id: &str) {
        self.deps.unpin(id);
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => {}
            // Already gone, or going (removed by an operator, or a second removal of the same
            // one: the shutdown sweep can meet a removal an eviction just started).
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => {}
            Err(error) => {
                metrics::counter!("faas_docker_errors_total").increment(1);
                tracing::warn!(container = id, %error, "cannot remove container");
            }
        }
    }

    /// Waits (a while) for a container that stopped answering to be dead, and says how it died.
    pub async fn death_record(&self, id: &str) -> DeathRecord {
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
        let Some(state) = state else {
            return DeathRecord::default();
        };
        DeathRecord {
            oom_killed: state.oom_killed.unwrap_or(false),
            exit_code: state.exit_code,
            finished_at: state
                .finished_at
                .as_deref()
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                // Docker writes 0001-01-01 for a container that has not finished.
                .filter(|at| at.timestamp() > 0)
                .map(SystemTime::from),
        }
    }

    /// Every container on the daemon, running or not, that matches the Docker `label` filter
    /// `filter` (`key` or `key=value`).
    async fn list_labelled(
        &self,
        filter: String,
    ) -> Result<Vec<bollard::models::ContainerSummary>, bollard::errors::Error> {
        let filters = HashMap::from([("label".to_owned(), vec![filter])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.docker.list_containers(Some(options)).await
    }

    /// Removes the containers with these ids, a few at a time.
    pub async fn remove_ids(&self, ids: &[String]) {
        futures_util::stream::iter(ids)
            .for_each_concurrent(REMOVALS_AT_ONCE, |id| self.remove(id))
            .await;
    }

    /// Removes the containers that carry this worker's label: those an earlier run left
    /// behind, or (at shutdown) those whose start was cut short.
    ///
    /// Looked for again after each removal, up to three times: a removal Docker reports as
    /// already under way (409), or a create the previous run asked for just before it died,
    /// can leave one behind for a moment. CI once saw a killed worker's container still listed
    /// after its successor had started taking jobs.
    pub async fn remove_leftovers(&self) -> Result<usize, bollard::errors::Error> {
        let mut removed = 0;
        for round in 0..3 {
            let leftovers = self
                .list_labelled(format!("{LABEL_WORKER}={}", self.worker_id))
                .await?;
            let ids: Vec<String> = leftovers.into_iter().filter_map(|c| c.id).collect();
            if ids.is_empty() {
                return Ok(removed);
            }
            if round > 0 {
                tracing::info!(
                    left = ids.len(),
                    "containers of an earlier run still listed; removing them again"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            removed += ids.len();
            self.remove_ids(&ids).await;
        }
        Ok(removed)
    }

    /// Removes containers whose worker ran in a container that no longer runs on this daemon:
    /// a worker killed and then recreated (compose gives the new one a new id, so
    /// [`Self::remove_leftovers`] cannot find them), or killed with its node (Swarm keeps the
    /// exited task container). Containers of workers on a host, or of a worker container that
    /// runs, are left alone.
    pub async fn remove_orphans(&self) -> Result<usize, bollard::errors::Error> {
        let labelled = self
            .list_labelled(LABEL_WORKER_CONTAINER.to_owned())
            .await?;
        let mut by_owner: HashMap<String, Vec<String>> = HashMap::new();
        for container in labelled {
            let owner = container
                .labels
                .as_ref()
                .and_then(|labels| labels.get(LABEL_WORKER_CONTAINER))
                .cloned();
            if let (Some(owner), Some(id)) = (owner, container.id)
                && Some(&owner) != self.own_container.as_ref()
            {
                by_owner.entry(owner).or_default().push(id);
            }
        }
        let mut removed = 0;
        for (owner, ids) in by_owner {
            // Gone, or there but not running: a worker container that exited (killed with its
            // node, whose Swarm task keeps it as history) holds its containers' pipes no more,
            // and a restarted one starts with a pool of its own.
            let orphaned = match self.docker.inspect_container(&owner, None).await {
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => true,
                Ok(owner) => !owner.state.and_then(|state| state.running).unwrap_or(false),
                Err(error) => return Err(error),
            };
            if orphaned {
                self.remove_ids(&ids).await;
                removed += ids.len();
            }
        }
        Ok(removed)
    }
}

impl Launcher for Sandbox {
    type Container = Container;

    async fn launch(
        &self,
        language: Language,
        memory_mb: u32,
        function: Option<&FunctionSpec>,
        mounts: &Mounts,
    ) -> Result<Container, ContainerError> {
        self.start(language, memory_mb, function, mounts).await
    }

    async fn remove(&self, id: String) {
        Sandbox::remove(self, &id).await
    }

    async fn fetch(&self, artifact: &ArtifactRef) -> Result<(), DepsError> {
        self.deps.ensure(artifact).await.map(drop)
    }

    async fn autopsy(&self, container: &mut Container, memory_mb: u32) -> Death {
        let record = self.death_record(&container.id).await;
        Death::explain(
            &record,
            container.last_request_at(),
            &container.stderr_tail(),
            memory_mb,
        )
    }
}

/// SIGKILLs a container that broke the protocol; it is removed when the pool discards it.
async fn kill(docker: &Docker, id: &str) {
    let options = KillContainerOptionsBuilder::default()
        .signal("SIGKILL")
        .build();
    if let Err(error) = docker.kill_container(id, Some(options)).await {
        tracing::debug!(container = id, %error, "cannot kill container (already stopped?)");
    }
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
    use super::*;

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
