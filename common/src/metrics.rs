//! The process-wide Prometheus recorder, and its listener: each binary runs [`serve`] on its own
//! `METRICS_ADDR` listener, never on a public port.
//!
//! A binary whose labels come and go (the api's per-function series) installs the recorder
//! itself with [`install_with`], e.g. with an idle timeout that drops series nothing updated
//! for a while; [`handle`] alone installs it with no such expiry.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Buckets for every `*_seconds` histogram: from a warm call (ms) up to the longest timeout.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    900.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder, built with the common buckets and then `configure`, unless one is
/// installed already; returns the handle of the one installed. Call it before recording
/// anything: what is recorded before the recorder exists is lost.
///
/// `configure` takes the builder rather than, say, an idle timeout, because the idle timeout's
/// kind mask is a `metrics-util` type, which this crate does not depend on.
pub fn install_with(
    configure: impl FnOnce(PrometheusBuilder) -> PrometheusBuilder,
) -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .expect("bucket list is not empty");
            configure(builder)
                .install_recorder()
                .expect("no other metrics recorder is installed in this process")
        })
        .clone()
}

/// The recorder's handle, installing it on first use with no idle expiry (series are kept
/// forever). Installing once per process lets tests start several api and worker instances
/// side by side; the first installation's settings hold for all of them.
pub fn handle() -> PrometheusHandle {
    install_with(|builder| builder)
}

/// Serves the process's Prometheus metrics at `/metrics` on `listener` until `stop`; spawn it
/// and hand its handle to [`stop`] at shutdown.
pub async fn serve(listener: tokio::net::TcpListener, stop: tokio_util::sync::CancellationToken) {
    let handle = handle();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(error) = served {
        tracing::error!(%error, "metrics listener failed");
    }
}

/// Waits for the metrics listener (its `stop` token cancelled) to finish its last scrape,
/// briefly: a scraper holding its connection open must not hold up the exit.
pub async fn stop(server: tokio::task::JoinHandle<()>) {
    let abort = server.abort_handle();
    if tokio::time::timeout(std::time::Duration::from_secs(2), server)
        .await
        .is_err()
    {
        abort.abort();
    }
}
