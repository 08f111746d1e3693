//! Routes for workers only, under `/internal/`, behind the worker token (`WORKER_TOKEN`,
//! checked by `admission::require_worker` before a body is read): a build's start and end,
//! and dependency artifacts up and down. Not in the OpenAPI document:
//! they are the api's contract with its own workers, not with clients.
//!
//! The handlers map what `services::builds` answers; artifacts
//! stream both ways without being held whole in memory.

use crate::http::admission;
use crate::http::error::ApiError;
use crate::http::extract::{Json, Path};
use crate::http::state::AppState;
use crate::services::builds::FinishReport;
use crate::services::builds::artifacts::{Claims, Upload};
use crate::store::ArtifactMeta;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::{
    ARTIFACT_SHA256_HEADER as CONTENT_SHA256, ARTIFACT_UNPACKED_HEADER as UNPACKED_BYTES,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The worker routes, each behind the worker token, checked before any body is read.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/internal/builds/{key}/start", post(post_build_start))
        .route("/internal/builds/{key}/finish", post(post_build_finish))
        .route(
            "/internal/artifacts/{digest}",
            get(get_artifact).put(put_artifact),
        )
        // The artifact upload is bounded by ARTIFACT_MAX_MB as it streams.
        .layer(DefaultBodyLimit::disable())
        .route_layer(from_fn_with_state(state, admission::require_worker))
}

#[derive(Debug, Deserialize)]
pub struct StartRequest {
    attempt: Uuid,
    worker_id: String,
}

#[derive(Debug, Serialize)]
pub struct StartAnswer {
    /// False: the job is stale (another attempt replaced it, or the build ended); drop it.
    proceed: bool,
}

/// A worker takes a build job.
pub async fn post_build_start(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Json(request): Json<StartRequest>,
) -> Result<axum::Json<StartAnswer>, ApiError> {
    let proceed = state
        .builds
        .start(&key, request.attempt, &request.worker_id)
        .await?;
    Ok(axum::Json(StartAnswer { proceed }))
}

#[derive(Debug, Serialize)]
pub struct FinishAnswer {
    /// Functions that use the build (whose waiting version now runs, when it is ready).
    promoted: usize,
}

/// A worker reports how a build ended; a ready one needs its artifact uploaded first.
pub async fn post_build_finish(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Json(report): Json<FinishReport>,
) -> Result<axum::Json<FinishAnswer>, ApiError> {
    let promoted = state.builds.finish(&key, report).await?;
    Ok(axum::Json(FinishAnswer { promoted }))
}

/// Stores an artifact as it streams in, checking its size against `ARTIFACT_MAX_MB` and its
/// bytes against the SHA-256 header. One already stored is kept (same digest, same inputs).
pub async fn put_artifact(
    State(state): State<AppState>,
    Path(digest): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let header_text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let claims = Claims {
        sha256: header_text(CONTENT_SHA256),
        unpacked_bytes: header_text(UNPACKED_BYTES),
    };
    let upload = state
        .artifacts
        .upload(&digest, claims, body.into_data_stream())
        .await?;
    let (status, stored) = match upload {
        Upload::Stored => (StatusCode::CREATED, true),
        Upload::AlreadyStored => (StatusCode::OK, false),
    };
    Ok((status, axum::Json(serde_json::json!({"stored": stored}))).into_response())
}

/// Streams an artifact, one chunk from Postgres at a time.
pub async fn get_artifact(
    State(state): State<AppState>,
    Path(digest): Path<String>,
) -> Result<Response, ApiError> {
    let download = state.artifacts.download(&digest).await?;
    let mut response = Body::from_stream(download.chunks).into_response();
    describe(response.headers_mut(), &download.meta);
    Ok(response)
}

/// The headers that describe an artifact sent: its length, type, SHA-256 and unpacked size.
fn describe(headers: &mut HeaderMap, meta: &ArtifactMeta) {
    headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(meta.size_bytes.max(0) as u64),
    );
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    if let Ok(value) = HeaderValue::from_str(&meta.content_sha256) {
        headers.insert(CONTENT_SHA256, value);
    }
    headers.insert(
        UNPACKED_BYTES,
        HeaderValue::from(meta.unpacked_bytes.max(0) as u64),
    );
}
