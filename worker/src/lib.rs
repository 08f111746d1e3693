//! The worker: takes invocation jobs of one runtime (Docker or gVisor) from RabbitMQ and runs
//! each in a sandboxed, warm-when-possible container through the Docker API.
//!
//! [`run`] is the whole worker; `main` only parses settings and binds the metrics listener.
//!
//! Inside: `consumer` (RabbitMQ) hands each job to the `executor`, which leases a container
//! from the `pool` (scheduling and room, no I/O of its own: it starts, removes and explains
//! containers through a `Launcher`, which the `sandbox` (Docker) is), runs the call through
//! the `container` handle, which speaks the bootstraps' `protocol`, and gives it back with its
//! health. The modules form layers, each importing only from the ones below it:
//!
//! ```text
//! lib
//! consumer build
//! executor signals
//! sandbox
//! container
//! artifacts
//! config
//! pool (launcher, room, stems, lease)
//! error protocol death
//! ```

mod artifacts;
mod build;
mod config;
mod consumer;
mod container;
mod death;
mod error;
mod executor;
mod pool;
mod protocol;
mod sandbox;
mod signals;

pub use artifacts::{DEPS_MOUNT, DepsCache, PACKAGE_MOUNT, unpack};
use bollard::Docker;
pub use build::{BuildOutcome, Builder};
use common::Runtime;
pub use config::{Config, DepsSettings};
pub use container::Container;
pub use death::Death;
pub use error::{ContainerError, DepsError, WorkerError};
pub use executor::{DockerPool, Executor, Verdict};
pub use pool::{
    Acquisition, Artifact, FunctionKey, Health, Launcher, Lease, Mounts, NoContainer, Pool,
    PoolSettings, Pooled, Refused, StemKind,
};
pub use protocol::{CallOutcome, InitOutcome, InvokeContext};
pub use sandbox::{LABEL_WORKER, LABEL_WORKER_CONTAINER, Sandbox};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long removing the worker's containers may take at shutdown.
const REMOVE_ALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Checks Docker and the images, then consumes jobs until `shutdown` resolves; in-flight jobs
/// finish and every container of this worker is removed before it returns.
///
/// A gVisor worker whose Docker has no gVisor runtime does not exit: it stays up, says why in
/// its log and in `faas_worker_runtime_available`, and stands by on the broker so that the api
/// answers 503 naming the cause (see [`consumer::stand_by`]).
pub async fn run(
    config: Config,
    metrics_listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let worker_id = config.resolved_worker_id();
    let docker = preflight(&config).await?;
    register_metrics(config.runtime, config.resolved_memory_mb());
    signals::export_identity(
        &worker_id,
        &config.resolved_node_id(),
        config.runtime.as_str(),
    );
    let stop = CancellationToken::new();
    let metrics_server = tokio::spawn(common::metrics::serve(metrics_listener, stop.clone()));
    let settings = consumer::Settings {
        amqp_url: config.broker.amqp_url.clone(),
        topology: config.broker.topology(),
        runtime: config.runtime,
        prefetch: config.resolved_prefetch().max(1),
        consumer_tag: format!("{worker_id}-{}", config.runtime),
        shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
        max_job_bytes: config.max_job_bytes,
        worker_id: worker_id.clone(),
        home_wait: Duration::from_millis(config.home_wait_ms),
    };

    // Only a missing runtime is waited out standing by; a failing Docker stops the worker, as
    // in `preflight`.
    match check_runtime(&docker, &config).await {
        Err(error @ WorkerError::RuntimeMissing { .. }) => {
            tracing::error!(%error, "this worker cannot run {} sandboxes; it stays up and takes no jobs until restarted", config.runtime);
            set_runtime_available(config.runtime, false, "runtime_missing");
            let stood_by = consumer::stand_by(settings, shutdown).await;
            stop.cancel();
            common::metrics::stop(metrics_server).await;
            return stood_by;
        }
        checked => checked?,
    }
    set_runtime_available(config.runtime, true, "ok");

    let mut sandbox = Sandbox::new(&config, docker, worker_id.clone());
    sandbox.own_container = sandbox::own_container_id(&sandbox.docker).await;
    let pool = Arc::new(Pool::new(sandbox, config.pool_settings()));
    let leftovers = pool.launcher().remove_leftovers().await?;
    if leftovers > 0 {
        tracing::info!(
            count = leftovers,
            "removed containers left by an earlier run"
        );
    }
    match pool.launcher().remove_orphans().await {
        Ok(0) => {}
        Ok(count) => tracing::info!(
            count,
            "removed containers of worker containers that are gone"
        ),
        Err(error) => tracing::warn!(%error, "cannot look for orphaned containers"),
    }

    let executor = Arc::new(Executor::new(pool.clone(), worker_id.clone()));
    // Every second: dead idle containers go soon after they die, expired ones within a
    // second of their TTL; the longest recent queue wait is exported.
    let reaper = tokio::spawn({
        let (pool, queue_waits) = (pool.clone(), executor.queue_waits.clone());
        let stop = stop.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {
                        pool.reap_idle();
                        queue_waits.export(std::time::Instant::now());
                    }
                }
            }
        }
    });
    let stem_cells = tokio::spawn(pool.clone().keep_stem_cells(stop.clone()));
    let builds = config.deps.builds.then(|| {
        let builder = Arc::new(Builder {
            docker: pool.launcher().docker.clone(),
            settings: config.deps.clone(),
            cache: pool.launcher().deps.clone(),
            worker_id: worker_id.clone(),
            own_container: pool.launcher().own_container.clone(),
        });
        tokio::spawn(build::consume(
            builder,
            config.broker.amqp_url.clone(),
            config.broker.topology(),
            stop.clone(),
        ))
    });

    tracing::info!(
        %worker_id,
        runtime = %config.runtime,
        prefetch = settings.prefetch,
        memory_budget_mb = config.resolved_memory_mb(),
        "worker starting"
    );
    let consumed = consumer::consume(settings, executor, shutdown).await;

    stop.cancel();
    let _ = tokio::join!(reaper, stem_cells);
    if let Some(builds) = builds {
        let _ = builds.await;
    }
    common::metrics::stop(metrics_server).await;
    if tokio::time::timeout(REMOVE_ALL_TIMEOUT, pool.remove_all())
        .await
        .is_err()
    {
        tracing::warn!("Docker did not remove every container in time");
    }
    // A container whose start was cut short by the shutdown is not tracked yet: sweep by label.
    let sweep = tokio::time::timeout(REMOVE_ALL_TIMEOUT, pool.launcher().remove_leftovers());
    match sweep.await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot list this worker's containers at shutdown")
        }
        Err(_) => tracing::warn!("Docker did not list and remove this worker's containers in time"),
    }
    // No container of this worker mounts its cache any more; another worker's is its own.
    let cache = config.worker_cache_dir();
    if let Err(error) = std::fs::remove_dir_all(&cache)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %cache.display(), %error, "cannot remove this worker's dependency cache");
    }
    tracing::info!("worker stopped; its containers and dependency cache are removed");
    consumed
}

/// Connects to Docker and checks that the runtime images are there, so that a misconfigured
/// worker stops with a clear message instead of failing every job.
pub async fn preflight(config: &Config) -> Result<Docker, WorkerError> {
    let host = config.docker_host.clone();
    let unreachable = |source| WorkerError::DockerUnreachable {
        host: host.clone(),
        source,
    };
    let docker = if let Some(path) = host.strip_prefix("unix://") {
        Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
    } else if host.starts_with('/') {
        Docker::connect_with_unix(&host, 120, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_http(&host, 120, bollard::API_DEFAULT_VERSION)
    }
    .map_err(unreachable)?;
    // Older daemons (Debian's 20.10 speaks API 1.41) refuse newer clients: agree on a version.
    let docker = docker.negotiate_version().await.map_err(unreachable)?;
    docker.ping().await.map_err(unreachable)?;

    if config.pull_images {
        // Build images are optional (without them this worker takes no builds), so a failed
        // pull of one is only logged.
        for image in [
            &config.deps.python_build_image,
            &config.deps.node_build_image,
        ] {
            if let Err(error) = pull_if_missing(&docker, image).await {
                tracing::warn!(%image, %error, "cannot pull the build image; this worker takes no builds of its language");
            }
        }
    }
    for (image, dir) in [
        (&config.python_image, "docker/python"),
        (&config.node_image, "docker/nodejs"),
    ] {
        if docker.inspect_image(image).await.is_ok() {
            continue;
        }
        if config.pull_images {
            match pull(&docker, image).await {
                Ok(()) => continue,
                Err(error) => tracing::error!(%image, %error, "cannot pull the runtime image"),
            }
        }
        return Err(WorkerError::ImageMissing {
            image: image.clone(),
            build_command: format!("docker build -t {image} {dir}"),
        });
    }

    Ok(docker)
}

/// Pulls `image` unless this Docker has it already.
async fn pull_if_missing(docker: &Docker, image: &str) -> Result<(), bollard::errors::Error> {
    if docker.inspect_image(image).await.is_ok() {
        return Ok(());
    }
    pull(docker, image).await
}

/// Pulls `image` from its registry; the stream ends in an error when the pull fails.
async fn pull(docker: &Docker, image: &str) -> Result<(), bollard::errors::Error> {
    use futures_util::TryStreamExt as _;
    tracing::info!(%image, "pulling the image, which this node's Docker lacks");
    let options = bollard::query_parameters::CreateImageOptionsBuilder::default()
        .from_image(image)
        .build();
    docker
        .create_image(Some(options), None, None)
        .try_for_each(|_| async { Ok(()) })
        .await
}

/// Checks that Docker can start this worker's sandboxes: for gVisor, that the daemon has the
/// `GVISOR_RUNTIME` runtime registered.
pub async fn check_runtime(docker: &Docker, config: &Config) -> Result<(), WorkerError> {
    if config.runtime == Runtime::Gvisor {
        let info = docker.info().await?;
        let runtimes: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
        if !runtimes.contains(&config.gvisor_runtime) {
            return Err(WorkerError::RuntimeMissing {
                runtime: config.gvisor_runtime.clone(),
                available: runtimes.join(", "),
            });
        }
    }
    Ok(())
}

/// Describes the worker's metrics and starts its counters at zero, so that every series a
/// dashboard reads exists from the first scrape (a counter that appears late loses its first
/// increase to `rate()`).
fn register_metrics(runtime: Runtime, memory_budget_mb: u64) {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    // Installs the recorder: whatever is recorded before that is lost.
    common::metrics::handle();
    let runtime = runtime.as_str();
    describe_counter!(
        "faas_worker_jobs_total",
        "Jobs this worker finished, by reply status."
    );
    describe_histogram!(
        "faas_worker_queue_seconds",
        metrics::Unit::Seconds,
        "Time a job waited in the queue before this worker took it."
    );
    describe_histogram!(
        "faas_worker_init_seconds",
        metrics::Unit::Seconds,
        "Time to start and initialise a container for a cold call."
    );
    describe_histogram!(
        "faas_worker_run_seconds",
        metrics::Unit::Seconds,
        "Time the handler ran."
    );
    describe_gauge!(
        "faas_containers",
        "This worker's containers by state: warm (idle), busy, prewarmed (stem cells)."
    );
    describe_gauge!(
        "faas_worker_memory_mb",
        metrics::Unit::Mebibytes,
        "This worker's memory budget (state=budget), what its containers hold of it (state=reserved) and what is left (state=free)."
    );
    describe_counter!(
        "faas_worker_jobs_taken_total",
        "Jobs this worker took, by queue: its home queue (the functions whose home it is) or the runtime's shared one (spilled)."
    );
    describe_counter!(
        "faas_pool_acquisitions_total",
        "Calls that got (or did not get) a container, by how: idle at once, waited (one of its function's came back), started, refused."
    );
    describe_gauge!(
        "faas_worker_queue_wait_max_seconds",
        metrics::Unit::Seconds,
        "The longest time a job taken in the last 10 to 20 s had waited in its queue."
    );
    describe_gauge!(
        "faas_worker_info",
        "1, labelled with this worker's id, node (NODE_ID) and runtime."
    );
    describe_gauge!(
        "faas_worker_inflight_jobs",
        "Jobs this worker is running now."
    );
    describe_gauge!(
        "faas_worker_runtime_available",
        "1 when this worker can start its runtime's sandboxes; 0 with the reason when it cannot."
    );
    describe_counter!(
        "faas_container_evictions_total",
        "Idle containers removed to make room under WORKER_MEMORY_MB or MAX_CONTAINERS."
    );
    describe_counter!("faas_docker_errors_total", "Failed Docker API requests.");
    describe_counter!(
        "faas_broker_errors_total",
        "Failed or lost RabbitMQ connections and publishes."
    );
    metrics::counter!("faas_docker_errors_total").absolute(0);
    metrics::counter!("faas_broker_errors_total").absolute(0);
    metrics::counter!("faas_container_evictions_total", "runtime" => runtime).absolute(0);
    metrics::gauge!("faas_worker_inflight_jobs", "runtime" => runtime).set(0.0);
    metrics::gauge!("faas_worker_memory_mb", "state" => "budget", "runtime" => runtime)
        .set(memory_budget_mb as f64);
    metrics::gauge!("faas_worker_memory_mb", "state" => "reserved", "runtime" => runtime).set(0.0);
    metrics::gauge!("faas_worker_memory_mb", "state" => "free", "runtime" => runtime)
        .set(memory_budget_mb as f64);
    metrics::gauge!("faas_worker_queue_wait_max_seconds", "runtime" => runtime).set(0.0);
    for state in ["warm", "busy", "prewarmed"] {
        metrics::gauge!("faas_containers", "state" => state, "runtime" => runtime).set(0.0);
    }
}

fn set_runtime_available(runtime: Runtime, available: bool, reason: &'static str) {
    metrics::gauge!("faas_worker_runtime_available", "runtime" => runtime.as_str(), "reason" => reason)
        .set(if available { 1.0 } else { 0.0 });
}
