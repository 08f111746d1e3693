//! Request bodies read whole, up to a limit, before a handler sees them (the bound on
//! requests served at once, and who may take one, are `http::admission`'s).
//!
//! An oversized body is read on and thrown away (up to [`DRAIN_MAX_BYTES`] or
//! [`DRAIN_MAX_TIME`]) before the 413 is sent: a client such as Python's urllib writes its
//! whole body before it reads the answer, and a connection closed under it turns the 413 into a
//! broken pipe.

use crate::http::error::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use std::time::Duration;

/// Most bytes of a refused body read and discarded so that the client sees the answer.
pub const DRAIN_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Longest time spent discarding a refused body.
pub const DRAIN_MAX_TIME: Duration = Duration::from_secs(10);

/// The body's length as its `Content-Length` declares it; `None` without one (chunked) or
/// with one that is not a number.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
}

/// The largest body a group of routes accepts.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Reads the body whole (413 over the limit, 408 when it stalls) and hands the handler a body
/// that is already in memory.
pub async fn read_body(State(limit): State<BodyLimit>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match read_whole(body, limit, &parts.headers).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(response) => response,
    }
}

/// The body of a request with `headers`, read whole within `limit`; else the answer to send
/// (413 with `Connection: close`, 408, 422).
pub async fn read_whole(
    body: Body,
    limit: BodyLimit,
    headers: &HeaderMap,
) -> Result<Bytes, Response> {
    buffer(body, limit.0, declared_length(headers))
        .await
        .map_err(|error| {
            let mut response = error.into_response();
            if response.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                // Whatever was not drained must not be read as the next request.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        })
}

/// The body's bytes, if there are at most `max` of them.
async fn buffer(body: Body, max: usize, declared: Option<u64>) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let too_large = |size: String| {
        ApiError::TooLarge(format!(
            "the request body is {size} bytes, over the limit of {max}"
        ))
    };
    if let Some(length) = declared
        && length > max as u64
    {
        drain(&mut stream, 0).await;
        return Err(too_large(length.to_string()));
    }
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut size = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(body_error)?;
        size += chunk.len();
        if size > max {
            drop(chunks);
            drain(&mut stream, size).await;
            return Err(too_large(format!("more than {max}")));
        }
        chunks.push(chunk);
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().expect("one chunk"),
        _ => Bytes::from(chunks.concat()),
    })
}

/// Reads and discards a body that is refused, within [`DRAIN_MAX_BYTES`] and
/// [`DRAIN_MAX_TIME`], so that a client that writes all of it before reading sees the answer;
/// nothing of it is kept. The answer should close the connection: a longer body is not drained.
pub async fn discard(body: Body) {
    drain(&mut body.into_data_stream(), 0).await;
}

/// Reads and discards the rest of a body, within [`DRAIN_MAX_BYTES`] and [`DRAIN_MAX_TIME`].
async fn drain(stream: &mut axum::body::BodyDataStream, mut seen: usize) {
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, async {
        while seen < DRAIN_MAX_BYTES {
            match stream.next().await {
                Some(Ok(chunk)) => seen += chunk.len(),
                _ => break,
            }
        }
    })
    .await;
}

/// 408 when the body stalled past `BODY_READ_TIMEOUT_SECS` or took longer than
/// `REQUEST_TIMEOUT_SECS` in all (both tower-http's `TimeoutError`), else the body was malformed
/// or the client went away.
fn body_error(error: axum::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = source {
        if cause.is::<tower_http::timeout::TimeoutError>() {
            return ApiError::BodyTimeout;
        }
        source = cause.source();
    }
    ApiError::Invalid(format!("the request body could not be read: {error}"))
}
