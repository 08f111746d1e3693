//! Routes for workers only, under `/internal/`, behind the worker token (`WORKER_TOKEN`): a
//! build's start and end, and dependency artifacts up and down. Not in the OpenAPI document:
//! they are the api's contract with its own workers, not with clients.
//!
//! Artifacts stream both ways in chunks of at most [`store::CHUNK_BYTES`]: neither side holds a
//! whole one in memory.

use crate::domain::auth;
use crate::http::error::ApiError;
use crate::http::extract::{Json, Path};
use crate::http::state::AppState;
use crate::store::{self, ArtifactWriter, BuildEnd, FinishError};
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::{
    ARTIFACT_SHA256_HEADER as CONTENT_SHA256, ARTIFACT_UNPACKED_HEADER as UNPACKED_BYTES,
    ArtifactRef, FunctionEvent,
};
use futures_util::StreamExt;
use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The most of a build's log kept: its end.
const MAX_BUILD_LOG_BYTES: usize = 256 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/internal/builds/{key}/start", post(post_build_start))
        .route("/internal/builds/{key}/finish", post(post_build_finish))
        .route(
            "/internal/artifacts/{digest}",
            get(get_artifact).put(put_artifact),
        )
        // The artifact upload is bounded by ARTIFACT_MAX_MB as it streams.
        .layer(DefaultBodyLimit::disable())
}

/// Refuses a caller without the worker token (or every caller, when none is set).
fn require_worker(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.worker_token else {
        return Err(ApiError::NotAWorker);
    };
    let given =
        auth::bearer_token(headers.get(header::AUTHORIZATION)).map_err(|_| ApiError::NotAWorker)?;
    if auth::same_hash(expected, &auth::sha256(given.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::NotAWorker)
    }
}

fn check_hex(what: &str, value: &str) -> Result<(), ApiError> {
    if ArtifactRef::is_valid_digest(value) {
        Ok(())
    } else {
        Err(ApiError::Invalid(format!(
            "{what} must be 64 lowercase hex digits"
        )))
    }
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
    headers: HeaderMap,
    Path(key): Path<String>,
    Json(request): Json<StartRequest>,
) -> Result<axum::Json<StartAnswer>, ApiError> {
    require_worker(&state, &headers)?;
    check_hex("the build key", &key)?;
    let proceed = store::start_build(&state.db, &key, request.attempt, &request.worker_id).await?;
    tracing::info!(build_key = %key, attempt = %request.attempt, worker = %request.worker_id, proceed, "build started");
    Ok(axum::Json(StartAnswer { proceed }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FinishStatus {
    Ready,
    Failed,
}

#[derive(Debug, Deserialize)]
pub struct FinishRequest {
    attempt: Uuid,
    status: FinishStatus,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    size_bytes: Option<i64>,
    #[serde(default)]
    log: String,
}

#[derive(Debug, Serialize)]
pub struct FinishAnswer {
    /// Functions that use the build (whose waiting version now runs, when it is ready).
    promoted: usize,
}

/// A worker reports how a build ended; a ready one needs its artifact uploaded first.
pub async fn post_build_finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Json(request): Json<FinishRequest>,
) -> Result<axum::Json<FinishAnswer>, ApiError> {
    require_worker(&state, &headers)?;
    check_hex("the build key", &key)?;
    let end = match request.status {
        FinishStatus::Failed => BuildEnd::Failed,
        FinishStatus::Ready => {
            let digest = request.digest.unwrap_or_default();
            check_hex("the digest", &digest)?;
            BuildEnd::Ready {
                digest,
                size_bytes: request.size_bytes.unwrap_or(0).max(0),
            }
        }
    };
    // The log comes from a build of untrusted packages: bounded, and no NUL for Postgres.
    let log = store::tail(&request.log, MAX_BUILD_LOG_BYTES).replace('\0', "\u{fffd}");
    let promoted = match store::finish_build(&state.db, &key, request.attempt, &end, &log).await {
        Ok(promoted) => promoted,
        Err(FinishError::Db(error)) => return Err(error.into()),
        Err(refused) => return Err(ApiError::Conflict(refused.to_string())),
    };
    tracing::info!(build_key = %key, status = ?request.status, promoted = promoted.len(), "build finished");
    for function in &promoted {
        state.function_cache.invalidate(
            function.function_id,
            Some(&function.namespace),
            Some(&function.name),
        );
        state
            .invoker
            .publish_event(&FunctionEvent {
                function_id: function.function_id,
                namespace: Some(function.namespace.clone()),
                name: Some(function.name.clone()),
                version: Some(function.version),
            })
            .await;
    }
    Ok(axum::Json(FinishAnswer {
        promoted: promoted.len(),
    }))
}

/// Stores an artifact as it streams in, checking its size against `ARTIFACT_MAX_MB` and its
/// bytes against the SHA-256 header. One already stored is kept (same digest, same inputs).
pub async fn put_artifact(
    State(state): State<AppState>,
    Path(digest): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    require_worker(&state, &parts.headers)?;
    check_hex("the digest", &digest)?;
    let header_text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let expected_sha = header_text(CONTENT_SHA256).unwrap_or_default();
    check_hex(CONTENT_SHA256, &expected_sha)?;
    let unpacked: i64 = header_text(UNPACKED_BYTES)
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| ApiError::Invalid(format!("{UNPACKED_BYTES} must be a byte count")))?;
    if store::artifact_meta(&state.db, &digest).await?.is_some() {
        return Ok((
            StatusCode::OK,
            axum::Json(serde_json::json!({"stored": false})),
        )
            .into_response());
    }
    let max = state.limits.max_artifact_bytes;
    let mut writer = match ArtifactWriter::begin(&state.db, &digest).await {
        Ok(writer) => writer,
        // Another upload of the same digest won the race.
        Err(error) if error.is_unique_violation() => {
            return Ok((
                StatusCode::OK,
                axum::Json(serde_json::json!({"stored": false})),
            )
                .into_response());
        }
        Err(error) => return Err(error.into()),
    };
    let mut sha = Context::new(&SHA256);
    let mut size: u64 = 0;
    let mut pending: Vec<u8> = Vec::with_capacity(store::CHUNK_BYTES);
    let mut stream = body.into_data_stream();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|_| ApiError::BodyTimeout)?;
        size += piece.len() as u64;
        if size > max {
            return Err(ApiError::TooLarge(format!(
                "the artifact is over ARTIFACT_MAX_MB ({} bytes)",
                max
            )));
        }
        sha.update(&piece);
        let mut rest: &[u8] = &piece;
        while !rest.is_empty() {
            let take = (store::CHUNK_BYTES - pending.len()).min(rest.len());
            pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if pending.len() == store::CHUNK_BYTES {
                writer.write_chunk(&pending).await?;
                pending.clear();
            }
        }
    }
    if !pending.is_empty() {
        writer.write_chunk(&pending).await?;
    }
    let actual = common::hex(sha.finish().as_ref());
    if actual != expected_sha {
        return Err(ApiError::Invalid(format!(
            "the artifact's bytes do not match {CONTENT_SHA256} (got {actual})"
        )));
    }
    writer.finish(&actual, size as i64, unpacked).await?;
    tracing::info!(%digest, size, unpacked, "artifact stored");
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({"stored": true})),
    )
        .into_response())
}

/// Streams an artifact, one chunk from Postgres at a time.
pub async fn get_artifact(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(digest): Path<String>,
) -> Result<Response, ApiError> {
    require_worker(&state, &headers)?;
    check_hex("the digest", &digest)?;
    let meta = store::artifact_meta(&state.db, &digest)
        .await?
        .filter(|meta| !meta.content_sha256.is_empty())
        .ok_or_else(|| ApiError::FunctionNotFound(format!("artifact {digest}")))?;
    let pool = state.db.clone();
    let chunks = meta.chunks;
    let stream = futures_util::stream::unfold(0i32, move |seq| {
        let pool = pool.clone();
        let digest = digest.clone();
        async move {
            if seq >= chunks {
                return None;
            }
            let chunk = match store::artifact_chunk(&pool, &digest, seq).await {
                Ok(Some(data)) => Ok(axum::body::Bytes::from(data)),
                Ok(None) => Err(std::io::Error::other("artifact chunk missing")),
                Err(error) => Err(std::io::Error::other(error.to_string())),
            };
            Some((chunk, seq + 1))
        }
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
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
    Ok(response)
}
