//! The HTTP surface, one module per resource.

pub mod function_stats;
pub mod function_tests;
pub mod functions;
pub mod health;
pub mod internal;
pub mod invocations;
pub mod invoke;
pub mod keys;
pub mod metrics;
pub mod namespaces;
pub mod triggers;

use crate::http::admission;
use crate::http::limits::{self, BodyLimit};
use crate::http::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tower_http::timeout::{RequestBodyDeadlineLayer, RequestBodyTimeoutLayer};

/// Room for the JSON around a function's code or an event, beyond their own limits.
const BODY_OVERHEAD_BYTES: usize = 64 * 1024;

/// Every route of the management api. Those with a key (all but the probes and the workers'
/// routes) are behind `admission::require_key`, which checks the key from the headers and only
/// then takes one of the `MAX_INFLIGHT` permits, before any body is read; the workers' routes
/// are behind the worker token the same way. The health probes need neither key nor permit: an
/// overloaded api is still alive. Every body is read within `BODY_READ_TIMEOUT_SECS` a piece
/// and `REQUEST_TIMEOUT_SECS` in all. The functions' routes are not here: they have an origin
/// of their own ([`functions_router`]).
pub fn router(state: AppState) -> Router {
    // JSON escapes can make the body longer than the code it carries; a package is base64,
    // four bytes for three.
    let source_body_max = state.limits.max_code_bytes * 2 + BODY_OVERHEAD_BYTES;
    let function_body_max = source_body_max
        .max(crate::domain::package::MAX_ZIP_BYTES.div_ceil(3) * 4 + BODY_OVERHEAD_BYTES);
    let uploads = functions::UploadGuard {
        state: state.clone(),
        permits: Arc::new(Semaphore::new(functions::UPLOADS_AT_ONCE)),
        source_body_max,
    };
    let event_body_max = state.limits.max_event_bytes + BODY_OVERHEAD_BYTES;
    let functions = Router::new()
        .route(
            "/functions/",
            get(functions::list_functions).post(functions::create_function),
        )
        .route(
            "/functions/{id}",
            get(functions::get_function)
                .put(functions::update_function)
                .delete(functions::delete_function),
        )
        .route("/functions/{id}/build", get(functions::get_function_build))
        .layer(DefaultBodyLimit::max(function_body_max))
        .layer(from_fn_with_state(
            BodyLimit(function_body_max),
            limits::read_body,
        ))
        // Before the body is read: a large one only for a key that may save functions.
        .layer(from_fn_with_state(uploads, functions::admit_upload));
    // A function's stored tests: JSON of at most 1 MiB (422 beyond, naming the limit), read
    // up to twice that (413 beyond); its stats take no body.
    let function_tests = Router::new()
        .route(
            "/functions/{id}/tests",
            get(function_tests::get_function_tests).put(function_tests::put_function_tests),
        )
        .route(
            "/functions/{id}/stats",
            get(function_stats::get_function_stats),
        )
        .layer(DefaultBodyLimit::max(function_tests::TESTS_BODY_READ_MAX))
        .layer(from_fn_with_state(
            BodyLimit(function_tests::TESTS_BODY_READ_MAX),
            limits::read_body,
        ));
    let invocations = Router::new()
        .route("/execute/{name}", post(invoke::execute_function))
        .route(
            "/execute_gvisor/{name}",
            post(invoke::execute_function_gvisor),
        )
        .route(
            "/execute_async/{name}",
            post(invoke::execute_function_async),
        )
        .layer(DefaultBodyLimit::max(event_body_max))
        .layer(from_fn_with_state(
            BodyLimit(event_body_max),
            limits::read_body,
        ));
    // Small JSON bodies only; the default body limit (2 MB) holds them.
    let admin = Router::new()
        .route("/keys/", get(keys::list_keys).post(keys::create_key))
        .route("/keys/{id}", delete(keys::delete_key))
        .route(
            "/namespaces/",
            get(namespaces::list_namespaces).post(namespaces::create_namespace),
        )
        .route(
            "/namespaces/{name}",
            delete(namespaces::delete_namespace).patch(namespaces::update_namespace),
        )
        .route("/whoami", get(keys::get_whoami));
    let keyed = Router::new()
        .merge(functions)
        .merge(function_tests)
        .merge(invocations)
        .merge(admin)
        .route("/metrics/", get(metrics::list_invocations))
        .route("/invocations/", get(invocations::list_invocations))
        .route("/invocations/{id}", get(invocations::get_invocation))
        .route(
            "/invocations/{id}/retry",
            post(invocations::retry_invocation),
        )
        // Outermost of these routes' own layers: nothing of the body is read before it.
        .route_layer(from_fn_with_state(state.clone(), admission::require_key));
    // A stream lasts as long as its client reads: behind the key, but holding no in-flight
    // permit (they are bounded by STREAM_CLIENTS instead), and it reads no body.
    let streams = Router::new()
        .route("/invocations/stream", get(invocations::stream_invocations))
        .route_layer(from_fn_with_state(
            state.clone(),
            admission::require_key_for_stream,
        ));
    let routes = Router::new()
        .merge(keyed)
        .merge(streams)
        .merge(internal::router(state.clone()))
        .merge(crate::http::console::router())
        .route("/healthz", get(health::get_healthz))
        .route("/readyz", get(health::get_readyz));
    with_body_time_limits(routes, state)
}

/// The functions' own origin: any method on any path runs the function whose route matches.
/// The trigger admits its own requests (route, method, key, then one of its origin's
/// `MAX_INFLIGHT` permits, its own so that a flood of calls to public routes leaves the
/// management api its permits, then the body), read within the same time limits.
pub fn functions_router(state: AppState) -> Router {
    with_body_time_limits(triggers::router(), state)
}

/// Both origins read every body within `BODY_READ_TIMEOUT_SECS` a piece and
/// `REQUEST_TIMEOUT_SECS` in all.
fn with_body_time_limits(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .layer(RequestBodyDeadlineLayer::new(state.limits.request_timeout))
        .layer(RequestBodyTimeoutLayer::new(state.limits.body_read_timeout))
        .with_state(state)
}
