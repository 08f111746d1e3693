//! The platform's HTTP API: function CRUD in Postgres, synchronous invocations over RabbitMQ,
//! invocation records, health probes, and Prometheus metrics on a listener of their own.
//!
//! [`run`] is the whole server; `main` only parses settings and binds the listeners, so tests
//! start the same server on port 0.
//!
//! Inside: `routes` (one module per resource) take a `Principal` from `auth` (keys verified
//! and cached by `keys`), reach Postgres through `db` and the function `cache`, publish jobs
//! and events through the `invoker`, and hand invocation records to the `records` writer;
//! `http_trigger` maps paths under `ROUTE_PREFIX` to functions and HTTP to events and back;
//! `server` serves HTTP with read timeouts, `limits` bounds requests and bodies, `retention`
//! deletes old records. `deps` checks dependency lists and `package` deployment packages. `openapi` assembles the OpenAPI document from the handlers' attributes
//! and the bodies' types; `routes::docs` serves it and its Swagger UI page. Modules are
//! private; what the binary and the tests use is re-exported.

mod broker;
mod config;
mod domain;
mod http;
mod services;
pub mod store;
pub use services::records;
use services::{cache, dispatch, keys, retention, route_table};

use anyhow::Context;
pub use config::{AuthMode, Config, Secret};
use http::state::{AppState, Limits};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

/// Connects to Postgres (migrating it) and RabbitMQ, then serves the API on `listener` and
/// Prometheus text on `metrics_listener` until `shutdown` resolves; in-flight requests finish.
pub async fn run(
    config: Config,
    listener: TcpListener,
    metrics_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics_idle_timeout = (config.metrics_idle_timeout_secs > 0)
        .then(|| Duration::from_secs(config.metrics_idle_timeout_secs));
    install_metrics(metrics_idle_timeout);
    let db = store::connect(&config.database_url, config.database_pool_size)
        .await
        .context("cannot open the database (DATABASE_URL)")?;
    let functions = Arc::new(cache::FunctionCache::new(Duration::from_secs(
        config.function_cache_ttl_secs,
    )));
    let keys = key_store(&config, &db).await?;
    match config.worker_token() {
        Some(token) if token.len() < config::MIN_WORKER_TOKEN_LEN => anyhow::bail!(
            "WORKER_TOKEN must be at least {} characters",
            config::MIN_WORKER_TOKEN_LEN
        ),
        Some(_) => {}
        None => tracing::warn!(
            "WORKER_TOKEN is not set: workers cannot report builds or fetch artifacts, so functions with dependencies never become ready"
        ),
    }
    let routes = route_table::RouteTable::new();
    let route_count = routes
        .load(&db)
        .await
        .context("cannot load the functions' routes")?;
    tracing::info!(routes = route_count, prefix = %config.route_prefix, "HTTP routes loaded");
    // Unique per process, so an operator (or a test) can tell the replicas' connections apart.
    let connection_name = format!(
        "faas-api {} {}",
        listener.local_addr()?,
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let topology = config
        .broker
        .topology()
        .with_retry_base_secs(config.retry_base_secs);
    let invoker = broker::Invoker::connect(
        &config.broker.amqp_url,
        connection_name.clone(),
        topology.clone(),
        Arc::new(services::Caches {
            functions: functions.clone(),
            keys: keys.clone(),
            routes: routes.clone(),
        }),
    )
    .await
    .map_err(
        |error| match common::broker::explain_declare_error(&error) {
            Some(explained) => anyhow::anyhow!(explained),
            None => anyhow::Error::new(error).context("cannot reach the message broker (AMQP_URL)"),
        },
    )?;
    let (records, record_writer) = records::RecordWriter::spawn(db.clone());
    let stop_background = CancellationToken::new();
    let retention = retention::spawn(
        db.clone(),
        retention::Retention {
            record_days: config.record_retention_days,
            artifact_grace: Duration::from_secs(config.artifact_grace_secs),
            interval: Duration::from_secs(config.retention_interval_secs.max(1)),
        },
        stop_background.clone(),
    );
    let route_reloader = routes.spawn_reloader(
        db.clone(),
        Duration::from_secs(config.function_cache_ttl_secs.max(1)),
        stop_background.clone(),
    );
    let invoke_overhead = Duration::from_millis(config.invoke_overhead_ms);
    let invocations = services::Invocations::new(
        db.clone(),
        invoker.clone(),
        functions.clone(),
        records.clone(),
        invoke_overhead,
    );
    let function_service = services::Functions::new(
        db.clone(),
        invoker.clone(),
        functions.clone(),
        routes.clone(),
        config.max_code_bytes,
        Duration::from_secs(config.build_wait_secs),
    );
    let async_dispatch = dispatch::Dispatch {
        db: db.clone(),
        invoker: invoker.clone(),
        invocations: invocations.clone(),
        pending: Default::default(),
        max_pending_async: config.max_pending_async,
    };
    let state = AppState {
        db,
        invoker: invoker.clone(),
        function_cache: functions,
        functions: function_service,
        keys,
        records,
        invocations,
        routes,
        route_prefix: config.route_prefix.as_str().into(),
        limits: Limits {
            max_code_bytes: config.max_code_bytes,
            max_event_bytes: config.max_event_bytes,
            max_async_event_bytes: config.max_async_event_bytes,
            max_inflight: config.max_inflight,
            // 0 would refuse every body and every request: a second is the least that works.
            body_read_timeout: Duration::from_secs(config.body_read_timeout_secs.max(1)),
            max_artifact_bytes: config.artifact_max_mb * 1024 * 1024,
        },
        dispatch: async_dispatch.clone(),
        worker_token: config
            .worker_token()
            .map(|token| domain::auth::sha256(token.as_bytes())),
    };

    let dispatcher = (config.async_concurrency > 0).then(|| {
        dispatch::spawn_dispatcher(
            async_dispatch.clone(),
            dispatch::DispatchSettings {
                amqp_url: config.broker.amqp_url.clone(),
                connection_name: format!("{connection_name} dispatcher"),
                concurrency: config.async_concurrency,
                topology: topology.clone(),
            },
            stop_background.clone(),
        )
    });
    let sweeper =
        dispatch::spawn_sweeper(async_dispatch.clone(), topology, stop_background.clone());
    let scheduler = dispatch::spawn_scheduler(async_dispatch, stop_background.clone());

    register_metrics();
    let keep_alive = metrics_idle_timeout
        .map(|idle| tokio::spawn(keep_fixed_series_alive(idle, stop_background.clone())));
    let metrics_task = tokio::spawn(common::metrics::serve(
        metrics_listener,
        stop_background.clone(),
    ));
    // The description routes need no state, no key and no bound on requests in flight.
    let app = http::routes::router(state)
        .merge(http::openapi::docs::router())
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::new());
    tracing::info!(addr = %listener.local_addr()?, "api listening");
    http::server::serve(
        listener,
        app,
        Duration::from_secs(config.header_read_timeout_secs.max(1)),
        shutdown,
    )
    .await;
    stop_background.cancel();
    common::metrics::stop(metrics_task).await;
    let _ = retention.await;
    // Its running jobs finish (or go back to the queue) while the broker connection is open.
    if let Some(dispatcher) = dispatcher {
        let _ = dispatcher.await;
    }
    let _ = sweeper.await;
    let _ = scheduler.await;
    let _ = route_reloader.await;
    if let Some(keep_alive) = keep_alive {
        let _ = keep_alive.await;
    }
    invoker.close().await;
    // The router (and with it every RecordWriter) is gone: the writer drains and ends.
    if tokio::time::timeout(Duration::from_secs(10), record_writer)
        .await
        .is_err()
    {
        tracing::warn!("invocation records still unwritten at shutdown");
    }
    Ok(())
}

/// The key store, with the first admin key made if there is none and `ADMIN_KEY` is unset;
/// `None` with `AUTH=disabled`, which is said loudly at every start.
async fn key_store(
    config: &Config,
    db: &deadpool_postgres::Pool,
) -> anyhow::Result<Option<Arc<keys::KeyStore>>> {
    if config.auth == AuthMode::Disabled {
        tracing::warn!(
            "AUTH=disabled: every request is served without a key, as namespace `default` with every scope; never expose this api"
        );
        return Ok(None);
    }
    match config.admin_key() {
        Some(key) if key.len() < domain::auth::MIN_ADMIN_KEY_LEN => anyhow::bail!(
            "ADMIN_KEY is {} characters; it must have at least {} (e.g. `openssl rand -hex 32`)",
            key.len(),
            domain::auth::MIN_ADMIN_KEY_LEN
        ),
        Some(_) => {}
        None => keys::make_first_admin_key(db)
            .await
            .context("cannot make the first admin key")?,
    }
    let ttl = Duration::from_secs(config.key_cache_ttl_secs);
    Ok(Some(Arc::new(keys::KeyStore::new(config.admin_key(), ttl))))
}

/// Installs the process's recorder; counters and histograms that nothing updated for
/// `idle_timeout` leave /metrics (those of deleted functions). Gauges never expire: each holds a
/// current value, however old.
fn install_metrics(idle_timeout: Option<Duration>) {
    use metrics_util::MetricKindMask;
    common::metrics::install_with(|builder| {
        builder.idle_timeout(
            MetricKindMask::COUNTER | MetricKindMask::HISTOGRAM,
            idle_timeout,
        )
    });
}

/// The unlabelled-by-function counters that start at zero so that dashboards find them.
/// The exporter counts a series idle when its value's generation has not changed between two
/// renders `idle_timeout` apart; an increment by 0 changes the generation, not the value.
fn touch_fixed_series() {
    metrics::counter!("faas_broker_errors_total").increment(0);
    metrics::counter!("faas_database_errors_total").increment(0);
    for reason in records::DropReason::ALL {
        metrics::counter!("faas_records_dropped_total", "reason" => reason.as_str()).increment(0);
    }
}

/// Touches the fixed series more often than `idle_timeout`, until `stop`.
async fn keep_fixed_series_alive(idle_timeout: Duration, stop: CancellationToken) {
    let period = (idle_timeout / 2).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(period) => touch_fixed_series(),
        }
    }
}

/// Describes the api's metrics and starts its unlabelled counters and gauges at zero, so that
/// every series a dashboard reads exists from the first scrape.
fn register_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "faas_invocations_total",
        "Calls by function, runtime, trigger (execute, http, or async and schedule for the attempts of async invocations) and outcome (a reply status, no_worker, runtime_unavailable, overloaded, concurrency_limit, unavailable or no_reply)."
    );
    describe_histogram!(
        "faas_invocation_duration_seconds",
        metrics::Unit::Seconds,
        "End-to-end time of a call as the api saw it, from publish to reply."
    );
    describe_counter!(
        "faas_cold_starts_total",
        "Calls that had to start a container."
    );
    describe_gauge!(
        "faas_inflight_invocations",
        "Calls waiting for their reply now."
    );
    describe_counter!(
        "faas_broker_errors_total",
        "Failed or lost RabbitMQ connections and publishes."
    );
    describe_counter!(
        "faas_database_errors_total",
        "Failed Postgres requests and record batches."
    );
    describe_counter!(
        "faas_records_dropped_total",
        "Invocation records not stored, by reason: writer_behind (its channel was full), backlog_full (Postgres away too long), rejected (Postgres refused the row), shutdown (Postgres away at shutdown)."
    );
    describe_counter!(
        "faas_async_accepted_total",
        "Async invocations accepted, by namespace, function and mode (async or schedule)."
    );
    describe_counter!(
        "faas_async_retries_total",
        "Failed async attempts scheduled to run again."
    );
    describe_counter!(
        "faas_async_dead_lettered_total",
        "Async invocations dead-lettered, by reason: retries_exhausted, event_age_exceeded, function_not_found."
    );
    describe_counter!(
        "faas_async_destination_errors_total",
        "Destinations (on_success / on_failure) not invoked because their function is gone."
    );
    describe_histogram!(
        "faas_async_age_at_start_seconds",
        metrics::Unit::Seconds,
        "Age of an async invocation when its first attempt starts: the backlog callers feel."
    );
    metrics::counter!("faas_broker_errors_total").absolute(0);
    metrics::counter!("faas_database_errors_total").absolute(0);
    for reason in records::DropReason::ALL {
        metrics::counter!("faas_records_dropped_total", "reason" => reason.as_str()).absolute(0);
    }
    for runtime in common::Runtime::ALL {
        metrics::gauge!("faas_inflight_invocations", "runtime" => runtime.as_str()).set(0.0);
    }
}
