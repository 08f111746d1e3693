//! The platform's HTTP API: function CRUD in Postgres, synchronous invocations over RabbitMQ,
//! invocation records, health probes; the functions' HTTP triggers on an origin of their own;
//! Prometheus metrics on a listener of their own.
//!
//! [`run`] is the whole server; `main` only parses settings and binds the listeners, so tests
//! start the same server on port 0.
//!
//! Inside, in layers, each importing only those below it (docs/architecture.md, "The house:
//! layers"; `scripts/check-layers.sh` checks it): `domain` (pure rules and formats), `store`
//! (Postgres) and `broker` (RabbitMQ), `services` (the one call path, saving functions, async
//! dispatch, the caches), `http` (routes, extractors, errors into responses, OpenAPI), and
//! `state`, which composes them from the settings. Modules are private; what the binary and
//! the tests use is re-exported.

mod broker;
mod config;
mod domain;
mod http;
mod services;
mod state;
pub mod store;
pub use services::records;

use axum::Router;
use axum::http::{HeaderValue, header};
pub use config::{AuthMode, Config, Secret};
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

/// The api's three listeners, bound by the caller (`main`, or a test on port 0).
pub struct Listeners {
    /// The management api (`API_ADDR`): functions, keys, calls, records, `/docs`.
    pub api: TcpListener,
    /// The functions' own origin (`FUNCTIONS_ADDR`): their HTTP triggers, and nothing else.
    pub functions: TcpListener,
    /// Prometheus text (`METRICS_ADDR`).
    pub metrics: TcpListener,
}

/// Connects to Postgres (migrating it) and RabbitMQ, then serves the management API, the
/// functions' origin and Prometheus text on `listeners` until `shutdown` resolves; in-flight
/// requests finish.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Listeners {
        api: listener,
        functions: functions_listener,
        metrics: metrics_listener,
    } = listeners;
    let metrics_idle_timeout = (config.metrics_idle_timeout_secs > 0)
        .then(|| Duration::from_secs(config.metrics_idle_timeout_secs));
    install_metrics(metrics_idle_timeout);
    http::server::raise_open_files_limit();
    // Unique per process, so an operator (or a test) can tell the replicas' connections apart.
    let connection_name = format!(
        "faas-api {} {}",
        listener.local_addr()?,
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let composed = state::compose(&config, connection_name).await?;
    let stop_background = CancellationToken::new();
    let background = state::Background::spawn(&config, &composed, stop_background.clone());
    let (state, invoker, record_tasks) = composed.into_serving();
    let streams = state.streams.clone();

    register_metrics();
    let keep_alive = metrics_idle_timeout
        .map(|idle| tokio::spawn(keep_fixed_series_alive(idle, stop_background.clone())));
    let metrics_task = tokio::spawn(common::metrics::serve(
        metrics_listener,
        stop_background.clone(),
    ));
    // The description routes need no state, no key and no bound on requests in flight.
    let app = with_management_headers(
        http::routes::router(state.clone()).merge(http::openapi::docs::router()),
    );
    let functions_app = http::routes::functions_router(state);
    // Each origin has its own count of connections per client address.
    let limits = http::server::ConnectionLimits {
        header_read_timeout: Duration::from_secs(config.header_read_timeout_secs.max(1)),
        per_peer: config.max_connections_per_peer,
    };
    tracing::info!(addr = %listener.local_addr()?, "api listening");
    tracing::info!(addr = %functions_listener.local_addr()?, "functions' origin listening");
    let stop_serving = CancellationToken::new();
    let functions_server = tokio::spawn(http::server::serve(
        functions_listener,
        with_request_layers(functions_app),
        limits,
        stop_serving.clone().cancelled_owned(),
    ));
    http::server::serve(listener, with_request_layers(app), limits, async move {
        shutdown.await;
        // Streams never end by themselves: the graceful shutdown would wait for them.
        streams.close();
        stop_serving.cancel();
    })
    .await;
    if let Err(error) = functions_server.await {
        tracing::error!(%error, "the functions' origin server failed");
    }
    stop_background.cancel();
    common::metrics::stop(metrics_task).await;
    background.join().await;
    if let Some(keep_alive) = keep_alive {
        let _ = keep_alive.await;
    }
    // The router (and with it every RecordWriter) is gone: the writer drains and ends, then
    // what it stored last is published to the other replicas' streams while the broker
    // connection is still open.
    if tokio::time::timeout(Duration::from_secs(10), record_tasks.writer)
        .await
        .is_err()
    {
        tracing::warn!("invocation records still unwritten at shutdown");
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), record_tasks.fanout).await;
    invoker.close().await;
    Ok(())
}

/// What every request of either origin goes through: its span, its request id (the caller's
/// or a fresh one, sent back), and a panic turned into a 500.
fn with_request_layers(app: Router) -> Router {
    app.layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(
            http::request_id::ProcessRequestIds::new(),
        ))
        .layer(CatchPanicLayer::new())
}

/// The management origin's answers may not be framed by any page (a function's page, served
/// from the functions' origin, must not frame `/docs` or the console to steal clicks), and
/// their types are not sniffed. A response with a policy of its own (the console's, which says
/// `frame-ancestors 'none'` too) keeps it.
fn with_management_headers(app: Router) -> Router {
    app.layer(SetResponseHeaderLayer::if_not_present(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    ))
    .layer(SetResponseHeaderLayer::overriding(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    ))
    .layer(SetResponseHeaderLayer::overriding(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ))
}

/// The span of one request: its method, the route it matched (the pattern, not the path, so
/// that ids in paths do not make every span unique) and its request id (`X-Request-Id`, the
/// client's or one made here, and sent back), which every log line of the request carries.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|path| path.as_str());
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok());
    tracing::info_span!(
        "request",
        method = %request.method(),
        route = route.unwrap_or("unmatched"),
        request_id = request_id.unwrap_or(""),
    )
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
    metrics::counter!("faas_record_events_dropped_total").increment(0);
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
        "faas_jobs_rerouted_total",
        "Sync jobs the broker returned because the home queue it routed them to had just been deleted (its worker gone), published again to the runtime's shared queue."
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
        "faas_record_events_dropped_total",
        "Stored invocation records not published to the invocation streams of other replicas: the publisher was behind."
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
    metrics::counter!("faas_record_events_dropped_total").absolute(0);
    for runtime in common::Runtime::ALL {
        metrics::gauge!("faas_inflight_invocations", "runtime" => runtime.as_str()).set(0.0);
    }
}
