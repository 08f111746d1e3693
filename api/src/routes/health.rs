//! Liveness and readiness probes.

use crate::db;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// The process is up and serving HTTP.
pub async fn get_healthz() -> axum::Json<Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// 200 when Postgres and RabbitMQ both answer; 503 naming what is down otherwise.
pub async fn get_readyz(State(state): State<AppState>) -> (StatusCode, axum::Json<Value>) {
    let database = db::ping(&state.db).await.is_ok();
    let broker = state.invoker.is_connected();
    let status = if database && broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut down = Vec::new();
    if !database {
        down.push("database");
    }
    if !broker {
        down.push("broker");
    }
    (
        status,
        axum::Json(json!({ "database": database, "broker": broker, "down": down })),
    )
}
