//! Dependency builds: jobs from `{prefix}faas.build`, each run in a container of the
//! language's build image (`python-build`, `nodejs-build`; docker/README.md has their
//! contract), the only containers with network. The output, a tar on the container's stdout,
//! is gzip'd to a file, unpacked into this host's cache (which checks it), uploaded to the api
//! and reported. A build job is acked once reported; a worker that dies mid-build leaves it to
//! be redelivered.
//!
//! The build container: under gVisor (`BUILD_OCI_RUNTIME`, `runsc-build`: runsc with its own
//! network stack), on the build network (`BUILD_NETWORK`, `faas-build`, whose firewall lets it
//! reach the package registries only; scripts/build-network.sh), with the registries' names
//! pinned in its /etc/hosts (the network has no DNS), labelled with the namespace that asked
//! for the build; non-root (65534), all capabilities dropped, no-new-privileges, a pids, memory
//! and CPU limit, its only writable place a size-capped /tmp tmpfs (BUILD_MAX_MB plus room for
//! pip's and npm's scratch files), `BUILD_TIMEOUT_SECS`, and output over BUILD_MAX_MB refused
//! as it streams. The index URL (credentials and all) reaches it as a file ([`inputs`]), never
//! in its environment. A worker whose Docker lacks the runtime or the network takes no builds.

mod inputs;
mod log;

use self::log::Log;

use crate::artifacts::{ApiClient, DepsCache, sha256_file};
use crate::config::DepsSettings;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::InspectNetworkOptions;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use common::broker::{Acks, Consume, Decision, LoopOptions, Session, Topology};
use common::{BuildJob, Language};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::BasicQosOptions;
use reqwest::Url;
use ring::digest::{SHA256, digest};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Room on the build's /tmp beyond the output, for pip's and npm's own scratch files.
const TMP_SLACK_MB: u64 = 128;
const BUILD_PIDS_LIMIT: i64 = 256;
/// The label naming the namespace whose function asked for the build.
pub const LABEL_NAMESPACE: &str = "faas.namespace";
/// How long a job whose report could not reach the api waits before going back to the queue.
const API_RETRY_DELAY: Duration = Duration::from_secs(5);

/// How a build ended.
#[derive(Debug)]
pub enum BuildOutcome {
    /// The artifact is in the host cache and at `archive` (gzip'd tar).
    Ready {
        digest: String,
        archive: PathBuf,
        unpacked_bytes: u64,
    },
    Failed,
}

/// The build network as the worker uses it.
struct BuildNetwork {
    /// This host's address on it, which build.sh checks it cannot reach.
    gateway: String,
    /// Its [`inputs::HOSTS_LABEL`]: the registries' addresses its firewall lets through.
    hosts: String,
}

/// Runs builds in containers on this worker's Docker.
pub struct Builder {
    pub docker: Docker,
    pub settings: DepsSettings,
    pub cache: Arc<DepsCache>,
    pub worker_id: String,
    /// The container this worker runs in, if any: its build containers carry it, so that
    /// another worker removes them once this one's container is gone.
    pub own_container: Option<String>,
}

impl Builder {
    fn image(&self, language: Language) -> &str {
        match language {
            Language::Python => &self.settings.python_build_image,
            Language::Javascript => &self.settings.node_build_image,
        }
    }

    /// The artifact digest: SHA-256 of (language, build image id, dependencies text).
    pub fn artifact_digest(language: Language, image_id: &str, dependencies: &str) -> String {
        let mut input = Vec::new();
        for part in [language.as_str(), image_id, dependencies] {
            input.extend_from_slice(part.as_bytes());
            input.push(0);
        }
        common::hex(digest(&SHA256, &input).as_ref())
    }

    /// Runs `job` and returns its outcome and log. Never fails: whatever goes wrong is a
    /// failed build whose log says why.
    pub async fn run(&self, job: &BuildJob) -> (BuildOutcome, String) {
        let mut log = Log::default();
        let started = Instant::now();
        let outcome = self.try_run(job, &mut log).await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(why) => {
                log.line(&format!("build failed: {why}"));
                BuildOutcome::Failed
            }
        };
        log.line(&format!(
            "[faas] build {} after {:.1} s",
            if matches!(outcome, BuildOutcome::Ready { .. }) {
                "succeeded"
            } else {
                "failed"
            },
            started.elapsed().as_secs_f64()
        ));
        (outcome, log.into_string())
    }

    async fn try_run(&self, job: &BuildJob, log: &mut Log) -> Result<BuildOutcome, String> {
        let image = self.image(job.language);
        let image_id = self
            .docker
            .inspect_image(image)
            .await
            .map_err(|error| format!("the build image {image} is missing on this worker: {error}"))?
            .id
            .unwrap_or_default();
        let digest = Self::artifact_digest(job.language, &image_id, &job.dependencies);
        let index = inputs::index_url(
            job.language,
            self.settings.pip_index_url.as_deref(),
            self.settings.npm_registry.as_deref(),
        )?;
        let network = self.network().await?;
        let pins = inputs::pins(&inputs::hosts_to_pin(&index), &network.hosts)?;
        log.line(&format!(
            "[faas] worker {}: image {image} ({image_id}), runtime {}, network {} (package registries only; pinned: {}), limits: {} MB memory, {} MB output, {} s",
            self.worker_id,
            self.settings.build_oci_runtime,
            self.settings.build_network,
            if pins.is_empty() { "none".to_owned() } else { pins.join(" ") },
            self.settings.build_memory_mb,
            self.settings.build_max_mb,
            self.settings.build_timeout_secs,
        ));
        if self.cache.has(&digest) {
            log.line("[faas] this worker already has the artifact");
        }
        let id = self
            .create(job, image, &index, &network.gateway, pins)
            .await?;
        let deadline = Duration::from_secs(self.settings.build_timeout_secs.max(1));
        let archive = self.cache.temp_path(&digest, "build.tar.gz");
        let ran = tokio::time::timeout(deadline, self.attach_and_collect(&id, &archive, log)).await;
        self.remove(&id).await;
        let exit = match ran {
            Err(_) => {
                let _ = std::fs::remove_file(&archive);
                return Err(format!(
                    "it ran past BUILD_TIMEOUT_SECS ({} s) and was killed",
                    deadline.as_secs()
                ));
            }
            Ok(Err(why)) => {
                let _ = std::fs::remove_file(&archive);
                return Err(why);
            }
            Ok(Ok(exit)) => exit,
        };
        if exit != 0 {
            let _ = std::fs::remove_file(&archive);
            return Err(match exit {
                137 => "the build container was killed (exit 137: out of memory, BUILD_MEMORY_MB)"
                    .to_owned(),
                code => format!("the build exited with status {code}"),
            });
        }
        let unpacked_bytes = match self.cache.install(&digest, &archive).await {
            Ok(bytes) => bytes,
            Err(error) => {
                let _ = std::fs::remove_file(&archive);
                return Err(error.to_string());
            }
        };
        log.line(&format!(
            "[faas] artifact {digest}: {:.1} MB unpacked",
            unpacked_bytes as f64 / 1e6
        ));
        Ok(BuildOutcome::Ready {
            digest,
            archive,
            unpacked_bytes,
        })
    }

    /// Whether this worker's Docker can run builds as they must run: the build runtime is
    /// registered (unless it is runc, chosen explicitly) and the build network exists.
    pub async fn check(&self) -> Result<(), String> {
        let runtime = &self.settings.build_oci_runtime;
        if runtime != "runc" {
            let info = self
                .docker
                .info()
                .await
                .map_err(|error| format!("cannot ask Docker for its runtimes: {error}"))?;
            let runtimes: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
            if !runtimes.contains(runtime) {
                return Err(format!(
                    "Docker has no runtime {runtime} (BUILD_OCI_RUNTIME; it has {}): scripts/setup.sh registers it",
                    runtimes.join(", ")
                ));
            }
        }
        self.network().await.map(|_| ())
    }

    /// The build network's gateway and registry addresses, as scripts/build-network.sh made it.
    async fn network(&self) -> Result<BuildNetwork, String> {
        let name = &self.settings.build_network;
        let missing = |why: String| {
            format!(
                "the build network {name} (BUILD_NETWORK) is not usable: {why}; scripts/setup.sh makes it and its firewall"
            )
        };
        let network = self
            .docker
            .inspect_network(name, None::<InspectNetworkOptions>)
            .await
            .map_err(|error| missing(error.to_string()))?;
        let gateway = network
            .ipam
            .and_then(|ipam| ipam.config)
            .unwrap_or_default()
            .into_iter()
            .find_map(|config| config.gateway)
            .filter(|gateway| !gateway.is_empty())
            .ok_or_else(|| missing("it has no gateway".to_owned()))?;
        let hosts = network
            .labels
            .unwrap_or_default()
            .remove(inputs::HOSTS_LABEL)
            .unwrap_or_default();
        Ok(BuildNetwork { gateway, hosts })
    }

    async fn create(
        &self,
        job: &BuildJob,
        image: &str,
        index: &Url,
        gateway: &str,
        pins: Vec<String>,
    ) -> Result<String, String> {
        let memory = (self.settings.build_memory_mb * 1024 * 1024) as i64;
        let mut env = vec![
            "HOME=/tmp".to_owned(),
            format!("FAAS_BUILD_GATEWAY={gateway}"),
        ];
        if self.settings.npm_scripts {
            env.push("FAAS_NPM_SCRIPTS=1".to_owned());
        }
        let mut labels = HashMap::from([
            ("faas.managed".to_owned(), "true".to_owned()),
            (
                crate::sandbox::LABEL_WORKER.to_owned(),
                self.worker_id.clone(),
            ),
            ("faas.build".to_owned(), job.key.clone()),
            (LABEL_NAMESPACE.to_owned(), job.namespace.clone()),
        ]);
        if let Some(own) = &self.own_container {
            labels.insert(
                crate::sandbox::LABEL_WORKER_CONTAINER.to_owned(),
                own.clone(),
            );
        }
        let host_config = HostConfig {
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            pids_limit: Some(BUILD_PIDS_LIMIT),
            memory: Some(memory),
            memory_swap: Some(memory),
            nano_cpus: Some((self.settings.build_cpus * 1e9) as i64),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_owned(),
                format!(
                    "rw,nosuid,nodev,size={}m,mode=1777",
                    self.settings.build_max_mb + TMP_SLACK_MB
                ),
            )])),
            shm_size: Some(64 * 1024 * 1024),
            runtime: Some(self.settings.build_oci_runtime.clone()),
            network_mode: Some(self.settings.build_network.clone()),
            extra_hosts: Some(pins),
            init: Some(false),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            user: Some("65534:65534".into()),
            env: Some(env),
            labels: Some(labels),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            host_config: Some(host_config),
            ..Default::default()
        };
        let nonce = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let options = CreateContainerOptionsBuilder::default()
            .name(&format!(
                "faas-build-{}-{nonce}",
                &job.key[..12.min(job.key.len())]
            ))
            .build();
        let id = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|error| format!("cannot create the build container: {error}"))?
            .id;
        if let Err(why) = self.upload_inputs(&id, job, index).await {
            self.remove(&id).await;
            return Err(why);
        }
        Ok(id)
    }

    /// Copies the dependency file, the CA bundle and the index configuration into the created
    /// container's /opt/faas/input ([`inputs::tar`]).
    async fn upload_inputs(&self, id: &str, job: &BuildJob, index: &Url) -> Result<(), String> {
        let ca = match self
            .settings
            .ca_bundle
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            Some(path) => Some(std::fs::read(path).map_err(|error| {
                format!("cannot read BUILD_CA_BUNDLE {}: {error}", path.display())
            })?),
            None => None,
        };
        let tar = inputs::tar(job.language, &job.dependencies, ca.as_deref(), index)
            .map_err(|e| e.to_string())?;
        let options = UploadToContainerOptionsBuilder::new()
            .path(inputs::INPUT_DIR)
            .build();
        self.docker
            .upload_to_container(id, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(|error| format!("cannot copy the inputs into the build container: {error}"))
    }

    /// Starts the container and collects stdout (the tar, gzip'd into `archive`, refused over
    /// BUILD_MAX_MB) and stderr (the log) until it exits; returns its exit code.
    async fn attach_and_collect(
        &self,
        id: &str,
        archive: &std::path::Path,
        log: &mut Log,
    ) -> Result<i64, String> {
        let options = AttachContainerOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .stream(true)
            .build();
        let attached = self
            .docker
            .attach_container(id, Some(options))
            .await
            .map_err(|error| format!("cannot attach to the build container: {error}"))?;
        self.docker
            .start_container(id, None)
            .await
            .map_err(|error| format!("cannot start the build container: {error}"))?;
        let file = std::fs::File::create(archive).map_err(|e| e.to_string())?;
        let mut gzip = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(file),
            flate2::Compression::default(),
        );
        let max = self.settings.build_max_mb * 1024 * 1024;
        let mut output: u64 = 0;
        let mut stream = attached.output;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(LogOutput::StdOut { message }) => {
                    output += message.len() as u64;
                    if output > max {
                        return Err(format!(
                            "its output is over BUILD_MAX_MB ({} MB)",
                            self.settings.build_max_mb
                        ));
                    }
                    gzip.write_all(&message).map_err(|e| e.to_string())?;
                }
                Ok(LogOutput::StdErr { message }) | Ok(LogOutput::Console { message }) => {
                    log.push(&message)
                }
                Ok(LogOutput::StdIn { .. }) => {}
                Err(error) => return Err(format!("the build's output broke off: {error}")),
            }
        }
        gzip.finish()
            .and_then(|mut writer| writer.flush())
            .map_err(|e| e.to_string())?;
        let waited = self.docker.wait_container(id, None).next().await;
        Ok(match waited {
            Some(Ok(response)) => response.status_code,
            // Docker answers a non-zero exit as an error of the wait stream.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(error)) => {
                return Err(format!("cannot wait for the build container: {error}"));
            }
            None => return Err("the build container vanished".into()),
        })
    }

    async fn remove(&self, id: &str) {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        if let Err(error) = self.docker.remove_container(id, Some(options)).await {
            tracing::warn!(container = id, %error, "cannot remove a build container");
        }
    }

    /// Takes one build job: claims it, runs it, uploads the artifact, reports. `Err` when the
    /// api could not be reached: the job goes back to the queue.
    async fn handle(&self, client: &ApiClient, job: &BuildJob) -> Result<(), String> {
        let start = client
            .post_json(
                &format!("builds/{}/start", job.key),
                &serde_json::json!({"attempt": job.attempt, "worker_id": self.worker_id}),
            )
            .await
            .map_err(|error| error.to_string())?;
        if start["proceed"] != serde_json::Value::Bool(true) {
            tracing::info!("stale build job (another attempt replaced it, or it ended); dropped");
            return Ok(());
        }
        let (outcome, mut log) = self.run(job).await;
        let report = match &outcome {
            BuildOutcome::Ready {
                digest,
                archive,
                unpacked_bytes,
            } => {
                let uploaded = match sha256_file(archive) {
                    Ok(sha) => client.upload(digest, archive, &sha, *unpacked_bytes).await,
                    Err(error) => Err(error.into()),
                };
                let _ = std::fs::remove_file(archive);
                match uploaded {
                    Ok(()) => serde_json::json!({
                        "attempt": job.attempt, "status": "ready", "digest": digest,
                        "size_bytes": unpacked_bytes, "log": log,
                    }),
                    Err(error) => {
                        log.push_str(&format!(
                            "build failed: the artifact upload failed: {error}\n"
                        ));
                        serde_json::json!({"attempt": job.attempt, "status": "failed", "log": log})
                    }
                }
            }
            BuildOutcome::Failed => {
                serde_json::json!({"attempt": job.attempt, "status": "failed", "log": log})
            }
        };
        let status = report["status"].as_str().unwrap_or("failed").to_owned();
        metrics::counter!("faas_builds_total", "status" => status.clone()).increment(1);
        client
            .post_json(&format!("builds/{}/finish", job.key), &report)
            .await
            .map_err(|error| error.to_string())?;
        tracing::info!(%status, "build reported");
        Ok(())
    }
}

/// The build queue's consumer: each job claimed, run and reported by the [`Builder`].
struct Builds {
    builder: Arc<Builder>,
    client: ApiClient,
    amqp_url: String,
    topology: Topology,
}

impl Consume for Builds {
    type Context = ();

    async fn open(&self) -> lapin::Result<Session> {
        let name = format!("{}-builds", self.builder.worker_id);
        let connection = common::broker::connect(&self.amqp_url, &name).await?;
        let channel = connection.create_channel().await?;
        self.topology.declare_build_queue(&channel).await?;
        channel
            .basic_qos(
                self.builder.settings.build_concurrency.max(1),
                BasicQosOptions::default(),
            )
            .await?;
        let queue = self.topology.build_queue();
        Session::consume(connection, channel, &queue, &name, Acks::Manual).await
    }

    async fn handle(self: Arc<Self>, delivery: Delivery, _context: ()) -> Decision {
        let job: BuildJob = match serde_json::from_slice(&delivery.data) {
            Ok(job) => job,
            Err(error) => {
                tracing::error!(%error, "a build job that is not one; dropped");
                return Decision::Ack;
            }
        };
        let span = tracing::info_span!("build", key = %job.key, attempt = %job.attempt, language = %job.language, namespace = %job.namespace);
        async {
            match self.builder.handle(&self.client, &job).await {
                Ok(()) => Decision::Ack,
                Err(error) => {
                    tracing::warn!(%error, "cannot reach the api for a build; the job goes back to the queue");
                    tokio::time::sleep(API_RETRY_DELAY).await;
                    Decision::Requeue
                }
            }
        }
        .instrument(span)
        .await
    }
}

/// Consumes build jobs until `stop`, reconnecting with backoff; each job in a task of its own,
/// at most `BUILD_CONCURRENCY` at once (the prefetch).
pub async fn consume(
    builder: Arc<Builder>,
    amqp_url: String,
    topology: Topology,
    stop: CancellationToken,
) {
    let Some(client) = builder.cache.client().cloned() else {
        tracing::warn!("no WORKER_TOKEN: this worker takes no build jobs");
        return;
    };
    // Never a build outside its sandbox: a worker that cannot run one as it must takes none,
    // and they go to workers that can.
    if let Err(why) = builder.check().await {
        tracing::error!("this worker takes no build jobs: {why}");
        return;
    }
    let builds = Arc::new(Builds {
        builder,
        client,
        amqp_url,
        topology,
    });
    // Builds in flight are not waited for: unacked, the broker gives them to another worker.
    let options = LoopOptions {
        name: "builds",
        drain: Duration::ZERO,
    };
    common::broker::run(builds, options, None, stop).await;
}
