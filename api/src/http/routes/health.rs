//! Liveness and readiness probes.

use crate::http::state::AppState;
use crate::store;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

/// The body of `GET /healthz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(examples("ok"))]
    pub status: &'static str,
}

/// The body of `GET /readyz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Whether Postgres answered.
    pub database: bool,
    /// Whether the RabbitMQ connection is up.
    pub broker: bool,
    /// What is down: `database`, `broker`, or both; empty when ready.
    pub down: Vec<&'static str>,
}

/// The process is up and serving HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    summary = "Liveness",
    responses((status = 200, description = "The process serves HTTP.", body = Health)),
    security(()),
)]
pub async fn get_healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// 200 when Postgres and RabbitMQ both answer; 503 naming what is down otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    summary = "Readiness",
    responses(
        (status = 200, description = "Postgres and RabbitMQ answer.", body = Readiness,
            example = json!({"database": true, "broker": true, "down": []})),
        (status = 503, description = "Something is down; `down` names it.", body = Readiness,
            example = json!({"database": false, "broker": true, "down": ["database"]})),
    ),
    security(()),
)]
pub async fn get_readyz(State(state): State<AppState>) -> (StatusCode, axum::Json<Readiness>) {
    let database = store::ping(&state.db).await.is_ok();
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
        axum::Json(Readiness {
            database,
            broker,
            down,
        }),
    )
}
