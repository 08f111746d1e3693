//! The HTTP surface, one module per resource.

pub mod functions;
pub mod health;
pub mod invoke;
pub mod metrics;

use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

/// Room for the JSON around a function's code or an event, beyond their own limits.
const BODY_OVERHEAD_BYTES: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let function_body_limit =
        DefaultBodyLimit::max(state.limits.max_code_bytes * 2 + BODY_OVERHEAD_BYTES);
    let event_body_limit =
        DefaultBodyLimit::max(state.limits.max_event_bytes + BODY_OVERHEAD_BYTES);
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
        .layer(function_body_limit);
    let invocations = Router::new()
        .route("/execute/{name}", post(invoke::execute_function))
        .route(
            "/execute_gvisor/{name}",
            post(invoke::execute_function_gvisor),
        )
        .layer(event_body_limit);
    Router::new()
        .merge(functions)
        .merge(invocations)
        .route("/metrics/", get(metrics::list_invocations))
        .route("/healthz", get(health::get_healthz))
        .route("/readyz", get(health::get_readyz))
        .with_state(state)
}
