//! The worker: takes invocation jobs of one runtime (Docker or gVisor) from RabbitMQ and runs
//! each in a sandboxed, warm-when-possible container through the Docker API.
//!
//! [`run`] is the whole worker; `main` only parses settings and binds the metrics listener.

pub mod config;
pub mod consumer;
pub mod container;
pub mod error;
pub mod executor;
pub mod pool;

use bollard::Docker;
use common::Runtime;
use common::broker::Topology;
pub use config::Config;
use container::Sandbox;
pub use error::WorkerError;
use executor::Executor;
use pool::Pool;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Checks Docker, the images and (for gVisor) the runtime, then consumes jobs until `shutdown`
/// resolves; in-flight jobs finish and every container of this worker is removed before it
/// returns.
pub async fn run(
    config: Config,
    metrics_listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let worker_id = config.resolved_worker_id();
    let docker = preflight(&config).await?;
    let sandbox = Sandbox::new(&config, docker, worker_id.clone());
    let pool = Arc::new(Pool::new(sandbox, config.pool_settings()));
    let leftovers = pool.remove_leftovers().await?;
    if leftovers > 0 {
        tracing::info!(
            count = leftovers,
            "removed containers left by an earlier run"
        );
    }

    let reaper = tokio::spawn({
        let pool = pool.clone();
        let period = Duration::from_secs(config.idle_ttl_secs.clamp(1, 10));
        async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                pool.reap_idle();
            }
        }
    });
    let stem_cells = tokio::spawn(pool.clone().keep_stem_cells());
    let metrics_server = tokio::spawn(serve_metrics(metrics_listener));

    let executor = Arc::new(Executor {
        pool: pool.clone(),
        worker_id: worker_id.clone(),
        init_timeout: Duration::from_millis(config.init_timeout_ms),
    });
    let settings = consumer::Settings {
        amqp_url: config.amqp_url.clone(),
        topology: Topology::new(&config.queue_prefix),
        runtime: config.runtime,
        concurrency: config.concurrency.max(1),
        consumer_tag: format!("{worker_id}-{}", config.runtime),
        shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
    };
    tracing::info!(%worker_id, runtime = %config.runtime, concurrency = settings.concurrency, "worker starting");
    let consumed = consumer::consume(settings, executor, shutdown).await;

    reaper.abort();
    stem_cells.abort();
    metrics_server.abort();
    pool.remove_all().await;
    // A container whose start was cut short by the shutdown is not tracked yet: sweep by label.
    if let Err(error) = pool.remove_leftovers().await {
        tracing::warn!(%error, "cannot list this worker's containers at shutdown");
    }
    tracing::info!("worker stopped; its containers are removed");
    consumed
}

/// Connects to Docker and checks that this worker can run functions at all, so that a
/// misconfigured worker stops with a clear message instead of failing every job.
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

    for (image, dir) in [
        (&config.python_image, "docker/python"),
        (&config.node_image, "docker/nodejs"),
    ] {
        if docker.inspect_image(image).await.is_err() {
            return Err(WorkerError::ImageMissing {
                image: image.clone(),
                build_command: format!("docker build -t {image} {dir}"),
            });
        }
    }

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
    Ok(docker)
}

/// Serves the process's Prometheus metrics at `/metrics`.
async fn serve_metrics(listener: TcpListener) {
    let handle = common::metrics::handle();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "metrics listener failed");
    }
}
